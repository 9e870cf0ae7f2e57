//! [`sde_solve`]: Euler–Maruyama, Milstein and SRA1 along a [`VirtualBrownianTree`].

use super::brownian::{levy, VirtualBrownianTree};
use crate::control::fori_loop;
use crate::{jvp, DType, Tensor, Tree};

/// The methods of [`sde_solve`], for the Itô SDE `dy = f(t, y) dt + g(t, y) ⊙ dW` with
/// diagonal noise (`g` returns a tree shaped like `y`; each element of the state has its own
/// Brownian motion).
///
/// ```
/// use cotangent::diffeq::SdeSolver;
/// assert_eq!(SdeSolver::Milstein.strong_order(), 1.0);
/// assert_eq!(SdeSolver::Sra1.evaluations(), (2, 2));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SdeSolver {
    /// `y + f·h + g·ΔW`: strong order 1/2 (1 for additive noise), weak order 1.
    EulerMaruyama,
    /// `y + f·h + g·ΔW + ½·g·∂g/∂y·(ΔW² - h)`: strong order 1 for diagonal noise, where `g`'s
    /// element `i` depends on `y`'s element `i` only. The term `g·∂g/∂y` is one
    /// [`jvp`](crate::jvp) of `g` in the direction `g`.
    Milstein,
    /// Rößler's (2010) SRA1 for additive noise (`g` must not depend on `y`; it may depend on
    /// `t`): two drift stages and the space-time Lévy area of each step, strong order 3/2,
    /// weak order 2.
    Sra1,
}

impl SdeSolver {
    /// The strong order of convergence on the problems the method is for.
    ///
    /// ```
    /// use cotangent::diffeq::SdeSolver;
    /// assert_eq!(SdeSolver::Sra1.strong_order(), 1.5);
    /// ```
    pub fn strong_order(self) -> f64 {
        match self {
            SdeSolver::EulerMaruyama => 0.5,
            SdeSolver::Milstein => 1.0,
            SdeSolver::Sra1 => 1.5,
        }
    }

    /// Evaluations of `(f, g)` per step (Milstein's `jvp` of `g` counted as one more).
    ///
    /// ```
    /// use cotangent::diffeq::SdeSolver;
    /// assert_eq!(SdeSolver::EulerMaruyama.evaluations(), (1, 1));
    /// ```
    pub fn evaluations(self) -> (usize, usize) {
        match self {
            SdeSolver::EulerMaruyama => (1, 1),
            SdeSolver::Milstein => (1, 2),
            SdeSolver::Sra1 => (2, 2),
        }
    }
}

