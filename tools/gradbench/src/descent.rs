//! GradBench's gradient-descent driver (`cpp/gradbench/gd.hpp`), shared by the
//! particle and saddle evals, generic over how a point carries derivatives.
//!
//! The driver only reads concrete values (objective values, gradient norms,
//! step lengths) to decide what to do; everything it computes from the point is
//! delegated to a [`Descent`], so the same control flow serves a plain descent
//! ([`Plain`]) and descents whose iterates carry derivatives with respect to an
//! outer parameter (forward tangents or a reverse-mode tape of pullbacks).
//!
//! Every loop counts its iterations against a [`Budget`] shared by one run, so a
//! descent that does not converge (or a simulation that never ends) fails with an
//! error instead of running forever; so does a descent from a point where the
//! objective or its gradient is not finite.

use cotangent::Tensor;
use std::cell::Cell;

/// An allowance of loop iterations shared by all the loops of one run (nested
/// descents, simulations): each iteration spends one, and running out is an error.
///
/// ```
/// use gradbench_tool::descent::Budget;
/// let b = Budget::new(2);
/// assert!(b.spend("the loop").is_ok() && b.spend("the loop").is_ok());
/// assert!(b.spend("the loop").unwrap_err().contains("within 2 steps"));
/// assert_eq!(b.used(), 2);
/// ```
pub struct Budget {
    limit: usize,
    used: Cell<usize>,
}

impl Budget {
    /// A budget of `limit` iterations.
    pub fn new(limit: usize) -> Budget {
        Budget { limit, used: Cell::new(0) }
    }

    /// Spends one iteration of `what` (e.g. "the descent"), or fails if none is left.
    pub fn spend(&self, what: &str) -> Result<(), String> {
        let used = self.used.get();
        if used >= self.limit {
            return Err(format!(
                "{what} did not finish within {} steps (the limit of descent iterations and simulation steps per run)",
                self.limit
            ));
        }
        self.used.set(used + 1);
        Ok(())
    }

    /// The iterations spent so far.
    pub fn used(&self) -> usize {
        self.used.get()
    }
}

/// A minimisation problem as the driver sees it.
pub trait Descent {
    /// An iterate: its value plus whatever derivative information it carries.
    type Point;
    /// A gradient, likewise.
    type Grad;
    /// The concrete value of an iterate (a vector).
    fn value<'a>(&self, p: &'a Self::Point) -> &'a Tensor;
    /// The concrete value of a gradient.
    fn grad_value<'a>(&self, g: &'a Self::Grad) -> &'a Tensor;
    /// The objective at a concrete point; it only steers the descent.
    fn objective(&self, x: &Tensor) -> Result<f64, String>;
    /// The gradient of the objective at `p`.
    fn gradient(&self, p: &Self::Point) -> Result<Self::Grad, String>;
    /// The step `p - eta · g`.
    fn step(&self, p: &Self::Point, g: &Self::Grad, eta: f64) -> Self::Point;
}

fn magnitude(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

fn distance(u: &[f64], v: &[f64]) -> f64 {
    u.iter().zip(v).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt()
}

/// GradBench's `multivariate_argmin`: from `start`, with `eta = 1e-5`, stop when
/// `|grad| <= 1e-5`; after 10 accepted steps in a row double `eta`; otherwise try
/// `x' = x - eta·grad`, stop if `|x' - x| <= 1e-5`, accept it if the objective
/// decreases, else halve `eta`. Returns the last accepted point.
///
/// Each iteration spends one step of `budget`. Fails when the budget runs out,
/// when the objective at the start or a gradient is not finite (the descent could
/// never stop), or when the objective or gradient fails.
///
/// ```
/// use cotangent::Tensor;
/// use gradbench_tool::descent::{argmin, Budget, Plain};
/// let p = Plain::new(
///     |x: &Tensor| Ok((x - 3.0).square().sum_all().item::<f64>()),
///     |x: &Tensor| Ok((x - 3.0) * 2.0),
/// );
/// let x = argmin(&p, Tensor::from_vec(vec![0.0], &[1]), &Budget::new(10_000)).unwrap();
/// assert!((x.to_vec::<f64>()[0] - 3.0).abs() < 1e-4);
/// assert!(argmin(&p, Tensor::from_vec(vec![0.0], &[1]), &Budget::new(10)).is_err());
/// assert!(argmin(&p, Tensor::from_vec(vec![f64::INFINITY], &[1]), &Budget::new(10)).is_err());
/// ```
pub fn argmin<D: Descent>(d: &D, start: D::Point, budget: &Budget) -> Result<D::Point, String> {
    let mut x = start;
    let mut fx = d.objective(d.value(&x))?;
    if !fx.is_finite() {
        return Err(format!("the objective at the start of the descent is not finite ({fx})"));
    }
    let mut gx = d.gradient(&x)?;
    let mut i = 0;
    let mut eta = 1e-5;
    loop {
        budget.spend("the descent")?;
        let norm = magnitude(&d.grad_value(&gx).to_vec::<f64>());
        if !norm.is_finite() {
            return Err(format!("the gradient of the descent is not finite (norm {norm})"));
        }
        if norm <= 1e-5 {
            return Ok(x);
        }
        if i == 10 {
            eta *= 2.0;
            i = 0;
            continue;
        }
        let x_prime = d.step(&x, &gx, eta);
        let (xv, xpv) = (d.value(&x).to_vec::<f64>(), d.value(&x_prime).to_vec::<f64>());
        if distance(&xv, &xpv) <= 1e-5 {
            return Ok(x);
        }
        let fx_prime = d.objective(d.value(&x_prime))?;
        if fx_prime < fx {
            x = x_prime;
            fx = fx_prime;
            gx = d.gradient(&x)?;
            i += 1;
        } else {
            eta /= 2.0;
            i = 0;
        }
    }
}

/// A descent on concrete vectors: an objective and its gradient function (each may fail).
pub struct Plain<F, G> {
    objective: F,
    gradient: G,
}

impl<F: Fn(&Tensor) -> Result<f64, String>, G: Fn(&Tensor) -> Result<Tensor, String>> Plain<F, G> {
    /// The problem of minimising `objective`, whose gradient is `gradient`.
    pub fn new(objective: F, gradient: G) -> Self {
        Plain { objective, gradient }
    }
}

impl<F: Fn(&Tensor) -> Result<f64, String>, G: Fn(&Tensor) -> Result<Tensor, String>> Descent for Plain<F, G> {
    type Point = Tensor;
    type Grad = Tensor;
    fn value<'a>(&self, p: &'a Tensor) -> &'a Tensor {
        p
    }
    fn grad_value<'a>(&self, g: &'a Tensor) -> &'a Tensor {
        g
    }
    fn objective(&self, x: &Tensor) -> Result<f64, String> {
        (self.objective)(x)
    }
    fn gradient(&self, p: &Tensor) -> Result<Tensor, String> {
        (self.gradient)(p)
    }
    fn step(&self, p: &Tensor, g: &Tensor, eta: f64) -> Tensor {
        p - g * eta
    }
}
