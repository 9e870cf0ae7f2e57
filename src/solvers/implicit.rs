//! Implicit differentiation ([`custom_root`], [`custom_fixed_point`]) and solvers written
//! with `while_loop`/`fori_loop` whose solutions it makes differentiable.

use super::iterative::{inverse_on, nan_unless_converged, no_tangent, vdot, SolveInfo, Solver, DERIVATIVE_ORDERS};
use super::line_search::strong_wolfe;
use crate::control::{custom_jvp, fori_loop, while_loop};
use crate::{jvp, vjp, where_, Tensor, Tree};

/// Makes `solver`'s root of `optimality(x, θ) = 0` differentiable in `θ` by the implicit
/// function theorem: `dx = −(∂F/∂x)⁻¹ (∂F/∂θ) dθ` (forward mode) and
/// `θ̄ = −(∂F/∂θ)ᵀ (∂F/∂x)⁻ᵀ x̄` (reverse mode), the linear systems solved matrix-free by
/// `tangent_solver` (declare it symmetric when `∂F/∂x` is, as for a gradient).
///
/// `solver(θ)` returns `(x*, info)`; its iterations are never differentiated. The result
/// composes with `grad`, `jvp`, `vmap` and `jit`, and to second order (`hessian`, `grad` of
/// `grad`, `jvp` of `grad`): the rule's root and its tangent solve are again implicitly
/// differentiable (see [`linear_solve`](super::linear_solve) and
/// [`DERIVATIVE_ORDERS`](super::DERIVATIVE_ORDERS)). When the solver reports no convergence,
/// or the tangent system's solve does not converge, the derivatives are NaN (a wrong root
/// never gives a plausible-looking gradient). Values `optimality` and `solver` close
/// over are constants: pass what you differentiate in `θ`.
///
/// ```
/// use cotangent::solvers::{custom_root, newton_scalar, Solver};
/// use cotangent::{grad, Tensor};
/// // x³ = θ: x = θ^(1/3), dx/dθ = 1 / (3 x²).
/// let f = |x: &Tensor, t: &Tensor| x.powf(3.0) - t;
/// let cube_root = custom_root(f, move |t: &Tensor| newton_scalar(f, &Tensor::scalar(1.0), t, 1e-12, 50), Solver::bicgstab());
/// let g = grad(|t: &Tensor| cube_root(t).0)(&Tensor::scalar(8.0));
/// assert!((g.item::<f64>() - 1.0 / 12.0).abs() < 1e-9);
/// // d²x/dθ² = −2 / (9 θ^(5/3)) = −1/144 at θ = 8.
/// let h = grad(grad(|t: &Tensor| cube_root(t).0))(&Tensor::scalar(8.0));
/// assert!((h.item::<f64>() + 1.0 / 144.0).abs() < 1e-9);
/// ```
pub fn custom_root<P, F, S>(optimality: F, solver: S, tangent_solver: Solver) -> impl Fn(&P) -> (Tensor, SolveInfo)
where
    P: Tree + Clone + 'static,
    F: Fn(&Tensor, &P) -> Tensor + Clone + 'static,
    S: Fn(&P) -> (Tensor, SolveInfo) + Clone + 'static,
{
    move |theta: &P| root_to_order(optimality.clone(), solver.clone(), tangent_solver, theta, DERIVATIVE_ORDERS)
}

