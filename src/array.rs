//! Concrete tensor storage: a row-major contiguous buffer of one dtype plus its shape.

use crate::shape::{checked_numel, numel, Shape};
use crate::{DType, Element, Error, TensorType};

/// Untyped contiguous storage: one `Vec` per runtime dtype.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// `f32` elements.
    F32(Vec<f32>),
    /// `f64` elements.
    F64(Vec<f64>),
    /// `i32` elements.
    I32(Vec<i32>),
    /// `i64` elements.
    I64(Vec<i64>),
    /// `bool` elements.
    Bool(Vec<bool>),
}

/// Runs `$body` with `$v` bound to the typed `Vec` inside a [`Data`] (by reference).
#[macro_export]
#[doc(hidden)]
macro_rules! with_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            $crate::array::Data::F32($v) => $body,
            $crate::array::Data::F64($v) => $body,
            $crate::array::Data::I32($v) => $body,
            $crate::array::Data::I64($v) => $body,
            $crate::array::Data::Bool($v) => $body,
        }
    };
}

impl Data {
    /// The dtype of the elements.
    ///
    /// ```
    /// use cotangent::{DType, Data};
    /// assert_eq!(Data::I32(vec![1]).dtype(), DType::I32);
    /// ```
    pub fn dtype(&self) -> DType {
        match self {
            Data::F32(_) => DType::F32,
            Data::F64(_) => DType::F64,
            Data::I32(_) => DType::I32,
            Data::I64(_) => DType::I64,
            Data::Bool(_) => DType::Bool,
        }
    }

    /// Number of elements.
    ///
    /// ```
    /// use cotangent::Data;
    /// assert_eq!(Data::F64(vec![1.0, 2.0]).len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        with_data!(self, v => v.len())
    }

    /// True when there are no elements.
    ///
    /// ```
    /// use cotangent::Data;
    /// assert!(Data::Bool(vec![]).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `n` copies of `value` converted to `dtype`.
    ///
    /// ```
    /// use cotangent::{DType, Data};
    /// assert_eq!(Data::filled(DType::I64, 2.0, 3), Data::I64(vec![2, 2, 2]));
    /// ```
    pub fn filled(dtype: DType, value: f64, n: usize) -> Data {
        match dtype {
            DType::F32 => Data::F32(vec![value as f32; n]),
            DType::F64 => Data::F64(vec![value; n]),
            DType::I32 => Data::I32(vec![value as i32; n]),
            DType::I64 => Data::I64(vec![value as i64; n]),
            DType::Bool => Data::Bool(vec![value != 0.0; n]),
        }
    }

    /// Storage for `len` elements of `dtype` with unspecified contents, for outputs that a
    /// kernel overwrites completely. Skipping the zeroing pass matters for large outputs:
    /// zeroing (or first-touch page faults) costs about as much as a fused loop computing them.
    ///
    /// # Safety
    /// The caller must write every element (through raw pointers or slices) before anything
    /// reads the data. Booleans are zeroed regardless (not every byte is a valid `bool`).
    #[allow(clippy::uninit_vec)]
    pub(crate) unsafe fn for_overwrite(dtype: DType, len: usize) -> Data {
        fn raw<T>(len: usize) -> Vec<T> {
            let mut v = Vec::with_capacity(len);
            // SAFETY: capacity is `len`; the caller writes every element before reading (see above).
            // Crate-private: no public code can obtain uninitialised storage.
            unsafe { v.set_len(len) };
            v
        }
        match dtype {
            DType::F32 => Data::F32(raw(len)),
            DType::F64 => Data::F64(raw(len)),
            DType::I32 => Data::I32(raw(len)),
            DType::I64 => Data::I64(raw(len)),
            DType::Bool => Data::filled(DType::Bool, 0.0, len),
        }
    }

    /// Element `i` converted to `f64` (bool: 0 or 1).
    ///
    /// ```
    /// use cotangent::Data;
    /// assert_eq!(Data::Bool(vec![false, true]).get_f64(1), 1.0);
    /// ```
    pub fn get_f64(&self, i: usize) -> f64 {
        with_data!(self, v => v[i].to_f64())
    }

    /// Element `i` as an index (integers and bools only make sense here).
    ///
    /// ```
    /// use cotangent::Data;
    /// assert_eq!(Data::I32(vec![4, 5]).get_i64(1), 5);
    /// ```
    pub fn get_i64(&self, i: usize) -> i64 {
        match self {
            Data::I32(v) => v[i] as i64,
            Data::I64(v) => v[i],
            Data::Bool(v) => v[i] as i64,
            Data::F32(v) => v[i] as i64,
            Data::F64(v) => v[i] as i64,
        }
    }

    /// Gathers elements at `idx` into new storage of the same dtype.
    ///
    /// ```
    /// use cotangent::Data;
    /// assert_eq!(Data::F32(vec![1.0, 2.0, 3.0]).take(&[2, 0]), Data::F32(vec![3.0, 1.0]));
    /// ```
    pub fn take(&self, idx: &[usize]) -> Data {
        with_data!(self, v => <_ as Element>::into_data(idx.iter().map(|&i| v[i]).collect::<Vec<_>>()))
    }
}

