//! Activation functions and normalisers built from primitives, so their
//! derivatives, batching and compilation come from the primitives' rules.
//! Each is written in a form that does not overflow for |x| = 1000 in f32, and returns the
//! mathematical limits (values and derivatives) at ±inf where those exist.

use super::elementwise::{where_, AsOperand};
use super::structure::axis_of;
use crate::Tensor;
use std::f64::consts::{FRAC_1_SQRT_2, PI};

impl Tensor {
    /// `max(x, 0)`, with derivative 0 at 0 (a select, not `maximum`, which would split the tie).
    /// NaN stays NaN, like `jax.nn.relu`.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![-1.0, 0.0, 2.0], &[3]);
    /// assert_eq!(x.relu().to_vec::<f64>(), vec![0.0, 0.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn relu(&self) -> Tensor {
        where_(&self.le(0.0), &self.scalar_like(0.0), self)
    }

    /// `x` for `x > 0`, `alpha · x` otherwise.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![-2.0, 3.0], &[2]);
    /// assert_eq!(x.leaky_relu(0.1).to_vec::<f64>(), vec![-0.2, 3.0]);
    /// ```
    #[track_caller]
    pub fn leaky_relu(&self, alpha: f64) -> Tensor {
        where_(&self.gt(0.0), self, &(self * alpha))
    }

    /// `log(1 + e^x)`, computed as `max(x, 0) + log1p(e^-|x|)`. At -inf: 0 with derivative 0;
    /// at +inf: inf with derivative 1.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![-1000.0f32, 0.0, 1000.0], &[3]);
    /// let y = x.softplus().to_vec::<f32>();
    /// assert_eq!(y[0], 0.0);
    /// assert!((y[1] - 2f32.ln()).abs() < 1e-7);
    /// assert_eq!(y[2], 1000.0);
    /// ```
    #[track_caller]
    pub fn softplus(&self) -> Tensor {
        self.maximum(0.0) + (-self.abs()).exp().log1p()
    }

    /// The Gaussian error linear unit: exact `x Φ(x)`, or the tanh approximation.
    /// At -inf: 0 with derivative 0; at +inf: inf with derivative 1 (both forms; JAX gives NaN
    /// at -inf). Beyond |x| = 20 the tanh form is `relu(x)`, which it equals there in floating
    /// point, so `x³` never overflows into a NaN derivative.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::scalar(1.0);
    /// assert!((x.gelu(false).item::<f64>() - 0.8413447460685429).abs() < 1e-15);
    /// assert!((x.gelu(true).item::<f64>() - 0.8411919906082768).abs() < 1e-15);
    /// ```
    #[track_caller]
    pub fn gelu(&self, approximate: bool) -> Tensor {
        if approximate {
            relu_beyond(self, &self.abs().lt(20.0), |x| {
                let inner = (x + x.powf(3.0) * 0.044715) * (2.0 / PI).sqrt();
                x * 0.5 * (inner.tanh() + 1.0)
            })
        } else {
            relu_beyond(self, &self.is_finite(), |x| x * 0.5 * ((x * FRAC_1_SQRT_2).erf() + 1.0))
        }
    }

    /// `x · sigmoid(x)` (also called swish). At -inf: 0 with derivative 0; at +inf: inf with
    /// derivative 1 (JAX gives NaN at -inf and NaN derivatives at ±inf).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::scalar(0.0).silu().item::<f64>(), 0.0);
    /// ```
    #[track_caller]
    pub fn silu(&self) -> Tensor {
        relu_beyond(self, &self.is_finite(), |x| x * x.sigmoid())
    }

    /// `x · tanh(softplus(x))`. At -inf: 0 with derivative 0; at +inf: inf with derivative 1
    /// (JAX gives NaN at -inf).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert!((Tensor::scalar(1.0).mish().item::<f64>() - 0.8650983882673103).abs() < 1e-15);
    /// ```
    #[track_caller]
    pub fn mish(&self) -> Tensor {
        relu_beyond(self, &self.is_finite(), |x| x * x.softplus().tanh())
    }

    /// Softmax along `axis`, shifted by the maximum. A slice holding +inf gives probability 1
    /// there (split equally between tied +inf entries) and 0 elsewhere, with derivative 0 (the
    /// limit; JAX gives NaN); -inf entries get 0; an all -inf slice is 0/0: NaN, like JAX.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let p = Tensor::from_vec(vec![1000.0f32, 1000.0], &[2]).softmax(-1);
    /// assert_eq!(p.to_vec::<f32>(), vec![0.5, 0.5]);
    /// let p = Tensor::from_vec(vec![f32::INFINITY, 0.0], &[2]).softmax(-1);
    /// assert_eq!(p.to_vec::<f32>(), vec![1.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn softmax(&self, axis: isize) -> Tensor {
        axis_of("softmax", axis, self.rank());
        let e = self.shift_by_max(&[axis]).0.exp();
        &e / e.sum(&[axis], true)
    }

    /// `log(softmax(x))` along `axis`, as `s - log(sum(exp(s)))` with `s = x - max(x)` (like
    /// JAX), so large inputs keep full precision. A slice holding one +inf gives 0 there, with
    /// derivative 0 (the limit; JAX gives NaN), and -inf elsewhere; those -inf outputs have
    /// derivative 1 with respect to their own input and, unlike the limit `x_j − x_inf`, 0 with
    /// respect to the +inf entry (carrying it would cost a second pass over the slice). Tied
    /// +inf entries give `−log k`. An all -inf slice gives NaN, like JAX.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let l = Tensor::from_vec(vec![0.0f32, -1000.0], &[2]).log_softmax(0).to_vec::<f32>();
    /// assert_eq!(l, vec![0.0, -1000.0]);
    /// let l = Tensor::from_vec(vec![f32::INFINITY, 0.0], &[2]).log_softmax(0).to_vec::<f32>();
    /// assert_eq!(l, vec![0.0, f32::NEG_INFINITY]);
    /// ```
    #[track_caller]
    pub fn log_softmax(&self, axis: isize) -> Tensor {
        axis_of("log_softmax", axis, self.rank());
        let shifted = self.shift_by_max(&[axis]).0;
        &shifted - shifted.exp().sum(&[axis], true).log()
    }

    /// Softmax along the last axis (JAX's default `axis=-1`); see [`Tensor::softmax`].
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![0.0, 0.0, 1.0, 1.0], &[2, 2]);
    /// assert_eq!(x.softmax_last().to_vec::<f64>(), vec![0.5; 4]);
    /// ```
    #[track_caller]
    pub fn softmax_last(&self) -> Tensor {
        self.softmax(-1)
    }

    /// `log(softmax(x))` along the last axis (JAX's default `axis=-1`); see [`Tensor::log_softmax`].
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let l = Tensor::from_vec(vec![0.0f32, 0.0], &[2]).log_softmax_last().to_vec::<f32>();
    /// assert_eq!(l, vec![-2f32.ln(); 2]);
    /// ```
    #[track_caller]
    pub fn log_softmax_last(&self) -> Tensor {
        self.log_softmax(-1)
    }

    /// Clamps into `[lo, hi]`; at a boundary the derivative is split like `maximum`/`minimum`.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![-2.0, 0.5, 2.0], &[3]);
    /// assert_eq!(x.clamp(-1.0, 1.0).to_vec::<f64>(), vec![-1.0, 0.5, 1.0]);
    /// ```
    #[track_caller]
    pub fn clamp(&self, lo: f64, hi: f64) -> Tensor {
        assert!(lo <= hi, "clamp: lower bound {lo} exceeds upper bound {hi}");
        self.maximum(lo).minimum(hi)
    }

    /// `minimum(maximum(x, lo), hi)` with bounds that are numbers or tensors (broadcast), like
    /// `jnp.clip`. Where `lo > hi` the result is `hi`, as in numpy. At a boundary the
    /// derivative is split like `maximum`/`minimum`.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![-2.0, 0.5, 2.0], &[3]);
    /// let hi = Tensor::from_vec(vec![0.0, 0.0, 1.5], &[3]);
    /// assert_eq!(x.clip(-1.0, &hi).to_vec::<f64>(), vec![-1.0, 0.0, 1.5]);
    /// ```
    #[track_caller]
    pub fn clip(&self, lo: impl AsOperand, hi: impl AsOperand) -> Tensor {
        self.maximum(lo).minimum(hi)
    }
}

/// `f(x)` where `inside`, and `max(x, 0)` elsewhere: the limit, value and derivative, of
/// silu, gelu and mish at ±inf (NaN stays NaN). `f` sees 0 in place of the other entries, so
/// its derivative never meets `inf · 0` (the "double where": the outer select alone would
/// route a zero cotangent into that NaN).
fn relu_beyond(x: &Tensor, inside: &Tensor, f: impl Fn(&Tensor) -> Tensor) -> Tensor {
    let safe = where_(inside, x, &x.scalar_like(0.0));
    where_(inside, &f(&safe), &x.maximum(0.0))
}
