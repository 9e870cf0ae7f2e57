//! Ordinary differential equations `dy/dt = f(t, y, args)` over trees of tensors: [`solve`].
//! Not here yet: implicit (stiff) solvers and dense output (save times are stepped to).
//!
//! Built on the public API only: the fixed-step solvers ([`Solver::Euler`], [`Solver::Heun`],
//! [`Solver::Midpoint`], [`Solver::Rk4`]) run one [`fori_loop`] per interval between save
//! times; the adaptive ones ([`Solver::Bosh3`], [`Solver::Dopri5`], [`Solver::Tsit5`]) run one
//! [`while_loop_bounded`] per interval, with a PID step-size controller ([`Pid`]) on the RMS
//! error norm scaled by `atol + rtol·|y|`. Save times are reached by stepping to each of them
//! (no interpolation). Under [`jit`](crate::jit) the whole solve is one compiled program whose
//! step is traced once.
//!
//! Gradients ([`Gradient`]):
//! * [`Gradient::Discretise`] (discretise-then-optimise): reverse mode through the loop; for
//!   the adaptive solvers `while_loop_bounded` keeps `O(log max_steps)` carries. The step-size
//!   controller is not differentiated (its inputs go through `stop_gradient`).
//! * [`Gradient::Adjoint`] (optimise-then-discretise, Chen et al. 2018): each interval is a
//!   [`custom_vjp`] whose backward pass integrates the augmented state `(y, a, g)` backward in
//!   time with the same solver: `dy/dt = f`, `da/dt = -aᵀ∂f/∂y`, `dg/dt = -aᵀ∂f/∂args`.
//!   Memory does not grow with the steps; its gradient matches the true one to the tolerance.
//! * Forward sensitivities: [`jvp`](crate::jvp) / [`jacfwd`](crate::jacfwd) through a solve
//!   with [`Gradient::Discretise`] (a `custom_vjp` has no forward mode).
//!
//! Stochastic equations: [`euler_maruyama`] (diagonal noise, Brownian increments from
//! [`random`](crate::random) keys).
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

use crate::control::{custom_vjp, fori_loop, while_loop_bounded};
use crate::{vjp, where_, DType, Tensor, Tree};

/// A Runge–Kutta method. The first four take fixed steps (`Options::dt0` is required); the
/// last three are embedded pairs with error control.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Solver {
    /// Explicit Euler, order 1.
    Euler,
    /// Heun's method (explicit trapezoid), order 2.
    Heun,
    /// Explicit midpoint, order 2.
    Midpoint,
    /// The classical Runge–Kutta method, order 4.
    Rk4,
    /// Bogacki–Shampine 3(2), adaptive.
    Bosh3,
    /// Dormand–Prince 5(4), adaptive.
    Dopri5,
    /// Tsitouras 5(4), adaptive.
    Tsit5,
}

/// A Butcher tableau: `c`, the strictly lower `a` rows, weights `b`, and for embedded pairs
/// the error weights `e = b - b̂`.
#[derive(Clone, Debug)]
pub struct Tableau {
    /// Stage times.
    pub c: Vec<f64>,
    /// Row `i` holds `a[i][0..i]`.
    pub a: Vec<Vec<f64>>,
    /// Solution weights.
    pub b: Vec<f64>,
    /// Error weights `b - b̂` (adaptive methods only).
    pub e: Option<Vec<f64>>,
    /// Order of the solution.
    pub order: usize,
}

impl Solver {
    /// Whether the solver controls its step size.
    ///
    /// ```
    /// use cotangent::diffeq::Solver;
    /// assert!(Solver::Tsit5.is_adaptive() && !Solver::Rk4.is_adaptive());
    /// ```
    pub fn is_adaptive(self) -> bool {
        matches!(self, Solver::Bosh3 | Solver::Dopri5 | Solver::Tsit5)
    }

