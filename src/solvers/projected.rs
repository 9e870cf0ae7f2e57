//! Projections onto convex sets and projected gradient descent, implicitly differentiable
//! through [`custom_fixed_point`](super::custom_fixed_point).

use super::implicit::{custom_fixed_point, grad_x};
use super::iterative::{vdot, SolveInfo, Solver};
use crate::control::while_loop;
use crate::{where_, Tensor, Tree};

/// Projection onto the box `[lo, hi]` (elementwise clamp).
///
/// ```
/// use cotangent::{solvers::project_box, Tensor};
/// let x = project_box(&Tensor::from_vec(vec![-1.0, 0.5, 2.0], &[3]), 0.0, 1.0);
/// assert_eq!(x.to_vec::<f64>(), vec![0.0, 0.5, 1.0]);
/// ```
pub fn project_box(x: &Tensor, lo: f64, hi: f64) -> Tensor {
    x.clamp(lo, hi)
}

/// Projection of a vector onto the scaled simplex `{x ≥ 0, Σx = z}` (sort-based, Duchi et
/// al. 2008); differentiable almost everywhere (the support is held fixed).
///
/// ```
/// use cotangent::{solvers::project_simplex, Tensor};
/// let x = project_simplex(&Tensor::from_vec(vec![0.5, 1.0, -0.2], &[3]), 1.0);
/// let want = [0.25, 0.75, 0.0];
/// assert!(x.to_vec::<f64>().iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-15));
/// ```
///
/// # Panics
/// When `x` is not 1-d.
#[track_caller]
pub fn project_simplex(x: &Tensor, z: f64) -> Tensor {
    assert!(x.rank() == 1, "project_simplex: expects a vector, got {}", x.ty());
    let n = x.shape()[0];
    let u = x.stop_gradient().sort(0, true);
    let css = u.cumsum(0);
    let j = Tensor::arange(1.0, n as f64 + 1.0, 1.0, x.dtype());
    let positive = (&u - (&css - z) / &j).gt(0.0);
    // Smallest sorted value in the support = the threshold for the unsorted vector.
    let cut = where_(&positive, &u, f64::INFINITY).min_all();
    let support = x.stop_gradient().ge(&cut).cast(x.dtype());
    let tau = ((x * &support).sum_all() - z) / support.sum_all();
    (x - tau).maximum(0.0)
}

/// Projection onto the L1 ball `‖x‖₁ ≤ r` (through the simplex projection of `|x|`).
///
/// ```
/// use cotangent::{solvers::project_l1_ball, Tensor};
/// let x = project_l1_ball(&Tensor::from_vec(vec![0.5, -1.0, 0.2], &[3]), 1.0);
/// let want = [0.25, -0.75, 0.0];
/// assert!(x.to_vec::<f64>().iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-15));
/// ```
#[track_caller]
pub fn project_l1_ball(x: &Tensor, r: f64) -> Tensor {
    let inside = x.abs().sum_all().le(r);
    let projected = x.sign() * project_simplex(&x.abs(), r);
    where_(&inside, x, &projected)
}

/// Projection onto the L2 ball `‖x‖₂ ≤ r`.
///
/// ```
/// use cotangent::{solvers::project_l2_ball, Tensor};
/// let x = project_l2_ball(&Tensor::from_vec(vec![3.0, 4.0], &[2]), 1.0);
/// assert!((x.to_vec::<f64>()[0] - 0.6).abs() < 1e-15);
/// ```
pub fn project_l2_ball(x: &Tensor, r: f64) -> Tensor {
    let norm = vdot(x, x).sqrt();
    let scale = where_(&norm.gt(r), &(Tensor::scalar_like(&norm, r) / where_(&norm.gt(0.0), &norm, 1.0)), 1.0);
    x * scale
}

