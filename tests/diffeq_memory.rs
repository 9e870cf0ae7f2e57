//! Memory of `diffeq::solve`'s reverse modes, measured with a counting allocator (its own
//! test binary): discretise-then-optimise through the adaptive loop keeps `O(log steps)`
//! states, so quadrupling the interval (3x the steps) barely moves its peak; the continuous
//! adjoint keeps less still.

use cotangent::diffeq::{solve, Gradient, Options, Solver};
use cotangent::*;
mod common;

use common::peak::{peak_during, PeakCounting};

#[global_allocator]
static ALLOC: PeakCounting = PeakCounting;

const ROWS: usize = 1000;

fn field(_t: &Tensor, z: &Tensor, a: &Tensor) -> Tensor {
    z.matmul(&a.t())
}

/// Peak bytes above the start of the second call of dL/dA, and the accepted steps.
fn peak(t1: f64, g: Gradient) -> (usize, i64) {
    let a = Tensor::from_vec(vec![-0.1, 2.0, -2.0, -0.1], &[2, 2]);
    let z0 = Tensor::from_vec((0..ROWS).flat_map(|i| [1.0 + i as f64 / ROWS as f64, 0.0]).collect(), &[ROWS, 2]);
    let o = Options { rtol: 1e-8, atol: 1e-8, gradient: g, ..Options::default() };
    let df = grad(|a: &Tensor| solve(field, Solver::Tsit5, 0.0, t1, &z0, a, &[], &o).ys[0].sum_all());
    let first = df(&a);
    let (p, second) = peak_during(|| df(&a));
    assert_eq!(first.to_vec::<f64>(), second.to_vec::<f64>());
    let steps = solve(field, Solver::Tsit5, 0.0, t1, &z0, &a, &[], &o).stats.accepted.item::<i64>();
    (p, steps)
}

#[test]
fn reverse_mode_memory_grows_like_log_steps() {
    let state = ROWS * 2 * 8;
    let (short, n_short) = peak(10.0, Gradient::Discretise);
    let (long, n_long) = peak(40.0, Gradient::Discretise);
    assert!(n_long as f64 > 2.5 * n_short as f64, "steps {n_short} -> {n_long}");
    // One state per step would be n_long states; the checkpointed loop keeps a few dozen
    // carries (the first ⌈log₂ 4096⌉ = 12 iterations', then b = 8 per level of a 4-level nest,
    // and one step's stages); each carry holds the state and, first same as last, f(t, y).
    assert!(
        long < 250 * state && (long as f64) < 1.4 * short as f64,
        "peak {short} B ({n_short} steps) -> {long} B ({n_long} steps), state {state} B"
    );
    eprintln!("peak {short} B ({n_short} steps) -> {long} B ({n_long} steps), state {state} B");
    let (adj, _) = peak(40.0, Gradient::Adjoint);
    eprintln!("adjoint {adj}");
    assert!(adj < long, "adjoint {adj} B vs discretise {long} B");
}
