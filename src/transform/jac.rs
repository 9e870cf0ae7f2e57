//! Jacobians and Hessians of tensor functions, built from jvp, vjp and vmap.

use super::jvp::jvp_at;
use super::site::Site;
use super::vjp::{grad_at, vjp_at};
use super::vmap::vmap_at;
use crate::Tensor;

/// The identity basis for a tensor of shape `shape`: `[n, ...shape]` with `n = numel(shape)`.
fn basis(like: &Tensor) -> Tensor {
    let n = like.numel();
    let mut shape = vec![n];
    shape.extend(like.shape());
    Tensor::eye(n, like.dtype()).reshape_to(&shape)
}

/// Forward-mode Jacobian: for `f: [in...] -> [out...]`, a tensor of shape `[out..., in...]`.
/// One jvp per input element, vectorised with [`vmap`](super::vmap).
///
/// The input and output must be float tensors: an integer or bool one panics with a
/// message naming `jacfwd` and the line that called it.
///
/// ```
/// use cotangent::{jacfwd, Tensor};
/// let j = jacfwd(|x: &Tensor| x * x)(&Tensor::from_vec(vec![1.0, 2.0], &[2]));
/// assert_eq!(j.to_vec::<f64>(), vec![2.0, 0.0, 0.0, 4.0]);
/// ```
#[track_caller]
pub fn jacfwd(f: impl Fn(&Tensor) -> Tensor) -> impl Fn(&Tensor) -> Tensor {
    jacfwd_at(Site::here("jacfwd"), f)
}

/// [`jacfwd`] for the transformation at `site` (the one errors name).
fn jacfwd_at(site: Site, f: impl Fn(&Tensor) -> Tensor) -> impl Fn(&Tensor) -> Tensor {
    super::jit(move |x: &Tensor| {
        site.require_float_leaves(x);
        let push = |t: &Tensor| jvp_at(site, &f, x, t).1;
        let cols = vmap_at(site, push)(&basis(x)); // [n_in, out...]
        let mut out_ty = cols.ty();
        out_ty.shape.remove(0);
        site.require_float_output(&out_ty);
        let in_shape = x.shape();
        let out_shape = out_ty.shape;
        let m: usize = out_shape.iter().product();
        let j = cols.reshape_to(&[x.numel(), m]).t();
        j.reshape_to(&[out_shape, in_shape].concat())
    })
}

/// Reverse-mode Jacobian: for `f: [in...] -> [out...]`, a tensor of shape `[out..., in...]`.
/// One vjp per output element, vectorised with [`vmap`](super::vmap).
///
/// The input and output must be float tensors: an integer or bool one panics with a
/// message naming `jacrev` and the line that called it.
///
/// ```
/// use cotangent::{jacrev, Tensor};
/// let j = jacrev(|x: &Tensor| x.sum_all() * x)(&Tensor::from_vec(vec![1.0, 2.0], &[2]));
/// assert_eq!(j.to_vec::<f64>(), vec![4.0, 1.0, 2.0, 5.0]);
/// ```
#[track_caller]
pub fn jacrev(f: impl Fn(&Tensor) -> Tensor) -> impl Fn(&Tensor) -> Tensor {
    let site = Site::here("jacrev");
    super::jit(move |x: &Tensor| {
        site.require_float_leaves(x);
        let (y, pb) = vjp_at(site, &f, x);
        site.require_float_output(&y.ty());
        let rows = vmap_at(site, |ct: &Tensor| pb.call(ct))(&basis(&y)); // [n_out, in...]
        rows.reshape_to(&[y.shape(), x.shape()].concat())
    })
}

/// The Hessian of a scalar function, forward-over-reverse (`jacfwd(grad(f))`): shape `[in..., in...]`.
///
/// Misuse (an integer input, a function that does not return a 0-d float tensor) panics
/// with a message naming `hessian` and the line that called it.
///
/// ```
/// use cotangent::{hessian, Tensor};
/// let rosen = |v: &Tensor| {
///     let (x, y) = (v.index(0), v.index(1));
///     (1.0 - &x).square() + (y - x.square()).square() * 100.0
/// };
/// let h = hessian(rosen)(&Tensor::from_vec(vec![-1.0, 2.0], &[2]));
/// assert_eq!(h.to_vec::<f64>(), vec![402.0, 400.0, 400.0, 200.0]);
/// ```
#[track_caller]
pub fn hessian(f: impl Fn(&Tensor) -> Tensor) -> impl Fn(&Tensor) -> Tensor {
    let site = Site::here("hessian");
    jacfwd_at(site, grad_at(site, f))
}

/// Hessian-vector product `H(x) v` of a scalar function, forward-over-reverse, without forming `H`.
///
/// ```
/// use cotangent::{hvp, Tensor};
/// let f = |x: &Tensor| x.powf(3.0).sum_all();
/// let x = Tensor::from_vec(vec![1.0, 2.0], &[2]);
/// let v = Tensor::from_vec(vec![1.0, 1.0], &[2]);
/// assert_eq!(hvp(f, &x, &v).to_vec::<f64>(), vec![6.0, 12.0]);
/// ```
#[track_caller]
pub fn hvp(f: impl Fn(&Tensor) -> Tensor, x: &Tensor, v: &Tensor) -> Tensor {
    let site = Site::here("hvp");
    jvp_at(site, grad_at(site, f), x, v).1
}
