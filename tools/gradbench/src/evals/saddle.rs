//! `saddle`: a saddle point of `f(a, b) = |a|² - |b|²` by nested optimisation,
//! `a* = argminₐ maxᵦ f(a, b)`, then `b* = argmaxᵦ f(a*, b)`, with the outer and
//! inner derivatives each in forward or reverse mode.
//!
//! The outer descent needs the gradient of `a ↦ maxᵦ f(a, b)`, where the max is
//! itself GradBench's gradient descent on `b`: a loop with data-dependent exits
//! and accept/reject decisions. In forward outer mode the whole computation is one
//! compiled function ([`saddle_loop`]: `control::while_loop`s on traced values). In
//! reverse outer mode ([`saddle`], faster than reverse mode through the bounded inner
//! loop's checkpointing) the inner descent runs in Rust on concrete values while its
//! iterates carry their derivative with respect to `a` (see [`crate::descent`]):
//!
//! - forward ([`Tangents`]): each operation of the descent (the inner gradient,
//!   the step `b - η g`) is a `jvp`, vectorised over the two directions of `a`
//!   with `vmap` ([`jvp_dirs`]);
//! - reverse ([`Tape`]): each operation is recorded on a tape with the point it was
//!   taken at; the final value's pullback then runs back through the accepted
//!   iterates (rejected proposals get no cotangent and are skipped), each gradient
//!   step by one compiled pullback of the inner gradient ([`inner_gradient_pullback`]),
//!   each step `b - η g` by its transpose.
//!
//! The inner gradient `∇ᵦ(-f)` is `grad` or `jacfwd` (see [`gradient`]), so the
//! outer `jvp`/`vjp` of each step differentiates through it: nested AD.

use super::{gradient, jvp_dirs, unknown_function, Mode, Output, Run, MODE_FUNCTIONS};
use crate::descent::{argmin, argmin_loop, argmin_loop_bounded, status, Budget, Counted, Descent, Plain};
use crate::input::{expect_shape, vector};
use crate::limits::Limits;
use cotangent::{concatenate, jit, vjp, where_, DType, Tensor};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// `f(a, b) = |a|² - |b|²`.
pub fn f(a: &Tensor, b: &Tensor) -> Tensor {
    a.square().sum_all() - b.square().sum_all()
}

/// A function `f(a, b)` whose max over `b` is taken by descent (the eval's is [`f`]).
pub type Objective = fn(&Tensor, &Tensor) -> Tensor;

type InnerGradient = Rc<dyn Fn(&(Tensor, Tensor)) -> Tensor>;

thread_local! {
    /// One compiled inner gradient per objective and mode, shared by every descent step
    /// (inside another transformation `jit` is transparent, so this is only a cache).
    static INNER_GRADIENTS: RefCell<HashMap<(usize, bool), InnerGradient>> = RefCell::new(HashMap::new());
}

/// `∇ᵦ(-f(a, b))`, the gradient of the inner (maximisation as minimisation) problem.
fn inner_gradient(f: Objective, inner: Mode, a: &Tensor, b: &Tensor) -> Tensor {
    let key = (f as usize, matches!(inner, Mode::Forward));
    let compiled = INNER_GRADIENTS.with(|c| {
        c.borrow_mut()
            .entry(key)
            .or_insert_with(|| Rc::new(jit(move |(a, b): &(Tensor, Tensor)| gradient(inner, b, |b: &Tensor| -f(a, b)))))
            .clone()
    });
    compiled(&(a.clone(), b.clone()))
}

type Compiled2 = Rc<dyn Fn(&(Tensor, Tensor)) -> Tensor>;

thread_local! {
    /// One compiled `-f(a, b)` per objective (see [`negated`]).
    static NEGATED: RefCell<HashMap<usize, Compiled2>> = RefCell::new(HashMap::new());
}

/// `-f(a, b)` as a number: the inner descent's objective, by one compiled call (the
/// objective runs at every iteration of every descent; eagerly it was six operations).
fn negated(f: Objective, a: &Tensor, b: &Tensor) -> f64 {
    let compiled = NEGATED.with(|c| {
        c.borrow_mut()
            .entry(f as usize)
            .or_insert_with(|| Rc::new(jit(move |(a, b): &(Tensor, Tensor)| -f(a, b))))
            .clone()
    });
    compiled(&(a.clone(), b.clone())).item::<f64>()
}

