//! Everyday `jax.numpy` functions that numerical code reaches for, built from primitives
//! (slices, selects, broadcasts, reshapes, sorts), so their derivatives, batching and
//! compilation come from the primitives' rules. `docs/jnp_parity.md` lists which `jnp`
//! functions exist, under which name, and which are left out and why.

use super::elementwise::{where_, AsOperand};
use super::structure::{axis_of, concatenate};
use crate::{DType, Tensor};

impl Tensor {
    /// The diagonal of the last two axes, `offset` above (> 0) or below (< 0) the main one, as
    /// a new last axis (like `jnp.linalg.diagonal`; for a matrix, `jnp.diagonal(x, offset)`).
    /// It is a strided slice, so its derivative scatters back onto the diagonal.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec((0..6).map(|i| i as f64).collect(), &[2, 3]);
    /// assert_eq!(x.diagonal(0).to_vec::<f64>(), vec![0.0, 4.0]);
    /// assert_eq!(x.diagonal(1).to_vec::<f64>(), vec![1.0, 5.0]);
    /// assert_eq!(x.diagonal(-1).to_vec::<f64>(), vec![3.0]);
    /// ```
    #[track_caller]
    pub fn diagonal(&self, offset: isize) -> Tensor {
        let shape = self.shape();
        let r = shape.len();
        if r < 2 {
            panic!("diagonal: needs at least 2 axes, got {}", self.ty());
        }
        let (m, n) = (shape[r - 2] as isize, shape[r - 1] as isize);
        let (start, len) =
            if offset >= 0 { (offset, m.min(n - offset).max(0)) } else { (-offset * n, (m + offset).min(n).max(0)) };
        let mut flat_shape = shape[..r - 2].to_vec();
        flat_shape.push((m * n) as usize);
        let flat = self.reshape_to(&flat_shape);
        if len == 0 {
            return flat.slice_axis(-1, 0, 0, 1);
        }
        flat.slice_axis(-1, start, start + (len - 1) * (n + 1) + 1, (n + 1) as usize)
    }

