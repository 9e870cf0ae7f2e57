//! Element-wise primitives: unary functions, binary functions and comparisons, select.

use crate::{DType, TensorType};

/// Element-wise unary functions.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Log1p,
    Expm1,
    Sin,
    Cos,
    Tan,
    Tanh,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Asinh,
    Atanh,
    Sqrt,
    Rsqrt,
    Cbrt,
    Abs,
    Sign,
    Floor,
    Ceil,
    /// Round half to even.
    Round,
    /// The sigmoid `1 / (1 + exp(-x))`.
    Logistic,
    Erf,
    Erfc,
    ErfInv,
    Reciprocal,
    /// True where the element is neither infinite nor NaN (bool out).
    IsFinite,
    /// Logical not (bool) or bitwise not (integers).
    Not,
}

impl UnaryOp {
    /// Every unary op, for tables and tests.
    pub const ALL: [UnaryOp; 31] = [
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Log1p,
        UnaryOp::Expm1,
        UnaryOp::Sin,
        UnaryOp::Cos,
        UnaryOp::Tan,
        UnaryOp::Tanh,
        UnaryOp::Asin,
        UnaryOp::Acos,
        UnaryOp::Atan,
        UnaryOp::Sinh,
        UnaryOp::Cosh,
        UnaryOp::Asinh,
        UnaryOp::Atanh,
        UnaryOp::Sqrt,
        UnaryOp::Rsqrt,
        UnaryOp::Cbrt,
        UnaryOp::Abs,
        UnaryOp::Sign,
        UnaryOp::Floor,
        UnaryOp::Ceil,
        UnaryOp::Round,
        UnaryOp::Logistic,
        UnaryOp::Erf,
        UnaryOp::Erfc,
        UnaryOp::ErfInv,
        UnaryOp::Reciprocal,
        UnaryOp::IsFinite,
        UnaryOp::Not,
    ];

    /// Name in dumps and messages.
    pub fn name(self) -> &'static str {
        use UnaryOp::*;
        match self {
            Neg => "neg",
            Exp => "exp",
            Log => "log",
            Log1p => "log1p",
            Expm1 => "expm1",
            Sin => "sin",
            Cos => "cos",
            Tan => "tan",
            Tanh => "tanh",
            Asin => "asin",
            Acos => "acos",
            Atan => "atan",
            Sinh => "sinh",
            Cosh => "cosh",
            Asinh => "asinh",
            Atanh => "atanh",
            Sqrt => "sqrt",
            Rsqrt => "rsqrt",
            Cbrt => "cbrt",
            Abs => "abs",
            Sign => "sign",
            Floor => "floor",
            Ceil => "ceil",
            Round => "round",
            Logistic => "logistic",
            Erf => "erf",
            Erfc => "erfc",
            ErfInv => "erf_inv",
            Reciprocal => "reciprocal",
            IsFinite => "is_finite",
            Not => "not",
        }
    }

    /// Which dtypes the op accepts.
    fn accepts(self, dtype: DType) -> bool {
        use UnaryOp::*;
        match self {
            Neg | Abs | Sign => dtype != DType::Bool,
            Not => !dtype.is_float(),
            _ => dtype.is_float(),
        }
    }

    /// Output type: same as the operand, except `is_finite` (bool).
    pub fn infer_type(self, x: &TensorType) -> Result<TensorType, String> {
        if !self.accepts(x.dtype) {
            let want = match self {
                UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sign => "a numeric",
                UnaryOp::Not => "a bool or integer",
                _ => "a float",
            };
            return Err(format!("expects {want} tensor, got {x}"));
        }
        let dtype = if self == UnaryOp::IsFinite {
            DType::Bool
        } else {
            x.dtype
        };
        Ok(TensorType::new(dtype, x.shape.clone()))
    }
}

/// Element-wise binary functions and comparisons.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    /// Float division; integer division truncates toward zero (and `x / 0 = 0`).
    Div,
    /// Remainder with the sign of the dividend (C `fmod`); integer `x % 0 = 0`.
    Rem,
    Pow,
    Max,
    Min,
    Atan2,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Xor,
}

impl BinaryOp {
    /// Every binary op, for tables and tests.
    pub const ALL: [BinaryOp; 18] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Rem,
        BinaryOp::Pow,
        BinaryOp::Max,
        BinaryOp::Min,
        BinaryOp::Atan2,
        BinaryOp::Eq,
        BinaryOp::Ne,
        BinaryOp::Lt,
        BinaryOp::Le,
        BinaryOp::Gt,
        BinaryOp::Ge,
        BinaryOp::And,
        BinaryOp::Or,
        BinaryOp::Xor,
    ];

    /// Name in dumps and messages.
    pub fn name(self) -> &'static str {
        use BinaryOp::*;
        match self {
            Add => "add",
            Sub => "sub",
            Mul => "mul",
            Div => "div",
            Rem => "rem",
            Pow => "pow",
            Max => "max",
            Min => "min",
            Atan2 => "atan2",
            Eq => "eq",
            Ne => "ne",
            Lt => "lt",
            Le => "le",
            Gt => "gt",
            Ge => "ge",
            And => "and",
            Or => "or",
            Xor => "xor",
        }
    }

    /// True for the comparisons, whose output is bool.
    pub fn is_comparison(self) -> bool {
        use BinaryOp::*;
        matches!(self, Eq | Ne | Lt | Le | Gt | Ge)
    }

    fn accepts(self, dtype: DType) -> bool {
        use BinaryOp::*;
        match self {
            And | Or | Xor => !dtype.is_float(),
            Eq | Ne => true,
            Atan2 => dtype.is_float(),
            _ => dtype != DType::Bool,
        }
    }

    /// Output type: operands must agree in dtype and shape; comparisons give bool.
    pub fn infer_type(self, a: &TensorType, b: &TensorType) -> Result<TensorType, String> {
        if a.dtype != b.dtype {
            return Err(format!(
                "operand dtypes differ: {a} vs {b} (convert one with .cast())"
            ));
        }
        if a.shape != b.shape {
            return Err(format!("operand shapes differ: {a} vs {b}"));
        }
        if !self.accepts(a.dtype) {
            return Err(format!("does not accept {} operands ({a} vs {b})", a.dtype));
        }
        let dtype = if self.is_comparison() {
            DType::Bool
        } else {
            a.dtype
        };
        Ok(TensorType::new(dtype, a.shape.clone()))
    }
}

/// Type rule of `select(pred, on_true, on_false)`.
pub fn select_type(p: &TensorType, t: &TensorType, f: &TensorType) -> Result<TensorType, String> {
    if p.dtype != DType::Bool {
        return Err(format!("predicate must be bool, got {p}"));
    }
    if t != f {
        return Err(format!("branches differ: {t} vs {f}"));
    }
    if p.shape != t.shape {
        return Err(format!("predicate shape differs from branches: {p} vs {t}"));
    }
    Ok(t.clone())
}
