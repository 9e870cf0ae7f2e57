//! Matrix-free iterative linear solvers and the differentiable [`linear_solve`].

use crate::control::{custom_jvp, custom_vjp, while_loop};
use crate::{jvp, linear_transpose, where_, Tensor, Tree};

/// The iterative method of a [`Solver`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    /// Conjugate gradient: for symmetric positive definite operators. A non-positive
    /// curvature `pᵀAp ≤ 0` (an indefinite or singular operator) stops it with
    /// `converged = false`.
    Cg,
    /// BiCGStab: for general (non-symmetric) operators.
    BiCgStab,
    /// The Neumann series `x = Σ (I − A)ᵏ b` (Richardson iteration): converges when the
    /// spectral radius of `I − A` is below one.
    Neumann,
    /// GMRES restarted every `restart` steps, for general operators. Each cycle builds an
    /// Arnoldi basis (modified Gram–Schmidt) and minimises the residual over it (the small
    /// least-squares problem solved by Givens rotations and back substitution, as accurate
    /// as the basis); `max_iter` counts matrix-vector products.
    Gmres {
        /// Krylov dimension per cycle (unrolled in the graph: keep it small, ≤ 30).
        restart: usize,
    },
    /// Dense and direct: the operator is materialised as a matrix (one `matvec` per column,
    /// vectorised with `vmap`) and solved by LU ([`crate::linalg::solve`]). For small
    /// systems, or as the reference for the iterative methods; `tol` and `max_iter` only
    /// decide `converged` (the residual must meet `tol`).
    Direct,
}

/// A linear solver: method, relative tolerance on the residual `‖b − Ax‖ ≤ tol·‖b‖`,
/// maximum iterations, and whether the operator is symmetric (then the transpose solve of
/// reverse mode uses the operator itself).
///
/// ```
/// use cotangent::solvers::{Method, Solver};
/// let s = Solver::bicgstab().tol(1e-8).max_iter(50);
/// assert_eq!((s.method, s.tol, s.max_iter, s.symmetric), (Method::BiCgStab, 1e-8, 50, false));
/// assert!(Solver::cg().symmetric);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Solver {
    /// The method.
    pub method: Method,
    /// Relative residual tolerance.
    pub tol: f64,
    /// Maximum number of iterations.
    pub max_iter: usize,
    /// Whether the operator is symmetric (declared; CG's default).
    pub symmetric: bool,
    /// Whether the iterate after `max_iter` iterations is accepted as the answer when the
    /// tolerance is not met (a truncated series, e.g. Lorraine et al.'s Neumann
    /// approximation): derivatives are then not turned into NaN. Off by default.
    pub truncate: bool,
}

