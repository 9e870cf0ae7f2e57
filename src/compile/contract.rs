//! Weighted sums of products with a constant factor: contract the constants first.
//!
//! A product `X = A·B` whose every free column of the constant `B` is summed away with
//! constant weights `W`,
//!
//! ```text
//! r[s] = Σ_{(f, j) in group s} X[f, j] · W[f, j],   X[f, j] = Σ_k A[f, k] · B[k, j]
//! ```
//!
//! is the same sum contracted in the other order, `r[s] = Σ_{f in s} Σ_k A[f, k] · N[f, k]`
//! with `N[f, k] = Σ_j W[f, j] · B[k, j]` computed at compile time. The product's
//! `|f|·|j|·|k|` multiply-adds become one fused multiply-and-sum of `|f|·|k|` terms, and
//! when `W` repeats along some axes of `f` (a broadcast, as an identity mask broadcast over a
//! batch does) `N` is computed and stored for one slice only.
//!
//! This is how `(hessian(f)(x) * eye).sum()` (the Laplacian as forward-over-reverse writes
//! it) stops computing the off-diagonal Hessian entries it then multiplies by zero, how
//! `(x.matmul(w) * v).sum(-1)` becomes a matrix-vector product, and how `x.matmul(w).sum(-1)`
//! sums `w`'s rows first. Like `sum(broadcast(x)) → n·x` this reassociates sums: the result
//! equals the original up to rounding (for finite values; an infinite product entry that the
//! weights multiply by zero is no longer there to make a NaN).
//!
//! Between the product and the multiplication there may be reshapes and transposes (views):
//! where each element of the product lands, and which output element sums it, is worked out
//! by running those views on index arrays at compile time. Each node of the pattern must have
//! no other reader (else the product is computed anyway).

use crate::array::{Array, Data};
use crate::backend::cpu::kernel;
use crate::ir::{Graph, Var};
use crate::ops::{BinaryOp, Prim, ReduceOp};
use crate::{DType, TensorType};
use std::sync::Arc;

/// Products with more output elements than this are left alone (their index maps would be
/// built at compile time).
const VIEW_LIMIT: usize = 1 << 22;
/// Multiply-adds the compile-time constant `N` may cost.
const FOLD_WORK: usize = 1 << 26;
/// Elements the constant `N` may have (it is stored with the plan).
const N_LIMIT: usize = 1 << 20;
/// Products of fewer multiply-adds than this are left alone: nothing to gain.
const MIN_WORK: usize = 1 << 15;

/// The value of `v` if it is a constant or a broadcast of one (computed, up to `limit` elements).
fn constant_value(g: &Graph, v: Var, limit: usize) -> Option<Array> {
    let node = &g.nodes[v.index()];
    if node.ty.numel() > limit {
        return None;
    }
    match &node.prim {
        Prim::Constant(a) => Some((**a).clone()),
        Prim::BroadcastInDim { .. } => {
            let x = constant_value(g, node.inputs[0], limit)?;
            Some(kernel(&node.prim, &[&x], &node.ty))
        }
        _ => None,
    }
}

/// Whether `v` is a constant or a broadcast of one.
fn is_constant(g: &Graph, v: Var) -> bool {
    match &g.nodes[v.index()].prim {
        Prim::Constant(_) => true,
        Prim::BroadcastInDim { .. } => is_constant(g, g.nodes[v.index()].inputs[0]),
        _ => false,
    }
}

/// Row-major strides of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for a in (0..shape.len().saturating_sub(1)).rev() {
        s[a] = s[a + 1] * shape[a + 1];
    }
    s
}

/// The axes of an array of `shape` (row-major, `rows` values of `cols` columns per index)
/// along which `v` changes: an axis is kept if some element differs from its neighbour one
/// step back along it.
fn varying_axes<T: PartialEq>(v: &[T], shape: &[usize], cols: usize) -> Vec<usize> {
    let st = strides(shape);
    let n: usize = shape.iter().product();
    let row = |f: usize| &v[f * cols..(f + 1) * cols];
    (0..shape.len())
        .filter(|&a| (0..n).any(|f| !(f / st[a]).is_multiple_of(shape[a]) && row(f) != row(f - st[a])))
        .collect()
}

