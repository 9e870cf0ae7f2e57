//! Activation functions, as free functions and as a [`Tree`](crate::Tree) value for
//! [`Sequential`](super::Sequential) models.
//!
//! All are compositions of primitives (see the `Tensor` methods they call), so
//! their derivatives, batching and compilation come free; each is written in a
//! form that stays finite for large `|x|`, and at ±inf returns the limits: silu, gelu
//! and mish give 0 (derivative 0) at -inf and +inf (derivative 1) at +inf, like relu and
//! softplus (JAX gives NaN for all three at -inf).

use crate::{Tensor, Tree};

/// An activation function as a value (a tree with no leaves).
///
/// ```
/// use cotangent::{nn::Activation, Tensor};
/// let x = Tensor::from_vec(vec![-1.0, 2.0], &[2]);
/// assert_eq!(Activation::Relu.apply(&x).to_vec::<f64>(), vec![0.0, 2.0]);
/// assert_eq!(Activation::LeakyRelu(0.5).apply(&x).to_vec::<f64>(), vec![-0.5, 2.0]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Tree)]
pub enum Activation {
    /// The identity.
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `x` for `x > 0`, `alpha · x` otherwise.
    LeakyRelu(#[tree(skip)] f64),
    /// Gaussian error linear unit (`true`: tanh approximation).
    Gelu(#[tree(skip)] bool),
    /// `x · sigmoid(x)`, also called swish.
    Silu,
    /// `x · tanh(softplus(x))`.
    Mish,
    /// `log(1 + eˣ)`.
    Softplus,
    /// `1 / (1 + e⁻ˣ)`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// `sin(w0 · x)`, the SIREN activation (initialise with [`Init::Siren`](super::Init::Siren)).
    Sine(#[tree(skip)] f64),
}

impl Activation {
    /// Applies the function element-wise.
    ///
    /// ```
    /// use cotangent::{nn::Activation, Tensor};
    /// let y = Activation::Sine(30.0).apply(&Tensor::scalar(0.0));
    /// assert_eq!(y.item::<f64>(), 0.0);
    /// ```
    #[track_caller]
    pub fn apply(&self, x: &Tensor) -> Tensor {
        match *self {
            Activation::Identity => x.clone(),
            Activation::Relu => relu(x),
            Activation::LeakyRelu(a) => leaky_relu(x, a),
            Activation::Gelu(approx) => gelu(x, approx),
            Activation::Silu => silu(x),
            Activation::Mish => mish(x),
            Activation::Softplus => softplus(x),
            Activation::Sigmoid => sigmoid(x),
            Activation::Tanh => tanh(x),
            Activation::Sine(w0) => sine(x, w0),
        }
    }
}

/// `max(x, 0)`, with derivative 0 at 0.
///
/// ```
/// use cotangent::{nn, Tensor};
/// assert_eq!(nn::relu(&Tensor::scalar(-3.0)).item::<f64>(), 0.0);
/// ```
#[track_caller]
pub fn relu(x: &Tensor) -> Tensor {
    x.relu()
}

/// `x` for `x > 0`, `alpha · x` otherwise.
///
/// ```
/// use cotangent::{nn, Tensor};
/// assert_eq!(nn::leaky_relu(&Tensor::scalar(-2.0), 0.01).item::<f64>(), -0.02);
/// ```
#[track_caller]
pub fn leaky_relu(x: &Tensor, alpha: f64) -> Tensor {
    x.leaky_relu(alpha)
}

/// GELU, exact (`x Φ(x)`) or with the tanh approximation.
///
/// ```
/// use cotangent::{nn, Tensor};
/// assert_eq!(nn::gelu(&Tensor::scalar(0.0), false).item::<f64>(), 0.0);
/// ```
#[track_caller]
pub fn gelu(x: &Tensor, approximate: bool) -> Tensor {
    x.gelu(approximate)
}

/// `x · sigmoid(x)`.
///
/// ```
/// use cotangent::{nn, Tensor};
/// let y = nn::silu(&Tensor::scalar(1.0)).item::<f64>();
/// assert!((y - 0.7310585786300049).abs() < 1e-15);
/// ```
#[track_caller]
pub fn silu(x: &Tensor) -> Tensor {
    x.silu()
}

/// Another name for [`silu`].
///
/// ```
/// use cotangent::{nn, Tensor};
/// let x = Tensor::scalar(0.3);
/// assert_eq!(nn::swish(&x).item::<f64>(), nn::silu(&x).item::<f64>());
/// ```
#[track_caller]
pub fn swish(x: &Tensor) -> Tensor {
    x.silu()
}

/// `x · tanh(softplus(x))`.
///
/// ```
/// use cotangent::{nn, Tensor};
/// assert_eq!(nn::mish(&Tensor::scalar(0.0)).item::<f64>(), 0.0);
/// ```
#[track_caller]
pub fn mish(x: &Tensor) -> Tensor {
    x.mish()
}

/// `log(1 + eˣ)`, stable for large `|x|`.
///
/// ```
/// use cotangent::{nn, Tensor};
/// assert_eq!(nn::softplus(&Tensor::scalar(1000.0f32)).item::<f32>(), 1000.0);
/// ```
#[track_caller]
pub fn softplus(x: &Tensor) -> Tensor {
    x.softplus()
}

/// The logistic sigmoid.
///
/// ```
/// use cotangent::{nn, Tensor};
/// assert_eq!(nn::sigmoid(&Tensor::scalar(0.0)).item::<f64>(), 0.5);
/// ```
#[track_caller]
pub fn sigmoid(x: &Tensor) -> Tensor {
    x.sigmoid()
}

/// The hyperbolic tangent.
///
/// ```
/// use cotangent::{nn, Tensor};
/// assert_eq!(nn::tanh(&Tensor::scalar(0.0)).item::<f64>(), 0.0);
/// ```
#[track_caller]
pub fn tanh(x: &Tensor) -> Tensor {
    x.tanh()
}

/// `sin(w0 · x)`: the SIREN activation (Sitzmann et al., 2020; `w0 = 30` in the paper).
///
/// ```
/// use cotangent::{nn, Tensor};
/// let y = nn::sine(&Tensor::scalar(0.01), 30.0).item::<f64>();
/// assert!((y - 0.3f64.sin()).abs() < 1e-15);
/// ```
#[track_caller]
pub fn sine(x: &Tensor, w0: f64) -> Tensor {
    (x * w0).sin()
}
