//! Shared helpers for the integration tests: a deterministic generator and tensor comparisons.
#![allow(dead_code)]

use cotangent::{DType, Tensor};

/// A small deterministic generator (64-bit LCG), so test inputs never change.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407))
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }
    /// A tensor with entries uniform in [lo, hi).
    pub fn tensor(&mut self, shape: &[usize], lo: f64, hi: f64) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::from_vec(
            (0..n).map(|_| self.range(lo, hi)).collect::<Vec<f64>>(),
            shape,
        )
    }
    /// A tensor like `t` (f64) with entries uniform in [-1, 1).
    pub fn like(&mut self, t: &Tensor) -> Tensor {
        self.tensor(&t.shape(), -1.0, 1.0).cast(t.dtype())
    }
}

/// Largest absolute difference between two tensors of the same shape, relative to `1 + max|b|`.
#[track_caller]
pub fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.shape(), b.shape(), "shapes differ");
    let (x, y) = (a.to_f64_vec(), b.to_f64_vec());
    let scale = 1.0 + y.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    x.iter()
        .zip(&y)
        .fold(0.0f64, |m, (p, q)| m.max((p - q).abs()))
        / scale
}

/// Asserts two tensors agree to `tol` (relative to the magnitude of `expected`).
#[track_caller]
pub fn assert_close(actual: &Tensor, expected: &Tensor, tol: f64, what: &str) {
    let e = rel_err(actual, expected);
    assert!(
        e <= tol,
        "{what}: error {e:.3e} > {tol:.1e}\nactual:\n{actual}\nexpected:\n{expected}"
    );
}

pub fn f64s(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape)
}

pub fn zeros(shape: &[usize]) -> Tensor {
    Tensor::zeros(shape, DType::F64)
}
