//! Normalisation layers: [`LayerNorm`] and [`BatchNorm`].

use crate::{DType, Tensor, Tree};

/// Normalises over the trailing `shape` axes of the input to zero mean and unit
/// variance, then scales and shifts element-wise (Ba et al., 2016).
///
/// ```
/// use cotangent::{nn::LayerNorm, DType, Tensor};
/// let ln = LayerNorm::new(&[3], DType::F64);
/// let y = ln.forward(&Tensor::from_vec(vec![1.0, 2.0, 3.0], &[1, 3]));
/// let v = y.to_vec::<f64>();
/// assert!(v.iter().sum::<f64>().abs() < 1e-12);
/// ```
#[derive(Clone, Debug, Tree)]
pub struct LayerNorm {
    /// Scale, of the normalised shape (none: no scale).
    pub weight: Option<Tensor>,
    /// Shift, of the normalised shape (none: no shift).
    pub bias: Option<Tensor>,
    /// The trailing shape normalised over.
    #[tree(skip)]
    pub shape: Vec<usize>,
    /// Added to the variance before the square root.
    #[tree(skip)]
    pub eps: f64,
}

impl LayerNorm {
    /// A layer over trailing axes of `shape`, with unit scale, zero shift and `eps = 1e-5`.
    ///
    /// ```
    /// use cotangent::{nn::LayerNorm, DType};
    /// let ln = LayerNorm::new(&[4], DType::F32);
    /// assert_eq!(ln.weight.unwrap().shape(), vec![4]);
    /// ```
    pub fn new(shape: &[usize], dtype: DType) -> LayerNorm {
        LayerNorm {
            weight: Some(Tensor::ones(shape, dtype)),
            bias: Some(Tensor::zeros(shape, dtype)),
            shape: shape.to_vec(),
            eps: 1e-5,
        }
    }

    /// Normalises `x`, whose trailing axes must equal the layer's shape.
    ///
    /// ```
    /// use cotangent::{nn::LayerNorm, DType, Tensor};
    /// let y = LayerNorm::new(&[2], DType::F32).forward(&Tensor::from_vec(vec![0.0f32, 2.0], &[2]));
    /// assert!((y.to_vec::<f32>()[1] - 1.0).abs() < 1e-4);
    /// ```
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let s = x.shape();
        let k = self.shape.len();
        assert!(
            s.len() >= k && s[s.len() - k..] == self.shape[..],
            "LayerNorm: input {} does not end with the normalised shape {:?}",
            x.ty(),
            self.shape
        );
        let axes: Vec<isize> = (0..k).map(|i| -(i as isize) - 1).rev().collect();
        let mean = x.mean(&axes, true);
        let centred = x - &mean;
        let var = centred.square().mean(&axes, true);
        let mut y = centred * (var + self.eps).rsqrt();
        if let Some(w) = &self.weight {
            y = y * w;
        }
        if let Some(b) = &self.bias {
            y = y + b;
        }
        y
    }
}

/// Batch normalisation over the channel axis 1 of `[n, c, ...]` inputs (Ioffe & Szegedy,
/// 2015), with running statistics for evaluation.
///
/// In training ([`BatchNorm::forward_train`]) the batch's own mean and (biased) variance
/// normalise it, and the layer returns a copy of itself whose running statistics moved
/// towards the batch's (`running = (1 − momentum)·running + momentum·batch`, with the
/// unbiased variance, as PyTorch does). In evaluation ([`BatchNorm::forward`]) the running
/// statistics are used.
///
/// The running statistics are leaves of the tree, so they are saved in checkpoints; they
/// are cut from differentiation, so their gradient is zero. In a training step take the
/// gradient with [`grad_with_aux`](crate::grad_with_aux), returning the updated layer as
/// auxiliary output, and copy its statistics into the model after the optimiser step.
///
/// ```
/// use cotangent::{nn::BatchNorm, DType, Tensor};
/// let bn = BatchNorm::new(2, DType::F64);
/// let x = Tensor::from_vec(vec![1.0, 10.0, 3.0, 30.0], &[2, 2]);
/// let (y, bn) = bn.forward_train(&x);
/// assert_eq!(y.to_vec::<f64>().iter().map(|v| v.round()).collect::<Vec<_>>(), vec![-1.0, -1.0, 1.0, 1.0]);
/// assert!((bn.running_mean.to_vec::<f64>()[0] - 0.2).abs() < 1e-12);
/// ```
#[derive(Clone, Debug, Tree)]
pub struct BatchNorm {
    /// Per-channel scale.
    pub weight: Tensor,
    /// Per-channel shift.
    pub bias: Tensor,
    /// Running mean, used in evaluation.
    pub running_mean: Tensor,
    /// Running (unbiased) variance, used in evaluation.
    pub running_var: Tensor,
    /// Weight of the new batch in the running statistics.
    #[tree(skip)]
    pub momentum: f64,
    /// Added to the variance before the square root.
    #[tree(skip)]
    pub eps: f64,
}

