//! Line searches for the minimisers: a strong Wolfe search (bracketing, then zoom with
//! safeguarded cubic interpolation; Nocedal & Wright, Algorithms 3.5 and 3.6) and Armijo
//! backtracking, both as `while_loop`s over scalars of the iterate's dtype.

use super::iterative::vdot;
use crate::control::while_loop;
use crate::{where_, Tensor, Tree};

/// The sufficient-decrease constant of both searches.
const C1: f64 = 1e-4;
/// The curvature constant of the strong Wolfe search (the usual choice for quasi-Newton).
const C2: f64 = 0.9;

#[derive(Clone, Tree)]
struct Wolfe {
    zoom: Tensor,
    done: Tensor,
    i: Tensor,
    a_try: Tensor,
    a_prev: Tensor,
    f_prev: Tensor,
    d_prev: Tensor,
    a_lo: Tensor,
    f_lo: Tensor,
    d_lo: Tensor,
    a_hi: Tensor,
    f_hi: Tensor,
    d_hi: Tensor,
    best_a: Tensor,
    best_f: Tensor,
    best_g: Tensor,
}

/// The minimiser of the cubic through `(a0, f0, d0)` and `(a1, f1, d1)` (value and slope at
/// both ends), when it lies well inside the interval; the midpoint otherwise (no real
/// minimiser, non-finite values, or too close to an end).
fn cubic(a0: &Tensor, f0: &Tensor, d0: &Tensor, a1: &Tensor, f1: &Tensor, d1: &Tensor) -> Tensor {
    let diff = a0 - a1;
    let safe_diff = where_(&diff.eq(0.0), 1.0, &diff);
    let e1 = d0 + d1 - (f0 - f1) / &safe_diff * 3.0;
    let disc = &e1 * &e1 - d0 * d1;
    let e2 = (a1 - a0).sign() * disc.maximum(0.0).sqrt();
    let den = d1 - d0 + &e2 * 2.0;
    let safe_den = where_(&den.eq(0.0), 1.0, &den);
    let a = a1 - (a1 - a0) * ((d1 + &e2 - &e1) / &safe_den);
    let (lo, hi) = (a0.minimum(a1), a0.maximum(a1));
    let w = &hi - &lo;
    let finite = |t: &Tensor| t.isnan().logical_or(&t.isinf()).logical_not();
    let inside = a.ge(&(&lo + &w * 0.1)).logical_and(&a.le(&(&hi - &w * 0.1)));
    let ok = disc
        .ge(0.0)
        .logical_and(&den.ne(0.0))
        .logical_and(&finite(&a))
        .logical_and(&inside)
        .logical_and(&finite(f0))
        .logical_and(&finite(f1))
        .logical_and(&finite(d0))
        .logical_and(&finite(d1));
    where_(&ok, &a, &((a0 + a1) * 0.5))
}

/// The rounding error of a value like `f0`: the decrease condition allows it, so that near
/// a minimum, where the predicted decrease is below rounding, a step is not rejected for an
/// increase of a few units in the last place (the "approximate Wolfe" idea of Hager and
/// Zhang); the curvature condition still asks for a flatter slope.
fn rounding(f0: &Tensor) -> Tensor {
    let eps = if f0.dtype() == crate::DType::F32 { f32::EPSILON as f64 } else { f64::EPSILON };
    f0.abs() * (16.0 * eps)
}

