//! Forward gradients (Baydin et al., 2022): gradient estimates from one jvp, no reverse pass.

use super::stde::{draw, Distribution};
use crate::optim::Optimizer;
use crate::{jvp, random, Tensor, Tree};

/// The guess direction `v` of a forward gradient.
#[derive(Clone, Debug)]
pub enum Guess<A> {
    /// `v ~ N(0, I)`: `(∇f·v) v` is unbiased, with `E‖g‖² = (n + 2)‖∇f‖²` in `n` parameters.
    Gaussian,
    /// Independent ±1 entries: unbiased, with `E‖g‖² = n‖∇f‖²`.
    Rademacher,
    /// A user-supplied guess `u` (for instance the gradient of a local loss, as in Fournier et
    /// al., 2023, "Can forward gradient match backpropagation?"): the estimate is the projection
    /// of the gradient on `u`, `(∇f·u) u / ‖u‖²` — lower variance, and biased unless the guess
    /// is aligned with the gradient or random with `E[u uᵀ/‖u‖²] ∝ I`.
    Direction(A),
}

/// The unbiased forward gradient `(∇f·v) v` with `v ~ N(0, I)` over every float leaf of
/// `params`: `f(params)` and the estimate, from one jvp.
///
/// ```
/// use cotangent::{diffop::forward_grad, random, Tensor};
/// let x = Tensor::from_vec(vec![1.0, 2.0], &[2]);
/// let f = |x: &Tensor| (x * Tensor::from_vec(vec![3.0, -1.0], &[2])).sum_all();
/// let (y, g) = forward_grad(f, &x, &random::key(0));
/// assert_eq!(y.item::<f64>(), 1.0);
/// // g is parallel to the sampled direction and has the gradient's component along it.
/// assert_eq!(g.shape(), vec![2]);
/// ```
#[track_caller]
pub fn forward_grad<A: Tree>(f: impl Fn(&A) -> Tensor, params: &A, key: &Tensor) -> (Tensor, A) {
    forward_grad_with(f, params, key, &Guess::Gaussian)
}

/// [`forward_grad`] with the guess direction chosen by `guess` (the key is unused for
/// [`Guess::Direction`]). `f` must return a scalar.
///
/// ```
/// use cotangent::{diffop::{forward_grad_with, Guess}, random, Tensor};
/// let x = Tensor::from_vec(vec![1.0, 2.0], &[2]);
/// let f = |x: &Tensor| x.square().sum_all();
/// // Guessing the true gradient direction recovers the gradient.
/// let u = Tensor::from_vec(vec![1.0, 2.0], &[2]);
/// let (_, g) = forward_grad_with(f, &x, &random::key(0), &Guess::Direction(u));
/// assert!((&g - &Tensor::from_vec(vec![2.0, 4.0], &[2])).abs().sum_all().item::<f64>() < 1e-12);
/// ```
#[track_caller]
pub fn forward_grad_with<A: Tree>(f: impl Fn(&A) -> Tensor, params: &A, key: &Tensor, guess: &Guess<A>) -> (Tensor, A) {
    let leaves = params.leaves();
    let (v, scale) = match guess {
        Guess::Gaussian | Guess::Rademacher => {
            let dist = if matches!(guess, Guess::Gaussian) { Distribution::Gaussian } else { Distribution::Rademacher };
            let keys = random::split(key, leaves.len().max(1));
            let v: Vec<Tensor> = leaves
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    if p.dtype().is_float() {
                        draw(&keys.index(i as isize), 1, &p.shape(), p.dtype(), dist).squeeze(&[0])
                    } else {
                        p.zeros_like()
                    }
                })
                .collect();
            (v, None)
        }
        Guess::Direction(u) => {
            let u = u.leaves();
            assert!(
                u.len() == leaves.len(),
                "forward_grad_with: the guess has {} leaves, the parameters {}",
                u.len(),
                leaves.len()
            );
            let norm2 = u
                .iter()
                .filter(|t| t.dtype().is_float())
                .map(|t| t.square().sum_all().cast(crate::DType::F64))
                .reduce(|a, b| a + b)
                .expect("forward_grad_with: the parameters have no float leaf");
            (u, Some(norm2))
        }
    };
    let tangents = params.rebuild_from(v.clone());
    let (y, dd) = jvp(&f, params, &tangents);
    assert!(y.rank() == 0, "forward_grad: f must return a scalar, got {}", y.ty());
    let dd = match scale {
        Some(n2) => dd.cast(crate::DType::F64) / n2,
        None => dd.cast(crate::DType::F64),
    };
    let g: Vec<Tensor> =
        v.iter().map(|v| if v.dtype().is_float() { v * dd.cast(v.dtype()) } else { v.zeros_like() }).collect();
    (y, params.rebuild_from(g))
}

