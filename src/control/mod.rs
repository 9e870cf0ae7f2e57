//! Control flow on traced values: [`cond`] and [`switch`], and the loops [`while_loop`],
//! [`while_loop_bounded`], [`fori_loop`] and [`scan`] (see `loops.rs` for their table of
//! transformations).
//!
//! A Rust `if` on a traced value cannot run (the value is not known while tracing), and a
//! Rust loop over a traced bound unrolls into the graph. These functions record the choice as
//! one structured primitive carrying each branch as a closed graph, so every transformation
//! (jvp, grad, vmap, jit, and their nesting) goes through it: see [`crate::ops::control`]
//! for the rules.
//!
//! Branches take and return trees ([`Tree`]), like the rest of the API; they are traced once
//! each, so they must return the same structure and types. Values the branches use from
//! outside (closed-over tensors, traced or concrete) are passed to the primitive for them.

mod checkpoint;
mod custom;

pub use checkpoint::{checkpoint, checkpoint_with, Policy};
pub use custom::{custom_jvp, custom_vjp, custom_vjp_nondiff};
mod loops;

pub use loops::{fori_loop, scan, while_loop, while_loop_bounded, while_loop_bounded_with};

use crate::ir::SubGraph;
use crate::ops::control::cond_apply;
use crate::transform::site::Site;
use crate::transform::subgraph::close_over;
use crate::transform::{trace_tree_as, types_of};
use crate::{DType, Tensor, Tree};

/// `true_fn(operands)` where `pred` is true, else `false_fn(operands)`, for a traced `pred`.
///
/// `pred` is a bool scalar. Both branches are traced (once each) and must return trees of the
/// same structure and types; only the taken branch runs. Under [`vmap`](crate::vmap) with a
/// batched predicate both branches run on the whole batch and each example selects its own
/// results, so both must be safe to evaluate everywhere (as in JAX).
///
/// ```
/// use cotangent::{control::cond, grad, jit, Tensor};
/// // |x| as a traced choice; its derivative on both sides.
/// let f = |x: &Tensor| cond(&x.gt(0.0), |x: &Tensor| x.clone(), |x: &Tensor| -x, x);
/// let df = grad(f);
/// assert_eq!(df(&Tensor::scalar(2.0)).item::<f64>(), 1.0);
/// assert_eq!(df(&Tensor::scalar(-2.0)).item::<f64>(), -1.0);
/// assert_eq!(jit(f)(&Tensor::scalar(-3.0)).item::<f64>(), 3.0);
/// ```
///
/// # Panics
/// At the caller's line, if `pred` is not a bool scalar or the branches' results differ in
/// structure or type (naming both).
#[track_caller]
pub fn cond<A: Tree, B: Tree>(pred: &Tensor, true_fn: impl Fn(&A) -> B, false_fn: impl Fn(&A) -> B, operands: &A) -> B {
    let site = Site::here("cond");
    if pred.dtype() != DType::Bool || pred.rank() != 0 {
        site.fail(format_args!("the predicate must be a bool scalar, got {}", pred.ty()));
    }
    branch_on(site, &pred.cast(DType::I32), &[&false_fn, &true_fn], &["false_fn", "true_fn"], operands)
}

/// `branches[index](operands)`, for a traced integer `index` (clamped into range, as
/// `jax.lax.switch` does).
///
/// ```
/// use cotangent::{control::switch, Tensor};
/// let double = |x: &Tensor| x * 2.0;
/// let square = |x: &Tensor| x * x;
/// let negate = |x: &Tensor| -x;
/// let branches: [&dyn Fn(&Tensor) -> Tensor; 3] = [&double, &square, &negate];
/// let x = Tensor::scalar(3.0);
/// assert_eq!(switch(&Tensor::scalar(1i64), &branches, &x).item::<f64>(), 9.0);
/// assert_eq!(switch(&Tensor::scalar(7i64), &branches, &x).item::<f64>(), -3.0); // clamped
/// ```
///
/// # Panics
/// At the caller's line, if `index` is not an i32 or i64 scalar, `branches` is empty, or the
/// branches' results differ in structure or type.
#[track_caller]
pub fn switch<A: Tree, B: Tree>(index: &Tensor, branches: &[&dyn Fn(&A) -> B], operands: &A) -> B {
    let site = Site::here("switch");
    if !matches!(index.dtype(), DType::I32 | DType::I64) || index.rank() != 0 {
        site.fail(format_args!("the branch index must be an i32 or i64 scalar, got {}", index.ty()));
    }
    if branches.is_empty() {
        site.fail(format_args!("needs at least one branch"));
    }
    let names: Vec<String> = (0..branches.len()).map(|k| format!("branch {k}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    branch_on(site, index, branches, &names, operands)
}

/// The shared body of [`cond`] and [`switch`]: traces the branches, checks they agree, and
/// applies the `cond` primitive.
fn branch_on<A: Tree, B: Tree>(
    site: Site,
    index: &Tensor,
    branches: &[&dyn Fn(&A) -> B],
    names: &[&str],
    operands: &A,
) -> B {
    let leaves = operands.leaves();
    let types = types_of(&leaves);
    let mut traced = Vec::with_capacity(branches.len());
    let mut template: Option<B> = None;
    let mut first_types = Vec::new();
    for (k, f) in branches.iter().enumerate() {
        let (t, out) = trace_tree_as(site.name, |a: &A| f(a), operands, &types);
        let out_types = t.graph.output_types();
        match &template {
            None => {
                first_types = out_types;
                template = Some(out);
            }
            Some(first) => {
                let paths = |b: &B| b.named_leaves().into_iter().map(|(p, _)| p).collect::<Vec<_>>();
                if out_types != first_types || paths(&out) != paths(first) {
                    let show =
                        |tys: &[crate::TensorType]| tys.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
                    site.fail(format_args!(
                        "the branches must return the same structure and types: {} returns ({}) but {} returns ({})",
                        names[k],
                        show(&out_types),
                        names[0],
                        show(&first_types)
                    ));
                }
            }
        }
        traced.push(t);
    }
    let (graphs, captures) = close_over(traced);
    let mut args = vec![index.clone()];
    args.extend(leaves);
    args.extend(captures);
    let outs = cond_apply(graphs.into_iter().map(SubGraph::new).collect(), &args);
    template.expect("at least one branch").rebuild_from(outs)
}
