//! Differential operators from Taylor mode: Laplacians (exact, with d jets or one collapsed
//! jet), Hessian traces, divergences, directional derivatives of any order, randomised
//! estimators of linear differential operators (STDE, Shi et al. 2024) and forward gradients.
//!
//! Built only on the public transformations ([`jet_sparse`], [`jet2_collapsed`], [`jvp`],
//! [`grad`], [`vmap`]) and [`random`](crate::random), so everything here works eagerly and
//! inside [`jit`](crate::jit), [`vmap`], [`grad`] (e.g. a PINN loss differentiated with
//! respect to the network's weights).
//!
//! Functions of a point `x` take `x` of any shape and treat it as a vector of its `n`
//! elements (directions are the `n` unit tensors shaped like `x`), except the STDE
//! operators, which take `x` of shape `[d]`.

mod forward;
mod stde;

pub use forward::{forward_grad, forward_grad_with, ForwardGradient, Guess};
pub use stde::{hutchinson_laplacian, DiffOperator, Distribution};

use crate::{grad, jet2_collapsed, jet_sparse, jvp, vmap, Tensor};

/// The `n` unit directions of `x`'s shape, stacked: `[n, x.shape...]`.
pub(crate) fn unit_directions(x: &Tensor) -> Tensor {
    let n = x.numel();
    let mut shape = vec![n];
    shape.extend(x.shape());
    Tensor::eye(n, x.dtype()).reshape_to(&shape)
}

/// The Laplacian `Σᵢ ∂²f/∂xᵢ²` at `x`, exact, by collapsed Taylor mode ([`jet2_collapsed`]):
/// first-order coefficients for all `n` directions at once, the second-order coefficient once,
/// as their sum (Dangel et al., 2024). For a function with several outputs, the Laplacian of
/// each.
///
/// ```
/// use cotangent::{diffop::laplacian, Tensor};
/// // Δ‖x‖⁴ = 4(n + 2)‖x‖².
/// let x = Tensor::from_vec((1..=10).map(|i| i as f64 / 10.0).collect(), &[10]);
/// let lap = laplacian(|x: &Tensor| x.square().sum_all().square(), &x);
/// assert!((lap.item::<f64>() - 184.8).abs() < 1e-10);
/// ```
pub fn laplacian(f: impl Fn(&Tensor) -> Tensor, x: &Tensor) -> Tensor {
    jet2_collapsed(f, x, &unit_directions(x)).1
}

/// The Laplacian by `n` second-order jets, one per unit direction (mapped with [`vmap`]),
/// summed: the same value as [`laplacian`], which moves the sum inside instead.
///
/// ```
/// use cotangent::{diffop::{laplacian, laplacian_jets}, Tensor};
/// let x = Tensor::from_vec(vec![0.3, -0.2, 0.9], &[3]);
/// let f = |x: &Tensor| x.sin().prod(&[0], false);
/// assert!((&laplacian_jets(f, &x) - &laplacian(f, &x)).abs().item::<f64>() < 1e-12);
/// ```
pub fn laplacian_jets(f: impl Fn(&Tensor) -> Tensor, x: &Tensor) -> Tensor {
    let per_direction = vmap(|v: &Tensor| jet_sparse(&f, x, &[Some(v), None]).1.swap_remove(1));
    per_direction(&unit_directions(x)).sum(&[0], false)
}

/// The trace of the Hessian of a scalar `f` at `x` by forward-over-reverse: `Σᵢ eᵢᵀ ∇²f eᵢ`,
/// one Hessian-vector product (jvp of the gradient) per unit direction. The textbook way,
/// kept for comparison with [`laplacian`] (which needs no reverse pass).
///
/// ```
/// use cotangent::{diffop::hessian_trace, Tensor};
/// let x = Tensor::from_vec(vec![1.0, 2.0], &[2]);
/// // tr ∇²(x₀² x₁) = 2 x₁ = 4.
/// let tr = hessian_trace(|x: &Tensor| x.index(0).square() * x.index(1), &x);
/// assert!((tr.item::<f64>() - 4.0).abs() < 1e-12);
/// ```
pub fn hessian_trace(f: impl Fn(&Tensor) -> Tensor, x: &Tensor) -> Tensor {
    let g = grad(|x: &Tensor| f(x));
    let per_direction = vmap(|v: &Tensor| (jvp(&g, x, v).1 * v).sum_all());
    per_direction(&unit_directions(x)).sum(&[0], false)
}

/// The divergence `Σᵢ ∂fᵢ/∂xᵢ` of a vector field `f` (output shaped like `x`), by one jvp per
/// unit direction.
///
/// ```
/// use cotangent::{diffop::divergence, Tensor};
/// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]);
/// // div (x‖x‖²) = (n + 2)‖x‖² = 70.
/// let d = divergence(|x: &Tensor| x * x.square().sum_all(), &x);
/// assert!((d.item::<f64>() - 70.0).abs() < 1e-10);
/// ```
pub fn divergence(f: impl Fn(&Tensor) -> Tensor, x: &Tensor) -> Tensor {
    let per_direction = vmap(|v: &Tensor| (jvp(&f, x, v).1 * v).sum_all());
    per_direction(&unit_directions(x)).sum(&[0], false)
}

/// The k-th directional derivative `dᵏ/dtᵏ f(x + t v)` at `t = 0`, from one k-th order jet
/// (`k ≥ 1`).
///
/// ```
/// use cotangent::{diffop::directional, Tensor};
/// let x = Tensor::from_vec(vec![0.1, 0.2], &[2]);
/// let v = Tensor::from_vec(vec![1.0, -1.0], &[2]);
/// // f = exp(a·x): the k-th derivative along v is (a·v)ᵏ exp(a·x).
/// let f = |x: &Tensor| (x * Tensor::from_vec(vec![2.0, 0.5], &[2])).sum_all().exp();
/// let want = 1.5f64.powi(3) * (0.2f64 + 0.1).exp();
/// assert!((directional(f, &x, &v, 3).item::<f64>() - want).abs() < 1e-12);
/// ```
#[track_caller]
pub fn directional(f: impl Fn(&Tensor) -> Tensor, x: &Tensor, v: &Tensor, k: usize) -> Tensor {
    assert!(k >= 1, "directional: the order k must be at least 1, got {k}");
    let mut series: Vec<Option<&Tensor>> = vec![None; k];
    series[0] = Some(v);
    jet_sparse(f, x, &series).1.swap_remove(k - 1)
}