/// A concrete tensor value: contiguous row-major storage and a shape.
///
/// `Array` is what kernels consume and produce; users hold it inside a
/// [`Tensor`](crate::Tensor). Its invariant — the storage holds exactly as many
/// elements as the shape has — is checked by every constructor, and the fields are
/// private to the crate, so safe code cannot build an `Array` whose kernels would
/// read or write outside its buffer.
///
/// ```
/// use cotangent::{Array, Data};
/// let a = Array::new(vec![2, 2], Data::F32(vec![1.0, 2.0, 3.0, 4.0]));
/// assert_eq!(a.shape(), &[2, 2]);
/// assert!(Array::try_new(vec![1 << 24], Data::F32(vec![0.0; 16])).is_err());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    /// Extent of each axis.
    pub(crate) shape: Shape,
    /// The elements, `numel(shape)` of them.
    pub(crate) data: Data,
}

impl Array {
    /// Wraps storage and a shape.
    ///
    /// # Panics
    /// If the storage does not hold exactly `numel(shape)` elements (see [`Array::try_new`]
    /// for a `Result`).
    ///
    /// ```
    /// use cotangent::{Array, Data};
    /// let a = Array::new(vec![2], Data::I64(vec![1, 2]));
    /// assert_eq!(a.numel(), 2);
    /// ```
    #[track_caller]
    pub fn new(shape: Shape, data: Data) -> Array {
        match Array::try_new(shape, data) {
            Ok(a) => a,
            Err(e) => panic!("Array::new: {e}"),
        }
    }

    /// Wraps storage and a shape, or says why they do not fit together.
    ///
    /// ```
    /// use cotangent::{Array, Data};
    /// let err = Array::try_new(vec![3], Data::F64(vec![1.0])).unwrap_err();
    /// assert!(err.to_string().contains("1 elements cannot have shape [3]"));
    /// ```
    pub fn try_new(shape: Shape, data: Data) -> Result<Array, Error> {
        match checked_numel(&shape) {
            Some(n) if n == data.len() => Ok(Array { shape, data }),
            _ => Err(Error::ShapeMismatch { len: data.len(), shape }),
        }
    }

    /// Extent of each axis.
    ///
    /// ```
    /// use cotangent::{Array, Data};
    /// assert_eq!(Array::new(vec![1, 2], Data::F64(vec![0.0; 2])).shape(), &[1, 2]);
    /// ```
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The elements, row-major.
    ///
    /// ```
    /// use cotangent::{Array, Data};
    /// let a = Array::new(vec![1], Data::F64(vec![7.0]));
    /// assert_eq!(a.data(), &Data::F64(vec![7.0]));
    /// ```
    pub fn data(&self) -> &Data {
        &self.data
    }

    /// The shape and the storage, taken apart.
    ///
    /// ```
    /// use cotangent::{Array, Data};
    /// let (shape, data) = Array::new(vec![1], Data::I32(vec![3])).into_parts();
    /// assert_eq!((shape, data), (vec![1], Data::I32(vec![3])));
    /// ```
    pub fn into_parts(self) -> (Shape, Data) {
        (self.shape, self.data)
    }

    /// An array of `value` converted to `dtype`.
    ///
    /// ```
    /// use cotangent::{Array, DType};
    /// assert_eq!(Array::full(DType::F32, vec![2], 0.5).as_slice::<f32>(), Some(&[0.5f32, 0.5][..]));
    /// ```
    pub fn full(dtype: DType, shape: Shape, value: f64) -> Array {
        let n = numel(&shape);
        Array::new(shape, Data::filled(dtype, value, n))
    }

    /// A typed vector and a shape as an array.
    ///
    /// ```
    /// use cotangent::Array;
    /// assert_eq!(Array::from_vec(vec![1u8 == 1, false], vec![2]).numel(), 2);
    /// ```
    pub fn from_vec<T: Element>(v: Vec<T>, shape: Shape) -> Array {
        Array::new(shape, T::into_data(v))
    }

    /// The dtype of the elements.
    ///
    /// ```
    /// use cotangent::{Array, DType};
    /// assert_eq!(Array::from_vec(vec![1i64], vec![1]).dtype(), DType::I64);
    /// ```
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// Dtype and shape.
    ///
    /// ```
    /// use cotangent::Array;
    /// assert_eq!(Array::from_vec(vec![1.0f32; 6], vec![2, 3]).ty().to_string(), "f32[2,3]");
    /// ```
    pub fn ty(&self) -> TensorType {
        TensorType::new(self.dtype(), self.shape.clone())
    }

    /// Number of elements.
    ///
    /// ```
    /// use cotangent::Array;
    /// assert_eq!(Array::from_vec(vec![0i32; 6], vec![3, 2]).numel(), 6);
    /// ```
    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The elements as a typed slice, if `T` is the array's dtype.
    ///
    /// ```
    /// use cotangent::Array;
    /// let a = Array::from_vec(vec![1.0f64, 2.0], vec![2]);
    /// assert_eq!(a.as_slice::<f64>(), Some(&[1.0, 2.0][..]));
    /// assert!(a.as_slice::<f32>().is_none());
    /// ```
    pub fn as_slice<T: Element>(&self) -> Option<&[T]> {
        T::slice(&self.data)
    }
}