impl Solver {
    /// Conjugate gradient (declares the operator symmetric), tol 1e-10, 1000 iterations.
    ///
    /// ```
    /// assert_eq!(cotangent::solvers::Solver::cg().max_iter, 1000);
    /// ```
    pub fn cg() -> Solver {
        Solver { method: Method::Cg, tol: 1e-10, max_iter: 1000, symmetric: true, truncate: false }
    }
    /// The dense direct solve (LU of the materialised operator), tol 1e-10 on the residual.
    ///
    /// ```
    /// use cotangent::solvers::{solve_raw, Solver};
    /// use cotangent::Tensor;
    /// let a = Tensor::from_vec(vec![4.0, 1.0, 2.0, 3.0], &[2, 2]);
    /// let (x, info) = solve_raw(&|v: &Tensor| a.matmul(v), &Tensor::from_vec(vec![1.0, 2.0], &[2]), &Solver::direct());
    /// assert!(info.converged.item::<bool>());
    /// assert!((x.to_vec::<f64>()[1] - 0.6).abs() < 1e-12); // A⁻¹b = (0.1, 0.6)
    /// ```
    pub fn direct() -> Solver {
        Solver { method: Method::Direct, tol: 1e-10, max_iter: 1, symmetric: false, truncate: false }
    }
    /// BiCGStab, tol 1e-10, 1000 iterations.
    ///
    /// ```
    /// assert!(!cotangent::solvers::Solver::bicgstab().symmetric);
    /// ```
    pub fn bicgstab() -> Solver {
        Solver { method: Method::BiCgStab, tol: 1e-10, max_iter: 1000, symmetric: false, truncate: false }
    }
    /// The Neumann series, tol 1e-10, 1000 iterations.
    ///
    /// ```
    /// assert_eq!(cotangent::solvers::Solver::neumann().tol, 1e-10);
    /// ```
    pub fn neumann() -> Solver {
        Solver { method: Method::Neumann, tol: 1e-10, max_iter: 1000, symmetric: false, truncate: false }
    }
    /// Restarted GMRES with Krylov dimension `restart`, tol 1e-10, 1000 matrix-vector
    /// products.
    ///
    /// ```
    /// use cotangent::solvers::{Method, Solver};
    /// assert_eq!(Solver::gmres(10).method, Method::Gmres { restart: 10 });
    /// ```
    pub fn gmres(restart: usize) -> Solver {
        assert!(restart > 0, "Solver::gmres: the restart length must be positive, got 0");
        Solver { method: Method::Gmres { restart }, tol: 1e-10, max_iter: 1000, symmetric: false, truncate: false }
    }
    /// With this relative tolerance.
    ///
    /// ```
    /// assert_eq!(cotangent::solvers::Solver::cg().tol(1e-3).tol, 1e-3);
    /// ```
    pub fn tol(mut self, tol: f64) -> Solver {
        self.tol = tol;
        self
    }
    /// With at most this many iterations.
    ///
    /// ```
    /// assert_eq!(cotangent::solvers::Solver::cg().max_iter(7).max_iter, 7);
    /// ```
    pub fn max_iter(mut self, n: usize) -> Solver {
        self.max_iter = n;
        self
    }
    /// Accepts the iterate after `max_iter` iterations as the answer (see
    /// [`Solver::truncate`]): the derivatives of a solve that did not meet `tol` are then that
    /// iterate's, not NaN. [`SolveInfo::converged`] still reports whether `tol` was met.
    ///
    /// ```
    /// use cotangent::solvers::{linear_solve, Solver};
    /// use cotangent::{grad, Tensor};
    /// // (a·I) x = 1 with the Neumann series x ≈ Σ_{k<3} (1 − a)^k, a = 0.5: 1.75.
    /// let neumann3 = Solver::neumann().max_iter(3).truncated();
    /// let x = |a: &Tensor| linear_solve(|a: &Tensor, v: &Tensor| a * v, a, &Tensor::scalar(1.0), &neumann3);
    /// let (x0, info) = x(&Tensor::scalar(0.5));
    /// assert_eq!((x0.item::<f64>(), info.converged.item::<bool>()), (1.75, false));
    /// // The derivative is the truncated series' approximation, finite: −x·A⁻¹ ≈ −1.75·1.75.
    /// let d = grad(|a: &Tensor| x(a).0)(&Tensor::scalar(0.5)).item::<f64>();
    /// assert!((d + 1.75 * 1.75).abs() < 1e-12, "{d}");
    /// ```
    pub fn truncated(mut self) -> Solver {
        self.truncate = true;
        self
    }
    /// Declares the operator symmetric (or not).
    ///
    /// ```
    /// assert!(cotangent::solvers::Solver::bicgstab().symmetric(true).symmetric);
    /// ```
    pub fn symmetric(mut self, yes: bool) -> Solver {
        self.symmetric = yes;
        self
    }
}

/// What a solver reports beside its solution: whether it converged (bool scalar), the
/// iterations taken (i64 scalar) and the final residual norm (a float scalar). Not
/// differentiated.
#[derive(Clone, Debug, Tree)]
pub struct SolveInfo {
    /// Whether the tolerance was met (false on breakdown, divergence or too many iterations).
    pub converged: Tensor,
    /// Iterations taken.
    pub iterations: Tensor,
    /// Norm of the final residual (for minimisers: of the gradient).
    pub residual: Tensor,
}

