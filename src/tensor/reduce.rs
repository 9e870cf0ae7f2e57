//! Reductions: sum, max, min, prod, argmax, argmin, and the stable composites
//! mean, var, std, logsumexp and norm.

use super::elementwise::where_;
use super::structure::{axes_of, axis_of};
use crate::ops::{ArgOp, Prim, ReduceOp};
use crate::trace::bind;
use crate::Tensor;

impl Tensor {
    #[track_caller]
    fn reduce(&self, op: ReduceOp, axes: &[isize], keepdims: bool) -> Tensor {
        let axes = axes_of(op.name(), axes, self.rank());
        if axes.is_empty() {
            return self.clone();
        }
        let out = bind(Prim::Reduce { op, axes: axes.clone() }, &[self]);
        if keepdims {
            out.reshape_to(&kept_shape(&self.shape(), &axes))
        } else {
            out
        }
    }

    /// Sum over `axes` (negative allowed); `keepdims` leaves them with extent 1.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    /// assert_eq!(x.sum(&[-1], false).to_vec::<f64>(), vec![3.0, 7.0]);
    /// assert_eq!(x.sum(&[0], true).shape(), vec![1, 2]);
    /// ```
    #[track_caller]
    pub fn sum(&self, axes: &[isize], keepdims: bool) -> Tensor {
        self.reduce(ReduceOp::Sum, axes, keepdims)
    }

    /// Sum of every element (0-d).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::from_vec(vec![1.0, 2.0], &[2]).sum_all().item::<f64>(), 3.0);
    /// ```
    #[track_caller]
    pub fn sum_all(&self) -> Tensor {
        self.sum(&all_axes(self), false)
    }

    /// Maximum over `axes`; the derivative is split equally between tied maxima.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 5.0, 3.0, 4.0], &[2, 2]);
    /// assert_eq!(x.max(&[1], false).to_vec::<f64>(), vec![5.0, 4.0]);
    /// ```
    #[track_caller]
    pub fn max(&self, axes: &[isize], keepdims: bool) -> Tensor {
        self.reduce(ReduceOp::Max, axes, keepdims)
    }

    /// Minimum over `axes`; the derivative is split equally between tied minima.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 5.0, 3.0, 4.0], &[2, 2]);
    /// assert_eq!(x.min(&[0], false).to_vec::<f64>(), vec![1.0, 4.0]);
    /// ```
    #[track_caller]
    pub fn min(&self, axes: &[isize], keepdims: bool) -> Tensor {
        self.reduce(ReduceOp::Min, axes, keepdims)
    }

    /// Product over `axes`.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    /// assert_eq!(x.prod(&[0, 1], false).item::<f64>(), 24.0);
    /// ```
    #[track_caller]
    pub fn prod(&self, axes: &[isize], keepdims: bool) -> Tensor {
        self.reduce(ReduceOp::Prod, axes, keepdims)
    }

    #[track_caller]
    fn arg(&self, op: ArgOp, axis: isize, keepdims: bool) -> Tensor {
        let a = axis_of(op.name(), axis, self.rank());
        let out = bind(Prim::Arg { op, axis: a }, &[self]);
        if keepdims {
            out.expand_dims(a as isize)
        } else {
            out
        }
    }

    /// Index (i64) of the first maximum along `axis`.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 5.0, 5.0], &[3]);
    /// assert_eq!(x.argmax(0, false).item::<i64>(), 1);
    /// ```
    #[track_caller]
    pub fn argmax(&self, axis: isize, keepdims: bool) -> Tensor {
        self.arg(ArgOp::Max, axis, keepdims)
    }

    /// Index (i64) of the first minimum along `axis`.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![3.0, 1.0, 1.0], &[3]);
    /// assert_eq!(x.argmin(0, false).item::<i64>(), 1);
    /// ```
    #[track_caller]
    pub fn argmin(&self, axis: isize, keepdims: bool) -> Tensor {
        self.arg(ArgOp::Min, axis, keepdims)
    }

    /// Mean over `axes`. Integers and bools are averaged in f64 (like numpy).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::from_vec(vec![1.0, 2.0, 6.0], &[3]).mean(&[0], false).item::<f64>(), 3.0);
    /// ```
    #[track_caller]
    pub fn mean(&self, axes: &[isize], keepdims: bool) -> Tensor {
        let count = count_over("mean", self, axes);
        self.float_or_f64().sum(axes, keepdims) / count as f64
    }

    /// Mean of every element.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::from_vec(vec![1.0, 3.0], &[2]).mean_all().item::<f64>(), 2.0);
    /// ```
    #[track_caller]
    pub fn mean_all(&self) -> Tensor {
        self.mean(&all_axes(self), false)
    }

