//! Conversions between tensors and Rust values (numbers, `Vec`, slices, arrays, nested
//! `Vec`s), and [`TreeLike`], which lets tangents and cotangents be written as numbers or
//! plain arrays where the tree they stand for fixes the type.

use super::Repr;
use crate::{Element, Error, Tensor, Tree};

impl From<i32> for Tensor {
    /// A 0-d i32 tensor.
    ///
    /// ```
    /// use cotangent::{DType, Tensor};
    /// assert_eq!(Tensor::from(3i32).dtype(), DType::I32);
    /// ```
    fn from(v: i32) -> Tensor {
        Tensor::scalar(v)
    }
}

impl From<i64> for Tensor {
    /// A 0-d i64 tensor.
    ///
    /// ```
    /// use cotangent::{DType, Tensor};
    /// assert_eq!(Tensor::from(3i64).dtype(), DType::I64);
    /// ```
    fn from(v: i64) -> Tensor {
        Tensor::scalar(v)
    }
}

impl From<bool> for Tensor {
    /// A 0-d bool tensor.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert!(Tensor::from(true).item::<bool>());
    /// ```
    fn from(v: bool) -> Tensor {
        Tensor::scalar(v)
    }
}

impl<T: Element> From<Vec<T>> for Tensor {
    /// A vector (1-d tensor), without copying the elements.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let t = Tensor::from(vec![1.0f32, 2.0, 3.0]);
    /// assert_eq!(t.shape(), vec![3]);
    /// ```
    fn from(v: Vec<T>) -> Tensor {
        let n = v.len();
        Tensor::from_vec(v, &[n])
    }
}

impl<T: Element> From<&[T]> for Tensor {
    /// A vector (1-d tensor) copied from a slice.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let t = Tensor::from(&[1i64, 2][..]);
    /// assert_eq!(t.to_vec::<i64>(), vec![1, 2]);
    /// ```
    fn from(v: &[T]) -> Tensor {
        Tensor::from_slice(v, &[v.len()])
    }
}

impl<T: Element, const N: usize> From<[T; N]> for Tensor {
    /// A vector (1-d tensor) from an array.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::from([1.0, 2.0]).to_vec::<f64>(), vec![1.0, 2.0]);
    /// ```
    fn from(v: [T; N]) -> Tensor {
        Tensor::from_vec(v.to_vec(), &[N])
    }
}

impl<T: Element, const M: usize, const N: usize> From<[[T; N]; M]> for Tensor {
    /// An `M × N` matrix from nested arrays (rows).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let m = Tensor::from([[1.0, 2.0], [3.0, 4.0]]);
    /// assert_eq!(m.shape(), vec![2, 2]);
    /// assert_eq!(m.to_vec::<f64>(), vec![1.0, 2.0, 3.0, 4.0]);
    /// ```
    fn from(v: [[T; N]; M]) -> Tensor {
        Tensor::from_vec(v.iter().flatten().copied().collect(), &[M, N])
    }
}

impl<T: Element> TryFrom<Vec<Vec<T>>> for Tensor {
    type Error = Error;

    /// A matrix from its rows; an error when the rows have different lengths. No rows give
    /// shape `[0, 0]`.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let m = Tensor::try_from(vec![vec![1, 2, 3], vec![4, 5, 6]]).unwrap();
    /// assert_eq!(m.shape(), vec![2, 3]);
    /// assert!(Tensor::try_from(vec![vec![1.0], vec![2.0, 3.0]]).is_err());
    /// ```
    fn try_from(rows: Vec<Vec<T>>) -> Result<Tensor, Error> {
        let n = rows.first().map_or(0, Vec::len);
        if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != n) {
            return Err(Error::Conversion {
                what: format!("Vec<Vec<{}>> to Tensor", T::DTYPE),
                message: format!("row {i} has {} elements but row 0 has {n}", r.len()),
            });
        }
        let m = rows.len();
        Tensor::try_from_vec(rows.into_iter().flatten().collect(), &[m, n])
    }
}

