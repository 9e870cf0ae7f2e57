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
        let dtype = if self == UnaryOp::IsFinite { DType::Bool } else { x.dtype };
        Ok(TensorType::new(dtype, x.shape.clone()))
    }

    /// Whether [`UnaryOp::infer_type`] of `x` is `Ok(ty)`, without building the type
    /// (`Graph::validate` checks every node of long graphs).
    pub(crate) fn has_type(self, x: &TensorType, ty: &TensorType) -> bool {
        let dtype = if self == UnaryOp::IsFinite { DType::Bool } else { x.dtype };
        self.accepts(x.dtype) && ty.dtype == dtype && ty.shape == x.shape
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
            return Err(format!("operand dtypes differ: {a} vs {b} (convert one with .cast())"));
        }
        if a.shape != b.shape {
            return Err(format!("operand shapes differ: {a} vs {b}"));
        }
        if !self.accepts(a.dtype) {
            return Err(format!("does not accept {} operands ({a} vs {b})", a.dtype));
        }
        let dtype = if self.is_comparison() { DType::Bool } else { a.dtype };
        Ok(TensorType::new(dtype, a.shape.clone()))
    }

    /// Whether [`BinaryOp::infer_type`] of `a`, `b` is `Ok(ty)`, without building the type.
    pub(crate) fn has_type(self, a: &TensorType, b: &TensorType, ty: &TensorType) -> bool {
        let dtype = if self.is_comparison() { DType::Bool } else { a.dtype };
        a.dtype == b.dtype && a.shape == b.shape && self.accepts(a.dtype) && ty.dtype == dtype && ty.shape == a.shape
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

// ---------------------------------------------------------------------------
// Derivative and batching rules.
// ---------------------------------------------------------------------------

use super::rules::{add_tangents, materialize, LinArg};
use crate::Tensor;
use std::f64::consts::PI;

impl UnaryOp {
    /// Tangent of `y = op(x)` along `t`; `None` where the derivative is zero.
    pub(crate) fn jvp(self, x: &Tensor, t: &Tensor, y: &Tensor) -> Option<Tensor> {
        use UnaryOp::*;
        let sq = |v: &Tensor| v * v;
        Some(match self {
            Neg => -t,
            Exp => t * y,
            Log => t / x,
            Log1p => t / (x + 1.0),
            Expm1 => t * (y + 1.0),
            Sin => t * x.cos(),
            Cos => -(t * x.sin()),
            Tan => t * (sq(y) + 1.0),
            Tanh => t * (1.0 - sq(y)),
            Asin => t * (1.0 - sq(x)).rsqrt(),
            Acos => -(t * (1.0 - sq(x)).rsqrt()),
            Atan => t / (sq(x) + 1.0),
            Sinh => t * x.cosh(),
            Cosh => t * x.sinh(),
            Asinh => t * (sq(x) + 1.0).rsqrt(),
            Atanh => t / (1.0 - sq(x)),
            Sqrt => t * 0.5 / y,
            Rsqrt => t * y / x * -0.5,
            Cbrt => t / (sq(y) * 3.0),
            // abs'(0) = 0: sign(0) is 0.
            Abs => t * x.sign(),
            Logistic => t * y * (1.0 - y),
            Erf => t * (-sq(x)).exp() * (2.0 / PI.sqrt()),
            Erfc => t * (-sq(x)).exp() * (-2.0 / PI.sqrt()),
            ErfInv => t * sq(y).exp() * (PI.sqrt() / 2.0),
            Reciprocal => -(t * sq(y)),
            // Piecewise constant: zero derivative everywhere it exists.
            Sign | Floor | Ceil | Round | IsFinite | Not => return None,
        })
    }
}

impl BinaryOp {
    /// Tangent of `y = op(a, b)` along `(ta, tb)`; absent tangents are zero.
    pub(crate) fn jvp(
        self,
        a: &Tensor,
        b: &Tensor,
        ta: Option<&Tensor>,
        tb: Option<&Tensor>,
        y: &Tensor,
    ) -> Option<Tensor> {
        use BinaryOp::*;
        // d/da contribution and d/db contribution as closures on the tangent.
        let lin = |da: &dyn Fn(&Tensor) -> Tensor, db: &dyn Fn(&Tensor) -> Tensor| add_tangents(ta.map(da), tb.map(db));
        match self {
            Add => lin(&|t| t.clone(), &|t| t.clone()),
            Sub => lin(&|t| t.clone(), &|t| -t),
            Mul => lin(&|t| t * b, &|t| a * t),
            Div => lin(&|t| t / b, &|t| -(t * y / b)),
            // d/db of a - b·trunc(a/b) is -trunc(a/b).
            Rem => lin(&|t| t.clone(), &|t| {
                let q = a / b;
                -(t * q.sign() * q.abs().floor())
            }),
            Pow => lin(
                &|t| {
                    // b·a^(b-1), defined as 0 where b = 0 (also at a = 0).
                    let d = b * a.pow(b - 1.0);
                    t * where_(&b.eq(0.0), &b.zeros_like(), &d)
                },
                &|t| {
                    // log(a)·y, with log replaced by 0 where a = 0 (the limit of the product).
                    let safe = where_(&a.eq(0.0), &a.ones_like(), a);
                    t * safe.log() * y
                },
            ),
            // Clarke subgradient: ties split the derivative equally.
            Max | Min => {
                let (win, lose) = if self == Max { (a.gt(b), a.lt(b)) } else { (a.lt(b), a.gt(b)) };
                let half = a.scalar_like(0.5).broadcast_to(&a.shape());
                let wa = where_(&win, &a.ones_like(), &where_(&lose, &a.zeros_like(), &half));
                let wb = 1.0 - &wa;
                lin(&|t| t * &wa, &|t| t * &wb)
            }
            Atan2 => {
                let r = a * a + b * b;
                lin(&|t| t * b / &r, &|t| -(t * a / &r))
            }
            Eq | Ne | Lt | Le | Gt | Ge | And | Or | Xor => None,
        }
    }

    /// Cotangents of the linear operands of `op(a, b)` (add, sub, and mul/div by a constant).
    pub(crate) fn transpose(self, ct: &Tensor, a: &LinArg, b: &LinArg) -> Vec<Option<Tensor>> {
        use BinaryOp::*;
        let lin = |x: &LinArg, v: Tensor| if x.is_linear() { Some(v) } else { None };
        match (self, a, b) {
            (Add, _, _) => vec![lin(a, ct.clone()), lin(b, ct.clone())],
            (Sub, _, _) => vec![lin(a, ct.clone()), lin(b, -ct)],
            (Mul, LinArg::Linear(_), LinArg::Value(bv)) => vec![Some(ct * *bv), None],
            (Mul, LinArg::Value(av), LinArg::Linear(_)) => vec![None, Some(*av * ct)],
            (Div, LinArg::Linear(_), LinArg::Value(bv)) => vec![Some(ct / *bv), None],
            _ => panic!("transpose: {} is not linear in the operands it was given", self.name()),
        }
    }
}

fn where_(p: &Tensor, t: &Tensor, f: &Tensor) -> Tensor {
    crate::where_(p, t, f)
}

/// Tangent of `select(p, on_true, on_false)`.
pub(crate) fn select_jvp(p: &Tensor, t: &[Option<&Tensor>], on_true: &Tensor) -> Option<Tensor> {
    if t[1].is_none() && t[2].is_none() {
        return None;
    }
    let tt = materialize(t[1], on_true);
    let tf = materialize(t[2], on_true);
    Some(where_(p, &tt, &tf))
}

/// Cotangents of `select(p, on_true, on_false)` with a fixed predicate.
pub(crate) fn select_transpose(ct: &Tensor, args: &[LinArg]) -> Vec<Option<Tensor>> {
    let p = args[0].value("select predicate");
    let zero = ct.zeros_like();
    vec![None, args[1].is_linear().then(|| where_(p, ct, &zero)), args[2].is_linear().then(|| where_(p, &zero, ct))]
}

// ---------------------------------------------------------------------------
// Jet (Taylor-mode) rules: normalised series in, normalised series out (see `series`).
// ---------------------------------------------------------------------------

use super::series::{self, Exponent, Series};

/// Applies a rule that is linear in the operands' coefficients (a jvp rule with fixed primals)
/// to every coefficient: the jet of linear and piecewise-linear primitives.
pub(crate) fn linear_jet(
    jvp: &dyn Fn(&[Option<&Tensor>]) -> Option<Tensor>,
    xs: &[&[Option<Tensor>]],
    y: &Tensor,
) -> Series {
    let k = series::order(xs[0]);
    let mut out = vec![Some(y.clone())];
    for j in 1..=k {
        let ts: Vec<Option<&Tensor>> = xs.iter().map(|s| s[j].as_ref()).collect();
        out.push(jvp(&ts));
    }
    out
}

impl UnaryOp {
    /// The series of `op(x(t))` given the series of `x` and the primal output `y`.
    pub(crate) fn jet(self, x: &[Option<Tensor>], y: &Tensor) -> Series {
        use UnaryOp::*;
        let x0 = series::primal(x);
        let y0 = y.clone();
        let sqrt_pi = PI.sqrt();
        match self {
            // Linear, piecewise linear (abs: the active branch; abs(0) has the zero series,
            // as abs'(0) = 0) and piecewise constant.
            Neg | Abs | Sign | Floor | Ceil | Round | IsFinite | Not => {
                linear_jet(&|t| t[0].and_then(|t| self.jvp(x0, t, y)), &[x], y)
            }
            Exp => series::exp(x, y0),
            Expm1 => series::exp_shifted(x, y0, 1.0),
            Log => series::log(x, y0),
            Log1p => {
                let mut u = x.to_vec();
                u[0] = Some(x0 + 1.0);
                series::log(&u, y0)
            }
            Sin => series::sin_cos(x, y0, x0.cos(), false).0,
            Cos => series::sin_cos(x, x0.sin(), y0, false).1,
            Sinh => series::sin_cos(x, y0, x0.cosh(), true).0,
            Cosh => series::sin_cos(x, x0.sinh(), y0, true).1,
            // y' = (1 ± y²)·x'
            Tan | Tanh => {
                let s = if self == Tan { 1.0 } else { -1.0 };
                series::ode(x, y0, |m, y| {
                    let sq = series::cauchy_term(y, y, m, &|a, b| a * b).map(|v| v * s);
                    if m == 0 {
                        sq.map(|v| v + 1.0)
                    } else {
                        sq
                    }
                })
            }
            // y' = (y - y²)·x'
            Logistic => series::ode(x, y0, |m, y| {
                let sq = series::cauchy_term(y, y, m, &|a, b| a * b);
                series::add(y[m].clone(), sq.map(|v| -v))
            }),
            // y' = g(x)·x' with g depending on x only.
            Atan | Atanh | Asin | Acos | Asinh | Erf | Erfc => {
                let g = match self {
                    Atan | Atanh => {
                        let h = series::affine_square(x, 1.0, if self == Atan { 1.0 } else { -1.0 });
                        let h0 = series::primal(&h).recip();
                        series::reciprocal(&h, h0)
                    }
                    Asin | Acos | Asinh => {
                        let h = series::affine_square(x, 1.0, if self == Asinh { 1.0 } else { -1.0 });
                        let h0 = series::primal(&h).rsqrt();
                        let g = series::power(&h, &Exponent::Scalar(-0.5), h0);
                        if self == Acos {
                            series::scale(&g, -1.0)
                        } else {
                            g
                        }
                    }
                    _ => {
                        let q = series::affine_square(x, 0.0, -1.0);
                        let e0 = series::primal(&q).exp();
                        let c = if self == Erf { 2.0 / sqrt_pi } else { -2.0 / sqrt_pi };
                        series::scale(&series::exp(&q, e0), c)
                    }
                };
                series::integrate(x, y0, &g)
            }
            // y' = (√π/2)·exp(y²)·x', with exp(y²) grown alongside y.
            ErfInv => {
                let mut q: Series = Vec::new();
                let mut e: Series = Vec::new();
                series::ode(x, y0, move |m, y| {
                    q.push(series::cauchy_term(y, y, m, &|a, b| a * b));
                    let em = if m == 0 {
                        q[0].as_ref().map(|v| v.exp())
                    } else {
                        let mut acc = None;
                        for j in 1..=m {
                            if let (Some(qj), Some(el)) = (&q[j], &e[m - j]) {
                                acc = series::add(acc, Some(qj * el * (j as f64 / m as f64)));
                            }
                        }
                        acc
                    };
                    e.push(em.clone());
                    em.map(|v| v * (sqrt_pi / 2.0))
                })
            }
            Sqrt => series::sqrt(x, y0),
            Rsqrt => series::power(x, &Exponent::Scalar(-0.5), y0),
            Cbrt => series::power(x, &Exponent::Scalar(1.0 / 3.0), y0),
            Reciprocal => series::reciprocal(x, y0),
        }
    }
}

impl BinaryOp {
    /// The series of `op(a(t), b(t))` given both operands' series and the primal output `y`.
    pub(crate) fn jet(self, a: &[Option<Tensor>], b: &[Option<Tensor>], y: &Tensor) -> Series {
        use BinaryOp::*;
        let (a0, b0) = (series::primal(a), series::primal(b));
        let y0 = y.clone();
        let k = series::order(a);
        let b_const = b[1..].iter().all(|v| v.is_none());
        match self {
            // Linear, and piecewise linear with the jvp's tie convention (max/min: ties take
            // the mean of both operands' series; rem: the quotient's integer part is constant).
            Add | Sub | Max | Min | Rem | Eq | Ne | Lt | Le | Gt | Ge | And | Or | Xor => {
                linear_jet(&|t| self.jvp(a0, b0, t[0], t[1], y), &[a, b], y)
            }
            Mul => series::product(a, b, &y0, &|x, y| x * y),
            Div => series::div(a, b, &y0),
            // Constant exponent: x·y' = p·y·x'. Otherwise y = exp(b·log a).
            Pow if b_const => series::power(a, &Exponent::Tensor(b0), y0),
            Pow => {
                let la = series::log(a, a0.log());
                let e = series::product(&la, b, &(series::primal(&la) * b0), &|x, y| x * y);
                series::exp(&e, y0)
            }
            // y' = (b·a' - a·b') / (a² + b²).
            Atan2 => {
                let (da, db) = (series::derivative(a), series::derivative(b));
                let prod = |s: &[Option<Tensor>], d: &[Option<Tensor>], m: usize| {
                    let mut acc = None;
                    for j in 0..=m {
                        if let (Some(x), Some(v)) = (&s[j], &d[m - j]) {
                            acc = series::add(acc, Some(x * v));
                        }
                    }
                    acc
                };
                let num: Vec<Option<Tensor>> =
                    (0..k).map(|m| series::add(prod(b, &da, m), prod(a, &db, m).map(|v| -v))).collect();
                let r = series::add_series(&series::mul(a, a), &series::mul(b, b));
                // w = num / r as a series of order K-1 (its primal may be zero).
                let num0 = num[0].clone().unwrap_or_else(|| a0.zeros_like());
                let mut numser: Series = vec![Some(num0.clone())];
                numser.extend(num[1..].iter().cloned());
                let w = series::div(&numser, &r[..k], &(num0 / series::primal(&r)));
                let mut out = vec![Some(y0)];
                out.extend(
                    (1..=k).map(|j| w[j - 1].as_ref().map(|v| if j == 1 { v.clone() } else { v * (1.0 / j as f64) })),
                );
                out
            }
        }
    }
}

/// The series of `select(p, on_true, on_false)`: the active branch's series.
pub(crate) fn select_jet(xs: &[&[Option<Tensor>]], y: &Tensor) -> Series {
    let p = series::primal(xs[0]);
    let on_true = series::primal(xs[1]);
    linear_jet(&|t| select_jvp(p, t, on_true), xs, y)
}

#[cfg(test)]
mod type_check_tests {
    use super::*;

    /// `has_type` (what `Graph::validate` checks element-wise nodes with) agrees with the type
    /// rules for every operation, operand dtypes and shapes, and candidate result type.
    #[test]
    fn has_type_agrees_with_infer_type() {
        let dtypes = [DType::F32, DType::F64, DType::I32, DType::I64, DType::Bool];
        let shapes = [vec![], vec![3], vec![2, 3]];
        let types: Vec<TensorType> =
            dtypes.iter().flat_map(|&d| shapes.iter().map(move |s| TensorType::new(d, s.clone()))).collect();
        let mut accepted = 0;
        for op in UnaryOp::ALL {
            for x in &types {
                for ty in &types {
                    let rule = op.infer_type(x).as_ref() == Ok(ty);
                    assert_eq!(op.has_type(x, ty), rule, "{op:?} {x} -> {ty}");
                    accepted += rule as usize;
                }
            }
        }
        for op in BinaryOp::ALL {
            for a in &types {
                for b in &types {
                    for ty in &types {
                        let rule = op.infer_type(a, b).as_ref() == Ok(ty);
                        assert_eq!(op.has_type(a, b, ty), rule, "{op:?} {a} {b} -> {ty}");
                        accepted += rule as usize;
                    }
                }
            }
        }
        assert!(accepted > 100, "the check accepts the well-typed cases ({accepted})");
    }
}