type InnerPullback = Rc<dyn Fn(&(Tensor, Tensor, Tensor)) -> (Tensor, Tensor)>;

thread_local! {
    /// One compiled pullback of the inner gradient per objective and mode (see
    /// [`inner_gradient_pullback`]).
    static INNER_PULLBACKS: RefCell<HashMap<(usize, bool), InnerPullback>> = RefCell::new(HashMap::new());
}

/// The pullback of `(a, b) ↦ ∇ᵦ(-f(a, b))` at `(a, b)` applied to `ct`: `(ā, b̄)`. One
/// compiled function for every step of every descent (the tape used to trace a `vjp` per
/// step and keep its pullback).
fn inner_gradient_pullback(f: Objective, inner: Mode, a: &Tensor, b: &Tensor, ct: &Tensor) -> (Tensor, Tensor) {
    let key = (f as usize, matches!(inner, Mode::Forward));
    let compiled = INNER_PULLBACKS.with(|c| {
        c.borrow_mut()
            .entry(key)
            .or_insert_with(|| {
                Rc::new(jit(move |(a, b, ct): &(Tensor, Tensor, Tensor)| {
                    let g = |(a, b): &(Tensor, Tensor)| gradient(inner, b, |b: &Tensor| -f(a, b));
                    vjp(g, &(a.clone(), b.clone())).1.call(ct)
                }))
            })
            .clone()
    });
    compiled(&(a.clone(), b.clone(), ct.clone()))
}

/// `argmaxᵦ f(a, b)` from `start`, on concrete values.
fn inner_argmax(f: Objective, inner: Mode, a: &Tensor, start: &Tensor, budget: &Budget) -> Result<Tensor, String> {
    let problem = Plain::new(|b: &Tensor| Ok(negated(f, a, b)), |b: &Tensor| Ok(inner_gradient(f, inner, a, b)));
    argmin(&problem, start.clone(), budget)
}

/// The inner descent with iterates carrying tangents with respect to `a`
/// along every direction at once: a point is `(b, db)` with `db` of shape `[dirs, 2]`.
pub struct Tangents {
    f: Objective,
    inner: Mode,
    a: Tensor,
    /// The tangent of `a` along each direction, `[dirs, 2]`.
    da: Tensor,
}

impl Descent for Tangents {
    type Point = (Tensor, Tensor);
    type Grad = (Tensor, Tensor);
    fn value<'a>(&self, p: &'a (Tensor, Tensor)) -> &'a Tensor {
        &p.0
    }
    fn grad_value<'a>(&self, g: &'a (Tensor, Tensor)) -> &'a Tensor {
        &g.0
    }
    fn objective(&self, b: &Tensor) -> Result<f64, String> {
        Ok(negated(self.f, &self.a, b))
    }
    fn gradient(&self, (b, db): &(Tensor, Tensor)) -> Result<(Tensor, Tensor), String> {
        let (f, inner) = (self.f, self.inner);
        Ok(jvp_dirs(
            |(a, b): &(Tensor, Tensor)| inner_gradient(f, inner, a, b),
            &(self.a.clone(), b.clone()),
            &(self.da.clone(), db.clone()),
        ))
    }
    fn step(&self, (b, db): &(Tensor, Tensor), (g, dg): &(Tensor, Tensor), eta: f64) -> (Tensor, Tensor) {
        jvp_dirs(|(b, g): &(Tensor, Tensor)| b - g * eta, &(b.clone(), g.clone()), &(db.clone(), dg.clone()))
    }
}

/// One recorded operation of the inner descent, with the tape positions of its
/// inputs (`None`: the starting point, which does not depend on `a`).
enum Entry {
    /// `g = ∇ᵦ(-f)(a, b)` at the point `at` (pulled back to `(a, b)` by
    /// [`inner_gradient_pullback`] at that point).
    Gradient { at: Tensor, b: Option<usize> },
    /// `b' = b - η g`, pulled back to `(b̄', -η b̄')`.
    Step { eta: f64, b: Option<usize>, g: usize },
}

/// The inner descent recording a reverse-mode tape: a point or gradient is its
/// value and its position on the tape.
pub struct Tape {
    f: Objective,
    inner: Mode,
    a: Tensor,
    entries: RefCell<Vec<Entry>>,
}

