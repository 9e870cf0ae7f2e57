//! Implicit differentiation and differentiable solvers (issue 15): known values through
//! jvp, grad, vmap and jit; implicit vs unrolled vs finite differences; failure flags.

use cotangent::solvers::*;
use cotangent::*;

fn v(x: &[f64]) -> Tensor {
    Tensor::from_vec(x.to_vec(), &[x.len()])
}

fn m(rows: &[&[f64]]) -> Tensor {
    let n = rows[0].len();
    Tensor::from_vec(rows.iter().flat_map(|r| r.iter().copied()).collect(), &[rows.len(), n])
}

fn close(got: &Tensor, want: &[f64], tol: f64, what: &str) {
    let g = got.to_vec::<f64>();
    assert_eq!(g.len(), want.len(), "{what}: length");
    for (a, b) in g.iter().zip(want) {
        assert!((a - b).abs() <= tol, "{what}: got {g:?}, want {want:?} (tol {tol})");
    }
}

// ---- Ridge regression (the known values) ----
//
// The stated values w* = (0.979020979, 1.748251748), dw*/dλ = (−0.352095457, −2.127243386)
// are those of the mean squared error: w* = argmin (1/3)‖Xw − y‖² + λ‖w‖², i.e.
// (XᵀX + 3λI) w = Xᵀy (with the plain sum the minimiser is (0.99707, 1.81525)).

const W_STAR: [f64; 2] = [0.979020979, 1.748251748];
const DW_DLAMBDA: [f64; 2] = [-0.352095457, -2.127243386];

fn xy() -> (Tensor, Tensor) {
    (m(&[&[1.0, 0.0], &[0.0, 1.0], &[1.0, 1.0]]), v(&[1.0, 2.0, 3.0]))
}

fn ridge_loss(w: &Tensor, lam: &Tensor) -> Tensor {
    let (x, y) = xy();
    let r = x.matmul(w) - y;
    (&r * &r).sum_all() / 3.0 + lam * (w * w).sum_all()
}

fn ridge_gd() -> impl Fn(&Tensor) -> (Tensor, SolveInfo) {
    minimize_implicit(ridge_loss, &Tensor::zeros(&[2], DType::F64), 0.4, 1e-12, 2000, Solver::cg())
}

/// Ridge by CG on the normal equations (XᵀX/3 + λI) w = Xᵀy/3, made differentiable by
/// custom_root on the optimality condition ∇w = 0.
fn ridge_cg() -> impl Fn(&Tensor) -> (Tensor, SolveInfo) {
    let optimality = |w: &Tensor, lam: &Tensor| {
        let (_, pb) = vjp(|w: &Tensor| ridge_loss(w, lam), w);
        pb.call(1.0)
    };
    let solver = |lam: &Tensor| {
        let (x, y) = xy();
        let xt = x.t();
        let rhs = xt.matmul(&y) / 3.0;
        let lam = lam.clone();
        solve_raw(&move |w: &Tensor| xt.matmul(&x.matmul(w)) / 3.0 + &lam * w, &rhs, &Solver::cg())
    };
    custom_root(optimality, solver, Solver::cg())
}

fn check_ridge(solve: impl Fn(&Tensor) -> (Tensor, SolveInfo) + Clone, what: &str) {
    let lam = Tensor::scalar(0.1);
    let (w, info) = solve(&lam);
    assert!(info.converged.item::<bool>(), "{what}: converged");
    close(&w, &W_STAR, 1e-8, &format!("{what}: w*"));
    // Forward mode.
    let s = solve.clone();
    let (w2, dw) = jvp(move |l: &Tensor| s(l).0, &lam, 1.0);
    close(&w2, &W_STAR, 1e-8, &format!("{what}: jvp primal"));
    close(&dw, &DW_DLAMBDA, 1e-8, &format!("{what}: jvp dw/dλ"));
    // Reverse mode, one component at a time, and the whole Jacobian.
    for (k, want) in DW_DLAMBDA.iter().enumerate() {
        let s = solve.clone();
        let g = grad(move |l: &Tensor| s(l).0.index(k as isize))(&lam);
        close(&g, &[*want], 1e-8, &format!("{what}: grad dw{k}/dλ"));
    }
    let s = solve.clone();
    let jac = jacrev(move |l: &Tensor| s(l).0)(&lam);
    close(&jac, &DW_DLAMBDA, 1e-8, &format!("{what}: jacrev"));
}

#[test]
fn ridge_known_values_through_gradient_descent() {
    check_ridge(&ridge_gd(), "GD");
}

#[test]
fn ridge_known_values_through_cg() {
    check_ridge(&ridge_cg(), "CG");
}

#[test]
fn ridge_under_jit_and_vmap_matches_a_loop() {
    let solve = ridge_gd();
    let lams = [0.05, 0.1, 0.5, 0.8];
    // vmap of the derivative over λ against one call per λ.
    let d = |l: &Tensor| jvp(|l: &Tensor| solve(l).0, l, 1.0).1;
    let batched = vmap(d)(&v(&lams));
    let jitted = jit(|l: &Tensor| grad(|l: &Tensor| solve(l).0.sum_all())(l));
    for (i, &l) in lams.iter().enumerate() {
        let one = d(&Tensor::scalar(l));
        close(&batched.index(i as isize), &one.to_vec::<f64>(), 1e-12, "vmap vs loop");
        let g = jitted(&Tensor::scalar(l));
        close(&g, &[one.sum_all().item::<f64>()], 1e-9, "jit(grad) vs jvp");
    }
    // Closed form at λ = 0.1 under vmap.
    close(&batched.index(1), &DW_DLAMBDA, 1e-8, "vmap known value");
    // vmap of the solution itself.
    let ws = vmap(|l: &Tensor| solve(l).0)(&v(&lams));
    close(&ws.index(1), &W_STAR, 1e-8, "vmap w*");
}

#[test]
fn implicit_gradient_agrees_with_unrolled_and_finite_differences() {
    let x0 = Tensor::zeros(&[2], DType::F64);
    let unrolled = |l: &Tensor| gradient_descent_unrolled(ridge_loss, &x0, l, 0.4, 300);
    let implicit = ridge_gd();
    let lam = Tensor::scalar(0.3);
    let cot = v(&[0.7, -1.3]);
    let gu = grad(|l: &Tensor| (unrolled(l) * &cot).sum_all())(&lam).item::<f64>();
    let gi = grad(|l: &Tensor| (implicit(l).0 * &cot).sum_all())(&lam).item::<f64>();
    let h = 1e-5;
    let f = |l: f64| (implicit(&Tensor::scalar(l)).0 * &cot).sum_all().item::<f64>();
    let fd = (f(0.3 + h) - f(0.3 - h)) / (2.0 * h);
    assert!((gu - gi).abs() < 1e-9, "unrolled {gu} vs implicit {gi}");
    assert!((fd - gi).abs() < 1e-6, "finite differences {fd} vs implicit {gi}");
    // A badly converged unrolled solver differs from the implicit gradient.
    let short = |l: &Tensor| gradient_descent_unrolled(ridge_loss, &x0, l, 0.4, 3);
    let gs = grad(|l: &Tensor| (short(l) * &cot).sum_all())(&lam).item::<f64>();
    assert!((gs - gi).abs() > 1e-3, "3 unrolled steps should not match: {gs} vs {gi}");
}

