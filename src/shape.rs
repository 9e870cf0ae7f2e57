//! Shapes, tensor types and the small pieces of shape arithmetic every layer shares.

use crate::DType;
use std::fmt;

/// A shape: the extent of each axis, row-major.
pub type Shape = Vec<usize>;

/// Number of elements of a shape (1 for a 0-d shape).
///
/// ```
/// use cotangent::shape::numel;
/// assert_eq!(numel(&[2, 3]), 6);
/// assert_eq!(numel(&[]), 1);
/// ```
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Number of elements of a shape, or `None` if it does not fit in `usize`.
///
/// ```
/// use cotangent::shape::checked_numel;
/// assert_eq!(checked_numel(&[usize::MAX, 2]), None);
/// ```
pub fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// Row-major strides (in elements) of a contiguous shape.
///
/// ```
/// use cotangent::shape::strides;
/// assert_eq!(strides(&[2, 3, 4]), vec![12, 4, 1]);
/// ```
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Formats a shape as `[2, 3]`.
///
/// ```
/// use cotangent::shape::fmt_shape;
/// assert_eq!(fmt_shape(&[2, 3]), "[2, 3]");
/// ```
pub fn fmt_shape(shape: &[usize]) -> String {
    format!("{shape:?}")
}

/// Resolves a possibly negative axis against a rank, or explains why it is out of range.
///
/// ```
/// use cotangent::shape::normalize_axis;
/// assert_eq!(normalize_axis(-1, 3), Ok(2));
/// assert!(normalize_axis(3, 3).is_err());
/// ```
pub fn normalize_axis(axis: isize, rank: usize) -> Result<usize, String> {
    let r = rank as isize;
    if rank == 0 || axis < -r || axis >= r {
        return Err(format!("axis {axis} is out of range for rank {rank}"));
    }
    Ok(if axis < 0 { (axis + r) as usize } else { axis as usize })
}

/// The numpy broadcast of two shapes, or `None` when they are incompatible.
///
/// ```
/// use cotangent::shape::broadcast_shapes;
/// assert_eq!(broadcast_shapes(&[2, 1], &[3]), Some(vec![2, 3]));
/// assert_eq!(broadcast_shapes(&[2], &[3]), None);
/// ```
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Shape> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n { a[i + a.len() - n] } else { 1 };
        let db = if i + b.len() >= n { b[i + b.len() - n] } else { 1 };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return None;
        };
    }
    Some(out)
}

/// The type of a tensor value as the graph sees it: dtype and shape.
///
/// ```
/// use cotangent::{DType, TensorType};
/// let t = TensorType::new(DType::F32, vec![2, 3]);
/// assert_eq!(t.to_string(), "f32[2,3]");
/// assert_eq!(t.numel(), 6);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    /// Element type.
    pub dtype: DType,
    /// Extent of each axis.
    pub shape: Shape,
}

impl TensorType {
    /// Builds a type from a dtype and a shape.
    ///
    /// ```
    /// use cotangent::{DType, TensorType};
    /// assert_eq!(TensorType::new(DType::I32, vec![4]).to_string(), "i32[4]");
    /// ```
    pub fn new(dtype: DType, shape: Shape) -> Self {
        TensorType { dtype, shape }
    }
    /// Number of axes.
    ///
    /// ```
    /// use cotangent::{DType, TensorType};
    /// assert_eq!(TensorType::new(DType::F32, vec![]).rank(), 0);
    /// ```
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    /// Number of elements.
    ///
    /// ```
    /// use cotangent::{DType, TensorType};
    /// assert_eq!(TensorType::new(DType::F32, vec![2, 2]).numel(), 4);
    /// ```
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[", self.dtype)?;
        for (i, d) in self.shape.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast_shapes(&[3, 1], &[4]), Some(vec![3, 4]));
        assert_eq!(broadcast_shapes(&[], &[2, 2]), Some(vec![2, 2]));
        assert_eq!(broadcast_shapes(&[0], &[1]), Some(vec![0]));
        assert_eq!(broadcast_shapes(&[3], &[4]), None);
    }
    #[test]
    fn axes_normalize() {
        assert_eq!(normalize_axis(-1, 3), Ok(2));
        assert!(normalize_axis(3, 3).is_err());
        assert!(normalize_axis(0, 0).is_err());
        assert_eq!(strides(&[2, 3, 4]), vec![12, 4, 1]);
    }
}
