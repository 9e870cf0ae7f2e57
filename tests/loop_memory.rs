//! `while_loop_bounded` in reverse mode keeps O(log max_steps) carries, not a set of
//! residuals per iteration: its peak memory during `vjp` and the pullback, measured with a
//! counting allocator, against the same loop unrolled in Rust (10,000 calls of the body
//! inside `vjp`). (Its own test binary: it installs a counting allocator.)

use cotangent::control::while_loop_bounded;
use cotangent::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Tracks the bytes live now and the most live since the last reset.
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
        // SAFETY: `ptr` came from `alloc`/`alloc_zeroed` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as the new block arriving before the old one leaves (the worst case).
        grew(new_size);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The peak bytes live above those live before, while `f` runs, and its result.
fn peak_during<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (PEAK.load(Ordering::Relaxed) - base, out)
}

const STEPS: usize = 10_000;

fn body(x: &Tensor) -> Tensor {
    x * 0.9999 + x.sin() * 1e-4
}

#[test]
fn bounded_while_gradient_uses_under_one_percent_of_the_unrolled_memory() {
    let x0 = Tensor::from_vec((0..256).map(|i| 0.01 * i as f64).collect(), &[256]);
    let ct = Tensor::scalar(1.0);
    let bounded = |x: &Tensor| while_loop_bounded(|x: &Tensor| x.sum_all().lt(1e300), body, x, STEPS).sum_all();
    let unrolled = |x: &Tensor| {
        let mut x = x.clone();
        for _ in 0..STEPS {
            x = body(&x);
        }
        x.sum_all()
    };
    let (peak_bounded, g_bounded) = peak_during(|| vjp(bounded, &x0).1.call(&ct));
    let (peak_unrolled, g_unrolled) = peak_during(|| vjp(unrolled, &x0).1.call(&ct));
    // Same gradient.
    for (a, b) in g_bounded.to_vec::<f64>().iter().zip(g_unrolled.to_vec::<f64>()) {
        assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "{a} vs {b}");
    }
    let ratio = peak_bounded as f64 / peak_unrolled as f64;
    eprintln!(
        "peak memory during vjp + pullback at {STEPS} steps of a f64[256] carry: bounded while {} KiB, \
         unrolled {} KiB (ratio {:.4})",
        peak_bounded / 1024,
        peak_unrolled / 1024,
        ratio
    );
    assert!(ratio < 0.01, "bounded {peak_bounded} B vs unrolled {peak_unrolled} B");
}
