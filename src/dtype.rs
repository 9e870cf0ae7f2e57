//! Runtime element types and the [`Element`] trait that links them to Rust types.

use std::fmt;

/// The element type of a tensor, chosen at run time.
///
/// ```
/// use cotangent::{DType, Tensor};
/// let x = Tensor::from_vec(vec![1.0f32, 2.0], &[2]);
/// assert_eq!(x.dtype(), DType::F32);
/// assert!(DType::F64.is_float());
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// 32-bit IEEE float.
    F32,
    /// 64-bit IEEE float.
    F64,
    /// 32-bit signed integer.
    I32,
    /// 64-bit signed integer.
    I64,
    /// Boolean.
    Bool,
}

impl DType {
    /// True for `F32` and `F64`: the dtypes that carry derivatives.
    ///
    /// ```
    /// use cotangent::DType;
    /// assert!(DType::F32.is_float() && !DType::I32.is_float());
    /// ```
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    /// True for `I32` and `I64`.
    ///
    /// ```
    /// use cotangent::DType;
    /// assert!(DType::I64.is_int() && !DType::Bool.is_int());
    /// ```
    pub fn is_int(self) -> bool {
        matches!(self, DType::I32 | DType::I64)
    }

    /// The short name used in dumps and messages (`f32`, `i64`, `bool`, ...).
    ///
    /// ```
    /// use cotangent::DType;
    /// assert_eq!(DType::Bool.name(), "bool");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::Bool => "bool",
        }
    }

    /// Size of one element in bytes.
    ///
    /// ```
    /// use cotangent::DType;
    /// assert_eq!(DType::F64.size_in_bytes(), 8);
    /// ```
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F64 | DType::I64 => 8,
            DType::Bool => 1,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A Rust type that can be a tensor element: `f32`, `f64`, `i32`, `i64`, `bool`.
///
/// ```
/// use cotangent::{DType, Element};
/// assert_eq!(<f64 as Element>::DTYPE, DType::F64);
/// assert_eq!(<i32 as Element>::from_f64(3.0), 3);
/// ```
pub trait Element: Copy + Send + Sync + PartialEq + fmt::Debug + fmt::Display + 'static {
    /// The runtime dtype of this Rust type.
    const DTYPE: DType;
    /// Converts to `f64` (bool: 0 or 1).
    fn to_f64(self) -> f64;
    /// Converts from `f64` the way `as` does (bool: non-zero is true).
    fn from_f64(v: f64) -> Self;
    /// Wraps a vector of this type as untyped storage.
    fn into_data(v: Vec<Self>) -> crate::array::Data;
    /// Views untyped storage as a slice of this type, if the dtype matches.
    fn slice(data: &crate::array::Data) -> Option<&[Self]>;
}

macro_rules! element {
    ($t:ty, $dt:ident) => {
        impl Element for $t {
            const DTYPE: DType = DType::$dt;
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn into_data(v: Vec<Self>) -> crate::array::Data {
                crate::array::Data::$dt(v)
            }
            fn slice(data: &crate::array::Data) -> Option<&[Self]> {
                match data {
                    crate::array::Data::$dt(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}
element!(f32, F32);
element!(f64, F64);
element!(i32, I32);
element!(i64, I64);

impl Element for bool {
    const DTYPE: DType = DType::Bool;
    fn to_f64(self) -> f64 {
        if self {
            1.0
        } else {
            0.0
        }
    }
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
    fn into_data(v: Vec<Self>) -> crate::array::Data {
        crate::array::Data::Bool(v)
    }
    fn slice(data: &crate::array::Data) -> Option<&[Self]> {
        match data {
            crate::array::Data::Bool(v) => Some(v),
            _ => None,
        }
    }
}
