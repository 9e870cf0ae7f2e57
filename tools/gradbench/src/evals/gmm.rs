//! `gmm`: the log posterior of a Gaussian mixture with a Wishart prior, and its
//! gradient with respect to every parameter by `grad` over a parameter tree.
//!
//! Vectorised over points and components: the triangular factors `Q_k` are
//! `[k, d, d]` and `Q_k (x_i - μ_k)`, `[n, k, d]`, is `Q_k x_i - Q_k μ_k`: one
//! matrix product of the points with the stacked factors, less a small batched one. For small
//! `d` the objective skips that `[n, k, d]` tensor: `|Q_k (x_i - μ_k)|²` is a quadratic form
//! in `x_i`, two matrix products straight to `[n, k]` (see `Gmm::squared_norms`).

use super::{unknown_function, Output, Run};
use crate::input::{expect_shape, f64_field, matrix, usize_field, vector};
use crate::limits::{at_most, product_at_most, Limits};
use cotangent::{concatenate, einsum, grad, jit, DType, Tensor};
use serde_json::Value;
use std::f64::consts::PI;

/// The largest `d` for which [`Gmm::objective`] may use the quadratic form (see
/// [`Gmm::squared_norms`]).
const QUADRATIC_MAX_D: usize = 10;

/// The parameters: `(alpha [k], mu [k, d], q [k, d], l [k, d(d-1)/2])`.
pub type Params = (Tensor, Tensor, Tensor, Tensor);

/// The fixed settings of one problem: the prior's and what depends only on the shapes
/// (the points are an argument of [`Gmm::objective`], as the JAX tool passes them).
pub struct Gmm {
    m: f64,
    gamma: f64,
    /// `[d, d]` indices into `[0, l_k...]`: 1 + the position of `Q[j][i]` in `l_k`
    /// below the diagonal, 0 (a zero) elsewhere.
    lower_index: Tensor,
    constant: f64,
    /// The pairs `a ≤ b` of coordinates when [`Gmm::objective`] uses the quadratic form
    /// (see [`Gmm::squared_norms`]): `(a, b, a·d + b, weight)`, the weight 2 off the diagonal.
    pairs: Option<(Tensor, Tensor, Tensor, Tensor)>,
}

/// `ln Γ(a)` for `a` a positive multiple of ½ (all that the Wishart constant needs),
/// by `Γ(½) = √π`, `Γ(1) = 1` and `Γ(a + 1) = a Γ(a)`.
fn ln_gamma_half_integer(a: f64) -> f64 {
    let twice = (2.0 * a).round() as i64;
    assert!(
        twice >= 1 && (2.0 * a - twice as f64).abs() < 1e-9,
        "ln_gamma_half_integer: {a} is not a positive multiple of 1/2"
    );
    let (mut s, mut b) = if twice % 2 == 1 { (0.5 * PI.ln(), 0.5) } else { (0.0, 1.0) };
    while b < a - 0.25 {
        s += b.ln();
        b += 1.0;
    }
    s
}

/// `ln Γ_d(a)`, the log of the multivariate gamma function.
fn ln_multigamma(a: f64, d: usize) -> f64 {
    let d_f = d as f64;
    d_f * (d_f - 1.0) / 4.0 * PI.ln() + (1..=d).map(|j| ln_gamma_half_integer(a + 0.5 * (1.0 - j as f64))).sum::<f64>()
}

impl Gmm {
    /// A problem on points `x` (`[n, d]`) with `k` components and Wishart settings `m`, `gamma`.
    pub fn new(x: &Tensor, k: usize, m: usize, gamma: f64) -> Gmm {
        let (n, d) = (x.shape()[0], x.shape()[1]);
        let mut idx = vec![0i64; d * d];
        let mut pos = 0;
        for i in 0..d {
            for j in i + 1..d {
                pos += 1;
                idx[j * d + i] = pos;
            }
        }
        let w = (d + m + 1) as f64;
        let per_component = w * d as f64 * (gamma.ln() - 0.5 * 2f64.ln()) - ln_multigamma(0.5 * w, d);
        let constant = -(n as f64) * d as f64 * 0.5 * (2.0 * PI).ln() + k as f64 * per_component;
        // The quadratic form reads `n·(d(d+1)/2 + d)` values where the factored form forms
        // `n·k·d`: it pays for small `d` (where the factored form's steps are short rows).
        let pairs = (d <= QUADRATIC_MAX_D && d * (d + 1) / 2 + d < k * d).then(|| {
            let (mut a, mut b, mut ab, mut w) = (vec![], vec![], vec![], vec![]);
            for i in 0..d {
                for j in i..d {
                    a.push(i as i64);
                    b.push(j as i64);
                    ab.push((i * d + j) as i64);
                    w.push(if i == j { 1.0 } else { 2.0 });
                }
            }
            let p = a.len();
            (
                Tensor::from_vec(a, &[p]),
                Tensor::from_vec(b, &[p]),
                Tensor::from_vec(ab, &[p]),
                Tensor::from_vec(w, &[p]),
            )
        });
        Gmm { m: m as f64, gamma, lower_index: Tensor::from_vec(idx, &[d, d]), constant, pairs }
    }