// ---- linear_solve: each solver, SPD and non-symmetric, vs finite differences ----

/// A(p) = A0 + p0·E + p1·Eᵀ (E a fixed off-diagonal pattern): symmetric when p0 = p1.
fn family(a0: Tensor) -> impl Fn(&Tensor, &Tensor) -> Tensor + Clone + 'static {
    move |p: &Tensor, x: &Tensor| {
        let e = m(&[&[0.0, 1.0, 0.0], &[0.0, 0.0, 1.0], &[0.0, 0.0, 0.0]]);
        a0.matmul(x) + p.index(0) * e.matmul(x) + p.index(1) * e.t().matmul(x)
    }
}

fn spd() -> Tensor {
    m(&[&[4.0, 1.0, 0.5], &[1.0, 3.0, 0.2], &[0.5, 0.2, 2.0]])
}

fn nonsym() -> Tensor {
    m(&[&[1.0, 0.2, 0.0], &[-0.1, 1.0, 0.15], &[0.05, -0.2, 1.0]])
}

fn check_linear_solve(a0: Tensor, p: Tensor, solver: Solver, what: &str) {
    let mv = family(a0);
    let b = v(&[1.0, -2.0, 0.5]);
    let cot = v(&[0.3, 1.0, -0.7]);
    let loss = |(p, b): &(Tensor, Tensor)| {
        let (x, _) = linear_solve(mv.clone(), p, b, &solver);
        (x * &cot).sum_all()
    };
    let (x, info) = linear_solve(mv.clone(), &p, &b, &solver);
    assert!(info.converged.item::<bool>(), "{what}: converged");
    let resid = (mv(&p, &x) - &b).abs().max_all().item::<f64>();
    assert!(resid < 1e-8, "{what}: residual {resid}");
    let (gp, gb) = grad(loss)(&(p.clone(), b.clone()));
    // Central differences in every coordinate of p and b.
    let h = 1e-6;
    let fd = |which: usize, i: usize| {
        let bump = |s: f64| {
            let (mut pv, mut bv) = (p.to_vec::<f64>(), b.to_vec::<f64>());
            if which == 0 {
                pv[i] += s
            } else {
                bv[i] += s
            };
            loss(&(v(&pv), v(&bv))).item::<f64>()
        };
        (bump(h) - bump(-h)) / (2.0 * h)
    };
    let want_p: Vec<f64> = (0..2).map(|i| fd(0, i)).collect();
    let want_b: Vec<f64> = (0..3).map(|i| fd(1, i)).collect();
    close(&gp, &want_p, 1e-6, &format!("{what}: grad in params"));
    close(&gb, &want_b, 1e-6, &format!("{what}: grad in b"));
    // Forward mode agrees with reverse mode.
    let (tp, tb) = (v(&[0.4, -0.9]), v(&[1.0, 0.5, -1.5]));
    let (_, d) = jvp(loss, &(p.clone(), b.clone()), &(tp.clone(), tb.clone()));
    let want = (&gp * &tp).sum_all() + (&gb * &tb).sum_all();
    close(&d, &[want.item::<f64>()], 1e-8, &format!("{what}: jvp vs grad"));
    // jit of the gradient equals the eager one.
    let gj = jit(grad(loss))(&(p.clone(), b.clone()));
    close(&gj.0, &gp.to_vec::<f64>(), 1e-10, &format!("{what}: jit grad"));
}

#[test]
fn linear_solve_cg_spd_gradients() {
    check_linear_solve(spd(), v(&[0.3, 0.3]), Solver::cg(), "CG on SPD");
}

#[test]
fn linear_solve_bicgstab_spd_and_nonsymmetric_gradients() {
    check_linear_solve(spd(), v(&[0.3, 0.3]), Solver::bicgstab(), "BiCGStab on SPD");
    check_linear_solve(nonsym(), v(&[0.1, -0.05]), Solver::bicgstab(), "BiCGStab non-symmetric");
    // p0 != p1: A0 + p0·E + p1·Eᵀ is not symmetric; the transpose solve comes from
    // linear_transpose.
    check_linear_solve(spd(), v(&[0.3, -0.2]), Solver::bicgstab(), "BiCGStab non-symmetric (perturbed SPD)");
}

#[test]
fn linear_solve_neumann_spd_and_nonsymmetric_gradients() {
    let near_identity_spd = m(&[&[1.1, 0.1, 0.0], &[0.1, 0.9, 0.05], &[0.0, 0.05, 1.0]]);
    check_linear_solve(near_identity_spd, v(&[0.05, 0.05]), Solver::neumann().tol(1e-12), "Neumann on SPD");
    check_linear_solve(nonsym(), v(&[0.1, -0.05]), Solver::neumann().tol(1e-12), "Neumann non-symmetric");
}

#[test]
fn linear_solve_gmres_spd_and_nonsymmetric_gradients() {
    check_linear_solve(spd(), v(&[0.3, 0.3]), Solver::gmres(3), "GMRES(3) on SPD");
    check_linear_solve(nonsym(), v(&[0.1, -0.05]), Solver::gmres(3), "GMRES(3) non-symmetric");
    // Restarts: a Krylov dimension of 2 on a 3×3 system needs several cycles.
    check_linear_solve(nonsym(), v(&[0.1, -0.05]), Solver::gmres(2), "GMRES(2) non-symmetric");
    let (_, info) = linear_solve(family(nonsym()), &v(&[0.1, -0.05]), &v(&[1.0, 2.0, 3.0]), &Solver::gmres(2));
    assert!(info.iterations.item::<i64>() > 2, "more than one cycle");
    // A 20×20 non-symmetric system (tridiagonal, diagonally dominant) with restarts of 5.
    let n = 20;
    let a = Tensor::from_vec(
        (0..n * n)
            .map(|k| {
                let (i, j) = (k / n, k % n);
                if i == j {
                    4.0 + i as f64 * 0.1
                } else if j == i + 1 {
                    1.0
                } else if i == j + 1 {
                    -0.5
                } else {
                    0.0
                }
            })
            .collect(),
        &[n, n],
    );
    let b = Tensor::from_vec((0..n).map(|i| (i as f64).sin()).collect(), &[n]);
    let (x, info) = solve_raw(&|u: &Tensor| a.matmul(u), &b, &Solver::gmres(5));
    assert!(info.converged.item::<bool>());
    assert!((a.matmul(&x) - &b).abs().max_all().item::<f64>() < 1e-8);
}

