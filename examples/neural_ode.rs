//! A tiny neural ODE: an MLP vector field `dz/dt = W₂ tanh(W₁ z + b₁) + b₂` fitted to a
//! trajectory of the linear ODE dz/dt = A z, A = [[-0.1, 2], [-2, -0.1]], observed at 20 times
//! in [0, 2], trained twice: on the data loss alone, and with the ERNODE regulariser of Pal
//! et al. (2021), "Opening the Blackbox" (`loss + c·Σⱼ Eⱼ|hⱼ|`, the solver's accumulated local
//! error estimate, [`Solution::reg`](cotangent::diffeq::Solution::reg)). A regularised field
//! is easier to integrate: at prediction time an adaptive Tsit5 solve at a fixed tolerance
//! needs fewer evaluations of the field for a similar trajectory error.
//!
//! ```text
//! cargo run --release --example neural_ode
//! cargo run --release --example neural_ode -- --iters 200 --c 0.05 --out /tmp/node
//! ```
//!
//! Prints, for each run, the final trajectory error (RMS against the exact solution at 200
//! dense times, filled by Tsit5's interpolant) and the NFE of the prediction-time solve, and
//! draws the training losses and the NFE of the training solves to `neural_ode_loss.png` and
//! `neural_ode_nfe.png` under `target/neural_ode/`.

#[path = "common/lines.rs"]
mod lines;

use cotangent::diffeq::{solve, Options, Solver};
use cotangent::optim::{Adam, Optimizer};
use cotangent::*;
use indicatif::{ProgressBar, ProgressStyle};
use plotters::style::RGBColor;
use std::path::PathBuf;

type Params = (Tensor, Tensor, Tensor, Tensor);

fn field(_t: &Tensor, z: &Tensor, (w1, b1, w2, b2): &Params) -> Tensor {
    w2.matmul(&(w1.matmul(z) + b1).tanh()) + b2
}

struct Args {
    iters: usize,
    c: f64,
    out: PathBuf,
}

fn usage(msg: &str) -> ! {
    eprintln!("neural_ode: {msg}\nusage: neural_ode [--iters N] [--c C] [--out DIR]");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args { iters: 1000, c: 3e-4, out: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/neural_ode") };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--iters" => a.iters = value().parse().unwrap_or_else(|_| usage("bad --iters")),
            "--c" => a.c = value().parse().unwrap_or_else(|_| usage("bad --c")),
            "--out" => a.out = PathBuf::from(value()),
            other => usage(&format!("unknown flag {other}")),
        }
    }
    a
}

/// The exact solution of dz/dt = A z from z0 = (2, 0): a damped rotation.
fn exact(t: f64) -> [f64; 2] {
    let r = 2.0 * (-0.1 * t).exp();
    [r * (2.0 * t).cos(), -r * (2.0 * t).sin()]
}

struct Run {
    losses: Vec<(f64, f64)>,
    nfes: Vec<(f64, f64)>,
    error: f64,
    nfe: i64,
}

fn train(name: &str, c: f64, args: &Args, bar: &ProgressBar) -> Run {
    let ts: Vec<f64> = (1..=20).map(|i| i as f64 / 10.0).collect();
    let data: Vec<Tensor> = ts.iter().map(|&t| Tensor::from_vec(exact(t).to_vec(), &[2])).collect();
    let z0 = Tensor::from_vec(vec![2.0, 0.0], &[2]);
    let hidden = 16;
    let keys = random::split(&random::key(0), 2);
    let mut p: Params = (
        random::normal(&keys.index(0), &[hidden, 2], DType::F64) * 0.5,
        Tensor::zeros(&[hidden], DType::F64),
        random::normal(&keys.index(1), &[2, hidden], DType::F64) * 0.25,
        Tensor::zeros(&[2], DType::F64),
    );
    // Training solves: Tsit5 at 1e-6, discretise-then-optimise, with the regularisers.
    let opts = Options { rtol: 1e-6, atol: 1e-6, regularise: true, ..Options::default() };
    let loss = |p: &Params| {
        let sol = solve(field, Solver::Tsit5, 0.0, 2.0, &z0, p, &ts, &opts);
        let mse =
            sol.ys.iter().zip(&data).map(|(y, d)| (y - d).square().sum_all()).fold(Tensor::scalar(0.0), |a, b| a + b)
                / ts.len() as f64;
        let reg = sol.reg.expect("asked for").error;
        (&mse + &reg * c, (mse, reg, sol.stats.nfe))
    };
    let opt = Adam::new(1e-2);
    let mut state = opt.init(&p);
    let step = jit(|(p, s): &(Params, <Adam as Optimizer>::State<Params>)| {
        let ((_, (mse, reg, nfe)), g) = value_and_grad_with_aux(loss)(p);
        let (p, s) = opt.update(&g, s, p);
        (mse, reg, nfe, p, s)
    });
    let mut run = Run { losses: vec![], nfes: vec![], error: 0.0, nfe: 0 };
    bar.set_prefix(name.to_string());
    for it in 0..args.iters {
        let (mse, reg, nfe, np, ns) = step(&(p, state));
        (p, state) = (np, ns);
        let (mse, reg, nfe) = (mse.item::<f64>(), reg.item::<f64>(), nfe.item::<i64>());
        run.losses.push((it as f64, mse));
        run.nfes.push((it as f64, nfe as f64));
        bar.set_message(format!("mse {mse:.2e} ERNODE {reg:.3} nfe {nfe}"));
        bar.inc(1);
    }
    // Prediction: Tsit5 at a fixed tolerance over [0, 2] with 200 dense times.
    let dense: Vec<f64> = (1..=200).map(|i| i as f64 / 100.0).collect();
    let pred = Options { rtol: 1e-6, atol: 1e-6, ..Options::default() };
    let sol = solve(field, Solver::Tsit5, 0.0, 2.0, &z0, &p, &dense, &pred);
    sol.expect_success();
    let se: f64 = dense
        .iter()
        .zip(&sol.ys)
        .map(|(&t, y)| {
            let (y, e) = (y.to_vec::<f64>(), exact(t));
            (y[0] - e[0]).powi(2) + (y[1] - e[1]).powi(2)
        })
        .sum();
    run.error = (se / dense.len() as f64).sqrt();
    run.nfe = sol.stats.nfe.item::<i64>();
    run
}

