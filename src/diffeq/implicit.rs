//! Implicit methods for stiff problems: the ESDIRK pairs [`Solver::Kvaerno3`] and
//! [`Solver::Kvaerno5`] (Kværnø 2004), as a [`Method`] the fixed and adaptive drivers run.
//!
//! One step from `(s, y)` with step `h`: the first stage is explicit (`k₁ = f(s, y)`); stage
//! `i > 1` solves `z = base_i + h·γ·f(s + c_i h, z)` with `base_i = y + h·Σ_{j<i} a_ij k_j` by
//! a simplified Newton iteration, then recovers `k_i = (z - base_i)/(h·γ)` (no extra
//! evaluation). Both methods are stiffly accurate, so `y₁` is the last stage value; the error
//! estimate is `h·Σ (b_j - b̂_j) k_j`.
//!
//! Newton: the Jacobian `J = ∂f/∂y` of the field at `(s, y)` with respect to the flattened
//! state (all leaves concatenated) is taken once per step with [`jacfwd`], and
//! `M = I - h·γ·J` is LU-factored once per step; every stage and iteration reuses the factors
//! (one permutation and two triangular solves per iteration). The first guess of stage `i` is
//! `base_i + h·γ·Σ_j α_ij k_j` (diffrax's linear-combination predictors). The iterations of a
//! stage are one [`while_loop_bounded`] of at most [`MAX_ITERS`] (body traced once per stage);
//! after iteration `m` with scaled increment size `d_m` (RMS of `Δ / (atol + rtol·|z|)`, the
//! driver's tolerances, `|z|` the smaller of the old and new iterates' magnitudes, so that an
//! iterate growing geometrically shows a growing `d_m`) and rate `θ = d_m / d_{m-1}`, the stage has converged when
//! `d_m < SMALL`, or the increment is at the rounding level (`RMS(Δ/(|z| + atol)) < 10³·ε`),
//! or (from the second iteration on) `θ < 1` and `θ·d_m/(1-θ) < KAPPA`; it has
//! diverged when `d_m` is not finite or (from the second on) `θ > 2` (diffrax's `VeryChord`
//! test). A diverged iterate is never kept, and the value of a stage that failed is replaced
//! by its first guess before the later stages use it (the "double where": reverse mode
//! through a rejected step then never meets the 0·∞ of a vjp of `f` at an overflowing
//! iterate). A stage that diverged or did not converge within `MAX_ITERS` fails the step: the
//! adaptive driver rejects it (the error estimate is set to `10⁴` in the scaled norm, so the
//! controller shrinks `h` by `factor_min`); the fixed-step driver gets a NaN state and reports
//! result `2`. Never a silent wrong answer.
//!
//! Evaluations counted in `nfe`: 1 for the explicit stage, `n` for the Jacobian (`n` =
//! elements of the state: one forward-mode column each) and 1 per Newton iteration run.
//!
//! Derivatives: the iteration matrix `M` (hence `J`) goes through `stop_gradient` — it only
//! preconditions the iteration, the fixed point does not depend on it — so reverse mode never
//! differentiates the Jacobian (no second derivatives of `f`) and differentiates through the
//! Newton iterations that ran: each is `z ← z - M⁻¹ G(z)`, whose derivative is the same chord
//! iteration applied to the tangent, which converges to the implicit-function derivative at
//! the rate the primal converged at (exact after the first iteration for linear fields).
//! The convergence flags are computed from stopped values. Reverse mode through the stage's
//! bounded loop (one level of ten guarded blocks) keeps the carry entering each iteration and
//! recomputes the iterations once more in the backward pass: about twice the forward Newton
//! work, plus the transposed triangular solves.

use super::step::{Field, Method, Step};
use super::{Options, Solver, Tableau};
use crate::control::while_loop_bounded;
use crate::linalg::{lu, triangular_solve, TriangularSolve};
use crate::{concatenate, jacfwd, where_, DType, Tensor};

/// The most Newton iterations per stage.
pub(super) const MAX_ITERS: usize = 10;
/// Convergence constant of the Newton test (in units of the tolerance).
const KAPPA: f64 = 1e-2;
/// An increment this small (in units of the tolerance) has converged at once.
const SMALL: f64 = 1e-6;

/// An ESDIRK method with its Newton settings.
pub(super) struct Esdirk {
    tab: Tableau,
    /// `α_ij`: the first guess of stage `i` is `base_i + hγ Σ_j α_ij k_j`.
    pred: Vec<Vec<f64>>,
    gamma: f64,
    rtol: f64,
    atol: f64,
    /// Run by the fixed-step driver: a failed Newton solve gives a NaN state.
    fixed: bool,
}

