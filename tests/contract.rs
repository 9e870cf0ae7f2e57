//! The compile pass that contracts a product's constant factor with constant summing weights
//! first (`src/compile/contract.rs`): where it applies the product disappears from the
//! optimised graph, and jitted results agree with eager ones (up to rounding: the sums are
//! reassociated); where it does not apply the product stays.

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

/// jit(f)(x) against eager f(x), and the products jit keeps.
fn check(f: impl Fn(&Tensor) -> Tensor + Clone + 'static, x: &Tensor, tol: f64, what: &str) -> Vec<Vec<usize>> {
    let eager = f(x);
    let jitted = jit(f.clone());
    let got = jitted(x);
    assert_eq!(got.shape(), eager.shape(), "{what}: shape");
    assert_tensors_close(&got, &eager, tol, what);
    // Second call (native loops where a compiler is available): the same values.
    assert_tensors_close(&jitted(x), &eager, tol, &format!("{what}, second call"));
    products(f, x)
}

#[test]
fn weighted_row_sums_of_a_product_become_a_matrix_vector_product() {
    let mut rng = Rng::new(1);
    let x = rng.tensor(&[64, 256], -1.0, 1.0);
    let w = rng.tensor(&[256, 128], -1.0, 1.0);
    let v = rng.tensor(&[128], -1.0, 1.0);
    let f = move |x: &Tensor| (x.matmul(&w) * &v).sum(&[-1], false);
    let left = check(f, &x, 1e-12, "(x·w·v).sum(-1)");
    assert!(left.is_empty(), "the [64, 128] product is still computed: {left:?}");
}

#[test]
fn unweighted_sums_and_f32() {
    let mut rng = Rng::new(2);
    let x = rng.tensor(&[32, 128], -1.0, 1.0).cast(DType::F32);
    let w = rng.tensor(&[128, 96], -1.0, 1.0).cast(DType::F32);
    let f = move |x: &Tensor| x.matmul(&w).sum(&[-1], false);
    let left = check(f, &x, 1e-5, "(x·w).sum(-1) in f32");
    assert!(left.is_empty(), "{left:?}");
    // Summing everything: also the rows of x.
    let w2 = rng.tensor(&[128, 96], -1.0, 1.0).cast(DType::F32);
    let g = move |x: &Tensor| x.matmul(&w2).sum_all();
    assert!(check(g, &x, 1e-5, "(x·w).sum() in f32").is_empty());
}

/// The Laplacian as forward-over-reverse writes it: a batch of Hessians, each the product of
/// a computed factor and a constant weight matrix, transposed, masked by the identity and
/// summed. Only the diagonal is computed.
#[test]
fn trace_of_transposed_products_masked_by_the_identity() {
    let mut rng = Rng::new(3);
    let n = 32;
    let x = rng.tensor(&[8, n, 1, 64], -1.0, 1.0);
    let w = rng.tensor(&[n, 64], -1.0, 1.0);
    let f = move |x: &Tensor| {
        let h = dot_general(x, &w, (&[3], &[1]), (&[], &[])).reshape(&[8, n as isize, n as isize]);
        (h.permute(&[0, 2, 1]) * Tensor::eye(n, DType::F64)).sum(&[1, 2], false)
    };
    let left = check(f, &x, 1e-12, "trace of products");
    assert!(left.is_empty(), "{left:?}");
    // The same with a mask that is not the identity (weights vary along both axes).
    let m = rng.tensor(&[n, n], -1.0, 1.0);
    let w = rng.tensor(&[n, 64], -1.0, 1.0);
    let g = move |x: &Tensor| {
        let h = dot_general(x, &w, (&[3], &[1]), (&[], &[])).reshape(&[8, n as isize, n as isize]);
        (h.permute(&[0, 2, 1]) * &m).sum(&[1, 2], false)
    };
    assert!(check(g, &x, 1e-12, "weighted sum of products").is_empty());
}