fn main() {
    let args = parse_args();
    std::fs::create_dir_all(&args.out).unwrap_or_else(|e| panic!("cannot create {}: {e}", args.out.display()));
    println!(
        "neural ODE: MLP 2-16-2 (tanh) on dz/dt = Az over [0, 2], 20 observations, Adam 1e-2, {} iterations, \
         Tsit5 rtol = atol = 1e-6; regulariser c = {}",
        args.iters, args.c
    );
    let bar = ProgressBar::new(2 * args.iters as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix:>12} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let plain = train("plain", 0.0, &args, &bar);
    let reg = train("ERNODE", args.c, &args, &bar);
    bar.finish_and_clear();
    let color = [RGBColor(31, 119, 180), RGBColor(214, 39, 40)];
    let names = ["PLAIN".to_string(), format!("ERNODE C={}", args.c)];
    for (file, title, log, pick) in [
        ("neural_ode_loss.png", "NEURAL ODE: TRAJECTORY MSE", true, 0),
        ("neural_ode_nfe.png", "NEURAL ODE: NFE OF THE TRAINING SOLVE", false, 1),
    ] {
        let curves: Vec<lines::Curve> = [&plain, &reg]
            .iter()
            .zip(&names)
            .zip(color)
            .map(|((r, n), color)| lines::Curve {
                name: n.clone(),
                color,
                points: if pick == 0 { r.losses.clone() } else { r.nfes.clone() },
            })
            .collect();
        let png = args.out.join(file);
        lines::draw(&png, title, "ITERATION", &curves, log)
            .unwrap_or_else(|e| panic!("cannot draw {}: {e}", png.display()));
        println!("wrote {}", png.display());
    }
    let last_nfe = |r: &Run| r.nfes.last().map(|p| p.1).unwrap_or(0.0);
    println!(
        "training: last mse plain {:.3e}, regularised {:.3e}; last training-solve nfe plain {}, regularised {}",
        plain.losses.last().map(|p| p.1).unwrap_or(f64::NAN),
        reg.losses.last().map(|p| p.1).unwrap_or(f64::NAN),
        last_nfe(&plain),
        last_nfe(&reg)
    );
    println!("final trajectory error (plain): {:.3e}", plain.error);
    println!("final trajectory error (ERNODE): {:.3e}", reg.error);
    println!("prediction nfe (plain): {}", plain.nfe);
    println!("prediction nfe (ERNODE): {}", reg.nfe);
    println!("nfe ratio ERNODE / plain: {:.3}", reg.nfe as f64 / plain.nfe as f64);
    // The reference: the true linear field at the same tolerance.
    let a = Tensor::from_vec(vec![-0.1, 2.0, -2.0, -0.1], &[2, 2]);
    let pred = Options { rtol: 1e-6, atol: 1e-6, ..Options::default() };
    let z0 = Tensor::from_vec(vec![2.0, 0.0], &[2]);
    let truth = solve(|_t: &Tensor, z: &Tensor, a: &Tensor| a.matmul(z), Solver::Tsit5, 0.0, 2.0, &z0, &a, &[], &pred);
    println!("prediction nfe (true field): {}", truth.stats.nfe.item::<i64>());
}
