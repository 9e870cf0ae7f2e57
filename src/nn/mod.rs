//! Neural-network layers, activations, initialisers and losses.
//!
//! Layers are plain structs that derive [`Tree`](crate::Tree): a model is just a
//! value, and its gradient is a value of the same type, with one leaf per
//! parameter named by its path (`layers.0.weight`), which is what
//! checkpoints store. Each layer has a `forward` method; layers that need
//! randomness (dropout) take a key, and layers with training state
//! ([`BatchNorm`]) return their updated state.
//!
//! ```
//! use cotangent::{grad, nn::{self, Activation, Mlp}, random, DType, Tensor};
//! let model = Mlp::new(&random::key(0), &[4, 16, 3], Activation::Relu, DType::F32);
//! let x = random::normal(&random::key(1), &[8, 4], DType::F32);
//! let y = Tensor::from_vec(vec![0i64, 1, 2, 0, 1, 2, 0, 1], &[8]);
//! let g = grad(|m: &Mlp| nn::cross_entropy(&m.forward(&x), &y))(&model);
//! assert_eq!(g.layers[0].weight.shape(), vec![4, 16]);
//! ```
//!
//! Every layer is built from primitives with derivative and batching rules, so
//! `grad`, `jvp`, `vmap` (per-example gradients) and higher derivatives of a
//! model need nothing layer-specific.

mod activation;
mod attention;
mod conv;
mod discrete;
mod dropout;
mod init;
mod linear;
mod loss;
mod norm;
mod sequential;

pub use activation::{gelu, leaky_relu, mish, relu, sigmoid, silu, sine, softplus, swish, tanh, Activation};
pub use attention::MultiHeadAttention;
pub use conv::{conv2d, AvgPool2d, Conv2d, MaxPool2d};
pub use discrete::{
    gumbel_softmax, quantize_ste, reinmax, reinmax_given, straight_through, straight_through_softmax,
    straight_through_softmax_given,
};
pub use dropout::Dropout;
pub use init::{fans, Init};
pub use linear::{Embedding, Linear};
pub use loss::{accuracy, binary_cross_entropy_with_logits, cross_entropy, cross_entropy_one_hot, huber, mse};
pub use norm::{BatchNorm, LayerNorm};
pub use sequential::{Layer, Mlp, Sequential};