    /// The solver's Butcher tableau.
    ///
    /// ```
    /// use cotangent::diffeq::Solver;
    /// let t = Solver::Rk4.tableau();
    /// assert_eq!(t.order, 4);
    /// assert!((t.b.iter().sum::<f64>() - 1.0).abs() < 1e-15);
    /// ```
    pub fn tableau(self) -> Tableau {
        let sub = |b: &[f64], bh: &[f64]| Some(b.iter().zip(bh).map(|(x, y)| x - y).collect());
        match self {
            Solver::Euler => Tableau { c: vec![0.0], a: vec![vec![]], b: vec![1.0], e: None, order: 1 },
            Solver::Heun => {
                Tableau { c: vec![0.0, 1.0], a: vec![vec![], vec![1.0]], b: vec![0.5, 0.5], e: None, order: 2 }
            }
            Solver::Midpoint => {
                Tableau { c: vec![0.0, 0.5], a: vec![vec![], vec![0.5]], b: vec![0.0, 1.0], e: None, order: 2 }
            }
            Solver::Rk4 => Tableau {
                c: vec![0.0, 0.5, 0.5, 1.0],
                a: vec![vec![], vec![0.5], vec![0.0, 0.5], vec![0.0, 0.0, 1.0]],
                b: vec![1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0],
                e: None,
                order: 4,
            },
            Solver::Bosh3 => {
                let b = [2.0 / 9.0, 1.0 / 3.0, 4.0 / 9.0, 0.0];
                Tableau {
                    c: vec![0.0, 0.5, 0.75, 1.0],
                    a: vec![vec![], vec![0.5], vec![0.0, 0.75], b[..3].to_vec()],
                    b: b.to_vec(),
                    e: sub(&b, &[7.0 / 24.0, 0.25, 1.0 / 3.0, 0.125]),
                    order: 3,
                }
            }
            Solver::Dopri5 => {
                let b = [35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0, 0.0];
                let bh = [
                    5179.0 / 57600.0,
                    0.0,
                    7571.0 / 16695.0,
                    393.0 / 640.0,
                    -92097.0 / 339200.0,
                    187.0 / 2100.0,
                    1.0 / 40.0,
                ];
                Tableau {
                    c: vec![0.0, 0.2, 0.3, 0.8, 8.0 / 9.0, 1.0, 1.0],
                    a: vec![
                        vec![],
                        vec![0.2],
                        vec![3.0 / 40.0, 9.0 / 40.0],
                        vec![44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0],
                        vec![19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0],
                        vec![9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0, -5103.0 / 18656.0],
                        b[..6].to_vec(),
                    ],
                    b: b.to_vec(),
                    e: sub(&b, &bh),
                    order: 5,
                }
            }
            Solver::Tsit5 => {
                let b = [
                    0.09646076681806523,
                    0.01,
                    0.4798896504144996,
                    1.379008574103742,
                    -3.290069515436081,
                    2.324710524099774,
                    0.0,
                ];
                Tableau {
                    c: vec![0.0, 0.161, 0.327, 0.9, 0.9800255409045097, 1.0, 1.0],
                    a: vec![
                        vec![],
                        vec![0.161],
                        vec![-0.008480655492356989, 0.335480655492357],
                        vec![2.897153057105493, -6.359448489975075, 4.3622954328695815],
                        vec![5.325864828439257, -11.748883564062828, 7.4955393428898365, -0.09249506636175525],
                        vec![
                            5.86145544294642,
                            -12.92096931784711,
                            8.159367898576159,
                            -0.071584973281401,
                            -0.028269050394068383,
                        ],
                        b[..6].to_vec(),
                    ],
                    b: b.to_vec(),
                    e: Some(vec![
                        -0.001_780_011_052_225_777,
                        -0.0008164344596567469,
                        0.007880878010261995,
                        -0.1447110071732629,
                        0.5823571654525552,
                        -0.45808210592918697,
                        1.0 / 66.0,
                    ]),
                    order: 5,
                }
            }
        }
    }
}

