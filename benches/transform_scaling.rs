//! How the transformations scale with graph size: tracing, jvp, vjp (linearize +
//! transpose) and vmap of a chain of N primitive operations. Every transformation
//! walks the graph once, so time per node should stay flat as N grows.
//!
//! Run: `cargo bench --bench transform_scaling`

use cotangent::*;
use std::time::Instant;

fn chain(x: &Tensor, n: usize) -> Tensor {
    // n/4 rounds of four primitives each: sin, mul, add, tanh.
    let mut y = x.clone();
    for _ in 0..n / 4 {
        y = (y.sin() * 0.9 + 0.1).tanh();
    }
    y.sum_all()
}

fn time<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed().as_secs_f64())
}

fn main() {
    let x = Tensor::from_vec(vec![0.5f64; 4], &[4]);
    println!("{:>8} {:>10} {:>10} {:>10} {:>10}   (seconds)", "nodes", "trace", "jvp", "grad", "vmap");
    for n in [1_000usize, 10_000, 100_000] {
        let ty = x.ty();
        let (g, t_trace) = time(|| trace_graph(&[ty], |xs| vec![chain(&xs[0], n)]));
        let (_, t_jvp) = time(|| jvp(|x: &Tensor| chain(x, n), &x, &x));
        let (_, t_grad) = time(|| grad(|x: &Tensor| chain(x, n))(&x));
        let xs = Tensor::from_vec(vec![0.5f64; 8], &[2, 4]);
        let (_, t_vmap) = time(|| vmap(|x: &Tensor| chain(x, n))(&xs));
        println!("{:>8} {t_trace:>10.4} {t_jvp:>10.4} {t_grad:>10.4} {t_vmap:>10.4}", g.nodes.len());
    }
}
