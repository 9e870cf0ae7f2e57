//! Truncated power series arithmetic for the jet (Taylor-mode) rules.
//!
//! A series is a `Vec<Option<Tensor>>` of *normalised* Taylor coefficients
//! `[c0, c1, ..., cK]` of `x(t) = Σ ck t^k`: `c0` (the primal) is always present,
//! `None` is a symbolic zero that costs nothing. (The public [`jet`](crate::jet)
//! takes and returns derivative-scaled coefficients `xk = k!·ck`, JAX's
//! convention; the conversion happens once at its boundary, so rules see plain
//! Cauchy products.)
//!
//! Every non-linear rule is one of the standard O(K²) recurrences: a Cauchy product,
//! a division, or the solution of `y' = g·x'`, i.e. `k·yk = Σ_{j=1..k} j·xj·g(k-j)`,
//! where `g`'s coefficients up to `k-1` are known by the time `yk` is wanted.

use crate::Tensor;

/// A truncated series: normalised coefficients, `[0]` always `Some` (the primal).
pub(crate) type Series = Vec<Option<Tensor>>;

/// `a + b` for optional terms.
pub(crate) fn add(a: Option<Tensor>, b: Option<Tensor>) -> Option<Tensor> {
    super::rules::add_tangents(a, b)
}

/// The primal (coefficient 0) of a series.
pub(crate) fn primal(s: &[Option<Tensor>]) -> &Tensor {
    s[0].as_ref().expect("a series always has its primal")
}

/// The order `K` of a series (its length minus one).
pub(crate) fn order(s: &[Option<Tensor>]) -> usize {
    s.len() - 1
}

/// Coefficient `k` of the Cauchy product `a·b` under the bilinear `mul`.
pub(crate) fn cauchy_term(
    a: &[Option<Tensor>],
    b: &[Option<Tensor>],
    k: usize,
    mul: &dyn Fn(&Tensor, &Tensor) -> Tensor,
) -> Option<Tensor> {
    let mut acc = None;
    for j in 0..=k {
        if let (Some(x), Some(y)) = (&a[j], &b[k - j]) {
            acc = add(acc, Some(mul(x, y)));
        }
    }
    acc
}

/// The product series `a·b` under the bilinear `mul`, with `y0` as its (already computed) primal.
pub(crate) fn product(
    a: &[Option<Tensor>],
    b: &[Option<Tensor>],
    y0: &Tensor,
    mul: &dyn Fn(&Tensor, &Tensor) -> Tensor,
) -> Series {
    let mut out = vec![Some(y0.clone())];
    out.extend((1..a.len()).map(|k| cauchy_term(a, b, k, mul)));
    out
}

/// Element-wise product series.
pub(crate) fn mul(a: &[Option<Tensor>], b: &[Option<Tensor>]) -> Series {
    let y0 = primal(a) * primal(b);
    product(a, b, &y0, &|x, y| x * y)
}

/// `a / b` with `y0 = a0 / b0` given: `yk = (ak - Σ_{j=1..k} bj·y(k-j)) / b0`.
pub(crate) fn div(a: &[Option<Tensor>], b: &[Option<Tensor>], y0: &Tensor) -> Series {
    let b0 = primal(b);
    let mut y: Series = vec![Some(y0.clone())];
    for k in 1..a.len() {
        let mut acc = a[k].clone();
        for j in 1..=k {
            if let (Some(bj), Some(yk)) = (&b[j], &y[k - j]) {
                acc = add(acc, Some(-(bj * yk)));
            }
        }
        y.push(acc.map(|v| v / b0));
    }
    y
}

/// Solves `y' = g·x'` for `y`, given `y0` and a function giving `g`'s coefficient `m` from
/// `y`'s coefficients `0..=m` (called once per `m`, in order `0, 1, ..., K-1`).
pub(crate) fn ode(
    x: &[Option<Tensor>],
    y0: Tensor,
    mut g: impl FnMut(usize, &[Option<Tensor>]) -> Option<Tensor>,
) -> Series {
    let big_k = order(x);
    let mut y: Series = vec![Some(y0)];
    let mut gs: Vec<Option<Tensor>> = Vec::with_capacity(big_k);
    for k in 1..=big_k {
        gs.push(g(k - 1, &y));
        let mut acc = None;
        for j in 1..=k {
            if let (Some(xj), Some(gm)) = (&x[j], &gs[k - j]) {
                let term = if j == 1 { xj * gm } else { xj * gm * j as f64 };
                acc = add(acc, Some(term));
            }
        }
        y.push(acc.map(|v| if k == 1 { v } else { v * (1.0 / k as f64) }));
    }
    y
}

/// `y' = g·x'` where `g`'s series is known in full beforehand.
pub(crate) fn integrate(x: &[Option<Tensor>], y0: Tensor, g: &[Option<Tensor>]) -> Series {
    ode(x, y0, |m, _| g[m].clone())
}

/// The series of `exp(x)` given `y0` (which may be `exp(x0)`, or `exp(x0) - 1` with `shift = 1`).
pub(crate) fn exp_shifted(x: &[Option<Tensor>], y0: Tensor, shift: f64) -> Series {
    ode(x, y0, |m, y| match m {
        0 if shift != 0.0 => y[0].as_ref().map(|v| v + shift),
        _ => y[m].clone(),
    })
}

/// The series of `exp(x)` given `y0 = exp(x0)`.
pub(crate) fn exp(x: &[Option<Tensor>], y0: Tensor) -> Series {
    exp_shifted(x, y0, 0.0)
}

