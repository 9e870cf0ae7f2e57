//! Plans in steady state: repeated calls with the same shapes allocate no large buffers for
//! intermediates (recycled from earlier runs); only the returned outputs are new storage.
//! (Its own test binary: it installs a counting allocator.) `gemm` allocates its own packing
//! scratch per product, 128-byte aligned; that is not counted.

use cotangent::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts allocations of at least `LARGE` bytes with ordinary alignment (tensor storage),
/// and of at least `BLOCK` bytes (a fused loop's register: 512 f64).
struct Counting;
const LARGE: usize = 16 * 1024;
static LARGE_ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
const BLOCK: usize = 4096;
static BLOCK_ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

fn count(layout: Layout) {
    if layout.size() >= LARGE && layout.align() < 64 {
        LARGE_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
    if layout.size() >= BLOCK && layout.align() < 64 {
        BLOCK_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout);
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

// ---- bench8: plans with many intermediates and loops with many registers ----

/// Allocations of at least 4 KiB and of at least 16 KiB per call, after 100 warm-up calls
/// (more than the 64 buffers a plan's pool keeps: a kernel that allocates its own output adds
/// one buffer of a size no step takes to the pool per call, which once filled that way used
/// to drop every buffer freed later).
fn allocations_per_call(f: &dyn Fn()) -> (usize, usize) {
    for _ in 0..100 {
        f();
    }
    let (block, large) = (BLOCK_ALLOCATIONS.load(Ordering::Relaxed), LARGE_ALLOCATIONS.load(Ordering::Relaxed));
    for _ in 0..5 {
        f();
    }
    ((BLOCK_ALLOCATIONS.load(Ordering::Relaxed) - block) / 5, (LARGE_ALLOCATIONS.load(Ordering::Relaxed) - large) / 5)
}

/// A 7th-order directional derivative of a tanh network over 1024 points (bench w10's
/// workload): its fused loops hold over 16 registers of 512 elements, and one of its products
/// allocates its own output per call. Register sets that large, and after ~60 calls every
/// intermediate, used to be dropped between calls; glibc gave their memory back to the
/// system, so every call page-faulted it in again (w10 orders 7-8 ran 2x slower so).
fn high_order_jet_allocations(mode: NativeMode) -> (usize, usize) {
    let (d, h) = (64, 128);
    let val = |n: usize, seed: usize| -> Vec<f64> {
        (0..n).map(|i| ((i * 37 + seed * 11) % 101) as f64 / 101.0 - 0.5).collect()
    };
    let params = [
        Tensor::from_vec(val(d * h, 1), &[d, h]),
        Tensor::from_vec(val(h, 2), &[h]),
        Tensor::from_vec(val(h * h, 3), &[h, h]),
        Tensor::from_vec(val(h, 4), &[h]),
        Tensor::from_vec(val(h, 5), &[h, 1]),
    ];
    let x = Tensor::from_vec(val(1024 * d, 6), &[1024, d]);
    let v = Tensor::from_vec(val(d, 7), &[d]);
    let p = &params;
    let net = move |x: &Tensor| {
        let h1 = (x.matmul(&p[0]) + &p[1]).tanh();
        let h2 = (h1.matmul(&p[2]) + &p[3]).tanh();
        h2.matmul(&p[4]).sum_all()
    };
    with_native_mode(mode, || {
        let f = jit(vmap(move |x: &Tensor| diffop::directional(net, x, &v, 7)));
        let out = f(&x);
        assert_eq!(out.shape(), &[1024]);
        // (`Auto`: the second call queues the native build; the call after it has finished
        // runs the native plan, whose small loops stay interpreted.)
        drop(f(&x));
        wait_for_native_compiles();
        allocations_per_call(&|| drop(f(&x)))
    })
}

#[test]
fn high_order_jets_reuse_their_intermediates_and_registers() {
    // Per call: the output ([1024] f64, 8 KiB) and one product's result that its kernel
    // allocates itself (16 KiB or more). Before: 247 of >= 4 KiB (registers, Off), 17-19 of
    // >= 16 KiB (intermediates, every mode).
    for mode in [NativeMode::Off, NativeMode::Auto, NativeMode::Always] {
        let (block, large) = high_order_jet_allocations(mode);
        assert!(block <= 2 && large <= 1, "{block} allocations of >= 4 KiB, {large} of >= 16 KiB per call ({mode:?})");
    }
}
