//! Zero-paddings during the optimiser's walk (`passes::emit`): a constant that is zero outside
//! a small box becomes a `pad` of that box (fused loops read a padding in place, with a bounds
//! check, instead of streaming the zeros from memory), constant operations on such pads run on
//! the box only, and slices of pads become pads of slices.
//!
//! Reverse mode makes such constants: the cotangent seed of `f(x)[-1]` is a one-hot vector,
//! the transpose of the index; multiplied by the step sizes of an ODE solver it stays a
//! one-hot constant, and the shifted slices the transposed right-hand side reads of it are
//! pads of it again. Every rewrite is exact: each element of the result is the same operation
//! on the same values, an element of the box or the padding value.

use crate::array::Array;
use crate::ir::{Graph, Var};
use crate::ops::Prim;
use crate::TensorType;
use std::sync::Arc;

use super::passes::FOLD_LIMIT;

/// Adds a node to the optimised graph (simplified, folded and deduplicated, as `emit` does).
pub(super) type Emit<'e> = dyn FnMut(&mut Graph, Prim, Vec<Var>, &TensorType) -> Var + 'e;

/// A constant that is zero (bitwise: `-0.0` is not) outside a box of at most half its
/// elements, as that box and the padding around it (`low`, `high` per axis).
pub(super) fn unpad(a: &Array) -> Option<(Array, Vec<i64>, Vec<i64>)> {
    let shape = &a.shape;
    let (n, rank) = (a.numel(), shape.len());
    if n < 2 || rank == 0 {
        return None;
    }
    // The smallest and largest index of a nonzero element along each axis.
    let (mut lo, mut hi) = (shape.clone(), vec![0usize; rank]);
    let mut index = vec![0usize; rank];
    let mut any = false;
    for i in 0..n {
        if a.data.get_f64(i).to_bits() != 0 {
            any = true;
            for (k, &j) in index.iter().enumerate() {
                lo[k] = lo[k].min(j);
                hi[k] = hi[k].max(j + 1);
            }
        }
        for k in (0..rank).rev() {
            index[k] += 1;
            if index[k] < shape[k] {
                break;
            }
            index[k] = 0;
        }
    }
    let box_len: usize = lo.iter().zip(&hi).map(|(l, h)| h - l).product();
    if !any || 2 * box_len > n {
        return None;
    }
    let ty = TensorType::new(a.data.dtype(), lo.iter().zip(&hi).map(|(l, h)| h - l).collect());
    let slice = Prim::Slice { start: lo.clone(), stop: hi.clone(), stride: vec![1; rank] };
    let small = crate::backend::cpu::kernel(&slice, &[a], &ty);
    let low = lo.iter().map(|&l| l as i64).collect();
    let high = hi.iter().zip(shape).map(|(&h, &s)| (s - h) as i64).collect();
    Some((small, low, high))
}

/// Whether a `pad` of `operand` to `ty` is mostly padding: such a pad of constants stays a
/// pad rather than being folded into a dense constant (the inverse of [`unpad`]).
pub(super) fn mostly_padding(operand: &TensorType, ty: &TensorType) -> bool {
    ty.numel() >= 2 * operand.numel().max(1)
}

/// A zero-interior `pad` node: its operand, padding value, `low` and `high`.
fn plain_pad(g: &Graph, v: Var) -> Option<(Var, Var, &[i64], &[i64])> {
    let node = &g.nodes[v.index()];
    match &node.prim {
        Prim::Pad { low, high, interior } if interior.iter().all(|&i| i == 0) => {
            Some((node.inputs[0], node.inputs[1], low, high))
        }
        _ => None,
    }
}

/// The value of `v` if it is a constant of at most `FOLD_LIMIT` elements or a broadcast of
/// one (as `emit` writes constants whose elements repeat).
fn constant_value(g: &Graph, v: Var) -> Option<Array> {
    constant_value_up_to(g, v, FOLD_LIMIT)
}

fn constant_value_up_to(g: &Graph, v: Var, limit: usize) -> Option<Array> {
    let node = &g.nodes[v.index()];
    if node.ty.numel() > limit {
        return None;
    }
    match &node.prim {
        Prim::Constant(a) => Some(a.as_ref().clone()),
        Prim::BroadcastInDim { .. } => {
            let x = constant_value_up_to(g, node.inputs[0], limit)?;
            Some(crate::backend::cpu::kernel(&node.prim, &[&x], &node.ty))
        }
        _ => None,
    }
}

