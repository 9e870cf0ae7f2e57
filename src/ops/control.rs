//! Control flow primitives: `cond` (a switch over closed branch graphs).
//!
//! Each carries closed sub-graphs ([`SubGraph`]) and defines a tuple of results. Their rules
//! transform the sub-graphs (`transform/subgraph.rs`) and bind a new node of the same kind:
//!
//! - **jvp** of `cond` is a `cond` for the primal results and a `cond` of the branches' jvps
//!   for the tangents. The tangent branches recompute the primal values they need from the
//!   branch operands, so reverse mode keeps only those operands (of the taken branch) as
//!   residuals — like checkpointing each branch.
//! - **transpose** of a `cond` that is linear in some operands is a `cond` of the branches'
//!   transposes: only the taken branch runs.
//! - **batching** with an unbatched index stays a `cond` of batched branches. With a batched
//!   index every branch runs on the whole batch and each lane selects its branch's results
//!   (`select`), as in JAX: both branches cost, and both must be safe to evaluate.
//!
//! - **jet** (Taylor mode) of `cond` is a `cond` of the branches' jets, whose operands are
//!   the primals and the non-zero coefficients of the operands' series.
//!
//! With a concrete index (known while tracing) the taken branch is inlined instead.

use super::rules::LinArg;
use super::Prim;
use crate::ir::SubGraph;
use crate::trace::{bind_multi, eval_graph};
use crate::transform::subgraph::{batch_subgraph, jet_subgraph, jvp_subgraph, transpose_subgraph};
use crate::{DType, Tensor, TensorType};

fn list(types: &[TensorType]) -> String {
    let s: Vec<String> = types.iter().map(ToString::to_string).collect();
    format!("({})", s.join(", "))
}

/// The results of `cond`: the branches' common output types, after checking the index (an
/// integer scalar) and the operands against every branch.
pub(crate) fn cond_types(branches: &[SubGraph], inputs: &[&TensorType]) -> Result<Vec<TensorType>, String> {
    let Some(first) = branches.first() else {
        return Err("needs at least one branch".into());
    };
    let Some(index) = inputs.first() else {
        return Err("needs an index operand".into());
    };
    if !matches!(index.dtype, DType::I32 | DType::I64) || index.rank() != 0 {
        return Err(format!("the branch index must be an i32 or i64 scalar, got {index}"));
    }
    let operands: Vec<TensorType> = inputs[1..].iter().map(|&t| t.clone()).collect();
    let outs = first.output_types();
    for (k, b) in branches.iter().enumerate() {
        if b.input_types() != operands {
            return Err(format!(
                "branch {k} takes {} but the operands are {}",
                list(&b.input_types()),
                list(&operands)
            ));
        }
        if b.output_types() != outs {
            return Err(format!("branch {k} returns {} but branch 0 returns {}", list(&b.output_types()), list(&outs)));
        }
    }
    Ok(outs)
}

/// The branch a concrete index selects: clamped into `0..n`, as `lax.switch` does.
fn taken(index: &Tensor, n: usize) -> usize {
    let k = match index.dtype() {
        DType::I32 => index.item::<i32>() as i64,
        _ => index.item::<i64>(),
    };
    k.clamp(0, n as i64 - 1) as usize
}

/// Runs the selected branch on concrete operands.
pub(crate) fn cond_run(n: usize, args: &[Tensor], run_sub: &mut dyn super::SubRunner) -> Vec<Tensor> {
    run_sub.run(taken(&args[0], n), &args[1..])
}

/// `cond` of the given branches on the operands, or the taken branch inlined when the index
/// is concrete.
pub(crate) fn cond_apply(branches: Vec<SubGraph>, args: &[Tensor]) -> Vec<Tensor> {
    if !args[0].is_traced() {
        return eval_graph(&branches[taken(&args[0], branches.len())], &args[1..]);
    }
    let refs: Vec<&Tensor> = args.iter().collect();
    bind_multi(Prim::Cond { branches }, &refs)
}