    /// Variance over `axes` with `ddof` delta degrees of freedom (two-pass, stable).
    /// Integers and bools give f64.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[4]);
    /// assert_eq!(x.var(&[0], 0, false).item::<f64>(), 1.25);
    /// assert_eq!(x.var(&[0], 1, false).item::<f64>(), 5.0 / 3.0);
    /// ```
    #[track_caller]
    pub fn var(&self, axes: &[isize], ddof: usize, keepdims: bool) -> Tensor {
        let count = count_over("var", self, axes);
        let x = self.float_or_f64();
        let centered = &x - x.mean(axes, true);
        centered.square().sum(axes, keepdims) / (count as f64 - ddof as f64)
    }

    /// Standard deviation over `axes` (square root of [`Tensor::var`]).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 3.0], &[2]);
    /// assert_eq!(x.std(&[0], 0, false).item::<f64>(), 1.0);
    /// ```
    #[track_caller]
    pub fn std(&self, axes: &[isize], ddof: usize, keepdims: bool) -> Tensor {
        axes_of("std", axes, self.rank());
        self.var(axes, ddof, keepdims).sqrt()
    }

    /// `log(sum(exp(x)))` over `axes`, shifted by the maximum so it never overflows.
    /// Integers and bools give f64. The derivative is `softmax(x)` wherever the result is
    /// finite (-inf entries get 0). A slice holding +inf gives +inf with derivative 0 (JAX
    /// gives NaN; the limit, 1 at the +inf entry, would cost a second pass over the slice).
    /// An all -inf slice gives -inf with a NaN derivative (0/0, like JAX). Over one element
    /// it is that element.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1000.0f32, 1000.0], &[2]);
    /// let y = x.logsumexp(&[0], false).item::<f32>();
    /// assert!((y - (1000.0 + 2f32.ln())).abs() < 1e-3);
    /// ```
    #[track_caller]
    pub fn logsumexp(&self, axes: &[isize], keepdims: bool) -> Tensor {
        let x = self.float_or_f64();
        if count_over("logsumexp", self, axes) == 1 {
            return x.drop_reduced("logsumexp", axes, keepdims);
        }
        let (shifted, shift) = x.shift_by_max(axes);
        let out = shifted.exp().sum(axes, true).log() + &shift;
        out.drop_reduced("logsumexp", axes, keepdims)
    }

    /// `(x − shift, shift)` with `shift` the maximum over `axes` (kept with extent 1, no
    /// derivative: the results do not depend on it): the stable form of logsumexp and the
    /// softmaxes. An all -inf slice is shifted by 0, as in JAX, so it stays -inf. In a slice
    /// holding +inf, the +inf entries are shifted to 0 (not inf − inf) and the others to -inf:
    /// the limit where the +inf entries are equal and dominate. Their shifted values are
    /// constants there, so derivatives reach only the finite entries. (The derivative of a
    /// +inf entry could reach a result only through a shift that carries one, which costs
    /// another reduction over the slice in every gradient: measured 1.4× to 2×.)
    #[track_caller]
    pub(super) fn shift_by_max(&self, axes: &[isize]) -> (Tensor, Tensor) {
        let m = self.max(axes, true);
        let shift = where_(&m.eq(f64::NEG_INFINITY), &m.scalar_like(0.0), &m).stop_gradient();
        let shifted = where_(&self.eq(f64::INFINITY), &self.scalar_like(0.0), &(self - &shift));
        (shifted, shift)
    }

    /// Euclidean (L2) norm over `axes`, scaled by the largest magnitude so it never overflows.
    /// Integers and bools give f64.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![3e200, 4e200], &[2]);
    /// let n = x.norm(&[0], false).item::<f64>();
    /// assert!((n / 5e200 - 1.0).abs() < 1e-15);
    /// ```
    #[track_caller]
    pub fn norm(&self, axes: &[isize], keepdims: bool) -> Tensor {
        axes_of("norm", axes, self.rank());
        let x = self.float_or_f64();
        let scale = x.abs().max(axes, true).stop_gradient();
        // Scale by 1 where the largest magnitude is 0, inf or NaN (inf/inf would give NaN).
        let usable = scale.gt(0.0).logical_and(&scale.is_finite());
        let scale = where_(&usable, &scale, &scale.scalar_like(1.0));
        let out = (&x / &scale).square().sum(axes, true).sqrt() * &scale;
        out.drop_reduced("norm", axes, keepdims)
    }

    /// `self` unchanged if float, else converted to f64.
    #[track_caller]
    fn float_or_f64(&self) -> Tensor {
        if self.dtype().is_float() {
            self.clone()
        } else {
            self.cast(crate::DType::F64)
        }
    }

    /// Removes the reduced `axes` (kept with extent 1 in `self`) unless `keepdims`.
    #[track_caller]
    fn drop_reduced(&self, op: &str, axes: &[isize], keepdims: bool) -> Tensor {
        if keepdims {
            return self.clone();
        }
        let axes = axes_of(op, axes, self.rank());
        let shape: Vec<usize> =
            self.shape().iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect();
        self.reshape_to(&shape)
    }
}

