//! `dot_general` on the `gemm` crate.
//!
//! Both operands are brought into a contiguous `[B, M, K]` / `[B, K, N]` layout
//! (batch, free, contracting for the lhs; batch, contracting, free for the rhs),
//! then every batch is one matrix product: `gemm` for floats, a plain loop with
//! wrapping arithmetic for integers.

use super::fused::SendPtr;
use super::structure::transpose;
use super::thin_dot;
use crate::array::{Array, Data};
use crate::{Element, TensorType};
use std::borrow::Cow;

/// Below this many multiply-adds (`b * m * n * k`) a product runs on the calling thread: at
/// least two tasks' worth, since handing work to another thread costs microseconds (and far
/// more when other processes hold the cores).
const PARALLEL_THRESHOLD: usize = 2 * TASK_MIN_WORK;
/// Products with at most this many rows copy a k-contiguous right operand to n-contiguous.
const TRANSPOSE_RHS_MAX_ROWS: usize = 1024;
/// Side of the tiles of that copy (few enough columns that the rows they read stay in L1 even
/// when the row length is a power of two).
const TILE: usize = 16;

/// Whether a product with `out_elements` outputs, each a sum of `contracted` terms, splits
/// work over the thread pool.
pub fn runs_in_parallel(out_elements: usize, contracted: usize) -> bool {
    out_elements * contracted >= PARALLEL_THRESHOLD && crate::threads::parallel()
}

/// `x` with its axes in the order `perm`, copied only when that is not already the order.
fn permuted<'a>(x: &'a Array, perm: &[usize]) -> Cow<'a, Data> {
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        Cow::Borrowed(&x.data)
    } else {
        Cow::Owned(transpose(x, perm).data)
    }
}

/// Axes of a rank-`rank` operand that are neither contracted nor batch, in order.
fn free_axes(rank: usize, contract: &[usize], batch: &[usize]) -> Vec<usize> {
    (0..rank).filter(|a| !contract.contains(a) && !batch.contains(a)).collect()
}

/// General contraction: output axes are batch, lhs free, rhs free.
pub fn dot_general(
    lhs: &Array,
    rhs: &Array,
    lc: &[usize],
    rc: &[usize],
    lb: &[usize],
    rb: &[usize],
    out: &TensorType,
) -> Array {
    dot_general_with(lhs, rhs, lc, rc, lb, rb, out, &mut |dtype, len| Data::filled(dtype, 0.0, len), true)
}

/// [`dot_general`] writing float results into storage from `buffer(dtype, len)` (whose
/// contents are overwritten), so a plan can recycle its buffers. With `threads` false the
/// product runs on the calling thread (for callers that run several products at once).
#[allow(clippy::too_many_arguments)]
pub fn dot_general_with(
    lhs: &Array,
    rhs: &Array,
    lc: &[usize],
    rc: &[usize],
    lb: &[usize],
    rb: &[usize],
    out: &TensorType,
    buffer: &mut dyn FnMut(crate::DType, usize) -> Data,
    threads: bool,
) -> Array {
    let lf = free_axes(lhs.shape.len(), lc, lb);
    let rf = free_axes(rhs.shape.len(), rc, rb);
    let extent = |x: &Array, axes: &[usize]| -> usize { axes.iter().map(|&a| x.shape[a]).product() };
    let (b, m, k, n) = (extent(lhs, lb), extent(lhs, &lf), extent(lhs, lc), extent(rhs, &rf));
    if b * m * n == 0 || k == 0 {
        // Empty output, or an empty sum: zeros, without touching the operands.
        return Array::full(out.dtype, out.shape.clone(), 0.0);
    }
    // Floats go to gemm, reading each operand in place when its axis groups are regular strides.
    if let (Some(lv), Some(rv)) = (Matrix::view(lhs, lb, &lf, lc), Matrix::view(rhs, rb, rc, &rf)) {
        let dims = Dims { b, m, k, n };
        if n <= thin_dot::MAX_COLUMNS && lv.col == 1 {
            if let Some(data) = thin(lhs, lv, rhs, rv, dims, buffer, threads) {
                return Array::new(out.shape.clone(), data);
            }
        }
        if swaps_narrow(lv, dims) {
            let data = match (&lhs.data, &rhs.data) {
                (Data::F32(a), Data::F32(c)) => match buffer(crate::DType::F32, b * m * n) {
                    Data::F32(o) => Some(Data::F32(gemm_swapped(a, lv, c, rv, dims, o, threads))),
                    _ => unreachable!("buffer of the requested dtype"),
                },
                (Data::F64(a), Data::F64(c)) => match buffer(crate::DType::F64, b * m * n) {
                    Data::F64(o) => Some(Data::F64(gemm_swapped(a, lv, c, rv, dims, o, threads))),
                    _ => unreachable!("buffer of the requested dtype"),
                },
                _ => None,
            };
            if let Some(data) = data {
                return Array::new(out.shape.clone(), data);
            }
        }
        let data = match (&lhs.data, &rhs.data) {
            (Data::F32(a), Data::F32(c)) => match buffer(crate::DType::F32, b * m * n) {
                Data::F32(o) => Some(Data::F32(gemm_strided(a, lv, c, rv, dims, o, threads))),
                _ => unreachable!("buffer of the requested dtype"),
            },
            (Data::F64(a), Data::F64(c)) => match buffer(crate::DType::F64, b * m * n) {
                Data::F64(o) => Some(Data::F64(gemm_strided(a, lv, c, rv, dims, o, threads))),
                _ => unreachable!("buffer of the requested dtype"),
            },
            _ => None,
        };
        if let Some(data) = data {
            return Array::new(out.shape.clone(), data);
        }
    }
    let lperm = [lb, &lf, lc].concat();
    let rperm = [rb, rc, &rf].concat();
    let l = permuted(lhs, &lperm);
    let r = permuted(rhs, &rperm);
    let dims = Dims { b, m, k, n };
    let data = match (l.as_ref(), r.as_ref()) {
        // Permuted copies are contiguous [b, m, k] and [b, k, n] stacks of matrices.
        (Data::F32(a), Data::F32(c)) => {
            let (lv, rv) = (Matrix::dense(m, k), Matrix::dense(k, n));
            Data::F32(gemm_strided(a, lv, c, rv, dims, vec![0.0; b * m * n], threads))
        }
        (Data::F64(a), Data::F64(c)) => {
            let (lv, rv) = (Matrix::dense(m, k), Matrix::dense(k, n));
            Data::F64(gemm_strided(a, lv, c, rv, dims, vec![0.0; b * m * n], threads))
        }
        (Data::I32(a), Data::I32(c)) => {
            Data::I32(int_batched(a, c, dims, |acc, x, y| acc.wrapping_add(x.wrapping_mul(y))))
        }
        (Data::I64(a), Data::I64(c)) => {
            Data::I64(int_batched(a, c, dims, |acc, x, y| acc.wrapping_add(x.wrapping_mul(y))))
        }
        _ => unreachable!("dot_general: operand dtypes checked by the type rule"),
    };
    Array::new(out.shape.clone(), data)
}

