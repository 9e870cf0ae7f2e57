//! Rematerialisation and selective differentiation: results identical to plain
//! differentiation, and the residual memory of the linearization (the bytes reverse mode
//! keeps from the forward pass) measured.

mod common;

use common::{assert_bitwise_eq, assert_tensors_close};
use cotangent::control::{checkpoint, checkpoint_with, Policy};
use cotangent::nn::{Conv2d, Linear};
use cotangent::ops::Prim;
use cotangent::*;
use std::collections::HashSet;

/// The residuals of a linearization at concrete primals: the constants of its linear graph
/// (values computed by the forward pass and kept for the tangent/backward pass), each
/// counted once. The parameters themselves count too when the linear map reads them.
fn residuals(g: &ir::Graph) -> Vec<(TensorType, Vec<f64>)> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for node in &g.nodes {
        if let Prim::Constant(a) = &node.prim {
            if seen.insert(std::sync::Arc::as_ptr(a) as usize) {
                let t = Tensor::from_array((**a).clone());
                out.push((t.ty(), if t.dtype().is_float() { t.cast(DType::F64).to_vec::<f64>() } else { vec![] }));
            }
        }
    }
    out
}

fn residual_bytes(g: &ir::Graph) -> usize {
    residuals(g).iter().map(|(ty, _)| ty.shape.iter().product::<usize>() * ty.dtype.size_in_bytes()).sum()
}

/// Whether the linearization keeps a copy of `value` (same type, same elements).
fn keeps(g: &ir::Graph, value: &Tensor) -> bool {
    let v = value.cast(DType::F64).to_vec::<f64>();
    residuals(g).iter().any(|(ty, r)| *ty == value.ty() && *r == v)
}

fn mlp(depth: usize, width: usize) -> Vec<Linear> {
    (0..depth).map(|i| Linear::new(&random::key(i as u64), width, width, DType::F64)).collect()
}

fn forward(layers: &[Linear], x: &Tensor) -> Tensor {
    layers.iter().fold(x.clone(), |h, l| l.forward(&h).tanh())
}

#[test]
fn checkpointed_gradients_equal_plain_ones_bitwise() {
    let x = random::normal(&random::key(9), &[8, 16], DType::F64);
    let loss = |p: &Vec<Linear>| forward(p, &x).square().sum_all();
    let params = mlp(4, 16);
    let plain = grad(loss)(&params);
    let pred = Policy::save_if(|p: &Prim| matches!(p, Prim::Unary(_)));
    for policy in [Policy::NothingSaveable, Policy::DotsSaveable, Policy::EverythingSaveable, pred] {
        let ck = checkpoint_with(|p: &Vec<Linear>| forward(p, &x).square().sum_all(), policy.clone());
        let (_, pb) = vjp(&ck, &params);
        let g = pb.call(&Tensor::scalar(1.0));
        for (a, b) in g.leaves().iter().zip(plain.leaves()) {
            assert_bitwise_eq(&format!("{policy}: eager gradient"), a, &b);
        }
        // grad is jitted: its first call runs the traced graph, the second the compiled plan.
        let gj = grad(&ck);
        for call in ["first", "second"] {
            for (a, b) in gj(&params).leaves().iter().zip(plain.leaves()) {
                assert_tensors_close(a, &b, 1e-12, &format!("{policy}: jitted gradient ({call} call)"));
            }
        }
        assert_eq!(ck(&params).item::<f64>(), loss(&params).item::<f64>());
    }
}

#[test]
fn checkpoint_keeps_fewer_residual_bytes() {
    let x = random::normal(&random::key(9), &[32, 64], DType::F64);
    let params = mlp(6, 64);
    let f = |p: &Vec<Linear>| forward(p, &x).sum_all();
    let plain = residual_bytes(linearize(f, &params).1.graph());
    let nothing = residual_bytes(linearize(checkpoint(f), &params).1.graph());
    let dots = residual_bytes(linearize(checkpoint_with(f, Policy::DotsSaveable), &params).1.graph());
    let everything = residual_bytes(linearize(checkpoint_with(f, Policy::EverythingSaveable), &params).1.graph());
    eprintln!("residual bytes: plain {plain}, everything_saveable {everything}, dots_saveable {dots}, nothing_saveable {nothing}");
    eprintln!("ratios to plain: dots {:.3}, nothing {:.3}", dots as f64 / plain as f64, nothing as f64 / plain as f64);
    // nothing_saveable: the operands only (the weights and biases; x is a constant of the body).
    let (weight, bias, activation) = (64 * 64 * 8, 64 * 8, 32 * 64 * 8);
    assert_eq!(nothing, 6 * (weight + bias));
    // dots_saveable: the six products, the biases to recompute the activations from them, and
    // the weights the tangents of the activations flow through (not the first one's: x has no
    // tangent).
    assert_eq!(dots, 6 * activation + 6 * bias + 5 * weight);
    assert!(nothing < dots && dots < plain, "{nothing} < {dots} < {plain}");
    assert!(everything <= plain, "{everything} <= {plain}");
}

