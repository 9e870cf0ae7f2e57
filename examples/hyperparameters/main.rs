//! Tunes 65 weight-decay hyperparameters (one per pixel of the 8×8 digits, plus the bias) of
//! a multinomial logistic regression by implicit hypergradients.
//!
//! ```text
//! cargo run --release --example hyperparameters                   # 40 outer steps per variant
//! cargo run --release --example hyperparameters -- --steps 5 --out /tmp/hp
//! ```
//!
//! The inner problem is the regularised training loss
//! `w*(λ) = argmin_w CE(X_train w, y_train) + Σ_j exp(logλ_j) ‖w_j‖²`
//! (`w` is 65 × 10: one row per pixel and one for the bias), solved to a gradient norm of
//! 1e-8 by [`lbfgs`] (warm-started from the previous outer step's solution) and made
//! differentiable by [`custom_root`] on the optimality condition `∇_w L = 0`. The outer
//! problem minimises the validation cross-entropy `CE(X_val w*(λ), y_val)` over `logλ` with
//! Adam. The hypergradient is `∇_λ = −(∂²L/∂λ∂w)ᵀ H⁻¹ ∇_w CE_val`, `H` the training Hessian
//! at `w*`, and the two variants differ in how they apply `H⁻¹`:
//! - exact: `grad` of the outer loss straight through `custom_root`, whose tangent solver is
//!   conjugate gradient on `H` to a relative residual of 1e-10;
//! - Neumann (Lorraine et al., 2020): `H⁻¹ v ≈ α Σ_{k≤K} (I − αH)^k v` with a fixed number
//!   `K` of Hessian-vector products (`--terms`, default 50): the same `custom_root`, on the
//!   optimality condition scaled by `α` (same root, tangent matrix `αH`), with a
//!   [`Solver::truncated`] Neumann tangent solver; `α` is one over the largest eigenvalue of
//!   `H` (a power iteration at the start, plus twice the current largest λ). Cheaper and
//!   never fails, but biased: it under-weights the directions of small curvature.
//!
//! At the start it checks the exact hypergradient against central finite differences of the
//! validation loss on its three largest coordinates, and reports the cosine similarity of
//! the two variants' hypergradients there and at the tuned λ. It prints validation loss and
//! accuracy at the uniform start (λ = 1e-3) and after tuning with each variant, test loss
//! and accuracy, the time per hyper-step, and writes `hyperparameters_val_loss.png`
//! (validation loss per outer step, both variants) and `hyperparameters_lambda.png` (the
//! exactly tuned log λ of each pixel as an 8×8 grey map, light = strong decay) under
//! `target/hyperparameters/`. With 65 hyperparameters the validation set can be
//! over-fitted: the split gives it as many images as the training set.
//!
//! [`lbfgs`]: cotangent::solvers::lbfgs
//! [`custom_root`]: cotangent::solvers::custom_root
//! [`Solver::truncated`]: cotangent::solvers::Solver::truncated

#[path = "../common/lines.rs"]
mod lines;

