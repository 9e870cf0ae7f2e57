//! Loops on traced values: [`while_loop`], [`while_loop_bounded`] (and
//! [`while_loop_bounded_with`]), [`fori_loop`], [`scan`].
//!
//! Each records one structured primitive (`while` or `scan`, see [`crate::ops::loops`]) whose
//! body is traced once, whatever the number of iterations: a Rust loop would unroll into the
//! graph instead. Carries are trees ([`Tree`]); the body must return the carry's structure
//! and types. Under [`jit`](crate::jit) the body becomes a sub-plan built once and run by
//! every iteration.
//!
//! | | jvp | grad / vjp | vmap |
//! |---|---|---|---|
//! | [`while_loop`] | yes | error (no bound: use [`while_loop_bounded`]) | yes (runs while any lane is live) |
//! | [`while_loop_bounded`], [`while_loop_bounded_with`] | yes | yes, `O(log max_steps)` carries kept (the first `⌈log₂ max_steps⌉` iterations: no recomputation) | yes |
//! | [`fori_loop`], [`scan`] | yes | yes, one carry per iteration kept | yes |

use crate::control::cond;
use crate::ir::SubGraph;
use crate::ops::Prim;
use crate::trace::bind_multi;
use crate::transform::site::Site;
use crate::transform::subgraph::{close_over, permute_inputs};
use crate::transform::{trace_tree_as, types_of};
use crate::{DType, Tensor, TensorType, Tree};