    /// Sum of the main diagonal of the last two axes (`jnp.trace` of a matrix; batched over
    /// leading axes).
    ///
    /// ```
    /// use cotangent::{grad, Tensor};
    /// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    /// assert_eq!(x.trace().item::<f64>(), 5.0);
    /// // d trace(X) / dX = I
    /// assert_eq!(grad(|x: &Tensor| x.trace())(&x).to_vec::<f64>(), vec![1.0, 0.0, 0.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn trace(&self) -> Tensor {
        if self.rank() < 2 {
            panic!("trace: needs at least 2 axes, got {}", self.ty());
        }
        self.diagonal(0).sum(&[-1], false)
    }

    /// The lower triangle of the last two axes: entries with `col − row ≤ k` kept, the rest 0
    /// (`jnp.tril(x, k)`).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::ones(&[2, 2], cotangent::DType::F32);
    /// assert_eq!(x.tril(0).to_vec::<f32>(), vec![1.0, 0.0, 1.0, 1.0]);
    /// assert_eq!(x.tril(-1).to_vec::<f32>(), vec![0.0, 0.0, 1.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn tril(&self, k: isize) -> Tensor {
        let offset = col_minus_row("tril", self);
        where_(&offset.le(k as i64), self, 0.0)
    }

    /// The upper triangle of the last two axes: entries with `col − row ≥ k` kept, the rest 0
    /// (`jnp.triu(x, k)`).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::ones(&[2, 2], cotangent::DType::F64);
    /// assert_eq!(x.triu(0).to_vec::<f64>(), vec![1.0, 1.0, 0.0, 1.0]);
    /// assert_eq!(x.triu(1).to_vec::<f64>(), vec![0.0, 1.0, 0.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn triu(&self, k: isize) -> Tensor {
        let offset = col_minus_row("triu", self);
        where_(&offset.ge(k as i64), self, 0.0)
    }

    /// Like `jnp.diag`: a vector becomes the square matrix with it on the diagonal; a matrix
    /// gives its main diagonal.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let v = Tensor::from_vec(vec![1.0, 2.0], &[2]);
    /// let m = v.diag();
    /// assert_eq!(m.to_vec::<f64>(), vec![1.0, 0.0, 0.0, 2.0]);
    /// assert_eq!(m.diag().to_vec::<f64>(), vec![1.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn diag(&self) -> Tensor {
        match self.rank() {
            1 => {
                let n = self.shape()[0];
                where_(&Tensor::eye(n, DType::Bool), self, 0.0)
            }
            2 => self.diagonal(0),
            _ => panic!("diag: needs a vector or a matrix, got {}", self.ty()),
        }
    }

    /// Elements shifted by `shift` places along `axis`, wrapping around (`jnp.roll`).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[4]);
    /// assert_eq!(x.roll(1, 0).to_vec::<f64>(), vec![4.0, 1.0, 2.0, 3.0]);
    /// assert_eq!(x.roll(-1, -1).to_vec::<f64>(), vec![2.0, 3.0, 4.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn roll(&self, shift: isize, axis: isize) -> Tensor {
        let a = axis_of("roll", axis, self.rank());
        let n = self.shape()[a] as isize;
        if n == 0 {
            return self.clone();
        }
        let s = shift.rem_euclid(n);
        if s == 0 {
            return self.clone();
        }
        let a = a as isize;
        concatenate(&[self.slice_axis(a, n - s, n, 1), self.slice_axis(a, 0, n - s, 1)], a)
    }

    /// The tensor repeated `reps[i]` times along each axis (`jnp.tile`). When `reps` is longer
    /// than the rank, the tensor gets leading axes of extent 1 first; when shorter, `reps` is
    /// padded with leading 1s.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1, 2], &[2]);
    /// assert_eq!(x.tile(&[2]).to_vec::<i32>(), vec![1, 2, 1, 2]);
    /// assert_eq!(x.tile(&[2, 1]).shape(), vec![2, 2]);
    /// ```
    #[track_caller]
    pub fn tile(&self, reps: &[usize]) -> Tensor {
        let shape = self.shape();
        let r = shape.len().max(reps.len());
        let mut dims = vec![1; r - shape.len()];
        dims.extend(&shape);
        let mut reps_full = vec![1; r - reps.len()];
        reps_full.extend(reps);
        // [d0, d1, ...] -> [r0, d0, r1, d1, ...] -> [r0·d0, r1·d1, ...].
        let wide: Vec<usize> = (0..r).flat_map(|i| [reps_full[i], dims[i]]).collect();
        let keep: Vec<usize> = (0..r).map(|i| 2 * i + 1).collect();
        let out: Vec<usize> = (0..r).map(|i| reps_full[i] * dims[i]).collect();
        self.reshape_to(&dims).broadcast_in_dim(&wide, &keep).reshape_to(&out)
    }

    /// Each element repeated `repeats` times along `axis` (`jnp.repeat` with a constant count).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    /// assert_eq!(x.repeat(2, 1).to_vec::<f64>(), vec![1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0]);
    /// ```
    #[track_caller]
    pub fn repeat(&self, repeats: usize, axis: isize) -> Tensor {
        let shape = self.shape();
        let a = axis_of("repeat", axis, shape.len());
        let mut wide = shape.clone();
        wide.insert(a + 1, repeats);
        let keep: Vec<usize> = (0..shape.len()).map(|i| if i <= a { i } else { i + 1 }).collect();
        let mut out = shape.clone();
        out[a] *= repeats;
        self.broadcast_in_dim(&wide, &keep).reshape_to(&out)
    }

    /// The `n`-th forward difference along `axis`: `x[1:] − x[:-1]`, `n` times (`jnp.diff`).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 4.0, 9.0, 16.0], &[4]);
    /// assert_eq!(x.diff(1, 0).to_vec::<f64>(), vec![3.0, 5.0, 7.0]);
    /// assert_eq!(x.diff(2, -1).to_vec::<f64>(), vec![2.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn diff(&self, n: usize, axis: isize) -> Tensor {
        let a = axis_of("diff", axis, self.rank()) as isize;
        let mut x = self.clone();
        for _ in 0..n {
            let len = x.shape()[a as usize] as isize;
            if len == 0 {
                break;
            }
            x = x.slice_axis(a, 1, len, 1) - x.slice_axis(a, 0, len - 1, 1);
        }
        x
    }

    /// The median along `axis`: the middle of the sorted values, or the mean of the two
    /// middle ones for an even count (`jnp.median`). Integers and bools give f64. NaN sorts
    /// last, so a slice holding NaN does not always give NaN (unlike numpy).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![3.0, 1.0, 2.0, 4.0, 9.0, 5.0], &[2, 3]);
    /// assert_eq!(x.median(1, false).to_vec::<f64>(), vec![2.0, 5.0]);
    /// assert_eq!(x.median(0, false).to_vec::<f64>(), vec![3.5, 5.0, 3.5]);
    /// ```
    #[track_caller]
    pub fn median(&self, axis: isize, keepdims: bool) -> Tensor {
        let a = axis_of("median", axis, self.rank()) as isize;
        let n = self.shape()[a as usize] as isize;
        if n == 0 {
            panic!("median: axis {axis} of {} is empty", self.ty());
        }
        let x = if self.dtype().is_float() { self.clone() } else { self.cast(DType::F64) };
        let s = x.sort(a, false);
        let lo = (n - 1) / 2;
        let hi = n / 2;
        let mid = s.slice_axis(a, lo, hi + 1, 1).mean(&[a], true);
        if keepdims {
            mid
        } else {
            mid.squeeze(&[a])
        }
    }

    /// The median of every element (`jnp.median(x)`); see [`Tensor::median`].
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![4.0, 1.0, 3.0, 2.0], &[2, 2]);
    /// assert_eq!(x.median_all().item::<f64>(), 2.5);
    /// assert_eq!(Tensor::scalar(7i32).median_all().item::<f64>(), 7.0);
    /// ```
    #[track_caller]
    pub fn median_all(&self) -> Tensor {
        self.flatten().median(0, false)
    }

    /// Base-2 logarithm.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert!((Tensor::scalar(8.0).log2().item::<f64>() - 3.0).abs() < 1e-15);
    /// ```
    #[track_caller]
    pub fn log2(&self) -> Tensor {
        self.log() * std::f64::consts::LOG2_E
    }

    /// Base-10 logarithm.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert!((Tensor::scalar(1000.0).log10().item::<f64>() - 3.0).abs() < 1e-15);
    /// ```
    #[track_caller]
    pub fn log10(&self) -> Tensor {
        self.log() * std::f64::consts::LOG10_E
    }

    /// `2^x`.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// assert!((Tensor::scalar(10.0).exp2().item::<f64>() - 1024.0).abs() < 1e-12);
    /// ```
    #[track_caller]
    pub fn exp2(&self) -> Tensor {
        (self * std::f64::consts::LN_2).exp()
    }

    /// True (bool) where the element is NaN; false everywhere for integers and bools.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, f64::NAN], &[2]);
    /// assert_eq!(x.isnan().to_vec::<bool>(), vec![false, true]);
    /// ```
    #[track_caller]
    pub fn isnan(&self) -> Tensor {
        self.ne(self)
    }

    /// True (bool) where the element is +inf or -inf; false everywhere for integers and bools.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![f64::NEG_INFINITY, 0.0, f64::NAN], &[3]);
    /// assert_eq!(x.isinf().to_vec::<bool>(), vec![true, false, false]);
    /// ```
    #[track_caller]
    pub fn isinf(&self) -> Tensor {
        if !self.dtype().is_float() {
            return self.ne(self);
        }
        self.abs().eq(f64::INFINITY)
    }

    /// NaN replaced by `nan`, +inf by `posinf` and -inf by `neginf` (`jnp.nan_to_num` with
    /// explicit values). The derivative is 1 at the kept entries and 0 at the replaced ones.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![f64::NAN, f64::INFINITY, -1.0], &[3]);
    /// assert_eq!(x.nan_to_num(0.0, 1e9, -1e9).to_vec::<f64>(), vec![0.0, 1e9, -1.0]);
    /// ```
    #[track_caller]
    pub fn nan_to_num(&self, nan: f64, posinf: f64, neginf: f64) -> Tensor {
        if !self.dtype().is_float() {
            return self.clone();
        }
        let x = where_(&self.isnan(), nan, self);
        let x = where_(&self.eq(f64::INFINITY), posinf, &x);
        where_(&self.eq(f64::NEG_INFINITY), neginf, &x)
    }

    /// `log(e^self + e^other)`, computed without overflow (`jnp.logaddexp`); two equal
    /// infinities give that infinity.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::scalar(1000.0f32);
    /// assert!((x.logaddexp(1000.0).item::<f32>() - (1000.0 + 2f32.ln())).abs() < 1e-3);
    /// ```
    #[track_caller]
    pub fn logaddexp(&self, other: impl AsOperand) -> Tensor {
        let other = other.into_operand(self);
        let amax = self.maximum(&other);
        let delta = self - &other;
        let finite = amax + (-delta.abs()).exp().log1p();
        // inf − inf is NaN: there both are the same infinity (or one is NaN), and x + y is the answer.
        where_(&delta.isnan(), &(self + &other), &finite)
    }

    /// True (bool) where `|self − other| ≤ atol + rtol·|other|`, or both are the same infinity
    /// (`jnp.isclose` without `equal_nan`).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 1.1, f64::INFINITY], &[3]);
    /// let y = Tensor::from_vec(vec![1.0 + 1e-9, 1.0, f64::INFINITY], &[3]);
    /// assert_eq!(x.isclose(&y, 1e-5, 1e-8).to_vec::<bool>(), vec![true, false, true]);
    /// ```
    #[track_caller]
    pub fn isclose(&self, other: impl AsOperand, rtol: f64, atol: f64) -> Tensor {
        let other = other.into_operand(self);
        let near = (self - &other).abs().le(&(other.abs() * rtol + atol));
        // An infinity is close only to itself (inf − inf would be within an infinite tolerance).
        let near = if self.dtype().is_float() {
            near.logical_and(&self.is_finite()).logical_and(&other.is_finite())
        } else {
            near
        };
        near.logical_or(&self.eq(&other))
    }

    /// True when every element is close to `other` (see [`Tensor::isclose`]). Reads the
    /// values, so it panics inside a transformation.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 2.0], &[2]);
    /// assert!(x.allclose(&(&x + 1e-12), 1e-9, 0.0));
    /// assert!(!x.allclose(3.0, 1e-9, 0.0));
    /// ```
    #[track_caller]
    pub fn allclose(&self, other: impl AsOperand, rtol: f64, atol: f64) -> bool {
        self.isclose(other, rtol, atol).all_all().item::<bool>()
    }

    /// A tensor of `value` with the dtype and shape of `self` (concrete, like [`Tensor::zeros_like`]).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1i64, 2], &[2]);
    /// assert_eq!(x.full_like(7.0).to_vec::<i64>(), vec![7, 7]);
    /// ```
    pub fn full_like(&self, value: f64) -> Tensor {
        Self::full(&self.shape(), value, self.dtype())
    }
}

/// `col − row` (i64) over the last two axes of `x`: the diagonal index of each entry.
#[track_caller]
fn col_minus_row(op: &str, x: &Tensor) -> Tensor {
    let shape = x.shape();
    let r = shape.len();
    if r < 2 {
        panic!("{op}: needs at least 2 axes, got {}", x.ty());
    }
    let mn = [shape[r - 2], shape[r - 1]];
    Tensor::iota(&mn, 1, DType::I64) - Tensor::iota(&mn, 0, DType::I64)
}
