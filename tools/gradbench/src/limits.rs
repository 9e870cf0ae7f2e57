//! Bounds on what one message may ask of the tool, so that every message is
//! answered in bounded time and memory.
//!
//! A message beyond a limit is answered with `success: false` and an error that
//! names the field, its value and the limit. The defaults leave room for
//! GradBench's real default sizes (lstm with `c = 4096`, `l = 6`; kmeans with
//! `k = 1000`, `n = 10⁴`; det up to `ℓ = 11`; ode with `n = 10⁵`, `s = 100`;
//! gmm up to ADBench's `d = 64`, `k = 200`, `n = 10⁴`).
//!
//! | limit | default | bounds |
//! |---|---|---|
//! | [`max_min_runs`](Limits::max_min_runs) | 10 000 | `min_runs` |
//! | [`max_min_seconds`](Limits::max_min_seconds) | 600 s | `min_seconds`, and the summed run time spent reaching `min_runs` |
//! | [`max_timings`](Limits::max_timings) | 10 000 | `evaluate` timings reported one per run; later runs are summed into one entry |
//! | [`max_elements`](Limits::max_elements) | 2²⁷ | elements of the largest tensor an input implies (`n·m` for llsq, `n·k` for kmeans (its distances), `n·k·d` for gmm, `n·s` for ode) |
//! | [`max_steps`](Limits::max_steps) | 2¹⁶ | unrolled steps traced into one graph (ode's `s`, lstm's `(c - 1)·l`), and gmm's `m` |
//! | [`max_det_ell`](Limits::max_det_ell) | 12 | det's `ℓ` (expansion by minors takes `ℓ!` products: `ℓ = 11` takes seconds, 12 minutes, 13 hours) |
//! | [`max_descent_steps`](Limits::max_descent_steps) | 1 000 000 | descent iterations and simulation steps of one particle or saddle run, all nested loops together (the evals' own inputs take about 60 000, a second or two) |
//! | [`max_simulation_steps`](Limits::max_simulation_steps) | 10 000 | time steps of one particle simulation (the eval's input lands within a few hundred) |

/// The bounds applied to each message; [`Limits::default`] is what the binary uses.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// The largest `min_runs` accepted.
    pub max_min_runs: usize,
    /// The largest `min_seconds` accepted; also the longest the runs may take
    /// together while reaching `min_runs` (beyond it the evaluation fails).
    pub max_min_seconds: f64,
    /// The most `evaluate` timings reported individually; the runs after them are
    /// reported as one entry named `evaluate (N more runs)` holding their total time.
    pub max_timings: usize,
    /// The most elements of any tensor an input's sizes imply.
    pub max_elements: usize,
    /// The most unrolled steps (ode's `s`, lstm's layer steps) and gmm's `m`.
    pub max_steps: usize,
    /// The largest det `ℓ`.
    pub max_det_ell: usize,
    /// The most descent iterations plus simulation steps in one particle or saddle run.
    pub max_descent_steps: usize,
    /// The most time steps of one particle simulation before it must have landed.
    pub max_simulation_steps: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_min_runs: 10_000,
            max_min_seconds: 600.0,
            max_timings: 10_000,
            max_elements: 1 << 27,
            max_steps: 1 << 16,
            max_det_ell: 12,
            max_descent_steps: 1_000_000,
            max_simulation_steps: 10_000,
        }
    }
}

/// `Ok(value)` if `value <= limit`, else an error naming the field, the value and the limit.
///
/// ```
/// use gradbench_tool::limits::at_most;
/// assert_eq!(at_most("s", 10, 100), Ok(10));
/// assert_eq!(at_most("s", 1000, 100).unwrap_err(), "`s` = 1000 is beyond the limit of 100");
/// ```
pub fn at_most(field: &str, value: usize, limit: usize) -> Result<usize, String> {
    if value <= limit {
        Ok(value)
    } else {
        Err(format!("`{field}` = {value} is beyond the limit of {limit}"))
    }
}

/// The product of `factors`, if it is at most `limit`; else an error naming `what`
/// (the fields involved, with their values) and the limit. Overflow counts as beyond.
///
/// ```
/// use gradbench_tool::limits::product_at_most;
/// assert_eq!(product_at_most("`n`·`m`", &[3, 4], 100), Ok(12));
/// assert!(product_at_most("`n`·`m`", &[1 << 40, 1 << 40], 100).unwrap_err().contains("limit of 100"));
/// ```
pub fn product_at_most(what: &str, factors: &[usize], limit: usize) -> Result<usize, String> {
    let product = factors.iter().try_fold(1usize, |acc, &f| acc.checked_mul(f));
    match product {
        Some(p) if p <= limit => Ok(p),
        Some(p) => Err(format!("{what} = {} = {p} elements is beyond the limit of {limit}", join(factors))),
        None => Err(format!("{what} = {} overflows, beyond the limit of {limit}", join(factors))),
    }
}

fn join(factors: &[usize]) -> String {
    factors.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("·")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GradBench's largest default inputs pass every default limit they meet.
    #[test]
    fn the_defaults_admit_gradbench_sizes() {
        let l = Limits::default();
        assert!(at_most("ell", 11, l.max_det_ell).is_ok());
        assert!(product_at_most("kmeans n·k", &[10_000, 1_000], l.max_elements).is_ok());
        assert!(product_at_most("gmm n·k·d", &[10_000, 200, 64], l.max_elements).is_ok());
        assert!(product_at_most("ode n·s", &[100_000, 100], l.max_elements).is_ok());
        assert!(product_at_most("lstm layer steps", &[4_095, 6], l.max_steps).is_ok());
        assert!(at_most("s", 100, l.max_steps).is_ok());
        // ... and the adversarial ones do not.
        assert!(at_most("ell", 13, l.max_det_ell).is_err());
        assert!(product_at_most("llsq n·m", &[1_000_000_000_000, 2], l.max_elements).is_err());
        assert!(product_at_most("wraps", &[1 << 32, 1 << 32], usize::MAX).is_err());
    }
}
