//! Linear algebra on stacks of matrices (leading axes are batch axes), f32 and f64, with
//! derivative and batching rules, so `grad`, `jvp`, `vmap` and `jit` apply to all of it and
//! nest (second order and beyond).
//!
//! Primitives (kernels on [`faer`](https://docs.rs/faer)): [`cholesky`],
//! [`triangular_solve`], [`eigh`], [`lu`], [`qr`], [`svd`], [`det`], [`expm`], [`sqrtm`] /
//! [`inv_sqrtm`]. Built on them: [`solve`], [`inv`], [`slogdet`], [`logdet`], [`lstsq`],
//! [`pinv`], [`matrix_norm`], [`matrix_power`], [`solve_lyapunov`], and the other square-root forms
//! ([`sqrtm_newton_schulz`], [`sqrtm_mtp`], [`sqrtm_mpa`]).
//!
//! # Which square root
//! Measured by `examples/sqrtm_forms.rs` on batches of 32 SPD 64×64 matrices
//! `B Bᵀ/n + δ I` (condition numbers 2 and 137):
//! - [`sqrtm`] / [`inv_sqrtm`] (eigendecomposition): exact to rounding in f32 and f64
//!   whatever the conditioning, and the fastest on CPU here (one `eigh` forward, four
//!   products backward). The default.
//! - [`sqrtm_newton_schulz`]: products only; 10 steps reach rounding for condition ~2, 20
//!   for ~100 (the gradient lags the value: 10 steps leave 7e-4 at condition 137). Worth it
//!   where products are much cheaper than `eigh` (wide hardware), or inside code that must
//!   avoid decompositions; 2–3× slower than `eigh` on CPU.
//! - [`sqrtm_mtp`] / [`sqrtm_mpa`] (Song et al. 2022): products (and one solve for MPA)
//!   forward, the iterative Lyapunov solve backward. They normalise by `‖A‖_F`, which for
//!   n = 64 puts the eigenvalues of `Z = I − A/‖A‖_F` near 0.9, where the series converge
//!   slowly: MPA [8/8] reaches 4e-5 at condition 2 but 1e-2 at condition 137, MTP needs
//!   hundreds of terms. Use them for small or well-conditioned matrices where an
//!   approximate square root suffices (their gradient is the exact-square-root gradient at
//!   the approximate root: errors of the same order).
//!
//! # Degenerate points
//! - **Repeated eigenvalues / singular values** (`eigh`, `svd`): eigenvalue and singular
//!   value tangents are always defined; vector tangents divide by gaps, and gaps below
//!   `n·ε·max|w|` are dropped (treated as "same eigenspace") instead of producing `inf`.
//!   Gradients of functions that do not depend on the basis of a repeated eigenspace — the
//!   sum of eigenvalues, `logdet`, `sqrtm` (whose own rule solves a Lyapunov equation and
//!   never divides by gaps) — stay finite and correct. Basis-dependent functions (an
//!   eigenvector itself at a repeated eigenvalue) have no derivative there; what is returned
//!   is one arbitrary but finite choice.
//! - **Singular matrices**: `solve`/`inv` return `inf`/NaN, as LAPACK does; [`det`]'s
//!   gradient is the transposed adjugate computed from the SVD, finite and exact at singular
//!   matrices; `slogdet` returns `-inf` there, and its gradient `inv(A)ᵀ` is not finite.
//! - **Not positive definite** input to [`cholesky`], [`logdet`], [`sqrtm`], [`inv_sqrtm`]:
//!   eager calls panic naming the operation; inside `jit`/`vmap`/transformations (where
//!   values are not known while tracing) the factor is NaN-filled, like JAX, and so is
//!   everything computed from it.
//! - Symmetric inputs: `cholesky`, `eigh`, `sqrtm` and friends use `(A + Aᵀ)/2`, so their
//!   derivatives are those of functions of symmetric matrices (the gradient is symmetric).

use crate::ops::linalg::{mt, LinalgOp};
use crate::ops::Prim;
use crate::trace::{bind, bind_multi};
use crate::{DType, Tensor};

pub use crate::ops::linalg::TriangularSolve;

fn lin(op: LinalgOp, x: &[&Tensor]) -> Tensor {
    bind(Prim::Linalg(op), x)
}

