//! Indexing kernels: gather, scatter-add, dynamic slice, dynamic update slice.
//!
//! Gather and scatter-add view the operand as `[B, P, N, S]` (batch, axes before
//! the indexed one, the indexed axis, axes after it) and the indices as `[B, I]`;
//! the gathered shape (and the updates) is then `[B, P, I, S]`.

use super::structure::strided_indices;
use crate::array::{Array, Data};
use crate::shape::strides;
use crate::{Element, TensorType};

/// The operand and indices of a gather or scatter seen as `[B, P, N, S]` and `[B, I]`.
struct Layout {
    b: usize,
    p: usize,
    n: usize,
    s: usize,
    i: usize,
}

impl Layout {
    fn new(x: &[usize], indices: &[usize], axis: usize, batch_dims: usize) -> Layout {
        Layout {
            b: x[..batch_dims].iter().product(),
            p: x[batch_dims..axis].iter().product(),
            n: x[axis],
            s: x[axis + 1..].iter().product(),
            i: indices[batch_dims..].iter().product(),
        }
    }
}

/// The indices as `i64`, whatever their integer dtype.
fn index_values(indices: &Array) -> Vec<i64> {
    match &indices.data {
        Data::I32(v) => v.iter().map(|&i| i64::from(i)).collect(),
        Data::I64(v) => v.clone(),
        d => (0..d.len()).map(|k| d.get_i64(k)).collect(),
    }
}

/// Batched gather (see [`crate::ops::Prim::Gather`]). Indices are clamped into
/// `0..n`; gathering from an empty axis gives zeros.
pub fn gather(x: &Array, indices: &Array, axis: usize, batch_dims: usize, out: &TensorType) -> Array {
    gather_with(x, indices, axis, batch_dims, out, &mut |dtype, len| Data::filled(dtype, 0.0, len))
}

/// [`gather`] into storage from `buffer(dtype, len)`, every element of which it writes: in a
/// plan that is a recycled buffer, so a gather of many rows (kmeans's nearest centroid of
/// each point) page-faults nothing from its second run on.
pub fn gather_with(
    x: &Array,
    indices: &Array,
    axis: usize,
    batch_dims: usize,
    out: &TensorType,
    buffer: &mut dyn FnMut(crate::DType, usize) -> Data,
) -> Array {
    let l = Layout::new(&x.shape, &indices.shape, axis, batch_dims);
    let total = out.numel();
    if l.n == 0 {
        // Nothing to read from; only reachable when the indexed axis is empty.
        return Array::full(out.dtype, out.shape.clone(), 0.0);
    }
    let idx = index_values(indices);
    // Rows of `s` elements copied whole (no list of source indices).
    fn rows<T: Copy>(o: &mut [T], v: &[T], idx: &[i64], l: &Layout) {
        let last = l.n as i64 - 1;
        let mut at = 0;
        for b in 0..l.b {
            for p in 0..l.p {
                let row = (b * l.p + p) * l.n;
                for &k in &idx[b * l.i..(b + 1) * l.i] {
                    let base = (row + k.clamp(0, last) as usize) * l.s;
                    if l.s == 1 {
                        o[at] = v[base];
                    } else {
                        o[at..at + l.s].copy_from_slice(&v[base..base + l.s]);
                    }
                    at += l.s;
                }
            }
        }
        assert_eq!(at, o.len(), "gather: every element written");
    }
    let mut data = buffer(x.data.dtype(), total);
    assert_eq!(data.len(), total, "gather: a buffer of the wrong size");
    match (&mut data, &x.data) {
        (Data::F32(o), Data::F32(v)) => rows(o, v, &idx, &l),
        (Data::F64(o), Data::F64(v)) => rows(o, v, &idx, &l),
        (Data::I32(o), Data::I32(v)) => rows(o, v, &idx, &l),
        (Data::I64(o), Data::I64(v)) => rows(o, v, &idx, &l),
        (Data::Bool(o), Data::Bool(v)) => rows(o, v, &idx, &l),
        _ => unreachable!("gather: the buffer has the operand's dtype"),
    }
    Array::new(out.shape.clone(), data)
}

