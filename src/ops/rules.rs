//! Dispatch of the derivative and batching rules to the primitive families.
//!
//! - **jvp**: the tangent of a primitive's output given its operands'
//!   tangents (`None` = a symbolic zero, which costs nothing). Written with
//!   [`Tensor`] operations, so rules are themselves differentiable.
//! - **transpose**: for a primitive that is linear in some operands, the
//!   cotangents of those operands given the output's cotangent.
//! - **batch**: the primitive applied to operands carrying an extra leading
//!   batch axis (axis 0) where `batched` says so.

use super::{
    collective, control, custom, dot, elementwise, index, linalg, loops, random, reduce, remat, sort, structure, Prim,
};
use crate::{Tensor, TensorType};

/// An operand as the transpose rule sees it: linear (its cotangent is wanted) or a known value.
pub(crate) enum LinArg<'a> {
    /// A linear operand of this type.
    Linear(TensorType),
    /// A constant operand (a residual of the forward pass, an index, a predicate).
    Value(&'a Tensor),
}

impl LinArg<'_> {
    pub fn is_linear(&self) -> bool {
        matches!(self, LinArg::Linear(_))
    }

    /// The value of a non-linear operand; `what` names it in the panic if it is linear.
    #[track_caller]
    pub fn value(&self, what: &str) -> &Tensor {
        match self {
            LinArg::Value(v) => v,
            LinArg::Linear(_) => panic!("transpose: {what} must not depend on the linear input"),
        }
    }

    /// The operand's type.
    pub fn ty(&self) -> TensorType {
        match self {
            LinArg::Linear(t) => t.clone(),
            LinArg::Value(v) => v.ty(),
        }
    }
}

/// `a + b` where either may be a symbolic zero.
pub(crate) fn add_tangents(a: Option<Tensor>, b: Option<Tensor>) -> Option<Tensor> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, None) => a,
        (None, b) => b,
    }
}

/// A tangent, or zeros shaped like `like` for a symbolic zero.
pub(crate) fn materialize(t: Option<&Tensor>, like: &Tensor) -> Tensor {
    t.cloned().unwrap_or_else(|| like.zeros_like())
}

/// Tangent of `y = prim(x)` given the operands' tangents.
pub(crate) fn jvp(prim: &Prim, x: &[&Tensor], t: &[Option<&Tensor>], y: &Tensor) -> Option<Tensor> {
    if t.iter().all(|t| t.is_none()) {
        return None;
    }
    match prim {
        Prim::Input(_) | Prim::Constant(_) | Prim::Iota { .. } | Prim::StopGradient => None,
        Prim::Unary(op) => op.jvp(x[0], t[0]?, y),
        Prim::Binary(op) => op.jvp(x[0], x[1], t[0], t[1], y),
        Prim::Select => elementwise::select_jvp(x[0], t, x[1]),
        Prim::Reduce { op, axes } => reduce::reduce_jvp(*op, axes, x[0], t[0]?, y),
        Prim::Arg { .. } => None,
        // Integer outputs: no derivative.
        Prim::RandomBits { .. } | Prim::Argsort { .. } => None,
        Prim::Cumulative { op, axis, reverse } => reduce::cumulative_jvp(*op, *axis, *reverse, x[0], t[0]?),
        Prim::Reshape { .. }
        | Prim::BroadcastInDim { .. }
        | Prim::Transpose { .. }
        | Prim::Slice { .. }
        | Prim::Rev { .. }
        | Prim::Convert { .. }
        | Prim::Pad { .. }
        | Prim::Concatenate { .. } => structure::jvp(prim, x, t),
        Prim::Gather { .. } | Prim::ScatterAdd { .. } | Prim::DynamicSlice { .. } | Prim::DynamicUpdateSlice => {
            index::jvp(prim, x, t)
        }
        Prim::Proj(_)
        | Prim::Cond { .. }
        | Prim::While { .. }
        | Prim::Scan { .. }
        | Prim::CustomJvp { .. }
        | Prim::CustomVjp { .. }
        | Prim::CustomVjpCall { .. }
        | Prim::Checkpoint { .. } => unreachable!("tuple nodes go through jvp_multi"),
        Prim::Linalg(op) => linalg::jvp(op, x, t, y),
        Prim::DotGeneral { .. } => add_tangents(
            t[0].map(|ta| crate::trace::bind(prim.clone(), &[ta, x[1]])),
            t[1].map(|tb| crate::trace::bind(prim.clone(), &[x[0], tb])),
        ),
        Prim::AllReduce { .. } | Prim::Broadcast { .. } | Prim::ReduceTo { .. } => Some(collective::jvp(prim, t[0]?)),
    }
}