/// Whole-tensor forms of every reduction: `x.r_all(..)` is `x.r(all axes, .., false)`, and
/// works on a 0-d tensor too (where it is the element itself, or a one-element statistic),
/// like `jnp.r(x)` with JAX's default `axis=None`.
impl Tensor {
    /// Maximum of every element (0-d).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 5.0, 3.0, 4.0], &[2, 2]);
    /// assert_eq!(x.max_all().item::<f64>(), 5.0);
    /// assert_eq!(Tensor::scalar(2.0).max_all().item::<f64>(), 2.0);
    /// ```
    #[track_caller]
    pub fn max_all(&self) -> Tensor {
        self.max(&all_axes(self), false)
    }

    /// Minimum of every element (0-d).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 5.0, 3.0, 4.0], &[2, 2]);
    /// assert_eq!(x.min_all().item::<f64>(), 1.0);
    /// ```
    #[track_caller]
    pub fn min_all(&self) -> Tensor {
        self.min(&all_axes(self), false)
    }

    /// Product of every element (0-d).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    /// assert_eq!(x.prod_all().item::<f64>(), 24.0);
    /// ```
    #[track_caller]
    pub fn prod_all(&self) -> Tensor {
        self.prod(&all_axes(self), false)
    }

    /// Variance of every element with `ddof` delta degrees of freedom (see [`Tensor::var`]).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    /// assert_eq!(x.var_all(0).item::<f64>(), 1.25);
    /// ```
    #[track_caller]
    pub fn var_all(&self, ddof: usize) -> Tensor {
        self.var(&all_axes(self), ddof, false)
    }

    /// Standard deviation of every element (see [`Tensor::std`]).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 3.0, 1.0, 3.0], &[2, 2]);
    /// assert_eq!(x.std_all(0).item::<f64>(), 1.0);
    /// ```
    #[track_caller]
    pub fn std_all(&self, ddof: usize) -> Tensor {
        self.std(&all_axes(self), ddof, false)
    }

    /// `log(sum(exp(x)))` over every element (see [`Tensor::logsumexp`]).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![0.0f32; 4], &[2, 2]);
    /// assert!((x.logsumexp_all().item::<f32>() - 4f32.ln()).abs() < 1e-6);
    /// assert_eq!(Tensor::scalar(3.0).logsumexp_all().item::<f64>(), 3.0);
    /// ```
    #[track_caller]
    pub fn logsumexp_all(&self) -> Tensor {
        self.logsumexp(&all_axes(self), false)
    }

    /// Euclidean norm of every element, i.e. the Frobenius norm of a matrix (see [`Tensor::norm`]).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 2.0, 2.0, 4.0], &[2, 2]);
    /// assert_eq!(x.norm_all().item::<f64>(), 5.0);
    /// ```
    #[track_caller]
    pub fn norm_all(&self) -> Tensor {
        self.norm(&all_axes(self), false)
    }

    /// Index (i64, 0-d) of the first maximum in row-major order (JAX's `argmax` with no axis).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 5.0, 7.0, 7.0], &[2, 2]);
    /// assert_eq!(x.argmax_all().item::<i64>(), 2);
    /// assert_eq!(Tensor::scalar(1.0).argmax_all().item::<i64>(), 0);
    /// ```
    #[track_caller]
    pub fn argmax_all(&self) -> Tensor {
        self.flatten().argmax(0, false)
    }

    /// Index (i64, 0-d) of the first minimum in row-major order.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 0.0, 7.0, 0.0], &[2, 2]);
    /// assert_eq!(x.argmin_all().item::<i64>(), 1);
    /// ```
    #[track_caller]
    pub fn argmin_all(&self) -> Tensor {
        self.flatten().argmin(0, false)
    }

    /// True (bool) where any element over `axes` is non-zero; false over an empty slice.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![0.0, 1.0, 0.0, 0.0], &[2, 2]);
    /// assert_eq!(x.any(&[1], false).to_vec::<bool>(), vec![true, false]);
    /// ```
    #[track_caller]
    pub fn any(&self, axes: &[isize], keepdims: bool) -> Tensor {
        axes_of("any", axes, self.rank());
        self.ne(0.0).cast(crate::DType::I64).sum(axes, keepdims).gt(0i64)
    }

    /// True (bool) where every element over `axes` is non-zero; true over an empty slice.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![true, true, false, true], &[2, 2]);
    /// assert_eq!(x.all(&[1], false).to_vec::<bool>(), vec![true, false]);
    /// ```
    #[track_caller]
    pub fn all(&self, axes: &[isize], keepdims: bool) -> Tensor {
        axes_of("all", axes, self.rank());
        self.eq(0.0).cast(crate::DType::I64).sum(axes, keepdims).eq(0i64)
    }

