//! Weight initialisers: Glorot (Xavier), He (Kaiming), LeCun and SIREN.
//!
//! Each draws from a key, for a weight of any shape whose fan-in and fan-out
//! the caller states (for a [`Linear`](super::Linear) weight `[in, out]` they
//! are `in` and `out`; for a [`Conv2d`](super::Conv2d) weight `[o, c, kh, kw]`,
//! `c·kh·kw` and `o·kh·kw`; [`fans`] computes both). The `*_normal` variants
//! use a normal truncated at two standard deviations, rescaled so that the
//! variance is the stated one (as JAX's `variance_scaling` does).

use crate::{random, DType, Tensor};

/// How to initialise a weight tensor.
///
/// ```
/// use cotangent::{nn::Init, random, DType};
/// let w = Init::HeNormal.sample(&random::key(0), &[64, 32], 64, 32, DType::F32);
/// assert_eq!(w.shape(), vec![64, 32]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// All zeros.
    Zeros,
    /// Uniform in `[-a, a]`.
    Uniform(f64),
    /// Normal with this standard deviation.
    Normal(f64),
    /// Glorot/Xavier uniform: `U(±√(6 / (fan_in + fan_out)))`.
    GlorotUniform,
    /// Glorot/Xavier normal: variance `2 / (fan_in + fan_out)`.
    GlorotNormal,
    /// He/Kaiming uniform (for ReLU): `U(±√(6 / fan_in))`.
    HeUniform,
    /// He/Kaiming normal: variance `2 / fan_in`.
    HeNormal,
    /// LeCun uniform (for SELU, tanh): `U(±√(3 / fan_in))`.
    LecunUniform,
    /// LeCun normal: variance `1 / fan_in`.
    LecunNormal,
    /// SIREN (Sitzmann et al., 2020) for `sin(w0 · x)` layers: the first layer is
    /// `U(±1 / fan_in)`, later ones `U(±√(6 / fan_in) / w0)`.
    Siren {
        /// The frequency factor `w0` of the layer's sine (30 in the paper).
        w0: f64,
        /// Whether this is the network's first layer.
        first: bool,
    },
}

/// Standard deviation of a standard normal truncated to `[-2, 2]`.
const TRUNC_STD: f64 = 0.879_625_661_034_239_8;

impl Init {
    /// A tensor of `shape` drawn from this initialiser.
    ///
    /// ```
    /// use cotangent::{nn::Init, random, DType};
    /// let w = Init::GlorotUniform.sample(&random::key(1), &[100, 100], 100, 100, DType::F64);
    /// let bound = (6.0f64 / 200.0).sqrt();
    /// assert!(w.to_vec::<f64>().iter().all(|x| x.abs() <= bound));
    /// ```
    #[track_caller]
    pub fn sample(&self, key: &Tensor, shape: &[usize], fan_in: usize, fan_out: usize, dtype: DType) -> Tensor {
        let (fi, fo) = (fan_in.max(1) as f64, fan_out.max(1) as f64);
        let uniform = |a: f64| random::uniform_range(key, shape, -a, a, dtype);
        let normal = |std: f64| random::truncated_normal(key, -2.0, 2.0, shape, dtype) * (std / TRUNC_STD);
        match *self {
            Init::Zeros => Tensor::zeros(shape, dtype),
            Init::Uniform(a) => uniform(a),
            Init::Normal(std) => random::normal(key, shape, dtype) * std,
            Init::GlorotUniform => uniform((6.0 / (fi + fo)).sqrt()),
            Init::GlorotNormal => normal((2.0 / (fi + fo)).sqrt()),
            Init::HeUniform => uniform((6.0 / fi).sqrt()),
            Init::HeNormal => normal((2.0 / fi).sqrt()),
            Init::LecunUniform => uniform((3.0 / fi).sqrt()),
            Init::LecunNormal => normal((1.0 / fi).sqrt()),
            Init::Siren { w0, first } => {
                if first {
                    uniform(1.0 / fi)
                } else {
                    uniform((6.0 / fi).sqrt() / w0)
                }
            }
        }
    }
}

/// `(fan_in, fan_out)` of a weight: `[in, out]` for rank 2; for rank ≥ 3 the layout
/// `[out, in, k...]` of convolutions, each fan multiplied by the receptive field.
///
/// ```
/// use cotangent::nn::fans;
/// assert_eq!(fans(&[64, 10]), (64, 10));
/// assert_eq!(fans(&[16, 8, 3, 3]), (72, 144));
/// ```
pub fn fans(shape: &[usize]) -> (usize, usize) {
    match shape.len() {
        0 => (1, 1),
        1 => (shape[0], shape[0]),
        2 => (shape[0], shape[1]),
        _ => {
            let field: usize = shape[2..].iter().product();
            (shape[1] * field, shape[0] * field)
        }
    }
}