#[test]
fn linear_solve_vmap_of_different_problems_equals_a_loop() {
    let mv = family(spd());
    let ps = m(&[&[0.1, 0.1], &[0.5, 0.5], &[-0.3, -0.3]]);
    let bs = m(&[&[1.0, 0.0, 0.0], &[0.0, 2.0, -1.0], &[3.0, 1.0, 1.0]]);
    let f = |(p, b): &(Tensor, Tensor)| linear_solve(mv.clone(), p, b, &Solver::cg()).0;
    let g = |(p, b): &(Tensor, Tensor)| grad(|p: &Tensor| f(&(p.clone(), b.clone())).sum_all())(p);
    let xs = vmap(f)(&(ps.clone(), bs.clone()));
    let gs = vmap(g)(&(ps.clone(), bs.clone()));
    for i in 0..3 {
        let one = (ps.index(i), bs.index(i));
        close(&xs.index(i), &f(&one).to_vec::<f64>(), 1e-10, "vmap solve vs loop");
        close(&gs.index(i), &g(&one).to_vec::<f64>(), 1e-10, "vmap grad vs loop");
    }
}

// ---- Failure flags ----

#[test]
fn cg_flags_indefinite_and_singular_systems() {
    let b = v(&[1.0, 1.0]);
    let indefinite = m(&[&[1.0, 0.0], &[0.0, -1.0]]);
    let (_, info) = solve_raw(&|x: &Tensor| indefinite.matmul(x), &b, &Solver::cg());
    assert!(!info.converged.item::<bool>(), "indefinite: not converged");
    let singular = m(&[&[1.0, 0.0], &[0.0, 0.0]]);
    let (x, info) = solve_raw(&|x: &Tensor| singular.matmul(x), &b, &Solver::cg());
    assert!(!info.converged.item::<bool>(), "singular: not converged");
    assert!(x.to_vec::<f64>().iter().all(|e| e.is_finite()), "singular: no NaN in the result");
    assert!(info.iterations.item::<i64>() < 1000, "stopped at the breakdown, not at max_iter");
    // A well-posed SPD system converges.
    let (_, info) = solve_raw(&|x: &Tensor| spd().matmul(x), &v(&[1.0, 2.0, 3.0]), &Solver::cg());
    assert!(info.converged.item::<bool>());
    assert!(info.iterations.item::<i64>() <= 4);
}

#[test]
fn non_convergence_is_reported_through_grad() {
    let mv = family(spd());
    let b = v(&[1.0, -2.0, 0.5]);
    let p = v(&[0.3, 0.3]);
    // One CG iteration cannot solve a 3×3 system: the flag comes out beside the gradient.
    let f = |p: &Tensor| {
        let (x, info) = linear_solve(mv.clone(), p, &b, &Solver::cg().max_iter(1));
        (x.sum_all(), (info.converged, info.iterations))
    };
    let (g, (conv, iters)) = grad_with_aux(f)(&p);
    assert!(!conv.item::<bool>());
    assert_eq!(iters.item::<i64>(), 1);
    assert!(g.to_vec::<f64>().iter().all(|e| e.is_nan()), "no silent wrong gradient: {g:?}");
    let (_, d) = jvp(|p: &Tensor| f(p).0, &p, &v(&[1.0, 0.0]));
    assert!(d.item::<f64>().is_nan(), "forward mode too");
    // Gradient descent diverging (step 0.4 > 2 / λmax at λ = 2): flagged, NaN derivatives.
    let solve = ridge_gd();
    let (_, info) = solve(&Tensor::scalar(2.0));
    assert!(!info.converged.item::<bool>());
    assert!(grad(|l: &Tensor| solve(l).0.sum_all())(&Tensor::scalar(2.0)).item::<f64>().is_nan());
    assert!(jvp(|l: &Tensor| solve(l).0, &Tensor::scalar(2.0), 1.0).1.to_vec::<f64>()[0].is_nan());
    // A tangent system the Neumann series cannot solve (∂F/∂x = 3 for x = θ/3 written as
    // 3x − θ = 0): the root is right, its derivative NaN.
    let third = custom_root(
        |x: &Tensor, t: &Tensor| x * 3.0 - t,
        |t: &Tensor| newton_scalar(|x: &Tensor, t: &Tensor| x * 3.0 - t, &Tensor::scalar(0.0), t, 1e-12, 10),
        Solver::neumann().max_iter(30),
    );
    close(&third(&Tensor::scalar(3.0)).0, &[1.0], 1e-12, "x = θ/3");
    assert!(grad(|t: &Tensor| third(t).0)(&Tensor::scalar(3.0)).item::<f64>().is_nan());
    // The Neumann series diverges when ‖I − A‖ > 1: flagged, under jit too.
    let big = m(&[&[3.0, 0.0], &[0.0, 1.0]]);
    let solve = jit(move |b: &Tensor| solve_raw(&|x: &Tensor| big.matmul(x), b, &Solver::neumann().max_iter(50)).1);
    let info = solve(&v(&[1.0, 1.0]));
    assert!(!info.converged.item::<bool>());
    assert_eq!(info.iterations.item::<i64>(), 50);
    // Gradient descent with too few steps says so.
    let (_, info) = gradient_descent(ridge_loss, &Tensor::zeros(&[2], DType::F64), &Tensor::scalar(0.1), 0.4, 1e-12, 5);
    assert!(!info.converged.item::<bool>());
    // Bisection without a sign change says so.
    let (_, info) = bisection(|x: &Tensor, _: &()| x * x + 1.0, -1.0, 1.0, &(), 1e-10, 100);
    assert!(!info.converged.item::<bool>());
}

// ---- Scalar roots and fixed points ----

#[test]
fn scalar_roots_and_fixed_points_are_implicitly_differentiable() {
    // x³ = θ by bisection and by Newton: x = θ^(1/3), dx/dθ = θ^(-2/3) / 3.
    let f = |x: &Tensor, t: &Tensor| x.powf(3.0) - t;
    let by_bisection = custom_root(f, move |t: &Tensor| bisection(f, 0.0, 10.0, t, 1e-13, 200), Solver::bicgstab());
    let by_newton = custom_root(
        f,
        move |t: &Tensor| newton_scalar(f, &Tensor::scalar(1.0), t, 1e-13, 100),
        Solver::cg().symmetric(true),
    );
    for t in [2.0f64, 8.0, 27.0] {
        let want = t.powf(-2.0 / 3.0) / 3.0;
        let th = Tensor::scalar(t);
        for (name, s) in
            [("bisection", &by_bisection as &dyn Fn(&Tensor) -> (Tensor, SolveInfo)), ("newton", &by_newton)]
        {
            let (x, info) = s(&th);
            assert!(info.converged.item::<bool>(), "{name}");
            close(&x, &[t.cbrt()], 1e-10, name);
            close(&grad(|t: &Tensor| s(t).0)(&th), &[want], 1e-9, name);
            close(&jvp(|t: &Tensor| s(t).0, &th, 1.0).1, &[want], 1e-9, name);
        }
    }
    // Fixed point of a contraction in 2-d: x = 0.5·tanh(x) + θ, by iteration.
    let t = |x: &Tensor, th: &Tensor| x.tanh() * 0.5 + th;
    let fp = custom_fixed_point(
        t,
        move |th: &Tensor| fixed_point(t, &th.zeros_like(), th, 1e-13, 500),
        Solver::neumann().tol(1e-13),
    );
    let th = v(&[0.2, -0.4]);
    let (x, info) = fp(&th);
    assert!(info.converged.item::<bool>());
    close(&(t(&x, &th) - &x), &[0.0, 0.0], 1e-12, "fixed point");
    // dx/dθ = 1 / (1 − 0.5 sech²x), elementwise.
    let want: Vec<f64> = x.to_vec::<f64>().iter().map(|x| 1.0 / (1.0 - 0.5 / x.cosh().powi(2))).collect();
    close(&grad(|th: &Tensor| fp(th).0.sum_all())(&th), &want, 1e-9, "fixed point grad");
    close(&jvp(|th: &Tensor| fp(th).0, &th, &v(&[1.0, 1.0])).1, &want, 1e-9, "fixed point jvp");
}

