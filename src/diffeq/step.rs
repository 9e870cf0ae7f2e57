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

/// A one-step method the fixed and adaptive drivers can run: the explicit Runge–Kutta
/// tableaus here; implicit methods implement it too.
pub(super) trait Method {
    /// The order of the propagated solution (the controller uses `order + 1`).
    fn order(&self) -> usize;
    /// One step.
    fn step(&self, field: &Field, s: &Tensor, h: &Tensor, y: &[Tensor]) -> Step;
}

impl Method for Tableau {
    fn order(&self) -> usize {
        self.order
    }

    fn step(&self, field: &Field, s: &Tensor, h: &Tensor, y: &[Tensor]) -> Step {
        let tab = self;
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
        Step { y1, err, nfe: Tensor::scalar(tab.c.len() as f64) }
    }
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
    method: &dyn Method,
    field: &Field,
    s0: f64,
    s1: f64,
    y0: Vec<Tensor>,
    o: &Options,
) -> (Vec<Tensor>, [Tensor; 4]) {
    let k = (method.order() + 1) as f64;
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
        let Step { y1, err, nfe } = method.step(field, s, &h, y);
        let err = err.expect("an adaptive method estimates its error");
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
            &c[6] + nfe,
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
    let tab = solver.tableau();
    if s1 <= s0 {
        return (y0, [0.0, 0.0, 0.0, 0.0].map(Tensor::scalar));
    }
    if solver.is_implicit() {
        let fixed_steps = o.fixed_steps;
        let m = super::implicit::Esdirk::new(solver, o, fixed_steps);
        return if fixed_steps {
            fixed(&m, field, s0, s1, y0, o.dt0.expect("checked").abs())
        } else {
            adaptive(&m, field, s0, s1, y0, o)
        };
    }
    if solver.is_adaptive() && !o.fixed_steps {
        adaptive(&tab, field, s0, s1, y0, o)
    } else {
        fixed(&tab, field, s0, s1, y0, o.dt0.expect("checked").abs())
    }
}

/// A bool scalar: whether every element of every leaf is finite.
fn all_finite(y: &[Tensor]) -> Tensor {
    y.iter().fold(Tensor::scalar(true), |acc, t| acc.logical_and(&t.is_finite().all_all()))
}
