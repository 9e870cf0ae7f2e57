//! Native fused loops: each fused [`Program`] of a plan becomes a C function, the plan's
//! functions are compiled together by the system C compiler into a shared library (cached
//! on disk), and the plan calls them in place of the block interpreter.
//!
//! Why C: the interpreter streams every instruction through a register block in memory,
//! while compiled loops keep values in CPU registers — for long element-wise chains that is
//! several times faster. The C compiler is already on any machine that builds Rust (it is
//! the linker), and a C translation unit is the simplest thing it can vectorise for the CPU
//! at hand. Kernels round exactly like the interpreter (see `codegen`), so results are
//! bitwise the same with or without them; where no compiler works, plans run interpreted.
//!
//! Loops that differ only in where their strided loads start share one C function, which
//! takes those offsets as arguments: an unrolled program (the same step a hundred times, each
//! reading other slices) compiles as many functions as it has distinct loop shapes, so its C
//! file does not grow with the unrolling. Sizes are arguments too (the iteration shape, outer
//! strides, padding bounds; see `codegen`), so a plan of the same program at another size
//! writes the same source and finds the library already built, in this process or on disk.
//!
//! Which loops: [`NativeMode::Auto`] compiles loops of at least 4096 elements; but where a
//! plan has such a loop and a library holding *every* loop of the plan is already cached
//! (built for the same program at a larger size), the plan loads that one, and its small
//! loops run native too. `jit` looks
//! for such a cached library when it builds a plan, at the first call (see `cached_only`).
//! A function whose loops are all smaller, called a second time, builds those libraries
//! speculatively on the background worker (see [`speculatively`]): its program's larger
//! inputs then load them at their first call (GradBench's ode runs n = 1000 before 10⁴ and
//! 10⁵, each input with a fresh function).
//!
//! When: `jit` runs a function's first calls interpreted. In [`NativeMode::Auto`] (the
//! default) its second call starts the C compiler on a background thread and keeps running
//! interpreted; the first call after the library has loaded switches to the native plan
//! (the swap happens between calls: a call runs one plan from start to end); the second call
//! only queues that work, even the C source and the look in the cache, so it costs what an
//! interpreted call costs. Meanwhile the calls run the graph planned for the interpreter
//! ([`for_the_interpreter`]): a plan for native code inlines producers into the loops that
//! read them through views, which only pays compiled. The worker runs the compiles of plans
//! of the function called latest first (plan compiles, then speculative builds, then whole loops; a long build lets the later functions' jobs run before each compiler run of its own). A library already in the disk cache is loaded when the plan is
//! built instead. [`NativeMode::Sync`] compiles on
//! the calling thread at the call where the interpreted runs have taken as long as the
//! compiler is expected to, and [`NativeMode::Always`] on the second call, on the calling
//! thread too (so that tests see native code at a known call). Native and interpreted loops
//! give bitwise equal results, so the switch never changes a value.
//! [`wait_for_native_compiles`] waits for the background compiles started so far.
//!
//! Environment: `COTANGENT_NATIVE=off|auto|sync|always` sets the [`NativeMode`]
//! ([`with_native_mode`] overrides it per thread); `COTANGENT_CC` picks the compiler,
//! `COTANGENT_CC_TIMEOUT` how long one run of it may take; `COTANGENT_CACHE_DIR` the cache
//! (which must be private to the user).

mod cache;
mod codegen;
mod toolchain;
pub(crate) mod whole_loop;