// ---- Projections and projected gradient ----

#[test]
fn projections_known_values() {
    close(&project_box(&v(&[-1.0, 0.5, 2.0]), 0.0, 1.0), &[0.0, 0.5, 1.0], 0.0, "box");
    close(&project_simplex(&v(&[0.5, 1.0, -0.2]), 1.0), &[0.25, 0.75, 0.0], 1e-15, "simplex");
    close(
        &project_simplex(&v(&[0.2, 0.3, 0.1]), 2.0),
        &[0.2 + 1.4 / 3.0, 0.3 + 1.4 / 3.0, 0.1 + 1.4 / 3.0],
        1e-15,
        "simplex z = 2 (all inside: shift by (2 − 0.6) / 3)",
    );
    close(&project_l1_ball(&v(&[0.5, -1.0, 0.2]), 1.0), &[0.25, -0.75, 0.0], 1e-15, "l1 ball");
    close(&project_l1_ball(&v(&[0.1, -0.2]), 1.0), &[0.1, -0.2], 0.0, "l1 ball inside");
    close(&project_l2_ball(&v(&[3.0, 4.0]), 1.0), &[0.6, 0.8], 1e-15, "l2 ball");
    close(&project_l2_ball(&v(&[0.3, 0.4]), 1.0), &[0.3, 0.4], 0.0, "l2 ball inside");
    // Idempotent, and the simplex projection lands on the simplex.
    let p = project_simplex(&v(&[3.0, -1.0, 0.4, 0.41]), 1.0);
    close(&p.sum_all(), &[1.0], 1e-14, "on the simplex");
    close(&project_simplex(&p, 1.0), &p.to_vec::<f64>(), 1e-14, "idempotent");
}

#[test]
fn box_constrained_ridge_known_values_implicit() {
    // w2 ≤ 1.5 is active at λ = 0.1: w1 = (5/3) / (4/3 + 2λ) = 25/23,
    // dw1/dλ = −2 w1 / (4/3 + 2λ) = −750/529, dw2/dλ = 0.
    let proj = |w: &Tensor| project_box(w, -10.0, 1.5);
    let solve = projected_gradient_implicit(
        ridge_loss,
        proj,
        &Tensor::zeros(&[2], DType::F64),
        0.4,
        1e-13,
        2000,
        Solver::bicgstab(),
    );
    let lam = Tensor::scalar(0.1);
    let (w, info) = solve(&lam);
    assert!(info.converged.item::<bool>());
    close(&w, &[25.0 / 23.0, 1.5], 1e-10, "box ridge w*");
    let want = [-750.0 / 529.0, 0.0];
    close(&jvp(|l: &Tensor| solve(l).0, &lam, 1.0).1, &want, 1e-8, "box ridge jvp");
    close(&jacrev(|l: &Tensor| solve(l).0)(&lam), &want, 1e-8, "box ridge jacrev");
    // vmap over λ equals a loop (at λ = 1 the constraint is inactive).
    let lams = v(&[0.05, 0.1, 1.0]);
    let ds = vmap(|l: &Tensor| jvp(|l: &Tensor| solve(l).0, l, 1.0).1)(&lams);
    for i in 0..3 {
        let one = jvp(|l: &Tensor| solve(l).0, &lams.index(i), 1.0).1;
        close(&ds.index(i), &one.to_vec::<f64>(), 1e-12, "vmap vs loop");
    }
}

#[test]
fn simplex_and_ball_constrained_derivatives_match_the_projection() {
    // argmin over C of ‖x − θ‖² is proj_C(θ): its derivative is the projection's.
    let f = |x: &Tensor, t: &Tensor| ((x - t) * (x - t)).sum_all();
    let theta = v(&[0.5, 1.0, -0.2, 0.7]);
    let tangent = v(&[0.3, -1.0, 0.6, 0.2]);
    type Proj = fn(&Tensor) -> Tensor;
    let cases: [(&str, Proj); 3] = [
        ("simplex", |x| project_simplex(x, 1.0)),
        ("l1", |x| project_l1_ball(x, 1.5)),
        ("l2", |x| project_l2_ball(x, 1.0)),
    ];
    for (name, proj) in cases {
        let x0 = Tensor::from_vec(vec![0.25; 4], &[4]);
        let solve = projected_gradient_implicit(f, proj, &x0, 0.25, 1e-13, 1000, Solver::bicgstab());
        let (x, info) = solve(&theta);
        assert!(info.converged.item::<bool>(), "{name}");
        close(&x, &proj(&theta).to_vec::<f64>(), 1e-10, name);
        let (_, want) = jvp(proj, &theta, &tangent);
        let (_, got) = jvp(|t: &Tensor| solve(t).0, &theta, &tangent);
        close(&got, &want.to_vec::<f64>(), 1e-8, &format!("{name} jvp"));
        let g = grad(|t: &Tensor| (solve(t).0 * &tangent).sum_all())(&theta);
        let gw = grad(|t: &Tensor| (proj(t) * &tangent).sum_all())(&theta);
        close(&g, &gw.to_vec::<f64>(), 1e-8, &format!("{name} grad"));
    }
}

