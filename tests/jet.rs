//! Taylor mode (`jet`): known values, the coefficient convention, composition with the other
//! transformations, and errors. Every primitive's rule is checked against nested jvps by
//! `tests/op_table.rs`.

mod common;

use common::{assert_tensors_close as assert_close, f64s, panic_message};
use cotangent::*;

fn s(v: f64) -> Tensor {
    Tensor::scalar(v)
}

/// `[1, 0, 0, ...]` of length `k`: the series of `x + t`.
fn unit_series(k: usize) -> Vec<Tensor> {
    (0..k).map(|i| s(if i == 0 { 1.0 } else { 0.0 })).collect()
}

fn coeffs(ys: &[Tensor]) -> Vec<f64> {
    ys.iter().map(|y| y.item::<f64>()).collect()
}

fn assert_coeffs(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: number of coefficients");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-13 * (1.0 + w.abs()), "{what}: coefficient {}: {g} vs {w}", k + 1);
    }
}

#[test]
fn sin_at_half_to_order_four() {
    let (y, ys) = jet(|x: &Tensor| x.sin(), &s(0.5), &unit_series(4));
    assert!((y.item::<f64>() - 0.479425538604203).abs() < 1e-15);
    assert_coeffs(
        "sin",
        &coeffs(&ys),
        &[0.8775825618903727, -0.479425538604203, -0.8775825618903727, 0.479425538604203],
    );
}

#[test]
fn exp_of_sin_matches_its_closed_form() {
    let x = 0.5f64;
    let (sn, c, e) = (x.sin(), x.cos(), x.sin().exp());
    let want = [
        e * c,
        e * (c * c - sn),
        -(sn + 3.0) * e * sn * c,
        (sn.powi(4) + 6.0 * sn.powi(3) + 5.0 * sn * sn - 5.0 * sn - 3.0) * e,
    ];
    let (y, ys) = jet(|x: &Tensor| x.sin().exp(), &s(x), &unit_series(4));
    assert!((y.item::<f64>() - e).abs() < 1e-15);
    assert_coeffs("exp(sin x)", &coeffs(&ys), &want);
}

#[test]
fn lorentzian_matches_its_closed_form() {
    let x = 0.5f64;
    let q = 1.0 + x * x;
    let want = [
        -2.0 * x / q.powi(2),
        2.0 * (3.0 * x * x - 1.0) / q.powi(3),
        -24.0 * x * (x * x - 1.0) / q.powi(4),
        24.0 * (5.0 * x.powi(4) - 10.0 * x * x + 1.0) / q.powi(5),
    ];
    // 1/(1+x²) through div, and through reciprocal and pow.
    let (_, a) = jet(|x: &Tensor| 1.0 / (x * x + 1.0), &s(x), &unit_series(4));
    let (_, b) = jet(|x: &Tensor| (x.powf(2.0) + 1.0).recip(), &s(x), &unit_series(4));
    assert_coeffs("1/(1+x²) by div", &coeffs(&a), &want);
    assert_coeffs("1/(1+x²) by recip", &coeffs(&b), &want);
}

/// JAX's convention: coefficients are derivatives (`k!` times the Taylor coefficient), on the
/// way in as on the way out. With `x(t) = x0 + x1 t + x2 t²/2`, `f = x²` gives
/// `f(x(t)) = x0² + 2 x0 x1 t + (x1² + x0 x2) t² + x1 x2 t³ + x2² t⁴/4`.
#[test]
fn coefficients_are_derivative_scaled() {
    let (x0, x1, x2) = (1.5, -0.5, 2.0);
    let zero = s(0.0);
    let (_, ys) = jet(|x: &Tensor| x * x, &s(x0), &[s(x1), s(x2), zero.clone(), zero]);
    let want = [2.0 * x0 * x1, 2.0 * (x1 * x1 + x0 * x2), 6.0 * x1 * x2, 24.0 * x2 * x2 / 4.0];
    assert_coeffs("x² of a quadratic series", &coeffs(&ys), &want);
}

/// `jet` over trees, with integer leaves carrying no series, and `jet_sparse`'s zeros.
#[test]
fn trees_and_symbolic_zeros() {
    let x = (f64s(&[0.3, -0.7], &[2]), Tensor::scalar(3i64));
    let v = (f64s(&[1.0, 2.0], &[2]), Tensor::scalar(0i64));
    let z = (f64s(&[0.0, 0.0], &[2]), Tensor::scalar(0i64));
    let f = |(a, n): &(Tensor, Tensor)| (a.tanh() * n.cast(DType::F64)).sum_all();
    let (_, dense) = jet(f, &x, &[v.clone(), z.clone(), z]);
    let (_, sparse) = jet_sparse(f, &x, &[Some(&v), None, None]);
    for (d, s) in dense.iter().zip(&sparse) {
        assert_close(s, d, 1e-15, "jet_sparse vs jet with zeros");
    }
    // Third derivative of 3·Σ tanh(x + t v) along v: 3 Σ v³ tanh'''(x).
    let t3 = |x: f64| {
        let t = x.tanh();
        -2.0 * (1.0 - t * t) * (1.0 - 3.0 * t * t)
    };
    let want = 3.0 * (t3(0.3) + 8.0 * t3(-0.7));
    assert!((dense[2].item::<f64>() - want).abs() < 1e-12, "{} vs {want}", dense[2]);
}

