//! Gradient estimators for discrete choices: straight-through, Gumbel-softmax, straight-through
//! quantisation and ReinMax.
//!
//! A discrete sample has no derivative; these give it a surrogate one. The forward value is
//! the discrete (or quantised) value; the backward pass uses a chosen continuous relaxation.
//! The identity surrogates are [`custom_jvp`] rules (so they work in forward and reverse
//! mode and nest); the categorical ones follow their papers with [`Tensor::stop_gradient`].
//! Categories lie along the last axis; samples are one-hot in the logits' dtype.

use crate::control::custom_jvp;
use crate::{random, Tensor};

/// `hard(x)` in value, with the identity as derivative (the straight-through estimator of
/// Bengio et al. 2013): gradients pass through `hard` as if it were not there.
///
/// ```
/// use cotangent::{grad, nn, Tensor};
/// let f = |x: &Tensor| nn::straight_through(x, |x| x.round()).square().sum_all();
/// let x = Tensor::from_vec(vec![0.4, 1.6], &[2]);
/// // d/dx round(x)² with round' := 1: 2·round(x).
/// assert_eq!(grad(f)(&x).to_vec::<f64>(), vec![0.0, 4.0]);
/// ```
pub fn straight_through(x: &Tensor, hard: impl Fn(&Tensor) -> Tensor) -> Tensor {
    let f = custom_jvp(|x: &Tensor| hard(x), |x: &Tensor, t: &Tensor| (hard(x), t.clone()));
    f(x)
}

/// DoReFa-Net's k-bit quantiser with the straight-through derivative: `x` (expected in
/// `[0, 1]`, clamped there) rounded to the nearest of the `2^bits` levels
/// `0, 1/(2^bits − 1), …, 1`; the derivative is the identity (Zhou et al. 2016).
///
/// ```
/// use cotangent::{grad, nn, Tensor};
/// let x = Tensor::from_vec(vec![0.1, 0.4, 0.9], &[3]);
/// assert_eq!(nn::quantize_ste(&x, 2).to_vec::<f64>(), vec![0.0, 1.0 / 3.0, 1.0]);
/// let g = grad(|x: &Tensor| (nn::quantize_ste(x, 2) * 2.0).sum_all())(&x);
/// assert_eq!(g.to_vec::<f64>(), vec![2.0, 2.0, 2.0]);
/// ```
///
/// # Panics
/// If `bits` is 0 or above 32.
#[track_caller]
pub fn quantize_ste(x: &Tensor, bits: u32) -> Tensor {
    assert!((1..=32).contains(&bits), "quantize_ste: bits must be in 1..=32, got {bits}");
    let levels = ((1u64 << bits) - 1) as f64;
    straight_through(x, move |x| (x.clamp(0.0, 1.0) * levels).round() / levels)
}

/// A one-hot sample of the categorical distribution `softmax(logits)` (last axis), with the
/// straight-through derivative of `softmax(logits)` ("ST" with softmax backward).
///
/// ```
/// use cotangent::{nn, random, Tensor};
/// let d = nn::straight_through_softmax(&random::key(0), &Tensor::from_vec(vec![0.0, 5.0], &[2]));
/// assert_eq!(d.sum_all().item::<f64>(), 1.0);
/// ```
pub fn straight_through_softmax(key: &Tensor, logits: &Tensor) -> Tensor {
    straight_through_softmax_given(logits, &sample_one_hot(key, logits))
}

/// [`straight_through_softmax`] with the one-hot sample `d` given: value `d`, derivative that
/// of `softmax(logits)`: `d + π − stop_gradient(π)`.
///
/// ```
/// use cotangent::{grad, nn, DType, Tensor};
/// // θ = 0, D = e₀: ∇θ ⟨e₀, output⟩ = π₀ (e₀ − π) = (2/9, −1/9, −1/9).
/// let e0 = Tensor::from_vec(vec![1.0, 0.0, 0.0], &[3]);
/// let g = grad(|t: &Tensor| (nn::straight_through_softmax_given(t, &e0) * &e0).sum_all());
/// let g = g(&Tensor::zeros(&[3], DType::F64)).to_vec::<f64>();
/// assert!((g[0] - 2.0 / 9.0).abs() < 1e-15 && (g[1] + 1.0 / 9.0).abs() < 1e-15);
/// ```
pub fn straight_through_softmax_given(logits: &Tensor, d: &Tensor) -> Tensor {
    value_with_derivative_of(d, &logits.softmax(-1))
}

/// `value` in value, with the derivative of `soft`: the estimators' `soft − stop_gradient(soft)
/// + value`, as a [`custom_jvp`] rule so that the value is `value` exactly (the sum rounds).
fn value_with_derivative_of(value: &Tensor, soft: &Tensor) -> Tensor {
    let f = custom_jvp(
        |(_, v): &(Tensor, Tensor)| v.clone(),
        |(_, v): &(Tensor, Tensor), (ts, _): &(Tensor, Tensor)| (v.clone(), ts.clone()),
    );
    f(&(soft.clone(), value.stop_gradient()))
}

