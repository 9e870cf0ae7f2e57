//! # cotangent
//!
//! Differentiable programming for Rust: JAX's composable transformations over
//! a traced tensor IR, on a CPU backend. A short tour: tensors, derivatives,
//! compilation, a training step, and where to look next.
//!
//! ## Tensors
//!
//! A [`Tensor`] is an n-dimensional array of f32, f64, i32, i64 or bool. Operations run at
//! once, with numpy broadcasting; Rust numbers take the dtype of the tensor they meet.
//!
//! ```
//! use cotangent::{where_, Tensor};
//! let x = Tensor::from([[1.0, 2.0], [3.0, 4.0]]);      // also from_vec(v, &shape), Vec<Vec<_>>
//! let y = (&x * 2.0 + 1.0).sum(&[0], false);           // reduce over listed axes ...
//! assert_eq!(y.to_vec::<f64>(), vec![10.0, 14.0]);
//! assert_eq!(x.max_all().item::<f64>(), 4.0);          // ... or over all of them: `*_all`
//! let p = x.softmax_last();                            // JAX's default axis = -1
//! assert!((p.sum(&[-1], false).to_vec::<f64>()[0] - 1.0).abs() < 1e-15);
//! let r = where_(&x.gt(2.0), &x, 0.0);                 // numbers broadcast
//! assert_eq!(r.to_vec::<f64>(), vec![0.0, 0.0, 3.0, 4.0]);
//! ```
//!
//! ## Derivatives
//!
//! [`grad`], [`value_and_grad`], [`jvp`], [`vjp`], [`linearize`], [`vmap`], [`jacfwd`],
//! [`jacrev`], [`hessian`] take closures over tensors or any [`Tree`] of them, and nest
//! freely. Tangents and cotangents can be plain numbers where the shape is 0-d.
//!
//! ```
//! use cotangent::{grad, jvp, vjp, Tensor};
//! let f = |x: &Tensor| (x * x).sum_all();
//! let x = Tensor::from(vec![1.0, 2.0]);
//! assert_eq!(grad(f)(&x).to_vec::<f64>(), vec![2.0, 4.0]);
//! let (_, pullback) = vjp(f, &x);
//! assert_eq!(pullback.call(1.0).to_vec::<f64>(), vec![2.0, 4.0]);
//! let (_, dy) = jvp(|x: &Tensor| x.sin(), &Tensor::scalar(0.0), 1.0);
//! assert_eq!(dy.item::<f64>(), 1.0);
//! let d2 = grad(grad(|x: &Tensor| x.powf(3.0)))(&Tensor::scalar(2.0));
//! assert_eq!(d2.item::<f64>(), 12.0);
//! ```
//!
//! ## Compilation
//!
//! [`jit`] traces a function once per input shape and dtype, optimises the graph and runs
//! it as fused loops (native code when a C compiler is there). The callables `grad`,
//! `vmap` and friends return are jitted already.
//!
//! ```
//! use cotangent::{jit, Tensor};
//! let f = jit(|x: &Tensor| (x.exp() * 2.0).sum_all());
//! let x = Tensor::from(vec![0.0f32, 0.0]);
//! assert_eq!(f(&x).item::<f32>(), 4.0);
//! assert_eq!(f(&x).item::<f32>(), 4.0); // second call: the cached plan
//! ```
//!
//! ## A training step
//!
//! ```
//! use cotangent::nn::{self, Activation, Mlp};
//! use cotangent::optim::{Adam, Optimizer};
//! use cotangent::{random, value_and_grad, DType};
//!
//! let key = random::key(0);
//! let mut model = Mlp::new(&key, &[4, 8, 3], Activation::Relu, DType::F32);
//! let opt = Adam::new(1e-2);
//! let mut state = opt.init(&model);
//! let x = random::normal(&random::fold_in(&key, 1), &[16, 4], DType::F32);
//! let y = random::randint(&random::fold_in(&key, 2), &[16], 0, 3);
//! let step = value_and_grad(|m: &Mlp| nn::cross_entropy(&m.forward(&x), &y));
//! let (first, _) = step(&model);
//! for _ in 0..20 {
//!     let (_, grads) = step(&model);
//!     (model, state) = opt.update(&grads, &state, &model);
//! }
//! assert!(step(&model).0.item::<f32>() < first.item::<f32>());
//! ```
//!
//! ## Where to look next
//!
//! - [`Tensor`]: every method, each with an example; `docs/coming_from_jax.md` and
//!   `docs/coming_from_pytorch.md` map the names you know, `docs/jnp_parity.md` lists what
//!   of `jax.numpy` exists;
//! - the transformations ([`transform`]) and [`Tree`] (`#[derive(Tree)]` for parameter
//!   structures, with a path such as `layers.0.weight` for each leaf);
//! - [`random`] (counter-based, splittable keys), [`nn`] (layers, activations, losses),
//!   [`optim`] (optimisers, schedules, clipping), [`io`] (safetensors checkpoints),
//!   [`data`] (splitting, shuffling, batching);
//! - [`control`]: `cond` and `switch` on traced values; [`diffop`]: differential operators
//!   from Taylor mode ([`jet`]): Laplacians, divergences, directional derivatives, STDE
//!   estimators and forward gradients; `dist` (cargo feature `mpi`): data-parallel training
//!   over MPI — collectives on trees, sharded batches;
//! - the layers underneath (see `ARCHITECTURE.md`): [`ir`] (the typed SSA
//!   [`Graph`](ir::Graph)), [`ops`] (primitives and their derivative rules), [`trace`],
//!   [`backend::cpu`] (kernels), [`compile`] (graph passes and plans);
//! - [`threads`](mod@threads): large kernels use all cores (`COTANGENT_THREADS=1` or
//!   [`set_threads`] to choose);
//! - with the cargo feature `ndarray`: `From`/`TryFrom` between [`Tensor`] and `ndarray`
//!   arrays (zero-copy where the layout allows).
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
pub mod diffeq;
pub mod diffop;
#[cfg(feature = "mpi")]
pub mod dist;
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
pub mod solvers;
mod tensor;
pub mod threads;
pub mod trace;
pub mod transform;
pub mod tree;

pub use array::{Array, Data};
pub use backend::cpu::native::{native_mode, wait_for_native_compiles, with_native_mode, NativeMode};
pub use control::{checkpoint, checkpoint_with, custom_jvp, custom_vjp, custom_vjp_nondiff};
/// Derives [`Tree`] for a struct or enum of trees; see [`tree`] for the rules.
pub use cotangent_derive::Tree;
pub use dtype::{DType, Element};
pub use error::Error;
pub use shape::TensorType;
pub use tensor::Tensor;
pub use tensor::{concatenate, dot_general, einsum, stack, where_, AsOperand, TreeLike, WhereOperand};
pub use threads::{set_threads, threads};
pub use trace::{eval_graph, trace_graph};
pub use transform::*;
pub use tree::Tree;

/// The README's code blocks, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// `docs/coming_from_jax.md`'s code blocks, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/coming_from_jax.md")]
pub struct ComingFromJaxDoctests;

/// `docs/coming_from_pytorch.md`'s code blocks, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/coming_from_pytorch.md")]
pub struct ComingFromPytorchDoctests;