/// `out[b, p, idx[b, i], s] = add(out[..], upd[b, p, i, s])`, skipping out-of-range indices.
fn scatter_into<T: Copy>(out: &mut [T], upd: &[T], idx: &[i64], l: &Layout, add: fn(T, T) -> T) {
    for b in 0..l.b {
        for p in 0..l.p {
            let row = (b * l.p + p) * l.n;
            for i in 0..l.i {
                let k = idx[b * l.i + i];
                if k < 0 || k >= l.n as i64 {
                    continue;
                }
                let dst = (row + k as usize) * l.s;
                let src = ((b * l.p + p) * l.i + i) * l.s;
                for (o, &u) in out[dst..dst + l.s].iter_mut().zip(&upd[src..src + l.s]) {
                    *o = add(*o, u);
                }
            }
        }
    }
}

/// Batched scatter-add (see [`crate::ops::Prim::ScatterAdd`]): repeated indices
/// accumulate in order, out-of-range indices are dropped. Integers wrap; bools
/// combine with logical or.
pub fn scatter_add(x: &Array, indices: &Array, updates: &Array, axis: usize, batch_dims: usize) -> Array {
    let l = Layout::new(&x.shape, &indices.shape, axis, batch_dims);
    let idx = index_values(indices);
    let mut data = x.data.clone();
    match (&mut data, &updates.data) {
        (Data::F32(o), Data::F32(u)) => scatter_into(o, u, &idx, &l, |a, b| a + b),
        (Data::F64(o), Data::F64(u)) => scatter_into(o, u, &idx, &l, |a, b| a + b),
        (Data::I32(o), Data::I32(u)) => scatter_into(o, u, &idx, &l, i32::wrapping_add),
        (Data::I64(o), Data::I64(u)) => scatter_into(o, u, &idx, &l, i64::wrapping_add),
        (Data::Bool(o), Data::Bool(u)) => scatter_into(o, u, &idx, &l, |a, b| a | b),
        _ => unreachable!("scatter_add: updates dtype checked by the type rule"),
    }
    Array::new(x.shape.clone(), data)
}

/// Start offset (in elements) of a window of `sizes` at the clamped `starts` of `shape`.
fn clamped_base(shape: &[usize], sizes: &[usize], starts: &[&Array]) -> usize {
    let st = strides(shape);
    shape
        .iter()
        .zip(sizes)
        .zip(starts)
        .zip(&st)
        .map(|(((&n, &w), s), &stride)| {
            let hi = (n - w) as i64;
            s.data.get_i64(0).clamp(0, hi) as usize * stride
        })
        .sum()
}

/// Flat operand indices of the window of `sizes` at the clamped `starts` of `shape`.
fn window(shape: &[usize], sizes: &[usize], starts: &[&Array]) -> Vec<usize> {
    let base = clamped_base(shape, sizes, starts);
    let st: Vec<isize> = strides(shape).iter().map(|&s| s as isize).collect();
    strided_indices(sizes, base as isize, &st)
}

/// Window of `sizes` at dynamic starts, each clamped to `0..=shape[d] - sizes[d]`.
pub fn dynamic_slice(x: &Array, starts: &[&Array], sizes: &[usize]) -> Array {
    let idx = window(&x.shape, sizes, starts);
    Array::new(sizes.to_vec(), x.data.take(&idx))
}

fn put<T: Element>(dst: &mut [T], idx: &[usize], src: &[T]) {
    for (&i, &v) in idx.iter().zip(src) {
        dst[i] = v;
    }
}

/// Writes `update` at dynamic starts, each clamped to `0..=shape[d] - update.shape[d]`.
pub fn dynamic_update_slice(x: &Array, update: &Array, starts: &[&Array]) -> Array {
    let idx = window(&x.shape, &update.shape, starts);
    let mut data = x.data.clone();
    match (&mut data, &update.data) {
        (Data::F32(o), Data::F32(u)) => put(o, &idx, u),
        (Data::F64(o), Data::F64(u)) => put(o, &idx, u),
        (Data::I32(o), Data::I32(u)) => put(o, &idx, u),
        (Data::I64(o), Data::I64(u)) => put(o, &idx, u),
        (Data::Bool(o), Data::Bool(u)) => put(o, &idx, u),
        _ => unreachable!("dynamic_update_slice: update dtype checked by the type rule"),
    }
    Array::new(x.shape.clone(), data)
}
