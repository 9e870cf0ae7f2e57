//! Accuracy and speed of the square-root forms on batches of 32 random symmetric positive
//! definite 64×64 matrices `B Bᵀ/n + δ I`: the eigendecomposition form, Newton–Schulz, and
//! the Matrix Taylor Polynomial / Matrix Padé Approximant with the iterative Lyapunov
//! backward. Prints, per form: the forward error `‖S² − A‖/‖A‖`, the gradient of
//! `sum(S)` relative to the exact (eigh) form's, and the median time of value and gradient.
//!
//! `cargo run --release --example sqrtm_forms`

use cotangent::{linalg, value_and_grad, DType, Tensor};
use std::time::Instant;

fn uniform(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

fn rel(a: &Tensor, b: &Tensor) -> f64 {
    let d = (a - b).cast(DType::F64).square().sum_all().sqrt().item::<f64>();
    d / b.cast(DType::F64).square().sum_all().sqrt().item::<f64>()
}

fn median_ms(f: &dyn Fn()) -> f64 {
    f();
    f();
    let mut t: Vec<f64> = (0..7)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    t[3]
}

type Form = (&'static str, Box<dyn Fn(&Tensor) -> Tensor>);

fn main() {
    let (batch, n) = (32, 64);
    let forms: Vec<Form> = vec![
        ("eigh (exact)", Box::new(linalg::sqrtm)),
        ("newton_schulz 10", Box::new(|a: &Tensor| linalg::sqrtm_newton_schulz(a, 10).0)),
        ("newton_schulz 20", Box::new(|a: &Tensor| linalg::sqrtm_newton_schulz(a, 20).0)),
        ("mtp 20, lyap 10", Box::new(|a: &Tensor| linalg::sqrtm_mtp(a, 20, false, 10))),
        ("mtp 60, lyap 20", Box::new(|a: &Tensor| linalg::sqrtm_mtp(a, 60, false, 20))),
        ("mpa 4, lyap 10", Box::new(|a: &Tensor| linalg::sqrtm_mpa(a, 4, false, 10))),
        ("mpa 8, lyap 20", Box::new(|a: &Tensor| linalg::sqrtm_mpa(a, 8, false, 20))),
    ];
    for dtype in [DType::F32, DType::F64] {
        for delta in [1.0, 0.01] {
            let b = Tensor::from_vec(uniform(batch * n * n, 3), &[batch, n, n]);
            let a = (b.matmul(&b.swap_axes(-1, -2)) / n as f64 + Tensor::eye(n, DType::F64) * delta).cast(dtype);
            let (w, _) = linalg::eigh(&a.cast(DType::F64));
            let w = w.to_f64_vec();
            let cond = w.chunks(n).map(|c| c[n - 1] / c[0]).fold(0.0, f64::max);
            println!("\n{dtype}, δ = {delta} (largest condition number {cond:.0}):");
            println!("{:<18} {:>12} {:>14} {:>12}", "form", "‖S²−A‖/‖A‖", "grad vs eigh", "v&g ms");
            let exact_g = value_and_grad(|a: &Tensor| linalg::sqrtm(a).sum_all())(&a).1;
            for (name, f) in &forms {
                let s = f(&a);
                let err = rel(&s.matmul(&s), &a);
                let vg = value_and_grad(|a: &Tensor| f(a).sum_all());
                let g = vg(&a).1;
                let ms = median_ms(&|| {
                    std::hint::black_box(vg(&a));
                });
                println!("{name:<18} {err:>12.2e} {:>14.2e} {ms:>12.2}", rel(&g, &exact_g));
            }
        }
    }
}
