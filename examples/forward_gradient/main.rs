//! Trains the same digits classifier twice — with forward gradients only (one jvp per step,
//! no reverse pass: `diffop::ForwardGradient`) and with backpropagation — and draws both test
//! accuracy curves on one PNG.
//!
//! ```text
//! cargo run --release --example forward_gradient                    # 40 epochs, Gaussian guesses
//! cargo run --release --example forward_gradient -- --guess rademacher --epochs 5 --out /tmp/fg
//! ```
//!
//! A forward gradient `(∇L·v) v` with `v ~ N(0, I)` is unbiased but its variance grows with
//! the number of parameters, so it learns more slowly per step than backpropagation (Baydin
//! et al., 2022); the plot shows by how much on this problem.

#[path = "../common/lines.rs"]
mod lines;

#[path = "../common/digits_data.rs"]
mod digits_data;
use cotangent::diffop::{ForwardGradient, Guess};
use cotangent::optim::{Adam, Optimizer};
use cotangent::{data, jit, nn, random, value_and_grad, DType, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use plotters::style::RGBColor;
use std::path::PathBuf;
use std::time::Instant;

struct Args {
    epochs: usize,
    batch: usize,
    lr_forward: f64,
    lr_backprop: f64,
    rademacher: bool,
    out: PathBuf,
}

fn usage(msg: &str) -> ! {
    if !msg.is_empty() {
        eprintln!("forward_gradient: {msg}");
    }
    eprintln!("usage: forward_gradient [--epochs N] [--batch N] [--lr-forward X] [--lr-backprop X] [--guess gaussian|rademacher] [--out DIR]");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        epochs: 40,
        batch: 64,
        lr_forward: 1e-2,
        lr_backprop: 2e-3,
        rademacher: false,
        out: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/forward_gradient"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--epochs" => a.epochs = value().parse().unwrap_or_else(|_| usage("bad --epochs")),
            "--batch" => a.batch = value().parse().unwrap_or_else(|_| usage("bad --batch")),
            "--lr-forward" => a.lr_forward = value().parse().unwrap_or_else(|_| usage("bad --lr-forward")),
            "--lr-backprop" => a.lr_backprop = value().parse().unwrap_or_else(|_| usage("bad --lr-backprop")),
            "--guess" => {
                a.rademacher = match value().as_str() {
                    "gaussian" => false,
                    "rademacher" => true,
                    g => usage(&format!("unknown guess {g}")),
                }
            }
            "--out" => a.out = PathBuf::from(value()),
            "-h" | "--help" => usage(""),
            f => usage(&format!("unknown flag {f}")),
        }
    }
    if a.epochs == 0 || a.batch == 0 {
        usage("--epochs and --batch must be at least 1");
    }
    a
}

type Params = Vec<(Tensor, Tensor)>;

/// An MLP 64-32-10 (tanh).
fn init(key: &Tensor) -> Params {
    let sizes = [64, 32, 10];
    let keys = random::split(key, 2);
    (0..2)
        .map(|i| {
            let w = random::normal(&keys.index(i as isize), &[sizes[i], sizes[i + 1]], DType::F32)
                * (1.0 / sizes[i] as f64).sqrt();
            (w, Tensor::zeros(&[sizes[i + 1]], DType::F32))
        })
        .collect()
}

fn logits(p: &Params, x: &Tensor) -> Tensor {
    (x.matmul(&p[0].0) + &p[0].1).tanh().matmul(&p[1].0) + &p[1].1
}

fn test_accuracy(p: &Params, x: &Tensor, y: &Tensor) -> f64 {
    nn::accuracy(&logits(p, x), y).item::<f64>()
}