/// Whether `v` is a constant or a broadcast of one (nothing is computed).
fn is_constant_like(g: &Graph, v: Var) -> bool {
    let node = &g.nodes[v.index()];
    match &node.prim {
        Prim::Constant(_) => true,
        Prim::BroadcastInDim { .. } => is_constant_like(g, node.inputs[0]),
        _ => false,
    }
}

/// After the walk: pads of constants that something other than an element-wise operation
/// reads (a product, a reduction, a reshape: kernels that would write the padding out on
/// every run), or that the graph returns, folded back into the dense constants they were.
/// Fused loops read the others in place.
pub(super) fn refold_pads_read_by_kernels(mut g: Graph) -> Graph {
    let mut read_by_kernel = vec![false; g.nodes.len()];
    for node in &g.nodes {
        if !matches!(node.prim, Prim::Unary(_) | Prim::Binary(_) | Prim::Select) {
            node.inputs.iter().for_each(|v| read_by_kernel[v.index()] = true);
        }
    }
    g.outputs.iter().for_each(|v| read_by_kernel[v.index()] = true);
    for (i, &kernel_reads) in read_by_kernel.iter().enumerate() {
        let v = Var(i as u32);
        let Some((a, p, _, _)) = plain_pad(&g, v).filter(|_| kernel_reads) else { continue };
        if !is_constant_like(&g, a) || !is_constant_like(&g, p) {
            continue;
        }
        let (Some(a), Some(p)) = (constant_value_up_to(&g, a, usize::MAX), constant_value_up_to(&g, p, 1)) else {
            continue;
        };
        let node = &mut g.nodes[i];
        let value = crate::backend::cpu::kernel(&node.prim, &[&a, &p], &node.ty);
        node.prim = Prim::Constant(Arc::new(value));
        node.inputs.clear();
    }
    g
}

/// A zero-interior `pad` of constants: the box's and the padding's values, `low` and `high`.
type ConstantPad = (Array, Array, Vec<i64>, Vec<i64>);

fn constant_pad(g: &Graph, v: Var) -> Option<ConstantPad> {
    let (a, p, low, high) = plain_pad(g, v)?;
    Some((constant_value(g, a)?, constant_value(g, p)?, low.to_vec(), high.to_vec()))
}

/// `prim(ins)` (of type `ty`) rewritten through a padding, if one of the rewrites applies.
///
/// `push_small`: whether a slice of at most [`SMALL_SLICE`] elements may be pushed through
/// the element-wise operation it reads (the caller bounds how deep that recursion goes).
pub(super) fn through_pads(
    out: &mut Graph,
    prim: &Prim,
    ins: &[Var],
    ty: &TensorType,
    push_small: bool,
    emit: &mut Emit,
) -> Option<Var> {
    match prim {
        Prim::Slice { start, stop, stride } => {
            let unit = stride.iter().all(|&s| s == 1);
            let pad = if unit { slice_of_pad(out, ins[0], start, stop, ty, emit) } else { None };
            pad.or_else(|| slice_of_view(out, ins[0], start, stop, stride, ty, emit)).or_else(|| {
                (push_small && ty.numel() <= SMALL_SLICE)
                    .then(|| small_slice_of_elementwise(out, ins[0], prim, ty, emit))
                    .flatten()
            })
        }
        Prim::Unary(_) => {
            let (a, p, low, high) = constant_pad(out, ins[0])?;
            Some(padded(out, prim, &[&a], &[&p], (low, high), ty, emit))
        }
        Prim::Binary(_) => {
            // Both operands padded alike, or one a pad and the other a broadcast scalar.
            let (x, y) = (constant_pad(out, ins[0]), constant_pad(out, ins[1]));
            let (boxes, values, pads) = match (x, y) {
                (Some((a, p, low, high)), Some((b, q, low2, high2))) if low == low2 && high == high2 => {
                    ([a, b], [p, q], (low, high))
                }
                (Some((a, p, low, high)), None) => {
                    let s = scalar_of(out, ins[1])?;
                    ([a.clone(), broadcast(&s, &a)], [p, s], (low, high))
                }
                (None, Some((b, q, low, high))) => {
                    let s = scalar_of(out, ins[0])?;
                    ([broadcast(&s, &b), b], [s, q], (low, high))
                }
                _ => return None,
            };
            Some(padded(out, prim, &[&boxes[0], &boxes[1]], &[&values[0], &values[1]], pads, ty, emit))
        }
        _ => None,
    }
}

