//! `jit`: trace once per input signature, optimise, lower to a plan, and cache it.

use super::{trace_tree, types_of};
use crate::backend::cpu::native;
use crate::compile::{optimize, Plan};
use crate::ir::Graph;
use crate::trace::eval_graph;
use crate::{native_mode, NativeMode};
use crate::{TensorType, Tree};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// What `jit` does with a function, for users who want to know why something is slow.
pub struct Inspection {
    /// The graph as traced.
    pub traced: Graph,
    /// The graph after the optimisation passes.
    pub optimized: Graph,
    /// The execution plan (fused loops and kernel calls).
    pub plan: String,
}

/// Traces, optimises and plans `f` at arguments shaped like `example`, without running it.
///
/// ```
/// use cotangent::{jit_inspect, Tensor};
/// let x = Tensor::from_vec(vec![1.0, 2.0], &[2]);
/// let info = jit_inspect(|x: &Tensor| (x.sin() * 2.0 + 1.0).exp(), &x);
/// assert!(info.plan.contains("fused"));
/// println!("{}\n{}", info.optimized, info.plan);
/// ```
pub fn jit_inspect<A: Tree, B: Tree>(f: impl Fn(&A) -> B, example: &A) -> Inspection {
    let leaves = example.leaves();
    let (traced, _) = trace_tree(f, example, &types_of(&leaves));
    let optimized = optimize(&traced.graph);
    let plan = Plan::new(&optimized).dump();
    Inspection { traced: traced.graph, optimized, plan }
}

