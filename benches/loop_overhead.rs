//! Per-iteration overhead of compiled loops (issue 12): loops whose bodies do a few
//! operations on tiny tensors, so the time is the loop machinery, not arithmetic. Prints
//! `<id> <CPU ns per iteration> <wall ns per iteration>`: the least over several calls of the
//! calling thread's CPU time (from `/proc/thread-self/schedstat`, so other processes on a
//! loaded machine do not count; the loops run on the calling thread) and of the wall time.
//!
//! Run alone: `cargo bench --bench loop_overhead [-- <id-prefix>]`

use cotangent::control::{fori_loop, scan, while_loop, while_loop_bounded};
use cotangent::*;
use std::time::Instant;

/// The calling thread's CPU time in seconds (Linux; `NaN` elsewhere).
fn thread_cpu() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns * 1e-9)
}

/// The least CPU and wall seconds over `reps` calls of `f`, after two warm-up calls.
fn min_seconds(reps: usize, mut f: impl FnMut()) -> (f64, f64) {
    f();
    f();
    // Steady state: the native loops `jit` compiles in the background from the second call.
    wait_for_native_compiles();
    f();
    let (mut cpu, mut wall) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..reps {
        let (c, t) = (thread_cpu(), Instant::now());
        f();
        wall = wall.min(t.elapsed().as_secs_f64());
        cpu = cpu.min(thread_cpu() - c);
    }
    (cpu, wall)
}

fn report(id: &str, iterations: usize, (cpu, wall): (f64, f64)) {
    let per = |s: f64| s / iterations as f64 * 1e9;
    println!("{id} {:.1} {:.1}", per(cpu), per(wall));
}

fn main() {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-')).unwrap_or_default();
    let n: usize = std::env::var("LOOP_ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let reps: usize = std::env::var("LOOP_REPS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let x0 = Tensor::from_vec(vec![0.5, -0.25], &[2]);
    let limit = n as f64;
    // A damped rotation of a [2] vector, counted by an f64 scalar.
    let body = |(k, x): &(Tensor, Tensor)| (k + 1.0, x * 0.999 + x.flip(&[0]) * 0.001);
    if "while".starts_with(filter.as_str()) || filter.starts_with("while") {
        let f = jit(move |x: &Tensor| {
            while_loop(|(k, _): &(Tensor, Tensor)| k.lt(limit), body, &(Tensor::scalar(0.0), x.clone())).1
        });
        let s = min_seconds(reps, || {
            f(&x0);
        });
        report("while", n, s);
        let y = f(&x0).to_vec::<f64>();
        assert!(y.iter().all(|v| v.is_finite()));
    }
    if "fori".starts_with(filter.as_str()) || filter.starts_with("fori") {
        let f = jit(move |x: &Tensor| fori_loop(0, n as i64, |_, x: &Tensor| x * 0.999 + x.flip(&[0]) * 0.001, x));
        let s = min_seconds(reps, || {
            f(&x0);
        });
        report("fori", n, s);
    }
    if "scan".starts_with(filter.as_str()) || filter.starts_with("scan") {
        let xs = Tensor::from_vec((0..n).map(|i| (i % 7) as f64 * 1e-3).collect::<Vec<f64>>(), &[n]);
        let f = jit(move |(x, xs): &(Tensor, Tensor)| {
            scan(|c: &Tensor, x: &Tensor| (c * 0.999 + x, c.sum_all()), x, xs, None, false)
        });
        let args = (x0.clone(), xs);
        let s = min_seconds(reps, || {
            f(&args);
        });
        report("scan", n, s);
    }
    if "bounded".starts_with(filter.as_str()) || filter.starts_with("bounded") {
        let m = n / 10;
        let f = jit(move |x: &Tensor| {
            while_loop_bounded(
                |(k, _): &(Tensor, Tensor)| k.lt(m as f64),
                body,
                &(Tensor::scalar(0.0), x.clone()),
                m + 1,
            )
            .1
        });
        let s = min_seconds(reps, || {
            f(&x0);
        });
        report("bounded", m, s);
        let g = jit(move |x: &Tensor| {
            grad(move |x: &Tensor| {
                while_loop_bounded(
                    |(k, _): &(Tensor, Tensor)| k.lt(m as f64),
                    body,
                    &(Tensor::scalar(0.0), x.clone()),
                    m + 1,
                )
                .1
                .sum_all()
            })(x)
        });
        let s = min_seconds(reps, || {
            g(&x0);
        });
        report("bounded_grad", m, s);
    }
}
