//! Behaviour of the transformations beyond the op table: kinks, nesting, trees,
//! symbolic zeros, vmap axes, and the errors users see.

mod common;

use common::{assert_tensors_close as assert_close, f64s, Rng};
use cotangent::*;
use std::collections::BTreeMap;

fn scalar(v: f64) -> Tensor {
    Tensor::scalar(v)
}

fn d(f: impl Fn(&Tensor) -> Tensor, x: f64) -> f64 {
    grad(move |x: &Tensor| f(x).sum_all())(&scalar(x)).item::<f64>()
}

// ----- Kinks get documented Clarke subgradients -----

#[test]
fn piecewise_functions_at_their_kinks() {
    assert_eq!(d(|x| x.relu(), 0.0), 0.0);
    assert_eq!(d(|x| x.relu(), 1e-300), 1.0);
    assert_eq!(d(|x| x.abs(), 0.0), 0.0);
    assert_eq!(d(|x| x.abs(), -2.0), -1.0);
    assert_eq!(d(|x| x.leaky_relu(0.1), 0.0), 0.1);
    for f in [|x: &Tensor| x.sign(), |x: &Tensor| x.floor(), |x: &Tensor| x.ceil(), |x: &Tensor| x.round()] {
        assert_eq!(d(f, 0.0), 0.0);
        assert_eq!(d(f, 0.5), 0.0);
    }
    // softplus is smooth: its derivative at 0 is exactly 1/2.
    assert_eq!(d(|x| x.softplus(), 0.0), 0.5);
}

#[test]
fn max_and_min_split_ties_equally() {
    let g = grad(|(x, y): &(Tensor, Tensor)| x.maximum(y));
    let (gx, gy) = g(&(scalar(2.0), scalar(2.0)));
    assert_eq!((gx.item::<f64>(), gy.item::<f64>()), (0.5, 0.5));
    let g = grad(|(x, y): &(Tensor, Tensor)| x.minimum(y));
    let (gx, gy) = g(&(scalar(-1.0), scalar(-1.0)));
    assert_eq!((gx.item::<f64>(), gy.item::<f64>()), (0.5, 0.5));
    let (gx, gy) = g(&(scalar(-1.0), scalar(3.0)));
    assert_eq!((gx.item::<f64>(), gy.item::<f64>()), (1.0, 0.0));
    // Reductions: the derivative is shared by all tied extremes.
    let x = f64s(&[1.0, 3.0, 3.0, -2.0], &[4]);
    assert_eq!(grad(|x: &Tensor| x.max(&[0], false))(&x).to_vec::<f64>(), vec![0.0, 0.5, 0.5, 0.0]);
    assert_eq!(grad(|x: &Tensor| x.min(&[0], false))(&x).to_vec::<f64>(), vec![0.0, 0.0, 0.0, 1.0]);
    // clamp at its boundary behaves like maximum/minimum.
    assert_eq!(d(|x| x.clamp(-1.0, 1.0), 1.0), 0.5);
}

#[test]
fn argmax_has_zero_derivative_through_the_index() {
    let x = f64s(&[0.5, 2.0, -1.0], &[3]);
    let g = grad(|x: &Tensor| x.take(&x.argmax(0, false), 0) * 3.0)(&x);
    assert_eq!(g.to_vec::<f64>(), vec![0.0, 3.0, 0.0]);
    let g = grad(|x: &Tensor| x.argmax(0, false).cast(DType::F64) + x.sum_all())(&x);
    assert_eq!(g.to_vec::<f64>(), vec![1.0, 1.0, 1.0]);
}

// ----- Nesting -----