/// The PID step-size controller: after a step with scaled error norm `ε` (accepted when
/// `ε ≤ 1`) the next step is `dt · clamp(safety · ε⁻ᵝ¹ · ε₋₁⁻ᵝ² · ε₋₂⁻ᵝ³, factor_min, factor_max)`
/// with `β₁ = (p + i + d)/k`, `β₂ = -(p + 2d)/k`, `β₃ = d/k`, `k` = the solver's order + 1
/// (Söderlind's digital filters as diffrax writes them). The default `p = d = 0`, `i = 1` is
/// the classical controller; `p = 0.4, i = 0.3` is a good PI choice.
///
/// ```
/// use cotangent::diffeq::Pid;
/// assert_eq!(Pid::default().icoeff, 1.0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pid {
    /// Proportional coefficient.
    pub pcoeff: f64,
    /// Integral coefficient.
    pub icoeff: f64,
    /// Derivative coefficient.
    pub dcoeff: f64,
    /// Safety factor.
    pub safety: f64,
    /// Smallest factor a step may shrink by.
    pub factor_min: f64,
    /// Largest factor a step may grow by.
    pub factor_max: f64,
}

impl Default for Pid {
    fn default() -> Self {
        Pid { pcoeff: 0.0, icoeff: 1.0, dcoeff: 0.0, safety: 0.9, factor_min: 0.2, factor_max: 10.0 }
    }
}

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
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Options {
    /// Relative tolerance (adaptive solvers).
    pub rtol: f64,
    /// Absolute tolerance (adaptive solvers).
    pub atol: f64,
    /// The step: required by the fixed-step solvers (the step used divides each interval
    /// evenly, at most `|dt0|`), the first trial step of the adaptive ones (`None`: chosen from
    /// `y0` and `f(t0, y0)`). Its sign must be that of `t1 - t0`.
    pub dt0: Option<f64>,
    /// The most steps (accepted and rejected) an adaptive solver takes per interval between
    /// save times; then [`Solution::result`] is `1`.
    pub max_steps: usize,
    /// The step-size controller.
    pub controller: Pid,
    /// The reverse-mode method.
    pub gradient: Gradient,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rtol: 1e-6,
            atol: 1e-6,
            dt0: None,
            max_steps: 4096,
            controller: Pid::default(),
            gradient: Gradient::Discretise,
        }
    }
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

/// The vector field on leaf vectors, in the integration variable `s` (`t = sign·s`).
struct Field<'a> {
    f: &'a dyn Fn(&Tensor, &[Tensor]) -> Vec<Tensor>,
    sign: f64,
}

impl Field<'_> {
    fn eval(&self, s: &Tensor, y: &[Tensor]) -> Vec<Tensor> {
        let out = (self.f)(&(s * self.sign), y);
        if self.sign < 0.0 {
            out.iter().map(|k| -k).collect()
        } else {
            out
        }
    }
}

fn axpy(y: &[Tensor], h: &Tensor, terms: &[(f64, &Vec<Tensor>)]) -> Vec<Tensor> {
    y.iter()
        .enumerate()
        .map(|(i, yi)| {
            let mut acc: Option<Tensor> = None;
            for (w, k) in terms {
                if *w != 0.0 {
                    let term = &k[i] * *w;
                    acc = Some(match acc {
                        None => term,
                        Some(a) => a + term,
                    });
                }
            }
            match acc {
                None => yi.clone(),
                Some(a) => yi + a * h.cast(yi.dtype()),
            }
        })
        .collect()
}

