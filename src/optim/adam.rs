//! Adam (Kingma & Ba, 2015) and AdamW (Loshchilov & Hutter, 2019), following PyTorch's
//! documented update rules.

use super::{leaves_of, step_number, step_zero, zeros_like_tree, Optimizer, Schedule};
use crate::{Tensor, Tree};

/// Adam with optional L2 weight decay added to the gradient (PyTorch's `Adam`):
///
/// ```text
/// g ← g + λ·θ
/// m ← β₁·m + (1 − β₁)·g          v ← β₂·v + (1 − β₂)·g²
/// m̂ = m / (1 − β₁ᵗ)              v̂ = v / (1 − β₂ᵗ)
/// θ ← θ − η · m̂ / (√v̂ + ε)
/// ```
///
/// ```
/// use cotangent::{optim::{Adam, Optimizer}, Tensor};
/// let opt = Adam::new(0.1);
/// let p = Tensor::scalar(1.0);
/// let s = opt.init(&p);
/// let (p, s) = opt.update(&Tensor::scalar(0.5), &s, &p);
/// // The first step moves by η·sign(g), whatever the gradient's size.
/// assert!((p.item::<f64>() - 0.9).abs() < 1e-7);
/// assert_eq!(s.step.item::<i64>(), 1);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Adam {
    /// Learning rate η.
    pub lr: Schedule,
    /// First-moment decay β₁.
    pub b1: f64,
    /// Second-moment decay β₂.
    pub b2: f64,
    /// ε added to the denominator.
    pub eps: f64,
    /// L2 penalty λ added to the gradient.
    pub weight_decay: f64,
}

impl Adam {
    /// Adam with PyTorch's defaults: β = (0.9, 0.999), ε = 1e-8, no weight decay.
    ///
    /// ```
    /// use cotangent::optim::Adam;
    /// assert_eq!(Adam::new(1e-3).b2, 0.999);
    /// ```
    pub fn new(lr: impl Into<Schedule>) -> Adam {
        Adam { lr: lr.into(), b1: 0.9, b2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    }
}

/// AdamW: Adam with decoupled weight decay (PyTorch's `AdamW`):
///
/// ```text
/// θ ← θ − η·λ·θ
/// then the Adam step above, without adding λ·θ to the gradient.
/// ```
///
/// ```
/// use cotangent::{optim::{AdamW, Optimizer}, Tensor};
/// let opt = AdamW::new(0.1);
/// let p = Tensor::scalar(1.0);
/// let (p, _) = opt.update(&Tensor::scalar(2.0), &opt.init(&p), &p);
/// // (1 − 0.1·0.01)·1 − 0.1
/// assert!((p.item::<f64>() - 0.899).abs() < 1e-7);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct AdamW {
    /// Learning rate η.
    pub lr: Schedule,
    /// First-moment decay β₁.
    pub b1: f64,
    /// Second-moment decay β₂.
    pub b2: f64,
    /// ε added to the denominator.
    pub eps: f64,
    /// Decoupled decay λ.
    pub weight_decay: f64,
}

impl AdamW {
    /// AdamW with PyTorch's defaults: β = (0.9, 0.999), ε = 1e-8, λ = 0.01.
    ///
    /// ```
    /// use cotangent::optim::AdamW;
    /// assert_eq!(AdamW::new(1e-3).weight_decay, 0.01);
    /// ```
    pub fn new(lr: impl Into<Schedule>) -> AdamW {
        AdamW { lr: lr.into(), b1: 0.9, b2: 0.999, eps: 1e-8, weight_decay: 0.01 }
    }
}

/// The state of [`Adam`] and [`AdamW`].
///
/// A tree: with a single tensor as the parameters, its leaves are named as below.
///
/// ```
/// use cotangent::{optim::{Adam, Optimizer}, Tensor, Tree};
/// let s = Adam::new(0.1).init(&Tensor::scalar(1.0));
/// let names: Vec<String> = s.named_leaves().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, vec!["step", "m", "v"]);
/// ```
#[derive(Clone, Debug, Tree)]
pub struct AdamState<P> {
    /// Updates made so far (0-d `i64`).
    pub step: Tensor,
    /// First moments, shaped like the parameters.
    pub m: P,
    /// Second moments, shaped like the parameters.
    pub v: P,
}

struct Hyper<'a> {
    lr: &'a Schedule,
    b1: f64,
    b2: f64,
    eps: f64,
    l2: f64,
    decoupled: f64,
}

fn adam_step<P: Tree>(h: Hyper, grads: &P, state: &AdamState<P>, params: &P) -> (P, AdamState<P>) {
    let l = leaves_of("Adam", &[params, grads, &state.m, &state.v]);
    let t = step_number(&state.step);
    let lr = h.lr.at(&state.step);
    let bc1 = -(t.scalar_like(h.b1).pow(&t)) + 1.0;
    let bc2 = -(t.scalar_like(h.b2).pow(&t)) + 1.0;
    let (mut np, mut nm, mut nv) = (Vec::new(), Vec::new(), Vec::new());
    for x in &l {
        let (p, g, m, v) = (&x[0], &x[1], &x[2], &x[3]);
        if !p.dtype().is_float() {
            np.push(p.clone());
            nm.push(m.clone());
            nv.push(v.clone());
            continue;
        }
        let d = p.dtype();
        let (lr, bc1, bc2) = (lr.cast(d), bc1.cast(d), bc2.cast(d));
        let mut g = g.clone();
        if h.l2 != 0.0 {
            g = g + p * h.l2;
        }
        let mut p = p.clone();
        if h.decoupled != 0.0 {
            p = &p - &p * &lr * h.decoupled;
        }
        let m = m * h.b1 + &g * (1.0 - h.b1);
        let v = v * h.b2 + g.square() * (1.0 - h.b2);
        let m_hat = &m / &bc1;
        let v_hat = &v / &bc2;
        np.push(p - lr * m_hat / (v_hat.sqrt() + h.eps));
        nm.push(m);
        nv.push(v);
    }
    (
        params.rebuild_from(np),
        AdamState { step: &state.step + 1.0, m: state.m.rebuild_from(nm), v: state.v.rebuild_from(nv) },
    )
}

fn adam_init<P: Tree>(params: &P) -> AdamState<P> {
    AdamState { step: step_zero(), m: zeros_like_tree(params), v: zeros_like_tree(params) }
}

impl Optimizer for Adam {
    type State<P: Tree> = AdamState<P>;

    fn init<P: Tree>(&self, params: &P) -> AdamState<P> {
        adam_init(params)
    }

    fn update<P: Tree>(&self, grads: &P, state: &AdamState<P>, params: &P) -> (P, AdamState<P>) {
        let h = Hyper { lr: &self.lr, b1: self.b1, b2: self.b2, eps: self.eps, l2: self.weight_decay, decoupled: 0.0 };
        adam_step(h, grads, state, params)
    }
}

impl Optimizer for AdamW {
    type State<P: Tree> = AdamState<P>;

    fn init<P: Tree>(&self, params: &P) -> AdamState<P> {
        adam_init(params)
    }

    fn update<P: Tree>(&self, grads: &P, state: &AdamState<P>, params: &P) -> (P, AdamState<P>) {
        let h = Hyper { lr: &self.lr, b1: self.b1, b2: self.b2, eps: self.eps, l2: 0.0, decoupled: self.weight_decay };
        adam_step(h, grads, state, params)
    }
}
