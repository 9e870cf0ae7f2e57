//! Stepping: one Runge–Kutta step, the error norm, and one interval between save times as a
//! fixed-step `fori_loop` or an adaptive `while_loop_bounded`.

use super::{Options, Solver, Tableau};
use crate::control::{fori_loop, while_loop_bounded};
use crate::{where_, DType, Tensor};

/// The vector field on leaf vectors, in the integration variable `s` (`t = sign·s`).
pub(super) struct Field<'a> {
    pub(super) f: &'a dyn Fn(&Tensor, &[Tensor]) -> Vec<Tensor>,
    pub(super) sign: f64,
}

impl Field<'_> {
    pub(super) fn eval(&self, s: &Tensor, y: &[Tensor]) -> Vec<Tensor> {
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

/// One step of a method from `(s, y)` with step `h`.
pub(super) struct Step {
    /// The state after the step.
    pub y1: Vec<Tensor>,
    /// The local error estimate (embedded pairs only).
    pub err: Option<Vec<Tensor>>,
    /// Function evaluations the step took (an f64 scalar: implicit methods iterate).
    pub nfe: Tensor,
}

/// A step with the extras the adaptive driver can use (see [`Method::step_ext`]).
pub(super) struct StepExt {
    /// The step itself.
    pub step: Step,
    /// `f(s + h, y₁)` when the method evaluated it as its last stage (first same as last).
    pub f1: Option<Vec<Tensor>>,
    /// The dense output inside the step: `y(s + θh) = y + Σₘ θᵐ·dense[m - 1]` (`m ≥ 1`; each
    /// entry holds one tensor per leaf).
    pub dense: Option<Vec<Vec<Tensor>>>,
    /// Shampine's stiffness estimate `‖k_last - k_prev‖ / ‖g_last - g_prev‖` (an f64 scalar).
    pub stiffness: Option<Tensor>,
}

/// What the adaptive driver asks of [`Method::step_ext`].
#[derive(Clone, Copy, Default)]
pub(super) struct Want {
    pub dense: bool,
    pub stiffness: bool,
}

/// A one-step method the fixed and adaptive drivers can run: the explicit Runge–Kutta
/// tableaus here; implicit methods implement it too.
///
/// Only `order` and `step` are required. The provided methods describe the optional extras
/// (first-same-as-last, dense output, a stiffness estimate); `solve` steps to each save time
/// for a method without dense output, and asking such a method for the regularisers panics.
pub(super) trait Method {
    /// The order of the propagated solution (the controller uses `order + 1`).
    fn order(&self) -> usize;
    /// One step.
    fn step(&self, field: &Field, s: &Tensor, h: &Tensor, y: &[Tensor]) -> Step;
    /// Whether the method's first stage is `f(s, y)` and its last `f(s + h, y₁)` (FSAL): the
    /// adaptive driver then carries `f` across steps and passes it as `f0` to `step_ext`.
    fn fsal(&self) -> bool {
        false
    }
    /// Whether `step_ext` returns dense output when asked.
    fn dense(&self) -> bool {
        false
    }
    /// One step with extras; `f0` is `f(s, y)` when the driver knows it (FSAL methods).
    fn step_ext(
        &self,
        field: &Field,
        s: &Tensor,
        h: &Tensor,
        y: &[Tensor],
        f0: Option<&[Tensor]>,
        want: Want,
    ) -> StepExt {
        let _ = (f0, want);
        StepExt { step: self.step(field, s, h, y), f1: None, dense: None, stiffness: None }
    }
}

/// `Σ‖aᵢ - bᵢ‖²` over all leaves, as an f64 scalar.
fn dist2(a: &[Tensor], b: &[Tensor]) -> Tensor {
    a.iter().zip(b).fold(Tensor::scalar(0.0), |acc, (x, y)| acc + (x - y).square().sum_all().cast(DType::F64))
}

impl Method for Tableau {
    fn order(&self) -> usize {
        self.order
    }

    fn step(&self, field: &Field, s: &Tensor, h: &Tensor, y: &[Tensor]) -> Step {
        self.step_ext(field, s, h, y, None, Want::default()).step
    }

    fn fsal(&self) -> bool {
        let n = self.c.len();
        n > 1
            && self.c[n - 1] == 1.0
            && self.b[n - 1] == 0.0
            && self.a[n - 1].len() == n - 1
            && self.a[n - 1].iter().zip(&self.b).all(|(a, b)| a == b)
    }

    fn dense(&self) -> bool {
        self.dense.is_some()
    }

    fn step_ext(
        &self,
        field: &Field,
        s: &Tensor,
        h: &Tensor,
        y: &[Tensor],
        f0: Option<&[Tensor]>,
        want: Want,
    ) -> StepExt {
        let tab = self;
        let n = tab.c.len();
        let mut ks: Vec<Vec<Tensor>> = Vec::new();
        // The last two stage inputs (for the stiffness estimate).
        let mut gs: Vec<Vec<Tensor>> = Vec::new();
        let mut nfe = 0usize;
        for i in 0..n {
            let yi = axpy(y, h, &tab.a[i].iter().copied().zip(ks.iter()).collect::<Vec<_>>());
            let k = match (i, f0) {
                (0, Some(f0)) => f0.to_vec(),
                _ => {
                    nfe += 1;
                    field.eval(&(s + h * tab.c[i]), &yi)
                }
            };
            ks.push(k);
            if i + 2 >= n {
                gs.push(yi);
            }
        }
        let y1 = axpy(y, h, &tab.b.iter().copied().zip(ks.iter()).collect::<Vec<_>>());
        let zero: Vec<Tensor> = y.iter().map(Tensor::zeros_like).collect();
        let err = tab.e.as_ref().map(|e| axpy(&zero, h, &e.iter().copied().zip(ks.iter()).collect::<Vec<_>>()));
        let fsal = self.fsal();
        let f1 = fsal.then(|| ks[n - 1].clone());
        let dense = match (&tab.dense, want.dense) {
            (Some(d), true) => {
                let deg = d.iter().map(Vec::len).max().unwrap_or(1) - 1;
                Some(
                    (1..=deg)
                        .map(|m| {
                            let w: Vec<(f64, &Vec<Tensor>)> =
                                d.iter().map(|p| p.get(m).copied().unwrap_or(0.0)).zip(ks.iter()).collect();
                            axpy(&zero, h, &w)
                        })
                        .collect(),
                )
            }
            _ => None,
        };
        let stiffness = (want.stiffness && n >= 2).then(|| {
            let num = dist2(&ks[n - 1], &ks[n - 2]);
            let den = dist2(&gs[1], &gs[0]);
            let pos = den.gt(0.0);
            // Guarded so that neither the value nor its gradient is NaN when stages coincide.
            where_(&pos, &((num + 1e-300).sqrt() / where_(&pos, &den, 1.0).sqrt()), 0.0)
        });
        StepExt { step: Step { y1, err, nfe: Tensor::scalar(nfe as f64) }, f1, dense, stiffness }
    }
}

/// Mean square of `e / (atol + rtol·max(|y0|, |y1|))` over every element of every leaf, as an
/// f64 scalar.
fn error_ms(e: &[Tensor], y0: &[Tensor], y1: &[Tensor], rtol: f64, atol: f64) -> Tensor {
    let mut sum = Tensor::scalar(0.0);
    let mut n = 0usize;
    for ((e, a), b) in e.iter().zip(y0).zip(y1) {
        let scale = a.abs().maximum(b.abs()) * rtol + atol;
        sum = sum + (e / scale).square().sum_all().cast(DType::F64);
        n += e.numel();
    }
    sum / (n.max(1) as f64)
}

/// RMS of `e / (atol + rtol·max(|y0|, |y1|))` over every element of every leaf, as an f64
/// scalar.
fn error_norm(e: &[Tensor], y0: &[Tensor], y1: &[Tensor], rtol: f64, atol: f64) -> Tensor {
    error_ms(e, y0, y1, rtol, atol).sqrt()
}

/// What an adaptive run returns.
pub(super) struct Adaptive {
    /// The state at the end (or where the solver stopped).
    pub y: Vec<Tensor>,
    /// With save times: per leaf, the states at the save times stacked on a new leading axis.
    pub saved: Option<Vec<Tensor>>,
    /// `[accepted, rejected, nfe, code]` as f64 scalars.
    pub stats: [Tensor; 4],
    /// `[Σ ε·h, Σ stiffness]` over accepted steps (zeros unless asked for); differentiable.
    pub reg: [Tensor; 2],
}

/// Number of scalars before the state leaves in the adaptive carry.
const HEAD: usize = 10;

/// The adaptive driver from `s0` to `s1`. Carry: `[s, h, ε₋₁, ε₋₂, accepted, rejected, nfe,
/// code, Σεh, Σstiffness]`, the state leaves, then (FSAL methods) `f(s, y)`, then (with
/// `save`) one buffer per leaf of shape `[save.len(), ...]`.
///
/// `save` (times in the integration variable, ascending, in `[s0, s1]`) asks for dense
/// output: the steps are the natural ones and each save time inside an accepted step is
/// filled by the method's interpolant. The method must have dense output.
#[allow(clippy::too_many_arguments)]
pub(super) fn adaptive(
    method: &dyn Method,
    field: &Field,
    s0: f64,
    s1: f64,
    y0: Vec<Tensor>,
    o: &Options,
    save: Option<&[f64]>,
    reg: bool,
) -> Adaptive {
    let k = (method.order() + 1) as f64;
    let pid = o.controller;
    let (b1, b2, b3) =
        ((pid.pcoeff + pid.icoeff + pid.dcoeff) / k, -(pid.pcoeff + 2.0 * pid.dcoeff) / k, pid.dcoeff / k);
    let span = s1 - s0;
    let ny = y0.len();
    let fsal = method.fsal();
    let want = Want { dense: save.is_some(), stiffness: reg };
    assert!(save.is_none() || method.dense(), "diffeq: dense output needs a method with an interpolant");
    let mut nfe0 = 0.0;
    let mut f0 = None;
    if fsal || o.dt0.is_none() {
        nfe0 = 1.0;
        f0 = Some(field.eval(&Tensor::scalar(s0), &y0));
    }
    let h0 = match o.dt0 {
        Some(h) => Tensor::scalar(h.abs().min(span)),
        None => {
            // Hairer's starting step (Hairer, Nørsett & Wanner I, II.4, as torchdiffeq; diffrax
            // 0.7.2 has it too, but its solve wraps the term, which skips it for a fixed
            // dt0 = 0.01): a first guess h₀ = 0.01·‖y₀‖/‖f(t₀, y₀)‖ in the scaled norm, then one
            // Euler probe f₁ = f(t₀ + h₀, y₀ + h₀·f₀) estimating the second derivative,
            // d₂ = ‖f₁ - f₀‖/h₀, and h = min(100·h₀, (0.01/max(d₁, d₂))^(1/k)) with k the
            // controller's order + 1. Not differentiated (the step size is a discrete choice).
            let f0 = f0.as_ref().expect("evaluated above");
            let d0 = error_norm(&y0, &y0, &y0, o.rtol, o.atol).stop_gradient();
            let d1 = error_norm(f0, &y0, &y0, o.rtol, o.atol).stop_gradient();
            let tiny = d0.lt(1e-5).logical_or(&d1.lt(1e-5));
            let h0 = where_(&tiny, 1e-6, &(&d0 / where_(&tiny, 1.0, &d1) * 0.01)).minimum(span);
            let y1: Vec<Tensor> =
                y0.iter().zip(f0).map(|(y, f)| (y + f * h0.cast(y.dtype())).stop_gradient()).collect();
            let f1 = field.eval(&(&h0 + s0), &y1);
            nfe0 += 1.0;
            let df: Vec<Tensor> = f1.iter().zip(f0).map(|(a, b)| (a - b).stop_gradient()).collect();
            let d2 = error_norm(&df, &y0, &y0, o.rtol, o.atol).stop_gradient() / &h0;
            let dmax = d1.maximum(&d2);
            let flat = dmax.le(1e-15);
            let h1 = where_(
                &flat,
                &(&h0 * 1e-3).maximum(1e-6),
                &(Tensor::scalar(0.01) / where_(&flat, 1.0, &dmax)).powf(1.0 / k),
            );
            (&h0 * 100.0).minimum(&h1).minimum(span)
        }
    };
    let one = Tensor::scalar(1.0);
    let zero = Tensor::scalar(0.0);
    let mut init =
        vec![Tensor::scalar(s0), h0, one.clone(), one, zero.clone(), zero.clone(), Tensor::scalar(nfe0), zero.clone()];
    init.extend([zero.clone(), zero]);
    let taus = save.map(|t| Tensor::from_vec(t.to_vec(), &[t.len()]));
    // A vector over the save times as shape [n, 1, ...] against a leaf (floats in its dtype).
    let column = |v: &Tensor, like: &Tensor| {
        let mut shape = vec![v.numel()];
        shape.extend(vec![1; like.rank()]);
        let v = v.reshape_to(&shape);
        if v.dtype() == DType::Bool {
            v
        } else {
            v.cast(like.dtype())
        }
    };
    let bufs: Vec<Tensor> = match save {
        Some(t) => y0
            .iter()
            .map(|y| {
                let mut shape = vec![t.len()];
                shape.extend(y.shape());
                y.expand_dims(0).broadcast_to(&shape)
            })
            .collect(),
        None => vec![],
    };
    init.extend(y0);
    if fsal {
        init.extend(f0.expect("evaluated above"));
    }
    init.extend(bufs);
    let live = |c: &Vec<Tensor>| c[0].lt(s1).logical_and(&c[7].eq(0.0));
    let body = |c: &Vec<Tensor>| {
        let (s, h, y) = (&c[0], &c[1], &c[HEAD..HEAD + ny]);
        let mut rest = &c[HEAD + ny..];
        let f0 = if fsal {
            let (f, r) = rest.split_at(ny);
            rest = r;
            Some(f)
        } else {
            None
        };
        let bufs = rest;
        let last = h.ge(&(-s + s1));
        let h = where_(&last, &(-s + s1), h);
        let StepExt { step: Step { y1, err, nfe }, f1, dense, stiffness } = method.step_ext(field, s, &h, y, f0, want);
        let err = err.expect("an adaptive method estimates its error");
        let ms = error_ms(&err, y, &y1, o.rtol, o.atol);
        let eps = ms.sqrt().stop_gradient();
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
        let s_end = where_(&last, s1, &(s + &h));
        let s_next = where_(&accept, &s_end, s);
        let underflow = h_next.lt(&(s.abs().maximum(1.0) * 1e-14));
        let code = where_(&finite.logical_not().logical_or(&underflow), 2.0, 0.0);
        let (reg_e, reg_s) = if reg {
            // The differentiable error norm (guarded at 0), weighted by the step.
            let e = (ms + 1e-300).sqrt() * &h;
            let st = stiffness.expect("the stiffness regulariser needs a method with a stiffness estimate");
            (&c[8] + where_(&accept, &e, 0.0), &c[9] + where_(&accept, &st, 0.0))
        } else {
            (c[8].clone(), c[9].clone())
        };
        let mut out = vec![
            s_next,
            h_next,
            where_(&accept, &eps_safe, &c[2]),
            where_(&accept, &c[2], &c[3]),
            &c[4] + where_(&accept, 1.0, 0.0),
            &c[5] + where_(&accept, 0.0, 1.0),
            &c[6] + nfe,
            code,
            reg_e,
            reg_s,
        ];
        out.extend(y1.iter().zip(y).map(|(a, b)| where_(&accept, a, b)));
        if let Some(f0) = f0 {
            let f1 = f1.expect("a first-same-as-last method returns f(s + h, y1)");
            out.extend(f1.iter().zip(f0).map(|(a, b)| where_(&accept, a, b)));
        }
        if let Some(taus) = &taus {
            // Fill the save times in (s, s_end] of an accepted step by interpolation.
            let dense = dense.expect("asked for dense output");
            let inside = taus.gt(s).logical_and(&taus.le(&s_end)).logical_and(&accept);
            let theta = ((taus - s) / &h).clamp(0.0, 1.0);
            let at_end = taus.ge(&s_end);
            for (i, buf) in bufs.iter().enumerate() {
                let th = column(&theta, &y[i]);
                let mut acc = dense[dense.len() - 1][i].clone();
                for m in (0..dense.len() - 1).rev() {
                    acc = &dense[m][i] + &th * acc;
                }
                let val = &y[i] + th * acc;
                let val = where_(&column(&at_end, &y[i]), &y1[i], &val);
                out.push(where_(&column(&inside, &y[i]), &val, buf));
            }
        }
        out
    };
    let mut c = while_loop_bounded(live, body, &init, o.max_steps);
    let mut rest = c.split_off(HEAD);
    let tail = rest.split_off(ny);
    let y = rest;
    let saved = save.map(|t| {
        // Save times not reached (a failure) hold the state where the solver stopped.
        let bufs = &tail[if fsal { ny } else { 0 }..];
        let missed = Tensor::from_vec(t.to_vec(), &[t.len()]).gt(&c[0]);
        bufs.iter().zip(&y).map(|(b, yl)| where_(&column(&missed, yl), &yl.expand_dims(0), b)).collect()
    });
    // Ran out of steps: code 1.
    let code = where_(&c[7].eq(0.0).logical_and(&c[0].lt(s1)), 1.0, &c[7]);
    Adaptive { y, saved, stats: [c[4].clone(), c[5].clone(), c[6].clone(), code], reg: [c[8].clone(), c[9].clone()] }
}

fn fixed(method: &dyn Method, field: &Field, s0: f64, s1: f64, y0: Vec<Tensor>, dt: f64) -> (Vec<Tensor>, [Tensor; 4]) {
    let n = (((s1 - s0) / dt) - 1e-9).ceil().max(1.0) as i64;
    let h = (s1 - s0) / n as f64;
    let mut carry = y0;
    carry.push(Tensor::scalar(0.0));
    let mut out = fori_loop(
        0,
        n,
        |i: &Tensor, c: &Vec<Tensor>| {
            let (y, nfe) = c.split_at(c.len() - 1);
            let s = i.cast(DType::F64) * h + s0;
            let step = method.step(field, &s, &Tensor::scalar(h), y);
            let mut next = step.y1;
            next.push(&nfe[0] + step.nfe);
            next
        },
        &carry,
    );
    let nfe = out.pop().expect("the nfe counter");
    let y = out;
    // A non-finite final state (NaN in y0, or a blow-up) is flagged: code 2.
    let code = where_(&all_finite(&y), 0.0, 2.0);
    let stats = [Tensor::scalar(n as f64), Tensor::scalar(0.0), nfe, code];
    (y, stats)
}

/// One interval in the integration variable: leaves in, (leaves, stats as f64) out.
pub(super) fn interval(
    solver: Solver,
    field: &Field,
    s0: f64,
    s1: f64,
    y0: Vec<Tensor>,
    o: &Options,
) -> (Vec<Tensor>, [Tensor; 4]) {
    let (y, stats, _) = interval_reg(solver, field, s0, s1, y0, o, false);
    (y, stats)
}

/// [`interval`] that also returns the regularisers `[Σ ε·h, Σ stiffness]` (zeros unless `reg`;
/// `reg` needs an adaptive solver).
pub(super) fn interval_reg(
    solver: Solver,
    field: &Field,
    s0: f64,
    s1: f64,
    y0: Vec<Tensor>,
    o: &Options,
    reg: bool,
) -> (Vec<Tensor>, [Tensor; 4], [Tensor; 2]) {
    let tab = solver.tableau();
    let zeros = || [0.0, 0.0].map(Tensor::scalar);
    if s1 <= s0 {
        return (y0, [0.0, 0.0, 0.0, 0.0].map(Tensor::scalar), zeros());
    }
    if solver.is_implicit() {
        let m = super::implicit::Esdirk::new(solver, o, o.fixed_steps);
        return if o.fixed_steps {
            let (y, st) = fixed(&m, field, s0, s1, y0, o.dt0.expect("checked").abs());
            (y, st, zeros())
        } else {
            let r = adaptive(&m, field, s0, s1, y0, o, None, reg);
            (r.y, r.stats, r.reg)
        };
    }
    if solver.is_adaptive() && !o.fixed_steps {
        let r = adaptive(&tab, field, s0, s1, y0, o, None, reg);
        (r.y, r.stats, r.reg)
    } else {
        let (y, st) = fixed(&tab, field, s0, s1, y0, o.dt0.expect("checked").abs());
        (y, st, zeros())
    }
}

/// A bool scalar: whether every element of every leaf is finite.
fn all_finite(y: &[Tensor]) -> Tensor {
    y.iter().fold(Tensor::scalar(true), |acc, t| acc.logical_and(&t.is_finite().all_all()))
}