#[track_caller]
fn check_square(what: &str, a: &Tensor) -> usize {
    let s = a.shape();
    if s.len() < 2 || s[s.len() - 1] != s[s.len() - 2] || !matches!(a.dtype(), DType::F32 | DType::F64) {
        panic!("{what}: expects f32/f64 square matrices [..., n, n], got {}", a.ty());
    }
    s[s.len() - 1]
}

#[track_caller]
fn check_matrix(what: &str, a: &Tensor) {
    if a.rank() < 2 || !matches!(a.dtype(), DType::F32 | DType::F64) {
        panic!("{what}: expects f32/f64 matrices [..., m, n], got {}", a.ty());
    }
}

fn symmetrize(a: &Tensor) -> Tensor {
    (a + mt(a)) * 0.5
}

/// Panics (eager calls only) when `out` has NaN though `input` has none: the input was not
/// positive definite.
#[track_caller]
fn check_spd(what: &str, input: &Tensor, out: &Tensor) {
    if input.is_traced() || out.is_traced() {
        return;
    }
    let has_nan = |t: &Tensor| t.to_f64_vec().iter().any(|v| v.is_nan());
    if has_nan(out) && !has_nan(input) {
        panic!("{what}: the matrix {} is not symmetric positive definite", input.ty());
    }
}

/// Lower Cholesky factor `L` with `A = L Lᵀ` of symmetric positive definite matrices
/// (`A` is symmetrized first).
///
/// # Panics
/// Eagerly, if a matrix is not positive definite (inside transformations: NaN-filled).
///
/// ```
/// use cotangent::{linalg, Tensor};
/// let a = Tensor::from_vec(vec![4.0, 2.0, 2.0, 3.0], &[2, 2]);
/// let l = linalg::cholesky(&a).to_vec::<f64>();
/// assert!(l.iter().zip([2.0, 0.0, 1.0, 2f64.sqrt()]).all(|(x, y)| (x - y).abs() < 1e-15));
/// ```
#[track_caller]
pub fn cholesky(a: &Tensor) -> Tensor {
    check_square("cholesky", a);
    let l = lin(LinalgOp::Cholesky, &[&symmetrize(a)]);
    check_spd("cholesky", a, &l);
    l
}

/// Solves `op(A) X = B` (`opts.left_side`) or `X op(A) = B` with triangular `A`; only
/// `A`'s triangle is read. Batch axes of `a` and `b` broadcast.
///
/// ```
/// use cotangent::{linalg, linalg::TriangularSolve, Tensor};
/// let a = Tensor::from_vec(vec![2.0, 0.0, 1.0, 4.0], &[2, 2]);
/// let b = Tensor::from_vec(vec![2.0, 9.0], &[2, 1]);
/// let opts = TriangularSolve { left_side: true, lower: true, ..Default::default() };
/// assert_eq!(linalg::triangular_solve(&a, &b, opts).to_vec::<f64>(), vec![1.0, 2.0]);
/// ```
#[track_caller]
pub fn triangular_solve(a: &Tensor, b: &Tensor, opts: TriangularSolve) -> Tensor {
    check_square("triangular_solve", a);
    check_matrix("triangular_solve", b);
    let (a, b) = broadcast_batch(a, b);
    lin(LinalgOp::TriangularSolve(opts), &[&a, &b])
}

/// Broadcasts the batch axes (all but the last two) of two stacks of matrices together.
#[track_caller]
fn broadcast_batch(a: &Tensor, b: &Tensor) -> (Tensor, Tensor) {
    let (sa, sb) = (a.shape(), b.shape());
    let (ra, rb) = (sa.len(), sb.len());
    let batch = crate::shape::broadcast_shapes(&sa[..ra - 2], &sb[..rb - 2])
        .unwrap_or_else(|| panic!("linalg: batch axes of {sa:?} and {sb:?} do not broadcast"));
    let full = |t: &Tensor, s: &[usize]| {
        let target = [batch.clone(), s[s.len() - 2..].to_vec()].concat();
        if *s == target[..] {
            t.clone()
        } else {
            t.broadcast_to(&target)
        }
    };
    (full(a, &sa), full(b, &sb))
}

