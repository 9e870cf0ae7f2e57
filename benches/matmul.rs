//! Matrix products at small m (issue 12): GFLOP/s of `gemm` at large square sizes on one and
//! all threads (this machine's peak), and of each product in the w1 workload (MLP
//! 784-512-512-10, batch 128, f32) through cotangent's `matmul`, forward and backward layouts.
//!
//! Run: `cargo bench --bench matmul [-- <filter>]`. Each figure is the best of many timed
//! calls (the machine is shared, so the minimum is the figure least disturbed by other work).

use cotangent::*;
use std::hint::black_box;
use std::time::Instant;

/// Best wall time of `f` over about `budget` seconds of calls (after a warm-up).
fn best_seconds(budget: f64, mut f: impl FnMut()) -> f64 {
    let warm = Instant::now();
    while warm.elapsed().as_secs_f64() < budget / 4.0 {
        f();
    }
    let start = Instant::now();
    let mut best = f64::INFINITY;
    while start.elapsed().as_secs_f64() < budget {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

fn uniform(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

/// GFLOP/s of a raw `gemm` call `m×k · k×n`, row-major operands.
fn raw_gemm(m: usize, k: usize, n: usize, threads: usize) -> f64 {
    raw_gemm_layout(m, k, n, threads, false, false)
}

/// GFLOP/s of a raw `gemm` call `m×k · k×n`; `lhs_t`: the lhs stored k×m (m-contiguous),
/// `rhs_t`: the rhs stored n×k (k-contiguous).
fn raw_gemm_layout(m: usize, k: usize, n: usize, threads: usize, lhs_t: bool, rhs_t: bool) -> f64 {
    let a = uniform(m * k, 1);
    let b = uniform(k * n, 2);
    let mut c = vec![0f32; m * n];
    let par = if threads <= 1 { gemm::Parallelism::None } else { gemm::Parallelism::Rayon(threads) };
    let t = best_seconds(1.0, || unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            if lhs_t { m as isize } else { 1 },
            if lhs_t { 1 } else { k as isize },
            b.as_ptr(),
            if rhs_t { k as isize } else { 1 },
            if rhs_t { 1 } else { n as isize },
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            par,
        );
        black_box(&c);
    });
    2.0 * (m * k * n) as f64 / t / 1e9
}

fn main() {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let want = |id: &str| filter.as_deref().is_none_or(|f| id.contains(f));
    let threads = rayon::current_num_threads();
    if want("peak") {
        for &s in &[512usize, 1024] {
            println!("peak gemm {s}^3 1 thread: {:6.1} GFLOP/s", raw_gemm(s, s, s, 1));
            println!("peak gemm {s}^3 {threads} threads: {:6.1} GFLOP/s", raw_gemm(s, s, s, threads));
        }
    }
    if want("raw") {
        for &(m, k, n) in &[(128usize, 784usize, 512usize), (128, 512, 512), (128, 512, 10)] {
            for t in [1, threads] {
                println!("raw gemm {m}x{k}x{n} {t} threads: {:6.1} GFLOP/s", raw_gemm(m, k, n, t));
                println!(
                    "raw gemm {m}x{k}x{n} rhsT {t} threads: {:6.1} GFLOP/s",
                    raw_gemm_layout(m, k, n, t, false, true)
                );
                println!(
                    "raw gemm {k}x{m}x{n} lhsT {t} threads: {:6.1} GFLOP/s",
                    raw_gemm_layout(k, m, n, t, true, false)
                );
            }
        }
    }
    if want("split") {
        for &(m, k, n) in &[(128usize, 784usize, 512usize), (128, 512, 512)] {
            split::run(m, k, n);
        }
    }
    if want("w1") {
        // Each product as the plan runs it: `jit` of one `dot_general` (with the contracting axes
        // of the backward pass, so operands are read in place).
        let t = |shape: &[usize], seed| Tensor::from_vec(uniform(shape.iter().product(), seed), shape);
        let x = t(&[128, 784], 1);
        let w1 = t(&[784, 512], 2);
        let h = t(&[128, 512], 3);
        let w2 = t(&[512, 512], 4);
        let w3 = t(&[512, 10], 5);
        let g3 = t(&[128, 10], 6);
        type Case<'a> = (&'a str, Box<dyn Fn(&Tensor, &Tensor) -> Tensor>, &'a Tensor, &'a Tensor, usize);
        let cases: Vec<Case> = vec![
            ("fwd x·W1    128x784x512", Box::new(|a: &Tensor, b: &Tensor| a.matmul(b)), &x, &w1, 128 * 784 * 512),
            ("fwd h·W2    128x512x512", Box::new(|a: &Tensor, b: &Tensor| a.matmul(b)), &h, &w2, 128 * 512 * 512),
            ("fwd h·W3    128x512x10 ", Box::new(|a: &Tensor, b: &Tensor| a.matmul(b)), &h, &w3, 128 * 512 * 10),
            (
                "bwd g·W2ᵀ   128x512x512",
                Box::new(|a: &Tensor, b: &Tensor| dot_general(a, b, (&[1], &[1]), (&[], &[]))),
                &h,
                &w2,
                128 * 512 * 512,
            ),
            (
                "bwd g·W3ᵀ   128x10x512 ",
                Box::new(|a: &Tensor, b: &Tensor| dot_general(a, b, (&[1], &[1]), (&[], &[]))),
                &g3,
                &w3,
                128 * 512 * 10,
            ),
            (
                "bwd hᵀ·g    512x128x512",
                Box::new(|a: &Tensor, b: &Tensor| dot_general(a, b, (&[0], &[0]), (&[], &[]))),
                &h,
                &h,
                128 * 512 * 512,
            ),
            (
                "bwd xᵀ·g    784x128x512",
                Box::new(|a: &Tensor, b: &Tensor| dot_general(a, b, (&[0], &[0]), (&[], &[]))),
                &x,
                &h,
                128 * 784 * 512,
            ),
            (
                "bwd hᵀ·g3   512x128x10 ",
                Box::new(|a: &Tensor, b: &Tensor| dot_general(a, b, (&[0], &[0]), (&[], &[]))),
                &h,
                &g3,
                128 * 512 * 10,
            ),
        ];
        for (name, f, a, b, macs) in cases {
            let f = jit(move |(a, b): &(Tensor, Tensor)| f(a, b));
            let args = (a.clone(), b.clone());
            let s = best_seconds(1.0, || {
                black_box(f(&args));
            });
            println!("w1 {name}: {:8.1} µs {:6.1} GFLOP/s", s * 1e6, 2.0 * macs as f64 / s / 1e9);
        }
    }
    if want("w9") {
        // w9's products (MLP 2-64-64-2, 256 states, f64), as the plan runs them.
        let t = |shape: &[usize], seed| Tensor::from_vec(uniform(shape.iter().product(), seed), shape).cast(DType::F64);
        let h = t(&[256, 64], 1);
        let g = t(&[256, 64], 2);
        let w2 = t(&[64, 64], 3);
        type Case<'a> = (&'a str, Box<dyn Fn(&Tensor, &Tensor) -> Tensor>, &'a Tensor, &'a Tensor, usize);
        let cases: Vec<Case> = vec![
            ("fwd h·W2    256x64x64", Box::new(|a: &Tensor, b: &Tensor| a.matmul(b)), &h, &w2, 256 * 64 * 64),
            (
                "bwd g·W2ᵀ   256x64x64",
                Box::new(|a: &Tensor, b: &Tensor| dot_general(a, b, (&[1], &[1]), (&[], &[]))),
                &g,
                &w2,
                256 * 64 * 64,
            ),
            (
                "bwd hᵀ·g    64x256x64",
                Box::new(|a: &Tensor, b: &Tensor| dot_general(a, b, (&[0], &[0]), (&[], &[]))),
                &h,
                &g,
                256 * 64 * 64,
            ),
        ];
        for (name, f, a, b, macs) in cases {
            let f = jit(move |(a, b): &(Tensor, Tensor)| f(a, b));
            let args = (a.clone(), b.clone());
            let s = best_seconds(1.0, || {
                black_box(f(&args));
            });
            println!("w9 {name}: {:8.1} µs {:6.1} GFLOP/s", s * 1e6, 2.0 * macs as f64 / s / 1e9);
        }
    }
}

