//! Stacks of layers: [`Sequential`] (any [`Layer`]s) and [`Mlp`] (dense layers).

use super::{Activation, AvgPool2d, Conv2d, Dropout, Embedding, LayerNorm, Linear, MaxPool2d};
use crate::{random, DType, Tensor, Tree};

/// One layer of a [`Sequential`] model. Each variant's parameters take the layer's
/// place in the tree paths (`layers.0.weight`).
///
/// [`BatchNorm`](super::BatchNorm) is not a variant: its training step returns updated
/// statistics, which a plain chain of layers has no way to hand back. Compose it by hand.
///
/// ```
/// use cotangent::{nn::{Layer, Linear}, random, DType, Tree};
/// let layers = vec![Layer::Flatten, Layer::Linear(Linear::new(&random::key(0), 4, 2, DType::F32))];
/// let names: Vec<String> = layers.named_leaves().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, vec!["1.weight", "1.bias"]);
/// ```
#[derive(Clone, Debug, Tree)]
pub enum Layer {
    /// A dense layer.
    Linear(Linear),
    /// A 2-D convolution.
    Conv2d(Conv2d),
    /// Layer normalisation.
    LayerNorm(LayerNorm),
    /// An embedding lookup (integer inputs).
    Embedding(Embedding),
    /// Max pooling.
    MaxPool2d(MaxPool2d),
    /// Average pooling.
    AvgPool2d(AvgPool2d),
    /// Dropout (active only in [`Sequential::forward_train`]).
    Dropout(Dropout),
    /// An element-wise activation.
    Activation(Activation),
    /// Flattens everything after the first (batch) axis.
    Flatten,
}

impl Layer {
    /// Applies the layer; `key` enables dropout.
    ///
    /// ```
    /// use cotangent::{nn::{Activation, Layer}, Tensor};
    /// let y = Layer::Activation(Activation::Relu).forward(&Tensor::scalar(-1.0), None);
    /// assert_eq!(y.item::<f64>(), 0.0);
    /// ```
    #[track_caller]
    pub fn forward(&self, x: &Tensor, key: Option<&Tensor>) -> Tensor {
        match self {
            Layer::Linear(l) => l.forward(x),
            Layer::Conv2d(l) => l.forward(x),
            Layer::LayerNorm(l) => l.forward(x),
            Layer::Embedding(l) => l.forward(x),
            Layer::MaxPool2d(l) => l.forward(x),
            Layer::AvgPool2d(l) => l.forward(x),
            Layer::Dropout(l) => l.forward(x, key),
            Layer::Activation(a) => a.apply(x),
            Layer::Flatten => {
                let s = x.shape();
                let rest: usize = s[1..].iter().product();
                x.reshape_to(&[s[0], rest])
            }
        }
    }
}

/// Layers applied in order.
///
/// ```
/// use cotangent::{nn::{Activation, Layer, Linear, Sequential}, random, DType, Tensor, Tree};
/// let k = random::split(&random::key(0), 2);
/// let model = Sequential::new(vec![
///     Layer::Linear(Linear::new(&k.index(0), 4, 8, DType::F32)),
///     Layer::Activation(Activation::Gelu(false)),
///     Layer::Linear(Linear::new(&k.index(1), 8, 2, DType::F32)),
/// ]);
/// assert_eq!(model.forward(&Tensor::ones(&[3, 4], DType::F32)).shape(), vec![3, 2]);
/// assert_eq!(model.named_leaves()[2].0, "layers.2.weight");
/// ```
#[derive(Clone, Debug, Tree)]
pub struct Sequential {
    /// The layers, first to last.
    pub layers: Vec<Layer>,
}

impl Sequential {
    /// A model from its layers.
    ///
    /// ```
    /// use cotangent::nn::{Layer, Sequential};
    /// assert_eq!(Sequential::new(vec![Layer::Flatten]).layers.len(), 1);
    /// ```
    pub fn new(layers: Vec<Layer>) -> Sequential {
        Sequential { layers }
    }

