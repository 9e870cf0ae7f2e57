//! Vectorising map: run a per-example function on a batch with each primitive's batching rule.

use super::site::{leaf_name, Site};
use super::trace_tree_as;
use crate::ir::Graph;
use crate::ops::{rules, Prim};
use crate::trace::{bind, Tuples};
use crate::{Tensor, Tree};

/// Evaluates `g` on arguments of which those marked `batched` carry a leading batch axis
/// of extent `size`. Returns each output and whether it is batched.
pub(crate) fn batch_graph(g: &Graph, args: &[Tensor], batched: &[bool], size: usize) -> Vec<(Tensor, bool)> {
    let mut val: Vec<Option<(Tensor, bool)>> = vec![None; g.nodes.len()];
    // Tuple nodes' results, and whether they are batched.
    let mut tuples = Tuples::default();
    let mut tuple_batched: Vec<bool> = vec![false; g.nodes.len()];
    for (i, node) in g.nodes.iter().enumerate() {
        val[i] = Some(match &node.prim {
            Prim::Input(k) => (args[*k].clone(), batched[*k]),
            Prim::Proj(k) => {
                let t = node.inputs[0].index();
                (tuples.get(t, *k).expect("tuple element"), tuple_batched[t])
            }
            prim if prim.is_tuple() => {
                let ins: Vec<&(Tensor, bool)> =
                    node.inputs.iter().map(|v| val[v.index()].as_ref().expect("value")).collect();
                let xs: Vec<Tensor> = ins.iter().map(|(t, _)| t.clone()).collect();
                if ins.iter().any(|(_, b)| *b) {
                    let bs: Vec<bool> = ins.iter().map(|(_, b)| *b).collect();
                    tuples.set(i, rules::batch_multi(prim, &xs, &bs, size));
                    tuple_batched[i] = true;
                } else {
                    let refs: Vec<&Tensor> = xs.iter().collect();
                    tuples.set(i, crate::trace::bind_multi(prim.clone(), &refs));
                }
                continue;
            }
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
/// A leaf without an axis 0 (a 0-d tensor), or mapped axes of different sizes, panic with
/// a message naming `vmap`, the line that called it and the leaves involved.
///
/// ```
/// use cotangent::{grad, vmap, Tensor};
/// // Per-example gradients of a loss.
/// let w = Tensor::from_vec(vec![1.0, -1.0], &[2]);
/// let per_example = vmap(grad(|x: &Tensor| (x * &w).sum_all().tanh()));
/// let xs = Tensor::from_vec(vec![0.0, 0.0, 1.0, 0.0], &[2, 2]);
/// assert_eq!(per_example(&xs).shape(), vec![2, 2]);
/// ```
#[track_caller]
pub fn vmap<A: Tree, B: Tree>(f: impl Fn(&A) -> B) -> impl Fn(&A) -> B {
    vmap_at(Site::here("vmap"), f)
}

/// [`vmap`] for the transformation at `site` (the one errors name).
pub(crate) fn vmap_at<A: Tree, B: Tree>(site: Site, f: impl Fn(&A) -> B) -> impl Fn(&A) -> B {
    super::jit(move |x: &A| {
        let n = x.leaves().len();
        vmap_flat(site, &f, x, &vec![Some(0); n], 0)
    })
}

/// [`vmap`] with an input axis per leaf of the argument (`None`: not mapped, passed whole
/// to every example) and one output axis for every output leaf (negative counts from the end).
///
/// Axes out of range (`in_axes` for the argument's leaves, `out_axis` for the outputs with
/// their new batch axis), a number of `in_axes` other than the number of leaves, or no
/// mapped leaf at all panic with a message naming `vmap_axes` and the line that called it.
///
/// ```
/// use cotangent::{vmap_axes, Tensor};
/// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
/// let y = Tensor::from_vec(vec![10.0, 20.0], &[2]);
/// // Map over the columns of x; y is shared.
/// let f = vmap_axes(|(x, y): &(Tensor, Tensor)| x * y, vec![Some(1), None], -1);
/// assert_eq!(f(&(x, y)).to_vec::<f64>(), vec![10.0, 20.0, 30.0, 80.0, 100.0, 120.0]);
/// ```
#[track_caller]
pub fn vmap_axes<A: Tree, B: Tree>(
    f: impl Fn(&A) -> B,
    in_axes: Vec<Option<isize>>,
    out_axis: isize,
) -> impl Fn(&A) -> B {
    let site = Site::here("vmap_axes");
    super::jit(move |x: &A| vmap_flat(site, &f, x, &in_axes, out_axis))
}

/// The leaves of `x` with their mapped axes moved to the front, and the batch size.
fn mapped_leaves<A: Tree>(site: Site, x: &A, in_axes: &[Option<isize>]) -> (Vec<Tensor>, usize) {
    let leaves = x.leaves();
    if in_axes.len() != leaves.len() {
        site.fail(format_args!("{} in_axes given for an argument with {} leaves", in_axes.len(), leaves.len()));
    }
    let name = |i: usize| leaf_name(&x.named_leaves().swap_remove(i).0, i);
    // The batch size, and the first leaf that set it (with its axis).
    let mut size: Option<(usize, usize, usize)> = None;
    let mut moved = Vec::with_capacity(leaves.len());
    for (i, (t, axis)) in leaves.iter().zip(in_axes).enumerate() {
        let Some(a) = *axis else {
            moved.push(t.clone());
            continue;
        };
        let a = crate::shape::normalize_axis(a, t.rank()).unwrap_or_else(|e| {
            site.fail(format_args!("in_axes {a} cannot map {}, which is {}: {e}", name(i), t.ty()))
        });
        let n = t.shape()[a];
        match size {
            Some((s, j, aj)) if s != n => site.fail(format_args!(
                "mapped axes have different sizes: {s} and {n} ({} is {}, mapped along axis {aj}; {} is {}, \
                 mapped along axis {a})",
                name(j),
                leaves[j].ty(),
                name(i),
                t.ty()
            )),
            Some(_) => {}
            None => size = Some((n, i, a)),
        }
        moved.push(t.moveaxis(a as isize, 0));
    }
    let Some((size, _, _)) = size else {
        site.fail(format_args!("no argument leaf is mapped (every in_axes is None)"))
    };
    (moved, size)
}

fn vmap_flat<A: Tree, B: Tree>(
    site: Site,
    f: impl Fn(&A) -> B,
    x: &A,
    in_axes: &[Option<isize>],
    out_axis: isize,
) -> B {
    let (moved, size) = mapped_leaves(site, x, in_axes);
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
    let (traced, template) = trace_tree_as(site.name, f, x, &per_example);
    let mut args = moved;
    args.extend(traced.captures.iter().cloned());
    let mut flags = batched;
    flags.resize(args.len(), false);
    // An unbatched concrete output (one that does not depend on the mapped arguments) is
    // broadcast in the trace of the symbolic arguments, if any, rather than eagerly.
    let symbolic = args.iter().find(|a| a.is_traced()).cloned();
    let outs: Vec<Tensor> = batch_graph(&traced.graph, &args, &flags, size)
        .into_iter()
        .map(|(t, b)| match (b, &symbolic) {
            (true, _) => t,
            (false, Some(s)) if !t.is_traced() => {
                rules::with_batch_axis(&crate::trace::lift_operands(&[s, &t]).swap_remove(1), size)
            }
            (false, _) => rules::with_batch_axis(&t, size),
        })
        .collect();
    let mut placed = Vec::with_capacity(outs.len());
    for (i, t) in outs.into_iter().enumerate() {
        // The output axis counts in the batched output, so it may equal the example's rank.
        if let Err(e) = crate::shape::normalize_axis(out_axis, t.rank()) {
            let path = template.named_leaves().swap_remove(i).0;
            let leaf = leaf_name(&path, i).replace("the argument", "the output");
            let mut example = t.ty();
            example.shape.remove(0);
            site.fail(format_args!(
                "out_axes {out_axis} cannot place the batch axis of {leaf}, which is {example} for each \
                 example ({} batched): {e}",
                t.ty()
            ));
        }
        placed.push(t.moveaxis(0, out_axis));
    }
    template.rebuild_from(placed)
}