/// Experiment: ways of splitting one `m×k · k×n` row-major product over threads.
mod split {
    use std::hint::black_box;
    use std::time::Instant;

    #[derive(Clone, Copy)]
    pub struct P(pub *mut f32);
    unsafe impl Send for P {}
    unsafe impl Sync for P {}

    /// `c[rows r0..r1, cols c0..c1] = a · b` on this thread.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn block(a: &[f32], b: &[f32], c: P, k: usize, n: usize, r: (usize, usize), cc: (usize, usize)) {
        gemm::gemm(
            r.1 - r.0,
            cc.1 - cc.0,
            k,
            c.0.add(r.0 * n + cc.0),
            1,
            n as isize,
            false,
            a.as_ptr().add(r.0 * k),
            1,
            k as isize,
            b.as_ptr().add(cc.0),
            1,
            n as isize,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }

    pub fn run(m: usize, k: usize, n: usize) {
        use rayon::prelude::*;
        let a = super::uniform(m * k, 1);
        let b = super::uniform(k * n, 2);
        let mut c = vec![0f32; m * n];
        let cp = P(c.as_mut_ptr());
        let variants: Vec<(String, Box<dyn Fn() + Sync>)> = {
            let mut v: Vec<(String, Box<dyn Fn() + Sync>)> = Vec::new();
            let (a2, b2) = (a.clone(), b.clone());
            v.push((
                "gemm Rayon(0)".into(),
                Box::new(move || unsafe {
                    let cp = cp;
                    gemm::gemm(
                        m,
                        n,
                        k,
                        cp.0,
                        1,
                        n as isize,
                        false,
                        a2.as_ptr(),
                        1,
                        k as isize,
                        b2.as_ptr(),
                        1,
                        n as isize,
                        0.0f32,
                        1.0f32,
                        false,
                        false,
                        false,
                        gemm::Parallelism::Rayon(0),
                    )
                }),
            ));
            for chunks in [2usize, 4, 8] {
                let (a2, b2) = (a.clone(), b.clone());
                v.push((
                    format!("n split {chunks}"),
                    Box::new(move || {
                        let cp = cp;
                        let w = (n / chunks).div_ceil(16) * 16;
                        (0..chunks).into_par_iter().for_each(|i| unsafe {
                            let c0 = (i * w).min(n);
                            let c1 = ((i + 1) * w).min(n);
                            if i == chunks - 1 {
                                block(&a2, &b2, cp, k, n, (0, m), (c0, n));
                            } else if c1 > c0 {
                                block(&a2, &b2, cp, k, n, (0, m), (c0, c1));
                            }
                        })
                    }),
                ));
                let (a2, b2) = (a.clone(), b.clone());
                v.push((
                    format!("m split {chunks}"),
                    Box::new(move || {
                        let cp = cp;
                        let h = m.div_ceil(chunks);
                        (0..chunks).into_par_iter().for_each(|i| unsafe {
                            let r0 = (i * h).min(m);
                            let r1 = ((i + 1) * h).min(m);
                            if r1 > r0 {
                                block(&a2, &b2, cp, k, n, (r0, r1), (0, n));
                            }
                        })
                    }),
                ));
            }
            v
        };
        // Interleaved: each round times every variant once, several calls each.
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
        let start = Instant::now();
        while start.elapsed().as_secs_f64() < 6.0 {
            for (i, (_, f)) in variants.iter().enumerate() {
                for _ in 0..5 {
                    let t = Instant::now();
                    f();
                    times[i].push(t.elapsed().as_secs_f64());
                }
            }
        }
        black_box(&c);
        let flops = 2.0 * (m * n * k) as f64;
        for ((name, _), t) in variants.iter().zip(times.iter_mut()) {
            t.sort_by(|x, y| x.partial_cmp(y).unwrap());
            println!(
                "split {m}x{k}x{n} {name:14}: best {:6.1} median {:6.1} GFLOP/s",
                flops / t[0] / 1e9,
                flops / t[t.len() / 2] / 1e9
            );
        }
    }
}