/// Compiles `f`: the first call with a given input signature (dtypes and shapes of the
/// leaves) traces it, optimises the graph (constant folding, simplification, CSE, DCE),
/// fuses element-wise chains into single loops and runs that plan interpreted. The plan's
/// large loops are compiled to native code (see [`NativeMode`](crate::NativeMode)) from the
/// second call on: at once if the library is in the disk cache, else on a background thread
/// while the calls keep running interpreted, the first call after it has finished switching
/// to native code. (The interpreted calls run the graph planned for the interpreter; the
/// plan compiled is planned for native code, e.g. with producers inlined into the loops that
/// read them through slices, which pays only when compiled.) A plan whose one interpreted run is expected to take as long as the C
/// compiler starts that background compile at its first call, before running (so no call
/// waits for the C compiler; a function whose loops are all too small to compile has its
/// second call build, in the background, the library that the same program at a larger input
/// size loads at its first call, and runs that build's plan, its loops of 512 elements and
/// more native, from the first call after it is built; `NativeMode::Sync` compiles on the
/// calling thread once the interpreted runs have taken as long as the compiler is expected
/// to, `NativeMode::Always` on the second call). Native loops round exactly like
/// interpreted ones, so the results of a function do not depend on which call it is, on
/// which plan ran it or on which thread made it: they are bitwise the same from the first
/// call on.
///
/// Called with symbolic arguments (inside another transformation), `jit(f)` is simply `f`,
/// so it composes with `grad`, `vmap` and the rest. Set `COTANGENT_DUMP=1` to print each
/// optimised graph and plan as it is compiled.
///
/// Like JAX's `jit`, the closure's captured values are baked into the plan: a closure
/// that reads changing state through interior mutability (`Cell`, `RefCell`) would not
/// see the change. Rust's borrow rules rule out the other ways for captures to change.
///
/// ```
/// use cotangent::{grad, jit, Tensor};
/// let step = jit(|w: &Tensor| w - grad(|w: &Tensor| w.square().sum_all())(w) * 0.1);
/// let w = Tensor::from_vec(vec![1.0, -2.0], &[2]);
/// let w = step(&step(&w)); // traced and planned once, run twice
/// assert_eq!(w.to_vec::<f64>(), vec![0.64, -1.28]);
/// ```
pub fn jit<A: Tree, B: Tree>(f: impl Fn(&A) -> B) -> impl Fn(&A) -> B {
    let cache: Cache<B> = Mutex::new(HashMap::new());
    let last: LastSettled<B> = Mutex::new(None);
    move |x: &A| {
        let leaves = x.leaves();
        if leaves.iter().any(|t| t.is_traced()) {
            return f(x);
        }
        // The call fast path: the signature of the last settled call, compared in place
        // (unless that entry's speculative build has landed: the slow path switches to it).
        if let Some(e) = settled_hit(&last, &leaves).filter(|e| e.speculative.get().is_none()) {
            return native::for_call_of(e.rank, || e.template.rebuild_from(e.plan.run(&leaves)));
        }
        let key = types_of(&leaves);
        let cached = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
        // The background compiles this call queues belong to its function (see
        // `native::for_call_of`: the worker runs those of the function called latest first).
        let rank = cached.as_ref().map_or_else(native::next_rank, |e| e.rank);
        native::for_call_of(rank, || match cached {
            Some(e) if e.settled.load(Ordering::Acquire) => match e.speculative.get() {
                // The speculative build of a plan left interpreted has finished with native
                // loops: this call and the later ones run it.
                Some(native) => switch_to(&cache, key, native.clone(), &e.template, &leaves, rank),
                None => {
                    let out = e.template.rebuild_from(e.plan.run(&leaves));
                    *last.lock().unwrap_or_else(|e| e.into_inner()) = Some((key, e));
                    out
                }
            },
            // A background compile has finished: this call and the later ones run its plan.
            // (A call already running keeps the plan it started with: the swap is between calls.)
            Some(e) if e.background.get().is_some() => match e.background.get().and_then(Option::as_ref) {
                Some(native) => switch_to(&cache, key, native.clone(), &e.template, &leaves, rank),
                None => {
                    e.settled.store(true, Ordering::Release);
                    match e.speculative.get() {
                        Some(native) => switch_to(&cache, key, native.clone(), &e.template, &leaves, rank),
                        None => e.template.rebuild_from(e.plan.run(&leaves)),
                    }
                }
            },
            // Called again: compile the large loops once that pays (see `when_to_compile`).
            Some(e) => match when_to_compile(&e) {
                Compile::Now => match e.to_compile().with_native_loops() {
                    Some(native) => switch_to(&cache, key, Arc::new(native), &e.template, &leaves, rank),
                    None => {
                        e.settled.store(true, Ordering::Release);
                        e.template.rebuild_from(e.plan.run(&leaves))
                    }
                },
                Compile::InBackground => {
                    e.compile_in_background();
                    e.template.rebuild_from(e.run_interpreted(&leaves))
                }
                Compile::Later => e.template.rebuild_from(e.run_interpreted(&leaves)),
            },
            None => {
                crate::backend::cpu::native::probe_in_background();
                let (traced, template) = trace_tree(&f, x, &key);
                if !traced.captures.is_empty() {
                    // Values of an enclosing trace: the graph is re-emitted into that trace,
                    // and there is nothing to cache on its own.
                    let mut args = leaves.clone();
                    args.extend(traced.captures.iter().cloned());
                    return template.rebuild_from(eval_graph(&traced.graph, &args));
                }
                let optimized = optimize(&traced.graph);
                let (plan, for_native) = native::noting_native_planning(|| Plan::interpreted(&optimized));
                let plan = Arc::new(plan);
                // A plan with no loop planned for native code (all below what `Auto` compiles)
                // loads its speculative build's plan (see `Entry::compile_in_background`) if
                // that was built already, by a function of the same program at this size.
                let cached =
                    cached_native(&plan).or_else(|| if for_native { None } else { cached_speculative(&optimized) });
                let loaded = cached.is_some();
                // In `Auto`, a plan whose loops were planned for native code (producers inlined
                // into them, which interpreted recompute a chain per consumer) compiles in the
                // background, while the calls run the plan built for the interpreter.
                let auto = !loaded && native_mode() == NativeMode::Auto;
                let (plan, to_compile) = match cached {
                    Some(native) => (native, None),
                    None if auto && for_native => {
                        let interpreted = native::for_the_interpreter(|| Plan::interpreted(&optimized));
                        (Arc::new(interpreted), Some(plan))
                    }
                    None => (plan, None),
                };
                dump(&key, Some(&optimized), &plan);
                let mut entry = Entry::new(plan.clone(), &template, false, rank);
                entry.to_compile = to_compile;
                if auto {
                    entry.graph = Mutex::new(Some(Arc::new(optimized)));
                }
                let entry = Arc::new(entry);
                if compile_at_first_call(&entry) {
                    entry.compile_in_background();
                }
                let started = Instant::now();
                let out = template.rebuild_from(plan.run(&leaves));
                entry.interpreted_ns.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
                cache.lock().unwrap_or_else(|e| e.into_inner()).insert(key, entry);
                out
            }
        })
    }
}