#[test]
fn hessians_agree_across_modes() {
    let mut rng = Rng::new(3);
    let x = rng.tensor(&[3], -1.0, 1.0);
    let quartic = |x: &Tensor| x.powf(4.0).sum_all();
    let h = hessian(quartic)(&x);
    let expected: Vec<f64> = {
        let v = x.to_vec::<f64>();
        (0..9).map(|k| if k / 3 == k % 3 { 12.0 * v[k / 3] * v[k / 3] } else { 0.0 }).collect()
    };
    assert_close(&h, &f64s(&expected, &[3, 3]), 1e-12, "hessian of sum(x^4)");

    let w = rng.tensor(&[3, 2], -1.0, 1.0);
    let xm = rng.tensor(&[2, 3], -1.0, 1.0);
    let matrix_fn = move |x: &Tensor| x.matmul(&w).tanh().sum_all() + x.square().sum(&[0], false).sin().sum_all();
    let h1 = hessian(matrix_fn.clone())(&xm);
    let h2 = jacfwd(jacrev(matrix_fn.clone()))(&xm);
    let h3 = jacrev(jacfwd(matrix_fn.clone()))(&xm);
    let h4 = jacrev(jacrev(matrix_fn.clone()))(&xm);
    let h5 = jacfwd(jacfwd(matrix_fn))(&xm);
    assert_eq!(h1.shape(), vec![2, 3, 2, 3]);
    for (h, name) in
        [(&h2, "jacfwd(jacrev)"), (&h3, "jacrev(jacfwd)"), (&h4, "jacrev(jacrev)"), (&h5, "jacfwd(jacfwd)")]
    {
        assert_close(h, &h1, 1e-12, name);
    }
    // Symmetric, as a Hessian must be.
    assert_close(&h1.reshape(&[6, 6]).t(), &h1.reshape(&[6, 6]), 1e-12, "symmetry");
}

fn loss(w: &Tensor, x: &Tensor, y: &Tensor) -> Tensor {
    (x.matmul(w).tanh() - y).square().sum_all()
}

#[test]
fn per_example_gradients_with_vmap_of_grad() {
    let mut rng = Rng::new(11);
    let w = rng.tensor(&[3, 2], -1.0, 1.0);
    let xs = rng.tensor(&[5, 3], -1.0, 1.0);
    let ys = rng.tensor(&[5, 2], -1.0, 1.0);
    let per_example = vmap_axes(
        |(w, x, y): &(Tensor, Tensor, Tensor)| grad(|w: &Tensor| loss(w, x, y))(w),
        vec![None, Some(0), Some(0)],
        0,
    );
    let batched = per_example(&(w.clone(), xs.clone(), ys.clone()));
    let looped =
        stack(&(0..5).map(|i| grad(|w: &Tensor| loss(w, &xs.index(i), &ys.index(i)))(&w)).collect::<Vec<_>>(), 0);
    assert_eq!(batched.shape(), vec![5, 3, 2]);
    assert_close(&batched, &looped, 1e-12, "vmap(grad(loss))");
    // And the sum of per-example gradients is the gradient of the summed loss.
    let total = grad(|w: &Tensor| loss(w, &xs, &ys))(&w);
    assert_close(&batched.sum(&[0], false), &total, 1e-12, "sum of per-example gradients");
}

#[test]
fn grad_of_vmap_and_vmap_of_hessian() {
    let mut rng = Rng::new(5);
    let x = rng.tensor(&[4, 2], -1.0, 1.0);
    let f = |v: &Tensor| (v.index(0) * v.index(1).sin()).exp();
    let g = grad(|x: &Tensor| vmap(f)(x).sum_all())(&x);
    let looped = stack(&(0..4).map(|i| grad(f)(&x.index(i))).collect::<Vec<_>>(), 0);
    assert_close(&g, &looped, 1e-12, "grad of vmap");
    let hs = vmap(hessian(f))(&x);
    let looped = stack(&(0..4).map(|i| hessian(f)(&x.index(i))).collect::<Vec<_>>(), 0);
    assert_close(&hs, &looped, 1e-12, "vmap of hessian");
}

#[test]
fn jvp_of_vjp_and_vjp_of_jvp() {
    let x = f64s(&[0.3, -0.7], &[2]);
    let u = f64s(&[1.0, 2.0], &[2]);
    let f = |x: &Tensor| (x * x.sum_all()).sin();
    // Both are H-like products of the same second derivative tensor: compare with hessian contractions.
    let ct = f64s(&[0.5, -1.5], &[2]);
    let jv = jvp(|x: &Tensor| vjp(f, x).1.call(&ct), &x, &u).1;
    let vj = vjp(|x: &Tensor| jvp(f, x, &u).1, &x).1.call(&ct);
    assert_close(&jv, &vj, 1e-12, "symmetry of second derivatives");
}

