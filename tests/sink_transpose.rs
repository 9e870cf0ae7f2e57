//! The compile pass that computes transposes of element-wise results directly
//! (`src/compile/sink_transpose.rs`): where it applies, no transpose is left in the optimised
//! graph and jitted results equal eager ones bitwise; where a leaf of the element-wise tree is
//! a computed matrix, or a node of the tree is read elsewhere, the transpose stays.

mod common;

use common::{assert_tensors_close, Rng};
use cotangent::ops::Prim;
use cotangent::*;

/// The transposes of as many elements as the result left in `f`'s optimised graph at `x`.
fn transposes(f: impl Fn(&Tensor) -> Tensor, x: &Tensor) -> usize {
    let n = f(x).numel();
    let info = jit_inspect(f, x);
    info.optimized.nodes.iter().filter(|v| matches!(v.prim, Prim::Transpose { .. }) && v.ty.numel() >= n).count()
}

/// jit(f)(x) against eager f(x) (twice: interpreted, then possibly native loops), bitwise.
fn check(f: impl Fn(&Tensor) -> Tensor + Clone + 'static, x: &Tensor, what: &str) -> usize {
    let eager = f(x);
    let jitted = jit(f.clone());
    let got = jitted(x);
    assert_eq!(got.shape(), eager.shape(), "{what}: shape");
    assert_tensors_close(&got, &eager, 0.0, what);
    assert_tensors_close(&jitted(x), &eager, 0.0, &format!("{what}, second call"));
    transposes(f, x)
}

fn rosenbrock(x: &Tensor) -> Tensor {
    let n = x.shape()[0] as isize;
    let (head, tail) = (x.slice_axis(0, 0, n - 1, 1), x.slice_axis(0, 1, n, 1));
    ((tail - head.square()).square() * 100.0 + (1.0 - head).square()).sum_all()
}

#[test]
fn hessian_of_rosenbrock_has_no_transpose() {
    // jacfwd(jacrev(f)) batches the forward-mode direction first and transposes at the end;
    // the element-wise tree before it reads constants (the basis) and broadcasts only.
    let x = Rng::new(3).tensor(&[40], -1.0, 1.0);
    let h = |x: &Tensor| hessian(rosenbrock)(x);
    assert_eq!(check(h, &x, "hessian(rosenbrock)"), 0);
    // Known values: tridiagonal, H[i][i+1] = -400 x[i].
    let got = jit(h)(&x);
    let xs = x.to_vec::<f64>();
    let hv = got.to_vec::<f64>();
    for i in 0..39 {
        assert!((hv[i * 40 + i + 1] - -400.0 * xs[i]).abs() < 1e-12, "H[{i}][{}]", i + 1);
        assert_eq!(hv[i * 40 + i + 1], hv[(i + 1) * 40 + i], "symmetric at {i}");
    }
    assert_eq!(hv[2], 0.0);
}

#[test]
fn constants_broadcasts_and_padding_are_transposed() {
    let mut rng = Rng::new(4);
    let c = rng.tensor(&[5, 7], -1.0, 1.0);
    let x = rng.tensor(&[7], -1.0, 1.0);
    // (c * broadcast(x) + 1).exp() padded, transposed: every leaf is cheap.
    let f = move |x: &Tensor| {
        let e = (&c * &x.reshape(&[1, 7]) + 1.0).exp();
        e.pad(&[1, 0], &[0, 2], &[0, 0], 0.5).swap_axes(0, 1)
    };
    assert_eq!(check(f, &x, "pad(exp(c*x+1))ᵀ"), 0);
    // Rank 3 with a permutation that keeps a broadcast's axes in order.
    let c3 = rng.tensor(&[2, 3, 4], -1.0, 1.0);
    let g = move |x: &Tensor| (&c3 * &x.slice_axis(0, 0, 4, 1).reshape(&[1, 1, 4])).sin().permute(&[0, 2, 1]);
    assert_eq!(check(g, &x, "sin(c3*x)ᵀ"), 0);
}

#[test]
fn computed_leaves_and_shared_nodes_keep_the_transpose() {
    let mut rng = Rng::new(5);
    let a = rng.tensor(&[6, 6], -1.0, 1.0);
    // A computed matrix as a leaf (the product): the transpose stays where it is.
    let b = a.clone();
    let f = move |x: &Tensor| (x.matmul(&b) + 1.0).exp().swap_axes(0, 1);
    assert_eq!(check(f, &a, "exp(x·b + 1)ᵀ"), 1);
    // An element-wise node read outside the tree: transposing it would compute it twice.
    let c = rng.tensor(&[6, 6], -1.0, 1.0);
    let g = move |x: &Tensor| {
        let e = (&c * &x.sum(&[0], false).reshape(&[1, 6])).exp();
        &e.swap_axes(0, 1) + &e.sum_all()
    };
    assert_eq!(check(g, &a, "shared exp"), 1);
}