use super::elementwise::Real;
use super::fused::Program;
use crate::ops::{BinaryOp, UnaryOp};
use crate::shape::numel;
use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// When fused loops are compiled to native code.
///
/// The default comes from the environment variable `COTANGENT_NATIVE` (`off`, `auto`, `sync`
/// or `always`; `auto` when unset); [`with_native_mode`] overrides it for one thread.
/// Native and interpreted loops give bitwise identical results, so the mode only changes speed.
///
/// ```
/// use cotangent::{jit, with_native_mode, NativeMode, Tensor};
/// let f = jit(|x: &Tensor| (x * x).sin());
/// let x = Tensor::from_vec(vec![0.5f32; 8], &[8]);
/// let interpreted = with_native_mode(NativeMode::Off, || (f(&x), f(&x)).1);
/// let g = jit(|x: &Tensor| (x * x).sin());
/// let native = with_native_mode(NativeMode::Always, || (g(&x), g(&x)).1);
/// assert_eq!(native.to_vec::<f32>(), interpreted.to_vec::<f32>());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NativeMode {
    /// Always interpret.
    Off,
    /// Compile loops of at least 4096 elements (smaller ones gain too little to pay for the
    /// compiler's ~0.1 s, which each new program pays once per machine: kernels are cached on
    /// disk, and serve the program at every size).
    /// `jit` compiles them on a background thread from a function's second call on, running
    /// interpreted until the library is loaded (at once if it is in the disk cache). A function
    /// whose loops are all smaller (but some of at least 512 elements) runs interpreted, and
    /// its second call has the background thread build the library its program would use at a
    /// larger size (so larger inputs load it at their first call); the function itself runs
    /// that build's plan (its loops of 512 elements and more native) once it is built.
    Auto,
    /// The loops [`NativeMode::Auto`] selects, compiled on the calling thread by the call at
    /// which the interpreted runs have taken as long as the compiler is expected to (or at once
    /// when the library is cached): no thread is started, and the call that compiles waits.
    Sync,
    /// Compile every loop the code generator supports, on the calling thread (`jit`: on the
    /// second call).
    Always,
}

/// Loops this large and above are compiled in [`NativeMode::Auto`]. (Kernels are generic in
/// the sizes, so a lower bar would let a program's small input build the library its larger
/// ones use; but below it plans are also built for the interpreter, e.g. without fusing
/// through views, so other programs, and the bar also asks the compiler whether it works:
/// measured on GradBench's ode at 1000, its n = 1000 calls ran 5-20x slower.)
const AUTO_MIN_ELEMENTS: usize = 4096;

/// Loops this large and above are planned for native code and compiled by a speculative
/// build (see [`speculatively`]): a function called again on such small inputs is likely to
/// be called on larger ones (GradBench's ode at n = 1000 before 10⁴ and 10⁵), which then find
/// their library in the cache. (Constant-size loops of a program stay below the bar at every
/// input size, as they do below [`AUTO_MIN_ELEMENTS`] at the larger sizes.)
const SPECULATIVE_MIN_ELEMENTS: usize = 512;