/// [`custom_root`] with derivatives through the implicit rule to `orders` orders instead of
/// [`DERIVATIVE_ORDERS`] (beyond: NaN): `orders = 1` traces (and compiles under `jit`)
/// about half as much per call when only gradients are needed.
///
/// ```
/// use cotangent::solvers::{custom_root_to_order, newton_scalar, Solver};
/// use cotangent::{grad, Tensor};
/// let f = |x: &Tensor, t: &Tensor| x.powf(3.0) - t;
/// let cube_root = custom_root_to_order(f, move |t: &Tensor| newton_scalar(f, &Tensor::scalar(1.0), t, 1e-12, 50), Solver::cg(), 1);
/// let g = grad(|t: &Tensor| cube_root(t).0)(&Tensor::scalar(8.0));
/// assert!((g.item::<f64>() - 1.0 / 12.0).abs() < 1e-9);
/// ```
pub fn custom_root_to_order<P, F, S>(
    optimality: F,
    solver: S,
    tangent_solver: Solver,
    orders: usize,
) -> impl Fn(&P) -> (Tensor, SolveInfo)
where
    P: Tree + Clone + 'static,
    F: Fn(&Tensor, &P) -> Tensor + Clone + 'static,
    S: Fn(&P) -> (Tensor, SolveInfo) + Clone + 'static,
{
    move |theta: &P| root_to_order(optimality.clone(), solver.clone(), tangent_solver, theta, orders)
}

/// [`custom_root`] differentiable to `order` orders: the rule's primal root comes from a
/// root of one order fewer, and the tangent system `(∂F/∂x) dx = −(∂F/∂θ) dθ` is solved by
/// [`inverse_on`] with the operator's parameters `(x, θ)` explicit, so the next order
/// differentiates the solve in both. At order 0 the derivatives are NaN.
fn root_to_order<P, F, S>(
    optimality: F,
    solver: S,
    tangent_solver: Solver,
    theta: &P,
    order: usize,
) -> (Tensor, SolveInfo)
where
    P: Tree + Clone + 'static,
    F: Fn(&Tensor, &P) -> Tensor + Clone + 'static,
    S: Fn(&P) -> (Tensor, SolveInfo) + Clone + 'static,
{
    let s1 = solver.clone();
    let f = move |t: &P| s1(t);
    if order == 0 {
        let f2 = f.clone();
        let f0 = optimality.clone();
        let rule = move |t: &P, dt: &P| {
            let (x, info) = f2(t);
            // NaN times the tangents (reverse mode drops a constant NaN).
            let (fx, xc) = (f0.clone(), x.clone());
            let dx = jvp(move |q: &P| fx(&xc, q), t, dt).1 * f64::NAN;
            let zero = no_tangent(&info);
            ((x, info), (dx, zero))
        };
        return custom_jvp(f, rule)(theta);
    }
    let rule = move |theta: &P, dtheta: &P| {
        let (x, info) = root_to_order(optimality.clone(), solver.clone(), tangent_solver, theta, order - 1);
        let (fx, xc) = (optimality.clone(), x.clone());
        let (_, dfdt) = jvp(move |q: &P| fx(&xc, q), theta, dtheta);
        let fj = optimality.clone();
        let jx = move |(y, th): &(Tensor, P), v: &Tensor| {
            let (th, fj) = (th.clone(), fj.clone());
            jvp(move |z: &Tensor| fj(z, &th), y, v).1
        };
        let params = (x.clone(), theta.clone());
        let dx = -inverse_on(jx, &params, &dfdt, tangent_solver, false, order) * nan_unless_converged(&info);
        let zero = no_tangent(&info);
        ((x, info), (dx, zero))
    };
    custom_jvp(f, rule)(theta)
}

