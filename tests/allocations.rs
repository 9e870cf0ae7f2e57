//! Plans in steady state: repeated calls with the same shapes allocate no large buffers for
//! intermediates (recycled from earlier runs); only the returned outputs are new storage.
//! (Its own test binary: it installs a counting allocator.) `gemm` allocates its own packing
//! scratch per product, 128-byte aligned; that is not counted.

use cotangent::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts allocations of at least `LARGE` bytes with ordinary alignment (tensor storage).
struct Counting;
const LARGE: usize = 16 * 1024;
static LARGE_ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= LARGE && layout.align() < 64 {
            LARGE_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= LARGE && layout.align() < 64 {
            LARGE_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc_zeroed(layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn mlp_loss(p: &[Tensor], x: &Tensor, labels: &Tensor) -> Tensor {
    let h = (x.matmul(&p[0]) + &p[1]).relu();
    let h = (h.matmul(&p[2]) + &p[3]).relu();
    let logits = h.matmul(&p[4]) + &p[5];
    -(logits.log_softmax(-1) * labels).sum_all() / 64.0
}

fn large_allocations_per_call(f: &dyn Fn()) -> usize {
    for _ in 0..3 {
        f(); // trace, compile, and fill the buffer pool
    }
    let before = LARGE_ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..5 {
        f();
    }
    (LARGE_ALLOCATIONS.load(Ordering::Relaxed) - before) / 5
}

#[test]
fn repeated_calls_allocate_only_their_outputs() {
    let sizes: [&[usize]; 6] = [&[256, 128], &[128], &[128, 128], &[128], &[128, 10], &[10]];
    let params: Vec<Tensor> = sizes
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let shape = s.to_vec();
            let n: usize = shape.iter().product();
            Tensor::from_vec((0..n).map(|i| ((i * 31 + k) % 97) as f32 / 97.0 - 0.5).collect::<Vec<_>>(), &shape)
        })
        .collect();
    let x = Tensor::from_vec((0..64 * 256).map(|i| ((i * 7) % 13) as f32 / 13.0).collect::<Vec<_>>(), &[64, 256]);
    let labels =
        Tensor::from_vec((0..64 * 10).map(|i| (i % 10 == (i / 10) % 10) as u8 as f32).collect::<Vec<_>>(), &[64, 10]);
    let vg = value_and_grad(|p: &Vec<Tensor>| mlp_loss(p, &x, &labels));
    // Outputs of at least 16 KiB: the gradients of the [256, 128] and [128, 128] weights.
    let n = large_allocations_per_call(&|| drop(vg(&params)));
    assert_eq!(n, 2, "large allocations per gradient call");
}