impl Tape {
    fn record(&self, e: Entry) -> usize {
        let mut entries = self.entries.borrow_mut();
        entries.push(e);
        entries.len() - 1
    }

    /// The cotangent of `a` given the cotangent `ct` of the tape value at `at`:
    /// runs the pullbacks back from `at`, summing cotangents where values fan out.
    fn backward(&self, at: Option<usize>, ct: Tensor) -> Tensor {
        let mut da = self.a.zeros_like();
        let Some(at) = at else { return da };
        let entries = self.entries.borrow();
        let mut cts: Vec<Option<Tensor>> = vec![None; entries.len()];
        cts[at] = Some(ct);
        let add = |cts: &mut Vec<Option<Tensor>>, i: Option<usize>, c: Tensor| {
            if let Some(i) = i {
                cts[i] = Some(match cts[i].take() {
                    Some(prev) => prev + c,
                    None => c,
                });
            }
        };
        for i in (0..=at).rev() {
            let Some(c) = cts[i].take() else { continue };
            match &entries[i] {
                Entry::Gradient { at, b } => {
                    let (ca, cb) = inner_gradient_pullback(self.f, self.inner, &self.a, at, &c);
                    da = da + ca;
                    add(&mut cts, *b, cb);
                }
                Entry::Step { eta, b, g } => {
                    // The transpose of `b - g * η`: `b̄ = c`, `ḡ = (-c) * η` (as `vjp` had it).
                    let cg = -&c * *eta;
                    add(&mut cts, *b, c);
                    add(&mut cts, Some(*g), cg);
                }
            }
        }
        da
    }
}

impl Descent for Tape {
    type Point = (Tensor, Option<usize>);
    type Grad = (Tensor, usize);
    fn value<'a>(&self, p: &'a (Tensor, Option<usize>)) -> &'a Tensor {
        &p.0
    }
    fn grad_value<'a>(&self, g: &'a (Tensor, usize)) -> &'a Tensor {
        &g.0
    }
    fn objective(&self, b: &Tensor) -> Result<f64, String> {
        Ok(negated(self.f, &self.a, b))
    }
    fn gradient(&self, (b, at): &(Tensor, Option<usize>)) -> Result<(Tensor, usize), String> {
        let g = inner_gradient(self.f, self.inner, &self.a, b);
        Ok((g, self.record(Entry::Gradient { at: b.clone(), b: *at })))
    }
    fn step(&self, (b, at): &(Tensor, Option<usize>), (g, gat): &(Tensor, usize), eta: f64) -> (Tensor, Option<usize>) {
        let next = b - g * eta;
        let at = self.record(Entry::Step { eta, b: *at, g: *gat });
        (next, Some(at))
    }
}

/// The gradient of `a ↦ maxᵦ f(a, b)` (the max by the inner descent from `start`),
/// differentiated through the inner descent in mode `outer`.
fn max_gradient(
    f: Objective,
    outer: Mode,
    inner: Mode,
    a: &Tensor,
    start: &Tensor,
    budget: &Budget,
) -> Result<Tensor, String> {
    let n = a.numel();
    match outer {
        Mode::Forward => {
            let da = Tensor::eye(n, DType::F64);
            let problem = Tangents { f, inner, a: a.clone(), da: da.clone() };
            let db = Tensor::zeros(&[n, start.numel()], DType::F64);
            let (b, db) = argmin(&problem, (start.clone(), db), budget)?;
            Ok(jvp_dirs(|(a, b): &(Tensor, Tensor)| f(a, b), &(a.clone(), b), &(da, db)).1)
        }
        Mode::Reverse => {
            let problem = Tape { f, inner, a: a.clone(), entries: RefCell::new(Vec::new()) };
            let (b, at) = argmin(&problem, (start.clone(), None), budget)?;
            let (y, pullback) = vjp(|(a, b): &(Tensor, Tensor)| f(a, b), &(a.clone(), b));
            let (da, db) = pullback.call(&y.ones_like());
            Ok(da + problem.backward(at, db))
        }
    }
}

/// `[a*, b*]`: the saddle point found from `start` with the given modes. Every
/// iteration of every descent (outer and inner) spends one step of `budget`.
pub fn saddle(outer: Mode, inner: Mode, start: &Tensor, budget: &Budget) -> Result<Tensor, String> {
    let outer_problem = Plain::new(
        |a: &Tensor| Ok(-negated(f, a, &inner_argmax(f, inner, a, start, budget)?)),
        |a: &Tensor| max_gradient(f, outer, inner, a, start, budget),
    );
    let a = argmin(&outer_problem, start.clone(), budget)?;
    let b = inner_argmax(f, inner, &a, start, budget)?;
    Ok(concatenate(&[a, b], 0))
}

