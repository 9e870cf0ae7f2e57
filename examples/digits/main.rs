//! Trains a classifier on the UCI handwritten digits (8×8 images, 1,797 of them,
//! shipped in `data/digits.csv`; CC BY 4.0, see `data/README.md`).
//!
//! ```text
//! cargo run --release --example digits                 # MLP 64-128-10, 30 epochs
//! cargo run --release --example digits -- --model cnn  # a small CNN
//! cargo run --release --example digits -- --epochs 5 --out /tmp/digits
//! ```
//!
//! It splits train/test with a fixed key, trains with Adam on shuffled
//! mini-batches (a progress bar shows the running loss and accuracy), writes a
//! PNG of the loss and accuracy curves, saves a safetensors checkpoint of the
//! model and of the optimiser state, reloads the model into a fresh one and
//! checks that it scores the same test accuracy.

mod plot;

#[path = "../common/digits_data.rs"]
mod digits_data;
use cotangent::nn::{self, Activation, Conv2d, Layer, Linear, MaxPool2d, Sequential};
use cotangent::optim::{Adam, Optimizer};
use cotangent::{data, io, random, value_and_grad_with_aux, DType, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::time::Instant;

struct Args {
    epochs: usize,
    batch: usize,
    lr: f64,
    cnn: bool,
    out: PathBuf,
}

fn parse_args() -> Args {
    let mut a = Args {
        epochs: 30,
        batch: 64,
        lr: 2e-3,
        cnn: false,
        out: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/digits"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--epochs" => a.epochs = value().parse().unwrap_or_else(|_| usage("bad --epochs")),
            "--batch" => a.batch = value().parse().unwrap_or_else(|_| usage("bad --batch")),
            "--lr" => a.lr = value().parse().unwrap_or_else(|_| usage("bad --lr")),
            "--model" => {
                a.cnn = match value().as_str() {
                    "mlp" => false,
                    "cnn" => true,
                    m => usage(&format!("unknown model {m}")),
                }
            }
            "--out" => a.out = PathBuf::from(value()),
            "-h" | "--help" => usage(""),
            f => usage(&format!("unknown argument {f}")),
        }
    }
    a
}

fn usage(msg: &str) -> ! {
    if !msg.is_empty() {
        eprintln!("digits: {msg}");
    }
    eprintln!("usage: digits [--epochs N] [--batch N] [--lr X] [--model mlp|cnn] [--out DIR]");
    std::process::exit(2)
}

/// An MLP 64-128-10, or a small CNN on the 8×8 images.
fn build_model(key: &Tensor, cnn: bool) -> Sequential {
    let k = random::split(key, 3);
    let f = DType::F32;
    if cnn {
        Sequential::new(vec![
            Layer::Conv2d(Conv2d::new(&k.index(0), 1, 16, (3, 3), f).with_padding((1, 1))),
            Layer::Activation(Activation::Relu),
            Layer::MaxPool2d(MaxPool2d::new((2, 2))),
            Layer::Flatten,
            Layer::Linear(Linear::new(&k.index(1), 16 * 4 * 4, 64, f)),
            Layer::Activation(Activation::Relu),
            Layer::Linear(Linear::new(&k.index(2), 64, 10, f)),
        ])
    } else {
        Sequential::new(vec![
            Layer::Linear(Linear::with_init(&k.index(0), 64, 128, nn::Init::HeUniform, true, f)),
            Layer::Activation(Activation::Relu),
            Layer::Linear(Linear::new(&k.index(1), 128, 10, f)),
        ])
    }
}

/// The model's input: flat pixels for the MLP, `[n, 1, 8, 8]` images for the CNN.
fn inputs(x: &Tensor, cnn: bool) -> Tensor {
    if cnn {
        x.reshape_to(&[x.shape()[0], 1, 8, 8])
    } else {
        x.clone()
    }
}

fn evaluate(model: &Sequential, x: &Tensor, y: &Tensor, cnn: bool) -> (f64, f64) {
    let logits = model.forward(&inputs(x, cnn));
    (nn::cross_entropy(&logits, y).cast(DType::F64).item::<f64>(), nn::accuracy(&logits, y).item::<f64>())
}