/// An f64 product with few output columns, through [`thin_dot`]; `None` for other dtypes
/// (f32 products keep to gemm).
fn thin(
    lhs: &Array,
    lv: Matrix,
    rhs: &Array,
    rv: Matrix,
    d: Dims,
    buffer: &mut dyn FnMut(crate::DType, usize) -> Data,
    threads: bool,
) -> Option<Data> {
    let (Data::F64(a), Data::F64(c)) = (&lhs.data, &rhs.data) else { return None };
    let layout = |v: Matrix| thin_dot::Layout { batch: v.batch, row: v.row, col: v.col };
    let parallel = threads && runs_in_parallel(d.b * d.m * d.n, d.k);
    match buffer(crate::DType::F64, d.b * d.m * d.n) {
        Data::F64(mut o) => {
            thin_dot::product(a, layout(lv), c, layout(rv), (d.b, d.m, d.k, d.n), &mut o, parallel);
            Some(Data::F64(o))
        }
        _ => unreachable!("buffer of the requested dtype"),
    }
}

/// Extents of a batched product `[b, m, k] @ [b, k, n]`, all non-zero.
#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    m: usize,
    k: usize,
    n: usize,
}

/// A batch of matrices inside an operand: the batch, row and column axis groups each
/// collapse to one stride (in elements).
#[derive(Clone, Copy)]
struct Matrix {
    batch: isize,
    row: isize,
    col: isize,
}

impl Matrix {
    /// The stride of a group of axes that walks memory regularly (each axis steps over the
    /// following ones in the group), or `None`. An empty group has stride 0.
    fn group_stride(x: &Array, axes: &[usize]) -> Option<isize> {
        let st = crate::shape::strides(&x.shape);
        let axes: Vec<usize> = axes.iter().copied().filter(|&a| x.shape[a] != 1).collect();
        for w in axes.windows(2) {
            if st[w[0]] != st[w[1]] * x.shape[w[1]] {
                return None;
            }
        }
        Some(axes.last().map_or(0, |&a| st[a] as isize))
    }

    /// A contiguous stack of `rows × cols` matrices.
    fn dense(rows: usize, cols: usize) -> Matrix {
        Matrix { batch: (rows * cols) as isize, row: cols as isize, col: 1 }
    }

    /// The index of element (`row`, `col`) of matrix `batch` (all strides are non-negative).
    fn offset(&self, batch: usize, row: usize, col: usize) -> usize {
        (batch as isize * self.batch + row as isize * self.row + col as isize * self.col) as usize
    }

    fn view(x: &Array, batch: &[usize], rows: &[usize], cols: &[usize]) -> Option<Matrix> {
        Some(Matrix {
            batch: Self::group_stride(x, batch)?,
            row: Self::group_stride(x, rows)?,
            col: Self::group_stride(x, cols)?,
        })
    }
}

/// Columns `c0..c1` of right operand `bi` (`k×n`, stored k-contiguous: element (i, j) at
/// `bi·rv.batch + i + j·rv.col`) copied to a dense row-major `k×(c1-c0)` matrix, in tiles.
///
/// # Safety
/// `out` must be valid for writing `k·(c1-c0)` elements; afterwards all of them are initialised.
unsafe fn copy_columns<T: Element>(rhs: &[T], rv: Matrix, bi: usize, k: usize, cols: (usize, usize), out: *mut T) {
    let (c0, c1) = cols;
    let w = c1 - c0;
    // Every source index lies inside `rhs` (the view was built from the operand's shape).
    let base = bi as isize * rv.batch;
    let last = base + (k - 1) as isize + (c1 - 1) as isize * rv.col;
    assert!(rv.batch >= 0 && rv.col >= 0 && (last as usize) < rhs.len(), "dot_general: operand view out of bounds");
    #[cfg(target_arch = "x86_64")]
    if simd_transpose::available() {
        // SAFETY: AVX is available; every source index `base + j·col + i` (j < c1, i < k) is
        // at most `last` < rhs.len() (checked above), every destination index below k·w, inside
        // `out` (the caller's contract).
        unsafe { simd_transpose::columns(rhs.as_ptr().offset(base), rv.col as usize, k, w, c0, out) };
        return;
    }
    // SAFETY: the same bounds (the caller's contract and the check above).
    unsafe { copy_columns_scalar(rhs, base, rv.col, k, cols, out) }
}