/// One Runge–Kutta step: the new state and, for embedded pairs, the error estimate.
fn rk_step(tab: &Tableau, field: &Field, s: &Tensor, h: &Tensor, y: &[Tensor]) -> (Vec<Tensor>, Option<Vec<Tensor>>) {
    let mut ks: Vec<Vec<Tensor>> = Vec::new();
    for i in 0..tab.c.len() {
        let yi = axpy(y, h, &tab.a[i].iter().copied().zip(ks.iter()).collect::<Vec<_>>());
        ks.push(field.eval(&(s + h * tab.c[i]), &yi));
    }
    let y1 = axpy(y, h, &tab.b.iter().copied().zip(ks.iter()).collect::<Vec<_>>());
    let err = tab.e.as_ref().map(|e| {
        let zero: Vec<Tensor> = y.iter().map(Tensor::zeros_like).collect();
        axpy(&zero, h, &e.iter().copied().zip(ks.iter()).collect::<Vec<_>>())
    });
    (y1, err)
}

/// RMS of `e / (atol + rtol·max(|y0|, |y1|))` over every element of every leaf, as an f64
/// scalar.
fn error_norm(e: &[Tensor], y0: &[Tensor], y1: &[Tensor], rtol: f64, atol: f64) -> Tensor {
    let mut sum = Tensor::scalar(0.0);
    let mut n = 0usize;
    for ((e, a), b) in e.iter().zip(y0).zip(y1) {
        let scale = a.abs().maximum(b.abs()) * rtol + atol;
        sum = sum + (e / scale).square().sum_all().cast(DType::F64);
        n += e.numel();
    }
    (sum / (n.max(1) as f64)).sqrt()
}

/// Carry of the adaptive loop: `[s, h, ε₋₁, ε₋₂, accepted, rejected, nfe, code]` then the
/// state leaves.
fn adaptive(
    tab: &Tableau,
    field: &Field,
    s0: f64,
    s1: f64,
    y0: Vec<Tensor>,
    o: &Options,
) -> (Vec<Tensor>, [Tensor; 4]) {
    let stages = tab.c.len() as f64;
    let k = (tab.order + 1) as f64;
    let pid = o.controller;
    let (b1, b2, b3) =
        ((pid.pcoeff + pid.icoeff + pid.dcoeff) / k, -(pid.pcoeff + 2.0 * pid.dcoeff) / k, pid.dcoeff / k);
    let span = s1 - s0;
    let mut nfe0 = 0.0;
    let h0 = match o.dt0 {
        Some(h) => Tensor::scalar(h.abs().min(span)),
        None => {
            // Hairer's first guess: 0.01·‖y0‖/‖f(t0, y0)‖ in the scaled norm.
            nfe0 = 1.0;
            let f0 = field.eval(&Tensor::scalar(s0), &y0);
            let d0 = error_norm(&y0, &y0, &y0, o.rtol, o.atol).stop_gradient();
            let d1 = error_norm(&f0, &y0, &y0, o.rtol, o.atol).stop_gradient();
            let h = where_(&d0.lt(1e-5).logical_or(&d1.lt(1e-5)), 1e-6, &(&d0 / d1.maximum(1e-300) * 0.01));
            h.minimum(span)
        }
    };
    let one = Tensor::scalar(1.0);
    let mut init = vec![
        Tensor::scalar(s0),
        h0,
        one.clone(),
        one,
        Tensor::scalar(0.0),
        Tensor::scalar(0.0),
        Tensor::scalar(nfe0),
        Tensor::scalar(0.0),
    ];
    init.extend(y0);
    let live = |c: &Vec<Tensor>| c[0].lt(s1).logical_and(&c[7].eq(0.0));
    let body = |c: &Vec<Tensor>| {
        let (s, h, y) = (&c[0], &c[1], &c[8..]);
        let last = h.ge(&(-s + s1));
        let h = where_(&last, &(-s + s1), h);
        let (y1, err) = rk_step(tab, field, s, &h, y);
        let err = err.expect("adaptive tableau");
        let eps = error_norm(&err, y, &y1, o.rtol, o.atol).stop_gradient();
        let finite = eps.is_finite();
        let accept = eps.le(1.0).logical_and(&finite);
        let eps_safe = where_(&finite, &eps.maximum(1e-10), 1e10);
        let mut factor = eps_safe.powf(-b1) * pid.safety;
        if b2 != 0.0 {
            factor = factor * c[2].powf(-b2);
        }
        if b3 != 0.0 {
            factor = factor * c[3].powf(-b3);
        }
        let factor = factor.clamp(pid.factor_min, pid.factor_max);
        let factor = where_(&accept, &factor, &factor.minimum(1.0));
        let h_next = (&h * factor).stop_gradient();
        let s_next = where_(&accept, &where_(&last, s1, &(s + &h)), s);
        let underflow = h_next.lt(&(s.abs().maximum(1.0) * 1e-14));
        let code = where_(&finite.logical_not().logical_or(&underflow), 2.0, 0.0);
        let mut out = vec![
            s_next,
            h_next,
            where_(&accept, &eps_safe, &c[2]),
            where_(&accept, &c[2], &c[3]),
            &c[4] + where_(&accept, 1.0, 0.0),
            &c[5] + where_(&accept, 0.0, 1.0),
            &c[6] + stages,
            code,
        ];
        out.extend(y1.iter().zip(y).map(|(a, b)| where_(&accept, a, b)));
        out
    };
    let mut c = while_loop_bounded(live, body, &init, o.max_steps);
    let y = c.split_off(8);
    // Ran out of steps: code 1.
    let code = where_(&c[7].eq(0.0).logical_and(&c[0].lt(s1)), 1.0, &c[7]);
    (y, [c[4].clone(), c[5].clone(), c[6].clone(), code])
}

