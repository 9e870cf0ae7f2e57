//! [`Dropout`]: random zeroing during training, keyed like every other random operation.

use crate::{random, Tensor, Tree};

/// Zeroes each element with probability `rate` during training and scales the rest by
/// `1 / (1 − rate)` (inverted dropout); the identity in evaluation.
///
/// The layer has no parameters (its tree has no leaves). Randomness comes from the key
/// passed to [`Dropout::forward`]: the same key drops the same elements.
///
/// ```
/// use cotangent::{nn::Dropout, random, DType, Tensor};
/// let d = Dropout::new(0.5);
/// let x = Tensor::ones(&[8], DType::F32);
/// assert_eq!(d.forward(&x, None).to_vec::<f32>(), vec![1.0; 8]); // evaluation
/// let y = d.forward(&x, Some(&random::key(0))).to_vec::<f32>();
/// assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Tree)]
pub struct Dropout {
    /// Probability of zeroing an element, in `[0, 1)`.
    #[tree(skip)]
    pub rate: f64,
}

impl Dropout {
    /// A dropout layer with the given rate.
    ///
    /// ```
    /// use cotangent::nn::Dropout;
    /// assert_eq!(Dropout::new(0.1).rate, 0.1);
    /// ```
    #[track_caller]
    pub fn new(rate: f64) -> Dropout {
        assert!((0.0..1.0).contains(&rate), "Dropout: rate must be in [0, 1), got {rate}");
        Dropout { rate }
    }

    /// Training (`Some(key)`) or evaluation (`None`).
    ///
    /// ```
    /// use cotangent::{nn::Dropout, random, DType, Tensor};
    /// let x = Tensor::ones(&[4], DType::F64);
    /// let k = random::key(3);
    /// let a = Dropout::new(0.3).forward(&x, Some(&k)).to_vec::<f64>();
    /// let b = Dropout::new(0.3).forward(&x, Some(&k)).to_vec::<f64>();
    /// assert_eq!(a, b);
    /// ```
    #[track_caller]
    pub fn forward(&self, x: &Tensor, key: Option<&Tensor>) -> Tensor {
        match key {
            Some(k) => random::dropout(k, x, self.rate),
            None => x.clone(),
        }
    }

    /// Training or evaluation chosen by a bool scalar `training` that may be traced (a
    /// value computed inside `jit`, or an argument of a jitted training step): the choice is
    /// a [`cond`](crate::control::cond), so one compiled function serves both modes and no
    /// Rust `if` reads a traced value. Only the chosen side runs.
    ///
    /// ```
    /// use cotangent::{jit, nn::Dropout, random, DType, Tensor};
    /// let d = Dropout::new(0.5);
    /// let step = jit(|(x, k, training): &(Tensor, Tensor, Tensor)| d.forward_switch(x, k, training));
    /// let x = Tensor::ones(&[8], DType::F64);
    /// let k = random::key(1);
    /// assert_eq!(step(&(x.clone(), k.clone(), Tensor::scalar(false))).to_vec::<f64>(), vec![1.0; 8]);
    /// let y = step(&(x, k, Tensor::scalar(true))).to_vec::<f64>();
    /// assert!(y.iter().all(|&v| v == 0.0 || v == 2.0) && y.contains(&0.0));
    /// ```
    ///
    /// # Panics
    /// If `training` is not a bool scalar.
    #[track_caller]
    pub fn forward_switch(&self, x: &Tensor, key: &Tensor, training: &Tensor) -> Tensor {
        let rate = self.rate;
        crate::control::cond(
            training,
            move |(x, k): &(Tensor, Tensor)| random::dropout(k, x, rate),
            |(x, _): &(Tensor, Tensor)| x.clone(),
            &(x.clone(), key.clone()),
        )
    }
}
