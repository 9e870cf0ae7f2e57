//! Stochastic differential equations (issue 16): the virtual Brownian tree's law and
//! consistency (across queries, resolutions and transformations), the strong orders of
//! Euler–Maruyama, Milstein and SRA1 along one Brownian path, a pathwise gradient against its
//! closed form, the transformations through `sde_solve`, and bad input.

mod common;

use common::panic_message;
use cotangent::control::fori_loop;
use cotangent::diffeq::{sde_solve, solve, Options, SdeSolver, Solver, VirtualBrownianTree};
use cotangent::*;

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

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

fn var(x: &[f64]) -> f64 {
    let m = mean(x);
    x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (x.len() - 1) as f64
}

fn corr(x: &[f64], y: &[f64]) -> f64 {
    let (mx, my) = (mean(x), mean(y));
    let c: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum::<f64>() / (x.len() - 1) as f64;
    c / (var(x) * var(y)).sqrt()
}

/// Asserts `max |a - b| <= tol` (as f64).
#[track_caller]
fn close(a: &Tensor, b: &Tensor, tol: f64) {
    assert_eq!(a.ty(), b.ty());
    let (x, y) = (a.cast(DType::F64).to_vec::<f64>(), b.cast(DType::F64).to_vec::<f64>());
    let d = x.iter().zip(&y).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max);
    assert!(d <= tol, "max difference {d:.3e} > {tol:.1e}: {x:?} vs {y:?}");
}

fn s(t: f64) -> Tensor {
    Tensor::scalar(t)
}

/// Checks that `x` looks like N(0, v): mean and variance within 4 standard errors, and the
/// fraction within one standard deviation near 68.3%.
fn assert_normal(what: &str, x: &[f64], v: f64) {
    let n = x.len() as f64;
    let (m, sv) = (mean(x), var(x));
    assert!(m.abs() < 4.0 * (v / n).sqrt(), "{what}: mean {m}, expected 0 (variance {v})");
    assert!((sv - v).abs() < 4.0 * v * (2.0 / n).sqrt(), "{what}: variance {sv}, expected {v}");
    let inside = x.iter().filter(|a| a.abs() < v.sqrt()).count() as f64 / n;
    let p = 0.682_689_492;
    assert!((inside - p).abs() < 4.0 * (p * (1.0 - p) / n).sqrt(), "{what}: {inside} within 1σ, expected {p}");
}

#[test]
fn brownian_increments_over_many_keys_are_normal_with_the_elapsed_time_as_variance() {
    let keys = random::split(&random::key(1), 4000);
    let tree = |k: &Tensor| VirtualBrownianTree::new(k, 0.0, 2.0, 1e-3, &Tensor::scalar(0.0));
    // Over the whole interval, over a non-dyadic piece, and the running integral.
    let (total, piece, integral) = vmap(|k: &Tensor| {
        let bm = tree(k);
        (bm.increment(&s(0.0), &s(2.0)), bm.increment(&s(0.3), &s(1.1)), bm.integral(&s(2.0)))
    })(&keys);
    assert_normal("W(2) - W(0)", &total.to_vec::<f64>(), 2.0);
    assert_normal("W(1.1) - W(0.3)", &piece.to_vec::<f64>(), 0.8);
    // ∫₀ᵀ W has variance T³/3.
    assert_normal("∫₀² W", &integral.to_vec::<f64>(), 8.0 / 3.0);
    // The vmapped trees are the per-key trees.
    for i in [0, 17, 3999] {
        let k = keys.index(i);
        assert_eq!(tree(&k).increment(&s(0.3), &s(1.1)).item::<f64>(), piece.to_vec::<f64>()[i as usize]);
    }
}