impl BatchNorm {
    /// A layer over `channels` channels: unit scale, zero shift, running mean 0 and
    /// variance 1, `momentum = 0.1`, `eps = 1e-5`.
    ///
    /// ```
    /// use cotangent::{nn::BatchNorm, DType};
    /// assert_eq!(BatchNorm::new(8, DType::F32).running_var.to_vec::<f32>(), vec![1.0; 8]);
    /// ```
    pub fn new(channels: usize, dtype: DType) -> BatchNorm {
        BatchNorm {
            weight: Tensor::ones(&[channels], dtype),
            bias: Tensor::zeros(&[channels], dtype),
            running_mean: Tensor::zeros(&[channels], dtype),
            running_var: Tensor::ones(&[channels], dtype),
            momentum: 0.1,
            eps: 1e-5,
        }
    }

    /// Shape `[1, c, 1, ...]` that broadcasts a per-channel vector against `x`.
    #[track_caller]
    fn per_channel(&self, x: &Tensor, v: &Tensor) -> Tensor {
        let r = x.rank();
        let c = self.weight.shape()[0];
        assert!(r >= 2 && x.shape()[1] == c, "BatchNorm: expects [n, {c}, ...] inputs, got {}", x.ty());
        let mut shape = vec![1; r];
        shape[1] = c;
        v.reshape_to(&shape)
    }

    fn reduce_axes(x: &Tensor) -> Vec<isize> {
        (0..x.rank() as isize).filter(|&a| a != 1).collect()
    }

    /// Training mode: normalises with the batch statistics; returns the output and the
    /// layer with updated running statistics.
    ///
    /// ```
    /// use cotangent::{nn::BatchNorm, DType, Tensor};
    /// let x = Tensor::from_vec(vec![0.0f32, 2.0, 4.0, 6.0], &[2, 1, 2]);
    /// let (y, _) = BatchNorm::new(1, DType::F32).forward_train(&x);
    /// assert_eq!(y.shape(), vec![2, 1, 2]);
    /// ```
    #[track_caller]
    pub fn forward_train(&self, x: &Tensor) -> (Tensor, BatchNorm) {
        let axes = Self::reduce_axes(x);
        let count: usize = axes.iter().map(|&a| x.shape()[a as usize]).product();
        let mean = x.mean(&axes, false);
        let var = x.var(&axes, 0, false);
        let y = (x - self.per_channel(x, &mean)) * self.per_channel(x, &(&var + self.eps).rsqrt());
        let y = y * self.per_channel(x, &self.weight) + self.per_channel(x, &self.bias);
        let m = self.momentum;
        let unbiased = if count > 1 { &var * (count as f64 / (count - 1) as f64) } else { var.clone() };
        let mut next = self.clone();
        next.running_mean = (&self.running_mean * (1.0 - m) + mean.stop_gradient() * m).stop_gradient();
        next.running_var = (&self.running_var * (1.0 - m) + unbiased.stop_gradient() * m).stop_gradient();
        (y, next)
    }

    /// Evaluation mode: normalises with the running statistics.
    ///
    /// ```
    /// use cotangent::{nn::BatchNorm, DType, Tensor};
    /// let x = Tensor::from_vec(vec![1.0, 2.0], &[1, 2]);
    /// let y = BatchNorm::new(2, DType::F64).forward(&x).to_vec::<f64>();
    /// assert!((y[1] - 2.0 / (1.0f64 + 1e-5).sqrt()).abs() < 1e-12);
    /// ```
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let scale = &self.weight * (self.running_var.stop_gradient() + self.eps).rsqrt();
        let shift = &self.bias - self.running_mean.stop_gradient() * &scale;
        x * self.per_channel(x, &scale) + self.per_channel(x, &shift)
    }
}
