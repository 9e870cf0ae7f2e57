//! `det`: the determinant by expansion by minors along the first row, written
//! recursively with tensor slices, and its gradient (the cofactor matrix) by `grad`.
//!
//! The recursion is vectorised over minors: a call receives a batch of `m × m`
//! matrices `[..., m, m]`, forms all `m` minors of each with slices and
//! `concatenate` (`[..., m, m-1, m-1]`), recurses once on that batch and combines
//! `Σⱼ (-1)ʲ M₀ⱼ det(minor₀ⱼ)`. The work is the same `ℓ!` products as the scalar
//! expansion, in `O(ℓ²)` tensor operations.

use super::{unknown_function, Output, Run};
use crate::input::{usize_field, vector};
use cotangent::{concatenate, grad, stack, Tensor};
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
    let shape = a.shape();
    let r = shape.len();
    let m = shape[r - 1];
    if m == 1 {
        return a.reshape_to(&shape[..r - 2]);
    }
    let first_row = a.slice_axis(-2, 0, 1, 1).squeeze(&[-2]); // [..., m]
    let rest = a.slice_axis(-2, 1, m as isize, 1); // [..., m-1, m]
    let minors: Vec<Tensor> = (0..m as isize)
        .map(|j| {
            let pieces: Vec<Tensor> = [
                rest.slice_axis(-1, 0, j, 1),
                rest.slice_axis(-1, j + 1, m as isize, 1),
            ]
            .into_iter()
            .filter(|p| p.shape()[r - 1] > 0)
            .collect();
            concatenate(&pieces, -1)
        })
        .collect();
    let sub = det(&stack(&minors, -3)); // [..., m]
    let signs: Vec<f64> = (0..m)
        .map(|j| if j % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    (first_row * sub * Tensor::from_vec(signs, &[m])).sum(&[-1], false)
}

/// Builds `primal` or `gradient` for input `{A: float[ℓ·ℓ] (row-major), ell: int}`.
pub fn prepare(function: &str, input: &Value) -> Result<Run, String> {
    let a = vector(input, "A")?;
    let ell = usize_field(input, "ell")?;
    if ell == 0 || a.numel() != ell * ell {
        return Err(format!(
            "`A`: expected {ell}·{ell} numbers for ell = {ell}, got {}",
            a.numel()
        ));
    }
    let a = a.reshape_to(&[ell, ell]);
    match function {
        "primal" => Ok(Box::new(move || Output::from(det(&a)))),
        "gradient" => {
            let ddet = grad(det);
            Ok(Box::new(move || Output::from(ddet(&a).flatten())))
        }
        _ => Err(unknown_function("det", function, &["primal", "gradient"])),
    }
}
