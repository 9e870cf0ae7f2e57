//! Forward mode: push tangents through a graph with each primitive's jvp rule.

use super::site::{leaf_name, Site};
use super::{trace_tree_as, types_of};
use crate::ir::Graph;
use crate::ops::{rules, Prim};
use crate::trace::{bind, Tuples};
use crate::{Tensor, Tree, TreeLike};

/// Evaluates `g` on `args` and pushes `tangents` (`None` = zero) through it.
/// Returns the outputs and their tangents (`None` where provably zero).
pub(crate) fn jvp_graph(g: &Graph, args: &[Tensor], tangents: &[Option<Tensor>]) -> (Vec<Tensor>, Vec<Option<Tensor>>) {
    jvp_graph_saving(g, args, tangents, &[], &[])
}

/// [`jvp_graph`] where the values of the (single-result) nodes `saved` are given
/// (`saved_values`, as a checkpoint's policy kept them) instead of recomputed; their tangents
/// still come from their jvp rules on the recomputed operands.
pub(crate) fn jvp_graph_saving(
    g: &Graph,
    args: &[Tensor],
    tangents: &[Option<Tensor>],
    saved: &[usize],
    saved_values: &[Tensor],
) -> (Vec<Tensor>, Vec<Option<Tensor>>) {
    let mut val: Vec<Option<Tensor>> = vec![None; g.nodes.len()];
    let mut tan: Vec<Option<Tensor>> = vec![None; g.nodes.len()];
    let (mut tuple_val, mut tuple_tan) = (Tuples::default(), Tuples::default());
    // The operands' values and tangents of the node at hand, in lists kept across nodes.
    let (mut xs_kept, mut ts_kept): (Vec<&'static Tensor>, Vec<Option<&'static Tensor>>) = (vec![], vec![]);
    for (i, node) in g.nodes.iter().enumerate() {
        match &node.prim {
            Prim::Input(k) => {
                val[i] = Some(args[*k].clone());
                tan[i] = tangents[*k].clone();
            }
            Prim::Proj(k) => {
                val[i] = tuple_val.get(node.inputs[0].index(), *k);
                tan[i] = tuple_tan.get(node.inputs[0].index(), *k);
            }
            prim if prim.is_tuple() => {
                let xs: Vec<&Tensor> = node.inputs.iter().map(|v| val[v.index()].as_ref().expect("value")).collect();
                let ts: Vec<Option<&Tensor>> = node.inputs.iter().map(|v| tan[v.index()].as_ref()).collect();
                let (ys, dys) = rules::jvp_multi(prim, &xs, &ts);
                tuple_val.set(i, ys);
                tuple_tan.set_opt(i, dys);
            }
            Prim::Constant(a) => val[i] = Some(Tensor::from_arc(a.clone())),
            prim => {
                let (mut xs, mut ts): (Vec<&Tensor>, Vec<Option<&Tensor>>) =
                    (super::recycle(std::mem::take(&mut xs_kept)), super::recycle(std::mem::take(&mut ts_kept)));
                xs.extend(node.inputs.iter().map(|v| val[v.index()].as_ref().expect("value")));
                ts.extend(node.inputs.iter().map(|v| tan[v.index()].as_ref()));
                let y = match saved.iter().position(|&s| s == i) {
                    Some(j) => saved_values[j].clone(),
                    None => bind(prim.clone(), &xs),
                };
                let t = rules::jvp(prim, &xs, &ts, &y);
                (xs_kept, ts_kept) = (super::recycle(xs), super::recycle(ts));
                tan[i] = t;
                val[i] = Some(y);
            }
        }
    }
    let outs = g.outputs.iter().map(|v| val[v.index()].clone().expect("output")).collect();
    let touts = g.outputs.iter().map(|v| tan[v.index()].clone()).collect();
    (outs, touts)
}

/// Forward-mode derivative: `f(primals)` and its directional derivative along `tangents`.
///
/// `tangents` has the tree structure of `primals` and the same type leaf for leaf. Integer
/// and bool leaves have no derivative: their tangents are ignored (JAX asks for `float0`
/// tangents there), so outputs that depend only on them get zero tangents.
///
/// Mismatched tangents panic at the caller's line.
///
/// ```
/// use cotangent::{jvp, Tensor};
/// let (y, dy) = jvp(|x: &Tensor| x.sin(), &Tensor::scalar(3.0), &Tensor::scalar(1.0));
/// assert!((y.item::<f64>() - 3f64.sin()).abs() < 1e-15);
/// assert!((dy.item::<f64>() - 3f64.cos()).abs() < 1e-15);
/// ```
#[track_caller]
pub fn jvp<A: Tree, B: Tree>(f: impl Fn(&A) -> B, primals: &A, tangents: impl TreeLike<A>) -> (B, B) {
    let site = Site::here("jvp");
    let t = tangents.into_leaves_like(primals);
    let n = primals.leaves().len();
    if t.len() != n {
        site.fail(format_args!("primals have {n} leaves but tangents have {}", t.len()));
    }
    jvp_at(site, f, primals, &primals.rebuild_from(t))
}

/// [`jvp`] for the transformation at `site` (the one errors name).
#[track_caller]
pub(crate) fn jvp_at<A: Tree, B: Tree>(site: Site, f: impl Fn(&A) -> B, primals: &A, tangents: &A) -> (B, B) {
    let (p, t) = (primals.leaves(), tangents.leaves());
    if p.len() != t.len() {
        site.fail(format_args!("primals have {} leaves but tangents have {}", p.len(), t.len()));
    }
    // A plain loop, not a closure, so that a mismatch panics at the caller's line.
    let mut tans: Vec<Option<Tensor>> = Vec::with_capacity(p.len());
    for (i, (p, t)) in p.iter().zip(&t).enumerate() {
        if p.ty() != t.ty() {
            let path = primals.named_leaves().swap_remove(i).0;
            site.fail(format_args!(
                "tangent {} for {} does not match its primal {}",
                t.ty(),
                leaf_name(&path, i),
                p.ty()
            ));
        }
        tans.push(p.dtype().is_float().then(|| t.clone()));
    }
    let (traced, template) = trace_tree_as(site.name, f, primals, &types_of(&p));
    let mut args = p.clone();
    args.extend(traced.captures.iter().cloned());
    tans.resize(args.len(), None);
    let (outs, touts) = jvp_graph(&traced.graph, &args, &tans);
    let touts: Vec<Tensor> = touts.into_iter().zip(&outs).map(|(t, y)| t.unwrap_or_else(|| y.zeros_like())).collect();
    (template.rebuild_from(outs), template.rebuild_from(touts))
}
