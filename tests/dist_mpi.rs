//! Data-parallel training over MPI (issue 17; feature `mpi`, `harness = false`).
//!
//! `cargo test --release --features mpi --test dist_mpi` starts as a launcher (not under
//! mpirun): it runs this same binary under `mpirun -n 2 --oversubscribe` (with Open MPI's
//! run-as-root consent set, for CI containers) and checks
//!
//! 1. as a world of two ranks: tree collectives on mixed dtypes and odd sizes, across a
//!    bucket boundary; gradients through collectives; a jitted step holding its all-reduce;
//!    and data-parallel training equal to one process (below);
//! 2. that a rank that panics, and a rank that dies of a signal, make the job end with a
//!    clear error instead of hanging (each run bounded by a timeout that the test reports).
//!
//! Under mpirun each rank runs the checks in the same order (the collectives must match), so
//! this file is a plain `main`, not libtest's threads.

use cotangent::nn::{self, Init, Layer, Linear, Sequential};
use cotangent::ops::collective::{all_reduce, broadcast as broadcast_one, CollectiveOp};
use cotangent::optim::{Adam, Optimizer};
use cotangent::{data, dist, grad, jit, jit_inspect, random, value_and_grad, DType, Tensor, Tree};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CSV: &str = include_str!("../data/digits.csv");

/// Relative tolerance of the two-rank training against one process after 20 Adam steps
/// (see `data_parallel_training_matches_one_process`).
const TRAIN_RTOL: f64 = 1e-5;

fn main() {
    match std::env::var("COTANGENT_DIST_TEST").as_deref() {
        Ok("ranks") => ranks(),
        Ok(mode @ ("panic" | "abort")) => crash_child(mode),
        _ => launcher(),
    }
}

// ---------------------------------------------------------------------------
// Launcher: runs the ranks under mpirun.
// ---------------------------------------------------------------------------

fn launcher() {
    let exe = std::env::current_exe().expect("the test binary's path");
    let started = Instant::now();
    let (ok, out, err) = mpirun(&exe, "ranks", Duration::from_secs(300));
    print!("{out}");
    assert!(ok == Some(true), "the two-rank checks failed ({ok:?}):\n--- stdout\n{out}\n--- stderr\n{err}");
    for check in ["tree collectives", "gradients", "jitted step", "training"] {
        assert_eq!(out.matches(&format!("ok {check}")).count(), 2, "both ranks report `ok {check}`:\n{out}");
    }
    println!("dist_mpi: the two-rank checks passed in {:.1} s", started.elapsed().as_secs_f64());

    // A rank that panics: the panic hook's MPI_Abort ends the job. (mpirun's own
    // "MPI_ABORT was invoked" notice is not asserted: Open MPI 4.1 sometimes fails to print
    // it, logging "ORTE_ERROR_LOG ... show_help.c" instead.)
    let t = Instant::now();
    let (ok, out, err) = mpirun(&exe, "panic", Duration::from_secs(60));
    assert_eq!(ok, Some(false), "a panicking rank must end the job with a failure, not hang:\n{out}\n{err}");
    assert!(err.contains("deliberate panic on rank 1"), "the panic's message is shown:\n{err}");
    assert!(err.contains("rank 1 of 2 panicked; aborting the job"), "dist's note is shown:\n{err}");
    assert!(!out.contains("rank 0 went past"), "rank 0 cannot finish the all-reduce:\n{out}");
    println!("dist_mpi: a panicking rank ended the job (MPI_Abort) in {:.1} s", t.elapsed().as_secs_f64());

    // A rank that dies of a signal (no panic hook runs): mpirun ends the others.
    let t = Instant::now();
    let (ok, out, err) = mpirun(&exe, "abort", Duration::from_secs(60));
    assert_eq!(ok, Some(false), "a rank killed by a signal must end the job with a failure, not hang:\n{out}\n{err}");
    assert!(!out.contains("rank 0 went past"), "rank 0 cannot finish the all-reduce:\n{out}");
    println!("dist_mpi: a rank killed by SIGABRT ended the job in {:.1} s", t.elapsed().as_secs_f64());
}