impl SolveInfo {
    /// A minimiser's report from its final squared gradient norm `gg`: converged when the
    /// gradient norm is at most `tol`.
    pub(crate) fn of_gradient(gg: &Tensor, iterations: Tensor, tol: f64) -> SolveInfo {
        SolveInfo { converged: gg.le(tol * tol), iterations, residual: gg.sqrt() }
    }
}

pub(crate) fn vdot(a: &Tensor, b: &Tensor) -> Tensor {
    (a * b).sum_all()
}

#[derive(Clone, Tree)]
struct CgState {
    x: Tensor,
    r: Tensor,
    p: Tensor,
    rs: Tensor,
    k: Tensor,
    ok: Tensor,
}

fn cg(matvec: &dyn Fn(&Tensor) -> Tensor, b: &Tensor, s: &Solver) -> (Tensor, SolveInfo) {
    let bb = vdot(b, b);
    let thresh = &bb * (s.tol * s.tol);
    let init = CgState {
        x: b.zeros_like(),
        r: b.clone(),
        p: b.clone(),
        rs: bb.clone(),
        k: Tensor::scalar(0i64),
        ok: Tensor::scalar(true),
    };
    let max = s.max_iter as i64;
    let out = while_loop(
        |c: &CgState| c.k.lt(max).logical_and(&c.rs.gt(&thresh)).logical_and(&c.ok),
        |c: &CgState| {
            let ap = matvec(&c.p);
            let pap = vdot(&c.p, &ap);
            let ok = pap.gt(0.0);
            let alpha = &c.rs / where_(&ok, &pap, 1.0);
            let x = &c.x + &alpha * &c.p;
            let r = &c.r - &alpha * &ap;
            let rs = vdot(&r, &r);
            let p = &r + (&rs / &c.rs) * &c.p;
            CgState {
                x: where_(&ok, &x, &c.x),
                r: where_(&ok, &r, &c.r),
                p: where_(&ok, &p, &c.p),
                rs: where_(&ok, &rs, &c.rs),
                k: &c.k + Tensor::scalar(1i64),
                ok,
            }
        },
        &init,
    );
    let converged = out.rs.le(&thresh).logical_and(&out.ok);
    (out.x, SolveInfo { converged, iterations: out.k, residual: out.rs.sqrt() })
}

#[derive(Clone, Tree)]
struct BiState {
    x: Tensor,
    r: Tensor,
    p: Tensor,
    v: Tensor,
    scal: Tensor, // [rho, alpha, omega, rs]
    k: Tensor,
    ok: Tensor,
}

