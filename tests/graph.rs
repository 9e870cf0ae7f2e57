//! Tracing: the graph dump of small functions, validation, and exact (bitwise)
//! agreement between eager execution and the interpreted graph.

mod common;
use common::*;
use cotangent::ir::{Graph, Var};
use cotangent::ops::Prim;
use cotangent::{concatenate, eval_graph, stack, trace_graph, where_, DType, Tensor, TensorType};

fn ty(dtype: DType, shape: &[usize]) -> TensorType {
    TensorType::new(dtype, shape.to_vec())
}

#[test]
fn dump_of_a_small_function() {
    let g = trace_graph(&[ty(DType::F32, &[2, 3]), ty(DType::F32, &[3])], |xs| {
        let z = (&xs[0] * &xs[1] + 1.0).exp();
        vec![z.sum(&[-1], false), z.argmax(0, false)]
    });
    assert_eq!(
        g.dump(),
        "\
graph(%0: f32[2,3], %1: f32[3]) {
  %2: f32[2,3] = broadcast_in_dim[shape=[2, 3], dims=[1]] %1
  %3: f32[2,3] = mul %0 %2
  %4: f32[] = constant[value=1.0]
  %5: f32[2,3] = broadcast_in_dim[shape=[2, 3], dims=[]] %4
  %6: f32[2,3] = add %3 %5
  %7: f32[2,3] = exp %6
  %8: f32[2] = reduce_sum[axes=[1]] %7
  %9: i64[3] = argmax[axis=0] %7
  return %8, %9
}
"
    );
    assert_eq!(g.to_string(), g.dump());
    assert_eq!(g.num_ops(), 7);
    assert_eq!(g.input_types(), vec![ty(DType::F32, &[2, 3]), ty(DType::F32, &[3])]);
    assert_eq!(g.output_types(), vec![ty(DType::F32, &[2]), ty(DType::I64, &[3])]);
    g.validate().unwrap();
}

#[test]
fn dump_shows_every_kind_of_parameter() {
    let g = trace_graph(&[ty(DType::F64, &[4]), ty(DType::Bool, &[4])], |xs| {
        let x = &xs[0];
        let a = x.slice(&[1], &[4], &[2]).pad(&[-1], &[2], &[1], 0.0);
        let b = x.cumsum(0).flip(&[0]).cast(DType::I32);
        let c = where_(&xs[1], x, &x.reshape(&[2, 2]).t().flatten());
        // iota has no operands, so it runs at once and becomes a constant.
        vec![a, b, c, Tensor::iota(&[2, 2], 1, DType::I64)]
    });
    assert_eq!(
        g.dump(),
        "\
graph(%0: f64[4], %1: bool[4]) {
  %2: f64[2] = slice[start=[1], stop=[4], stride=[2]] %0
  %3: f64[] = constant[value=0.0]
  %4: f64[4] = pad[low=[-1], high=[2], interior=[1]] %2 %3
  %5: f64[4] = cumsum[axis=0] %0
  %6: f64[4] = rev[axes=[0]] %5
  %7: i32[4] = convert_element_type[dtype=i32] %6
  %8: f64[2,2] = reshape[shape=[2, 2]] %0
  %9: f64[2,2] = transpose[perm=[1, 0]] %8
  %10: f64[4] = reshape[shape=[4]] %9
  %11: f64[4] = select %1 %0 %10
  %12: i64[2,2] = constant[value=[[0 1] [0 1]]]
  return %4, %7, %11, %12
}
"
    );
    g.validate().unwrap();
}

#[test]
fn constants_are_shared_and_summarised() {
    let big = Tensor::from_vec((0..10).map(|i| i as f64).collect::<Vec<_>>(), &[10]);
    let small = Tensor::from_vec(vec![1i32, 2, 3], &[3]);
    let g = trace_graph(&[ty(DType::F64, &[10])], |xs| vec![&xs[0] * &big + &big, small.cast(DType::F64).sum_all()]);
    // The same concrete tensor becomes one constant node; big ones show only their type.
    assert_eq!(
        g.dump(),
        "\
graph(%0: f64[10]) {
  %1: f64[10] = constant[value=f64[10]]
  %2: f64[10] = mul %0 %1
  %3: f64[10] = add %2 %1
  %4: f64[] = constant[value=6.0]
  return %3, %4
}
"
    );
    g.validate().unwrap();
}

