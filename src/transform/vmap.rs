//! Vectorising map: run a per-example function on a batch with each primitive's batching rule.

use super::trace_tree;
use crate::ir::Graph;
use crate::ops::{rules, Prim};
use crate::trace::bind;
use crate::{Tensor, Tree};

/// Evaluates `g` on arguments of which those marked `batched` carry a leading batch axis
/// of extent `size`. Returns each output and whether it is batched.
pub(crate) fn batch_graph(g: &Graph, args: &[Tensor], batched: &[bool], size: usize) -> Vec<(Tensor, bool)> {
    let mut val: Vec<Option<(Tensor, bool)>> = vec![None; g.nodes.len()];
    for (i, node) in g.nodes.iter().enumerate() {
        val[i] = Some(match &node.prim {
            Prim::Input(k) => (args[*k].clone(), batched[*k]),
            Prim::Constant(a) => (Tensor::from_arc(a.clone()), false),
            prim => {
                let ins: Vec<&(Tensor, bool)> =
                    node.inputs.iter().map(|v| val[v.index()].as_ref().expect("value")).collect();
                if ins.iter().any(|(_, b)| *b) {
                    let xs: Vec<Tensor> = ins.iter().map(|(t, _)| t.clone()).collect();
                    let bs: Vec<bool> = ins.iter().map(|(_, b)| *b).collect();
                    (rules::batch(prim, &xs, &bs, size), true)
                } else {
                    let xs: Vec<&Tensor> = ins.iter().map(|(t, _)| t).collect();
                    (bind(prim.clone(), &xs), false)
                }
            }
        });
    }
    g.outputs.iter().map(|v| val[v.index()].clone().expect("output")).collect()
}

/// Maps `f` over axis 0 of every leaf of its argument, stacking outputs along axis 0.
///
/// ```
/// use cotangent::{grad, vmap, Tensor};
/// // Per-example gradients of a loss.
/// let w = Tensor::from_vec(vec![1.0, -1.0], &[2]);
/// let per_example = vmap(grad(|x: &Tensor| (x * &w).sum_all().tanh()));
/// let xs = Tensor::from_vec(vec![0.0, 0.0, 1.0, 0.0], &[2, 2]);
/// assert_eq!(per_example(&xs).shape(), vec![2, 2]);
/// ```
pub fn vmap<A: Tree, B: Tree>(f: impl Fn(&A) -> B) -> impl Fn(&A) -> B {
    super::jit(move |x: &A| {
        let n = x.leaves().len();
        vmap_flat(&f, x, &vec![Some(0); n], 0)
    })
}

/// [`vmap`] with an input axis per leaf of the argument (`None`: not mapped, passed whole
/// to every example) and one output axis for every output leaf (negative counts from the end).
///
/// ```
/// use cotangent::{vmap_axes, Tensor};
/// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
/// let y = Tensor::from_vec(vec![10.0, 20.0], &[2]);
/// // Map over the columns of x; y is shared.
/// let f = vmap_axes(|(x, y): &(Tensor, Tensor)| x * y, vec![Some(1), None], -1);
/// assert_eq!(f(&(x, y)).to_vec::<f64>(), vec![10.0, 20.0, 30.0, 80.0, 100.0, 120.0]);
/// ```
pub fn vmap_axes<A: Tree, B: Tree>(
    f: impl Fn(&A) -> B,
    in_axes: Vec<Option<isize>>,
    out_axis: isize,
) -> impl Fn(&A) -> B {
    super::jit(move |x: &A| vmap_flat(&f, x, &in_axes, out_axis))
}

#[track_caller]
fn vmap_flat<A: Tree, B: Tree>(f: impl Fn(&A) -> B, x: &A, in_axes: &[Option<isize>], out_axis: isize) -> B {
    let leaves = x.leaves();
    if in_axes.len() != leaves.len() {
        panic!("vmap: {} in_axes given for an argument with {} leaves", in_axes.len(), leaves.len());
    }
    let mut size: Option<usize> = None;
    let mut moved = Vec::with_capacity(leaves.len());
    for (t, axis) in leaves.iter().zip(in_axes) {
        match axis {
            None => moved.push(t.clone()),
            Some(a) => {
                let a = crate::shape::normalize_axis(*a, t.rank())
                    .unwrap_or_else(|e| panic!("vmap: in_axes {a} for a leaf {}: {e}", t.ty()));
                let n = t.shape()[a];
                if let Some(s) = size {
                    if s != n {
                        panic!("vmap: mapped axes have different sizes: {s} and {n} (leaf {})", t.ty());
                    }
                }
                size = Some(n);
                moved.push(t.moveaxis(a as isize, 0));
            }
        }
    }
    let size = size.unwrap_or_else(|| panic!("vmap: no argument leaf is mapped (every in_axes is None)"));
    let batched: Vec<bool> = in_axes.iter().map(|a| a.is_some()).collect();
    let per_example: Vec<_> = moved
        .iter()
        .zip(&batched)
        .map(|(t, &b)| {
            let mut ty = t.ty();
            if b {
                ty.shape.remove(0);
            }
            ty
        })
        .collect();
    let (traced, template) = trace_tree(f, x, &per_example);
    let mut args = moved;
    args.extend(traced.captures.iter().cloned());
    let mut flags = batched;
    flags.resize(args.len(), false);
    let outs = batch_graph(&traced.graph, &args, &flags, size)
        .into_iter()
        .map(|(t, b)| {
            let t = if b { t } else { rules::with_batch_axis(&t, size) };
            t.moveaxis(0, out_axis)
        })
        .collect();
    template.rebuild_from(outs)
}
