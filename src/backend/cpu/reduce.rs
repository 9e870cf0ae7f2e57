//! Reduction, arg-reduction and scan kernels.
//!
//! Reductions over one run of adjacent axes (leading, middle or trailing) and
//! arg-reductions read their operand in place, viewed as `[outer, row, inner]`;
//! other reductions and scans first move the axes they work on to the end (a
//! strided copy), so the inner loop runs over contiguous rows. Every output
//! element is folded in the same order on every path, so the paths agree bitwise.

use super::fused::multiversion;
use super::structure::gather_strided;
use crate::array::{Array, Data};
use crate::ops::{ArgOp, CumOp, ReduceOp};
use crate::shape::strides;
use crate::TensorType;
use rayon::prelude::*;

/// The arithmetic a reduction needs, for every numeric dtype.
trait Num: Copy + PartialOrd {
    const ZERO: Self;
    const ONE: Self;
    const LOWEST: Self;
    const HIGHEST: Self;
    fn add(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn is_nan(self) -> bool;
}

macro_rules! num_float {
    ($t:ty) => {
        impl Num for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const LOWEST: Self = <$t>::NEG_INFINITY;
            const HIGHEST: Self = <$t>::INFINITY;
            fn add(self, o: Self) -> Self {
                self + o
            }
            fn mul(self, o: Self) -> Self {
                self * o
            }
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
        }
    };
}
macro_rules! num_int {
    ($t:ty) => {
        impl Num for $t {
            const ZERO: Self = 0;
            const ONE: Self = 1;
            const LOWEST: Self = <$t>::MIN;
            const HIGHEST: Self = <$t>::MAX;
            fn add(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            fn mul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
            fn is_nan(self) -> bool {
                false
            }
        }
    };
}
num_float!(f32);
num_float!(f64);
num_int!(i32);
num_int!(i64);

/// NaN-propagating max/min: a NaN on either side wins (the first one seen is kept).
fn pick_max<T: Num>(a: T, b: T) -> T {
    if a.is_nan() {
        a
    } else if b.is_nan() || b > a {
        b
    } else {
        a
    }
}
fn pick_min<T: Num>(a: T, b: T) -> T {
    if a.is_nan() {
        a
    } else if b.is_nan() || b < a {
        b
    } else {
        a
    }
}

/// Storage of `x` with the listed axes moved to the end (others keep their order).
fn axes_last(x: &Array, axes: &[usize]) -> Data {
    let r = x.shape.len();
    let mut perm: Vec<usize> = (0..r).filter(|a| !axes.contains(a)).collect();
    perm.extend_from_slice(axes);
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return x.data.clone();
    }
    let src = strides(&x.shape);
    let shape: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
    let st: Vec<isize> = perm.iter().map(|&p| src[p] as isize).collect();
    gather_strided(&x.data, &shape, 0, &st)
}

fn reduce_init<T: Num>(op: ReduceOp) -> T {
    match op {
        ReduceOp::Sum => T::ZERO,
        ReduceOp::Prod => T::ONE,
        ReduceOp::Max => T::LOWEST,
        ReduceOp::Min => T::HIGHEST,
    }
}

#[inline(always)]
fn reduce_step<T: Num>(op: ReduceOp, a: T, b: T) -> T {
    match op {
        ReduceOp::Sum => a.add(b),
        ReduceOp::Prod => a.mul(b),
        ReduceOp::Max => pick_max(a, b),
        ReduceOp::Min => pick_min(a, b),
    }
}

/// One contiguous row folded from the initial value, element after element.
fn reduce_row<T: Num>(s: &[T], op: ReduceOp) -> T {
    match op {
        ReduceOp::Sum => s.iter().fold(T::ZERO, |a, &b| a.add(b)),
        ReduceOp::Prod => s.iter().fold(T::ONE, |a, &b| a.mul(b)),
        ReduceOp::Max => extreme_row(s, true).unwrap_or_else(|| fold_max(s)),
        ReduceOp::Min => extreme_row(s, false).unwrap_or_else(|| fold_min(s)),
    }
}

/// Rows at least this long are searched by the versions compiled for wider vectors.
const WIDE_FROM: usize = 256;

/// [`extreme_in_lanes`] for the maximum (`max`) or minimum, compiled for the widest vectors
/// this CPU has (AVX-512, AVX2, else the baseline; picked at run time): the same lanes, so
/// the same result, about 2.5× faster than the baseline build on rows in L2 with AVX-512.
#[inline(always)]
fn extreme_row<T: Num>(s: &[T], max: bool) -> Option<T> {
    // Short rows (gmm's logsumexp over 10 components, per point) stay inlined in the
    // caller's loop: a call per row cost more than the wider vectors save.
    if s.len() >= WIDE_FROM {
        return extreme_row_wide(s, max);
    }
    extreme_row_lanes(s, max)
}