/// A rewrite found at a `reduce_sum` node: the replacement reads `a` (its axes permuted by
/// `a_perm` to free axes then contracted axes), multiplies it by `n` broadcast along
/// `n_dims`, sums over `sum_axes` and reshapes to the reduction's shape.
struct Found {
    a: Var,
    a_perm: Vec<usize>,
    /// `a` permuted: free axes, then contracted axes.
    full: Vec<usize>,
    n: Array,
    n_dims: Vec<usize>,
    sum_axes: Vec<usize>,
}

/// The rewrite for node `i` of `g`, if it is a weighted sum of a product with a constant.
fn find(g: &Graph, uses: &[usize], i: usize) -> Option<Found> {
    let node = &g.nodes[i];
    let Prim::Reduce { op: ReduceOp::Sum, axes } = &node.prim else { return None };
    let dtype = node.ty.dtype;
    if !matches!(dtype, DType::F32 | DType::F64) {
        return None;
    }
    let y = node.inputs[0];
    if uses[y.index()] != 1 {
        return None;
    }
    let ny = g.ty(y).numel();
    if ny > VIEW_LIMIT {
        return None;
    }
    // The weights (if any) and the operand that leads back to the product.
    // The weights (if any) and the operand that leads back to the product. Nothing is
    // computed before the whole pattern is found (reductions of masked values are common).
    let (u, weights) = match &g.nodes[y.index()].prim {
        Prim::Binary(BinaryOp::Mul) => {
            let [p, q] = [g.nodes[y.index()].inputs[0], g.nodes[y.index()].inputs[1]];
            if is_constant(g, q) && !is_constant(g, p) {
                (p, Some(q))
            } else if is_constant(g, p) && !is_constant(g, q) {
                (q, Some(p))
            } else {
                return None;
            }
        }
        _ => (y, None),
    };
    // Views (reshapes, transposes) back to the product, each read only here.
    let mut views = Vec::new();
    let mut x = u;
    loop {
        if uses[x.index()] != 1 {
            return None;
        }
        match &g.nodes[x.index()].prim {
            Prim::Reshape { .. } | Prim::Transpose { .. } => {
                views.push(x);
                x = g.nodes[x.index()].inputs[0];
            }
            Prim::DotGeneral { .. } => break,
            _ => return None,
        }
    }
    views.reverse();
    let Prim::DotGeneral { lhs_contract, rhs_contract, lhs_batch, .. } = &g.nodes[x.index()].prim else {
        return None;
    };
    if !lhs_batch.is_empty() {
        return None;
    }
    let [l, r] = [g.nodes[x.index()].inputs[0], g.nodes[x.index()].inputs[1]];
    // `a`: the operand computed at run time; `b`: the constant one. Output axes: lhs free
    // axes, then rhs free axes.
    let (a, ca, b, cb, a_first) = match (is_constant(g, l), is_constant(g, r)) {
        (false, true) => (l, lhs_contract, r, rhs_contract, true),
        (true, false) => (r, rhs_contract, l, lhs_contract, false),
        _ => return None,
    };
    let aty = g.ty(a);
    let fa: Vec<usize> = (0..aty.rank()).filter(|d| !ca.contains(d)).collect();
    let fa_shape: Vec<usize> = fa.iter().map(|&d| aty.shape[d]).collect();
    let k_shape: Vec<usize> = ca.iter().map(|&d| aty.shape[d]).collect();
    let (na, nk) = (fa_shape.iter().product::<usize>(), k_shape.iter().product::<usize>());
    let nb = g.ty(x).numel() / na.max(1);
    if nb < 2 || na * nb * nk < MIN_WORK || na == 0 || nk == 0 {
        return None;
    }
    let b = constant_value(g, b, VIEW_LIMIT)?;
    let weights = match weights {
        Some(w) => Some(constant_value(g, w, VIEW_LIMIT)?),
        None => None,
    };
    let fb: Vec<usize> = (0..b.shape.len()).filter(|d| !cb.contains(d)).collect();
    // Where each element of the view lands in the product: the views run on an index array.
    let xty = g.ty(x);
    let iota = Array::new(xty.shape.clone(), Data::I64((0..xty.numel() as i64).collect()));
    let place = views.iter().fold(iota, |arr, &v| {
        kernel(&g.nodes[v.index()].prim, &[&arr], &TensorType::new(DType::I64, g.ty(v).shape.clone()))
    });
    let Data::I64(place) = place.data else { return None };
    // Which output element sums each element of the view (the flat index over kept axes),
    // and its weight, both moved to the product's layout as `[f, j]`.
    let yshape = &g.ty(y).shape;
    let kept: Vec<usize> = (0..yshape.len()).filter(|d| !axes.contains(d)).collect();
    let kept_strides = strides(&kept.iter().map(|&d| yshape[d]).collect::<Vec<_>>());
    let ystrides = strides(yshape);
    let mut group = vec![usize::MAX; na * nb];
    let mut weight = vec![1.0f64; na * nb];
    for (e, &p) in place.iter().enumerate() {
        let s: usize = kept.iter().zip(&kept_strides).map(|(&d, &st)| (e / ystrides[d]) % yshape[d] * st).sum();
        let p = p as usize;
        let (f, j) = if a_first { (p / nb, p % nb) } else { (p % na, p / na) };
        group[f * nb + j] = s;
        if let Some(w) = &weights {
            weight[f * nb + j] = w.data.get_f64(e);
        }
    }
    // Every column `j` of a row `f` must be summed into the same output element.
    let row_group: Vec<usize> = group.chunks_exact(nb).map(|row| row[0]).collect();
    if group.chunks_exact(nb).any(|row| row.iter().any(|&s| s != row[0])) {
        return None;
    }
    // The output is indexed by some of `f`'s axes, in order (the others are summed).
    let out_axes = varying_axes(&row_group, &fa_shape, 1);
    let out_strides = strides(&out_axes.iter().map(|&d| fa_shape[d]).collect::<Vec<_>>());
    let fa_strides = strides(&fa_shape);
    let index_over = |f: usize, axes: &[usize], st: &[usize]| -> usize {
        axes.iter().zip(st).map(|(&d, &s)| (f / fa_strides[d]) % fa_shape[d] * s).sum()
    };
    if (0..na).any(|f| row_group[f] != index_over(f, &out_axes, &out_strides)) {
        return None;
    }
    // N = W·Bᵀ over `j`, for the axes of `f` the weights vary along (one slice of the rest).
    let w_axes = varying_axes(&weight, &fa_shape, nb);
    let w_shape: Vec<usize> = w_axes.iter().map(|&d| fa_shape[d]).collect();
    let nw: usize = w_shape.iter().product();
    if nw * nb * nk > FOLD_WORK || nw * nk > N_LIMIT {
        return None;
    }
    // B as `[j, k]`.
    let b_perm: Vec<usize> = fb.iter().chain(cb.iter()).copied().collect();
    let b_shape: Vec<usize> = b_perm.iter().map(|&d| b.shape[d]).collect();
    let bt = kernel(&Prim::Transpose { perm: b_perm }, &[&b], &TensorType::new(b.dtype(), b_shape));
    let bv: Vec<f64> = (0..nb * nk).map(|i| bt.data.get_f64(i)).collect();
    let w_strides = strides(&w_shape);
    let mut n = vec![0.0f64; nw * nk];
    for (t, row) in n.chunks_exact_mut(nk).enumerate() {
        // The first row `f` with these coordinates along `w_axes` (zero along the others).
        let f: usize = w_axes.iter().zip(&w_strides).map(|(&d, &s)| (t / s) % fa_shape[d] * fa_strides[d]).sum();
        for j in 0..nb {
            let w = weight[f * nb + j];
            if w != 0.0 {
                for (acc, &bk) in row.iter_mut().zip(&bv[j * nk..(j + 1) * nk]) {
                    *acc += w * bk;
                }
            }
        }
    }
    let n_shape: Vec<usize> = w_shape.iter().chain(&k_shape).copied().collect();
    let n = match dtype {
        DType::F32 => Array::new(n_shape, Data::F32(n.into_iter().map(|v| v as f32).collect())),
        _ => Array::new(n_shape, Data::F64(n)),
    };
    let rank_f = fa.len();
    let n_dims: Vec<usize> = w_axes.iter().copied().chain(rank_f..rank_f + ca.len()).collect();
    let sum_axes: Vec<usize> = (0..rank_f).filter(|d| !out_axes.contains(d)).chain(rank_f..rank_f + ca.len()).collect();
    let a_perm: Vec<usize> = fa.iter().chain(ca.iter()).copied().collect();
    let full: Vec<usize> = fa_shape.iter().chain(&k_shape).copied().collect();
    // Axes of length one are dropped (`a` is often a product's operand reshaped to have
    // them), so that the multiply-and-sum has the shape of the loop that computes `a`.
    let squeezed: Vec<usize> = (0..full.len()).filter(|&d| full[d] != 1).collect();
    let renumber = |axes: Vec<usize>| -> Vec<usize> {
        axes.into_iter().filter_map(|d| squeezed.iter().position(|&s| s == d)).collect()
    };
    let n_kept: Vec<usize> = n_dims.iter().copied().filter(|&d| full[d] != 1).collect();
    let n_shape: Vec<usize> = n_kept.iter().map(|&d| full[d]).collect();
    let n = Array::new(n_shape, n.data);
    let (n_dims, sum_axes) = (renumber(n_kept), renumber(sum_axes));
    let full = squeezed.iter().map(|&d| full[d]).collect();
    Some(Found { a, a_perm, full, n, n_dims, sum_axes })
}