/// The inner descent `argmaxᵦ f(a, b)` from `start` as one loop on traced values (bounded,
/// so that reverse mode can differentiate it): the point, its iterations and status.
fn inner_loop(f: Objective, inner: Mode, a: &Tensor, start: &Tensor, limit: usize, bounded: bool) -> Counted {
    let (zero, one) = (|| Tensor::scalar(0.0), || Tensor::scalar(1.0));
    let objective = |b: &Tensor| (-f(a, b), zero(), one());
    let gradient = |b: &Tensor| (inner_gradient(f, inner, a, b), zero(), one());
    if bounded {
        argmin_loop_bounded(&objective, &gradient, start, limit)
    } else {
        argmin_loop(&objective, &gradient, start, limit)
    }
}

/// `maxᵦ f(a, b)` by the inner descent, as a [`Counted`] (success: the inner status is OK).
fn max_counted(f: Objective, inner: Mode, a: &Tensor, start: &Tensor, limit: usize, bounded: bool) -> Counted {
    let (b, steps, code) = inner_loop(f, inner, a, start, limit, bounded);
    (f(a, &b), steps, code.eq(status::OK).cast(DType::F64))
}

/// [`saddle`] with every descent a loop on traced values and the whole computation one
/// compiled function: the outer descent is an [`argmin_loop`] whose objective and gradient
/// run the inner descent (its derivative with respect to `a` by `jvp` of that loop, or `vjp`
/// of its bounded form), then the inner descent at the optimum.
pub fn saddle_loop(outer: Mode, inner: Mode, start: &Tensor, budget: &Budget) -> Result<Tensor, String> {
    let limit = budget.remaining();
    let run = jit(|start: &Tensor| {
        let objective = |a: &Tensor| max_counted(f, inner, a, start, limit, false);
        let gradient = |a: &Tensor| match outer {
            Mode::Forward => {
                let n = a.numel();
                let h = |a: &Tensor| max_counted(f, inner, a, start, limit, false);
                let ((_, steps, ok), (dy, _, _)) = jvp_dirs(h, a, &Tensor::eye(n, DType::F64));
                (dy, steps, ok)
            }
            Mode::Reverse => {
                let h = |a: &Tensor| max_counted(f, inner, a, start, limit, true);
                let ((y, steps, ok), pullback) = vjp(h, a);
                (pullback.call(&(y.ones_like(), steps.zeros_like(), ok.zeros_like())), steps, ok)
            }
        };
        let (a, steps, code) = argmin_loop(&objective, &gradient, start, limit);
        let (b, inner_steps, inner_code) = inner_loop(f, inner, &a, start, limit, false);
        let code = where_(&code.eq(status::OK), &inner_code, &code);
        (concatenate(&[a, b], 0), steps + inner_steps, code)
    });
    let (point, steps, code) = run(start);
    budget.spend_many("the descent", steps.item::<f64>() as usize)?;
    match code.item::<f64>() {
        c if c == status::START_NOT_FINITE => Err("the objective at the start of the descent is not finite".into()),
        c if c == status::GRADIENT_NOT_FINITE => Err("the gradient of the descent is not finite".into()),
        c if c == status::EVALUATION_FAILED => {
            Err("an inner descent failed (its objective or gradient is not finite)".into())
        }
        _ => Ok(point),
    }
}

