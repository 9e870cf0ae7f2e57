//! Structural kernels: data movement without arithmetic.
//!
//! Broadcast, transpose, slice and rev are all "read the operand through a
//! strided view": [`gather_strided`] copies the view row by row (a row of stride 1 is
//! one slice copy, of stride 0 one fill), and [`strided_indices`] lists the source index
//! of every element for the kernels that need the indices themselves.

use crate::array::{Array, Data};
use crate::shape::{numel, strides};
use crate::{DType, Element, TensorType};

/// Calls `row(start, len, step)` for each row (the last axis) of a view of `shape` read at
/// `base + Σ idx[i]·strides[i]`, in row-major order. A 0-d view is one row of one element.
fn for_each_row(shape: &[usize], base: isize, strides: &[isize], mut row: impl FnMut(isize, usize, isize)) {
    if numel(shape) == 0 {
        return;
    }
    let Some((&len, outer)) = shape.split_last() else {
        return row(base, 1, 0);
    };
    let step = strides[outer.len()];
    let mut idx = vec![0usize; outer.len()];
    let mut off = base;
    for _ in 0..numel(outer) {
        row(off, len, step);
        // Odometer over the outer axes, adjusting the offset incrementally.
        let mut d = outer.len();
        while d > 0 {
            d -= 1;
            idx[d] += 1;
            off += strides[d];
            if idx[d] < outer[d] {
                break;
            }
            off -= strides[d] * outer[d] as isize;
            idx[d] = 0;
        }
    }
}