#[test]
fn anderson_acceleration_converges_faster_and_differentiates() {
    // x = 0.9·A·tanh(x) + θ: a contraction with slow plain iteration (factor up to 0.9·‖A‖).
    let a = m(&[&[0.9, 0.1, 0.0], &[0.1, 0.8, 0.1], &[0.0, 0.1, 0.9]]);
    let t = move |x: &Tensor, th: &Tensor| a.matmul(&x.tanh()) * 0.9 + th;
    let th = v(&[0.3, -0.2, 0.5]);
    let x0 = th.zeros_like();
    let (xp, plain) = fixed_point(t.clone(), &x0, &th, 1e-12, 5000);
    let (xa, acc) = fixed_point_anderson(t.clone(), &x0, &th, 5, 1.0, 1e-12, 500);
    assert!(plain.converged.item::<bool>() && acc.converged.item::<bool>());
    close(&xa, &xp.to_vec::<f64>(), 1e-10, "same fixed point");
    let (ip, ia) = (plain.iterations.item::<i64>(), acc.iterations.item::<i64>());
    assert!(ia * 3 < ip, "Anderson {ia} iterations vs plain {ip}");
    // Implicit derivative through Anderson, against finite differences.
    let (t2, x02) = (t.clone(), x0.clone());
    let solve = custom_fixed_point(
        t.clone(),
        move |th: &Tensor| fixed_point_anderson(t2.clone(), &x02, th, 5, 1.0, 1e-13, 500),
        Solver::gmres(3),
    );
    let cot = v(&[1.0, -0.5, 0.25]);
    let g = grad(|th: &Tensor| (solve(th).0 * &cot).sum_all())(&th);
    let h = 1e-6;
    let want: Vec<f64> = (0..3)
        .map(|i| {
            let bump = |s: f64| {
                let mut tv = th.to_vec::<f64>();
                tv[i] += s;
                (solve(&v(&tv)).0 * &cot).sum_all().item::<f64>()
            };
            (bump(h) - bump(-h)) / (2.0 * h)
        })
        .collect();
    close(&g, &want, 1e-6, "Anderson implicit grad vs differences");
    // vmap over θ equals a loop, and jit equals eager.
    let ths = m(&[&[0.3, -0.2, 0.5], &[0.0, 1.0, -1.0]]);
    let xs = vmap(|th: &Tensor| solve(th).0)(&ths);
    let jitted = jit(|th: &Tensor| solve(th).0);
    for i in 0..2 {
        let one = solve(&ths.index(i)).0.to_vec::<f64>();
        close(&xs.index(i), &one, 1e-10, "vmap vs loop");
        close(&jitted(&ths.index(i)), &one, 1e-12, "jit vs eager");
    }
}

#[test]
fn ridge_known_values_through_lbfgs() {
    let optimality = |w: &Tensor, lam: &Tensor| {
        let (_, pb) = vjp(|w: &Tensor| ridge_loss(w, lam), w);
        pb.call(1.0)
    };
    let solve = custom_root(
        optimality,
        |lam: &Tensor| lbfgs(ridge_loss, &Tensor::zeros(&[2], DType::F64), lam, 5, 1e-12, 200),
        Solver::cg(),
    );
    check_ridge(&solve, "L-BFGS");
    // L-BFGS needs far fewer steps than gradient descent here.
    let (_, info) = lbfgs(ridge_loss, &Tensor::zeros(&[2], DType::F64), &Tensor::scalar(0.1), 5, 1e-12, 200);
    let (_, gd) =
        gradient_descent(ridge_loss, &Tensor::zeros(&[2], DType::F64), &Tensor::scalar(0.1), 0.4, 1e-12, 2000);
    assert!(info.iterations.item::<i64>() < gd.iterations.item::<i64>());
}

/// The rule this library relies on: a `custom_vjp` function applied to tangents inside a
/// `custom_jvp` rule is evaluated in forward mode and transposed through its `bwd` in
/// reverse mode (here deliberately inconsistent, to see which one runs).
#[test]
fn custom_vjp_on_tangents_is_transposed_by_its_bwd() {
    let lin = custom_vjp(|t: &Tensor| t * 3.0, |t: &Tensor| (t * 3.0, ()), |_: &(), c: &Tensor| c * 5.0);
    let f = custom_jvp(|x: &Tensor| x * 2.0, move |x: &Tensor, t: &Tensor| (x * 2.0, lin(t)));
    assert_eq!(jvp(&f, &Tensor::scalar(1.0), 1.0).1.item::<f64>(), 3.0);
    assert_eq!(grad(&f)(&Tensor::scalar(1.0)).item::<f64>(), 5.0);
    assert_eq!(jit(grad(&f))(&Tensor::scalar(1.0)).item::<f64>(), 5.0);
    let gs = vmap(grad(&f))(&v(&[1.0, 2.0]));
    assert_eq!(gs.to_vec::<f64>(), vec![5.0, 5.0]);
}

#[test]
fn linear_solve_direct_spd_and_nonsymmetric_gradients() {
    check_linear_solve(spd(), v(&[0.3, 0.3]), Solver::direct(), "direct on SPD");
    check_linear_solve(nonsym(), v(&[0.1, -0.05]), Solver::direct(), "direct non-symmetric");
    // Agrees with the iterative solvers on the same system.
    let b = v(&[1.0, 2.0, 3.0]);
    let (xd, info) = linear_solve(family(nonsym()), &v(&[0.1, -0.05]), &b, &Solver::direct());
    let (xg, _) = linear_solve(family(nonsym()), &v(&[0.1, -0.05]), &b, &Solver::gmres(3));
    assert!(info.converged.item::<bool>());
    for (d, g) in xd.to_vec::<f64>().iter().zip(xg.to_vec::<f64>()) {
        assert!((d - g).abs() < 1e-8, "{d} vs {g}");
    }
    // A singular operator is flagged, not silently solved.
    let zero = |_: &Tensor, u: &Tensor| u * 0.0;
    let (_, info) = linear_solve(zero, &v(&[0.0]), &b, &Solver::direct());
    assert!(!info.converged.item::<bool>());
}

// ---- Second derivatives through the implicit rules ----

/// The closed form at λ = 0.1: M = XᵀX + 3λI, w = M⁻¹Xᵀy; M dw = −3w and M d²w = −6 dw,
/// so dw/dλ = −3M⁻¹w and d²w/dλ² = 18 M⁻²w.
fn ridge_closed_form(lam: f64) -> ([f64; 2], [f64; 2], [f64; 2]) {
    let (a, b) = (2.0 + 3.0 * lam, 1.0); // M = [[a, b], [b, a]]
    let det = a * a - b * b;
    let inv = |u: [f64; 2]| [(a * u[0] - b * u[1]) / det, (a * u[1] - b * u[0]) / det];
    let w = inv([4.0, 5.0]); // Xᵀy = (4, 5)
    let dw = inv(w).map(|e| -3.0 * e);
    let d2w = inv(inv(w)).map(|e| 18.0 * e);
    (w, dw, d2w)
}

