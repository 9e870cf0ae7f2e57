//! Indexing primitives: gather, scatter-add, dynamic slice and dynamic update slice.

use super::Prim;
use crate::TensorType;

/// Output shape of `Gather { axis, batch_dims }`: `operand[..axis] ++ indices[batch_dims..] ++ operand[axis+1..]`.
pub fn gather_shape(
    axis: usize,
    batch_dims: usize,
    operand: &TensorType,
    indices: &TensorType,
) -> Result<Vec<usize>, String> {
    if !indices.dtype.is_int() {
        return Err(format!("indices must be integers, got {indices}"));
    }
    if axis >= operand.rank() || axis < batch_dims {
        return Err(format!("axis {axis} must be in {batch_dims}..{} for operand {operand}", operand.rank()));
    }
    if batch_dims > indices.rank() || operand.shape[..batch_dims] != indices.shape[..batch_dims] {
        return Err(format!("the first {batch_dims} axes of operand {operand} and indices {indices} must agree"));
    }
    let mut shape = operand.shape[..axis].to_vec();
    shape.extend_from_slice(&indices.shape[batch_dims..]);
    shape.extend_from_slice(&operand.shape[axis + 1..]);
    Ok(shape)
}

fn check_starts(starts: &[&TensorType], rank: usize) -> Result<(), String> {
    if starts.len() != rank {
        return Err(format!("needs {rank} start indices, got {}", starts.len()));
    }
    if let Some(s) = starts.iter().find(|s| s.rank() != 0 || !s.dtype.is_int()) {
        return Err(format!("start indices must be 0-d integers, got {s}"));
    }
    Ok(())
}

/// Type rules of the indexing primitives.
pub fn infer_type(prim: &Prim, inputs: &[&TensorType]) -> Result<TensorType, String> {
    match prim {
        Prim::Gather { axis, batch_dims } => {
            if inputs.len() != 2 {
                return Err(format!("expects operand and indices, got {} operands", inputs.len()));
            }
            let shape = gather_shape(*axis, *batch_dims, inputs[0], inputs[1])?;
            Ok(TensorType::new(inputs[0].dtype, shape))
        }
        Prim::ScatterAdd { axis, batch_dims } => {
            if inputs.len() != 3 {
                return Err(format!("expects operand, indices and updates, got {} operands", inputs.len()));
            }
            let (operand, indices, updates) = (inputs[0], inputs[1], inputs[2]);
            let shape = gather_shape(*axis, *batch_dims, operand, indices)?;
            if updates.dtype != operand.dtype || updates.shape != shape {
                let want = TensorType::new(operand.dtype, shape);
                return Err(format!("updates must be {want}, got {updates}"));
            }
            Ok(operand.clone())
        }
        Prim::DynamicSlice { sizes } => {
            let x = inputs.first().ok_or("needs an operand")?;
            check_starts(&inputs[1..], x.rank())?;
            if sizes.len() != x.rank() || sizes.iter().zip(&x.shape).any(|(s, n)| s > n) {
                return Err(format!("window {sizes:?} does not fit {x}"));
            }
            Ok(TensorType::new(x.dtype, sizes.clone()))
        }
        Prim::DynamicUpdateSlice => {
            if inputs.len() < 2 {
                return Err("expects operand, update and start indices".into());
            }
            let (x, u) = (inputs[0], inputs[1]);
            check_starts(&inputs[2..], x.rank())?;
            if u.dtype != x.dtype || u.rank() != x.rank() || u.shape.iter().zip(&x.shape).any(|(a, b)| a > b) {
                return Err(format!("update {u} does not fit operand {x}"));
            }
            Ok(x.clone())
        }
        _ => unreachable!("not an indexing primitive: {}", prim.name()),
    }
}

// ---------------------------------------------------------------------------
// Derivative and batching rules. All four primitives are linear in their data
// operands; indices and start positions never carry derivatives.
// ---------------------------------------------------------------------------

use super::rules::{broadcast_all, materialize, LinArg};
use crate::trace::bind;
use crate::Tensor;

pub(crate) fn jvp(prim: &Prim, x: &[&Tensor], t: &[Option<&Tensor>]) -> Option<Tensor> {
    let mut ins: Vec<Tensor> = x.iter().map(|v| (*v).clone()).collect();
    match prim {
        Prim::Gather { .. } | Prim::DynamicSlice { .. } => ins[0] = t[0]?.clone(),
        Prim::ScatterAdd { .. } => {
            ins[0] = materialize(t[0], x[0]);
            ins[2] = materialize(t[2], x[2]);
        }
        Prim::DynamicUpdateSlice => {
            ins[0] = materialize(t[0], x[0]);
            ins[1] = materialize(t[1], x[1]);
        }
        _ => unreachable!("not an indexing primitive: {}", prim.name()),
    }
    let refs: Vec<&Tensor> = ins.iter().collect();
    Some(bind(prim.clone(), &refs))
}

