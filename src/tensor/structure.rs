//! Structural methods: reshape, broadcast, transpose, slicing, padding, joining, flipping, casting, scans.

use crate::ops::{CumOp, Prim};
use crate::shape::normalize_axis;
use crate::trace::bind;
use crate::{DType, Tensor};

// Panics in this module are raised outside closures: `#[track_caller]` does not reach
// through a closure, so a panic inside one would report this file instead of the user's line.

#[track_caller]
pub(crate) fn axis_of(op: &str, axis: isize, rank: usize) -> usize {
    match normalize_axis(axis, rank) {
        Ok(a) => a,
        Err(e) => panic!("{op}: {e}"),
    }
}

/// Normalises user axes (negative allowed), in the given order.
#[track_caller]
pub(crate) fn axes_in_order(op: &str, axes: &[isize], rank: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        out.push(axis_of(op, a, rank));
    }
    out
}

/// Normalises user axes (negative allowed) into a sorted, distinct list.
#[track_caller]
pub(crate) fn axes_of(op: &str, axes: &[isize], rank: usize) -> Vec<usize> {
    let mut out = axes_in_order(op, axes, rank);
    out.sort_unstable();
    if out.windows(2).any(|w| w[0] == w[1]) {
        panic!("{op}: repeated axis in {axes:?}");
    }
    out
}

impl Tensor {
    /// Same elements in a new shape; one extent may be `-1` (inferred).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::arange(0.0, 6.0, 1.0, cotangent::DType::F64);
    /// assert_eq!(x.reshape(&[2, -1]).shape(), vec![2, 3]);
    /// ```
    #[track_caller]
    pub fn reshape(&self, shape: &[isize]) -> Tensor {
        let n = self.numel();
        let known: usize = shape.iter().filter(|&&d| d >= 0).map(|&d| d as usize).product();
        let holes = shape.iter().filter(|&&d| d < 0).count();
        if holes > 1 || shape.iter().any(|&d| d < -1) {
            panic!("reshape: at most one -1 is allowed, got {shape:?}");
        }
        if holes == 1 && (known == 0 || !n.is_multiple_of(known)) {
            panic!("reshape: cannot reshape {} into {shape:?}", self.ty())
        }
        let new: Vec<usize> = shape.iter().map(|&d| if d >= 0 { d as usize } else { n / known }).collect();
        self.reshape_to(&new)
    }

    /// Same elements in a new shape given as extents.
    ///
    /// ```
    /// use cotangent::{DType, Tensor};
    /// assert_eq!(Tensor::zeros(&[6], DType::F32).reshape_to(&[3, 2]).shape(), vec![3, 2]);
    /// ```
    #[track_caller]
    pub fn reshape_to(&self, shape: &[usize]) -> Tensor {
        if self.shape() == shape {
            return self.clone();
        }
        bind(Prim::Reshape { shape: shape.to_vec() }, &[self])
    }

    /// All elements as one axis.
    ///
    /// ```
    /// use cotangent::{DType, Tensor};
    /// assert_eq!(Tensor::zeros(&[2, 3], DType::F32).flatten().shape(), vec![6]);
    /// ```
    #[track_caller]
    pub fn flatten(&self) -> Tensor {
        self.reshape_to(&[self.numel()])
    }