/// Symmetric eigendecomposition `A = V diag(w) Vᵀ` (of `(A + Aᵀ)/2`): `(w, V)` with the
/// eigenvalues ascending and eigenvectors in the columns of `V`.
///
/// ```
/// use cotangent::{linalg, Tensor};
/// let a = Tensor::from_vec(vec![2.0, 1.0, 1.0, 2.0], &[2, 2]);
/// let (w, _v) = linalg::eigh(&a);
/// let w = w.to_vec::<f64>();
/// assert!((w[0] - 1.0).abs() < 1e-12 && (w[1] - 3.0).abs() < 1e-12);
/// ```
#[track_caller]
pub fn eigh(a: &Tensor) -> (Tensor, Tensor) {
    check_square("eigh", a);
    let mut r = bind_multi(Prim::Linalg(LinalgOp::Eigh), &[&symmetrize(a)]);
    let v = r.pop().expect("two results");
    (r.pop().expect("two results"), v)
}

/// LU decomposition with partial pivoting of square matrices: `(lu, pivots, permutation)`
/// where `lu` packs the unit lower `L` (below the diagonal) and `U` (on and above),
/// `pivots` (i64) is LAPACK's swap sequence and `permutation` (i64) satisfies
/// `A[permutation] = L U`.
///
/// ```
/// use cotangent::{linalg, Tensor};
/// let a = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
/// let (lu, pivots, perm) = linalg::lu(&a);
/// assert_eq!(perm.to_vec::<i64>(), vec![1, 0]);
/// assert_eq!(pivots.to_vec::<i64>(), vec![1, 1]);
/// assert_eq!(lu.to_vec::<f64>(), vec![3.0, 4.0, 1.0 / 3.0, 2.0 - 4.0 / 3.0]);
/// ```
#[track_caller]
pub fn lu(a: &Tensor) -> (Tensor, Tensor, Tensor) {
    check_square("lu", a);
    let r = bind_multi(Prim::Linalg(LinalgOp::Lu), &[a]);
    (r[0].clone(), r[1].clone(), r[2].clone())
}

/// QR decomposition `A = Q R`: reduced (`Q` `[m, k]`, `R` `[k, n]`, `k = min(m, n)`) or
/// complete (`Q` `[m, m]`, `R` `[m, n]`). Derivatives need `m ≥ n` (and `m = n` for the
/// complete form).
///
/// ```
/// use cotangent::{linalg, Tensor};
/// let a = Tensor::from_vec(vec![3.0, 1.0, 4.0, 2.0, 0.0, 5.0], &[3, 2]);
/// let (q, r) = linalg::qr(&a, false);
/// assert_eq!((q.shape(), r.shape()), (vec![3, 2], vec![2, 2]));
/// assert!((q.matmul(&r) - &a).abs().max(&[-2, -1], false).item::<f64>() < 1e-12);
/// ```
#[track_caller]
pub fn qr(a: &Tensor, complete: bool) -> (Tensor, Tensor) {
    check_matrix("qr", a);
    let r = bind_multi(Prim::Linalg(LinalgOp::Qr { full: complete }), &[a]);
    (r[0].clone(), r[1].clone())
}

/// Singular value decomposition `A = U diag(s) Vᵀ`: `(U, s, Vᵀ)`, `s` descending; reduced
/// (`full_matrices = false`) or full. Derivatives need the reduced form or square matrices.
///
/// ```
/// use cotangent::{linalg, Tensor};
/// let a = Tensor::from_vec(vec![3.0, 0.0, 0.0, -2.0], &[2, 2]);
/// let (_u, s, _vt) = linalg::svd(&a, false);
/// assert_eq!(s.to_vec::<f64>(), vec![3.0, 2.0]);
/// ```
#[track_caller]
pub fn svd(a: &Tensor, full_matrices: bool) -> (Tensor, Tensor, Tensor) {
    check_matrix("svd", a);
    let r = bind_multi(Prim::Linalg(LinalgOp::Svd { full: full_matrices }), &[a]);
    (r[0].clone(), r[1].clone(), r[2].clone())
}