#[test]
fn disjoint_increments_are_uncorrelated_and_levy_areas_have_their_law() {
    let n = 4000;
    let bm = VirtualBrownianTree::new(&random::key(2), 0.0, 2.0, 1e-3, &Tensor::zeros(&[n], DType::F64));
    let inc = |a: f64, b: f64| bm.increment(&s(a), &s(b)).to_vec::<f64>();
    let (w1, w2, w3) = (inc(0.1, 0.7), inc(0.7, 1.3), inc(1.5, 1.9));
    assert_normal("W(0.7) - W(0.1)", &w1, 0.6);
    assert_normal("W(1.3) - W(0.7)", &w2, 0.6);
    let bound = 4.0 / (n as f64).sqrt();
    for (name, c) in [("adjacent", corr(&w1, &w2)), ("apart", corr(&w1, &w3)), ("apart 2", corr(&w2, &w3))] {
        assert!(c.abs() < bound, "{name} increments correlate: {c}");
    }
    // Overlapping ones do correlate: corr(W(0.1..0.7), W(0.1..1.3)) = √(0.6/1.2).
    let c = corr(&w1, &inc(0.1, 1.3));
    assert!((c - 0.5f64.sqrt()).abs() < bound, "overlapping increments: {c}");
    // The space-time Lévy area is N(0, h/12), independent of the increment (also on a dyadic
    // interval, where it is a node's own value).
    for (a, b) in [(0.25, 0.9), (0.5, 1.0)] {
        let (dw, h) = bm.levy_increment(&s(a), &s(b));
        let (dw, h) = (dw.to_vec::<f64>(), h.to_vec::<f64>());
        assert_normal("ΔW", &dw, b - a);
        assert_normal("H", &h, (b - a) / 12.0);
        assert!(corr(&dw, &h).abs() < bound, "H correlates with ΔW: {}", corr(&dw, &h));
        // H against the definition, by the trapezoid rule on W queried at 400 points.
        let m = 400;
        let ws: Vec<Vec<f64>> =
            (0..=m).map(|i| bm.evaluate(&s(a + (b - a) * i as f64 / m as f64)).to_vec::<f64>()).collect();
        for e in [0, 1, 2] {
            let d = |i: usize| ws[i][e] - ws[0][e] - (i as f64 / m as f64) * dw[e];
            let integral = (1..m).map(d).sum::<f64>() / m as f64 + (d(0) + d(m)) / (2.0 * m as f64);
            assert!((integral - h[e]).abs() < 0.02 * (b - a), "H by quadrature {integral} vs {}", h[e]);
        }
    }
}

#[test]
fn the_brownian_path_is_one_path_across_queries_resolutions_and_transformations() {
    let like = Tensor::zeros(&[5], DType::F64);
    let key = random::key(3);
    let fine = VirtualBrownianTree::new(&key, 0.0, 1.0, 1.0 / 4096.0, &like);
    let coarse = VirtualBrownianTree::new(&key, 0.0, 1.0, 1.0 / 32.0, &like);
    assert_eq!((fine.depth(), coarse.depth()), (12, 5));
    let at = |bm: &VirtualBrownianTree<Tensor>, t: f64| bm.evaluate(&s(t)).to_vec::<f64>();
    // W(t0) = 0; the same query gives the same value.
    assert!(at(&fine, 0.0).iter().all(|&w| w == 0.0));
    assert_eq!(at(&fine, 0.3), at(&fine, 0.3));
    // Refining keeps the coarse tree's values at its nodes (W and ∫W) and only adds detail
    // between them.
    let mut diff = 0.0;
    for k in 0..=32 {
        let t = k as f64 / 32.0;
        for (a, b) in at(&fine, t).iter().zip(at(&coarse, t)) {
            assert!((a - b).abs() < 1e-12, "W({t}): {a} (fine) vs {b} (coarse)");
        }
        let (ka, kb) = (fine.integral(&s(t)).to_vec::<f64>(), coarse.integral(&s(t)).to_vec::<f64>());
        assert!(ka.iter().zip(&kb).all(|(a, b)| (a - b).abs() < 1e-12), "∫W to {t}: {ka:?} vs {kb:?}");
        let tm = t + 0.4 / 32.0;
        diff += at(&fine, tm).iter().zip(at(&coarse, tm)).map(|(a, b)| (a - b).abs()).sum::<f64>();
    }
    // Between nodes the coarse quadratic differs from the finer path by about √(2⁻⁵)/4.
    let diff = diff / (33.0 * 5.0);
    assert!(diff > 1e-3 && diff < 0.1, "mean |fine - coarse| between nodes: {diff}");
    // Increments add up exactly, whatever the query times.
    let (a, b, c) = (s(0.123), s(0.5), s(0.987));
    let sum = fine.increment(&a, &b) + fine.increment(&b, &c);
    close(&sum, &fine.increment(&a, &c), 1e-12);
    // Traced times: queries inside a fori_loop body sum to the whole increment; jit and vmap
    // over times give the eager values.
    let total = fori_loop(
        0,
        10,
        |i: &Tensor, acc: &Tensor| {
            let t = i.cast(DType::F64) * 0.07 + 0.1;
            acc + fine.increment(&t, &(&t + 0.07))
        },
        &like,
    );
    close(&total, &fine.increment(&s(0.1), &s(0.8)), 1e-12);
    let jitted = jit(|t: &Tensor| fine.evaluate(t));
    let ts = [0.0, 0.3, 0.5, 0.71, 1.0];
    for &t in &ts {
        assert_eq!(jitted(&s(t)).to_vec::<f64>(), at(&fine, t), "jit at {t}");
    }
    let by_time = vmap(|t: &Tensor| fine.integral(t))(&Tensor::from_vec(ts.to_vec(), &[5])).to_vec::<f64>();
    for (i, &t) in ts.iter().enumerate() {
        let want = fine.integral(&s(t)).to_vec::<f64>();
        for e in 0..5 {
            assert!((by_time[5 * i + e] - want[e]).abs() < 1e-13, "vmap over times at {t}");
        }
    }
    // Times outside [t0, t1] are clamped; a tree of depth 0 is one quadratic.
    assert_eq!(at(&fine, 5.0), at(&fine, 1.0));
    let flat = VirtualBrownianTree::new(&key, 0.0, 1.0, 2.0, &like);
    assert_eq!(flat.depth(), 0);
    let (dw, h) = flat.levy_increment(&s(0.0), &s(1.0));
    close(&flat.evaluate(&s(0.5)), &(dw * 0.5 + h * 1.5), 1e-14);
    // Leaves of a tree get their own paths, of their own dtypes (the f64 path rounded).
    let two = VirtualBrownianTree::new(&key, 0.0, 1.0, 1e-3, &(Tensor::zeros(&[5], DType::F32), like.clone()));
    let one = VirtualBrownianTree::new(&key, 0.0, 1.0, 1e-3, &like);
    let (w32, w64) = two.evaluate(&s(0.6));
    assert_eq!(w32.dtype(), DType::F32);
    assert_ne!(w64.to_vec::<f64>(), w32.cast(DType::F64).to_vec::<f64>());
    assert_eq!(w32.to_vec::<f32>(), one.evaluate(&s(0.6)).cast(DType::F32).to_vec::<f32>());
}