multiversion! { fn extreme_row_wide<T: Num>(s: &[T], max: bool) -> Option<T> {
    extreme_row_lanes(s, max)
}}

/// [`extreme_row`]'s body: [`extreme_in_lanes`] for the maximum or the minimum.
#[inline(always)]
fn extreme_row_lanes<T: Num>(s: &[T], max: bool) -> Option<T> {
    if max {
        extreme_in_lanes(s, T::LOWEST, |a, b| b > a)
    } else {
        extreme_in_lanes(s, T::HIGHEST, |a, b| b < a)
    }
}

fn fold_max<T: Num>(s: &[T]) -> T {
    s.iter().fold(T::LOWEST, |a, &b| pick_max(a, b))
}
fn fold_min<T: Num>(s: &[T]) -> T {
    s.iter().fold(T::HIGHEST, |a, &b| pick_min(a, b))
}

/// Lanes of a max/min search: enough independent accumulators to hide the compare's latency
/// and fill a vector register.
const EXTREME_LANES: usize = 16;

/// The maximum (`better(a, b)`: `b > a`) or minimum of `s`, found in [`EXTREME_LANES`]
/// interleaved lanes (vectorisable; the element-after-element fold is a chain of dependent
/// compares, ~4× slower on long rows), or `None` where that could differ in its bits from
/// the fold ([`pick_max`]/[`pick_min`]): when `s` holds a NaN (the fold keeps the first one's
/// payload) or the extreme is zero (`-0.0` and `0.0` tie, and the fold keeps the first seen).
/// Any other extreme is one value with one bit pattern, whatever the order it is found in.
#[inline(always)]
fn extreme_in_lanes<T: Num>(s: &[T], identity: T, better: impl Fn(T, T) -> bool) -> Option<T> {
    let mut lanes = [identity; EXTREME_LANES];
    let mut nan = false;
    let chunks = s.chunks_exact(EXTREME_LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for k in 0..EXTREME_LANES {
            let b = c[k];
            nan |= b.is_nan();
            lanes[k] = if better(lanes[k], b) { b } else { lanes[k] };
        }
    }
    let mut acc = identity;
    for &b in lanes.iter().chain(tail) {
        nan |= b.is_nan();
        acc = if better(acc, b) { b } else { acc };
    }
    (!nan && acc != T::ZERO).then_some(acc)
}

fn reduce_rows<T: Num>(v: &[T], row: usize, rows: usize, op: ReduceOp) -> Vec<T> {
    (0..rows).map(|r| reduce_row(&v[r * row..(r + 1) * row], op)).collect()
}

/// Below this many input elements a kernel runs on the calling thread.
const PARALLEL_FROM: usize = 1 << 15;

/// `out[i] = f(row i of v)` for the contiguous rows of `row` elements of `v`, in tasks of
/// about 64K elements spread over threads when `parallel` (each output is its own row's, so
/// the split changes nothing in the result).
fn each_row<T: Sync, O: Send>(v: &[T], row: usize, out: &mut [O], parallel: bool, f: impl Fn(&[T]) -> O + Sync) {
    let per = (65_536 / row).max(1);
    let task = |(c, o): (usize, &mut [O])| {
        for (r, slot) in o.iter_mut().enumerate() {
            let at = (c * per + r) * row;
            *slot = f(&v[at..at + row]);
        }
    };
    if parallel {
        out.par_chunks_mut(per).enumerate().for_each(task);
    } else {
        out.chunks_mut(per).enumerate().for_each(task);
    }
}

/// Reduction of `v`, viewed as `[outer, row, inner]`, over its middle axis, read in
/// place (no transposed copy): each output element is folded from the initial value
/// over the axis in order, exactly as [`reduce_rows`] folds a transposed row, so the
/// results are identical. Output elements are independent, so splitting them between
/// threads changes nothing in the result.
fn reduce_run<T: Num + Send + Sync>(v: &[T], outer: usize, row: usize, inner: usize, op: ReduceOp) -> Vec<T> {
    debug_assert_eq!(v.len(), outer * row * inner);
    let mut out = vec![reduce_init::<T>(op); outer * inner];
    if row == 0 || inner == 0 {
        return out;
    }
    let parallel = v.len() >= PARALLEL_FROM && crate::threads::parallel();
    if inner == 1 {
        each_row(v, row, &mut out, parallel, |r| reduce_row(r, op));
        return out;
    }
    // Rows strided by `inner`: whole lines of `inner` combined into an accumulator line.
    let task = |(o, acc): (usize, &mut [T])| {
        for line in v[o * row * inner..(o + 1) * row * inner].chunks_exact(inner) {
            for (a, &b) in acc.iter_mut().zip(line) {
                *a = reduce_step(op, *a, b);
            }
        }
    };
    if parallel {
        out.par_chunks_mut(inner).enumerate().for_each(task);
    } else {
        out.chunks_mut(inner).enumerate().for_each(task);
    }
    out
}