/// Source index of each output element for an output `shape` read at `base + Σ idx[i]·strides[i]`.
pub(crate) fn strided_indices(shape: &[usize], base: isize, strides: &[isize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(numel(shape));
    for_each_row(shape, base, strides, |start, len, step| {
        out.extend((0..len).map(|j| (start + j as isize * step) as usize));
    });
    out
}

/// The elements of `data` read at `base + Σ idx[i]·strides[i]` for every index of `shape`,
/// in row-major order: the same values as `data.take(&strided_indices(..))`, without the
/// index vector, and with whole rows copied or filled at once.
pub(crate) fn gather_strided(data: &Data, shape: &[usize], base: isize, strides: &[isize]) -> Data {
    fn rows<T: Copy>(v: &[T], shape: &[usize], base: isize, strides: &[isize]) -> Vec<T> {
        let mut out = Vec::with_capacity(numel(shape));
        for_each_row(shape, base, strides, |start, len, step| {
            let s = start as usize;
            match step {
                1 => out.extend_from_slice(&v[s..s + len]),
                0 => out.extend(std::iter::repeat_n(v[s], len)),
                _ => out.extend((0..len).map(|j| v[(start + j as isize * step) as usize])),
            }
        });
        out
    }
    crate::with_data!(data, v => <_ as Element>::into_data(rows(v, shape, base, strides)))
}

fn signed(v: &[usize]) -> Vec<isize> {
    v.iter().map(|&s| s as isize).collect()
}

/// `broadcast_in_dim`: operand axis `i` is output axis `dims[i]`; extent-1 axes repeat.
pub fn broadcast_in_dim(x: &Array, shape: &[usize], dims: &[usize]) -> Array {
    let src = strides(&x.shape);
    let mut st = vec![0isize; shape.len()];
    for (i, &d) in dims.iter().enumerate() {
        if x.shape[i] != 1 {
            st[d] = src[i] as isize;
        }
    }
    Array::new(shape.to_vec(), gather_strided(&x.data, shape, 0, &st))
}

/// Axis permutation.
pub fn transpose(x: &Array, perm: &[usize]) -> Array {
    // Swapping the last two axes (matrix transposes, batched or not): cache-blocked copies.
    let r = x.shape.len();
    if r >= 2 && perm[..r - 2].iter().enumerate().all(|(i, &p)| i == p) && perm[r - 2] == r - 1 && perm[r - 1] == r - 2
    {
        let (rows, cols) = (x.shape[r - 2], x.shape[r - 1]);
        let mut shape = x.shape.clone();
        shape.swap(r - 2, r - 1);
        let data = crate::with_data!(&x.data, v => Element::into_data(transpose_matrices(v, rows, cols)));
        return Array::new(shape, data);
    }
    let src = strides(&x.shape);
    let shape: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
    let st: Vec<isize> = perm.iter().map(|&p| src[p] as isize).collect();
    Array::new(shape.clone(), gather_strided(&x.data, &shape, 0, &st))
}

/// Transposes each consecutive `rows × cols` matrix of `v`, in 32×32 tiles.
fn transpose_matrices<T: Copy>(v: &[T], rows: usize, cols: usize) -> Vec<T> {
    const TILE: usize = 32;
    let size = rows * cols;
    if size == 0 {
        return v.to_vec();
    }
    let mut out = v.to_vec(); // every element is overwritten below
    for (src, dst) in v.chunks_exact(size).zip(out.chunks_exact_mut(size)) {
        for i0 in (0..rows).step_by(TILE) {
            for j0 in (0..cols).step_by(TILE) {
                let j1 = (j0 + TILE).min(cols);
                for i in i0..(i0 + TILE).min(rows) {
                    for (j, &x) in (j0..j1).zip(&src[i * cols + j0..i * cols + j1]) {
                        debug_assert!(j * rows + i < size);
                        // SAFETY: j < cols and i < rows, so j·rows + i < rows·cols = dst.len()
                        // (`dst` is allocated here from the same rows and cols; no input reaches it).
                        unsafe { *dst.get_unchecked_mut(j * rows + i) = x };
                    }
                }
            }
        }
    }
    out
}

/// Strided slice.
pub fn slice(x: &Array, start: &[usize], stride: &[usize], out: &TensorType) -> Array {
    let src = strides(&x.shape);
    let base: usize = start.iter().zip(&src).map(|(a, b)| a * b).sum();
    let st: Vec<isize> = stride.iter().zip(&src).map(|(a, b)| (a * b) as isize).collect();
    Array::new(out.shape.clone(), gather_strided(&x.data, &out.shape, base as isize, &st))
}

/// Reverses the listed axes.
pub fn rev(x: &Array, axes: &[usize]) -> Array {
    let mut st = signed(&strides(&x.shape));
    let mut base = 0isize;
    for &a in axes {
        if x.shape[a] > 0 {
            base += st[a] * (x.shape[a] as isize - 1);
        }
        st[a] = -st[a];
    }
    Array::new(x.shape.clone(), gather_strided(&x.data, &x.shape, base, &st))
}

/// Pads with the scalar `value`; negative `low`/`high` crop, `interior` dilates.
pub fn pad(x: &Array, value: &Array, low: &[i64], interior: &[usize], out: &TensorType) -> Array {
    fn run<T: Element>(x: &[T], v: T, xs: &[usize], low: &[i64], interior: &[usize], os: &[usize]) -> Vec<T> {
        let mut out = vec![v; numel(os)];
        let ost = strides(os);
        let r = xs.len();
        let mut idx = vec![0usize; r];
        'elements: for &val in x.iter() {
            let mut off = 0usize;
            let mut inside = true;
            for d in 0..r {
                let p = low[d] + (idx[d] * (interior[d] + 1)) as i64;
                if p < 0 || p >= os[d] as i64 {
                    inside = false;
                    break;
                }
                off += p as usize * ost[d];
            }
            if inside {
                out[off] = val;
            }
            let mut d = r;
            while d > 0 {
                d -= 1;
                idx[d] += 1;
                if idx[d] < xs[d] {
                    continue 'elements;
                }
                idx[d] = 0;
            }
        }
        out
    }
    let data = match (&x.data, &value.data) {
        (Data::F32(a), Data::F32(v)) => Data::F32(run(a, v[0], &x.shape, low, interior, &out.shape)),
        (Data::F64(a), Data::F64(v)) => Data::F64(run(a, v[0], &x.shape, low, interior, &out.shape)),
        (Data::I32(a), Data::I32(v)) => Data::I32(run(a, v[0], &x.shape, low, interior, &out.shape)),
        (Data::I64(a), Data::I64(v)) => Data::I64(run(a, v[0], &x.shape, low, interior, &out.shape)),
        (Data::Bool(a), Data::Bool(v)) => Data::Bool(run(a, v[0], &x.shape, low, interior, &out.shape)),
        _ => unreachable!("padding value dtype checked by the type rule"),
    };
    Array::new(out.shape.clone(), data)
}

