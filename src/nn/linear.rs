//! Dense layers: [`Linear`] and [`Embedding`].

use super::Init;
use crate::{random, DType, Tensor, Tree};

/// `y = x · W + b` over the last axis of `x`, with `W` of shape `[in, out]`.
///
/// ```
/// use cotangent::{nn::Linear, random, DType, Tensor, Tree};
/// let layer = Linear::new(&random::key(0), 3, 2, DType::F32);
/// let y = layer.forward(&Tensor::ones(&[5, 3], DType::F32));
/// assert_eq!(y.shape(), vec![5, 2]);
/// let names: Vec<String> = layer.named_leaves().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, vec!["weight", "bias"]);
/// ```
#[derive(Clone, Debug, Tree)]
pub struct Linear {
    /// `[in, out]`.
    pub weight: Tensor,
    /// `[out]`, or none.
    pub bias: Option<Tensor>,
}

impl Linear {
    /// A layer with Glorot-uniform weights and a zero bias.
    ///
    /// ```
    /// use cotangent::{nn::Linear, random, DType};
    /// let l = Linear::new(&random::key(0), 4, 8, DType::F64);
    /// assert_eq!(l.weight.shape(), vec![4, 8]);
    /// ```
    #[track_caller]
    pub fn new(key: &Tensor, d_in: usize, d_out: usize, dtype: DType) -> Linear {
        Self::with_init(key, d_in, d_out, Init::GlorotUniform, true, dtype)
    }

    /// A layer with weights from `init` and, if `bias`, a zero bias.
    ///
    /// ```
    /// use cotangent::{nn::{Init, Linear}, random, DType};
    /// let l = Linear::with_init(&random::key(0), 4, 8, Init::HeNormal, false, DType::F32);
    /// assert!(l.bias.is_none());
    /// ```
    #[track_caller]
    pub fn with_init(key: &Tensor, d_in: usize, d_out: usize, init: Init, bias: bool, dtype: DType) -> Linear {
        Linear {
            weight: init.sample(key, &[d_in, d_out], d_in, d_out, dtype),
            bias: bias.then(|| Tensor::zeros(&[d_out], dtype)),
        }
    }

    /// Applies the layer to `x` of shape `[..., in]`, giving `[..., out]`.
    ///
    /// ```
    /// use cotangent::{nn::Linear, Tensor};
    /// let l = Linear { weight: Tensor::from_vec(vec![1.0, 2.0], &[2, 1]), bias: Some(Tensor::from_vec(vec![0.5], &[1])) };
    /// assert_eq!(l.forward(&Tensor::from_vec(vec![3.0, 4.0], &[2])).to_vec::<f64>(), vec![11.5]);
    /// ```
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let y = x.matmul(&self.weight);
        match &self.bias {
            Some(b) => y + b,
            None => y,
        }
    }
}

/// A lookup table: integer ids `[...]` to vectors `[..., dim]`.
///
/// ```
/// use cotangent::{nn::Embedding, random, DType, Tensor};
/// let emb = Embedding::new(&random::key(0), 10, 4, DType::F32);
/// let ids = Tensor::from_vec(vec![1i64, 7, 7], &[3]);
/// assert_eq!(emb.forward(&ids).shape(), vec![3, 4]);
/// ```
#[derive(Clone, Debug, Tree)]
pub struct Embedding {
    /// `[vocab, dim]`.
    pub weight: Tensor,
}

impl Embedding {
    /// A table of standard normal vectors (as PyTorch initialises it).
    ///
    /// ```
    /// use cotangent::{nn::Embedding, random, DType};
    /// assert_eq!(Embedding::new(&random::key(0), 5, 3, DType::F64).weight.shape(), vec![5, 3]);
    /// ```
    #[track_caller]
    pub fn new(key: &Tensor, vocab: usize, dim: usize, dtype: DType) -> Embedding {
        Embedding { weight: random::normal(key, &[vocab, dim], dtype) }
    }

    /// The rows of the table for integer `ids` (out-of-range ids are clamped).
    ///
    /// ```
    /// use cotangent::{nn::Embedding, Tensor};
    /// let e = Embedding { weight: Tensor::from_vec(vec![0.0, 1.0, 2.0, 3.0], &[2, 2]) };
    /// assert_eq!(e.forward(&Tensor::scalar(1i64)).to_vec::<f64>(), vec![2.0, 3.0]);
    /// ```
    #[track_caller]
    pub fn forward(&self, ids: &Tensor) -> Tensor {
        self.weight.take(ids, 0)
    }
}