/// The signature and entry of a jitted function's last call that found its plan settled.
/// A settled entry is final (never replaced in the cache) until its speculative build lands
/// (which the fast path checks), so later calls with the same signature can run it without
/// building the signature as a key, hashing it and probing the cache: the per-call cost of
/// tiny functions.
type LastSettled<B> = Mutex<Option<(Vec<TensorType>, Arc<Entry<B>>)>>;

/// The entry in `last` when `leaves` (all concrete) have its signature, compared in place
/// without allocating.
fn settled_hit<B>(last: &LastSettled<B>, leaves: &[crate::Tensor]) -> Option<Arc<Entry<B>>> {
    let last = last.lock().unwrap_or_else(|e| e.into_inner());
    let (key, entry) = last.as_ref()?;
    let same = key.len() == leaves.len()
        && key
            .iter()
            .zip(leaves)
            .all(|(ty, t)| t.as_concrete().is_some_and(|a| a.data.dtype() == ty.dtype && a.shape == ty.shape));
    same.then(|| entry.clone())
}

/// `plan` with the loops whose native library is already in the cache (built for the same
/// program, at this size or another: kernels are generic in the sizes) loaded, when any are
/// (`NativeMode::Auto` and `Sync`, once the compiler has answered the background probe): so a
/// new plan of a program already compiled runs native from its first call. Never starts the
/// C compiler; loops without a cached library are compiled as usual from the second call.
fn cached_native(plan: &Plan) -> Option<Arc<Plan>> {
    if !matches!(native_mode(), NativeMode::Auto | NativeMode::Sync) || !crate::backend::cpu::native::toolchain_probed()
    {
        return None;
    }
    crate::backend::cpu::native::cached_only(|| plan.with_native_loops()).map(Arc::new)
}

/// The plan a speculative build makes of `graph` (see `native::speculatively`), when every
/// library of its fused loops is cached already and it has native loops (`NativeMode::Auto`,
/// once the compiler has answered the background probe): a function whose loops are all
/// below 4096 elements then runs native from its first call where an earlier function of the
/// same program, at this size or another, has built them. Never starts the C compiler. A plan
/// found only in part (another function sharing a loop body with this one: GradBench ode's
/// gradient after its primal) is not taken: it would run its other loops, planned for native
/// code, interpreted, and the function would never build the rest (its speculative build does,
/// loading the libraries already there).
fn cached_speculative(graph: &Graph) -> Option<Arc<Plan>> {
    if native_mode() != NativeMode::Auto || !native::toolchain_probed() {
        return None;
    }
    let (plan, complete) = native::cached_only_complete(|| speculative_plan(graph));
    (complete && plan.has_native_loops()).then(|| Arc::new(plan))
}

/// `graph` planned and compiled speculatively (see `native::speculatively`): its loops of
/// 512 elements and more native.
fn speculative_plan(graph: &Graph) -> Plan {
    native::speculatively(|| {
        let mut plan = Plan::interpreted(graph);
        plan.compile_native();
        plan
    })
}

/// A jitted function's plans, by input signature.
type Cache<B> = Mutex<HashMap<Vec<TensorType>, Arc<Entry<B>>>>;

/// Runs `native` (the plan with native loops that replaces the signature's entry) on this
/// call's `leaves`, and stores it as the settled entry that later calls run.
fn switch_to<B: Tree>(
    cache: &Cache<B>,
    key: Vec<TensorType>,
    native: Arc<Plan>,
    template: &B,
    leaves: &[crate::Tensor],
    rank: u64,
) -> B {
    dump(&key, None, &native);
    let out = template.rebuild_from(native.run(leaves));
    store(cache, key, native, template, true, rank);
    out
}

