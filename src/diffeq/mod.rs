//! Ordinary differential equations `dy/dt = f(t, y, args)` over trees of tensors: [`solve`].
//!
//! Built on the public API only: the fixed-step solvers ([`Solver::Euler`], [`Solver::Heun`],
//! [`Solver::Midpoint`], [`Solver::Rk4`]) run one [`fori_loop`](crate::control::fori_loop) per interval between save
//! times; the adaptive ones ([`Solver::Bosh3`], [`Solver::Dopri5`], [`Solver::Tsit5`]) run one
//! [`while_loop_bounded`](crate::control::while_loop_bounded) over `[t0, t_last]`, with a PID step-size controller ([`Pid`]) on the
//! RMS error norm scaled by `atol + rtol·|y|`. All three are first-same-as-last (FSAL): the
//! last stage of an accepted step is the next step's first, carried in the loop, so a step
//! costs `stages - 1` evaluations (`nfe = 2 + (accepted + rejected)·(stages - 1)` without
//! `dt0`: `f(t0, y0)` and the probe of Hairer's starting-step algorithm, which picks the first
//! step from estimates of the first and second derivatives; `1 + ...` with `dt0`). Save times
//! are filled by dense output inside the natural steps, so many save times cost no extra
//! steps: Dopri5 with Shampine's order-4 continuous extension, Tsit5 with Tsitouras' order-4
//! interpolant, Bosh3 with the cubic Hermite interpolant of `(y₀, f₀, y₁, f₁)` (order 3)
//! ([`Tableau::dense`]); [`Options::step_to_save`] steps exactly to each save time instead
//! (one loop per interval, as [`Gradient::Adjoint`] always does). Under [`jit`](crate::jit)
//! the whole solve is one compiled program whose step is traced once. [`Options::fixed_steps`] makes an
//! adaptive solver take fixed steps.
//!
//! Stiff problems: the implicit ESDIRK pairs [`Solver::Kvaerno3`] and [`Solver::Kvaerno5`]
//! (Kværnø 2004; L-stable, stiffly accurate, explicit first stage), adaptive with the same
//! controller. Each implicit stage `z = y + h·Σ a_ij k_j + h·γ·f(t_i, z)` is solved by a
//! simplified Newton iteration: the Jacobian of the field with respect to the flattened state
//! (all leaves concatenated) by [`jacfwd`](crate::jacfwd) once per step, `I - h·γ·J` factored
//! by [`linalg::lu`](crate::linalg::lu) once per step, two triangular solves per iteration,
//! at most 10 iterations per stage in a [`while_loop_bounded`](crate::control::while_loop_bounded)
//! that stops at convergence (a convergence-rate test in the tolerances' scaled norm, as
//! diffrax's `VeryChord`). A stage whose iteration diverges or does not converge rejects the
//! step (the controller shrinks it); with fixed steps the result is `2`. `nfe` counts 1 for
//! the explicit stage, `n` (state elements) for each Jacobian and 1 per Newton iteration.
//! Reverse mode differentiates through the Newton iterations that ran, with the iteration
//! matrix under `stop_gradient` (it only preconditions the iteration; the stage values'
//! derivatives converge with them), so no second derivatives of `f` are taken. They scale to
//! small and medium states (a dense `n × n` Jacobian and LU per step). They have no dense
//! output yet: they step to each save time.
//!
//! Regularisation ([`Options::regularise`], [`Regularisers`]): the solve can return the
//! accumulated local error estimate (ERNODE) and stiffness estimate (SRNODE) of Pal et al.
//! (2021), "Opening the Blackbox", as differentiable scalars to add to a training loss: a
//! neural vector field trained with them needs fewer steps at prediction time
//! (`examples/neural_ode.rs`).
//!
//! Gradients ([`Gradient`]):
//! * [`Gradient::Discretise`] (discretise-then-optimise): reverse mode through the loop; for
//!   the adaptive solvers `while_loop_bounded` keeps `O(log max_steps)` carries. The step-size
//!   controller is not differentiated (its inputs go through `stop_gradient`).
//! * [`Gradient::Adjoint`] (optimise-then-discretise, Chen et al. 2018): each interval is a
//!   [`custom_vjp`](crate::control::custom_vjp) whose backward pass integrates the augmented state `(y, a, g)` backward in
//!   time with the same solver: `dy/dt = f`, `da/dt = -aᵀ∂f/∂y`, `dg/dt = -aᵀ∂f/∂args`.
//!   Memory does not grow with the steps; its gradient matches the true one to the tolerance.
//!   With an implicit solver the backward solve is implicit too (its Jacobian is that of the
//!   augmented field, by forward-over-reverse). Integrating `y` backward is unstable for
//!   strongly stiff problems (the decaying modes grow backward): prefer
//!   [`Gradient::Discretise`] there.
//! * Forward sensitivities: [`jvp`](crate::jvp) / [`jacfwd`](crate::jacfwd) through a solve
//!   with [`Gradient::Discretise`] (a `custom_vjp` has no forward mode).
//!
//! Stochastic (Itô) equations `dy = f dt + g ⊙ dW` with diagonal noise: [`sde_solve`] with
//! [`SdeSolver::EulerMaruyama`] (strong order 1/2), [`SdeSolver::Milstein`] (1) and
//! [`SdeSolver::Sra1`] (3/2, additive noise), along a [`VirtualBrownianTree`]: Brownian motion
//! from a key that can be queried at any (traced) time and always shows the same path, so
//! solves with different steps, and their backward passes, see the same noise. Pathwise
//! gradients go through the solve's `fori_loop`. [`euler_maruyama`] is the simplest form,
//! drawing each step's increment from its own key.
//!
//! Every leaf of `y0` and `args` must be a float tensor. [`Solution::stats`] counts accepted
//! and rejected steps and function evaluations; [`Solution::result`] is `0` on success, `1`
//! when `max_steps` ran out and `2` when the state or the error became non-finite or the step
//! underflowed — check it with [`Solution::expect_success`] (or read [`Solution::success`]
//! under `jit`/`vmap`).
//!
//! ```
//! use cotangent::diffeq::{solve, Options, Solver};
//! use cotangent::{grad, Tensor};
//! // y' = -k·y, y(0) = 1: y(1) = e^{-k} and d y(1)/dk = -e^{-k}.
//! let f = |_t: &Tensor, y: &Tensor, k: &Tensor| -(k * y);
//! let opts = Options { rtol: 1e-8, atol: 1e-8, ..Options::default() };
//! let k = Tensor::scalar(0.5);
//! let sol = solve(f, Solver::Tsit5, 0.0, 1.0, &Tensor::scalar(1.0), &k, &[], &opts);
//! sol.expect_success();
//! assert!((sol.ys[0].item::<f64>() - (-0.5f64).exp()).abs() < 1e-7);
//! let dk = grad(|k: &Tensor| solve(f, Solver::Tsit5, 0.0, 1.0, &Tensor::scalar(1.0), k, &[], &opts).ys[0].clone())(&k);
//! assert!((dk.item::<f64>() + (-0.5f64).exp()).abs() < 1e-6);
//! ```