/// [`copy_columns`] element by element, reading column `j` at `rhs[base + j·col..]`.
///
/// # Safety
/// As [`copy_columns`], with `base + (c1-1)·col + k - 1 < rhs.len()`.
unsafe fn copy_columns_scalar<T: Element>(
    rhs: &[T],
    base: isize,
    col: isize,
    k: usize,
    cols: (usize, usize),
    out: *mut T,
) {
    let (c0, c1) = cols;
    let w = c1 - c0;
    // Tiles of TILE columns × TILE rows: the TILE source rows (one per column) stay in L1.
    for j0 in (c0..c1).step_by(TILE) {
        let j1 = (j0 + TILE).min(c1);
        for i0 in (0..k).step_by(TILE) {
            for i in i0..(i0 + TILE).min(k) {
                for j in j0..j1 {
                    // SAFETY: the source index is at most `last` < rhs.len() (the caller checked); the
                    // destination `i·w + (j - c0)` < k·w, inside `out` (the caller's contract).
                    // Not reachable with bad input from safe public code: `dot` is crate-private
                    // and its callers pass operands typed by `infer_type`.
                    unsafe {
                        let v = *rhs.get_unchecked((base + j as isize * col + i as isize) as usize);
                        out.add(i * w + (j - c0)).write(v);
                    }
                }
            }
        }
    }
}

/// The copy of [`copy_columns`] in 8×8 (4-byte elements) or 4×4 (8-byte elements) register
/// transposes (AVX), the edges element by element.
#[cfg(target_arch = "x86_64")]
mod simd_transpose {
    use std::arch::x86_64::*;

    pub(super) fn available() -> bool {
        static AVX: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVX.get_or_init(|| is_x86_feature_detected!("avx"))
    }

    /// Columns `c0..c0+w` of a k-contiguous matrix (column `j` at `src + j·col`, `k` elements)
    /// to a row-major `k×w` matrix at `out`. Elements are moved as bits.
    ///
    /// # Safety
    /// AVX available; `src + j·col + i` readable for `j` in `c0..c0+w`, `i < k`; `out` valid
    /// for writing `k·w` elements.
    pub(super) unsafe fn columns<T>(src: *const T, col: usize, k: usize, w: usize, c0: usize, out: *mut T) {
        // SAFETY: the caller's contract; the element size picks the kernel that moves bits of
        // that size.
        unsafe {
            match std::mem::size_of::<T>() {
                4 => tiles::<8, f32>(src as *const f32, col, k, w, c0, out as *mut f32, t8x8),
                8 => tiles::<4, f64>(src as *const f64, col, k, w, c0, out as *mut f64, t4x4),
                _ => unreachable!("float elements are 4 or 8 bytes"),
            }
        }
    }

    /// Blocks of `B` columns × `B` rows through `block`, the remainders element by element.
    ///
    /// # Safety
    /// As [`columns`]; `block` must be safe to call on any `B×B` block inside those ranges.
    #[inline(always)]
    unsafe fn tiles<const B: usize, E: Copy>(
        src: *const E,
        col: usize,
        k: usize,
        w: usize,
        c0: usize,
        out: *mut E,
        block: unsafe fn(*const E, usize, *mut E, usize),
    ) {
        let (wb, kb) = (w / B * B, k / B * B);
        // SAFETY (whole body): every read is `src + (c0 + j)·col + i` with j < w, i < k and
        // every write `out + i·w + j`, inside the caller's ranges.
        unsafe {
            // Column panels of 2·B (the rows they read stay in L1), rows in blocks of B.
            for j0 in (0..wb).step_by(2 * B) {
                let j1 = (j0 + 2 * B).min(wb);
                for i0 in (0..kb).step_by(B) {
                    for jb in (j0..j1).step_by(B) {
                        block(src.add((c0 + jb) * col + i0), col, out.add(i0 * w + jb), w);
                    }
                }
                for i in kb..k {
                    for j in j0..j1 {
                        out.add(i * w + j).write(*src.add((c0 + j) * col + i));
                    }
                }
            }
            for j in wb..w {
                for i in 0..k {
                    out.add(i * w + j).write(*src.add((c0 + j) * col + i));
                }
            }
        }
    }

    /// 8×8 transpose: row `r` of the source (`src + r·s`, 8 elements) becomes column `r` of
    /// the destination (rows `d` apart).
    ///
    /// # Safety
    /// AVX available; 8 rows of 8 elements readable at `src + r·s`, writable at `dst + r·d`.
    #[target_feature(enable = "avx")]
    unsafe fn t8x8(src: *const f32, s: usize, dst: *mut f32, d: usize) {
        // SAFETY: the caller's contract (8 rows of 8 readable, 8 rows of 8 writable).
        unsafe {
            let r0 = _mm256_loadu_ps(src);
            let r1 = _mm256_loadu_ps(src.add(s));
            let r2 = _mm256_loadu_ps(src.add(2 * s));
            let r3 = _mm256_loadu_ps(src.add(3 * s));
            let r4 = _mm256_loadu_ps(src.add(4 * s));
            let r5 = _mm256_loadu_ps(src.add(5 * s));
            let r6 = _mm256_loadu_ps(src.add(6 * s));
            let r7 = _mm256_loadu_ps(src.add(7 * s));
            let t0 = _mm256_unpacklo_ps(r0, r1);
            let t1 = _mm256_unpackhi_ps(r0, r1);
            let t2 = _mm256_unpacklo_ps(r2, r3);
            let t3 = _mm256_unpackhi_ps(r2, r3);
            let t4 = _mm256_unpacklo_ps(r4, r5);
            let t5 = _mm256_unpackhi_ps(r4, r5);
            let t6 = _mm256_unpacklo_ps(r6, r7);
            let t7 = _mm256_unpackhi_ps(r6, r7);
            let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
            let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
            let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
            let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
            _mm256_storeu_ps(dst, _mm256_permute2f128_ps::<0x20>(u0, u4));
            _mm256_storeu_ps(dst.add(d), _mm256_permute2f128_ps::<0x20>(u1, u5));
            _mm256_storeu_ps(dst.add(2 * d), _mm256_permute2f128_ps::<0x20>(u2, u6));
            _mm256_storeu_ps(dst.add(3 * d), _mm256_permute2f128_ps::<0x20>(u3, u7));
            _mm256_storeu_ps(dst.add(4 * d), _mm256_permute2f128_ps::<0x31>(u0, u4));
            _mm256_storeu_ps(dst.add(5 * d), _mm256_permute2f128_ps::<0x31>(u1, u5));
            _mm256_storeu_ps(dst.add(6 * d), _mm256_permute2f128_ps::<0x31>(u2, u6));
            _mm256_storeu_ps(dst.add(7 * d), _mm256_permute2f128_ps::<0x31>(u3, u7));
        }
    }