/// [`custom_root`] for a fixed point `x = t(x, θ)` (the optimality function `x − t(x, θ)`);
/// `∂F/∂x = I − ∂t/∂x` is generally not symmetric, so use BiCGStab or the Neumann series
/// (which converges when `t` is a contraction).
///
/// ```
/// use cotangent::solvers::{custom_fixed_point, fixed_point, Solver};
/// use cotangent::{grad, Tensor};
/// // x = (x + θ/x) / 2 has the fixed point √θ; d√θ/dθ = 1 / (2√θ).
/// let t = |x: &Tensor, th: &Tensor| (x + th / x) * 0.5;
/// let sqrt = custom_fixed_point(t, move |th: &Tensor| fixed_point(t, &Tensor::scalar(1.0), th, 1e-12, 100), Solver::bicgstab());
/// let g = grad(|th: &Tensor| sqrt(th).0)(&Tensor::scalar(4.0));
/// assert!((g.item::<f64>() - 0.25).abs() < 1e-9);
/// ```
pub fn custom_fixed_point<P, T, S>(t: T, solver: S, tangent_solver: Solver) -> impl Fn(&P) -> (Tensor, SolveInfo)
where
    P: Tree + Clone + 'static,
    T: Fn(&Tensor, &P) -> Tensor + Clone + 'static,
    S: Fn(&P) -> (Tensor, SolveInfo) + Clone + 'static,
{
    custom_root(move |x: &Tensor, p: &P| x - t(x, p), solver, tangent_solver)
}

/// The gradient of `f(·, θ)` at `x`.
pub(crate) fn grad_x<P: Tree>(f: &dyn Fn(&Tensor, &P) -> Tensor, x: &Tensor, theta: &P) -> Tensor {
    let (_, pb) = vjp(|y: &Tensor| f(y, theta), x);
    pb.call(1.0)
}

/// Gradient descent on `f(·, θ)` from `x0` with a fixed `step`, until the gradient norm is
/// below `tol` or `max_iter` steps (a `while_loop`; not differentiable by itself: wrap it
/// with [`minimize_implicit`]). The info's residual is the final gradient norm.
///
/// ```
/// use cotangent::solvers::gradient_descent;
/// use cotangent::Tensor;
/// let f = |x: &Tensor, c: &Tensor| ((x - c) * (x - c)).sum_all();
/// let (x, info) = gradient_descent(f, &Tensor::zeros(&[2], cotangent::DType::F64), &Tensor::from_vec(vec![1.0, 2.0], &[2]), 0.25, 1e-10, 100);
/// assert!(info.converged.item::<bool>());
/// assert!((x.to_vec::<f64>()[1] - 2.0).abs() < 1e-9);
/// ```
pub fn gradient_descent<P: Tree>(
    f: impl Fn(&Tensor, &P) -> Tensor,
    x0: &Tensor,
    theta: &P,
    step: f64,
    tol: f64,
    max_iter: usize,
) -> (Tensor, SolveInfo) {
    let g0 = grad_x(&f, x0, theta);
    let init = (x0.clone(), g0.clone(), vdot(&g0, &g0), Tensor::scalar(0i64));
    let max = max_iter as i64;
    let (x, _, gg, k) = while_loop(
        |c: &(Tensor, Tensor, Tensor, Tensor)| c.3.lt(max).logical_and(&c.2.gt(tol * tol)),
        |c: &(Tensor, Tensor, Tensor, Tensor)| {
            let x = &c.0 - &c.1 * step;
            let g = grad_x(&f, &x, theta);
            let gg = vdot(&g, &g);
            (x, g, gg, &c.3 + Tensor::scalar(1i64))
        },
        &init,
    );
    (x, SolveInfo::of_gradient(&gg, k, tol))
}

/// Gradient descent for exactly `iters` steps through a `fori_loop`: differentiable by
/// unrolling (reverse mode through the loop), the counterpart of [`minimize_implicit`].
///
/// ```
/// use cotangent::solvers::gradient_descent_unrolled;
/// use cotangent::{grad, Tensor};
/// let f = |x: &Tensor, c: &Tensor| ((x - c) * (x - c)).sum_all();
/// let x0 = Tensor::zeros(&[1], cotangent::DType::F64);
/// // x* = c, dx*/dc = 1 (to the accuracy of 60 halving steps).
/// let g = grad(|c: &Tensor| gradient_descent_unrolled(f, &x0, c, 0.25, 60).sum_all())(&Tensor::from_vec(vec![3.0], &[1]));
/// assert!((g.to_vec::<f64>()[0] - 1.0).abs() < 1e-12);
/// ```
pub fn gradient_descent_unrolled<P: Tree>(
    f: impl Fn(&Tensor, &P) -> Tensor,
    x0: &Tensor,
    theta: &P,
    step: f64,
    iters: usize,
) -> Tensor {
    fori_loop(0, iters as i64, |_: &Tensor, x: &Tensor| x - grad_x(&f, x, theta) * step, x0)
}

