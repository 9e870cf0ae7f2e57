//! Batching and shuffling of in-memory data sets, as plain iterators.
//!
//! A data set is any [`Tree`] whose leaves share their first axis (the
//! examples): a tensor, an `(inputs, labels)` tuple, a derived struct. Shuffling
//! takes a key, so an epoch's order is reproducible; use a fresh key per epoch
//! (`random::fold_in(&key, epoch)`).
//!
//! ```
//! use cotangent::{data, random, Tensor};
//! let x = Tensor::from_vec((0..10).map(|v| v as f64).collect(), &[10, 1]);
//! let y = Tensor::from_vec((0..10i64).collect(), &[10]);
//! let (train, test) = data::split(&(x, y), 0.2, &random::key(0));
//! assert_eq!((train.0.shape()[0], test.0.shape()[0]), (8, 2));
//! let key = random::key(1);
//! let sizes: Vec<usize> = data::batches(&train, 3, Some(&key), false)
//!     .map(|(xb, yb)| { assert_eq!(xb.shape()[0], yb.shape()[0]); xb.shape()[0] })
//!     .collect();
//! assert_eq!(sizes, vec![3, 3, 2]);
//! ```

use crate::{random, DType, Tensor, Tree};

/// The number of examples of a data set: the shared first extent of its leaves.
///
/// ```
/// use cotangent::{data, DType, Tensor};
/// assert_eq!(data::len(&(Tensor::zeros(&[5, 2], DType::F32), Tensor::zeros(&[5], DType::I64))), 5);
/// ```
#[track_caller]
pub fn len<T: Tree>(data: &T) -> usize {
    let leaves = data.leaves();
    let first = leaves.first().unwrap_or_else(|| panic!("data: the data set has no tensors"));
    assert!(first.rank() > 0, "data: leaves need an example axis, got {}", first.ty());
    let n = first.shape()[0];
    for l in &leaves {
        assert!(
            l.rank() > 0 && l.shape()[0] == n,
            "data: every leaf needs the same number of examples ({n}); found {}",
            l.ty()
        );
    }
    n
}

/// The examples at `indices` (an `i64` vector) of every leaf.
///
/// ```
/// use cotangent::{data, Tensor};
/// let x = Tensor::from_vec(vec![10.0, 11.0, 12.0], &[3]);
/// let picked = data::take(&x, &Tensor::from_vec(vec![2i64, 0], &[2]));
/// assert_eq!(picked.to_vec::<f64>(), vec![12.0, 10.0]);
/// ```
#[track_caller]
pub fn take<T: Tree>(data: &T, indices: &Tensor) -> T {
    data.map_leaves(|l| l.take(indices, 0))
}

/// Splits a data set into `(train, test)` after shuffling with `key`; the test part has
/// `round(n · test_fraction)` examples.
///
/// ```
/// use cotangent::{data, random, DType, Tensor};
/// let x = Tensor::zeros(&[100, 3], DType::F32);
/// let (a, b) = data::split(&x, 0.25, &random::key(0));
/// assert_eq!((a.shape()[0], b.shape()[0]), (75, 25));
/// ```
#[track_caller]
pub fn split<T: Tree>(data: &T, test_fraction: f64, key: &Tensor) -> (T, T) {
    assert!(
        (0.0..=1.0).contains(&test_fraction),
        "data::split: the test fraction must be in [0, 1], got {test_fraction}"
    );
    let n = len(data);
    let n_test = (n as f64 * test_fraction).round() as usize;
    let perm = random::permutation(key, n);
    let train_idx = perm.slice_axis(0, n_test as isize, n as isize, 1);
    let test_idx = perm.slice_axis(0, 0, n_test as isize, 1);
    (take(data, &train_idx), take(data, &test_idx))
}

/// An iterator over the index vectors (`i64`) of successive mini-batches.
///
/// ```
/// use cotangent::data::BatchIndices;
/// let b: Vec<Vec<i64>> = BatchIndices::new(5, 2, None, true).map(|t| t.to_vec::<i64>()).collect();
/// assert_eq!(b, vec![vec![0, 1], vec![2, 3]]);
/// ```
pub struct BatchIndices {
    order: Vec<i64>,
    batch_size: usize,
    drop_last: bool,
    pos: usize,
}

impl BatchIndices {
    /// Batches of `batch_size` indices of `0..n`, in order or shuffled by `key`; the last,
    /// smaller batch is dropped if `drop_last`.
    ///
    /// ```
    /// use cotangent::{data::BatchIndices, random};
    /// assert_eq!(BatchIndices::new(10, 4, Some(&random::key(0)), false).count(), 3);
    /// ```
    #[track_caller]
    pub fn new(n: usize, batch_size: usize, key: Option<&Tensor>, drop_last: bool) -> BatchIndices {
        assert!(batch_size > 0, "data: the batch size must be positive");
        let order = match key {
            Some(k) => random::permutation(k, n).to_vec::<i64>(),
            None => (0..n as i64).collect(),
        };
        BatchIndices { order, batch_size, drop_last, pos: 0 }
    }
}

impl Iterator for BatchIndices {
    type Item = Tensor;

    fn next(&mut self) -> Option<Tensor> {
        let n = self.order.len();
        if self.pos >= n || (self.drop_last && self.pos + self.batch_size > n) {
            return None;
        }
        let end = (self.pos + self.batch_size).min(n);
        let idx = self.order[self.pos..end].to_vec();
        self.pos = end;
        let len = idx.len();
        Some(Tensor::from_vec(idx, &[len]).cast(DType::I64))
    }
}

