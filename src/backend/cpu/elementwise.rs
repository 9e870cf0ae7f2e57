//! Element-wise kernels: the scalar formula of every unary and binary primitive.

use super::math;
use crate::array::{Array, Data};
use crate::ops::{BinaryOp, UnaryOp};
use crate::TensorType;

/// The float operations the kernels need, for `f32` and `f64`.
pub(crate) trait Real: Copy + PartialOrd + std::ops::Neg<Output = Self> {
    /// Below this magnitude `sin_small`/`cos_small` are the sine and cosine.
    const SIN_LIMIT: Self;
    fn unary(op: UnaryOp, x: Self) -> Self;
    fn binary(op: BinaryOp, a: Self, b: Self) -> Self;
    /// The vectorisable sine/cosine, valid for `|x| <= SIN_LIMIT`.
    fn sin_small(x: Self, cos: bool) -> Self;
    fn magnitude(self) -> Self;
}

/// The inverse error function in f64: Giles' single-precision approximation refined by
/// two Newton steps on `erf(y) - x`.
pub(crate) fn erfinv_f64(x: f64) -> f64 {
    if x.is_nan() || !(-1.0..=1.0).contains(&x) {
        return f64::NAN;
    }
    if x == 1.0 {
        return f64::INFINITY;
    }
    if x == -1.0 {
        return f64::NEG_INFINITY;
    }
    let w = -((1.0 - x) * (1.0 + x)).ln();
    let mut y = if w < 5.0 {
        let w = w - 2.5;
        let mut p = 2.810_226_36e-08;
        for c in [
            3.432_739_39e-07,
            -3.523_387_7e-06,
            -4.391_506_54e-06,
            0.000_218_580_87,
            -0.001_253_725_03,
            -0.004_177_681_64,
            0.246_640_727,
            1.501_409_41,
        ] {
            p = c + p * w;
        }
        p * x
    } else {
        let w = w.sqrt() - 3.0;
        let mut p = -0.000_200_214_257;
        for c in [
            0.000_100_950_558,
            0.001_349_343_22,
            -0.003_673_428_44,
            0.005_739_507_73,
            -0.007_622_461_3,
            0.009_438_870_47,
            1.001_674_06,
            2.832_976_82,
        ] {
            p = c + p * w;
        }
        p * x
    };
    for _ in 0..2 {
        let err = libm::erf(y) - x;
        y -= err / (std::f64::consts::FRAC_2_SQRT_PI * (-y * y).exp());
    }
    y
}

