//! Newton–CG: truncated Newton with Hessian-vector products (forward over reverse mode),
//! implicitly differentiable through [`custom_root`](super::custom_root).

use super::implicit::argmin_implicit;
use super::iterative::{vdot, SolveInfo, Solver};
use super::line_search::backtracking;
use crate::control::while_loop;
use crate::{jvp, vjp, where_, Tensor, Tree};

#[derive(Clone, Tree)]
struct NewtonState {
    x: Tensor,
    f: Tensor,
    g: Tensor,
    k: Tensor,
    ok: Tensor,
}

#[derive(Clone, Tree)]
struct InnerCg {
    d: Tensor,
    r: Tensor,
    p: Tensor,
    rs: Tensor,
    j: Tensor,
    stop: Tensor,
}

/// Minimises `f(·, θ)` from `x0` by Newton–CG (truncated Newton): each step solves the
/// Newton system `H d = −∇f` approximately by conjugate gradient on Hessian-vector products
/// (`jvp` of the gradient, the Hessian never formed), to the relative accuracy
/// `min(0.5, √‖∇f‖)` (superlinear convergence near the minimum), stopping early at a
/// direction of non-positive curvature (then the CG iterate so far, or the steepest descent
/// direction on the first inner step); then an Armijo backtracking line search from the full
/// step. Runs until the gradient norm is below `tol` or `max_iter` Newton steps; the info's
/// residual is the final gradient norm, and `converged` is false when the line search finds
/// no decrease. Not differentiable by itself: [`newton_cg_implicit`] is.
///
/// ```
/// use cotangent::solvers::newton_cg;
/// use cotangent::Tensor;
/// // A strictly convex non-quadratic function: minimum where x_i + x_i³ = c_i.
/// let f = |x: &Tensor, c: &Tensor| (x.square() * 0.5 + x.powf(4.0) * 0.25 - x * c).sum_all();
/// let c = Tensor::from_vec(vec![2.0, 10.0], &[2]);
/// let (x, info) = newton_cg(f, &c.zeros_like(), &c, 1e-12, 50);
/// assert!(info.converged.item::<bool>());
/// assert!(info.iterations.item::<i64>() <= 12);
/// let x = x.to_vec::<f64>();
/// assert!((x[0] - 1.0).abs() < 1e-12 && (x[1] - 2.0).abs() < 1e-12);
/// ```
pub fn newton_cg<P: Tree>(
    f: impl Fn(&Tensor, &P) -> Tensor,
    x0: &Tensor,
    theta: &P,
    tol: f64,
    max_iter: usize,
) -> (Tensor, SolveInfo) {
    let shape: Vec<isize> = x0.shape().iter().map(|&d| d as isize).collect();
    let n = x0.numel();
    let value = |x: &Tensor| f(&x.reshape(&shape), theta);
    let value_grad = |x: &Tensor| {
        let (y, pb) = vjp(value, x);
        (y, pb.call(1.0))
    };
    let gradient = |x: &Tensor| value_grad(x).1;
    let x = x0.reshape(&[n as isize]);
    let (f0, g0) = value_grad(&x);
    let init = NewtonState { x, f: f0, g: g0, k: Tensor::scalar(0i64), ok: Tensor::scalar(true) };
    let max = max_iter as i64;
    let max_inner = (2 * n).max(10) as i64;
    let out = while_loop(
        |c: &NewtonState| c.k.lt(max).logical_and(&vdot(&c.g, &c.g).gt(tol * tol)).logical_and(&c.ok),
        |c: &NewtonState| {
            let hvp = |v: &Tensor| jvp(gradient, &c.x, v).1;
            let gg = vdot(&c.g, &c.g);
            let gnorm = gg.sqrt();
            // Forcing term: ‖r‖ ≤ min(0.5, √‖g‖)·‖g‖.
            let eta = gnorm.sqrt().minimum(0.5) * &gnorm;
            let r0 = -&c.g;
            let inner = InnerCg {
                d: c.g.zeros_like(),
                r: r0.clone(),
                p: r0,
                rs: gg.clone(),
                j: Tensor::scalar(0i64),
                stop: Tensor::scalar(false),
            };
            let thresh = &eta * &eta;
            let cg = while_loop(
                |s: &InnerCg| s.j.lt(max_inner).logical_and(&s.rs.gt(&thresh)).logical_and(&s.stop.logical_not()),
                |s: &InnerCg| {
                    let hp = hvp(&s.p);
                    let curv = vdot(&s.p, &hp);
                    let positive = curv.gt(0.0);
                    let alpha = &s.rs / where_(&positive, &curv, 1.0);
                    let d = &s.d + &alpha * &s.p;
                    let r = &s.r - &alpha * &hp;
                    let rs = vdot(&r, &r);
                    let p = &r + (&rs / &s.rs) * &s.p;
                    let keep = |new: &Tensor, old: &Tensor| where_(&positive, new, old);
                    InnerCg {
                        d: keep(&d, &s.d),
                        r: keep(&r, &s.r),
                        p: keep(&p, &s.p),
                        rs: keep(&rs, &s.rs),
                        j: &s.j + Tensor::scalar(1i64),
                        stop: positive.logical_not(),
                    }
                },
                &inner,
            );
            // No CG step (negative curvature at once) or no descent: steepest descent.
            let slope = vdot(&c.g, &cg.d);
            let usable = slope.lt(0.0);
            let d = where_(&usable, &cg.d, &-&c.g);
            let slope = vdot(&c.g, &d);
            let (t, ft, ok) = backtracking(&value, &c.x, &c.f, &slope, &d, 1.0, 60);
            let x = &c.x + &t * &d;
            let g = gradient(&x);
            NewtonState {
                x: where_(&ok, &x, &c.x),
                f: where_(&ok, &ft, &c.f),
                g: where_(&ok, &g, &c.g),
                k: &c.k + Tensor::scalar(1i64),
                ok,
            }
        },
        &init,
    );
    (out.x.reshape(&shape), SolveInfo::of_gradient(&vdot(&out.g, &out.g), out.k, tol))
}

