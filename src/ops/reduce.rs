//! Reductions, arg-reductions and cumulative scans.

use crate::{DType, TensorType};

/// How a reduction combines elements.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    /// Sum (0 for an empty set).
    Sum,
    /// Maximum (-inf / the smallest integer for an empty set).
    Max,
    /// Minimum (+inf / the largest integer for an empty set).
    Min,
    /// Product (1 for an empty set).
    Prod,
}

impl ReduceOp {
    /// Name in dumps and messages.
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "reduce_sum",
            ReduceOp::Max => "reduce_max",
            ReduceOp::Min => "reduce_min",
            ReduceOp::Prod => "reduce_prod",
        }
    }
}

/// Arg-reductions.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ArgOp {
    /// Index of the maximum.
    Max,
    /// Index of the minimum.
    Min,
}

impl ArgOp {
    /// Name in dumps and messages.
    pub fn name(self) -> &'static str {
        match self {
            ArgOp::Max => "argmax",
            ArgOp::Min => "argmin",
        }
    }
}

/// Cumulative scans.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum CumOp {
    /// Running sum.
    Sum,
    /// Running product.
    Prod,
    /// Running maximum.
    Max,
    /// Running minimum.
    Min,
}

impl CumOp {
    /// Name in dumps and messages.
    pub fn name(self) -> &'static str {
        match self {
            CumOp::Sum => "cumsum",
            CumOp::Prod => "cumprod",
            CumOp::Max => "cummax",
            CumOp::Min => "cummin",
        }
    }
}

/// Type rule of a reduction: sorted distinct in-range axes, removed from the shape.
pub fn reduce_type(_op: ReduceOp, axes: &[usize], x: &TensorType) -> Result<TensorType, String> {
    if x.dtype == DType::Bool {
        return Err(format!("does not accept bool operands ({x}); cast first"));
    }
    if axes.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!("axes must be sorted and distinct, got {axes:?}"));
    }
    if let Some(&a) = axes.iter().find(|&&a| a >= x.rank()) {
        return Err(format!("axis {a} is out of range for {x}"));
    }
    let shape = (0..x.rank()).filter(|i| !axes.contains(i)).map(|i| x.shape[i]).collect();
    Ok(TensorType::new(x.dtype, shape))
}

/// Type rule of argmax/argmin: i64 out, the axis removed.
pub fn arg_type(axis: usize, x: &TensorType) -> Result<TensorType, String> {
    if x.dtype == DType::Bool {
        return Err(format!("does not accept bool operands ({x})"));
    }
    if axis >= x.rank() {
        return Err(format!("axis {axis} is out of range for {x}"));
    }
    if x.shape[axis] == 0 {
        return Err(format!("axis {axis} of {x} is empty: there is no extreme element"));
    }
    let mut shape = x.shape.clone();
    shape.remove(axis);
    Ok(TensorType::new(DType::I64, shape))
}

/// Type rule of a cumulative scan: same type as the operand.
pub fn cumulative_type(_op: CumOp, axis: usize, x: &TensorType) -> Result<TensorType, String> {
    if x.dtype == DType::Bool {
        return Err(format!("does not accept bool operands ({x})"));
    }
    if axis >= x.rank() {
        return Err(format!("axis {axis} is out of range for {x}"));
    }
    Ok(x.clone())
}

// ---------------------------------------------------------------------------
// Derivative and batching rules.
// ---------------------------------------------------------------------------

use super::rules::shift;
use super::Prim;
use crate::trace::bind;
use crate::Tensor;

/// Broadcasts a reduced value back over the reduced axes of `shape`.
fn unreduce(y: &Tensor, axes: &[usize], shape: &[usize]) -> Tensor {
    let dims: Vec<usize> = (0..shape.len()).filter(|i| !axes.contains(i)).collect();
    y.broadcast_in_dim(shape, &dims)
}

/// The transpose of a sum: broadcast the cotangent back over the reduced axes.
pub(crate) fn sum_transpose(ct: &Tensor, axes: &[usize], operand: &TensorType) -> Tensor {
    unreduce(ct, axes, &operand.shape)
}

/// Moves `axes` to the end and merges them into one axis.
fn merge_axes_last(x: &Tensor, axes: &[usize]) -> Tensor {
    let r = x.rank();
    let mut perm: Vec<isize> = (0..r).filter(|a| !axes.contains(a)).map(|a| a as isize).collect();
    perm.extend(axes.iter().map(|&a| a as isize));
    let moved = x.permute(&perm);
    let shape = x.shape();
    let mut merged: Vec<usize> = (0..r).filter(|a| !axes.contains(a)).map(|a| shape[a]).collect();
    merged.push(axes.iter().map(|&a| shape[a]).product());
    moved.reshape_to(&merged)
}

/// `[1, c0, c0·c1, ...]` along the last axis: the product of everything strictly before.
fn exclusive_cumprod_last(x: &Tensor) -> Tensor {
    let r = x.rank();
    let inclusive = x.cumprod(-1);
    let mut low = vec![0i64; r];
    let mut high = vec![0i64; r];
    low[r - 1] = 1;
    high[r - 1] = -1;
    inclusive.pad(&low, &high, &vec![0; r], 1.0)
}