#[test]
fn closures_may_capture_outer_traced_values() {
    // vmap over x of a gradient whose closure captures x.
    let xs = f64s(&[1.0, 2.0, 3.0], &[3]);
    let f = vmap(|x: &Tensor| grad(|y: &Tensor| (x * y).sin())(&scalar(0.5)));
    let expect: Vec<f64> = [1.0f64, 2.0, 3.0].iter().map(|x| x * (0.5 * x).cos()).collect();
    assert_close(&f(&xs), &f64s(&expect, &[3]), 1e-15, "vmap with capture");
    // Third-order mixed nesting.
    let g = grad(|x: &Tensor| grad(|y: &Tensor| (x * y * y).sin())(x));
    // d/dx [ cos(x^3) * 2x^2 ]  with y = x afterwards: f'(x) = -sin(x^3)*3x^2*2x^2 + cos(x^3)*4x
    let x0: f64 = 0.7;
    let expect = -(x0.powi(3)).sin() * 6.0 * x0.powi(4) + (x0.powi(3)).cos() * 4.0 * x0;
    assert!((g(&scalar(x0)).item::<f64>() - expect).abs() < 1e-12);
}

// ----- Trees -----

#[test]
fn gradients_of_trees() {
    let params = (scalar(2.0), vec![scalar(3.0), scalar(4.0)], [scalar(1.0)]);
    let g = grad(|(a, v, arr): &(Tensor, Vec<Tensor>, [Tensor; 1])| a * &v[0] * &v[1] + arr[0].square())(&params);
    assert_eq!(g.0.item::<f64>(), 12.0);
    assert_eq!(g.1[0].item::<f64>(), 8.0);
    assert_eq!(g.1[1].item::<f64>(), 6.0);
    assert_eq!(g.2[0].item::<f64>(), 2.0);

    let mut m = BTreeMap::new();
    m.insert("w".to_string(), scalar(3.0));
    m.insert("b".to_string(), scalar(1.0));
    let g = grad(|m: &BTreeMap<String, Tensor>| &m["w"] * &m["w"] + &m["b"])(&m);
    assert_eq!((g["w"].item::<f64>(), g["b"].item::<f64>()), (6.0, 1.0));

    let opt = (scalar(1.0), Some(scalar(2.0)), None::<Tensor>);
    let g = grad(|(a, b, _): &(Tensor, Option<Tensor>, Option<Tensor>)| a * b.as_ref().unwrap())(&opt);
    assert_eq!(g.1.unwrap().item::<f64>(), 1.0);
    assert!(g.2.is_none());

    let six = (scalar(1.0), scalar(2.0), scalar(3.0), scalar(4.0), scalar(5.0), scalar(6.0));
    let g = grad(|t: &(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)| &t.0 * &t.1 * &t.2 * &t.3 * &t.4 * &t.5)(&six);
    assert_eq!(g.5.item::<f64>(), 120.0);

    // Integer leaves have no gradient: grad refuses them (see tests/errors.rs); vjp gives
    // them zero cotangents.
    let (_, pb) = vjp(|(x, n): &(Tensor, Tensor)| x * n.cast(DType::F64), &(scalar(2.0), Tensor::scalar(3i64)));
    let g = pb.call(&scalar(1.0));
    assert_eq!((g.0.item::<f64>(), g.1.item::<i64>()), (3.0, 0));
}

#[test]
fn auxiliary_outputs_are_returned_not_differentiated() {
    let vg = value_and_grad_with_aux(|x: &Tensor| {
        let pred = x * 2.0;
        ((&pred - 1.0).square().sum_all(), (pred.clone(), pred.sum_all()))
    });
    let x = f64s(&[1.0, 2.0], &[2]);
    let ((l, (pred, s)), g) = vg(&x);
    assert_eq!(l.item::<f64>(), 10.0);
    assert_eq!(pred.to_vec::<f64>(), vec![2.0, 4.0]);
    assert_eq!(s.item::<f64>(), 6.0);
    assert_eq!(g.to_vec::<f64>(), vec![4.0, 12.0]);
    let (g2, aux) = grad_with_aux(|x: &Tensor| (x.sum_all(), x * 5.0))(&x);
    assert_eq!(g2.to_vec::<f64>(), vec![1.0, 1.0]);
    assert_eq!(aux.to_vec::<f64>(), vec![5.0, 10.0]);
}