fn bicgstab(matvec: &dyn Fn(&Tensor) -> Tensor, b: &Tensor, s: &Solver) -> (Tensor, SolveInfo) {
    let bb = vdot(b, b);
    let thresh = &bb * (s.tol * s.tol);
    let one = bb.ones_like();
    let init = BiState {
        x: b.zeros_like(),
        r: b.clone(),
        p: b.zeros_like(),
        v: b.zeros_like(),
        scal: crate::stack(&[one.clone(), one.clone(), one, bb.clone()], 0),
        k: Tensor::scalar(0i64),
        ok: Tensor::scalar(true),
    };
    let rhat = b.clone();
    let max = s.max_iter as i64;
    let out = while_loop(
        |c: &BiState| c.k.lt(max).logical_and(&c.scal.index(3).gt(&thresh)).logical_and(&c.ok),
        |c: &BiState| {
            let (rho, alpha, omega) = (c.scal.index(0), c.scal.index(1), c.scal.index(2));
            let rho_new = vdot(&rhat, &c.r);
            let safe = |d: &Tensor| where_(&d.eq(0.0), 1.0, d);
            let beta = (&rho_new / safe(&rho)) * (&alpha / safe(&omega));
            let p = &c.r + &beta * (&c.p - &omega * &c.v);
            let v = matvec(&p);
            let rv = vdot(&rhat, &v);
            let alpha = &rho_new / safe(&rv);
            let sres = &c.r - &alpha * &v;
            let t = matvec(&sres);
            let tt = vdot(&t, &t);
            let omega = vdot(&t, &sres) / safe(&tt);
            let x = &c.x + &alpha * &p + &omega * &sres;
            let r = &sres - &omega * &t;
            let rs = vdot(&r, &r);
            let ok = rho_new.ne(0.0).logical_and(&rv.ne(0.0)).logical_and(&rs.isnan().logical_not());
            let keep = |new: &Tensor, old: &Tensor| where_(&ok, new, old);
            BiState {
                x: keep(&x, &c.x),
                r: keep(&r, &c.r),
                p: keep(&p, &c.p),
                v: keep(&v, &c.v),
                scal: keep(&crate::stack(&[rho_new.clone(), alpha.clone(), omega.clone(), rs.clone()], 0), &c.scal),
                k: &c.k + Tensor::scalar(1i64),
                ok,
            }
        },
        &init,
    );
    let rs = out.scal.index(3);
    let converged = rs.le(&thresh).logical_and(&out.ok);
    (out.x, SolveInfo { converged, iterations: out.k, residual: rs.sqrt() })
}

fn neumann(matvec: &dyn Fn(&Tensor) -> Tensor, b: &Tensor, s: &Solver) -> (Tensor, SolveInfo) {
    let bb = vdot(b, b);
    let thresh = &bb * (s.tol * s.tol);
    let max = s.max_iter as i64;
    let init = (b.zeros_like(), b.clone(), bb.clone(), Tensor::scalar(0i64));
    let (x, _, rs, k) = while_loop(
        |c: &(Tensor, Tensor, Tensor, Tensor)| c.3.lt(max).logical_and(&c.2.gt(&thresh)),
        |c: &(Tensor, Tensor, Tensor, Tensor)| {
            let x = &c.0 + &c.1;
            let r = b - matvec(&x);
            let rs = vdot(&r, &r);
            (x, r, rs, &c.3 + Tensor::scalar(1i64))
        },
        &init,
    );
    let converged = rs.le(&thresh);
    (x, SolveInfo { converged, iterations: k, residual: rs.sqrt() })
}

