//! Forward mode: push tangents through a graph with each primitive's jvp rule.

use super::{trace_tree, types_of};
use crate::ir::Graph;
use crate::ops::{rules, Prim};
use crate::trace::bind;
use crate::{Tensor, Tree};

/// Evaluates `g` on `args` and pushes `tangents` (`None` = zero) through it.
/// Returns the outputs and their tangents (`None` where provably zero).
pub(crate) fn jvp_graph(g: &Graph, args: &[Tensor], tangents: &[Option<Tensor>]) -> (Vec<Tensor>, Vec<Option<Tensor>>) {
    let mut val: Vec<Option<Tensor>> = vec![None; g.nodes.len()];
    let mut tan: Vec<Option<Tensor>> = vec![None; g.nodes.len()];
    for (i, node) in g.nodes.iter().enumerate() {
        match &node.prim {
            Prim::Input(k) => {
                val[i] = Some(args[*k].clone());
                tan[i] = tangents[*k].clone();
            }
            Prim::Constant(a) => val[i] = Some(Tensor::from_arc(a.clone())),
            prim => {
                let xs: Vec<&Tensor> = node.inputs.iter().map(|v| val[v.index()].as_ref().expect("value")).collect();
                let ts: Vec<Option<&Tensor>> = node.inputs.iter().map(|v| tan[v.index()].as_ref()).collect();
                let y = bind(prim.clone(), &xs);
                tan[i] = rules::jvp(prim, &xs, &ts, &y);
                val[i] = Some(y);
            }
        }
    }
    let outs = g.outputs.iter().map(|v| val[v.index()].clone().expect("output")).collect();
    let touts = g.outputs.iter().map(|v| tan[v.index()].clone()).collect();
    (outs, touts)
}

/// Checks a tangent against its primal and drops tangents of non-float leaves.
#[track_caller]
pub(crate) fn tangent_for(what: &str, primal: &Tensor, tangent: &Tensor) -> Option<Tensor> {
    if primal.ty() != tangent.ty() {
        panic!("{what}: tangent {} does not match its primal {}", tangent.ty(), primal.ty());
    }
    primal.dtype().is_float().then(|| tangent.clone())
}

/// Forward-mode derivative: `f(primals)` and its directional derivative along `tangents`.
///
/// ```
/// use cotangent::{jvp, Tensor};
/// let (y, dy) = jvp(|x: &Tensor| x.sin(), &Tensor::scalar(3.0), &Tensor::scalar(1.0));
/// assert!((y.item::<f64>() - 3f64.sin()).abs() < 1e-15);
/// assert!((dy.item::<f64>() - 3f64.cos()).abs() < 1e-15);
/// ```
#[track_caller]
pub fn jvp<A: Tree, B: Tree>(f: impl Fn(&A) -> B, primals: &A, tangents: &A) -> (B, B) {
    let (p, t) = (primals.leaves(), tangents.leaves());
    if p.len() != t.len() {
        panic!("jvp: primals have {} leaves but tangents have {}", p.len(), t.len());
    }
    let (traced, template) = trace_tree(f, primals, &types_of(&p));
    let mut args = p.clone();
    args.extend(traced.captures.iter().cloned());
    let mut tans: Vec<Option<Tensor>> = p.iter().zip(&t).map(|(p, t)| tangent_for("jvp", p, t)).collect();
    tans.resize(args.len(), None);
    let (outs, touts) = jvp_graph(&traced.graph, &args, &tans);
    let touts: Vec<Tensor> = touts.into_iter().zip(&outs).map(|(t, y)| t.unwrap_or_else(|| y.zeros_like())).collect();
    (template.rebuild_from(outs), template.rebuild_from(touts))
}
