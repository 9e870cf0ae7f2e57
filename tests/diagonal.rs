//! The compile pass that turns products with a diagonal matrix into scalings
//! (`src/compile/diagonal.rs`): where it applies the product disappears from the optimised
//! graph and jitted results equal eager ones; where the factor is not diagonal the product
//! stays.

mod common;

use common::{assert_tensors_close, Rng};
use cotangent::ops::Prim;
use cotangent::*;

/// The output shapes of the products left in `f`'s optimised graph at `x`.
fn products(f: impl Fn(&Tensor) -> Tensor, x: &Tensor) -> Vec<Vec<usize>> {
    let info = jit_inspect(f, x);
    info.optimized
        .nodes
        .iter()
        .filter(|n| matches!(n.prim, Prim::DotGeneral { .. }))
        .map(|n| n.ty.shape.clone())
        .collect()
}

/// jit(f)(x) against eager f(x) (twice: interpreted and native loops), and the products jit
/// keeps.
fn check(f: impl Fn(&Tensor) -> Tensor + Clone + 'static, x: &Tensor, tol: f64, what: &str) -> Vec<Vec<usize>> {
    let eager = f(x);
    let jitted = jit(f.clone());
    let got = jitted(x);
    assert_eq!(got.shape(), eager.shape(), "{what}: shape");
    assert_tensors_close(&got, &eager, tol, what);
    assert_tensors_close(&jitted(x), &eager, tol, &format!("{what}, second call"));
    products(f, x)
}

/// A symmetric positive definite `n×n` matrix.
fn spd(rng: &mut Rng, n: usize) -> Tensor {
    let b = rng.tensor(&[n, n], -1.0, 1.0);
    b.matmul(&b.swap_axes(-1, -2)) / n as f64 + Tensor::eye(n, DType::F64)
}

#[test]
fn logdet_gradient_through_cholesky_skips_the_diagonal_product() {
    // Reverse mode through Cholesky multiplies Lᵀ by the diagonal cotangent diag(2/Lᵢᵢ).
    let mut rng = Rng::new(11);
    let n = 48;
    let a = spd(&mut rng, n);
    let f = |a: &Tensor| grad(|a: &Tensor| linalg::logdet(a))(a);
    let left = check(f, &a, 1e-12, "grad(logdet)");
    assert!(!left.contains(&vec![n, n]), "the [{n}, {n}] product with the diagonal is still computed: {left:?}");
    // The gradient of logdet is the inverse (A symmetric).
    let inv = linalg::inv(&a);
    assert_tensors_close(&jit(f)(&a), &inv, 1e-10, "grad(logdet) = A⁻¹");
}

#[test]
fn constant_and_masked_diagonals_on_either_side() {
    let mut rng = Rng::new(12);
    let n = 32;
    let x = rng.tensor(&[8, n], -1.0, 1.0);
    let d = rng.tensor(&[n], -1.0, 1.0);
    // A constant diagonal on the right, x·diag(d): x scaled by column.
    let dm = Tensor::eye(n, DType::F64) * &d.reshape(&[1, -1]);
    let dm2 = dm.clone();
    let left = check(move |x: &Tensor| x.matmul(&dm2), &x, 0.0, "x·diag(d)");
    assert!(left.is_empty(), "{left:?}");
    assert_tensors_close(
        &jit(move |x: &Tensor| x.matmul(&dm))(&x),
        &(&x * &d.reshape(&[1, -1])),
        0.0,
        "x·diag(d) = x*d",
    );
    // On the left, contracting the operand's rows: diag(v)·xᵀ with v computed from x.
    let f = move |x: &Tensor| {
        let v = x.sum(&[0], false);
        let dv = Tensor::eye(n, DType::F64) * &v.reshape(&[-1, 1]);
        dv.matmul(&x.swap_axes(0, 1))
    };
    let left = check(f, &x, 0.0, "diag(v)·xᵀ");
    assert!(left.is_empty(), "{left:?}");
    // f32, a scalar times the identity.
    let x32 = x.cast(DType::F32);
    let g = move |x: &Tensor| {
        let s = x.sum_all();
        x.matmul(&(Tensor::eye(n, DType::F32) * s))
    };
    let left = check(g, &x32, 0.0, "x·(s·I) in f32");
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn factors_that_are_not_diagonal_stay_products() {
    let mut rng = Rng::new(13);
    let n = 32;
    let x = rng.tensor(&[8, n], -1.0, 1.0);
    // One off-diagonal entry.
    let mut e = vec![0.0; n * n];
    for i in 0..n {
        e[i * n + i] = 1.0;
    }
    e[3] = 0.5;
    let m = Tensor::from_vec(e, &[n, n]);
    let left = check(move |x: &Tensor| x.matmul(&m), &x, 1e-12, "x·(I + e)");
    assert_eq!(left, vec![vec![8, n]]);
    // A full matrix times a mask that is not diagonal (lower triangle).
    let tri = Tensor::ones(&[n, n], DType::F64).tril(0);
    let f = move |x: &Tensor| {
        let v = x.sum(&[0], false);
        x.matmul(&(&tri * &v.reshape(&[1, -1])))
    };
    let left = check(f, &x, 1e-12, "x·(tril * v)");
    assert_eq!(left, vec![vec![8, n]]);
}