// Strong orders along one Brownian path: every solve below uses the same tree, so the error
// against the exact (or a fine) solution is the discretisation error alone.

fn gbm_drift(_t: &Tensor, y: &Tensor, mu: &Tensor) -> Tensor {
    y * mu
}

const SIGMA: f64 = 0.5;

fn gbm_noise(_t: &Tensor, y: &Tensor, _: &Tensor) -> Tensor {
    y * SIGMA
}

/// Fitted order of mean |y(1) - reference| over the step counts.
fn fitted_order(
    solver: SdeSolver,
    solve_n: &dyn Fn(SdeSolver, usize) -> Tensor,
    reference: &Tensor,
    steps: &[usize],
) -> (f64, Vec<f64>) {
    let hs: Vec<f64> = steps.iter().map(|&n| 1.0 / n as f64).collect();
    let errs: Vec<f64> =
        steps.iter().map(|&n| (solve_n(solver, n) - reference).abs().mean_all().item::<f64>()).collect();
    (slope(&hs, &errs), errs)
}

#[test]
fn geometric_brownian_motion_euler_maruyama_has_strong_order_half_and_milstein_one() {
    // dy = μy dt + σy dW: y(1) = y0·exp(μ - σ²/2 + σW(1)); 500 paths as the elements.
    let mu = 0.5;
    let y0 = Tensor::ones(&[500], DType::F64);
    let bm = VirtualBrownianTree::new(&random::key(11), 0.0, 1.0, 1.0 / 4096.0, &y0);
    let exact = ((bm.evaluate(&s(1.0)) * SIGMA) + (mu - SIGMA * SIGMA / 2.0)).exp();
    let run = |solver, n| sde_solve(gbm_drift, gbm_noise, solver, 0.0, 1.0, n, &y0, &s(mu), &bm);
    let steps = [16, 32, 64, 128, 256, 512];
    let (em, em_errs) = fitted_order(SdeSolver::EulerMaruyama, &run, &exact, &steps);
    let (mil, mil_errs) = fitted_order(SdeSolver::Milstein, &run, &exact, &steps);
    eprintln!("GBM strong orders: Euler–Maruyama {em:.3} {em_errs:?}, Milstein {mil:.3} {mil_errs:?}");
    assert!((em - 0.5).abs() < 0.15, "Euler–Maruyama: fitted order {em}, errors {em_errs:?}");
    assert!((mil - 1.0).abs() < 0.15, "Milstein: fitted order {mil}, errors {mil_errs:?}");
    assert!(mil_errs[5] < 0.2 * em_errs[5]);
}