    /// 4×4 transpose of 8-byte elements, as [`t8x8`].
    ///
    /// # Safety
    /// AVX available; 4 rows of 4 elements readable at `src + r·s`, writable at `dst + r·d`.
    #[target_feature(enable = "avx")]
    unsafe fn t4x4(src: *const f64, s: usize, dst: *mut f64, d: usize) {
        // SAFETY: the caller's contract (4 rows of 4 readable, 4 rows of 4 writable).
        unsafe {
            let r0 = _mm256_loadu_pd(src);
            let r1 = _mm256_loadu_pd(src.add(s));
            let r2 = _mm256_loadu_pd(src.add(2 * s));
            let r3 = _mm256_loadu_pd(src.add(3 * s));
            let t0 = _mm256_unpacklo_pd(r0, r1);
            let t1 = _mm256_unpackhi_pd(r0, r1);
            let t2 = _mm256_unpacklo_pd(r2, r3);
            let t3 = _mm256_unpackhi_pd(r2, r3);
            _mm256_storeu_pd(dst, _mm256_permute2f128_pd::<0x20>(t0, t2));
            _mm256_storeu_pd(dst.add(d), _mm256_permute2f128_pd::<0x20>(t1, t3));
            _mm256_storeu_pd(dst.add(2 * d), _mm256_permute2f128_pd::<0x31>(t0, t2));
            _mm256_storeu_pd(dst.add(3 * d), _mm256_permute2f128_pd::<0x31>(t1, t3));
        }
    }
}

thread_local! {
    /// Per-thread storage for those copies, kept between products (8-byte words, so any
    /// float type fits its alignment).
    static SCRATCH: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on the dense copy of columns `cols` of right operand `bi`, in this thread's scratch
/// storage (or a fresh buffer if a product on this thread is already using it: a thread
/// waiting inside a parallel product may pick up another plan's work).
fn with_columns<T: Element, R>(
    rhs: &[T],
    rv: Matrix,
    bi: usize,
    k: usize,
    cols: (usize, usize),
    f: impl FnOnce(&[T]) -> R,
) -> R {
    let len = k * (cols.1 - cols.0);
    let words = (len * std::mem::size_of::<T>()).div_ceil(8);
    assert!(std::mem::align_of::<T>() <= 8);
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => {
            if scratch.len() < words {
                scratch.resize(words, 0);
            }
            let ptr = scratch.as_mut_ptr() as *mut T;
            // SAFETY: the scratch holds at least `len` elements of T (8-byte aligned words);
            // the copy initialises all `len` of them before the slice is made. (Sizes come from
            // the operands' checked types; no public path passes others.)
            unsafe {
                copy_columns(rhs, rv, bi, k, cols, ptr);
                f(std::slice::from_raw_parts(ptr, len))
            }
        }
        Err(_) => {
            let mut fresh: Vec<T> = Vec::with_capacity(len);
            // SAFETY: the capacity is `len`; the copy writes all of it before set_len. (As above.)
            unsafe {
                copy_columns(rhs, rv, bi, k, cols, fresh.as_mut_ptr());
                fresh.set_len(len);
            }
            f(&fresh)
        }
    })
}

/// Multiply-adds a task of a split product should at least hold, so that it outweighs the
/// cost of handing it to another thread.
const TASK_MIN_WORK: usize = 1 << 21;
/// The same for a narrow product (fewer than [`COLUMN_BLOCK`] columns): gemm multiplies such
/// a product at about a third of its rate on wide ones (its kernel covers 16 columns, or 8 in
/// f64, whatever the product has), so a task takes as long with an eighth of the work. w1's
/// last layer (128×512×10, 655K multiply-adds, 16 µs on one thread) splits in two row halves.
const NARROW_TASK_MIN_WORK: usize = TASK_MIN_WORK / 8;
/// Tasks per thread in a split product: several, so that when another process holds up one
/// thread, the others take over its remaining tasks instead of waiting for it.
const TASKS_PER_THREAD: usize = 4;
/// Columns of a task are a multiple of this (the width of gemm's f32 micro-kernel, which
/// runs along the output's columns since the output is row-major; twice f64's).
const COLUMN_BLOCK: usize = 64;
/// Rows of a task (split along rows when columns are few) are a multiple of this.
const ROW_BLOCK: usize = 48;
/// gemm's depth blocking for blocks of at most 64 rows and 64 columns (`k.min(512)`): for
/// `k` up to this it equals its blocking of larger products (`k` whole), so such blocks sum
/// each element in the same order as the whole product.
const SMALL_BLOCK_MAX_DEPTH: usize = 512;
/// Rows of a narrow product's row blocks: a multiple of this, and at least [`ROW_BLOCK`] (with
/// 6 or more columns a block then has more than 256 elements, the size below which gemm
/// switches to kernels that sum in another order).
const NARROW_ROW_UNIT: usize = 16;
/// Blocks with at most this many rows read the right operand in place rather than packing it
/// (gemm's single-thread lhs packing threshold, 24 of its 6-row tiles, set in
/// [`gemm_settings`]); products with 17 to this many rows are cut into column blocks of at
/// most [`UNPACKED_MAX_COLUMNS`] even on one thread, whose right-operand panels stay in L2
/// (128×784×512 on one thread: 422 µs in blocks of 256 columns, 478 µs whole and unpacked,
/// 439 µs whole and packed).
const UNPACKED_MAX_ROWS: usize = 144;
/// See [`UNPACKED_MAX_ROWS`].
const UNPACKED_MAX_COLUMNS: usize = 256;