fn store<B: Tree>(
    cache: &Cache<B>,
    key: Vec<TensorType>,
    plan: Arc<Plan>,
    template: &B,
    settled: bool,
    rank: u64,
) -> Arc<Entry<B>> {
    let entry = Arc::new(Entry::new(plan, template, settled, rank));
    cache.lock().unwrap_or_else(|e| e.into_inner()).insert(key, entry.clone());
    entry
}

/// Interpreted fused loops run at about this many element-instructions per microsecond
/// (one thread; AVX2 blocks of 512 elements): how `jit` estimates a first call's run time
/// from [`Plan::interpreted_work`] before running it.
const INTERPRETED_WORK_PER_US: u64 = 2000;

/// Whether a function's first call starts compiling its plan in the background before it
/// runs the plan interpreted (`NativeMode::Auto` only): when one interpreted run is expected
/// to take at least what the C compiler would (and 10 ms), a second call is likely to find
/// the native plan ready, and a function called once has lost at most one compile on the
/// background thread. (With a cached library the second call loads it, as before; until the
/// background probe of the compiler has answered, nothing is decided here.)
fn compile_at_first_call<B>(e: &Entry<B>) -> bool {
    if native_mode() != NativeMode::Auto || !crate::backend::cpu::native::toolchain_probed() {
        return false;
    }
    let expected = Duration::from_micros(e.plan.interpreted_work() / INTERPRETED_WORK_PER_US);
    if expected < Duration::from_millis(10) {
        return false;
    }
    matches!(*e.build_cost.get_or_init(|| e.to_compile().native_build_cost()), Some(cost) if !cost.is_zero() && cost <= expected)
}

/// What a call of a plan not yet settled does about its native loops.
enum Compile {
    /// Compile them on this thread now, and run the result.
    Now,
    /// Start compiling them on a background thread (if not started yet), and run interpreted.
    InBackground,
    /// Run interpreted.
    Later,
}

/// When a plan not yet settled compiles its loops (this is its second call or a later one).
/// [`NativeMode::Always`]: now. [`NativeMode::Auto`]: in the background, so no call waits
/// for the C compiler, nor works out what compiling would cost (a library already in the
/// disk cache was loaded when the plan was built). [`NativeMode::Sync`]: with nothing to
/// compile, or the library in the disk cache, now (which settles the plan), otherwise on
/// this thread once the time spent running the plan interpreted has
/// reached what the C compiler would take: a function called a few times never waits seconds
/// for a compiler, and one called often pays at most twice what the better choice in
/// hindsight would have cost (the ski-rental rule).
fn when_to_compile<B>(e: &Entry<B>) -> Compile {
    let mode = native_mode();
    if mode == NativeMode::Always {
        return Compile::Now;
    }
    if e.background_started.load(Ordering::Acquire) {
        return Compile::Later;
    }
    if mode == NativeMode::Auto {
        // The build cost takes the plan's C source and a look in the disk cache (tens of
        // microseconds, as long as a small plan's whole run): the background worker works
        // it out, so that no call pays for it. A library already cached was loaded when the
        // plan was built (`cached_native`).
        return Compile::InBackground;
    }
    if mode != NativeMode::Off && !crate::backend::cpu::native::toolchain_probed() {
        // Whether a compiler works (asked in the background since the first call) is not
        // known yet, and asking here would wait for it: `Auto` leaves the whole decision to
        // the background worker (which runs the plan's compile after the question), `Sync`
        // decides at a later call.
        crate::backend::cpu::native::probe_in_background();
        return if mode == NativeMode::Auto { Compile::InBackground } else { Compile::Later };
    }
    match *e.build_cost.get_or_init(|| e.to_compile().native_build_cost()) {
        None => Compile::Now, // nothing to compile: settles the plan as it is
        Some(cost) if cost.is_zero() => Compile::Now,
        Some(_) if mode == NativeMode::Auto => Compile::InBackground,
        Some(cost) if e.interpreted_ns.load(Ordering::Relaxed) >= cost.as_nanos() as u64 => Compile::Now,
        Some(_) => Compile::Later,
    }
}

