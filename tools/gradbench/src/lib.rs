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
