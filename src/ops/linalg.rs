//! Linear algebra primitives: type rules, jvp rules, transpose rules and batching rules.
//!
//! Every primitive works on stacks of matrices: leading axes are batch axes, so batching
//! is binding the same primitive on operands with one more leading axis. Decompositions with
//! several results (`eigh`, `lu`, `qr`, `svd`) are tuple-valued primitives read through
//! projections ([`crate::trace::bind_multi`]); their kernels run in
//! [`crate::ops::run_structured`].
//!
//! Derivative rules are written with [`Tensor`] operations — products, transposes, masks
//! and the linear primitives `triangular_solve`, `lyapunov` and `expm_frechet`, which have
//! transpose rules of their own — so they run eagerly, record under tracing, and
//! differentiate again (second order and beyond).
//!
//! Degenerate points (see also [`crate::linalg`]):
//! - `eigh` and `svd`: the eigenvector (singular vector) tangents divide by differences
//!   of eigenvalues (squared singular values). Differences below `n·ε·max|w|` are treated
//!   as zero gaps and their terms dropped (not `inf`): functions that do not depend on the
//!   basis of a repeated eigenspace (sums of eigenvalues, `logdet`, traces of matrix
//!   functions) keep finite, correct gradients; gradients of basis-dependent functions at
//!   repeated eigenvalues are not defined, and what this rule returns for them is one
//!   arbitrary choice.
//! - `qr`'s jvp needs `m ≥ n` (and, for the complete form, `m = n`), as JAX's; `svd`'s
//!   needs the reduced form or a square matrix.

use super::rules::{add_tangents, broadcast_all, LinArg};
use super::Prim;
use crate::trace::{bind, bind_multi};
use crate::{where_, DType, Tensor, TensorType};

/// The variants of a triangular solve: `op(A) X = B` (left side) or `X op(A) = B` (right),
/// `op(A)` = `A` or `Aᵀ`, with `A` lower or upper triangular (the other triangle is not
/// read) and its diagonal taken as ones when `unit_diagonal`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TriangularSolve {
    /// Solve `op(A) X = B` (true) or `X op(A) = B` (false).
    pub left_side: bool,
    /// `A` is lower triangular (else upper).
    pub lower: bool,
    /// Use `Aᵀ` in place of `A`.
    pub transpose_a: bool,
    /// Take `A`'s diagonal as ones (it is not read).
    pub unit_diagonal: bool,
}