thread_local! {
    static OVERRIDE: Cell<Option<NativeMode>> = const { Cell::new(None) };
    /// Set by [`cached_only`]: libraries are loaded from the cache, never built.
    static CACHED_ONLY: Cell<bool> = const { Cell::new(false) };
    /// Set when a fused-loop library was looked for under [`cached_only`] and not found
    /// (see [`cached_only_complete`]).
    static MISSED: Cell<bool> = const { Cell::new(false) };
    /// Set by [`speculatively`].
    static SPECULATIVE: Cell<bool> = const { Cell::new(false) };
    /// Set by [`for_the_interpreter`].
    static INTERPRETER: Cell<bool> = const { Cell::new(false) };
    /// Set by [`note_planned_for_native`] (see [`noting_native_planning`]).
    static INLINED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` (which plans a graph: `Plan::interpreted`) planning for the interpreter: no loop
/// counts as native ([`enabled_for`] is false), so nothing is planned the way that only pays
/// in native code (producers inlined through views into their consumers, which interpreted
/// recompute a chain per consumer: GradBench ode's RK4 stages ran 2-6x slower so). `jit` runs
/// such a plan while the native one (planned as usual) compiles in the background.
pub(crate) fn for_the_interpreter<R>(f: impl FnOnce() -> R) -> R {
    with_flag(&INTERPRETER, f)
}

/// Runs `f` (which plans a graph), also saying whether any of the plans it built, sub-plans
/// included, may have been planned differently because their loops would be native (see
/// [`note_planned_for_native`]): only then can a plan for the interpreter differ from it.
pub(crate) fn noting_native_planning<R>(f: impl FnOnce() -> R) -> (R, bool) {
    let before = INLINED.with(|c| c.replace(false));
    let r = f();
    let inlined = INLINED.with(|c| c.replace(before || c.get()));
    (r, inlined)
}

/// Called by the planner when it plans a loop for native code (asks whether to inline the
/// producers it reads through views into it, and the answer is yes).
pub(crate) fn note_planned_for_native() {
    INLINED.with(|c| c.set(true));
}

/// Runs `f` (which plans a graph and compiles its loops: `Plan::interpreted` then
/// `Plan::compile_native`) as a *speculative* build in [`NativeMode::Auto`]: plans are built
/// as for native code from loops of [`SPECULATIVE_MIN_ELEMENTS`] on (not 4096), and each
/// library that holds such a loop is built with *every* loop of its plan — the library
/// [`compile`] looks for (`cached_whole_library`) when the same program comes at a size whose
/// loops reach 4096 elements. So a program first called at a small size leaves, from a
/// background thread, the library its larger inputs load at their first call, without a
/// compile of their own. Libraries without such a loop are not built.
pub(crate) fn speculatively<R>(f: impl FnOnce() -> R) -> R {
    with_flag(&SPECULATIVE, f)
}

/// Runs `f` with the thread-local `flag` set, restoring its previous value afterwards (also
/// when `f` panics).
fn with_flag<R>(flag: &'static std::thread::LocalKey<Cell<bool>>, f: impl FnOnce() -> R) -> R {
    struct Restore(&'static std::thread::LocalKey<Cell<bool>>, bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            self.0.with(|o| o.set(self.1));
        }
    }
    let _restore = Restore(flag, flag.with(|o| o.replace(true)));
    f()
}

/// Whether this thread is in [`speculatively`] (in [`NativeMode::Auto`]).
fn speculative() -> bool {
    SPECULATIVE.with(Cell::get) && native_mode() == NativeMode::Auto
}

/// The smallest loop the native mode selects on this thread (in `Auto` and `Sync`).
fn min_elements() -> usize {
    if speculative() {
        SPECULATIVE_MIN_ELEMENTS
    } else {
        AUTO_MIN_ELEMENTS
    }
}

/// Runs `f` (which compiles native loops, e.g. `Plan::with_native_loops`) loading only the
/// libraries already in the cache and never starting the C compiler: what is not cached stays
/// interpreted. Cheap (no compiler; a cached library loads in well under a millisecond), so
/// `jit` does it when it builds a plan, and a program whose library was built for another
/// size (or by an earlier process) runs native from its first call.
pub(crate) fn cached_only<R>(f: impl FnOnce() -> R) -> R {
    with_flag(&CACHED_ONLY, f)
}

/// [`cached_only`], and whether every fused-loop library `f` looked for was in the cache (a
/// whole loop's library may be missing: its loop then runs its sub-plans, whose libraries
/// count). A plan planned for native code with some of its loops left interpreted can run
/// slower than the plan for the interpreter (producers inlined into loops that then recompute
/// them per consumer), so `jit` takes a speculative plan from the cache only when complete.
pub(crate) fn cached_only_complete<R>(f: impl FnOnce() -> R) -> (R, bool) {
    let before = MISSED.with(|m| m.replace(false));
    let r = cached_only(f);
    let missed = MISSED.with(|m| m.replace(before));
    (r, !missed)
}

/// [`toolchain::load`], except under [`cached_only`] for a library not in the cache:
/// `Err(None)` (nothing built, nothing failed).
fn load(source: &str) -> Result<libloading::Library, Option<toolchain::Failure>> {
    if CACHED_ONLY.with(Cell::get) && !toolchain::is_cached(source) {
        return Err(None);
    }
    if RUNNING.with(Cell::get).is_some() && !toolchain::is_cached(source) {
        // About to run the compiler on the worker: the builds of functions called since this
        // build's function go first (see `yield_to_later_functions`).
        yield_to_later_functions();
    }
    toolchain::load(source).map_err(Some)
}

/// The mode for plans built on this thread now.
pub fn native_mode() -> NativeMode {
    OVERRIDE.with(Cell::get).unwrap_or_else(|| {
        static DEFAULT: OnceLock<NativeMode> = OnceLock::new();
        *DEFAULT.get_or_init(|| match std::env::var("COTANGENT_NATIVE").as_deref() {
            Ok("off") | Ok("0") => NativeMode::Off,
            Ok("always") => NativeMode::Always,
            Ok("sync") => NativeMode::Sync,
            _ => NativeMode::Auto,
        })
    })
}

/// Runs `f` with plans built on this thread using `mode` (restored afterwards, even on panic).
///
/// Only plans compiled inside `f` are affected: a `jit` function compiles its plan on its
/// second call for a given input signature.
pub fn with_native_mode<R>(mode: NativeMode, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<NativeMode>);
    impl Drop for Restore {
        fn drop(&mut self) {
            OVERRIDE.with(|o| o.set(self.0));
        }
    }
    let _restore = Restore(OVERRIDE.with(|o| o.replace(Some(mode))));
    f()
}

/// The signature of every generated kernel: inputs, outputs, start, count, callbacks, and the
/// loop's parameters (the bases of its strided loads, see `codegen::parameters`).
type KernelFn =
    unsafe extern "C" fn(*const *const c_void, *const *mut c_void, i64, i64, *const Callbacks, *const i64) -> i32;

/// Rust implementations of the operations kernels do not port, called per element.
#[repr(C)]
struct Callbacks {
    un32: extern "C" fn(i32, f32) -> f32,
    un64: extern "C" fn(i32, f64) -> f64,
    bin32: extern "C" fn(i32, f32, f32) -> f32,
    bin64: extern "C" fn(i32, f64, f64) -> f64,
}

extern "C" fn un32(op: i32, x: f32) -> f32 {
    f32::unary(UnaryOp::ALL[op as usize], x)
}
extern "C" fn un64(op: i32, x: f64) -> f64 {
    f64::unary(UnaryOp::ALL[op as usize], x)
}
extern "C" fn bin32(op: i32, a: f32, b: f32) -> f32 {
    f32::binary(BinaryOp::ALL[op as usize], a, b)
}
extern "C" fn bin64(op: i32, a: f64, b: f64) -> f64 {
    f64::binary(BinaryOp::ALL[op as usize], a, b)
}
static CALLBACKS: Callbacks = Callbacks { un32, un64, bin32, bin64 };

/// A compiled fused loop: a function of the library (which identical loops share) and this
/// loop's arguments to it.
pub struct Kernel {
    func: KernelFn,
    name: String,
    /// The bases of the loop's live strided and padded loads (`codegen::parameters`).
    params: Box<[i64]>,
    /// Keeps the code mapped while the kernel lives.
    _lib: Arc<libloading::Library>,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kernel({})", self.name)
    }
}

impl Kernel {
    /// Computes elements `start..start + n` of the program's outputs from its inputs.
    ///
    /// # Safety
    /// `inputs` must point to the program's inputs (of their dtypes and sizes), and each of
    /// `outputs` to `n` writable elements of its output's dtype that nothing else accesses.
    /// The caller checks this: `fused::run` and `fused::run_in_place` size the buffers from the
    /// program the kernel was compiled for (the plan keeps the two together). Safe public code
    /// cannot reach it with bad pointers: `run` is crate-private and a `Kernel` has no public
    /// constructor — the only ones come from [`compile`], each paired with its program.
    pub(crate) unsafe fn run(&self, inputs: &[*const c_void], outputs: &[*mut c_void], start: usize, n: usize) {
        // SAFETY: `func` has the `KernelFn` signature (see `compile`) and its code stays mapped
        // while `self._lib` lives; it reads `inputs` and writes elements `start..start + n`
        // through `outputs` (shifted by the caller to start at `start`), which the caller
        // guarantees valid as documented above. `CALLBACKS` is a static of the layout the
        // prelude declares, and the kernel passes it only operation indices it was generated
        // with (in range of `UnaryOp::ALL` / `BinaryOp::ALL`). `params` holds one base per live
        // strided or padded load of the program it was compiled for, the count the function reads
        // (both come from `codegen::parameters` of that program, see `compile`).
        let params = self.params.as_ptr();
        unsafe { (self.func)(inputs.as_ptr(), outputs.as_ptr(), start as i64, n as i64, &CALLBACKS, params) };
    }
}

/// Set after a failed build: the rest of the process stays interpreted (warned once).
static BROKEN: AtomicBool = AtomicBool::new(false);

/// After a failed build: only the first failure warns; a compiler that fails once would fail
/// again, so the rest of the process runs interpreted. (A damaged cached library is not such
/// a failure: `toolchain::load` deletes and rebuilds it.)
fn give_up(failure: toolchain::Failure) {
    if !BROKEN.swap(true, Ordering::Relaxed) {
        if let toolchain::Failure::Broken(e) = failure {
            eprintln!("cotangent: native kernels disabled, loops run interpreted: {e}");
        }
    }
}

/// Whether a loop of `elements` built now would be compiled (the mode selects it and a C
/// compiler answers). Plans use it to pick transformations that only pay in native code.
pub(crate) fn enabled_for(elements: usize) -> bool {
    if INTERPRETER.with(Cell::get) {
        return false;
    }
    match native_mode() {
        NativeMode::Off => false,
        NativeMode::Auto | NativeMode::Sync if elements < min_elements() => false,
        _ => !BROKEN.load(Ordering::Relaxed) && toolchain::available(),
    }
}

/// The attribute of the out-of-line copies of loop bodies that run near padding edges (a few
/// elements per row): never inlined, and not worth the C compiler's time vectorising (where
/// it is GCC, which takes that per-function option). Not `cold`: GCC then treats every
/// path through a call as unlikely and moves the main loop, which runs between two such
/// calls, into the function's cold part, optimised for size and not vectorised (the w5
/// gradient's loop ran 3x slower so).
const NOINLINE: &str = "#if defined(__GNUC__) && !defined(__clang__)\n\
#define CT_NOINLINE __attribute__((noinline, optimize(\"no-tree-vectorize\")))\n\
#else\n#define CT_NOINLINE __attribute__((noinline))\n#endif\n";

/// Which function of a library a program runs, and with which parameters.
pub(crate) struct Entry {
    /// The program's position in the list given to [`source`].
    pub(crate) program: usize,
    /// The C function.
    pub(crate) name: String,
    /// Its arguments for this program (see `codegen::parameters`).
    pub(crate) params: Vec<i64>,
}

/// Whether `prog`'s kernel runs a fast pass that it may redo exactly (an f64 exponential, an
/// f32 sine or cosine): its outputs must not overwrite its inputs, or the exact pass would
/// read its own results (see `schedule::in_place_outputs`).
pub(crate) fn may_redo_passes(prog: &Program) -> bool {
    codegen::needs_exact_rerun(prog, &prog.needed(&prog.outputs))
}

/// The C source of the library [`compile`] builds for `progs`, and which function of it each
/// program runs with which parameters.
pub(crate) fn source(progs: &[(&Program, &[Option<usize>])]) -> (String, Vec<Entry>) {
    if speculative() {
        // Every loop, as `cached_whole_library` looks for it; only for a library holding a
        // loop the speculative bar selects.
        let selected = progs.iter().any(|(p, _)| numel(&p.shape) >= SPECULATIVE_MIN_ELEMENTS);
        return if selected { source_of(progs, true) } else { source_of(&[], false) };
    }
    source_of(progs, native_mode() == NativeMode::Always)
}

/// The source of the library for every loop of `progs` the generator supports (`all`), or
/// for those the native mode selects.
fn source_of(progs: &[(&Program, &[Option<usize>])], all: bool) -> (String, Vec<Entry>) {
    let mode = native_mode();
    let mut source = String::from(include_str!("prelude.c"));
    source.push_str(NOINLINE);
    let mut names = Vec::new();
    if mode == NativeMode::Off {
        return (source, names);
    }
    // Loops that differ only in where their strided loads start (an unrolled program repeats
    // the same loop at other offsets) share one function, which takes those bases as
    // parameters: the source grows with the distinct loop shapes, not with the program. The
    // key is the full description of the program with its bases zeroed, which tells apart
    // everything else the generated code depends on. Functions are numbered in order of first
    // use, so plans of the same shapes write the same source (and hit the same cached library).
    let mut generated: HashMap<String, Option<String>> = HashMap::new();
    for (i, &(prog, in_place)) in progs.iter().enumerate() {
        if !all && numel(&prog.shape) < AUTO_MIN_ELEMENTS {
            continue;
        }
        let (shape, params) = codegen::parameters(prog);
        let key = format!("{shape:?}{in_place:?}");
        // Numbered among the functions generated (not the loops tried), so the source does
        // not depend on which unsupported loops came first.
        let count = generated.values().filter(|name| name.is_some()).count();
        let name = generated.entry(key).or_insert_with(|| {
            let name = format!("ct_kernel{count}");
            codegen::kernel(&shape, in_place, &name).map(|src| {
                source.push_str(&src);
                name
            })
        });
        if let Some(name) = name {
            names.push(Entry { program: i, name: name.clone(), params });
        }
    }
    (source, names)
}

/// Nanoseconds the C compiler takes per KiB of source, as measured on this process's last
/// build (a typical figure for `gcc -O3` until then).
static COMPILE_NS_PER_KIB: AtomicU64 = AtomicU64::new(5_000_000);

/// What compiling `progs` would cost now: `None` when nothing would be compiled (mode off,
/// no compiler, no loop selected), zero when the library is already in the cache, else an
/// estimate from the source's size and the compiler's measured speed.
pub(crate) fn build_cost(progs: &[(&Program, &[Option<usize>])]) -> Option<Duration> {
    if native_mode() == NativeMode::Off || BROKEN.load(Ordering::Relaxed) || !toolchain::available() {
        return None;
    }
    let (source, names) = source(progs);
    if names.is_empty() {
        return None;
    }
    if toolchain::is_cached(&source) || cached_whole_library(progs).is_some() {
        return Some(Duration::ZERO);
    }
    Some(Duration::from_nanos(source.len() as u64 * COMPILE_NS_PER_KIB.load(Ordering::Relaxed) / 1024))
}

/// The library of every supported loop of `progs`, when the mode would select fewer (but
/// some) and that library is in the cache already (built for these loops at another size):
/// its source. Plans with no loop large enough to compile are not looked up: writing their
/// source would cost their calls more than their small loops gain (and below the bar plans
/// are built for the interpreter, so they rarely match a library anyway).
fn cached_whole_library(progs: &[(&Program, &[Option<usize>])]) -> Option<(String, Vec<Entry>)> {
    let selected = progs.iter().any(|(p, _)| numel(&p.shape) >= AUTO_MIN_ELEMENTS);
    if native_mode() == NativeMode::Always || speculative() || !selected || !toolchain::available() {
        return None;
    }
    let (source, names) = source_of(progs, true);
    (!names.is_empty() && toolchain::is_cached(&source)).then_some((source, names))
}

/// Native kernels for the programs that the mode selects and the generator supports
/// (`None` for the others, and for all of them if no compiler works), or for every supported
/// program when a library of them all is cached (see `cached_whole_library`).
/// Each program comes with the inputs its outputs overwrite (see `codegen::kernel`).
pub(crate) fn compile(progs: &[(&Program, &[Option<usize>])]) -> Vec<Option<Arc<Kernel>>> {
    let mut kernels = vec![None; progs.len()];
    if native_mode() == NativeMode::Off || BROKEN.load(Ordering::Relaxed) {
        return kernels;
    }
    let (source, names) = cached_whole_library(progs).unwrap_or_else(|| source(progs));
    if names.is_empty() {
        return kernels;
    }
    let started = Instant::now();
    let loaded = load(&source);
    if matches!(loaded, Err(None)) {
        MISSED.with(|m| m.set(true));
    }
    let took = started.elapsed();
    if took > Duration::from_millis(20) {
        // A real build (a cached library loads in well under a millisecond): its speed is the
        // best estimate of the next build's.
        let per_kib = took.as_nanos() as u64 * 1024 / source.len().max(1) as u64;
        COMPILE_NS_PER_KIB.store(per_kib.max(1), Ordering::Relaxed);
    }
    let lib = match loaded {
        Ok(lib) => Arc::new(lib),
        Err(failure) => {
            if let Some(failure) = failure {
                give_up(failure);
            }
            return kernels;
        }
    };
    for Entry { program: i, name, params } in names {
        // SAFETY: `name` is a function that `codegen::kernel` generated into this library's
        // source with exactly the `KernelFn` signature (the library is the one built from that
        // source: its cache name hashes the source and its seal was checked before loading).
        // Reading the symbol's address is sound; calling it is `Kernel::run`'s business, and the
        // `Kernel` keeps the library mapped for as long as the pointer lives. No public input
        // reaches this: names and source are generated here.
        let func = unsafe { lib.get::<KernelFn>(name.as_bytes()) }.map(|s| *s);
        match func {
            Ok(func) => {
                let params = params.into_boxed_slice();
                kernels[i] = Some(Arc::new(Kernel { func, name, params, _lib: lib.clone() }))
            }
            Err(e) => eprintln!("cotangent: kernel {name} missing from its library: {e}"),
        }
    }
    kernels
}

/// Whether the C compiler has been asked whether it works (see [`probe_in_background`]):
/// until then, [`build_cost`] would wait for it (two compiler runs, ~10 ms).
pub(crate) fn toolchain_probed() -> bool {
    toolchain::probed()
}

/// Asks the C compiler whether it works on the background worker, once per process and
/// only where the native mode could use it: `jit` starts this on a function's first call,
/// so that its second call finds the answer ready instead of waiting for the compiler.
pub(crate) fn probe_in_background() {
    static STARTED: AtomicBool = AtomicBool::new(false);
    if native_mode() == NativeMode::Off || toolchain::probed() || STARTED.swap(true, Ordering::AcqRel) {
        return;
    }
    spawn(
        Box::new(|| {
            toolchain::available();
        }),
        Kind::Probe,
    );
}

/// A background compile.
type Job = Box<dyn FnOnce() + Send>;

/// What a background job is, in the order the worker runs the jobs of one function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// A whole loop's compile (`whole_loop::Lazy`), queued by a run of an interpreted loop:
    /// after the function's other builds, whose plans (when they land) have loops of their own.
    WholeLoop,
    /// A speculative build ([`spawn_speculative`]).
    Speculative,
    /// The compile of a called plan's loops ([`spawn_compile`]); it decides whether a
    /// speculative build follows.
    Plan,
    /// The compiler's probe, which every other job waits for: first of all.
    Probe,
}

/// A queued job and where it stands: the function it belongs to ([`for_call_of`]), its kind,
/// and when it was queued.
struct Queued {
    rank: u64,
    kind: Kind,
    seq: u64,
    job: Job,
}

impl Queued {
    /// The worker runs the job with the largest key: the probe, then the jobs of the function
    /// called latest (a program that builds a function per input, as GradBench's tools do, is
    /// calling the latest one, whose window is short, while the builds of earlier functions
    /// only serve later ones), by kind, the latest queued first.
    fn key(&self) -> (bool, u64, Kind, u64) {
        (self.kind == Kind::Probe, self.rank, self.kind, self.seq)
    }
}

/// The background compiles waiting their turn, the number queued so far, how many are queued
/// or running, and whether the worker thread that runs them (one at a time) is alive.
struct Queue {
    jobs: Vec<Queued>,
    queued: u64,
    pending: usize,
    worker: bool,
}

static QUEUE: (std::sync::Mutex<Queue>, std::sync::Condvar) = (
    std::sync::Mutex::new(Queue { jobs: Vec::new(), queued: 0, pending: 0, worker: false }),
    std::sync::Condvar::new(),
);

fn queue() -> std::sync::MutexGuard<'static, Queue> {
    QUEUE.0.lock().unwrap_or_else(|e| e.into_inner())
}

thread_local! {
    /// The rank of the function whose call is running on this thread (see [`for_call_of`]).
    static CALLER: Cell<u64> = const { Cell::new(0) };
}

/// A rank for a function `jit` builds its first plan for now: higher than every earlier one's.
pub(crate) fn next_rank() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Runs `f`, a call of the function of rank `rank` (see [`next_rank`]): the background jobs it
/// queues (and those its jobs queue in turn) belong to that function, and the worker runs the
/// jobs of the function ranked highest first.
pub(crate) fn for_call_of<R>(rank: u64, f: impl FnOnce() -> R) -> R {
    struct Restore(u64);
    impl Drop for Restore {
        fn drop(&mut self) {
            CALLER.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CALLER.with(|c| c.replace(rank)));
    f()
}

/// Queues `job` (the C compile of a plan being called) for the background worker thread,
/// which runs the queued compiles one at a time (so a program that jits many functions does
/// not start as many compilers at once on a machine that is busy running it); starts the
/// worker if none is alive, or runs `job` here if no thread can be started. A job that panics
/// is dropped. The jobs of the function called latest run first (see [`Queued::key`]).
pub(crate) fn spawn_compile(job: impl FnOnce() + Send + 'static) {
    spawn(Box::new(job), Kind::Plan);
}

/// Queues `job`, a speculative build (no call waits for it), behind the compiles of the
/// called plans of its function and of later ones (see [`spawn_compile`]).
pub(crate) fn spawn_speculative(job: impl FnOnce() + Send + 'static) {
    spawn(Box::new(job), Kind::Speculative);
}

/// Queues `job`, the compile of a whole loop, behind the other builds of its function (see
/// [`spawn_compile`]).
pub(crate) fn spawn_whole_loop(job: impl FnOnce() + Send + 'static) {
    spawn(Box::new(job), Kind::WholeLoop);
}

fn spawn(job: Job, kind: Kind) {
    let mut q = queue();
    q.pending += 1;
    q.queued += 1;
    let (rank, seq) = (CALLER.with(Cell::get), q.queued);
    q.jobs.push(Queued { rank, kind, seq, job });
    if q.worker {
        drop(q);
        // (Wakes the worker if it is lingering; `wait_for_native_compiles` callers recheck.)
        QUEUE.1.notify_all();
        return;
    }
    q.worker = true;
    drop(q);
    if std::thread::Builder::new().name("cotangent-cc".into()).spawn(work).is_err() {
        work();
    }
}

/// How long the worker waits for another job before it ends: starting a thread costs the
/// call that queues a compile tens of microseconds (a small plan's whole run), and programs
/// that compile at all usually queue their next compile within this time.
const WORKER_LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// The worker: runs queued compiles until the queue has stayed empty for [`WORKER_LINGER`],
/// then ends. It runs at the program's own priority: at a lower one (nice 10), on a busy
/// machine the compiler got a few percent of a core and a build of a second took ten, so the
/// calls it would have sped up ran interpreted throughout (GradBench ode at a load of 7 on 2
/// cores: n = 1000, s = 100 primal 0.79 ms interpreted against 0.18 native, gradient 2.4
/// against 0.77).
fn work() {
    loop {
        let job = {
            let mut q = queue();
            let idle_since = std::time::Instant::now();
            loop {
                let next = q.jobs.iter().enumerate().max_by_key(|(_, j)| j.key()).map(|(i, _)| i);
                if let Some(i) = next {
                    break q.jobs.swap_remove(i);
                }
                let waited = idle_since.elapsed();
                if waited >= WORKER_LINGER {
                    q.worker = false;
                    return;
                }
                q = QUEUE.1.wait_timeout(q, WORKER_LINGER - waited).unwrap_or_else(|e| e.into_inner()).0;
            }
        };
        run_job(job);
    }
}

thread_local! {
    /// On the worker thread, while it runs a job: that job's rank (see [`for_call_of`]).
    static RUNNING: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Runs a queued job on the worker thread (a panic inside the compiler's driver leaves that
/// plan interpreted: same results) and counts it done.
fn run_job(queued: Queued) {
    let Queued { rank, job, .. } = queued;
    let outer = RUNNING.with(|r| r.replace(Some(rank)));
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| for_call_of(rank, job)));
    RUNNING.with(|r| r.set(outer));
    queue().pending -= 1;
    QUEUE.1.notify_all();
}

/// On the worker, before a job starts the C compiler: runs the queued jobs of functions
/// ranked above the job's own first (and the probe), so that a long build (a speculative one
/// of several libraries, which serves later functions of the program) does not hold back by
/// seconds the build of the function being called now, whose calls run native only once it
/// lands (GradBench calls each input for about a second, each with a new function). The job
/// then goes on where it was.
fn yield_to_later_functions() {
    let Some(rank) = RUNNING.with(Cell::get) else { return };
    loop {
        let later = {
            let mut q = queue();
            let next = q
                .jobs
                .iter()
                .enumerate()
                .filter(|(_, j)| j.rank > rank || j.kind == Kind::Probe)
                .max_by_key(|(_, j)| j.key())
                .map(|(i, _)| i);
            next.map(|i| q.jobs.swap_remove(i))
        };
        match later {
            Some(job) => run_job(job),
            None => return,
        }
    }
}

/// Waits until every native compile that `jit` started in the background has finished (its
/// library loaded, or the loops left interpreted); the next call of each such function runs
/// its native plan. For benchmarks that time the steady state, and for tests.
///
/// ```
/// use cotangent::{jit, wait_for_native_compiles, Tensor};
/// let f = jit(|x: &Tensor| (x * x).sin() + 1.0);
/// let x = Tensor::from_vec(vec![0.5f32; 8192], &[8192]);
/// let first = f(&x); // interpreted
/// let second = f(&x); // interpreted; starts the C compiler in the background (NativeMode::Auto)
/// wait_for_native_compiles();
/// let third = f(&x); // native, if a C compiler works here
/// assert_eq!(first.to_vec::<f32>(), third.to_vec::<f32>());
/// assert_eq!(second.to_vec::<f32>(), third.to_vec::<f32>());
/// ```
pub fn wait_for_native_compiles() {
    let mut q = queue();
    while q.pending > 0 {
        q = QUEUE.1.wait(q).unwrap_or_else(|e| e.into_inner());
    }
}
