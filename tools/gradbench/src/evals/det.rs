//! `det`: the determinant by expansion by minors along the first row (GradBench's
//! `det_by_minor`, `ℓ!` products), and its gradient (the cofactor matrix) by `grad`.
//!
//! The recursion is vectorised over minors. Each level holds a batch of `m × m`
//! matrices stored transposed, `[..., m (columns), m (rows)]`; one `take` of the
//! columns gathers all `m` minors of the first row at once (`[..., m, m-1, m-1]`,
//! already in the stored layout), the level recurses once on that batch and combines
//! `Σⱼ (-1)ʲ a₀ⱼ det(minor₀ⱼ)`. The last [`LEAF`] levels are not gathered: the
//! expansion of each `LEAF × LEAF` minor is written out entry by entry, so it runs as
//! one fused loop over the batch, with the same `ℓ!` products and no matrices of
//! minors materialised. (For large `ℓ`, the top levels expand one column at a time
//! so that the gathered minors stay within a memory bound.)
//!
//! Matrices of at most [`LEAF`] rows — where a call's cost is the library's per-call and
//! per-step overhead, not the `ℓ!` products — are expanded straight from the row-major
//! input ([`det_row_major`]): no transposed copy, and the gradient comes out in the input's
//! layout. Their two process-wide jitted functions are compiled to native code when an input first needs them
//! ([`warm_small`]), outside the timed calls, as `ba` compiles its chunk plans at `define`.

use super::{unknown_function, Output, Run};
use crate::input::{usize_field, vector};
use crate::limits::{at_most, Limits};
use cotangent::{grad, jit, native_mode, with_native_mode, NativeMode, Tensor};
use serde_json::Value;
use std::rc::Rc;

/// Determinants of a batch of square matrices `[..., m, m]`, by expansion by minors.
///
/// ```
/// use cotangent::Tensor;
/// use gradbench_tool::evals::det::det;
/// let a = Tensor::from_vec(vec![2.0, 1.0, 0.0, 1.0, 3.0, 1.0, 0.0, 1.0, 4.0], &[3, 3]);
/// assert_eq!(det(&a).item::<f64>(), 18.0);
/// ```
pub fn det(a: &Tensor) -> Tensor {
    det_transposed(&a.swapaxes_last(), MAX_GATHERED, LEAF)
}

/// The most elements a level's gathered minors may hold (64 MB of `f64`): beyond it,
/// the level is expanded one column at a time, so memory stays bounded while the work
/// is still the `ℓ!` products.
const MAX_GATHERED: usize = 1 << 23;

/// The size of the minors whose expansion is written out entry by entry. Its fused
/// loop has `LEAF! · e` multiplications (5: 326), which a C compiler builds in a
/// second or two; 6 would save a gathered level but takes it ten.
const LEAF: usize = 5;

trait SwapLast {
    fn swapaxes_last(&self) -> Tensor;
}

impl SwapLast for Tensor {
    fn swapaxes_last(&self) -> Tensor {
        let r = self.shape().len() as isize;
        let mut perm: Vec<isize> = (0..r).collect();
        perm.swap(r as usize - 1, r as usize - 2);
        self.permute(&perm)
    }
}

/// [`det`] of the transposes `t[..., c, r] = a[..., r, c]`, gathering a level's minors
/// only while they hold at most `limit` elements and writing out minors of size
/// `leaf` or less.
fn det_transposed(t: &Tensor, limit: usize, leaf: usize) -> Tensor {
    let shape = t.shape();
    let r = shape.len();
    let m = shape[r - 1];
    let batch_shape = &shape[..r - 2];
    if m <= leaf {
        // Entry (row i, column j) is element j·m + i of the flattened transposes,
        // kept as [..., 1] so that no strided slice needs a reshape.
        let mut flat_shape = batch_shape.to_vec();
        flat_shape.push(m * m);
        let flat = t.reshape_to(&flat_shape);
        let entries: Vec<Vec<Tensor>> = (0..m)
            .map(|i| (0..m).map(|j| flat.slice_axis(-1, (j * m + i) as isize, (j * m + i + 1) as isize, 1)).collect())
            .collect();
        let cols: Vec<usize> = (0..m).collect();
        return expand_entries(&entries, 0, &cols).reshape_to(batch_shape);
    }
    let first_row = t.slice_axis(-1, 0, 1, 1); // [..., m, 1]
    let rest = t.slice_axis(-1, 1, m as isize, 1); // [..., m (columns), m-1 (rows)]
    let sign = |j: usize| (-1f64).powi(j as i32);
    let batch: usize = batch_shape.iter().product();
    if batch.checked_mul(m * (m - 1) * (m - 1)).is_some_and(|n| n <= limit) {
        // Minor j keeps every column but j: [..., m, m-1, m-1], transposed like `t`.
        let columns: Vec<i64> = (0..m as i64).flat_map(|j| (0..m as i64).filter(move |&c| c != j)).collect();
        let minors = rest.take(&Tensor::from_vec(columns, &[m, m - 1]), -2);
        let mut sub_shape = batch_shape.to_vec();
        sub_shape.extend([m, 1]);
        let sub = det_transposed(&minors, limit, leaf).reshape_to(&sub_shape); // [..., m, 1]
        let signs: Vec<f64> = (0..m).map(sign).collect();
        (first_row * sub * Tensor::from_vec(signs, &[m, 1])).sum(&[-2, -1], false)
    } else {
        (0..m)
            .map(|j| {
                let columns: Vec<i64> = (0..m as i64).filter(|&c| c != j as i64).collect();
                let minor = rest.take(&Tensor::from_vec(columns, &[m - 1]), -2);
                let entry = first_row.slice_axis(-2, j as isize, j as isize + 1, 1).reshape_to(batch_shape);
                entry * det_transposed(&minor, limit, leaf) * sign(j)
            })
            .reduce(|acc, t| acc + t)
            .expect("m >= 2 columns")
    }
}