pub(crate) fn reduce_jvp(op: ReduceOp, axes: &[usize], x: &Tensor, t: &Tensor, y: &Tensor) -> Option<Tensor> {
    let sum = |v: &Tensor| bind(Prim::Reduce { op: ReduceOp::Sum, axes: axes.to_vec() }, &[v]);
    Some(match op {
        ReduceOp::Sum => sum(t),
        // Ties share the derivative equally (a Clarke subgradient).
        ReduceOp::Max | ReduceOp::Min => {
            let hit = x.eq(unreduce(y, axes, &x.shape())).cast(x.dtype());
            sum(&(t * &hit)) / sum(&hit)
        }
        // d prod = Σ_i t_i Π_{j≠i} x_j, from exclusive products on both sides (exact at zeros).
        ReduceOp::Prod => {
            let xm = merge_axes_last(x, axes);
            let tm = merge_axes_last(t, axes);
            let before = exclusive_cumprod_last(&xm);
            let after = exclusive_cumprod_last(&xm.flip(&[-1])).flip(&[-1]);
            (tm * before * after).sum(&[-1], false)
        }
    })
}

/// Inclusive scan written with log-depth shifts (Hillis–Steele), from primitives whose
/// rules we have: differentiating it gives exact scan derivatives, zeros and ties included.
fn scan_composite(op: CumOp, x: &Tensor, axis: usize) -> Tensor {
    let r = x.rank();
    let n = x.shape()[axis];
    let identity = match op {
        CumOp::Sum => 0.0,
        CumOp::Prod => 1.0,
        CumOp::Max => f64::NEG_INFINITY,
        CumOp::Min => f64::INFINITY,
    };
    let mut y = x.clone();
    let mut s = 1;
    while s < n {
        let mut low = vec![0i64; r];
        let mut high = vec![0i64; r];
        low[axis] = s as i64;
        high[axis] = -(s as i64);
        let shifted = y.pad(&low, &high, &vec![0; r], identity);
        y = match op {
            CumOp::Sum => &y + &shifted,
            CumOp::Prod => &y * &shifted,
            CumOp::Max => y.maximum(&shifted),
            CumOp::Min => y.minimum(&shifted),
        };
        s *= 2;
    }
    y
}

pub(crate) fn cumulative_jvp(op: CumOp, axis: usize, reverse: bool, x: &Tensor, t: &Tensor) -> Option<Tensor> {
    if op == CumOp::Sum {
        return Some(bind(Prim::Cumulative { op, axis, reverse }, &[t]));
    }
    let a = axis as isize;
    let (x, t) = if reverse { (x.flip(&[a]), t.flip(&[a])) } else { (x.clone(), t.clone()) };
    let (_, tangent) = crate::transform::jvp(|v: &Tensor| scan_composite(op, v, axis), &x, &t);
    Some(if reverse { tangent.flip(&[a]) } else { tangent })
}

/// Batching: the operand's batch axis is 0, so every axis parameter moves up by one.
pub(crate) fn batch(prim: &Prim, x: &Tensor) -> Tensor {
    let p = match prim {
        Prim::Reduce { op, axes } => Prim::Reduce { op: *op, axes: shift(axes) },
        Prim::Arg { op, axis } => Prim::Arg { op: *op, axis: axis + 1 },
        Prim::Cumulative { op, axis, reverse } => Prim::Cumulative { op: *op, axis: axis + 1, reverse: *reverse },
        _ => unreachable!(),
    };
    bind(p, &[x])
}

// ---------------------------------------------------------------------------
// Jet (Taylor-mode) rules.
// ---------------------------------------------------------------------------

use super::elementwise::linear_jet;
use super::series::{self, Series};

/// The series of a reduction: sums and max/min (the maximal elements' series, ties averaged as
/// in the jvp) coefficient by coefficient; products through the log-depth scan composite,
/// whose multiplications are Cauchy products (exact at zeros).
pub(crate) fn reduce_jet(op: ReduceOp, axes: &[usize], x: &[Option<Tensor>], y: &Tensor) -> Series {
    let x0 = series::primal(x);
    match op {
        ReduceOp::Sum | ReduceOp::Max | ReduceOp::Min => {
            linear_jet(&|t| t[0].and_then(|t| reduce_jvp(op, axes, x0, t, y)), &[x], y)
        }
        ReduceOp::Prod => {
            let (axes, out_shape) = (axes.to_vec(), y.shape());
            let f = move |v: &Tensor| {
                let m = merge_axes_last(v, &axes);
                let r = m.rank();
                let n = m.shape()[r - 1];
                let scanned = scan_composite(CumOp::Prod, &m, r - 1);
                let mut start = vec![0; r];
                start[r - 1] = n - 1;
                scanned.slice(&start, &scanned.shape(), &vec![1; r]).reshape_to(&out_shape)
            };
            let mut out = crate::transform::jet_series(&f, x);
            out[0] = Some(y.clone());
            out
        }
    }
}

/// The series of a scan: sums, maxima and minima coefficient by coefficient (their jvp is
/// linear for fixed primals); products through the scan composite.
pub(crate) fn cumulative_jet(op: CumOp, axis: usize, reverse: bool, x: &[Option<Tensor>], y: &Tensor) -> Series {
    let x0 = series::primal(x);
    if op != CumOp::Prod {
        return linear_jet(&|t| t[0].and_then(|t| cumulative_jvp(op, axis, reverse, x0, t)), &[x], y);
    }
    let a = axis as isize;
    let f = move |v: &Tensor| {
        if reverse {
            scan_composite(op, &v.flip(&[a]), axis).flip(&[a])
        } else {
            scan_composite(op, v, axis)
        }
    };
    let mut out = crate::transform::jet_series(&f, x);
    out[0] = Some(y.clone());
    out
}