/// Results and their tangents for a primitive with several results (a tuple node).
pub(crate) fn jvp_multi(prim: &Prim, x: &[&Tensor], t: &[Option<&Tensor>]) -> (Vec<Tensor>, Vec<Option<Tensor>>) {
    if t.iter().all(|t| t.is_none()) {
        let outs = crate::trace::bind_multi(prim.clone(), x);
        let n = outs.len();
        return (outs, vec![None; n]);
    }
    match prim {
        Prim::Cond { branches } => control::cond_jvp(branches, x, t),
        Prim::CustomJvp { .. } => custom::custom_jvp_jvp(prim, x, t),
        Prim::CustomVjp { .. } => custom::custom_vjp_jvp(prim, x, t),
        Prim::CustomVjpCall { name, .. } => custom::forward_mode_error(name),
        Prim::Checkpoint { body, policy } => remat::checkpoint_jvp(body, policy, x, t),
        Prim::Linalg(op) => linalg::jvp_multi(op, x, t),
        Prim::While { cond, body, consts } => loops::while_jvp(cond, body, *consts, x, t),
        Prim::Scan { body, consts, carries, length, reverse } => {
            loops::scan_jvp(body, (*consts, *carries, *length, *reverse), x, t)
        }
        _ => unreachable!("{} is not a structured primitive", prim.name()),
    }
}

/// Cotangents of the linear operands of a primitive with several results, given each
/// result's cotangent (`None` = zero).
pub(crate) fn transpose_multi(prim: &Prim, cts: &[Option<Tensor>], args: &[LinArg]) -> Vec<Option<Tensor>> {
    match prim {
        Prim::Cond { branches } => control::cond_transpose(branches, cts, args),
        Prim::CustomVjpCall { bwd, num_nondiff, num_res, num_out, .. } => {
            custom::custom_vjp_call_transpose(bwd, (*num_nondiff, *num_res, *num_out), cts, args)
        }
        Prim::Checkpoint { body, policy } => remat::checkpoint_transpose(body, policy, cts, args),
        // A custom_vjp function applied to linear values (implicit differentiation's solves).
        Prim::CustomVjp { .. } => custom::custom_vjp_transpose(prim, cts, args),
        Prim::While { .. } => loops::while_transpose(),
        Prim::Scan { body, consts, carries, length, reverse } => {
            loops::scan_transpose(body, (*consts, *carries, *length, *reverse), cts, args)
        }
        _ => panic!("transpose: {} is not a linear primitive", prim.name()),
    }
}

/// A primitive with several results applied to operands of which those marked `batched`
/// carry a leading batch axis of extent `size`; every result does.
pub(crate) fn batch_multi(prim: &Prim, args: &[Tensor], batched: &[bool], size: usize) -> Vec<Tensor> {
    match prim {
        Prim::Cond { branches } => control::cond_batch(branches, args, batched, size),
        Prim::CustomJvp { f, jvp, num_args, name } => {
            custom::custom_jvp_batch((f, jvp), *num_args, name, args, batched, size)
        }
        Prim::CustomVjp { .. } => custom::custom_vjp_batch(prim, args, batched, size),
        Prim::CustomVjpCall { name, .. } => custom::forward_mode_error(name),
        Prim::Checkpoint { body, policy } => remat::checkpoint_batch(body, policy, args, batched, size),
        Prim::Linalg(op) => linalg::batch_multi(op, args),
        Prim::While { cond, body, consts } => loops::while_batch(cond, body, *consts, args, batched, size),
        Prim::Scan { body, consts, carries, length, reverse } => {
            loops::scan_batch(body, (*consts, *carries, *length, *reverse), args, batched, size)
        }
        _ => unreachable!("{} is not a structured primitive", prim.name()),
    }
}