/// With `COTANGENT_DUMP=1`: prints a plan as it is built (and the optimised graph).
fn dump(key: &[TensorType], graph: Option<&Graph>, plan: &Plan) {
    if std::env::var_os("COTANGENT_DUMP").is_some_and(|v| v != "0") {
        let graph = graph.map(ToString::to_string).unwrap_or_default();
        eprintln!("cotangent: compiled for {key:?}\n{graph}{}", plan.dump());
    }
}

/// What `jit` keeps per input signature: the plan, the output tree's structure, and
/// whether the plan's native loops have been compiled (see [`when_to_compile`]).
struct Entry<B> {
    plan: Arc<Plan>,
    template: B,
    /// Set once the plan is the one later calls run (native loops compiled, or none to compile).
    settled: AtomicBool,
    /// Time spent running the plan interpreted so far.
    interpreted_ns: AtomicU64,
    /// What compiling its loops would cost (see [`when_to_compile`]), worked out on the second call.
    build_cost: OnceLock<Option<Duration>>,
    /// Set when a background compile of `plan` has been started.
    background_started: AtomicBool,
    /// Its result once it has finished: the plan with native loops, or `None` when none
    /// were compiled (no compiler, nothing selected, or the compile failed).
    background: Arc<OnceLock<Option<Arc<Plan>>>>,
    /// The optimised graph the plan was built from (the first plan of a signature, when no
    /// cached library was loaded into it), until the background compile takes it: for a
    /// speculative build when the plan has no loop large enough to compile (see
    /// [`Entry::compile_in_background`]).
    graph: Mutex<Option<Arc<Graph>>>,
    /// The plan to compile when it is not `plan`: the same graph planned for native code,
    /// while `plan` was planned for the interpreter (see `native::for_the_interpreter`).
    to_compile: Option<Arc<Plan>>,
    /// The plan of the speculative build (see [`Entry::compile_in_background`]), once built
    /// with native loops: a plan left interpreted (its loops below what `Auto` compiles) that
    /// is still called switches to it.
    speculative: Arc<OnceLock<Arc<Plan>>>,
    /// The function's rank among the functions `jit` has built plans for (`native::next_rank`):
    /// its background compiles run before those of functions built before it.
    rank: u64,
}

impl<B: Tree> Entry<B> {
    fn new(plan: Arc<Plan>, template: &B, settled: bool, rank: u64) -> Entry<B> {
        Entry {
            rank,
            plan,
            template: template.rebuild_from(template.leaves()),
            settled: AtomicBool::new(settled),
            interpreted_ns: AtomicU64::new(0),
            build_cost: OnceLock::new(),
            background_started: AtomicBool::new(false),
            background: Arc::new(OnceLock::new()),
            graph: Mutex::new(None),
            to_compile: None,
            speculative: Arc::new(OnceLock::new()),
        }
    }
}

impl<B> Entry<B> {
    /// The plan whose loops compile to native code (see [`Entry::to_compile`](Entry)).
    fn to_compile(&self) -> &Arc<Plan> {
        self.to_compile.as_ref().unwrap_or(&self.plan)
    }