mod adjoint;
mod controller;
mod implicit;
mod sde;
mod step;
mod tableau;

pub use controller::Pid;
pub use sde::{euler_maruyama, sde_solve, SdeSolver, VirtualBrownianTree};
pub use tableau::{Solver, Tableau};

use crate::{where_, DType, Tensor, Tree};
use adjoint::adjoint_interval;
use step::{adaptive, interval_reg, Field};

/// How reverse mode differentiates a solve (forward mode is always `jvp` through the solve
/// with [`Gradient::Discretise`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Gradient {
    /// Discretise-then-optimise: reverse mode through the solver's loop.
    #[default]
    Discretise,
    /// The continuous adjoint: integrate the augmented adjoint ODE backward.
    Adjoint,
}

/// Options of [`solve`].
///
/// ```
/// use cotangent::diffeq::Options;
/// let o = Options { rtol: 1e-8, atol: 1e-10, ..Options::default() };
/// assert_eq!(o.max_steps, 4096);
/// assert!(!o.fixed_steps);
/// // Save times by dense output, no regularisers, unless asked for.
/// assert!(!o.step_to_save && !o.regularise);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Options {
    /// Relative tolerance (adaptive solvers).
    pub rtol: f64,
    /// Absolute tolerance (adaptive solvers).
    pub atol: f64,
    /// The step: required by the fixed-step solvers (the step used divides each interval
    /// evenly, at most `|dt0|`), the first trial step of the adaptive ones (`None`: chosen by
    /// Hairer's algorithm from `y0`, `f(t0, y0)` and one probe evaluation). Its sign must be
    /// that of `t1 - t0`.
    pub dt0: Option<f64>,
    /// Take fixed steps of `dt0` (which is then required) even with an adaptive solver: no
    /// error control; with an implicit solver `rtol`/`atol` still set its Newton convergence
    /// test (a stage that does not converge gives result `2`). Default `false`.
    pub fixed_steps: bool,
    /// The most steps (accepted and rejected) an adaptive solver takes: over the whole solve
    /// with dense output, per interval between save times with `step_to_save`; then
    /// [`Solution::result`] is `1`.
    pub max_steps: usize,
    /// The step-size controller.
    pub controller: Pid,
    /// The reverse-mode method.
    pub gradient: Gradient,
    /// Adaptive solvers: step exactly to each save time (restarting the step-size guess at
    /// each) instead of filling the save times by dense output from the natural steps. The
    /// default `false` interpolates; [`Gradient::Adjoint`] always steps to the save times.
    pub step_to_save: bool,
    /// Compute the solver-heuristic regularisers of Pal et al. (2021) into
    /// [`Solution::reg`] (adaptive solvers with [`Gradient::Discretise`]).
    pub regularise: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rtol: 1e-6,
            atol: 1e-6,
            dt0: None,
            fixed_steps: false,
            max_steps: 4096,
            controller: Pid::default(),
            gradient: Gradient::Discretise,
            step_to_save: false,
            regularise: false,
        }
    }
}