/// The constant factor on the left: its free axis (the rows) is summed.
#[test]
fn constant_left_factor() {
    let mut rng = Rng::new(4);
    let x = rng.tensor(&[256, 64], -1.0, 1.0);
    let w = rng.tensor(&[128, 256], -1.0, 1.0);
    let v = rng.tensor(&[128, 1], -1.0, 1.0);
    let f = move |x: &Tensor| (w.matmul(x) * &v).sum(&[0], false);
    assert!(check(f, &x, 1e-12, "(v·w·x).sum(0)").is_empty());
}

/// Where the constant factor's free axis is kept (or the product is read elsewhere, or
/// both factors are computed) the product stays, and the results are still right.
#[test]
fn products_that_stay() {
    let mut rng = Rng::new(5);
    let x = rng.tensor(&[64, 256], -1.0, 1.0);
    let w = rng.tensor(&[256, 128], -1.0, 1.0);
    let (w1, w2) = (w.clone(), w.clone());
    // Summed over the rows of x only: the columns of w are kept.
    let kept = move |x: &Tensor| x.matmul(&w1).sum(&[0], false);
    assert_eq!(check(kept, &x, 1e-12, "columns kept"), vec![vec![64, 128]]);
    // The product has another reader.
    let shared = move |x: &Tensor| {
        let p = x.matmul(&w2);
        p.sum(&[-1], false) + p.max(&[-1], false)
    };
    assert_eq!(check(shared, &x, 1e-12, "product read twice"), vec![vec![64, 128]]);
    // Neither factor constant.
    let both = |x: &Tensor| x.matmul(&x.permute(&[1, 0])).sum(&[-1], false);
    assert_eq!(check(both, &x, 1e-12, "no constant factor"), vec![vec![64, 64]]);
}

/// The Laplacian of a one-layer network by `vmap` of the Hessian's trace (the w3 benchmark's
/// form) against its closed form: the product that would compute the whole Hessian is gone.
#[test]
fn hessian_trace_matches_closed_form() {
    let mut rng = Rng::new(6);
    let (d, h, n) = (16, 32, 16);
    let w1 = rng.tensor(&[d, h], -0.5, 0.5);
    let w2 = rng.tensor(&[h], -0.5, 0.5);
    let pts = rng.tensor(&[n, d], -1.0, 1.0);
    let (a, b) = (w1.clone(), w2.clone());
    let f = move |pts: &Tensor| {
        let (a, b) = (a.clone(), b.clone());
        let net = move |x: &Tensor| (x.matmul(&a).tanh() * &b).sum_all();
        vmap(move |x: &Tensor| (hessian(net.clone())(x) * Tensor::eye(d, DType::F64)).sum_all())(pts)
    };
    let got = jit(f.clone())(&pts).to_vec::<f64>();
    // Hessian = W1 diag(w2 · tanh''(z)) W1ᵀ, tanh''(z) = -2 t (1 - t²): its trace is
    // Σ_k w2_k tanh''(z_k) Σ_i W1[i, k]².
    let (w1v, w2v, xv) = (w1.to_vec::<f64>(), w2.to_vec::<f64>(), pts.to_vec::<f64>());
    for p in 0..n {
        let mut want = 0.0;
        for k in 0..h {
            let z: f64 = (0..d).map(|i| xv[p * d + i] * w1v[i * h + k]).sum();
            let t = z.tanh();
            let col: f64 = (0..d).map(|i| w1v[i * h + k] * w1v[i * h + k]).sum();
            want += w2v[k] * (-2.0 * t * (1.0 - t * t)) * col;
        }
        assert!((got[p] - want).abs() <= 1e-12 * (1.0 + want.abs()), "point {p}: {} vs {want}", got[p]);
    }
    let left = products(f, &pts);
    assert!(
        !left.iter().any(|s| s.iter().product::<usize>() == n * d * d),
        "the whole Hessian is still computed: {left:?}"
    );
}
