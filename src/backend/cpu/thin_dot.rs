//! f64 products with at most [`MAX_COLUMNS`] output columns, `[m, k] · [k, n]` with small
//! `n` (a network's last layer: `[256, 64] · [64, 2]`). `gemm` packs and runs its register
//! tiles for them at a small fraction of its speed (5.2 µs for that product here, 12
//! GFLOP/s); this kernel reads each left row once and keeps one row of partial sums per
//! column in registers (about 1.5 µs).
//!
//! Each output is a dot product of a left row with a right column, summed in a fixed order:
//! [`LANES`] partial sums (term `j` goes to partial sum `j mod LANES`, each summed in
//! increasing `j`), combined pairwise, then the `k mod LANES` trailing terms in order. The
//! order does not depend on the CPU's vector width or the thread count, so results are
//! bitwise reproducible (eager and jit use this same kernel).

use rayon::prelude::*;

/// Products with at most this many output columns use this kernel.
pub(super) const MAX_COLUMNS: usize = 4;
/// Partial sums per output (one 512-bit register of f64).
const LANES: usize = 8;
/// Rows per task when a product is split over threads.
const ROWS_PER_TASK: usize = 64;

/// Strides (in elements) of a batch of matrices read in place.
#[derive(Clone, Copy)]
pub(super) struct Layout {
    /// Between matrices of the batch.
    pub(super) batch: isize,
    /// Between rows.
    pub(super) row: isize,
    /// Between columns.
    pub(super) col: isize,
}

/// `b` products `[m, k] · [k, n]` into `out` (`b·m·n` elements, row-major), for `n ≤
/// MAX_COLUMNS` and a left operand whose rows are contiguous (`lv.col == 1`). With
/// `parallel`, blocks of rows run on the thread pool (each output is computed by one task,
/// so the split does not change results).
///
/// # Panics
/// If the shapes break those conditions or a view reaches outside its operand.
pub(super) fn product(
    lhs: &[f64],
    lv: Layout,
    rhs: &[f64],
    rv: Layout,
    (b, m, k, n): (usize, usize, usize, usize),
    out: &mut [f64],
    parallel: bool,
) {
    assert!(
        (1..=MAX_COLUMNS).contains(&n) && k > 0 && lv.col == 1 && out.len() == b * m * n,
        "thin product: unsupported layout"
    );
    let extent = |v: Layout, rows: usize, cols: usize| {
        v.batch * (b as isize - 1) + v.row * (rows as isize - 1) + v.col * (cols as isize - 1)
    };
    assert!(
        lv.batch >= 0 && lv.row >= 0 && (extent(lv, m, k) as usize) < lhs.len(),
        "thin product: left operand view out of bounds"
    );
    assert!(
        rv.batch >= 0 && rv.row >= 0 && rv.col >= 0 && (extent(rv, k, n) as usize) < rhs.len(),
        "thin product: right operand view out of bounds"
    );
    // The right operand's columns, each contiguous: [b][n][k].
    let mut columns = vec![0.0; b * n * k];
    for (t, slot) in columns.iter_mut().enumerate() {
        let (bi, c, j) = (t / (n * k), t / k % n, t % k);
        *slot = rhs[(bi as isize * rv.batch + j as isize * rv.row + c as isize * rv.col) as usize];
    }
    for (bi, out) in out.chunks_mut(m * n).enumerate() {
        let cols = &columns[bi * n * k..(bi + 1) * n * k];
        let block = |(t, out): (usize, &mut [f64])| {
            let first = (bi as isize * lv.batch) as usize + t * ROWS_PER_TASK * lv.row as usize;
            rows(&lhs[first..], lv.row as usize, out.len() / n, cols, k, out);
        };
        if parallel {
            out.par_chunks_mut(ROWS_PER_TASK * n).enumerate().for_each(block);
        } else {
            out.chunks_mut(ROWS_PER_TASK * n).enumerate().for_each(block);
        }
    }
}

/// `out[r·n + c] = lhs[r·stride..][..k] · cols[c·k..][..k]` for `r < count`, `c < n` (`n =
/// cols.len() / k`), in the order of the module docs.
fn rows(lhs: &[f64], stride: usize, count: usize, cols: &[f64], k: usize, out: &mut [f64]) {
    let n = cols.len() / k;
    assert!(
        count > 0 && (count - 1) * stride + k <= lhs.len() && out.len() == count * n,
        "thin product: rows out of bounds"
    );
    match n {
        1 => rows_n::<1>(lhs, stride, count, cols, k, out),
        2 => rows_n::<2>(lhs, stride, count, cols, k, out),
        3 => rows_n::<3>(lhs, stride, count, cols, k, out),
        _ => rows_n::<4>(lhs, stride, count, cols, k, out),
    }
}