/// The scalar constant `v` is or broadcasts, if any (at any size: nothing is computed).
fn scalar_of(g: &Graph, v: Var) -> Option<Array> {
    let node = &g.nodes[v.index()];
    match &node.prim {
        Prim::Constant(a) if node.ty.rank() == 0 => Some(a.as_ref().clone()),
        Prim::BroadcastInDim { dims, .. } if dims.is_empty() => scalar_of(g, node.inputs[0]),
        _ => None,
    }
}

/// Scalar `s` broadcast to the shape of `like`.
fn broadcast(s: &Array, like: &Array) -> Array {
    let ty = TensorType::new(s.data.dtype(), like.shape.clone());
    crate::backend::cpu::kernel(&Prim::BroadcastInDim { shape: like.shape.clone(), dims: vec![] }, &[s], &ty)
}

/// `prim` on the boxes, padded with `prim` on the padding values: computed now.
fn padded(
    out: &mut Graph,
    prim: &Prim,
    boxes: &[&Array],
    values: &[&Array],
    (low, high): (Vec<i64>, Vec<i64>),
    ty: &TensorType,
    emit: &mut Emit,
) -> Var {
    let box_ty = TensorType::new(ty.dtype, boxes[0].shape.clone());
    let scalar_ty = TensorType::new(ty.dtype, vec![]);
    let inner = crate::backend::cpu::kernel(prim, boxes, &box_ty);
    let value = crate::backend::cpu::kernel(prim, values, &scalar_ty);
    let inner = emit(out, Prim::Constant(Arc::new(inner)), vec![], &box_ty);
    let value = emit(out, Prim::Constant(Arc::new(value)), vec![], &scalar_ty);
    emit(out, Prim::Pad { interior: vec![0; low.len()], low, high }, vec![inner, value], ty)
}

/// Slices of at most this many elements are taken of an element-wise operation's operands
/// instead of its result: the operation runs on those elements only, and the whole result
/// may not be needed at all (the cotangent of a concatenate's one-element head, `g[:1]`, read
/// from an array the other readers would otherwise read as a fused chain).
pub(super) const SMALL_SLICE: usize = 16;

/// `slice(op(a, b, ..))` of a small window as `op(slice(a), slice(b), ..)` (exact: each
/// element is the same operation on the same elements).
fn small_slice_of_elementwise(out: &mut Graph, x: Var, slice: &Prim, ty: &TensorType, emit: &mut Emit) -> Option<Var> {
    let node = &out.nodes[x.index()];
    if !matches!(node.prim, Prim::Unary(_) | Prim::Binary(_) | Prim::Select) {
        return None;
    }
    let (op, operands) = (node.prim.clone(), node.inputs.clone());
    let sliced = operands
        .into_iter()
        .map(|o| {
            let t = TensorType::new(out.ty(o).dtype, ty.shape.clone());
            emit(out, slice.clone(), vec![o], &t)
        })
        .collect();
    Some(emit(out, op, sliced, ty))
}