    /// `|Q_k (x_i - μ_k)|²` for every point and component, `[n, k]`.
    ///
    /// For small `d` as the quadratic form `(x - μ)ᵀ A (x - μ)` with `A_k = Q_kᵀ Q_k`:
    /// `Σ_{a≤b} w_ab x_a x_b A_ab − 2 x·(A μ) + μ·A μ`, two matrix products straight to
    /// `[n, k]` (depth `d(d+1)/2` and `d`), instead of the `[n, k, d]` tensor `Q_k (x_i - μ_k)`
    /// that the factored form squares and sums over its short last axis. Otherwise factored:
    /// `Q_k x_i - Q_k μ_k`, one product of all points with all factors stacked.
    fn squared_norms(&self, x: &Tensor, big_q: &Tensor, mu: &Tensor) -> Tensor {
        let (k, d) = (big_q.shape()[0], big_q.shape()[1]);
        match &self.pairs {
            Some((pa, pb, pab, w)) => {
                let a = einsum("kia,kib->kab", &[big_q, big_q]); // [k, d, d]
                let a_pairs = a.reshape(&[k as isize, (d * d) as isize]).take(pab, 1) * w; // [k, P]
                let x_pairs = x.take(pa, 1) * x.take(pb, 1); // [n, P]
                let a_mu = einsum("kab,kb->ka", &[&a, mu]); // [k, d]
                let mu_a_mu = (&a_mu * mu).sum(&[1], false); // [k]
                einsum("np,kp->nk", &[&x_pairs, &a_pairs]) - einsum("na,ka->nk", &[x, &a_mu]) * 2.0 + mu_a_mu
            }
            None => {
                let qx = einsum("nj,kij->nki", &[x, big_q]) - einsum("kij,kj->ki", &[big_q, mu]).expand_dims(0); // [n, k, d]
                qx.square().sum(&[2], false)
            }
        }
    }

    /// The log posterior at points `x` (`[n, d]`, those given to [`Gmm::new`]).
    pub fn objective(&self, x: &Tensor, (alpha, mu, q, l): &Params) -> Tensor {
        let (k, d) = (q.shape()[0], q.shape()[1]);
        let n = x.shape()[0] as f64;
        let qdiag = q.exp(); // [k, d]
        let sum_q = q.sum(&[1], false); // [k]
                                        // Q_k: exp(q_k) on the diagonal, l_k below it (column by column).
        let padded = concatenate(&[Tensor::zeros(&[k, 1], DType::F64), l.clone()], 1);
        let lower = padded.take(&self.lower_index, 1); // [k, d, d]
        let diag = qdiag.expand_dims(2) * Tensor::eye(d, DType::F64); // [k, d, d]
        let big_q = diag + lower;
        let beta = alpha + sum_q.clone() - self.squared_norms(x, &big_q, mu) * 0.5; // [n, k]
        let data = beta.logsumexp(&[1], false).sum_all() - alpha.logsumexp(&[0], false) * n;
        let frobenius = qdiag.square().sum_all() + l.square().sum_all();
        let prior = sum_q.sum_all() * self.m - frobenius * (0.5 * self.gamma * self.gamma);
        data + prior + self.constant
    }
}