    /// Evaluation: every layer in order, dropout off.
    ///
    /// ```
    /// use cotangent::{nn::{Layer, Sequential}, DType, Tensor};
    /// let m = Sequential::new(vec![Layer::Flatten]);
    /// assert_eq!(m.forward(&Tensor::ones(&[2, 3, 4], DType::F32)).shape(), vec![2, 12]);
    /// ```
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.layers.iter().fold(x.clone(), |h, l| l.forward(&h, None))
    }

    /// Training: dropout layer `i` draws from `fold_in(key, i)`.
    ///
    /// ```
    /// use cotangent::{nn::{Dropout, Layer, Sequential}, random, DType, Tensor};
    /// let m = Sequential::new(vec![Layer::Dropout(Dropout::new(0.5))]);
    /// let y = m.forward_train(&Tensor::ones(&[100], DType::F32), &random::key(0));
    /// assert!(y.to_vec::<f32>().iter().any(|&v| v == 0.0));
    /// ```
    #[track_caller]
    pub fn forward_train(&self, x: &Tensor, key: &Tensor) -> Tensor {
        self.layers.iter().enumerate().fold(x.clone(), |h, (i, l)| {
            let k = matches!(l, Layer::Dropout(_)).then(|| random::fold_in(key, i as i64));
            l.forward(&h, k.as_ref())
        })
    }
}

/// A multilayer perceptron: dense layers with an activation between them (not after
/// the last).
///
/// ```
/// use cotangent::{nn::{Activation, Mlp}, random, DType, Tensor, Tree};
/// let mlp = Mlp::new(&random::key(0), &[64, 128, 10], Activation::Relu, DType::F32);
/// assert_eq!(mlp.forward(&Tensor::ones(&[5, 64], DType::F32)).shape(), vec![5, 10]);
/// let names: Vec<String> = mlp.named_leaves().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, vec!["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"]);
/// ```
#[derive(Clone, Debug, Tree)]
pub struct Mlp {
    /// The dense layers.
    pub layers: Vec<Linear>,
    /// Applied after every layer but the last.
    #[tree(skip)]
    pub activation: Activation,
}

impl Mlp {
    /// Layers of widths `sizes[0] → sizes[1] → …`, He-uniform initialised for ReLU-like
    /// activations, Glorot-uniform otherwise, and SIREN-initialised for [`Activation::Sine`].
    ///
    /// ```
    /// use cotangent::{nn::{Activation, Mlp}, random, DType};
    /// let siren = Mlp::new(&random::key(0), &[2, 32, 1], Activation::Sine(30.0), DType::F64);
    /// assert_eq!(siren.layers.len(), 2);
    /// ```
    #[track_caller]
    pub fn new(key: &Tensor, sizes: &[usize], activation: Activation, dtype: DType) -> Mlp {
        assert!(sizes.len() >= 2, "Mlp: needs at least an input and an output width");
        let n = sizes.len() - 1;
        let keys = random::split(key, n);
        let layers = (0..n)
            .map(|i| {
                let init = match activation {
                    Activation::Relu | Activation::LeakyRelu(_) | Activation::Gelu(_) => super::Init::HeUniform,
                    Activation::Sine(w0) => super::Init::Siren { w0, first: i == 0 },
                    _ => super::Init::GlorotUniform,
                };
                Linear::with_init(&keys.index(i as isize), sizes[i], sizes[i + 1], init, true, dtype)
            })
            .collect();
        Mlp { layers, activation }
    }

    /// Applies the network to `[..., sizes[0]]`.
    ///
    /// ```
    /// use cotangent::{nn::{Activation, Mlp}, random, DType, Tensor};
    /// let m = Mlp::new(&random::key(0), &[3, 1], Activation::Tanh, DType::F64);
    /// assert_eq!(m.forward(&Tensor::ones(&[3], DType::F64)).shape(), vec![1]);
    /// ```
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let last = self.layers.len() - 1;
        self.layers.iter().enumerate().fold(x.clone(), |h, (i, l)| {
            let y = l.forward(&h);
            if i < last {
                self.activation.apply(&y)
            } else {
                y
            }
        })
    }
}