/// Minimises `f(·, θ)` by [`gradient_descent`] from `x0`, differentiable in `θ` by
/// [`custom_root`] on the optimality condition `∇ₓf(x, θ) = 0` (the Hessian system solved
/// by `tangent_solver`, CG when `f` is convex).
///
/// ```
/// use cotangent::solvers::{minimize_implicit, Solver};
/// use cotangent::{grad, Tensor};
/// let f = |x: &Tensor, c: &Tensor| ((x - c) * (x - c)).sum_all() + (x * x).sum_all();
/// // x* = c / 2
/// let solve = minimize_implicit(f, &Tensor::zeros(&[1], cotangent::DType::F64), 0.2, 1e-12, 500, Solver::cg());
/// let g = grad(|c: &Tensor| solve(c).0.sum_all())(&Tensor::from_vec(vec![3.0], &[1]));
/// assert!((g.to_vec::<f64>()[0] - 0.5).abs() < 1e-9);
/// ```
pub fn minimize_implicit<P, F>(
    f: F,
    x0: &Tensor,
    step: f64,
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
    argmin_implicit(f, move |p: &P| gradient_descent(&g, &x0, p, step, tol, max_iter), tangent_solver)
}

/// The minimiser `solve(θ)` of `f(·, θ)` made differentiable in `θ` by [`custom_root`] on the
/// optimality condition `∇ₓf(x, θ) = 0`: what every `*_implicit` minimiser is.
pub(crate) fn argmin_implicit<P, F, S>(f: F, solve: S, tangent_solver: Solver) -> impl Fn(&P) -> (Tensor, SolveInfo)
where
    P: Tree + Clone + 'static,
    F: Fn(&Tensor, &P) -> Tensor + Clone + 'static,
    S: Fn(&P) -> (Tensor, SolveInfo) + Clone + 'static,
{
    custom_root(move |x: &Tensor, p: &P| grad_x(&f, x, p), solve, tangent_solver)
}

/// A root of the scalar function `f(·, θ)` in `[lo, hi]` (where it changes sign) by
/// bisection, to `|hi − lo| ≤ tol` or `max_iter` halvings; `converged` is false when the
/// bracket has no sign change. Wrap it with [`custom_root`] to differentiate.
///
/// ```
/// use cotangent::solvers::bisection;
/// use cotangent::Tensor;
/// let (x, info) = bisection(|x: &Tensor, _: &()| x * x - 2.0, 0.0, 2.0, &(), 1e-12, 100);
/// assert!(info.converged.item::<bool>());
/// assert!((x.item::<f64>() - 2f64.sqrt()).abs() < 1e-11);
/// ```
pub fn bisection<P: Tree>(
    f: impl Fn(&Tensor, &P) -> Tensor,
    lo: f64,
    hi: f64,
    theta: &P,
    tol: f64,
    max_iter: usize,
) -> (Tensor, SolveInfo) {
    let (lo_t, hi_t) = (Tensor::scalar(lo), Tensor::scalar(hi));
    let bracket = (f(&lo_t, theta) * f(&hi_t, theta)).le(0.0);
    let max = max_iter as i64;
    let init = (lo_t, hi_t, Tensor::scalar(0i64));
    let (a, b, k) = while_loop(
        |c: &(Tensor, Tensor, Tensor)| c.2.lt(max).logical_and(&(&c.1 - &c.0).gt(tol)).logical_and(&bracket),
        |c: &(Tensor, Tensor, Tensor)| {
            let m = (&c.0 + &c.1) * 0.5;
            let left = (f(&c.0, theta) * f(&m, theta)).le(0.0);
            (where_(&left, &c.0, &m), where_(&left, &m, &c.1), &c.2 + Tensor::scalar(1i64))
        },
        &init,
    );
    let x = (&a + &b) * 0.5;
    let converged = (&b - &a).le(tol).logical_and(&bracket);
    let residual = f(&x, theta).abs();
    (x, SolveInfo { converged, iterations: k, residual })
}

