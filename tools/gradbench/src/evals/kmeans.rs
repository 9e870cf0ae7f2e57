//! `kmeans`: the k-means cost, and the Newton direction `gradient / diag(Hessian)`
//! with both from nested AD.
//!
//! `cost(c) = Σᵢ minⱼ |pᵢ - cⱼ|²`, computed as GradBench's reference tool does:
//! each point's nearest centroid `j(i)` (the first on ties), then
//! `Σᵢ Σₐ (pᵢₐ - c_{j(i)a})²` from the differences themselves. Only the choice of
//! `j(i)` uses the expanded form `|p|² - 2 p·c + |c|²`: one matrix product
//! `[n, d] × [d, k]` instead of an `[n, k, d]` tensor of differences, which the compiled
//! plan fuses with its `argmin` (the `[n, k]` distances are never stored: a plan step of
//! register tiles of products, each row's running minimum updated tile by tile). That choice
//! is piecewise constant in the centroids (it carries no derivative: the
//! centroids it reads are `stop_gradient`-ed), so away from ties this *is*
//! `Σᵢ minⱼ |pᵢ - cⱼ|²` and its derivatives, and at ties it follows the reference
//! (the first nearest centroid takes the point), where the min's Clarke
//! subgradient would split it.
//!
//! Each point contributes terms each in a *single* coordinate of the centroids,
//! so the Hessian (with respect to the flattened centroids) is diagonal:
//! `H = diag(2 · count_j)` per coordinate. Hence `H · 1` is exactly its diagonal, and
//! one forward-over-reverse Hessian-vector product — `jvp(grad(cost), c, ones)` —
//! gives the gradient (its primal output) and the Hessian diagonal (its tangent)
//! together. Both are gathers and scatter-adds of `[n, d]` values.

use super::{unknown_function, Output, Run};
use crate::input::matrix;
use crate::limits::{product_at_most, Limits};
use cotangent::{grad, jit, jvp, Tensor};
use serde_json::Value;

/// Index (i64, `[n]`) of each point's nearest centroid, the first on ties, for
/// points `[n, d]` and centroids `[k, d]`. Carries no derivative.
///
/// `argminⱼ (pᵢ·(-2cⱼ) + |cⱼ|²)`: `|pᵢ|²` is the same for every `j`, so it is left out
/// (the scaling by −2 is exact, so it goes on the centroids). The compiled plan fuses the
/// product, the added row and the `argmin` into one step that never stores the `[n, k]`
/// values (and reads the points in place).
pub fn nearest(points: &Tensor, centroids: &Tensor) -> Tensor {
    let c = centroids.stop_gradient();
    let c_norm = c.square().sum(&[1], false); // [k]
    (points.matmul(&(c * -2.0).t()) + c_norm).argmin(1, false) // distances [n, k] less |pᵢ|²
}

/// `Σᵢ minⱼ |pᵢ - cⱼ|²` for points `[n, d]` and centroids `[k, d]` (see the module docs).
pub fn cost(points: &Tensor, centroids: &Tensor) -> Tensor {
    let nearest = centroids.take(&nearest(points, centroids), 0); // [n, d]
    (points - nearest).square().sum_all()
}

/// Builds `cost` or `dir` for input `{points: float[n][d], centroids: float[k][d]}`.
///
/// The distances `[n, k]` are checked against [`Limits::max_elements`].
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
    let (n, k) = (points.shape()[0], centroids.shape()[0]);
    product_at_most("`points` rows·`centroids` rows", &[n, k], limits.max_elements)?;
    // The points are an argument, not a constant of the compiled program.
    let args = (points, centroids);
    match function {
        "cost" => {
            let f = jit(|(p, c): &(Tensor, Tensor)| cost(p, c));
            Ok(Box::new(move || Ok(Output::from(f(&args)))))
        }
        "dir" => {
            let dir = jit(|(p, c): &(Tensor, Tensor)| {
                // The Hessian is diagonal (see the module docs), so H·1 = diag(H).
                let (g, h_diag) = jvp(grad(|c: &Tensor| cost(p, c)), c, &c.ones_like());
                g / h_diag
            });
            Ok(Box::new(move || Ok(Output::from(dir(&args)))))
        }
        _ => Err(unknown_function("kmeans", function, &["cost", "dir"])),
    }
}