/// Reduces the listed axes.
pub fn reduce(op: ReduceOp, axes: &[usize], x: &Array, out: &TensorType) -> Array {
    if axes.iter().enumerate().all(|(i, &a)| i == a) && axes.len() < x.shape.len() {
        return reduce_leading(op, axes.len(), x, out);
    }
    if !axes.is_empty() && axes.windows(2).all(|w| w[1] == w[0] + 1) {
        // One run of adjacent axes, in order: read in place.
        let (a, b) = (axes[0], axes[axes.len() - 1] + 1);
        let outer: usize = x.shape[..a].iter().product();
        let row: usize = x.shape[a..b].iter().product();
        let inner: usize = x.shape[b..].iter().product();
        let data = match &x.data {
            Data::F32(v) => Data::F32(reduce_run(v, outer, row, inner, op)),
            Data::F64(v) => Data::F64(reduce_run(v, outer, row, inner, op)),
            Data::I32(v) => Data::I32(reduce_run(v, outer, row, inner, op)),
            Data::I64(v) => Data::I64(reduce_run(v, outer, row, inner, op)),
            Data::Bool(_) => unreachable!("bool reductions rejected by the type rule"),
        };
        debug_assert_eq!(data.len(), out.numel());
        return Array::new(out.shape.clone(), data);
    }
    let row: usize = axes.iter().map(|&a| x.shape[a]).product();
    let rows = out.numel();
    let data = match axes_last(x, axes) {
        Data::F32(v) => Data::F32(reduce_rows(&v, row, rows, op)),
        Data::F64(v) => Data::F64(reduce_rows(&v, row, rows, op)),
        Data::I32(v) => Data::I32(reduce_rows(&v, row, rows, op)),
        Data::I64(v) => Data::I64(reduce_rows(&v, row, rows, op)),
        Data::Bool(_) => unreachable!("bool reductions rejected by the type rule"),
    };
    Array::new(out.shape.clone(), data)
}

/// Reduction over the leading `k` axes: whole rows are combined into an accumulator row,
/// in the same order as the general kernel (so results are identical), without a transpose.
fn reduce_leading(op: ReduceOp, k: usize, x: &Array, out: &TensorType) -> Array {
    fn run<T: Num>(v: &[T], inner: usize, op: ReduceOp) -> Vec<T> {
        let init = match op {
            ReduceOp::Sum => T::ZERO,
            ReduceOp::Prod => T::ONE,
            ReduceOp::Max => T::LOWEST,
            ReduceOp::Min => T::HIGHEST,
        };
        let mut acc = vec![init; inner];
        for row in v.chunks_exact(inner.max(1)) {
            for (a, &b) in acc.iter_mut().zip(row) {
                *a = match op {
                    ReduceOp::Sum => a.add(b),
                    ReduceOp::Prod => a.mul(b),
                    ReduceOp::Max => pick_max(*a, b),
                    ReduceOp::Min => pick_min(*a, b),
                };
            }
        }
        acc
    }
    let inner: usize = x.shape[k..].iter().product();
    let data = match &x.data {
        Data::F32(v) => Data::F32(run(v, inner, op)),
        Data::F64(v) => Data::F64(run(v, inner, op)),
        Data::I32(v) => Data::I32(run(v, inner, op)),
        Data::I64(v) => Data::I64(run(v, inner, op)),
        Data::Bool(_) => unreachable!("bool reductions rejected by the type rule"),
    };
    Array::new(out.shape.clone(), data)
}

/// Whether `v` replaces `best` as the extreme (NaNs are handled by the callers).
#[inline(always)]
fn arg_better<T: Num>(op: ArgOp, v: T, best: T) -> bool {
    match op {
        ArgOp::Max => v > best,
        ArgOp::Min => v < best,
    }
}

