//! How often reverse mode through `while_loop_bounded` evaluates the body, counted on the
//! host: the body reads its carry through a `broadcast` collective, and a registered
//! communicator (a world of one) counts the calls — one `broadcast` per primal evaluation of
//! the body (forward, and the recomputation inside each vjp of the body), one `reduce_sum`
//! (the transposed broadcast) per vjp. (Its own test binary: the communicator is global.)
//!
//! - A loop that ends within the stored iterations (`⌈log₂ max_steps⌉`) evaluates the body
//!   exactly `n + n` times: one forward sweep and one vjp per iteration, nothing recomputed.
//! - A longer loop recomputes only the iterations past the stored ones, once per inner
//!   level of the checkpointing nest.

use cotangent::control::{while_loop_bounded, while_loop_bounded_with};
use cotangent::ops::collective::{broadcast, set_communicator, Communicator};
use cotangent::*;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

static BROADCASTS: AtomicUsize = AtomicUsize::new(0);
static REDUCES: AtomicUsize = AtomicUsize::new(0);
/// The tests share the counters: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// A world of one process that counts the collectives it is asked to run.
struct Counting;
impl Communicator for Counting {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_reduce_sum(&self, _buf: &mut Data) {}
    fn broadcast(&self, _buf: &mut Data, _root: usize) {
        BROADCASTS.fetch_add(1, SeqCst);
    }
    fn reduce_sum(&self, _buf: &mut Data, _root: usize) {
        REDUCES.fetch_add(1, SeqCst);
    }
    fn barrier(&self) {}
}

/// (broadcasts, reduces) during `f`.
fn count<T>(f: impl FnOnce() -> T) -> (usize, usize, T) {
    BROADCASTS.store(0, SeqCst);
    REDUCES.store(0, SeqCst);
    let r = f();
    (BROADCASTS.load(SeqCst), REDUCES.load(SeqCst), r)
}

/// One iteration: the tangent needs the broadcast's primal value (`cos(b)`), so every vjp of
/// the body recomputes it.
fn body((k, x): &(Tensor, Tensor)) -> (Tensor, Tensor) {
    let b = broadcast(x, 0);
    (k + 1.0, x + b.sin() * 0.5)
}

/// `n` iterations of `body` (the loop's predicate is on the counter), at most `max_steps`,
/// storing `stored` carries (`None`: the default).
fn looped(n: usize, max_steps: usize, stored: Option<usize>) -> impl Fn(&Tensor) -> Tensor + Clone {
    move |x: &Tensor| {
        let init = (Tensor::scalar(0.0), x.clone());
        let live = move |(k, _): &(Tensor, Tensor)| k.lt(n as f64);
        let out = match stored {
            None => while_loop_bounded(live, body, &init, max_steps),
            Some(s) => while_loop_bounded_with(live, body, &init, max_steps, s),
        };
        out.1.square().sum_all()
    }
}

/// The same `n` iterations unrolled in Rust (no loop primitive).
fn unrolled(n: usize) -> impl Fn(&Tensor) -> Tensor + Clone {
    move |x: &Tensor| {
        let mut c = (Tensor::scalar(0.0), x.clone());
        for _ in 0..n {
            c = body(&c);
        }
        c.1.square().sum_all()
    }
}

fn x0() -> Tensor {
    Tensor::from_vec(vec![0.3, -0.7, 1.1], &[3])
}

/// Runs `check` with the counting communicator registered.
fn with_counter(check: impl FnOnce()) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    set_communicator(Some(Arc::new(Counting)));
    struct Unregister;
    impl Drop for Unregister {
        fn drop(&mut self) {
            set_communicator(None);
        }
    }
    let _unregister = Unregister;
    check();
}

/// (broadcasts, reduces, gradient) of `f` at `x0`: eagerly through `vjp` and its pullback,
/// then jitted (`grad`; counted on its second call, the first having built the plan) —
/// both must count the same.
fn counted_gradient(f: impl Fn(&Tensor) -> Tensor + Clone + 'static, x: &Tensor) -> (usize, usize, Vec<f64>) {
    let x = x.clone();
    let (b, r, g) = count(|| {
        let (_, pullback) = vjp(f.clone(), &x);
        pullback.call(&Tensor::scalar(1.0))
    });
    let df = grad(f);
    let first = df(&x);
    let (bj, rj, gj) = count(|| df(&x));
    assert_eq!((bj, rj), (b, r), "jitted gradient: {bj} broadcasts, {rj} reduces; eager: {b}, {r}");
    assert_eq!(first.to_vec::<f64>(), gj.to_vec::<f64>());
    let (g, gj) = (g.to_vec::<f64>(), gj.to_vec::<f64>());
    for (a, c) in g.iter().zip(&gj) {
        assert!((a - c).abs() <= 1e-13 * (1.0 + c.abs()), "eager {a} vs jit {c}");
    }
    (b, r, g)
}

