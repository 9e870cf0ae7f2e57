//! The CPU backend: one kernel per primitive on contiguous row-major arrays.
//!
//! [`execute`] is the single entry point: eager operations and the graph
//! interpreter both come through it. Kernels are grouped by family, like
//! [`crate::ops`]. The output type is computed (and checked) by the caller.

pub mod dot;
mod elementwise;
pub mod fused;
mod index;
pub mod math;
pub mod native;
pub mod random;
mod reduce;
mod sort;
mod structure;

use crate::array::Array;
use crate::ops::Prim;
use crate::TensorType;

/// Runs one primitive on concrete operands whose types already passed `infer_type`.
pub fn execute(prim: &Prim, inputs: &[&Array], out: &TensorType) -> Array {
    match prim {
        Prim::Input(_) => panic!("graph inputs are not executable"),
        Prim::Constant(a) => (**a).clone(),
        Prim::StopGradient => inputs[0].clone(),
        Prim::Unary(op) => elementwise::unary(*op, inputs[0], out),
        Prim::Binary(op) => elementwise::binary(*op, inputs[0], inputs[1], out),
        Prim::Select => elementwise::select(inputs[0], inputs[1], inputs[2]),
        Prim::Reduce { op, axes } => reduce::reduce(*op, axes, inputs[0], out),
        Prim::Arg { op, axis } => reduce::arg(*op, *axis, inputs[0], out),
        Prim::Cumulative { op, axis, reverse } => reduce::cumulative(*op, *axis, *reverse, inputs[0]),
        Prim::Reshape { shape } => Array::new(shape.clone(), inputs[0].data.clone()),
        Prim::BroadcastInDim { shape, dims } => structure::broadcast_in_dim(inputs[0], shape, dims),
        Prim::Transpose { perm } => structure::transpose(inputs[0], perm),
        Prim::Slice { start, stop: _, stride } => structure::slice(inputs[0], start, stride, out),
        Prim::Pad { low, high: _, interior } => structure::pad(inputs[0], inputs[1], low, interior, out),
        Prim::Concatenate { axis } => structure::concatenate(inputs, *axis, out),
        Prim::Rev { axes } => structure::rev(inputs[0], axes),
        Prim::Iota { dtype, shape, dim } => structure::iota(*dtype, shape, *dim),
        Prim::Convert { dtype } => structure::convert(inputs[0], *dtype),
        Prim::Gather { axis, batch_dims } => index::gather(inputs[0], inputs[1], *axis, *batch_dims, out),
        Prim::ScatterAdd { axis, batch_dims } => {
            index::scatter_add(inputs[0], inputs[1], inputs[2], *axis, *batch_dims)
        }
        Prim::DynamicSlice { sizes } => index::dynamic_slice(inputs[0], &inputs[1..], sizes),
        Prim::DynamicUpdateSlice => index::dynamic_update_slice(inputs[0], inputs[1], &inputs[2..]),
        Prim::DotGeneral { lhs_contract, rhs_contract, lhs_batch, rhs_batch } => {
            dot::dot_general(inputs[0], inputs[1], lhs_contract, rhs_contract, lhs_batch, rhs_batch, out)
        }
        Prim::RandomBits { .. } => random::random_bits(inputs[0], out),
        Prim::Argsort { axis, descending } => sort::argsort(inputs[0], *axis, *descending),
    }
}