fn gmres(matvec: &dyn Fn(&Tensor) -> Tensor, b: &Tensor, s: &Solver, m: usize) -> (Tensor, SolveInfo) {
    let bb = vdot(b, b);
    let thresh = &bb * (s.tol * s.tol);
    let max = s.max_iter as i64;
    let safe = |d: &Tensor| where_(&d.eq(0.0), 1.0, d);
    let init = (b.zeros_like(), bb.clone(), Tensor::scalar(0i64), Tensor::scalar(true));
    let (x, rs, k, _) = while_loop(
        |c: &(Tensor, Tensor, Tensor, Tensor)| c.2.lt(max).logical_and(&c.1.gt(&thresh)).logical_and(&c.3),
        |c: &(Tensor, Tensor, Tensor, Tensor)| {
            let r = b - matvec(&c.0);
            let beta = vdot(&r, &r).sqrt();
            let mut basis = vec![&r / safe(&beta)];
            // h[j][i]: column j of the (m + 1) × m Hessenberg matrix.
            let mut h: Vec<Vec<Tensor>> = Vec::with_capacity(m);
            for j in 0..m {
                let mut w = matvec(&basis[j]);
                let mut col = Vec::with_capacity(m + 1);
                for vi in &basis {
                    let hij = vdot(&w, vi);
                    w = &w - &hij * vi;
                    col.push(hij);
                }
                let norm = vdot(&w, &w).sqrt();
                basis.push(&w / safe(&norm));
                col.push(norm);
                col.resize(m + 1, beta.zeros_like());
                h.push(col);
            }
            // min ‖β e₀ − H y‖: Givens rotations reduce the Hessenberg matrix H to upper
            // triangular R (applied to β e₀ as well), then back substitution R y = g.
            let zero = beta.zeros_like();
            let mut g = vec![zero.clone(); m + 1];
            g[0] = beta.clone();
            let mut rotations: Vec<(Tensor, Tensor)> = Vec::with_capacity(m);
            for (j, col) in h.iter_mut().enumerate() {
                for (i, (c, s)) in rotations.iter().enumerate() {
                    let (a, b) = (col[i].clone(), col[i + 1].clone());
                    col[i] = c * &a + s * &b;
                    col[i + 1] = c * &b - s * &a;
                }
                let (a, b) = (col[j].clone(), col[j + 1].clone());
                let r = (&a * &a + &b * &b).sqrt();
                let nonzero = r.gt(0.0);
                let c = where_(&nonzero, &(&a / safe(&r)), 1.0);
                let s = where_(&nonzero, &(&b / safe(&r)), 0.0);
                col[j] = r;
                col[j + 1] = zero.clone();
                let gj = g[j].clone();
                g[j] = &c * &gj;
                g[j + 1] = -(&s * &gj);
                rotations.push((c, s));
            }
            let mut y = vec![zero.clone(); m];
            for i in (0..m).rev() {
                let mut acc = g[i].clone();
                for (k, yk) in y.iter().enumerate().skip(i + 1) {
                    acc = acc - &h[k][i] * yk;
                }
                // A zero pivot comes after an exact (happy) breakdown, where g is zero too.
                y[i] = where_(&h[i][i].eq(0.0), 0.0, &(acc / safe(&h[i][i])));
            }
            let mut x = c.0.clone();
            for (yj, vj) in y.iter().zip(&basis) {
                x = &x + yj * vj;
            }
            let r = b - matvec(&x);
            let rs = vdot(&r, &r);
            // A cycle that does not reduce the residual would repeat forever: stop.
            let progress = rs.lt(&c.1).logical_and(&rs.isnan().logical_not());
            (where_(&progress, &x, &c.0), where_(&progress, &rs, &c.1), &c.2 + Tensor::scalar(m as i64), progress)
        },
        &init,
    );
    let converged = rs.le(&thresh);
    (x, SolveInfo { converged, iterations: k, residual: rs.sqrt() })
}

/// Solves `matvec(x) = b` with `solver`, without derivatives (the raw iteration).
///
/// ```
/// use cotangent::solvers::{solve_raw, Solver};
/// use cotangent::Tensor;
/// let a = Tensor::from_vec(vec![4.0, 1.0, 2.0, 3.0], &[2, 2]);
/// let (x, info) = solve_raw(&|v: &Tensor| a.matmul(v), &Tensor::from_vec(vec![1.0, 2.0], &[2]), &Solver::bicgstab());
/// assert!(info.converged.item::<bool>());
/// assert!((x.to_vec::<f64>()[0] - 0.1).abs() < 1e-10);
/// ```
pub fn solve_raw(matvec: &dyn Fn(&Tensor) -> Tensor, b: &Tensor, solver: &Solver) -> (Tensor, SolveInfo) {
    match solver.method {
        Method::Cg => cg(matvec, b, solver),
        Method::BiCgStab => bicgstab(matvec, b, solver),
        Method::Neumann => neumann(matvec, b, solver),
        Method::Gmres { restart } => gmres(matvec, b, solver, restart),
        Method::Direct => direct(matvec, b, solver),
    }
}

