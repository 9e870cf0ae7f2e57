//! Custom derivative rules: known values through grad, jvp, vmap, jit and nesting, and bad input.

mod common;

use common::{f64t, panic_message};
use cotangent::*;

/// log(1 + eˣ) written naively, with the stable derivative sigmoid(x) as its rule.
fn log1pexp(x: &Tensor) -> Tensor {
    let f = custom_jvp(
        |x: &Tensor| (x.exp() + 1.0).log(),
        |x: &Tensor, t: &Tensor| ((x.exp() + 1.0).log(), x.sigmoid() * t),
    );
    f(x)
}

#[test]
fn custom_jvp_log1pexp_gradient_is_stable() {
    let naive = grad(|x: &Tensor| (x.exp() + 1.0).log());
    assert!(naive(&Tensor::scalar(1000.0)).item::<f64>().is_nan(), "the naive derivative is NaN at 1000");
    let g = grad(log1pexp);
    assert_eq!(g(&Tensor::scalar(1000.0)).item::<f64>(), 1.0);
    assert_eq!(g(&Tensor::scalar(1000.0)).item::<f64>(), 1.0); // second call: the compiled plan
    assert_eq!(g(&Tensor::scalar(0.0)).item::<f64>(), 0.5);
    let (y, dy) = jvp(log1pexp, &Tensor::scalar(0.0), &Tensor::scalar(3.0));
    assert!((y.item::<f64>() - 2f64.ln()).abs() < 1e-15);
    assert_eq!(dy.item::<f64>(), 1.5);
}

#[test]
fn custom_jvp_differentiated_twice_goes_through_the_rule() {
    // d²/dx² = sigmoid'(x) = s(1 - s): 1/4 at 0, exactly 0 at 1000 (no NaN).
    let d2 = grad(grad(log1pexp));
    assert_eq!(d2(&Tensor::scalar(0.0)).item::<f64>(), 0.25);
    assert_eq!(d2(&Tensor::scalar(1000.0)).item::<f64>(), 0.0);
    let x = 0.7f64;
    let s = 1.0 / (1.0 + (-x).exp());
    // Forward over reverse and forward over forward agree.
    let (_, fr) = jvp(grad(log1pexp), &Tensor::scalar(x), &Tensor::scalar(1.0));
    let (_, ff) = jvp(|x: &Tensor| jvp(log1pexp, x, &Tensor::scalar(1.0)).1, &Tensor::scalar(x), &Tensor::scalar(1.0));
    assert!((fr.item::<f64>() - s * (1.0 - s)).abs() < 1e-15);
    assert!((ff.item::<f64>() - s * (1.0 - s)).abs() < 1e-15);
    // Third derivative s(1-s)(1-2s), through grad of the rule's derivative.
    let d3 = grad(grad(grad(log1pexp)))(&Tensor::scalar(x)).item::<f64>();
    assert!((d3 - s * (1.0 - s) * (1.0 - 2.0 * s)).abs() < 1e-14, "{d3}");
}

#[test]
fn custom_jvp_under_vmap_and_jit() {
    let xs = f64t(&[-1000.0, 0.0, 2.0, 1000.0], &[4]);
    let per = vmap(grad(log1pexp))(&xs).to_vec::<f64>();
    let want: Vec<f64> = [-1000.0f64, 0.0, 2.0, 1000.0].iter().map(|x| 1.0 / (1.0 + (-x).exp())).collect();
    assert_eq!(per, want);
    let g = grad(|x: &Tensor| vmap(log1pexp)(x).sum_all());
    assert_eq!(g(&xs).to_vec::<f64>(), want);
    assert_eq!(jit(grad(|x: &Tensor| log1pexp(x).sum_all()))(&xs).to_vec::<f64>(), want);
}

#[test]
fn custom_jvp_rule_replaces_the_derivative_and_closes_over_constants() {
    // A rule that is deliberately not f's derivative: the transformations must use it.
    let k = Tensor::scalar(10.0);
    let f = custom_jvp(|x: &Tensor| x.sin(), |x: &Tensor, t: &Tensor| (x.sin(), t * &k));
    assert_eq!(grad(|x: &Tensor| f(x))(&Tensor::scalar(0.3)).item::<f64>(), 10.0);
    assert_eq!(jvp(&f, &Tensor::scalar(0.3), &Tensor::scalar(2.0)).1.item::<f64>(), 20.0);
    // Tree arguments and outputs.
    let g = custom_jvp(
        |(a, b): &(Tensor, Tensor)| (a * b, a + b),
        |(a, b): &(Tensor, Tensor), (ta, tb): &(Tensor, Tensor)| ((a * b, a + b), (ta * b + a * tb, ta * 0.0 + tb)),
    );
    let d = grad(|p: &(Tensor, Tensor)| {
        let (m, s) = g(p);
        m + s
    })(&(Tensor::scalar(2.0), Tensor::scalar(3.0)));
    assert_eq!((d.0.item::<f64>(), d.1.item::<f64>()), (3.0, 3.0)); // b, a + 1
}

