//! Implicit differentiation and differentiable solvers (issue 15).
//!
//! - [`linear_solve`]: a matrix-free solve of `A(p) x = b` (conjugate gradient, BiCGStab,
//!   restarted GMRES, a Neumann series or the dense direct method, chosen by [`Solver`])
//!   that is differentiable in `b` and in the parameters `p` the matrix-vector product depends on: the derivative solves again,
//!   `dx = A⁻¹(db − dA x)`, and reverse mode solves with the transposed operator (derived by
//!   [`linear_transpose`](crate::linear_transpose), or `A` itself when declared symmetric).
//!   The iterations are [`while_loop`](crate::control::while_loop)s, so everything jits and
//!   vmaps; the result comes with a [`SolveInfo`] saying whether it converged.
//! - [`custom_root`] and [`custom_fixed_point`]: make any solver's solution differentiable by
//!   the implicit function theorem (jvp, grad, vmap, jit).
//! - Solvers: [`gradient_descent`] (a `while_loop`, implicitly differentiated through
//!   [`minimize_implicit`]) and [`gradient_descent_unrolled`] (a `fori_loop`, differentiated
//!   by unrolling); [`projected_gradient`] (implicitly: [`projected_gradient_implicit`])
//!   with [`project_box`], [`project_simplex`], [`project_l1_ball`], [`project_l2_ball`];
//!   [`lbfgs`] (strong Wolfe line search); [`newton_cg`] (truncated Newton on
//!   Hessian-vector products; implicitly: [`newton_cg_implicit`]); [`bisection`] and
//!   [`newton_scalar`] for scalar roots; [`fixed_point`] and [`fixed_point_anderson`].
//!
//! Failures are never silent: every solver returns a [`SolveInfo`], and when the primal
//! solver or a derivative's linear solve does not converge the derivatives are NaN.
//! Second derivatives (`hessian`, `grad` of `grad`, `jvp` of `grad`) go through the
//! implicit rules again: a rule's primal solution and its derivative solves are themselves
//! differentiable solves (the transpose of a solve is a solve with the transposed operator,
//! as in JAX's `custom_linear_solve`), to [`DERIVATIVE_ORDERS`] orders
//! ([`linear_solve_to_order`] and [`custom_root_to_order`] choose another). Not supported:
//! forward mode over forward mode (`jvp` of `jvp`), and derivatives with respect to values
//! the functions close over (pass them as `params`/`θ`).
//!
//! ```
//! use cotangent::solvers::{linear_solve, Solver};
//! use cotangent::{grad, Tensor};
//! // A(s) = [[2 + s, 1], [1, 3]] x = b, differentiated in s.
//! let matvec = |s: &Tensor, v: &Tensor| {
//!     let a = Tensor::from_vec(vec![2.0, 1.0, 1.0, 3.0], &[2, 2]);
//!     a.matmul(v) + s * v * Tensor::from_vec(vec![1.0, 0.0], &[2])
//! };
//! let b = Tensor::from_vec(vec![1.0, 2.0], &[2]);
//! let (x, info) = linear_solve(matvec, &Tensor::scalar(0.0), &b, &Solver::cg());
//! assert!(info.converged.item::<bool>());
//! assert!((x.to_vec::<f64>()[0] - 0.2).abs() < 1e-10 && (x.to_vec::<f64>()[1] - 0.6).abs() < 1e-10);
//! // d x0 / d s = -x0 * (A⁻¹ e0)_0 = -0.2 * 0.6
//! let g = grad(|s: &Tensor| linear_solve(matvec, s, &b, &Solver::cg()).0.index(0))(&Tensor::scalar(0.0));
//! assert!((g.item::<f64>() + 0.12).abs() < 1e-10);
//! ```

mod implicit;
mod iterative;
mod line_search;
mod newton;
mod projected;

pub use implicit::*;
pub use iterative::*;
pub use newton::*;
pub use projected::*;
