//! Stochastic gradient descent with momentum, Nesterov momentum and weight decay.

use super::{leaves_of, step_zero, zeros_like_tree, Optimizer, Schedule};
use crate::{Tensor, Tree};

/// SGD as PyTorch documents it (no dampening):
///
/// ```text
/// g ← g + λ·θ
/// b ← μ·b + g                       (b starts at 0, so the first b is g)
/// g ← g + μ·b  (Nesterov)   or   g ← b  (classical momentum, when μ > 0)
/// θ ← θ − η·g
/// ```
///
/// ```
/// use cotangent::{optim::{Optimizer, Sgd}, Tensor};
/// let opt = Sgd::new(0.1).with_momentum(0.9, false);
/// let p = Tensor::scalar(1.0);
/// let (p1, s) = opt.update(&Tensor::scalar(1.0), &opt.init(&p), &p);
/// let (p2, _) = opt.update(&Tensor::scalar(1.0), &s, &p1);
/// assert!((p1.item::<f64>() - 0.9).abs() < 1e-12);
/// assert!((p2.item::<f64>() - (0.9 - 0.1 * 1.9)).abs() < 1e-12);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Sgd {
    /// Learning rate η.
    pub lr: Schedule,
    /// Momentum μ (0: plain SGD).
    pub momentum: f64,
    /// Nesterov momentum (needs μ > 0).
    pub nesterov: bool,
    /// L2 penalty λ added to the gradient.
    pub weight_decay: f64,
}

impl Sgd {
    /// Plain SGD.
    ///
    /// ```
    /// use cotangent::optim::Sgd;
    /// assert_eq!(Sgd::new(0.1).momentum, 0.0);
    /// ```
    pub fn new(lr: impl Into<Schedule>) -> Sgd {
        Sgd { lr: lr.into(), momentum: 0.0, nesterov: false, weight_decay: 0.0 }
    }

    /// The same optimiser with momentum `mu` (Nesterov's if `nesterov`).
    ///
    /// ```
    /// use cotangent::optim::Sgd;
    /// assert!(Sgd::new(0.1).with_momentum(0.9, true).nesterov);
    /// ```
    pub fn with_momentum(mut self, mu: f64, nesterov: bool) -> Sgd {
        self.momentum = mu;
        self.nesterov = nesterov;
        self
    }

    /// The same optimiser with L2 weight decay `lambda`.
    ///
    /// ```
    /// use cotangent::optim::Sgd;
    /// assert_eq!(Sgd::new(0.1).with_weight_decay(1e-4).weight_decay, 1e-4);
    /// ```
    pub fn with_weight_decay(mut self, lambda: f64) -> Sgd {
        self.weight_decay = lambda;
        self
    }
}

/// The state of [`Sgd`].
///
/// A tree: with a single tensor as the parameters, its leaves are named as below.
///
/// ```
/// use cotangent::{optim::{Sgd, Optimizer}, Tensor, Tree};
/// let s = Sgd::new(0.1).init(&Tensor::scalar(1.0));
/// let names: Vec<String> = s.named_leaves().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, vec!["step", "momentum"]);
/// ```
#[derive(Clone, Debug, Tree)]
pub struct SgdState<P> {
    /// Updates made so far (0-d `i64`).
    pub step: Tensor,
    /// Momentum buffers, shaped like the parameters.
    pub momentum: P,
}

impl Optimizer for Sgd {
    type State<P: Tree> = SgdState<P>;

    fn init<P: Tree>(&self, params: &P) -> SgdState<P> {
        SgdState { step: step_zero(), momentum: zeros_like_tree(params) }
    }

    fn update<P: Tree>(&self, grads: &P, state: &SgdState<P>, params: &P) -> (P, SgdState<P>) {
        assert!(!self.nesterov || self.momentum > 0.0, "Sgd: Nesterov momentum needs a positive momentum");
        let l = leaves_of("Sgd", &[params, grads, &state.momentum]);
        let lr = self.lr.at(&state.step);
        let (mut np, mut nb) = (Vec::new(), Vec::new());
        for x in &l {
            let (p, g, b) = (&x[0], &x[1], &x[2]);
            if !p.dtype().is_float() {
                np.push(p.clone());
                nb.push(b.clone());
                continue;
            }
            let mut g = g.clone();
            if self.weight_decay != 0.0 {
                g = g + p * self.weight_decay;
            }
            let mut b = b.clone();
            if self.momentum != 0.0 {
                b = b * self.momentum + &g;
                g = if self.nesterov { g + &b * self.momentum } else { b.clone() };
            }
            np.push(p - g * lr.cast(p.dtype()));
            nb.push(b);
        }
        (params.rebuild_from(np), SgdState { step: &state.step + 1.0, momentum: state.momentum.rebuild_from(nb) })
    }
}