/// Symbolic zeros flow through: a function of `x` only has zero series in `y`'s output.
#[test]
fn unrelated_outputs_get_zero_series() {
    let (_, ys) = jet(|(x, y): &(Tensor, Tensor)| (x.exp(), y.clone()), &(s(1.0), s(2.0)), &[(s(1.0), s(0.0))]);
    assert!((ys[0].0.item::<f64>() - 1f64.exp()).abs() < 1e-15);
    assert_eq!(ys[0].1.item::<f64>(), 0.0);
}

/// Piecewise primitives take the active branch's series; `abs` at 0 and max ties follow the
/// documented convention (the jvp's): the zero series and the mean of the tied series.
#[test]
fn piecewise_rules_and_their_conventions() {
    let x = f64s(&[-1.0, 0.5, 0.0], &[3]);
    let v = f64s(&[1.0, 1.0, 1.0], &[3]);
    let (_, ys) = jet(|x: &Tensor| x.relu() * x, &x, &[v.clone(), v.zeros_like()]);
    // relu(x)·x = x² where x > 0, else 0: second derivative 2 on the active side.
    assert_eq!(ys[1].to_vec::<f64>(), vec![0.0, 2.0, 0.0]);
    let (_, ys) = jet(|x: &Tensor| x.abs(), &x, std::slice::from_ref(&v));
    assert_eq!(ys[0].to_vec::<f64>(), vec![-1.0, 1.0, 0.0]);
    let (_, ys) =
        jet(|(a, b): &(Tensor, Tensor)| a.maximum(b), &(s(1.0), s(1.0)), &[(s(2.0), s(4.0)), (s(6.0), s(10.0))]);
    assert_eq!(coeffs(&[ys[0].clone(), ys[1].clone()]).as_slice(), &[3.0, 8.0]);
}

fn f_test(x: &Tensor) -> Tensor {
    (x.sin() * x.exp() + x.tanh().powf(2.0)).sum_all()
}

/// The k-th derivative of `f_test` along `v` by `jet`.
fn nth(x: &Tensor, v: &Tensor, k: usize) -> Tensor {
    let mut series: Vec<Option<&Tensor>> = vec![None; k];
    series[0] = Some(v);
    jet_sparse(f_test, x, &series).1.swap_remove(k - 1)
}

#[test]
fn jit_of_jet_matches_eager() {
    let x = f64s(&[0.1, -0.4, 0.8], &[3]);
    let v = f64s(&[1.0, 0.5, -2.0], &[3]);
    let eager = nth(&x, &v, 4);
    let jitted = jit(|(x, v): &(Tensor, Tensor)| nth(x, v, 4));
    for _ in 0..2 {
        assert_close(&jitted(&(x.clone(), v.clone())), &eager, 1e-12, "jit(jet)");
    }
}

#[test]
fn vmap_of_jet_matches_a_loop() {
    let xs = f64s(&[0.1, -0.4, 0.8, 0.3, 0.2, -0.1], &[2, 3]);
    let v = f64s(&[1.0, 0.5, -2.0], &[3]);
    let mapped = vmap(|x: &Tensor| nth(x, &v, 3))(&xs);
    let looped = stack(&[nth(&xs.index(0), &v, 3), nth(&xs.index(1), &v, 3)], 0);
    assert_close(&mapped, &looped, 1e-12, "vmap(jet)");
}

/// `grad` of a second-order jet coefficient is a third-order quantity, checked against a
/// third-order jet: ∂/∂x (vᵀ∇²f v)·v = ∇³f[v, v, v].
#[test]
fn grad_through_jet() {
    let x = f64s(&[0.1, -0.4, 0.8], &[3]);
    let v = f64s(&[1.0, 0.5, -2.0], &[3]);
    let g = grad(|x: &Tensor| nth(x, &v, 2))(&x);
    let third = nth(&x, &v, 3);
    assert_close(&(&g * &v).sum_all(), &third, 1e-12, "grad(jet)·v vs a 3-jet");
}

