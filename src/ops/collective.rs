//! Collectives: all-reduce, broadcast and reduce-to-root across the processes of a
//! distributed world, as primitives.
//!
//! The core knows nothing of MPI. It holds at most one registered [`Communicator`] (the
//! `dist` module, behind the `mpi` cargo feature, registers one over MPI in `dist::init`);
//! the kernels of these primitives call it. With none registered the world is one process,
//! where every collective is the identity — so programs written for several ranks run
//! unchanged, and builds without the `mpi` feature behave as before.
//!
//! The collectives are linear maps of the world's values, so they have derivatives:
//!
//! - `all_reduce` with sum: `y_r = Σ_s x_s`; tangent: the same all-reduce of the tangents;
//!   transpose: `x̄_s = Σ_r ȳ_r`, the same all-reduce of the cotangents (mean likewise).
//! - `broadcast` from `root`: `y_r = x_root`; transpose: the cotangents summed onto the root
//!   and zero elsewhere — [`Prim::ReduceTo`] — whose own transpose is the broadcast.
//!
//! Every rank must call the same collectives in the same order (SPMD): a collective inside
//! `grad` or `jit` runs where the plan puts it, which is the same place on every rank that
//! traces the same program. Constant folding leaves collectives in the plan. As for every
//! operation, a collective whose operand is concrete (does not depend on the arguments of
//! the function being traced) runs at once, while tracing: inside `jit` it then runs on
//! the first call only, and its result is a constant of the plan.
//!
//! ```
//! use cotangent::ops::collective::{all_reduce, CollectiveOp};
//! use cotangent::{grad, Tensor};
//! // One process (no communicator registered): the identity, and so is its gradient.
//! let x = Tensor::from_vec(vec![1.0f32, 2.0], &[2]);
//! assert_eq!(all_reduce(&x, CollectiveOp::Sum).to_vec::<f32>(), vec![1.0, 2.0]);
//! let g = grad(|x: &Tensor| all_reduce(x, CollectiveOp::Mean).square().sum_all())(&x);
//! assert_eq!(g.to_vec::<f32>(), vec![2.0, 4.0]);
//! ```

use super::Prim;
use crate::array::{Array, Data};
use crate::trace::bind;
use crate::{DType, Tensor, TensorType};
use std::sync::{Arc, RwLock};

/// How [`Prim::AllReduce`] combines the ranks' values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CollectiveOp {
    /// The element-wise sum over ranks (any numeric dtype).
    Sum,
    /// The element-wise mean over ranks (float dtypes).
    Mean,
}

impl CollectiveOp {
    /// The primitive's name in dumps and messages.
    ///
    /// ```
    /// assert_eq!(cotangent::ops::collective::CollectiveOp::Mean.name(), "all_reduce_mean");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            CollectiveOp::Sum => "all_reduce_sum",
            CollectiveOp::Mean => "all_reduce_mean",
        }
    }
}

/// What the collectives' kernels call: a world of `size` processes, this one being `rank`.
///
/// Buffers are a [`Data`] of `f32`, `f64`, `i32` or `i64` (the type rules keep `bool` out);
/// each call must be made by every rank with buffers of the same dtype and length, and
/// results are written over the buffer. Implementations must be callable from any thread
/// (calls may come from the thread running a plan), one call at a time or serialised
/// internally.
///
/// ```
/// use cotangent::ops::collective::Communicator;
/// use cotangent::Data;
/// /// A world of two where the other rank always holds the same values as this one.
/// struct Mirror;
/// impl Communicator for Mirror {
///     fn rank(&self) -> usize { 0 }
///     fn size(&self) -> usize { 2 }
///     fn all_reduce_sum(&self, buf: &mut Data) {
///         match buf {
///             Data::F64(v) => v.iter_mut().for_each(|x| *x *= 2.0),
///             other => panic!("this mirror holds f64 only, got {:?}", other.dtype()),
///         }
///     }
///     fn broadcast(&self, _buf: &mut Data, _root: usize) {}
///     fn reduce_sum(&self, buf: &mut Data, _root: usize) { self.all_reduce_sum(buf) }
///     fn barrier(&self) {}
/// }
/// assert_eq!(Mirror.size(), 2);
/// ```
pub trait Communicator: Send + Sync {
    /// This process's rank, `0..size`.
    fn rank(&self) -> usize;
    /// The number of processes.
    fn size(&self) -> usize;
    /// Replaces `buf` on every rank with the element-wise sum over ranks.
    fn all_reduce_sum(&self, buf: &mut Data);
    /// Replaces `buf` on every rank with `root`'s.
    fn broadcast(&self, buf: &mut Data, root: usize);
    /// Replaces `buf` on `root` with the element-wise sum over ranks; other ranks' buffers
    /// may be left with anything (the kernel zeroes them).
    fn reduce_sum(&self, buf: &mut Data, root: usize);
    /// Returns once every rank has called it.
    fn barrier(&self);
}