fn show(tys: &[TensorType]) -> String {
    format!("({})", tys.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
}

fn paths<T: Tree>(t: &T) -> Vec<String> {
    t.named_leaves().into_iter().map(|(p, _)| p).collect()
}

/// A new tree with the same leaves.
fn copy<T: Tree>(t: &T) -> T {
    t.rebuild_from(t.leaves())
}

/// Fails at the user's line unless `out` (what `name` returned) has the carry's structure
/// and types.
fn check_carry<C: Tree>(site: &Site, name: &str, init: &C, out: &C, types: &[TensorType], out_types: &[TensorType]) {
    if out_types != types || paths(out) != paths(init) {
        site.fail(format_args!(
            "{name} must return the carry's structure and types: it returns {} but the carry is {}",
            show(out_types),
            show(types)
        ));
    }
}

/// `body_fn` applied to the carry while `cond_fn` holds, for traced values: the number of
/// iterations may depend on the data.
///
/// `cond_fn` returns a bool scalar; `body_fn` returns a carry of the same structure and types.
/// Forward-mode derivatives ([`jvp`](crate::jvp), [`jacfwd`](crate::jacfwd)), [`vmap`](crate::vmap)
/// (with a batched predicate the loop runs while any example is live, and finished examples
/// keep their carries) and [`jit`](crate::jit) go through it. Reverse mode does not: with no
/// bound on the iterations nothing can be stored for the backward pass, so `grad` of a
/// `while_loop` panics naming [`while_loop_bounded`], which is the fix.
///
/// ```
/// use cotangent::{control::while_loop, jit, jvp, Tensor};
/// // Newton's iteration for √a.
/// let sqrt = |a: &Tensor| {
///     let (_, x) = while_loop(
///         |(k, _): &(Tensor, Tensor)| k.lt(30.0),
///         |(k, x): &(Tensor, Tensor)| (k + 1.0, (x + a / x) * 0.5),
///         &(Tensor::scalar(0i64), a.clone()),
///     );
///     x
/// };
/// let a = Tensor::scalar(2.0);
/// assert!((jit(sqrt)(&a).item::<f64>() - 2f64.sqrt()).abs() < 1e-12);
/// let (_, d) = jvp(sqrt, &a, &Tensor::scalar(1.0));
/// assert!((d.item::<f64>() - 0.5 / 2f64.sqrt()).abs() < 1e-12);
/// ```
///
/// # Panics
/// At the caller's line, if `cond_fn` does not return a bool scalar, or `body_fn` changes the
/// carry's structure or types (naming both).
#[track_caller]
pub fn while_loop<C: Tree>(cond_fn: impl Fn(&C) -> Tensor, body_fn: impl Fn(&C) -> C, init: &C) -> C {
    let site = Site::here("while_loop");
    let leaves = init.leaves();
    let types = types_of(&leaves);
    let (tc, p) = trace_tree_as(site.name, |c: &C| cond_fn(c), init, &types);
    if p.dtype() != DType::Bool || p.rank() != 0 {
        site.fail(format_args!("cond_fn must return a bool scalar, got {}", p.ty()));
    }
    let (tb, out) = trace_tree_as(site.name, |c: &C| body_fn(c), init, &types);
    check_carry(&site, "body_fn", init, &out, &types, &tb.graph.output_types());
    let (graphs, captures) = close_over(vec![tc, tb]);
    let (n, ncap) = (leaves.len(), captures.len());
    let order: Vec<usize> = (n..n + ncap).chain(0..n).collect();
    let mut g = graphs.iter().map(|g| SubGraph::new(permute_inputs(g, &order)));
    let (cond, body) = (g.next().expect("cond"), g.next().expect("body"));
    let mut operands = captures;
    operands.extend(leaves);
    let refs: Vec<&Tensor> = operands.iter().collect();
    init.rebuild_from(bind_multi(Prim::While { cond, body, consts: ncap }, &refs))
}

/// Levels and branching of [`while_loop_bounded`]'s nested scans: `b^levels >= max_steps`,
/// `b ≈ 10`.
fn schedule(max_steps: usize) -> (usize, usize) {
    let levels = ((max_steps as f64).log10().ceil() as usize).max(1);
    let mut b = ((max_steps as f64).powf(1.0 / levels as f64).ceil() as usize).max(1);
    while b.checked_pow(levels as u32).is_some_and(|p| p < max_steps) {
        b += 1;
    }
    (levels, b)
}

/// The state `(steps taken, carry)` after one iteration when the loop is live, unchanged
/// (a `cond`) once it has ended.
fn guarded<C: Tree>(
    l: usize,
    b: usize,
    s: &(Tensor, C),
    live: &dyn Fn(&(Tensor, C)) -> Tensor,
    body_fn: &dyn Fn(&C) -> C,
) -> (Tensor, C) {
    cond(&live(s), |s: &(Tensor, C)| block(l, b, s, live, body_fn), copy, s)
}

/// `b^l` iterations on the state `(steps taken, carry)`: level 0 is one iteration, level `l`
/// a scan of `b` guarded level-`l - 1` blocks, each skipped once the loop has ended.
fn block<C: Tree>(
    l: usize,
    b: usize,
    s: &(Tensor, C),
    live: &dyn Fn(&(Tensor, C)) -> Tensor,
    body_fn: &dyn Fn(&C) -> C,
) -> (Tensor, C) {
    if l == 0 {
        (&s.0 + 1.0, body_fn(&s.1))
    } else {
        let step = |s: &(Tensor, C), _: &()| (guarded(l - 1, b, s, live, body_fn), ());
        scan_in(Site::here("while_loop_bounded"), step, s, &(), Some(b), false).0
    }
}

/// The default number of iterations whose carries [`while_loop_bounded`] stores outright:
/// `⌈log₂ max_steps⌉` (diffrax's checkpoint count), at least 1.
fn default_stored(max_steps: usize) -> usize {
    ((max_steps as f64).log2().ceil() as usize).max(1)
}

/// [`while_loop`] that stops after at most `max_steps` iterations, and is reverse
/// differentiable with `O(log max_steps)` memory.
///
/// The first `K = ⌈log₂ max_steps⌉` iterations are a scan of `K` guarded iterations (each a
/// `cond` that skips once `cond_fn` fails or `max_steps` iterations have run); reverse mode
/// stores the carry entering each of them during the forward pass and recomputes nothing,
/// so a loop that ends within `K` iterations costs one forward sweep and one vjp of the
/// body per iteration — the least reverse mode can do while keeping only carries. Longer
/// loops continue in a nest of `L = ⌈log₁₀ (max_steps − K)⌉` levels of scans of `b ≈ 10`
/// guarded blocks each (`b^L >= max_steps − K`), so finishing early costs a few skipped
/// blocks per level. Reverse mode checkpoints by that nest (see [`crate::ops::loops`]): it
/// keeps `K` carries plus `b` carries per level (against one set of residuals per iteration
/// for an unrolled loop) and recomputes each inner level's iterations once more — `L`
/// forward sweeps over the iterations past the `K`-th (Griewank's binomial checkpointing
/// with `L` levels, in its simplest uniform form). [`while_loop_bounded_with`] chooses `K`.
///
/// ```
/// use cotangent::{control::while_loop_bounded, grad, Tensor};
/// // x ← x·(1 + 1/n) while x < 1000, at most 500 times: the gradient flows through every
/// // iteration taken.
/// let f = |x: &Tensor| while_loop_bounded(|x: &Tensor| x.lt(1000.0), |x: &Tensor| x * 1.01, x, 500);
/// let g = grad(f)(&Tensor::scalar(1.0)).item::<f64>();
/// assert!((g - 1.01f64.powi(500)).abs() < 1e-9 * g); // never reaches 1000: all 500 steps
/// ```
///
/// # Panics
/// At the caller's line, if `cond_fn` does not return a bool scalar, or `body_fn` changes the
/// carry's structure or types (naming both).
#[track_caller]
pub fn while_loop_bounded<C: Tree>(
    cond_fn: impl Fn(&C) -> Tensor,
    body_fn: impl Fn(&C) -> C,
    init: &C,
    max_steps: usize,
) -> C {
    bounded_in(Site::here("while_loop_bounded"), cond_fn, body_fn, init, max_steps, default_stored(max_steps))
}

/// [`while_loop_bounded`] storing the carries of the first `stored` iterations (at most
/// `max_steps`) for reverse mode instead of `⌈log₂ max_steps⌉`.
///
/// A loop that ends within `stored` iterations is differentiated with one forward sweep and
/// one vjp of the body per iteration; the memory is `stored` carries plus the nest that
/// checkpoints the iterations past them. `stored = max_steps` keeps every carry (no
/// recomputation at all, memory linear in `max_steps`); `stored = 0` checkpoints every
/// iteration by the nest.
///
/// ```
/// use cotangent::{control::while_loop_bounded_with, grad, Tensor};
/// let f = |stored: usize| {
///     move |x: &Tensor| while_loop_bounded_with(|x: &Tensor| x.lt(1000.0), |x: &Tensor| x * 1.01, x, 500, stored)
/// };
/// let x = Tensor::scalar(1.0);
/// let (all, none) = (grad(f(500))(&x).item::<f64>(), grad(f(0))(&x).item::<f64>());
/// assert!((all - 1.01f64.powi(500)).abs() < 1e-9 * all);
/// assert!((all - none).abs() <= 1e-12 * all); // the same derivative, scheduled differently
/// ```
///
/// # Panics
/// At the caller's line, as [`while_loop_bounded`].
#[track_caller]
pub fn while_loop_bounded_with<C: Tree>(
    cond_fn: impl Fn(&C) -> Tensor,
    body_fn: impl Fn(&C) -> C,
    init: &C,
    max_steps: usize,
    stored: usize,
) -> C {
    bounded_in(Site::here("while_loop_bounded_with"), cond_fn, body_fn, init, max_steps, stored)
}

/// [`while_loop_bounded_with`] reporting errors at `site`.
fn bounded_in<C: Tree>(
    site: Site,
    cond_fn: impl Fn(&C) -> Tensor,
    body_fn: impl Fn(&C) -> C,
    init: &C,
    max_steps: usize,
    stored: usize,
) -> C {
    let leaves = init.leaves();
    let types = types_of(&leaves);
    // Checked once here, so errors name this function and the user's line.
    let (_, p) = trace_tree_as(site.name, |c: &C| cond_fn(c), init, &types);
    if p.dtype() != DType::Bool || p.rank() != 0 {
        site.fail(format_args!("cond_fn must return a bool scalar, got {}", p.ty()));
    }
    let (tb, out) = trace_tree_as(site.name, |c: &C| body_fn(c), init, &types);
    check_carry(&site, "body_fn", init, &out, &types, &tb.graph.output_types());
    if max_steps == 0 {
        return copy(init);
    }
    let stored = stored.min(max_steps);
    let limit = max_steps as f64;
    let live = |s: &(Tensor, C)| s.0.lt(limit).logical_and(&cond_fn(&s.1));
    let mut state = (Tensor::scalar(0i64), copy(init));
    if stored > 0 {
        // One guarded iteration per scan iteration: under `linearize` the scan stacks the
        // carries entering them as residuals.
        let step = |s: &(Tensor, C), _: &()| (guarded(0, 1, s, &live, &body_fn), ());
        state = scan_in(site, step, &state, &(), Some(stored), false).0;
    }
    if max_steps > stored {
        // The rest: a top-level scan of `b` guarded blocks (stacked likewise), each a nest of
        // `levels - 1` levels.
        let (levels, b) = schedule(max_steps - stored);
        state = block(levels, b, &state, &live, &body_fn);
    }
    state.1
}

/// `body_fn(i, carry)` for `i` in `lo..hi` (static bounds), threading the carry.
///
/// `i` is an `i64` scalar tensor. With static bounds this is a [`scan`], so every
/// transformation goes through it, reverse mode included.
///
/// ```
/// use cotangent::{control::fori_loop, grad, Tensor};
/// // xⁿ by repeated multiplication, and its derivative n·xⁿ⁻¹.
/// let pow5 = |x: &Tensor| fori_loop(0, 5, |_, acc: &Tensor| acc * x, &Tensor::scalar(1.0));
/// assert_eq!(pow5(&Tensor::scalar(2.0)).item::<f64>(), 32.0);
/// assert_eq!(grad(pow5)(&Tensor::scalar(2.0)).item::<f64>(), 80.0);
/// ```
///
/// # Panics
/// At the caller's line, if `body_fn` changes the carry's structure or types (naming both).
#[track_caller]
pub fn fori_loop<C: Tree>(lo: i64, hi: i64, body_fn: impl Fn(&Tensor, &C) -> C, init: &C) -> C {
    let site = Site::here("fori_loop");
    let length = (hi - lo).max(0) as usize;
    let types = types_of(&init.leaves());
    let (tb, out) = trace_tree_as(site.name, |c: &C| body_fn(&Tensor::scalar(lo), c), init, &types);
    check_carry(&site, "body_fn", init, &out, &types, &tb.graph.output_types());
    let step = |(i, c): &(Tensor, C), _: &()| ((i + 1.0, body_fn(i, c)), ());
    let ((_, c), ()) = scan_in(site, step, &(Tensor::scalar(lo), copy(init)), &(), Some(length), false);
    c
}

/// Scans `f` over the leading axis of `xs`, threading a carry: returns the final carry and
/// the `ys` stacked along a new leading axis (`jax.lax.scan`).
///
/// `f(carry, x_i)` returns `(next carry, y_i)`. `xs` is a tree whose leaves share their
/// leading extent; pass `&()` and `length` for a scan without inputs. With `reverse`, the
/// iterations run from the last index to the first (`ys[i]` still belongs to `xs[i]`). The
/// body is traced once. Reverse mode stacks the carry entering each iteration and recomputes
/// the rest of the body in the backward pass.
///
/// ```
/// use cotangent::{control::scan, grad, Tensor};
/// // Cumulative product.
/// let cumprod = |x: &Tensor| scan(|c: &Tensor, x: &Tensor| (c * x, c * x), &Tensor::scalar(1.0), x, None, false).1;
/// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[4]);
/// assert_eq!(cumprod(&x).to_vec::<f64>(), vec![1.0, 2.0, 6.0, 24.0]);
/// // d(Σ cumprod)/dx₀ = 1 + 2 + 6 + 24.
/// let g = grad(|x: &Tensor| cumprod(x).sum_all())(&x);
/// assert_eq!(g.to_vec::<f64>()[0], 33.0);
/// ```
///
/// # Panics
/// At the caller's line, if the leaves of `xs` are scalars or disagree on their leading
/// extent (or with `length`), if there are no `xs` and no `length`, or if `f` changes the
/// carry's structure or types (naming both).
#[track_caller]
pub fn scan<C: Tree, X: Tree, Y: Tree>(
    f: impl Fn(&C, &X) -> (C, Y),
    init: &C,
    xs: &X,
    length: Option<usize>,
    reverse: bool,
) -> (C, Y) {
    scan_in(Site::here("scan"), f, init, xs, length, reverse)
}

/// [`scan`] reporting errors at `site`.
fn scan_in<C: Tree, X: Tree, Y: Tree>(
    site: Site,
    f: impl Fn(&C, &X) -> (C, Y),
    init: &C,
    xs: &X,
    length: Option<usize>,
    reverse: bool,
) -> (C, Y) {
    let carries = init.leaves();
    let x_leaves = xs.leaves();
    let mut n = length;
    for x in &x_leaves {
        let Some(&lead) = x.shape().first() else {
            site.fail(format_args!("each leaf of xs needs a leading axis to scan over, got {}", x.ty()));
        };
        match n {
            Some(m) if m != lead => site.fail(format_args!(
                "the leaves of xs must share their leading extent{}: got {} where {m} was expected",
                if length.is_some() { " and agree with length" } else { "" },
                x.ty()
            )),
            _ => n = Some(lead),
        }
    }
    let Some(length) = n else {
        site.fail(format_args!("without xs, the number of iterations must be given as length"));
    };
    let carry_types = types_of(&carries);
    let mut types = carry_types.clone();
    types.extend(x_leaves.iter().map(|x| TensorType::new(x.dtype(), x.shape()[1..].to_vec())));
    let example = (copy(init), copy(xs));
    let (t, (c_out, y_out)) = trace_tree_as(site.name, |(c, x): &(C, X)| f(c, x), &example, &types);
    let nk = carries.len();
    let out_types = t.graph.output_types();
    let name = if site.name == "scan" { "f" } else { "body_fn" };
    check_carry(&site, name, init, &c_out, &carry_types, &out_types[..nk.min(out_types.len())]);
    let (graphs, captures) = close_over(vec![t]);
    let (m, ncap) = (types.len(), captures.len());
    let order: Vec<usize> = (m..m + ncap).chain(0..m).collect();
    let body = SubGraph::new(permute_inputs(&graphs[0], &order));
    let mut operands = captures;
    operands.extend(carries);
    operands.extend(x_leaves);
    let refs: Vec<&Tensor> = operands.iter().collect();
    let mut outs = bind_multi(Prim::Scan { body, consts: ncap, carries: nk, length, reverse }, &refs);
    let ys = outs.split_off(nk);
    (init.rebuild_from(outs), y_out.rebuild_from(ys))
}