// ----- Symbolic zeros -----

#[test]
fn only_requested_derivatives_do_work() {
    let mut rng = Rng::new(9);
    let x = rng.tensor(&[4], -1.0, 1.0);
    let y = rng.tensor(&[4], -1.0, 1.0);
    // Differentiating w.r.t. x only: the expensive chain on y appears nowhere in the linear graph.
    let f = |x: &Tensor| x.sin() * y.exp().tanh().log1p();
    let (_, lin) = linearize(f, &x);
    // t·cos(x), then times the constant factor: two muls, two residuals, nothing else.
    let ops: Vec<&str> =
        lin.graph().nodes.iter().map(|n| n.prim.name()).filter(|n| !["input", "constant"].contains(n)).collect();
    assert_eq!(ops, vec!["mul", "mul"], "{}", lin.graph());
    assert_eq!(lin.num_residuals(), 2);
    // With respect to both, y's chain needs its own tangent ops.
    let (_, both) = linearize(|(x, y): &(Tensor, Tensor)| x.sin() * y.exp().tanh().log1p(), &(x.clone(), y.clone()));
    assert!(both.graph().num_ops() > 4, "{}", both.graph());
    // An output that does not depend on the input has a zero (unmaterialised) tangent.
    let (_, lin) = linearize(|x: &Tensor| (x.sin(), y.clone()), &x);
    assert_eq!(lin.graph().outputs.len(), 1);
    assert_eq!(lin.call(&x).1.to_vec::<f64>(), vec![0.0; 4]);
}

// ----- vmap axes -----

#[test]
fn vmap_in_and_out_axes() {
    let x = Tensor::arange(0.0, 6.0, 1.0, DType::F64).reshape(&[2, 3]);
    // Map over columns (axis 1), put the mapped axis last in the output.
    let f = vmap_axes(|c: &Tensor| c * 10.0 + c.sum_all(), vec![Some(1)], -1);
    let y = f(&x);
    assert_eq!(y.shape(), vec![2, 3]);
    assert_eq!(y.to_vec::<f64>(), vec![3.0, 15.0, 27.0, 33.0, 45.0, 57.0]);
    // An output that does not depend on the mapped input is broadcast over the batch.
    let c = vmap(|_: &Tensor| scalar(7.0))(&x);
    assert_eq!(c.to_vec::<f64>(), vec![7.0, 7.0]);
    // Nested vmap over both axes equals the elementwise function.
    let e = vmap(vmap(|v: &Tensor| v.sin()))(&x);
    assert_close(&e, &x.sin(), 0.0, "nested vmap");
}