/// Index of the first extreme of the contiguous row `s` (the first NaN wins; 0 if empty).
///
/// Long rows in two vectorisable passes instead of one dependent chain: the extreme value
/// (in 8 lanes) and whether a NaN occurs, then the first position holding it. The same index
/// as the one-pass scan: that keeps the first of equal values (`-0` and `+0` included, which
/// compare equal), and the first NaN.
fn arg_row<T: Num>(s: &[T], op: ArgOp) -> i64 {
    if s.len() < 32 {
        return arg_row_serial(s, op);
    }
    let mut lanes = [s[0]; 8];
    let mut nan = false;
    let chunks = s.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for k in 0..8 {
            let x = c[k];
            nan |= x.is_nan();
            if arg_better(op, x, lanes[k]) {
                lanes[k] = x;
            }
        }
    }
    if nan || tail.iter().any(|x| x.is_nan()) {
        return s.iter().position(|x| x.is_nan()).unwrap_or(0) as i64;
    }
    let mut best = lanes[0];
    for &x in lanes[1..].iter().chain(tail) {
        if arg_better(op, x, best) {
            best = x;
        }
    }
    // Not better and not worse: equal (no NaNs here).
    s.iter().position(|&x| !arg_better(op, x, best) && !arg_better(op, best, x)).unwrap_or(0) as i64
}

/// [`arg_row`] as one scan (short rows).
fn arg_row_serial<T: Num>(s: &[T], op: ArgOp) -> i64 {
    let Some(&first) = s.first() else { return 0 };
    if first.is_nan() {
        return 0;
    }
    let (mut best, mut bv) = (0, first);
    for (i, &v) in s.iter().enumerate().skip(1) {
        if v.is_nan() {
            return i as i64;
        }
        if arg_better(op, v, bv) {
            best = i;
            bv = v;
        }
    }
    best as i64
}

/// Arg-reduction of `v`, viewed as `[outer, row, inner]`, over its middle axis, read in
/// place (no transposed copy). Each output element depends only on its own slice, so
/// splitting the work between threads changes nothing in the result.
fn arg_strided<T: Num + Send + Sync>(v: &[T], outer: usize, row: usize, inner: usize, op: ArgOp) -> Vec<i64> {
    debug_assert_eq!(v.len(), outer * row * inner);
    let mut out = vec![0i64; outer * inner];
    if row == 0 || inner == 0 {
        return out;
    }
    let parallel = crate::threads::parallel();
    if inner == 1 {
        each_row(v, row, &mut out, parallel, |r| arg_row(r, op));
        return out;
    }
    // Rows strided by `inner`: sweep the axis keeping, per inner position, the best
    // index and value, and whether a NaN has been found (the first NaN wins).
    let task = |(o, best): (usize, &mut [i64])| {
        let block = &v[o * row * inner..(o + 1) * row * inner];
        let mut bv: Vec<T> = block[..inner].to_vec();
        let mut locked: Vec<bool> = bv.iter().map(|x| x.is_nan()).collect();
        for j in 1..row {
            let line = &block[j * inner..(j + 1) * inner];
            for p in 0..inner {
                let x = line[p];
                if !locked[p] && (x.is_nan() || arg_better(op, x, bv[p])) {
                    best[p] = j as i64;
                    bv[p] = x;
                    locked[p] = x.is_nan();
                }
            }
        }
    };
    if parallel {
        out.par_chunks_mut(inner).enumerate().for_each(task);
    } else {
        out.chunks_mut(inner).enumerate().for_each(task);
    }
    out
}

/// Index of the first extreme element along `axis` (a NaN wins).
pub fn arg(op: ArgOp, axis: usize, x: &Array, out: &TensorType) -> Array {
    let row = x.shape[axis];
    let outer: usize = x.shape[..axis].iter().product();
    let inner: usize = x.shape[axis + 1..].iter().product();
    let v = match &x.data {
        Data::F32(v) => arg_strided(v, outer, row, inner, op),
        Data::F64(v) => arg_strided(v, outer, row, inner, op),
        Data::I32(v) => arg_strided(v, outer, row, inner, op),
        Data::I64(v) => arg_strided(v, outer, row, inner, op),
        Data::Bool(_) => unreachable!("bool arg-reductions rejected by the type rule"),
    };
    debug_assert_eq!(v.len(), out.numel());
    Array::new(out.shape.clone(), Data::I64(v))
}

