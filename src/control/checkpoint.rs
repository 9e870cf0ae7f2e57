//! Rematerialisation: [`checkpoint`] and [`checkpoint_with`].
//!
//! A checkpointed function computes the same values, and its derivatives are the same, but
//! reverse mode keeps fewer intermediate values of it alive between the forward and the
//! backward pass: only its operands and what the [`Policy`] allows; the rest is recomputed
//! during the backward pass. See [`crate::ops::remat`] for the rules.
//!
//! **Selective differentiation needs no checkpoint.** Reverse mode keeps only the residuals
//! that the requested derivatives need (tangents known to be zero are symbolic and cost
//! nothing), so when gradients are taken with respect to some parameters only (frozen layers
//! closed over), the inputs of layers that are linear in frozen weights are not kept: for
//! `y = x·W` with `W` frozen the tangent is `dx·W`, which reads `W` but not `x`. (PyTorch
//! keeps such inputs unless told otherwise; see "Lowering PyTorch's memory consumption for
//! selective differentiation". `tests/checkpoint.rs` measures it for an MLP and a conv net.)

use crate::ir::SubGraph;
pub use crate::ops::remat::Policy;
use crate::ops::Prim;
use crate::trace::bind_multi;
use crate::transform::subgraph::close_over;
use crate::transform::{trace_tree_as, types_of};
use crate::{Tensor, Tree};

/// `f`, recomputed during the backward pass instead of keeping its intermediate values
/// ([`Policy::NothingSaveable`]: only its operands are kept), as JAX's `jax.checkpoint`.
///
/// Values, gradients and every transformation's results are those of `f`.
///
/// ```
/// use cotangent::{control::checkpoint, grad, linearize, Tensor};
/// let f = |x: &Tensor| x.sin().exp().sin().exp().sum_all();
/// let x = Tensor::from_vec(vec![0.1, 0.2, 0.3], &[3]);
/// assert_eq!(grad(checkpoint(f))(&x).to_vec::<f64>(), grad(f)(&x).to_vec::<f64>());
/// // Residuals of the linearization: x alone, instead of every intermediate.
/// assert_eq!(linearize(checkpoint(f), &x).1.num_residuals(), 1);
/// assert!(linearize(f, &x).1.num_residuals() > 2);
/// ```
pub fn checkpoint<A: Tree, B: Tree>(f: impl Fn(&A) -> B) -> impl Fn(&A) -> B {
    checkpoint_with(f, Policy::NothingSaveable)
}

/// [`checkpoint`] with a policy choosing which intermediate values may be saved.
///
/// ```
/// use cotangent::{control::{checkpoint_with, Policy}, grad, linearize, Tensor};
/// let w = Tensor::from_vec(vec![0.5, -1.0, 2.0, 0.25], &[2, 2]);
/// let f = |x: &Tensor| x.matmul(&w).tanh().matmul(&w).tanh().sum_all();
/// let x = Tensor::from_vec(vec![0.1, 0.2], &[1, 2]);
/// let dots = checkpoint_with(f, Policy::DotsSaveable);
/// assert_eq!(grad(&dots)(&x).to_vec::<f64>(), grad(f)(&x).to_vec::<f64>());
/// // The two products (w is a constant of the body, and the tangent of x·w, t·w, needs
/// // no x); saving nothing keeps x alone.
/// assert_eq!(linearize(&dots, &x).1.num_residuals(), 2);
/// assert_eq!(linearize(cotangent::checkpoint(f), &x).1.num_residuals(), 1);
/// ```
pub fn checkpoint_with<A: Tree, B: Tree>(f: impl Fn(&A) -> B, policy: Policy) -> impl Fn(&A) -> B {
    move |x: &A| {
        let leaves = x.leaves();
        let (traced, template) = trace_tree_as("checkpoint", |a: &A| f(a), x, &types_of(&leaves));
        let (mut graphs, captures) = close_over(vec![traced]);
        let body = SubGraph::new(graphs.pop().expect("the body"));
        let mut args = leaves;
        args.extend(captures);
        let refs: Vec<&Tensor> = args.iter().collect();
        template.rebuild_from(bind_multi(Prim::Checkpoint { body, policy: policy.clone() }, &refs))
    }
}