/// One linear algebra primitive (the parameter of [`Prim::Linalg`]).
#[derive(Clone, Debug, PartialEq)]
pub enum LinalgOp {
    /// Lower Cholesky factor `L` of a symmetric positive definite `A = L Lᵀ` (only the lower
    /// triangle is read); NaN-filled for a matrix that is not positive definite.
    Cholesky,
    /// Solve with a triangular matrix: operands `A` `[..., n, n]`, `B` `[..., n, k]` (left)
    /// or `[..., k, n]` (right) with the same batch axes.
    TriangularSolve(TriangularSolve),
    /// Symmetric eigendecomposition (lower triangle read): `(w [..., n], V [..., n, n])`
    /// with `A = V diag(w) Vᵀ`, eigenvalues ascending.
    Eigh,
    /// LU with partial pivoting of a square matrix: `(lu, pivots, permutation)`, `lu` holding
    /// the unit lower `L` below the diagonal and `U` on and above it, `pivots` (i64) the
    /// LAPACK swap sequence, `permutation` (i64) the rows: `A[permutation] = L U`.
    Lu,
    /// QR: `(Q [..., m, k], R [..., k, n])`, `k = m` when `full` else `min(m, n)`.
    Qr {
        /// Complete (`Q` square) rather than reduced.
        full: bool,
    },
    /// SVD: `(U, s, Vᵀ)` with `s` descending, `U` `[..., m, m or k]`, `Vᵀ` `[..., n or k, n]`.
    Svd {
        /// Full (`U`, `V` square) rather than reduced.
        full: bool,
    },
    /// Determinant (via LU): `[..., n, n] -> [...]`.
    Det,
    /// Matrix exponential (Padé 13, scaling and squaring).
    Expm,
    /// Fréchet derivative of `expm` at `A` (operand 0) in direction `E` (operand 1, linear).
    ExpmFrechet,
    /// Principal square root (or inverse square root) of a symmetric positive definite
    /// matrix through its eigendecomposition `A = V diag(w) Vᵀ`: the tuple `(S, s, V)` with
    /// `s = w^{±1/2}` and `S = V diag(s) Vᵀ` (the factors are results so that the derivative
    /// rule, Daleckii–Krein in `V`'s basis, needs no second decomposition); NaN where an
    /// eigenvalue is negative.
    Sqrtm {
        /// `A^{-1/2}` rather than `A^{1/2}`.
        inverse: bool,
    },
    /// `X` with `S X + X S = C` for a symmetric positive definite `S` (operand 0); linear in
    /// `C` (operand 1). `iters = 0`: exactly, in `S`'s eigenbasis; else by that many
    /// Newton–Schulz steps of the matrix sign function of `[[S, C], [0, -S]]` (matrix
    /// products only; Song et al. 2022).
    Lyapunov {
        /// Sign-iteration steps, or 0 for the eigendecomposition.
        iters: usize,
    },
    /// Square root (or inverse square root) of a symmetric positive definite matrix by a
    /// truncated series in `Z = I - A/‖A‖_F`: the Matrix Taylor Polynomial (`pade = false`,
    /// terms up to `Z^degree`) or the Matrix Padé Approximant (`[degree/degree]`), as in
    /// Song et al. 2022, "Fast Differentiable Matrix Square Root". Its derivative solves the
    /// Lyapunov equation iteratively (`lyapunov` with `lyap_iters` sign steps).
    SqrtmApprox {
        /// Padé approximant rather than Taylor polynomial.
        pade: bool,
        /// Polynomial degree (of numerator and denominator for Padé).
        degree: usize,
        /// `A^{-1/2}` rather than `A^{1/2}`.
        inverse: bool,
        /// Sign-iteration steps of the Lyapunov solve in the derivative.
        lyap_iters: usize,
    },
}

