//! Indexing kernels: gather, scatter-add, dynamic slice, dynamic update slice.

use crate::array::Array;
use crate::TensorType;

/// Batched gather (see [`crate::ops::Prim::Gather`]).
pub fn gather(
    _x: &Array,
    _indices: &Array,
    _axis: usize,
    _batch_dims: usize,
    _out: &TensorType,
) -> Array {
    panic!("gather kernel: not written yet")
}

/// Batched scatter-add (see [`crate::ops::Prim::ScatterAdd`]).
pub fn scatter_add(
    _x: &Array,
    _indices: &Array,
    _updates: &Array,
    _axis: usize,
    _batch_dims: usize,
) -> Array {
    panic!("scatter_add kernel: not written yet")
}

/// Window at clamped dynamic starts.
pub fn dynamic_slice(_x: &Array, _starts: &[&Array], _sizes: &[usize]) -> Array {
    panic!("dynamic_slice kernel: not written yet")
}

/// Writes `update` at clamped dynamic starts.
pub fn dynamic_update_slice(_x: &Array, _update: &Array, _starts: &[&Array]) -> Array {
    panic!("dynamic_update_slice kernel: not written yet")
}
