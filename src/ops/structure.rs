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
        return Err(format!("permutation {perm:?} has {} entries for rank {rank}", perm.len()));
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
                return Err(format!("dims {dims:?} must name one output axis per operand axis of {x}"));
            }
            if dims.windows(2).any(|w| w[0] >= w[1]) || dims.iter().any(|&d| d >= shape.len()) {
                return Err(format!("dims {dims:?} must be increasing and below rank {}", shape.len()));
            }
            for (i, &d) in dims.iter().enumerate() {
                if x.shape[i] != 1 && x.shape[i] != shape[d] {
                    return Err(format!("cannot broadcast {x} to {shape:?}: axis {i} has extent {}", x.shape[i]));
                }
            }
            Ok(TensorType::new(x.dtype, shape.clone()))
        }
        Prim::Transpose { perm } => {
            let x = one()?;
            check_perm(perm, x.rank())?;
            Ok(TensorType::new(x.dtype, perm.iter().map(|&p| x.shape[p]).collect()))
        }
        Prim::Slice { start, stop, stride } => {
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
        Prim::Pad { low, high, interior } => {
            if inputs.len() != 2 {
                return Err(format!("expects an operand and a scalar padding value, got {} operands", inputs.len()));
            }
            let (x, v) = (inputs[0], inputs[1]);
            if v.rank() != 0 || v.dtype != x.dtype {
                return Err(format!("padding value must be a 0-d {} tensor, got {v}", x.dtype));
            }
            let r = x.rank();
            if low.len() != r || high.len() != r || interior.len() != r {
                return Err(format!("low/high/interior need {r} entries for {x}"));
            }
            let mut shape = Vec::with_capacity(r);
            for i in 0..r {
                let n = x.shape[i] as i64;
                let dilated = if n == 0 { 0 } else { n + (n - 1) * interior[i] as i64 };
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
                    return Err(format!("operands must agree except on axis {axis}: {}", all.join(", ")));
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

// ---------------------------------------------------------------------------
// Derivative and batching rules. Every primitive here is linear in its data
// operands, so its jvp applies the primitive itself to the tangents.
// ---------------------------------------------------------------------------

use super::rules::{materialize, shift, with_batch_axis, LinArg};
use crate::trace::bind;
use crate::Tensor;

pub(crate) fn jvp(prim: &Prim, x: &[&Tensor], t: &[Option<&Tensor>]) -> Option<Tensor> {
    match prim {
        // A float-to-int conversion has no tangent; int operands never have one.
        Prim::Convert { dtype } if !dtype.is_float() => None,
        Prim::Pad { .. } => {
            let tx = materialize(t[0], x[0]);
            let tv = materialize(t[1], x[1]);
            Some(bind(prim.clone(), &[&tx, &tv]))
        }
        Prim::Concatenate { .. } => {
            let ts: Vec<Tensor> = x.iter().zip(t).map(|(xi, ti)| materialize(*ti, xi)).collect();
            let refs: Vec<&Tensor> = ts.iter().collect();
            Some(bind(prim.clone(), &refs))
        }
        _ => Some(bind(prim.clone(), &[t[0]?])),
    }
}

fn inverse_perm(perm: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    inv
}

pub(crate) fn transpose(prim: &Prim, ct: &Tensor, args: &[LinArg]) -> Vec<Option<Tensor>> {
    let operand = args[0].ty();
    match prim {
        Prim::Reshape { .. } => vec![Some(ct.reshape_to(&operand.shape))],
        Prim::BroadcastInDim { shape, dims } => {
            // Sum the axes the broadcast created or stretched, then restore the operand's shape.
            let summed: Vec<isize> = (0..shape.len())
                .filter(|d| match dims.iter().position(|x| x == d) {
                    None => true,
                    Some(i) => operand.shape[i] == 1 && shape[*d] != 1,
                })
                .map(|d| d as isize)
                .collect();
            vec![Some(ct.sum(&summed, false).reshape_to(&operand.shape))]
        }
        Prim::Transpose { perm } => vec![Some(bind(Prim::Transpose { perm: inverse_perm(perm) }, &[ct]))],
        Prim::Slice { start, stop: _, stride } => {
            let out = ct.shape();
            if out.contains(&0) {
                return vec![Some(Tensor::zeros(&operand.shape, operand.dtype))];
            }
            let r = operand.rank();
            let low: Vec<i64> = start.iter().map(|&s| s as i64).collect();
            let high: Vec<i64> = (0..r)
                .map(|i| operand.shape[i] as i64 - start[i] as i64 - ((out[i] as i64 - 1) * stride[i] as i64) - 1)
                .collect();
            let interior: Vec<usize> = stride.iter().map(|s| s - 1).collect();
            vec![Some(ct.pad(&low, &high, &interior, 0.0))]
        }
        Prim::Rev { axes } => vec![Some(bind(Prim::Rev { axes: axes.clone() }, &[ct]))],
        Prim::Convert { .. } => vec![Some(ct.cast(operand.dtype))],
        Prim::Pad { low, high, interior } => {
            // Undo the edges, then take every (interior+1)-th element (JAX's rule).
            let r = operand.rank();
            let unpadded = ct.pad(
                &low.iter().map(|l| -l).collect::<Vec<_>>(),
                &high.iter().map(|h| -h).collect::<Vec<_>>(),
                &vec![0; r],
                0.0,
            );
            let shape = unpadded.shape();
            let t_operand = unpadded.slice(&vec![0; r], &shape, &interior.iter().map(|i| i + 1).collect::<Vec<_>>());
            let t_value = args[1].is_linear().then(|| ct.sum_all() - t_operand.sum_all());
            vec![args[0].is_linear().then_some(t_operand), t_value]
        }
        Prim::Concatenate { axis } => {
            let mut start = 0;
            args.iter()
                .map(|a| {
                    let n = a.ty().shape[*axis];
                    let piece = ct.slice_axis(*axis as isize, start as isize, (start + n) as isize, 1);
                    start += n;
                    a.is_linear().then_some(piece)
                })
                .collect()
        }
        _ => unreachable!("not a structural primitive: {}", prim.name()),
    }
}

pub(crate) fn batch(prim: &Prim, args: &[Tensor], batched: &[bool], size: usize) -> Tensor {
    let x = &args[0];
    let prepend =
        |v: &[usize], first: usize| -> Vec<usize> { std::iter::once(first).chain(v.iter().copied()).collect() };
    match prim {
        Prim::Reshape { shape } => x.reshape_to(&prepend(shape, size)),
        Prim::BroadcastInDim { shape, dims } => x.broadcast_in_dim(&prepend(shape, size), &prepend(&shift(dims), 0)),
        Prim::Transpose { perm } => bind(Prim::Transpose { perm: prepend(&shift(perm), 0) }, &[x]),
        Prim::Slice { start, stop, stride } => x.slice(&prepend(start, 0), &prepend(stop, size), &prepend(stride, 1)),
        Prim::Rev { axes } => bind(Prim::Rev { axes: shift(axes) }, &[x]),
        Prim::Pad { low, high, interior } => {
            let p = |v: &[i64]| -> Vec<i64> { std::iter::once(0).chain(v.iter().copied()).collect() };
            let padded = Prim::Pad { low: p(low), high: p(high), interior: prepend(interior, 0) };
            let x = if batched[0] { x.clone() } else { with_batch_axis(x, size) };
            if !batched[1] {
                return bind(padded, &[&x, &args[1]]);
            }
            // A per-example padding value: pad with anything, then select it where the mask says padding.
            let filler = args[1].index(0);
            let out = bind(padded.clone(), &[&x, &filler]);
            let inside = bind(padded, &[&x.ones_like().cast(crate::DType::Bool), &Tensor::scalar(false)]);
            let value = args[1].reshape_to(&prepend(&vec![1; out.rank() - 1], size)).broadcast_to(&out.shape());
            crate::where_(&inside, &out, &value)
        }
        Prim::Concatenate { axis } => {
            let full = super::rules::broadcast_all(args, batched, size);
            let refs: Vec<&Tensor> = full.iter().collect();
            bind(Prim::Concatenate { axis: axis + 1 }, &refs)
        }
        _ => unreachable!("not a batchable structural primitive: {}", prim.name()),
    }
}
