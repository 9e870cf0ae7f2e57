//! A categorical VAE on the UCI digits (8×8 images in `data/digits.csv`), trained twice:
//! with the ReinMax gradient estimator and with straight-through (softmax backward), from the
//! same initialisation and the same random draws.
//!
//! ```text
//! cargo run --release --example discrete_vae                    # 100 epochs each (a few seconds)
//! cargo run --release --example discrete_vae -- --epochs 5 --out /tmp/vae
//! ```
//!
//! The encoder maps an image to 8 categorical latent variables of 8 classes each; a one-hot
//! sample of each goes through the decoder, which gives Bernoulli logits for the 64 pixels.
//! The loss is the negative ELBO (reconstruction cross-entropy plus the KL divergence to a
//! uniform prior), in nats per image. It prints both final losses on the test images and
//! writes a PNG of both training curves.

#[path = "../common/lines.rs"]
mod lines;

#[path = "../common/digits_data.rs"]
mod digits_data;
use cotangent::nn::{self, Init, Linear};
use cotangent::optim::{Adam, Optimizer};
use cotangent::{data, jit, random, value_and_grad, DType, Tensor, Tree};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

/// Latent variables, and classes per variable.
const LATENTS: usize = 8;
const CLASSES: usize = 8;

struct Args {
    epochs: usize,
    batch: usize,
    lr: f64,
    tau: f64,
    out: PathBuf,
}

fn parse_args() -> Args {
    let mut a = Args {
        epochs: 100,
        batch: 100,
        lr: 3e-3,
        tau: 1.0,
        out: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/discrete_vae"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--epochs" => a.epochs = value().parse().unwrap_or_else(|_| usage("bad --epochs")),
            "--batch" => a.batch = value().parse().unwrap_or_else(|_| usage("bad --batch")),
            "--lr" => a.lr = value().parse().unwrap_or_else(|_| usage("bad --lr")),
            "--tau" => a.tau = value().parse().unwrap_or_else(|_| usage("bad --tau")),
            "--out" => a.out = PathBuf::from(value()),
            "-h" | "--help" => usage(""),
            f => usage(&format!("unknown argument {f}")),
        }
    }
    if a.epochs == 0 || a.batch == 0 || a.tau <= 0.0 {
        usage("--epochs and --batch must be positive, --tau above 0");
    }
    a
}

fn usage(msg: &str) -> ! {
    if !msg.is_empty() {
        eprintln!("discrete_vae: {msg}");
    }
    eprintln!("usage: discrete_vae [--epochs N] [--batch N] [--lr X] [--tau X] [--out DIR]");
    std::process::exit(2)
}

#[derive(Clone, Tree)]
struct Vae {
    enc1: Linear,
    enc2: Linear,
    dec1: Linear,
    dec2: Linear,
}

