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
//! 1e-9 by [`lbfgs`] and made differentiable by [`custom_root`] on the optimality condition
//! `∇_w = 0`. The outer problem minimises the validation cross-entropy `CE(X_val w*(λ), y_val)`
//! over `logλ` with Adam. `grad` of the outer loss goes through the implicit function theorem:
//! `∇_λ = −(∂²L/∂λ∂w)ᵀ H⁻¹ ∇_w CE_val`, where `H` is the training Hessian at `w*`.
//!
//! Two ways to apply `H⁻¹`, both a choice of `custom_root`'s tangent solver, run from the same
//! start and are compared:
//! - exact: conjugate gradient on `H` to a relative residual of 1e-10;
//! - Neumann (Lorraine et al., 2020): the optimality condition scaled by `α ≤ 1/‖H‖` (a bound
//!   from the data's Gram matrix and the largest λ), so `H⁻¹ = α Σ_k (I − αH)^k`, and the
//!   series truncated at a loose relative residual (`--neumann-tol`, default 0.1). The
//!   library gives NaN derivatives when a tangent solve misses its tolerance, so the
//!   truncation is by tolerance, not by a fixed number of terms.
//!
//! At the start it checks the hypergradient against central finite differences of the
//! validation loss on the three largest coordinates, and the cosine similarity of the exact
//! and Neumann hypergradients. It prints the validation loss and accuracy at the uniform
//! start and after tuning, the test accuracy, the time per hyper-step, and writes
//! `hyperparameters_val_loss.png` (validation loss per outer step, both variants) and
//! `hyperparameters_lambda.png` (the learned per-pixel log10 λ as an 8×8 map) under
//! `target/hyperparameters/`.
//!
//! [`lbfgs`]: cotangent::solvers::lbfgs
//! [`custom_root`]: cotangent::solvers::custom_root

#[path = "../common/lines.rs"]
mod lines;

use cotangent::optim::{Adam, Optimizer};
use cotangent::solvers::{custom_root, lbfgs, Solver};
use cotangent::{data, grad, jit, nn, random, value_and_grad_with_aux, DType, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Instant;

const CSV: &str = include_str!("../../data/digits.csv");
/// Features: 64 pixels and a constant 1 for the bias.
const D: usize = 65;
/// Classes.
const C: usize = 10;

struct Args {
    steps: usize,
    lr: f64,
    lambda0: f64,
    inner_tol: f64,
    neumann_tol: f64,
    neumann_max: usize,
    out: PathBuf,
}

fn usage(msg: &str) -> ! {
    if !msg.is_empty() {
        eprintln!("hyperparameters: {msg}");
    }
    eprintln!(
        "usage: hyperparameters [--steps N] [--lr X] [--lambda0 X] [--inner-tol X] [--neumann-tol X] [--neumann-max N] [--out DIR]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        steps: 40,
        lr: 0.2,
        lambda0: 1e-3,
        inner_tol: 1e-8,
        neumann_tol: 0.1,
        neumann_max: 5000,
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
            "--neumann-tol" => a.neumann_tol = value().parse().unwrap_or_else(|_| usage("bad --neumann-tol")),
            "--neumann-max" => a.neumann_max = value().parse().unwrap_or_else(|_| usage("bad --neumann-max")),
            "--out" => a.out = PathBuf::from(value()),
            "-h" | "--help" => usage(""),
            f => usage(&format!("unknown flag {f}")),
        }
    }
    if a.steps == 0 || a.lambda0 <= 0.0 || a.inner_tol <= 0.0 || a.neumann_tol <= 0.0 {
        usage("--steps must be at least 1, and --lambda0 and the tolerances positive");
    }
    a
}

/// Pixels scaled to [0, 1] with a constant 1 appended, as `[n, 65]` f64, and labels `[n]` i64.
fn load_digits() -> (Tensor, Tensor) {
    let mut features = Vec::new();
    let mut labels = Vec::new();
    for (i, line) in CSV.lines().enumerate() {
        let v: Vec<f64> = line
            .split(',')
            .map(|s| s.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("data/digits.csv line {}: {e}", i + 1));
        assert_eq!(v.len(), 65, "data/digits.csv line {}: 65 values", i + 1);
        features.extend(v[..64].iter().map(|p| p / 16.0));
        features.push(1.0);
        labels.push(v[64] as i64);
    }
    let n = labels.len();
    (Tensor::from_vec(features, &[n, D]), Tensor::from_vec(labels, &[n]))
}