fn fixed(tab: &Tableau, field: &Field, s0: f64, s1: f64, y0: Vec<Tensor>, dt: f64) -> (Vec<Tensor>, [Tensor; 4]) {
    let n = (((s1 - s0) / dt) - 1e-9).ceil().max(1.0) as i64;
    let h = (s1 - s0) / n as f64;
    let y = fori_loop(
        0,
        n,
        |i: &Tensor, y: &Vec<Tensor>| {
            let s = i.cast(DType::F64) * h + s0;
            rk_step(tab, field, &s, &Tensor::scalar(h), y).0
        },
        &y0,
    );
    // A non-finite final state (NaN in y0, or a blow-up) is flagged: code 2.
    let code = where_(&all_finite(&y), 0.0, 2.0);
    let stats =
        [Tensor::scalar(n as f64), Tensor::scalar(0.0), Tensor::scalar((n as usize * tab.c.len()) as f64), code];
    (y, stats)
}

/// One interval in the integration variable: leaves in, (leaves, stats as f64) out.
fn interval(
    solver: Solver,
    field: &Field,
    s0: f64,
    s1: f64,
    y0: Vec<Tensor>,
    o: &Options,
) -> (Vec<Tensor>, [Tensor; 4]) {
    let tab = solver.tableau();
    if s1 <= s0 {
        return (y0, [0.0, 0.0, 0.0, 0.0].map(Tensor::scalar));
    }
    if solver.is_adaptive() {
        adaptive(&tab, field, s0, s1, y0, o)
    } else {
        fixed(&tab, field, s0, s1, y0, o.dt0.expect("checked").abs())
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
    let mut y = y0.leaves();
    let mut stats = [0.0, 0.0, 0.0, 0.0].map(Tensor::scalar);
    let mut ys = Vec::new();
    let mut s = t0 * sign;
    for &t in &ts {
        let (a, b) = (s, t * sign);
        let (y_new, st) = match opts.gradient {
            Gradient::Discretise => {
                let fl = |t: &Tensor, y: &[Tensor]| f(t, &y0.rebuild_from(y.to_vec()), args).leaves();
                interval(solver, &Field { f: &fl, sign }, a, b, y, opts)
            }
            Gradient::Adjoint => adjoint_interval(&f, solver, sign, a, b, y0, y, args, opts),
        };
        y = y_new;
        // Intervals after a failure are skipped (their result code is kept).
        let failed = stats[3].ne(0.0);
        for (acc, v) in stats.iter_mut().zip(st) {
            *acc = where_(&failed, &*acc, &(&*acc + v));
        }
        ys.push(y0.rebuild_from(y.clone()));
        s = b;
    }
    let [accepted, rejected, nfe, code] = stats.map(|t| t.cast(DType::I64));
    Solution { ts, ys, stats: Stats { accepted, rejected, nfe }, result: code }
}

/// One interval as a [`custom_vjp`] whose backward pass integrates the adjoint ODE.
#[allow(clippy::too_many_arguments)]
fn adjoint_interval<Y: Tree, P: Tree>(
    f: &impl Fn(&Tensor, &Y, &P) -> Y,
    solver: Solver,
    sign: f64,
    a: f64,
    b: f64,
    like: &Y,
    y: Vec<Tensor>,
    args: &P,
    opts: &Options,
) -> (Vec<Tensor>, [Tensor; 4]) {
    let ny = y.len();
    let np = args.leaves().len();
    // Leaves (y, args) -> (y1, stats): the forward solve.
    let forward = |x: &Vec<Tensor>| -> Vec<Tensor> {
        let (yl, pl) = x.split_at(ny);
        let p = args.rebuild_from(pl.to_vec());
        let fl = |t: &Tensor, y: &[Tensor]| f(t, &like.rebuild_from(y.to_vec()), &p).leaves();
        let (y1, st) = interval(solver, &Field { f: &fl, sign }, a, b, yl.to_vec(), opts);
        let mut out = y1;
        out.extend(st);
        out
    };
    let fwd = |x: &Vec<Tensor>| {
        let out = forward(x);
        let mut res: Vec<Tensor> = out[..ny].to_vec();
        res.extend(x[ny..].iter().cloned());
        (out, res)
    };
    let bwd = |res: &Vec<Tensor>, ct: &Vec<Tensor>| -> Vec<Tensor> {
        let (y1, pl) = res.split_at(ny);
        let p_leaves = pl.to_vec();
        // Augmented state (y, a, g) integrated in the reversed variable u = -s from -b to -a:
        // d/du (y, a, g) = (-f, aᵀ∂f/∂y, aᵀ∂f/∂p) with f in the forward variable s.
        let aug = |t: &Tensor, z: &[Tensor]| -> Vec<Tensor> {
            let (yz, rest) = z.split_at(ny);
            let az = &rest[..ny];
            let fy = |x: &Vec<Tensor>| {
                let (yy, pp) = x.split_at(ny);
                f(t, &like.rebuild_from(yy.to_vec()), &args.rebuild_from(pp.to_vec())).leaves()
            };
            let mut primal = yz.to_vec();
            primal.extend(p_leaves.iter().cloned());
            let (fv, pb) = vjp(fy, &primal);
            let cts = pb.call(&az.to_vec());
            // In the forward variable s (t = sign·s): dy/ds = sign·f.
            let mut out: Vec<Tensor> = fv.iter().map(|v| -(v * sign)).collect();
            out.extend(cts.iter().map(|c| c * sign));
            out
        };
        let mut z0: Vec<Tensor> = y1.to_vec();
        z0.extend(ct[..ny].iter().cloned());
        z0.extend(p_leaves.iter().map(Tensor::zeros_like));
        let mut o = *opts;
        o.dt0 = o.dt0.map(f64::abs);
        let (z, _) = interval(solver, &Field { f: &aug, sign: 1.0 }, -b, -a, z0, &o);
        let mut out = z[ny..2 * ny].to_vec();
        out.extend(z[2 * ny..2 * ny + np].iter().cloned());
        out
    };
    let g = custom_vjp(forward, fwd, bwd);
    let mut x = y;
    x.extend(args.leaves());
    let mut out = g(&x);
    let st = out.split_off(ny);
    (out, [st[0].clone(), st[1].clone(), st[2].clone(), st[3].clone()])
}

/// A bool scalar: whether every element of every leaf is finite.
fn all_finite(y: &[Tensor]) -> Tensor {
    y.iter().fold(Tensor::scalar(true), |acc, t| acc.logical_and(&t.is_finite().all_all()))
}

/// Euler–Maruyama for the Itô SDE `dy = f(t, y, args) dt + g(t, y, args) ∘ dW` with diagonal
/// noise (`g` returns a tree shaped like `y`, multiplied elementwise by independent Brownian
/// increments), `n_steps` equal steps from `t0` to `t1` in one [`fori_loop`] (so every
/// transformation goes through it, reverse mode included). The increment of step `i` for leaf
/// `j` is `√|dt| · normal(fold_in(fold_in(key, i), j))`: the same key gives the same path.
/// Strong order 1/2, weak order 1.
///
/// ```
/// use cotangent::diffeq::euler_maruyama;
/// use cotangent::{random, DType, Tensor};
/// // Brownian motion dy = σ dW: y(1) ~ N(0, σ²); 4000 paths at once.
/// let f = |_t: &Tensor, y: &Tensor, _: &()| y.zeros_like();
/// let g = |_t: &Tensor, y: &Tensor, _: &()| y.ones_like() * 2.0;
/// let y = euler_maruyama(f, g, 0.0, 1.0, 50, &Tensor::zeros(&[4000], DType::F64), &(), &random::key(0));
/// let v = y.square().mean_all().item::<f64>();
/// assert!((v - 4.0).abs() < 0.4, "{v}");
/// ```
///
/// # Panics
/// At the caller's line when `n_steps` is 0, or `f` or `g` returns another structure or other
/// types than the state.
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn euler_maruyama<Y: Tree, P: Tree>(
    f: impl Fn(&Tensor, &Y, &P) -> Y,
    g: impl Fn(&Tensor, &Y, &P) -> Y,
    t0: f64,
    t1: f64,
    n_steps: usize,
    y0: &Y,
    args: &P,
    key: &Tensor,
) -> Y {
    let caller = std::panic::Location::caller();
    if n_steps == 0 {
        panic!("diffeq::euler_maruyama (called at {caller}): n_steps must be at least 1");
    }
    for (name, out) in
        [("drift f", f(&Tensor::scalar(t0), y0, args)), ("diffusion g", g(&Tensor::scalar(t0), y0, args))]
    {
        let (la, lb) = (y0.named_leaves(), out.named_leaves());
        if la.len() != lb.len() || la.iter().zip(&lb).any(|((pa, ta), (pb, tb))| pa != pb || ta.ty() != tb.ty()) {
            let show = |l: &[(String, Tensor)]| {
                l.iter().map(|(p, t)| format!("{p}: {}", t.ty())).collect::<Vec<_>>().join(", ")
            };
            panic!(
                "diffeq::euler_maruyama (called at {caller}): the {name} must return the state's structure and types: it returns ({}) but the state is ({})",
                show(&lb),
                show(&la)
            );
        }
    }
    let h = (t1 - t0) / n_steps as f64;
    let sq = h.abs().sqrt();
    let y = fori_loop(
        0,
        n_steps as i64,
        |i: &Tensor, y: &Vec<Tensor>| {
            let t = i.cast(DType::F64) * h + t0;
            let tree = y0.rebuild_from(y.clone());
            let (drift, diff) = (f(&t, &tree, args).leaves(), g(&t, &tree, args).leaves());
            let k = crate::random::fold_in_tensor(key, i);
            y.iter()
                .zip(drift.iter().zip(&diff))
                .enumerate()
                .map(|(j, (y, (a, b)))| {
                    let dw = crate::random::normal(&crate::random::fold_in(&k, j as i64), &y.shape(), y.dtype()) * sq;
                    y + a * h + b * dw
                })
                .collect()
        },
        &y0.leaves(),
    );
    y0.rebuild_from(y)
}
