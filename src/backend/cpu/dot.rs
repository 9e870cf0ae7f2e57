//! `dot_general` on the `gemm` crate.
//!
//! Both operands are brought into a contiguous `[B, M, K]` / `[B, K, N]` layout
//! (batch, free, contracting for the lhs; batch, contracting, free for the rhs),
//! then every batch is one matrix product: `gemm` for floats, a plain loop with
//! wrapping arithmetic for integers.

use super::fused::SendPtr;
use super::structure::transpose;
use crate::array::{Array, Data};
use crate::{Element, TensorType};
use std::borrow::Cow;

/// Below this many multiply-adds (`m * n * k`) a product runs on the calling thread.
const PARALLEL_THRESHOLD: usize = 64 * 64 * 64;
/// Products with at most this many rows copy a k-contiguous right operand to n-contiguous.
const TRANSPOSE_RHS_MAX_ROWS: usize = 1024;
/// Columns per task of that copy (few enough that the rows they read stay in L1 even when
/// the row length is a power of two).
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

    fn view(x: &Array, batch: &[usize], rows: &[usize], cols: &[usize]) -> Option<Matrix> {
        Some(Matrix {
            batch: Self::group_stride(x, batch)?,
            row: Self::group_stride(x, rows)?,
            col: Self::group_stride(x, cols)?,
        })
    }
}

/// The `b` right operands (`k×n`, stored k-contiguous: element (i, j) of matrix `bi` at
/// `bi·rv.batch + i + j·rv.col`) copied to dense row-major `k×n` matrices, in tiles.
///
/// # Safety
/// `out` must be valid for writing `b·k·n` elements; afterwards all of them are initialised.
unsafe fn n_contiguous_copy<T: Element>(
    rhs: &[T],
    rv: Matrix,
    b: usize,
    k: usize,
    n: usize,
    threads: bool,
    out: *mut T,
) {
    // Every source index lies inside `rhs` (the view was built from the operand's shape).
    let last = (b - 1) as isize * rv.batch + (k - 1) as isize + (n - 1) as isize * rv.col;
    assert!(rv.batch >= 0 && rv.col >= 0 && (last as usize) < rhs.len(), "dot_general: operand view out of bounds");
    // Column blocks of TILE: each task fills `TILE` columns of every row of one matrix.
    let blocks = n.div_ceil(TILE);
    let dst = SendPtr(out);
    // One task: columns j0..j0+TILE of matrix `bi`, row by row.
    let work = |t: usize| {
        let (bi, j0) = (t / blocks, (t % blocks) * TILE);
        let base = bi as isize * rv.batch;
        for i in 0..k {
            for j in j0..(j0 + TILE).min(n) {
                // SAFETY: the source index is at most `last` < rhs.len() (checked above); the
                // destination lies in the b·k·n elements of `out`, and tasks write disjoint
                // elements that together cover them. Not reachable with bad input from safe public
                // code: `dot` is crate-private and its callers pass operands typed by `infer_type`.
                unsafe {
                    let v = *rhs.get_unchecked((base + j as isize * rv.col + i as isize) as usize);
                    dst.get().add(bi * k * n + i * n + j).write(v);
                }
            }
        }
    };
    if threads && b * k * n >= 1 << 16 && crate::threads::parallel() {
        use rayon::prelude::*;
        (0..b * blocks).into_par_iter().for_each(work);
    } else {
        (0..b * blocks).for_each(work);
    }
}

thread_local! {
    /// Per-thread storage for those copies, kept between products (8-byte words, so any
    /// float type fits its alignment).
    static SCRATCH: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on the n-contiguous copy of the right operands, in this thread's scratch storage
/// (or a fresh buffer if a product on this thread is already using it: a thread waiting
/// inside gemm may pick up another plan's work).
fn with_n_contiguous<T: Element, R>(rhs: &[T], rv: Matrix, d: Dims, threads: bool, f: impl FnOnce(&[T]) -> R) -> R {
    let len = d.b * d.k * d.n;
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
                n_contiguous_copy(rhs, rv, d.b, d.k, d.n, threads, ptr);
                f(std::slice::from_raw_parts(ptr, len))
            }
        }
        Err(_) => {
            let mut fresh: Vec<T> = Vec::with_capacity(len);
            // SAFETY: the capacity is `len`; the copy writes all of it before set_len. (As above.)
            unsafe {
                n_contiguous_copy(rhs, rv, d.b, d.k, d.n, threads, fresh.as_mut_ptr());
                fresh.set_len(len);
            }
            f(&fresh)
        }
    })
}

/// `b` products of `m×k` and `k×n` matrices read in place through strides.
fn gemm_strided<T: Element>(
    lhs: &[T],
    lv: Matrix,
    rhs: &[T],
    rv: Matrix,
    d: Dims,
    out: Vec<T>,
    threads: bool,
) -> Vec<T> {
    let Dims { b, m, k, n } = d;
    assert_eq!(out.len(), b * m * n);
    // gemm packs a right operand stored k-contiguous (a transposed weight, `x · Wᵀ`) slowly
    // when few rows share the packing: 2.5× slower than the same product with W stored
    // n-contiguous at m = 128. A transposed copy costs one pass over W and restores the speed.
    if rv.row == 1 && rv.col != 1 && n > 1 && m <= TRANSPOSE_RHS_MAX_ROWS {
        return with_n_contiguous(rhs, rv, d, threads, |copy| {
            gemm_in_place(lhs, lv, copy, Matrix::dense(k, n), d, out, threads)
        });
    }
    gemm_in_place(lhs, lv, rhs, rv, d, out, threads)
}

/// [`gemm_strided`] with the operands as given.
fn gemm_in_place<T: Element>(
    lhs: &[T],
    lv: Matrix,
    rhs: &[T],
    rv: Matrix,
    d: Dims,
    mut out: Vec<T>,
    threads: bool,
) -> Vec<T> {
    let Dims { m, k, n, .. } = d;
    let parallelism = if !threads || m * n * k < PARALLEL_THRESHOLD || !crate::threads::parallel() {
        gemm::Parallelism::None
    } else {
        gemm::Parallelism::Rayon(0)
    };
    for (bi, o) in out.chunks_exact_mut(m * n).enumerate() {
        // SAFETY: the strides and extents describe elements inside `lhs`/`rhs` (they come from
        // the operands' own shapes), and `o` holds exactly m·n elements. Public code reaches
        // this only through `execute`, `bind` or a plan, all of which check `out` against the
        // type rule, and `Array`'s constructors keep storage and shape in agreement.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                o.as_mut_ptr(),
                1,
                n as isize,
                false,
                lhs.as_ptr().offset(bi as isize * lv.batch),
                lv.col,
                lv.row,
                rhs.as_ptr().offset(bi as isize * rv.batch),
                rv.col,
                rv.row,
                T::from_f64(0.0),
                T::from_f64(1.0),
                false,
                false,
                false,
                parallelism,
            );
        }
    }
    out
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