/// Builds `rr`, `ff`, `fr` or `rf` (outer, inner mode) for input `{start: float[2]}`.
///
/// A run fails (naming `start`) when its descents take more than
/// [`Limits::max_descent_steps`] iterations together, or start where the
/// objective or its gradient is not finite (e.g. from `[1e308, -1e308]`).
pub fn prepare(function: &str, input: &Value, limits: &Limits) -> Result<Run, String> {
    let start = vector(input, "start")?;
    expect_shape(&start, "start", &[2])?;
    let (outer, inner) = Mode::pair(function).ok_or_else(|| unknown_function("saddle", function, MODE_FUNCTIONS))?;
    let steps = limits.max_descent_steps;
    Ok(Box::new(move || {
        // Forward outer mode runs as one compiled loop (ff 7.6 -> 2.3 s, fr 4.9 -> 2.2 s on
        // the eval's input); reverse outer mode keeps the stepwise tape, which is faster than
        // reverse mode through the bounded inner loop's checkpointing (rr 1.7 s vs 8.9 s):
        // see saddle_loop.
        let point = match outer {
            Mode::Forward => saddle_loop(outer, inner, &start, &Budget::new(steps)),
            Mode::Reverse => saddle(outer, inner, &start, &Budget::new(steps)),
        }
        .map_err(|e| format!("`start` = {:?}: {e}", start.to_vec::<f64>()))?;
        Ok(Output::from(point))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A coupled problem, so that the inner iterates depend on `a`:
    /// `g(a, b) = |a|² - |b - a ⊙ (1, 2)|² - 0.3 b₀ b₁`.
    fn coupled(a: &Tensor, b: &Tensor) -> Tensor {
        let scale = Tensor::from_vec(vec![1.0, 2.0], &[2]);
        a.square().sum_all() - (b - a * scale).square().sum_all() - b.index(0) * b.index(1) * 0.3
    }

    /// `∇ₐ maxᵦ g(a, b)` through the inner descent agrees in all four mode
    /// combinations (forward tangents and the reverse tape are independent
    /// implementations) and with central finite differences.
    fn check(g: Objective, a: [f64; 2]) {
        let start = Tensor::from_vec(vec![1.0, 1.0], &[2]);
        let max = |a: [f64; 2]| {
            let a = Tensor::from_vec(a.to_vec(), &[2]);
            g(&a, &inner_argmax(g, Mode::Reverse, &a, &start, &Budget::new(usize::MAX)).unwrap()).item::<f64>()
        };
        let h = 1e-6;
        let fd: Vec<f64> = (0..2)
            .map(|i| {
                let (mut up, mut down) = (a, a);
                up[i] += h;
                down[i] -= h;
                (max(up) - max(down)) / (2.0 * h)
            })
            .collect();
        let at = Tensor::from_vec(a.to_vec(), &[2]);
        let reference = max_gradient(g, Mode::Reverse, Mode::Reverse, &at, &start, &Budget::new(usize::MAX))
            .unwrap()
            .to_vec::<f64>();
        for (outer, inner) in
            [(Mode::Forward, Mode::Forward), (Mode::Forward, Mode::Reverse), (Mode::Reverse, Mode::Forward)]
        {
            let d = max_gradient(g, outer, inner, &at, &start, &Budget::new(usize::MAX)).unwrap().to_vec::<f64>();
            for i in 0..2 {
                assert!(
                    (d[i] - reference[i]).abs() <= 1e-12 * (1.0 + reference[i].abs()),
                    "{outer:?}/{inner:?}: {d:?} vs rr {reference:?}"
                );
            }
        }
        for i in 0..2 {
            assert!((reference[i] - fd[i]).abs() <= 1e-6, "{reference:?} vs fd {fd:?}");
        }
    }

    #[test]
    fn max_gradient_matches_finite_differences_in_every_mode() {
        check(f, [0.3, -0.7]);
        check(coupled, [0.3, -0.7]);
    }

    /// The eval's own input needs a small fraction of the step budget.
    #[test]
    fn the_budget_fits_the_eval() {
        let limit = Limits::default().max_descent_steps;
        let start = Tensor::from_vec(vec![1.0, 1.0], &[2]);
        for (outer, inner) in [(Mode::Reverse, Mode::Reverse), (Mode::Forward, Mode::Forward)] {
            let b = Budget::new(limit);
            let point = saddle(outer, inner, &start, &b).unwrap().to_vec::<f64>();
            let b2 = Budget::new(limit);
            let looped = saddle_loop(outer, inner, &start, &b2).unwrap().to_vec::<f64>();
            assert_eq!(looped, point, "{outer:?}/{inner:?}: one compiled loop vs stepwise");
            assert_eq!(b2.used(), b.used(), "the same iterations");
            assert!(point.iter().all(|x| (x - 8.246324826140356e-06).abs() < 1e-6), "{point:?}");
            eprintln!("saddle {outer:?}/{inner:?} from [1, 1]: {} steps", b.used());
            assert!(b.used() * 10 <= limit, "{} steps of {limit}", b.used());
        }
    }
}
