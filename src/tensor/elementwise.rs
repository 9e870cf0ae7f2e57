//! Element-wise methods: unary functions, broadcasting binary functions, comparisons, select.

use crate::ops::{BinaryOp, Prim, UnaryOp};
use crate::shape::broadcast_shapes;
use crate::trace::{bind, lift_operands};
use crate::{DType, Tensor};

#[track_caller]
pub(crate) fn unary(op: UnaryOp, x: &Tensor) -> Tensor {
    bind(Prim::Unary(op), &[x])
}

/// Applies a binary primitive after numpy broadcasting of the operands.
#[track_caller]
pub(crate) fn binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> Tensor {
    let (ta, tb) = (a.ty(), b.ty());
    if ta.dtype != tb.dtype {
        panic!("{}: operand dtypes differ: {ta} vs {tb} (convert one with .cast())", op.name());
    }
    if ta.shape == tb.shape {
        return bind(Prim::Binary(op), &[a, b]);
    }
    // Record the broadcast of a concrete operand in the trace of a symbolic one.
    let ops = lift_operands(&[a, b]);
    let (a, b) = (&ops[0], &ops[1]);
    // A `match`, not `unwrap_or_else`: a panic inside a closure would report this file's line.
    let Some(shape) = broadcast_shapes(&ta.shape, &tb.shape) else {
        panic!("{}: cannot broadcast shapes {:?} and {:?}", op.name(), ta.shape, tb.shape)
    };
    bind(Prim::Binary(op), &[&a.broadcast_to(&shape), &b.broadcast_to(&shape)])
}