/// Runs this binary in `mode` under `mpirun -n 2`; `Some(success)`, or `None` if it had to be
/// killed after `timeout` (a hang); with its stdout and stderr.
fn mpirun(exe: &std::path::Path, mode: &str, timeout: Duration) -> (Option<bool>, String, String) {
    let mut child = Command::new("mpirun")
        .args(["-n", "2", "--oversubscribe"])
        .arg(exe)
        .env("COTANGENT_DIST_TEST", mode)
        // Open MPI refuses root without this consent (CI containers run as root).
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        // Two ranks on two cores: one thread each.
        .env("COTANGENT_THREADS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run mpirun (install openmpi-bin, see README \"MPI\"): {e}"));
    let (mut so, mut se) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        so.read_to_string(&mut s).ok();
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        se.read_to_string(&mut s).ok();
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for mpirun") {
            break Some(status.success());
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, t_out.join().unwrap(), t_err.join().unwrap())
}

// ---------------------------------------------------------------------------
// Crash children.
// ---------------------------------------------------------------------------

fn crash_child(mode: &str) {
    let world = dist::init();
    assert_eq!(world.size(), 2);
    dist::barrier();
    if world.rank() == 1 {
        if mode == "panic" {
            panic!("deliberate panic on rank 1");
        }
        std::process::abort();
    }
    // Rank 0 waits here for a rank that will never come.
    let _ = dist::all_reduce_sum(&Tensor::scalar(1.0));
    println!("rank 0 went past the all-reduce");
}

// ---------------------------------------------------------------------------
// The ranks.
// ---------------------------------------------------------------------------

fn ranks() {
    let world = dist::init();
    assert_eq!(world.size(), 2, "run under mpirun -n 2");
    tree_collectives(world.rank());
    gradients(world.rank());
    jitted_step(world.rank());
    data_parallel_training_matches_one_process(world.rank());
    dist::barrier();
}

/// Rank `r`'s value of a leaf with `n` elements: distinct per rank, element and leaf.
fn values(r: usize, leaf: usize, n: usize) -> Vec<f64> {
    (0..n).map(|i| ((r * 7 + leaf * 3 + i) % 11) as f64 - 4.0 + 0.25 * r as f64).collect()
}

/// A tree with every dtype, odd sizes, a scalar, an empty leaf and (for the bucket boundary)
/// two f32 leaves of 4 Mi elements each, more than one bucket together.
fn mixed_tree(r: usize, big: bool) -> (Tensor, Vec<Tensor>, (Tensor, Tensor, Tensor), Tensor, Tensor) {
    let f32t =
        |leaf, shape: &[usize]| Tensor::from_vec(values(r, leaf, shape.iter().product()), shape).cast(DType::F32);
    let big_n = if big { 4 << 20 } else { 5 };
    (
        f32t(0, &[3, 5]),
        vec![f32t(1, &[big_n]), Tensor::from_vec(values(r, 2, 7), &[7]), f32t(3, &[big_n])],
        (
            Tensor::from_vec(values(r, 4, 3).iter().map(|&v| v as i32).collect::<Vec<_>>(), &[3]),
            Tensor::from_vec(vec![(r as i64 + 1) * 1000], &[]),
            Tensor::zeros(&[0, 4], DType::F32),
        ),
        Tensor::scalar(r as f64 + 0.5),
        Tensor::from_vec(vec![r == 0, r == 1, true], &[3]),
    )
}