#[test]
fn validate_rejects_broken_graphs() {
    let g = trace_graph(&[ty(DType::F32, &[3])], |xs| vec![xs[0].exp().sum_all()]);
    g.validate().unwrap();
    // A node whose recorded type disagrees with its rule.
    let mut bad = g.clone();
    bad.nodes[1].ty = ty(DType::F64, &[3]);
    let e = bad.validate().unwrap_err();
    assert!(e.contains("%1") && e.contains("exp") && e.contains("f64[3]"), "{e}");
    // A use before definition.
    let mut bad = g.clone();
    bad.nodes[1].inputs = vec![Var(2)];
    let e = bad.validate().unwrap_err();
    assert!(e.contains("not defined before"), "{e}");
    // An input node that is not listed as an input.
    let mut bad = g.clone();
    bad.inputs.clear();
    assert!(bad.validate().is_err());
    // An output that does not exist.
    let mut bad = g.clone();
    bad.outputs = vec![Var(99)];
    assert!(bad.validate().unwrap_err().contains("%99"));
    // A node whose operands break its rule.
    let mut bad = Graph::default();
    let a = bad.add_input(ty(DType::F32, &[3]));
    let b = bad.add_input(ty(DType::F64, &[3]));
    assert!(bad.push(Prim::Binary(cotangent::ops::BinaryOp::Add), vec![a, b]).is_err());
    let v = bad.push_typed(Prim::Binary(cotangent::ops::BinaryOp::Add), vec![a, b], ty(DType::F32, &[3]));
    bad.outputs = vec![v];
    let e = bad.validate().unwrap_err();
    assert!(e.contains("add") && e.contains("dtypes differ"), "{e}");
}

/// A function that uses most primitives; every output depends on the inputs.
fn many(xs: &[Tensor]) -> Vec<Tensor> {
    let (x, y, i, b) = (&xs[0], &xs[1], &xs[2], &xs[3]); // f64[3,4], f32[4], i32[3,4], bool[3,4]
    let u = x.tanh();
    let unary = [
        -x,
        x.exp(),
        x.abs().log(),
        x.abs().log1p(),
        u.expm1(),
        x.sin(),
        x.cos(),
        u.tan(),
        u.asin(),
        u.acos(),
        x.atan(),
        x.sinh(),
        x.cosh(),
        x.asinh(),
        u.mul(0.5).atanh(),
        x.abs().sqrt(),
        x.abs().add(1.0).rsqrt(),
        x.cbrt(),
        x.sign(),
        x.floor(),
        x.ceil(),
        x.mul(3.0).round(),
        x.sigmoid(),
        x.erf(),
        x.erfc(),
        u.mul(0.9).erfinv(),
        x.recip(),
    ];
    let s = stack(&unary, 0); // f64[27,3,4]
    let x32 = x.cast(DType::F32);
    let bin = [
        &x32 + y,
        &x32 - y,
        &x32 * y,
        &x32 / y,
        &x32 % y,
        x32.abs().pow(y),
        x32.maximum(y),
        x32.minimum(y),
        x32.atan2(y),
    ];
    let c = concatenate(&bin, -1); // f32[3,36]
    let cmp = x32.lt(y).logical_and(&x32.ge(0.0)).logical_or(&x32.eq(y)).logical_xor(&x32.ne(1.0));
    let cmp = cmp.logical_or(&x32.le(y).logical_and(&x32.gt(-1.0)));
    let sel = where_(&cmp.logical_and(&b.logical_not()), &x32, &y.softplus());
    let ints = (i * 3.0 + 1.0) / 2.0 % 5.0;
    let ints = ints.maximum(i).minimum(i.pow(2i32)).logical_xor(i).abs().sign() + i.logical_not();
    let red = vec![
        s.sum(&[0, 2], false),
        s.max(&[-1], true),
        s.min(&[0], false),
        s.prod(&[1], false).cast(DType::F32),
        s.argmax(0, false).cast(DType::F64),
        s.argmin(-1, true).cast(DType::F64),
        s.mean(&[0, 1], false),
        s.var(&[2], 1, false),
        s.logsumexp(&[0], true),
        s.norm(&[1, 2], false),
        s.cumsum(0),
        s.cumprod(1),
        s.cummax(-1),
        s.cummin(0),
    ];
    let st = s
        .reshape(&[27, 2, -1])
        .permute(&[2, 0, 1])
        .slice(&[0, 1, 0], &[6, 27, 2], &[2, 3, 1])
        .pad(&[1, -1, 0], &[0, 2, 1], &[1, 0, 2], -7.5)
        .flip(&[0, 2])
        .moveaxis(0, -1)
        .expand_dims(1)
        .broadcast_to(&[2, 10, 3, 5, 6])
        .squeeze(&[])
        .swap_axes(0, 1)
        .t();
    let parts = st.split(&[1, 1], -2);
    let tail = concatenate(&[parts[1].clone(), parts[0].clone()], -2).slice_axis(0, -3, 100, 2);
    let io = Tensor::iota(&[3, 4], 1, DType::I64).cast(DType::F64) + x;
    let acts = [
        x.relu(),
        x.leaky_relu(0.1),
        x.gelu(false),
        x.gelu(true),
        x.silu(),
        x.mish(),
        x.softmax(-1),
        x.log_softmax(0),
        x.clamp(-0.5, 0.5),
    ];
    let mut out = vec![s, c, cmp, sel, ints, tail, io, stack(&acts, 0), x.is_finite(), b.cast(DType::I64)];
    out.extend(red);
    out
}

