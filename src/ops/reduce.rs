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
    let shape = (0..x.rank())
        .filter(|i| !axes.contains(i))
        .map(|i| x.shape[i])
        .collect();
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
        return Err(format!(
            "axis {axis} of {x} is empty: there is no extreme element"
        ));
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