/// Joins operands along `axis`.
pub fn concatenate(xs: &[&Array], axis: usize, out: &TensorType) -> Array {
    let outer: usize = out.shape[..axis].iter().product();
    // Each operand contributes a contiguous chunk per index of the leading axes.
    let chunks: Vec<usize> = xs.iter().map(|x| x.shape[axis..].iter().product()).collect();
    fn join<T: Element>(xs: &[&Array], chunks: &[usize], outer: usize, n: usize) -> Vec<T> {
        let slices: Vec<&[T]> = xs.iter().map(|x| x.as_slice::<T>().expect("same dtype")).collect();
        let mut v = Vec::with_capacity(n);
        if chunks.iter().all(|&c| c == 1) {
            // Columns interleaved (a split value joined again): one element of each per row.
            for o in 0..outer {
                v.extend(slices.iter().map(|s| s[o]));
            }
        } else {
            for o in 0..outer {
                for (s, &c) in slices.iter().zip(chunks) {
                    v.extend_from_slice(&s[o * c..(o + 1) * c]);
                }
            }
        }
        v
    }
    let n = out.numel();
    let data = match out.dtype {
        DType::F32 => Data::F32(join(xs, &chunks, outer, n)),
        DType::F64 => Data::F64(join(xs, &chunks, outer, n)),
        DType::I32 => Data::I32(join(xs, &chunks, outer, n)),
        DType::I64 => Data::I64(join(xs, &chunks, outer, n)),
        DType::Bool => Data::Bool(join(xs, &chunks, outer, n)),
    };
    Array::new(out.shape.clone(), data)
}

/// `0, 1, 2, ...` along `dim`.
pub fn iota(dtype: DType, shape: &[usize], dim: usize) -> Array {
    let st = strides(shape);
    let n = numel(shape);
    let v: Vec<f64> = (0..n).map(|i| ((i / st[dim]) % shape[dim]) as f64).collect();
    convert(&Array::from_vec(v, shape.to_vec()), dtype)
}

macro_rules! cast_from {
    ($v:expr, $dtype:expr) => {
        match $dtype {
            DType::F32 => Data::F32($v.iter().map(|&x| x as f32).collect()),
            DType::F64 => Data::F64($v.iter().map(|&x| x as f64).collect()),
            DType::I32 => Data::I32($v.iter().map(|&x| x as i32).collect()),
            DType::I64 => Data::I64($v.iter().map(|&x| x as i64).collect()),
            // Compared as f64: `0 as _` stops inferring once a dependency adds `PartialEq<Other>` impls
            // for the primitive types (serde_json does, through safetensors).
            DType::Bool => Data::Bool($v.iter().map(|&x| (x as f64) != 0.0).collect()),
        }
    };
}

/// Element type conversion with `as` semantics (to bool: non-zero is true; from bool: 0 or 1).
pub fn convert(x: &Array, dtype: DType) -> Array {
    let data = match &x.data {
        Data::F32(v) => cast_from!(v, dtype),
        Data::F64(v) => cast_from!(v, dtype),
        Data::I32(v) => cast_from!(v, dtype),
        Data::I64(v) => cast_from!(v, dtype),
        Data::Bool(v) => {
            let as_int: Vec<u8> = v.iter().map(|&b| b as u8).collect();
            cast_from!(as_int, dtype)
        }
    };
    Array::new(x.shape.clone(), data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The row-wise gather reads exactly the elements the index list names, for contiguous,
    /// broadcast (stride 0), strided and reversed rows, 0-d views and empty ones.
    #[test]
    fn gather_strided_matches_the_index_list() {
        let data = Data::F64((0..120).map(|i| i as f64).collect());
        let cases: [(&[usize], isize, &[isize]); 7] = [
            (&[2, 3, 4], 0, &[12, 4, 1]),
            (&[2, 3, 4], 0, &[0, 4, 0]),
            (&[4, 3], 0, &[1, 4]),
            (&[3, 4], 119, &[-20, -2]),
            (&[], 7, &[]),
            (&[2, 0, 3], 0, &[3, 3, 1]),
            (&[5], 3, &[0]),
        ];
        for (shape, base, st) in cases {
            let want = data.take(&strided_indices(shape, base, st));
            assert_eq!(gather_strided(&data, shape, base, st), want, "{shape:?} {base} {st:?}");
        }
    }
}
