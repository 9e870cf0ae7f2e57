//! Stochastic differential equations: [`euler_maruyama`] with increments drawn per step, and
//! [`sde_solve`] (Euler–Maruyama, Milstein, SRA1) along a [`VirtualBrownianTree`].

mod brownian;
mod solve;

pub use brownian::VirtualBrownianTree;
pub use solve::{sde_solve, SdeSolver};

use crate::control::fori_loop;
use crate::{DType, Tensor, Tree};

/// Euler–Maruyama for the Itô SDE `dy = f(t, y, args) dt + g(t, y, args) ∘ dW` with diagonal
/// noise (`g` returns a tree shaped like `y`, multiplied elementwise by independent Brownian
/// increments), `n_steps` equal steps from `t0` to `t1` in one [`fori_loop`] (so every
/// transformation goes through it, reverse mode included). The increment of step `i` for leaf
/// `j` is `√|dt| · normal(fold_in(fold_in(key, i), j))`: the same key gives the same path.
/// Strong order 1/2, weak order 1.
///
/// For Milstein or SRA1, or noise that solves with different steps (and their backward passes)
/// must share, use [`sde_solve`] with a [`VirtualBrownianTree`].
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
