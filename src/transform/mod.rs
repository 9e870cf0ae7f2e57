//! Composable transformations: `jvp`, `linearize`, `vjp`, `grad`, `vmap`, `jet`
//! (Taylor mode) and the Jacobian/Hessian combinators built from them.
//!
//! Every transformation first traces the user's closure into a
//! [`Graph`](crate::ir::Graph), then *evaluates* that graph under the
//! transformation's rules with ordinary [`Tensor`] operations.
//! With concrete inputs those operations run at once; with symbolic inputs
//! (when the transformation is itself being traced by an outer one) they are
//! recorded into the outer trace. That is the whole nesting story: `grad` of
//! `grad`, `vmap` of `grad`, `jvp` of `vjp` all work the same way, to any depth.
//!
//! Reverse mode is forward mode plus transposition: [`vjp`] runs the jvp of
//! the graph with concrete primals and *symbolic* tangents, so the primal
//! computation happens at once while the tangent computation is recorded as a
//! linear graph (whose residuals are exactly the primal values it uses), then
//! transposes that graph.

mod jac;
mod jet;
mod jit;
mod jvp;
pub(crate) mod site;
pub(crate) mod subgraph;
mod vjp;
mod vmap;

pub(crate) use jvp::{jvp_graph, jvp_graph_saving};

/// `v` emptied, as a list of another element type (of the same size: references of another
/// lifetime, say) that keeps its allocation: the graph walks gather each node's operands
/// into one list reused from node to node instead of allocating one per node.
pub(crate) fn recycle<T, U>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    // (Collecting a `Vec`'s own empty iterator into elements of the same layout reuses
    // its buffer; otherwise this is an empty list, which allocates nothing.)
    v.into_iter().map(|_| unreachable!("the list is empty")).collect()
}
pub(crate) use vjp::is_linearize_level;
pub(crate) use vmap::batch_graph;

pub use jac::{hessian, hvp, jacfwd, jacrev};
pub use jet::{jet, jet2_collapsed, jet_sparse};
pub(crate) use jet::{jet_graph, jet_series, nested_jet};
pub use jit::{jit, jit_inspect, Inspection};
pub use jvp::jvp;
pub use vjp::{
    grad, grad_with_aux, linear_transpose, linearize, value_and_grad, value_and_grad_with_aux, vjp, Linearized,
    Pullback,
};
pub use vmap::{vmap, vmap_axes};

use crate::trace::{trace_as, TracedGraph};
use crate::{Tensor, TensorType, Tree};

/// Traces `f` on symbolic leaves shaped like `example`'s, returning the graph and
/// the output's structure (a template whose leaves are not to be used). The trace is
/// `jit`'s (its caller); the other transformations call [`trace_tree_as`].
#[track_caller]
pub(crate) fn trace_tree<A: Tree, B: Tree>(
    f: impl FnOnce(&A) -> B,
    example: &A,
    in_types: &[TensorType],
) -> (TracedGraph, B) {
    trace_tree_as("jit", f, example, in_types)
}

/// [`trace_tree`] for the transformation named `label` (which errors about its traced values name).
#[track_caller]
pub(crate) fn trace_tree_as<A: Tree, B: Tree>(
    label: &'static str,
    f: impl FnOnce(&A) -> B,
    example: &A,
    in_types: &[TensorType],
) -> (TracedGraph, B) {
    let mut template = None;
    let traced = trace_as(label, in_types, |leaves| {
        let arg = example.rebuild_from(leaves.to_vec());
        let out = f(&arg);
        let leaves = out.leaves();
        template = Some(out);
        leaves
    });
    (traced, template.expect("traced closure returned"))
}

pub(crate) fn types_of(leaves: &[Tensor]) -> Vec<TensorType> {
    leaves.iter().map(|t| t.ty()).collect()
}

#[cfg(test)]
mod tests {
    /// A recycled list is empty, of the new element type, and keeps its buffer.
    #[test]
    fn recycle_keeps_the_buffer() {
        let (a, b) = (1.0f64, 2.0f64);
        let mut v: Vec<&f64> = Vec::with_capacity(16);
        v.extend([&a, &b]);
        let at = v.as_ptr() as usize;
        let w: Vec<&'static f64> = super::recycle(v);
        assert!(w.is_empty());
        assert_eq!((w.as_ptr() as usize, w.capacity()), (at, 16));
        let mut u: Vec<Option<&f64>> = super::recycle(w);
        u.push(Some(&a));
        assert_eq!((u.as_ptr() as usize, u.len(), u.capacity()), (at, 1, 16));
        // Another element type altogether: still an empty list.
        let z: Vec<(u8, u8, u8)> = super::recycle(u);
        assert!(z.is_empty());
    }
}