/// A root of the scalar function `f(·, θ)` by Newton's method from `x0` (the derivative by
/// forward mode), until `|f(x)| ≤ tol` or `max_iter` steps. Wrap it with [`custom_root`] to
/// differentiate.
///
/// ```
/// use cotangent::solvers::newton_scalar;
/// use cotangent::Tensor;
/// let (x, info) = newton_scalar(|x: &Tensor, _: &()| x.cos() - x, &Tensor::scalar(1.0), &(), 1e-14, 50);
/// assert!(info.converged.item::<bool>());
/// assert!((x.item::<f64>() - 0.7390851332151607).abs() < 1e-12);
/// ```
pub fn newton_scalar<P: Tree>(
    f: impl Fn(&Tensor, &P) -> Tensor,
    x0: &Tensor,
    theta: &P,
    tol: f64,
    max_iter: usize,
) -> (Tensor, SolveInfo) {
    let max = max_iter as i64;
    let init = (x0.clone(), f(x0, theta).abs(), Tensor::scalar(0i64));
    let (x, fx, k) = while_loop(
        |c: &(Tensor, Tensor, Tensor)| c.2.lt(max).logical_and(&c.1.gt(tol)),
        |c: &(Tensor, Tensor, Tensor)| {
            let (y, dy) = jvp(|z: &Tensor| f(z, theta), &c.0, &c.0.ones_like());
            let x = &c.0 - y / dy;
            let fx = f(&x, theta).abs();
            (x, fx, &c.2 + Tensor::scalar(1i64))
        },
        &init,
    );
    let converged = fx.le(tol);
    (x, SolveInfo { converged, iterations: k, residual: fx })
}

/// Fixed-point iteration `x ← t(x, θ)` from `x0` until `‖t(x) − x‖ ≤ tol` or `max_iter`
/// steps (residual: the last step's norm). Wrap it with [`custom_fixed_point`] to
/// differentiate.
///
/// ```
/// use cotangent::solvers::fixed_point;
/// use cotangent::Tensor;
/// let (x, info) = fixed_point(|x: &Tensor, _: &()| x.cos(), &Tensor::scalar(1.0), &(), 1e-12, 200);
/// assert!(info.converged.item::<bool>());
/// assert!((x.item::<f64>() - 0.7390851332151607).abs() < 1e-11);
/// ```
pub fn fixed_point<P: Tree>(
    t: impl Fn(&Tensor, &P) -> Tensor,
    x0: &Tensor,
    theta: &P,
    tol: f64,
    max_iter: usize,
) -> (Tensor, SolveInfo) {
    let max = max_iter as i64;
    let big = Tensor::scalar_like(&vdot(x0, x0), f64::INFINITY);
    let init = (x0.clone(), big, Tensor::scalar(0i64));
    let (x, d, k) = while_loop(
        |c: &(Tensor, Tensor, Tensor)| c.2.lt(max).logical_and(&c.1.gt(tol)),
        |c: &(Tensor, Tensor, Tensor)| {
            let x = t(&c.0, theta);
            let step = &x - &c.0;
            (x, vdot(&step, &step).sqrt(), &c.2 + Tensor::scalar(1i64))
        },
        &init,
    );
    let converged = d.le(tol);
    (x, SolveInfo { converged, iterations: k, residual: d })
}