/// [`rows`] for `N` columns: the partial sums in AVX-512 or AVX2 registers where the CPU has
/// them, plain code otherwise (the same sums in the same order), then the trailing terms.
fn rows_n<const N: usize>(lhs: &[f64], stride: usize, count: usize, cols: &[f64], k: usize, out: &mut [f64]) {
    let full = k / LANES * LANES;
    #[cfg(target_arch = "x86_64")]
    let level = super::fused::simd_level();
    #[cfg(not(target_arch = "x86_64"))]
    let level = 0;
    #[cfg(target_arch = "x86_64")]
    if level > 0 {
        let col_ptrs: [*const f64; N] = std::array::from_fn(|c| cols[c * k..].as_ptr());
        // SAFETY: the CPU has the features (detected at run time); row r's first `full` ≤ k
        // elements lie inside `lhs` and each column's inside `cols`, and `out` holds count·N
        // entries (asserted in `rows`, which every caller goes through).
        unsafe {
            if level == 2 {
                x86::head_sums_avx512::<N>(lhs.as_ptr(), stride, count, col_ptrs, full, out)
            } else {
                x86::head_sums_avx2::<N>(lhs.as_ptr(), stride, count, col_ptrs, full, out)
            }
        }
    }
    for r in 0..count {
        let row = &lhs[r * stride..r * stride + k];
        for c in 0..N {
            let col = &cols[c * k..(c + 1) * k];
            if level == 0 {
                let mut acc = [0.0; LANES];
                for j in (0..full).step_by(LANES) {
                    for l in 0..LANES {
                        acc[l] += row[j + l] * col[j + l];
                    }
                }
                out[r * N + c] = halves(acc);
            }
            // The trailing terms, in order.
            out[r * N + c] = row[full..].iter().zip(&col[full..]).fold(out[r * N + c], |s, (x, w)| s + x * w);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::LANES;
    use std::arch::x86_64::*;

    /// The halved sum ([`super::halves`]) of the 8 partial sums of each row and column over
    /// the first `full` terms into `out[r·N + c]`, two rows at a time.
    ///
    /// # Safety
    /// The CPU must have AVX-512F; row `r < count` at `lhs + r·stride` and every column must
    /// be valid for `full` reads (a multiple of 8), and `out` must hold `count·N` entries.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn head_sums_avx512<const N: usize>(
        lhs: *const f64,
        stride: usize,
        count: usize,
        cols: [*const f64; N],
        full: usize,
        out: &mut [f64],
    ) {
        assert!(out.len() >= count * N);
        for r in (0..count).step_by(2) {
            // An odd last row is done twice, harmlessly.
            let second = (r + 1).min(count - 1);
            // SAFETY: rows r and `second` are below count (the caller's contract).
            let (a0, a1) = unsafe { (lhs.add(r * stride), lhs.add(second * stride)) };
            let mut acc0 = [_mm512_setzero_pd(); N];
            let mut acc1 = [_mm512_setzero_pd(); N];
            for j in (0..full).step_by(LANES) {
                // SAFETY: j + 8 ≤ full, inside every operand (the caller's contract).
                let (x0, x1) = unsafe { (_mm512_loadu_pd(a0.add(j)), _mm512_loadu_pd(a1.add(j))) };
                for c in 0..N {
                    // SAFETY: as above, for column c.
                    let w = unsafe { _mm512_loadu_pd(cols[c].add(j)) };
                    acc0[c] = _mm512_add_pd(acc0[c], _mm512_mul_pd(x0, w));
                    acc1[c] = _mm512_add_pd(acc1[c], _mm512_mul_pd(x1, w));
                }
            }
            for c in 0..N {
                out[r * N + c] = halved(_mm512_castpd512_pd256(acc0[c]), _mm512_extractf64x4_pd::<1>(acc0[c]));
                out[second * N + c] = halved(_mm512_castpd512_pd256(acc1[c]), _mm512_extractf64x4_pd::<1>(acc1[c]));
            }
        }
    }

    /// Lanes `l` of `lo` and `hi` (partial sums `l` and `l + 4`), then `l` and `l + 2`, then
    /// the last two: [`super::halves`] in registers.
    #[target_feature(enable = "avx2")]
    fn halved(lo: __m256d, hi: __m256d) -> f64 {
        let h = _mm256_add_pd(lo, hi);
        let q = _mm_add_pd(_mm256_castpd256_pd128(h), _mm256_extractf128_pd::<1>(h));
        _mm_cvtsd_f64(q) + _mm_cvtsd_f64(_mm_unpackhi_pd(q, q))
    }

    /// [`head_sums_avx512`] with each row's 8 partial sums in two 4-lane registers.
    ///
    /// # Safety
    /// The CPU must have AVX2; as [`head_sums_avx512`] otherwise.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn head_sums_avx2<const N: usize>(
        lhs: *const f64,
        stride: usize,
        count: usize,
        cols: [*const f64; N],
        full: usize,
        out: &mut [f64],
    ) {
        assert!(out.len() >= count * N);
        for r in 0..count {
            // SAFETY: row r is below count (the caller's contract).
            let a = unsafe { lhs.add(r * stride) };
            let mut lo = [_mm256_setzero_pd(); N];
            let mut hi = [_mm256_setzero_pd(); N];
            for j in (0..full).step_by(LANES) {
                // SAFETY: j + 8 ≤ full, inside every operand (the caller's contract).
                let (xl, xh) = unsafe { (_mm256_loadu_pd(a.add(j)), _mm256_loadu_pd(a.add(j + 4))) };
                for c in 0..N {
                    // SAFETY: as above, for column c.
                    let (wl, wh) = unsafe { (_mm256_loadu_pd(cols[c].add(j)), _mm256_loadu_pd(cols[c].add(j + 4))) };
                    lo[c] = _mm256_add_pd(lo[c], _mm256_mul_pd(xl, wl));
                    hi[c] = _mm256_add_pd(hi[c], _mm256_mul_pd(xh, wh));
                }
            }
            for c in 0..N {
                out[r * N + c] = halved(lo[c], hi[c]);
            }
        }
    }
}