/// Solves `A X = B` (through LU with partial pivoting). `b` is `[..., n, k]`, or `[..., n]`
/// (one vector per matrix: `b.rank() == a.rank() - 1`); batch axes broadcast.
///
/// ```
/// use cotangent::{linalg, Tensor};
/// let a = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
/// let b = Tensor::from_vec(vec![5.0, 6.0], &[2]);
/// let x = linalg::solve(&a, &b).to_vec::<f64>();
/// assert!((x[0] + 4.0).abs() < 1e-12 && (x[1] - 4.5).abs() < 1e-12);
/// ```
#[track_caller]
pub fn solve(a: &Tensor, b: &Tensor) -> Tensor {
    let n = check_square("solve", a);
    let vector = b.rank() + 1 == a.rank();
    let b = if vector { b.expand_dims(-1) } else { b.clone() };
    check_matrix("solve", &b);
    if b.shape()[b.rank() - 2] != n {
        panic!("solve: {} does not fit the right-hand side {}", a.ty(), b.ty());
    }
    let (lu_, _, perm) = lu(a);
    let (lu_, b) = broadcast_batch(&lu_, &b);
    let perm = perm.broadcast_to(&lu_.shape()[..lu_.rank() - 1]);
    let pb = perm.one_hot(n, a.dtype()).matmul(&b);
    let lower = TriangularSolve { left_side: true, lower: true, transpose_a: false, unit_diagonal: true };
    let upper = TriangularSolve { left_side: true, lower: false, ..Default::default() };
    let x = lin(LinalgOp::TriangularSolve(upper), &[&lu_, &lin(LinalgOp::TriangularSolve(lower), &[&lu_, &pb])]);
    if vector {
        x.squeeze(&[-1])
    } else {
        x
    }
}

/// Inverse of square matrices (`inf`/NaN for singular ones).
///
/// ```
/// use cotangent::{linalg, Tensor};
/// let a = Tensor::from_vec(vec![4.0, 7.0, 2.0, 6.0], &[2, 2]);
/// let i = linalg::inv(&a).to_vec::<f64>();
/// let expect = [0.6, -0.7, -0.2, 0.4];
/// assert!(i.iter().zip(expect).all(|(x, y)| (x - y).abs() < 1e-12));
/// ```
#[track_caller]
pub fn inv(a: &Tensor) -> Tensor {
    let n = check_square("inv", a);
    let eye = Tensor::eye(n, a.dtype()).broadcast_to(&a.shape());
    solve(a, &eye)
}

/// Determinant (`[..., n, n] -> [...]`). Its gradient is the transposed adjugate, finite
/// at singular matrices.
///
/// ```
/// use cotangent::{grad, linalg, Tensor};
/// let a = Tensor::from_vec(vec![1.0, 2.0, 2.0, 4.0], &[2, 2]); // singular
/// assert_eq!(linalg::det(&a).item::<f64>(), 0.0);
/// let g = grad(|a: &Tensor| linalg::det(a))(&a).to_vec::<f64>();
/// let adj_t = [4.0, -2.0, -2.0, 1.0];
/// assert!(g.iter().zip(adj_t).all(|(x, y)| (x - y).abs() < 1e-12));
/// ```
#[track_caller]
pub fn det(a: &Tensor) -> Tensor {
    check_square("det", a);
    lin(LinalgOp::Det, &[a])
}

/// Sign and log of the absolute value of the determinant: `(sign, log|det|)`, through LU.
///
/// ```
/// use cotangent::{linalg, Tensor};
/// let a = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
/// let (sign, logabs) = linalg::slogdet(&a);
/// assert_eq!(sign.item::<f64>(), -1.0);
/// assert!((logabs.item::<f64>() - 2f64.ln()).abs() < 1e-12);
/// ```
#[track_caller]
pub fn slogdet(a: &Tensor) -> (Tensor, Tensor) {
    check_square("slogdet", a);
    let (lu_, pivots, _) = lu(a);
    let d = crate::ops::linalg::diagonal(&lu_);
    let swaps =
        pivots.ne(Tensor::iota(&pivots.shape(), pivots.rank() - 1, DType::I64)).cast(a.dtype()).sum(&[-1], false);
    let parity = (swaps * std::f64::consts::PI).cos().round();
    let sign = d.sign().prod(&[-1], false) * parity;
    (sign.stop_gradient(), d.abs().log().sum(&[-1], false))
}