    /// Queues the plan's loops for compilation on the background thread (once), in the
    /// native mode of the calling thread; the result lands in `background`. In
    /// `NativeMode::Auto`, when that compiles nothing (every loop below the 4096 elements
    /// `Auto` compiles), the worker then builds the plan of the same graph *speculatively*
    /// (`native::speculatively`): the libraries that the program's larger inputs look for in
    /// the cache, so that they run native from their first call. This call's plan stays as it
    /// is (its small loops run as fast interpreted); the speculative build only fills the cache.
    fn compile_in_background(&self) {
        if self.background_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let (plan, slot, mode) = (self.to_compile().clone(), self.background.clone(), native_mode());
        let speculative = self.speculative.clone();
        let graph = self.graph.lock().unwrap_or_else(|e| e.into_inner()).take();
        crate::backend::cpu::native::spawn_compile(move || {
            // Built even when the function was dropped while the compile waited its turn (a
            // program that builds a fresh function per input, as GradBench's tools do): its
            // libraries, cached, serve the next function of the same program at any size.
            let compiled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                crate::with_native_mode(mode, || plan.with_native_loops())
            }));
            // A panic in the compiler's driver leaves the plan interpreted (its results are the same).
            let compiled = compiled.ok().flatten().map(Arc::new);
            let nothing = compiled.is_none();
            let _ = slot.set(compiled);
            if let (true, NativeMode::Auto, Some(graph)) = (nothing, mode, graph) {
                // Behind the compiles of plans being called (see `native::spawn_speculative`).
                crate::backend::cpu::native::spawn_speculative(move || {
                    let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        crate::with_native_mode(mode, || speculative_plan(&graph))
                    }));
                    // Its loops of 512 elements and more are native code: the function, if still
                    // called, runs this plan from its next call.
                    if let Some(plan) = built.ok().filter(Plan::has_native_loops) {
                        let _ = speculative.set(Arc::new(plan));
                    }
                });
            }
        });
    }

    /// Runs the interpreted plan, adding the time to `interpreted_ns`.
    fn run_interpreted(&self, leaves: &[crate::Tensor]) -> Vec<crate::Tensor> {
        let started = Instant::now();
        let outs = self.plan.run(leaves);
        self.interpreted_ns.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        outs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::native::{probe_in_background, toolchain_probed, wait_for_native_compiles};

    /// In `Auto`, a second call leaves the build cost (the plan's C source and a look in the
    /// disk cache, as long as a small plan's whole run) to the background worker: the calling
    /// thread only queues the compile, even once the compiler is known to work.
    #[test]
    fn an_auto_second_call_leaves_the_build_cost_to_the_worker() {
        crate::with_native_mode(NativeMode::Auto, || {
            probe_in_background();
            wait_for_native_compiles();
            assert!(toolchain_probed(), "the probe has run on the worker");
            let x = crate::Tensor::from_vec(vec![0.5f64; 1 << 13], &[1 << 13]);
            let graph = crate::trace::trace_graph(&[x.ty()], |x| vec![(&x[0] * 3.0).tanh() + 0.25]);
            let plan = Arc::new(Plan::interpreted(&optimize(&graph)));
            let entry = Entry::new(plan, &x, false, 1);
            assert!(matches!(when_to_compile(&entry), Compile::InBackground));
            assert!(entry.build_cost.get().is_none(), "the build cost was worked out on the calling thread");
        });
    }

    /// The call fast path (the last settled signature, compared in place) runs a settled plan
    /// only for arguments of exactly its signature: calls alternating between shapes, dtypes
    /// and numbers of leaves, every plan settled, each get their own plan's result.
    #[test]
    fn the_call_fast_path_runs_only_its_own_signature() {
        use crate::Tensor;
        crate::with_native_mode(NativeMode::Off, || {
            let f = jit(|x: &Vec<Tensor>| x.iter().fold(x[0].zeros_like(), |acc, t| acc + t * 2.0) + 1.0);
            let args = [
                vec![Tensor::from_vec(vec![1.0f64, 2.0], &[2])],
                vec![Tensor::from_vec(vec![1.0f64, 2.0, 3.0], &[3])],
                vec![Tensor::from_vec(vec![1.0f32, 2.0], &[2])],
                vec![Tensor::from_vec(vec![1.0f64, 2.0], &[1, 2])],
                vec![Tensor::from_vec(vec![1.0f64, 2.0], &[2]), Tensor::from_vec(vec![3.0f64, 4.0], &[2])],
            ];
            // Each signature three times in a row (its plan settles at the second call and is
            // the last settled one at the third), then all of them in turn, twice.
            let order: Vec<usize> =
                (0..args.len()).flat_map(|k| [k, k, k]).chain((0..2 * args.len()).map(|k| k % 5)).collect();
            for k in order {
                let y = f(&args[k]);
                assert_eq!(y.ty(), args[k][0].ty(), "signature {k}");
                let want: Vec<f64> = (0..args[k][0].numel())
                    .map(|i| {
                        args[k]
                            .iter()
                            .map(|t| 2.0 * t.cast(crate::DType::F64).reshape(&[-1]).to_vec::<f64>()[i])
                            .sum::<f64>()
                            + 1.0
                    })
                    .collect();
                assert_eq!(y.cast(crate::DType::F64).reshape(&[-1]).to_vec::<f64>(), want, "signature {k}");
            }
        });
    }
}