impl LinalgOp {
    /// The primitive's name in dumps and messages.
    pub fn name(&self) -> &'static str {
        match self {
            LinalgOp::Cholesky => "cholesky",
            LinalgOp::TriangularSolve(_) => "triangular_solve",
            LinalgOp::Eigh => "eigh",
            LinalgOp::Lu => "lu",
            LinalgOp::Qr { .. } => "qr",
            LinalgOp::Svd { .. } => "svd",
            LinalgOp::Det => "det",
            LinalgOp::Expm => "expm",
            LinalgOp::ExpmFrechet => "expm_frechet",
            LinalgOp::Sqrtm { inverse: false } => "sqrtm",
            LinalgOp::Sqrtm { inverse: true } => "inv_sqrtm",
            LinalgOp::Lyapunov { .. } => "lyapunov",
            LinalgOp::SqrtmApprox { pade: false, .. } => "sqrtm_mtp",
            LinalgOp::SqrtmApprox { pade: true, .. } => "sqrtm_mpa",
        }
    }

    /// Whether the primitive has several results.
    pub fn is_tuple(&self) -> bool {
        matches!(
            self,
            LinalgOp::Eigh | LinalgOp::Lu | LinalgOp::Qr { .. } | LinalgOp::Svd { .. } | LinalgOp::Sqrtm { .. }
        )
    }

    /// Static parameters for dumps (and CSE keys).
    pub fn params(&self) -> Vec<(&'static str, String)> {
        match self {
            LinalgOp::TriangularSolve(o) => vec![
                ("left_side", o.left_side.to_string()),
                ("lower", o.lower.to_string()),
                ("transpose_a", o.transpose_a.to_string()),
                ("unit_diagonal", o.unit_diagonal.to_string()),
            ],
            LinalgOp::Qr { full } | LinalgOp::Svd { full } => vec![("full", full.to_string())],
            LinalgOp::Lyapunov { iters } => vec![("iters", iters.to_string())],
            LinalgOp::SqrtmApprox { degree, inverse, lyap_iters, .. } => vec![
                ("degree", degree.to_string()),
                ("inverse", inverse.to_string()),
                ("lyap_iters", lyap_iters.to_string()),
            ],
            LinalgOp::Sqrtm { .. } => vec![],
            _ => vec![],
        }
    }

    /// The result types for operands of the given types.
    pub fn output_types(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, String> {
        let arity = |k: usize| {
            if inputs.len() == k {
                Ok(())
            } else {
                Err(format!("expects {k} operand(s), got {}", inputs.len()))
            }
        };
        let a = inputs.first().ok_or("expects an operand")?;
        let (batch, m, n) = matrix(a)?;
        let with = |tail: &[usize]| -> Vec<usize> { [batch.clone(), tail.to_vec()].concat() };
        let ty = |shape: Vec<usize>| TensorType::new(a.dtype, shape);
        let square = || {
            if m == n {
                Ok(())
            } else {
                Err(format!("expects square matrices, got {a}"))
            }
        };
        match self {
            LinalgOp::Sqrtm { .. } => {
                arity(1)?;
                square()?;
                Ok(vec![(*a).clone(), ty(with(&[n])), (*a).clone()])
            }
            LinalgOp::Cholesky | LinalgOp::Expm | LinalgOp::SqrtmApprox { .. } => {
                arity(1)?;
                square()?;
                Ok(vec![(*a).clone()])
            }
            LinalgOp::Det => {
                arity(1)?;
                square()?;
                Ok(vec![ty(batch)])
            }
            LinalgOp::Eigh => {
                arity(1)?;
                square()?;
                Ok(vec![ty(with(&[n])), (*a).clone()])
            }
            LinalgOp::Lu => {
                arity(1)?;
                square()?;
                let ints = TensorType::new(DType::I64, with(&[n]));
                Ok(vec![(*a).clone(), ints.clone(), ints])
            }
            LinalgOp::Qr { full } => {
                arity(1)?;
                let k = if *full { m } else { m.min(n) };
                Ok(vec![ty(with(&[m, k])), ty(with(&[k, n]))])
            }
            LinalgOp::Svd { full } => {
                arity(1)?;
                let k = m.min(n);
                let (ku, kv) = if *full { (m, n) } else { (k, k) };
                Ok(vec![ty(with(&[m, ku])), ty(with(&[k])), ty(with(&[kv, n]))])
            }
            LinalgOp::TriangularSolve(o) => {
                arity(2)?;
                square()?;
                let b = inputs[1];
                let (bb, rb, cb) = matrix(b)?;
                if b.dtype != a.dtype || bb != batch {
                    return Err(format!("the matrix {a} and right-hand side {b} differ in dtype or batch axes"));
                }
                let along = if o.left_side { rb } else { cb };
                if along != n {
                    let side = if o.left_side { "left" } else { "right" };
                    return Err(format!("{side}-side solve with {a} does not fit the right-hand side {b}"));
                }
                Ok(vec![b.clone()])
            }
            LinalgOp::Lyapunov { .. } | LinalgOp::ExpmFrechet => {
                arity(2)?;
                square()?;
                if inputs[1] != *a {
                    return Err(format!("operands must have the same type, got {a} and {}", inputs[1]));
                }
                Ok(vec![(*a).clone()])
            }
        }
    }
}

/// `(batch axes, rows, columns)` of a floating-point stack of matrices.
fn matrix(t: &TensorType) -> Result<(Vec<usize>, usize, usize), String> {
    if !matches!(t.dtype, DType::F32 | DType::F64) {
        return Err(format!("expects f32 or f64 matrices, got {t}"));
    }
    let r = t.shape.len();
    if r < 2 {
        return Err(format!("expects matrices (rank ≥ 2), got {t}"));
    }
    Ok((t.shape[..r - 2].to_vec(), t.shape[r - 2], t.shape[r - 1]))
}

// ---------------------------------------------------------------------------------------
// Helpers written with Tensor operations (they record under tracing).

/// Swaps the last two axes.
pub(crate) fn mt(x: &Tensor) -> Tensor {
    x.swap_axes(-1, -2)
}

fn dims2(x: &Tensor) -> (usize, usize) {
    let s = x.shape();
    (s[s.len() - 2], s[s.len() - 1])
}

