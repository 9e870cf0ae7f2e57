//! [`Tensor`]: the handle users compute with, concrete or symbolic.

mod activation;
mod arith;
mod convert;
pub mod display;
mod elementwise;
mod everyday;
mod index;
mod linalg;
#[cfg(feature = "ndarray")]
mod ndarray_interop;
mod reduce;
mod sort;
mod structure;

pub use convert::TreeLike;
pub use elementwise::{where_, AsOperand, WhereOperand};
pub use linalg::{dot_general, einsum};
pub use structure::{concatenate, stack};

use crate::array::{Array, Data};
use crate::ir::Var;
use crate::ops::Prim;
use crate::shape::{numel, Shape};
use crate::trace::bind;
use crate::{DType, Element, Error, TensorType};
use std::sync::Arc;

/// A symbolic value: a var of an active trace.
#[derive(Clone, Debug)]
pub(crate) struct Traced {
    pub trace: u64,
    pub level: usize,
    pub var: Var,
    pub ty: TensorType,
}

#[derive(Clone)]
pub(crate) enum Repr {
    Concrete(Arc<Array>),
    Traced(Traced),
}

/// An n-dimensional array of `f32`, `f64`, `i32`, `i64` or `bool`.
///
/// Outside any transformation a tensor holds concrete data, and every
/// operation runs at once. Inside a transformation (`grad`, `jvp`, `vmap`,
/// `jit`, ...) the closure receives *symbolic* tensors: operations on them are
/// recorded into a graph instead. Cloning is cheap (the storage is shared).
///
/// ```
/// use cotangent::Tensor;
/// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
/// let y = (&x * 2.0 + 1.0).sum_all();
/// assert_eq!(y.item::<f64>(), 24.0);
/// ```
#[derive(Clone)]
pub struct Tensor {
    pub(crate) repr: Repr,
}

impl Tensor {
    pub(crate) fn traced(t: Traced) -> Tensor {
        Tensor { repr: Repr::Traced(t) }
    }

    pub(crate) fn as_traced(&self) -> Option<&Traced> {
        match &self.repr {
            Repr::Traced(t) => Some(t),
            Repr::Concrete(_) => None,
        }
    }

    /// The concrete value, or `None` for a symbolic tensor.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let a = Tensor::from_vec(vec![1.0, 2.0], &[2]);
    /// assert_eq!(a.as_concrete().unwrap().shape(), &[2]);
    /// ```
    pub fn as_concrete(&self) -> Option<&Array> {
        match &self.repr {
            Repr::Concrete(a) => Some(a),
            Repr::Traced(_) => None,
        }
    }

    /// True when the tensor is a symbolic value of an active trace.
    ///
    /// ```
    /// use cotangent::{grad, Tensor};
    /// assert!(!Tensor::scalar(1.0).is_traced());
    /// let g = grad(|x: &Tensor| {
    ///     assert!(x.is_traced());
    ///     x * 2.0
    /// });
    /// assert_eq!(g(&Tensor::scalar(1.0)).item::<f64>(), 2.0);
    /// ```
    pub fn is_traced(&self) -> bool {
        self.as_traced().is_some()
    }

    /// Wraps a concrete array.
    ///
    /// ```
    /// use cotangent::{Array, Tensor};
    /// let t = Tensor::from_array(Array::from_vec(vec![1i32, 2], vec![2]));
    /// assert_eq!(t.to_vec::<i32>(), vec![1, 2]);
    /// ```
    pub fn from_array(a: Array) -> Tensor {
        Tensor { repr: Repr::Concrete(Arc::new(a)) }
    }

    /// The shared storage of a concrete tensor. Panics for a traced one.
    pub(crate) fn concrete_arc(&self) -> Arc<Array> {
        match &self.repr {
            Repr::Concrete(a) => a.clone(),
            Repr::Traced(t) => panic!("expected a concrete tensor, got a traced {}", t.ty),
        }
    }

