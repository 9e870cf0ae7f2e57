//! The three gradient methods of `diffeq::solve` on one problem: accuracy, time and peak
//! memory (a counting allocator) of discretise-then-optimise, the continuous adjoint and
//! forward sensitivities.
//!
//! Problem: 5000 copies of the linear ODE dz/dt = A z, A = [[-0.1, 2], [-2, -0.1]], as
//! the rows of a [5000, 2] state (dz/dt = z Aᵀ), T = 10, L = Σ z(T), Tsit5 at rtol = atol =
//! 1e-8. Exact: dL/dz0 (each row) = e^{-0.1T}(cos 2T - sin 2T, sin 2T + cos 2T); dL/dA is
//! compared with central differences of a solve at 1e-12.
//!
//! Run: `cargo run --release --example diffeq_gradients`

use cotangent::diffeq::{solve, Gradient, Options, Solver};
use cotangent::*;
use std::time::Instant;

// The tests' peak-tracking allocator (one copy of its `unsafe` code).
#[path = "../tests/common/peak.rs"]
mod peak;

#[global_allocator]
static ALLOC: peak::PeakCounting = peak::PeakCounting;

const ROWS: usize = 5000;
const T: f64 = 10.0;

fn field(_t: &Tensor, z: &Tensor, a: &Tensor) -> Tensor {
    z.matmul(&a.t())
}

fn loss(z0: &Tensor, a: &Tensor, g: Gradient, tol: f64) -> Tensor {
    let o = Options { rtol: tol, atol: tol, gradient: g, ..Options::default() };
    solve(field, Solver::Tsit5, 0.0, T, z0, a, &[], &o).ys[0].sum_all()
}

/// Time (ms) and peak bytes above the live bytes at the start, of the second call of `f`.
fn measure<R>(f: impl Fn() -> R) -> (R, f64, usize) {
    let _ = f();
    let t = Instant::now();
    let (bytes, r) = peak::peak_during(&f);
    let ms = t.elapsed().as_secs_f64() * 1e3;
    (r, ms, bytes)
}

fn main() {
    let a = Tensor::from_vec(vec![-0.1, 2.0, -2.0, -0.1], &[2, 2]);
    let scales: Vec<f64> = (0..ROWS).flat_map(|i| [2.0 + i as f64 / ROWS as f64, 0.0]).collect();
    let z0 = Tensor::from_vec(scales, &[ROWS, 2]);
    let tol = 1e-8;
    let o = Options { rtol: tol, atol: tol, ..Options::default() };
    let sol = solve(field, Solver::Tsit5, 0.0, T, &z0, &a, &[], &o);
    println!(
        "steps accepted {}, rejected {}, nfe {}",
        sol.stats.accepted.item::<i64>(),
        sol.stats.rejected.item::<i64>(),
        sol.stats.nfe.item::<i64>()
    );
    let exact_dz = [
        (-0.1 * T).exp() * ((2.0 * T).cos() - (2.0 * T).sin()),
        (-0.1 * T).exp() * ((2.0 * T).sin() + (2.0 * T).cos()),
    ];
    // dL/dA reference: central differences at tolerance 1e-12.
    let eps = 1e-6;
    let fd: Vec<f64> = (0..4)
        .map(|k| {
            let mut av = a.to_vec::<f64>();
            av[k] += eps;
            let p = loss(&z0, &Tensor::from_vec(av.clone(), &[2, 2]), Gradient::Discretise, 1e-12).item::<f64>();
            av[k] -= 2.0 * eps;
            let m = loss(&z0, &Tensor::from_vec(av, &[2, 2]), Gradient::Discretise, 1e-12).item::<f64>();
            (p - m) / (2.0 * eps)
        })
        .collect();
    let rel = |g: &[f64]| g.iter().zip(&fd).map(|(x, y)| (x - y).abs() / y.abs().max(1.0)).fold(0.0, f64::max);
    println!("{:<28} {:>12} {:>12} {:>10} {:>12}", "method (dL/dA)", "rel. error", "dL/dz0 err", "time ms", "peak KiB");
    for (name, g) in [("discretise-then-optimise", Gradient::Discretise), ("continuous adjoint", Gradient::Adjoint)] {
        let (da, ms, peak) = measure(|| grad(|a: &Tensor| loss(&z0, a, g, tol))(&a));
        let dz = grad(|z: &Tensor| loss(z, &a, g, tol))(&z0).to_vec::<f64>();
        let dz_err =
            dz.chunks(2).map(|r| (r[0] - exact_dz[0]).abs().max((r[1] - exact_dz[1]).abs())).fold(0.0, f64::max);
        println!(
            "{name:<28} {:>12.2e} {:>12.2e} {ms:>10.1} {:>12.1}",
            rel(&da.to_vec::<f64>()),
            dz_err,
            peak as f64 / 1024.0
        );
    }
    let (da, ms, peak) = measure(|| jacfwd(|a: &Tensor| loss(&z0, a, Gradient::Discretise, tol))(&a));
    println!(
        "{:<28} {:>12.2e} {:>12} {ms:>10.1} {:>12.1}",
        "forward (jacfwd, 4 dirs)",
        rel(&da.to_vec::<f64>()),
        "-",
        peak as f64 / 1024.0
    );
    let solve_only = jit(|a: &Tensor| loss(&z0, a, Gradient::Discretise, tol));
    let (_, ms, peak) = measure(|| solve_only(&a));
    println!("{:<28} {:>12} {:>12} {ms:>10.1} {:>12.1}", "(the solve alone, jit)", "-", "-", peak as f64 / 1024.0);
}