#[path = "../common/digits_data.rs"]
mod digits_data;
use cotangent::optim::{Adam, Optimizer};
use cotangent::solvers::{custom_root, lbfgs, SolveInfo, Solver};
use cotangent::{concatenate, data, grad, jit, jvp, nn, random, value_and_grad_with_aux, DType, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Features: 64 pixels and a constant 1 for the bias.
const D: usize = 65;
/// Classes.
const C: usize = 10;

struct Args {
    steps: usize,
    lr: f64,
    lambda0: f64,
    inner_tol: f64,
    terms: usize,
    val_fraction: f64,
    out: PathBuf,
}

fn usage(msg: &str) -> ! {
    if !msg.is_empty() {
        eprintln!("hyperparameters: {msg}");
    }
    eprintln!(
        "usage: hyperparameters [--steps N] [--lr X] [--lambda0 X] [--inner-tol X] [--terms K] [--val-fraction X] [--out DIR]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        steps: 40,
        lr: 0.1,
        lambda0: 1e-3,
        inner_tol: 1e-8,
        terms: 50,
        val_fraction: 0.5,
        out: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/hyperparameters"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--steps" => a.steps = value().parse().unwrap_or_else(|_| usage("bad --steps")),
            "--lr" => a.lr = value().parse().unwrap_or_else(|_| usage("bad --lr")),
            "--lambda0" => a.lambda0 = value().parse().unwrap_or_else(|_| usage("bad --lambda0")),
            "--inner-tol" => a.inner_tol = value().parse().unwrap_or_else(|_| usage("bad --inner-tol")),
            "--val-fraction" => a.val_fraction = value().parse().unwrap_or_else(|_| usage("bad --val-fraction")),
            "--terms" => a.terms = value().parse().unwrap_or_else(|_| usage("bad --terms")),
            "--out" => a.out = PathBuf::from(value()),
            "-h" | "--help" => usage(""),
            f => usage(&format!("unknown flag {f}")),
        }
    }
    if a.steps == 0 || a.lambda0 <= 0.0 || a.inner_tol <= 0.0 {
        usage("--steps must be at least 1, and --lambda0 and the tolerances positive");
    }
    a
}

/// The regularised training loss at weights `w` (`[65, 10]`) and log weight decays `logλ` (`[65]`).
fn train_loss(w: &Tensor, log_lambda: &Tensor, x: &Tensor, y: &Tensor) -> Tensor {
    nn::cross_entropy(&x.matmul(w), y) + (log_lambda.exp().reshape(&[D as isize, 1]) * w.square()).sum_all()
}

/// A hyper-step's arguments: `logλ`, the inner solver's warm start `w0` (the optimality
/// condition does not depend on it, so its derivative is zero), and the Neumann series' step
/// `α` (unused by the exact variant).
type Theta = (Tensor, Tensor, Tensor);

/// What one hyper-step returns: validation loss, hypergradient, `w*` and the inner solver's report.
type StepOut = (Tensor, Tensor, Tensor, SolveInfo);

/// A (jitted) hyper-step.
type HyperStep = dyn Fn(&Theta) -> StepOut;

/// `w*(θ)` by L-BFGS, differentiable in `θ` by `custom_root` on the optimality condition
/// `scale(θ)·∇_w L = 0` (the same root for any non-zero scale; the tangent system's matrix is
/// `scale·H`), with `tangent` solving that system.
fn inner_solution(
    train: &(Tensor, Tensor),
    inner_tol: f64,
    tangent: Solver,
    scale: fn(&Theta) -> Tensor,
) -> impl Fn(&Theta) -> (Tensor, SolveInfo) {
    let (x, y) = train.clone();
    let f = move |w: &Tensor, th: &Theta| train_loss(w, &th.0, &x, &y);
    let g = f.clone();
    let optimality = move |w: &Tensor, th: &Theta| grad(|w: &Tensor| g(w, th))(w) * scale(th);
    let solver = move |th: &Theta| lbfgs(&f, &th.1, th, 10, inner_tol, 5000);
    custom_root(optimality, solver, tangent)
}

/// One hyper-step, jitted: the validation loss at `w*(λ)` and its gradient in `logλ` by
/// `grad` through `custom_root`.
fn hyper_step(
    val: &(Tensor, Tensor),
    solve: impl Fn(&Theta) -> (Tensor, SolveInfo) + 'static,
) -> impl Fn(&Theta) -> StepOut {
    let (xv, yv) = val.clone();
    jit(move |(log_lambda, w0, alpha): &Theta| {
        let outer = |ll: &Tensor| {
            let (w, info) = solve(&(ll.clone(), w0.clone(), alpha.clone()));
            (nn::cross_entropy(&xv.matmul(&w), &yv), (w, info))
        };
        let ((loss, (w, info)), g) = value_and_grad_with_aux(outer)(log_lambda);
        (loss, g, w, info)
    })
}

