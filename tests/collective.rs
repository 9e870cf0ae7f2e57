//! Collective primitives (issue 17) in a simulated world: each rank is a thread, and a
//! registered `Communicator` exchanges their buffers through shared memory. This checks the
//! semantics of the primitives and of their rules (jvp, transpose, batching, plans) with
//! several ranks in the default test suite, without MPI; `tests/dist_mpi.rs` runs the same
//! kind of checks over MPI under `mpirun -n 2` (feature `mpi`).

mod common;

use common::panic_message;
use cotangent::data::{BatchIndices, ShardedBatchIndices};
use cotangent::ops::collective::{self, all_reduce, broadcast, reduce_to, CollectiveOp, Communicator};
use cotangent::{grad, jit, jit_inspect, jvp, random, vmap, Data, Tensor};
use std::cell::Cell;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

thread_local! {
    static RANK: Cell<usize> = const { Cell::new(0) };
}

/// A barrier that panics instead of waiting forever when a rank never arrives (a rank
/// that panicked), so a failing test fails instead of hanging.
struct Gate {
    size: usize,
    state: Mutex<(usize, u64)>, // arrived, generation
    cv: Condvar,
}

impl Gate {
    fn wait(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let generation = s.1;
        s.0 += 1;
        if s.0 == self.size {
            *s = (0, generation + 1);
            self.cv.notify_all();
            return;
        }
        while s.1 == generation {
            let (next, timeout) = self.cv.wait_timeout(s, Duration::from_secs(60)).unwrap_or_else(|e| e.into_inner());
            s = next;
            assert!(!(timeout.timed_out() && s.1 == generation), "a rank waited 60 s for the others");
        }
    }
}

/// A world of `size` threads: each call deposits this rank's buffer, waits for all, and
/// combines them in rank order.
struct ThreadWorld {
    size: usize,
    barrier: Gate,
    slots: Mutex<Vec<Option<Data>>>,
    calls: Mutex<usize>,
}

impl ThreadWorld {
    fn exchange(&self, buf: &Data) -> Vec<Data> {
        let rank = RANK.with(|r| r.get());
        self.slots.lock().unwrap()[rank] = Some(buf.clone());
        self.barrier.wait();
        let all: Vec<Data> = self.slots.lock().unwrap().iter().map(|d| d.clone().unwrap()).collect();
        // Nobody writes the next call's buffer before everyone has read this one.
        self.barrier.wait();
        if rank == 0 {
            *self.calls.lock().unwrap() += 1;
        }
        all
    }

    fn sum(all: &[Data]) -> Data {
        let mut acc = all[0].clone();
        for d in &all[1..] {
            match (&mut acc, d) {
                (Data::F32(a), Data::F32(b)) => a.iter_mut().zip(b).for_each(|(a, b)| *a += b),
                (Data::F64(a), Data::F64(b)) => a.iter_mut().zip(b).for_each(|(a, b)| *a += b),
                (Data::I32(a), Data::I32(b)) => a.iter_mut().zip(b).for_each(|(a, b)| *a += b),
                (Data::I64(a), Data::I64(b)) => a.iter_mut().zip(b).for_each(|(a, b)| *a += b),
                _ => panic!("ranks disagree on the dtype of a collective"),
            }
        }
        acc
    }
}

impl Communicator for ThreadWorld {
    fn rank(&self) -> usize {
        RANK.with(|r| r.get())
    }
    fn size(&self) -> usize {
        self.size
    }
    fn all_reduce_sum(&self, buf: &mut Data) {
        *buf = Self::sum(&self.exchange(buf));
    }
    fn broadcast(&self, buf: &mut Data, root: usize) {
        *buf = self.exchange(buf)[root].clone();
    }
    fn reduce_sum(&self, buf: &mut Data, root: usize) {
        let all = self.exchange(buf);
        if self.rank() == root {
            *buf = Self::sum(&all);
        }
    }
    fn barrier(&self) {
        self.barrier.wait();
    }
}

/// One simulated world at a time (the communicator is process-wide).
static WORLD: Mutex<()> = Mutex::new(());

/// Runs `f(rank)` on `size` threads forming a world; returns each rank's result and the
/// number of collective calls made.
fn run_world<R: Send + 'static>(size: usize, f: impl Fn(usize) -> R + Send + Sync + 'static) -> (Vec<R>, usize) {
    let _one = WORLD.lock().unwrap_or_else(|e| e.into_inner());
    let world = Arc::new(ThreadWorld {
        size,
        barrier: Gate { size, state: Mutex::new((0, 0)), cv: Condvar::new() },
        slots: Mutex::new(vec![None; size]),
        calls: Mutex::new(0),
    });
    collective::set_communicator(Some(world.clone()));
    // Unregisters even when a rank panicked.
    struct Unregister;
    impl Drop for Unregister {
        fn drop(&mut self) {
            collective::set_communicator(None);
        }
    }
    let _unregister = Unregister;
    let f = Arc::new(f);
    let handles: Vec<_> = (0..size)
        .map(|rank| {
            let f = f.clone();
            std::thread::spawn(move || {
                RANK.with(|r| r.set(rank));
                f(rank)
            })
        })
        .collect();
    let out: Vec<R> = handles.into_iter().map(|h| h.join().expect("a rank panicked")).collect();
    let calls = *world.calls.lock().unwrap();
    (out, calls)
}