fn check_ridge_second_order(solve: impl Fn(&Tensor) -> (Tensor, SolveInfo) + Clone, what: &str) {
    let (w, dw, d2w) = ridge_closed_form(0.1);
    close(&v(&w), &W_STAR, 1e-8, "closed-form w*");
    close(&v(&dw), &DW_DLAMBDA, 1e-8, "closed-form dw/dλ");
    let lam = Tensor::scalar(0.1);
    let tol = 1e-7;
    for k in 0..2 {
        let s = solve.clone();
        let wk = move |l: &Tensor| s(l).0.index(k as isize);
        let want = [d2w[k]];
        close(&grad(grad(wk.clone()))(&lam), &want, tol, &format!("{what}: grad(grad) d²w{k}/dλ²"));
        close(&hessian(wk.clone())(&lam), &want, tol, &format!("{what}: hessian d²w{k}/dλ²"));
        let (g, h) = jvp(grad(wk.clone()), &lam, 1.0);
        close(&g, &[dw[k]], tol, &format!("{what}: jvp(grad) primal"));
        close(&h, &want, tol, &format!("{what}: jvp(grad) d²w{k}/dλ²"));
        // Eager: vjp of a vjp (no jit anywhere).
        let w2 = wk.clone();
        let (_, pb) = vjp(
            move |l: &Tensor| {
                let (_, pb) = vjp(&w2, l);
                pb.call(1.0)
            },
            &lam,
        );
        close(&pb.call(1.0), &want, tol, &format!("{what}: eager vjp(vjp) d²w{k}/dλ²"));
        // Under jit.
        let w3 = wk.clone();
        let jitted = jit(move |l: &Tensor| grad(grad(w3.clone()))(l));
        close(&jitted(&lam), &want, tol, &format!("{what}: jit(grad(grad)) d²w{k}/dλ²"));
    }
    let s = solve.clone();
    let jac2 = jacfwd(jacrev(move |l: &Tensor| s(l).0))(&lam);
    close(&jac2, &d2w, tol, &format!("{what}: jacfwd(jacrev)"));
    // Under vmap: second derivatives at several λ against the closed form.
    let lams = [0.05, 0.1, 0.5];
    let s = solve.clone();
    let d2 = vmap(move |l: &Tensor| {
        let s = s.clone();
        grad(grad(move |l: &Tensor| s(l).0.sum_all()))(l)
    })(&v(&lams));
    let s = solve.clone();
    let hs = vmap(jacfwd(jacrev(move |l: &Tensor| s(l).0)))(&v(&lams));
    for (i, &l) in lams.iter().enumerate() {
        let (_, _, d2w) = ridge_closed_form(l);
        close(&d2.index(i as isize), &[d2w[0] + d2w[1]], tol, &format!("{what}: vmap(grad(grad)) at λ = {l}"));
        close(&hs.index(i as isize), &d2w, tol, &format!("{what}: vmap(jacfwd(jacrev)) at λ = {l}"));
    }
}

#[test]
fn ridge_second_derivatives_through_cg() {
    check_ridge_second_order(&ridge_cg(), "CG");
}

#[test]
fn ridge_second_derivatives_through_gradient_descent() {
    check_ridge_second_order(&ridge_gd(), "GD");
}

/// A(p) = A0 + diag(exp(p)) (non-linear in p): the Hessian of a scalar function of the
/// solution against central differences of the gradient, through every mode.
fn check_solve_hessian(a0: Tensor, solver: Solver, what: &str) {
    let b = v(&[1.0, -2.0, 0.5]);
    let cot = v(&[0.3, 1.0, -0.7]);
    let mv = move |p: &Tensor, u: &Tensor| a0.matmul(u) + p.exp() * u;
    let loss = move |p: &Tensor| {
        let (x, _) = linear_solve(mv.clone(), p, &b, &solver);
        (&x * &cot).sum_all() + (&x * &x).sum_all() * 0.5
    };
    let p = v(&[0.1, -0.2, 0.3]);
    let g = grad(loss.clone());
    let h = 1e-5;
    let mut want = vec![0.0; 9];
    for j in 0..3 {
        let bump = |s: f64| {
            let mut pv = p.to_vec::<f64>();
            pv[j] += s;
            g(&v(&pv)).to_vec::<f64>()
        };
        let (up, down) = (bump(h), bump(-h));
        for i in 0..3 {
            want[i * 3 + j] = (up[i] - down[i]) / (2.0 * h);
        }
    }
    let tol = 1e-6;
    let hess = hessian(loss.clone())(&p);
    assert_eq!(hess.shape(), vec![3, 3], "{what}: Hessian shape");
    close(&hess, &want, tol, &format!("{what}: hessian vs differences of the gradient"));
    // Row by row through grad(grad), jvp(grad) and eager vjp(vjp).
    for i in 0..3 {
        let row: Vec<f64> = want[i * 3..i * 3 + 3].to_vec();
        let l = loss.clone();
        let gi = grad(move |p: &Tensor| grad(l.clone())(p).index(i as isize))(&p);
        close(&gi, &row, tol, &format!("{what}: grad(grad) row {i}"));
        let mut e = vec![0.0; 3];
        e[i] = 1.0;
        let (_, col) = jvp(grad(loss.clone()), &p, &v(&e));
        close(&col, &row, tol, &format!("{what}: jvp(grad) column {i}"));
        let l = loss.clone();
        let (_, pb) = vjp(
            move |p: &Tensor| {
                let (_, pb) = vjp(&l, p);
                pb.call(1.0).index(i as isize)
            },
            &p,
        );
        close(&pb.call(1.0), &row, tol, &format!("{what}: eager vjp(vjp) row {i}"));
    }
    // vmap of the Hessian over two parameter vectors equals a loop.
    let ps = m(&[&[0.1, -0.2, 0.3], &[0.0, 0.4, -0.1]]);
    let hs = vmap(hessian(loss.clone()))(&ps);
    for i in 0..2 {
        let one = hessian(loss.clone())(&ps.index(i));
        close(&hs.index(i), &one.to_vec::<f64>(), 1e-9, &format!("{what}: vmap(hessian) vs loop"));
    }
}

#[test]
fn solve_hessian_cg_spd() {
    check_solve_hessian(spd(), Solver::cg(), "CG on SPD");
}

#[test]
fn solve_hessian_gmres_and_bicgstab_nonsymmetric() {
    check_solve_hessian(nonsym(), Solver::gmres(3), "GMRES(3) non-symmetric");
    check_solve_hessian(nonsym(), Solver::bicgstab(), "BiCGStab non-symmetric");
}

// ---- L-BFGS with a strong Wolfe line search ----

fn rosenbrock(x: &Tensor, _: &()) -> Tensor {
    let (a, b) = (x.index(0), x.index(1));
    (1.0 - &a).square() + (&b - &a * &a).square() * 100.0
}

#[test]
fn lbfgs_converges_on_rosenbrock() {
    let (x, info) = lbfgs(rosenbrock, &v(&[-1.2, 1.0]), &(), 10, 1e-9, 200);
    eprintln!(
        "rosenbrock: x = {:?}, iterations {}, gradient norm {}",
        x.to_vec::<f64>(),
        info.iterations.item::<i64>(),
        info.residual.item::<f64>()
    );
    assert!(info.converged.item::<bool>(), "converged (gradient norm {})", info.residual.item::<f64>());
    close(&x, &[1.0, 1.0], 1e-7, "Rosenbrock minimum");
    assert!(info.iterations.item::<i64>() < 100, "iterations {}", info.iterations.item::<i64>());
    // Under jit (the same plan as eager), and under vmap over starting points (the line
    // search's state machine batched: each lane brackets and zooms on its own).
    let solve = |x0: &Tensor| lbfgs(rosenbrock, x0, &(), 10, 1e-9, 200).0;
    close(&jit(solve)(&v(&[-1.2, 1.0])), &x.to_vec::<f64>(), 1e-12, "jit vs eager");
    let xs = vmap(solve)(&m(&[&[-1.2, 1.0], &[2.0, -1.5], &[0.0, 0.0]]));
    for i in 0..3 {
        close(&xs.index(i), &[1.0, 1.0], 1e-7, &format!("vmap lane {i}"));
    }
}