/// Sets gemm's process-wide packing threshold once: a block of few rows reads its right
/// operand in place (w1's products 3–4% faster on one thread, e.g. 128×512×512: 264 vs 274 µs;
/// packing copies each column panel once per product, and at 128 rows the copy does not pay
/// for itself). Packing or not changes where gemm reads, not what it sums: results are
/// bitwise the same. (A process-wide setting of the `gemm` crate: it changes the speed, never
/// the results, of other `gemm` users in the process, such as `faer`.)
fn gemm_settings() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| gemm::set_lhs_packing_threshold_single_thread(UNPACKED_MAX_ROWS / 6));
}

/// Whether a product is narrow and shallow enough to be split into row blocks of fewer than
/// 64 rows (see [`SMALL_BLOCK_MAX_DEPTH`] and [`NARROW_ROW_UNIT`]).
fn narrow_splits(d: Dims) -> bool {
    (6..COLUMN_BLOCK).contains(&d.n) && d.k <= SMALL_BLOCK_MAX_DEPTH && d.m >= 2 * ROW_BLOCK
}

/// Whether a narrow product is worth splitting: its left operand's rows are contiguous (so
/// each row block reads a contiguous part of it: w1's 128×512×10, 14.8 µs in two halves on two
/// threads against 17.8 µs whole; a left operand stored transposed, as in the backward
/// 512×128×10 `hᵀ·g`, took 48 µs split against 37 µs whole).
fn narrow_worth_splitting(lv: Matrix) -> bool {
    lv.col == 1
}

/// Whether a product too small for [`runs_in_parallel`] still splits over threads: a narrow
/// one worth splitting, with at least two narrow tasks' work.
fn narrow_runs_in_parallel(d: Dims, lv: Matrix) -> bool {
    narrow_worth_splitting(lv)
        && narrow_splits(d)
        && d.b * d.m * d.n * d.k >= 2 * NARROW_TASK_MIN_WORK
        && crate::threads::parallel()
}

/// One task of a split product: output block `rows × cols` of matrix `batch`.
#[derive(Clone, Copy)]
struct Block {
    batch: usize,
    rows: (usize, usize),
    cols: (usize, usize),
}

/// How to split a product over `threads` threads (0: not at all, one block per matrix, but
/// for column blocks of at most [`UNPACKED_MAX_COLUMNS`] at few rows): blocks that cover every
/// output element once. Blocks are never both at most 64 rows and 64 columns unless the whole
/// product is or the depth is at most [`SMALL_BLOCK_MAX_DEPTH`] (gemm picks its depth
/// blocking by size only there), and have more than 256 elements unless the whole product
/// does, so every element is summed in the same order however the product is split. Narrow
/// products are split into row blocks only with `split_narrow`.
fn blocks(d: Dims, threads: usize, split_narrow: bool) -> Vec<Block> {
    let Dims { b, m, k, n } = d;
    let narrow = split_narrow && narrow_splits(d);
    let min_work = if narrow { NARROW_TASK_MIN_WORK } else { TASK_MIN_WORK };
    let wanted = (TASKS_PER_THREAD * threads).min(b * m * n * k / min_work).max(1);
    // Tasks per matrix, then a split of the output side that gives more blocks (columns on
    // a tie: each block then reads its own columns of the right operand).
    let per = wanted.div_ceil(b);
    let col_unit = if m > 64 { COLUMN_BLOCK } else { 2 * COLUMN_BLOCK };
    let row_unit = if n > 64 { ROW_BLOCK } else { 2 * ROW_BLOCK };
    let mut col_blocks = per.min(n.div_ceil(col_unit));
    if m > 16 && m <= UNPACKED_MAX_ROWS {
        col_blocks = col_blocks.max(n.div_ceil(UNPACKED_MAX_COLUMNS));
    }
    let row_blocks = if narrow { per.min(m / ROW_BLOCK) } else { per.min(m.div_ceil(row_unit)) };
    let mut out = Vec::new();
    for batch in 0..b {
        if col_blocks <= 1 && row_blocks <= 1 {
            out.push(Block { batch, rows: (0, m), cols: (0, n) });
        } else if col_blocks >= row_blocks {
            let w = n.div_ceil(col_blocks).div_ceil(col_unit) * col_unit;
            out.extend(spans(n, w, 64).map(|cols| Block { batch, rows: (0, m), cols }));
        } else if narrow {
            let h = m.div_ceil(row_blocks).div_ceil(NARROW_ROW_UNIT) * NARROW_ROW_UNIT;
            out.extend(spans(m, h, ROW_BLOCK - 1).map(|rows| Block { batch, rows, cols: (0, n) }));
        } else {
            let h = m.div_ceil(row_blocks).div_ceil(row_unit) * row_unit;
            out.extend(spans(m, h, 64).map(|rows| Block { batch, rows, cols: (0, n) }));
        }
    }
    out
}

/// `0..len` in spans of `w`, the last one taking in a remainder of at most `fold`.
fn spans(len: usize, w: usize, fold: usize) -> impl Iterator<Item = (usize, usize)> {
    let count = if len > w && !len.is_multiple_of(w) && len % w <= fold { len / w } else { len.div_ceil(w) };
    (0..count).map(move |i| (i * w, if i + 1 == count { len } else { (i + 1) * w }))
}

/// Whether a product with few output columns and a left operand stored column by column
/// (`hᵀ·g` of a network's last layer, 512×128×10) runs as its transpose `gᵀ·h` (10×512), whose
/// long side lies along gemm's vector lanes, and a transposed copy of that small result.
fn swaps_narrow(lv: Matrix, d: Dims) -> bool {
    lv.row == 1 && lv.col != 1 && d.n < 16 && d.m >= 4 * d.n && d.m >= 64
}