static COMMUNICATOR: RwLock<Option<Arc<dyn Communicator>>> = RwLock::new(None);

/// Registers the communicator that collectives use from now on (`None`: back to one
/// process); returns the previous one. `dist::init` calls this; call it yourself only to
/// plug in another transport.
///
/// ```
/// use cotangent::ops::collective::{set_communicator, world_size};
/// assert!(set_communicator(None).is_none());
/// assert_eq!(world_size(), 1);
/// ```
pub fn set_communicator(comm: Option<Arc<dyn Communicator>>) -> Option<Arc<dyn Communicator>> {
    std::mem::replace(&mut *COMMUNICATOR.write().unwrap_or_else(|e| e.into_inner()), comm)
}

/// The registered communicator, if any.
///
/// ```
/// assert!(cotangent::ops::collective::communicator().is_none());
/// ```
pub fn communicator() -> Option<Arc<dyn Communicator>> {
    COMMUNICATOR.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// This process's rank in the registered world (0 without one).
///
/// ```
/// assert_eq!(cotangent::ops::collective::world_rank(), 0);
/// ```
pub fn world_rank() -> usize {
    communicator().map_or(0, |c| c.rank())
}

/// The number of processes in the registered world (1 without one).
///
/// ```
/// assert_eq!(cotangent::ops::collective::world_size(), 1);
/// ```
pub fn world_size() -> usize {
    communicator().map_or(1, |c| c.size())
}

// ---------------------------------------------------------------------------
// Operations.
// ---------------------------------------------------------------------------

/// The element-wise sum or mean of `x` over all ranks, on every rank.
///
/// ```
/// use cotangent::ops::collective::{all_reduce, CollectiveOp};
/// use cotangent::Tensor;
/// let x = Tensor::from_vec(vec![3i64, 4], &[2]);
/// assert_eq!(all_reduce(&x, CollectiveOp::Sum).to_vec::<i64>(), vec![3, 4]); // one process
/// ```
#[track_caller]
pub fn all_reduce(x: &Tensor, op: CollectiveOp) -> Tensor {
    bind(Prim::AllReduce { op }, &[x])
}

/// `root`'s value of `x`, on every rank.
///
/// ```
/// use cotangent::ops::collective::broadcast;
/// use cotangent::Tensor;
/// assert_eq!(broadcast(&Tensor::scalar(2.5), 0).item::<f64>(), 2.5);
/// ```
#[track_caller]
pub fn broadcast(x: &Tensor, root: usize) -> Tensor {
    bind(Prim::Broadcast { root }, &[x])
}

/// The element-wise sum of `x` over all ranks on `root`, zeros on the others (the
/// transpose of [`broadcast`]).
///
/// ```
/// use cotangent::ops::collective::reduce_to;
/// use cotangent::Tensor;
/// assert_eq!(reduce_to(&Tensor::scalar(2.5), 0).item::<f64>(), 2.5);
/// ```
#[track_caller]
pub fn reduce_to(x: &Tensor, root: usize) -> Tensor {
    bind(Prim::ReduceTo { root }, &[x])
}

// ---------------------------------------------------------------------------
// Type rule.
// ---------------------------------------------------------------------------

/// Type rule of the collectives: the operand's type, for numeric operands (`bool` is
/// refused; the mean needs floats), and a root that is a rank of the registered world.
///
/// ```
/// use cotangent::ops::{collective::{collective_type, CollectiveOp}, Prim};
/// use cotangent::{DType, TensorType};
/// let f = TensorType::new(DType::F32, vec![3]);
/// assert_eq!(collective_type(&Prim::AllReduce { op: CollectiveOp::Sum }, &f).unwrap(), f);
/// let i = TensorType::new(DType::I64, vec![3]);
/// assert!(collective_type(&Prim::AllReduce { op: CollectiveOp::Mean }, &i).is_err());
/// assert!(collective_type(&Prim::Broadcast { root: 5 }, &f).is_err()); // one process: root 0 only
/// ```
pub fn collective_type(prim: &Prim, x: &TensorType) -> Result<TensorType, String> {
    if x.dtype == DType::Bool {
        return Err(format!("does not accept bool operands ({x}); cast first"));
    }
    match prim {
        Prim::AllReduce { op: CollectiveOp::Mean } if !x.dtype.is_float() => {
            Err(format!("the mean over ranks needs a float operand, got {x}"))
        }
        Prim::Broadcast { root } | Prim::ReduceTo { root } if *root >= world_size() => {
            Err(format!("root {root} is not a rank of this world of {} process(es)", world_size()))
        }
        _ => Ok(x.clone()),
    }
}

// ---------------------------------------------------------------------------
// Derivative and batching rules.
// ---------------------------------------------------------------------------

/// The tangent: collectives are linear, so the same collective of the tangent.
pub(crate) fn jvp(prim: &Prim, t: &Tensor) -> Tensor {
    bind(prim.clone(), &[t])
}

/// The transpose: all-reduce is its own transpose (`Σ_r` of the cotangents, for sum and mean
/// alike); broadcast and reduce-to-root are each other's.
pub(crate) fn transpose(prim: &Prim, ct: &Tensor) -> Tensor {
    match prim {
        Prim::AllReduce { .. } => bind(prim.clone(), &[ct]),
        Prim::Broadcast { root } => bind(Prim::ReduceTo { root: *root }, &[ct]),
        Prim::ReduceTo { root } => bind(Prim::Broadcast { root: *root }, &[ct]),
        _ => unreachable!("{} is not a collective", prim.name()),
    }
}

/// Batching: collectives act element by element across ranks, so a batched operand is
/// reduced or broadcast as a whole (every rank must be batched alike).
pub(crate) fn batch(prim: &Prim, x: &Tensor) -> Tensor {
    bind(prim.clone(), &[x])
}

// ---------------------------------------------------------------------------
// Kernel.
// ---------------------------------------------------------------------------

/// Runs a collective on a concrete operand through the registered communicator (the
/// identity in a world of one).
pub(crate) fn kernel(prim: &Prim, x: &Array) -> Array {
    let Some(comm) = communicator() else {
        return x.clone();
    };
    let mut data = x.data.clone();
    match prim {
        Prim::AllReduce { op } => {
            comm.all_reduce_sum(&mut data);
            if *op == CollectiveOp::Mean {
                let n = comm.size();
                match &mut data {
                    Data::F32(v) => v.iter_mut().for_each(|e| *e /= n as f32),
                    Data::F64(v) => v.iter_mut().for_each(|e| *e /= n as f64),
                    _ => unreachable!("the type rule keeps the mean to floats"),
                }
            }
        }
        Prim::Broadcast { root } => comm.broadcast(&mut data, *root),
        Prim::ReduceTo { root } => {
            comm.reduce_sum(&mut data, *root);
            if comm.rank() != *root {
                data = Data::filled(x.dtype(), 0.0, x.numel());
            }
        }
        _ => unreachable!("{} is not a collective", prim.name()),
    }
    Array::new(x.shape.clone(), data)
}
