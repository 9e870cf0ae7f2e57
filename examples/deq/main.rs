//! A deep-equilibrium (DEQ) classifier on the 8×8 digits: the hidden state is the fixed point
//! `z* = tanh(z* W + x U + b)` rather than the output of a stack of layers, and the logits
//! are the linear readout `z* V + c`.
//!
//! ```text
//! cargo run --release --example deq                          # hidden 48, 12 epochs
//! cargo run --release --example deq -- --epochs 3 --out /tmp/deq
//! ```
//!
//! The forward pass solves for `z*` by fixed-point iteration with Anderson acceleration
//! ([`fixed_point_anderson`], depth 5, to `‖t(z) − z‖ ≤ 1e-6` over the batch). Nothing of
//! that iteration is differentiated or stored: [`custom_fixed_point`] gives the gradient by
//! the implicit function theorem, one BiCGStab solve with `I − ∂t/∂z` in the backward pass,
//! so memory does not grow with the number of forward iterations.
//!
//! Keeping the map contractive: `W` is used through a spectral normalisation,
//! `W_eff = 0.9 · W / σ(W)`, where `σ(W)` is the largest singular value from a power
//! iteration (the singular vector held constant, `σ = ‖W u‖` differentiated, as in Miyato et
//! al., 2018). Since `|tanh'| ≤ 1`, the map `z ↦ tanh(z W_eff + …)` then has Lipschitz
//! constant at most 0.9, so the fixed point exists, is unique, the plain iteration converges
//! and the implicit backward system `(I − ∂t/∂z)ᵀ v = ḡ` is well conditioned.
//!
//! It trains with Adam on shuffled mini-batches (a progress bar shows the running loss),
//! prints per epoch the training loss and accuracy, the test accuracy, the average number of
//! forward solver iterations and the time, compares Anderson with plain fixed-point
//! iteration on the test set at the end, checks the implicit gradient against backpropagation
//! through 100 unrolled iterations, and writes `deq_training.png` (training loss and
//! accuracy, test accuracy per epoch) under `target/deq/`.
//!
//! [`fixed_point_anderson`]: cotangent::solvers::fixed_point_anderson
//! [`custom_fixed_point`]: cotangent::solvers::custom_fixed_point

#[path = "../common/lines.rs"]
mod lines;

#[path = "../common/digits_data.rs"]
mod digits_data;
use cotangent::control::fori_loop;
use cotangent::optim::{Adam, Optimizer};
use cotangent::solvers::{custom_fixed_point, fixed_point, fixed_point_anderson, SolveInfo, Solver};
use cotangent::{data, grad, jit, nn, random, value_and_grad_with_aux, DType, Tensor, Tree};
use indicatif::{ProgressBar, ProgressStyle};
use plotters::style::RGBColor;
use std::path::PathBuf;
use std::time::Instant;

/// The spectral norm `W` is scaled to: the map's Lipschitz bound.
const CONTRACTION: f64 = 0.9;
/// Forward solver tolerance on `‖t(z) − z‖` (over the whole batch) and iteration cap.
const FORWARD_TOL: f64 = 1e-6;
const FORWARD_MAX: usize = 200;

struct Args {
    epochs: usize,
    batch: usize,
    hidden: usize,
    lr: f64,
    out: PathBuf,
}

fn usage(msg: &str) -> ! {
    if !msg.is_empty() {
        eprintln!("deq: {msg}");
    }
    eprintln!("usage: deq [--epochs N] [--batch N] [--hidden N] [--lr X] [--out DIR]");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        epochs: 12,
        batch: 64,
        hidden: 48,
        lr: 5e-3,
        out: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/deq"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--epochs" => a.epochs = value().parse().unwrap_or_else(|_| usage("bad --epochs")),
            "--batch" => a.batch = value().parse().unwrap_or_else(|_| usage("bad --batch")),
            "--hidden" => a.hidden = value().parse().unwrap_or_else(|_| usage("bad --hidden")),
            "--lr" => a.lr = value().parse().unwrap_or_else(|_| usage("bad --lr")),
            "--out" => a.out = PathBuf::from(value()),
            "-h" | "--help" => usage(""),
            f => usage(&format!("unknown flag {f}")),
        }
    }
    if a.epochs == 0 || a.batch == 0 || a.hidden == 0 {
        usage("--epochs, --batch and --hidden must be at least 1");
    }
    a
}

/// The model: input injection `x U + b`, recurrent weights `W`, readout `z V + c`.
#[derive(Clone, Tree)]
struct Deq {
    u: Tensor,
    b: Tensor,
    w: Tensor,
    v: Tensor,
    c: Tensor,
}

fn init(key: &Tensor, hidden: usize) -> Deq {
    let k = random::split(key, 3);
    let f = DType::F64;
    Deq {
        u: random::normal(&k.index(0), &[64, hidden], f) * (1.0 / 64f64).sqrt(),
        b: Tensor::zeros(&[hidden], f),
        w: random::normal(&k.index(1), &[hidden, hidden], f) * (1.0 / hidden as f64).sqrt(),
        v: random::normal(&k.index(2), &[hidden, 10], f) * (1.0 / hidden as f64).sqrt(),
        c: Tensor::zeros(&[10], f),
    }
}