/// The sum of the partial sums by halving: lanes `l` and `l + 4`, then `l` and `l + 2`,
/// then the last two (the order a vector register's halves are added in).
#[inline(always)]
fn halves(a: [f64; LANES]) -> f64 {
    let h: [f64; 4] = std::array::from_fn(|l| a[l] + a[l + 4]);
    let q: [f64; 2] = std::array::from_fn(|l| h[l] + h[l + 2]);
    q[0] + q[1]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel against a plain triple loop summing in the documented order, for layouts
    /// with strided and transposed right operands, `k` below, at and above the lane count,
    /// and one and several threads.
    #[test]
    fn matches_the_documented_summation_order() {
        let value = |i: usize| ((i * 7919) % 1000) as f64 / 997.0 - 0.5;
        for &(b, m, k, n) in &[(1, 5, 3, 2), (2, 70, 8, 4), (1, 130, 64, 2), (3, 9, 21, 1), (1, 300, 17, 3)] {
            let lhs: Vec<f64> = (0..b * m * k).map(value).collect();
            let rhs: Vec<f64> = (0..b * k * n).map(|i| value(i + 17)).collect();
            // Right operand stored transposed ([b][n][k]): element (j, c) at c·k + j.
            let rv = Layout { batch: (k * n) as isize, row: 1, col: k as isize };
            let lv = Layout { batch: (m * k) as isize, row: k as isize, col: 1 };
            let reference: Vec<f64> = (0..b * m * n)
                .map(|o| {
                    let (bi, i, c) = (o / (m * n), o / n % m, o % n);
                    let term = |j: usize| lhs[bi * m * k + i * k + j] * rhs[bi * k * n + c * k + j];
                    let full = k / LANES * LANES;
                    let part = |l: usize| (l..full).step_by(LANES).fold(0.0, |s, j| s + term(j));
                    let p: Vec<f64> = (0..LANES).map(part).collect();
                    let s = ((p[0] + p[4]) + (p[2] + p[6])) + ((p[1] + p[5]) + (p[3] + p[7]));
                    (full..k).fold(s, |s, j| s + term(j))
                })
                .collect();
            for parallel in [false, true] {
                let mut out = vec![0.0; b * m * n];
                product(&lhs, lv, &rhs, rv, (b, m, k, n), &mut out, parallel);
                assert!(
                    out.iter().zip(&reference).all(|(x, y)| x.to_bits() == y.to_bits()),
                    "b={b} m={m} k={k} n={n} parallel={parallel}"
                );
            }
        }
    }
}