/// Primal results and tangents of `cond`.
pub(crate) fn cond_jvp(
    branches: &[SubGraph],
    x: &[&Tensor],
    t: &[Option<&Tensor>],
) -> (Vec<Tensor>, Vec<Option<Tensor>>) {
    let args: Vec<Tensor> = x.iter().map(|&a| a.clone()).collect();
    if !args[0].is_traced() {
        let k = taken(&args[0], branches.len());
        let tangents: Vec<Option<Tensor>> = t[1..].iter().map(|t| t.cloned()).collect();
        return crate::transform::jvp_graph(&branches[k], &args[1..], &tangents);
    }
    let outs = cond_apply(branches.to_vec(), &args);
    let with_tangent: Vec<bool> = t[1..].iter().map(Option::is_some).collect();
    // Every branch must produce a tangent for the same outputs: their union.
    let firsts: Vec<(crate::ir::Graph, Vec<bool>)> =
        branches.iter().map(|b| jvp_subgraph(b, &with_tangent, None)).collect();
    let mut mask = vec![false; outs.len()];
    for (_, nz) in &firsts {
        mask.iter_mut().zip(nz).for_each(|(m, &z)| *m |= z);
    }
    if !mask.iter().any(|&m| m) {
        return (outs, vec![None; mask.len()]);
    }
    let tangent_branches: Vec<SubGraph> = branches
        .iter()
        .zip(firsts)
        .map(|(b, (g, nz))| SubGraph::new(if nz == mask { g } else { jvp_subgraph(b, &with_tangent, Some(&mask)).0 }))
        .collect();
    let mut operands = args.clone();
    operands.extend(t[1..].iter().flatten().map(|&t| t.clone()));
    let mut touts = cond_apply(tangent_branches, &operands).into_iter();
    let tangents = mask.iter().map(|&m| if m { touts.next() } else { None }).collect();
    (outs, tangents)
}

/// Cotangents of the linear operands of a `cond` (the index is never linear).
pub(crate) fn cond_transpose(branches: &[SubGraph], cts: &[Option<Tensor>], args: &[LinArg]) -> Vec<Option<Tensor>> {
    let linear: Vec<bool> = args[1..].iter().map(LinArg::is_linear).collect();
    let ct_mask: Vec<bool> = cts.iter().map(Option::is_some).collect();
    let transposed: Vec<SubGraph> =
        branches.iter().map(|b| SubGraph::new(transpose_subgraph(b, &linear, &ct_mask))).collect();
    let mut operands = vec![args[0].value("the branch index").clone()];
    operands.extend(args[1..].iter().filter(|a| !a.is_linear()).map(|a| a.value("a residual").clone()));
    operands.extend(cts.iter().flatten().cloned());
    let mut in_cts = cond_apply(transposed, &operands).into_iter();
    std::iter::once(None).chain(linear.iter().map(|&l| if l { in_cts.next() } else { None })).collect()
}

/// `cond` on operands of which those marked `batched` carry a leading batch axis.
pub(crate) fn cond_batch(branches: &[SubGraph], args: &[Tensor], batched: &[bool], size: usize) -> Vec<Tensor> {
    let batched_branches: Vec<SubGraph> =
        branches.iter().map(|b| SubGraph::new(batch_subgraph(b, &batched[1..], size))).collect();
    if !batched[0] {
        return cond_apply(batched_branches, args);
    }
    // A batched index: every branch on the whole batch, then each lane takes its own.
    let index = args[0].cast(DType::I64).clamp(0.0, (branches.len() - 1) as f64);
    let results: Vec<Vec<Tensor>> = batched_branches.iter().map(|b| eval_graph(b, &args[1..])).collect();
    let (last, rest) = results.split_last().expect("at least one branch");
    let mut outs = last.clone();
    for (k, branch_outs) in rest.iter().enumerate().rev() {
        let lane = index.eq(k as i64);
        outs = outs
            .iter()
            .zip(branch_outs)
            .map(|(acc, y)| {
                let mask = lane.broadcast_in_dim(&y.shape(), &[0]);
                crate::where_(&mask, y, acc)
            })
            .collect();
    }
    outs
}

/// The series of `cond`'s results: a `cond` of the branches' jets (the index has no series).
pub(crate) fn cond_jet(branches: &[SubGraph], xs: &[&[Option<Tensor>]], order: usize) -> Vec<super::series::Series> {
    let index = super::series::primal(xs[0]);
    if !index.is_traced() {
        let k = taken(index, branches.len());
        let inputs: Vec<super::series::Series> = xs[1..].iter().map(|s| s.to_vec()).collect();
        return crate::transform::jet_graph(&branches[k], &inputs, order);
    }
    let present: Vec<Vec<bool>> = xs[1..].iter().map(|s| s.iter().map(Option::is_some).collect()).collect();
    let jets: Vec<SubGraph> = branches.iter().map(|b| SubGraph::new(jet_subgraph(b, &present, order))).collect();
    let mut operands = vec![index.clone()];
    operands.extend(xs[1..].iter().flat_map(|s| s.iter().flatten().cloned()));
    let mut outs = cond_apply(jets, &operands).into_iter();
    let n = branches[0].outputs.len();
    (0..n).map(|_| (0..=order).map(|_| outs.next()).collect()).collect()
}