/// The regularised training loss at weights `w` (`[65, 10]`) and log weight decays `logλ` (`[65]`).
fn train_loss(w: &Tensor, log_lambda: &Tensor, x: &Tensor, y: &Tensor) -> Tensor {
    nn::cross_entropy(&x.matmul(w), y) + (log_lambda.exp().reshape(&[D as isize, 1]) * w.square()).sum_all()
}

/// The inner problem's parameters: `logλ`, the warm start `w0` (the optimality condition does
/// not depend on it, so its derivative is zero), and the scale `α` of the optimality condition.
type Theta = (Tensor, Tensor, Tensor);

/// What one hyper-step returns: validation loss, hypergradient, `w*`, inner iterations and
/// whether the inner solve converged.
type StepOut = (Tensor, Tensor, Tensor, Tensor, Tensor);

/// `w*(θ)`, differentiable in `θ` by `custom_root` with `tangent` solving the (scaled) Hessian.
fn inner_solution(
    train: &(Tensor, Tensor),
    inner_tol: f64,
    tangent: Solver,
) -> impl Fn(&Theta) -> (Tensor, cotangent::solvers::SolveInfo) {
    let (x, y) = train.clone();
    let f = move |w: &Tensor, th: &Theta| train_loss(w, &th.0, &x, &y);
    let g = f.clone();
    // α ∇_w L(w, λ) = 0: the same root; its Jacobian αH is what the tangent solver sees.
    let optimality = move |w: &Tensor, th: &Theta| grad(|w: &Tensor| g(w, th))(w) * &th.2;
    let solver = move |th: &Theta| lbfgs(&f, &th.1, th, 10, inner_tol, 5000);
    custom_root(optimality, solver, tangent)
}