#[derive(Clone, Tree)]
struct AndersonState {
    x: Tensor,
    g: Tensor,
    d: Tensor,
    xs: Tensor,
    gs: Tensor,
    slot: Tensor,
    k: Tensor,
}

/// Fixed-point iteration `x ← t(x, θ)` with Anderson acceleration of depth `m` (mixing
/// `beta`): each step combines the last `m` iterates with the weights (summing to one) that
/// minimise the combined residual (a small regularised least-squares problem solved by
/// conjugate gradient). Stops when `‖t(x) − x‖ ≤ tol` (the residual reported) or after
/// `max_iter` steps. Wrap it with [`custom_fixed_point`] to differentiate.
///
/// ```
/// use cotangent::solvers::{fixed_point, fixed_point_anderson};
/// use cotangent::Tensor;
/// let t = |x: &Tensor, _: &()| x.cos();
/// let (x, info) = fixed_point_anderson(t, &Tensor::scalar(1.0), &(), 3, 1.0, 1e-12, 100);
/// assert!(info.converged.item::<bool>());
/// assert!((x.item::<f64>() - 0.7390851332151607).abs() < 1e-11);
/// let (_, plain) = fixed_point(t, &Tensor::scalar(1.0), &(), 1e-12, 200);
/// assert!(info.iterations.item::<i64>() < plain.iterations.item::<i64>());
/// ```
///
/// # Panics
/// When `m` is 0.
#[track_caller]
pub fn fixed_point_anderson<P: Tree>(
    t: impl Fn(&Tensor, &P) -> Tensor,
    x0: &Tensor,
    theta: &P,
    m: usize,
    beta: f64,
    tol: f64,
    max_iter: usize,
) -> (Tensor, SolveInfo) {
    assert!(m > 0, "fixed_point_anderson: the depth m must be positive, got 0");
    let shape: Vec<isize> = x0.shape().iter().map(|&d| d as isize).collect();
    let n: isize = shape.iter().product();
    let dt = x0.dtype();
    let flat = |x: &Tensor| x.reshape(&[1, n]);
    let resid = |x: &Tensor| t(x, theta) - x;
    let g0 = resid(x0);
    let ones = Tensor::ones(&[m, 1], dt);
    let eye = Tensor::iota(&[m, m], 0, crate::DType::I64).eq(Tensor::iota(&[m, m], 1, crate::DType::I64)).cast(dt);
    let init = AndersonState {
        x: x0.clone(),
        d: vdot(&g0, &g0).sqrt(),
        xs: ones.matmul(&flat(x0)),
        gs: ones.matmul(&flat(&g0)),
        g: g0,
        slot: Tensor::scalar(0i64),
        k: Tensor::scalar(0i64),
    };
    let max = max_iter as i64;
    let zero = Tensor::scalar(0i64);
    let out = while_loop(
        |c: &AndersonState| c.k.lt(max).logical_and(&c.d.gt(tol)),
        |c: &AndersonState| {
            let xs = c.xs.dynamic_update_slice(&flat(&c.x), &[c.slot.clone(), zero.clone()]);
            let gs = c.gs.dynamic_update_slice(&flat(&c.g), &[c.slot.clone(), zero.clone()]);
            let gram = gs.matmul(&gs.t());
            let scale = gram.trace() / m as f64;
            let reg = where_(&scale.gt(0.0), &(&scale * 1e-10), 1e-300);
            let a = &gram + &eye * &reg;
            let inner =
                Solver { method: super::Method::Cg, tol: 1e-13, max_iter: 4 * m, symmetric: true, truncate: false };
            let (w, _) = super::iterative::solve_raw(&|u: &Tensor| a.matmul(u), &Tensor::ones(&[m], dt), &inner);
            let alpha = &w / w.sum_all();
            let x = alpha.reshape(&[1, m as isize]).matmul(&(&xs + &gs * beta)).reshape(&shape);
            let g = resid(&x);
            let next = &c.slot + Tensor::scalar(1i64);
            AndersonState {
                d: vdot(&g, &g).sqrt(),
                x,
                g,
                xs,
                gs,
                slot: where_(&next.eq(m as i64), 0i64, &next),
                k: &c.k + Tensor::scalar(1i64),
            }
        },
        &init,
    );
    let converged = out.d.le(tol);
    (out.x, SolveInfo { converged, iterations: out.k, residual: out.d })
}