/// The expansion by minors along row `row` of the matrix of `entries` (each entry a
/// batch of values) restricted to rows `row..` and columns `cols`.
fn expand_entries(entries: &[Vec<Tensor>], row: usize, cols: &[usize]) -> Tensor {
    if cols.len() == 1 {
        return entries[row][cols[0]].clone();
    }
    let mut acc: Option<Tensor> = None;
    for (t, &c) in cols.iter().enumerate() {
        let rest: Vec<usize> = cols.iter().copied().filter(|&x| x != c).collect();
        let term = &entries[row][c] * expand_entries(entries, row + 1, &rest);
        acc = Some(match acc {
            None => term,
            Some(a) if t % 2 == 1 => a - term,
            Some(a) => a + term,
        });
    }
    acc.expect("at least one column")
}

/// The determinant, by expansion by minors along the first row, of the square matrix whose
/// entries, row by row, are the elements of the vector `a` (`ℓ²` of them): the entries are
/// read straight from `a` (no transposed copy) and the expansion is written out entry by
/// entry, one fused loop.
///
/// ```
/// use cotangent::Tensor;
/// use gradbench_tool::evals::det::det_row_major;
/// let a = Tensor::from_vec(vec![2.0, 1.0, 0.0, 1.0, 3.0, 1.0, 0.0, 1.0, 4.0], &[9]);
/// assert_eq!(det_row_major(&a).item::<f64>(), 18.0);
/// ```
pub fn det_row_major(a: &Tensor) -> Tensor {
    let len = a.numel();
    let ell = (1..=len).find(|l| l * l >= len).unwrap_or(0);
    assert!(
        a.shape().len() == 1 && ell > 0 && ell * ell == len,
        "det_row_major: expected a vector of ℓ² entries, got shape {:?}",
        a.shape()
    );
    let entries: Vec<Vec<Tensor>> = (0..ell)
        .map(|i| (0..ell).map(|j| a.slice_axis(0, (i * ell + j) as isize, (i * ell + j + 1) as isize, 1)).collect())
        .collect();
    let cols: Vec<usize> = (0..ell).collect();
    expand_entries(&entries, 0, &cols).reshape_to(&[])
}

/// A jitted function of a small matrix's entries, kept for the whole process.
type SmallFn = Rc<dyn Fn(&Tensor) -> Tensor>;

thread_local! {
    /// [`det_row_major`], jitted once per process (one plan per `ℓ`).
    static SMALL_PRIMAL: SmallFn = Rc::new(jit(det_row_major));
    /// Its gradient, likewise.
    static SMALL_GRADIENT: SmallFn = Rc::new(grad(det_row_major));
}

/// Calls `f` twice on `entries` so that its plan for their `ℓ` has native loops from then
/// on (unless native code is off): at most [`LEAF`] rows, a plan is one fused loop over
/// scalars, which the default policy leaves interpreted (it compiles large loops only),
/// and there the interpreter's per-instruction dispatch is most of a call. Once per `ℓ`
/// and process; the compiled library is cached on disk.
fn warm_small(f: &SmallFn, a: &Tensor) {
    let twice = || {
        f(a);
        f(a);
    };
    match native_mode() {
        NativeMode::Off => twice(),
        _ => with_native_mode(NativeMode::Always, twice),
    }
}

