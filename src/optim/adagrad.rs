//! Adagrad (Duchi et al., 2011), following PyTorch's documented rule.

use super::{leaves_of, step_zero, Optimizer, Schedule};
use crate::{Tensor, Tree};

/// Adagrad:
///
/// ```text
/// η̃ = η / (1 + (t − 1)·decay)
/// g ← g + λ·θ
/// s ← s + g²                   (s starts at `initial_accumulator`)
/// θ ← θ − η̃ · g / (√s + ε)
/// ```
///
/// ```
/// use cotangent::{optim::{Adagrad, Optimizer}, Tensor};
/// let opt = Adagrad::new(0.5);
/// let p = Tensor::scalar(1.0);
/// let (p, _) = opt.update(&Tensor::scalar(2.0), &opt.init(&p), &p);
/// assert!((p.item::<f64>() - (1.0 - 0.5 * 2.0 / (2.0 + 1e-10))).abs() < 1e-12);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Adagrad {
    /// Learning rate η.
    pub lr: Schedule,
    /// Learning-rate decay per step.
    pub lr_decay: f64,
    /// L2 penalty λ added to the gradient.
    pub weight_decay: f64,
    /// Starting value of the accumulator.
    pub initial_accumulator: f64,
    /// ε added to the denominator.
    pub eps: f64,
}

impl Adagrad {
    /// Adagrad with PyTorch's defaults: no decay, accumulator 0, ε = 1e-10.
    ///
    /// ```
    /// use cotangent::optim::Adagrad;
    /// assert_eq!(Adagrad::new(0.01).eps, 1e-10);
    /// ```
    pub fn new(lr: impl Into<Schedule>) -> Adagrad {
        Adagrad { lr: lr.into(), lr_decay: 0.0, weight_decay: 0.0, initial_accumulator: 0.0, eps: 1e-10 }
    }
}

/// The state of [`Adagrad`].
///
/// A tree: with a single tensor as the parameters, its leaves are named as below.
///
/// ```
/// use cotangent::{optim::{Adagrad, Optimizer}, Tensor, Tree};
/// let s = Adagrad::new(0.1).init(&Tensor::scalar(1.0));
/// let names: Vec<String> = s.named_leaves().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, vec!["step", "sum"]);
/// ```
#[derive(Clone, Debug, Tree)]
pub struct AdagradState<P> {
    /// Updates made so far (0-d `i64`).
    pub step: Tensor,
    /// Sums of squared gradients.
    pub sum: P,
}

impl Optimizer for Adagrad {
    type State<P: Tree> = AdagradState<P>;

    fn init<P: Tree>(&self, params: &P) -> AdagradState<P> {
        let a = self.initial_accumulator;
        AdagradState { step: step_zero(), sum: params.map_leaves(|t| Tensor::full(&t.shape(), a, t.dtype())) }
    }

    fn update<P: Tree>(&self, grads: &P, state: &AdagradState<P>, params: &P) -> (P, AdagradState<P>) {
        let l = leaves_of("Adagrad", &[params, grads, &state.sum]);
        let lr = self.lr.at(&state.step) / (state.step.cast(crate::DType::F64) * self.lr_decay + 1.0);
        let (mut np, mut ns) = (Vec::new(), Vec::new());
        for x in &l {
            let (p, g, s) = (&x[0], &x[1], &x[2]);
            if !p.dtype().is_float() {
                np.push(p.clone());
                ns.push(s.clone());
                continue;
            }
            let mut g = g.clone();
            if self.weight_decay != 0.0 {
                g = g + p * self.weight_decay;
            }
            let s = s + g.square();
            np.push(p - lr.cast(p.dtype()) * &g / (s.sqrt() + self.eps));
            ns.push(s);
        }
        (params.rebuild_from(np), AdagradState { step: &state.step + 1.0, sum: state.sum.rebuild_from(ns) })
    }
}