#[derive(Clone, Tree)]
struct LbfgsState {
    x: Tensor,
    f: Tensor,
    g: Tensor,
    ss: Tensor,
    ys: Tensor,
    rho: Tensor,
    slot: Tensor,
    k: Tensor,
    ok: Tensor,
}

/// L-BFGS on `f(·, θ)` from `x0` with history `m` and a strong Wolfe line search
/// (bracketing, then zoom by cubic interpolation), until the gradient norm is below `tol` or
/// `max_iter` steps (the info's residual is the final gradient norm; `converged` is false
/// when the line search finds no decrease). The curvature condition keeps every stored pair
/// with `sᵀy > 0`, so the method also converges on non-convex problems such as
/// Rosenbrock's. Not differentiable by itself: wrap it with [`custom_root`] on `∇ₓf = 0`,
/// as [`minimize_implicit`] does for gradient descent.
///
/// ```
/// use cotangent::solvers::lbfgs;
/// use cotangent::Tensor;
/// // An ill-conditioned quadratic plus a quartic: minimum at c.
/// let c = Tensor::from_vec(vec![1.0, -2.0, 0.5], &[3]);
/// let w = Tensor::from_vec(vec![1.0, 10.0, 100.0], &[3]);
/// let f = |x: &Tensor, c: &Tensor| ((x - c).square() * &w).sum_all() + (x - c).powf(4.0).sum_all();
/// let (x, info) = lbfgs(f, &c.zeros_like(), &c, 5, 1e-10, 500);
/// assert!(info.converged.item::<bool>());
/// assert!(x.to_vec::<f64>().iter().zip(c.to_vec::<f64>()).all(|(a, b)| (a - b).abs() < 1e-9));
/// // Rosenbrock's function from (−1.2, 1): the minimum (1, 1).
/// let rosenbrock = |x: &Tensor, _: &()| (1.0 - x.index(0)).square() + (x.index(1) - x.index(0).square()).square() * 100.0;
/// let (x, info) = lbfgs(rosenbrock, &Tensor::from_vec(vec![-1.2, 1.0], &[2]), &(), 10, 1e-9, 200);
/// assert!(info.converged.item::<bool>());
/// assert!(x.to_vec::<f64>().iter().all(|e| (e - 1.0).abs() < 1e-7));
/// ```
///
/// # Panics
/// When `m` is 0.
#[track_caller]
pub fn lbfgs<P: Tree>(
    f: impl Fn(&Tensor, &P) -> Tensor,
    x0: &Tensor,
    theta: &P,
    m: usize,
    tol: f64,
    max_iter: usize,
) -> (Tensor, SolveInfo) {
    assert!(m > 0, "lbfgs: the history m must be positive, got 0");
    let shape: Vec<isize> = x0.shape().iter().map(|&d| d as isize).collect();
    let n: isize = shape.iter().product();
    let dt = x0.dtype();
    let value_grad = |x: &Tensor| {
        let (y, pb) = vjp(|z: &Tensor| f(&z.reshape(&shape), theta), x);
        (y, pb.call(1.0))
    };
    let x = x0.reshape(&[n]);
    let (f0, g0) = value_grad(&x);
    let init = LbfgsState {
        x,
        f: f0,
        g: g0,
        ss: Tensor::zeros(&[m, n as usize], dt),
        ys: Tensor::zeros(&[m, n as usize], dt),
        rho: Tensor::zeros(&[m], dt),
        slot: Tensor::scalar(0i64),
        k: Tensor::scalar(0i64),
        ok: Tensor::scalar(true),
    };
    let max = max_iter as i64;
    let zero = Tensor::scalar(0i64);
    let row = |a: &Tensor, i: &Tensor| a.dynamic_slice(&[i.clone(), zero.clone()], &[1, n as usize]).reshape(&[n]);
    let out = while_loop(
        |c: &LbfgsState| c.k.lt(max).logical_and(&vdot(&c.g, &c.g).gt(tol * tol)).logical_and(&c.ok),
        |c: &LbfgsState| {
            // Two-loop recursion, newest pair first (slot − 1, slot − 2, …, modulo m).
            let mut q = c.g.clone();
            let mut alphas = Vec::with_capacity(m);
            for i in 0..m {
                let raw = &c.slot - Tensor::scalar(1 + i as i64);
                let idx = where_(&raw.lt(0i64), &(&raw + Tensor::scalar(m as i64)), &raw);
                let (s, y) = (row(&c.ss, &idx), row(&c.ys, &idx));
                let rho = c.rho.dynamic_slice(std::slice::from_ref(&idx), &[1]).reshape(&[]);
                let a = &rho * vdot(&s, &q);
                q = &q - &a * &y;
                alphas.push((a, rho, s, y));
            }
            let (_, _, s0, y0) = &alphas[0];
            let yy = vdot(y0, y0);
            let gamma = where_(&yy.gt(0.0), &(vdot(s0, y0) / where_(&yy.gt(0.0), &yy, 1.0)), 1.0);
            let mut r = &q * &gamma;
            for (a, rho, s, y) in alphas.iter().rev() {
                let b = rho * vdot(y, &r);
                r = &r + s * (a - b);
            }
            let mut d = -r;
            let slope = vdot(&c.g, &d);
            let descent = slope.lt(0.0);
            d = where_(&descent, &d, &-&c.g);
            // Strong Wolfe line search: the curvature condition keeps sᵀy > 0, so every
            // pair is stored and the inverse-Hessian model stays positive definite. Without
            // history the first trial step has length at most 1.
            let fresh = c.rho.abs().sum_all().eq(0.0);
            let gnorm = vdot(&c.g, &c.g).sqrt();
            let t0 = where_(&fresh, &(gnorm.ones_like() / gnorm.maximum(1.0)), 1.0);
            let (t, ft, g, ok) = strong_wolfe(&value_grad, &c.x, (&c.f, &c.g), &d, &t0, 40);
            let x = &c.x + &t * &d;
            let (s, y) = (&x - &c.x, &g - &c.g);
            let sy = vdot(&s, &y);
            let store = sy.gt(1e-300).logical_and(&ok);
            let ss = c.ss.dynamic_update_slice(&s.reshape(&[1, n]), &[c.slot.clone(), zero.clone()]);
            let ys = c.ys.dynamic_update_slice(&y.reshape(&[1, n]), &[c.slot.clone(), zero.clone()]);
            let rho = c.rho.dynamic_update_slice(
                &(sy.ones_like() / where_(&store, &sy, 1.0)).reshape(&[1]),
                std::slice::from_ref(&c.slot),
            );
            let next = &c.slot + Tensor::scalar(1i64);
            let next = where_(&next.eq(m as i64), 0i64, &next);
            LbfgsState {
                x: where_(&ok, &x, &c.x),
                f: where_(&ok, &ft, &c.f),
                g: where_(&ok, &g, &c.g),
                ss: where_(&store, &ss, &c.ss),
                ys: where_(&store, &ys, &c.ys),
                rho: where_(&store, &rho, &c.rho),
                slot: where_(&store, &next, &c.slot),
                k: &c.k + Tensor::scalar(1i64),
                ok,
            }
        },
        &init,
    );
    (out.x.reshape(&shape), SolveInfo::of_gradient(&vdot(&out.g, &out.g), out.k, tol))
}