/// A slice of a slice as one slice, a slice of a scalar's broadcast as its broadcast, and a
/// slice that lies within one operand of a concatenate as a slice of that operand.
#[allow(clippy::too_many_arguments)]
fn slice_of_view(
    out: &mut Graph,
    x: Var,
    start: &[usize],
    stop: &[usize],
    stride: &[usize],
    ty: &TensorType,
    emit: &mut Emit,
) -> Option<Var> {
    if ty.numel() == 0 {
        return None;
    }
    let node = &out.nodes[x.index()];
    // The last index the slice reads along each axis.
    let last: Vec<usize> = (0..start.len()).map(|k| start[k] + (ty.shape[k] - 1) * stride[k]).collect();
    match &node.prim {
        Prim::Slice { start: s1, stride: t1, .. } => {
            let from: Vec<usize> = (0..start.len()).map(|k| s1[k] + start[k] * t1[k]).collect();
            let step: Vec<usize> = (0..start.len()).map(|k| t1[k] * stride[k]).collect();
            let to = (0..start.len()).map(|k| s1[k] + last[k] * t1[k] + 1).collect();
            let inner = node.inputs[0];
            Some(emit(out, Prim::Slice { start: from, stop: to, stride: step }, vec![inner], ty))
        }
        Prim::BroadcastInDim { dims, .. } if dims.is_empty() => {
            let scalar = node.inputs[0];
            Some(emit(out, Prim::BroadcastInDim { shape: ty.shape.clone(), dims: vec![] }, vec![scalar], ty))
        }
        Prim::Concatenate { axis } => {
            let axis = *axis;
            let mut offset = 0;
            for &o in &node.inputs {
                let n = out.ty(o).shape[axis];
                if start[axis] >= offset && last[axis] < offset + n {
                    let mut from = start.to_vec();
                    let mut to = stop.to_vec();
                    from[axis] -= offset;
                    to[axis] = last[axis] - offset + 1;
                    let st = stride.to_vec();
                    return Some(emit(out, Prim::Slice { start: from, stop: to, stride: st }, vec![o], ty));
                }
                offset += n;
            }
            None
        }
        _ => None,
    }
}

/// `slice(pad(a, p))` (unit strides, no interior padding): the slice of `a` that the window
/// covers, padded with `p` to the window; a window wholly in the padding is `p` broadcast.
fn slice_of_pad(
    out: &mut Graph,
    x: Var,
    start: &[usize],
    stop: &[usize],
    ty: &TensorType,
    emit: &mut Emit,
) -> Option<Var> {
    let (a, p, low, _) = plain_pad(out, x)?;
    let extent = out.ty(a).shape.clone();
    let rank = extent.len();
    let (mut from, mut to, mut new_low, mut new_high) = (vec![0; rank], vec![0; rank], vec![0; rank], vec![0; rank]);
    for k in 0..rank {
        // `a` spans [low, low + n) of the padded axis; the window is [start, stop).
        let (s, e) = (start[k] as i64, stop[k] as i64);
        let (first, end) = (low[k].max(s), (low[k] + extent[k] as i64).min(e));
        if first >= end {
            return Some(emit(out, Prim::BroadcastInDim { shape: ty.shape.clone(), dims: vec![] }, vec![p], ty));
        }
        from[k] = (first - low[k]) as usize;
        to[k] = (end - low[k]) as usize;
        new_low[k] = first - s;
        new_high[k] = e - end;
    }
    let inner_ty = TensorType::new(ty.dtype, from.iter().zip(&to).map(|(f, t)| t - f).collect());
    let inner = emit(out, Prim::Slice { start: from, stop: to, stride: vec![1; rank] }, vec![a], &inner_ty);
    if new_low.iter().chain(&new_high).all(|&n| n == 0) {
        return Some(inner); // the window lies within `a`
    }
    Some(emit(out, Prim::Pad { low: new_low, high: new_high, interior: vec![0; rank] }, vec![inner, p], ty))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_hot_constant_is_a_pad_of_its_one_element() {
        let mut v = vec![0.0; 10];
        v[7] = 3.0;
        let (small, low, high) = unpad(&Array::from_vec(v, vec![10])).unwrap();
        assert_eq!((small.shape.clone(), low, high), (vec![1], vec![7], vec![2]));
        assert_eq!(small.data.get_f64(0), 3.0);
    }

    #[test]
    fn negative_zeros_and_dense_constants_are_not_padding() {
        let mut v = vec![0.0; 10];
        v[0] = -0.0;
        v[9] = 1.0;
        assert!(unpad(&Array::from_vec(v, vec![10])).is_none());
        let mut m = vec![0.0f64; 16];
        m[5] = 1.0;
        m[6] = 2.0;
        let (small, low, high) = unpad(&Array::from_vec(m, vec![4, 4])).unwrap();
        assert_eq!((small.shape.clone(), low, high), (vec![1, 2], vec![1, 1], vec![2, 1]));
    }
}
