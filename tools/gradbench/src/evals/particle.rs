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
use crate::descent::{argmin, Plain};
use crate::input::f64_field;
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
}

impl Simulation {
    fn new(inner: Mode) -> Simulation {
        Simulation {
            step: Box::new(jit(move |p: &Point| step(inner, p))),
            step_jvp: Box::new(jit(move |(p, t): &(Point, Point)| jvp(|p: &Point| step(inner, p), p, t))),
            // Reverse mode recomputes each step's linearisation from its saved state.
            step_vjp: Box::new(jit(move |(p, ct): &(Point, State)| vjp(|p: &Point| step(inner, p), p).1.call(ct))),
        }
    }

    /// The cost of offset `w` (0-d): the simulation on concrete values.
    fn cost(&self, w: &Tensor) -> Tensor {
        let mut s = start();
        while !lands(&s) {
            s = (self.step)(&(s.0, s.1, w.clone()));
        }
        landing(&s)
    }

    /// `d cost / d w` in forward mode: one jvp per time step carries the tangent.
    fn derivative_forward(&self, w: &Tensor) -> Tensor {
        let mut s = start();
        let mut ds = (s.0.zeros_like(), s.1.zeros_like());
        let dw = w.ones_like();
        while !lands(&s) {
            (s, ds) = (self.step_jvp)(&((s.0, s.1, w.clone()), (ds.0, ds.1, dw.clone())));
        }
        jvp(landing, &s, &ds).1
    }

    /// `d cost / d w` in reverse mode: the states on a tape, then one vjp per step backwards.
    fn derivative_reverse(&self, w: &Tensor) -> Tensor {
        let mut s = start();
        let mut states: Vec<State> = Vec::new();
        while !lands(&s) {
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
        dw
    }
}

/// The optimised `w`: GradBench's descent on the cost from `w0`, with the outer
/// derivative in mode `outer` and the field's in mode `inner`.
pub fn optimise(outer: Mode, inner: Mode, w0: f64) -> Tensor {
    let sim = Simulation::new(inner);
    let problem = Plain::new(
        |w: &Tensor| sim.cost(&w.index(0)).item::<f64>(),
        |w: &Tensor| {
            let w = w.index(0);
            let d = match outer {
                Mode::Forward => sim.derivative_forward(&w),
                Mode::Reverse => sim.derivative_reverse(&w),
            };
            d.reshape_to(&[1])
        },
    );
    argmin(&problem, Tensor::from_vec(vec![w0], &[1])).index(0)
}

/// Builds `rr`, `ff`, `fr` or `rf` (outer, inner mode) for input `{w: float}`.
pub fn prepare(function: &str, input: &Value) -> Result<Run, String> {
    let w0 = f64_field(input, "w")?;
    let (outer, inner) = Mode::pair(function).ok_or_else(|| unknown_function("particle", function, MODE_FUNCTIONS))?;
    Ok(Box::new(move || Output::from(optimise(outer, inner, w0))))
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
        let sim = Simulation::new(Mode::Reverse);
        let fd = (sim.cost(&Tensor::scalar(0.1 + h)).item::<f64>() - sim.cost(&Tensor::scalar(0.1 - h)).item::<f64>())
            / (2.0 * h);
        for inner in [Mode::Forward, Mode::Reverse] {
            let sim = Simulation::new(inner);
            let fwd = sim.derivative_forward(&w).item::<f64>();
            let rev = sim.derivative_reverse(&w).item::<f64>();
            assert!((fwd - rev).abs() <= 1e-12 * fwd.abs(), "{inner:?}: {fwd} vs {rev}");
            assert!((fwd - fd).abs() <= 1e-5 * fd.abs(), "{inner:?}: {fwd} vs fd {fd}");
        }
    }
}
