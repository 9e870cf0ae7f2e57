//! Transposes of element-wise results: compute the transposed result directly.
//!
//! `transpose(e(a, b, ..))` for an element-wise tree `e` (unary and binary operations,
//! selects and paddings) whose every node is read only inside the tree equals the same tree
//! over transposed leaves, `e(aᵀ, bᵀ, ..)`. Where every leaf is cheap to transpose — a
//! constant (transposed now, at compile time), a broadcast (the same source broadcast along
//! the permuted axes) or a transpose that the permutation undoes — the rewrite removes the
//! transpose kernel and its pass over memory: the fused loop of the tree writes the result in
//! its final layout. `hessian`'s `jacfwd(jacrev(f))` ends in such a transpose (the batch axis
//! of the forward-mode `vmap` comes first; the result wants it last): w6-hessian's
//! 200×200 fused loop and its 200×200 transpose become one fused loop.
//!
//! Leaves that are other computed matrices are not transposed into the loop (a strided read
//! of a large matrix per element can cost more than the blocked transpose kernel), so a tree
//! with one is left as it is. The rewrite is exact: the same operations on the same values.

use crate::ir::{Graph, Var};
use crate::ops::Prim;
use crate::TensorType;
use std::collections::HashMap;
use std::sync::Arc;

/// Trees of more interior nodes than this are left alone (bounds the pass's work on large
/// graphs with many transposes to a constant per transpose).
const MAX_TREE: usize = 1024;

/// Element-wise nodes the rewrite carries the transpose through.
fn interior(p: &Prim) -> bool {
    matches!(p, Prim::Unary(_) | Prim::Binary(_) | Prim::Select | Prim::Pad { .. })
}

/// `shape` with its axes permuted: axis `k` of the result is axis `perm[k]`.
fn permuted<T: Clone>(v: &[T], perm: &[usize]) -> Vec<T> {
    perm.iter().map(|&p| v[p].clone()).collect()
}

/// `transpose(broadcast_in_dim(x, dims), perm)` as `broadcast_in_dim(transpose(x, p), d)`:
/// `(p, d)`, with `d` strictly increasing (`p` the identity where no transpose of `x` is needed).
fn broadcast_dims(dims: &[usize], perm: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let mut inv = vec![0; perm.len()];
    for (k, &p) in perm.iter().enumerate() {
        inv[p] = k;
    }
    let mut p: Vec<usize> = (0..dims.len()).collect();
    p.sort_by_key(|&j| inv[dims[j]]);
    let d = p.iter().map(|&j| inv[dims[j]]).collect();
    (p, d)
}

/// Sources of broadcasts up to this many elements are transposed into the loop (a view read
/// from cache) when the permutation reorders their axes.
const SMALL_SOURCE: usize = 1 << 14;

/// Whether `v` can be a leaf of a rewritten tree under `perm` (see the module documentation).
fn cheap_leaf(g: &Graph, v: Var, perm: &[usize]) -> bool {
    let node = &g.nodes[v.index()];
    match &node.prim {
        Prim::Constant(_) => true,
        Prim::BroadcastInDim { dims, .. } => {
            let (p, _) = broadcast_dims(dims, perm);
            p.iter().enumerate().all(|(k, &j)| k == j) || g.ty(node.inputs[0]).numel() <= SMALL_SOURCE
        }
        Prim::Transpose { perm: inner } => perm.iter().map(|&p| inner[p]).enumerate().all(|(k, p)| k == p),
        _ => false,
    }
}

/// The transposes at node positions whose element-wise operand tree can be rewritten, with
/// their permutations.
fn find(g: &Graph) -> Vec<(usize, Vec<usize>)> {
    let mut users = vec![0u32; g.nodes.len()];
    for node in &g.nodes {
        for v in &node.inputs {
            users[v.index()] += 1;
        }
    }
    for v in &g.outputs {
        // A graph output is read outside every tree.
        users[v.index()] += u32::MAX / 2;
    }
    let mut found = Vec::new();
    for (i, node) in g.nodes.iter().enumerate() {
        let Prim::Transpose { perm } = &node.prim else { continue };
        let root = node.inputs[0];
        if !interior(&g.nodes[root.index()].prim) {
            continue;
        }
        // The interior nodes of the tree and how often the tree reads each.
        let mut reads: HashMap<usize, u32> = HashMap::new();
        let mut stack = vec![root];
        let mut ok = true;
        reads.insert(root.index(), 1);
        while let Some(v) = stack.pop() {
            let n = &g.nodes[v.index()];
            let operands = if let Prim::Pad { .. } = n.prim { &n.inputs[..1] } else { &n.inputs[..] };
            for &x in operands {
                if interior(&g.nodes[x.index()].prim) {
                    let r = reads.entry(x.index()).or_insert(0);
                    *r += 1;
                    if *r == 1 {
                        stack.push(x);
                    }
                    if reads.len() > MAX_TREE {
                        ok = false;
                    }
                } else if !cheap_leaf(g, x, perm) {
                    ok = false;
                }
            }
            if !ok {
                break;
            }
        }
        // Every interior node is read only by the tree (the root only by the transpose).
        if ok && reads.iter().all(|(&n, &r)| users[n] == r) {
            found.push((i, perm.clone()));
        }
    }
    found
}