/// The exact hypergradient: the tangent system `H v = r` solved by CG to 1e-10.
fn exact_step(train: &(Tensor, Tensor), val: &(Tensor, Tensor), inner_tol: f64) -> impl Fn(&Theta) -> StepOut {
    let tangent = Solver::cg().tol(1e-10).max_iter(5000);
    hyper_step(val, inner_solution(train, inner_tol, tangent, |_| Tensor::scalar(1.0)))
}

/// The Neumann-series hypergradient of Lorraine et al. (2020): the optimality condition is
/// scaled by `α` (`θ.2`), so the tangent system is `αH v = α r`, and a truncated Neumann
/// series of `terms + 1` terms solves it: `v ≈ α Σ_{k=0}^{K} (I − αH)^k r`
/// ([`Solver::truncated`]: the series' iterate is the answer, not NaN, though it never meets
/// a tolerance). Biased towards the directions of large curvature.
fn neumann_step(
    train: &(Tensor, Tensor),
    val: &(Tensor, Tensor),
    inner_tol: f64,
    terms: usize,
) -> impl Fn(&Theta) -> StepOut {
    let tangent = Solver::neumann().tol(0.0).max_iter(terms + 1).truncated().symmetric(true);
    hyper_step(val, inner_solution(train, inner_tol, tangent, |th| th.2.clone()))
}

/// The largest eigenvalue of the training Hessian at `(w, logλ)` (power iteration on
/// Hessian-vector products).
fn hessian_top_eigenvalue(train: &(Tensor, Tensor), w: &Tensor, log_lambda: &Tensor) -> f64 {
    let (x, y) = train.clone();
    let hvp = jit(move |(w, ll, u): &Theta| jvp(|w: &Tensor| grad(|w: &Tensor| train_loss(w, ll, &x, &y))(w), w, u).1);
    let mut u = Tensor::ones(&[D, C], DType::F64) / ((D * C) as f64).sqrt();
    let mut top = 0.0;
    for _ in 0..100 {
        let hu = hvp(&(w.clone(), log_lambda.clone(), u.clone()));
        top = hu.square().sum_all().sqrt().item::<f64>();
        u = hu / top;
    }
    top
}

/// The largest eigenvalue of `XᵀX / n` (power iteration on the host).
fn gram_top_eigenvalue(x: &Tensor) -> f64 {
    let n = x.shape()[0] as f64;
    let g = (x.t().matmul(x) / n).to_vec::<f64>();
    let mut v = vec![1.0; D];
    let mut lam = 0.0;
    for _ in 0..200 {
        let u: Vec<f64> = (0..D).map(|i| (0..D).map(|j| g[i * D + j] * v[j]).sum()).collect();
        lam = u.iter().map(|a| a * a).sum::<f64>().sqrt();
        v = u.iter().map(|a| a / lam).collect();
    }
    lam
}