/// An optimiser driven by forward gradients: each step draws a guess, computes
/// [`forward_grad_with`] and hands it to the wrapped optimiser.
///
/// ```
/// use cotangent::{diffop::{ForwardGradient, Guess}, optim::Sgd, random, Tensor};
/// let opt = ForwardGradient::new(Sgd::new(0.05), Guess::Gaussian);
/// let mut w = Tensor::from_vec(vec![1.0, -1.0], &[2]);
/// let mut state = opt.init(&w);
/// let loss = |w: &Tensor| w.square().sum_all();
/// for step in 0..200 {
///     let (_, w2, s2) = opt.step(loss, &w, &state, &random::fold_in(&random::key(0), step));
///     (w, state) = (w2, s2);
/// }
/// assert!(loss(&w).item::<f64>() < 1e-2);
/// ```
#[derive(Clone, Debug)]
pub struct ForwardGradient<O, A> {
    /// The optimiser that applies the estimates.
    pub optimizer: O,
    /// How each step's direction is drawn.
    pub guess: Guess<A>,
}

impl<O: Optimizer, A: Tree> ForwardGradient<O, A> {
    /// Wraps `optimizer`, drawing directions by `guess`.
    ///
    /// ```
    /// use cotangent::{diffop::{ForwardGradient, Guess}, optim::Sgd, Tensor};
    /// let opt: ForwardGradient<Sgd, Tensor> = ForwardGradient::new(Sgd::new(0.1), Guess::Rademacher);
    /// assert!(matches!(opt.guess, Guess::Rademacher));
    /// ```
    pub fn new(optimizer: O, guess: Guess<A>) -> Self {
        ForwardGradient { optimizer, guess }
    }

    /// The wrapped optimiser's initial state.
    ///
    /// ```
    /// use cotangent::{diffop::{ForwardGradient, Guess}, optim::Sgd, Tensor};
    /// let opt = ForwardGradient::new(Sgd::new(0.1), Guess::Gaussian);
    /// let _state = opt.init(&Tensor::scalar(1.0));
    /// ```
    pub fn init(&self, params: &A) -> O::State<A> {
        self.optimizer.init(params)
    }

    /// One step: the loss at `params`, the new parameters and the new state.
    ///
    /// ```
    /// use cotangent::{diffop::{ForwardGradient, Guess}, optim::Sgd, random, Tensor};
    /// let opt = ForwardGradient::new(Sgd::new(0.1), Guess::Direction(Tensor::scalar(1.0)));
    /// let w = Tensor::scalar(3.0);
    /// let (loss, w, _) = opt.step(|w: &Tensor| w.square(), &w, &opt.init(&w), &random::key(0));
    /// assert_eq!((loss.item::<f64>(), w.item::<f64>()), (9.0, 3.0 - 0.1 * 6.0));
    /// ```
    #[track_caller]
    pub fn step(
        &self,
        f: impl Fn(&A) -> Tensor,
        params: &A,
        state: &O::State<A>,
        key: &Tensor,
    ) -> (Tensor, A, O::State<A>) {
        let (loss, g) = forward_grad_with(f, params, key, &self.guess);
        let (p, s) = self.optimizer.update(&g, state, params);
        (loss, p, s)
    }
}