/// The dense direct solve: the operator as a matrix (column `j` = `matvec(e_j)`, all columns
/// at once with `vmap`), then LU.
fn direct(matvec: &dyn Fn(&Tensor) -> Tensor, b: &Tensor, solver: &Solver) -> (Tensor, SolveInfo) {
    let shape = b.shape();
    let n = b.numel();
    let columns = crate::vmap(|e: &Tensor| matvec(&e.reshape_to(&shape)).reshape(&[-1]))(&Tensor::eye(n, b.dtype()));
    let a = columns.t();
    let x = crate::linalg::solve(&a, &b.reshape(&[-1]));
    let r = b.reshape(&[-1]) - a.matmul(&x);
    let residual = vdot(&r, &r).sqrt();
    let converged = residual.le(&(vdot(b, b).sqrt() * solver.tol));
    (x.reshape_to(&shape), SolveInfo { converged, iterations: Tensor::scalar(1i64), residual })
}

/// How many orders of derivatives go through the implicit rules of [`linear_solve`] and
/// [`custom_root`](super::custom_root): each rule's primal values and derivative solves are
/// again differentiable solves, one order fewer, down to a solve whose derivatives are NaN
/// (never silently wrong). The rules are traced when a solve is called, so each order
/// roughly doubles the traced graph: two orders cover `hessian`, `grad(grad)`, `jvp(grad)`.
///
/// ```
/// use cotangent::solvers::{linear_solve, Solver, DERIVATIVE_ORDERS};
/// use cotangent::{grad, Tensor};
/// assert_eq!(DERIVATIVE_ORDERS, 2);
/// // x = b / a: the third derivative in a is beyond the implicit rules, so NaN.
/// let x = |a: &Tensor| linear_solve(|a: &Tensor, v: &Tensor| a * v, a, &Tensor::scalar(1.0), &Solver::cg()).0;
/// assert!((grad(grad(x))(&Tensor::scalar(2.0)).item::<f64>() - 0.25).abs() < 1e-12);
/// assert!(grad(grad(grad(x)))(&Tensor::scalar(2.0)).item::<f64>().is_nan());
/// ```
pub const DERIVATIVE_ORDERS: usize = 2;

/// `v ↦ A(p) v`, or `v ↦ A(p)ᵀ v` when `transposed` (from [`linear_transpose`], or `A`
/// itself when declared symmetric).
fn operator<'a, P, M>(
    mv: &'a M,
    p: &'a P,
    like: &Tensor,
    s: &Solver,
    transposed: bool,
) -> Box<dyn Fn(&Tensor) -> Tensor + 'a>
where
    M: Fn(&P, &Tensor) -> Tensor,
{
    if transposed && !s.symmetric {
        let mt = linear_transpose(move |u: &Tensor| mv(p, u), like);
        Box::new(move |v: &Tensor| mt(v))
    } else {
        Box::new(move |v: &Tensor| mv(p, v))
    }
}

/// The tangent of a [`SolveInfo`]: zeros (the info is not differentiated).
pub(crate) fn no_tangent(info: &SolveInfo) -> SolveInfo {
    SolveInfo {
        converged: info.converged.zeros_like(),
        iterations: info.iterations.zeros_like(),
        residual: info.residual.zeros_like(),
    }
}

/// The raw solve of `A(p) x = b` (or `A(p)ᵀ x = b`).
fn raw_solve<P, M>(mv: &M, p: &P, b: &Tensor, s: &Solver, transposed: bool) -> (Tensor, SolveInfo)
where
    M: Fn(&P, &Tensor) -> Tensor,
{
    let op = operator(mv, p, b, s, transposed);
    solve_raw(&*op, b, s)
}