#[test]
fn all_reduce_broadcast_reduce_to_values() {
    let (out, calls) = run_world(3, |rank| {
        let r = rank as f64;
        let x = Tensor::from_vec(vec![r + 1.0, 10.0 * (r + 1.0)], &[2]).cast(cotangent::DType::F32);
        let s = all_reduce(&x, CollectiveOp::Sum).to_vec::<f32>();
        let m = all_reduce(&x.cast(cotangent::DType::F64), CollectiveOp::Mean).to_vec::<f64>();
        let i = all_reduce(&Tensor::from_vec(vec![rank as i64], &[1]), CollectiveOp::Sum).to_vec::<i64>();
        let b = broadcast(&Tensor::scalar(r * 7.0), 1).item::<f64>();
        let t = reduce_to(&Tensor::from_vec(vec![r, 1.0], &[2]), 2).to_vec::<f64>();
        (s, m, i, b, t)
    });
    assert_eq!(calls, 5);
    for (rank, (s, m, i, b, t)) in out.into_iter().enumerate() {
        assert_eq!(s, vec![6.0, 60.0]);
        assert_eq!(m, vec![2.0, 20.0]);
        assert_eq!(i, vec![3]);
        assert_eq!(b, 7.0);
        assert_eq!(t, if rank == 2 { vec![3.0, 3.0] } else { vec![0.0, 0.0] }, "rank {rank}");
    }
}

/// The loss of the whole world is `L = Σ_r sum(w_r · C(x_r))`; each rank's gradient is
/// its slice of ∇L, which the transpose rules must produce with their own collectives.
#[test]
fn gradients_through_collectives_are_the_world_gradients() {
    let (out, _) = run_world(3, |rank| {
        let w = Tensor::from_vec(vec![rank as f64 + 1.0, 2.0 * rank as f64 - 1.0], &[2]);
        let x = Tensor::from_vec(vec![0.5 * rank as f64, -1.0], &[2]);
        let (w1, w2, w3) = (w.clone(), w.clone(), w.clone());
        let g_sum = grad(move |x: &Tensor| (&w1 * all_reduce(x, CollectiveOp::Sum)).sum_all())(&x).to_vec::<f64>();
        let g_mean = grad(move |x: &Tensor| (&w2 * all_reduce(x, CollectiveOp::Mean)).sum_all())(&x).to_vec::<f64>();
        let g_bcast = grad(move |x: &Tensor| (&w3 * broadcast(x, 1)).sum_all())(&x).to_vec::<f64>();
        // Nonlinear around the collective: S = Σ_r x_r² on every rank, the world loss is
        // 3·sum(S²), so each rank's gradient is 3·2S·2x_r.
        let g_sq = grad(|x: &Tensor| all_reduce(&x.square(), CollectiveOp::Sum).square().sum_all())(&x).to_vec::<f64>();
        (g_sum, g_mean, g_bcast, g_sq, x.to_vec::<f64>())
    });
    // Σ_r w_r = [1+2+3, -1+1+3] = [6, 3].
    let xs: Vec<Vec<f64>> = out.iter().map(|o| o.4.clone()).collect();
    let s: Vec<f64> = (0..2).map(|i| xs.iter().map(|x| x[i] * x[i]).sum()).collect();
    for (rank, (g_sum, g_mean, g_bcast, g_sq, x)) in out.into_iter().enumerate() {
        assert_eq!(g_sum, vec![6.0, 3.0], "rank {rank}");
        assert_eq!(g_mean, vec![2.0, 1.0], "rank {rank}");
        assert_eq!(g_bcast, if rank == 1 { vec![6.0, 3.0] } else { vec![0.0, 0.0] }, "rank {rank}");
        let want: Vec<f64> = (0..2).map(|i| 12.0 * s[i] * x[i]).collect();
        assert_eq!(g_sq, want, "rank {rank}");
    }
}

#[test]
fn reduce_to_transposes_to_broadcast_and_jvp_is_the_collective_of_tangents() {
    let (out, _) = run_world(2, |rank| {
        let x = Tensor::from_vec(vec![rank as f64 + 2.0], &[1]);
        let w = Tensor::from_vec(vec![rank as f64 * 10.0 + 1.0], &[1]);
        let g = grad(move |x: &Tensor| (&w * reduce_to(x, 0)).sum_all())(&x).item::<f64>();
        let t = Tensor::from_vec(vec![rank as f64 + 1.0], &[1]);
        let (_, dy) = jvp(|x: &Tensor| all_reduce(&x.exp(), CollectiveOp::Sum), &x, &t);
        (g, dy.item::<f64>())
    });
    // Rank 0's output weight (1) reaches every rank; rank 1's output is zero.
    assert_eq!(out[0].0, 1.0);
    assert_eq!(out[1].0, 1.0);
    let want = 2f64.exp() * 1.0 + 3f64.exp() * 2.0;
    for (_, dy) in &out {
        assert!((dy - want).abs() < 1e-12, "{dy} vs {want}");
    }
}

