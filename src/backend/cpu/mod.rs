//! The CPU backend: one kernel per primitive on contiguous row-major arrays.
//!
//! [`execute`] is the single public entry point; eager operations, constant folding and
//! plans come through `kernel`, which trusts the types its caller checked. Kernels are
//! grouped by family, like [`crate::ops`]. Modules whose kernels write through raw
//! pointers (`dot`, `fused`) are private to the crate: safe code outside it reaches them only
//! through checked entry points.

pub(crate) mod dot;
pub(crate) mod dot_arg;
mod elementwise;
pub(crate) mod fused;
pub(crate) mod index;
pub(crate) mod linalg;
pub mod math;
pub mod native;
pub mod random;
mod reduce;
mod sort;
mod structure;
mod thin_dot;

use crate::array::Array;
use crate::ops::Prim;
use crate::TensorType;

/// Runs one primitive on concrete operands.
///
/// # Panics
/// If the operands do not satisfy the primitive's type rule, or `out` is not the type the
/// rule gives (kernels size their buffers and index their operands by these types).
///
/// ```
/// use cotangent::backend::cpu::execute;
/// use cotangent::ops::{Prim, UnaryOp};
/// use cotangent::{Array, TensorType};
/// let x = Array::from_vec(vec![0.0f64, 4.0], vec![2]);
/// let y = execute(&Prim::Unary(UnaryOp::Sqrt), &[&x], &x.ty());
/// assert_eq!(y.as_slice::<f64>().unwrap(), &[0.0, 2.0]);
/// ```
#[track_caller]
pub fn execute(prim: &Prim, inputs: &[&Array], out: &TensorType) -> Array {
    let types: Vec<TensorType> = inputs.iter().map(|a| a.ty()).collect();
    match prim.infer_type(&types.iter().collect::<Vec<_>>()) {
        Ok(ty) if ty == *out => kernel(prim, inputs, out),
        Ok(ty) => panic!("execute({}): the operands give {ty}, not the requested {out}", prim.name()),
        Err(e) => panic!("execute({}): {e}", prim.name()),
    }
}

/// Runs one primitive on concrete operands whose types already passed `infer_type` with
/// `out` as the result (the callers — `bind`, constant folding, plans — checked them).
pub(crate) fn kernel(prim: &Prim, inputs: &[&Array], out: &TensorType) -> Array {
    match prim {
        Prim::Input(_) => panic!("graph inputs are not executable"),
        Prim::Proj(_)
        | Prim::Cond { .. }
        | Prim::While { .. }
        | Prim::Scan { .. }
        | Prim::CustomJvp { .. }
        | Prim::CustomVjp { .. }
        | Prim::CustomVjpCall { .. }
        | Prim::Checkpoint { .. } => {
            panic!("{} defines several results: it runs through bind_multi or a plan", prim.name())
        }
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
        Prim::AllReduce { .. } | Prim::Broadcast { .. } | Prim::ReduceTo { .. } => {
            crate::ops::collective::kernel(prim, inputs[0])
        }
        Prim::Linalg(op) if op.is_tuple() => {
            panic!("{} defines several results: it runs through bind_multi or a plan", prim.name())
        }
        Prim::Linalg(op) => linalg::kernel(op, inputs, out),
    }
}
