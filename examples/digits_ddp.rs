//! The digits classifier (`examples/digits`) trained data-parallel over MPI: the same
//! program on every rank, parameters broadcast from rank 0, each rank computing the
//! gradient on its part of every global batch, gradients summed by one all-reduce inside
//! the jitted training step, logging and checkpoint by rank 0 only.
//!
//! ```text
//! mpirun -n 2 cargo run --release --features mpi --example digits_ddp
//! mpirun -n 2 --oversubscribe target/release/examples/digits_ddp --epochs 5   # built once
//! cargo run --release --features mpi --example digits_ddp                      # one process
//! ```
//!
//! Each rank weighs its mean loss by its share of the global batch (`n_rank / n_global`), so
//! the summed gradient is the global batch's mean gradient even when the ranks' parts differ
//! by one example: the run computes what `digits` computes with the same global batch, up to
//! f32 summation order.

#[path = "common/digits_data.rs"]
mod digits_data;
use cotangent::nn::{self, Activation, Conv2d, Layer, Linear, MaxPool2d, Sequential};
use cotangent::optim::{Adam, AdamState, Optimizer};
use cotangent::{data, dist, io, jit, random, value_and_grad_with_aux, DType, Tensor};
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
        out: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/digits_ddp"),
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
        eprintln!("digits_ddp: {msg}");
    }
    eprintln!("usage: digits_ddp [--epochs N] [--batch GLOBAL_N] [--lr X] [--model mlp|cnn] [--out DIR]");
    std::process::exit(2)
}

/// An MLP 64-128-10, or a small CNN on the 8×8 images (as in `digits`).
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

fn inputs(x: &Tensor, cnn: bool) -> Tensor {
    if cnn {
        x.reshape_to(&[x.shape()[0], 1, 8, 8])
    } else {
        x.clone()
    }
}

fn main() {
    let world = dist::init();
    let root = world.is_root();
    let args = parse_args();
    let (x, y) = digits_data::load_digits(DType::F32);
    let keys = random::split(&random::key(0), 3);
    let (k_split, k_init, k_shuffle) = (keys.index(0), keys.index(1), keys.index(2));
    let ((x_train, y_train), (x_test, y_test)) = data::split(&(x, y), 0.2, &k_split);
    let n_train = y_train.shape()[0];
    if root {
        println!(
            "digits_ddp: {} ranks, global batch {} ({} per rank), {n_train} training images",
            world.size(),
            args.batch,
            args.batch / world.size()
        );
    }
    let cnn = args.cnn;
    // Every rank starts from rank 0's parameters.
    let mut model = dist::broadcast(&build_model(&k_init, cnn), 0);
    let opt = Adam::new(args.lr);
    let mut state = opt.init(&model);

    // One jitted step: local gradient (weighted by this rank's share of the global batch),
    // one all-reduce of the gradients and the batch's statistics, the Adam update.
    type StepIn = (Sequential, AdamState<Sequential>, Tensor, Tensor, Tensor);
    let step = jit(move |(m, s, xb, yb, share): &StepIn| {
        let xin = inputs(xb, cnn);
        let ((loss, logits), g) = value_and_grad_with_aux(|m: &Sequential| {
            let logits = m.forward(&xin);
            (nn::cross_entropy(&logits, yb) * share, logits)
        })(m);
        let nb = yb.shape()[0] as f64;
        let correct = (nn::accuracy(&logits, yb) * nb).cast(DType::F32);
        // Summed over ranks: the global mean gradient, the global mean loss, the correct count.
        let (g, loss, correct) = dist::all_reduce_sum(&(g, loss, correct));
        let (m, s) = opt.update(&g, s, m);
        (m, s, loss, correct)
    });

    let train = (x_train, y_train);
    let start = Instant::now();
    let mut steady: Option<(Instant, usize, usize)> = None; // from epoch 2: (start, steps, images)
    let mut steps = 0;
    for epoch in 0..args.epochs {
        if epoch == 1 {
            steady = Some((Instant::now(), 0, 0));
        }
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0.0, 0usize);
        let epoch_key = random::fold_in(&k_shuffle, epoch as i64);
        for ((xb, yb), m) in
            data::shard_batches(&train, args.batch, Some(&epoch_key), false, world.rank(), world.size())
        {
            let share = Tensor::scalar(yb.shape()[0] as f64 / m as f64).cast(DType::F32);
            let (loss, c);
            (model, state, loss, c) = step(&(model, state, xb, yb, share));
            loss_sum += loss.cast(DType::F64).item::<f64>() * m as f64;
            correct += c.cast(DType::F64).item::<f64>();
            seen += m;
            steps += 1;
            if let Some((_, s, i)) = steady.as_mut() {
                *s += 1;
                *i += m;
            }
        }
        if root {
            let logits = model.forward(&inputs(&x_test, cnn));
            let test_acc = nn::accuracy(&logits, &y_test).item::<f64>();
            println!(
                "epoch {:>3}: train loss {:.4}, train accuracy {:.2}%, test accuracy {:.2}%",
                epoch + 1,
                loss_sum / seen as f64,
                100.0 * correct / seen as f64,
                100.0 * test_acc
            );
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    if root {
        println!("{steps} steps in {elapsed:.2} s on {} rank(s)", world.size());
        if let Some((t, s, i)) = steady {
            let dt = t.elapsed().as_secs_f64();
            println!(
                "throughput after the first epoch: {:.1} steps/s, {:.0} images/s ({} ranks)",
                s as f64 / dt,
                i as f64 / dt,
                world.size()
            );
        }
        std::fs::create_dir_all(&args.out).unwrap_or_else(|e| panic!("cannot create {}: {e}", args.out.display()));
        let name = if cnn { "digits_ddp_cnn" } else { "digits_ddp_mlp" };
        let ckpt = args.out.join(format!("{name}.safetensors"));
        io::save(&model, &ckpt).unwrap_or_else(|e| panic!("{e}"));
        io::save(&state, args.out.join(format!("{name}_adam.safetensors"))).unwrap_or_else(|e| panic!("{e}"));
        let reloaded = io::load(&build_model(&random::key(12345), cnn), &ckpt).unwrap_or_else(|e| panic!("{e}"));
        let acc = |m: &Sequential| nn::accuracy(&m.forward(&inputs(&x_test, cnn)), &y_test).item::<f64>();
        let (a, b) = (acc(&model), acc(&reloaded));
        println!("rank 0 saved the model to {} (reloaded test accuracy {:.2}%)", ckpt.display(), 100.0 * b);
        if a != b {
            eprintln!("digits_ddp: the reloaded model scores {b}, not {a}");
            std::process::exit(1);
        }
    }
    // Every rank leaves together (rank 0 may still be writing).
    dist::barrier();
}