macro_rules! real {
    ($t:ty, $erf:path, $erfc:path, $exp:path, $tanh:path, $logistic:path, $sin_limit:expr, $sin:expr) => {
        impl Real for $t {
            const SIN_LIMIT: $t = $sin_limit;
            #[inline(always)]
            fn sin_small(x: $t, cos: bool) -> $t {
                $sin(x, cos)
            }
            #[inline(always)]
            fn magnitude(self) -> $t {
                self.abs()
            }
            #[inline(always)]
            fn unary(op: UnaryOp, x: $t) -> $t {
                use UnaryOp::*;
                match op {
                    Neg => -x,
                    Exp => $exp(x),
                    Log => x.ln(),
                    Log1p => x.ln_1p(),
                    Expm1 => x.exp_m1(),
                    Sin if x.abs() <= $sin_limit => $sin(x, false),
                    Sin => x.sin(),
                    Cos if x.abs() <= $sin_limit => $sin(x, true),
                    Cos => x.cos(),
                    Tan => x.tan(),
                    Tanh => $tanh(x),
                    Asin => x.asin(),
                    Acos => x.acos(),
                    Atan => x.atan(),
                    Sinh => x.sinh(),
                    Cosh => x.cosh(),
                    Asinh => x.asinh(),
                    Atanh => x.atanh(),
                    Sqrt => x.sqrt(),
                    Rsqrt => 1.0 / x.sqrt(),
                    Cbrt => x.cbrt(),
                    Abs => x.abs(),
                    Sign => {
                        if x > 0.0 {
                            1.0
                        } else if x < 0.0 {
                            -1.0
                        } else {
                            x // 0, -0 and NaN map to themselves
                        }
                    }
                    Floor => x.floor(),
                    Ceil => x.ceil(),
                    Round => x.round_ties_even(),
                    // Never exponentiates a large positive number.
                    Logistic => $logistic(x),
                    Erf => $erf(x),
                    Erfc => $erfc(x),
                    ErfInv => erfinv_f64(x as f64) as $t,
                    Reciprocal => 1.0 / x,
                    IsFinite | Not => unreachable!("{} is not a float-to-float kernel", op.name()),
                }
            }
            #[inline(always)]
            fn binary(op: BinaryOp, a: $t, b: $t) -> $t {
                use BinaryOp::*;
                match op {
                    Add => a + b,
                    Sub => a - b,
                    Mul => a * b,
                    Div => a / b,
                    Rem => a % b,
                    Pow => a.powf(b),
                    // NaN-propagating, like numpy's maximum/minimum; of two equal values
                    // (+0 and -0) the second. Fully specified, so native kernels match it.
                    Max => {
                        if a.is_nan() || b.is_nan() {
                            <$t>::NAN
                        } else if a > b {
                            a
                        } else {
                            b
                        }
                    }
                    Min => {
                        if a.is_nan() || b.is_nan() {
                            <$t>::NAN
                        } else if a < b {
                            a
                        } else {
                            b
                        }
                    }
                    Atan2 => a.atan2(b),
                    _ => unreachable!("{} is not a float-to-float kernel", op.name()),
                }
            }
        }
    };
}
real!(
    f32,
    libm::erff,
    libm::erfcf,
    math::exp_f32,
    math::tanh_f32,
    math::logistic_f32,
    math::SIN_F32_LIMIT,
    math::sin_cos_f32
);
// f64 sine and cosine stay with std (SIN_LIMIT = -1 disables the fast path).
real!(
    f64,
    libm::erf,
    libm::erfc,
    math::exp_f64,
    math::tanh_f64,
    math::logistic_f64,
    -1.0,
    |x: f64, cos: bool| if cos { x.cos() } else { x.sin() }
);

macro_rules! int_kernels {
    ($name_u:ident, $name_b:ident, $t:ty) => {
        #[inline(always)]
        pub(crate) fn $name_u(op: UnaryOp, x: $t) -> $t {
            match op {
                UnaryOp::Neg => x.wrapping_neg(),
                UnaryOp::Abs => x.wrapping_abs(),
                UnaryOp::Sign => x.signum(),
                UnaryOp::Not => !x,
                _ => unreachable!("{} does not take integers", op.name()),
            }
        }
        #[inline(always)]
        pub(crate) fn $name_b(op: BinaryOp, a: $t, b: $t) -> $t {
            use BinaryOp::*;
            match op {
                Add => a.wrapping_add(b),
                Sub => a.wrapping_sub(b),
                Mul => a.wrapping_mul(b),
                Div => {
                    if b == 0 {
                        0
                    } else {
                        a.wrapping_div(b)
                    }
                }
                Rem => {
                    if b == 0 {
                        0
                    } else {
                        a.wrapping_rem(b)
                    }
                }
                Pow => {
                    if b >= 0 {
                        // Exponents beyond u32 saturate (only 0, ±1 survive them anyway).
                        a.wrapping_pow(u32::try_from(b).unwrap_or(u32::MAX))
                    } else if a == 1 {
                        1
                    } else if a == -1 {
                        if b % 2 == 0 {
                            1
                        } else {
                            -1
                        }
                    } else {
                        0
                    }
                }
                Max => a.max(b),
                Min => a.min(b),
                And => a & b,
                Or => a | b,
                Xor => a ^ b,
                _ => unreachable!("{} does not give integers", op.name()),
            }
        }
    };
}
int_kernels!(unary_i32, binary_i32, i32);
int_kernels!(unary_i64, binary_i64, i64);

fn map<T: Copy, U>(v: &[T], f: impl Fn(T) -> U) -> Vec<U> {
    v.iter().map(|&x| f(x)).collect()
}

fn zip<T: Copy, U>(a: &[T], b: &[T], f: impl Fn(T, T) -> U) -> Vec<U> {
    a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
}