/// One hyper-step, jitted: the validation loss at `w*(λ)` and its gradient in `logλ`.
fn hyper_step(
    train: &(Tensor, Tensor),
    val: &(Tensor, Tensor),
    inner_tol: f64,
    tangent: Solver,
) -> impl Fn(&Theta) -> StepOut {
    let solve = inner_solution(train, inner_tol, tangent);
    let (xv, yv) = val.clone();
    jit(move |(log_lambda, w0, alpha): &Theta| {
        let outer = |ll: &Tensor| {
            let (w, info) = solve(&(ll.clone(), w0.clone(), alpha.clone()));
            (nn::cross_entropy(&xv.matmul(&w), &yv), (w, info.iterations, info.converged))
        };
        let ((loss, (w, iters, ok)), g) = value_and_grad_with_aux(outer)(log_lambda);
        (loss, g, w, iters, ok)
    })
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
    let (x, y) = load_digits();
    let keys = random::split(&random::key(0), 2);
    let (rest, test) = data::split(&(x, y), 0.2, &keys.index(0));
    let (train, val) = data::split(&rest, 0.25, &keys.index(1));
    println!(
        "hyperparameters: digits, {} training, {} validation and {} test images; logistic regression \
         with {D}x{C} weights and {D} weight decays",
        train.1.shape()[0],
        val.1.shape()[0],
        test.1.shape()[0]
    );
    // ‖H‖ ≤ ½ λmax(XᵀX/n) + 2 max λ (the softmax Hessian's norm is at most ½).
    let gram_top = gram_top_eigenvalue(&train.0);
    let alpha_for = |ll: &Tensor| Tensor::scalar(1.0 / (0.5 * gram_top + 2.0 * ll.exp().max_all().item::<f64>()));

    let exact_solver = Solver::cg().tol(1e-10).max_iter(5000);
    let neumann_solver = Solver::neumann().tol(args.neumann_tol).max_iter(args.neumann_max);
    let exact = hyper_step(&train, &val, args.inner_tol, exact_solver);
    let neumann = hyper_step(&train, &val, args.inner_tol, neumann_solver);
    let w_zero = Tensor::zeros(&[D, C], DType::F64);
    let ll0 = Tensor::full(&[D], args.lambda0.ln(), DType::F64);

    // --- Checks at the uniform start -------------------------------------------------------
    let t = Instant::now();
    let (_, g_exact, w_start, iters0, ok0) = exact(&(ll0.clone(), w_zero.clone(), Tensor::scalar(1.0)));
    let first_exact = t.elapsed().as_secs_f64();
    assert!(ok0.item::<bool>(), "the inner L-BFGS did not converge at the start");
    let t = Instant::now();
    let (_, g_neumann, _, _, _) = neumann(&(ll0.clone(), w_zero.clone(), alpha_for(&ll0)));
    let first_neumann = t.elapsed().as_secs_f64();
    let (ge, gn) = (g_exact.to_vec::<f64>(), g_neumann.to_vec::<f64>());
    assert!(ge.iter().chain(&gn).all(|v| v.is_finite()), "a hypergradient is not finite");
    println!(
        "first hyper-step (with compilation): exact {first_exact:.2} s, Neumann {first_neumann:.2} s; \
         inner L-BFGS {} iterations",
        iters0.item::<i64>()
    );
    // Central finite differences of the validation loss, inner problem solved tightly.
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
    for (name, step) in [("exact", &exact), ("Neumann", &neumann)] {
        bar.set_prefix(name);
        let (mut ll, mut w) = (ll0.clone(), w_zero.clone());
        let mut state = adam.init(&ll);
        let (mut curve, mut seconds, mut iters) = (Vec::new(), Vec::new(), 0i64);
        for k in 0..args.steps {
            let alpha = if name == "exact" { Tensor::scalar(1.0) } else { alpha_for(&ll) };
            let t = Instant::now();
            let (loss, g, w_new, it, ok) = step(&(ll.clone(), w.clone(), alpha));
            let loss = loss.item::<f64>();
            assert!(ok.item::<bool>(), "{name}: the inner solve did not converge at step {k}");
            assert!(loss.is_finite(), "{name}: validation loss {loss} at step {k}");
            (ll, state) = adam.update(&g, &state, &ll);
            seconds.push(t.elapsed().as_secs_f64());
            w = w_new;
            iters += it.item::<i64>();
            curve.push((k as f64, loss));
            bar.set_message(format!("val loss {loss:.4}"));
            bar.inc(1);
        }
        // The solution at the final λ (no gradient needed, but the same solver).
        let alpha = if name == "exact" { Tensor::scalar(1.0) } else { alpha_for(&ll) };
        let (loss, _, w_end, _, _) = step(&(ll.clone(), w, alpha));
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
    let (_, t0) = evaluate(&w_start, &test);
    println!(
        "uniform lambda = {:.0e}: validation loss {v0:.4}, validation accuracy {:.2}%, test accuracy {:.2}%",
        args.lambda0,
        100.0 * a0,
        100.0 * t0
    );
    for r in &runs {
        let (v, a) = evaluate(&r.w, &val);
        let (_, ta) = evaluate(&r.w, &test);
        // The first step includes compilation: time the rest.
        let rest = &r.seconds[1.min(r.seconds.len() - 1)..];
        let per_step = rest.iter().sum::<f64>() / rest.len() as f64;
        let lam = r.log_lambda.exp().to_vec::<f64>();
        let (lo, hi) = lam.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &l| (lo.min(l), hi.max(l)));
        println!(
            "{} hypergradients after {} steps: validation loss {v:.4}, validation accuracy {:.2}%, \
             test accuracy {:.2}%; {:.1} ms per hyper-step, {:.0} inner L-BFGS iterations per step; \
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
    let (_, ge_end, _, _, _) = exact(&(ll_end.clone(), runs[0].w.clone(), Tensor::scalar(1.0)));
    let (_, gn_end, _, _, _) = neumann(&(ll_end.clone(), runs[0].w.clone(), alpha_for(ll_end)));
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
    lines::draw(&png, "DIGITS: VALIDATION LOSS AT W*(LAMBDA)", "OUTER STEP", &curves, false)
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
