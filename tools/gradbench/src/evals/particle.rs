//! `particle`: choose the charge offset `w` that makes a particle, pushed by the
//! field of two charges, land closest to the origin; nested AD with the inner
//! derivative (the field, `-∇ₓ p`) and the outer one (`d cost / d w`, through
//! the whole simulation) each in forward or reverse mode.
//!
//! The simulation's loop ends on a data-dependent test (`x.y <= 0`): it is one
//! `control::while_loop` on traced values, compiled once (`jit`), and the outer
//! derivative is the transformation of that loop:
//!
//! - forward: `jvp` of the `while_loop` (a loop carrying the state's tangents);
//! - reverse: `vjp` of a `while_loop_bounded` (bound: the simulation's step
//!   limit), which keeps O(log steps) states and recomputes the others.
//!
//! Inside each step, the field is `grad` (reverse) or `jacfwd` (forward) of the
//! potential, so the step's own `jvp`/`vjp` differentiates through that inner
//! derivative: nested AD in all four combinations.

use super::{gradient, unknown_function, Mode, Output, Run, MODE_FUNCTIONS};
use crate::descent::{argmin_loop, status, Budget};
use crate::input::f64_field;
use crate::limits::Limits;
use cotangent::{concatenate, control, jit, jvp, vjp, Tensor};
use serde_json::Value;

const DT: f64 = 0.1;

/// The charges `[[10, 10 - w], [10, 0]]`.
fn charges(w: &Tensor) -> Tensor {
    let w = w.reshape_to(&[1]);
    concatenate(&[Tensor::from_vec(vec![10.0], &[1]), 10.0 - w, Tensor::from_vec(vec![10.0, 0.0], &[2])], 0)
        .reshape_to(&[2, 2])
}

/// The potential `Σ 1 / |x - charge|` at `x` (`[2]`).
pub fn potential(x: &Tensor, charges: &Tensor) -> Tensor {
    (x - charges).square().sum(&[1], false).sqrt().recip().sum_all()
}

/// The state of the particle: position and velocity, each `[2]`.
type State = (Tensor, Tensor);

/// One Euler step of the simulation, as a function of `(x, v, w)`:
/// `(x + dt v, v + dt a)` with `a = -∇ₓ p(x)`, the gradient in mode `inner`.
fn step(inner: Mode, (x, v, w): &(Tensor, Tensor, Tensor)) -> State {
    let charges = charges(w);
    let accel = -gradient(inner, x, |x: &Tensor| potential(x, &charges));
    (x + v * DT, v + accel * DT)
}

/// The cost when the particle lands from state `(x, v)`: the next position, moved
/// along `v` to the ground, gives `x_f`, and the cost is `x_f.x²`.
fn landing((x, v): &State) -> Tensor {
    let next = x + v * DT;
    let t = -next.index(1) / v.index(1);
    (next + v * t).index(0).square()
}

fn start() -> State {
    (Tensor::from_vec(vec![0.0, 8.0], &[2]), Tensor::from_vec(vec![0.75, 0.0], &[2]))
}

/// The simulation from [`start`] as one loop on traced values: Euler steps while the next
/// position is above the ground, at most `max_steps` of them. Returns the final state and
/// the number of steps taken (`i64`). With `bounded` it is a
/// [`while_loop_bounded`](cotangent::control::while_loop_bounded), which reverse mode can
/// differentiate (checkpointing); otherwise a plain `while_loop` (forward mode and values).
fn simulate(inner: Mode, w: &Tensor, max_steps: usize, bounded: bool) -> (State, Tensor) {
    let (x0, v0) = start();
    let init = (x0, v0, Tensor::scalar(0i64));
    let w = w.clone();
    let above = |(x, v, _): &(Tensor, Tensor, Tensor)| (x + v * DT).index(1).gt(0.0);
    let body = move |(x, v, k): &(Tensor, Tensor, Tensor)| {
        let (x, v) = step(inner, &(x.clone(), v.clone(), w.clone()));
        (x, v, k + 1.0)
    };
    let (x, v, k) = if bounded {
        control::while_loop_bounded(above, body, &init, max_steps)
    } else {
        let limit = max_steps as f64;
        control::while_loop(move |s: &(Tensor, Tensor, Tensor)| above(s).logical_and(&s.2.lt(limit)), body, &init)
    };
    ((x, v), k)
}