#[test]
fn checkpoint_under_jit_keeps_the_recomputation_apart() {
    let w = random::normal(&random::key(1), &[16, 16], DType::F64);
    let f = |x: &Tensor| x.matmul(&w).tanh().matmul(&w).tanh().sum_all();
    let x = random::normal(&random::key(2), &[4, 16], DType::F64);
    let ck = checkpoint(f);
    let info = jit_inspect(grad(&ck), &x);
    // The transposed node with its own body survives optimisation (sub-graphs are not inlined,
    // so common-subexpression elimination cannot merge the recomputed forward pass with the
    // original one).
    assert!(info.optimized.to_string().contains("checkpoint"), "{}", info.optimized);
    let want = grad(f)(&x);
    for _ in 0..3 {
        assert_tensors_close(&jit(grad(&ck))(&x), &want, 1e-12, "jit of grad of checkpoint");
    }
}

#[test]
fn checkpoint_composes_with_vmap_jvp_and_second_order() {
    let w = random::normal(&random::key(1), &[3, 3], DType::F64);
    let f = |x: &Tensor| x.matmul(&w).sin().matmul(&w).exp().sum_all();
    let ck = checkpoint_with(f, Policy::DotsSaveable);
    let x = random::normal(&random::key(3), &[2, 3], DType::F64);
    let xs = random::normal(&random::key(4), &[5, 2, 3], DType::F64);
    assert_tensors_close(&vmap(grad(&ck))(&xs), &vmap(grad(f))(&xs), 1e-12, "vmap of grad");
    assert_tensors_close(
        &grad(|x: &Tensor| vmap(&ck)(x).sum_all())(&xs),
        &grad(|x: &Tensor| vmap(f)(x).sum_all())(&xs),
        1e-12,
        "grad of vmap",
    );
    let u = random::normal(&random::key(5), &[2, 3], DType::F64);
    assert_tensors_close(&jvp(&ck, &x, &u).1, &jvp(f, &x, &u).1, 1e-12, "jvp");
    assert_tensors_close(&hvp(&ck, &x, &u), &hvp(f, &x, &u), 1e-11, "hvp");
    // Captured traced parameters are differentiated through the checkpoint's operands.
    let gw = grad(|w: &Tensor| checkpoint(|x: &Tensor| x.matmul(w).tanh().sum_all())(&x))(&w);
    let gw_plain = grad(|w: &Tensor| x.matmul(w).tanh().sum_all())(&w);
    assert_tensors_close(&gw, &gw_plain, 1e-12, "gradient w.r.t. a closed-over parameter");
}

/// Selective differentiation: with some layers frozen (closed over, not differentiated),
/// the inputs of the layers that are linear in frozen weights are not kept. (PyTorch keeps
/// them: "Lowering PyTorch's memory consumption for selective differentiation".)
#[test]
fn frozen_layers_keep_no_inputs_mlp() {
    let x = random::normal(&random::key(9), &[32, 64], DType::F64);
    let layers = mlp(4, 64);
    let hidden: Vec<Tensor> = (1..=3).map(|k| forward(&layers[..k], &x)).collect();
    let all = linearize(|p: &Vec<Linear>| forward(p, &x).sum_all(), &layers).1;
    // Only the first layer trains; the others are closed over.
    let frozen = &layers[1..];
    let first = linearize(|l: &Linear| forward(frozen, &forward(std::slice::from_ref(l), &x)).sum_all(), &layers[0]).1;
    let (b_all, b_first) = (residual_bytes(all.graph()), residual_bytes(first.graph()));
    eprintln!(
        "MLP residual bytes: all trainable {b_all}, first layer only {b_first} (ratio {:.3})",
        b_first as f64 / b_all as f64
    );
    for (k, h) in hidden.iter().enumerate() {
        assert!(keeps(all.graph(), h), "all trainable: the input of layer {} is kept", k + 1);
        assert!(!keeps(first.graph(), h), "frozen layer {}: its input is not kept", k + 1);
    }
    // The saving is exactly those three inputs.
    assert_eq!(b_all - b_first, 3 * 32 * 64 * 8);
}

#[test]
fn frozen_layers_keep_no_inputs_conv() {
    let x = random::normal(&random::key(9), &[2, 3, 10, 10], DType::F64);
    let c1 = Conv2d::new(&random::key(1), 3, 4, (3, 3), DType::F64);
    let c2 = Conv2d::new(&random::key(2), 4, 4, (3, 3), DType::F64);
    let head = Linear::new(&random::key(3), 4 * 6 * 6, 2, DType::F64);
    let net = |c1: &Conv2d, c2: &Conv2d, head: &Linear| {
        let h = c2.forward(&c1.forward(&x).tanh()).tanh();
        head.forward(&h.reshape(&[2, -1])).square().sum_all()
    };
    let h1 = c1.forward(&x).tanh();
    let all =
        linearize(|p: &(Conv2d, Conv2d, Linear)| net(&p.0, &p.1, &p.2), &(c1.clone(), c2.clone(), head.clone())).1;
    let frozen_c2 = linearize(|p: &(Conv2d, Linear)| net(&p.0, &c2, &p.1), &(c1.clone(), head.clone())).1;
    let (b_all, b_frozen) = (residual_bytes(all.graph()), residual_bytes(frozen_c2.graph()));
    eprintln!(
        "conv net residual bytes: all trainable {b_all}, second conv frozen {b_frozen} (ratio {:.3})",
        b_frozen as f64 / b_all as f64
    );
    assert!(b_frozen < b_all, "{b_frozen} < {b_all}");
    assert!(!keeps(frozen_c2.graph(), &h1), "the frozen convolution's input is not kept");
}
