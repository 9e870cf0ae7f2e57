//! Data-parallel training over MPI (cargo feature `mpi`): the same program on every rank,
//! parameters broadcast from rank 0, gradients averaged by all-reduce, each rank reading its
//! shard of the data ([`crate::data::shard_batches`]) — the scheme of PyTorch DDP and Horovod.
//!
//! [`init`] starts MPI (the system's Open MPI, through the `mpi` crate) and registers it as
//! the communicator of the core's collective primitives ([`crate::ops::collective`]); started
//! without `mpirun` it is a world of one process. The tree-valued collectives here
//! ([`all_reduce_mean`], [`all_reduce_sum`], [`broadcast`]) pack the leaves of a [`Tree`]
//! into few large messages (buckets of up to [`BUCKET_BYTES`] per dtype) and are built from
//! those primitives, so they run eagerly, inside `grad` (their transposes are collectives
//! too) and inside `jit` (each bucket one kernel step of the plan).
//!
//! ```no_run
//! use cotangent::{dist, grad, Tensor};
//! let world = dist::init(); // keep it alive until the end: dropping it finalises MPI
//! let w = dist::broadcast(&Tensor::from_vec(vec![0.0f32; 4], &[4]), 0); // rank 0's start
//! let x = Tensor::full(&[4], world.rank() as f64 + 1.0, cotangent::DType::F32); // this rank's data
//! let g = dist::all_reduce_mean(&grad(|w: &Tensor| (w * &x).sum_all())(&w));
//! if world.is_root() {
//!     println!("mean gradient over {} ranks: {g}", world.size());
//! }
//! ```
//!
//! **Failures.** With more than one rank, [`init`] installs a panic hook that prints the
//! panic as usual and then calls `MPI_Abort`, so a rank that panics ends the whole job
//! (mpirun reports `MPI_ABORT was invoked on rank r`) instead of leaving the others waiting in
//! a collective forever — this includes panics that would otherwise be caught. A rank that
//! dies of a signal or exits without finalising makes mpirun end the others in the same way.
//! A rank that stays alive but never reaches the next collective (an endless loop) still
//! blocks the others: run under `mpirun --timeout SECONDS` to bound such a job.

mod comm;

pub use comm::{init, World};

use crate::ops::collective::{self, CollectiveOp};
use crate::{concatenate, DType, Tensor, Tree};

/// The largest message a tree collective packs leaves into (25 MiB, PyTorch DDP's default
/// bucket): a tree becomes one message per dtype unless its leaves of that dtype add up to
/// more, and a leaf larger than this is sent on its own.
pub const BUCKET_BYTES: usize = 25 << 20;

/// This process's rank (0 before [`init`] and in a world of one).
///
/// ```
/// assert_eq!(cotangent::dist::rank(), 0);
/// ```
pub fn rank() -> usize {
    collective::world_rank()
}

/// The number of processes (1 before [`init`] and in a world of one).
///
/// ```
/// assert_eq!(cotangent::dist::size(), 1);
/// ```
pub fn size() -> usize {
    collective::world_size()
}

/// Returns once every rank has called it (at once in a world of one).
///
/// ```
/// cotangent::dist::barrier();
/// ```
pub fn barrier() {
    if let Some(c) = collective::communicator() {
        c.barrier();
    }
}

/// The element-wise mean over ranks of every leaf (float leaves only), on every rank: the
/// gradient averaging of data-parallel training.
///
/// ```
/// use cotangent::{dist, Tensor};
/// let g = (Tensor::from_vec(vec![1.0f32, 2.0], &[2]), Tensor::scalar(3.0));
/// let m = dist::all_reduce_mean(&g); // a world of one: unchanged
/// assert_eq!((m.0.to_vec::<f32>(), m.1.item::<f64>()), (vec![1.0, 2.0], 3.0));
/// ```
#[track_caller]
pub fn all_reduce_mean<T: Tree>(tree: &T) -> T {
    bucketed(tree, "all_reduce_mean", |x| collective::all_reduce(x, CollectiveOp::Mean))
}