/// A Gumbel-softmax (concrete) sample at temperature `tau` (Jang et al. 2017; Maddison et
/// al. 2017): `softmax((logits + g) / tau)` with Gumbel noise `g`. With `hard`, the value is
/// the one-hot of its largest entry (a sample of `softmax(logits)`) and the derivative that
/// of the soft sample.
///
/// ```
/// use cotangent::{nn, random, Tensor};
/// let logits = Tensor::from_vec(vec![1.0, 2.0, 0.5], &[3]);
/// let soft = nn::gumbel_softmax(&random::key(0), &logits, 0.5, false);
/// assert!((soft.sum_all().item::<f64>() - 1.0).abs() < 1e-12);
/// let hard = nn::gumbel_softmax(&random::key(0), &logits, 0.5, true).to_vec::<f64>();
/// assert_eq!(hard.iter().sum::<f64>(), 1.0);
/// assert_eq!(hard.iter().filter(|&&v| v == 1.0).count(), 1);
/// ```
///
/// # Panics
/// If `tau` is not positive.
#[track_caller]
pub fn gumbel_softmax(key: &Tensor, logits: &Tensor, tau: f64, hard: bool) -> Tensor {
    assert!(tau > 0.0, "gumbel_softmax: the temperature must be positive, got {tau}");
    let g = gumbel(key, logits);
    let y = ((logits + g) / tau).softmax(-1);
    if !hard {
        return y;
    }
    let n = *logits.shape().last().expect("gumbel_softmax: logits need a category axis");
    let d = y.argmax(-1, false).one_hot(n, logits.dtype());
    value_with_derivative_of(&d, &y)
}

/// A one-hot sample of `softmax(logits)` with the ReinMax derivative (Liu et al. 2023,
/// "Bridging Discrete and Backpropagation: Straight-Through and Beyond", Algorithm 2), a
/// second-order accurate estimator where straight-through is first-order.
///
/// ```
/// use cotangent::{grad, nn, random, Tensor};
/// let logits = Tensor::from_vec(vec![0.5, -0.2, 1.0], &[3]);
/// let d = nn::reinmax(&random::key(0), &logits, 1.0);
/// assert_eq!(d.sum_all().item::<f64>(), 1.0);
/// let g = grad(|t: &Tensor| (nn::reinmax(&random::key(0), t, 1.0) * &d).sum_all())(&logits);
/// assert!(g.sum_all().item::<f64>().abs() < 1e-12); // softmax-like: gradients sum to zero
/// ```
///
/// # Panics
/// If `tau` is not positive.
#[track_caller]
pub fn reinmax(key: &Tensor, logits: &Tensor, tau: f64) -> Tensor {
    reinmax_given(logits, &sample_one_hot(key, logits), tau)
}

/// [`reinmax`] with the one-hot sample `d` given. With `π₀ = softmax(θ)`:
/// `π₁ = (D + softmax(θ/τ))/2`, `π₁ ← softmax(stop_gradient(ln π₁ − θ) + θ)`,
/// `π₂ = 2π₁ − π₀/2`, and the result is `π₂ − stop_gradient(π₂) + D` (computed as `D` in
/// value exactly, with the derivative of `π₂`).
///
/// ```
/// use cotangent::{grad, nn, DType, Tensor};
/// // The paper's setting at θ = 0, τ = 1, D = e₀: ∇θ ⟨e₀, output⟩ = (1/3, −1/6, −1/6).
/// let e0 = Tensor::from_vec(vec![1.0, 0.0, 0.0], &[3]);
/// let g = grad(|t: &Tensor| (nn::reinmax_given(t, &e0, 1.0) * &e0).sum_all());
/// let g = g(&Tensor::zeros(&[3], DType::F64)).to_vec::<f64>();
/// assert!((g[0] - 1.0 / 3.0).abs() < 1e-15 && (g[1] + 1.0 / 6.0).abs() < 1e-15);
/// ```
///
/// # Panics
/// If `tau` is not positive.
#[track_caller]
pub fn reinmax_given(logits: &Tensor, d: &Tensor, tau: f64) -> Tensor {
    assert!(tau > 0.0, "reinmax: the temperature must be positive, got {tau}");
    let pi0 = logits.softmax(-1);
    let pi1 = (d + (logits / tau).softmax(-1)) / 2.0;
    let pi1 = ((pi1.log() - logits).stop_gradient() + logits).softmax(-1);
    let pi2 = pi1 * 2.0 - pi0 / 2.0;
    value_with_derivative_of(d, &pi2)
}

/// Gumbel(0, 1) noise shaped like `logits`.
fn gumbel(key: &Tensor, logits: &Tensor) -> Tensor {
    let dtype = logits.dtype();
    let tiny = match dtype {
        crate::DType::F32 => f32::MIN_POSITIVE as f64,
        _ => f64::MIN_POSITIVE,
    };
    let u = random::uniform_range(key, &logits.shape(), tiny, 1.0, dtype);
    -(-u.log()).log()
}

/// A one-hot sample (in the logits' dtype) of `softmax(logits)` along the last axis.
fn sample_one_hot(key: &Tensor, logits: &Tensor) -> Tensor {
    let n = *logits.shape().last().expect("a categorical sample needs a category axis");
    random::categorical(key, logits, -1).one_hot(n, logits.dtype())
}
