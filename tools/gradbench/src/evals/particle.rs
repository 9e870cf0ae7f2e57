//! `particle`: choose the charge offset `w` that makes a particle, pushed by the
//! field of two charges, land closest to the origin; nested AD with the inner
//! derivative (the field, `-∇ₓ p`) and the outer one (`d cost / d w`, through
//! the whole simulation) each in forward or reverse mode.
//!
//! The simulation's loop ends on a data-dependent test (`x.y <= 0`), and
//! cotangent has no `while_loop` yet, so the loop runs in Rust on concrete
//! values. The outer derivative is still computed by the transformations, one
//! time step at a time, exactly as forward and reverse mode do it:
//!
//! - forward: every step is a `jvp` at concrete primals, pushing the tangent of
//!   the state `(x, v)` with respect to `w` along with it;
//! - reverse: every step is a `vjp` whose pullback goes on a tape (a `Vec`);
//!   after landing, the pullbacks run in reverse order and the `w` cotangents
//!   of all steps are summed.
//!
//! Inside each step, the field is `grad` (reverse) or `jacfwd` (forward) of the
//! potential, so the step's own `jvp`/`vjp` differentiates through that inner
//! derivative: nested AD in all four combinations.

use super::{gradient, unknown_function, Mode, Output, Run, MODE_FUNCTIONS};
use crate::descent::{argmin, Budget, Plain};
use crate::input::f64_field;
use crate::limits::Limits;
use cotangent::{concatenate, jit, jvp, vjp, Tensor};
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

/// Whether the next position is at or below the ground (read on concrete values).
fn lands((x, v): &State) -> bool {
    (x + v * DT).to_vec::<f64>()[1] <= 0.0
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

type Point = (Tensor, Tensor, Tensor);
type StepFn = Box<dyn Fn(&Point) -> State>;
type StepJvp = Box<dyn Fn(&(Point, Point)) -> (State, State)>;
type StepVjp = Box<dyn Fn(&(Point, State)) -> Point>;

/// One simulation step and its forward and reverse derivatives, each compiled once (`jit`)
/// and reused for every step of every simulation; the loop itself runs in Rust on concrete
/// values (there is no `while_loop` primitive yet).
struct Simulation {
    step: StepFn,
    step_jvp: StepJvp,
    step_vjp: StepVjp,
    /// The most time steps before the particle must have landed.
    max_steps: usize,
}

impl Simulation {
    fn new(inner: Mode, max_steps: usize) -> Simulation {
        Simulation {
            max_steps,
            step: Box::new(jit(move |p: &Point| step(inner, p))),
            step_jvp: Box::new(jit(move |(p, t): &(Point, Point)| jvp(|p: &Point| step(inner, p), p, t))),
            // Reverse mode recomputes each step's linearisation from its saved state.
            step_vjp: Box::new(jit(move |(p, ct): &(Point, State)| vjp(|p: &Point| step(inner, p), p).1.call(ct))),
        }
    }

    /// Counts one more time step (`steps` so far in this simulation) against the
    /// simulation's limit and the run's `budget`.
    fn tick(&self, steps: &mut usize, budget: &Budget) -> Result<(), String> {
        budget.spend(SIMULATION)?;
        *steps += 1;
        if *steps > self.max_steps {
            return Err(format!("the particle did not land within {} time steps", self.max_steps));
        }
        Ok(())
    }

    /// The cost of offset `w` (0-d): the simulation on concrete values.
    fn cost(&self, w: &Tensor, budget: &Budget) -> Result<Tensor, String> {
        let mut s = start();
        let mut steps = 0;
        while !lands(&s) {
            self.tick(&mut steps, budget)?;
            s = (self.step)(&(s.0, s.1, w.clone()));
        }
        Ok(landing(&s))
    }

    /// `d cost / d w` in forward mode: one jvp per time step carries the tangent.
    fn derivative_forward(&self, w: &Tensor, budget: &Budget) -> Result<Tensor, String> {
        let mut s = start();
        let mut steps = 0;
        let mut ds = (s.0.zeros_like(), s.1.zeros_like());
        let dw = w.ones_like();
        while !lands(&s) {
            self.tick(&mut steps, budget)?;
            (s, ds) = (self.step_jvp)(&((s.0, s.1, w.clone()), (ds.0, ds.1, dw.clone())));
        }
        Ok(jvp(landing, &s, &ds).1)
    }

    /// `d cost / d w` in reverse mode: the states on a tape, then one vjp per step backwards.
    fn derivative_reverse(&self, w: &Tensor, budget: &Budget) -> Result<Tensor, String> {
        let mut s = start();
        let mut steps = 0;
        let mut states: Vec<State> = Vec::new();
        while !lands(&s) {
            self.tick(&mut steps, budget)?;
            let next = (self.step)(&(s.0.clone(), s.1.clone(), w.clone()));
            states.push(s);
            s = next;
        }
        let (y, pullback) = vjp(landing, &s);
        let mut ct = pullback.call(&y.ones_like());
        let mut dw = w.zeros_like();
        for (x, v) in states.into_iter().rev() {
            let (cx, cv, cw) = (self.step_vjp)(&((x, v, w.clone()), ct));
            ct = (cx, cv);
            dw = dw + cw;
        }
        Ok(dw)
    }
}

/// What a simulation loop calls itself when it runs out of budget.
const SIMULATION: &str = "the simulation";

/// The optimised `w`: GradBench's descent on the cost from `w0`, with the outer
/// derivative in mode `outer` and the field's in mode `inner`. Every simulation
/// step and descent iteration spends one step of `budget`, and a simulation fails
/// after `max_steps` time steps without landing.
pub fn optimise(outer: Mode, inner: Mode, w0: f64, max_steps: usize, budget: &Budget) -> Result<Tensor, String> {
    let sim = Simulation::new(inner, max_steps);
    let problem = Plain::new(
        |w: &Tensor| Ok(sim.cost(&w.index(0), budget)?.item::<f64>()),
        |w: &Tensor| {
            let w = w.index(0);
            let d = match outer {
                Mode::Forward => sim.derivative_forward(&w, budget)?,
                Mode::Reverse => sim.derivative_reverse(&w, budget)?,
            };
            Ok(d.reshape_to(&[1]))
        },
    );
    Ok(argmin(&problem, Tensor::from_vec(vec![w0], &[1]), budget)?.index(0))
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
