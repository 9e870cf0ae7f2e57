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

use cotangent::{control, where_, Tensor};
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

    /// The iterations left.
    pub fn remaining(&self) -> usize {
        self.limit - self.used.get()
    }

    /// Spends `n` iterations of `what` at once (failing where [`Budget::spend`] would).
    pub fn spend_many(&self, what: &str, n: usize) -> Result<(), String> {
        if n > self.remaining() {
            self.used.set(self.limit);
            return self.spend(what);
        }
        self.used.set(self.used.get() + n);
        Ok(())
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
/// use cotangent::{control, where_, Tensor};
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

/// What an evaluation inside [`argmin_loop`] returns, on traced values: its value, the loop
/// iterations it took (an `f64` scalar, counted against the budget) and whether it succeeded
/// (an `f64` scalar, 1 or 0).
pub type Counted = (Tensor, Tensor, Tensor);

/// How [`argmin_loop`] ended (its third result).
pub mod status {
    /// The descent converged.
    pub const OK: f64 = 0.0;
    /// The objective at the start is not finite.
    pub const START_NOT_FINITE: f64 = 1.0;
    /// A gradient is not finite.
    pub const GRADIENT_NOT_FINITE: f64 = 2.0;
    /// An objective or gradient evaluation failed (returned success 0).
    pub const EVALUATION_FAILED: f64 = 3.0;
}

/// [`argmin`] as one `control::while_loop` on traced values, so that `jit` compiles the
/// whole descent once (GradBench's particle runs through it).
///
/// Same decisions as [`argmin`]; `objective` and `gradient` report the iterations they took
/// and whether they succeeded ([`Counted`]). Runs until convergence, a failure, or once more
/// than `limit` iterations (its own and the evaluations') have been spent. Returns the last
/// accepted point, the iterations spent (`f64`) and a [`status`] code (`f64`); the caller
/// charges the iterations to its [`Budget`] and turns the status into an error.
///
/// ```
/// use cotangent::{jit, Tensor};
/// use gradbench_tool::descent::{argmin_loop, status};
/// let one = || Tensor::scalar(1.0);
/// let run = jit(|x: &Tensor| {
///     argmin_loop(&|x: &Tensor| ((x - 3.0).square().sum_all(), one(), one()), &|x: &Tensor| ((x - 3.0) * 2.0, one(), one()), x, 100_000)
/// });
/// let (x, steps, code) = run(&Tensor::from_vec(vec![0.0], &[1]));
/// assert!((x.to_vec::<f64>()[0] - 3.0).abs() < 1e-4);
/// assert!(steps.item::<f64>() > 2.0 && code.item::<f64>() == status::OK);
/// ```
pub fn argmin_loop(
    objective: &dyn Fn(&Tensor) -> Counted,
    gradient: &dyn Fn(&Tensor) -> Counted,
    start: &Tensor,
    limit: usize,
) -> Counted {
    argmin_loop_in(objective, gradient, start, limit, false)
}

/// [`argmin_loop`] as a `control::while_loop_bounded` (at most `limit` iterations), which
/// reverse mode can differentiate: GradBench's saddle differentiates its inner descent.
pub fn argmin_loop_bounded(
    objective: &dyn Fn(&Tensor) -> Counted,
    gradient: &dyn Fn(&Tensor) -> Counted,
    start: &Tensor,
    limit: usize,
) -> Counted {
    argmin_loop_in(objective, gradient, start, limit, true)
}

fn argmin_loop_in(
    objective: &dyn Fn(&Tensor) -> Counted,
    gradient: &dyn Fn(&Tensor) -> Counted,
    start: &Tensor,
    limit: usize,
    bounded: bool,
) -> Counted {
    let zero = || Tensor::scalar(0.0);
    let finite = |t: &Tensor| t.lt(f64::INFINITY);
    let (fx, s0, ok0) = objective(start);
    let code = where_(&ok0.eq(0.0), &Tensor::scalar(status::EVALUATION_FAILED), &zero());
    let code =
        where_(&finite(&fx).logical_not().logical_and(&code.eq(0.0)), &Tensor::scalar(status::START_NOT_FINITE), &code);
    let (gx, s1, ok1) = control::cond(
        &code.eq(0.0),
        gradient,
        |x: &Tensor| (x.zeros_like(), Tensor::scalar(0.0), Tensor::scalar(1.0)),
        start,
    );
    let code = where_(&ok1.eq(0.0), &Tensor::scalar(status::EVALUATION_FAILED), &code);
    // State: x, f(x), ∇f(x), accepted steps in a row, eta, done, iterations, status.
    let done = code.ne(0.0).cast(cotangent::DType::F64);
    let init = ((start.clone(), fx, gx), (zero(), Tensor::scalar(1e-5), done, s0 + s1, code));
    type State = ((Tensor, Tensor, Tensor), (Tensor, Tensor, Tensor, Tensor, Tensor));
    let max_steps = limit.saturating_add(1);
    let limit = limit as f64;
    let run = |c: &dyn Fn(&State) -> Tensor, b: &dyn Fn(&State) -> State, init: &State| {
        if bounded {
            control::while_loop_bounded(c, b, init, max_steps)
        } else {
            control::while_loop(c, b, init)
        }
    };
    let ((x, _, _), (_, _, _, steps, code)) = run(
        &|s: &State| s.1 .2.eq(0.0).logical_and(&s.1 .3.le(limit)),
        &|((x, fx, gx), (i, eta, _, steps, code)): &State| {
            let steps = steps + 1.0;
            let norm = gx.square().sum_all().sqrt();
            let bad = finite(&norm).logical_not();
            let stop1 = bad.logical_or(&norm.le(1e-5));
            let double = stop1.logical_not().logical_and(&i.eq(10.0));
            let xp = x - gx * eta;
            let dist = (&xp - x).square().sum_all().sqrt();
            let stop2 = stop1.logical_or(&double).logical_not().logical_and(&dist.le(1e-5));
            let proceed = stop1.logical_or(&double).logical_or(&stop2).logical_not();
            let keep_f = |_: &Tensor| (fx.clone(), zero(), Tensor::scalar(1.0));
            let (fxp, sf, okf) = control::cond(&proceed, objective, keep_f, &xp);
            let accept = proceed.logical_and(&fxp.lt(fx));
            let keep_g = |_: &Tensor| (gx.clone(), zero(), Tensor::scalar(1.0));
            let (gxp, sg, okg) = control::cond(&accept, gradient, keep_g, &xp);
            let fail = okf.eq(0.0).logical_or(&okg.eq(0.0));
            let i_next = where_(&double, &zero(), &where_(&accept, &(i + 1.0), &where_(&proceed, &zero(), i)));
            let eta_next =
                where_(&double, &(eta * 2.0), &where_(&proceed.logical_and(&accept.logical_not()), &(eta / 2.0), eta));
            let done = stop1.logical_or(&stop2).logical_or(&fail).cast(cotangent::DType::F64);
            let code = where_(&bad, &Tensor::scalar(status::GRADIENT_NOT_FINITE), code);
            let code = where_(&fail, &Tensor::scalar(status::EVALUATION_FAILED), &code);
            (
                (where_(&accept, &xp, x), where_(&accept, &fxp, fx), where_(&accept, &gxp, gx)),
                (i_next, eta_next, done, steps + sf + sg, code),
            )
        },
        &init,
    );
    (x, steps, code)
}
