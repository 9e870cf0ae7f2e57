//! Memory of `diffeq::solve`'s reverse modes, measured with a counting allocator (its own
//! test binary): discretise-then-optimise through the adaptive loop keeps `O(log steps)`
//! states, so quadrupling the interval (3x the steps) barely moves its peak; the continuous
//! adjoint keeps less still.

use cotangent::diffeq::{solve, Gradient, Options, Solver};
use cotangent::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc`/`alloc_zeroed`/`realloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grew(new_size);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from this allocator with `layout`; forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

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
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let second = df(&a);
    let p = PEAK.load(Ordering::Relaxed) - base;
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
    // (b = 8 per level, 4 levels, and one step's stages).
    assert!(
        long < 200 * state && (long as f64) < 1.4 * short as f64,
        "peak {short} B ({n_short} steps) -> {long} B ({n_long} steps), state {state} B"
    );
    eprintln!("peak {short} B ({n_short} steps) -> {long} B ({n_long} steps), state {state} B");
    let (adj, _) = peak(40.0, Gradient::Adjoint);
    eprintln!("adjoint {adj}");
    assert!(adj < long, "adjoint {adj} B vs discretise {long} B");
}