impl<T: Element> TryFrom<&Tensor> for Vec<T> {
    type Error = Error;

    /// The elements of a concrete vector (1-d tensor) of dtype `T`; an error for another
    /// rank, another dtype or a symbolic tensor (see [`Tensor::to_vec`] for any rank).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let t = Tensor::from(vec![1.0, 2.0]);
    /// assert_eq!(Vec::<f64>::try_from(&t).unwrap(), vec![1.0, 2.0]);
    /// assert!(Vec::<f32>::try_from(&t).is_err());
    /// ```
    fn try_from(t: &Tensor) -> Result<Vec<T>, Error> {
        let what = || format!("Tensor to Vec<{}>", T::DTYPE);
        let s = checked_slice::<T>(t, 1, &what)?;
        Ok(s.to_vec())
    }
}

impl<T: Element> TryFrom<&Tensor> for Vec<Vec<T>> {
    type Error = Error;

    /// The rows of a concrete matrix of dtype `T`; an error for another rank, another dtype
    /// or a symbolic tensor.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let t = Tensor::from([[1i32, 2], [3, 4]]);
    /// assert_eq!(Vec::<Vec<i32>>::try_from(&t).unwrap(), vec![vec![1, 2], vec![3, 4]]);
    /// assert!(Vec::<Vec<i32>>::try_from(&Tensor::from(vec![1i32])).is_err());
    /// ```
    fn try_from(t: &Tensor) -> Result<Vec<Vec<T>>, Error> {
        let what = || format!("Tensor to Vec<Vec<{}>>", T::DTYPE);
        let s = checked_slice::<T>(t, 2, &what)?;
        let n = t.shape()[1];
        if n == 0 {
            return Ok(vec![Vec::new(); t.shape()[0]]);
        }
        Ok(s.chunks(n).map(<[T]>::to_vec).collect())
    }
}

/// The elements of `t` as `T`, checking that it is concrete, of dtype `T` and of rank `rank`.
fn checked_slice<'a, T: Element>(t: &'a Tensor, rank: usize, what: &dyn Fn() -> String) -> Result<&'a [T], Error> {
    let fail = |message: String| Err(Error::Conversion { what: what(), message });
    let a = match &t.repr {
        Repr::Concrete(a) => a,
        Repr::Traced(tr) => {
            return fail(format!("the tensor is a traced {} whose value is not known while tracing", tr.ty))
        }
    };
    if a.shape.len() != rank {
        return fail(format!("the tensor is {}, not of rank {rank}", a.ty()));
    }
    match a.as_slice::<T>() {
        Some(s) => Ok(s),
        None => fail(format!("the tensor is {}, not {} (use .cast() first)", a.ty(), T::DTYPE)),
    }
}

impl Tensor {
    /// The rows of a concrete matrix. Panics if the tensor is not a matrix of dtype `T`, or
    /// inside a transformation (see `Vec::<Vec<T>>::try_from(&tensor)` for a `Result`).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let t = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    /// assert_eq!(t.to_vec2::<f64>(), vec![vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]]);
    /// ```
    #[track_caller]
    pub fn to_vec2<T: Element>(&self) -> Vec<Vec<T>> {
        match Vec::<Vec<T>>::try_from(self) {
            Ok(v) => v,
            Err(e) => panic!("to_vec2: {e}"),
        }
    }
}