/// Mini-batches of a data set: each item is the data set restricted to one batch of
/// examples (see [`BatchIndices`] for the order).
///
/// ```
/// use cotangent::{data, Tensor};
/// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]);
/// let b: Vec<Vec<f64>> = data::batches(&x, 2, None, false).map(|t| t.to_vec::<f64>()).collect();
/// assert_eq!(b, vec![vec![1.0, 2.0], vec![3.0]]);
/// ```
#[track_caller]
pub fn batches<'a, T: Tree>(
    data: &'a T,
    batch_size: usize,
    key: Option<&Tensor>,
    drop_last: bool,
) -> impl Iterator<Item = T> + 'a {
    let n = len(data);
    BatchIndices::new(n, batch_size, key, drop_last).map(move |idx| take(data, &idx))
}

/// The index vectors (`i64`) of one rank's part of successive global mini-batches, for
/// data-parallel training: every rank draws the same epoch order from the same `key`, cuts
/// it into global batches of `global_batch` examples, and keeps the contiguous part
/// `rank·m/size .. (rank+1)·m/size` of each (`m` its length), so over an epoch the ranks
/// read disjoint shards that together are the whole data set. Each item also gives `m`.
///
/// Parts differ in length by at most one, and are equal when `size` divides `m`: then the
/// mean over ranks of per-rank mean gradients is the global batch's mean gradient. Otherwise
/// weigh each rank's loss by its share (`local_sum / m`, then sum over ranks). A last,
/// smaller batch is dropped if `drop_last`, and also whenever it has fewer examples than
/// there are ranks (no rank gets an empty part).
///
/// ```
/// use cotangent::data::ShardedBatchIndices;
/// let r0: Vec<(Vec<i64>, usize)> =
///     ShardedBatchIndices::new(7, 4, None, false, 0, 2).map(|(i, m)| (i.to_vec::<i64>(), m)).collect();
/// let r1: Vec<(Vec<i64>, usize)> =
///     ShardedBatchIndices::new(7, 4, None, false, 1, 2).map(|(i, m)| (i.to_vec::<i64>(), m)).collect();
/// assert_eq!(r0, vec![(vec![0, 1], 4), (vec![4], 3)]);
/// assert_eq!(r1, vec![(vec![2, 3], 4), (vec![5, 6], 3)]);
/// ```
pub struct ShardedBatchIndices {
    global: BatchIndices,
    rank: usize,
    size: usize,
}

impl ShardedBatchIndices {
    /// Rank `rank`'s parts of the global batches of `global_batch` indices of `0..n`, in order
    /// or shuffled by `key` (the same key on every rank).
    ///
    /// ```
    /// use cotangent::{data::ShardedBatchIndices, random};
    /// assert_eq!(ShardedBatchIndices::new(10, 4, Some(&random::key(0)), true, 1, 2).count(), 2);
    /// ```
    #[track_caller]
    pub fn new(
        n: usize,
        global_batch: usize,
        key: Option<&Tensor>,
        drop_last: bool,
        rank: usize,
        size: usize,
    ) -> ShardedBatchIndices {
        assert!(size > 0 && rank < size, "data: rank {rank} is not a rank of a world of {size}");
        assert!(
            global_batch >= size,
            "data: a global batch of {global_batch} cannot give each of {size} ranks an example"
        );
        ShardedBatchIndices { global: BatchIndices::new(n, global_batch, key, drop_last), rank, size }
    }
}

impl Iterator for ShardedBatchIndices {
    type Item = (Tensor, usize);

    fn next(&mut self) -> Option<(Tensor, usize)> {
        let idx = self.global.next()?;
        let m = idx.shape()[0];
        if m < self.size {
            return None;
        }
        let (lo, hi) = (self.rank * m / self.size, (self.rank + 1) * m / self.size);
        Some((idx.slice_axis(0, lo as isize, hi as isize, 1), m))
    }
}

/// This rank's parts of the global mini-batches of a data set (see [`ShardedBatchIndices`]),
/// each with the global batch's number of examples. `rank` and `size` come from
/// `dist::init` (feature `mpi`) or any other launcher.
///
/// ```
/// use cotangent::{data, random, Tensor};
/// let x = Tensor::from_vec((0..10).map(|v| v as f64).collect(), &[10]);
/// let key = random::key(3);
/// let mut seen: Vec<f64> = (0..2)
///     .flat_map(|rank| data::shard_batches(&x, 4, Some(&key), false, rank, 2))
///     .flat_map(|(part, _)| part.to_vec::<f64>())
///     .collect();
/// seen.sort_by(f64::total_cmp);
/// assert_eq!(seen, (0..10).map(|v| v as f64).collect::<Vec<_>>()); // disjoint, complete
/// ```
#[track_caller]
pub fn shard_batches<'a, T: Tree>(
    data: &'a T,
    global_batch: usize,
    key: Option<&Tensor>,
    drop_last: bool,
    rank: usize,
    size: usize,
) -> impl Iterator<Item = (T, usize)> + 'a {
    let n = len(data);
    ShardedBatchIndices::new(n, global_batch, key, drop_last, rank, size).map(move |(idx, m)| (take(data, &idx), m))
}