fn tree_collectives(rank: usize) {
    for big in [false, true] {
        let mine = mixed_tree(rank, big);
        let all = [mixed_tree(0, big), mixed_tree(1, big)];
        // Sum over ranks of the numeric leaves (the bool leaf is left out of sums).
        let numeric = |t: &(Tensor, Vec<Tensor>, (Tensor, Tensor, Tensor), Tensor, Tensor)| {
            (t.0.clone(), t.1.clone(), t.2.clone(), t.3.clone())
        };
        let summed = dist::all_reduce_sum(&numeric(&mine));
        let want: Vec<Tensor> =
            numeric(&all[0]).leaves().iter().zip(numeric(&all[1]).leaves()).map(|(a, b)| a + &b).collect();
        for ((path, got), want) in summed.named_leaves().into_iter().zip(&want) {
            assert_eq!(got.ty(), want.ty(), "{path}");
            assert_eq!(
                got.cast(DType::F64).to_vec::<f64>(),
                want.cast(DType::F64).to_vec::<f64>(),
                "all_reduce_sum of {path} (big={big})"
            );
        }
        // Mean of the float leaves.
        let floats = (mine.0.clone(), mine.1.clone(), mine.3.clone());
        // Few messages: one per dtype (f32, f64), and the f32 leaves split in two where
        // they add up to more than a bucket (2 × 16 MiB > 25 MiB).
        let plan = jit_inspect(dist::all_reduce_mean::<(Tensor, Vec<Tensor>, Tensor)>, &floats).plan;
        assert_eq!(plan.matches("all_reduce_mean").count(), if big { 3 } else { 2 }, "buckets in\n{plan}");
        let mean = dist::all_reduce_mean(&floats);
        let fa = |t: &(Tensor, Vec<Tensor>, (Tensor, Tensor, Tensor), Tensor, Tensor)| {
            (t.0.clone(), t.1.clone(), t.3.clone())
        };
        for ((got, a), b) in mean.leaves().iter().zip(fa(&all[0]).leaves()).zip(fa(&all[1]).leaves()) {
            let w: Vec<f64> = a
                .cast(DType::F64)
                .to_vec::<f64>()
                .iter()
                .zip(b.cast(DType::F64).to_vec::<f64>())
                .map(|(a, b)| (a + b) / 2.0)
                .collect();
            assert_eq!(got.cast(DType::F64).to_vec::<f64>(), w, "all_reduce_mean (big={big})");
        }
        // Broadcast of everything, bool included, from rank 1.
        let b = dist::broadcast(&mine, 1);
        for ((path, got), want) in b.named_leaves().into_iter().zip(all[1].leaves()) {
            assert_eq!(got.ty(), want.ty(), "{path}");
            if got.dtype() == DType::Bool {
                assert_eq!(got.to_vec::<bool>(), want.to_vec::<bool>(), "broadcast of {path}");
            } else {
                assert_eq!(
                    got.cast(DType::F64).to_vec::<f64>(),
                    want.cast(DType::F64).to_vec::<f64>(),
                    "broadcast of {path} (big={big})"
                );
            }
        }
    }
    println!("ok tree collectives (rank {rank})");
}

/// World loss `L = Σ_r sum(w_r · C(x_r))`: each rank's gradient is its slice of ∇L.
fn gradients(rank: usize) {
    let w_of = |r: usize| Tensor::from_vec(vec![r as f64 + 1.0, 2.0 * r as f64 - 1.0, 0.5], &[3]);
    let w = w_of(rank);
    let x = Tensor::from_vec(vec![0.5 * rank as f64, -1.0, 2.0], &[3]);
    let w_sum = &w_of(0) + &w_of(1);
    let w1 = w.clone();
    let g = grad(move |x: &Tensor| (&w1 * all_reduce(x, CollectiveOp::Sum)).sum_all())(&x);
    assert_eq!(g.to_vec::<f64>(), w_sum.to_vec::<f64>(), "transpose of all_reduce_sum");
    let w2 = w.clone();
    let g = grad(move |x: &Tensor| (&w2 * broadcast_one(x, 0)).sum_all())(&x);
    let want = if rank == 0 { w_sum.to_vec::<f64>() } else { vec![0.0; 3] };
    assert_eq!(g.to_vec::<f64>(), want, "transpose of broadcast (reduce to the root)");
    // A tree collective inside grad: with m = (x_0 + x_1)/2 on both ranks, the world loss
    // is 2·sum(m²), whose gradient with respect to each x_r is 2m.
    let g = grad(|x: &Tensor| dist::all_reduce_mean(&vec![x.clone()])[0].square().sum_all())(&x);
    let x0 = [0.0, -1.0, 2.0];
    let x1 = [0.5, -1.0, 2.0];
    let want: Vec<f64> = (0..3).map(|i| 2.0 * (x0[i] + x1[i]) / 2.0).collect();
    assert_eq!(g.to_vec::<f64>(), want, "gradient through dist::all_reduce_mean");
    println!("ok gradients (rank {rank})");
}