pub(crate) fn transpose(prim: &Prim, ct: &Tensor, args: &[LinArg]) -> Vec<Option<Tensor>> {
    let operand = args[0].ty();
    match prim {
        Prim::Gather { axis, batch_dims } => {
            let idx = args[1].value("gather indices");
            let zeros = Tensor::zeros(&operand.shape, operand.dtype);
            vec![Some(bind(Prim::ScatterAdd { axis: *axis, batch_dims: *batch_dims }, &[&zeros, idx, ct])), None]
        }
        Prim::ScatterAdd { axis, batch_dims } => {
            let idx = args[1].value("scatter indices");
            let t_upd =
                args[2].is_linear().then(|| bind(Prim::Gather { axis: *axis, batch_dims: *batch_dims }, &[ct, idx]));
            vec![args[0].is_linear().then(|| ct.clone()), None, t_upd]
        }
        Prim::DynamicSlice { .. } => {
            let s: Vec<Tensor> = args[1..].iter().map(|a| a.value("dynamic_slice start").clone()).collect();
            let zeros = Tensor::zeros(&operand.shape, operand.dtype);
            let mut out = vec![Some(zeros.dynamic_update_slice(ct, &s))];
            out.extend(s.iter().map(|_| None));
            out
        }
        Prim::DynamicUpdateSlice => {
            let s: Vec<Tensor> = args[2..].iter().map(|a| a.value("dynamic_update_slice start").clone()).collect();
            let upd = args[1].ty();
            let t_operand =
                args[0].is_linear().then(|| ct.dynamic_update_slice(&Tensor::zeros(&upd.shape, upd.dtype), &s));
            let t_update = args[1].is_linear().then(|| ct.dynamic_slice(&s, &upd.shape));
            let mut out = vec![t_operand, t_update];
            out.extend(s.iter().map(|_| None));
            out
        }
        _ => unreachable!("not an indexing primitive: {}", prim.name()),
    }
}

/// Splits a batched computation into one call per example and stacks the results
/// (the fallback for per-example dynamic start positions).
fn per_example(prim: &Prim, args: &[Tensor], batched: &[bool], size: usize) -> Tensor {
    let outs: Vec<Tensor> = (0..size)
        .map(|b| {
            let ins: Vec<Tensor> =
                args.iter().zip(batched).map(|(a, &isb)| if isb { a.index(b as isize) } else { a.clone() }).collect();
            let refs: Vec<&Tensor> = ins.iter().collect();
            bind(prim.clone(), &refs)
        })
        .collect();
    crate::stack(&outs, 0)
}

pub(crate) fn batch(prim: &Prim, args: &[Tensor], batched: &[bool], size: usize) -> Tensor {
    match prim {
        Prim::Gather { axis, batch_dims } => {
            let (x, idx) = (&args[0], &args[1]);
            match (batched[0], batched[1]) {
                (true, false) if *batch_dims == 0 => bind(Prim::Gather { axis: axis + 1, batch_dims: 0 }, &[x, idx]),
                (false, true) if *batch_dims == 0 => {
                    // The index batch axis lands where the indexed axis was; move it to the front.
                    let out = bind(Prim::Gather { axis: *axis, batch_dims: 0 }, &[x, idx]);
                    out.moveaxis(*axis as isize, 0)
                }
                _ => {
                    let full = broadcast_all(args, batched, size);
                    bind(Prim::Gather { axis: axis + 1, batch_dims: batch_dims + 1 }, &[&full[0], &full[1]])
                }
            }
        }
        Prim::ScatterAdd { axis, batch_dims } => {
            let full = broadcast_all(args, batched, size);
            bind(Prim::ScatterAdd { axis: axis + 1, batch_dims: batch_dims + 1 }, &[&full[0], &full[1], &full[2]])
        }
        Prim::DynamicSlice { sizes } => {
            if batched[1..].iter().any(|&b| b) {
                return per_example(prim, args, batched, size);
            }
            let mut s = vec![Tensor::scalar(0i64)];
            s.extend(args[1..].iter().cloned());
            let mut sz = vec![size];
            sz.extend_from_slice(sizes);
            args[0].dynamic_slice(&s, &sz)
        }
        Prim::DynamicUpdateSlice => {
            if batched[2..].iter().any(|&b| b) {
                return per_example(prim, args, batched, size);
            }
            let full = broadcast_all(&args[..2], &batched[..2], size);
            let mut s = vec![Tensor::scalar(0i64)];
            s.extend(args[2..].iter().cloned());
            full[0].dynamic_update_slice(&full[1], &s)
        }
        _ => unreachable!("not an indexing primitive: {}", prim.name()),
    }
}
