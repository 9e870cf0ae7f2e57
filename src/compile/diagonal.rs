//! Products with a diagonal matrix: scale instead of multiply.
//!
//! A `dot_general` that contracts one axis of an operand `A` with one axis of a square matrix
//! `D` known to be diagonal,
//!
//! ```text
//! (A·D)[f, q] = Σ_p A[f, p] · D[p, q] = A[f, q] · d[q]
//! ```
//!
//! is `A` (its contracted axis moved to where the product puts `D`'s free axis) times `d`
//! broadcast along that axis: `n` multiplications per row instead of `n²` multiply-adds.
//! `D` is diagonal when it is a constant with zeros off the diagonal (an identity mask), or
//! the element-wise product of such a mask with a broadcast vector or scalar — how reverse
//! mode writes the cotangent of a diagonal (`logdet` through Cholesky: `L̄ = diag(2/Lᵢᵢ)`,
//! whose `Lᵀ·L̄` is a 256×256×256 product in `value_and_grad(logdet)`), and how `x * eye`
//! masks write one. Its diagonal `d` is then that vector times the mask's diagonal.
//!
//! The dropped terms are `A[f, p]·0` for `p ≠ q`: for finite `A` each is a zero, and the
//! result is the same value (a zero result may change sign); an infinite or NaN `A[f, p]`
//! no longer spreads a NaN along its row, as in `contract.rs`.

use crate::array::{Array, Data};
use crate::ir::{Graph, Var};
use crate::ops::{BinaryOp, Prim};
use crate::{DType, TensorType};
use std::sync::Arc;

/// Diagonal factors with fewer rows than this are left alone (nothing to gain).
const MIN_SIDE: usize = 16;

/// How a diagonal matrix's diagonal is obtained: `mask[p]` (constant) times, where present,
/// the vector or scalar `scale` that the mask multiplies.
struct Diagonal {
    mask: Vec<f64>,
    /// `(v, true)`: `n` values broadcast along either axis; `(s, false)`: one value.
    scale: Option<(Var, bool)>,
}

/// The diagonal of a constant square matrix with zeros off its diagonal.
fn constant_diagonal(a: &Array) -> Option<Vec<f64>> {
    let [n, m] = a.shape[..] else { return None };
    if n != m || !matches!(a.data, Data::F32(_) | Data::F64(_)) {
        return None;
    }
    for i in 0..n {
        for j in 0..n {
            if i != j && a.data.get_f64(i * n + j) != 0.0 {
                return None;
            }
        }
    }
    Some((0..n).map(|i| a.data.get_f64(i * n + i)).collect())
}

/// The diagonal of a constant, or of a broadcast of one, that is a diagonal square matrix.
fn mask(g: &Graph, v: Var) -> Option<Vec<f64>> {
    let node = &g.nodes[v.index()];
    match &node.prim {
        Prim::Constant(a) => constant_diagonal(a),
        // A broadcast scalar fills the whole matrix: diagonal only when it is zero.
        Prim::BroadcastInDim { dims, .. } if dims.is_empty() => match &g.nodes[node.inputs[0].index()].prim {
            Prim::Constant(s) if node.ty.rank() == 2 && node.ty.shape[0] == node.ty.shape[1] => {
                (s.data.get_f64(0) == 0.0).then(|| vec![0.0; node.ty.shape[0]])
            }
            _ => None,
        },
        _ => None,
    }
}

/// `v` as a diagonal matrix (see the module documentation), if it is one.
fn diagonal(g: &Graph, v: Var) -> Option<Diagonal> {
    let node = &g.nodes[v.index()];
    if node.ty.rank() != 2 || node.ty.shape[0] != node.ty.shape[1] || node.ty.shape[0] < MIN_SIDE {
        return None;
    }
    if let Some(mask) = mask(g, v) {
        return Some(Diagonal { mask, scale: None });
    }
    let Prim::Binary(BinaryOp::Mul) = node.prim else { return None };
    for (m, other) in [(node.inputs[0], node.inputs[1]), (node.inputs[1], node.inputs[0])] {
        let Some(mask) = mask(g, m) else { continue };
        let o = &g.nodes[other.index()];
        if let Prim::BroadcastInDim { .. } = &o.prim {
            // A broadcast to a square matrix from `n` elements has one axis of extent `n` (the
            // others 1) along either axis: on the diagonal, element p is the source's element p
            // either way. From one element: a scalar.
            let src = o.inputs[0];
            match g.ty(src).numel() {
                k if k == node.ty.shape[0] => return Some(Diagonal { mask, scale: Some((src, true)) }),
                1 => return Some(Diagonal { mask, scale: Some((src, false)) }),
                _ => {}
            }
        }
    }
    None
}