/// dy = -sin(3y) dt + 0.8(1 + t/2) dW: additive, time-dependent noise and a curved drift.
fn curved(_t: &Tensor, y: &Tensor, _: &()) -> Tensor {
    -((y * 3.0).sin())
}

fn additive(t: &Tensor, y: &Tensor, _: &()) -> Tensor {
    y.ones_like() * ((t * 0.5 + 1.0) * 0.8)
}

fn ou(_t: &Tensor, y: &Tensor, _: &()) -> Tensor {
    (y - 0.5) * -2.0
}

#[test]
fn sra1_has_strong_order_three_halves_on_additive_noise() {
    let y0 = Tensor::ones(&[500], DType::F64);
    let bm = VirtualBrownianTree::new(&random::key(5), 0.0, 1.0, 1.0 / 4096.0, &y0);
    let steps = [8, 16, 32, 64, 128, 256];
    let mut orders = vec![];
    for (name, f) in [("curved drift", curved as fn(&Tensor, &Tensor, &()) -> Tensor), ("Ornstein–Uhlenbeck", ou)] {
        // The reference: SRA1 with 2048 steps on the same path (its error is ~8^-1.5 times
        // that at 256 steps).
        let reference = jit(|y0: &Tensor| sde_solve(f, additive, SdeSolver::Sra1, 0.0, 1.0, 2048, y0, &(), &bm))(&y0);
        let run = |solver, n| sde_solve(f, additive, solver, 0.0, 1.0, n, &y0, &(), &bm);
        let (sra, sra_errs) = fitted_order(SdeSolver::Sra1, &run, &reference, &steps);
        let (em, em_errs) = fitted_order(SdeSolver::EulerMaruyama, &run, &reference, &steps);
        eprintln!("{name}: SRA1 {sra:.3} {sra_errs:?}; Euler–Maruyama {em:.3} {em_errs:?}");
        // With additive noise Euler–Maruyama is Milstein: order 1.
        assert!((em - 1.0).abs() < 0.15, "{name}: Euler–Maruyama order {em}, errors {em_errs:?}");
        assert!(sra_errs.iter().zip(&em_errs).all(|(a, b)| a < &(0.5 * b)), "{name}: {sra_errs:?} vs {em_errs:?}");
        orders.push((sra, sra_errs));
    }
    // With a curved drift the h^1.5 term (g²f''·I₁₁₀) shows; with a linear drift it vanishes
    // and the next term, h², leads.
    assert!(
        (orders[0].0 - 1.5).abs() < 0.15,
        "SRA1 on the curved drift: order {}, errors {:?}",
        orders[0].0,
        orders[0].1
    );
    assert!(
        (orders[1].0 - 2.0).abs() < 0.2,
        "SRA1 on Ornstein–Uhlenbeck: order {}, errors {:?}",
        orders[1].0,
        orders[1].1
    );
}

#[test]
fn the_pathwise_gradient_of_a_gbm_expectation_matches_its_closed_form() {
    // E[y(T)] = y0·e^{μT}, so d/dμ E[y(T)] = T·y0·e^{μT}; the pathwise derivative of each path
    // is T·y(T), whose spread gives the Monte Carlo standard error.
    let (n, t1, y0v, mu) = (2000, 1.0, 1.5, 0.4);
    let y0 = Tensor::full(&[n], y0v, DType::F64);
    let bm = VirtualBrownianTree::new(&random::key(21), 0.0, t1, 1.0 / 1024.0, &y0);
    let expect =
        |mu: &Tensor| sde_solve(gbm_drift, gbm_noise, SdeSolver::Milstein, 0.0, t1, 64, &y0, mu, &bm).mean_all();
    let g = grad(expect)(&s(mu)).item::<f64>();
    let want = t1 * y0v * (mu * t1).exp();
    let paths = sde_solve(gbm_drift, gbm_noise, SdeSolver::Milstein, 0.0, t1, 64, &y0, &s(mu), &bm).to_vec::<f64>();
    let se = (var(&paths) / n as f64).sqrt() * t1;
    eprintln!("d/dμ E[y(T)]: {g} vs {want} (standard error {se})");
    assert!((g - want).abs() < 4.0 * se, "gradient {g} vs closed form {want}, standard error {se}");
    assert!(se < 0.05 * want, "the check must be sharp: standard error {se}");
    // Reverse mode equals forward mode, for each solver.
    for solver in [SdeSolver::EulerMaruyama, SdeSolver::Milstein, SdeSolver::Sra1] {
        let e = |mu: &Tensor| sde_solve(gbm_drift, gbm_noise, solver, 0.0, t1, 16, &y0, mu, &bm).mean_all();
        let rev = grad(e)(&s(mu)).item::<f64>();
        let (_, fwd) = jvp(e, &s(mu), &s(1.0));
        assert!((rev - fwd.item::<f64>()).abs() < 1e-12 * rev.abs(), "{solver:?}: grad {rev} vs jvp {fwd}");
    }
}