/// Something that can stand for a tree shaped like `T`: the tangents of [`jvp`](crate::jvp)
/// and [`Linearized::call`](crate::Linearized::call), and the cotangents of
/// [`Pullback::call`](crate::Pullback::call) and
/// [`Linearized::transpose`](crate::Linearized::transpose).
///
/// A reference to a `T` always works (tensors are passed by reference, as before this trait,
/// so `pb.call(&ct)` is unchanged). Where `T` is a single [`Tensor`], so is:
///
/// - a Rust number (`f64`, `f32`, `i32`, `i64`): a 0-d value that takes the tensor's dtype,
///   as literals do in `x * 2.0` (JAX's weak types). It is 0-d: a number for a tensor of
///   another shape is an error, as in JAX (write `y.ones_like()` for all ones);
/// - a `Vec<E>` or `Vec<Vec<E>>` (and, with the `ndarray` feature, an `ndarray` array),
///   laid out in the tensor's shape: the element count must match, and the element type
///   must be the tensor's dtype exactly (an `f64` array is never silently made `f32`).
///
/// Shape and dtype mismatches panic at the caller's line, naming the transformation.
///
/// ```
/// use cotangent::{jvp, vjp, Tensor};
/// let x = Tensor::from(vec![1.0f32, 2.0]);
/// let (_, pb) = vjp(|x: &Tensor| (x * x).sum_all(), &x);
/// // `1.0` stands for the f32 scalar cotangent of the sum.
/// assert_eq!(pb.call(1.0).to_vec::<f32>(), vec![2.0, 4.0]);
/// // A Vec of the right dtype stands for a tangent shaped like `x`.
/// let (_, t) = jvp(|x: &Tensor| x * 3.0, &x, vec![1.0f32, 0.0]);
/// assert_eq!(t.to_vec::<f32>(), vec![3.0, 0.0]);
/// ```
pub trait TreeLike<T> {
    /// The leaves of the tree this value stands for, taking shapes and dtypes from `like`.
    ///
    /// ```
    /// use cotangent::{Tensor, TreeLike};
    /// let like = Tensor::scalar(0.0f32);
    /// assert_eq!(2.0.into_leaves_like(&like)[0].to_vec::<f32>(), vec![2.0]);
    /// ```
    fn into_leaves_like(self, like: &T) -> Vec<Tensor>;
}

impl<T: Tree> TreeLike<T> for &T {
    fn into_leaves_like(self, _: &T) -> Vec<Tensor> {
        self.leaves()
    }
}

/// `&&Tensor`, which a `&Tensor` argument used to deref-coerce from: `pb.call(&ct)` with
/// `ct: &Tensor` keeps compiling.
impl TreeLike<Tensor> for &&Tensor {
    fn into_leaves_like(self, _: &Tensor) -> Vec<Tensor> {
        vec![(*self).clone()]
    }
}

macro_rules! number_like {
    ($($t:ty),*) => {$(
        impl TreeLike<Tensor> for $t {
            fn into_leaves_like(self, like: &Tensor) -> Vec<Tensor> {
                vec![Tensor::full(&[], self as f64, like.dtype())]
            }
        }
    )*};
}
number_like!(f64, f32, i32, i64);

impl<E: Element> TreeLike<Tensor> for Vec<E> {
    #[track_caller]
    fn into_leaves_like(self, like: &Tensor) -> Vec<Tensor> {
        vec![laid_out_like(self, like, "a Vec")]
    }
}

impl<E: Element> TreeLike<Tensor> for Vec<Vec<E>> {
    #[track_caller]
    fn into_leaves_like(self, like: &Tensor) -> Vec<Tensor> {
        let n = self.first().map_or(0, Vec::len);
        if self.iter().any(|r| r.len() != n) {
            panic!("a Vec<Vec<{}>> standing for a {} has ragged rows", E::DTYPE, like.ty());
        }
        vec![laid_out_like(self.into_iter().flatten().collect(), like, "a Vec<Vec<_>>")]
    }
}

/// `v` in `like`'s shape (same element count); its dtype is left for the caller's type check.
#[track_caller]
pub(crate) fn laid_out_like<E: Element>(v: Vec<E>, like: &Tensor, what: &str) -> Tensor {
    let ty = like.ty();
    if v.len() != like.numel() {
        panic!("{what} of {} {} elements cannot stand for a {ty} ({} elements)", v.len(), E::DTYPE, like.numel());
    }
    if E::DTYPE != ty.dtype {
        panic!("{what} of {} cannot stand for a {ty}: the dtypes differ (convert it first)", E::DTYPE);
    }
    Tensor::from_vec(v, &ty.shape)
}
