//! Indexing methods: take, take_along_axis, one_hot, gather/scatter-add, dynamic slices.

use super::structure::axis_of;
use crate::ops::{BinaryOp, Prim};
use crate::trace::bind;
use crate::{DType, Tensor};

#[track_caller]
fn check_indices(op: &str, indices: &Tensor) {
    if !indices.dtype().is_int() {
        panic!("{op}: indices must be i32 or i64, got {}", indices.ty());
    }
}

impl Tensor {
    /// Picks entries along `axis` at integer `indices` of any shape (numpy's `take`;
    /// also index_select and embedding lookup). Out-of-range indices are clamped.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let table = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2]);
    /// let rows = table.take(&Tensor::from_vec(vec![2i64, 0], &[2]), 0);
    /// assert_eq!(rows.to_vec::<f64>(), vec![5.0, 6.0, 1.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn take(&self, indices: &Tensor, axis: isize) -> Tensor {
        check_indices("take", indices);
        let a = axis_of("take", axis, self.rank());
        bind(Prim::Gather { axis: a, batch_dims: 0 }, &[self, indices])
    }

    /// TF-style batched gather: the first `batch_dims` axes of `self` and `indices` are shared,
    /// `out[b, p, i, s] = self[b, p, indices[b, i], s]`.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    /// let i = Tensor::from_vec(vec![1i64, 0], &[2, 1]);
    /// assert_eq!(x.gather(&i, 1, 1).to_vec::<f64>(), vec![2.0, 3.0]);
    /// ```
    #[track_caller]
    pub fn gather(&self, indices: &Tensor, axis: isize, batch_dims: usize) -> Tensor {
        check_indices("gather", indices);
        let a = axis_of("gather", axis, self.rank());
        bind(Prim::Gather { axis: a, batch_dims }, &[self, indices])
    }

    /// Numpy's `take_along_axis`: `indices` has `self`'s shape except along `axis`.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![10.0, 20.0, 30.0, 40.0], &[2, 2]);
    /// let i = Tensor::from_vec(vec![1i64, 0], &[2, 1]);
    /// assert_eq!(x.take_along_axis(&i, 1).to_vec::<f64>(), vec![20.0, 30.0]);
    /// ```
    #[track_caller]
    pub fn take_along_axis(&self, indices: &Tensor, axis: isize) -> Tensor {
        check_indices("take_along_axis", indices);
        let r = self.rank();
        let a = axis_of("take_along_axis", axis, r);
        let (xs, is) = (self.shape(), indices.shape());
        if is.len() != r || (0..r).any(|i| i != a && xs[i] != is[i]) {
            panic!("take_along_axis: indices {:?} must match {:?} except on axis {a}", is, xs);
        }
        let last = r as isize - 1;
        let x = self.moveaxis(a as isize, last);
        let idx = indices.moveaxis(a as isize, last);
        bind(Prim::Gather { axis: r - 1, batch_dims: r - 1 }, &[&x, &idx]).moveaxis(last, a as isize)
    }

    /// Adds `updates` into a copy of `self` at `indices` along `axis` (the transpose of
    /// [`Tensor::take`]); repeated indices accumulate, out-of-range ones are dropped.
    ///
    /// ```
    /// use cotangent::{DType, Tensor};
    /// let z = Tensor::zeros(&[3], DType::F64);
    /// let i = Tensor::from_vec(vec![0i64, 2, 0], &[3]);
    /// let u = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]);
    /// assert_eq!(z.scatter_add(&i, &u, 0).to_vec::<f64>(), vec![4.0, 0.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn scatter_add(&self, indices: &Tensor, updates: &Tensor, axis: isize) -> Tensor {
        check_indices("scatter_add", indices);
        let a = axis_of("scatter_add", axis, self.rank());
        bind(Prim::ScatterAdd { axis: a, batch_dims: 0 }, &[self, indices, updates])
    }

    /// Window of extent `sizes` starting at the (possibly traced) scalar `starts`, clamped into range.
    ///
    /// ```
    /// use cotangent::{DType, Tensor};
    /// let x = Tensor::arange(0.0, 5.0, 1.0, DType::F64);
    /// let w = x.dynamic_slice(&[Tensor::scalar(3i64)], &[2]);
    /// assert_eq!(w.to_vec::<f64>(), vec![3.0, 4.0]);
    /// ```
    #[track_caller]
    pub fn dynamic_slice(&self, starts: &[Tensor], sizes: &[usize]) -> Tensor {
        let mut ins: Vec<&Tensor> = vec![self];
        ins.extend(starts.iter());
        bind(Prim::DynamicSlice { sizes: sizes.to_vec() }, &ins)
    }

    /// A copy of `self` with `update` written at the scalar `starts` (clamped so it fits).
    ///
    /// ```
    /// use cotangent::{DType, Tensor};
    /// let x = Tensor::zeros(&[4], DType::F64);
    /// let y = x.dynamic_update_slice(&Tensor::ones(&[2], DType::F64), &[Tensor::scalar(1i64)]);
    /// assert_eq!(y.to_vec::<f64>(), vec![0.0, 1.0, 1.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn dynamic_update_slice(&self, update: &Tensor, starts: &[Tensor]) -> Tensor {
        let mut ins: Vec<&Tensor> = vec![self, update];
        ins.extend(starts.iter());
        bind(Prim::DynamicUpdateSlice, &ins)
    }

    /// One-hot encoding of integer labels: a new last axis of extent `n`.
    ///
    /// ```
    /// use cotangent::{DType, Tensor};
    /// let y = Tensor::from_vec(vec![2i64, 0], &[2]).one_hot(3, DType::F32);
    /// assert_eq!(y.to_vec::<f32>(), vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn one_hot(&self, n: usize, dtype: DType) -> Tensor {
        check_indices("one_hot", self);
        let mut shape = self.shape();
        shape.push(n);
        let classes = Tensor::iota(&shape, shape.len() - 1, self.dtype());
        let labels = self.expand_dims(-1).broadcast_to(&shape);
        super::elementwise::binary(BinaryOp::Eq, &labels, &classes).cast(dtype)
    }
}
