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
        return Err(format!(
            "axis {axis} must be in {batch_dims}..{} for operand {operand}",
            operand.rank()
        ));
    }
    if batch_dims > indices.rank() || operand.shape[..batch_dims] != indices.shape[..batch_dims] {
        return Err(format!(
            "the first {batch_dims} axes of operand {operand} and indices {indices} must agree"
        ));
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
                return Err(format!(
                    "expects operand and indices, got {} operands",
                    inputs.len()
                ));
            }
            let shape = gather_shape(*axis, *batch_dims, inputs[0], inputs[1])?;
            Ok(TensorType::new(inputs[0].dtype, shape))
        }
        Prim::ScatterAdd { axis, batch_dims } => {
            if inputs.len() != 3 {
                return Err(format!(
                    "expects operand, indices and updates, got {} operands",
                    inputs.len()
                ));
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
            if u.dtype != x.dtype
                || u.rank() != x.rank()
                || u.shape.iter().zip(&x.shape).any(|(a, b)| a > b)
            {
                return Err(format!("update {u} does not fit operand {x}"));
            }
            Ok(x.clone())
        }
        _ => unreachable!("not an indexing primitive: {}", prim.name()),
    }
}