/// Cotangents of the linear operands of `prim` given the output cotangent `ct`.
/// Entries for non-linear operands are `None`.
pub(crate) fn transpose(prim: &Prim, ct: &Tensor, args: &[LinArg]) -> Vec<Option<Tensor>> {
    match prim {
        Prim::Unary(super::UnaryOp::Neg) => vec![Some(-ct)],
        Prim::Binary(op) => op.transpose(ct, &args[0], &args[1]),
        Prim::Select => elementwise::select_transpose(ct, args),
        Prim::Reduce { op: super::ReduceOp::Sum, axes } => vec![Some(reduce::sum_transpose(ct, axes, &args[0].ty()))],
        Prim::Cumulative { op: super::CumOp::Sum, axis, reverse } => {
            vec![Some(crate::trace::bind(
                Prim::Cumulative { op: super::CumOp::Sum, axis: *axis, reverse: !reverse },
                &[ct],
            ))]
        }
        Prim::Reshape { .. }
        | Prim::BroadcastInDim { .. }
        | Prim::Transpose { .. }
        | Prim::Slice { .. }
        | Prim::Rev { .. }
        | Prim::Convert { .. }
        | Prim::Pad { .. }
        | Prim::Concatenate { .. } => structure::transpose(prim, ct, args),
        Prim::Gather { .. } | Prim::ScatterAdd { .. } | Prim::DynamicSlice { .. } | Prim::DynamicUpdateSlice => {
            index::transpose(prim, ct, args)
        }
        Prim::DotGeneral { lhs_contract, rhs_contract, lhs_batch, rhs_batch } => {
            dot::transpose(ct, args, (lhs_contract, rhs_contract), (lhs_batch, rhs_batch))
        }
        Prim::AllReduce { .. } | Prim::Broadcast { .. } | Prim::ReduceTo { .. } => {
            vec![Some(collective::transpose(prim, ct))]
        }
        Prim::Linalg(op) => linalg::transpose(op, ct, args),
        _ => panic!("transpose: {} is not a linear primitive", prim.name()),
    }
}

/// `prim` applied to operands where `batched[i]` means operand `i` has an extra leading axis
/// of extent `size`. Returns the result and whether it is batched (always, here).
pub(crate) fn batch(prim: &Prim, args: &[Tensor], batched: &[bool], size: usize) -> Tensor {
    match prim {
        Prim::Unary(_) | Prim::StopGradient | Prim::Convert { .. } => crate::trace::bind(prim.clone(), &[&args[0]]),
        Prim::Binary(_) | Prim::Select => {
            let full = broadcast_all(args, batched, size);
            let refs: Vec<&Tensor> = full.iter().collect();
            crate::trace::bind(prim.clone(), &refs)
        }
        Prim::Reduce { .. } | Prim::Arg { .. } | Prim::Cumulative { .. } => reduce::batch(prim, &args[0]),
        Prim::Reshape { .. }
        | Prim::BroadcastInDim { .. }
        | Prim::Transpose { .. }
        | Prim::Slice { .. }
        | Prim::Rev { .. }
        | Prim::Pad { .. }
        | Prim::Concatenate { .. } => structure::batch(prim, args, batched, size),
        Prim::Gather { .. } | Prim::ScatterAdd { .. } | Prim::DynamicSlice { .. } | Prim::DynamicUpdateSlice => {
            index::batch(prim, args, batched, size)
        }
        Prim::DotGeneral { lhs_contract, rhs_contract, lhs_batch, rhs_batch } => {
            dot::batch(&args[0], &args[1], batched, (lhs_contract, rhs_contract), (lhs_batch, rhs_batch))
        }
        Prim::RandomBits { .. } => random::batch(prim, &args[0]),
        Prim::Argsort { .. } => sort::batch(prim, &args[0]),
        Prim::Input(_) | Prim::Constant(_) | Prim::Iota { .. } => {
            unreachable!("{} has no operands to batch", prim.name())
        }
        Prim::Proj(_)
        | Prim::Cond { .. }
        | Prim::While { .. }
        | Prim::Scan { .. }
        | Prim::CustomJvp { .. }
        | Prim::CustomVjp { .. }
        | Prim::CustomVjpCall { .. }
        | Prim::Checkpoint { .. } => unreachable!("tuple nodes go through batch_multi"),
        Prim::AllReduce { .. } | Prim::Broadcast { .. } | Prim::ReduceTo { .. } => collective::batch(prim, &args[0]),
        Prim::Linalg(op) => linalg::batch(op, args, batched, size),
    }
}

/// Gives an unbatched operand the leading batch axis by broadcasting.
pub(crate) fn with_batch_axis(x: &Tensor, size: usize) -> Tensor {
    let shape = x.shape();
    let mut out = vec![size];
    out.extend_from_slice(&shape);
    x.broadcast_in_dim(&out, &(1..=shape.len()).collect::<Vec<_>>())
}

/// Every operand with the batch axis, broadcasting the unbatched ones.
///
/// A concrete unbatched operand beside symbolic ones (a constant of the graph being batched
/// inside `jit`, e.g. `jacfwd`'s basis under an outer `vmap`) is first made a constant of
/// their trace, so the broadcast is recorded on the small value (and fused later) instead of
/// running eagerly into a `[size, ..]` array baked into the graph.
pub(crate) fn broadcast_all(args: &[Tensor], batched: &[bool], size: usize) -> Vec<Tensor> {
    let lift = size > 1 && args.iter().zip(batched).any(|(a, &b)| !b && !a.is_traced());
    let lifted;
    let args = if lift {
        lifted = crate::trace::lift_operands(&args.iter().collect::<Vec<_>>());
        &lifted[..]
    } else {
        args
    };
    args.iter().zip(batched).map(|(a, &b)| if b { a.clone() } else { with_batch_axis(a, size) }).collect()
}