#[test]
fn a_jitted_step_contains_its_all_reduce_as_a_kernel_step() {
    let step = |w: &Tensor| {
        let g = grad(|w: &Tensor| (w * w).sum_all())(w);
        w - all_reduce(&g, CollectiveOp::Mean) * 0.1
    };
    let inspection = jit_inspect(step, &Tensor::zeros(&[3], cotangent::DType::F32));
    let plan = &inspection.plan;
    assert!(plan.contains("all_reduce_mean"), "no all-reduce in the plan:\n{plan}");
    let (out, calls) = run_world(2, move |rank| {
        let f = jit(step);
        let mut w = Tensor::from_vec(vec![1.0f32 + rank as f32, -2.0, 0.5], &[3]);
        let eager = step(&w).to_vec::<f32>();
        let mut first = Vec::new();
        for k in 0..3 {
            w = f(&w);
            if k == 0 {
                first = w.to_vec::<f32>();
            }
        }
        (eager, first, w.to_vec::<f32>())
    });
    // One eager and three jitted all-reduces.
    assert_eq!(calls, 4);
    for (eager, first, _) in &out {
        assert_eq!(eager, first, "jit agrees with eager");
    }
    // rank 0: w = [1, -2, .5], rank 1: [2, -2, .5]; mean grad = 2·mean(w).
    for (got, want) in [(&out[0].1, [0.7f32, -1.6, 0.4]), (&out[1].1, [1.7, -1.6, 0.4])] {
        assert!(got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-6), "{got:?} vs {want:?}");
    }
}

#[test]
fn vmap_of_a_collective_reduces_every_batch_element() {
    let (out, _) = run_world(2, |rank| {
        let x = Tensor::from_vec(vec![rank as f64, 1.0, 2.0, 3.0 * rank as f64], &[2, 2]);
        vmap(|row: &Tensor| all_reduce(row, CollectiveOp::Sum) * row)(&x).to_vec::<f64>()
    });
    // Summed: [[0, 1], [2, 0]] + [[1, 1], [2, 3]] = [[1, 2], [4, 3]], times each rank's rows.
    assert_eq!(out[0], vec![0.0, 2.0, 8.0, 0.0]);
    assert_eq!(out[1], vec![1.0, 2.0, 8.0, 9.0]);
}

#[test]
fn collectives_check_their_operands() {
    // A world of one (no communicator registered while this runs).
    let _one = WORLD.lock().unwrap_or_else(|e| e.into_inner());
    let msg = panic_message(|| broadcast(&Tensor::scalar(1.0), 1));
    assert!(msg.contains("broadcast") && msg.contains("root 1"), "{msg}");
    let msg = panic_message(|| all_reduce(&Tensor::from_vec(vec![1i64], &[1]), CollectiveOp::Mean));
    assert!(msg.contains("all_reduce_mean") && msg.contains("float"), "{msg}");
    let msg = panic_message(|| all_reduce(&Tensor::from_vec(vec![true], &[1]), CollectiveOp::Sum));
    assert!(msg.contains("bool"), "{msg}");
}

#[test]
fn shards_are_disjoint_parts_of_the_same_global_batches() {
    let key = random::key(5);
    for (n, b, size, drop_last) in [(23, 8, 2, false), (23, 8, 3, true), (10, 5, 4, false), (64, 64, 2, false)] {
        let global: Vec<Vec<i64>> = BatchIndices::new(n, b, Some(&key), drop_last).map(|t| t.to_vec::<i64>()).collect();
        let parts: Vec<Vec<(Vec<i64>, usize)>> = (0..size)
            .map(|r| {
                ShardedBatchIndices::new(n, b, Some(&key), drop_last, r, size)
                    .map(|(t, m)| (t.to_vec::<i64>(), m))
                    .collect()
            })
            .collect();
        for (k, g) in global.iter().enumerate() {
            if g.len() < size {
                assert!(parts.iter().all(|p| p.len() == k), "a batch smaller than the world is dropped");
                continue;
            }
            let joined: Vec<i64> = parts.iter().flat_map(|p| p[k].0.clone()).collect();
            assert_eq!(&joined, g, "n={n} b={b} size={size}: batch {k}");
            for p in &parts {
                assert_eq!(p[k].1, g.len());
                assert!(p[k].0.len().abs_diff(g.len() / size) <= 1);
            }
        }
    }
}