/// Builds `primal` or `gradient` for input `{A: float[ℓ·ℓ] (row-major), ell: int}`.
///
/// Expansion by minors takes `ℓ!` products, so `ℓ` beyond [`Limits::max_det_ell`]
/// is refused (GradBench goes up to 11; 12 takes minutes, 13 would take hours).
pub fn prepare(function: &str, input: &Value, limits: &Limits) -> Result<Run, String> {
    let a = vector(input, "A")?;
    let ell = usize_field(input, "ell")?;
    at_most("ell", ell, limits.max_det_ell)?;
    if ell == 0 || Some(a.numel()) != ell.checked_mul(ell) {
        return Err(format!("`A`: expected {ell}·{ell} numbers for ell = {ell}, got {}", a.numel()));
    }
    if ell <= LEAF {
        let f = match function {
            "primal" => SMALL_PRIMAL.with(Rc::clone),
            "gradient" => SMALL_GRADIENT.with(Rc::clone),
            _ => return Err(unknown_function("det", function, &["primal", "gradient"])),
        };
        warm_small(&f, &a);
        return Ok(Box::new(move || Ok(Output::from(f(&a)))));
    }
    let a = a.reshape_to(&[ell, ell]);
    match function {
        "primal" => {
            let f = jit(det);
            Ok(Box::new(move || Ok(Output::from(f(&a)))))
        }
        "gradient" => {
            let ddet = grad(det);
            Ok(Box::new(move || Ok(Output::from(ddet(&a).flatten()))))
        }
        _ => Err(unknown_function("det", function, &["primal", "gradient"])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(x: f64, y: f64) -> bool {
        (x - y).abs() <= 1e-12 * x.abs().max(1.0)
    }

    /// Every way of splitting the expansion (levels gathered or expanded column by
    /// column, minors written out from size 1 to 6) gives the same determinant and
    /// gradient, and the gradient is the cofactor matrix: `Σⱼ a_ij g_kj = det · δ_ik`.
    #[test]
    fn formulations_agree_and_gradient_is_cofactor_matrix() {
        let n = 6;
        let v: Vec<f64> = (0..n * n).map(|i| ((i * 7 + 3) % 11) as f64 / 3.0 - 1.5).collect();
        let a = Tensor::from_vec(v.clone(), &[n, n]);
        let d = det(&a).item::<f64>();
        let g = grad(det)(&a).to_vec::<f64>();
        for i in 0..n {
            for k in 0..n {
                let s: f64 = (0..n).map(|j| v[i * n + j] * g[k * n + j]).sum();
                assert!(close(s, if i == k { d } else { 0.0 }), "row {i}, cofactor row {k}: {s} (det {d})");
            }
        }
        for (limit, leaf) in [(1, 1), (1, 3), (usize::MAX, 1), (usize::MAX, 2), (200, 4), (usize::MAX, 6)] {
            let f = move |a: &Tensor| det_transposed(&a.swapaxes_last(), limit, leaf);
            assert!(close(d, f(&a).item::<f64>()), "limit {limit}, leaf {leaf}");
            let g2 = grad(f)(&a).to_vec::<f64>();
            for (x, y) in g.iter().zip(&g2) {
                assert!(close(*x, *y), "limit {limit}, leaf {leaf}: {g:?} vs {g2:?}");
            }
        }
    }

    /// The small-matrix path (the row-major vector, the process-wide plans, warmed to native
    /// code) gives the determinant and gradient of the matrix path, for every `ℓ` it serves.
    #[test]
    fn entries_agree_with_matrix_path() {
        for ell in 1..=LEAF {
            let v: Vec<f64> = (0..ell * ell).map(|i| ((i * 5 + 2) % 7) as f64 / 2.0 - 1.25).collect();
            let a = Tensor::from_vec(v.clone(), &[ell, ell]);
            let flat = Tensor::from_vec(v.clone(), &[ell * ell]);
            let (f, g) = (SMALL_PRIMAL.with(Rc::clone), SMALL_GRADIENT.with(Rc::clone));
            warm_small(&f, &flat);
            warm_small(&g, &flat);
            let d = det(&a).item::<f64>();
            assert!(close(d, f(&flat).item::<f64>()), "ell {ell}");
            let want = grad(det)(&a).to_vec::<f64>();
            let got = g(&flat).to_vec::<f64>();
            assert_eq!(got.len(), ell * ell);
            for (x, y) in want.iter().zip(&got) {
                assert!(close(*x, *y), "ell {ell}: {want:?} vs {got:?}");
            }
        }
    }
}