fn jitted_step(rank: usize) {
    let step = jit(|w: &Tensor| {
        let g = grad(|w: &Tensor| (w * w).sum_all())(w);
        w - dist::all_reduce_mean(&g) * 0.25
    });
    let w = Tensor::from_vec(vec![1.0 + rank as f64, -2.0], &[2]);
    let w1 = step(&w);
    let w2 = step(&w1);
    // Mean gradient 2·mean(w): [3, -4] then [2·(0.25+1.25)/2, 2·(-1)] ...
    assert_eq!(w1.to_vec::<f64>(), vec![1.0 + rank as f64 - 0.75, -1.0]);
    let mean0 = (0.25 + 1.25) / 2.0;
    assert_eq!(w2.to_vec::<f64>(), vec![w1.to_vec::<f64>()[0] - 0.5 * mean0, -0.5]);
    println!("ok jitted step (rank {rank})");
}

/// Pixels in [0, 1] as `[n, 64]` f32 and labels `[n]` i64 (the digits example's data).
fn load_digits() -> (Tensor, Tensor) {
    let (mut px, mut lab) = (Vec::new(), Vec::new());
    for line in CSV.lines() {
        let v: Vec<f32> = line.split(',').map(|s| s.trim().parse().unwrap()).collect();
        px.extend(v[..64].iter().map(|p| p / 16.0));
        lab.push(v[64] as i64);
    }
    let n = lab.len();
    (Tensor::from_vec(px, &[n, 64]), Tensor::from_vec(lab, &[n]))
}

/// Twenty Adam steps on the digits MLP with global batches of 64 shared by two ranks
/// (32 each, gradients averaged) against one process taking the whole batches, same key:
/// the parameters agree within `TRAIN_RTOL` (relative to the largest parameter), which
/// is f32 summation order — the two halves' mean gradients are averaged instead of one
/// mean over 64 rows — amplified by Adam's division by √v.
fn data_parallel_training_matches_one_process(rank: usize) {
    let (x, y) = load_digits();
    let keys = random::split(&random::key(0), 2);
    let model0 = Sequential::new(vec![
        Layer::Linear(Linear::with_init(&keys.index(0), 64, 32, Init::HeUniform, true, DType::F32)),
        Layer::Activation(nn::Activation::Relu),
        Layer::Linear(Linear::new(&keys.index(1), 32, 10, DType::F32)),
    ]);
    let opt = Adam::new(2e-3);
    let loss = |m: &Sequential, xb: &Tensor, yb: &Tensor| nn::cross_entropy(&m.forward(xb), yb);
    let train = (x, y);
    let run = |shards: Option<(usize, usize)>| {
        // Rank 1 starts from other weights: the broadcast must overwrite them.
        let start = if shards.is_some_and(|(r, _)| r == 1) { model0.map_leaves(|t| t * 3.0) } else { model0.clone() };
        let mut model = if shards.is_some() { dist::broadcast(&start, 0) } else { start };
        let mut state = opt.init(&model);
        let batches: Box<dyn Iterator<Item = (Tensor, Tensor)>> = match shards {
            Some((r, s)) => Box::new(data::shard_batches(&train, 64, Some(&keys.index(1)), true, r, s).map(|(b, _)| b)),
            None => Box::new(data::batches(&train, 64, Some(&keys.index(1)), true)),
        };
        for (xb, yb) in batches.take(20) {
            let (_, g) = value_and_grad(|m: &Sequential| loss(m, &xb, &yb))(&model);
            let g = if shards.is_some() { dist::all_reduce_mean(&g) } else { g };
            (model, state) = opt.update(&g, &state, &model);
        }
        model
    };
    let two = run(Some((rank, 2)));
    let one = run(None);
    let (mut worst, mut scale) = (0.0f64, 0.0f64);
    for (a, b) in two.leaves().iter().zip(one.leaves()) {
        for (a, b) in a.cast(DType::F64).to_vec::<f64>().iter().zip(b.cast(DType::F64).to_vec::<f64>()) {
            worst = worst.max((a - b).abs());
            scale = scale.max(b.abs());
        }
    }
    println!("rank {rank}: 2 ranks vs 1 process after 20 steps: max |diff| {worst:.3e}, max |param| {scale:.3}");
    assert!(worst <= TRAIN_RTOL * scale, "max |diff| {worst:e} exceeds {TRAIN_RTOL} × {scale}");
    // The ranks hold bitwise the same parameters.
    let root = dist::broadcast(&two, 0);
    for (a, b) in root.leaves().iter().zip(two.leaves()) {
        assert_eq!(a.to_vec::<f32>(), b.to_vec::<f32>(), "ranks out of sync");
    }
    println!("ok training (rank {rank})");
}
