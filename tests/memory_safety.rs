//! Safe public code must never read or write outside a buffer: every public way to hand
//! kernels a buffer (arrays, plans, graphs, `execute`) checks the buffer against the types
//! the kernels were built for, and refuses with a message instead of faulting.
//! Each test reproduces a defect that once segfaulted or read foreign heap memory.

mod common;
use common::panic_message;
use cotangent::backend::cpu::execute;
use cotangent::compile::{optimize, Plan};
use cotangent::ir::Graph;
use cotangent::ops::{Prim, UnaryOp};
use cotangent::*;

fn f32_ty(shape: &[usize]) -> TensorType {
    TensorType::new(DType::F32, shape.to_vec())
}

#[test]
fn an_array_cannot_claim_more_elements_than_it_holds() {
    let msg = panic_message(|| Array::new(vec![1 << 24], Data::F32(vec![0.0; 16])));
    assert!(msg.contains("Array::new") && msg.contains("16 elements cannot have shape [16777216]"), "{msg}");
    let err = Array::try_new(vec![1 << 24], Data::F32(vec![0.0; 16])).unwrap_err();
    assert_eq!(err, Error::ShapeMismatch { len: 16, shape: vec![1 << 24] });
    // A shape whose size overflows usize is refused too, and its message does not overflow.
    let err = Array::try_new(vec![1 << 40, 1 << 40], Data::F32(vec![])).unwrap_err();
    assert!(err.to_string().contains("more elements than fit in memory"), "{err}");
    let ok = Array::try_new(vec![2, 3], Data::I64(vec![0; 6])).unwrap();
    assert_eq!((ok.shape(), ok.data().len()), (&[2usize, 3][..], 6));
}

#[test]
fn a_plan_refuses_arguments_of_another_shape_dtype_or_count() {
    // Large enough for a native loop (and, with `Always`, compiled whatever the size).
    for mode in [NativeMode::Off, NativeMode::Always] {
        with_native_mode(mode, || {
            let g = trace_graph(&[f32_ty(&[1 << 16])], |x| vec![(&x[0] * 2.0).exp().sum(&[0], false)]);
            let plan = Plan::new(&optimize(&g));
            let small = Tensor::from_vec(vec![1.0f32; 16], &[16]);
            let msg = panic_message(|| plan.run(std::slice::from_ref(&small)));
            assert!(msg.contains("Plan::run") && msg.contains("f32[65536]") && msg.contains("f32[16]"), "{msg}");
            let f64s = Tensor::from_vec(vec![1.0f64; 1 << 16], &[1 << 16]);
            let msg = panic_message(|| plan.run(&[f64s]));
            assert!(msg.contains("f64[65536]"), "{msg}");
            let msg = panic_message(|| plan.run(&[]));
            assert!(msg.contains("got ()"), "{msg}");
            let right = Tensor::from_vec(vec![0.0f32; 1 << 16], &[1 << 16]);
            assert_eq!(plan.run(&[right])[0].to_vec::<f32>(), vec![65536.0]);
        });
    }
}

#[test]
fn graphs_with_lying_node_types_are_refused_before_any_kernel_runs() {
    // A node typed f32[1000000] whose rule gives f32[4]: planned as typed, its kernel would
    // write past the end of the buffer it allocates from the operand.
    let mut g = Graph::default();
    let x = g.add_input(f32_ty(&[4]));
    let y = g.push_typed(Prim::Unary(UnaryOp::Exp), vec![x], f32_ty(&[1_000_000]));
    g.outputs.push(y);
    let msg = panic_message(|| Plan::new(&g));
    assert!(msg.contains("Plan::new: invalid graph") && msg.contains("f32[1000000]"), "{msg}");
    let msg = panic_message(|| optimize(&g));
    assert!(msg.contains("optimize: invalid graph"), "{msg}");
    // The interpreter re-derives every type, so it computes the right answer.
    let out = eval_graph(&g, &[Tensor::from_vec(vec![0.0f32; 4], &[4])]);
    assert_eq!(out[0].shape(), vec![4]);
}

#[test]
fn execute_checks_operands_and_output_type_against_the_rule() {
    let a = Array::from_vec(vec![1.0f32; 4], vec![2, 2]);
    let dot = Prim::DotGeneral { lhs_contract: vec![1], rhs_contract: vec![0], lhs_batch: vec![], rhs_batch: vec![] };
    let msg = panic_message(|| execute(&dot, &[&a, &a], &f32_ty(&[1000, 1000])));
    assert!(msg.contains("execute(dot_general)") && msg.contains("f32[2,2]"), "{msg}");
    let msg = panic_message(|| execute(&dot, &[&a], &f32_ty(&[2, 2])));
    assert!(msg.contains("execute(dot_general)"), "{msg}");
    let y = execute(&dot, &[&a, &a], &f32_ty(&[2, 2]));
    assert_eq!(y.as_slice::<f32>().unwrap(), &[2.0; 4]);
}