/// Applies the rewrite (see the module documentation) wherever it fits, then removes the
/// products it replaced. Returns `g` unchanged (not copied) where nothing fits.
pub(super) fn weighted_sums_of_products(g: Graph) -> Graph {
    let uses = g.use_counts();
    let mut found: Vec<(usize, Found)> = Vec::new();
    for (i, node) in g.nodes.iter().enumerate() {
        if matches!(node.prim, Prim::Reduce { op: ReduceOp::Sum, .. }) {
            if let Some(f) = find(&g, &uses, i) {
                found.push((i, f));
            }
        }
    }
    if found.is_empty() {
        return g;
    }
    super::passes::rebuild_replacing(g, found, |out, map, node, f| {
        let dtype = node.ty.dtype;
        let a = map[f.a.index()];
        let full = TensorType::new(dtype, f.full.clone());
        let identity = f.a_perm.iter().enumerate().all(|(i, &p)| i == p);
        let at = if identity {
            // A reshape of a reshape is one reshape; none if the shapes agree.
            let src = match &out.nodes[a.index()].prim {
                Prim::Reshape { .. } => out.nodes[a.index()].inputs[0],
                _ => a,
            };
            if out.ty(src).shape == f.full {
                src
            } else {
                out.push_typed(Prim::Reshape { shape: f.full.clone() }, vec![src], full.clone())
            }
        } else {
            let permuted: Vec<usize> = f.a_perm.iter().map(|&d| out.ty(a).shape[d]).collect();
            let t =
                out.push_typed(Prim::Transpose { perm: f.a_perm }, vec![a], TensorType::new(dtype, permuted.clone()));
            if permuted == f.full {
                t
            } else {
                out.push_typed(Prim::Reshape { shape: f.full.clone() }, vec![t], full.clone())
            }
        };
        let nty = TensorType::new(dtype, f.n.shape.clone());
        let n = out.push_typed(Prim::Constant(Arc::new(f.n)), vec![], nty);
        let nb = out.push_typed(Prim::BroadcastInDim { shape: f.full.clone(), dims: f.n_dims }, vec![n], full.clone());
        let prod = out.push_typed(Prim::Binary(BinaryOp::Mul), vec![at, nb], full);
        let kept: Vec<usize> = (0..f.full.len()).filter(|d| !f.sum_axes.contains(d)).map(|d| f.full[d]).collect();
        let sum = out.push_typed(
            Prim::Reduce { op: ReduceOp::Sum, axes: f.sum_axes },
            vec![prod],
            TensorType::new(dtype, kept.clone()),
        );
        if kept == node.ty.shape {
            sum
        } else {
            out.push_typed(Prim::Reshape { shape: node.ty.shape.clone() }, vec![sum], node.ty)
        }
    })
}