fn main() {
    let args = parse_args();
    let start = Instant::now();
    let (x, y) = digits_data::load_digits(DType::F32);
    let key = random::key(0);
    let keys = random::split(&key, 3);
    let (k_split, k_init, k_shuffle) = (keys.index(0), keys.index(1), keys.index(2));
    let ((x_train, y_train), (x_test, y_test)) = data::split(&(x, y), 0.2, &k_split);
    let n_train = y_train.shape()[0];
    println!("digits: {} training and {} test images of 8x8 pixels, 10 classes", n_train, y_test.shape()[0]);

    let cnn = args.cnn;
    let mut model = build_model(&k_init, cnn);
    let opt = Adam::new(args.lr);
    let mut state = opt.init(&model);
    let train = (x_train.clone(), y_train.clone());
    let step = |model: &Sequential, xb: &Tensor, yb: &Tensor| {
        let xb = inputs(xb, cnn);
        let loss = |m: &Sequential| {
            let logits = m.forward(&xb);
            (nn::cross_entropy(&logits, yb), logits)
        };
        // Bound first: the temporary closure must be dropped before `xb`, which it borrows.
        #[allow(clippy::let_and_return)]
        let out = value_and_grad_with_aux(loss)(model);
        out
    };

    let batches_per_epoch = n_train.div_ceil(args.batch);
    let bar = ProgressBar::new((args.epochs * batches_per_epoch) as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} epoch {prefix:>3} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut history = plot::History::default();
    let mut reached: Option<(usize, f64)> = None;
    for epoch in 0..args.epochs {
        bar.set_prefix(format!("{}", epoch + 1));
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0.0, 0usize);
        let epoch_key = random::fold_in(&k_shuffle, epoch as i64);
        for (xb, yb) in data::batches(&train, args.batch, Some(&epoch_key), false) {
            let nb = yb.shape()[0];
            let ((loss, logits), grads) = step(&model, &xb, &yb);
            (model, state) = opt.update(&grads, &state, &model);
            loss_sum += loss.cast(DType::F64).item::<f64>() * nb as f64;
            correct += nn::accuracy(&logits, &yb).item::<f64>() * nb as f64;
            seen += nb;
            bar.set_message(format!("loss {:.4} acc {:.1}%", loss_sum / seen as f64, 100.0 * correct / seen as f64));
            bar.inc(1);
        }
        let (test_loss, test_acc) = evaluate(&model, &x_test, &y_test, cnn);
        history.push(loss_sum / seen as f64, correct / seen as f64, test_loss, test_acc);
        if reached.is_none() && test_acc >= 0.95 {
            reached = Some((epoch + 1, start.elapsed().as_secs_f64()));
        }
        let line = format!(
            "epoch {:>3}: train loss {:.4}, train accuracy {:.2}%, test accuracy {:.2}%",
            epoch + 1,
            loss_sum / seen as f64,
            100.0 * correct / seen as f64,
            100.0 * test_acc
        );
        // A hidden bar (output not a terminal) drops its println; print plainly then.
        if bar.is_hidden() {
            println!("{line}");
        } else {
            bar.println(line);
        }
    }
    bar.finish_and_clear();
    let elapsed = start.elapsed().as_secs_f64();
    let (_, final_acc) = evaluate(&model, &x_test, &y_test, cnn);
    println!("final test accuracy: {:.2}% after {} epochs in {elapsed:.1} s", 100.0 * final_acc, args.epochs);
    match reached {
        Some((e, t)) => println!("reached 95% test accuracy after epoch {e}, {t:.1} s from start"),
        None => println!("did not reach 95% test accuracy"),
    }

    std::fs::create_dir_all(&args.out).unwrap_or_else(|e| panic!("cannot create {}: {e}", args.out.display()));
    let png = args.out.join("digits_curves.png");
    match plot::draw(&history, &png) {
        Ok(()) => println!("wrote the loss and accuracy curves to {}", png.display()),
        Err(e) => eprintln!("could not draw {}: {e}", png.display()),
    }

    let name = if cnn { "digits_cnn" } else { "digits_mlp" };
    let ckpt = args.out.join(format!("{name}.safetensors"));
    let ckpt_opt = args.out.join(format!("{name}_adam.safetensors"));
    io::save(&model, &ckpt).unwrap_or_else(|e| panic!("{e}"));
    io::save(&state, &ckpt_opt).unwrap_or_else(|e| panic!("{e}"));
    println!("saved the model to {} and the optimiser state to {}", ckpt.display(), ckpt_opt.display());
    // A fresh model (other random weights), then the checkpoint's weights into it.
    let fresh = build_model(&random::key(12345), cnn);
    let reloaded = io::load(&fresh, &ckpt).unwrap_or_else(|e| panic!("{e}"));
    let (_, reloaded_acc) = evaluate(&reloaded, &x_test, &y_test, cnn);
    println!(
        "reloaded test accuracy: {:.2}% ({})",
        100.0 * reloaded_acc,
        if reloaded_acc == final_acc { "the same" } else { "DIFFERENT" }
    );
    if reloaded_acc != final_acc {
        std::process::exit(1);
    }
}
