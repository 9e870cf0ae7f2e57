//! # cotangent
//!
//! Differentiable programming for Rust: JAX's composable transformations over
//! a traced tensor IR, on a CPU backend.
//!
//! ```
//! use cotangent::Tensor;
//! let x = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]);
//! let y = (&x * &x).sum_all();
//! assert_eq!(y.item::<f64>(), 14.0);
//! ```
//!
//! The layers, left to right (see `ARCHITECTURE.md`):
//!
//! - [`ir`]: the typed SSA [`Graph`](ir::Graph), its dump and validator;
//! - [`ops`]: the primitive set, with each primitive's type and derivative rules;
//! - [`trace`]: the trace stack that makes an operation run or be recorded;
//! - [`Tensor`]: the user-facing handle and its methods;
//! - [`backend::cpu`]: the kernels.
//!
//! The libraries on top, for training models:
//!
//! - [`tree`] and `#[derive(Tree)]`: parameter structures that every transformation
//!   takes and returns, with a path (`layers.0.weight`) for each leaf;
//! - [`random`]: counter-based, splittable keys (`key`, `split`, `fold_in`) and samplers;
//! - [`nn`]: layers, activations, initialisers and losses;
//! - [`optim`]: optimisers, learning-rate schedules and gradient clipping;
//! - [`io`]: safetensors checkpoints of any tree;
//! - [`data`]: splitting, shuffling and batching of in-memory data sets.
//!
//! Large kernels use all cores; [`threads`](mod@threads) says how to choose another count
//! (`COTANGENT_THREADS=1` or [`set_threads`]) and how rayon's pool is shared.
//!
//! ## Errors
//!
//! A mistake in the program (a shape or dtype mismatch, a bad axis) panics at
//! the caller's line with a message naming the operation, the operands and the
//! rule that was broken. Data from outside (buffers, files) is checked and
//! reported as [`Error`].

#![warn(missing_docs)]

// Lets `#[derive(Tree)]`, whose output names `::cotangent::Tree`, work inside this crate too.
extern crate self as cotangent;

pub mod array;
pub mod backend;
pub mod compile;
pub mod control;
pub mod data;
mod dtype;
mod error;
pub mod io;
pub mod ir;
pub mod linalg;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod random;
pub mod shape;
mod tensor;
pub mod threads;
pub mod trace;
pub mod transform;
pub mod tree;

pub use array::{Array, Data};
pub use backend::cpu::native::{native_mode, with_native_mode, NativeMode};
/// Derives [`Tree`] for a struct or enum of trees; see [`tree`] for the rules.
pub use cotangent_derive::Tree;
pub use dtype::{DType, Element};
pub use error::Error;
pub use shape::TensorType;
pub use tensor::Tensor;
pub use tensor::{concatenate, dot_general, einsum, stack, where_, AsOperand};
pub use threads::{set_threads, threads};
pub use trace::{eval_graph, trace_graph};
pub use transform::*;
pub use tree::Tree;

/// The README's code blocks, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
