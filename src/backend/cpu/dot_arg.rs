//! The index of each row's extreme of a shallow f64 product, `argmin_j (a · bᵀ)[i, j]`
//! (or argmax), without the `[n, k]` product in memory: the k-means assignment step
//! (`|cⱼ|² - 2 pᵢ·cⱼ` as one product of widened rows). A plan uses it for a product whose
//! only reader is an arg-reduction over the product's last axis (`compile::plan`).
//!
//! Tiles of [`POINTS`] rows of `a` × 2·[`LANES`] rows of `b` stay in registers for the whole
//! depth; each finished tile updates per-lane running extremes and their indices, so the
//! products are never stored. Each product element is summed as `gemm`'s kernels sum it: a
//! chain of fused multiply-adds from zero in increasing depth, so the values compared are
//! bitwise the ones the unfused product holds; the comparison is the arg-reduction's (ties
//! go to the first index, the first NaN wins), hence the same index as the unfused plan.

use rayon::prelude::*;

/// `b` rows per register tile (one 512-bit register of f64).
const LANES: usize = 8;
/// `a` rows per register tile.
const POINTS: usize = 4;
/// `a` rows per task when the rows are split over threads (a multiple of [`POINTS`]).
const ROWS_PER_TASK: usize = 256;
/// Products of at most this depth use this kernel (deeper ones are `gemm`'s, where the
/// product dominates the reduction).
pub(crate) const MAX_DEPTH: usize = 64;

/// For each row `i` of `a` (`[n, d]`, row-major), the index of the smallest (`max` false) or
/// largest value of `Σₜ a[i, t] · b(j, t)` (`+ bias[j]` after the sum, where given) over
/// `j < k`, where `b(j, t)` is `b[j·d + t]` (`b_rows`: `b` is `[k, d]`) or `b[t·k + j]`
/// (`[d, k]`). Ties resolve to the first index;
/// a NaN counts as the extreme (the first NaN wins). With `parallel`, blocks of rows run on
/// the thread pool (each row is computed by one task, so results do not depend on it).
///
/// # Panics
/// If `k` is 0 or the slices' lengths are not `n·d`, `k·d`, `k` and `n`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn dot_arg(
    a: &[f64],
    b: &[f64],
    b_rows: bool,
    bias: Option<&[f64]>,
    (n, d, k): (usize, usize, usize),
    max: bool,
    out: &mut [i64],
    parallel: bool,
) {
    assert!(
        k > 0 && a.len() == n * d && b.len() == k * d && out.len() == n && bias.is_none_or(|r| r.len() == k),
        "dot_arg: operands {} and {} for [{n}, {d}] x [{d}, {k}] into {}",
        a.len(),
        b.len(),
        out.len()
    );
    // `b` as tiles of LANES rows, depth-major within a tile: packed[(tile·d + t)·LANES + l] =
    // b(tile·LANES + l, t), padded with zero rows (which never win: see `finish`).
    let tiles = k.div_ceil(LANES);
    let mut packed = vec![0.0; tiles * d * LANES];
    for j in 0..k {
        for t in 0..d {
            let v = if b_rows { b[j * d + t] } else { b[t * k + j] };
            packed[((j / LANES) * d + t) * LANES + j % LANES] = v;
        }
    }
    // The bias by tiles too (zero past `k`; an empty slice without one).
    let mut bias_packed = vec![0.0; if bias.is_some() { tiles * LANES } else { 0 }];
    if let Some(r) = bias {
        bias_packed[..k].copy_from_slice(r);
    }
    let problem = Problem { a, packed: &packed, bias: &bias_packed, d, k, tiles, max };
    let block = |(task, out): (usize, &mut [i64])| problem.rows(task * ROWS_PER_TASK, out);
    if parallel && n > ROWS_PER_TASK {
        out.par_chunks_mut(ROWS_PER_TASK).enumerate().for_each(block);
    } else {
        out.chunks_mut(ROWS_PER_TASK).enumerate().for_each(block);
    }
}

/// The operands of one [`dot_arg`] call.
struct Problem<'a> {
    a: &'a [f64],
    packed: &'a [f64],
    /// `tiles · LANES` values to add to the sums, or none.
    bias: &'a [f64],
    d: usize,
    k: usize,
    tiles: usize,
    max: bool,
}

/// Per-lane running extremes of some rows of `a`: the value and its index.
#[derive(Clone, Copy)]
struct Best {
    value: [f64; LANES],
    index: [usize; LANES],
}