/// Shifts axis numbers past the new leading batch axis.
pub(crate) fn shift(axes: &[usize]) -> Vec<usize> {
    axes.iter().map(|a| a + 1).collect()
}

/// Jet (Taylor mode): the normalised series of `y = prim(x)` (`[y, y1, ..., yK]`, see
/// [`series`](super::series)) given the operands' series (each `[x0, x1, ..., xK]`, `None` a
/// symbolic zero) and the primal output `y`. A primitive without a jet rule panics naming it.
#[allow(unreachable_patterns)]
/// The series of each result of a primitive with several results (a tuple node), given its
/// operands' series (normalised coefficients, `order` of them after the primal).
pub(crate) fn jet_multi(prim: &Prim, xs: &[&[Option<Tensor>]], order: usize) -> Vec<super::series::Series> {
    match prim {
        Prim::Cond { branches } => control::cond_jet(branches, xs, order),
        // Taylor mode goes through the function itself (as JAX's jet does): a custom rule
        // defines first derivatives only, and a checkpoint changes no value.
        Prim::CustomJvp { f: body, .. } | Prim::CustomVjp { f: body, .. } | Prim::Checkpoint { body, .. } => {
            let inputs: Vec<super::series::Series> = xs.iter().map(|s| s.to_vec()).collect();
            crate::transform::jet_graph(body, &inputs, order)
        }
        // Linear algebra decompositions, loops: nested forward mode in the series variable.
        _ => crate::transform::nested_jet(
            &|a| crate::trace::bind_multi(prim.clone(), &a.iter().collect::<Vec<_>>()),
            xs,
            order,
        ),
    }
}

pub(crate) fn jet(prim: &Prim, xs: &[&[Option<Tensor>]], y: &Tensor) -> super::series::Series {
    use super::series::primal;
    let p: Vec<&Tensor> = xs.iter().map(|s| primal(s)).collect();
    // Rules that are linear in the coefficients for fixed primals: the jvp rule, per order.
    let linear = |xs: &[&[Option<Tensor>]]| elementwise::linear_jet(&|t| jvp(prim, &p, t, y), xs, y);
    match prim {
        Prim::Unary(op) => op.jet(xs[0], y),
        Prim::Binary(op) => op.jet(xs[0], xs[1], y),
        Prim::Select => elementwise::select_jet(xs, y),
        Prim::Reduce { op, axes } => reduce::reduce_jet(*op, axes, xs[0], y),
        Prim::Cumulative { op, axis, reverse } => reduce::cumulative_jet(*op, *axis, *reverse, xs[0], y),
        Prim::DotGeneral { .. } => {
            super::series::product(xs[0], xs[1], y, &|a, b| crate::trace::bind(prim.clone(), &[a, b]))
        }
        // No derivative (integer outputs, stop_gradient) or linear in the float operands.
        Prim::Input(_)
        | Prim::Constant(_)
        | Prim::Iota { .. }
        | Prim::StopGradient
        | Prim::Arg { .. }
        | Prim::RandomBits { .. }
        | Prim::Argsort { .. }
        | Prim::Reshape { .. }
        | Prim::BroadcastInDim { .. }
        | Prim::Transpose { .. }
        | Prim::Slice { .. }
        | Prim::Rev { .. }
        | Prim::Convert { .. }
        | Prim::Pad { .. }
        | Prim::Concatenate { .. }
        | Prim::Gather { .. }
        | Prim::ScatterAdd { .. }
        | Prim::DynamicSlice { .. }
        | Prim::DynamicUpdateSlice
        | Prim::AllReduce { .. }
        | Prim::Broadcast { .. }
        | Prim::ReduceTo { .. } => linear(xs),
        // Linear algebra: nested forward mode in the series variable (exact, O(2^K)).
        Prim::Linalg(_) => {
            let order = xs[0].len() - 1;
            let eval = |a: &[Tensor]| vec![crate::trace::bind(prim.clone(), &a.iter().collect::<Vec<_>>())];
            crate::transform::nested_jet(&eval, xs, order).swap_remove(0)
        }
        _ => panic!("jet: no Taylor-mode (jet) rule for the primitive {}", prim.name()),
    }
}