impl Esdirk {
    /// The method of `solver` (`Kvaerno3` or `Kvaerno5`) with `o`'s tolerances.
    pub(super) fn new(solver: Solver, o: &Options, fixed: bool) -> Esdirk {
        let tab = solver.tableau();
        let gamma = tab.a[1][1];
        let pred = match solver {
            Solver::Kvaerno3 => {
                let th = 1.0 / (2.0 * gamma);
                vec![vec![], vec![1.0], vec![1.0 - th, th], vec![tab.a[2][0], tab.a[2][1], gamma]]
            }
            Solver::Kvaerno5 => vec![
                vec![],
                vec![1.0],
                vec![-1.366025403784441, 2.3660254037844357],
                vec![-0.19650552613122207, 0.8113579546496623, 0.38514757148155954],
                vec![0.10375304369958693, 0.937994698066431, -0.04174774176601781, 0.0],
                vec![-0.17281112873898072, 0.6235784481025847, 0.5492326806363959, 0.0, 0.0],
                {
                    let mut r = tab.a[5].clone();
                    r[5] = gamma;
                    r
                },
            ],
            other => unreachable!("{other:?} is not implicit"),
        };
        Esdirk { tab, pred, gamma, rtol: o.rtol, atol: o.atol, fixed }
    }
}

/// Flattening of the state's leaves into one vector of a common float dtype and back.
struct Flat {
    dtype: DType,
    shapes: Vec<Vec<usize>>,
    dtypes: Vec<DType>,
    n: usize,
}

impl Flat {
    fn of(y: &[Tensor]) -> Flat {
        let dtypes: Vec<DType> = y.iter().map(Tensor::dtype).collect();
        let dtype = if dtypes.windows(2).all(|w| w[0] == w[1]) { dtypes[0] } else { DType::F64 };
        Flat { dtype, shapes: y.iter().map(Tensor::shape).collect(), dtypes, n: y.iter().map(Tensor::numel).sum() }
    }

    fn pack(&self, y: &[Tensor]) -> Tensor {
        let parts: Vec<Tensor> = y.iter().map(|t| t.cast(self.dtype).reshape(&[-1])).collect();
        concatenate(&parts, 0)
    }

    fn unpack(&self, v: &Tensor) -> Vec<Tensor> {
        let mut at = 0;
        self.shapes
            .iter()
            .zip(&self.dtypes)
            .map(|(shape, &dt)| {
                let m: usize = shape.iter().product();
                let part = v.slice(&[at], &[at + m], &[1]);
                at += m;
                let dims: Vec<isize> = shape.iter().map(|&d| d as isize).collect();
                part.reshape(&dims).cast(dt)
            })
            .collect()
    }
}

/// `y + h·Σ w_j k_j` on flat vectors (zero weights skipped).
fn combine(y: &Tensor, h: &Tensor, terms: &[(f64, &Tensor)]) -> Tensor {
    let mut acc: Option<Tensor> = None;
    for (w, k) in terms {
        if *w != 0.0 {
            let t = *k * *w;
            acc = Some(match acc {
                None => t,
                Some(a) => a + t,
            });
        }
    }
    match acc {
        None => y.clone(),
        Some(a) => y + a * h,
    }
}

impl Method for Esdirk {
    fn order(&self) -> usize {
        self.tab.order
    }