/// Runs a unary primitive.
pub fn unary(op: UnaryOp, x: &Array, out: &TensorType) -> Array {
    let data = match (&x.data, op) {
        (Data::F32(v), UnaryOp::IsFinite) => Data::Bool(map(v, |a| a.is_finite())),
        (Data::F64(v), UnaryOp::IsFinite) => Data::Bool(map(v, |a| a.is_finite())),
        (Data::F32(v), _) => {
            let mut o = vec![0.0; v.len()];
            super::fused::unary_float(op, v, &mut o);
            Data::F32(o)
        }
        (Data::F64(v), _) => {
            let mut o = vec![0.0; v.len()];
            super::fused::unary_float(op, v, &mut o);
            Data::F64(o)
        }
        (Data::I32(v), _) => Data::I32(map(v, |a| unary_i32(op, a))),
        (Data::I64(v), _) => Data::I64(map(v, |a| unary_i64(op, a))),
        (Data::Bool(v), UnaryOp::Not) => Data::Bool(map(v, |a| !a)),
        (d, _) => unreachable!("{} on {}", op.name(), d.dtype()),
    };
    Array::new(out.shape.clone(), data)
}

#[inline(always)]
pub(crate) fn compare<T: PartialOrd>(op: BinaryOp, a: T, b: T) -> bool {
    match op {
        BinaryOp::Eq => a == b,
        BinaryOp::Ne => a != b,
        BinaryOp::Lt => a < b,
        BinaryOp::Le => a <= b,
        BinaryOp::Gt => a > b,
        BinaryOp::Ge => a >= b,
        _ => unreachable!(),
    }
}

/// Runs a binary primitive on operands of equal shape and dtype.
pub fn binary(op: BinaryOp, a: &Array, b: &Array, out: &TensorType) -> Array {
    use Data::*;
    let data = if op.is_comparison() {
        Bool(match (&a.data, &b.data) {
            (F32(x), F32(y)) => zip(x, y, |p, q| compare(op, p, q)),
            (F64(x), F64(y)) => zip(x, y, |p, q| compare(op, p, q)),
            (I32(x), I32(y)) => zip(x, y, |p, q| compare(op, p, q)),
            (I64(x), I64(y)) => zip(x, y, |p, q| compare(op, p, q)),
            (Bool(x), Bool(y)) => zip(x, y, |p, q| compare(op, p, q)),
            _ => unreachable!("operand dtypes checked by the type rule"),
        })
    } else {
        match (&a.data, &b.data) {
            // The same vectorised slice kernels as fused loops (so eager and jit agree bitwise).
            (F32(x), F32(y)) => {
                let mut o = vec![0.0; x.len()];
                super::fused::binary_float(op, x, y, &mut o);
                F32(o)
            }
            (F64(x), F64(y)) => {
                let mut o = vec![0.0; x.len()];
                super::fused::binary_float(op, x, y, &mut o);
                F64(o)
            }
            (I32(x), I32(y)) => I32(zip(x, y, |p, q| binary_i32(op, p, q))),
            (I64(x), I64(y)) => I64(zip(x, y, |p, q| binary_i64(op, p, q))),
            (Bool(x), Bool(y)) => Bool(zip(x, y, |p, q| match op {
                BinaryOp::And => p & q,
                BinaryOp::Or => p | q,
                BinaryOp::Xor => p ^ q,
                _ => unreachable!("{} on bool", op.name()),
            })),
            _ => unreachable!("operand dtypes checked by the type rule"),
        }
    };
    Array::new(out.shape.clone(), data)
}

/// `select(pred, on_true, on_false)`.
pub fn select(pred: &Array, t: &Array, f: &Array) -> Array {
    let p = match &pred.data {
        Data::Bool(p) => p,
        _ => unreachable!("predicate checked by the type rule"),
    };
    fn pick<T: Copy>(p: &[bool], t: &[T], f: &[T]) -> Vec<T> {
        p.iter().zip(t.iter().zip(f)).map(|(&c, (&x, &y))| if c { x } else { y }).collect()
    }
    use Data::*;
    let data = match (&t.data, &f.data) {
        (F32(x), F32(y)) => F32(pick(p, x, y)),
        (F64(x), F64(y)) => F64(pick(p, x, y)),
        (I32(x), I32(y)) => I32(pick(p, x, y)),
        (I64(x), I64(y)) => I64(pick(p, x, y)),
        (Bool(x), Bool(y)) => Bool(pick(p, x, y)),
        _ => unreachable!("branch dtypes checked by the type rule"),
    };
    Array::new(t.shape.clone(), data)
}