/// `log det A` of symmetric positive definite matrices, through Cholesky:
/// `2 Σ log Lᵢᵢ`. Its gradient is `A⁻¹` (symmetric).
///
/// # Panics
/// Eagerly, if a matrix is not positive definite (inside transformations: NaN).
///
/// ```
/// use cotangent::{grad, linalg, Tensor};
/// let a = Tensor::from_vec(vec![4.0, 2.0, 2.0, 3.0], &[2, 2]);
/// assert!((linalg::logdet(&a).item::<f64>() - 8f64.ln()).abs() < 1e-12);
/// let g = grad(|a: &Tensor| linalg::logdet(a))(&a).to_vec::<f64>();
/// assert!(g.iter().zip([0.375, -0.25, -0.25, 0.5]).all(|(x, y)| (x - y).abs() < 1e-12));
/// ```
#[track_caller]
pub fn logdet(a: &Tensor) -> Tensor {
    check_square("logdet", a);
    let l = lin(LinalgOp::Cholesky, &[&symmetrize(a)]);
    check_spd("logdet", a, &l);
    crate::ops::linalg::diagonal(&l).log().sum(&[-1], false) * 2.0
}

/// Least-squares solution of `A X ≈ B` for full-rank `A` `[..., m, n]`: through the reduced
/// QR of `A` when `m ≥ n` (minimises `‖A X − B‖`), of `Aᵀ` when `m < n` (the minimum-norm
/// solution). `b` is `[..., m, k]` or `[..., m]`. Rank-deficient problems: use [`pinv`].
///
/// ```
/// use cotangent::{linalg, Tensor};
/// // Fit y = c0 + c1 t through (0, 1), (1, 3), (2, 5).
/// let a = Tensor::from_vec(vec![1.0, 0.0, 1.0, 1.0, 1.0, 2.0], &[3, 2]);
/// let y = Tensor::from_vec(vec![1.0, 3.0, 5.0], &[3]);
/// let c = linalg::lstsq(&a, &y).to_vec::<f64>();
/// assert!((c[0] - 1.0).abs() < 1e-12 && (c[1] - 2.0).abs() < 1e-12);
/// ```
#[track_caller]
pub fn lstsq(a: &Tensor, b: &Tensor) -> Tensor {
    check_matrix("lstsq", a);
    let vector = b.rank() + 1 == a.rank();
    let b = if vector { b.expand_dims(-1) } else { b.clone() };
    let s = a.shape();
    let (m, n) = (s[s.len() - 2], s[s.len() - 1]);
    let upper_t = TriangularSolve { left_side: true, lower: false, transpose_a: true, unit_diagonal: false };
    let upper = TriangularSolve { left_side: true, lower: false, ..Default::default() };
    let x = if m >= n {
        let (q, r) = qr(a, false);
        let (r, qtb) = broadcast_batch(&r, &mt(&q).matmul(&b));
        lin(LinalgOp::TriangularSolve(upper), &[&r, &qtb])
    } else {
        // Aᵀ = Q R: A = Rᵀ Qᵀ, x = Q R⁻ᵀ b.
        let (q, r) = qr(&mt(a), false);
        let (r, b) = broadcast_batch(&r, &b);
        q.matmul(&lin(LinalgOp::TriangularSolve(upper_t), &[&r, &b]))
    };
    if vector {
        x.squeeze(&[-1])
    } else {
        x
    }
}