fn assert_close(got: &[f64], want: &[f64]) {
    for (a, b) in got.iter().zip(want) {
        assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "{got:?} vs {want:?}");
    }
}

#[test]
fn a_short_loop_gradient_evaluates_the_body_n_plus_n_times() {
    with_counter(|| {
        let n = 7;
        // max_steps 1000 stores ⌈log₂ 1000⌉ = 10 iterations: the loop ends within them.
        let (b, r, g) = counted_gradient(looped(n, 1000, None), &x0());
        assert_eq!((b, r), (2 * n, n), "{b} primal evaluations of the body, {r} vjps, for {n} iterations");
        let (_, _, want) = count(|| grad(unrolled(n))(&x0()).to_vec::<f64>());
        assert_close(&g, &want);
        // The forward pass alone evaluates the body n times.
        let (b, r, _) = count(|| looped(n, 1000, None)(&x0()));
        assert_eq!((b, r), (n, 0));
    });
}

#[test]
fn a_long_loop_recomputes_only_the_iterations_past_the_stored_ones() {
    with_counter(|| {
        let (n, max_steps, stored) = (300, 1000, 10);
        let (_, _, want) = count(|| grad(unrolled(n))(&x0()).to_vec::<f64>());
        // Default: 10 stored iterations, then a nest of L = ⌈log₁₀ 990⌉ = 3 levels for the
        // rest. Forward: n. Backward: one recomputation in each stored iteration's vjp, and
        // for each later iteration L - 1 re-runs (levels 2 and 1 stack their carries) plus
        // its vjp's.
        let levels = 3;
        let (b, r, g) = counted_gradient(looped(n, max_steps, None), &x0());
        assert_eq!(r, n);
        assert_eq!(b, n + stored + levels * (n - stored), "{b} primal evaluations for {n} iterations");
        assert!(b < (levels + 2) * n, "the nest alone (no stored iterations) costs (levels + 2)·n");
        assert_close(&g, &want);
        // Everything stored: n + n, as for a short loop.
        let (b, r, g) = counted_gradient(looped(n, max_steps, Some(max_steps)), &x0());
        assert_eq!((b, r), (2 * n, n));
        assert_close(&g, &want);
        // Nothing stored: the nest of ⌈log₁₀ 1000⌉ = 3 levels over every iteration.
        let (b, r, g) = counted_gradient(looped(n, max_steps, Some(0)), &x0());
        assert_eq!((b, r), (n + levels * n, n));
        assert_close(&g, &want);
    });
}

#[test]
fn a_short_adaptive_solve_is_differentiated_with_one_vjp_per_evaluation() {
    use cotangent::diffeq::{solve, Gradient, Options, Solver};
    with_counter(|| {
        // dy/dt = tanh(y·A), y read through the counting broadcast: one call per evaluation.
        let field = |_t: &Tensor, y: &Tensor, a: &Tensor| broadcast(y, 0).matmul(a).tanh();
        let a = Tensor::from_vec(vec![-0.3, 1.0, -1.0, -0.3], &[2, 2]);
        let y0 = Tensor::from_vec(vec![1.0, 0.5, -0.2, 0.8], &[2, 2]);
        let o = Options { rtol: 1e-6, atol: 1e-6, gradient: Gradient::Discretise, ..Options::default() };
        let sol = solve(field, Solver::Dopri5, 0.0, 1.0, &y0, &a, &[], &o);
        let (nfe, steps) = (sol.stats.nfe.item::<i64>() as usize, sol.stats.accepted.item::<i64>());
        let loss = move |a: &Tensor| solve(field, Solver::Dopri5, 0.0, 1.0, &y0, a, &[], &o).ys[0].square().sum_all();
        let (fwd, r, _) = count(|| loss(&a));
        assert_eq!(r, 0);
        // Jitted (counted on the second calls: the first ones build the plans).
        let (fj, dfj) = (jit(loss.clone()), grad(loss));
        let (_, _) = (fj(&a), dfj(&a));
        let (fwd_jit, _, _) = count(|| fj(&a));
        let (b, r, g) = count(|| dfj(&a).to_vec::<f64>());
        eprintln!(
            "{steps} steps, nfe {nfe}; forward {fwd} evaluations of f ({fwd_jit} jitted); gradient {b} evaluations of f, {r} vjps"
        );
        assert!(g.iter().all(|v| v.is_finite()));
        // One vjp per evaluation except the starting-step probe f(t0 + h0, y0 + h0·f0): it
        // only chooses the first step size, which is not differentiated, so its vjp is dead.
        assert_eq!((b, r), (fwd_jit + r, fwd_jit - 1));
    });
}