/// The solver-heuristic regularisers of "Opening the Blackbox" (Pal et al. 2021), as
/// differentiable f64 scalars (the controller's decisions are not differentiated; the
/// quantities are, through the state and the vector field's parameters).
///
/// ```
/// use cotangent::diffeq::{solve, Options, Solver};
/// use cotangent::{grad, Tensor};
/// let f = |_t: &Tensor, y: &Tensor, k: &Tensor| -(k * y);
/// let opts = Options { regularise: true, ..Options::default() };
/// let reg = |k: &Tensor| solve(f, Solver::Tsit5, 0.0, 1.0, &Tensor::scalar(1.0), k, &[], &opts).reg.unwrap();
/// let r = reg(&Tensor::scalar(2.0));
/// assert!(r.error.item::<f64>() > 0.0);
/// // Shampine's estimate of the Lipschitz constant of f: about k per step.
/// let steps = solve(f, Solver::Tsit5, 0.0, 1.0, &Tensor::scalar(1.0), &Tensor::scalar(2.0), &[], &opts).stats.accepted.item::<i64>();
/// assert!((r.stiffness.item::<f64>() / steps as f64 - 2.0).abs() < 1e-6);
/// let dk = grad(|k: &Tensor| reg(k).stiffness)(&Tensor::scalar(2.0));
/// assert!((dk.item::<f64>() - steps as f64).abs() < 1e-6);
/// ```
#[derive(Clone, Debug)]
pub struct Regularisers {
    /// ERNODE: `Σⱼ Eⱼ·|hⱼ|` over the accepted steps, `Eⱼ` the step's local error estimate in
    /// the controller's scaled RMS norm (`atol + rtol·|y|`).
    pub error: Tensor,
    /// SRNODE: `Σⱼ Sⱼ` over the accepted steps, `Sⱼ = ‖k_s - k_{s-1}‖ / ‖g_s - g_{s-1}‖`
    /// Shampine's stiffness (Lipschitz) estimate from the last two stages `kᵢ = f(gᵢ)` (both
    /// at the step's end for Dopri5 and Tsit5).
    pub stiffness: Tensor,
}