/// A step `t` along the descent direction `d` from `x` (value `f0`, gradient `g0`) meeting
/// the strong Wolfe conditions `f(x + t d) ≤ f0 + c1 t g0ᵀd` and `|∇f(x + t d)ᵀd| ≤ c2 |g0ᵀd|`
/// (c1 = 1e-4, c2 = 0.9), starting from the trial `t0` and doubling it until the minimum
/// along `d` is bracketed, then zooming in by cubic interpolation; at most `max_evals`
/// evaluations. Returns `(t, f(x + t d), ∇f(x + t d), ok)`: when no Wolfe point is found
/// in time, the best point meeting the decrease condition (`ok` false when there is none,
/// and then `t = 0`).
pub(crate) fn strong_wolfe(
    value_grad: &dyn Fn(&Tensor) -> (Tensor, Tensor),
    x: &Tensor,
    (f0, g0): (&Tensor, &Tensor),
    d: &Tensor,
    t0: &Tensor,
    max_evals: usize,
) -> (Tensor, Tensor, Tensor, Tensor) {
    let dphi0 = vdot(g0, d);
    let slack = rounding(f0);
    let zero = f0.zeros_like();
    let init = Wolfe {
        zoom: Tensor::scalar(false),
        done: Tensor::scalar(false),
        i: Tensor::scalar(0i64),
        a_try: t0.clone(),
        a_prev: zero.clone(),
        f_prev: f0.clone(),
        d_prev: dphi0.clone(),
        a_lo: zero.clone(),
        f_lo: f0.clone(),
        d_lo: dphi0.clone(),
        a_hi: zero.clone(),
        f_hi: f0.clone(),
        d_hi: dphi0.clone(),
        best_a: zero,
        best_f: f0.clone(),
        best_g: g0.clone(),
    };
    let max = max_evals as i64;
    let out = while_loop(
        |s: &Wolfe| {
            // A zoom interval shrunk to rounding cannot improve.
            let width = (&s.a_hi - &s.a_lo).abs();
            let collapsed = s.zoom.logical_and(&width.le(&(s.a_lo.abs().maximum(1.0) * 1e-14)));
            s.i.lt(max).logical_and(&s.done.logical_not()).logical_and(&collapsed.logical_not())
        },
        |s: &Wolfe| {
            let zoomed = cubic(&s.a_lo, &s.f_lo, &s.d_lo, &s.a_hi, &s.f_hi, &s.d_hi);
            let t = where_(&s.zoom, &zoomed, &s.a_try);
            let (ft, gt) = value_grad(&(x + &t * d));
            let dt = vdot(&gt, d);
            let finite = ft.isnan().logical_or(&ft.isinf()).logical_not();
            let armijo = ft.le(&(f0 + &t * &dphi0 * C1 + &slack)).logical_and(&finite);
            let curvature = dt.abs().le(&(&dphi0 * -C2)).logical_and(&finite);
            let not = |b: &Tensor| b.logical_not();
            // Bracketing (Algorithm 3.5).
            let rose = s.i.gt(0i64).logical_and(&ft.ge(&s.f_prev));
            let b_hi = not(&armijo).logical_or(&rose); // zoom(prev, t)
            let b_done = not(&b_hi).logical_and(&curvature);
            let b_rev = not(&b_hi).logical_and(&not(&b_done)).logical_and(&dt.ge(0.0)); // zoom(t, prev)
                                                                                        // Zoom (Algorithm 3.6).
            let z_hi = not(&armijo).logical_or(&ft.ge(&s.f_lo));
            let z_done = not(&z_hi).logical_and(&curvature);
            let z_lo = not(&z_hi).logical_and(&not(&z_done));
            let z_flip = z_lo.logical_and(&(&dt * (&s.a_hi - &s.a_lo)).ge(0.0));
            let pick = |zoom_case: &Tensor, bracket_case: &Tensor| where_(&s.zoom, zoom_case, bracket_case);
            let sel3 = |c: &Tensor, a: (&Tensor, &Tensor, &Tensor), b: (&Tensor, &Tensor, &Tensor)| {
                (where_(c, a.0, b.0), where_(c, a.1, b.1), where_(c, a.2, b.2))
            };
            let trial = (&t, &ft, &dt);
            let lo = (&s.a_lo, &s.f_lo, &s.d_lo);
            let hi = (&s.a_hi, &s.f_hi, &s.d_hi);
            let prev = (&s.a_prev, &s.f_prev, &s.d_prev);
            // New bracket when bracketing.
            let (blo_a, blo_f, blo_d) = sel3(&b_hi, prev, trial);
            let (bhi_a, bhi_f, bhi_d) = sel3(&b_hi, trial, prev);
            // New bracket when zooming.
            let (zhi_a, zhi_f, zhi_d) = sel3(&z_hi, trial, hi);
            let (zhi_a, zhi_f, zhi_d) = sel3(&z_flip, lo, (&zhi_a, &zhi_f, &zhi_d));
            let (zlo_a, zlo_f, zlo_d) = sel3(&z_lo, trial, lo);
            let entering = b_hi.logical_or(&b_rev);
            let keep_b = |new: &Tensor, old: &Tensor| where_(&entering, new, old);
            let done = pick(&z_done, &b_done);
            let better = armijo.logical_and(&ft.lt(&s.best_f)).logical_or(&done);
            Wolfe {
                zoom: s.zoom.logical_or(&entering),
                i: &s.i + Tensor::scalar(1i64),
                a_try: &t * 2.0,
                a_prev: t.clone(),
                f_prev: ft.clone(),
                d_prev: dt.clone(),
                a_lo: pick(&zlo_a, &keep_b(&blo_a, &s.a_lo)),
                f_lo: pick(&zlo_f, &keep_b(&blo_f, &s.f_lo)),
                d_lo: pick(&zlo_d, &keep_b(&blo_d, &s.d_lo)),
                a_hi: pick(&zhi_a, &keep_b(&bhi_a, &s.a_hi)),
                f_hi: pick(&zhi_f, &keep_b(&bhi_f, &s.f_hi)),
                d_hi: pick(&zhi_d, &keep_b(&bhi_d, &s.d_hi)),
                best_a: where_(&better, &t, &s.best_a),
                best_f: where_(&better, &ft, &s.best_f),
                best_g: where_(&better, &gt, &s.best_g),
                done,
            }
        },
        &init,
    );
    let ok = out.best_a.gt(0.0);
    (out.best_a, out.best_f, out.best_g, ok)
}

/// Armijo backtracking along `d` from `x` (value `f0`, directional derivative `slope < 0`):
/// halves `t` from `t0` until `f(x + t d) ≤ f0 + c1 t slope` (c1 = 1e-4, up to rounding),
/// at most `max_halvings` times (a NaN value fails the test). Returns `(t, f(x + t d), ok)`.
pub(crate) fn backtracking(
    value: &dyn Fn(&Tensor) -> Tensor,
    x: &Tensor,
    f0: &Tensor,
    slope: &Tensor,
    d: &Tensor,
    t0: f64,
    max_halvings: usize,
) -> (Tensor, Tensor, Tensor) {
    let max = max_halvings as i64;
    let slack = rounding(f0);
    let sufficient = |t: &Tensor, ft: &Tensor| ft.le(&(f0 + t * slope * C1 + &slack));
    let t0 = f0.ones_like() * t0;
    let init = (t0.clone(), value(&(x + &t0 * d)), Tensor::scalar(0i64));
    let (t, ft, tries) = while_loop(
        |s: &(Tensor, Tensor, Tensor)| s.2.lt(max).logical_and(&sufficient(&s.0, &s.1).logical_not()),
        |s: &(Tensor, Tensor, Tensor)| {
            let t = &s.0 * 0.5;
            (t.clone(), value(&(x + &t * d)), &s.2 + Tensor::scalar(1i64))
        },
        &init,
    );
    let ok = sufficient(&t, &ft).logical_and(&tries.le(max));
    (t, ft, ok)
}