    fn step(&self, field: &Field, s: &Tensor, h: &Tensor, y: &[Tensor]) -> Step {
        let flat = Flat::of(y);
        let n = flat.n;
        let dt = flat.dtype;
        let hd = h.cast(dt);
        let hg = &hd * self.gamma;
        let eval = |t: &Tensor, v: &Tensor| flat.pack(&field.eval(t, &flat.unpack(v)));
        let y0 = flat.pack(y);
        // The Jacobian at the start of the step, frozen within it; M = I - hγJ factored once.
        let jac = jacfwd(|v: &Tensor| eval(s, v))(&y0).stop_gradient();
        let m = (Tensor::eye(n, dt) - jac * hg.stop_gradient()).stop_gradient();
        let (lu_m, _, perm) = lu(&m);
        let p = perm.one_hot(n, dt);
        let lower = TriangularSolve { left_side: true, lower: true, transpose_a: false, unit_diagonal: true };
        let upper = TriangularSolve { left_side: true, lower: false, ..Default::default() };
        let msolve = |r: &Tensor| -> Tensor {
            let pb = p.matmul(&r.reshape(&[n as isize, 1]));
            triangular_solve(&lu_m, &triangular_solve(&lu_m, &pb, lower), upper).reshape(&[n as isize])
        };
        let (rtol, atol) = (self.rtol, self.atol);
        let roundoff = 1e3 * if dt == DType::F64 { f64::EPSILON } else { f32::EPSILON as f64 };
        let tab = &self.tab;
        let mut ks: Vec<Tensor> = vec![eval(s, &y0)];
        let mut iters = Tensor::scalar(0.0);
        let mut failed = Tensor::scalar(false);
        let mut z = y0.clone();
        for i in 1..tab.c.len() {
            let ti = s + h * tab.c[i];
            let base = combine(&y0, &hd, &tab.a[i][..i].iter().copied().zip(ks.iter()).collect::<Vec<_>>());
            let guess = combine(&base, &hg, &self.pred[i].iter().copied().zip(ks.iter()).collect::<Vec<_>>());
            let guess0 = guess.clone();
            // Carry: [z, d_prev, iterations, converged, diverged].
            let mut st =
                vec![guess, Tensor::scalar(1.0), Tensor::scalar(0.0), Tensor::scalar(false), Tensor::scalar(false)];
            let iterate = |c: &Vec<Tensor>| -> Vec<Tensor> {
                let (z, d_prev, m_it) = (&c[0], &c[1], &c[2]);
                let g = z - &base - eval(&ti, z) * &hg;
                let delta = -msolve(&g);
                let z_new = z + &delta;
                // Scaled by the smaller of |z| and |z_new|: scaled by |z_new| alone, a diverging
                // iterate that grows by a factor r each time has d ≈ 1/rtol every time (rate ≈ 1),
                // so the rate test missed it until it overflowed (non-finite values inside f).
                let scale = (z_new.abs().minimum(z.abs()) * rtol + atol).stop_gradient();
                let d = (&delta / scale).stop_gradient().square().mean_all().cast(DType::F64).sqrt();
                let m_next = m_it + 1.0;
                let rate = &d / d_prev;
                let second = m_next.ge(2.0);
                // Increments at the rounding level of z count as converged (tight tolerances).
                let rel = (&delta / (z_new.abs() + atol)).stop_gradient().square().mean_all().cast(DType::F64).sqrt();
                let small = d.lt(SMALL).logical_or(&rel.lt(roundoff));
                let finite = d.is_finite();
                let contract = rate.lt(1.0).logical_and(&(&d * &rate / (-&rate + 1.0)).lt(KAPPA));
                let converged = finite.logical_and(&small.logical_or(&second.logical_and(&contract)));
                let diverged = finite.logical_not().logical_or(&second.logical_and(&rate.gt(2.0)));
                // A diverged iterate is never kept (the stage has failed anyway; f is never
                // evaluated there).
                let z_out = where_(&diverged.logical_not(), &z_new, z);
                vec![z_out, where_(&finite, &d, d_prev), m_next, converged, diverged]
            };
            let active = |c: &Vec<Tensor>| c[3].logical_or(&c[4]).logical_not();
            st = while_loop_bounded(active, iterate, &st, MAX_ITERS);
            iters = iters + &st[2];
            failed = failed.logical_or(&st[3].logical_not());
            // The "double where": the iterate of a failed stage (diverged, or not converged in
            // MAX_ITERS) is replaced by the stage's first guess before anything else uses it, so
            // the later stages, the error estimate and the step's result never see it. The
            // step's outputs select `y0` when a stage failed, which sends zero cotangents into
            // the stages, but the vjp of f at an overflowing iterate multiplies that zero by an
            // infinite partial derivative (with respect to f's parameters: `∂(k₂·y₂²)/∂k₂ = y₂²`)
            // and gives NaN.
            z = where_(&st[3], &st[0], &guess0);
            ks.push((&z - &base) / &hg);
        }
        // Stiffly accurate: the last stage value is the solution.
        let e = tab.e.as_ref().expect("the Kvaerno pairs are embedded");
        let zero = Tensor::zeros_like(&y0);
        let err = combine(&zero, &hd, &e.iter().copied().zip(ks.iter()).collect::<Vec<_>>());
        let (y1, err) = if self.fixed {
            (where_(&failed, f64::NAN, &z), err)
        } else {
            let big = (y0.abs() * rtol + atol) * 1e4;
            (where_(&failed, &y0, &z), where_(&failed, &big, &err))
        };
        let nfe = iters + (1 + n) as f64;
        Step { y1: flat.unpack(&y1), err: Some(flat.unpack(&err)), nfe }
    }
}