fn main() {
    let args = parse_args();
    let (x, y) = digits_data::load_digits(DType::F32);
    let keys = random::split(&random::key(0), 3);
    let ((x_train, y_train), (x_test, y_test)) = data::split(&(x, y), 0.2, &keys.index(0));
    let train = (x_train, y_train);
    let n_batches = train.1.shape()[0].div_ceil(args.batch);
    let guess = if args.rademacher { Guess::Rademacher } else { Guess::Gaussian };
    let guess_name = if args.rademacher { "rademacher" } else { "gaussian" };
    println!(
        "forward_gradient: digits, MLP 64-32-10 ({} parameters), {} epochs of {n_batches} batches of {}",
        64 * 32 + 32 + 32 * 10 + 10,
        args.epochs,
        args.batch
    );

    let forward = ForwardGradient::new(Adam::new(args.lr_forward), guess);
    let backprop = Adam::new(args.lr_backprop);
    let loss = |p: &Params, xb: &Tensor, yb: &Tensor| nn::cross_entropy(&logits(p, xb), yb);
    // Both steps jitted, with the batch (and the key) as arguments.
    let fg_step = jit(|(p, s, xb, yb, k): &(Params, _, Tensor, Tensor, Tensor)| {
        forward.step(|p: &Params| loss(p, xb, yb), p, s, k)
    });
    let bp_step = jit(|(p, s, xb, yb): &(Params, _, Tensor, Tensor)| {
        let (l, g) = value_and_grad(|p: &Params| loss(p, xb, yb))(p);
        let (p, s) = backprop.update(&g, s, p);
        (l, p, s)
    });

    let p0 = init(&keys.index(1));
    let (mut p_fg, mut s_fg) = (p0.clone(), forward.init(&p0));
    let (mut p_bp, mut s_bp) = (p0.clone(), backprop.init(&p0));
    let mut curve_fg = vec![(0.0, test_accuracy(&p0, &x_test, &y_test))];
    let mut curve_bp = curve_fg.clone();
    let bar = ProgressBar::new((args.epochs * n_batches) as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} epoch {prefix:>3} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let (mut t_fg, mut t_bp) = (0.0, 0.0);
    let mut step = 0usize;
    for epoch in 0..args.epochs {
        bar.set_prefix(format!("{}", epoch + 1));
        let epoch_key = random::fold_in(&keys.index(2), epoch as i64);
        for (xb, yb) in data::batches(&train, args.batch, Some(&epoch_key), false) {
            let k = random::fold_in(&random::key(17), step as i64);
            let t = Instant::now();
            let (l_fg, p, s) = fg_step(&(p_fg, s_fg, xb.clone(), yb.clone(), k));
            (p_fg, s_fg) = (p, s);
            t_fg += t.elapsed().as_secs_f64();
            let t = Instant::now();
            let (l_bp, p, s) = bp_step(&(p_bp, s_bp, xb, yb));
            (p_bp, s_bp) = (p, s);
            t_bp += t.elapsed().as_secs_f64();
            step += 1;
            bar.set_message(format!(
                "loss: forward {:.3}, backprop {:.3}",
                l_fg.cast(DType::F64).item::<f64>(),
                l_bp.cast(DType::F64).item::<f64>()
            ));
            bar.inc(1);
        }
        curve_fg.push(((epoch + 1) as f64, test_accuracy(&p_fg, &x_test, &y_test)));
        curve_bp.push(((epoch + 1) as f64, test_accuracy(&p_bp, &x_test, &y_test)));
    }
    bar.finish_and_clear();
    std::fs::create_dir_all(&args.out).unwrap_or_else(|e| panic!("cannot create {}: {e}", args.out.display()));
    let png = args.out.join("forward_gradient_accuracy.png");
    let curves = [
        lines::Curve {
            name: format!("FORWARD ({})", guess_name.to_uppercase()),
            color: RGBColor(214, 39, 40),
            points: curve_fg.clone(),
        },
        lines::Curve { name: "BACKPROP".into(), color: RGBColor(31, 119, 180), points: curve_bp.clone() },
    ];
    lines::draw(&png, "DIGITS: TEST ACCURACY", "EPOCH", &curves, false)
        .unwrap_or_else(|e| panic!("cannot draw {}: {e}", png.display()));
    println!("wrote {}", png.display());
    println!(
        "time per step: forward gradient {:.2} ms, backprop {:.2} ms",
        1e3 * t_fg / step as f64,
        1e3 * t_bp / step as f64
    );
    println!("final test accuracy (forward gradient): {:.2}%", 100.0 * curve_fg.last().expect("point").1);
    println!("final test accuracy (backprop): {:.2}%", 100.0 * curve_bp.last().expect("point").1);
}