impl Problem<'_> {
    /// Rows `first..first + out.len()` of `a`.
    fn rows(&self, first: usize, out: &mut [i64]) {
        let mut i = 0;
        #[cfg(target_arch = "x86_64")]
        {
            while std::arch::is_x86_feature_detected!("avx512f") && i + POINTS <= out.len() {
                // SAFETY: the CPU has AVX-512F (checked above); `tile_avx512` reads rows
                // `first + i .. first + i + POINTS` of `a`, which exist since `out` (`n`
                // long in all, asserted by `dot_arg`) covers them, and whole tiles of
                // `packed`, which `dot_arg` sized to `tiles · d · LANES`.
                let found = unsafe {
                    if self.max {
                        self.tile_avx512::<true>(first + i)
                    } else {
                        self.tile_avx512::<false>(first + i)
                    }
                };
                for (p, &j) in found.iter().enumerate() {
                    // (-1: a NaN product, or infinities of both signs: redone one by one.)
                    out[i + p] = if j < 0 { self.finish(&self.row_portable(first + i + p)) } else { j };
                }
                i += POINTS;
            }
        }
        for (r, o) in out.iter_mut().enumerate().skip(i) {
            *o = self.finish(&self.row_portable(first + r));
        }
    }

    /// Whether `x` replaces the running extreme `best` (strictly better, or the first NaN).
    #[inline(always)]
    fn better(&self, x: f64, best: f64) -> bool {
        (if self.max { x > best } else { x < best }) || (x.is_nan() && !best.is_nan())
    }

    /// The start of every lane: the worst value at the lane's index in the first tile.
    fn start(&self) -> Best {
        let worst = if self.max { f64::NEG_INFINITY } else { f64::INFINITY };
        Best { value: [worst; LANES], index: std::array::from_fn(|l| l) }
    }

    /// Merges the values `x` of tile `tile` into `best`. Lanes past `k` (padding) are skipped.
    #[inline(always)]
    fn update(&self, best: &mut Best, x: &[f64; LANES], tile: usize) {
        let valid = (self.k - tile * LANES).min(LANES);
        for (l, &xl) in x.iter().enumerate().take(valid) {
            if self.better(xl, best.value[l]) {
                best.value[l] = xl;
                best.index[l] = tile * LANES + l;
            }
        }
    }

    /// The row's index from its lanes: a NaN lane if any (the smallest index among them),
    /// else the extreme value's smallest index. Each lane holds its first extreme (lanes
    /// are scanned in increasing index), so this is the first extreme of the whole row. A
    /// lane that never changed holds the worst value at its own first index, which is right
    /// when that index is a real column (`< k`) and loses every tie otherwise, since a real
    /// column at a smaller index (lane 0's column 0) holds a value at least as good.
    fn finish(&self, best: &Best) -> i64 {
        let mut pick: Option<(f64, usize)> = None;
        for l in 0..LANES {
            let (v, j) = (best.value[l], best.index[l]);
            if j >= self.k {
                continue;
            }
            pick = match pick {
                None => Some((v, j)),
                Some((pv, pj)) => {
                    let take = if v.is_nan() || pv.is_nan() {
                        v.is_nan() && (!pv.is_nan() || j < pj)
                    } else {
                        self.better(v, pv) || (v == pv && j < pj)
                    };
                    Some(if take { (v, j) } else { (pv, pj) })
                }
            };
        }
        pick.expect("column 0 is lane 0's").1 as i64
    }

    /// One row by scalar fused multiply-adds (the same chains as the vector tiles).
    fn row_portable(&self, row: usize) -> Best {
        let d = self.d;
        let a = &self.a[row * d..(row + 1) * d];
        let mut best = self.start();
        for tile in 0..self.tiles {
            let mut x = [0.0f64; LANES];
            let cols = &self.packed[tile * d * LANES..(tile + 1) * d * LANES];
            for (&at, w) in a.iter().zip(cols.chunks_exact(LANES)) {
                for (xl, &wl) in x.iter_mut().zip(w) {
                    *xl = at.mul_add(wl, *xl);
                }
            }
            if !self.bias.is_empty() {
                for (xl, &r) in x.iter_mut().zip(&self.bias[tile * LANES..(tile + 1) * LANES]) {
                    *xl += r;
                }
            }
            self.update(&mut best, &x, tile);
        }
        best
    }

    /// Rows `row..row + POINTS`, two tiles at a time in AVX-512 registers; the running
    /// extremes and their indices stay in registers too. A product replaces a lane's extreme
    /// when strictly better (`minpd`/`maxpd` keep the old value on ties and NaN, a compare
    /// mask moves the index), so lanes hold their first extreme. NaN products are not
    /// tracked here: a per-lane sum of every product (NaN when one is, or when infinities of
    /// both signs meet) flags the rows to redo by [`Problem::row_portable`], as `-1`.
    ///
    /// # Safety
    /// The CPU must have AVX-512F; rows `row..row + POINTS` of `a` must exist.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn tile_avx512<const MAX: bool>(&self, row: usize) -> [i64; POINTS] {
        use std::arch::x86_64::*;
        let d = self.d;
        let a = &self.a[row * d..(row + POINTS) * d];
        let worst = _mm512_set1_pd(if MAX { f64::NEG_INFINITY } else { f64::INFINITY });
        let lane = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
        let mut best_v = [worst; POINTS];
        let mut best_i = [lane; POINTS];
        let mut probe = [_mm512_setzero_pd(); POINTS];
        let merge = |bv: &mut __m512d, bi: &mut __m512i, probe: &mut __m512d, x: __m512d, index: __m512i| {
            let better =
                if MAX { _mm512_cmp_pd_mask::<_CMP_GT_OQ>(x, *bv) } else { _mm512_cmp_pd_mask::<_CMP_LT_OQ>(x, *bv) };
            *bv = if MAX { _mm512_max_pd(x, *bv) } else { _mm512_min_pd(x, *bv) };
            *bi = _mm512_mask_blend_epi64(better, *bi, index);
            *probe = _mm512_add_pd(*probe, x);
        };
        // The columns past `k` in the last tile: their products (with zero rows) read as the
        // worst value, which never replaces anything.
        let valid = |tile: usize| -> __mmask8 {
            if (tile + 1) * LANES <= self.k {
                0xff
            } else {
                (1u8 << (self.k - tile * LANES)) - 1
            }
        };
        let mut tile = 0;
        while tile < self.tiles {
            let two = tile + 1 < self.tiles;
            let c0 = self.packed[tile * d * LANES..].as_ptr();
            let c1 = if two { self.packed[(tile + 1) * d * LANES..].as_ptr() } else { c0 };
            let mut acc0 = [_mm512_setzero_pd(); POINTS];
            let mut acc1 = [_mm512_setzero_pd(); POINTS];
            for t in 0..d {
                // SAFETY: `t < d`, so both loads lie within their tile of `packed` (`d ·
                // LANES` values each, `c1` being `c0` when there is no second tile).
                let (w0, w1) = unsafe { (_mm512_loadu_pd(c0.add(t * LANES)), _mm512_loadu_pd(c1.add(t * LANES))) };
                for p in 0..POINTS {
                    let x = _mm512_set1_pd(a[p * d + t]);
                    acc0[p] = _mm512_fmadd_pd(x, w0, acc0[p]);
                    acc1[p] = _mm512_fmadd_pd(x, w1, acc1[p]);
                }
            }
            if !self.bias.is_empty() {
                let r = self.bias[tile * LANES..].as_ptr();
                // SAFETY: `bias` holds `tiles · LANES` values, so each tile's LANES exist.
                let (r0, r1) = unsafe { (_mm512_loadu_pd(r), _mm512_loadu_pd(if two { r.add(LANES) } else { r })) };
                for p in 0..POINTS {
                    acc0[p] = _mm512_add_pd(acc0[p], r0);
                    acc1[p] = _mm512_add_pd(acc1[p], r1);
                }
            }
            let (m0, m1) = (valid(tile), if two { valid(tile + 1) } else { 0 });
            let i0 = _mm512_add_epi64(lane, _mm512_set1_epi64((tile * LANES) as i64));
            let i1 = _mm512_add_epi64(i0, _mm512_set1_epi64(LANES as i64));
            for p in 0..POINTS {
                let x0 = if m0 == 0xff { acc0[p] } else { _mm512_mask_blend_pd(m0, worst, acc0[p]) };
                merge(&mut best_v[p], &mut best_i[p], &mut probe[p], x0, i0);
                if two {
                    let x1 = if m1 == 0xff { acc1[p] } else { _mm512_mask_blend_pd(m1, worst, acc1[p]) };
                    merge(&mut best_v[p], &mut best_i[p], &mut probe[p], x1, i1);
                }
            }
            tile += 2;
        }
        std::array::from_fn(|p| {
            if _mm512_cmp_pd_mask::<_CMP_UNORD_Q>(probe[p], probe[p]) != 0 {
                -1
            } else {
                self.finish_avx512(best_v[p], best_i[p])
            }
        })
    }

    /// [`Problem::finish`] on lanes in registers: the smallest index among NaN lanes if any,
    /// else among the lanes equal to the extreme (found by halving the register; `-0` and
    /// `+0` compare equal, so either found, both lanes are candidates). Padding lanes hold
    /// the worst value at indices past every real column, so they never win.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn finish_avx512(&self, v: std::arch::x86_64::__m512d, i: std::arch::x86_64::__m512i) -> i64 {
        use std::arch::x86_64::*;
        let nan = _mm512_cmp_pd_mask::<_CMP_UNORD_Q>(v, v);
        let mut candidates = if nan != 0 {
            nan
        } else {
            let (lo, hi) = (_mm512_castpd512_pd256(v), _mm512_extractf64x4_pd::<1>(v));
            let h = if self.max { _mm256_max_pd(lo, hi) } else { _mm256_min_pd(lo, hi) };
            let (lo, hi) = (_mm256_castpd256_pd128(h), _mm256_extractf128_pd::<1>(h));
            let q = if self.max { _mm_max_pd(lo, hi) } else { _mm_min_pd(lo, hi) };
            let r = if self.max { _mm_max_sd(q, _mm_unpackhi_pd(q, q)) } else { _mm_min_sd(q, _mm_unpackhi_pd(q, q)) };
            _mm512_cmp_pd_mask::<_CMP_EQ_OQ>(v, _mm512_set1_pd(_mm_cvtsd_f64(r)))
        };
        let mut index = [0i64; LANES];
        // SAFETY: `index` holds LANES i64, one 512-bit register.
        unsafe { _mm512_storeu_si512(index.as_mut_ptr().cast(), i) };
        let mut best = i64::MAX;
        while candidates != 0 {
            best = best.min(index[candidates.trailing_zeros() as usize]);
            candidates &= candidates - 1;
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The unfused reference: gemm-order chains, then the first extreme (first NaN).
    fn reference(a: &[f64], b: &[f64], (n, d, k): (usize, usize, usize), max: bool) -> Vec<i64> {
        (0..n)
            .map(|i| {
                let v: Vec<f64> =
                    (0..k).map(|j| (0..d).fold(0.0f64, |s, t| a[i * d + t].mul_add(b[j * d + t], s))).collect();
                if let Some(p) = v.iter().position(|x| x.is_nan()) {
                    return p as i64;
                }
                let mut best = 0;
                for j in 1..k {
                    if if max { v[j] > v[best] } else { v[j] < v[best] } {
                        best = j;
                    }
                }
                best as i64
            })
            .collect()
    }

    fn values(len: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
            })
            .collect()
    }

    #[test]
    fn matches_the_unfused_scan_on_ragged_sizes_ties_and_nans() {
        for &(n, d, k) in &[(1, 1, 1), (5, 3, 7), (9, 9, 17), (13, 17, 16), (300, 5, 33), (7, 2, 9)] {
            let a = values(n * d, 1 + n as u64);
            let mut b = values(k * d, 2 + k as u64);
            // A duplicate row of b (exact ties) and, where there is room, a NaN column.
            if k > 3 {
                let (x, y) = b.split_at_mut(2 * d);
                y[..d].copy_from_slice(&x[..d]);
            }
            let mut with_nan = a.clone();
            if n > 2 {
                with_nan[d] = f64::NAN; // row 1: every value NaN -> index 0
            }
            for (a, max) in [(&a, false), (&a, true), (&with_nan, false)] {
                let mut out = vec![-1; n];
                dot_arg(a, &b, true, None, (n, d, k), max, &mut out, false);
                assert_eq!(out, reference(a, &b, (n, d, k), max), "n={n} d={d} k={k} max={max}");
                // b as [d, k] gives the same.
                let bt: Vec<f64> = (0..d * k).map(|q| b[(q % k) * d + q / k]).collect();
                let mut out_t = vec![-1; n];
                dot_arg(a, &bt, false, None, (n, d, k), max, &mut out_t, true);
                assert_eq!(out_t, out);
            }
        }
    }

    #[test]
    fn a_nan_column_wins_and_infinities_tie_to_the_first() {
        // b rows: [1], [NaN], [inf]; a = [1], [-1]: values 1, NaN, inf / -1, NaN, -inf.
        let b = [1.0, f64::NAN, f64::INFINITY, 5.0, f64::NAN];
        let a = [1.0, -1.0, 0.0, 2.0, 3.0];
        let mut out = [0; 5];
        dot_arg(&a, &b, true, None, (5, 1, 5), false, &mut out, false);
        assert_eq!(out, [1, 1, 1, 1, 1]);
        let b = [f64::INFINITY; 10];
        let mut out = [7; 5];
        dot_arg(&a, &b, true, None, (5, 1, 10), false, &mut out, false);
        // 1·inf, -1·inf (all equal: first), 0·inf = NaN (first NaN), inf, inf.
        assert_eq!(out, [0, 0, 0, 0, 0]);
    }
}