/// `jet` of `grad`: the series of ∇f(x + t v)·v are the higher directional derivatives.
#[test]
fn jet_of_grad() {
    let x = f64s(&[0.1, -0.4, 0.8], &[3]);
    let v = f64s(&[1.0, 0.5, -2.0], &[3]);
    let (_, ys) = jet(|x: &Tensor| (grad(f_test)(x) * &v).sum_all(), &x, &[v.clone(), v.zeros_like(), v.zeros_like()]);
    for k in 1..=3 {
        assert_close(&ys[k - 1], &nth(&x, &v, k + 1), 1e-11, &format!("jet(grad) order {k}"));
    }
}

/// Jets inside `vmap` inside `grad` (the shape of a PINN loss).
#[test]
fn jet_inside_vmap_inside_grad() {
    let w = f64s(&[0.3, -0.2, 0.5], &[3]);
    let xs = f64s(&[0.1, -0.4, 0.8, 0.3, 0.2, -0.1], &[2, 3]);
    let v = f64s(&[1.0, 0.0, 0.0], &[3]);
    let loss = |w: &Tensor| {
        let second = vmap(|x: &Tensor| {
            let f = |x: &Tensor| (x * w).sum_all().tanh();
            jet_sparse(f, x, &[Some(&v), None]).1.swap_remove(1)
        })(&xs);
        second.square().sum_all()
    };
    let g = grad(loss)(&w);
    // Central differences of the loss in w.
    let eps = 1e-6;
    let mut fd = Vec::new();
    for i in 0..3 {
        let mut e = vec![0.0; 3];
        e[i] = eps;
        let d = f64s(&e, &[3]);
        fd.push((loss(&(&w + &d)).item::<f64>() - loss(&(&w - &d)).item::<f64>()) / (2.0 * eps));
    }
    assert_close(&g, &f64s(&fd, &[3]), 1e-6, "grad(vmap(jet)) vs finite differences");
}

#[test]
fn mismatched_series_name_jet_and_the_leaf() {
    let msg = panic_message(|| jet(|x: &Tensor| x.sin(), &s(1.0), &[f64s(&[1.0, 2.0], &[2])]));
    assert!(msg.contains("jet") && msg.contains("order 1"), "{msg}");
    assert!(msg.contains("tests/jet.rs"), "names the caller's line: {msg}");
}

#[test]
fn collapsed_second_order_matches_the_sum_of_jets() {
    let x = f64s(&[0.1, -0.4, 0.8], &[3]);
    let dirs = f64s(&[1.0, 0.5, -2.0, 0.3, 0.0, 1.0], &[2, 3]);
    let (y, collapsed) = jet2_collapsed(f_test, &x, &dirs);
    assert_close(&y, &f_test(&x), 0.0, "primal");
    let sum = &nth(&x, &dirs.index(0), 2) + &nth(&x, &dirs.index(1), 2);
    assert_close(&collapsed, &sum, 1e-12, "collapsed vs per-direction jets");
}

/// A convolution (patches and a contraction: Cauchy products in both the image and the
/// kernel) followed by tanh: a 3-jet with series on both operands against nested jvps in t.
#[test]
fn convolution_jet_matches_nested_jvps() {
    let mut rng = common::Rng::new(5);
    let x = rng.tensor(&[1, 2, 5, 5], -1.0, 1.0);
    let w = rng.tensor(&[3, 2, 3, 3], -0.5, 0.5);
    let cs: Vec<(Tensor, Tensor)> = (0..3).map(|_| (rng.like(&x), rng.like(&w))).collect();
    let f = |(x, w): &(Tensor, Tensor)| nn::conv2d(x, w, (1, 1), (1, 1), (1, 1), 1).tanh();
    let (_, ys) = jet(f, &(x.clone(), w.clone()), &cs);
    // x(t) = x + Σ c_k t^k / k!, differentiated in t three times at 0.
    let path = |t: &Tensor| {
        let (mut a, mut b) = (x.clone(), w.clone());
        for (k, (cx, cw)) in cs.iter().enumerate() {
            let tk = t.powf((k + 1) as f64) * (1.0 / [1.0, 2.0, 6.0][k]);
            a = &a + cx * &tk;
            b = &b + cw * &tk;
        }
        f(&(a, b))
    };
    let one = s(1.0);
    let d1 = |t: &Tensor| jvp(path, t, &one).1;
    let d2 = |t: &Tensor| jvp(d1, t, &one).1;
    let d3 = |t: &Tensor| jvp(d2, t, &one).1;
    let t0 = s(0.0);
    for (k, want) in [d1(&t0), d2(&t0), d3(&t0)].iter().enumerate() {
        assert_close(&ys[k], want, 1e-10, &format!("conv jet order {}", k + 1));
    }
}
