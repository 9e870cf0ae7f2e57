//! Learning-rate schedules.

use crate::{where_, DType, Tensor};

/// A learning rate as a function of the step count (the number of updates already made,
/// starting at 0).
///
/// Schedules are evaluated with tensor operations on the step counter of the optimiser
/// state, so a step function can be traced (and compiled) once with the counter as an
/// input. Any `f64` converts into a constant schedule.
///
/// ```
/// use cotangent::optim::Schedule;
/// let s = Schedule::warmup(10, Schedule::cosine(1e-3, 100, 0.0));
/// assert!((s.value(4) - 5e-4).abs() < 1e-12); // (4 + 1) / 10 of the peak
/// assert!((s.value(10) - 1e-3).abs() < 1e-12); // cosine starts
/// assert!(s.value(110).abs() < 1e-12); // and ends at 0
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    /// The same rate at every step.
    Constant(f64),
    /// `init · gamma^⌊step / every⌋`.
    Step {
        /// Rate before the first decay.
        init: f64,
        /// Steps between decays.
        every: usize,
        /// Factor applied at each decay.
        gamma: f64,
    },
    /// Cosine decay from `init` to `init · alpha` over `steps` steps, then constant:
    /// `init · ((1 − alpha) · ½(1 + cos(π · min(step, steps) / steps)) + alpha)`.
    Cosine {
        /// Rate at step 0.
        init: f64,
        /// Length of the decay.
        steps: usize,
        /// Final rate as a fraction of `init`.
        alpha: f64,
    },
    /// Linear warm-up: `then(0) · (step + 1) / steps` for the first `steps` steps, then
    /// `then(step − steps)`.
    Warmup {
        /// Length of the warm-up.
        steps: usize,
        /// The schedule that follows (its step count starts at 0 after the warm-up).
        then: Box<Schedule>,
    },
}

impl From<f64> for Schedule {
    fn from(lr: f64) -> Schedule {
        Schedule::Constant(lr)
    }
}

impl Schedule {
    /// Step decay: multiply by `gamma` every `every` steps.
    ///
    /// ```
    /// use cotangent::optim::Schedule;
    /// let s = Schedule::step(1.0, 10, 0.5);
    /// assert_eq!((s.value(9), s.value(10), s.value(25)), (1.0, 0.5, 0.25));
    /// ```
    pub fn step(init: f64, every: usize, gamma: f64) -> Schedule {
        assert!(every > 0, "Schedule::step: `every` must be positive");
        Schedule::Step { init, every, gamma }
    }

    /// Cosine decay to `init · alpha` over `steps` steps.
    ///
    /// ```
    /// use cotangent::optim::Schedule;
    /// let s = Schedule::cosine(1.0, 10, 0.1);
    /// assert!((s.value(5) - 0.55).abs() < 1e-12);
    /// assert!((s.value(50) - 0.1).abs() < 1e-12);
    /// ```
    pub fn cosine(init: f64, steps: usize, alpha: f64) -> Schedule {
        assert!(steps > 0, "Schedule::cosine: `steps` must be positive");
        Schedule::Cosine { init, steps, alpha }
    }

    /// Linear warm-up over `steps` steps into `then`.
    ///
    /// ```
    /// use cotangent::optim::Schedule;
    /// let s = Schedule::warmup(4, 0.1.into());
    /// assert!((s.value(0) - 0.025).abs() < 1e-12);
    /// assert_eq!(s.value(7), 0.1);
    /// ```
    pub fn warmup(steps: usize, then: Schedule) -> Schedule {
        assert!(steps > 0, "Schedule::warmup: `steps` must be positive");
        Schedule::Warmup { steps, then: Box::new(then) }
    }

    /// The rate at `step` (a 0-d tensor of any numeric dtype, possibly traced), as a 0-d
    /// `f64` tensor.
    ///
    /// ```
    /// use cotangent::{optim::Schedule, Tensor};
    /// let lr = Schedule::step(1.0, 2, 0.1).at(&Tensor::scalar(3i64));
    /// assert!((lr.item::<f64>() - 0.1).abs() < 1e-15);
    /// ```
    #[track_caller]
    pub fn at(&self, step: &Tensor) -> Tensor {
        let t = step.cast(DType::F64);
        match self {
            Schedule::Constant(lr) => t.scalar_like(*lr),
            Schedule::Step { init, every, gamma } => {
                let k = (&t / *every as f64).floor();
                t.scalar_like(*gamma).pow(&k) * *init
            }
            Schedule::Cosine { init, steps, alpha } => {
                let frac = t.minimum(*steps as f64) / *steps as f64;
                let cos = ((frac * std::f64::consts::PI).cos() + 1.0) * 0.5;
                (cos * (1.0 - alpha) + *alpha) * *init
            }
            Schedule::Warmup { steps, then } => {
                let w = *steps as f64;
                let warm = then.at(&t.scalar_like(0.0)) * ((&t + 1.0) / w);
                let after = then.at(&(&t - w).maximum(0.0));
                where_(&t.lt(w), &warm, &after)
            }
        }
    }

    /// The rate at a concrete step.
    ///
    /// ```
    /// use cotangent::optim::Schedule;
    /// assert_eq!(Schedule::Constant(0.01).value(1000), 0.01);
    /// ```
    pub fn value(&self, step: u64) -> f64 {
        self.at(&Tensor::scalar(step as i64)).item::<f64>()
    }
}
