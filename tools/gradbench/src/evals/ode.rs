//! `ode`: `s` classic Runge–Kutta steps of `y₀' = x₀, yᵢ' = xᵢ yᵢ₋₁` from `y(0) = 0`
//! to `t = 2`, and the gradient of the last component by `grad`.

use super::{unknown_function, Output, Run};
use crate::input::{usize_field, vector};
use crate::limits::{at_most, product_at_most, Limits};
use cotangent::{concatenate, control, grad, jit, Tensor};
use serde_json::Value;

/// `x` split as the right-hand side reads it: `x₀` and `[x₁, x₂, ...]`, sliced once outside
/// the loop (each slice taken inside the body would be a separate constant of the loop, and
/// its transpose would keep a cotangent accumulator per slice).
struct Coefficients {
    head: Tensor,
    tail: Tensor,
}

impl Coefficients {
    fn of(x: &Tensor) -> Self {
        let n = x.numel() as isize;
        Coefficients { head: x.slice_axis(0, 0, 1, 1), tail: x.slice_axis(0, 1, n, 1) }
    }
}

/// The right-hand side: `[x₀, x₁ y₀, x₂ y₁, ...]`.
fn rhs(x: &Coefficients, y: &Tensor) -> Tensor {
    let n = y.numel() as isize;
    concatenate(&[x.head.clone(), &x.tail * y.slice_axis(0, 0, n - 1, 1)], 0)
}

/// One classic RK4 step of size `h` from `y`, written as GradBench's JAX tool writes it:
/// the coefficients `h/2` and `h/6` are numbers computed once, so each element takes
/// multiplications only (`k·h/6` per element would be a vector division).
fn rk4_step(x: &Coefficients, y: &Tensor, h: f64) -> Tensor {
    let k1 = rhs(x, y);
    let k2 = rhs(x, &(y + &k1 * (h / 2.0)));
    let k3 = rhs(x, &(y + &k2 * (h / 2.0)));
    let k4 = rhs(x, &(y + &k3 * h));
    y + (k1 + (k2 * 2.0 + k3 * 2.0 + k4)) * (h / 6.0)
}

/// `y(2)` after `s` RK4 steps: one `fori_loop` (a `scan`, so `grad` goes through it,
/// keeping the `s` carries), whose body is traced and compiled once whatever `s`.
pub fn primal(x: &Tensor, s: usize) -> Tensor {
    let h = 2.0 / s as f64;
    let c = Coefficients::of(x);
    control::fori_loop(0, s as i64, |_, y: &Tensor| rk4_step(&c, y, h), &x.zeros_like())
}

/// Builds `primal` or `gradient` for input `{x: float[n], s: int}`.
///
/// `s` beyond [`Limits::max_steps`], or `n·s` beyond [`Limits::max_elements`] (the carries
/// `grad` keeps), is refused.
pub fn prepare(function: &str, input: &Value, limits: &Limits) -> Result<Run, String> {
    let x = vector(input, "x")?;
    let s = usize_field(input, "s")?;
    if x.numel() == 0 || s == 0 {
        return Err(format!("need at least one component and one step, got n={} s={s}", x.numel()));
    }
    at_most("s", s, limits.max_steps)?;
    product_at_most("len(`x`)·`s`", &[x.numel(), s], limits.max_elements)?;
    match function {
        "primal" => {
            let f = jit(move |x: &Tensor| primal(x, s));
            Ok(Box::new(move || Ok(Output::from(f(&x)))))
        }
        "gradient" => {
            let df = grad(move |x: &Tensor| primal(x, s).index(-1));
            Ok(Box::new(move || Ok(Output::from(df(&x)))))
        }
        _ => Err(unknown_function("ode", function, &["primal", "gradient"])),
    }
}
