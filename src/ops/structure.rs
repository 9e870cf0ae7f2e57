//! Structural primitives: reshape, broadcast, transpose, slice, pad, concatenate,
//! rev, iota and dtype conversion.

use super::Prim;
use crate::shape::numel;
use crate::{DType, TensorType};

/// Type rule of iota.
pub fn iota_type(dtype: DType, shape: &[usize], dim: usize) -> Result<TensorType, String> {
    if dtype == DType::Bool {
        return Err("cannot count in bool".into());
    }
    if dim >= shape.len() {
        return Err(format!("dim {dim} is out of range for shape {shape:?}"));
    }
    Ok(TensorType::new(dtype, shape.to_vec()))
}

fn check_perm(perm: &[usize], rank: usize) -> Result<(), String> {
    let mut seen = vec![false; rank];
    if perm.len() != rank {
        return Err(format!(
            "permutation {perm:?} has {} entries for rank {rank}",
            perm.len()
        ));
    }
    for &p in perm {
        if p >= rank || seen[p] {
            return Err(format!("{perm:?} is not a permutation of 0..{rank}"));
        }
        seen[p] = true;
    }
    Ok(())
}

/// Type rules of the structural primitives.
pub fn infer_type(prim: &Prim, inputs: &[&TensorType]) -> Result<TensorType, String> {
    let one = || -> Result<&TensorType, String> {
        if inputs.len() == 1 {
            Ok(inputs[0])
        } else {
            Err(format!("expects 1 operand, got {}", inputs.len()))
        }
    };
    match prim {
        Prim::Reshape { shape } => {
            let x = one()?;
            if numel(shape) != x.numel() {
                return Err(format!(
                    "cannot reshape {x} ({} elements) to {shape:?} ({} elements)",
                    x.numel(),
                    numel(shape)
                ));
            }
            Ok(TensorType::new(x.dtype, shape.clone()))
        }
        Prim::BroadcastInDim { shape, dims } => {
            let x = one()?;
            if dims.len() != x.rank() {
                return Err(format!(
                    "dims {dims:?} must name one output axis per operand axis of {x}"
                ));
            }
            if dims.windows(2).any(|w| w[0] >= w[1]) || dims.iter().any(|&d| d >= shape.len()) {
                return Err(format!(
                    "dims {dims:?} must be increasing and below rank {}",
                    shape.len()
                ));
            }
            for (i, &d) in dims.iter().enumerate() {
                if x.shape[i] != 1 && x.shape[i] != shape[d] {
                    return Err(format!(
                        "cannot broadcast {x} to {shape:?}: axis {i} has extent {}",
                        x.shape[i]
                    ));
                }
            }
            Ok(TensorType::new(x.dtype, shape.clone()))
        }
        Prim::Transpose { perm } => {
            let x = one()?;
            check_perm(perm, x.rank())?;
            Ok(TensorType::new(
                x.dtype,
                perm.iter().map(|&p| x.shape[p]).collect(),
            ))
        }
        Prim::Slice {
            start,
            stop,
            stride,
        } => {
            let x = one()?;
            let r = x.rank();
            if start.len() != r || stop.len() != r || stride.len() != r {
                return Err(format!("start/stop/stride need {r} entries for {x}"));
            }
            let mut shape = Vec::with_capacity(r);
            for i in 0..r {
                if start[i] > stop[i] || stop[i] > x.shape[i] || stride[i] == 0 {
                    return Err(format!(
                        "axis {i}: {}..{} step {} does not fit extent {} of {x}",
                        start[i], stop[i], stride[i], x.shape[i]
                    ));
                }
                shape.push((stop[i] - start[i]).div_ceil(stride[i]));
            }
            Ok(TensorType::new(x.dtype, shape))
        }
        Prim::Pad {
            low,
            high,
            interior,
        } => {
            if inputs.len() != 2 {
                return Err(format!(
                    "expects an operand and a scalar padding value, got {} operands",
                    inputs.len()
                ));
            }
            let (x, v) = (inputs[0], inputs[1]);
            if v.rank() != 0 || v.dtype != x.dtype {
                return Err(format!(
                    "padding value must be a 0-d {} tensor, got {v}",
                    x.dtype
                ));
            }
            let r = x.rank();
            if low.len() != r || high.len() != r || interior.len() != r {
                return Err(format!("low/high/interior need {r} entries for {x}"));
            }
            let mut shape = Vec::with_capacity(r);
            for i in 0..r {
                let n = x.shape[i] as i64;
                let dilated = if n == 0 {
                    0
                } else {
                    n + (n - 1) * interior[i] as i64
                };
                let e = low[i] + dilated + high[i];
                if e < 0 {
                    return Err(format!("axis {i} of {x} would have negative extent {e}"));
                }
                shape.push(e as usize);
            }
            Ok(TensorType::new(x.dtype, shape))
        }
        Prim::Concatenate { axis } => {
            let first = inputs.first().ok_or("needs at least one operand")?;
            if *axis >= first.rank() {
                return Err(format!("axis {axis} is out of range for {first}"));
            }
            let mut shape = first.shape.clone();
            shape[*axis] = 0;
            for t in inputs {
                let same = t.dtype == first.dtype
                    && t.rank() == first.rank()
                    && (0..t.rank()).all(|i| i == *axis || t.shape[i] == first.shape[i]);
                if !same {
                    let all: Vec<String> = inputs.iter().map(|t| t.to_string()).collect();
                    return Err(format!(
                        "operands must agree except on axis {axis}: {}",
                        all.join(", ")
                    ));
                }
                shape[*axis] += t.shape[*axis];
            }
            Ok(TensorType::new(first.dtype, shape))
        }
        Prim::Rev { axes } => {
            let x = one()?;
            if axes.iter().any(|&a| a >= x.rank()) {
                return Err(format!("axes {axes:?} out of range for {x}"));
            }
            Ok(x.clone())
        }
        Prim::Convert { dtype } => Ok(TensorType::new(*dtype, one()?.shape.clone())),
        _ => unreachable!("not a structural primitive: {}", prim.name()),
    }
}