/// A product node rewritten: the operand that is not diagonal, the permutation that puts its
/// axes in the product's output order, the diagonal, and where its axis lands.
struct Found {
    a: Var,
    perm: Vec<usize>,
    d: Diagonal,
    /// The output axis along which the diagonal scales.
    axis: usize,
}

/// The rewrite of node `i` of `g`, if it is a product with a diagonal factor.
fn find(g: &Graph, i: usize) -> Option<Found> {
    let node = &g.nodes[i];
    let Prim::DotGeneral { lhs_contract, rhs_contract, lhs_batch, rhs_batch } = &node.prim else { return None };
    if !lhs_batch.is_empty() || !rhs_batch.is_empty() || lhs_contract.len() != 1 || rhs_contract.len() != 1 {
        return None;
    }
    if !matches!(node.ty.dtype, DType::F32 | DType::F64) {
        return None;
    }
    let (l, r) = (node.inputs[0], node.inputs[1]);
    // Diagonal on the right: output = A's free axes, then D's free axis.
    if let Some(d) = diagonal(g, r) {
        let rank = g.ty(l).rank();
        let c = lhs_contract[0];
        let perm: Vec<usize> = (0..rank).filter(|&x| x != c).chain([c]).collect();
        return Some(Found { a: l, perm, d, axis: rank - 1 });
    }
    // Diagonal on the left: output = D's free axis, then B's free axes.
    if let Some(d) = diagonal(g, l) {
        let rank = g.ty(r).rank();
        let c = rhs_contract[0];
        let perm: Vec<usize> = [c].into_iter().chain((0..rank).filter(|&x| x != c)).collect();
        return Some(Found { a: r, perm, d, axis: 0 });
    }
    None
}

/// Applies the rewrite (see the module documentation) wherever it fits, then removes what
/// it left unread. Returns `g` unchanged (not copied) where nothing fits.
pub(super) fn diagonal_products(g: Graph) -> Graph {
    let found: Vec<(usize, Found)> = (0..g.nodes.len()).filter_map(|i| find(&g, i).map(|f| (i, f))).collect();
    if found.is_empty() {
        return g;
    }
    super::passes::rebuild_replacing(g, found, |out, map, node, f| {
        let dtype = node.ty.dtype;
        let shape = node.ty.shape.clone();
        let n = shape[f.axis];
        let a = map[f.a.index()];
        let at = if f.perm.iter().enumerate().all(|(k, &p)| k == p) {
            a
        } else {
            out.push_typed(Prim::Transpose { perm: f.perm }, vec![a], node.ty.clone())
        };
        let ones = f.d.mask.iter().all(|&x| x == 1.0);
        if ones && f.d.scale.is_none() {
            // An identity: the operand itself, its axes in the product's order.
            return at;
        }
        let mask = Array::new(
            vec![n],
            match dtype {
                DType::F32 => Data::F32(f.d.mask.iter().map(|&x| x as f32).collect()),
                _ => Data::F64(f.d.mask.clone()),
            },
        );
        let vty = TensorType::new(dtype, vec![n]);
        let mut d = None;
        if !ones {
            d = Some(out.push_typed(Prim::Constant(Arc::new(mask)), vec![], vty.clone()));
        }
        if let Some((s, vector)) = f.d.scale {
            let s = map[s.index()];
            let rank = out.ty(s).rank();
            let s = if vector {
                if rank == 1 {
                    s
                } else {
                    out.push_typed(Prim::Reshape { shape: vec![n] }, vec![s], vty.clone())
                }
            } else {
                let s = if rank == 0 {
                    s
                } else {
                    out.push_typed(Prim::Reshape { shape: vec![] }, vec![s], TensorType::new(dtype, vec![]))
                };
                out.push_typed(Prim::BroadcastInDim { shape: vec![n], dims: vec![] }, vec![s], vty.clone())
            };
            // The same products as on the diagonal of `v * mask` (a mask of ones: `v`).
            d = Some(match d {
                Some(m) => out.push_typed(Prim::Binary(BinaryOp::Mul), vec![s, m], vty),
                None => s,
            });
        }
        let d = d.expect("a mask that is not all ones, or a scale");
        let db = out.push_typed(Prim::BroadcastInDim { shape, dims: vec![f.axis] }, vec![d], node.ty.clone());
        out.push_typed(Prim::Binary(BinaryOp::Mul), vec![at, db], node.ty)
    })
}
