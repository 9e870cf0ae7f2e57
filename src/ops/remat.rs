//! Rematerialisation: `checkpoint` (the public API is in [`crate::control`]).
//!
//! [`Prim::Checkpoint`] evaluates its body. Its rules:
//!
//! - **jvp**: the primal runs inline, returning also the intermediate values the
//!   [`Policy`] lets it save; the tangents come from a *separate* `checkpoint` node whose
//!   operands are only the body's operands, those saved values and the tangents, and whose
//!   body recomputes every other primal value it needs. Under `linearize`, that node's
//!   primal operands are the only residuals.
//! - **transpose** (of a body linear in some operands) is a `checkpoint` of the transposed
//!   body, which recomputes its forward values inside its own sub-graph: sub-graphs are
//!   never inlined into the enclosing graph, so under `jit` common-subexpression elimination
//!   cannot merge the recomputation with the original forward pass (which would keep every
//!   intermediate alive again).
//! - **batching**: a `checkpoint` of the batched body.

use super::rules::LinArg;
use super::Prim;
use crate::compile::dce;
use crate::ir::{Graph, SubGraph, Var};
use crate::trace::{bind_multi, eval_graph};
use crate::transform::subgraph::{batch_subgraph, trace_closed, transpose_subgraph};
use crate::{Tensor, TensorType};
use std::fmt;
use std::sync::Arc;

/// Which intermediate values of a [`checkpoint`](crate::control::checkpoint)ed function
/// differentiation may keep for the backward pass; everything else is recomputed.
///
/// The operands of the checkpointed function are always kept.
///
/// ```
/// use cotangent::{control::Policy, ops::Prim};
/// let big_dots = Policy::save_if(|p: &Prim| p.name() == "dot_general");
/// assert_eq!(Policy::DotsSaveable.to_string(), "dots_saveable");
/// assert_eq!(big_dots.to_string(), "save_if");
/// ```
#[derive(Clone)]
pub enum Policy {
    /// Keep nothing but the operands: recompute every intermediate (JAX's `nothing_saveable`,
    /// the default of [`checkpoint`](crate::control::checkpoint)).
    NothingSaveable,
    /// Keep the results of contractions (`dot_general`: matrix products, convolutions), recompute
    /// the cheap element-wise work between them (JAX's `dots_saveable`).
    DotsSaveable,
    /// Keep everything (the same residuals as without checkpointing).
    EverythingSaveable,
    /// Keep the results of the primitives for which the predicate is true.
    SaveIf(SavePredicate),
}

/// The predicate of [`Policy::SaveIf`] (shared; equal only to itself).
#[derive(Clone)]
pub struct SavePredicate(Arc<dyn Fn(&Prim) -> bool + Send + Sync>);

// The predicate only classifies nodes while a rule builds a new graph: a panic inside it
// leaves no value half-updated, so graphs and primitives carrying it stay unwind-safe (as
// they were before policies existed; `Plan`s and graphs cross `catch_unwind` in tests).
impl std::panic::UnwindSafe for SavePredicate {}
impl std::panic::RefUnwindSafe for SavePredicate {}

impl Policy {
    /// A policy from a predicate on primitives.
    ///
    /// ```
    /// use cotangent::{control::Policy, ops::Prim};
    /// let p = Policy::save_if(|p: &Prim| matches!(p, Prim::DotGeneral { .. }));
    /// assert!(matches!(p, Policy::SaveIf(_)));
    /// ```
    pub fn save_if(pred: impl Fn(&Prim) -> bool + Send + Sync + 'static) -> Policy {
        Policy::SaveIf(SavePredicate(Arc::new(pred)))
    }