/// `A(p)⁻¹ b` (or `A(p)⁻ᵀ b`) differentiable in `p` and `b` to `order` orders: a
/// `custom_jvp` whose rule takes its primal from a solve of one order fewer and its tangent
/// `dx = A⁻¹(db − dA x)` from [`inverse_on`]. At order 0 the derivatives are NaN.
pub(crate) fn solve_to_order<P, M>(
    mv: M,
    p: &P,
    b: &Tensor,
    s: Solver,
    transposed: bool,
    order: usize,
) -> (Tensor, SolveInfo)
where
    P: Tree + Clone + 'static,
    M: Fn(&P, &Tensor) -> Tensor + Clone + 'static,
{
    let mv1 = mv.clone();
    let f = move |(p, b): &(P, Tensor)| raw_solve(&mv1, p, b, &s, transposed);
    let args = (p.clone(), b.clone());
    if order == 0 {
        let f2 = f.clone();
        let mv0 = mv.clone();
        let rule = move |pb: &(P, Tensor), (dp, db): &(P, Tensor)| {
            let (x, info) = f2(pb);
            // NaN times the tangents (not a constant NaN, which reverse mode would drop as
            // independent of the input).
            let (mvj, xc) = (mv0.clone(), x.clone());
            let (_, da_x) = jvp(move |q: &P| operator(&mvj, q, &xc, &s, transposed)(&xc), &pb.0, dp);
            let dx = (db - da_x) * f64::NAN;
            let zero = no_tangent(&info);
            ((x, info), (dx, zero))
        };
        return custom_jvp(f, rule)(&args);
    }
    let rule = move |(p, b): &(P, Tensor), (dp, db): &(P, Tensor)| {
        let (x, info) = solve_to_order(mv.clone(), p, b, s, transposed, order - 1);
        let (mvj, xc) = (mv.clone(), x.clone());
        let (_, da_x) = jvp(move |q: &P| operator(&mvj, q, &xc, &s, transposed)(&xc), p, dp);
        let dx = inverse_on(mv.clone(), p, &(db - da_x), s, transposed, order) * nan_unless(&info, &s);
        let zero = no_tangent(&info);
        ((x, info), (dx, zero))
    };
    custom_jvp(f, rule)(&args)
}

/// `A(p)⁻¹ v` for tangents `v` (linear in `v`; `p` is fixed): a `custom_vjp` whose pullback
/// is the transposed solve as a differentiable [`solve_to_order`] of one order fewer, so
/// that derivatives of reverse-mode derivatives go through the implicit rule again (JAX's
/// `custom_linear_solve`: the transpose of a solve is a solve with the transposed operator).
/// Applied to tangents inside a `custom_jvp` rule, forward mode evaluates it and reverse
/// mode transposes it. A solve that does not converge gives NaN.
pub(crate) fn inverse_on<P, M>(mv: M, p: &P, v: &Tensor, s: Solver, transposed: bool, order: usize) -> Tensor
where
    P: Tree + Clone + 'static,
    M: Fn(&P, &Tensor) -> Tensor + Clone + 'static,
{
    let (mv1, p1) = (mv.clone(), p.clone());
    let f = move |v: &Tensor| {
        let (x, info) = raw_solve(&mv1, &p1, v, &s, transposed);
        x * nan_unless(&info, &s)
    };
    let f2 = f.clone();
    let p2 = p.clone();
    let bwd = move |_: &(), ct: &Tensor| {
        let (x, info) = solve_to_order(mv.clone(), &p2, ct, s, !transposed, order.saturating_sub(1));
        x * nan_unless(&info, &s)
    };
    custom_vjp(f, move |v: &Tensor| (f2(v), ()), bwd)(v)
}