// ---- Newton–CG ----

fn ridge_newton() -> impl Fn(&Tensor) -> (Tensor, SolveInfo) {
    newton_cg_implicit(ridge_loss, &Tensor::zeros(&[2], DType::F64), 1e-12, 50, Solver::cg())
}

#[test]
fn ridge_known_values_through_newton_cg() {
    let solve = ridge_newton();
    check_ridge(&solve, "Newton-CG");
    // A quadratic: a few truncated Newton steps (the inner CG stops at the forcing term
    // min(0.5, √‖g‖)·‖g‖, so the first steps are inexact).
    let (_, info) = solve(&Tensor::scalar(0.1));
    assert!(info.iterations.item::<i64>() <= 5, "Newton-CG iterations {}", info.iterations.item::<i64>());
    check_ridge_second_order(&solve, "Newton-CG");
}

/// L2-regularised logistic regression on 12 fixed points in 3-d (labels not separable by
/// construction): strictly convex, not quadratic.
fn logistic_data() -> (Tensor, Tensor) {
    let (n, d) = (12usize, 3usize);
    let x: Vec<f64> = (0..n * d).map(|k| ((k / d) as f64 * 1.3 + (k % d) as f64 * 0.7 + 0.5).sin() * 2.0).collect();
    let y: Vec<f64> = (0..n).map(|i| if ((i as f64) * 2.1).sin() + 0.3 * x[i * d] > 0.0 { 1.0 } else { 0.0 }).collect();
    (Tensor::from_vec(x, &[n, d]), Tensor::from_vec(y, &[n]))
}

fn logistic_loss(w: &Tensor, lam: &Tensor) -> Tensor {
    let (x, y) = logistic_data();
    let z = x.matmul(w);
    (z.softplus() - &y * &z).mean_all() + lam * (w * w).sum_all() * 0.5
}

#[test]
fn newton_cg_logistic_regression_matches_lbfgs_in_few_iterations() {
    let lam = Tensor::scalar(0.05);
    let x0 = Tensor::zeros(&[3], DType::F64);
    let (wn, info_n) = newton_cg(logistic_loss, &x0, &lam, 1e-11, 50);
    let (wl, info_l) = lbfgs(logistic_loss, &x0, &lam, 10, 1e-11, 500);
    let (wg, info_g) = gradient_descent(logistic_loss, &x0, &lam, 1.0, 1e-11, 100_000);
    assert!(info_n.converged.item::<bool>() && info_l.converged.item::<bool>() && info_g.converged.item::<bool>());
    close(&wn, &wl.to_vec::<f64>(), 1e-8, "Newton-CG vs L-BFGS");
    close(&wn, &wg.to_vec::<f64>(), 1e-8, "Newton-CG vs gradient descent");
    let (kn, kl, kg) =
        (info_n.iterations.item::<i64>(), info_l.iterations.item::<i64>(), info_g.iterations.item::<i64>());
    eprintln!("logistic regression iterations: Newton-CG {kn}, L-BFGS {kl}, gradient descent {kg}");
    assert!(kn <= 10, "Newton-CG took {kn} iterations");
    assert!(kn < kl && kl < kg, "Newton-CG {kn} < L-BFGS {kl} < GD {kg}");
    // The gradient really is zero there (not only small steps).
    let g = grad(|w: &Tensor| logistic_loss(w, &lam))(&wn);
    assert!(g.abs().max_all().item::<f64>() < 1e-10);
}

#[test]
fn newton_cg_implicit_gradient_matches_finite_differences() {
    let solve = newton_cg_implicit(logistic_loss, &Tensor::zeros(&[3], DType::F64), 1e-12, 50, Solver::cg());
    let cot = v(&[1.0, -0.5, 2.0]);
    let obj = |l: &Tensor| (solve(l).0 * &cot).sum_all();
    let lam = 0.05;
    let g = grad(obj)(&Tensor::scalar(lam)).item::<f64>();
    let h = 1e-5;
    let f = |l: f64| obj(&Tensor::scalar(l)).item::<f64>();
    let fd = (f(lam + h) - f(lam - h)) / (2.0 * h);
    assert!((g - fd).abs() < 1e-6 * fd.abs().max(1.0), "implicit {g} vs differences {fd}");
    // Second derivative against differences of the implicit gradient.
    let g2 = grad(grad(obj))(&Tensor::scalar(lam)).item::<f64>();
    let gl = |l: f64| grad(obj)(&Tensor::scalar(l)).item::<f64>();
    let fd2 = (gl(lam + h) - gl(lam - h)) / (2.0 * h);
    assert!((g2 - fd2).abs() < 1e-5 * fd2.abs().max(1.0), "second derivative {g2} vs differences {fd2}");
    // jit and vmap agree with the eager gradient.
    close(&jit(grad(obj))(&Tensor::scalar(lam)), &[g], 1e-10, "jit");
    let gs = vmap(grad(obj))(&v(&[0.05, 0.2]));
    close(&gs.index(0), &[g], 1e-10, "vmap");
}

// ---- GMRES with Givens rotations on ill-conditioned systems ----

/// A 20×20 non-symmetric system with a graded diagonal 1 … 10^(−scale) (condition number
/// about 10^scale): full GMRES(20) solves it in one or two cycles. (Solving the small
/// least-squares problem through its normal equations squares that condition number: at
/// scale 7 it stalls with a relative residual near 1e-4.)
fn graded(scale: f64) -> (Tensor, Tensor) {
    let n = 20usize;
    let d: Vec<f64> = (0..n).map(|i| 10f64.powf(-scale * i as f64 / (n - 1) as f64)).collect();
    let a: Vec<f64> = (0..n * n)
        .map(|k| {
            let (i, j) = (k / n, k % n);
            let band = if i == j {
                d[i]
            } else if j == i + 1 {
                0.5 * d[i]
            } else if i == j + 1 {
                -0.3 * d[j + 1]
            } else {
                0.0
            };
            band + 0.01 * (i as f64).sin() * (j as f64).cos() * d[j]
        })
        .collect();
    let b: Vec<f64> = (0..n).map(|i| (i as f64 + 1.0).sin()).collect();
    (Tensor::from_vec(a, &[n, n]), Tensor::from_vec(b, &[n]))
}