/// Moore–Penrose pseudo-inverse through the SVD; singular values at most
/// `rcond · max(s)` count as zero (`rcond = None`: `10 · max(m, n) · ε`).
///
/// ```
/// use cotangent::{linalg, Tensor};
/// let a = Tensor::from_vec(vec![1.0, 2.0, 2.0, 4.0], &[2, 2]); // rank 1
/// let p = linalg::pinv(&a, None);
/// let back = a.matmul(&p).matmul(&a);
/// assert!((back - &a).abs().max(&[-2, -1], false).item::<f64>() < 1e-12);
/// ```
#[track_caller]
pub fn pinv(a: &Tensor, rcond: Option<f64>) -> Tensor {
    check_matrix("pinv", a);
    let s = a.shape();
    let (m, n) = (s[s.len() - 2], s[s.len() - 1]);
    let eps = if a.dtype() == DType::F32 { f32::EPSILON as f64 } else { f64::EPSILON };
    let rcond = rcond.unwrap_or(10.0 * m.max(n) as f64 * eps);
    let (u, sv, vh) = svd(a, false);
    let cutoff = sv.max(&[-1], true) * rcond;
    let keep = sv.gt(&cutoff);
    let safe = crate::where_(&keep, &sv, &sv.ones_like());
    let inv_s = crate::where_(&keep, &safe.recip(), &sv.zeros_like());
    (mt(&vh) * inv_s.expand_dims(-2)).matmul(&mt(&u))
}

/// Which matrix norm [`matrix_norm`] computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatrixNorm {
    /// `sqrt(Σ a²)`.
    Frobenius,
    /// Sum of singular values.
    Nuclear,
    /// Largest singular value (the operator 2-norm).
    Spectral,
}

/// Matrix norm over the last two axes.
///
/// ```
/// use cotangent::{linalg, linalg::MatrixNorm, Tensor};
/// let a = Tensor::from_vec(vec![3.0, 0.0, 0.0, -4.0], &[2, 2]);
/// assert_eq!(linalg::matrix_norm(&a, MatrixNorm::Frobenius).item::<f64>(), 5.0);
/// assert!((linalg::matrix_norm(&a, MatrixNorm::Nuclear).item::<f64>() - 7.0).abs() < 1e-12);
/// assert!((linalg::matrix_norm(&a, MatrixNorm::Spectral).item::<f64>() - 4.0).abs() < 1e-12);
/// ```
#[track_caller]
pub fn matrix_norm(a: &Tensor, ord: MatrixNorm) -> Tensor {
    check_matrix("matrix_norm", a);
    match ord {
        MatrixNorm::Frobenius => a.square().sum(&[-2, -1], false).sqrt(),
        MatrixNorm::Nuclear => svd(a, false).1.sum(&[-1], false),
        MatrixNorm::Spectral => svd(a, false).1.slice_axis(-1, 0, 1, 1).squeeze(&[-1]),
    }
}

/// `A^k` for an integer `k` by repeated squaring (`k < 0`: powers of [`inv`]`(A)`; `k = 0`:
/// the identity).
///
/// ```
/// use cotangent::{linalg, Tensor};
/// let a = Tensor::from_vec(vec![1.0, 1.0, 0.0, 1.0], &[2, 2]);
/// assert_eq!(linalg::matrix_power(&a, 5).to_vec::<f64>(), vec![1.0, 5.0, 0.0, 1.0]);
/// assert_eq!(linalg::matrix_power(&a, -2).to_vec::<f64>(), vec![1.0, -2.0, 0.0, 1.0]);
/// ```
#[track_caller]
pub fn matrix_power(a: &Tensor, k: i64) -> Tensor {
    let n = check_square("matrix_power", a);
    let mut base = if k < 0 { inv(a) } else { a.clone() };
    let mut e = k.unsigned_abs();
    let mut acc: Option<Tensor> = None;
    while e > 0 {
        if e & 1 == 1 {
            acc = Some(match acc {
                Some(x) => x.matmul(&base),
                None => base.clone(),
            });
        }
        e >>= 1;
        if e > 0 {
            base = base.matmul(&base);
        }
    }
    acc.unwrap_or_else(|| Tensor::eye(n, a.dtype()).broadcast_to(&a.shape()))
}

/// Matrix exponential: Padé 13 with scaling and squaring (Higham 2005). Its derivative is
/// the Fréchet derivative, the top-right block of `expm([[A, E], [0, A]])`.
///
/// ```
/// use cotangent::{linalg, Tensor};
/// let a = Tensor::from_vec(vec![0.0, 1.0, 0.0, 0.0], &[2, 2]); // nilpotent
/// let e = linalg::expm(&a).to_vec::<f64>();
/// assert!(e.iter().zip([1.0, 1.0, 0.0, 1.0]).all(|(x, y)| (x - y).abs() < 1e-14));
/// ```
#[track_caller]
pub fn expm(a: &Tensor) -> Tensor {
    check_square("expm", a);
    lin(LinalgOp::Expm, &[a])
}