/// Builds `objective` or `jacobian` for input `{d, k, n, x, m, gamma, alpha, mu, q, l}`.
///
/// Refuses `n·k·d` (the centred points) or `k·d·d` (the factors) beyond
/// [`Limits::max_elements`], and `m` (a loop in the Wishart constant) beyond
/// [`Limits::max_steps`].
pub fn prepare(function: &str, input: &Value, limits: &Limits) -> Result<Run, String> {
    let (d, k, n) = (usize_field(input, "d")?, usize_field(input, "k")?, usize_field(input, "n")?);
    let x = matrix(input, "x")?;
    let params: Params = (vector(input, "alpha")?, matrix(input, "mu")?, matrix(input, "q")?, matrix(input, "l")?);
    let m = usize_field(input, "m")?;
    let gamma = f64_field(input, "gamma")?;
    if n == 0 || d == 0 || k == 0 {
        return Err(format!("need d, k, n >= 1, got d={d} k={k} n={n}"));
    }
    at_most("m", m, limits.max_steps)?;
    expect_shape(&x, "x", &[n, d])?;
    expect_shape(&params.0, "alpha", &[k])?;
    expect_shape(&params.1, "mu", &[k, d])?;
    expect_shape(&params.2, "q", &[k, d])?;
    // A matrix of k empty rows reads as [k, 0], which is right for d = 1.
    expect_shape(&params.3, "l", &[k, d * (d - 1) / 2])?;
    // The shapes agree with the data, so these products are bounded by the input's
    // length squared: check them before the objective forms them.
    product_at_most("`n`·`k`·`d`", &[n, k, d], limits.max_elements)?;
    product_at_most("`k`·`d`·`d`", &[k, d, d], limits.max_elements)?;
    let gmm = Gmm::new(&x, k, m, gamma);
    // The points are an argument, not a constant of the compiled program.
    match function {
        "objective" => {
            let f = jit(move |(x, p): &(Tensor, Params)| gmm.objective(x, p));
            let args = (x, params);
            Ok(Box::new(move || Ok(Output::from(f(&args)))))
        }
        "jacobian" => {
            let df = jit(move |(x, p): &(Tensor, Params)| grad(|p: &Params| gmm.objective(x, p))(p));
            let args = (x, params);
            Ok(Box::new(move || {
                let (alpha, mu, q, l) = df(&args);
                Ok(Output::Object(vec![("alpha", alpha.into()), ("mu", mu.into()), ("q", q.into()), ("l", l.into())]))
            }))
        }
        _ => Err(unknown_function("gmm", function, &["objective", "jacobian"])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1).
    fn values(n: usize, seed: usize) -> Vec<f64> {
        (0..n).map(|i| ((i * 7919 + seed * 104729) % 2003) as f64 / 1001.5 - 1.0).collect()
    }

    /// The quadratic form (small `d`) gives the factored form's objective and gradient.
    #[test]
    fn quadratic_form_matches_the_factored_form() {
        for (d, k, n) in [(2, 7, 50), (3, 4, 20), (10, 25, 30)] {
            let x = Tensor::from_vec(values(n * d, 1), &[n, d]);
            let params: Params = (
                Tensor::from_vec(values(k, 2), &[k]),
                Tensor::from_vec(values(k * d, 3), &[k, d]),
                Tensor::from_vec(values(k * d, 4), &[k, d]),
                Tensor::from_vec(values(k * d * (d - 1) / 2, 5), &[k, d * (d - 1) / 2]),
            );
            let quadratic = Gmm::new(&x, k, 0, 1.0);
            assert!(quadratic.pairs.is_some(), "d={d} k={k} should use the quadratic form");
            let factored = Gmm { pairs: None, ..Gmm::new(&x, k, 0, 1.0) };
            let (a, b) =
                (quadratic.objective(&x, &params).item::<f64>(), factored.objective(&x, &params).item::<f64>());
            assert!((a - b).abs() <= 1e-10 * b.abs(), "d={d} k={k}: objective {a} vs {b}");
            let ga = grad(|p: &Params| quadratic.objective(&x, p))(&params);
            let gb = grad(|p: &Params| factored.objective(&x, p))(&params);
            for (name, u, v) in
                [("alpha", &ga.0, &gb.0), ("mu", &ga.1, &gb.1), ("q", &ga.2, &gb.2), ("l", &ga.3, &gb.3)]
            {
                for (u, v) in u.to_vec::<f64>().iter().zip(v.to_vec::<f64>()) {
                    assert!((u - v).abs() <= 1e-9 * v.abs().max(1.0), "d={d} k={k} {name}: {u} vs {v}");
                }
            }
        }
    }
}