/// Stops with a message when the inner solve did not reach its tolerance.
fn check(info: &SolveInfo, name: &str, step: usize) {
    assert!(
        info.converged.item::<bool>(),
        "{name}: the inner L-BFGS did not converge at outer step {step} ({} iterations, gradient norm {:.3e})",
        info.iterations.item::<i64>(),
        info.residual.item::<f64>()
    );
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Loss and accuracy of the linear model `w` on `(x, y)`.
fn evaluate(w: &Tensor, set: &(Tensor, Tensor)) -> (f64, f64) {
    let logits = set.0.matmul(w);
    (nn::cross_entropy(&logits, &set.1).item::<f64>(), nn::accuracy(&logits, &set.1).item::<f64>())
}

/// Result of one tuning run.
struct Run {
    name: &'static str,
    log_lambda: Tensor,
    w: Tensor,
    curve: Vec<(f64, f64)>,
    seconds: Vec<f64>,
    inner_iters: f64,
}

fn main() {
    let args = parse_args();
    let (pixels, y) = digits_data::load_digits(DType::F64);
    // A constant 1 appended: the bias is the 65th weight row.
    let x = concatenate(&[pixels.clone(), Tensor::ones(&[pixels.shape()[0], 1], DType::F64)], 1);
    let keys = random::split(&random::key(0), 2);
    let (rest, test) = data::split(&(x, y), 0.2, &keys.index(0));
    let (train, val) = data::split(&rest, args.val_fraction, &keys.index(1));
    println!(
        "hyperparameters: digits, {} training, {} validation and {} test images; logistic regression \
         with {D}x{C} weights and {D} weight decays",
        train.1.shape()[0],
        val.1.shape()[0],
        test.1.shape()[0]
    );
    let exact = exact_step(&train, &val, args.inner_tol);
    let neumann = neumann_step(&train, &val, args.inner_tol, args.terms);
    let w_zero = Tensor::zeros(&[D, C], DType::F64);
    let ll0 = Tensor::full(&[D], args.lambda0.ln(), DType::F64);

    // --- Checks at the uniform start -------------------------------------------------------
    let t = Instant::now();
    let (_, g_exact, w_start, info0) = exact(&(ll0.clone(), w_zero.clone(), Tensor::scalar(1.0)));
    let first_exact = t.elapsed().as_secs_f64();
    check(&info0, "exact", 0);
    // The Neumann series needs α < 2/‖H‖. The cross-entropy part of H is at most ½ λmax(XᵀX/n)
    // (the softmax Hessian's norm is at most ½), a loose bound; a power iteration at the start
    // gives its actual size, and α = 1/(that + 2 max λ) then follows λ as it is tuned.
    let gram_bound = 0.5 * gram_top_eigenvalue(&train.0);
    let ce_top = hessian_top_eigenvalue(&train, &w_start, &ll0) - 2.0 * args.lambda0;
    let alpha_for = |ll: &Tensor| Tensor::scalar(1.0 / (ce_top + 2.0 * ll.exp().max_all().item::<f64>()));
    let t = Instant::now();
    let (_, g_neumann, _, _) = neumann(&(ll0.clone(), w_zero.clone(), alpha_for(&ll0)));
    let first_neumann = t.elapsed().as_secs_f64();
    let (ge, gn) = (g_exact.to_vec::<f64>(), g_neumann.to_vec::<f64>());
    assert!(ge.iter().chain(&gn).all(|v| v.is_finite()), "a hypergradient is not finite");
    println!(
        "first hyper-step (with compilation): exact {first_exact:.2} s, Neumann {first_neumann:.2} s; \
         inner L-BFGS {} iterations; largest Hessian eigenvalue of the cross-entropy {ce_top:.3} \
         (bound from the data: {gram_bound:.3})",
        info0.iterations.item::<i64>()
    );
    // Compiled now: time both at the same point, warm-started at the solution (so the inner
    // solve is nearly free and this is the cost of the hypergradient itself).
    let point = |alpha: Tensor| (ll0.clone(), w_start.clone(), alpha);
    let time_of = |f: &HyperStep, alpha: Tensor| {
        // One untimed call first: a plan is compiled natively on its first calls.
        f(&point(alpha.clone()));
        let t = Instant::now();
        for _ in 0..3 {
            f(&point(alpha.clone()));
        }
        t.elapsed().as_secs_f64() / 3.0
    };
    let (te, tn) = (time_of(&exact, Tensor::scalar(1.0)), time_of(&neumann, alpha_for(&ll0)));
    println!(
        "time per hypergradient at the start (inner solve warm-started at its solution): exact {:.1} ms, Neumann {:.1} ms",
        1e3 * te,
        1e3 * tn
    );
    // Central finite differences of the validation loss (the inner problem solved by L-BFGS
    // to the same tolerance, without derivatives).
    let plain = {
        let (xt, yt) = train.clone();
        let f = move |w: &Tensor, ll: &Tensor| train_loss(w, ll, &xt, &yt);
        jit(move |(ll, w0): &(Tensor, Tensor)| lbfgs(&f, w0, ll, 10, 1e-8, 10000))
    };
    let val_loss_at = |ll: &Tensor| {
        let (w, info) = plain(&(ll.clone(), w_start.clone()));
        assert!(info.converged.item::<bool>(), "the tight inner solve did not converge");
        evaluate(&w, &val).0
    };
    let mut order: Vec<usize> = (0..D).collect();
    order.sort_by(|&a, &b| ge[b].abs().total_cmp(&ge[a].abs()));
    let h = 1e-3;
    for &j in &order[..3] {
        let e = Tensor::from_vec((0..D).map(|i| if i == j { h } else { 0.0 }).collect::<Vec<_>>(), &[D]);
        let fd = (val_loss_at(&(&ll0 + &e)) - val_loss_at(&(&ll0 - &e))) / (2.0 * h);
        let what = if j == 64 { "bias".to_string() } else { format!("pixel ({}, {})", j / 8, j % 8) };
        println!(
            "hypergradient d(val loss)/d(log lambda) at {what}: exact {:.6e}, Neumann {:.6e}, finite differences {fd:.6e}",
            ge[j], gn[j]
        );
    }
    println!("cosine similarity of the exact and Neumann hypergradients at the start: {:.4}", cosine(&ge, &gn));

    // --- Tuning ----------------------------------------------------------------------------
    let bar = ProgressBar::new(2 * args.steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix:>8} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let adam = Adam::new(args.lr);
    let mut runs = Vec::new();
    let variants: [(&str, &HyperStep); 2] = [("exact", &exact), ("Neumann", &neumann)];
    for (name, step) in variants {
        bar.set_prefix(name);
        let (mut ll, mut w) = (ll0.clone(), w_zero.clone());
        let mut state = adam.init(&ll);
        let (mut curve, mut seconds, mut iters) = (Vec::new(), Vec::new(), 0i64);
        for k in 0..args.steps {
            let alpha = if name == "exact" { Tensor::scalar(1.0) } else { alpha_for(&ll) };
            let t = Instant::now();
            let (loss, g, w_new, info) = step(&(ll.clone(), w.clone(), alpha));
            check(&info, name, k);
            let loss = loss.item::<f64>();
            assert!(loss.is_finite(), "{name}: validation loss {loss} at step {k}");
            (ll, state) = adam.update(&g, &state, &ll);
            seconds.push(t.elapsed().as_secs_f64());
            w = w_new;
            iters += info.iterations.item::<i64>();
            curve.push((k as f64, loss));
            bar.set_message(format!("val loss {loss:.4}"));
            bar.inc(1);
        }
        // The solution at the final λ (no gradient needed, but the same solver).
        let alpha = if name == "exact" { Tensor::scalar(1.0) } else { alpha_for(&ll) };
        let (loss, _, w_end, _) = step(&(ll.clone(), w, alpha));
        curve.push((args.steps as f64, loss.item::<f64>()));
        runs.push(Run {
            name,
            log_lambda: ll,
            w: w_end,
            curve,
            seconds,
            inner_iters: iters as f64 / args.steps as f64,
        });
    }
    bar.finish_and_clear();

    // --- Figures ---------------------------------------------------------------------------
    let (v0, a0) = evaluate(&w_start, &val);
    let (tl0, t0) = evaluate(&w_start, &test);
    println!(
        "uniform lambda = {:.0e}: validation loss {v0:.4}, validation accuracy {:.2}%, test loss {tl0:.4}, test accuracy {:.2}%",
        args.lambda0,
        100.0 * a0,
        100.0 * t0
    );
    for r in &runs {
        let (v, a) = evaluate(&r.w, &val);
        let (tl, ta) = evaluate(&r.w, &test);
        // The first step includes compilation: time the rest.
        let rest = &r.seconds[1.min(r.seconds.len() - 1)..];
        let per_step = rest.iter().sum::<f64>() / rest.len() as f64;
        let lam = r.log_lambda.exp().to_vec::<f64>();
        let (lo, hi) = lam.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &l| (lo.min(l), hi.max(l)));
        println!(
            "{} hypergradients after {} steps: validation loss {v:.4}, validation accuracy {:.2}%, \
             test loss {tl:.4}, test accuracy {:.2}%; {:.1} ms per hyper-step, {:.0} inner L-BFGS iterations per step; \
             lambda from {lo:.1e} to {hi:.1e}",
            r.name,
            args.steps,
            100.0 * a,
            100.0 * ta,
            1e3 * per_step,
            r.inner_iters
        );
    }
    for r in &runs {
        println!("final validation loss ({}): {:.6}", r.name, evaluate(&r.w, &val).0);
    }
    println!("start validation loss: {v0:.6}");
    // Agreement at the exact run's final λ, too.
    let ll_end = &runs[0].log_lambda;
    let (_, ge_end, _, _) = exact(&(ll_end.clone(), runs[0].w.clone(), Tensor::scalar(1.0)));
    let (_, gn_end, _, _) = neumann(&(ll_end.clone(), runs[0].w.clone(), alpha_for(ll_end)));
    println!(
        "cosine similarity of the exact and Neumann hypergradients at the tuned lambda: {:.4}",
        cosine(&ge_end.to_vec::<f64>(), &gn_end.to_vec::<f64>())
    );

    std::fs::create_dir_all(&args.out).unwrap_or_else(|e| panic!("cannot create {}: {e}", args.out.display()));
    let png = args.out.join("hyperparameters_val_loss.png");
    let colors = [RGBColor(31, 119, 180), RGBColor(214, 39, 40)];
    let curves: Vec<lines::Curve> = runs
        .iter()
        .zip(colors)
        .map(|(r, color)| lines::Curve { name: r.name.to_uppercase(), color, points: r.curve.clone() })
        .collect();
    lines::draw(&png, "DIGITS: VALIDATION LOSS AT THE INNER OPTIMUM", "OUTER STEP", &curves, false)
        .unwrap_or_else(|e| panic!("cannot draw {}: {e}", png.display()));
    println!("wrote {}", png.display());
    let map = args.out.join("hyperparameters_lambda.png");
    draw_heat_map(&map, &runs[0].log_lambda).unwrap_or_else(|e| panic!("cannot draw {}: {e}", map.display()));
    println!("wrote {}", map.display());
}

/// The per-pixel log10 λ as an 8×8 grid of grey levels (dark: small λ, light: large λ).
fn draw_heat_map(path: &Path, log_lambda: &Tensor) -> Result<(), Box<dyn std::error::Error>> {
    let l10: Vec<f64> = log_lambda.to_vec::<f64>().iter().map(|l| l / std::f64::consts::LN_10).collect();
    let pixels = &l10[..64];
    let (lo, hi) = pixels.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let cell = 50;
    let root = BitMapBackend::new(path, (8 * cell + 20, 8 * cell + 20)).into_drawing_area();
    root.fill(&WHITE)?;
    for (i, &v) in pixels.iter().enumerate() {
        let s = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
        let c = (40.0 + 215.0 * s) as u8;
        let (r, q) = ((i / 8) as i32, (i % 8) as i32);
        let (x0, y0) = (10 + q * cell as i32, 10 + r * cell as i32);
        root.draw(&Rectangle::new([(x0, y0), (x0 + cell as i32, y0 + cell as i32)], RGBColor(c, c, c).filled()))?;
    }
    root.present()?;
    Ok(())
}
