//! Sorting: `argsort`, the permutation that sorts a tensor along an axis.
//!
//! The output is an `i64` permutation (stable: equal elements keep their
//! order; NaN sorts after every number), so it has no derivative. Sorting
//! itself is the composite `take_along_axis(x, argsort(x))`, whose derivative
//! comes from the gather: the cotangent flows back through the permutation,
//! which is held fixed (a Clarke subgradient at ties, as for `argmax`).

use crate::{DType, TensorType};

/// Type rule of argsort: any non-bool operand, `i64` indices of the same shape.
///
/// ```
/// use cotangent::{ops::sort::argsort_type, DType, TensorType};
/// let x = TensorType::new(DType::F32, vec![2, 5]);
/// assert_eq!(argsort_type(1, &x).unwrap(), TensorType::new(DType::I64, vec![2, 5]));
/// assert!(argsort_type(2, &x).is_err());
/// ```
pub fn argsort_type(axis: usize, x: &TensorType) -> Result<TensorType, String> {
    if x.dtype == DType::Bool {
        return Err(format!("does not accept bool operands ({x}); cast first"));
    }
    if axis >= x.rank() {
        return Err(format!("axis {axis} is out of range for {x}"));
    }
    Ok(TensorType::new(DType::I64, x.shape.clone()))
}

// ---------------------------------------------------------------------------
// Batching rule.
// ---------------------------------------------------------------------------

use super::Prim;
use crate::trace::bind;
use crate::Tensor;

/// Batching: the operand's batch axis is 0, so the sorted axis moves up by one.
pub(crate) fn batch(prim: &Prim, x: &Tensor) -> Tensor {
    match prim {
        Prim::Argsort { axis, descending } => bind(Prim::Argsort { axis: axis + 1, descending: *descending }, &[x]),
        _ => unreachable!(),
    }
}
