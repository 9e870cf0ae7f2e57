//! Counter-based random bits: the one primitive behind [`crate::random`].
//!
//! `random_bits[shape](key)` maps a key (an `i64` tensor whose last axis holds
//! two 32-bit words, each in `0..2^32`) to `i64` values in `0..2^32`, one per
//! element of `shape`. Element `i` of the output (row-major) is word `i % 2` of
//! Threefry-2x32 (20 rounds) applied to the counter `i / 2` under the key, so
//! each number depends only on the key and its own index: the result is the
//! same on any number of threads, and a changing key is an ordinary operand
//! (a traced input under `jit`, never a baked-in constant).
//!
//! Leading axes of the key are batch axes: a key of shape `[k..., 2]` gives
//! bits of shape `[k..., shape...]`, one independent stream per key. That makes
//! the batching rule the primitive itself. The output is integral, so it has no
//! derivative.

use crate::shape::Shape;
use crate::{DType, TensorType};

/// Type rule: an `i64` key `[k..., 2]` gives `i64` bits `[k..., shape...]`.
///
/// ```
/// use cotangent::{ops::random::random_bits_type, DType, TensorType};
/// let keys = TensorType::new(DType::I64, vec![4, 2]);
/// assert_eq!(random_bits_type(&vec![3], &keys).unwrap().shape, vec![4, 3]);
/// assert!(random_bits_type(&vec![3], &TensorType::new(DType::I32, vec![2])).is_err());
/// ```
pub fn random_bits_type(shape: &Shape, key: &TensorType) -> Result<TensorType, String> {
    if key.dtype != DType::I64 || key.shape.last() != Some(&2) {
        return Err(format!(
            "the key must be an i64 tensor whose last axis has extent 2 (two 32-bit words), got {key}"
        ));
    }
    let mut out = key.shape[..key.rank() - 1].to_vec();
    out.extend_from_slice(shape);
    Ok(TensorType::new(DType::I64, out))
}

// ---------------------------------------------------------------------------
// Batching rule.
// ---------------------------------------------------------------------------

use super::Prim;
use crate::trace::bind;
use crate::Tensor;

/// Batching: a batched key `[B, k..., 2]` is just more leading key axes.
pub(crate) fn batch(prim: &Prim, key: &Tensor) -> Tensor {
    bind(prim.clone(), &[key])
}