    /// True (bool, 0-d) when any element is non-zero.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert!(Tensor::from_vec(vec![0, 0, 3], &[3]).any_all().item::<bool>());
    /// assert!(!Tensor::scalar(false).any_all().item::<bool>());
    /// ```
    #[track_caller]
    pub fn any_all(&self) -> Tensor {
        self.any(&all_axes(self), false)
    }

    /// True (bool, 0-d) when every element is non-zero.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, f64::NAN], &[2]);
    /// assert!(x.all_all().item::<bool>()); // NaN is non-zero, as in numpy
    /// ```
    #[track_caller]
    pub fn all_all(&self) -> Tensor {
        self.all(&all_axes(self), false)
    }

    /// Number (i64) of non-zero elements over `axes`.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![0.0, 1.0, 0.0, 2.0], &[2, 2]);
    /// assert_eq!(x.count_nonzero(&[0], false).to_vec::<i64>(), vec![0, 2]);
    /// ```
    #[track_caller]
    pub fn count_nonzero(&self, axes: &[isize], keepdims: bool) -> Tensor {
        axes_of("count_nonzero", axes, self.rank());
        self.ne(0.0).cast(crate::DType::I64).sum(axes, keepdims)
    }

    /// Number (i64, 0-d) of non-zero elements.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::from_vec(vec![0, 4, 5], &[3]).count_nonzero_all().item::<i64>(), 2);
    /// ```
    #[track_caller]
    pub fn count_nonzero_all(&self) -> Tensor {
        self.count_nonzero(&all_axes(self), false)
    }

    /// Sum over `axes`, treating NaN as 0. The derivative at a NaN entry is 0.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, f64::NAN, 2.0], &[3]);
    /// assert_eq!(x.nansum(&[0], false).item::<f64>(), 3.0);
    /// ```
    #[track_caller]
    pub fn nansum(&self, axes: &[isize], keepdims: bool) -> Tensor {
        axes_of("nansum", axes, self.rank());
        where_(&self.ne(self), &self.scalar_like(0.0), self).sum(axes, keepdims)
    }

    /// Sum of every element, treating NaN as 0.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::from_vec(vec![f64::NAN, 2.0], &[2]).nansum_all().item::<f64>(), 2.0);
    /// ```
    #[track_caller]
    pub fn nansum_all(&self) -> Tensor {
        self.nansum(&all_axes(self), false)
    }

    /// Mean over `axes` of the elements that are not NaN (NaN where all are). Integers and
    /// bools give f64.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, f64::NAN, f64::NAN, f64::NAN], &[2, 2]);
    /// let m = x.nanmean(&[1], false).to_vec::<f64>();
    /// assert_eq!(m[0], 1.0);
    /// assert!(m[1].is_nan());
    /// ```
    #[track_caller]
    pub fn nanmean(&self, axes: &[isize], keepdims: bool) -> Tensor {
        axes_of("nanmean", axes, self.rank());
        let x = self.float_or_f64();
        let count = x.eq(&x).cast(x.dtype()).sum(axes, keepdims);
        x.nansum(axes, keepdims) / count
    }

    /// Mean of the elements that are not NaN.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::from_vec(vec![f64::NAN, 2.0, 4.0], &[3]).nanmean_all().item::<f64>(), 3.0);
    /// ```
    #[track_caller]
    pub fn nanmean_all(&self) -> Tensor {
        self.nanmean(&all_axes(self), false)
    }

    /// Largest minus smallest element over `axes` (numpy's `ptp`).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 5.0, 3.0, 4.0], &[2, 2]);
    /// assert_eq!(x.ptp(&[1], false).to_vec::<f64>(), vec![4.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn ptp(&self, axes: &[isize], keepdims: bool) -> Tensor {
        self.max(axes, keepdims) - self.min(axes, keepdims)
    }

    /// Largest minus smallest element.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert_eq!(Tensor::from_vec(vec![1.0, 5.0, 3.0], &[3]).ptp_all().item::<f64>(), 4.0);
    /// ```
    #[track_caller]
    pub fn ptp_all(&self) -> Tensor {
        self.ptp(&all_axes(self), false)
    }
}

fn all_axes(t: &Tensor) -> Vec<isize> {
    (0..t.rank() as isize).collect()
}

#[track_caller]
fn count_over(op: &str, t: &Tensor, axes: &[isize]) -> usize {
    let shape = t.shape();
    axes_of(op, axes, shape.len()).iter().map(|&a| shape[a]).product()
}

/// `shape` with every reduced axis set to 1.
pub(crate) fn kept_shape(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    shape.iter().enumerate().map(|(i, &d)| if axes.contains(&i) { 1 } else { d }).collect()
}