type State = (Tensor, Tensor);

fn pair_drift(_t: &Tensor, (x, v): &State, k: &Tensor) -> State {
    (v.clone(), -(k * x) - v * 0.1)
}

fn pair_noise(t: &Tensor, (x, v): &State, _: &Tensor) -> State {
    (x.zeros_like(), (v * 0.2).cos() * 0.3 + t.cast(DType::F32) * 0.1)
}

#[test]
fn sde_solve_goes_through_trees_jit_vmap_and_both_derivative_modes() {
    // A noisy oscillator with a tuple state of mixed shapes and dtypes... in f32.
    let y0: State = (Tensor::from_vec(vec![1.0f32, 0.5, -0.3], &[3]), Tensor::zeros(&[3], DType::F32));
    let k = Tensor::scalar(2.0f32);
    let run = |solver, key: &Tensor, k: &Tensor| {
        let bm = VirtualBrownianTree::new(key, 0.0, 1.0, 1.0 / 256.0, &y0);
        sde_solve(pair_drift, pair_noise, solver, 0.0, 1.0, 32, &y0, k, &bm)
    };
    let keys = random::split(&random::key(31), 3);
    for solver in [SdeSolver::EulerMaruyama, SdeSolver::Milstein, SdeSolver::Sra1] {
        let eager = run(solver, &keys.index(0), &k);
        assert_eq!(eager.1.dtype(), DType::F32);
        // jit equals eager.
        let jitted = jit(|key: &Tensor| run(solver, key, &k))(&keys.index(0));
        close(&jitted.1, &eager.1, 1e-6);
        // vmap over keys equals a loop.
        let batched = vmap(|key: &Tensor| run(solver, key, &k))(&keys);
        for i in 0..3 {
            let one = run(solver, &keys.index(i), &k);
            close(&batched.0.index(i), &one.0, 1e-6);
            close(&batched.1.index(i), &one.1, 1e-6);
        }
        // The noise acts (different keys, different paths) and only through v.
        assert_ne!(batched.1.index(0).to_vec::<f32>(), batched.1.index(1).to_vec::<f32>());
        // Reverse mode equals forward mode through the loop, for the stiffness and y0.
        let loss = |k: &Tensor| {
            let (x, v) = run(solver, &keys.index(0), k);
            x.square().sum_all() + v.sum_all()
        };
        let rev = grad(loss)(&k).item::<f32>();
        let (_, fwd) = jvp(loss, &k, &Tensor::scalar(1.0f32));
        assert!((rev - fwd.item::<f32>()).abs() < 1e-4 * rev.abs().max(1.0), "{solver:?}: {rev} vs {fwd}");
        let by_y0 = |x0: &Tensor| {
            let bm = VirtualBrownianTree::new(&keys.index(0), 0.0, 1.0, 1.0 / 256.0, &y0);
            let y = sde_solve(pair_drift, pair_noise, solver, 0.0, 1.0, 32, &(x0.clone(), y0.1.clone()), &k, &bm);
            y.0.sum_all()
        };
        let gy = grad(by_y0)(&y0.0);
        let (_, fy) = jvp(by_y0, &y0.0, &Tensor::from_vec(vec![0.0f32, 1.0, 0.0], &[3]));
        assert!((gy.to_vec::<f32>()[1] - fy.item::<f32>()).abs() < 1e-4, "{solver:?}: {gy} vs {fy}");
    }
}