    pub(crate) fn from_arc(a: Arc<Array>) -> Tensor {
        Tensor { repr: Repr::Concrete(a) }
    }

    /// A tensor from a vector and a shape. Panics if the lengths disagree (see [`Tensor::try_from_vec`]).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let t = Tensor::from_vec(vec![1i64, 2, 3, 4, 5, 6], &[2, 3]);
    /// assert_eq!(t.shape(), vec![2, 3]);
    /// ```
    #[track_caller]
    pub fn from_vec<T: Element>(v: Vec<T>, shape: &[usize]) -> Tensor {
        match Self::try_from_vec(v, shape) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }

    /// A tensor from a vector and a shape, or an error when the lengths disagree.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert!(Tensor::try_from_vec(vec![1.0f32; 5], &[2, 3]).is_err());
    /// ```
    pub fn try_from_vec<T: Element>(v: Vec<T>, shape: &[usize]) -> Result<Tensor, Error> {
        Ok(Tensor::from_array(Array::try_new(shape.to_vec(), T::into_data(v))?))
    }

    /// A tensor copied from a slice.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let t = Tensor::from_slice(&[1.0f32, 2.0], &[2]);
    /// assert_eq!(t.to_vec::<f32>(), vec![1.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn from_slice<T: Element>(v: &[T], shape: &[usize]) -> Tensor {
        Self::from_vec(v.to_vec(), shape)
    }

    /// A 0-d tensor.
    ///
    /// ```
    /// use cotangent::{DType, Tensor};
    /// assert_eq!(Tensor::scalar(2.5f32).dtype(), DType::F32);
    /// ```
    pub fn scalar<T: Element>(v: T) -> Tensor {
        Tensor::from_array(Array::from_vec(vec![v], vec![]))
    }

    /// A tensor of `value` (converted to `dtype`).
    ///
    /// ```
    /// use cotangent::{DType, Tensor};
    /// let t = Tensor::full(&[2, 2], 7.0, DType::I32);
    /// assert_eq!(t.to_vec::<i32>(), vec![7; 4]);
    /// ```
    pub fn full(shape: &[usize], value: f64, dtype: DType) -> Tensor {
        Tensor::from_array(Array::full(dtype, shape.to_vec(), value))
    }

    /// A tensor of zeros.
    ///
    /// ```
    /// use cotangent::{DType, Tensor};
    /// assert_eq!(Tensor::zeros(&[3], DType::F64).to_vec::<f64>(), vec![0.0; 3]);
    /// ```
    pub fn zeros(shape: &[usize], dtype: DType) -> Tensor {
        Self::full(shape, 0.0, dtype)
    }

    /// A tensor of ones.
    ///
    /// ```
    /// use cotangent::{DType, Tensor};
    /// assert_eq!(Tensor::ones(&[2], DType::F32).to_vec::<f32>(), vec![1.0; 2]);
    /// ```
    pub fn ones(shape: &[usize], dtype: DType) -> Tensor {
        Self::full(shape, 1.0, dtype)
    }

    /// Zeros with the dtype and shape of `self` (concrete, even when `self` is traced).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0], &[2]);
    /// assert_eq!(x.zeros_like().to_vec::<f32>(), vec![0.0, 0.0]);
    /// ```
    pub fn zeros_like(&self) -> Tensor {
        Self::zeros(&self.shape(), self.dtype())
    }

    /// Ones with the dtype and shape of `self`.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![5i64, 6], &[2]);
    /// assert_eq!(x.ones_like().to_vec::<i64>(), vec![1, 1]);
    /// ```
    pub fn ones_like(&self) -> Tensor {
        Self::ones(&self.shape(), self.dtype())
    }

    /// A 0-d tensor of `value` in this tensor's dtype.
    ///
    /// ```
    /// use cotangent::{DType, Tensor};
    /// let x = Tensor::from_vec(vec![1.0f32], &[1]);
    /// assert_eq!(x.scalar_like(2.0).dtype(), DType::F32);
    /// ```
    pub fn scalar_like(&self, value: f64) -> Tensor {
        Self::full(&[], value, self.dtype())
    }

    /// `start, start+step, ...` below `stop`.
    ///
    /// ```
    /// use cotangent::{DType, Tensor};
    /// assert_eq!(Tensor::arange(0.0, 5.0, 2.0, DType::F64).to_vec::<f64>(), vec![0.0, 2.0, 4.0]);
    /// ```
    #[track_caller]
    pub fn arange(start: f64, stop: f64, step: f64, dtype: DType) -> Tensor {
        assert!(step != 0.0 && step.is_finite(), "arange: step must be finite and non-zero, got {step}");
        let n = ((stop - start) / step).ceil().max(0.0) as usize;
        let v: Vec<f64> = (0..n).map(|i| start + i as f64 * step).collect();
        Tensor::from_vec(v, &[n]).cast(dtype)
    }

    /// `n` evenly spaced values from `start` to `stop` inclusive.
    ///
    /// ```
    /// use cotangent::{DType, Tensor};
    /// assert_eq!(Tensor::linspace(0.0, 1.0, 3, DType::F64).to_vec::<f64>(), vec![0.0, 0.5, 1.0]);
    /// ```
    pub fn linspace(start: f64, stop: f64, n: usize, dtype: DType) -> Tensor {
        let v: Vec<f64> =
            (0..n).map(|i| if n == 1 { start } else { start + (stop - start) * i as f64 / (n - 1) as f64 }).collect();
        Tensor::from_vec(v, &[n]).cast(dtype)
    }

    /// The `n × n` identity matrix.
    ///
    /// ```
    /// use cotangent::{DType, Tensor};
    /// assert_eq!(Tensor::eye(2, DType::F32).to_vec::<f32>(), vec![1.0, 0.0, 0.0, 1.0]);
    /// ```
    pub fn eye(n: usize, dtype: DType) -> Tensor {
        let mut v = vec![0.0; n * n];
        for i in 0..n {
            v[i * n + i] = 1.0;
        }
        Tensor::from_vec(v, &[n, n]).cast(dtype)
    }

    /// `0, 1, 2, ...` along axis `dim` of `shape`.
    ///
    /// ```
    /// use cotangent::{DType, Tensor};
    /// assert_eq!(Tensor::iota(&[2, 3], 1, DType::I64).to_vec::<i64>(), vec![0, 1, 2, 0, 1, 2]);
    /// ```
    #[track_caller]
    pub fn iota(shape: &[usize], dim: usize, dtype: DType) -> Tensor {
        bind(Prim::Iota { dtype, shape: shape.to_vec(), dim }, &[])
    }

    /// Dtype and shape.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::from_vec(vec![1.0f32; 6], &[2, 3]).ty().to_string(), "f32[2,3]");
    /// ```
    pub fn ty(&self) -> TensorType {
        match &self.repr {
            Repr::Concrete(a) => a.ty(),
            Repr::Traced(t) => t.ty.clone(),
        }
    }

    /// [`Tensor::ty`] without copying a symbolic tensor's type (what `bind` checks operands with).
    pub(crate) fn ty_cow(&self) -> std::borrow::Cow<'_, TensorType> {
        match &self.repr {
            Repr::Concrete(a) => std::borrow::Cow::Owned(a.ty()),
            Repr::Traced(t) => std::borrow::Cow::Borrowed(&t.ty),
        }
    }

    /// The shape.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::from_vec(vec![0.0; 6], &[2, 3]).shape(), vec![2, 3]);
    /// ```
    pub fn shape(&self) -> Shape {
        match &self.repr {
            Repr::Concrete(a) => a.shape.clone(),
            Repr::Traced(t) => t.ty.shape.clone(),
        }
    }

    /// The element type.
    ///
    /// ```
    /// use cotangent::{DType, Tensor};
    /// assert_eq!(Tensor::scalar(true).dtype(), DType::Bool);
    /// ```
    pub fn dtype(&self) -> DType {
        match &self.repr {
            Repr::Concrete(a) => a.dtype(),
            Repr::Traced(t) => t.ty.dtype,
        }
    }

    /// Number of axes.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(1.0).rank(), 0);
    /// assert_eq!(Tensor::from_vec(vec![0.0; 6], &[2, 3]).rank(), 2);
    /// ```
    pub fn rank(&self) -> usize {
        match &self.repr {
            Repr::Concrete(a) => a.shape.len(),
            Repr::Traced(t) => t.ty.shape.len(),
        }
    }

    /// Number of elements.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::from_vec(vec![0.0; 6], &[2, 3]).numel(), 6);
    /// ```
    pub fn numel(&self) -> usize {
        numel(&self.shape())
    }

    #[track_caller]
    fn concrete_or_panic(&self, what: &str) -> &Array {
        match &self.repr {
            Repr::Concrete(a) => a,
            Repr::Traced(t) => panic!(
                "{what}: cannot read the value of a traced tensor ({}) inside a transformation; its value \
                 is not known while tracing. Express data-dependent control flow with select (`where_`), \
                 or the control-flow primitives cond, while_loop, scan and fori_loop",
                t.ty
            ),
        }
    }

    /// The elements in row-major order. Panics if `T` is not the dtype, or inside a transformation.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::from_vec(vec![1i32, 2], &[2]).to_vec::<i32>(), vec![1, 2]);
    /// ```
    #[track_caller]
    pub fn to_vec<T: Element>(&self) -> Vec<T> {
        let a = self.concrete_or_panic("to_vec");
        match a.as_slice::<T>() {
            Some(s) => s.to_vec(),
            None => panic!("to_vec: tensor is {}, not {} (use .cast() first)", a.ty(), T::DTYPE),
        }
    }

    /// The elements converted to `f64`, whatever the dtype.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::from_vec(vec![true, false], &[2]).to_f64_vec(), vec![1.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn to_f64_vec(&self) -> Vec<f64> {
        let a = self.concrete_or_panic("to_f64_vec");
        crate::with_data!(&a.data, v => v.iter().map(|x| x.to_f64()).collect())
    }

    /// The single element of a one-element tensor.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(4.0).item::<f64>(), 4.0);
    /// ```
    #[track_caller]
    pub fn item<T: Element>(&self) -> T {
        let a = self.concrete_or_panic("item");
        if a.numel() != 1 {
            panic!("item: tensor {} has {} elements, not 1", a.ty(), a.numel());
        }
        match a.as_slice::<T>() {
            Some(s) => s[0],
            None => panic!("item: tensor is {}, not {} (use .cast() first)", a.ty(), T::DTYPE),
        }
    }

    /// The same value with a zero derivative: transformations treat it as a constant.
    ///
    /// ```
    /// use cotangent::{grad, Tensor};
    /// // d/dx [x · sg(x)] = sg(x): the second factor is held constant.
    /// let g = grad(|x: &Tensor| x * x.stop_gradient());
    /// assert_eq!(g(&Tensor::scalar(3.0)).item::<f64>(), 3.0);
    /// ```
    #[track_caller]
    pub fn stop_gradient(&self) -> Tensor {
        if !self.is_traced() {
            return self.clone();
        }
        bind(Prim::StopGradient, &[self])
    }

    /// The raw storage of a concrete tensor.
    ///
    /// ```
    /// use cotangent::{Data, Tensor};
    /// let t = Tensor::from_vec(vec![1.0f32, 2.0], &[2]);
    /// assert!(matches!(t.data(), Data::F32(v) if v == &[1.0, 2.0]));
    /// ```
    #[track_caller]
    pub fn data(&self) -> &Data {
        &self.concrete_or_panic("data").data
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl From<f64> for Tensor {
    fn from(v: f64) -> Tensor {
        Tensor::scalar(v)
    }
}

impl From<f32> for Tensor {
    fn from(v: f32) -> Tensor {
        Tensor::scalar(v)
    }
}
