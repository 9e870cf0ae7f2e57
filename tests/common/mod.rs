//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod child;
pub mod peak;

use cotangent::{DType, Data, Tensor};

/// An f64 tensor.
pub fn f64t(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_slice(v, shape)
}

/// An f32 tensor from f64 values.
pub fn f32t(v: &[f64], shape: &[usize]) -> Tensor {
    let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    Tensor::from_vec(v, shape)
}

/// A float tensor of the given dtype from f64 values.
pub fn ft(v: &[f64], shape: &[usize], dtype: DType) -> Tensor {
    match dtype {
        DType::F64 => f64t(v, shape),
        DType::F32 => f32t(v, shape),
        _ => panic!("not a float dtype: {dtype}"),
    }
}

/// `0, 1, ..., n-1` as f64 in the given shape.
pub fn iota64(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    f64t(&(0..n).map(|i| i as f64).collect::<Vec<_>>(), shape)
}

/// True when `a` and `b` agree within `atol + rtol * |b|`; NaNs match NaNs, infinities match exactly.
pub fn close(a: f64, b: f64, rtol: f64, atol: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    (a - b).abs() <= atol + rtol * b.abs()
}

/// Asserts element-wise closeness, with a message naming the context and the first bad element.
#[track_caller]
pub fn assert_close(what: &str, got: &[f64], want: &[f64], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ: {got:?} vs {want:?}");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(close(g, w, rtol, atol), "{what}: element {i}: got {g:e}, want {w:e}\n got  {got:?}\n want {want:?}");
    }
}

/// Asserts that a tensor has the dtype, shape and (close) values given.
#[track_caller]
pub fn assert_tensor(what: &str, t: &Tensor, dtype: DType, shape: &[usize], want: &[f64]) {
    assert_eq!(t.dtype(), dtype, "{what}: dtype");
    assert_eq!(t.shape(), shape, "{what}: shape");
    let (rtol, atol) = if dtype == DType::F32 { (2e-6, 1e-30) } else { (1e-14, 1e-300) };
    assert_close(what, &t.to_f64_vec(), want, rtol, atol);
}

/// Asserts an exact f64 result: dtype, shape and values (NaN matches NaN, `-0.0 == 0.0`).
#[track_caller]
pub fn assert_exact(what: &str, t: &Tensor, dtype: DType, shape: &[usize], want: &[f64]) {
    assert_eq!(t.dtype(), dtype, "{what}: dtype");
    assert_eq!(t.shape(), shape, "{what}: shape");
    let got = t.to_f64_vec();
    assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            g == w || (g.is_nan() && w.is_nan()),
            "{what}: element {i}: got {g:?}, want {w:?}\n got  {got:?}\n want {want:?}"
        );
    }
}

/// Bitwise equality of two concrete tensors: dtype, shape and every bit of every element.
#[track_caller]
pub fn assert_bitwise_eq(what: &str, a: &Tensor, b: &Tensor) {
    assert_eq!(a.ty(), b.ty(), "{what}: types differ");
    let same = match (a.data(), b.data()) {
        (Data::F32(x), Data::F32(y)) => x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()),
        (Data::F64(x), Data::F64(y)) => x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()),
        (x, y) => x == y,
    };
    assert!(same, "{what}: values differ:\n{a}\nvs\n{b}");
}

/// The panic message of `f`, which must panic.
#[track_caller]
pub fn panic_message<R>(f: impl FnOnce() -> R + std::panic::UnwindSafe) -> String {
    match std::panic::catch_unwind(f) {
        Ok(_) => panic!("expected a panic"),
        Err(e) => {
            if let Some(s) = e.downcast_ref::<String>() {
                s.clone()
            } else if let Some(s) = e.downcast_ref::<&str>() {
                s.to_string()
            } else {
                "<non-string panic>".into()
            }
        }
    }
}

/// Reference reduction over `axes` of a row-major `x` of `shape`, by index arithmetic.
/// Returns the values in row-major order of the kept axes.
pub fn reduce_ref(x: &[f64], shape: &[usize], axes: &[usize], init: f64, f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    let kept: Vec<usize> = (0..shape.len()).filter(|a| !axes.contains(a)).collect();
    let out_n: usize = kept.iter().map(|&a| shape[a]).product();
    let mut out = vec![init; out_n];
    let n: usize = shape.iter().product();
    for (flat, &v) in x.iter().enumerate().take(n) {
        // Multi-index of `flat`.
        let mut rem = flat;
        let mut idx = vec![0; shape.len()];
        for a in (0..shape.len()).rev() {
            idx[a] = rem % shape[a];
            rem /= shape[a];
        }
        let mut o = 0;
        for &a in &kept {
            o = o * shape[a] + idx[a];
        }
        out[o] = f(out[o], v);
    }
    out
}

/// A small deterministic generator (64-bit LCG), so test inputs never change.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407))
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }
    /// A tensor with entries uniform in [lo, hi).
    pub fn tensor(&mut self, shape: &[usize], lo: f64, hi: f64) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::from_vec((0..n).map(|_| self.range(lo, hi)).collect::<Vec<f64>>(), shape)
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
    x.iter().zip(&y).fold(0.0f64, |m, (p, q)| m.max((p - q).abs())) / scale
}

/// Asserts two tensors agree to `tol` (relative to the magnitude of `expected`).
#[track_caller]
pub fn assert_tensors_close(actual: &Tensor, expected: &Tensor, tol: f64, what: &str) {
    let e = rel_err(actual, expected);
    assert!(e <= tol, "{what}: error {e:.3e} > {tol:.1e}\nactual:\n{actual}\nexpected:\n{expected}");
}

pub fn f64s(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape)
}

pub fn zeros(shape: &[usize]) -> Tensor {
    Tensor::zeros(shape, DType::F64)
}