/// Applies the rewrite (see the module documentation) to every transpose it fits, then
/// removes what it left unread. Returns `g` unchanged (not copied) where nothing fits.
pub(super) fn sink_transposes(g: Graph) -> Graph {
    let found = find(&g);
    if found.is_empty() {
        return g;
    }
    // The old graph's nodes, read while the new graph is built.
    let old = g.clone();
    super::passes::rebuild_replacing(g, found, |out, map, node, perm| {
        let mut done: HashMap<usize, Var> = HashMap::new();
        sink(&old, out, map, node.inputs[0], &perm, &mut done)
    })
}

/// `transpose(v, perm)` pushed into the new graph `out` (`map`: new variables of old ones).
fn sink(old: &Graph, out: &mut Graph, map: &[Var], v: Var, perm: &[usize], done: &mut HashMap<usize, Var>) -> Var {
    if let Some(&w) = done.get(&v.index()) {
        return w;
    }
    let node = &old.nodes[v.index()];
    let ty = TensorType::new(node.ty.dtype, permuted(&node.ty.shape, perm));
    let w = match &node.prim {
        Prim::Constant(a) => {
            let t = crate::backend::cpu::kernel(&Prim::Transpose { perm: perm.to_vec() }, &[a.as_ref()], &ty);
            out.push_typed(Prim::Constant(Arc::new(t)), vec![], ty)
        }
        Prim::BroadcastInDim { dims, .. } => {
            let (p, dims) = broadcast_dims(dims, perm);
            let mut x = map[node.inputs[0].index()];
            if p.iter().enumerate().any(|(k, &j)| k != j) {
                // A small source (checked by cheap_leaf), its axes put in the new order.
                let sty = out.ty(x).clone();
                let xty = TensorType::new(sty.dtype, permuted(&sty.shape, &p));
                // Only axes of extent 1 move: the same elements in the same order, reshaped.
                let moves_data = {
                    let big: Vec<usize> = p.iter().copied().filter(|&j| sty.shape[j] != 1).collect();
                    big.windows(2).any(|w| w[0] > w[1])
                };
                x = if moves_data {
                    out.push_typed(Prim::Transpose { perm: p }, vec![x], xty)
                } else {
                    out.push_typed(Prim::Reshape { shape: xty.shape.clone() }, vec![x], xty)
                };
            }
            out.push_typed(Prim::BroadcastInDim { shape: ty.shape.clone(), dims }, vec![x], ty)
        }
        // The permutation undoes this transpose (checked by cheap_leaf).
        Prim::Transpose { .. } => map[node.inputs[0].index()],
        Prim::Pad { low, high, interior } => {
            let x = sink(old, out, map, node.inputs[0], perm, done);
            let prim =
                Prim::Pad { low: permuted(low, perm), high: permuted(high, perm), interior: permuted(interior, perm) };
            out.push_typed(prim, vec![x, map[node.inputs[1].index()]], ty)
        }
        prim => {
            let ins: Vec<Var> = node.inputs.iter().map(|&x| sink(old, out, map, x, perm, done)).collect();
            out.push_typed(prim.clone(), ins, ty)
        }
    };
    done.insert(v.index(), w);
    w
}

/// The transposed value of a constant, for the tests.
#[cfg(test)]
fn transposed(a: &crate::array::Array, perm: &[usize]) -> crate::array::Array {
    let ty = TensorType::new(a.dtype(), permuted(&a.shape, perm));
    crate::backend::cpu::kernel(&Prim::Transpose { perm: perm.to_vec() }, &[a], &ty)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::array::Array;

    #[test]
    fn broadcast_dims_follow_the_permutation() {
        assert_eq!(broadcast_dims(&[1], &[1, 0]), (vec![0], vec![0]));
        assert_eq!(broadcast_dims(&[], &[1, 0]), (vec![], vec![]));
        assert_eq!(broadcast_dims(&[0, 1], &[1, 0]), (vec![1, 0], vec![0, 1]));
        assert_eq!(broadcast_dims(&[0, 2], &[2, 0, 1]), (vec![1, 0], vec![0, 1]));
        assert_eq!(broadcast_dims(&[0, 1], &[0, 2, 1]), (vec![0, 1], vec![0, 2]));
    }

    #[test]
    fn constants_are_transposed_at_compile_time() {
        let a = Array::new(vec![2, 3], crate::array::Data::F64(vec![1., 2., 3., 4., 5., 6.]));
        let t = transposed(&a, &[1, 0]);
        assert_eq!(t.shape, vec![3, 2]);
        assert_eq!((0..6).map(|i| t.data.get_f64(i)).collect::<Vec<_>>(), vec![1., 4., 2., 5., 3., 6.]);
    }
}