#[test]
fn custom_jvp_bad_rule_and_closure_errors() {
    let msg = panic_message(|| {
        let f = custom_jvp(|x: &Tensor| x.sin(), |x: &Tensor, t: &Tensor| (x.sin(), t.sum_all()));
        f(&f64t(&[1.0, 2.0], &[2]))
    });
    assert!(msg.contains("custom_jvp (called at tests/custom_rules.rs"), "{msg}");
    assert!(msg.contains("f64[2], f64[2]") && msg.contains("f64[2], f64[]"), "{msg}");
    let msg = panic_message(|| {
        grad(|w: &Tensor| {
            let w = w.clone();
            let f = custom_jvp(move |x: &Tensor| x * &w, |x: &Tensor, t: &Tensor| (x.clone(), t.clone()));
            f(&Tensor::scalar(1.0))
        })(&Tensor::scalar(2.0))
    });
    assert!(msg.contains("closes over") && msg.contains("custom_jvp"), "{msg}");
}

/// The identity with its cotangent clipped to [-1, 1].
fn clip_gradient(x: &Tensor) -> Tensor {
    let f = custom_vjp(|x: &Tensor| x.clone(), |x: &Tensor| (x.clone(), ()), |_: &(), g: &Tensor| g.clamp(-1.0, 1.0));
    f(x)
}

#[test]
fn custom_vjp_clips_gradients() {
    let c = f64t(&[5.0, 0.5, -3.0], &[3]);
    let loss = |x: &Tensor| (clip_gradient(&x.sin()) * &c).sum_all();
    let x = f64t(&[0.0, 0.0, 1.0], &[3]);
    let want = vec![1.0, 0.5, -(1f64.cos())];
    assert_eq!(grad(loss)(&x).to_vec::<f64>(), want);
    assert_eq!(grad(loss)(&x).to_vec::<f64>(), want); // the compiled plan
    let (y, pb) = vjp(loss, &x);
    assert_eq!(y.item::<f64>(), (x.sin() * &c).sum_all().item::<f64>());
    assert_eq!(pb.call(&Tensor::scalar(1.0)).to_vec::<f64>(), want);
    // vmap of grad: per-example clipping; grad of vmap: the batched rule.
    let xs = f64t(&[0.0, 0.0, 1.0, 0.0, 0.0, 0.0], &[2, 3]);
    let per = vmap(grad(loss))(&xs).to_vec::<f64>();
    assert_eq!(per, vec![1.0, 0.5, -(1f64.cos()), 1.0, 0.5, -1.0]);
    let g = grad(|x: &Tensor| vmap(loss)(x).sum_all())(&xs).to_vec::<f64>();
    assert_eq!(g, per);
}

#[test]
fn custom_vjp_residuals_nondiff_arguments_and_second_order() {
    // f(x) = x³ with residual x² and bwd 3·x²·g: the second derivative differentiates bwd.
    let cube =
        custom_vjp(|x: &Tensor| x * x * x, |x: &Tensor| (x * x * x, x * x), |r: &Tensor, g: &Tensor| r * g * 3.0);
    assert_eq!(grad(|x: &Tensor| cube(x))(&Tensor::scalar(2.0)).item::<f64>(), 12.0);
    assert_eq!(grad(grad(|x: &Tensor| cube(x)))(&Tensor::scalar(2.0)).item::<f64>(), 12.0); // 6x
                                                                                            // An integer index as a non-differentiable argument.
    let pick = custom_vjp_nondiff(
        |x: &Tensor, i: &Tensor| x.take(i, 0),
        |x: &Tensor, i: &Tensor| (x.take(i, 0), x.zeros_like()),
        |i: &Tensor, z: &Tensor, g: &Tensor| z.scatter_add(i, &(g * 2.0), 0),
    );
    let i = Tensor::from_vec(vec![2i64, 0, 2], &[3]);
    let x = f64t(&[1.0, 2.0, 3.0], &[3]);
    assert_eq!(pick(&x, &i).to_vec::<f64>(), vec![3.0, 1.0, 3.0]);
    let g = grad(|x: &Tensor| pick(x, &i).sum_all())(&x);
    assert_eq!(g.to_vec::<f64>(), vec![2.0, 0.0, 4.0]);
    let gv = vmap(grad(|x: &Tensor| pick(x, &i).sum_all()))(&stack(&[x.clone(), x.clone()], 0));
    assert_eq!(gv.to_vec::<f64>(), vec![2.0, 0.0, 4.0, 2.0, 0.0, 4.0]);
    // A batched non-differentiable argument: each example picks its own rows.
    let is = Tensor::from_vec(vec![2i64, 0, 2, 1, 1, 0], &[2, 3]);
    let per = vmap(|(x, i): &(Tensor, Tensor)| grad(|x: &Tensor| pick(x, i).sum_all())(x));
    let gv = per(&(stack(&[x.clone(), x.clone()], 0), is));
    assert_eq!(gv.to_vec::<f64>(), vec![2.0, 0.0, 4.0, 2.0, 4.0, 0.0]);
}

