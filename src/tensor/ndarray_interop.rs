//! Conversions between [`Tensor`] and [`ndarray`] arrays (cargo feature `ndarray`).
//!
//! - `Tensor::from(array)` takes any array (owned, view, any dimension). An owned array in
//!   standard (row-major, contiguous) layout hands its buffer over without copying; other
//!   layouts are copied in logical row-major order. `Tensor::from(&array)` always copies.
//! - `Array::<T, D>::try_from(tensor)` (owned tensor) takes the buffer over without copying
//!   when nothing else shares it; `try_from(&tensor)` copies. Both fail (an
//!   [`Error::Conversion`]) when `T` is not the tensor's dtype, the rank does not fit `D`, or
//!   the tensor is symbolic.
//! - An array (owned, or a view: `a.view()`) can stand for a tangent or cotangent
//!   ([`TreeLike`]); it must have the exact shape and dtype of the tensor it stands for.
//!
//! ```
//! use cotangent::Tensor;
//! use ndarray::{array, Array2};
//! let a = array![[1.0, 2.0], [3.0, 4.0]];
//! let t = Tensor::from(a.clone());
//! assert_eq!(t.shape(), vec![2, 2]);
//! let back = Array2::<f64>::try_from(&(&t * 2.0)).unwrap();
//! assert_eq!(back, &a * 2.0);
//! ```

use super::convert::TreeLike;
use super::Repr;
use crate::array::Data as Storage;
use crate::{Element, Error, Tensor};
use ndarray::{ArrayBase, ArrayD, Dimension, IxDyn, OwnedRepr};
use std::any::Any;

impl<A: Element, S: ndarray::Data<Elem = A>, D: Dimension> From<ArrayBase<S, D>> for Tensor {
    /// The array as a tensor of the same shape: without copying for an owned array in
    /// standard layout, else copied in row-major order.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let a = ndarray::Array::from_shape_vec((2, 3), vec![1i64, 2, 3, 4, 5, 6]).unwrap();
    /// let t = Tensor::from(a.t()); // a transposed view: copied in row-major order
    /// assert_eq!(t.to_vec::<i64>(), vec![1, 4, 2, 5, 3, 6]);
    /// ```
    fn from(a: ArrayBase<S, D>) -> Tensor {
        let shape = a.shape().to_vec();
        let owned = a.into_owned();
        if owned.is_standard_layout() {
            let n = owned.len();
            let (v, offset) = owned.into_raw_vec_and_offset();
            if v.len() == n && offset.unwrap_or(0) == 0 {
                return Tensor::from_vec(v, &shape);
            }
            // The buffer holds more than the array (a slice of a bigger one): copy the part.
            let start = offset.unwrap_or(0);
            return Tensor::from_vec(v[start..start + n].to_vec(), &shape);
        }
        Tensor::from_vec(owned.iter().copied().collect(), &shape)
    }
}

impl<A: Element, S: ndarray::Data<Elem = A>, D: Dimension> From<&ArrayBase<S, D>> for Tensor {
    /// A copy of the array as a tensor of the same shape.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let a = ndarray::arr1(&[1.0f32, 2.0]);
    /// assert_eq!(Tensor::from(&a).to_vec::<f32>(), vec![1.0, 2.0]);
    /// ```
    fn from(a: &ArrayBase<S, D>) -> Tensor {
        let v: Vec<A> = match a.as_slice() {
            Some(s) => s.to_vec(),
            None => a.iter().copied().collect(),
        };
        Tensor::from_vec(v, a.shape())
    }
}

impl<A: Element, D: Dimension> TryFrom<&Tensor> for ArrayBase<OwnedRepr<A>, D> {
    type Error = Error;

    /// A copy of a concrete tensor of dtype `A` whose rank fits `D`.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// use ndarray::{Array1, ArrayD};
    /// let t = Tensor::from(vec![1.0, 2.0]);
    /// assert_eq!(Array1::<f64>::try_from(&t).unwrap().to_vec(), vec![1.0, 2.0]);
    /// assert_eq!(ArrayD::<f64>::try_from(&t).unwrap().shape(), &[2]);
    /// assert!(Array1::<f32>::try_from(&t).is_err()); // the dtype is f64
    /// ```
    fn try_from(t: &Tensor) -> Result<Self, Error> {
        let a = concrete::<A, D>(t)?;
        let v = match a.as_slice::<A>() {
            Some(s) => s.to_vec(),
            None => return Err(wrong_dtype::<A, D>(t)),
        };
        shaped(v, &a.shape)
    }
}