/// Solves the Itô SDE `dy = f(t, y, args) dt + g(t, y, args) ⊙ dW` from `t0` to `t1` in
/// `n_steps` equal steps, with the Brownian motion `W` of `brownian` (a
/// [`VirtualBrownianTree`] shaped like `y0`, covering `[t0, t1]`), returning `y(t1)`.
///
/// `f` and `g` receive `t` as an `f64` scalar and return trees of `y0`'s structure and types;
/// noise is diagonal (see [`SdeSolver`] for what each method assumes of `g`). The steps run in
/// one [`fori_loop`], so [`grad`](crate::grad) (pathwise gradients, reverse mode through the
/// loop: one carry per step is kept), [`jvp`](crate::jvp), [`vmap`](crate::vmap) (e.g. over
/// keys, building the tree inside the mapped function) and [`jit`](crate::jit) go through it.
/// Each step queries the tree once (its start is carried over from the previous step), so
/// solves with different `n_steps` on one tree follow the same path, and their errors measure
/// the discretisation only.
///
/// ```
/// use cotangent::diffeq::{sde_solve, SdeSolver, VirtualBrownianTree};
/// use cotangent::{random, DType, Tensor};
/// // Geometric Brownian motion dy = μy dt + σy dW, 1000 paths: y(1) = exp((μ - σ²/2) + σW(1)).
/// let (mu, sigma) = (0.5, 0.8);
/// let f = |_t: &Tensor, y: &Tensor, mu: &Tensor| y * mu;
/// let g = |_t: &Tensor, y: &Tensor, _: &Tensor| y * sigma;
/// let y0 = Tensor::ones(&[1000], DType::F64);
/// let bm = VirtualBrownianTree::new(&random::key(0), 0.0, 1.0, 1.0 / 1024.0, &y0);
/// let exact = ((bm.evaluate(&Tensor::scalar(1.0)) * sigma) + (mu - sigma * sigma / 2.0)).exp();
/// let err = |solver, n| {
///     let y = sde_solve(f, g, solver, 0.0, 1.0, n, &y0, &Tensor::scalar(mu), &bm);
///     (y - &exact).abs().mean_all().item::<f64>()
/// };
/// // Milstein converges faster than Euler–Maruyama along the same path.
/// assert!(err(SdeSolver::Milstein, 64) < 0.5 * err(SdeSolver::EulerMaruyama, 64));
/// assert!(err(SdeSolver::Milstein, 64) < 0.02);
/// ```
///
/// # Panics
/// At the caller's line: when `n_steps` is 0, `t0 < t1` does not hold, `[t0, t1]` is not
/// inside the tree's interval, the tree's leaves differ from `y0`'s in structure, shape or
/// dtype, or `f` or `g` returns another structure or other types than the state.
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn sde_solve<Y: Tree, P: Tree>(
    f: impl Fn(&Tensor, &Y, &P) -> Y,
    g: impl Fn(&Tensor, &Y, &P) -> Y,
    solver: SdeSolver,
    t0: f64,
    t1: f64,
    n_steps: usize,
    y0: &Y,
    args: &P,
    brownian: &VirtualBrownianTree<Y>,
) -> Y {
    let caller = std::panic::Location::caller();
    let fail = |msg: String| -> ! { panic!("diffeq::sde_solve (called at {caller}): {msg}") };
    if n_steps == 0 {
        fail("n_steps must be at least 1".into());
    }
    if !(t0.is_finite() && t1.is_finite() && t0 < t1) {
        fail(format!("needs finite t0 < t1, got t0 = {t0}, t1 = {t1}"));
    }
    let (b0, b1) = brownian.interval();
    let slack = 1e-12 * (b1 - b0);
    if t0 < b0 - slack || t1 > b1 + slack {
        fail(format!("[t0, t1] = [{t0}, {t1}] must lie inside the Brownian tree's interval [{b0}, {b1}]"));
    }
    let show = |l: &[(String, Tensor)]| {
        let one =
            |(p, t): &(String, Tensor)| if p.is_empty() { t.ty().to_string() } else { format!("{p}: {}", t.ty()) };
        l.iter().map(one).collect::<Vec<_>>().join(", ")
    };
    let state = y0.named_leaves();
    let types: Vec<_> = state.iter().map(|(_, t)| t.ty()).collect();
    if types != brownian.types() {
        let tree: Vec<String> = brownian.types().iter().map(ToString::to_string).collect();
        fail(format!(
            "the Brownian tree's leaves ({}) must have the state's shapes and dtypes ({})",
            tree.join(", "),
            show(&state)
        ));
    }
    for (name, out) in
        [("drift f", f(&Tensor::scalar(t0), y0, args)), ("diffusion g", g(&Tensor::scalar(t0), y0, args))]
    {
        let lb = out.named_leaves();
        if state.len() != lb.len() || state.iter().zip(&lb).any(|((pa, ta), (pb, tb))| pa != pb || ta.ty() != tb.ty()) {
            fail(format!(
                "the {name} must return the state's structure and types: it returns ({}) but the state is ({})",
                show(&lb),
                show(&state)
            ));
        }
    }
    let h = (t1 - t0) / n_steps as f64;
    let nl = state.len();
    let start = brownian.point(&Tensor::scalar(t0));
    let tree = |y: &[Tensor]| y0.rebuild_from(y.to_vec());
    let fl = |t: &Tensor, y: &[Tensor]| f(t, &tree(y), args).leaves();
    let gl = |t: &Tensor, y: &[Tensor]| g(t, &tree(y), args).leaves();
    let cast = |x: &Tensor, like: &Tensor| x.cast(like.dtype());
    let body = |i: &Tensor, (y, w, k): &(Vec<Tensor>, Vec<Tensor>, Vec<Tensor>)| {
        let t = i.cast(DType::F64) * h + t0;
        let tn = (i + 1.0).cast(DType::F64) * h + t0;
        let end = brownian.point(&tn);
        let here = super::brownian::Point { w: w.clone(), k: k.clone() };
        let (dw64, hh64) = levy(&here, &end, &Tensor::scalar(h));
        let dw: Vec<Tensor> = dw64.iter().zip(y).map(|(d, y)| cast(d, y)).collect();
        let y1: Vec<Tensor> = match solver {
            SdeSolver::EulerMaruyama => {
                let (a, b) = (fl(&t, y), gl(&t, y));
                (0..nl).map(|j| &y[j] + &a[j] * h + &b[j] * &dw[j]).collect()
            }
            SdeSolver::Milstein => {
                let a = fl(&t, y);
                let gy = |y: &Vec<Tensor>| gl(&t, y);
                let (b, bb) = jvp(gy, y, &gy(y));
                (0..nl).map(|j| &y[j] + &a[j] * h + &b[j] * &dw[j] + &bb[j] * ((dw[j].square() - h) * 0.5)).collect()
            }
            SdeSolver::Sra1 => {
                let hh: Vec<Tensor> = hh64.iter().zip(y).map(|(d, y)| cast(d, y)).collect();
                let (a1, g0, g1) = (fl(&t, y), gl(&t, y), gl(&tn, y));
                // I₁₀/h = ΔW/2 + H, with I₁₀ = ∫∫ dW ds over the step.
                let i10: Vec<Tensor> = (0..nl).map(|j| &dw[j] * 0.5 + &hh[j]).collect();
                let z: Vec<Tensor> = (0..nl).map(|j| &y[j] + &a1[j] * (0.75 * h) + &g1[j] * (&i10[j] * 1.5)).collect();
                let a2 = fl(&(&t + 0.75 * h), &z);
                (0..nl)
                    .map(|j| {
                        &y[j] + (&a1[j] + &a2[j] * 2.0) * (h / 3.0) + &g1[j] * &dw[j] + (&g0[j] - &g1[j]) * &i10[j]
                    })
                    .collect()
            }
        };
        (y1, end.w, end.k)
    };
    let (y, _, _) = fori_loop(0, n_steps as i64, body, &(y0.leaves(), start.w, start.k));
    y0.rebuild_from(y)
}