/// The series of `log(x)` given `y0`: `yk = (xk - (1/k) Σ_{j=1..k-1} j·yj·x(k-j)) / x0`.
pub(crate) fn log(x: &[Option<Tensor>], y0: Tensor) -> Series {
    let x0 = primal(x);
    let mut y: Series = vec![Some(y0)];
    for k in 1..x.len() {
        let mut acc = None;
        for j in 1..k {
            if let (Some(yj), Some(xm)) = (&y[j], &x[k - j]) {
                acc = add(acc, Some(yj * xm * (j as f64 / k as f64)));
            }
        }
        let num = add(x[k].clone(), acc.map(|v| -v));
        y.push(num.map(|v| v / x0));
    }
    y
}

/// An exponent for [`power`]: a scalar, or a tensor of `x`'s type (constant along the series).
pub(crate) enum Exponent<'a> {
    Scalar(f64),
    Tensor(&'a Tensor),
}

/// The series of `x^p` given `y0 = x0^p`, from `x·y' = p·y·x'`:
/// `yk = Σ_{j=1..k} (p·j - (k - j))·xj·y(k-j) / (k·x0)` (needs `x0 != 0`).
pub(crate) fn power(x: &[Option<Tensor>], p: &Exponent, y0: Tensor) -> Series {
    let x0 = primal(x);
    let mut y: Series = vec![Some(y0)];
    for k in 1..x.len() {
        let mut acc = None;
        for j in 1..=k {
            if let (Some(xj), Some(ym)) = (&x[j], &y[k - j]) {
                let (jf, rest) = (j as f64, (k - j) as f64);
                let term = match p {
                    Exponent::Scalar(p) => xj * ym * (p * jf - rest),
                    Exponent::Tensor(p) => (*p * jf - rest) * xj * ym,
                };
                acc = add(acc, Some(term));
            }
        }
        y.push(acc.map(|v| v / (x0 * k as f64)));
    }
    y
}

/// The series of `sqrt(x)` given `y0`: `yk = (xk - Σ_{j=1..k-1} yj·y(k-j)) / (2·y0)`.
pub(crate) fn sqrt(x: &[Option<Tensor>], y0: Tensor) -> Series {
    let two_y0 = &y0 * 2.0;
    let mut y: Series = vec![Some(y0)];
    for k in 1..x.len() {
        let mut acc = x[k].clone();
        for j in 1..k {
            if let (Some(a), Some(b)) = (&y[j], &y[k - j]) {
                acc = add(acc, Some(-(a * b)));
            }
        }
        y.push(acc.map(|v| v / &two_y0));
    }
    y
}

/// The series of `1/x` given `y0 = 1/x0`: `yk = -y0 · Σ_{j=1..k} xj·y(k-j)`.
pub(crate) fn reciprocal(x: &[Option<Tensor>], y0: Tensor) -> Series {
    let mut y: Series = vec![Some(y0.clone())];
    for k in 1..x.len() {
        let mut acc = None;
        for j in 1..=k {
            if let (Some(xj), Some(ym)) = (&x[j], &y[k - j]) {
                acc = add(acc, Some(xj * ym));
            }
        }
        y.push(acc.map(|v| -(v * &y0)));
    }
    y
}

/// `c + s·x²` as a series (`c` and `s` scalars), the argument of the inverse-trig derivatives.
pub(crate) fn affine_square(x: &[Option<Tensor>], c: f64, s: f64) -> Series {
    let sq = mul(x, x);
    sq.into_iter().enumerate().map(|(k, v)| v.map(|v| if k == 0 { v * s + c } else { v * s })).collect()
}

/// `s·x` for a scalar `s`.
pub(crate) fn scale(x: &[Option<Tensor>], s: f64) -> Series {
    x.iter().map(|v| v.as_ref().map(|v| v * s)).collect()
}

/// The paired series of `sin(x)` and `cos(x)` (or `sinh`, `cosh` with `hyperbolic`):
/// `s' = c·x'`, `c' = ∓s·x'`.
pub(crate) fn sin_cos(x: &[Option<Tensor>], s0: Tensor, c0: Tensor, hyperbolic: bool) -> (Series, Series) {
    let sign = if hyperbolic { 1.0 } else { -1.0 };
    let mut s: Series = vec![Some(s0)];
    let mut c: Series = vec![Some(c0)];
    for k in 1..x.len() {
        let (mut sk, mut ck) = (None, None);
        for j in 1..=k {
            let Some(xj) = &x[j] else { continue };
            let w = j as f64 / k as f64;
            if let Some(cm) = &c[k - j] {
                sk = add(sk, Some(xj * cm * w));
            }
            if let Some(sm) = &s[k - j] {
                ck = add(ck, Some(xj * sm * (sign * w)));
            }
        }
        s.push(sk);
        c.push(ck);
    }
    (s, c)
}

/// The derivative series `x'`, truncated to the same order minus one (no primal slot rule:
/// entry `m` is `(m+1)·x(m+1)`; entry 0 may be `None`, so this is not a [`Series`]).
pub(crate) fn derivative(x: &[Option<Tensor>]) -> Vec<Option<Tensor>> {
    (1..x.len()).map(|k| x[k].as_ref().map(|v| if k == 1 { v.clone() } else { v * k as f64 })).collect()
}

/// `a + b` coefficient by coefficient.
pub(crate) fn add_series(a: &[Option<Tensor>], b: &[Option<Tensor>]) -> Series {
    a.iter().zip(b).map(|(x, y)| add(x.clone(), y.clone())).collect()
}