/// [`gemm_strided`] of the transposed product (`(A·B)ᵀ = Bᵀ·Aᵀ`, `n×m`) into scratch, then
/// transposed into `out`.
fn gemm_swapped<T: Element>(
    lhs: &[T],
    lv: Matrix,
    rhs: &[T],
    rv: Matrix,
    d: Dims,
    mut out: Vec<T>,
    threads: bool,
) -> Vec<T> {
    let Dims { b, m, k, n } = d;
    let t = gemm_strided(
        rhs,
        Matrix { batch: rv.batch, row: rv.col, col: rv.row },
        lhs,
        Matrix { batch: lv.batch, row: lv.col, col: lv.row },
        Dims { b, m: n, k, n: m },
        vec![T::from_f64(0.0); b * m * n],
        threads,
    );
    assert_eq!(out.len(), b * m * n);
    for bi in 0..b {
        let (src, dst) = (&t[bi * m * n..(bi + 1) * m * n], &mut out[bi * m * n..(bi + 1) * m * n]);
        for (i, row) in dst.chunks_exact_mut(n).enumerate() {
            for (j, o) in row.iter_mut().enumerate() {
                *o = src[j * m + i];
            }
        }
    }
    out
}

/// `b` products of `m×k` and `k×n` matrices read in place through strides, split into
/// blocks of output run on all threads (with `threads` and a large enough product) or in
/// turn on this one.
fn gemm_strided<T: Element>(
    lhs: &[T],
    lv: Matrix,
    rhs: &[T],
    rv: Matrix,
    d: Dims,
    mut out: Vec<T>,
    threads: bool,
) -> Vec<T> {
    let Dims { b, m, k, n } = d;
    assert_eq!(out.len(), b * m * n);
    gemm_settings();
    let parallel = threads && (runs_in_parallel(b * m * n, k) || narrow_runs_in_parallel(d, lv));
    let split_narrow = narrow_worth_splitting(lv);
    let tasks = if parallel { blocks(d, crate::threads::threads(), split_narrow) } else { blocks(d, 0, split_narrow) };
    gemm_blocks(lhs, lv, rhs, rv, d, &mut out, &tasks, parallel);
    out
}

/// The products of [`gemm_strided`] block by block, on all threads or in turn on this one.
/// `tasks` must cover each output element exactly once.
#[allow(clippy::too_many_arguments)]
fn gemm_blocks<T: Element>(
    lhs: &[T],
    lv: Matrix,
    rhs: &[T],
    rv: Matrix,
    d: Dims,
    out: &mut [T],
    tasks: &[Block],
    parallel: bool,
) {
    let Dims { b, m, k, n } = d;
    assert_eq!(out.len(), b * m * n);
    // gemm packs a right operand stored k-contiguous (a transposed weight, `x · Wᵀ`) slowly
    // when few rows share the packing: 2.5× slower than the same product with W stored
    // n-contiguous at m = 128. Each block then copies its columns of W (one pass over them,
    // on the thread that uses them) and multiplies by the copy.
    let copy_rhs = rv.row == 1 && rv.col != 1 && n > 1 && m <= TRANSPOSE_RHS_MAX_ROWS;
    let dst = SendPtr(out.as_mut_ptr());
    let run = |blk: Block| {
        let (r0, r1) = blk.rows;
        let (c0, c1) = blk.cols;
        // SAFETY: the block lies inside output matrix `batch` (blocks cover 0..m × 0..n of one
        // of the `b` matrices of `out`, which holds b·m·n elements), and blocks are disjoint, so
        // no two threads write the same element.
        let o = unsafe { dst.get().add(blk.batch * m * n + r0 * n + c0) };
        let l = lv.offset(blk.batch, r0, 0);
        if copy_rhs {
            with_columns(rhs, rv, blk.batch, k, blk.cols, |copy| {
                // SAFETY: as below, with the copy a dense k×(c1-c0) matrix.
                unsafe { gemm_block(o, n, &lhs[l..], lv, copy, Matrix::dense(k, c1 - c0), (r1 - r0, k, c1 - c0)) }
            })
        } else {
            let r = rv.offset(blk.batch, 0, c0);
            // SAFETY: `l` and `r` index the block's first operand elements, and the strides and
            // extents from there stay inside `lhs`/`rhs` (the views come from the operands' own
            // shapes); `o` starts a (r1-r0)×(c1-c0) block of rows n apart inside `out`. Public
            // code reaches this only through `execute`, `bind` or a plan, all of which check
            // `out` against the type rule, and `Array`'s constructors keep storage and shape in
            // agreement.
            unsafe { gemm_block(o, n, &lhs[l..], lv, &rhs[r..], rv, (r1 - r0, k, c1 - c0)) }
        }
    };
    assert!(tasks.iter().all(|t| t.batch < b
        && t.rows.0 < t.rows.1
        && t.rows.1 <= m
        && t.cols.0 < t.cols.1
        && t.cols.1 <= n));
    if parallel && tasks.len() > 1 {
        use rayon::prelude::*;
        tasks.par_iter().with_max_len(1).for_each(|&t| run(t));
    } else {
        tasks.iter().for_each(|&t| run(t));
    }
}

