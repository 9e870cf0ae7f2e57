//! `det`: the determinant by expansion by minors along the first row, written
//! recursively with tensor slices, and its gradient (the cofactor matrix) by `grad`.
//!
//! The recursion is vectorised over minors: a call receives a batch of `m × m`
//! matrices `[..., m, m]`, forms all `m` minors of each with slices and
//! `concatenate` (`[..., m, m-1, m-1]`), recurses once on that batch and combines
//! `Σⱼ (-1)ʲ M₀ⱼ det(minor₀ⱼ)`. The work is the same `ℓ!` products as the scalar
//! expansion, in `O(ℓ²)` tensor operations. (For large `ℓ`, the top levels expand
//! one column at a time so that the batch of minors stays within a memory bound.)

use super::{unknown_function, Output, Run};
use crate::input::{usize_field, vector};
use crate::limits::{at_most, Limits};
use cotangent::{concatenate, grad, jit, stack, Tensor};
use serde_json::Value;

/// Determinants of a batch of square matrices `[..., m, m]`, by expansion by minors.
///
/// ```
/// use cotangent::Tensor;
/// use gradbench_tool::evals::det::det;
/// let a = Tensor::from_vec(vec![2.0, 1.0, 0.0, 1.0, 3.0, 1.0, 0.0, 1.0, 4.0], &[3, 3]);
/// assert_eq!(det(&a).item::<f64>(), 18.0);
/// ```
pub fn det(a: &Tensor) -> Tensor {
    det_batched_up_to(a, MAX_BATCHED)
}

/// The most `batch · m!` products (elements of the deepest level) formed at once:
/// beyond it, a level is expanded one column at a time, so memory stays bounded
/// (about 32 MB per tensor) while the work is still the `ℓ!` products.
const MAX_BATCHED: usize = 1 << 22;

/// [`det`], batching the minors of a level only while `batch · m! <= limit`.
fn det_batched_up_to(a: &Tensor, limit: usize) -> Tensor {
    let shape = a.shape();
    let r = shape.len();
    let m = shape[r - 1];
    if m == 1 {
        return a.reshape_to(&shape[..r - 2]);
    }
    let first_row = a.slice_axis(-2, 0, 1, 1).squeeze(&[-2]); // [..., m]
    let rest = a.slice_axis(-2, 1, m as isize, 1); // [..., m-1, m]
                                                   // The minor without row 0 and column j, [..., m-1, m-1].
    let minor = |j: isize| {
        let pieces: Vec<Tensor> = [rest.slice_axis(-1, 0, j, 1), rest.slice_axis(-1, j + 1, m as isize, 1)]
            .into_iter()
            .filter(|p| p.shape()[r - 1] > 0)
            .collect();
        concatenate(&pieces, -1)
    };
    let sign = |j: usize| (-1f64).powi(j as i32);
    let batch: usize = shape[..r - 2].iter().product();
    let products = (1..=m).try_fold(batch, |acc, k| acc.checked_mul(k));
    if products.is_some_and(|p| p <= limit) {
        let minors: Vec<Tensor> = (0..m as isize).map(minor).collect();
        let sub = det_batched_up_to(&stack(&minors, -3), limit); // [..., m]
        let signs: Vec<f64> = (0..m).map(sign).collect();
        (first_row * sub * Tensor::from_vec(signs, &[m])).sum(&[-1], false)
    } else {
        (0..m)
            .map(|j| {
                let entry = first_row.slice_axis(-1, j as isize, j as isize + 1, 1);
                entry.squeeze(&[-1]) * det_batched_up_to(&minor(j as isize), limit) * sign(j)
            })
            .reduce(|acc, t| acc + t)
            .expect("m >= 2 columns")
    }
}

/// Builds `primal` or `gradient` for input `{A: float[ℓ·ℓ] (row-major), ell: int}`.
///
/// Expansion by minors takes `ℓ!` products, so `ℓ` beyond [`Limits::max_det_ell`]
/// is refused (GradBench goes up to 11; 12 takes minutes, 13 would take hours).
pub fn prepare(function: &str, input: &Value, limits: &Limits) -> Result<Run, String> {
    let a = vector(input, "A")?;
    let ell = usize_field(input, "ell")?;
    at_most("ell", ell, limits.max_det_ell)?;
    if ell == 0 || Some(a.numel()) != ell.checked_mul(ell) {
        return Err(format!("`A`: expected {ell}·{ell} numbers for ell = {ell}, got {}", a.numel()));
    }
    let a = a.reshape_to(&[ell, ell]);
    match function {
        "primal" => {
            let f = jit(det);
            Ok(Box::new(move || Ok(Output::from(f(&a)))))
        }
        "gradient" => {
            let ddet = grad(det);
            Ok(Box::new(move || Ok(Output::from(ddet(&a).flatten()))))
        }
        _ => Err(unknown_function("det", function, &["primal", "gradient"])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expanding every level column by column gives the same determinant and gradient
    /// as batching all minors.
    #[test]
    fn unbatched_levels_agree_with_batched() {
        let v: Vec<f64> = (0..25).map(|i| ((i * 7 + 3) % 11) as f64 / 3.0 - 1.5).collect();
        let a = Tensor::from_vec(v, &[5, 5]);
        let batched = det(&a).item::<f64>();
        let looped = det_batched_up_to(&a, 1).item::<f64>();
        assert!((batched - looped).abs() <= 1e-12 * batched.abs().max(1.0));
        let g1 = grad(det)(&a).to_vec::<f64>();
        let g2 = grad(|a: &Tensor| det_batched_up_to(a, 1))(&a).to_vec::<f64>();
        for (x, y) in g1.iter().zip(&g2) {
            assert!((x - y).abs() <= 1e-12 * x.abs().max(1.0), "{g1:?} vs {g2:?}");
        }
    }
}