#[test]
fn gmres_solves_an_ill_conditioned_nonsymmetric_system() {
    for scale in [5.0, 7.0] {
        let (a, b) = graded(scale);
        let mv = |a: &Tensor, u: &Tensor| a.matmul(u);
        let (x, info) = linear_solve(mv, &a, &b, &Solver::gmres(20));
        assert!(info.converged.item::<bool>(), "scale {scale}: converged (residual {})", info.residual.item::<f64>());
        let k = info.iterations.item::<i64>();
        assert!(k <= 40, "scale {scale}: {k} matrix-vector products");
        let rel = ((a.matmul(&x) - &b).square().sum_all().sqrt() / b.square().sum_all().sqrt()).item::<f64>();
        assert!(rel <= 1e-10, "scale {scale}: relative residual {rel}");
        let (xd, _) = linear_solve(mv, &a, &b, &Solver::direct());
        let err = ((&x - &xd).abs().max_all() / xd.abs().max_all()).item::<f64>();
        assert!(err < 1e-8, "scale {scale}: relative error against LU {err}");
        // Gradients in b agree with the direct solve's too.
        let cot = Tensor::from_vec((0..20).map(|i| (i as f64 * 0.37).cos()).collect(), &[20]);
        let gb = |s: Solver| grad(|b: &Tensor| (linear_solve(mv, &a, b, &s).0 * &cot).sum_all())(&b);
        let (g, gd) = (gb(Solver::gmres(20)), gb(Solver::direct()));
        let err = ((&g - &gd).abs().max_all() / gd.abs().max_all()).item::<f64>();
        assert!(err < 1e-8, "scale {scale}: gradient relative error {err}");
    }
}

/// Second derivatives through `custom_fixed_point` with a non-symmetric tangent operator
/// (the transposed solves come from `linear_transpose` of a jvp): the Hessian of a scalar
/// function of x(θ), x = A·tanh(x) / 2 + θ, against differences of its gradient.
#[test]
fn fixed_point_hessian_with_a_nonsymmetric_operator() {
    let a = m(&[&[0.6, 0.3], &[-0.2, 0.5]]);
    let t = move |x: &Tensor, th: &Tensor| a.matmul(&x.tanh()) * 0.5 + th;
    for (name, ts) in [("BiCGStab", Solver::bicgstab().tol(1e-13)), ("GMRES(2)", Solver::gmres(2).tol(1e-13))] {
        let t2 = t.clone();
        let fp = custom_fixed_point(
            t.clone(),
            move |th: &Tensor| fixed_point(t2.clone(), &th.zeros_like(), th, 1e-14, 1000),
            ts,
        );
        let fp = std::sync::Arc::new(fp);
        let cot = v(&[1.0, -2.0]);
        let obj = move |th: &Tensor| {
            let x = (*fp)(th).0;
            (&x * &cot).sum_all() + x.square().sum_all()
        };
        let th = v(&[0.3, -0.4]);
        let g = grad(obj.clone());
        let h = 1e-5;
        let mut want = vec![0.0; 4];
        for j in 0..2 {
            let bump = |s: f64| {
                let mut tv = th.to_vec::<f64>();
                tv[j] += s;
                g(&v(&tv)).to_vec::<f64>()
            };
            let (up, down) = (bump(h), bump(-h));
            for i in 0..2 {
                want[i * 2 + j] = (up[i] - down[i]) / (2.0 * h);
            }
        }
        close(&hessian(obj.clone())(&th), &want, 1e-6, &format!("{name}: hessian vs differences"));
        let (_, col) = jvp(grad(obj.clone()), &th, &v(&[1.0, 0.0]));
        close(&col, &[want[0], want[2]], 1e-6, &format!("{name}: jvp(grad)"));
        let hs = vmap(hessian(obj.clone()))(&m(&[&[0.3, -0.4], &[0.3, -0.4]]));
        close(&hs.index(1), &want, 1e-6, &format!("{name}: vmap(hessian)"));
    }
}

/// A truncated Neumann tangent solve (Lorraine et al.): `custom_root` on α∇L gives the
/// K-term series `dw/dλ ≈ −α Σ_{k<K} (I − αM)^k ∂F/∂λ`, finite (not NaN) though the series
/// never meets its tolerance, the same in forward and reverse mode; many terms give the
/// exact derivative.
#[test]
fn truncated_neumann_tangent_solve_is_the_k_term_series() {
    let alpha = 0.4;
    let lam = 0.1;
    let series = |k_terms: usize| {
        let optimality = move |w: &Tensor, lam: &Tensor| {
            let (_, pb) = vjp(|w: &Tensor| ridge_loss(w, lam), w);
            pb.call(1.0) * alpha
        };
        let tangent = Solver::neumann().max_iter(k_terms).truncated().symmetric(true);
        custom_root(optimality, |lam: &Tensor| ridge_cg()(lam), tangent)
    };
    // The same series by hand: M = (2/3)XᵀX + 2λI = [[4/3 + 2λ, 2/3], [2/3, 4/3 + 2λ]],
    // ∂F/∂λ = 2w*.
    let by_hand = |k_terms: usize| {
        let m = [[4.0 / 3.0 + 2.0 * lam, 2.0 / 3.0], [2.0 / 3.0, 4.0 / 3.0 + 2.0 * lam]];
        let mut term = [2.0 * alpha * W_STAR[0], 2.0 * alpha * W_STAR[1]];
        let mut sum = [0.0, 0.0];
        for _ in 0..k_terms {
            sum = [sum[0] + term[0], sum[1] + term[1]];
            term = [
                term[0] - alpha * (m[0][0] * term[0] + m[0][1] * term[1]),
                term[1] - alpha * (m[1][0] * term[0] + m[1][1] * term[1]),
            ];
        }
        [-sum[0], -sum[1]]
    };
    for k_terms in [3, 8] {
        let solve = series(k_terms);
        let want = by_hand(k_terms);
        let (_, dw) = jvp(|l: &Tensor| solve(l).0, &Tensor::scalar(lam), 1.0);
        // W_STAR has 9 digits; the series inherits their error.
        close(&dw, &want, 1e-7, &format!("jvp, {k_terms} terms"));
        for (i, &w) in want.iter().enumerate().take(2) {
            let g = grad(|l: &Tensor| solve(l).0.index(i as isize))(&Tensor::scalar(lam));
            close(&g, &[w], 1e-7, &format!("grad of component {i}, {k_terms} terms"));
        }
        let off = (want[0] - DW_DLAMBDA[0]).abs().max((want[1] - DW_DLAMBDA[1]).abs());
        assert!(off > 1e-3, "{k_terms} terms should be visibly truncated: {off}");
    }
    // Enough terms: the exact derivative (the untruncated solver would agree).
    let s = series(400);
    let (_, dw) = jvp(move |l: &Tensor| s(l).0, &Tensor::scalar(lam), 1.0);
    close(&dw, &DW_DLAMBDA, 1e-8, "400 terms");
    // Without `truncated`, 8 terms miss the tolerance: NaN, never a silent approximation.
    let strict = custom_root(
        move |w: &Tensor, lam: &Tensor| vjp(|w: &Tensor| ridge_loss(w, lam), w).1.call(1.0) * alpha,
        |lam: &Tensor| ridge_cg()(lam),
        Solver::neumann().max_iter(8).symmetric(true),
    );
    let (_, dw) = jvp(move |l: &Tensor| strict(l).0, &Tensor::scalar(lam), 1.0);
    assert!(dw.to_vec::<f64>().iter().all(|d| d.is_nan()), "untruncated: {dw:?}");
}
