//! [`MultiHeadAttention`] (Vaswani et al., 2017).

use super::Linear;
use crate::{random, where_, DType, Tensor, Tree};

/// Multi-head scaled dot-product attention with learned projections.
///
/// Inputs are `[batch, length, dim]` (or `[length, dim]`). Each of the `heads` heads
/// attends with `dim / heads` features; an optional boolean `mask` of shape
/// `[lq, lk]` (or broadcastable to `[batch, heads, lq, lk]`) says which keys each query
/// may see (`true` = visible).
///
/// ```
/// use cotangent::{nn::MultiHeadAttention, random, DType, Tensor};
/// let mha = MultiHeadAttention::new(&random::key(0), 8, 2, DType::F32);
/// let x = random::normal(&random::key(1), &[3, 5, 8], DType::F32);
/// let y = mha.forward(&x, &x, &x, None);
/// assert_eq!(y.shape(), vec![3, 5, 8]);
/// ```
#[derive(Clone, Debug, Tree)]
pub struct MultiHeadAttention {
    /// Query projection.
    pub query: Linear,
    /// Key projection.
    pub key: Linear,
    /// Value projection.
    pub value: Linear,
    /// Output projection.
    pub output: Linear,
    /// Number of heads (divides the model dimension).
    #[tree(skip)]
    pub heads: usize,
}

impl MultiHeadAttention {
    /// Glorot-initialised projections of a `dim`-wide model with `heads` heads.
    ///
    /// ```
    /// use cotangent::{nn::MultiHeadAttention, random, DType};
    /// let m = MultiHeadAttention::new(&random::key(0), 16, 4, DType::F64);
    /// assert_eq!(m.query.weight.shape(), vec![16, 16]);
    /// ```
    #[track_caller]
    pub fn new(key: &Tensor, dim: usize, heads: usize, dtype: DType) -> MultiHeadAttention {
        assert!(
            heads > 0 && dim.is_multiple_of(heads),
            "MultiHeadAttention: {heads} heads must divide the dimension {dim}"
        );
        let k = random::split(key, 4);
        let lin = |i: isize| Linear::new(&k.index(i), dim, dim, dtype);
        MultiHeadAttention { query: lin(0), key: lin(1), value: lin(2), output: lin(3), heads }
    }

    /// `[b, l, d]` to `[b, heads, l, d / heads]`.
    fn split_heads(&self, x: &Tensor) -> Tensor {
        let s = x.shape();
        let (b, l, d) = (s[0], s[1], s[2]);
        x.reshape_to(&[b, l, self.heads, d / self.heads]).permute(&[0, 2, 1, 3])
    }

    /// Attends from `query` (`[b, lq, d]`) to `key`/`value` (`[b, lk, d]`).
    ///
    /// ```
    /// use cotangent::{nn::MultiHeadAttention, random, DType, Tensor};
    /// let mha = MultiHeadAttention::new(&random::key(0), 4, 2, DType::F64);
    /// let x = random::normal(&random::key(1), &[3, 4], DType::F64);
    /// // Causal mask: query i sees keys 0..=i.
    /// let causal = Tensor::iota(&[3, 3], 0, DType::I64).ge(&Tensor::iota(&[3, 3], 1, DType::I64));
    /// assert_eq!(mha.forward(&x, &x, &x, Some(&causal)).shape(), vec![3, 4]);
    /// ```
    #[track_caller]
    pub fn forward(&self, query: &Tensor, key: &Tensor, value: &Tensor, mask: Option<&Tensor>) -> Tensor {
        let single = query.rank() == 2;
        let lift = |t: &Tensor| {
            assert!(
                t.rank() == 3 || (single && t.rank() == 2),
                "MultiHeadAttention: expects [batch, length, dim] (or [length, dim]) inputs, got {}",
                t.ty()
            );
            if single {
                t.expand_dims(0)
            } else {
                t.clone()
            }
        };
        let (q, k, v) = (lift(query), lift(key), lift(value));
        let q = self.split_heads(&self.query.forward(&q));
        let k = self.split_heads(&self.key.forward(&k));
        let v = self.split_heads(&self.value.forward(&v));
        let dh = q.shape()[3] as f64;
        let mut scores = q.matmul(&k.swap_axes(-1, -2)) / dh.sqrt();
        if let Some(m) = mask {
            let neg = scores.scalar_like(match scores.dtype() {
                DType::F32 => -1e30,
                _ => -1e300,
            });
            let m = m.broadcast_to(&scores.shape());
            scores = where_(&m, &scores, &neg.broadcast_to(&scores.shape()));
        }
        let attn = scores.softmax(-1);
        let out = attn.matmul(&v); // [b, h, lq, dh]
        let s = out.shape();
        let merged = out.permute(&[0, 2, 1, 3]).reshape_to(&[s[0], s[2], s[1] * s[3]]);
        let y = self.output.forward(&merged);
        if single {
            y.squeeze(&[0])
        } else {
            y
        }
    }
}