/// What a compiled simulation returns: a value (the cost or its derivative), the steps
/// taken, and whether the particle landed.
type Outcome = (Tensor, Tensor, Tensor);
type SimFn = Box<dyn Fn(&Tensor) -> Outcome>;

/// The simulation, its cost and the cost's forward and reverse derivatives, each one
/// compiled (`jit`) loop over the time steps (`control::while_loop`, and
/// `while_loop_bounded` for reverse mode), compiled once and reused for every simulation.
struct Simulation {
    cost: SimFn,
    derivative_forward: SimFn,
    derivative_reverse: SimFn,
    /// The most time steps before the particle must have landed.
    max_steps: usize,
}

/// The cost at the end of a simulation, the steps (as `f64`, so `jvp`/`vjp` accept it) and
/// whether the particle landed.
fn run(inner: Mode, w: &Tensor, max_steps: usize, bounded: bool) -> Outcome {
    let (s, k) = simulate(inner, w, max_steps, bounded);
    let landed = (&s.0 + &s.1 * DT).index(1).le(0.0).cast(cotangent::DType::F64);
    (landing(&s), k.cast(cotangent::DType::F64), landed)
}

impl Simulation {
    fn new(inner: Mode, max_steps: usize) -> Simulation {
        Simulation {
            max_steps,
            cost: Box::new(jit(move |w: &Tensor| run(inner, w, max_steps, false))),
            derivative_forward: Box::new(jit(move |w: &Tensor| {
                let ((_, k, landed), (dc, _, _)) = jvp(|w: &Tensor| run(inner, w, max_steps, false), w, &w.ones_like());
                (dc, k, landed)
            })),
            derivative_reverse: Box::new(jit(move |w: &Tensor| {
                let ((c, k, landed), pullback) = vjp(|w: &Tensor| run(inner, w, max_steps, true), w);
                (pullback.call(&(c.ones_like(), k.zeros_like(), landed.zeros_like())), k, landed)
            })),
        }
    }

    #[cfg(test)] // (the descent runs these inside its own loop: `optimise`)
    /// Spends the simulation's steps from the run's `budget`; fails if the particle did not land.
    fn account(&self, (value, k, landed): Outcome, budget: &Budget) -> Result<Tensor, String> {
        for _ in 0..k.item::<f64>() as usize {
            budget.spend(SIMULATION)?;
        }
        if landed.item::<f64>() == 0.0 {
            return Err(format!("the particle did not land within {} time steps", self.max_steps));
        }
        Ok(value)
    }

    #[cfg(test)] // (the descent runs these inside its own loop: `optimise`)
    /// The cost of offset `w` (0-d).
    fn cost(&self, w: &Tensor, budget: &Budget) -> Result<Tensor, String> {
        self.account((self.cost)(w), budget)
    }

    #[cfg(test)] // (the descent runs these inside its own loop: `optimise`)
    /// `d cost / d w` in forward mode: `jvp` of the simulation loop.
    fn derivative_forward(&self, w: &Tensor, budget: &Budget) -> Result<Tensor, String> {
        self.account((self.derivative_forward)(w), budget)
    }

    #[cfg(test)] // (the descent runs these inside its own loop: `optimise`)
    /// `d cost / d w` in reverse mode: `vjp` of the bounded simulation loop.
    fn derivative_reverse(&self, w: &Tensor, budget: &Budget) -> Result<Tensor, String> {
        self.account((self.derivative_reverse)(w), budget)
    }
}

#[cfg(test)]
/// What a simulation loop calls itself when it runs out of budget.
const SIMULATION: &str = "the simulation";