/// One `m×k · k×n` product on this thread into `out` (rows `out_rs` apart), the operands at
/// the start of `lhs` and `rhs` with the views' row and column strides.
///
/// # Safety
/// The strided `m×k` and `k×n` operands must lie inside `lhs` and `rhs`, and `out` must be
/// valid for writing the `m×n` block with rows `out_rs` apart, which no other thread touches.
unsafe fn gemm_block<T: Element>(
    out: *mut T,
    out_rs: usize,
    lhs: &[T],
    lv: Matrix,
    rhs: &[T],
    rv: Matrix,
    (m, k, n): (usize, usize, usize),
) {
    // SAFETY: the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out,
            1,
            out_rs as isize,
            false,
            lhs.as_ptr(),
            lv.col,
            lv.row,
            rhs.as_ptr(),
            rv.col,
            rv.row,
            T::from_f64(0.0),
            T::from_f64(1.0),
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Batched row-major product by a plain loop; `fma(acc, x, y)` is `acc + x * y`.
fn int_batched<T: Element>(lhs: &[T], rhs: &[T], d: Dims, fma: fn(T, T, T) -> T) -> Vec<T> {
    let Dims { b, m, k, n } = d;
    let mut out = vec![T::from_f64(0.0); b * m * n];
    for bi in 0..b {
        let l = &lhs[bi * m * k..(bi + 1) * m * k];
        let r = &rhs[bi * k * n..(bi + 1) * k * n];
        let o = &mut out[bi * m * n..(bi + 1) * m * n];
        for i in 0..m {
            let orow = &mut o[i * n..(i + 1) * n];
            for p in 0..k {
                let x = l[i * k + p];
                for (acc, &y) in orow.iter_mut().zip(&r[p * n..(p + 1) * n]) {
                    *acc = fma(*acc, x, y);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<T: Element>(len: usize, seed: u64) -> Vec<T> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                T::from_f64((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
            })
            .collect()
    }

    /// Every way `blocks` splits a product, in turn and on the pool, gives bitwise the result
    /// of the unsplit product (the summation order does not depend on the split), and that
    /// result matches a plain f64 loop; for each layout of the operands gemm is given.
    fn split_matches<T: Element + PartialEq + std::fmt::Debug>(d: Dims, tol: f64) {
        let Dims { b, m, k, n } = d;
        for (lhs_t, rhs_t) in [(false, false), (true, false), (false, true), (true, true)] {
            let lhs: Vec<T> = values(b * m * k, 1);
            let rhs: Vec<T> = values(b * k * n, 2);
            // Stored [b, m, k] or [b, k, m]; [b, k, n] or [b, n, k].
            let lv =
                if lhs_t { Matrix { batch: (m * k) as isize, row: 1, col: m as isize } } else { Matrix::dense(m, k) };
            let rv =
                if rhs_t { Matrix { batch: (k * n) as isize, row: 1, col: k as isize } } else { Matrix::dense(k, n) };
            // One block per matrix, with and without gemm packing the right operand.
            let unsplit: Vec<Block> = (0..b).map(|batch| Block { batch, rows: (0, m), cols: (0, n) }).collect();
            let whole = {
                let mut out = vec![T::from_f64(f64::NAN); b * m * n];
                gemm_blocks(&lhs, lv, &rhs, rv, d, &mut out, &unsplit, false);
                out
            };
            for packing in [1, gemm::DEFAULT_LHS_PACKING_THRESHOLD_SINGLE_THREAD, 256, UNPACKED_MAX_ROWS / 6] {
                // (Process-wide, but it changes only speed if this test passes; restored last.)
                gemm::set_lhs_packing_threshold_single_thread(packing);
                let mut out = vec![T::from_f64(f64::NAN); b * m * n];
                gemm_blocks(&lhs, lv, &rhs, rv, d, &mut out, &unsplit, false);
                assert!(out == whole, "packing threshold {packing} changes the result");
            }
            for bi in 0..b {
                for i in 0..m {
                    for j in 0..n {
                        let want: f64 =
                            (0..k).map(|p| lhs[lv.offset(bi, i, p)].to_f64() * rhs[rv.offset(bi, p, j)].to_f64()).sum();
                        let got = whole[bi * m * n + i * n + j].to_f64();
                        assert!((got - want).abs() <= tol * (1.0 + want.abs()), "{got} vs {want} at {bi},{i},{j}");
                    }
                }
            }
            for threads in 0..=5 {
                let tasks = blocks(d, threads, true);
                let mut covered = vec![0u8; b * m * n];
                for t in &tasks {
                    for i in t.rows.0..t.rows.1 {
                        for j in t.cols.0..t.cols.1 {
                            covered[t.batch * m * n + i * n + j] += 1;
                        }
                    }
                }
                assert!(covered.iter().all(|&c| c == 1), "blocks cover each element once");
                for parallel in [false, true] {
                    let mut out = vec![T::from_f64(f64::NAN); b * m * n];
                    gemm_blocks(&lhs, lv, &rhs, rv, d, &mut out, &tasks, parallel);
                    assert!(out == whole, "{threads} threads ({} blocks) differ from the whole product", tasks.len());
                }
            }
        }
    }

    #[test]
    fn split_products_agree_bitwise() {
        // Column splits (w1's shapes, smaller k), row splits, a deep product with few rows,
        // remainders, and batches.
        split_matches::<f32>(Dims { b: 1, m: 128, k: 300, n: 512 }, 1e-5);
        split_matches::<f32>(Dims { b: 1, m: 20, k: 100, n: 700 }, 1e-5);
        // Narrow products split into row blocks of fewer than 64 rows (w1's last layer, a
        // remainder row block, the fewest columns, the deepest such product, a batch).
        split_matches::<f32>(Dims { b: 1, m: 128, k: 512, n: 10 }, 1e-4);
        split_matches::<f32>(Dims { b: 1, m: 250, k: 200, n: 40 }, 1e-5);
        split_matches::<f32>(Dims { b: 1, m: 300, k: 512, n: 6 }, 1e-4);
        split_matches::<f64>(Dims { b: 2, m: 100, k: 500, n: 63 }, 1e-12);
        split_matches::<f32>(Dims { b: 1, m: 700, k: 64, n: 100 }, 1e-5);
        split_matches::<f32>(Dims { b: 1, m: 40, k: 2000, n: 300 }, 1e-4);
        split_matches::<f64>(Dims { b: 1, m: 1000, k: 100, n: 70 }, 1e-12);
        split_matches::<f64>(Dims { b: 3, m: 130, k: 100, n: 260 }, 1e-12);
    }

    /// The register transposes copy columns exactly as the element-by-element loop does, for
    /// both element sizes, widths and depths with and without remainders, and column strides
    /// larger than the depth (a view into a batch).
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn vector_transpose_matches_scalar() {
        fn check<T: Element + PartialEq + std::fmt::Debug>() {
            if !simd_transpose::available() {
                return;
            }
            for &(k, col) in &[(1usize, 1usize), (7, 9), (8, 8), (17, 20), (64, 64), (300, 301)] {
                for &(c0, c1) in &[(0usize, 1usize), (0, 5), (3, 19), (0, 16), (1, 34), (8, 72)] {
                    let src: Vec<T> = values(col * c1 + k, 7);
                    let len = k * (c1 - c0);
                    let (mut a, mut b) = (vec![T::from_f64(f64::NAN); len], vec![T::from_f64(f64::NAN); len]);
                    // SAFETY: the source holds every column c < c1 (col·c + k ≤ src.len()),
                    // the outputs k·(c1-c0) elements each.
                    unsafe {
                        simd_transpose::columns(src.as_ptr(), col, k, c1 - c0, c0, a.as_mut_ptr());
                        copy_columns_scalar(&src, 0, col as isize, k, (c0, c1), b.as_mut_ptr());
                    }
                    assert_eq!(a, b, "k {k}, column stride {col}, columns {c0}..{c1}");
                    assert_eq!(a[0], src[c0 * col], "first element");
                    assert_eq!(a[len - 1], src[(c1 - 1) * col + k - 1], "last element");
                }
            }
        }
        check::<f32>();
        check::<f64>();
    }

    /// Narrow products with a left operand stored column by column run transposed; they
    /// match a plain f64 loop, through the public entry point too.
    #[test]
    fn swapped_narrow_products_match() {
        fn check<T: Element>(d: Dims, tol: f64) {
            let Dims { b, m, k, n } = d;
            let lhs: Vec<T> = values(b * k * m, 3);
            let rhs: Vec<T> = values(b * k * n, 4);
            let lv = Matrix { batch: (m * k) as isize, row: 1, col: m as isize };
            let rv = Matrix::dense(k, n);
            assert!(swaps_narrow(lv, d));
            for threads in [false, true] {
                let out = gemm_swapped(&lhs, lv, &rhs, rv, d, vec![T::from_f64(f64::NAN); b * m * n], threads);
                for bi in 0..b {
                    for i in 0..m {
                        for j in 0..n {
                            let want: f64 = (0..k)
                                .map(|p| lhs[lv.offset(bi, i, p)].to_f64() * rhs[rv.offset(bi, p, j)].to_f64())
                                .sum();
                            let got = out[bi * m * n + i * n + j].to_f64();
                            assert!((got - want).abs() <= tol * (1.0 + want.abs()), "{got} vs {want} at {bi},{i},{j}");
                        }
                    }
                }
            }
        }
        check::<f32>(Dims { b: 1, m: 512, k: 128, n: 10 }, 1e-5);
        check::<f32>(Dims { b: 2, m: 100, k: 33, n: 3 }, 1e-5);
        check::<f64>(Dims { b: 1, m: 300, k: 200, n: 15 }, 1e-12);
        // Through dot_general: hᵀ·g of a last layer (contracting the rows of both).
        let h = Array::new(vec![128, 512], Data::F32(values(128 * 512, 5)));
        let g = Array::new(vec![128, 10], Data::F32(values(128 * 10, 6)));
        let ty = TensorType { dtype: crate::DType::F32, shape: vec![512, 10] };
        let got = dot_general(&h, &g, &[0], &[0], &[], &[], &ty);
        let (Data::F32(hv), Data::F32(gv), Data::F32(o)) = (&h.data, &g.data, &got.data) else { unreachable!() };
        for i in 0..512 {
            for j in 0..10 {
                let want: f64 = (0..128).map(|p| hv[p * 512 + i] as f64 * gv[p * 10 + j] as f64).sum();
                assert!((o[i * 10 + j] as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()));
            }
        }
    }

    #[test]
    fn blocks_follow_the_work() {
        let d = Dims { b: 1, m: 128, k: 784, n: 512 };
        // On one thread: two column blocks of 256, whose right-operand panels stay in cache.
        let one = blocks(d, 0, true);
        assert_eq!(one.len(), 2);
        assert!(one.iter().all(|t| t.rows == (0, 128) && t.cols.1 - t.cols.0 == 256));
        assert_eq!(blocks(Dims { b: 1, m: 512, k: 784, n: 512 }, 0, true).len(), 1);
        // Column blocks, multiples of gemm's micro-kernel width.
        let two = blocks(d, 2, true);
        assert_eq!(two.len(), 8);
        assert!(two.iter().all(|t| t.rows == (0, 128) && (t.cols.1 - t.cols.0) % COLUMN_BLOCK == 0));
        // Few columns: row blocks.
        let tall = blocks(Dims { b: 1, m: 4096, k: 128, n: 128 }, 2, true);
        assert!(tall.len() > 2 && tall.iter().all(|t| t.cols == (0, 128)));
        // Narrow: two row halves of w1's last layer on two threads, none on one, none when
        // deeper than gemm's small-block depth.
        let narrow = Dims { b: 1, m: 128, k: 512, n: 10 };
        assert!(narrow_splits(narrow));
        let halves = blocks(narrow, 2, true);
        assert_eq!(halves.iter().map(|t| t.rows).collect::<Vec<_>>(), vec![(0, 64), (64, 128)]);
        assert_eq!(blocks(narrow, 0, true).len(), 1);
        assert_eq!(blocks(narrow, 2, false).len(), 1);
        assert_eq!(blocks(Dims { k: 513, ..narrow }, 2, true).len(), 1);
        // Too small to split.
        assert_eq!(blocks(Dims { b: 1, m: 128, k: 100, n: 10 }, 2, true).len(), 1);
    }
}