/// The element-wise sum over ranks of every leaf (numeric leaves), on every rank.
///
/// ```
/// use cotangent::{dist, Tensor};
/// let counts = Tensor::from_vec(vec![3i64, 1], &[2]);
/// assert_eq!(dist::all_reduce_sum(&counts).to_vec::<i64>(), vec![3, 1]);
/// ```
#[track_caller]
pub fn all_reduce_sum<T: Tree>(tree: &T) -> T {
    bucketed(tree, "all_reduce_sum", |x| collective::all_reduce(x, CollectiveOp::Sum))
}

/// Rank `root`'s value of every leaf, on every rank (bool leaves too): how data-parallel
/// training starts every rank from the same parameters.
///
/// ```
/// use cotangent::{dist, Tensor};
/// let p = vec![Tensor::scalar(1.5), Tensor::from_vec(vec![true, false], &[2])];
/// let q = dist::broadcast(&p, 0);
/// assert_eq!(q[1].to_vec::<bool>(), vec![true, false]);
/// ```
#[track_caller]
pub fn broadcast<T: Tree>(tree: &T, root: usize) -> T {
    bucketed(tree, "broadcast", |x| collective::broadcast(x, root))
}

/// Applies the collective `op` to the leaves of `tree`, packed into buckets: the leaves of
/// each dtype, flattened, joined in order into messages of up to [`BUCKET_BYTES`] (bool
/// leaves travel as `i32`; empty leaves do not travel).
#[track_caller]
fn bucketed<T: Tree>(tree: &T, what: &str, op: impl Fn(&Tensor) -> Tensor) -> T {
    let named = tree.named_leaves();
    let mut out: Vec<Option<Tensor>> = vec![None; named.len()];
    for dtype in [DType::F32, DType::F64, DType::I32, DType::I64, DType::Bool] {
        let mut bucket: Vec<usize> = Vec::new();
        let mut bytes = 0;
        for (i, (path, leaf)) in named.iter().enumerate() {
            if leaf.dtype() != dtype {
                continue;
            }
            if leaf.numel() == 0 {
                out[i] = Some(leaf.clone());
                continue;
            }
            if dtype == DType::Bool && what != "broadcast" {
                panic!("dist::{what}: leaf `{path}` is {}; bool tensors cannot be summed over ranks", leaf.ty());
            }
            let size = leaf.numel() * dtype.size_in_bytes();
            if !bucket.is_empty() && bytes + size > BUCKET_BYTES {
                send_bucket(&named, &bucket, &op, &mut out);
                bucket.clear();
                bytes = 0;
            }
            bucket.push(i);
            bytes += size;
        }
        if !bucket.is_empty() {
            send_bucket(&named, &bucket, &op, &mut out);
        }
    }
    tree.rebuild_from(out.into_iter().map(|t| t.expect("every leaf has a dtype")).collect())
}

/// One message: the flattened leaves `idx` joined, the collective, and the pieces put back.
fn send_bucket(named: &[(String, Tensor)], idx: &[usize], op: &impl Fn(&Tensor) -> Tensor, out: &mut [Option<Tensor>]) {
    let wire = |t: &Tensor| if t.dtype() == DType::Bool { t.cast(DType::I32) } else { t.clone() };
    let flat: Vec<Tensor> = idx.iter().map(|&i| wire(&named[i].1).reshape_to(&[named[i].1.numel()])).collect();
    let joined = if flat.len() == 1 { flat[0].clone() } else { concatenate(&flat, 0) };
    let result = op(&joined);
    let mut at = 0;
    for &i in idx {
        let leaf = &named[i].1;
        let n = leaf.numel();
        let piece =
            if idx.len() == 1 { result.clone() } else { result.slice_axis(0, at as isize, (at + n) as isize, 1) };
        at += n;
        let piece = piece.reshape_to(&leaf.shape());
        out[i] = Some(if leaf.dtype() == DType::Bool { piece.cast(DType::Bool) } else { piece });
    }
}
