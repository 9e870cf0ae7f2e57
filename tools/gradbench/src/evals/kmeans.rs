//! `kmeans`: the k-means cost, and the Newton direction `gradient / diag(Hessian)`
//! with both from nested AD.
//!
//! `cost(c) = Σᵢ minⱼ |pᵢ - cⱼ|²`. Away from ties each point contributes
//! `Σₐ (pᵢₐ - c_{j(i)a})²`, a sum of terms each in a *single* coordinate of the
//! centroids, so the Hessian (with respect to the flattened centroids) is diagonal:
//! `H = diag(2 · count_j)` per coordinate. Hence `H · 1` is exactly its diagonal, and
//! one forward-over-reverse Hessian-vector product — `jvp(grad(cost), c, ones)` —
//! gives the gradient (its primal output) and the Hessian diagonal (its tangent) together.

use super::{unknown_function, Output, Run};
use crate::input::matrix;
use crate::limits::{product_at_most, Limits};
use cotangent::{grad, jit, jvp, Tensor};
use serde_json::Value;

/// `Σᵢ minⱼ |pᵢ - cⱼ|²` for points `[n, d]` and centroids `[k, d]`.
pub fn cost(points: &Tensor, centroids: &Tensor) -> Tensor {
    let diff = points.expand_dims(1) - centroids.expand_dims(0); // [n, k, d]
    diff.square().sum(&[2], false).min(&[1], false).sum_all()
}

/// Builds `cost` or `dir` for input `{points: float[n][d], centroids: float[k][d]}`.
///
/// The differences `[n, k, d]` are checked against [`Limits::max_elements`].
pub fn prepare(function: &str, input: &Value, limits: &Limits) -> Result<Run, String> {
    let points = matrix(input, "points")?;
    let centroids = matrix(input, "centroids")?;
    if points.shape()[1] != centroids.shape()[1] || centroids.shape()[0] == 0 {
        return Err(format!(
            "points {:?} and centroids {:?} must have the same width and at least one centroid",
            points.shape(),
            centroids.shape()
        ));
    }
    let (n, k, d) = (points.shape()[0], centroids.shape()[0], centroids.shape()[1]);
    product_at_most("`points` rows·`centroids` rows·width", &[n, k, d], limits.max_elements)?;
    match function {
        "cost" => {
            let f = jit(move |c: &Tensor| cost(&points, c));
            Ok(Box::new(move || Ok(Output::from(f(&centroids)))))
        }
        "dir" => {
            let ones = centroids.ones_like();
            let dcost = grad(move |c: &Tensor| cost(&points, c));
            let dir = jit(move |c: &Tensor| {
                // The Hessian is diagonal (see the module docs), so H·1 = diag(H).
                let (g, h_diag) = jvp(&dcost, c, &ones);
                g / h_diag
            });
            Ok(Box::new(move || Ok(Output::from(dir(&centroids)))))
        }
        _ => Err(unknown_function("kmeans", function, &["cost", "dir"])),
    }
}