#[test]
fn linear_transpose_of_a_linear_function() {
    let m = f64s(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    let f = |x: &Tensor| m.matmul(x) * 2.0;
    let ft = linear_transpose(f, &Tensor::zeros(&[3], DType::F64));
    let v = f64s(&[1.0, -1.0], &[2]);
    assert_eq!(ft(&v).to_vec::<f64>(), vec![-6.0, -6.0, -6.0]);
}

// ----- Errors -----

#[test]
#[should_panic(expected = "grad (called at tests/transforms.rs:")]
fn grad_of_a_non_scalar_function() {
    grad(|x: &Tensor| x * 2.0)(&f64s(&[1.0, 2.0], &[2]));
}

#[test]
#[should_panic(expected = "escaped the transformation")]
fn a_leaked_tracer_is_caught() {
    let leaked = std::cell::RefCell::new(None);
    grad(|x: &Tensor| {
        *leaked.borrow_mut() = Some(x.clone());
        x.sin()
    })(&scalar(1.0));
    let t = leaked.borrow().clone().unwrap();
    let _ = &t + &scalar(1.0);
}

#[test]
fn a_tracer_kept_from_a_failed_trace_has_escaped_on_every_thread() {
    let leaked = std::sync::Mutex::new(None);
    let r = std::panic::catch_unwind(|| {
        grad(|x: &Tensor| {
            *leaked.lock().unwrap() = Some(x.clone());
            x.matmul(x)
        })(&scalar(1.0))
    });
    assert!(r.is_err());
    let t = leaked.into_inner().unwrap().unwrap();
    // Its trace ended (by unwinding): here and on another thread it escaped, it is not
    // "in use on another thread".
    for msg in [
        common::panic_message(|| t.sin()),
        std::thread::scope(|s| s.spawn(|| common::panic_message(|| t.sin())).join().unwrap()),
    ] {
        assert!(msg.contains("of grad escaped the transformation"), "{msg}");
    }
}

#[test]
fn vjp_and_jvp_give_integer_leaves_zero_derivatives() {
    let p = (scalar(2.0), Tensor::from_vec(vec![3i64, 4], &[2]));
    let f = |p: &(Tensor, Tensor)| &p.0 * p.1.cast(DType::F64).sum_all();
    let (y, pb) = vjp(f, &p);
    assert_eq!(y.item::<f64>(), 14.0);
    let (g0, g1) = pb.call(&scalar(1.0));
    assert_eq!((g0.item::<f64>(), g1.to_vec::<i64>(), g1.dtype()), (7.0, vec![0, 0], DType::I64));
    let (_, dy) = jvp(f, &p, &(scalar(1.0), Tensor::from_vec(vec![5i64, 5], &[2])));
    assert_eq!(dy.item::<f64>(), 7.0, "the integer leaf's tangent is ignored");
}

#[test]
#[should_panic(expected = "cannot read the value of a traced tensor (f64[]) inside a transformation")]
fn reading_a_traced_value() {
    grad(|x: &Tensor| if x.item::<f64>() > 0.0 { x.sin() } else { x.cos() })(&scalar(1.0));
}

#[test]
#[should_panic(expected = "mapped axes have different sizes: 2 and 3")]
fn vmap_with_mismatched_batch_sizes() {
    vmap(|(a, b): &(Tensor, Tensor)| a + b)(&(Tensor::zeros(&[2], DType::F64), Tensor::zeros(&[3], DType::F64)));
}

#[test]
fn a_panicking_closure_leaves_no_trace_behind() {
    let r = std::panic::catch_unwind(|| grad(|x: &Tensor| x.matmul(x))(&scalar(1.0)));
    assert!(r.is_err());
    // The trace stack is clean again: eager operations run eagerly.
    assert!(!(&scalar(1.0) + 1.0).is_traced());
    assert_eq!(grad(|x: &Tensor| x.square())(&scalar(3.0)).item::<f64>(), 6.0);
}

#[test]
fn hessians_of_tree_functions_through_ravel() {
    let mut rng = Rng::new(21);
    let params = (rng.tensor(&[2, 3], -1.0, 1.0), rng.tensor(&[3], -1.0, 1.0));
    let x = rng.tensor(&[4, 2], -1.0, 1.0);
    let loss = |(w, b): &(Tensor, Tensor)| (x.matmul(w) + b).tanh().square().sum_all();
    let (flat, unravel) = cotangent::tree::ravel(&params);
    assert_eq!(flat.shape(), vec![9]);
    let back = unravel(&flat);
    assert_eq!(back.0.to_vec::<f64>(), params.0.to_vec::<f64>());
    // The Hessian of the tree function is the Jacobian of its (flattened) gradient.
    let h = hessian(|v: &Tensor| loss(&unravel(v)))(&flat);
    let flat_grad = |v: &Tensor| {
        let (gw, gb) = grad(loss)(&unravel(v));
        concatenate(&[gw.flatten(), gb], 0)
    };
    let j = jacrev(flat_grad)(&flat);
    assert_close(&h, &j, 1e-12, "hessian via ravel");
    assert_close(&h.t(), &h, 1e-12, "symmetry");
}

#[test]
#[should_panic(expected = "ravel: every leaf must have one dtype")]
fn ravel_rejects_mixed_dtypes() {
    let _ = cotangent::tree::ravel(&(Tensor::scalar(1.0), Tensor::scalar(1.0f32)));
}
