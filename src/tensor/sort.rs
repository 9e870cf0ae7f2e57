//! Sorting along an axis: `argsort` (a primitive) and `sort` (a gather by it).

use crate::ops::Prim;
use crate::trace::bind;
use crate::Tensor;

impl Tensor {
    /// The stable permutation (`i64`) that sorts the tensor along `axis`.
    ///
    /// Equal elements keep their order; NaN counts as the largest value. It is
    /// integer-valued, so it has no derivative.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![3.0, 1.0, 2.0, 1.0], &[4]);
    /// assert_eq!(x.argsort(0, false).to_vec::<i64>(), vec![1, 3, 2, 0]);
    /// assert_eq!(x.argsort(-1, true).to_vec::<i64>(), vec![0, 2, 1, 3]);
    /// ```
    #[track_caller]
    pub fn argsort(&self, axis: isize, descending: bool) -> Tensor {
        let axis = crate::shape::normalize_axis(axis, self.rank()).unwrap_or_else(|e| panic!("argsort: {e}"));
        bind(Prim::Argsort { axis, descending }, &[self])
    }

    /// The tensor sorted along `axis`. Its derivative moves each cotangent back to the
    /// element's original place (the permutation itself is held fixed).
    ///
    /// ```
    /// use cotangent::{grad, Tensor};
    /// let x = Tensor::from_vec(vec![3.0, 1.0, 2.0], &[3]);
    /// assert_eq!(x.sort(0, false).to_vec::<f64>(), vec![1.0, 2.0, 3.0]);
    /// // d/dx of (sorted[0] * 10 + sorted[2]): 10 to the smallest, 1 to the largest.
    /// let w = Tensor::from_vec(vec![10.0, 0.0, 1.0], &[3]);
    /// let g = grad(|x: &Tensor| (x.sort(0, false) * &w).sum_all())(&x);
    /// assert_eq!(g.to_vec::<f64>(), vec![1.0, 10.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn sort(&self, axis: isize, descending: bool) -> Tensor {
        let idx = self.argsort(axis, descending);
        self.take_along_axis(&idx, axis)
    }
}