/// Principal square root of symmetric positive definite matrices through the
/// eigendecomposition of `(A + Aᵀ)/2`: exact to rounding, `O(n³)` with a large constant.
/// Its derivative solves the Lyapunov equation `S dS + dS S = dA` in `S`'s eigenbasis
/// (Daleckii–Krein), finite at repeated eigenvalues.
///
/// # Panics
/// Eagerly, if a matrix has a negative eigenvalue (inside transformations: NaN).
///
/// ```
/// use cotangent::{linalg, Tensor};
/// let a = Tensor::from_vec(vec![4.0, 0.0, 0.0, 9.0], &[2, 2]);
/// let s = linalg::sqrtm(&a).to_vec::<f64>();
/// assert!(s.iter().zip([2.0, 0.0, 0.0, 3.0]).all(|(x, y)| (x - y).abs() < 1e-12));
/// ```
#[track_caller]
pub fn sqrtm(a: &Tensor) -> Tensor {
    check_square("sqrtm", a);
    let s = bind_multi(Prim::Linalg(LinalgOp::Sqrtm { inverse: false }), &[&symmetrize(a)]).swap_remove(0);
    check_spd("sqrtm", a, &s);
    s
}

/// Inverse principal square root `A^{-1/2}` of symmetric positive definite matrices, through
/// the eigendecomposition (see [`sqrtm`]).
///
/// ```
/// use cotangent::{linalg, Tensor};
/// let a = Tensor::from_vec(vec![4.0, 0.0, 0.0, 16.0], &[2, 2]);
/// let s = linalg::inv_sqrtm(&a).to_vec::<f64>();
/// assert!(s.iter().zip([0.5, 0.0, 0.0, 0.25]).all(|(x, y)| (x - y).abs() < 1e-12));
/// ```
#[track_caller]
pub fn inv_sqrtm(a: &Tensor) -> Tensor {
    check_square("inv_sqrtm", a);
    let s = bind_multi(Prim::Linalg(LinalgOp::Sqrtm { inverse: true }), &[&symmetrize(a)]).swap_remove(0);
    check_spd("inv_sqrtm", a, &s);
    s
}

/// `(‖A‖_F, A/‖A‖_F, I)`: the normalisation the iterative square roots start from.
fn normalised(a: &Tensor) -> (Tensor, Tensor, Tensor) {
    let n = a.shape()[a.rank() - 1];
    let c = a.square().sum(&[-2, -1], true).sqrt();
    (c.clone(), a / &c, Tensor::eye(n, a.dtype()))
}

/// `(A^{1/2}, A^{-1/2})` by the coupled Newton–Schulz iteration (Higham 2008, (6.35)) on
/// `A/‖A‖_F`: matrix products only (fast on wide hardware, differentiated by unrolling),
/// converging quadratically once close; the error after `iters` steps is set by the
/// spread of eigenvalues `λ_min/‖A‖_F` (about 10–20 steps for condition numbers up to
/// `10³`). For symmetric positive definite matrices.
///
/// ```
/// use cotangent::{linalg, Tensor};
/// let a = Tensor::from_vec(vec![4.0, 1.0, 1.0, 3.0], &[2, 2]);
/// let (s, _) = linalg::sqrtm_newton_schulz(&a, 20);
/// assert!((s.matmul(&s) - &a).abs().max(&[-2, -1], false).item::<f64>() < 1e-10);
/// ```
#[track_caller]
pub fn sqrtm_newton_schulz(a: &Tensor, iters: usize) -> (Tensor, Tensor) {
    check_square("sqrtm_newton_schulz", a);
    let (c, mut y, eye) = normalised(a);
    let mut z = eye.broadcast_to(&a.shape());
    for _ in 0..iters {
        let t = (&eye * 3.0 - z.matmul(&y)) * 0.5;
        y = y.matmul(&t);
        z = t.matmul(&z);
    }
    let rc = c.sqrt();
    (y * &rc, z / &rc)
}

