//! Lion (Chen et al., "Symbolic Discovery of Optimization Algorithms", 2023).

use super::{leaves_of, step_zero, zeros_like_tree, Optimizer, Schedule};
use crate::{Tensor, Tree};

/// Lion: the sign of an interpolated momentum, with decoupled weight decay:
///
/// ```text
/// c = β₁·m + (1 − β₁)·g
/// θ ← θ − η·(sign(c) + λ·θ)
/// m ← β₂·m + (1 − β₂)·g
/// ```
///
/// ```
/// use cotangent::{optim::{Lion, Optimizer}, Tensor};
/// let opt = Lion::new(0.01);
/// let p = Tensor::from_vec(vec![1.0, 1.0], &[2]);
/// let (p, _) = opt.update(&Tensor::from_vec(vec![5.0, -0.1], &[2]), &opt.init(&p), &p);
/// assert_eq!(p.to_vec::<f64>(), vec![0.99, 1.01]);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Lion {
    /// Learning rate η.
    pub lr: Schedule,
    /// Interpolation β₁ for the update direction.
    pub b1: f64,
    /// Momentum decay β₂.
    pub b2: f64,
    /// Decoupled weight decay λ.
    pub weight_decay: f64,
}

impl Lion {
    /// Lion with the paper's defaults: β = (0.9, 0.99), no weight decay.
    ///
    /// ```
    /// use cotangent::optim::Lion;
    /// assert_eq!(Lion::new(1e-4).b2, 0.99);
    /// ```
    pub fn new(lr: impl Into<Schedule>) -> Lion {
        Lion { lr: lr.into(), b1: 0.9, b2: 0.99, weight_decay: 0.0 }
    }
}

/// The state of [`Lion`].
///
/// A tree: with a single tensor as the parameters, its leaves are named as below.
///
/// ```
/// use cotangent::{optim::{Lion, Optimizer}, Tensor, Tree};
/// let s = Lion::new(0.1).init(&Tensor::scalar(1.0));
/// let names: Vec<String> = s.named_leaves().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, vec!["step", "m"]);
/// ```
#[derive(Clone, Debug, Tree)]
pub struct LionState<P> {
    /// Updates made so far (0-d `i64`).
    pub step: Tensor,
    /// Momentum.
    pub m: P,
}

impl Optimizer for Lion {
    type State<P: Tree> = LionState<P>;

    fn init<P: Tree>(&self, params: &P) -> LionState<P> {
        LionState { step: step_zero(), m: zeros_like_tree(params) }
    }

    fn update<P: Tree>(&self, grads: &P, state: &LionState<P>, params: &P) -> (P, LionState<P>) {
        let l = leaves_of("Lion", &[params, grads, &state.m]);
        let lr = self.lr.at(&state.step);
        let (mut np, mut nm) = (Vec::new(), Vec::new());
        for x in &l {
            let (p, g, m) = (&x[0], &x[1], &x[2]);
            if !p.dtype().is_float() {
                np.push(p.clone());
                nm.push(m.clone());
                continue;
            }
            let c = m * self.b1 + g * (1.0 - self.b1);
            let mut u = c.sign();
            if self.weight_decay != 0.0 {
                u = u + p * self.weight_decay;
            }
            np.push(p - u * lr.cast(p.dtype()));
            nm.push(m * self.b2 + g * (1.0 - self.b2));
        }
        (params.rebuild_from(np), LionState { step: &state.step + 1.0, m: state.m.rebuild_from(nm) })
    }
}