    /// Whether the result of `prim` may be saved.
    ///
    /// ```
    /// use cotangent::{control::Policy, ops::{Prim, UnaryOp}};
    /// assert!(!Policy::DotsSaveable.saves(&Prim::Unary(UnaryOp::Exp)));
    /// assert!(Policy::EverythingSaveable.saves(&Prim::Unary(UnaryOp::Exp)));
    /// ```
    pub fn saves(&self, prim: &Prim) -> bool {
        match self {
            Policy::NothingSaveable => false,
            Policy::DotsSaveable => matches!(prim, Prim::DotGeneral { .. }),
            Policy::EverythingSaveable => true,
            Policy::SaveIf(p) => (p.0)(prim),
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Policy::NothingSaveable => "nothing_saveable",
            Policy::DotsSaveable => "dots_saveable",
            Policy::EverythingSaveable => "everything_saveable",
            Policy::SaveIf(_) => "save_if",
        })
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl PartialEq for Policy {
    fn eq(&self, other: &Policy) -> bool {
        match (self, other) {
            (Policy::SaveIf(a), Policy::SaveIf(b)) => Arc::ptr_eq(&a.0, &b.0),
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}

/// The results of `checkpoint`: its body's outputs, after checking the operands.
pub(crate) fn checkpoint_types(body: &SubGraph, inputs: &[&TensorType]) -> Result<Vec<TensorType>, String> {
    let want = body.input_types();
    let got: Vec<TensorType> = inputs.iter().map(|&t| t.clone()).collect();
    if got != want {
        let show = |t: &[TensorType]| t.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        return Err(format!("the body takes ({}) but the operands are ({})", show(&want), show(&got)));
    }
    Ok(body.output_types())
}

/// The nodes of `body` whose values the policy saves.
fn saved_nodes(body: &Graph, policy: &Policy) -> Vec<usize> {
    body.nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| {
            !matches!(n.prim, Prim::Input(_) | Prim::Constant(_) | Prim::Proj(_))
                && !n.prim.is_tuple()
                && policy.saves(&n.prim)
        })
        .map(|(i, _)| i)
        .collect()
}

/// `g` without dead nodes and without the inputs nothing reads; returns which inputs stay.
fn prune(g: &Graph) -> (Graph, Vec<bool>) {
    let g = dce(g);
    let uses = g.use_counts();
    let keep: Vec<bool> = g.inputs.iter().map(|v| uses[v.index()] > 0).collect();
    let mut out = Graph::default();
    let mut map = vec![Var(u32::MAX); g.nodes.len()];
    for (i, node) in g.nodes.iter().enumerate() {
        match node.prim {
            Prim::Input(k) if keep[k] => map[i] = out.add_input(node.ty.clone()),
            Prim::Input(_) => {}
            _ => {
                let ins = node.inputs.iter().map(|v| map[v.index()]).collect();
                map[i] = out.push_typed(node.prim.clone(), ins, node.ty.clone());
            }
        }
    }
    out.outputs = g.outputs.iter().map(|v| map[v.index()]).collect();
    (out, keep)
}

/// Primal results and tangents of `checkpoint`.
pub(crate) fn checkpoint_jvp(
    body: &SubGraph,
    policy: &Policy,
    x: &[&Tensor],
    t: &[Option<&Tensor>],
) -> (Vec<Tensor>, Vec<Option<Tensor>>) {
    let args: Vec<Tensor> = x.iter().map(|&a| a.clone()).collect();
    let saved = saved_nodes(body, policy);
    // The primal, inline, with the values to save as extra outputs.
    let mut with_saved = (**body).clone();
    with_saved.outputs.extend(saved.iter().map(|&i| Var(i as u32)));
    let mut outs = eval_graph(&with_saved, &args);
    let saved_values = outs.split_off(body.outputs.len());
    // The tangents: (operands, saved values, tangents) -> non-zero output tangents.
    let with_tangent: Vec<bool> = t.iter().map(Option::is_some).collect();
    let mut types = body.input_types();
    types.extend(saved_values.iter().map(Tensor::ty));
    types.extend(t.iter().flatten().map(|t| t.ty()));
    let mut nonzero = Vec::new();
    let tangent_graph = trace_closed("checkpoint", &types, |ins| {
        let (a, rest) = ins.split_at(args.len());
        let (s, tans) = rest.split_at(saved.len());
        let mut it = tans.iter();
        let tangents: Vec<Option<Tensor>> =
            with_tangent.iter().map(|&w| if w { it.next().cloned() } else { None }).collect();
        let touts = crate::transform::jvp_graph_saving(body, a, &tangents, &saved, s).1;
        nonzero = touts.iter().map(Option::is_some).collect();
        touts.into_iter().flatten().collect()
    });
    if !nonzero.iter().any(|&z| z) {
        return (outs, vec![None; nonzero.len()]);
    }
    let (tangent_graph, keep) = prune(&tangent_graph);
    let all: Vec<Tensor> =
        args.iter().chain(&saved_values).cloned().chain(t.iter().flatten().map(|&t| t.clone())).collect();
    let operands: Vec<&Tensor> = all.iter().zip(&keep).filter(|(_, &k)| k).map(|(a, _)| a).collect();
    let p = Prim::Checkpoint { body: SubGraph::new(tangent_graph), policy: policy.clone() };
    let mut touts = bind_multi(p, &operands).into_iter();
    (outs, nonzero.iter().map(|&z| if z { touts.next() } else { None }).collect())
}

/// Cotangents of the linear operands of a `checkpoint` (its body linear in them): a
/// `checkpoint` of the transposed body, which recomputes what it needs.
pub(crate) fn checkpoint_transpose(
    body: &SubGraph,
    policy: &Policy,
    cts: &[Option<Tensor>],
    args: &[LinArg],
) -> Vec<Option<Tensor>> {
    let linear: Vec<bool> = args.iter().map(LinArg::is_linear).collect();
    let ct_mask: Vec<bool> = cts.iter().map(Option::is_some).collect();
    if !ct_mask.iter().any(|&m| m) {
        return vec![None; args.len()];
    }
    let (transposed, keep) = prune(&transpose_subgraph(body, &linear, &ct_mask));
    let all: Vec<Tensor> = args
        .iter()
        .filter(|a| !a.is_linear())
        .map(|a| a.value("a checkpoint residual").clone())
        .chain(cts.iter().flatten().cloned())
        .collect();
    let operands: Vec<&Tensor> = all.iter().zip(&keep).filter(|(_, &k)| k).map(|(a, _)| a).collect();
    let p = Prim::Checkpoint { body: SubGraph::new(transposed), policy: policy.clone() };
    let mut in_cts = bind_multi(p, &operands).into_iter();
    linear.iter().map(|&l| if l { in_cts.next() } else { None }).collect()
}

/// `checkpoint` of the batched body.
pub(crate) fn checkpoint_batch(
    body: &SubGraph,
    policy: &Policy,
    args: &[Tensor],
    batched: &[bool],
    size: usize,
) -> Vec<Tensor> {
    let b = SubGraph::new(batch_subgraph(body, batched, size));
    let refs: Vec<&Tensor> = args.iter().collect();
    bind_multi(Prim::Checkpoint { body: b, policy: policy.clone() }, &refs)
}