/// The optimised `w`: GradBench's descent on the cost from `w0`, with the outer
/// derivative in mode `outer` and the field's in mode `inner`. The whole descent, its
/// simulations included, is one compiled `while_loop` ([`argmin_loop`]). Every simulation
/// step and descent iteration spends one step of `budget`, and a simulation fails
/// after `max_steps` time steps without landing.
pub fn optimise(outer: Mode, inner: Mode, w0: f64, max_steps: usize, budget: &Budget) -> Result<Tensor, String> {
    let sim = Simulation::new(inner, max_steps);
    let limit = budget.remaining();
    let descent = jit(|w0: &Tensor| {
        let objective = |w: &Tensor| (sim.cost)(&w.index(0));
        let gradient = |w: &Tensor| {
            let (d, k, landed) = match outer {
                Mode::Forward => (sim.derivative_forward)(&w.index(0)),
                Mode::Reverse => (sim.derivative_reverse)(&w.index(0)),
            };
            (d.reshape_to(&[1]), k, landed)
        };
        argmin_loop(&objective, &gradient, w0, limit)
    });
    let (w, steps, code) = descent(&Tensor::from_vec(vec![w0], &[1]));
    budget.spend_many("the descent", steps.item::<f64>() as usize)?;
    match code.item::<f64>() {
        c if c == status::EVALUATION_FAILED => {
            Err(format!("the particle did not land within {} time steps", sim.max_steps))
        }
        c if c == status::START_NOT_FINITE => Err("the objective at the start of the descent is not finite".into()),
        c if c == status::GRADIENT_NOT_FINITE => Err("the gradient of the descent is not finite".into()),
        _ => Ok(w.index(0)),
    }
}

/// Builds `rr`, `ff`, `fr` or `rf` (outer, inner mode) for input `{w: float}`.
///
/// A run fails (naming `w`) when a simulation takes more than
/// [`Limits::max_simulation_steps`] time steps (e.g. from `w >= 2`, where the
/// particle is pushed back and never lands), or when all simulation steps and
/// descent iterations together exceed [`Limits::max_descent_steps`].
pub fn prepare(function: &str, input: &Value, limits: &Limits) -> Result<Run, String> {
    let w0 = f64_field(input, "w")?;
    let (outer, inner) = Mode::pair(function).ok_or_else(|| unknown_function("particle", function, MODE_FUNCTIONS))?;
    let (budget, max_steps) = (limits.max_descent_steps, limits.max_simulation_steps);
    Ok(Box::new(move || {
        let w = optimise(outer, inner, w0, max_steps, &Budget::new(budget)).map_err(|e| format!("`w` = {w0}: {e}"))?;
        Ok(Output::from(w))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The outer derivative through the whole simulation agrees in all four mode
    /// combinations and with a central finite difference of the cost.
    #[test]
    fn outer_derivative_matches_finite_differences_in_every_mode() {
        let w = Tensor::scalar(0.1);
        let h = 1e-6;
        let b = Budget::new(usize::MAX);
        let sim = Simulation::new(Mode::Reverse, usize::MAX);
        let cost = |w: f64| sim.cost(&Tensor::scalar(w), &b).unwrap().item::<f64>();
        let fd = (cost(0.1 + h) - cost(0.1 - h)) / (2.0 * h);
        for inner in [Mode::Forward, Mode::Reverse] {
            let sim = Simulation::new(inner, usize::MAX);
            let fwd = sim.derivative_forward(&w, &b).unwrap().item::<f64>();
            let rev = sim.derivative_reverse(&w, &b).unwrap().item::<f64>();
            assert!((fwd - rev).abs() <= 1e-12 * fwd.abs(), "{inner:?}: {fwd} vs {rev}");
            assert!((fwd - fd).abs() <= 1e-5 * fd.abs(), "{inner:?}: {fwd} vs fd {fd}");
        }
    }

    /// The eval's own input needs a small fraction of the step budget; a start from
    /// which the particle never lands runs out of it instead of looping forever.
    #[test]
    fn the_budget_fits_the_eval_and_stops_a_particle_that_never_lands() {
        let Limits { max_descent_steps: limit, max_simulation_steps: max_steps, .. } = Limits::default();
        for (outer, inner) in [(Mode::Reverse, Mode::Reverse), (Mode::Forward, Mode::Forward)] {
            let b = Budget::new(limit);
            let w = optimise(outer, inner, 0.0, max_steps / 10, &b).unwrap().item::<f64>();
            assert!((w - 0.2071918746486116).abs() < 1e-6, "{w}");
            eprintln!("particle {outer:?}/{inner:?} from w = 0: {} steps", b.used());
            assert!(b.used() * 10 <= limit, "{} steps of {limit}", b.used());
        }
        let e = optimise(Mode::Reverse, Mode::Reverse, 2.0, max_steps, &Budget::new(limit)).unwrap_err();
        assert!(e.contains(&format!("did not land within {max_steps} time steps")), "{e}");
        let e = optimise(Mode::Reverse, Mode::Reverse, 0.0, max_steps, &Budget::new(2_000)).unwrap_err();
        assert!(e.contains("within 2000 steps"), "{e}");
    }
}