#[test]
fn without_noise_the_solvers_are_runge_kutta_methods() {
    // g = 0: Euler–Maruyama and Milstein are Euler's method; SRA1 is the two-stage
    // Runge–Kutta method with c₂ = 3/4 (order 2).
    let f = |_t: &Tensor, y: &Tensor, _: &()| y * (1.0 - y);
    let zero = |_t: &Tensor, y: &Tensor, _: &()| y.zeros_like();
    let y0 = Tensor::from_vec(vec![0.1, 0.5, 0.9], &[3]);
    let bm = VirtualBrownianTree::new(&random::key(0), 0.0, 2.0, 0.01, &y0);
    let euler = solve(f, Solver::Euler, 0.0, 2.0, &y0, &(), &[], &Options { dt0: Some(0.1), ..Options::default() }).ys
        [0]
    .clone();
    for solver in [SdeSolver::EulerMaruyama, SdeSolver::Milstein] {
        close(&sde_solve(f, zero, solver, 0.0, 2.0, 20, &y0, &(), &bm), &euler, 1e-14);
    }
    let exact: Vec<f64> = [0.1f64, 0.5, 0.9].iter().map(|&a| 1.0 / (1.0 + (1.0 / a - 1.0) * (-2.0f64).exp())).collect();
    let exact = Tensor::from_vec(exact, &[3]);
    let steps = [10, 20, 40, 80];
    let errs: Vec<f64> = steps
        .iter()
        .map(|&n| {
            (sde_solve(f, zero, SdeSolver::Sra1, 0.0, 2.0, n, &y0, &(), &bm) - &exact).abs().max_all().item::<f64>()
        })
        .collect();
    let p = slope(&steps.iter().map(|&n| 1.0 / n as f64).collect::<Vec<_>>(), &errs);
    assert!((p - 2.0).abs() < 0.15, "SRA1 without noise: order {p}, errors {errs:?}");
}

#[test]
fn bad_input_panics_naming_sde_solve_and_the_callers_line() {
    let y0 = Tensor::zeros(&[4], DType::F64);
    let bm = VirtualBrownianTree::new(&random::key(0), 0.0, 1.0, 0.01, &y0);
    let f = |_t: &Tensor, y: &Tensor, _: &()| -y;
    let here = file!();
    let check = |m: String, want: &str| {
        assert!(m.contains("diffeq::sde_solve") && m.contains(want) && m.contains(here), "{m}");
    };
    check(
        panic_message(|| sde_solve(f, f, SdeSolver::EulerMaruyama, 0.0, 1.0, 0, &y0, &(), &bm)),
        "n_steps must be at least 1",
    );
    check(
        panic_message(|| sde_solve(f, f, SdeSolver::Milstein, 0.0, 2.0, 4, &y0, &(), &bm)),
        "inside the Brownian tree's interval",
    );
    check(panic_message(|| sde_solve(f, f, SdeSolver::Milstein, 1.0, 0.5, 4, &y0, &(), &bm)), "needs finite t0 < t1");
    let wide = |_t: &Tensor, y: &Tensor, _: &()| y.reshape(&[2, 2]);
    check(
        panic_message(|| sde_solve(f, wide, SdeSolver::Sra1, 0.0, 1.0, 4, &y0, &(), &bm)),
        "the diffusion g must return the state's structure and types: it returns (f64[2,2]) but the state is (f64[4])",
    );
    let single = |_t: &Tensor, y: &Tensor, _: &()| y.cast(DType::F32);
    check(
        panic_message(|| sde_solve(single, f, SdeSolver::Sra1, 0.0, 1.0, 4, &y0, &(), &bm)),
        "the drift f must return",
    );
    let other = VirtualBrownianTree::new(&random::key(0), 0.0, 1.0, 0.01, &Tensor::zeros(&[3], DType::F64));
    check(
        panic_message(|| sde_solve(f, f, SdeSolver::EulerMaruyama, 0.0, 1.0, 4, &y0, &(), &other)),
        "the Brownian tree's leaves (f64[3]) must have the state's shapes and dtypes",
    );
    let new = |t0: f64, t1: f64, tol: f64, key: &Tensor, like: &Tensor| {
        panic_message(|| VirtualBrownianTree::new(key, t0, t1, tol, like))
    };
    let k = random::key(0);
    for (m, want) in [
        (new(1.0, 0.0, 0.1, &k, &y0), "needs finite t0 < t1"),
        (new(0.0, 1.0, 0.0, &k, &y0), "tol must be positive"),
        (new(0.0, 1.0, 1e-300, &k, &y0), "at most 50 are supported"),
        (new(0.0, 1.0, 0.1, &Tensor::zeros(&[2], DType::F64), &y0), "key must be an i64 tensor of shape [2]"),
        (new(0.0, 1.0, 0.1, &k, &Tensor::zeros(&[2], DType::I64)), "must be a float tensor"),
    ] {
        assert!(m.contains("diffeq::VirtualBrownianTree::new") && m.contains(want) && m.contains(here), "{m}");
    }
}