/// A constant `[m, n]` mask: 1 where `keep(i, j)`, `diag` on the diagonal.
fn mask(m: usize, n: usize, dtype: DType, keep: impl Fn(usize, usize) -> bool, diag: f64) -> Tensor {
    let v: Vec<f64> = (0..m * n)
        .map(|k| {
            let (i, j) = (k / n, k % n);
            if i == j {
                diag
            } else if keep(i, j) {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    Tensor::from_vec(v, &[m, n]).cast(dtype)
}

/// The lower triangle (`lower`) or upper triangle, with the diagonal scaled by `diag`.
pub(crate) fn triangle(x: &Tensor, lower: bool, diag: f64) -> Tensor {
    let (m, n) = dims2(x);
    x * mask(m, n, x.dtype(), |i, j| if lower { i > j } else { i < j }, diag)
}

/// The identity matrix of `x`'s last extent and dtype.
pub(crate) fn eye_like(x: &Tensor) -> Tensor {
    Tensor::eye(dims2(x).1, x.dtype())
}

/// The diagonal of each matrix: `[..., n, n] -> [..., n]`.
pub(crate) fn diagonal(x: &Tensor) -> Tensor {
    (x * eye_like(x)).sum(&[-1], false)
}

/// `1/d` where `|d| > tol`, else 0, without producing `inf` in either branch (so the
/// derivative of the masked-out side stays finite too).
fn masked_inverse(d: &Tensor, tol: &Tensor) -> Tensor {
    let keep = d.abs().gt(tol);
    let safe = where_(&keep, d, &d.ones_like());
    where_(&keep, &safe.recip(), &d.zeros_like())
}

/// `F_ij = 1/(w_j - w_i)` off the diagonal for eigenvalues `w` `[..., n]`, zero where the gap
/// is within `n·ε·max|w|`.
fn gap_inverse(w: &Tensor, squared: bool) -> Tensor {
    let n = *w.shape().last().expect("eigenvalues");
    let (row, col) = (w.expand_dims(-2), w.expand_dims(-1));
    let diff = if squared { (&row + &col) * (&row - &col) } else { &row - &col };
    let eps = if w.dtype() == DType::F32 { f32::EPSILON as f64 } else { f64::EPSILON };
    let top = w.abs().max(&[-1], true).expand_dims(-1);
    let scale = if squared { &top * &top } else { top };
    masked_inverse(&diff, &(scale * (n as f64 * eps)))
}

/// `1/s` where `s ≠ 0`, else 0.
fn safe_recip(s: &Tensor) -> Tensor {
    masked_inverse(s, &s.zeros_like())
}

/// The triangular solve primitive.
#[track_caller]
pub(crate) fn tsolve(a: &Tensor, b: &Tensor, o: TriangularSolve) -> Tensor {
    bind(Prim::Linalg(LinalgOp::TriangularSolve(o)), &[a, b])
}

fn lin(op: LinalgOp, x: &[&Tensor]) -> Tensor {
    bind(Prim::Linalg(op), x)
}

/// `X` with `S X + X S = C` (`iters` sign steps, or exactly for 0).
pub(crate) fn lyapunov(s: &Tensor, c: &Tensor, iters: usize) -> Tensor {
    lin(LinalgOp::Lyapunov { iters }, &[s, c])
}

/// Tangent of `S = A^{1/2}` (or `Y = A^{-1/2}` when `inverse`) from the Lyapunov equation.
fn sqrt_tangent(y: &Tensor, da: &Tensor, inverse: bool, iters: usize) -> Tensor {
    if inverse {
        // Y dY + dY Y = d(A⁻¹) = −Y² dA Y².
        let y2 = y.matmul(y);
        lyapunov(y, &-(y2.matmul(da).matmul(&y2)), iters)
    } else {
        lyapunov(y, da, iters)
    }
}

// ---------------------------------------------------------------------------------------
// jvp rules.

/// Tangent of a single-result primitive's output `y`.
pub(crate) fn jvp(op: &LinalgOp, x: &[&Tensor], t: &[Option<&Tensor>], y: &Tensor) -> Option<Tensor> {
    match op {
        LinalgOp::Cholesky => {
            // dL = L Φ(L⁻¹ dA L⁻ᵀ), Φ = lower triangle with the diagonal halved.
            let da = t[0]?;
            let lower = TriangularSolve { left_side: true, lower: true, ..Default::default() };
            let x1 = tsolve(y, da, lower);
            let x2 = tsolve(
                y,
                &x1,
                TriangularSolve { left_side: false, lower: true, transpose_a: true, unit_diagonal: false },
            );
            Some(y.matmul(&triangle(&x2, true, 0.5)))
        }
        LinalgOp::TriangularSolve(o) => {
            // op(A) X = B: dX = op(A)⁻¹ (dB − op(dA) X); right side: dX = (dB − X op(dA)) op(A)⁻¹.
            let a_term = t[0].map(|da| {
                let tri = triangle(da, o.lower, if o.unit_diagonal { 0.0 } else { 1.0 });
                let op_da = if o.transpose_a { mt(&tri) } else { tri };
                -(if o.left_side { op_da.matmul(y) } else { y.matmul(&op_da) })
            });
            let rhs = add_tangents(t[1].cloned(), a_term)?;
            Some(tsolve(x[0], &rhs, *o))
        }
        LinalgOp::Det => {
            // d det(A) = tr(adj(A) dA), with the adjugate from the SVD: finite at singular A.
            let da = t[0]?;
            let adj = adjugate(x[0]);
            Some((mt(&adj) * da).sum(&[-2, -1], false))
        }
        LinalgOp::Expm => Some(lin(LinalgOp::ExpmFrechet, &[x[0], t[0]?])),
        LinalgOp::ExpmFrechet => {
            let de = t[1].map(|de| lin(LinalgOp::ExpmFrechet, &[x[0], de]));
            let da = t[0].map(|da| {
                // d/dA L(A, E)[F] = the top-right block of L([[A, E], [0, A]], [[F, 0], [0, F]]).
                let n = dims2(x[0]).0;
                let zero = x[0].zeros_like();
                let big_a = block(x[0], x[1], &zero, x[0]);
                let dz = da.zeros_like();
                let big_f = block(da, &dz, &dz, da);
                let l = lin(LinalgOp::ExpmFrechet, &[&big_a, &big_f]);
                l.slice_axis(-2, 0, n as isize, 1).slice_axis(-1, n as isize, 2 * n as isize, 1)
            });
            add_tangents(de, da)
        }
        LinalgOp::SqrtmApprox { inverse, lyap_iters, .. } => Some(sqrt_tangent(y, t[0]?, *inverse, *lyap_iters)),
        LinalgOp::Lyapunov { iters } => {
            // S X + X S = C: S dX + dX S = dC − dS X − X dS.
            let ds = t[0].map(|ds| -(ds.matmul(y) + y.matmul(ds)));
            let rhs = add_tangents(t[1].cloned(), ds)?;
            Some(lyapunov(x[0], &rhs, *iters))
        }
        LinalgOp::Eigh | LinalgOp::Lu | LinalgOp::Qr { .. } | LinalgOp::Svd { .. } | LinalgOp::Sqrtm { .. } => {
            unreachable!("{} goes through jvp_multi", op.name())
        }
    }
}

/// `[[a, b], [c, d]]` over the last two axes.
fn block(a: &Tensor, b: &Tensor, c: &Tensor, d: &Tensor) -> Tensor {
    let top = crate::concatenate(&[a.clone(), b.clone()], -1);
    let bottom = crate::concatenate(&[c.clone(), d.clone()], -1);
    crate::concatenate(&[top, bottom], -2)
}

/// The adjugate `adj(A) = det(A) A⁻¹`, computed as `det(U) det(Vᵀ) V diag(∏_{j≠i} s_j) Uᵀ`
/// from the SVD, so it stays finite (and exact) for singular matrices.
pub(crate) fn adjugate(a: &Tensor) -> Tensor {
    let outs = bind_multi(Prim::Linalg(LinalgOp::Svd { full: false }), &[a]);
    let (u, s, vh) = (&outs[0], &outs[1], &outs[2]);
    let k = *s.shape().last().expect("singular values");
    let r = s.rank();
    let mut low = vec![0i64; r];
    let mut high = vec![0i64; r];
    // Exclusive products ∏_{j<i} s_j and ∏_{j>i} s_j by shifted inclusive scans.
    let before = s.cumprod(-1).slice_axis(-1, 0, k as isize - 1, 1);
    low[r - 1] = 1;
    let before = before.pad(&low, &high, &vec![0; r], 1.0);
    let after = s.flip(&[-1]).cumprod(-1).flip(&[-1]).slice_axis(-1, 1, k as isize, 1);
    low[r - 1] = 0;
    high[r - 1] = 1;
    let after = after.pad(&low, &high, &vec![0; r], 1.0);
    let p = before * after;
    let sign = (lin(LinalgOp::Det, &[&u.stop_gradient()]) * lin(LinalgOp::Det, &[&vh.stop_gradient()])).stop_gradient();
    let v = mt(vh);
    (v * p.expand_dims(-2)).matmul(&mt(u)) * sign.expand_dims(-1).expand_dims(-1)
}

/// Results and tangents of a decomposition (a tuple-valued primitive).
pub(crate) fn jvp_multi(op: &LinalgOp, x: &[&Tensor], t: &[Option<&Tensor>]) -> (Vec<Tensor>, Vec<Option<Tensor>>) {
    let outs = bind_multi(Prim::Linalg(op.clone()), x);
    let Some(da) = t[0] else {
        let n = outs.len();
        return (outs, vec![None; n]);
    };
    let a = x[0];
    let (m, n) = dims2(a);
    let tangents = match op {
        LinalgOp::Eigh => {
            let (w, v) = (&outs[0], &outs[1]);
            let vt = mt(v);
            let dm = vt.matmul(da).matmul(v);
            let dw = diagonal(&dm);
            let dv = v.matmul(&(gap_inverse(w, false) * dm));
            vec![Some(dw), Some(dv)]
        }
        LinalgOp::Lu => {
            let (lu, perm) = (&outs[0], &outs[2]);
            let p = perm.one_hot(n, a.dtype());
            let pda = p.matmul(da);
            let l = triangle(lu, true, 0.0) + eye_like(lu);
            let u = triangle(lu, false, 1.0);
            let la = tsolve(
                &l,
                &pda,
                TriangularSolve { left_side: true, lower: true, transpose_a: false, unit_diagonal: true },
            );
            let lau = tsolve(&u, &la, TriangularSolve { left_side: false, lower: false, ..Default::default() });
            let dlu = l.matmul(&triangle(&lau, true, 0.0)) + triangle(&lau, false, 1.0).matmul(&u);
            vec![Some(dlu), None, None]
        }
        LinalgOp::Qr { full } => {
            if m < n || (*full && m != n) {
                panic!("qr: derivatives need m ≥ n (and a square matrix for the complete form), got {}", a.ty());
            }
            let (q, r) = (&outs[0], &outs[1]);
            let dx_rinv = tsolve(r, da, TriangularSolve { left_side: false, lower: false, ..Default::default() });
            let qt = mt(q).matmul(&dx_rinv);
            let low = triangle(&qt, true, 0.0);
            let skew = &low - mt(&low);
            let dq = q.matmul(&(&skew - &qt)) + &dx_rinv;
            let dr = (&qt - &skew).matmul(r);
            vec![Some(dq), Some(dr)]
        }
        LinalgOp::Svd { full } => {
            if *full && m != n {
                panic!("svd: derivatives of the full form need a square matrix, got {} (use the reduced form)", a.ty());
            }
            let (u, s, vh) = (&outs[0], &outs[1], &outs[2]);
            let (v, ut) = (mt(vh), mt(u));
            let ds_mat = ut.matmul(da).matmul(&v);
            let ds = diagonal(&ds_mat);
            let f = gap_inverse(s, true);
            let (row, col) = (s.expand_dims(-2), s.expand_dims(-1));
            let dss = &ds_mat * &row;
            let sds = &col * &ds_mat;
            let mut du = u.matmul(&(&f * (&dss + mt(&dss))));
            let mut dv = v.matmul(&(&f * (&sds + mt(&sds))));
            let s_inv = safe_recip(s).expand_dims(-2);
            if m > n {
                let dav = da.matmul(&v);
                du = du + (&dav - u.matmul(&ut.matmul(&dav))) * &s_inv;
            }
            if n > m {
                let dahu = mt(da).matmul(u);
                dv = dv + (&dahu - v.matmul(&vh.matmul(&dahu))) * &s_inv;
            }
            vec![Some(du), Some(ds), Some(mt(&dv))]
        }
        LinalgOp::Sqrtm { inverse } => {
            // In V's basis, M = Vᵀ dA V: dS = V (K ∘ M) Vᵀ with K_ij = 1/(s_i + s_j) for the
            // square root (Daleckii–Krein: S dS + dS S = dA), −s_i² s_j²/(s_i + s_j) for the
            // inverse (Y dY + dY Y = −Y² dA Y²): finite at repeated eigenvalues. The factors'
            // tangents (for higher orders) are eigh's: dw = diag(M), dV = V (F ∘ M).
            let (s, v) = (&outs[1], &outs[2]);
            let dm = mt(v).matmul(da).matmul(v);
            let (row, col) = (s.expand_dims(-2), s.expand_dims(-1));
            let mut k = (&row + &col).recip();
            if *inverse {
                k = -(k * (&row * &row) * (&col * &col));
            }
            let ds_mat = v.matmul(&(k * &dm)).matmul(&mt(v));
            let dw = diagonal(&dm);
            // s = w^{1/2}: ds = dw/(2s); s = w^{-1/2}: ds = −s³ dw/2.
            let ds = if *inverse { -(s * s * s * dw) * 0.5 } else { dw / s * 0.5 };
            let w = if *inverse { (s * s).recip() } else { s * s };
            let dv = v.matmul(&(gap_inverse(&w, false) * dm));
            vec![Some(ds_mat), Some(ds), Some(dv)]
        }
        _ => unreachable!("{} has one result", op.name()),
    };
    (outs, tangents)
}

// ---------------------------------------------------------------------------------------
// Transpose and batching rules.

/// Cotangents of the linear operands of `triangular_solve` (in `B`), `lyapunov` (in `C`) and
/// `expm_frechet` (in `E`).
pub(crate) fn transpose(op: &LinalgOp, ct: &Tensor, args: &[LinArg]) -> Vec<Option<Tensor>> {
    let a = args[0].value("the matrix operand");
    match op {
        LinalgOp::TriangularSolve(o) => {
            // X = op(A)⁻¹ B: B̄ = op(A)⁻ᵀ X̄; X = B op(A)⁻¹: B̄ = X̄ op(A)⁻ᵀ.
            let flipped = TriangularSolve { transpose_a: !o.transpose_a, ..*o };
            vec![None, Some(tsolve(a, ct, flipped))]
        }
        // S X + X S is self-adjoint for a symmetric S, so is its inverse.
        // (Each sign step is self-adjoint too, so the iterative solve transposes exactly.)
        LinalgOp::Lyapunov { iters } => vec![None, Some(lyapunov(a, ct, *iters))],
        // ⟨L(A, E), G⟩ = ⟨E, L(Aᵀ, G)⟩.
        LinalgOp::ExpmFrechet => vec![None, Some(lin(LinalgOp::ExpmFrechet, &[&mt(a), ct]))],
        _ => panic!("transpose: {} is not a linear primitive", op.name()),
    }
}

/// A single-result linear algebra primitive on operands with a leading batch axis where
/// `batched` says: the primitives are batched over leading axes already.
pub(crate) fn batch(op: &LinalgOp, args: &[Tensor], batched: &[bool], size: usize) -> Tensor {
    let full = broadcast_all(args, batched, size);
    let refs: Vec<&Tensor> = full.iter().collect();
    lin(op.clone(), &refs)
}

/// A decomposition of a batched operand.
pub(crate) fn batch_multi(op: &LinalgOp, args: &[Tensor]) -> Vec<Tensor> {
    bind_multi(Prim::Linalg(op.clone()), &[&args[0]])
}

/// Runs a decomposition on concrete operands.
pub(crate) fn run_multi(op: &LinalgOp, args: &[Tensor]) -> Vec<Tensor> {
    let arrays: Vec<&crate::Array> = args.iter().map(|t| t.as_concrete().expect("concrete operand")).collect();
    let types: Vec<TensorType> = args.iter().map(Tensor::ty).collect();
    let refs: Vec<&TensorType> = types.iter().collect();
    let outs = op.output_types(&refs).unwrap_or_else(|e| panic!("{}: {e}", op.name()));
    crate::backend::cpu::linalg::kernel_multi(op, &arrays, &outs).into_iter().map(Tensor::from_array).collect()
}