macro_rules! unary_methods {
    ($($(#[$doc:meta])* $name:ident => $op:ident;)*) => {
        impl Tensor {
            $(
                $(#[$doc])*
                #[track_caller]
                pub fn $name(&self) -> Tensor {
                    unary(UnaryOp::$op, self)
                }
            )*
        }
    };
}

unary_methods! {
    /// `e^x`.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(0.0).exp().item::<f64>(), 1.0);
    /// ```
    exp => Exp;
    /// Natural logarithm.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(1.0).log().item::<f64>(), 0.0);
    /// ```
    log => Log;
    /// `log(1 + x)`, accurate near 0.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(1e-20).log1p().item::<f64>(), 1e-20);
    /// ```
    log1p => Log1p;
    /// `e^x - 1`, accurate near 0.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(1e-20).expm1().item::<f64>(), 1e-20);
    /// ```
    expm1 => Expm1;
    /// Sine.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(0.0).sin().item::<f64>(), 0.0);
    /// ```
    sin => Sin;
    /// Cosine.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(0.0).cos().item::<f64>(), 1.0);
    /// ```
    cos => Cos;
    /// Tangent.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(0.0).tan().item::<f64>(), 0.0);
    /// ```
    tan => Tan;
    /// Hyperbolic tangent.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(0.0).tanh().item::<f64>(), 0.0);
    /// ```
    tanh => Tanh;
    /// Arcsine.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(0.0).asin().item::<f64>(), 0.0);
    /// ```
    asin => Asin;
    /// Arccosine.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(1.0).acos().item::<f64>(), 0.0);
    /// ```
    acos => Acos;
    /// Arctangent.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(0.0).atan().item::<f64>(), 0.0);
    /// ```
    atan => Atan;
    /// Hyperbolic sine.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(0.0).sinh().item::<f64>(), 0.0);
    /// ```
    sinh => Sinh;
    /// Hyperbolic cosine.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(0.0).cosh().item::<f64>(), 1.0);
    /// ```
    cosh => Cosh;
    /// Inverse hyperbolic sine.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(0.0).asinh().item::<f64>(), 0.0);
    /// ```
    asinh => Asinh;
    /// Inverse hyperbolic tangent.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(0.0).atanh().item::<f64>(), 0.0);
    /// ```
    atanh => Atanh;
    /// Square root.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(9.0).sqrt().item::<f64>(), 3.0);
    /// ```
    sqrt => Sqrt;
    /// `1 / sqrt(x)`.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(4.0).rsqrt().item::<f64>(), 0.5);
    /// ```
    rsqrt => Rsqrt;
    /// Cube root (defined for negative inputs).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(-8.0).cbrt().item::<f64>(), -2.0);
    /// ```
    cbrt => Cbrt;
    /// Absolute value; its derivative at 0 is 0.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(-2.0).abs().item::<f64>(), 2.0);
    /// ```
    abs => Abs;
    /// -1, 0 or 1 (NaN stays NaN).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(-2.0).sign().item::<f64>(), -1.0);
    /// ```
    sign => Sign;
    /// Round toward -inf.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(-1.5).floor().item::<f64>(), -2.0);
    /// ```
    floor => Floor;
    /// Round toward +inf.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(-1.5).ceil().item::<f64>(), -1.0);
    /// ```
    ceil => Ceil;
    /// Round to nearest, ties to even (like numpy).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(2.5).round().item::<f64>(), 2.0);
    /// ```
    round => Round;
    /// The logistic sigmoid `1 / (1 + e^-x)`, stable for large |x|.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(0.0).sigmoid().item::<f64>(), 0.5);
    /// ```
    sigmoid => Logistic;
    /// The error function.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(0.0).erf().item::<f64>(), 0.0);
    /// ```
    erf => Erf;
    /// The complementary error function `1 - erf(x)`, accurate for large x.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(0.0).erfc().item::<f64>(), 1.0);
    /// ```
    erfc => Erfc;
    /// The inverse error function on (-1, 1).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(0.0).erfinv().item::<f64>(), 0.0);
    /// ```
    erfinv => ErfInv;
    /// `1 / x`.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(4.0).recip().item::<f64>(), 0.25);
    /// ```
    recip => Reciprocal;
    /// True where the element is finite (bool out).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert!(!Tensor::scalar(f64::NAN).is_finite().item::<bool>());
    /// ```
    is_finite => IsFinite;
    /// Logical not (bool) or bitwise not (integers).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert!(Tensor::scalar(false).logical_not().item::<bool>());
    /// ```
    logical_not => Not;
}

macro_rules! binary_methods {
    ($($(#[$doc:meta])* $name:ident => $op:ident;)*) => {
        impl Tensor {
            $(
                $(#[$doc])*
                #[track_caller]
                pub fn $name(&self, other: impl AsOperand) -> Tensor {
                    let other = other.into_operand(self);
                    binary(BinaryOp::$op, self, &other)
                }
            )*
        }
    };
}

/// Something that can be the second operand of a binary method: a tensor, a
/// reference to one, or a Rust number (converted to the first operand's dtype).
///
/// Numbers are "weak" like JAX's Python scalars: they take the dtype of the tensor they
/// meet, so `x.maximum(0.0)` works for f32 and f64 alike; tensors keep their own dtype,
/// and two tensors of different dtypes never mix.
///
/// ```
/// use cotangent::{AsOperand, DType, Tensor};
/// let x = Tensor::scalar(2.0f32);
/// assert_eq!(1.5.into_operand(&x).dtype(), DType::F32);
/// ```
pub trait AsOperand {
    /// The operand as a tensor, using `like`'s dtype for plain numbers.
    fn into_operand(self, like: &Tensor) -> Tensor;
}

impl AsOperand for Tensor {
    fn into_operand(self, _: &Tensor) -> Tensor {
        self
    }
}
impl AsOperand for &Tensor {
    fn into_operand(self, _: &Tensor) -> Tensor {
        self.clone()
    }
}
macro_rules! number_operand {
    ($($t:ty),*) => {$(
        impl AsOperand for $t {
            fn into_operand(self, like: &Tensor) -> Tensor {
                like.scalar_like(self as f64)
            }
        }
    )*};
}
number_operand!(f32, f64, i32, i64);

/// A branch of [`where_`]: a reference to a tensor, or a Rust number.
///
/// A number takes the dtype of the other branch when that is a tensor (JAX's weak types),
/// else the dtype of its Rust type. Tensors are passed by reference, as before numbers were
/// accepted, so existing calls `where_(&p, &a, &b)` are unchanged.
///
/// ```
/// use cotangent::{DType, Tensor, WhereOperand};
/// let x = Tensor::scalar(1.0f32);
/// assert_eq!((&x).tensor_dtype(), Some(DType::F32));
/// assert_eq!(2i32.tensor_dtype(), None);
/// assert_eq!(2i32.own_dtype(), DType::I32);
/// ```
pub trait WhereOperand {
    /// The branch as a tensor; a number gets dtype `dtype`.
    ///
    /// ```
    /// use cotangent::{DType, WhereOperand};
    /// assert_eq!(1.5.into_branch(DType::F32).dtype(), DType::F32);
    /// ```
    fn into_branch(self, dtype: DType) -> Tensor;

    /// The dtype of a tensor branch, or `None` for a number (which adapts to the other branch).
    ///
    /// ```
    /// use cotangent::WhereOperand;
    /// assert!(0.0.tensor_dtype().is_none());
    /// ```
    fn tensor_dtype(&self) -> Option<DType>;

    /// The dtype of the branch on its own: a tensor's dtype, or a number's Rust type's.
    ///
    /// ```
    /// use cotangent::{DType, WhereOperand};
    /// assert_eq!(0i64.own_dtype(), DType::I64);
    /// ```
    fn own_dtype(&self) -> DType;
}

impl WhereOperand for &Tensor {
    fn into_branch(self, _: DType) -> Tensor {
        self.clone()
    }
    fn tensor_dtype(&self) -> Option<DType> {
        Some(self.dtype())
    }
    fn own_dtype(&self) -> DType {
        self.dtype()
    }
}
impl WhereOperand for &&Tensor {
    fn into_branch(self, _: DType) -> Tensor {
        (*self).clone()
    }
    fn tensor_dtype(&self) -> Option<DType> {
        Some(self.dtype())
    }
    fn own_dtype(&self) -> DType {
        self.dtype()
    }
}
macro_rules! number_branch {
    ($($t:ty => $d:ident),*) => {$(
        impl WhereOperand for $t {
            fn into_branch(self, dtype: DType) -> Tensor {
                Tensor::full(&[], self as f64, dtype)
            }
            fn tensor_dtype(&self) -> Option<DType> {
                None
            }
            fn own_dtype(&self) -> DType {
                DType::$d
            }
        }
    )*};
}
number_branch!(f32 => F32, f64 => F64, i32 => I32, i64 => I64);

binary_methods! {
    /// Element-wise sum with broadcasting (also `a + b`).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(1.0).add(2.0).item::<f64>(), 3.0);
    /// ```
    add => Add;
    /// Element-wise difference (also `a - b`).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(1.0).sub(2.0).item::<f64>(), -1.0);
    /// ```
    sub => Sub;
    /// Element-wise product (also `a * b`).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(3.0).mul(2.0).item::<f64>(), 6.0);
    /// ```
    mul => Mul;
    /// Element-wise quotient (also `a / b`); integers truncate toward zero.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(-7i64).div(2i64).item::<i64>(), -3);
    /// ```
    div => Div;
    /// Remainder with the sign of the dividend (also `a % b`).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(-7.0).rem(2.0).item::<f64>(), -1.0);
    /// ```
    rem => Rem;
    /// `self ^ other`.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(2.0).pow(10.0).item::<f64>(), 1024.0);
    /// ```
    pow => Pow;
    /// Element-wise maximum; at ties the derivative is split equally.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(2.0).maximum(3.0).item::<f64>(), 3.0);
    /// ```
    maximum => Max;
    /// Element-wise minimum; at ties the derivative is split equally.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(2.0).minimum(3.0).item::<f64>(), 2.0);
    /// ```
    minimum => Min;
    /// Four-quadrant arctangent of `self / other`.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(0.0).atan2(1.0).item::<f64>(), 0.0);
    /// ```
    atan2 => Atan2;
    /// `self == other` (bool out).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert!(Tensor::scalar(2.0).eq(2.0).item::<bool>());
    /// ```
    eq => Eq;
    /// `self != other` (bool out).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert!(Tensor::scalar(2.0).ne(3.0).item::<bool>());
    /// ```
    ne => Ne;
    /// `self < other` (bool out).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert!(Tensor::scalar(2.0).lt(3.0).item::<bool>());
    /// ```
    lt => Lt;
    /// `self <= other` (bool out).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert!(Tensor::scalar(2.0).le(2.0).item::<bool>());
    /// ```
    le => Le;
    /// `self > other` (bool out).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert!(Tensor::scalar(3.0).gt(2.0).item::<bool>());
    /// ```
    gt => Gt;
    /// `self >= other` (bool out).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert!(Tensor::scalar(2.0).ge(2.0).item::<bool>());
    /// ```
    ge => Ge;
}

impl Tensor {
    /// Logical (bool) or bitwise (integer) and.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let t = Tensor::from_vec(vec![true, false], &[2]);
    /// assert_eq!(t.logical_and(&Tensor::scalar(true)).to_vec::<bool>(), vec![true, false]);
    /// ```
    #[track_caller]
    pub fn logical_and(&self, other: &Tensor) -> Tensor {
        binary(BinaryOp::And, self, other)
    }

    /// Logical (bool) or bitwise (integer) or.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let t = Tensor::from_vec(vec![true, false], &[2]);
    /// assert_eq!(t.logical_or(&Tensor::scalar(false)).to_vec::<bool>(), vec![true, false]);
    /// ```
    #[track_caller]
    pub fn logical_or(&self, other: &Tensor) -> Tensor {
        binary(BinaryOp::Or, self, other)
    }

    /// Logical (bool) or bitwise (integer) exclusive or.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let t = Tensor::from_vec(vec![true, false], &[2]);
    /// assert_eq!(t.logical_xor(&Tensor::scalar(true)).to_vec::<bool>(), vec![false, true]);
    /// ```
    #[track_caller]
    pub fn logical_xor(&self, other: &Tensor) -> Tensor {
        binary(BinaryOp::Xor, self, other)
    }

    /// `x²`.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(3.0).square().item::<f64>(), 9.0);
    /// ```
    #[track_caller]
    pub fn square(&self) -> Tensor {
        binary(BinaryOp::Mul, self, self)
    }

    /// `x^p` for a Rust number `p`.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(3.0).powf(2.0).item::<f64>(), 9.0);
    /// ```
    #[track_caller]
    pub fn powf(&self, p: f64) -> Tensor {
        binary(BinaryOp::Pow, self, &self.scalar_like(p))
    }
}

/// `where(pred, on_true, on_false)`, element-wise, with broadcasting of all three.
///
/// Each branch is a reference to a tensor or a Rust number ([`WhereOperand`]). A number takes the
/// dtype of the other branch when that is a tensor (like a literal in `x * 2.0`), else its
/// own (`f64`, `f32`, `i32`, `i64`); two tensor branches must have the same dtype.
///
/// ```
/// use cotangent::{where_, Tensor};
/// let x = Tensor::from_vec(vec![-1.0f32, 2.0], &[2]);
/// let y = where_(&x.gt(0.0), &x, &Tensor::scalar(0.0f32));
/// assert_eq!(y.to_vec::<f32>(), vec![0.0, 2.0]);
/// // Numbers broadcast and adapt to the other branch's dtype (f32 here).
/// assert_eq!(where_(&x.gt(0.0), &x, 0.0).to_vec::<f32>(), vec![0.0, 2.0]);
/// // Two numbers: a mask of the numbers' own dtype.
/// assert_eq!(where_(&x.gt(0.0), 1.0, -1.0).to_vec::<f64>(), vec![-1.0, 1.0]);
/// ```
#[track_caller]
pub fn where_(pred: &Tensor, on_true: impl WhereOperand, on_false: impl WhereOperand) -> Tensor {
    let (dt, df) = (on_true.tensor_dtype(), on_false.tensor_dtype());
    let dtype = dt.or(df).unwrap_or(on_true.own_dtype());
    select(pred, &on_true.into_branch(dtype), &on_false.into_branch(dtype))
}

/// [`where_`] for tensor branches.
#[track_caller]
fn select(pred: &Tensor, on_true: &Tensor, on_false: &Tensor) -> Tensor {
    if pred.dtype() != DType::Bool {
        panic!("where_: the predicate must be bool, got {}", pred.ty());
    }
    if on_true.dtype() != on_false.dtype() {
        panic!("where_: branch dtypes differ: {} vs {} (convert one with .cast())", on_true.ty(), on_false.ty());
    }
    let (ps, ts, fs) = (pred.shape(), on_true.shape(), on_false.shape());
    let Some(shape) = broadcast_shapes(&ps, &ts).and_then(|s| broadcast_shapes(&s, &fs)) else {
        panic!("where_: cannot broadcast shapes {ps:?}, {ts:?} and {fs:?}")
    };
    // Record the broadcast of concrete operands in the trace of a symbolic one.
    let ops = lift_operands(&[pred, on_true, on_false]);
    let (pred, on_true, on_false) = (&ops[0], &ops[1], &ops[2]);
    bind(Prim::Select, &[&pred.broadcast_to(&shape), &on_true.broadcast_to(&shape), &on_false.broadcast_to(&shape)])
}