impl<A: Element, D: Dimension> TryFrom<Tensor> for ArrayBase<OwnedRepr<A>, D> {
    type Error = Error;

    /// A concrete tensor of dtype `A` whose rank fits `D`, taking its buffer over without
    /// copying when no other tensor shares it.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let t = Tensor::from_vec(vec![1i32, 2, 3, 4], &[2, 2]);
    /// let a = ndarray::Array2::<i32>::try_from(t).unwrap();
    /// assert_eq!(a[[1, 0]], 3);
    /// ```
    fn try_from(t: Tensor) -> Result<Self, Error> {
        let arc = match &t.repr {
            Repr::Concrete(a) if a.as_slice::<A>().is_some() => a.clone(),
            _ => return Self::try_from(&t),
        };
        drop(t);
        match std::sync::Arc::try_unwrap(arc) {
            Ok(a) => {
                let shape = a.shape.clone();
                let v = take_vec::<A>(a.data).expect("the dtype was checked");
                shaped(v, &shape)
            }
            Err(shared) => Self::try_from(&Tensor::from_arc(shared)),
        }
    }
}

impl<A: Element, S: ndarray::Data<Elem = A>, D: Dimension> TreeLike<Tensor> for ArrayBase<S, D> {
    #[track_caller]
    fn into_leaves_like(self, like: &Tensor) -> Vec<Tensor> {
        let ty = like.ty();
        if self.shape() != ty.shape.as_slice() || A::DTYPE != ty.dtype {
            panic!(
                "an ndarray array of {} with shape {:?} cannot stand for a {ty} (the shape and dtype must match)",
                A::DTYPE,
                self.shape()
            );
        }
        vec![Tensor::from(self)]
    }
}

/// The concrete storage of `t`, or the conversion error for a symbolic tensor.
fn concrete<A: Element, D: Dimension>(t: &Tensor) -> Result<&crate::Array, Error> {
    match &t.repr {
        Repr::Concrete(a) => Ok(a),
        Repr::Traced(tr) => Err(Error::Conversion {
            what: what::<A, D>(),
            message: format!("the tensor is a traced {} whose value is not known while tracing", tr.ty),
        }),
    }
}

fn wrong_dtype<A: Element, D: Dimension>(t: &Tensor) -> Error {
    Error::Conversion {
        what: what::<A, D>(),
        message: format!("the tensor is {}, not {} (use .cast() first)", t.ty(), A::DTYPE),
    }
}

fn what<A: Element, D: Dimension>() -> String {
    match D::NDIM {
        Some(n) => format!("Tensor to an ndarray array of {} with {n} axes", A::DTYPE),
        None => format!("Tensor to an ndarray ArrayD of {}", A::DTYPE),
    }
}

/// `v` as an array of `shape` with dimension type `D`.
fn shaped<A: Element, D: Dimension>(v: Vec<A>, shape: &[usize]) -> Result<ArrayBase<OwnedRepr<A>, D>, Error> {
    let rank_error = || Error::Conversion {
        what: what::<A, D>(),
        message: format!("the tensor has {} axes (shape {shape:?})", shape.len()),
    };
    if D::NDIM.is_some_and(|n| n != shape.len()) {
        return Err(rank_error());
    }
    let a = ArrayD::from_shape_vec(IxDyn(shape), v)
        .map_err(|e| Error::Conversion { what: what::<A, D>(), message: e.to_string() })?;
    a.into_dimensionality::<D>().map_err(|_| rank_error())
}

/// The vector inside `data` when its element type is `A`.
fn take_vec<A: Element>(data: Storage) -> Option<Vec<A>> {
    let any: Box<dyn Any> = match data {
        Storage::F32(v) => Box::new(v),
        Storage::F64(v) => Box::new(v),
        Storage::I32(v) => Box::new(v),
        Storage::I64(v) => Box::new(v),
        Storage::Bool(v) => Box::new(v),
    };
    any.downcast::<Vec<A>>().ok().map(|b| *b)
}