/// Counters of a solve, as `i64` scalars (summed over the intervals between save times).
#[derive(Clone, Debug)]
pub struct Stats {
    /// Accepted steps.
    pub accepted: Tensor,
    /// Rejected steps.
    pub rejected: Tensor,
    /// Evaluations of the vector field.
    pub nfe: Tensor,
}

/// The result of [`solve`].
#[derive(Debug)]
pub struct Solution<Y> {
    /// The save times (`save_at`, or `[t1]`).
    pub ts: Vec<f64>,
    /// The state at each save time.
    pub ys: Vec<Y>,
    /// Step and evaluation counts.
    pub stats: Stats,
    /// `i64` scalar: `0` success, `1` `max_steps` reached, `2` non-finite state or error, or
    /// step underflow. The state after a failure is where the solver stopped.
    pub result: Tensor,
    /// The regularisers, when [`Options::regularise`] asks for them.
    pub reg: Option<Regularisers>,
}

impl<Y> Solution<Y> {
    /// A bool scalar: whether the solve reached every save time.
    ///
    /// ```
    /// use cotangent::diffeq::{solve, Options, Solver};
    /// use cotangent::Tensor;
    /// let opts = Options { max_steps: 3, ..Options::default() };
    /// let f = |_t: &Tensor, y: &Tensor, _: &()| -y * 100.0;
    /// let sol = solve(f, Solver::Dopri5, 0.0, 10.0, &Tensor::scalar(1.0), &(), &[], &opts);
    /// assert!(!sol.success().item::<bool>());
    /// assert_eq!(sol.result.item::<i64>(), 1);
    /// ```
    pub fn success(&self) -> Tensor {
        self.result.eq(0i64)
    }

    /// Panics with the reason unless the solve succeeded (on concrete values).
    ///
    /// ```should_panic
    /// use cotangent::diffeq::{solve, Options, Solver};
    /// use cotangent::Tensor;
    /// let opts = Options { max_steps: 3, ..Options::default() };
    /// let f = |_t: &Tensor, y: &Tensor, _: &()| -y * 100.0;
    /// solve(f, Solver::Dopri5, 0.0, 10.0, &Tensor::scalar(1.0), &(), &[], &opts).expect_success();
    /// ```
    #[track_caller]
    pub fn expect_success(&self) {
        match self.result.item::<i64>() {
            0 => {}
            1 => panic!("diffeq::solve: max_steps was reached before the end of the interval (raise Options::max_steps or loosen the tolerances)"),
            _ => panic!("diffeq::solve: the state or its error estimate became non-finite (NaN/inf), or the step underflowed"),
        }
    }
}