impl Vae {
    fn new(key: &Tensor) -> Vae {
        let k = random::split(key, 4);
        let f = DType::F32;
        let he = |i: isize, a: usize, b: usize| Linear::with_init(&k.index(i), a, b, Init::HeUniform, true, f);
        Vae {
            enc1: he(0, 64, 128),
            enc2: Linear::new(&k.index(1), 128, LATENTS * CLASSES, f),
            dec1: he(2, LATENTS * CLASSES, 128),
            dec2: Linear::new(&k.index(3), 128, 64, f),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Estimator {
    ReinMax,
    StraightThrough,
}

/// The negative ELBO per image: reconstruction cross-entropy of the pixels plus
/// KL(q(z | x) ‖ uniform), with one sample of z drawn with `key`.
fn neg_elbo(m: &Vae, x: &Tensor, key: &Tensor, est: Estimator, tau: f64) -> Tensor {
    let b = x.shape()[0];
    let logits = m.enc2.forward(&m.enc1.forward(x).relu()).reshape(&[b as isize, LATENTS as isize, CLASSES as isize]);
    let z = match est {
        Estimator::ReinMax => nn::reinmax(key, &logits, tau),
        Estimator::StraightThrough => nn::straight_through_softmax(key, &logits),
    };
    let out = m.dec2.forward(&m.dec1.forward(&z.reshape(&[b as isize, -1])).relu());
    // Bernoulli log-likelihood of the pixels: softplus(o) − x·o per pixel.
    let recon = (out.softplus() - x * &out).sum(&[1], false);
    let log_q = logits.log_softmax(-1);
    let kl = (log_q.exp() * (log_q + (CLASSES as f64).ln())).sum(&[1, 2], false);
    (recon + kl).mean_all()
}

/// Trains one model; returns the training loss per epoch and the final test loss.
fn train(args: &Args, est: Estimator, x_train: &Tensor, x_test: &Tensor, bar: &ProgressBar) -> (Vec<f64>, f64) {
    let tau = args.tau;
    let mut model = Vae::new(&random::key(1));
    let opt = Adam::new(args.lr);
    let mut state = opt.init(&model);
    // One compiled step: the batch and the key are arguments, so it is traced once.
    let step =
        jit(move |(m, xb, key): &(Vae, Tensor, Tensor)| value_and_grad(|m: &Vae| neg_elbo(m, xb, key, est, tau))(m));
    let k_shuffle = random::key(2);
    let k_noise = random::key(3);
    let mut curve = Vec::new();
    let mut count = 0i64;
    for epoch in 0..args.epochs {
        let (mut sum, mut seen) = (0.0, 0usize);
        let epoch_key = random::fold_in(&k_shuffle, epoch as i64);
        for xb in data::batches(x_train, args.batch, Some(&epoch_key), true) {
            let key = random::fold_in(&k_noise, count);
            count += 1;
            let (loss, grads) = step(&(model.clone(), xb, key));
            (model, state) = opt.update(&grads, &state, &model);
            sum += loss.cast(DType::F64).item::<f64>();
            seen += 1;
            bar.set_message(format!("loss {:.2}", sum / seen as f64));
            bar.inc(1);
        }
        curve.push(sum / seen as f64);
    }
    // The test loss averaged over 10 draws of the latent sample.
    let test: f64 = (0..10)
        .map(|i| {
            let key = random::fold_in(&random::key(4), i);
            neg_elbo(&model, x_test, &key, est, tau).cast(DType::F64).item::<f64>()
        })
        .sum::<f64>()
        / 10.0;
    (curve, test)
}

fn main() {
    let args = parse_args();
    let (x, _labels) = digits_data::load_digits(DType::F32);
    let (x_train, x_test) = data::split(&x, 0.2, &random::key(0));
    let n_train = x_train.shape()[0];
    println!(
        "discrete_vae: {} training and {} test images, {LATENTS} latent variables of {CLASSES} classes",
        n_train,
        x_test.shape()[0]
    );
    let per_run = (n_train / args.batch) * args.epochs;
    let bar = ProgressBar::new(2 * per_run as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix:>8} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut results = Vec::new();
    for (name, est) in [("reinmax", Estimator::ReinMax), ("st", Estimator::StraightThrough)] {
        bar.set_prefix(name);
        results.push(train(&args, est, &x_train, &x_test, &bar));
    }
    bar.finish_and_clear();
    let (rm, st) = (&results[0], &results[1]);
    for (name, (curve, test)) in [("reinmax", rm), ("st", st)] {
        println!("{name}: first epoch train loss {:.3}, last epoch train loss {:.3}", curve[0], curve[curve.len() - 1]);
        println!("final test loss {name}: {test:.3}");
    }
    std::fs::create_dir_all(&args.out).unwrap_or_else(|e| panic!("cannot create {}: {e}", args.out.display()));
    let png = args.out.join("discrete_vae_losses.png");
    let curve = |name: &str, color, losses: &[f64]| lines::Curve {
        name: name.to_string(),
        color,
        points: losses.iter().enumerate().map(|(i, &y)| (i as f64 + 1.0, y)).collect(),
    };
    let curves = [curve("REINMAX", plotters::style::BLUE, &rm.0), curve("ST", plotters::style::RED, &st.0)];
    lines::draw(&png, "NEGATIVE ELBO (NATS)", "EPOCH", &curves, false)
        .unwrap_or_else(|e| panic!("cannot draw {}: {e}", png.display()));
    println!("wrote {}", png.display());
}