    /// Numpy broadcasting to `shape` (trailing axes align).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 2.0], &[2]);
    /// assert_eq!(x.broadcast_to(&[2, 2]).to_vec::<f64>(), vec![1.0, 2.0, 1.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn broadcast_to(&self, shape: &[usize]) -> Tensor {
        let own = self.shape();
        if own == shape {
            return self.clone();
        }
        if own.len() > shape.len() {
            panic!("broadcast_to: cannot broadcast {:?} to the lower-rank {shape:?}", own);
        }
        let off = shape.len() - own.len();
        for (i, &d) in own.iter().enumerate() {
            if d != 1 && d != shape[off + i] {
                panic!("broadcast_to: cannot broadcast {own:?} to {shape:?}");
            }
        }
        bind(Prim::BroadcastInDim { shape: shape.to_vec(), dims: (off..shape.len()).collect() }, &[self])
    }

    /// XLA-style broadcast: operand axis `i` becomes output axis `dims[i]`.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 2.0], &[2]);
    /// assert_eq!(x.broadcast_in_dim(&[2, 3], &[0]).to_vec::<f64>(), vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn broadcast_in_dim(&self, shape: &[usize], dims: &[usize]) -> Tensor {
        if self.shape() == shape && dims.iter().enumerate().all(|(i, &d)| i == d) {
            return self.clone();
        }
        bind(Prim::BroadcastInDim { shape: shape.to_vec(), dims: dims.to_vec() }, &[self])
    }

    /// Permutes axes: output axis `i` is input axis `perm[i]` (negative allowed).
    ///
    /// ```
    /// use cotangent::{DType, Tensor};
    /// assert_eq!(Tensor::zeros(&[2, 3, 4], DType::F32).permute(&[2, 0, 1]).shape(), vec![4, 2, 3]);
    /// ```
    #[track_caller]
    pub fn permute(&self, perm: &[isize]) -> Tensor {
        let r = self.rank();
        let perm = axes_in_order("permute", perm, r);
        if perm.iter().enumerate().all(|(i, &p)| i == p) && perm.len() == r {
            return self.clone();
        }
        bind(Prim::Transpose { perm }, &[self])
    }

    /// Reverses the axis order (the matrix transpose for rank 2).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    /// assert_eq!(x.t().to_vec::<f64>(), vec![1.0, 3.0, 2.0, 4.0]);
    /// ```
    #[track_caller]
    pub fn t(&self) -> Tensor {
        let perm: Vec<isize> = (0..self.rank() as isize).rev().collect();
        self.permute(&perm)
    }

    /// Swaps two axes.
    ///
    /// ```
    /// use cotangent::{DType, Tensor};
    /// assert_eq!(Tensor::zeros(&[2, 3, 4], DType::F32).swap_axes(0, -1).shape(), vec![4, 3, 2]);
    /// ```
    #[track_caller]
    pub fn swap_axes(&self, a: isize, b: isize) -> Tensor {
        let r = self.rank();
        let (a, b) = (axis_of("swap_axes", a, r), axis_of("swap_axes", b, r));
        let mut perm: Vec<isize> = (0..r as isize).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Moves axis `from` to position `to`, keeping the order of the others.
    ///
    /// ```
    /// use cotangent::{DType, Tensor};
    /// assert_eq!(Tensor::zeros(&[2, 3, 4], DType::F32).moveaxis(0, -1).shape(), vec![3, 4, 2]);
    /// ```
    #[track_caller]
    pub fn moveaxis(&self, from: isize, to: isize) -> Tensor {
        let r = self.rank();
        let (from, to) = (axis_of("moveaxis", from, r), axis_of("moveaxis", to, r));
        let mut perm: Vec<isize> = (0..r as isize).filter(|&a| a as usize != from).collect();
        perm.insert(to, from as isize);
        self.permute(&perm)
    }

    /// Inserts an axis of extent 1 at `axis` (negative counts from the end of the result).
    ///
    /// ```
    /// use cotangent::{DType, Tensor};
    /// assert_eq!(Tensor::zeros(&[2, 3], DType::F32).expand_dims(-1).shape(), vec![2, 3, 1]);
    /// ```
    #[track_caller]
    pub fn expand_dims(&self, axis: isize) -> Tensor {
        let mut shape = self.shape();
        let a = axis_of("expand_dims", axis, shape.len() + 1);
        shape.insert(a, 1);
        self.reshape_to(&shape)
    }

    /// Removes the given axes, which must have extent 1; with no axes, removes every extent-1 axis.
    ///
    /// ```
    /// use cotangent::{DType, Tensor};
    /// assert_eq!(Tensor::zeros(&[1, 3, 1], DType::F32).squeeze(&[]).shape(), vec![3]);
    /// assert_eq!(Tensor::zeros(&[1, 3, 1], DType::F32).squeeze(&[0]).shape(), vec![3, 1]);
    /// ```
    #[track_caller]
    pub fn squeeze(&self, axes: &[isize]) -> Tensor {
        let shape = self.shape();
        let drop: Vec<usize> = if axes.is_empty() {
            (0..shape.len()).filter(|&i| shape[i] == 1).collect()
        } else {
            axes_of("squeeze", axes, shape.len())
        };
        for &a in &drop {
            if shape[a] != 1 {
                panic!("squeeze: axis {a} of {} has extent {}, not 1", self.ty(), shape[a]);
            }
        }
        let new: Vec<usize> = (0..shape.len()).filter(|i| !drop.contains(i)).map(|i| shape[i]).collect();
        self.reshape_to(&new)
    }

    /// Converts the element type (`as` semantics; to bool: non-zero is true).
    ///
    /// ```
    /// use cotangent::{DType, Tensor};
    /// assert_eq!(Tensor::scalar(2.7).cast(DType::I32).item::<i32>(), 2);
    /// ```
    #[track_caller]
    pub fn cast(&self, dtype: DType) -> Tensor {
        if self.dtype() == dtype {
            return self.clone();
        }
        bind(Prim::Convert { dtype }, &[self])
    }

    /// Strided slice on every axis: `start..stop` step `stride` (static, in range).
    ///
    /// ```
    /// use cotangent::{DType, Tensor};
    /// let x = Tensor::arange(0.0, 6.0, 1.0, DType::F64);
    /// assert_eq!(x.slice(&[1], &[6], &[2]).to_vec::<f64>(), vec![1.0, 3.0, 5.0]);
    /// ```
    #[track_caller]
    pub fn slice(&self, start: &[usize], stop: &[usize], stride: &[usize]) -> Tensor {
        let shape = self.shape();
        if start == vec![0; shape.len()].as_slice() && stop == shape.as_slice() && stride.iter().all(|&s| s == 1) {
            return self.clone();
        }
        bind(Prim::Slice { start: start.to_vec(), stop: stop.to_vec(), stride: stride.to_vec() }, &[self])
    }

    /// Python-style slice of one axis: negative `start`/`stop` count from the end and are clamped.
    ///
    /// ```
    /// use cotangent::{DType, Tensor};
    /// let x = Tensor::arange(0.0, 5.0, 1.0, DType::F64);
    /// assert_eq!(x.slice_axis(0, 1, -1, 1).to_vec::<f64>(), vec![1.0, 2.0, 3.0]);
    /// ```
    #[track_caller]
    pub fn slice_axis(&self, axis: isize, start: isize, stop: isize, step: usize) -> Tensor {
        let shape = self.shape();
        let a = axis_of("slice_axis", axis, shape.len());
        let n = shape[a] as isize;
        let clamp = |i: isize| if i < 0 { (i + n).max(0) } else { i.min(n) } as usize;
        let (s, e) = (clamp(start), clamp(stop));
        let mut lo = vec![0; shape.len()];
        let mut hi = shape.clone();
        let mut st = vec![1; shape.len()];
        lo[a] = s;
        hi[a] = e.max(s);
        st[a] = step;
        self.slice(&lo, &hi, &st)
    }

    /// Element `index` of axis 0, with that axis removed (negative counts from the end).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    /// assert_eq!(x.index(-1).to_vec::<f64>(), vec![3.0, 4.0]);
    /// ```
    #[track_caller]
    pub fn index(&self, index: isize) -> Tensor {
        let Some(&n) = self.shape().first() else { panic!("index: cannot index a 0-d tensor") };
        let i = if index < 0 { index + n as isize } else { index };
        if i < 0 || i >= n as isize {
            panic!("index: index {index} is out of range for axis 0 (extent {n}) of {}", self.ty());
        }
        self.slice_axis(0, i, i + 1, 1).squeeze(&[0])
    }

    /// Pads with `value`: `low`/`high` per axis (negative crops), `interior` between elements.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 2.0], &[2]);
    /// assert_eq!(x.pad(&[1], &[-1], &[1], 0.0).to_vec::<f64>(), vec![0.0, 1.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn pad(&self, low: &[i64], high: &[i64], interior: &[usize], value: f64) -> Tensor {
        bind(
            Prim::Pad { low: low.to_vec(), high: high.to_vec(), interior: interior.to_vec() },
            &[self, &self.scalar_like(value)],
        )
    }

    /// Pads with a tensor-valued (0-d, possibly traced) padding value.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0], &[1]);
    /// assert_eq!(x.pad_with(&[1], &[0], &[0], &Tensor::scalar(9.0)).to_vec::<f64>(), vec![9.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn pad_with(&self, low: &[i64], high: &[i64], interior: &[usize], value: &Tensor) -> Tensor {
        bind(Prim::Pad { low: low.to_vec(), high: high.to_vec(), interior: interior.to_vec() }, &[self, value])
    }

    /// Reverses the order of elements along the given axes.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]);
    /// assert_eq!(x.flip(&[0]).to_vec::<f64>(), vec![3.0, 2.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn flip(&self, axes: &[isize]) -> Tensor {
        let axes = axes_of("flip", axes, self.rank());
        if axes.is_empty() {
            return self.clone();
        }
        bind(Prim::Rev { axes }, &[self])
    }

    /// Splits axis `axis` into pieces of the given sizes (which must add up to its extent).
    ///
    /// ```
    /// use cotangent::{DType, Tensor};
    /// let parts = Tensor::arange(0.0, 5.0, 1.0, DType::F64).split(&[2, 3], 0);
    /// assert_eq!(parts[1].to_vec::<f64>(), vec![2.0, 3.0, 4.0]);
    /// ```
    #[track_caller]
    pub fn split(&self, sizes: &[usize], axis: isize) -> Vec<Tensor> {
        let shape = self.shape();
        let a = axis_of("split", axis, shape.len());
        if sizes.iter().sum::<usize>() != shape[a] {
            panic!("split: sizes {sizes:?} do not add up to extent {} of axis {a} of {}", shape[a], self.ty());
        }
        let mut start = 0;
        sizes
            .iter()
            .map(|&n| {
                let piece = self.slice_axis(a as isize, start as isize, (start + n) as isize, 1);
                start += n;
                piece
            })
            .collect()
    }

    #[track_caller]
    fn cumulative(&self, op: CumOp, axis: isize, reverse: bool) -> Tensor {
        let a = axis_of(op.name(), axis, self.rank());
        bind(Prim::Cumulative { op, axis: a, reverse }, &[self])
    }

    /// Running sum along `axis`.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]);
    /// assert_eq!(x.cumsum(0).to_vec::<f64>(), vec![1.0, 3.0, 6.0]);
    /// ```
    #[track_caller]
    pub fn cumsum(&self, axis: isize) -> Tensor {
        self.cumulative(CumOp::Sum, axis, false)
    }

    /// Running product along `axis`.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]);
    /// assert_eq!(x.cumprod(0).to_vec::<f64>(), vec![1.0, 2.0, 6.0]);
    /// ```
    #[track_caller]
    pub fn cumprod(&self, axis: isize) -> Tensor {
        self.cumulative(CumOp::Prod, axis, false)
    }

    /// Running maximum along `axis`.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 3.0, 2.0], &[3]);
    /// assert_eq!(x.cummax(0).to_vec::<f64>(), vec![1.0, 3.0, 3.0]);
    /// ```
    #[track_caller]
    pub fn cummax(&self, axis: isize) -> Tensor {
        self.cumulative(CumOp::Max, axis, false)
    }

    /// Running minimum along `axis`.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![3.0, 1.0, 2.0], &[3]);
    /// assert_eq!(x.cummin(0).to_vec::<f64>(), vec![3.0, 1.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn cummin(&self, axis: isize) -> Tensor {
        self.cumulative(CumOp::Min, axis, false)
    }
}

