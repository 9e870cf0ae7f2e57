//! Stiff problems and the implicit solvers (issue 16): Kvaerno3 and Kvaerno5 on Robertson's
//! problem against its reference and against Dopri5's step count, a stiff linear problem,
//! the linear ODE's known values and gradients by both reverse-mode methods, convergence
//! orders with fixed steps, jit against eager, vmap against a loop, and Newton failures (with
//! finite gradients through the rejected steps).

use cotangent::diffeq::{solve, Gradient, Options, Solver};
use cotangent::*;

const IMPLICIT: [Solver; 2] = [Solver::Kvaerno3, Solver::Kvaerno5];

/// Robertson's chemical kinetics: k1 = 0.04, k2 = 3e7, k3 = 1e4.
fn robertson(_t: &Tensor, y: &Tensor, _: &()) -> Tensor {
    let (y1, y2, y3) = (y.index(0), y.index(1), y.index(2));
    let r1 = &y1 * 0.04;
    let r2 = y2.square() * 3e7;
    let r3 = &y2 * &y3 * 1e4;
    stack(&[-&r1 + &r3, &r1 - &r2 - &r3, r2], 0)
}

const ROBERTSON_40: [f64; 3] = [0.7158270687, 9.185534764e-6, 0.2841637457];

fn robertson_y0() -> Tensor {
    Tensor::from_vec(vec![1.0, 0.0, 0.0], &[3])
}