/// Solves `dy/dt = f(t, y, args)` from `t0` to `t1` starting at `y0`, returning the state at
/// each time of `save_at` (which must lie between `t0` and `t1` in order; empty means
/// `[t1]`).
///
/// `f` receives `t` as an f64 scalar and must return a tree of `y0`'s structure and types.
/// See the [module documentation](self) for the solvers, gradients and result codes.
///
/// ```
/// use cotangent::diffeq::{solve, Options, Solver};
/// use cotangent::Tensor;
/// // A harmonic oscillator (x, v) with RK4, saved at t = π/2 and π.
/// let f = |_t: &Tensor, (x, v): &(Tensor, Tensor), _: &()| (v.clone(), -x);
/// let opts = Options { dt0: Some(0.01), ..Options::default() };
/// let pi = std::f64::consts::PI;
/// let y0 = (Tensor::scalar(1.0), Tensor::scalar(0.0));
/// let sol = solve(f, Solver::Rk4, 0.0, pi, &y0, &(), &[pi / 2.0, pi], &opts);
/// assert!(sol.ys[0].0.item::<f64>().abs() < 1e-8);
/// assert!((sol.ys[1].0.item::<f64>() + 1.0).abs() < 1e-8);
/// ```
///
/// Adaptive solvers fill the save times by interpolation inside their natural steps: a
/// hundred save times take no more steps than one.
///
/// ```
/// use cotangent::diffeq::{solve, Options, Solver};
/// use cotangent::Tensor;
/// let f = |_t: &Tensor, y: &Tensor, _: &()| -y;
/// let opts = Options { rtol: 1e-8, atol: 1e-8, ..Options::default() };
/// let ts: Vec<f64> = (1..=100).map(|i| i as f64 / 50.0).collect();
/// let one = solve(f, Solver::Dopri5, 0.0, 2.0, &Tensor::scalar(1.0), &(), &[], &opts);
/// let many = solve(f, Solver::Dopri5, 0.0, 2.0, &Tensor::scalar(1.0), &(), &ts, &opts);
/// assert_eq!(many.stats.accepted.item::<i64>(), one.stats.accepted.item::<i64>());
/// for (t, y) in ts.iter().zip(&many.ys) {
///     assert!((y.item::<f64>() - (-t).exp()).abs() < 1e-7);
/// }
/// ```
///
/// # Panics
/// At the caller's line: when `f` returns another structure or other types than the state,
/// when `t1 < t0` without a negative `dt0` (or `dt0` has the wrong sign), when a fixed-step
/// solver has no `dt0`, when `save_at` is out of order or outside `[t0, t1]`, or when a leaf of
/// `y0` or `args` is not a float tensor with [`Gradient::Adjoint`].
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn solve<Y: Tree, P: Tree>(
    f: impl Fn(&Tensor, &Y, &P) -> Y,
    solver: Solver,
    t0: f64,
    t1: f64,
    y0: &Y,
    args: &P,
    save_at: &[f64],
    opts: &Options,
) -> Solution<Y> {
    let caller = std::panic::Location::caller();
    let fail = |msg: String| -> ! { panic!("diffeq::solve (called at {caller}): {msg}") };
    let sign = if t1 < t0 { -1.0 } else { 1.0 };
    if let Some(h) = opts.dt0 {
        if h == 0.0 || !h.is_finite() || (t1 != t0 && (h < 0.0) != (t1 < t0)) {
            fail(format!("dt0 = {h} must be finite, non-zero and have the sign of t1 - t0 = {}", t1 - t0));
        }
    } else if t1 < t0 {
        fail(format!("t1 = {t1} < t0 = {t0}: integrating backward needs a negative dt0"));
    }
    if !solver.is_adaptive() && opts.dt0.is_none() {
        fail(format!("the fixed-step solver {solver:?} needs Options::dt0"));
    }
    if opts.fixed_steps && opts.dt0.is_none() {
        fail(format!("Options::fixed_steps with {solver:?} needs Options::dt0"));
    }
    let ts: Vec<f64> = if save_at.is_empty() { vec![t1] } else { save_at.to_vec() };
    let mut prev = t0;
    for &t in &ts {
        if !t.is_finite() || (t - prev) * sign < 0.0 || (t - t1) * sign > 0.0 {
            fail(format!("save_at must be ordered from t0 = {t0} to t1 = {t1}, got {save_at:?}"));
        }
        prev = t;
    }
    // The vector field's output must match the state: checked once.
    let probe = f(&Tensor::scalar(t0), y0, args);
    if !std::thread::panicking() {
        let (la, lb) = (y0.named_leaves(), probe.named_leaves());
        if la.len() != lb.len() || la.iter().zip(&lb).any(|((pa, ta), (pb, tb))| pa != pb || ta.ty() != tb.ty()) {
            let show = |l: &[(String, Tensor)]| {
                l.iter().map(|(p, t)| format!("{p}: {}", t.ty())).collect::<Vec<_>>().join(", ")
            };
            fail(format!(
                "the vector field must return the state's structure and types: it returns ({}) but the state is ({})",
                show(&lb),
                show(&la)
            ));
        }
    }
    if opts.regularise && (!solver.is_adaptive() || opts.gradient != Gradient::Discretise) {
        fail(format!(
            "Options::regularise needs an adaptive solver and Gradient::Discretise, got {solver:?} with {:?}",
            opts.gradient
        ));
    }
    let mut y = y0.leaves();
    let fl = |t: &Tensor, y: &[Tensor]| f(t, &y0.rebuild_from(y.to_vec()), args).leaves();
    let field = Field { f: &fl, sign };
    let s_end = ts.last().copied().unwrap_or(t1) * sign;
    // One save time is the end of the solve (`s_end`): the final state, no interpolant
    // needed (the per-step dense coefficients and buffer fill would cost ~5% of a step).
    let dense = solver.is_adaptive()
        && ts.len() > 1
        && opts.gradient == Gradient::Discretise
        && !opts.step_to_save
        && !opts.fixed_steps
        && s_end > t0 * sign
        && step::Method::dense(&solver.tableau());
    if dense {
        // The natural steps over [t0, t_last]; save times filled by the interpolant.
        let taus: Vec<f64> = ts.iter().map(|t| t * sign).collect();
        let r = adaptive(&solver.tableau(), &field, t0 * sign, s_end, y, opts, Some(&taus), opts.regularise);
        let saved = r.saved.expect("asked for dense output");
        let ys = (0..ts.len()).map(|j| y0.rebuild_from(saved.iter().map(|b| b.index(j as isize)).collect())).collect();
        let [accepted, rejected, nfe, code] = r.stats.map(|t| t.cast(DType::I64));
        let reg = opts.regularise.then(|| {
            let [error, stiffness] = r.reg;
            Regularisers { error, stiffness }
        });
        return Solution { ts, ys, stats: Stats { accepted, rejected, nfe }, result: code, reg };
    }
    let mut stats = [0.0, 0.0, 0.0, 0.0].map(Tensor::scalar);
    let mut regs = [0.0, 0.0].map(Tensor::scalar);
    let mut ys = Vec::new();
    let mut s = t0 * sign;
    for &t in &ts {
        let (a, b) = (s, t * sign);
        let (y_new, st, rg) = match opts.gradient {
            Gradient::Discretise => interval_reg(solver, &field, a, b, y, opts, opts.regularise),
            Gradient::Adjoint => {
                let (y, st) = adjoint_interval(&f, solver, sign, a, b, y0, y, args, opts);
                (y, st, [0.0, 0.0].map(Tensor::scalar))
            }
        };
        y = y_new;
        // Intervals after a failure are skipped (their result code is kept).
        let failed = stats[3].ne(0.0);
        for (acc, v) in stats.iter_mut().zip(st) {
            *acc = where_(&failed, &*acc, &(&*acc + v));
        }
        for (acc, v) in regs.iter_mut().zip(rg) {
            *acc = where_(&failed, &*acc, &(&*acc + v));
        }
        ys.push(y0.rebuild_from(y.clone()));
        s = b;
    }
    let [accepted, rejected, nfe, code] = stats.map(|t| t.cast(DType::I64));
    let reg = opts.regularise.then(|| {
        let [error, stiffness] = regs;
        Regularisers { error, stiffness }
    });
    Solution { ts, ys, stats: Stats { accepted, rejected, nfe }, result: code, reg }
}
