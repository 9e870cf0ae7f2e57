//! Optimisers, learning-rate schedules and gradient clipping.
//!
//! An optimiser is a small value of hyperparameters. [`Optimizer::init`] builds
//! its state for a parameter tree, and [`Optimizer::update`] maps
//! `(gradients, state, parameters)` to `(new parameters, new state)` — a pure
//! function on trees. The state is itself a [`Tree`] (moments shaped like the
//! parameters, plus a step counter), so it checkpoints with [`crate::io`] just
//! like the model, under names such as `m.layers.0.weight`.
//!
//! ```
//! use cotangent::{grad, optim::{Adam, Optimizer}, Tensor};
//! let loss = |w: &Tensor| (w - 3.0).square().sum_all();
//! let opt = Adam::new(0.1);
//! let mut w = Tensor::from_vec(vec![0.0f32, 10.0], &[2]);
//! let mut state = opt.init(&w);
//! for _ in 0..300 {
//!     let g = grad(loss)(&w);
//!     (w, state) = opt.update(&g, &state, &w);
//! }
//! assert!(w.to_vec::<f32>().iter().all(|v| (v - 3.0).abs() < 1e-2));
//! ```
//!
//! Only floating-point leaves are updated; integer and bool leaves pass through.
//! Hyperparameters are plain numbers, except the learning rate, a [`Schedule`]
//! evaluated with tensor operations at the step counter held in the state.

mod adagrad;
mod adam;
mod diffgrad;
mod lion;
mod rmsprop;
mod schedule;
mod sgd;

pub use adagrad::{Adagrad, AdagradState};
pub use adam::{Adam, AdamState, AdamW};
pub use diffgrad::{DiffGrad, DiffGradState};
pub use lion::{Lion, LionState};
pub use rmsprop::{RmsProp, RmsPropState};
pub use schedule::Schedule;
pub use sgd::{Sgd, SgdState};

use crate::{DType, Tensor, Tree};

/// A gradient-based optimiser: a pure update rule on trees.
///
/// ```
/// use cotangent::{optim::{Optimizer, Sgd}, Tensor};
/// // Generic code can take any optimiser.
/// fn step<O: Optimizer>(opt: &O, p: &Tensor, g: &Tensor, s: &O::State<Tensor>) -> (Tensor, O::State<Tensor>) {
///     opt.update(g, s, p)
/// }
/// let opt = Sgd::new(0.5);
/// let p = Tensor::scalar(1.0);
/// let (p, _) = step(&opt, &p, &Tensor::scalar(1.0), &opt.init(&p));
/// assert_eq!(p.item::<f64>(), 0.5);
/// ```
pub trait Optimizer {
    /// The optimiser's state for parameters of type `P` (a tree, so it can be saved).
    type State<P: Tree>: Tree;

    /// The state before the first step.
    ///
    /// ```
    /// use cotangent::{optim::{Adam, Optimizer}, Tensor, Tree};
    /// let s = Adam::new(1e-3).init(&(Tensor::scalar(1.0f32), Tensor::scalar(2.0f32)));
    /// assert_eq!(s.leaves().len(), 5); // step, m.0, m.1, v.0, v.1
    /// ```
    fn init<P: Tree>(&self, params: &P) -> Self::State<P>;

    /// One step: the new parameters and state, given the gradients at `params`.
    ///
    /// ```
    /// use cotangent::{optim::{Optimizer, Sgd}, Tensor};
    /// let opt = Sgd::new(0.1);
    /// let p = Tensor::from_vec(vec![1.0, 2.0], &[2]);
    /// let g = Tensor::from_vec(vec![10.0, -10.0], &[2]);
    /// let (p, s) = opt.update(&g, &opt.init(&p), &p);
    /// assert_eq!(p.to_vec::<f64>(), vec![0.0, 3.0]);
    /// assert_eq!(s.step.item::<i64>(), 1);
    /// ```
    fn update<P: Tree>(&self, grads: &P, state: &Self::State<P>, params: &P) -> (P, Self::State<P>);
}

/// The step counter every state starts with: a 0-d `i64` zero.
pub(crate) fn step_zero() -> Tensor {
    Tensor::scalar(0i64)
}

/// The (1-based) number of the step being taken, as a 0-d `f64` tensor.
pub(crate) fn step_number(step: &Tensor) -> Tensor {
    step.cast(DType::F64) + 1.0
}

/// Zeros shaped like every leaf of `params`.
pub(crate) fn zeros_like_tree<P: Tree>(params: &P) -> P {
    params.map_leaves(|t| t.zeros_like())
}

/// Leaves of several trees with the same structure, checked to agree, grouped per leaf:
/// `out[i][k]` is leaf `i` of tree `k`.
#[track_caller]
pub(crate) fn leaves_of<P: Tree>(what: &str, trees: &[&P]) -> Vec<Vec<Tensor>> {
    let all: Vec<Vec<Tensor>> = trees.iter().map(|t| t.leaves()).collect();
    let n = all[0].len();
    for (i, l) in all.iter().enumerate() {
        assert!(l.len() == n, "{what}: tree {i} has {} leaves, the parameters have {n}", l.len());
        for (a, b) in l.iter().zip(&all[0]) {
            assert!(
                a.shape() == b.shape(),
                "{what}: a leaf of shape {:?} meets a parameter of shape {:?}",
                a.shape(),
                b.shape()
            );
        }
    }
    (0..n).map(|i| all.iter().map(|l| l[i].clone()).collect()).collect()
}

/// Scales `grads` so their global L2 norm (over every float leaf) is at most `max_norm`;
/// returns the scaled gradients and the norm before scaling (0-d `f64`).
///
/// ```
/// use cotangent::{optim::clip_by_global_norm, Tensor};
/// let g = (Tensor::from_vec(vec![3.0, 0.0], &[2]), Tensor::scalar(4.0));
/// let (c, norm) = clip_by_global_norm(&g, 1.0);
/// assert_eq!(norm.item::<f64>(), 5.0);
/// assert!((c.0.to_vec::<f64>()[0] - 0.6).abs() < 1e-12);
/// assert!((c.1.item::<f64>() - 0.8).abs() < 1e-12);
/// ```
#[track_caller]
pub fn clip_by_global_norm<P: Tree>(grads: &P, max_norm: f64) -> (P, Tensor) {
    assert!(max_norm > 0.0, "clip_by_global_norm: max_norm must be positive, got {max_norm}");
    let leaves = grads.leaves();
    let mut sq = Tensor::scalar(0.0f64);
    for g in leaves.iter().filter(|g| g.dtype().is_float()) {
        sq = sq + g.square().sum_all().cast(DType::F64);
    }
    let norm = sq.sqrt();
    // min(1, max_norm / norm), written so a zero norm gives 1 rather than a division by 0.
    let scale = (norm.maximum(max_norm).recip() * max_norm).minimum(1.0);
    let clipped = grads.map_leaves(|g| if g.dtype().is_float() { g * scale.cast(g.dtype()) } else { g.clone() });
    (clipped, norm)
}