fn scan_rows<T: Num>(mut v: Vec<T>, row: usize, op: CumOp, reverse: bool) -> Vec<T> {
    if row == 0 {
        return v;
    }
    for s in v.chunks_mut(row) {
        let order: Box<dyn Iterator<Item = usize>> = if reverse { Box::new((0..row).rev()) } else { Box::new(0..row) };
        let mut acc: Option<T> = None;
        for i in order {
            let x = s[i];
            let y = match acc {
                None => x,
                Some(a) => match op {
                    CumOp::Sum => a.add(x),
                    CumOp::Prod => a.mul(x),
                    CumOp::Max => pick_max(a, x),
                    CumOp::Min => pick_min(a, x),
                },
            };
            s[i] = y;
            acc = Some(y);
        }
    }
    v
}

/// Inclusive scan along `axis`.
pub fn cumulative(op: CumOp, axis: usize, reverse: bool, x: &Array) -> Array {
    let r = x.shape.len();
    let row = x.shape[axis];
    let data = match axes_last(x, &[axis]) {
        Data::F32(v) => Data::F32(scan_rows(v, row, op, reverse)),
        Data::F64(v) => Data::F64(scan_rows(v, row, op, reverse)),
        Data::I32(v) => Data::I32(scan_rows(v, row, op, reverse)),
        Data::I64(v) => Data::I64(scan_rows(v, row, op, reverse)),
        Data::Bool(_) => unreachable!("bool scans rejected by the type rule"),
    };
    // Move the scanned axis back from the end to its place.
    let mut moved: Vec<usize> = (0..r).filter(|&a| a != axis).map(|a| x.shape[a]).collect();
    moved.push(row);
    let mut perm: Vec<usize> = (0..r - 1).collect();
    perm.insert(axis, r - 1);
    let scanned = Array::new(moved, data);
    if axis == r - 1 {
        return scanned;
    }
    super::structure::transpose(&scanned, &perm)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows with ties of signed zeros, NaNs (with distinct payloads) and infinities at
    /// assorted places, of lengths around the lane count: the lanes give the fold's bits.
    #[test]
    fn max_and_min_in_lanes_match_the_element_after_element_fold() {
        let nan_a = f64::from_bits(0x7ff8_0000_0000_0001);
        let nan_b = f64::from_bits(0xfff8_0000_0000_0002);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut checked = 0;
        for len in [0, 1, 7, 15, 16, 17, 31, 32, 33, 100, 1000] {
            for case in 0..40 {
                let row: Vec<f64> = (0..len)
                    .map(|_| match (case % 5, next() % 23) {
                        (1, 0) => nan_a,
                        (1, 1) => nan_b,
                        (2, 0..=5) => 0.0,
                        (2, 6..=11) => -0.0,
                        (3, 0) => f64::INFINITY,
                        (3, 1) => f64::NEG_INFINITY,
                        (4, _) => -((next() % 1000) as f64),
                        _ => (next() % 2001) as f64 - 1000.0,
                    })
                    .collect();
                let max = reduce_row(&row, ReduceOp::Max);
                let min = reduce_row(&row, ReduceOp::Min);
                assert_eq!(max.to_bits(), fold_max(&row).to_bits(), "max of {row:?}");
                assert_eq!(min.to_bits(), fold_min(&row).to_bits(), "min of {row:?}");
                let narrow: Vec<f32> = row.iter().map(|&x| x as f32).collect();
                assert_eq!(reduce_row(&narrow, ReduceOp::Max).to_bits(), fold_max(&narrow).to_bits());
                assert_eq!(reduce_row(&narrow, ReduceOp::Min).to_bits(), fold_min(&narrow).to_bits());
                let ints: Vec<i64> = row.iter().map(|&x| if x.is_finite() { x as i64 } else { 7 }).collect();
                assert_eq!(reduce_row(&ints, ReduceOp::Max), fold_max(&ints));
                assert_eq!(reduce_row(&ints, ReduceOp::Min), fold_min(&ints));
                checked += 1;
            }
        }
        assert_eq!(checked, 11 * 40);
    }

    /// The lanes give up (and the fold decides) exactly where their bits could differ.
    #[test]
    fn lanes_defer_to_the_fold_on_nan_and_on_a_zero_extreme() {
        let mut row = vec![1.0f64; 40];
        assert_eq!(extreme_in_lanes(&row, f64::NEG_INFINITY, |a, b| b > a), Some(1.0));
        row[33] = f64::NAN;
        assert_eq!(extreme_in_lanes(&row, f64::NEG_INFINITY, |a, b| b > a), None);
        let zeros = [0.0f64, -0.0, -1.0, -2.0].repeat(10);
        assert_eq!(extreme_in_lanes(&zeros, f64::NEG_INFINITY, |a, b| b > a), None);
        assert_eq!(reduce_row(&zeros, ReduceOp::Max).to_bits(), 0.0f64.to_bits());
    }
}