fn inputs() -> Vec<Tensor> {
    let x: Vec<f64> = (0..12).map(|k| (k as f64 * 0.9 - 4.0) * 0.7).collect();
    vec![
        Tensor::from_vec(x, &[3, 4]),
        Tensor::from_vec(vec![0.5f32, -1.25, 2.0, 3.5], &[4]),
        Tensor::from_vec((0..12).map(|k| k - 5).collect::<Vec<i32>>(), &[3, 4]),
        Tensor::from_vec((0..12).map(|k| k % 3 == 0).collect::<Vec<bool>>(), &[3, 4]),
    ]
}

#[test]
fn eager_and_interpreted_graph_agree_bitwise() {
    let args = inputs();
    let types: Vec<TensorType> = args.iter().map(|t| t.ty()).collect();
    let eager = many(&args);
    let g = trace_graph(&types, many);
    g.validate().unwrap();
    assert!(g.num_ops() > 150, "only {} ops", g.num_ops());
    assert_eq!(g.output_types(), eager.iter().map(|t| t.ty()).collect::<Vec<_>>());
    let interpreted = eval_graph(&g, &args);
    assert_eq!(interpreted.len(), eager.len());
    for (k, (a, b)) in eager.iter().zip(&interpreted).enumerate() {
        assert_bitwise_eq(&format!("output {k}"), a, b);
    }
    // Re-tracing the interpreter gives the same graph, and the same values again.
    let g2 = trace_graph(&types, |xs| eval_graph(&g, xs));
    g2.validate().unwrap();
    assert_eq!(g2.dump(), g.dump());
    for (k, (a, b)) in eager.iter().zip(&eval_graph(&g2, &args)).enumerate() {
        assert_bitwise_eq(&format!("re-traced output {k}"), a, b);
    }
    // The outputs are not trivially NaN.
    assert!(eager[0].to_vec::<f64>().iter().filter(|v| v.is_finite()).count() > 300);
}

#[test]
fn traced_tensors_know_their_type() {
    let g = trace_graph(&[ty(DType::I32, &[2, 0])], |xs| {
        let x = &xs[0];
        assert!(x.is_traced());
        assert_eq!(x.dtype(), DType::I32);
        assert_eq!(x.shape(), vec![2, 0]);
        assert_eq!(x.rank(), 2);
        assert_eq!(x.numel(), 0);
        assert_eq!(x.to_string(), "Traced<i32[2,0]>");
        // zeros_like is concrete even for a traced tensor.
        assert!(!x.zeros_like().is_traced());
        vec![x.sum(&[1], false)]
    });
    let out = eval_graph(&g, &[Tensor::from_vec(Vec::<i32>::new(), &[2, 0])]);
    assert_eq!(out[0].to_vec::<i32>(), vec![0, 0]);
    // A function of no inputs: constants only.
    let g = trace_graph(&[], |_| vec![Tensor::iota(&[3], 0, DType::F32).exp()]);
    let out = eval_graph(&g, &[]);
    assert_exact("iota.exp", &out[0], DType::F32, &[3], &[1.0, 1f32.exp() as f64, 2f32.exp() as f64]);
    // Returning an input unchanged, and a concrete tensor.
    let g = trace_graph(&[ty(DType::F64, &[1])], |xs| vec![xs[0].clone(), Tensor::scalar(2.0)]);
    assert_eq!(g.dump(), "graph(%0: f64[1]) {\n  %1: f64[] = constant[value=2.0]\n  return %0, %1\n}\n");
    let out = eval_graph(&g, &[f64t(&[5.0], &[1])]);
    assert_eq!(out[0].to_vec::<f64>(), vec![5.0]);
    assert_eq!(out[1].item::<f64>(), 2.0);
}

#[test]
#[should_panic(expected = "graph expects 2 arguments, got 1")]
fn eval_graph_checks_the_argument_count() {
    let g = trace_graph(&[ty(DType::F64, &[1]), ty(DType::F64, &[1])], |xs| vec![&xs[0] + &xs[1]]);
    eval_graph(&g, &[f64t(&[1.0], &[1])]);
}