#[test]
fn custom_vjp_under_forward_mode_is_a_clear_error() {
    let msg = panic_message(|| jvp(clip_gradient, &Tensor::scalar(1.0), &Tensor::scalar(1.0)));
    assert!(msg.contains("custom_vjp functions support reverse mode only (use custom_jvp for forward mode)"), "{msg}");
    let msg = panic_message(|| jacfwd(|x: &Tensor| clip_gradient(x))(&f64t(&[1.0, 2.0], &[2])));
    assert!(msg.contains("reverse mode only"), "{msg}");
    // Under jit the tangent node is recorded and refuses when the plan runs it.
    let msg = panic_message(|| {
        jit(|x: &Tensor| jvp(clip_gradient, x, &x.ones_like()).1)(&Tensor::scalar(1.0));
    });
    assert!(msg.contains("reverse mode only"), "{msg}");
    // Calling a linearization is forward mode; transposing it is not.
    let (_, lin) = linearize(clip_gradient, &Tensor::scalar(1.0));
    assert!(panic_message(|| lin.call(&Tensor::scalar(1.0))).contains("reverse mode only"));
    assert_eq!(lin.transpose(&Tensor::scalar(5.0)).item::<f64>(), 1.0);
    // jacrev is reverse mode: the clipped identity's Jacobian.
    assert_eq!(
        jacrev(|x: &Tensor| clip_gradient(x) * 3.0)(&f64t(&[1.0, 2.0], &[2])).to_vec::<f64>(),
        vec![1.0, 0.0, 0.0, 1.0]
    );
}

#[test]
fn custom_vjp_bwd_of_the_wrong_structure_names_the_function_and_both_types() {
    // Rust's types fix the tree's type; its length and the leaves' types are checked here.
    #[allow(clippy::ptr_arg)] // the tree type custom_vjp differentiates
    fn my_layer(p: &Vec<Tensor>) -> Tensor {
        &p[0] * &p[1]
    }
    let f = custom_vjp(my_layer, |p: &Vec<Tensor>| (my_layer(p), ()), |_: &(), g: &Tensor| vec![g.clone()]);
    let p = vec![f64t(&[1.0, 2.0], &[2]), Tensor::scalar(3.0)];
    let msg = panic_message(|| f(&p));
    assert!(msg.contains("custom_vjp (called at tests/custom_rules.rs"), "{msg}");
    assert!(msg.contains("my_layer"), "{msg}");
    assert!(msg.contains("(0: f64[2], 1: f64[])") && msg.contains("but it returned (0: f64[2])"), "{msg}");
    let f = custom_vjp(
        my_layer,
        |p: &Vec<Tensor>| (my_layer(p), ()),
        |_: &(), g: &Tensor| vec![g.clone(), g.cast(DType::F32)],
    );
    let msg = panic_message(|| f(&p));
    assert!(msg.contains("but it returned (0: f64[2], 1: f32[2])"), "{msg}");
    // An integer leaf among the differentiable arguments.
    let g = custom_vjp(|x: &Tensor| x.clone(), |x: &Tensor| (x.clone(), ()), |_: &(), g: &Tensor| g.clone());
    let msg = panic_message(|| g(&Tensor::scalar(3i64)));
    assert!(msg.contains("custom_vjp_nondiff"), "{msg}");
}
