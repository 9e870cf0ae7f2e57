//! `while_loop_bounded` in reverse mode keeps O(log max_steps) carries, not a set of
//! residuals per iteration: its peak memory during `vjp` and the pullback, measured with a
//! counting allocator, against the same loop unrolled in Rust (10,000 calls of the body
//! inside `vjp`). (Its own test binary: it installs a counting allocator.)

use cotangent::control::while_loop_bounded;
use cotangent::*;
mod common;

use common::peak::{peak_during, PeakCounting};

#[global_allocator]
static ALLOC: PeakCounting = PeakCounting;

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