/// Square root (`inverse = false`) or inverse square root of symmetric positive definite
/// matrices by the Matrix Taylor Polynomial of Song et al. 2022: `‖A‖^{±1/2}` times the
/// Taylor series of `(1 - z)^{±1/2}` at `Z = I - A/‖A‖_F`, up to `Z^degree`. The derivative
/// solves the Lyapunov equation `S dS + dS S = dA` by `lyap_iters` Newton–Schulz steps of
/// the matrix sign function (products only). The truncation error is about
/// `(1 - λ_min/‖A‖_F)^degree`: fast and accurate for well-conditioned matrices, slow to
/// converge otherwise (prefer [`sqrtm_mpa`]).
///
/// ```
/// use cotangent::{linalg, Tensor};
/// let a = Tensor::from_vec(vec![4.0, 1.0, 1.0, 3.0], &[2, 2]);
/// let s = linalg::sqrtm_mtp(&a, 40, false, 20);
/// assert!((s.matmul(&s) - &a).abs().max(&[-2, -1], false).item::<f64>() < 1e-8);
/// ```
#[track_caller]
pub fn sqrtm_mtp(a: &Tensor, degree: usize, inverse: bool, lyap_iters: usize) -> Tensor {
    sqrtm_series("sqrtm_mtp", a, false, degree, inverse, lyap_iters)
}

/// Square root (`inverse = false`) or inverse square root of symmetric positive definite
/// matrices by the Matrix Padé Approximant of Song et al. 2022: the `[degree/degree]` Padé
/// approximant of `(1 - z)^{±1/2}` at `Z = I - A/‖A‖_F` (`Q(Z)⁻¹ P(Z)`, one linear solve),
/// times `‖A‖^{±1/2}`. Much faster convergence in the degree than [`sqrtm_mtp`]; the
/// derivative solves the Lyapunov equation iteratively, as there.
///
/// ```
/// use cotangent::{linalg, Tensor};
/// let a = Tensor::from_vec(vec![4.0, 1.0, 1.0, 3.0], &[2, 2]);
/// let s = linalg::sqrtm_mpa(&a, 8, false, 20);
/// assert!((s.matmul(&s) - &a).abs().max(&[-2, -1], false).item::<f64>() < 1e-10);
/// ```
#[track_caller]
pub fn sqrtm_mpa(a: &Tensor, degree: usize, inverse: bool, lyap_iters: usize) -> Tensor {
    sqrtm_series("sqrtm_mpa", a, true, degree, inverse, lyap_iters)
}

#[track_caller]
fn sqrtm_series(what: &str, a: &Tensor, pade: bool, degree: usize, inverse: bool, lyap_iters: usize) -> Tensor {
    check_square(what, a);
    if lyap_iters == 0 {
        panic!("{what}: lyap_iters must be at least 1 (use sqrtm for the exact eigendecomposition form)");
    }
    let op = LinalgOp::SqrtmApprox { pade, degree, inverse, lyap_iters };
    lin(op, &[&symmetrize(a)])
}

/// `X` with `S X + X S = C` (the Lyapunov / Sylvester equation with `S` on both sides) for
/// symmetric positive definite `S`, exactly in `S`'s eigenbasis. Linear in `C`;
/// differentiable in both.
///
/// ```
/// use cotangent::{linalg, Tensor};
/// let s = Tensor::from_vec(vec![2.0, 0.0, 0.0, 3.0], &[2, 2]);
/// let c = Tensor::from_vec(vec![4.0, 5.0, 5.0, 6.0], &[2, 2]);
/// let x = linalg::solve_lyapunov(&s, &c);
/// let back = s.matmul(&x) + x.matmul(&s);
/// assert!((back - &c).abs().max(&[-2, -1], false).item::<f64>() < 1e-12);
/// ```
#[track_caller]
pub fn solve_lyapunov(s: &Tensor, c: &Tensor) -> Tensor {
    check_square("solve_lyapunov", s);
    check_square("solve_lyapunov", c);
    let (s, c) = broadcast_batch(&symmetrize(s), c);
    if s.ty() != c.ty() {
        panic!("solve_lyapunov: {} and {} differ", s.ty(), c.ty());
    }
    lin(LinalgOp::Lyapunov { iters: 0 }, &[&s, &c])
}