/// Minimises `f(·, θ)` by [`newton_cg`] from `x0`, differentiable in `θ` by
/// [`custom_root`] on the optimality condition `∇ₓf(x, θ) = 0` (the Hessian system solved
/// by `tangent_solver`, CG when `f` is convex), to second order, as [`minimize_implicit`](super::minimize_implicit).
///
/// ```
/// use cotangent::solvers::{newton_cg_implicit, Solver};
/// use cotangent::{grad, Tensor};
/// let f = |x: &Tensor, c: &Tensor| ((x - c) * (x - c)).sum_all() + (x * x).sum_all();
/// // x* = c / 2
/// let solve = newton_cg_implicit(f, &Tensor::zeros(&[1], cotangent::DType::F64), 1e-12, 50, Solver::cg());
/// let (x, info) = solve(&Tensor::from_vec(vec![3.0], &[1]));
/// assert!(info.converged.item::<bool>() && info.iterations.item::<i64>() == 1);
/// assert!((x.to_vec::<f64>()[0] - 1.5).abs() < 1e-12);
/// let g = grad(|c: &Tensor| solve(c).0.sum_all())(&Tensor::from_vec(vec![3.0], &[1]));
/// assert!((g.to_vec::<f64>()[0] - 0.5).abs() < 1e-9);
/// ```
pub fn newton_cg_implicit<P, F>(
    f: F,
    x0: &Tensor,
    tol: f64,
    max_iter: usize,
    tangent_solver: Solver,
) -> impl Fn(&P) -> (Tensor, SolveInfo)
where
    P: Tree + Clone + 'static,
    F: Fn(&Tensor, &P) -> Tensor + Clone + 'static,
{
    let x0 = x0.clone();
    let g = f.clone();
    argmin_implicit(f, move |p: &P| newton_cg(&g, &x0, p, tol, max_iter), tangent_solver)
}