/// Projected gradient descent on `f(·, θ)` over the set `proj` projects onto, from `x0`
/// with a fixed `step`, until a step moves less than `tol` or `max_iter` steps. The info's
/// residual is the last step's norm divided by `step`. Wrap it with
/// [`projected_gradient_implicit`] to differentiate.
///
/// ```
/// use cotangent::solvers::{project_box, projected_gradient};
/// use cotangent::Tensor;
/// let f = |x: &Tensor, c: &Tensor| ((x - c) * (x - c)).sum_all();
/// let c = Tensor::from_vec(vec![0.5, 3.0], &[2]);
/// let (x, info) = projected_gradient(f, |x: &Tensor| project_box(x, 0.0, 1.0), &c.zeros_like(), &c, 0.25, 1e-12, 200);
/// assert!(info.converged.item::<bool>());
/// assert!((x.to_vec::<f64>()[0] - 0.5).abs() < 1e-10 && x.to_vec::<f64>()[1] == 1.0);
/// ```
pub fn projected_gradient<P: Tree>(
    f: impl Fn(&Tensor, &P) -> Tensor,
    proj: impl Fn(&Tensor) -> Tensor,
    x0: &Tensor,
    theta: &P,
    step: f64,
    tol: f64,
    max_iter: usize,
) -> (Tensor, SolveInfo) {
    let max = max_iter as i64;
    let init = (proj(x0), Tensor::scalar_like(&x0.sum_all(), f64::INFINITY), Tensor::scalar(0i64));
    let (x, d, k) = while_loop(
        |c: &(Tensor, Tensor, Tensor)| c.2.lt(max).logical_and(&c.1.gt(tol)),
        |c: &(Tensor, Tensor, Tensor)| {
            let x = proj(&(&c.0 - grad_x(&f, &c.0, theta) * step));
            let dx = &x - &c.0;
            (x, vdot(&dx, &dx).sqrt(), &c.2 + Tensor::scalar(1i64))
        },
        &init,
    );
    let converged = d.le(tol);
    (x, SolveInfo { converged, iterations: k, residual: d / step })
}

/// [`projected_gradient`] made differentiable in `θ` by [`custom_fixed_point`] on
/// `x = proj(x − step·∇ₓf(x, θ))` (the tangent system solved by `tangent_solver`, e.g.
/// BiCGStab).
///
/// ```
/// use cotangent::solvers::{project_simplex, projected_gradient_implicit, Solver};
/// use cotangent::{jvp, Tensor};
/// // argmin over the simplex of ‖x − θ‖² is the projection of θ.
/// let f = |x: &Tensor, t: &Tensor| ((x - t) * (x - t)).sum_all();
/// let x0 = Tensor::from_vec(vec![1.0 / 3.0; 3], &[3]);
/// let solve = projected_gradient_implicit(f, |x: &Tensor| project_simplex(x, 1.0), &x0, 0.25, 1e-13, 500, Solver::bicgstab());
/// let theta = Tensor::from_vec(vec![0.5, 1.0, -0.2], &[3]);
/// let (_, dx) = jvp(|t: &Tensor| solve(t).0, &theta, &Tensor::from_vec(vec![1.0, 0.0, 0.0], &[3]));
/// // Support {0, 1}: dx = (1/2, −1/2, 0).
/// assert!(dx.to_vec::<f64>().iter().zip([0.5, -0.5, 0.0]).all(|(a, b)| (a - b).abs() < 1e-9));
/// ```
pub fn projected_gradient_implicit<P, F, Pr>(
    f: F,
    proj: Pr,
    x0: &Tensor,
    step: f64,
    tol: f64,
    max_iter: usize,
    tangent_solver: Solver,
) -> impl Fn(&P) -> (Tensor, SolveInfo)
where
    P: Tree + Clone + 'static,
    F: Fn(&Tensor, &P) -> Tensor + Clone + 'static,
    Pr: Fn(&Tensor) -> Tensor + Clone + 'static,
{
    let x0 = x0.clone();
    let (g, pr) = (f.clone(), proj.clone());
    custom_fixed_point(
        move |x: &Tensor, p: &P| pr(&(x - grad_x(&g, x, p) * step)),
        move |p: &P| projected_gradient(&f, &proj, &x0, p, step, tol, max_iter),
        tangent_solver,
    )
}
