//! `dot_general` on the `gemm` crate.

use crate::array::Array;
use crate::TensorType;

/// General contraction: output axes are batch, lhs free, rhs free.
pub fn dot_general(
    _lhs: &Array,
    _rhs: &Array,
    _lc: &[usize],
    _rc: &[usize],
    _lb: &[usize],
    _rb: &[usize],
    _out: &TensorType,
) -> Array {
    panic!("dot_general kernel: not written yet")
}