/// `W` scaled to spectral norm `CONTRACTION`: a power iteration (not differentiated) finds the
/// top right singular vector `u`, and `σ = ‖W u‖` is differentiated.
fn spectral_normalise(w: &Tensor) -> Tensor {
    let ws = w.stop_gradient();
    let n = w.shape()[0];
    let mut u = Tensor::ones(&[n], w.dtype()) / (n as f64).sqrt();
    for _ in 0..30 {
        let v = ws.matmul(&u);
        let v = &v / v.square().sum_all().sqrt();
        let back = ws.t().matmul(&v);
        u = &back / back.square().sum_all().sqrt();
    }
    let sigma = w.matmul(&u.stop_gradient()).square().sum_all().sqrt();
    w * (CONTRACTION / sigma)
}

/// The fixed-point map `t(z, θ) = tanh(z W + inj)`, `θ = (W_eff, inj)`.
fn layer(z: &Tensor, theta: &(Tensor, Tensor)) -> Tensor {
    (z.matmul(&theta.0) + &theta.1).tanh()
}

/// `z*(θ)` by Anderson acceleration, differentiable by the implicit function theorem.
fn equilibrium() -> impl Fn(&(Tensor, Tensor)) -> (Tensor, SolveInfo) {
    custom_fixed_point(
        layer,
        |theta: &(Tensor, Tensor)| {
            let z0 = theta.1.zeros_like();
            fixed_point_anderson(layer, &z0, theta, 5, 1.0, FORWARD_TOL, FORWARD_MAX)
        },
        Solver::bicgstab().tol(1e-8).max_iter(200),
    )
}

/// Logits and the forward solver's report for a batch.
/// A differentiable equilibrium solve, `θ ↦ (z*, report)`.
type Equilibrium = dyn Fn(&(Tensor, Tensor)) -> (Tensor, SolveInfo);

fn forward(solve: &Equilibrium, p: &Deq, x: &Tensor) -> (Tensor, SolveInfo) {
    let theta = (spectral_normalise(&p.w), x.matmul(&p.u) + &p.b);
    let (z, info) = solve(&theta);
    (z.matmul(&p.v) + &p.c, info)
}