/// Solves `matvec(params, x) = b`, differentiably in `b` and in `params` (forward and reverse
/// mode, under `vmap` and `jit`, and to second order: `hessian`, `grad` of `grad`,
/// `jvp` of `grad`).
///
/// `matvec` must be linear in its second argument. The derivative is
/// `dx = A⁻¹(db − (∂_p matvec)(dp) x)`, solved again with `solver`; reverse mode solves
/// with the transposed operator (from [`linear_transpose`], or `A` itself when
/// `solver.symmetric`). Those derivative solves are themselves differentiable solves (as
/// JAX's `custom_linear_solve`), so derivatives of derivatives go through the same rule
/// rather than through the iterations, up to [`DERIVATIVE_ORDERS`] orders (beyond: NaN).
/// Forward mode of forward mode (`jvp` of `jvp`, `jacfwd` of `jacfwd`) is not supported:
/// the tangent solve is a `custom_vjp` function (use `hessian` = forward over reverse).
/// The [`SolveInfo`] says whether the primal solve converged; when it
/// did not, or a derivative's solve did not, the derivatives are NaN (not silently wrong). Values `matvec`
/// closes over are constants (pass what you differentiate as `params`).
///
/// ```
/// use cotangent::solvers::{linear_solve, Solver};
/// use cotangent::{grad, jvp, Tensor};
/// // (a·I) x = b: x = b / a, dx/da = -b / a², d²x/da² = 2b / a³.
/// let b = Tensor::from_vec(vec![1.0, 2.0], &[2]);
/// let solve = |a: &Tensor| linear_solve(|a: &Tensor, v: &Tensor| a * v, a, &b, &Solver::cg()).0;
/// let (x, dx) = jvp(solve, &Tensor::scalar(2.0), &Tensor::scalar(1.0));
/// assert_eq!(x.to_vec::<f64>(), vec![0.5, 1.0]);
/// assert_eq!(dx.to_vec::<f64>(), vec![-0.25, -0.5]);
/// let d2 = grad(grad(|a: &Tensor| solve(a).index(1)))(&Tensor::scalar(2.0));
/// assert!((d2.item::<f64>() - 0.5).abs() < 1e-10);
/// ```
pub fn linear_solve<P, M>(matvec: M, params: &P, b: &Tensor, solver: &Solver) -> (Tensor, SolveInfo)
where
    P: Tree + Clone + 'static,
    M: Fn(&P, &Tensor) -> Tensor + Clone + 'static,
{
    solve_to_order(matvec, params, b, *solver, false, DERIVATIVE_ORDERS)
}

/// [`linear_solve`] with derivatives through the implicit rule to `orders` orders instead of
/// [`DERIVATIVE_ORDERS`] (beyond: NaN). Each order roughly doubles what is traced per call
/// (and compiled under `jit`), so `orders = 1` is the cheapest choice when only gradients
/// are needed; `orders = 0` gives NaN derivatives.
///
/// ```
/// use cotangent::solvers::{linear_solve_to_order, Solver};
/// use cotangent::{grad, Tensor};
/// let x = |a: &Tensor| {
///     linear_solve_to_order(|a: &Tensor, v: &Tensor| a * v, a, &Tensor::scalar(1.0), &Solver::cg(), 1).0
/// };
/// assert!((grad(x)(&Tensor::scalar(2.0)).item::<f64>() + 0.25).abs() < 1e-12);
/// assert!(grad(grad(x))(&Tensor::scalar(2.0)).item::<f64>().is_nan());
/// ```
pub fn linear_solve_to_order<P, M>(
    matvec: M,
    params: &P,
    b: &Tensor,
    solver: &Solver,
    orders: usize,
) -> (Tensor, SolveInfo)
where
    P: Tree + Clone + 'static,
    M: Fn(&P, &Tensor) -> Tensor + Clone + 'static,
{
    solve_to_order(matvec, params, b, *solver, false, orders)
}

/// 1 where the solve converged (or `s` accepts a truncated answer), NaN where not: a scale for
/// derivatives, so that both forward and reverse mode (whose transposition keeps the factor)
/// give NaN after a failed solve.
pub(crate) fn nan_unless(info: &SolveInfo, s: &Solver) -> Tensor {
    if s.truncate {
        info.residual.ones_like()
    } else {
        nan_unless_converged(info)
    }
}

/// 1 where the solve converged, NaN where not (whatever the solver accepts).
pub(crate) fn nan_unless_converged(info: &SolveInfo) -> Tensor {
    where_(&info.converged, &info.residual.ones_like(), f64::NAN)
}
