//! diffGrad (Dubey et al., "diffGrad: An Optimization Method for Convolutional Neural
//! Networks", IEEE TNNLS 2020).

use super::{leaves_of, step_number, step_zero, zeros_like_tree, Optimizer, Schedule};
use crate::{Tensor, Tree};

/// diffGrad: Adam whose step is scaled, per element, by a friction coefficient that is
/// small where the gradient changes little between steps:
///
/// ```text
/// m ← β₁·m + (1 − β₁)·g          v ← β₂·v + (1 − β₂)·g²
/// m̂ = m / (1 − β₁ᵗ)              v̂ = v / (1 − β₂ᵗ)
/// ξ = sigmoid(|g_prev − g|)       (g_prev = 0 at the first step)
/// θ ← θ − η · ξ · m̂ / (√v̂ + ε)
/// ```
///
/// ```
/// use cotangent::{optim::{DiffGrad, Optimizer}, Tensor};
/// let opt = DiffGrad::new(0.1);
/// let p = Tensor::scalar(1.0);
/// let (p1, _) = opt.update(&Tensor::scalar(0.0), &opt.init(&p), &p);
/// assert_eq!(p1.item::<f64>(), 1.0); // zero gradient, no move
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct DiffGrad {
    /// Learning rate η.
    pub lr: Schedule,
    /// First-moment decay β₁.
    pub b1: f64,
    /// Second-moment decay β₂.
    pub b2: f64,
    /// ε added to the denominator.
    pub eps: f64,
}

impl DiffGrad {
    /// diffGrad with the paper's defaults: β = (0.9, 0.999), ε = 1e-8.
    ///
    /// ```
    /// use cotangent::optim::DiffGrad;
    /// assert_eq!(DiffGrad::new(1e-3).b1, 0.9);
    /// ```
    pub fn new(lr: impl Into<Schedule>) -> DiffGrad {
        DiffGrad { lr: lr.into(), b1: 0.9, b2: 0.999, eps: 1e-8 }
    }
}

/// The state of [`DiffGrad`].
///
/// A tree: with a single tensor as the parameters, its leaves are named as below.
///
/// ```
/// use cotangent::{optim::{DiffGrad, Optimizer}, Tensor, Tree};
/// let s = DiffGrad::new(0.1).init(&Tensor::scalar(1.0));
/// let names: Vec<String> = s.named_leaves().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, vec!["step", "m", "v", "prev_grad"]);
/// ```
#[derive(Clone, Debug, Tree)]
pub struct DiffGradState<P> {
    /// Updates made so far (0-d `i64`).
    pub step: Tensor,
    /// First moments.
    pub m: P,
    /// Second moments.
    pub v: P,
    /// The previous step's gradient.
    pub prev_grad: P,
}

impl Optimizer for DiffGrad {
    type State<P: Tree> = DiffGradState<P>;

    fn init<P: Tree>(&self, params: &P) -> DiffGradState<P> {
        DiffGradState {
            step: step_zero(),
            m: zeros_like_tree(params),
            v: zeros_like_tree(params),
            prev_grad: zeros_like_tree(params),
        }
    }

    fn update<P: Tree>(&self, grads: &P, state: &DiffGradState<P>, params: &P) -> (P, DiffGradState<P>) {
        let l = leaves_of("DiffGrad", &[params, grads, &state.m, &state.v, &state.prev_grad]);
        let t = step_number(&state.step);
        let lr = self.lr.at(&state.step);
        let bc1 = -(t.scalar_like(self.b1).pow(&t)) + 1.0;
        let bc2 = -(t.scalar_like(self.b2).pow(&t)) + 1.0;
        let (mut np, mut nm, mut nv, mut ng) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for x in &l {
            let (p, g, m, v, gp) = (&x[0], &x[1], &x[2], &x[3], &x[4]);
            if !p.dtype().is_float() {
                np.push(p.clone());
                nm.push(m.clone());
                nv.push(v.clone());
                ng.push(gp.clone());
                continue;
            }
            let d = p.dtype();
            let m = m * self.b1 + g * (1.0 - self.b1);
            let v = v * self.b2 + g.square() * (1.0 - self.b2);
            let xi = (gp - g).abs().sigmoid();
            let m_hat = &m / bc1.cast(d);
            let v_hat = &v / bc2.cast(d);
            np.push(p - lr.cast(d) * xi * m_hat / (v_hat.sqrt() + self.eps));
            nm.push(m);
            nv.push(v);
            ng.push(g.clone());
        }
        (
            params.rebuild_from(np),
            DiffGradState {
                step: &state.step + 1.0,
                m: state.m.rebuild_from(nm),
                v: state.v.rebuild_from(nv),
                prev_grad: state.prev_grad.rebuild_from(ng),
            },
        )
    }
}