fn main() {
    let args = parse_args();
    let (x, y) = digits_data::load_digits(DType::F64);
    let keys = random::split(&random::key(0), 3);
    let (train, (x_test, y_test)) = data::split(&(x, y), 0.2, &keys.index(0));
    let n_train = train.1.shape()[0];
    let n_batches = n_train / args.batch;
    println!(
        "deq: digits, {n_train} training and {} test images; z* = tanh(z* W + x U + b) with {} hidden units, \
         W spectrally normalised to {CONTRACTION}; {} epochs of {n_batches} batches of {}",
        y_test.shape()[0],
        args.hidden,
        args.epochs,
        args.batch
    );

    let opt = Adam::new(args.lr);
    let solve = equilibrium();
    let train_step = jit(|(p, s, xb, yb): &(Deq, _, Tensor, Tensor)| {
        let loss = |p: &Deq| {
            let (logits, info) = forward(&solve, p, xb);
            (nn::cross_entropy(&logits, yb), (nn::accuracy(&logits, yb), info))
        };
        let ((l, (acc, info)), g) = value_and_grad_with_aux(loss)(p);
        let (p, s) = opt.update(&g, s, p);
        (l, acc, info, p, s)
    });
    let evaluate = jit(|(p, x, y): &(Deq, Tensor, Tensor)| {
        let (logits, info) = forward(&solve, p, x);
        (nn::accuracy(&logits, y), info)
    });

    let mut params = init(&keys.index(1), args.hidden);
    let mut state = opt.init(&params);
    let bar = ProgressBar::new((args.epochs * n_batches) as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} epoch {prefix:>3} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let (mut losses, mut train_accs, mut test_accs) = (Vec::new(), Vec::new(), Vec::new());
    let (mut epoch_seconds, mut forward_iters, mut forward_solves) = (Vec::new(), 0i64, 0usize);
    for epoch in 0..args.epochs {
        bar.set_prefix(format!("{}", epoch + 1));
        let t = Instant::now();
        let (mut loss_sum, mut acc_sum, mut iters) = (0.0, 0.0, 0i64);
        let epoch_key = random::fold_in(&keys.index(2), epoch as i64);
        for (k, (xb, yb)) in data::batches(&train, args.batch, Some(&epoch_key), true).enumerate() {
            let (l, acc, info, p, s) = train_step(&(params, state, xb, yb));
            (params, state) = (p, s);
            assert!(
                info.converged.item::<bool>(),
                "epoch {}: the forward fixed-point solve did not converge ({} iterations, residual {:.2e})",
                epoch + 1,
                info.iterations.item::<i64>(),
                info.residual.item::<f64>()
            );
            let l = l.item::<f64>();
            assert!(l.is_finite(), "epoch {}: loss {l}", epoch + 1);
            loss_sum += l;
            acc_sum += acc.item::<f64>();
            iters += info.iterations.item::<i64>();
            bar.set_message(format!("loss {:.4}", loss_sum / (k + 1) as f64));
            bar.inc(1);
        }
        epoch_seconds.push(t.elapsed().as_secs_f64());
        forward_iters += iters;
        forward_solves += n_batches;
        let (test_acc, _) = evaluate(&(params.clone(), x_test.clone(), y_test.clone()));
        let (loss, acc, test_acc) = (loss_sum / n_batches as f64, acc_sum / n_batches as f64, test_acc.item::<f64>());
        losses.push(((epoch + 1) as f64, loss));
        train_accs.push(((epoch + 1) as f64, acc));
        test_accs.push(((epoch + 1) as f64, test_acc));
        let line = format!(
            "epoch {:>3}: train loss {loss:.4}, train accuracy {:.2}%, test accuracy {:.2}%, \
             {:.1} forward iterations per batch, {:.2} s",
            epoch + 1,
            100.0 * acc,
            100.0 * test_acc,
            iters as f64 / n_batches as f64,
            epoch_seconds[epoch]
        );
        if bar.is_hidden() {
            println!("{line}");
        } else {
            bar.println(line);
        }
    }
    bar.finish_and_clear();

    let (test_acc, info) = evaluate(&(params.clone(), x_test.clone(), y_test.clone()));
    println!("final test accuracy: {:.2}%", 100.0 * test_acc.item::<f64>());
    println!("first epoch train loss: {:.4}", losses[0].1);
    println!("final train loss: {:.4}", losses.last().expect("an epoch").1);
    println!("average forward solver iterations per batch: {:.1}", forward_iters as f64 / forward_solves as f64);
    // The first epoch includes compilation.
    let rest = &epoch_seconds[1.min(epoch_seconds.len() - 1)..];
    println!(
        "time per epoch: {:.2} s (first epoch, with compilation: {:.2} s)",
        rest.iter().sum::<f64>() / rest.len() as f64,
        epoch_seconds[0]
    );
    // Anderson against plain iteration on the whole test set, at the trained weights.
    let theta = (spectral_normalise(&params.w), x_test.matmul(&params.u) + &params.b);
    let (_, plain) = fixed_point(layer, &theta.1.zeros_like(), &theta, FORWARD_TOL, 10 * FORWARD_MAX);
    println!(
        "forward iterations on the test set ({} images at once): Anderson {}, plain fixed-point iteration {}",
        y_test.shape()[0],
        info.iterations.item::<i64>(),
        plain.iterations.item::<i64>()
    );

    // The implicit gradient against backpropagation through 100 unrolled plain iterations
    // (which converge to 0.9^100 ≈ 3e-5 of the start: the two must agree to about that).
    let (xb, yb) = (x_test.slice_axis(0, 0, 64, 1), y_test.slice_axis(0, 0, 64, 1));
    let loss_with = |unrolled: bool| {
        let (xb, yb) = (xb.clone(), yb.clone());
        let solve = equilibrium();
        move |p: &Deq| {
            let logits = if unrolled {
                let theta = (spectral_normalise(&p.w), xb.matmul(&p.u) + &p.b);
                let z = fori_loop(0, 100, |_: &Tensor, z: &Tensor| layer(z, &theta), &theta.1.zeros_like());
                z.matmul(&p.v) + &p.c
            } else {
                forward(&solve, p, &xb).0
            };
            nn::cross_entropy(&logits, &yb)
        }
    };
    let flat = |g: &Deq| g.leaves().iter().flat_map(|t| t.to_vec::<f64>()).collect::<Vec<f64>>();
    let gi = flat(&grad(loss_with(false))(&params));
    let gu = flat(&grad(loss_with(true))(&params));
    let diff = gi.iter().zip(&gu).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
    let norm = gu.iter().map(|b| b * b).sum::<f64>().sqrt();
    println!("relative difference of the implicit and unrolled gradients: {:.2e}", diff / norm);

    std::fs::create_dir_all(&args.out).unwrap_or_else(|e| panic!("cannot create {}: {e}", args.out.display()));
    let png = args.out.join("deq_training.png");
    let curves = [
        lines::Curve { name: "TRAIN LOSS".into(), color: RGBColor(214, 39, 40), points: losses },
        lines::Curve { name: "TRAIN ACCURACY".into(), color: RGBColor(31, 119, 180), points: train_accs },
        lines::Curve { name: "TEST ACCURACY".into(), color: RGBColor(44, 160, 44), points: test_accs },
    ];
    lines::draw(&png, "DIGITS: DEQ TRAINING", "EPOCH", &curves, false)
        .unwrap_or_else(|e| panic!("cannot draw {}: {e}", png.display()));
    println!("wrote {}", png.display());
}
