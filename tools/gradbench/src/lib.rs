//! A [GradBench](https://github.com/gradbench/gradbench) tool backed by cotangent.
//!
//! GradBench drives a tool over a JSON-lines protocol on stdin/stdout: the eval
//! sends `start`, `define` and `evaluate` messages and the tool answers each
//! with one line carrying the same `id`. [`protocol`] implements that exchange
//! and [`evals`] the benchmark functions, each written with cotangent tensor
//! operations and differentiated only by cotangent's transformations (`grad`,
//! `vjp`, `jvp`, `jacfwd`, `vmap`, ...): there is no hand-written derivative
//! anywhere in this crate.
//!
//! The binary `gradbench-tool` serves stdin to stdout:
//!
//! ```text
//! $ echo '{"id":0,"kind":"evaluate","module":"lse","function":"gradient","input":{"x":[0,0]}}' \
//!     | cargo run --release --bin gradbench-tool
//! {"id":0,"success":true,"output":[0.5,0.5],"timings":[...]}
//! ```
//!
//! Threads: GradBench runs tools on one thread unless the tool is started with
//! `--multithreaded`. The binary follows that ([`threads_to_set`]); the
//! environment variable `COTANGENT_THREADS=N` wins over both.
//!
//! Each evaluate message builds its function once (the derivative closure,
//! e.g. `grad(f)`, is constructed outside the timing loop) and then calls it
//! repeatedly; when cotangent gains `jit`, wrapping those closures compiles
//! once per input signature without changing the structure.

#![warn(missing_docs)]

pub mod descent;
pub mod evals;
pub mod input;
pub mod limits;
pub mod protocol;

/// The thread count the binary sets before serving: one thread unless GradBench asked for
/// `--multithreaded`, and nothing (cotangent's own choice) when `COTANGENT_THREADS` is set
/// in the environment, which then decides.
///
/// ```
/// use gradbench_tool::threads_to_set;
/// assert_eq!(threads_to_set(false, false), Some(1)); // GradBench's default: one thread
/// assert_eq!(threads_to_set(true, false), None); // --multithreaded: all cores
/// assert_eq!(threads_to_set(false, true), None); // COTANGENT_THREADS decides
/// ```
pub fn threads_to_set(multithreaded: bool, env_set: bool) -> Option<usize> {
    (!multithreaded && !env_set).then_some(1)
}
