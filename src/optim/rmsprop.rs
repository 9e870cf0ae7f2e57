//! RMSprop (Hinton's lecture notes), following PyTorch's documented rule.

use super::{leaves_of, step_zero, zeros_like_tree, Optimizer, Schedule};
use crate::{Tensor, Tree};

/// RMSprop (not centred):
///
/// ```text
/// g ← g + λ·θ
/// v ← α·v + (1 − α)·g²
/// b ← μ·b + g / (√v + ε);   θ ← θ − η·b        (μ > 0)
/// θ ← θ − η·g / (√v + ε)                       (μ = 0)
/// ```
///
/// ```
/// use cotangent::{optim::{Optimizer, RmsProp}, Tensor};
/// let opt = RmsProp::new(0.01);
/// let p = Tensor::scalar(1.0);
/// let (p, _) = opt.update(&Tensor::scalar(1.0), &opt.init(&p), &p);
/// // v = 0.01, so the step is 0.01 · 1 / (0.1 + 1e-8)
/// assert!((p.item::<f64>() - (1.0 - 0.01 / (0.1 + 1e-8))).abs() < 1e-12);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct RmsProp {
    /// Learning rate η.
    pub lr: Schedule,
    /// Decay α of the squared-gradient average.
    pub alpha: f64,
    /// ε added to the denominator.
    pub eps: f64,
    /// Momentum μ.
    pub momentum: f64,
    /// L2 penalty λ added to the gradient.
    pub weight_decay: f64,
}

impl RmsProp {
    /// RMSprop with PyTorch's defaults: α = 0.99, ε = 1e-8, no momentum or decay.
    ///
    /// ```
    /// use cotangent::optim::RmsProp;
    /// assert_eq!(RmsProp::new(0.01).alpha, 0.99);
    /// ```
    pub fn new(lr: impl Into<Schedule>) -> RmsProp {
        RmsProp { lr: lr.into(), alpha: 0.99, eps: 1e-8, momentum: 0.0, weight_decay: 0.0 }
    }
}

/// The state of [`RmsProp`].
///
/// A tree: with a single tensor as the parameters, its leaves are named as below.
///
/// ```
/// use cotangent::{optim::{RmsProp, Optimizer}, Tensor, Tree};
/// let s = RmsProp::new(0.1).init(&Tensor::scalar(1.0));
/// let names: Vec<String> = s.named_leaves().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, vec!["step", "square_avg", "momentum"]);
/// ```
#[derive(Clone, Debug, Tree)]
pub struct RmsPropState<P> {
    /// Updates made so far (0-d `i64`).
    pub step: Tensor,
    /// Running average of squared gradients.
    pub square_avg: P,
    /// Momentum buffers.
    pub momentum: P,
}

impl Optimizer for RmsProp {
    type State<P: Tree> = RmsPropState<P>;

    fn init<P: Tree>(&self, params: &P) -> RmsPropState<P> {
        RmsPropState { step: step_zero(), square_avg: zeros_like_tree(params), momentum: zeros_like_tree(params) }
    }

    fn update<P: Tree>(&self, grads: &P, state: &RmsPropState<P>, params: &P) -> (P, RmsPropState<P>) {
        let l = leaves_of("RmsProp", &[params, grads, &state.square_avg, &state.momentum]);
        let lr = self.lr.at(&state.step);
        let (mut np, mut nv, mut nb) = (Vec::new(), Vec::new(), Vec::new());
        for x in &l {
            let (p, g, v, b) = (&x[0], &x[1], &x[2], &x[3]);
            if !p.dtype().is_float() {
                np.push(p.clone());
                nv.push(v.clone());
                nb.push(b.clone());
                continue;
            }
            let lr = lr.cast(p.dtype());
            let mut g = g.clone();
            if self.weight_decay != 0.0 {
                g = g + p * self.weight_decay;
            }
            let v = v * self.alpha + g.square() * (1.0 - self.alpha);
            let step = &g / (v.sqrt() + self.eps);
            if self.momentum != 0.0 {
                let b = b * self.momentum + step;
                np.push(p - &b * lr);
                nb.push(b);
            } else {
                np.push(p - step * lr);
                nb.push(b.clone());
            }
            nv.push(v);
        }
        (
            params.rebuild_from(np),
            RmsPropState {
                step: &state.step + 1.0,
                square_avg: state.square_avg.rebuild_from(nv),
                momentum: state.momentum.rebuild_from(nb),
            },
        )
    }
}
