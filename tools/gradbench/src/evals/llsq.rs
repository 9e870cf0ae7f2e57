//! `llsq`: a linear least-squares objective, and its gradient by `grad`.
//!
//! With `tᵢ = -1 + 2i/(n-1)` and `sᵢ = sign(tᵢ)`,
//! `y(x) = ½ Σᵢ (sᵢ - Σⱼ xⱼ tᵢʲ)²`.

use super::{unknown_function, Output, Run};
use crate::input::{usize_field, vector};
use crate::limits::{product_at_most, Limits};
use cotangent::{grad, jit, DType, Tensor};
use serde_json::Value;

/// The data of the problem: the powers `tᵢʲ` (`[n, m]`) and the signs `sᵢ` (`[n]`).
pub struct Problem {
    powers: Tensor,
    signs: Tensor,
}

impl Problem {
    /// The problem with `n` sample points for `m` coefficients.
    pub fn new(n: usize, m: usize) -> Problem {
        let t: Vec<f64> = (0..n).map(|i| -1.0 + i as f64 * 2.0 / (n as f64 - 1.0)).collect();
        let t = Tensor::from_vec(t, &[n]);
        let j = Tensor::arange(0.0, m as f64, 1.0, DType::F64);
        Problem { powers: t.reshape_to(&[n, 1]).pow(j.reshape_to(&[1, m])), signs: t.sign() }
    }

    /// `½ |s - T x|²`.
    pub fn objective(&self, x: &Tensor) -> Tensor {
        (&self.signs - self.powers.matmul(x)).square().sum_all() * 0.5
    }
}

/// Builds `primal` or `gradient` for input `{x: float[m], n: int}`.
///
/// `n` is not the length of any data, so the powers `[n, m]` are checked against
/// [`Limits::max_elements`] before they are allocated.
pub fn prepare(function: &str, input: &Value, limits: &Limits) -> Result<Run, String> {
    let x = vector(input, "x")?;
    let n = usize_field(input, "n")?;
    if n < 2 {
        return Err(format!("`n`: need at least 2 sample points, got {n}"));
    }
    product_at_most("`n`·len(`x`)", &[n, x.numel()], limits.max_elements)?;
    let p = Problem::new(n, x.numel());
    match function {
        "primal" => {
            let f = jit(move |x: &Tensor| p.objective(x));
            Ok(Box::new(move || Ok(Output::from(f(&x)))))
        }
        "gradient" => {
            let df = grad(move |x: &Tensor| p.objective(x));
            Ok(Box::new(move || Ok(Output::from(df(&x)))))
        }
        _ => Err(unknown_function("llsq", function, &["primal", "gradient"])),
    }
}