#[test]
fn robertson_to_t40_matches_the_reference_with_far_fewer_steps_than_dopri5() {
    let opts = Options { rtol: 1e-6, atol: 1e-10, ..Options::default() };
    let mut implicit_steps = vec![];
    for s in IMPLICIT {
        let clock = std::time::Instant::now();
        let sol = solve(robertson, s, 0.0, 40.0, &robertson_y0(), &(), &[], &opts);
        sol.expect_success();
        println!("{s:?}: {:.3} s", clock.elapsed().as_secs_f64());
        let y = sol.ys[0].to_vec::<f64>();
        for k in 0..3 {
            // Global error within a small multiple of the local tolerance.
            let tol = 20.0 * (1e-6 * ROBERTSON_40[k] + 1e-10);
            assert!((y[k] - ROBERTSON_40[k]).abs() < tol, "{s:?}: y(40) = {y:?}");
        }
        // Mass is conserved.
        assert!((y.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{s:?}: {y:?}");
        let (acc, rej, nfe) =
            (sol.stats.accepted.item::<i64>(), sol.stats.rejected.item::<i64>(), sol.stats.nfe.item::<i64>());
        println!("{s:?}: {acc} accepted, {rej} rejected, {nfe} evaluations");
        implicit_steps.push(acc + rej);
    }
    // The explicit pair is held to its stability limit (|λ| ≈ 1e4): thousands of steps.
    let o = Options { max_steps: 100_000, ..opts };
    let clock = std::time::Instant::now();
    let sol = solve(robertson, Solver::Dopri5, 0.0, 40.0, &robertson_y0(), &(), &[], &o);
    sol.expect_success();
    println!("Dopri5: {:.3} s", clock.elapsed().as_secs_f64());
    let (acc, rej, nfe) =
        (sol.stats.accepted.item::<i64>(), sol.stats.rejected.item::<i64>(), sol.stats.nfe.item::<i64>());
    println!("Dopri5: {acc} accepted, {rej} rejected, {nfe} evaluations");
    for (s, n) in IMPLICIT.iter().zip(&implicit_steps) {
        assert!(acc + rej > 20 * n, "{s:?}: {n} steps against Dopri5's {}", acc + rej);
    }
    // With the default max_steps Dopri5 does not reach t = 40 at all.
    let sol = solve(robertson, Solver::Dopri5, 0.0, 40.0, &robertson_y0(), &(), &[], &opts);
    assert_eq!(sol.result.item::<i64>(), 1);
}

/// y' = -1000 (y - cos t), y(0) = 0: y = A cos t + B sin t - A e^{-1000 t}.
fn stiff_cos(t: &Tensor, y: &Tensor, lam: &Tensor) -> Tensor {
    -(lam * (y - t.cos()))
}

fn stiff_cos_exact(t: f64) -> f64 {
    let l: f64 = 1000.0;
    let (a, b) = (l * l / (l * l + 1.0), l / (l * l + 1.0));
    a * t.cos() + b * t.sin() - a * (-l * t).exp()
}

#[test]
fn a_stiff_linear_problem_takes_few_implicit_steps() {
    let opts = Options { rtol: 1e-5, atol: 1e-7, ..Options::default() };
    let lam = Tensor::scalar(1000.0);
    let steps = |s: Solver| {
        let o = Options { max_steps: 100_000, ..opts };
        let sol = solve(stiff_cos, s, 0.0, 2.0, &Tensor::scalar(0.0), &lam, &[0.5, 2.0], &o);
        sol.expect_success();
        for (t, y) in sol.ts.iter().zip(&sol.ys) {
            let err = (y.item::<f64>() - stiff_cos_exact(*t)).abs();
            assert!(err < 1e-4, "{s:?}: error {err} at t = {t}");
        }
        let n = sol.stats.accepted.item::<i64>() + sol.stats.rejected.item::<i64>();
        println!("{s:?}: {n} steps, {} evaluations", sol.stats.nfe.item::<i64>());
        n
    };
    let explicit = [Solver::Dopri5, Solver::Tsit5].map(steps);
    for s in IMPLICIT {
        let n = steps(s);
        for e in explicit {
            // The explicit pairs sit at their stability limit h ≈ 3.3/1000 after the transient.
            assert!(e > 4 * n, "{s:?}: {n} steps, an explicit pair {e}");
        }
    }
}

const Z_T: [f64; 2] = [-0.7530904582, -1.6455326718];
const DL_DZ0: [f64; 2] = [-1.199311565, 0.4462211068];

fn linear(_t: &Tensor, z: &Tensor, a: &Tensor) -> Tensor {
    a.matmul(z)
}

fn a_matrix() -> Tensor {
    Tensor::from_vec(vec![-0.1, 2.0, -2.0, -0.1], &[2, 2])
}

fn z0() -> Tensor {
    Tensor::from_vec(vec![2.0, 0.0], &[2])
}

#[test]
fn linear_ode_known_values_and_gradients_by_both_methods() {
    let a = a_matrix();
    for (s, tol) in [(Solver::Kvaerno3, 1e-9), (Solver::Kvaerno5, 1e-11)] {
        let loss = |z: &Tensor, g: Gradient| {
            let o = Options { rtol: tol, atol: tol, gradient: g, max_steps: 20_000, ..Options::default() };
            let sol = solve(linear, s, 0.0, 1.0, z, &a, &[], &o);
            sol.ys[0].sum_all()
        };
        let o = Options { rtol: tol, atol: tol, max_steps: 20_000, ..Options::default() };
        let sol = solve(linear, s, 0.0, 1.0, &z0(), &a, &[], &o);
        sol.expect_success();
        let z = sol.ys[0].to_vec::<f64>();
        println!("{s:?}: z(T) = {z:?}, {} steps", sol.stats.accepted.item::<i64>());
        for k in 0..2 {
            assert!((z[k] - Z_T[k]).abs() < 1e-8, "{s:?}: z(T) = {z:?}");
        }
        for g in [Gradient::Discretise, Gradient::Adjoint] {
            let dz = grad(|z: &Tensor| loss(z, g))(&z0()).to_vec::<f64>();
            println!("{s:?} {g:?}: dL/dz0 = {dz:?}");
            for k in 0..2 {
                assert!((dz[k] - DL_DZ0[k]).abs() < 1e-7, "{s:?} {g:?}: dL/dz0 = {dz:?}");
            }
        }
        // Forward mode through the Newton iterations too.
        let e0 = Tensor::from_vec(vec![1.0, 0.0], &[2]);
        let t = jvp(|z: &Tensor| loss(z, Gradient::Discretise), &z0(), &e0).1.item::<f64>();
        assert!((t - DL_DZ0[0]).abs() < 1e-7, "{s:?}: forward {t}");
    }
}

/// Logistic growth y' = 2y(1 - y) from y0 = 0.1.
fn logistic(_t: &Tensor, y: &Tensor, _: &()) -> Tensor {
    y * (1.0 - y) * 2.0
}

fn logistic_exact(t: f64) -> f64 {
    1.0 / (1.0 + 9.0 * (-2.0 * t).exp())
}

/// Least-squares slope of log(err) against log(h).
fn slope(hs: &[f64], errs: &[f64]) -> f64 {
    let xs: Vec<f64> = hs.iter().map(|h| h.ln()).collect();
    let ys: Vec<f64> = errs.iter().map(|e| e.ln()).collect();
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let num: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let den: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    num / den
}

#[test]
fn fixed_steps_converge_at_orders_three_and_five() {
    for (s, p, hs) in
        [(Solver::Kvaerno3, 3.0, [0.1, 0.05, 0.025, 0.0125]), (Solver::Kvaerno5, 5.0, [0.2, 0.1, 0.05, 0.025])]
    {
        let errs: Vec<f64> = hs
            .iter()
            .map(|&h| {
                let o = Options { dt0: Some(h), fixed_steps: true, rtol: 1e-12, atol: 1e-12, ..Options::default() };
                let sol = solve(logistic, s, 0.0, 2.0, &Tensor::scalar(0.1), &(), &[], &o);
                sol.expect_success();
                assert_eq!(sol.stats.accepted.item::<i64>(), (2.0 / h).round() as i64);
                (sol.ys[0].item::<f64>() - logistic_exact(2.0)).abs()
            })
            .collect();
        let k = slope(&hs, &errs);
        println!("{s:?}: errors {errs:?}, slope {k}");
        assert!((k - p).abs() < 0.35, "{s:?}: slope {k}, errors {errs:?}");
    }
    // An explicit adaptive pair takes fixed steps too: order 5 for Dopri5.
    let errs: Vec<f64> = [0.1, 0.05]
        .iter()
        .map(|&h| {
            let o = Options { dt0: Some(h), fixed_steps: true, ..Options::default() };
            let sol = solve(logistic, Solver::Dopri5, 0.0, 2.0, &Tensor::scalar(0.1), &(), &[], &o);
            assert_eq!(sol.stats.accepted.item::<i64>(), (2.0 / h).round() as i64);
            assert_eq!(sol.stats.rejected.item::<i64>(), 0);
            (sol.ys[0].item::<f64>() - logistic_exact(2.0)).abs()
        })
        .collect();
    let k = (errs[0] / errs[1]).log2();
    assert!((k - 5.0).abs() < 0.6, "Dopri5 with fixed steps: errors {errs:?}");
}

#[test]
fn kvaerno_tableaus_satisfy_their_order_conditions() {
    for s in IMPLICIT {
        assert!(s.is_implicit() && s.is_adaptive());
        let t = s.tableau();
        let n = t.c.len();
        // Lower triangle with the diagonal: a[i][j] for j ≤ i.
        let a = |i: usize, j: usize| t.a[i].get(j).copied().unwrap_or(0.0);
        let gamma = t.a[1][1];
        for i in 1..n {
            assert_eq!(t.a[i].len(), i + 1, "{s:?}: row {i}");
            assert_eq!(t.a[i][i], gamma, "{s:?}: diagonal of row {i}");
            let row: f64 = t.a[i].iter().sum();
            assert!((row - t.c[i]).abs() < 1e-12, "{s:?}: row {i} sums to {row}, c = {}", t.c[i]);
        }
        // Stiffly accurate: b is the last row.
        assert_eq!(t.b, t.a[n - 1]);
        let e = t.e.clone().expect("embedded");
        let bh: Vec<f64> = t.b.iter().zip(&e).map(|(b, e)| b - e).collect();
        let ac = |i: usize| (0..n).map(|j| a(i, j) * t.c[j]).sum::<f64>();
        let acc = |i: usize| (0..n).map(|j| a(i, j) * t.c[j] * t.c[j]).sum::<f64>();
        let aac = |i: usize| (0..n).map(|j| a(i, j) * ac(j)).sum::<f64>();
        let check = |w: &[f64], order: usize, what: &str| {
            let sum = |g: &dyn Fn(usize) -> f64| (0..n).map(|i| w[i] * g(i)).sum::<f64>();
            let mut conds = vec![(sum(&|_| 1.0), 1.0), (sum(&|i| t.c[i]), 0.5)];
            if order >= 3 {
                conds.extend([(sum(&|i| t.c[i].powi(2)), 1.0 / 3.0), (sum(&ac), 1.0 / 6.0)]);
            }
            if order >= 4 {
                conds.extend([
                    (sum(&|i| t.c[i].powi(3)), 0.25),
                    (sum(&|i| t.c[i] * ac(i)), 1.0 / 8.0),
                    (sum(&acc), 1.0 / 12.0),
                    (sum(&aac), 1.0 / 24.0),
                ]);
            }
            if order >= 5 {
                conds.extend([
                    (sum(&|i| t.c[i].powi(4)), 0.2),
                    (sum(&|i| t.c[i].powi(2) * ac(i)), 0.1),
                    (sum(&|i| ac(i) * ac(i)), 1.0 / 20.0),
                    (sum(&|i| t.c[i] * acc(i)), 1.0 / 15.0),
                    (sum(&|i| t.c[i] * aac(i)), 1.0 / 30.0),
                    (sum(&|i| (0..n).map(|j| a(i, j) * t.c[j].powi(3)).sum::<f64>()), 1.0 / 20.0),
                    (sum(&|i| (0..n).map(|j| a(i, j) * t.c[j] * ac(j)).sum::<f64>()), 1.0 / 40.0),
                    (sum(&|i| (0..n).map(|j| a(i, j) * acc(j)).sum::<f64>()), 1.0 / 60.0),
                    (sum(&|i| (0..n).map(|j| a(i, j) * aac(j)).sum::<f64>()), 1.0 / 120.0),
                ]);
            }
            for (k, (got, want)) in conds.iter().enumerate() {
                assert!((got - want).abs() < 1e-9, "{s:?} {what}: order condition {k}: {got} != {want}");
            }
        };
        check(&t.b, t.order, "b");
        check(&bh, t.order - 1, "b̂");
        assert!(e.iter().any(|x| x.abs() > 1e-3));
    }
}

/// y' = -10 y³ from y0 = 10: y = 1/sqrt(0.01 + 20 t). Its Jacobian changes by orders of
/// magnitude within a large first step, so the frozen-Jacobian Newton iteration fails there.
fn cubic(_t: &Tensor, y: &Tensor, _: &()) -> Tensor {
    -(y * y * y * 10.0)
}

#[test]
fn a_failed_newton_solve_rejects_the_step_or_flags_the_result() {
    let exact = 1.0 / (0.01f64 + 20.0).sqrt();
    for s in IMPLICIT {
        // Adaptive, forced to start with a step of 1: Newton diverges, the step is rejected
        // and shrunk until it converges, and the answer is right.
        let o = Options { dt0: Some(1.0), rtol: 1e-8, atol: 1e-8, ..Options::default() };
        let sol = solve(cubic, s, 0.0, 1.0, &Tensor::scalar(10.0), &(), &[], &o);
        sol.expect_success();
        let y = sol.ys[0].item::<f64>();
        println!("{s:?}: {} rejected", sol.stats.rejected.item::<i64>());
        assert!(sol.stats.rejected.item::<i64>() >= 1, "{s:?}");
        assert!((y - exact).abs() < 1e-6, "{s:?}: {y} vs {exact}");
        // Fixed steps of 1: no answer rather than a wrong one.
        let o = Options { fixed_steps: true, ..o };
        let sol = solve(cubic, s, 0.0, 1.0, &Tensor::scalar(10.0), &(), &[], &o);
        assert_eq!(sol.result.item::<i64>(), 2, "{s:?}: {}", sol.ys[0].item::<f64>());
        // A step small enough for Newton is fine with fixed steps.
        let o = Options { dt0: Some(1e-4), ..o };
        let exact = 1.0 / (0.01f64 + 2.0).sqrt();
        let sol = solve(cubic, s, 0.0, 0.1, &Tensor::scalar(10.0), &(), &[], &o);
        sol.expect_success();
        let y = sol.ys[0].item::<f64>();
        println!("{s:?}: fixed steps of 1e-4 to t = 0.1: {y} vs {exact}, {} evaluations", sol.stats.nfe.item::<i64>());
        assert!((y - exact).abs() < 1e-5, "{s:?}: {y} vs {exact}");
    }
}

#[test]
#[should_panic(expected = "fixed_steps with Kvaerno3 needs Options::dt0")]
fn fixed_steps_without_a_step_is_an_error() {
    let o = Options { fixed_steps: true, ..Options::default() };
    solve(cubic, Solver::Kvaerno3, 0.0, 1.0, &Tensor::scalar(1.0), &(), &[], &o);
}

#[test]
fn jit_gives_the_eager_result() {
    let opts = Options { rtol: 1e-6, atol: 1e-10, ..Options::default() };
    for s in IMPLICIT {
        let run = |y0: &Tensor| {
            let sol = solve(robertson, s, 0.0, 40.0, y0, &(), &[], &opts);
            (sol.ys[0].clone(), sol.stats.nfe.clone(), sol.result.clone())
        };
        let (ye, ne, re) = run(&robertson_y0());
        let (yj, nj, rj) = jit(run)(&robertson_y0());
        assert_eq!((re.item::<i64>(), rj.item::<i64>()), (0, 0));
        assert_eq!(ne.item::<i64>(), nj.item::<i64>(), "{s:?}: the same steps");
        let (ye, yj) = (ye.to_vec::<f64>(), yj.to_vec::<f64>());
        for k in 0..3 {
            assert!((ye[k] - yj[k]).abs() <= 1e-12 * ye[k].abs().max(1e-6), "{s:?}: {ye:?} vs {yj:?}");
        }
    }
}

#[test]
fn vmap_over_initial_conditions_equals_a_loop() {
    let y0s = Tensor::from_vec(vec![1.0, 0.0, 0.0, 0.8, 0.0, 0.2, 0.5, 1e-5, 0.5], &[3, 3]);
    // Under vmap the examples' loops and Newton iterations run in lockstep (a batched
    // predicate runs both sides of each guard), so the bounded loop runs all of max_steps:
    // keep it near what the solves need.
    let opts = Options { rtol: 1e-6, atol: 1e-10, max_steps: 300, ..Options::default() };
    for s in IMPLICIT {
        let f = |y0: &Tensor| {
            let sol = solve(robertson, s, 0.0, 4.0, y0, &(), &[], &opts);
            (sol.ys[0].clone(), sol.stats.accepted.clone())
        };
        let clock = std::time::Instant::now();
        let (ys, acc) = vmap(f)(&y0s);
        let (ys, acc) = (ys.to_vec::<f64>(), acc.to_vec::<i64>());
        println!("{s:?}: vmap {:.3} s, steps {acc:?}", clock.elapsed().as_secs_f64());
        let clock = std::time::Instant::now();
        for i in 0..3 {
            let (row, n) = f(&y0s.index(i as isize));
            let row = row.to_vec::<f64>();
            assert_eq!(acc[i], n.item::<i64>(), "{s:?} example {i}: steps");
            for k in 0..3 {
                assert!((ys[3 * i + k] - row[k]).abs() < 1e-12, "{s:?} example {i}: {ys:?} vs {row:?}");
            }
        }
        println!("{s:?}: loop {:.3} s", clock.elapsed().as_secs_f64());
        // The examples differ (a batch of copies would pass the loop check trivially).
        assert!((ys[0] - ys[3]).abs() > 1e-3);
    }
}

/// Robertson with its rate constants as arguments.
fn robertson_k(_t: &Tensor, y: &Tensor, k: &Tensor) -> Tensor {
    let (y1, y2, y3) = (y.index(0), y.index(1), y.index(2));
    let r1 = &y1 * k.index(0);
    let r2 = y2.square() * k.index(1);
    let r3 = &y2 * &y3 * k.index(2);
    stack(&[-&r1 + &r3, &r1 - &r2 - &r3, r2], 0)
}

#[test]
fn robertson_gradients_through_the_newton_iterations_match_differences() {
    // d y3(10) / d(k1, k2, k3) by reverse mode through the implicit solve.
    let opts = Options { rtol: 1e-8, atol: 1e-12, ..Options::default() };
    let y3 =
        |k: &Tensor| solve(robertson_k, Solver::Kvaerno5, 0.0, 10.0, &robertson_y0(), k, &[], &opts).ys[0].index(2);
    let k = Tensor::from_vec(vec![0.04, 3e7, 1e4], &[3]);
    let clock = std::time::Instant::now();
    let value = y3(&k).item::<f64>();
    let t_value = clock.elapsed().as_secs_f64();
    let clock = std::time::Instant::now();
    let gf = grad(y3);
    let g = gf(&k).to_vec::<f64>();
    let t_grad = clock.elapsed().as_secs_f64();
    let clock = std::time::Instant::now();
    let g2 = gf(&k).to_vec::<f64>();
    let t_again = clock.elapsed().as_secs_f64();
    assert_eq!(g, g2);
    println!(
        "y3(10) = {value}: value {t_value:.3} s, gradient {t_grad:.3} s (traced and planned), again {t_again:.3} s"
    );
    let fds = central_differences(|k| y3(k).item::<f64>(), &k);
    for (j, &fd) in fds.iter().enumerate() {
        println!("dy3/dk{}: {} vs differences {fd}", j + 1, g[j]);
        assert!((g[j] - fd).abs() < 1e-3 * fd.abs(), "k{}: {} vs {fd}", j + 1, g[j]);
    }
}

#[test]
fn float32_states_and_trees_of_leaves_solve_too() {
    // A two-leaf state in f32: (u, v) with u' = -1000 (u - v), v' = -v.
    let f = |_t: &Tensor, (u, v): &(Tensor, Tensor), _: &()| ((u - v) * -1000.0, -v);
    let y0 = (Tensor::from_vec(vec![0.0f32, 1.0], &[2]), Tensor::from_vec(vec![1.0f32, 2.0], &[2]));
    let o = Options { rtol: 1e-4, atol: 1e-6, ..Options::default() };
    for s in IMPLICIT {
        let sol = solve(f, s, 0.0, 1.0, &y0, &(), &[], &o);
        sol.expect_success();
        let (u, v) = (&sol.ys[0].0, &sol.ys[0].1);
        assert_eq!((u.dtype(), v.dtype()), (DType::F32, DType::F32));
        let e = (-1f64).exp();
        // v = v0 e^{-t}; u follows v after the transient: u ≈ v0 (e^{-t} + e^{-t}/999).
        for (k, v0) in [1.0, 2.0].iter().enumerate() {
            let (uk, vk) = (u.to_vec::<f32>()[k] as f64, v.to_vec::<f32>()[k] as f64);
            assert!((vk - v0 * e).abs() < 1e-3, "{s:?}: v = {vk}");
            assert!((uk - v0 * e * 1000.0 / 999.0).abs() < 1e-3, "{s:?}: u = {uk}");
        }
        assert!(sol.stats.accepted.item::<i64>() < 100, "{s:?}");
    }
}

#[test]
fn robertson_gradient_through_a_rejected_diverged_newton_step_is_finite() {
    // With dt0 = 2.5e-3 the first Newton solves diverge and the first steps are rejected;
    // reverse mode through the rejected steps must contribute nothing (not 0·∞ = NaN).
    let k = Tensor::from_vec(vec![0.04, 3e7, 1e4], &[3]);
    let mut grads = vec![];
    for dt0 in [Some(2.5e-5), Some(2.5e-3), Some(1e-1), None] {
        let opts = Options { rtol: 1e-8, atol: 1e-12, dt0, ..Options::default() };
        let y3 = |k: &Tensor| {
            let sol = solve(robertson_k, Solver::Kvaerno5, 0.0, 10.0, &robertson_y0(), k, &[], &opts);
            sol.ys[0].index(2)
        };
        let sol = solve(robertson_k, Solver::Kvaerno5, 0.0, 10.0, &robertson_y0(), &k, &[], &opts);
        sol.expect_success();
        let rejected = sol.stats.rejected.item::<i64>();
        let g = grad(y3)(&k).to_vec::<f64>();
        println!("dt0 = {dt0:?}: {rejected} rejected, gradient {g:?}");
        assert!(g.iter().all(|x| x.is_finite()), "dt0 = {dt0:?}: gradient {g:?}");
        if dt0 == Some(2.5e-3) {
            assert!(rejected >= 1, "the large first step is rejected");
            let fds = central_differences(|k| y3(k).item::<f64>(), &k);
            for (j, &fd) in fds.iter().enumerate() {
                assert!((g[j] - fd).abs() < 1e-3 * fd.abs(), "k{}: {} vs differences {fd}", j + 1, g[j]);
            }
        }
        grads.push(g);
    }
    // The same derivative whichever first step the solve took.
    for g in &grads[1..] {
        for j in 0..3 {
            assert!((g[j] - grads[0][j]).abs() < 1e-3 * grads[0][j].abs(), "{grads:?}");
        }
    }
}

/// y' = -c y³.
fn cubic_c(_t: &Tensor, y: &Tensor, c: &Tensor) -> Tensor {
    -(y * y * y * c)
}

#[test]
fn gradients_through_rejected_newton_failures_match_the_exact_ones() {
    // Started with a step of 1 the Newton solves of the first steps diverge (see
    // `a_failed_newton_solve_rejects_the_step_or_flags_the_result`); y(1) = (1/y0² + 2c)^(-1/2)
    // has dy/dy0 = y³/y0³ and dy/dc = -y³.
    let (y0, c) = (10.0f64, 10.0f64);
    let y = 1.0 / (1.0 / (y0 * y0) + 2.0 * c).sqrt();
    let exact = [y.powi(3) / y0.powi(3), -y.powi(3)];
    for s in IMPLICIT {
        let o = Options { dt0: Some(1.0), rtol: 1e-9, atol: 1e-9, ..Options::default() };
        let sol = solve(cubic_c, s, 0.0, 1.0, &Tensor::scalar(y0), &Tensor::scalar(c), &[], &o);
        sol.expect_success();
        let rejected = sol.stats.rejected.item::<i64>();
        assert!(rejected >= 1, "{s:?}");
        let f = |p: &Tensor| solve(cubic_c, s, 0.0, 1.0, &p.index(0), &p.index(1), &[], &o).ys[0].clone();
        let g = grad(f)(&Tensor::from_vec(vec![y0, c], &[2])).to_vec::<f64>();
        println!("{s:?}: {rejected} rejected, gradient {g:?}, exact {exact:?}");
        for j in 0..2 {
            assert!((g[j] - exact[j]).abs() < 1e-4 * exact[j].abs(), "{s:?}: {g:?} vs {exact:?}");
        }
        // Forward mode through the same rejected steps.
        let p = Tensor::from_vec(vec![y0, c], &[2]);
        let t = jvp(f, &p, &Tensor::from_vec(vec![0.0, 1.0], &[2])).1.item::<f64>();
        assert!((t - exact[1]).abs() < 1e-4 * exact[1].abs(), "{s:?}: forward {t} vs {}", exact[1]);
    }
}

/// Central differences of `f` at the vector `k`, each entry stepped by 1e-4 of its value.
fn central_differences(f: impl Fn(&Tensor) -> f64, k: &Tensor) -> Vec<f64> {
    let kv = k.to_vec::<f64>();
    (0..kv.len())
        .map(|j| {
            let eps = 1e-4 * kv[j];
            let at = |d: f64| {
                let mut v = kv.clone();
                v[j] += d;
                f(&Tensor::from_vec(v, &[kv.len()]))
            };
            (at(eps) - at(-eps)) / (2.0 * eps)
        })
        .collect()
}