/// Joins tensors of equal rank along an existing axis.
///
/// ```
/// use cotangent::{concatenate, Tensor};
/// let a = Tensor::from_vec(vec![1.0], &[1]);
/// let b = Tensor::from_vec(vec![2.0, 3.0], &[2]);
/// assert_eq!(concatenate(&[a, b], 0).to_vec::<f64>(), vec![1.0, 2.0, 3.0]);
/// ```
#[track_caller]
pub fn concatenate(tensors: &[Tensor], axis: isize) -> Tensor {
    let Some(first) = tensors.first() else { panic!("concatenate: needs at least one tensor") };
    let a = axis_of("concatenate", axis, first.rank());
    if tensors.len() == 1 {
        return first.clone();
    }
    let refs: Vec<&Tensor> = tensors.iter().collect();
    bind(Prim::Concatenate { axis: a }, &refs)
}

/// Stacks tensors of equal shape along a new axis.
///
/// ```
/// use cotangent::{stack, Tensor};
/// let a = Tensor::from_vec(vec![1.0, 2.0], &[2]);
/// let b = Tensor::from_vec(vec![3.0, 4.0], &[2]);
/// assert_eq!(stack(&[a, b], 1).to_vec::<f64>(), vec![1.0, 3.0, 2.0, 4.0]);
/// ```
#[track_caller]
pub fn stack(tensors: &[Tensor], axis: isize) -> Tensor {
    let Some(first) = tensors.first() else { panic!("stack: needs at least one tensor") };
    let shape = first.shape();
    if let Some(bad) = tensors.iter().find(|t| t.shape() != shape) {
        panic!("stack: shapes differ: {:?} vs {:?}", shape, bad.shape());
    }
    let a = axis_of("stack", axis, shape.len() + 1) as isize;
    let expanded: Vec<Tensor> = tensors.iter().map(|t| t.expand_dims(a)).collect();
    concatenate(&expanded, a)
}
