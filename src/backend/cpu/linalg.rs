//! Linear algebra kernels on `faer`: every operand is a stack of matrices (leading axes are
//! batch axes), each matrix handed to faer as a row-major view, results copied back
//! row-major. Batches are spread over rayon's pool when cotangent runs threaded.
//!
//! Failures (a matrix that is not positive definite for `cholesky`/`sqrtm`, an eigen- or
//! singular value iteration that does not converge) fill that matrix's results with NaN, as
//! LAPACK-backed JAX does; the public functions in [`crate::linalg`] turn NaN from an eager
//! call into a panic naming the operation.

use crate::array::{Array, Data};
use crate::ops::linalg::{LinalgOp, TriangularSolve};
use crate::TensorType;
use faer::linalg::solvers::Solve;
use faer::{Accum, Mat, MatMut, MatRef, Par, Side};
use rayon::prelude::*;

/// The real types the kernels run on (f32, f64).
pub(crate) trait Real: faer::traits::RealField + Copy + Send + Sync + 'static {
    fn of(x: f64) -> Self;
    fn to64(self) -> f64;
    fn wrap(v: Vec<Self>) -> Data;
}

impl Real for f32 {
    fn of(x: f64) -> f32 {
        x as f32
    }
    fn to64(self) -> f64 {
        self as f64
    }
    fn wrap(v: Vec<f32>) -> Data {
        Data::F32(v)
    }
}

impl Real for f64 {
    fn of(x: f64) -> f64 {
        x
    }
    fn to64(self) -> f64 {
        self
    }
    fn wrap(v: Vec<f64>) -> Data {
        Data::F64(v)
    }
}

fn par() -> Par {
    if crate::threads::parallel() {
        Par::rayon(0)
    } else {
        Par::Seq
    }
}

/// Sets faer's global parallelism (read by its high-level solvers) to cotangent's setting.
fn sync_parallelism() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| faer::set_global_parallelism(par()));
}

/// `f` on each of the `count` matrices of `size` elements in `x`, in parallel when allowed.
fn map_items<T: Sync, R: Send>(x: &[T], count: usize, size: usize, f: impl Fn(&[T]) -> R + Sync + Send) -> Vec<R> {
    sync_parallelism();
    let item = |i: usize| f(&x[i * size..(i + 1) * size]);
    if count > 1 && crate::threads::parallel() {
        (0..count).into_par_iter().map(item).collect()
    } else {
        (0..count).map(item).collect()
    }
}

/// Same over two stacks of matrices, matrix `i` of each together.
fn map_pairs<T: Sync, R: Send>(
    x: &[T],
    y: &[T],
    count: usize,
    sizes: (usize, usize),
    f: impl Fn(&[T], &[T]) -> R + Sync + Send,
) -> Vec<R> {
    sync_parallelism();
    let item = |i: usize| f(&x[i * sizes.0..(i + 1) * sizes.0], &y[i * sizes.1..(i + 1) * sizes.1]);
    if count > 1 && crate::threads::parallel() {
        (0..count).into_par_iter().map(item).collect()
    } else {
        (0..count).map(item).collect()
    }
}

/// Row-major copy of a faer matrix.
fn rows<T: Real>(m: MatRef<'_, T>) -> Vec<T> {
    let (r, c) = (m.nrows(), m.ncols());
    let mut out = vec![T::of(0.0); r * c];
    // faer's copy, not element indexing (which took ~2 ns an element: a tenth of w8-sqrtm).
    MatMut::from_row_major_slice_mut(&mut out, r, c).copy_from(m);
    out
}

fn view<T: Real>(x: &[T], m: usize, n: usize) -> MatRef<'_, T> {
    MatRef::from_row_major_slice(x, m, n)
}

fn nans<T: Real>(n: usize) -> Vec<T> {
    vec![T::of(f64::NAN); n]
}

/// Matrix dimensions: (batch count, rows, columns).
fn dims(shape: &[usize]) -> (usize, usize, usize) {
    let r = shape.len();
    (shape[..r - 2].iter().product(), shape[r - 2], shape[r - 1])
}

fn concat<T>(parts: Vec<Vec<T>>) -> Vec<T> {
    parts.into_iter().flatten().collect()
}

fn mul<T: Real>(a: MatRef<'_, T>, b: MatRef<'_, T>) -> Mat<T> {
    let mut out = Mat::zeros(a.nrows(), b.ncols());
    faer::linalg::matmul::matmul(out.as_mut(), Accum::Replace, a, b, T::of(1.0), Par::Seq);
    out
}

// ---------------------------------------------------------------------------------------
// Per-matrix kernels.

fn cholesky_one<T: Real>(a: &[T], n: usize) -> Vec<T> {
    match view(a, n, n).llt(Side::Lower) {
        Ok(llt) => {
            // faer's copy of the lower triangle (zeros above), not an element-by-element
            // copy with a division per element, which took as long as the factorisation at n = 256.
            let mut out = vec![T::of(0.0); n * n];
            MatMut::from_row_major_slice_mut(&mut out, n, n).copy_from_triangular_lower(llt.L());
            out
        }
        Err(_) => nans(n * n),
    }
}

fn triangular_solve_one<T: Real>(a: &[T], b: &[T], n: usize, shape_b: (usize, usize), o: TriangularSolve) -> Vec<T> {
    let mut out = b.to_vec();
    let (rb, cb) = shape_b;
    let a = view(a, n, n);
    // Right side: X op(A) = B is op(A)ᵀ Xᵀ = Bᵀ; each transpose swaps the triangle.
    let transposed = o.transpose_a == o.left_side;
    let tri = if transposed { a.transpose() } else { a };
    let lower = o.lower != transposed;
    let mut x = MatMut::from_row_major_slice_mut(&mut out, rb, cb);
    let rhs = if o.left_side { x.as_mut() } else { x.as_mut().transpose_mut() };
    use faer::linalg::triangular_solve as ts;
    match (lower, o.unit_diagonal) {
        (true, false) => ts::solve_lower_triangular_in_place(tri, rhs, Par::Seq),
        (true, true) => ts::solve_unit_lower_triangular_in_place(tri, rhs, Par::Seq),
        (false, false) => ts::solve_upper_triangular_in_place(tri, rhs, Par::Seq),
        (false, true) => ts::solve_unit_upper_triangular_in_place(tri, rhs, Par::Seq),
    }
    out
}

fn eigh_one<T: Real>(a: &[T], n: usize) -> (Vec<T>, Vec<T>) {
    match view(a, n, n).self_adjoint_eigen(Side::Lower) {
        Ok(e) => ((0..n).map(|i| e.S()[i]).collect(), rows(e.U())),
        Err(_) => (nans(n), nans(n * n)),
    }
}

/// `lu` packed (unit lower below the diagonal, upper on and above), LAPACK-style pivots
/// (row `i` was swapped with row `pivots[i]`, in order) and the permutation (`A[perm] = L U`).
fn lu_one<T: Real>(a: &[T], n: usize) -> (Vec<T>, Vec<i64>, Vec<i64>) {
    let f = view(a, n, n).partial_piv_lu();
    let (l, u) = (f.L(), f.U());
    let packed = (0..n * n).map(|k| if k % n < k / n { l[(k / n, k % n)] } else { u[(k / n, k % n)] }).collect();
    let perm: Vec<i64> = f.P().arrays().0.iter().map(|&p| p as i64).collect();
    // The swap sequence that produces `perm` from the identity.
    let mut cur: Vec<i64> = (0..n as i64).collect();
    let mut pos: Vec<usize> = (0..n).collect();
    let mut pivots = vec![0i64; n];
    for i in 0..n {
        let j = pos[perm[i] as usize];
        pivots[i] = j as i64;
        let (ci, cj) = (cur[i], cur[j]);
        cur.swap(i, j);
        pos[ci as usize] = j;
        pos[cj as usize] = i;
    }
    (packed, pivots, perm)
}

fn qr_one<T: Real>(a: &[T], m: usize, n: usize, full: bool) -> (Vec<T>, Vec<T>) {
    let f = view(a, m, n).qr();
    if full {
        // faer's R has min(m, n) rows; the complete form's has m (zeros below).
        let r = f.R();
        let full_r = Mat::from_fn(m, n, |i, j| if i < r.nrows() { r[(i, j)] } else { T::of(0.0) });
        (rows(f.compute_Q().as_ref()), rows(full_r.as_ref()))
    } else {
        (rows(f.compute_thin_Q().as_ref()), rows(f.thin_R()))
    }
}

fn svd_one<T: Real>(a: &[T], m: usize, n: usize, full: bool) -> (Vec<T>, Vec<T>, Vec<T>) {
    let k = m.min(n);
    let (ku, kv) = if full { (m, n) } else { (k, k) };
    let a = view(a, m, n);
    let s = if full { a.svd() } else { a.thin_svd() };
    match s {
        Ok(s) => ((rows(s.U())), (0..k).map(|i| s.S()[i]).collect(), rows(s.V().transpose())),
        Err(_) => (nans(m * ku), nans(k), nans(kv * n)),
    }
}

fn det_one<T: Real>(a: &[T], n: usize) -> T {
    let (packed, pivots, _) = lu_one(a, n);
    let mut d = T::of(1.0);
    for i in 0..n {
        d *= packed[i * n + i];
        if pivots[i] != i as i64 {
            d = -d;
        }
    }
    d
}

/// `(V diag(f(w)) Vᵀ, f(w), V)` for the eigendecomposition of the symmetric `a` (NaN where
/// `f` is).
fn spectral_function<T: Real>(a: &[T], n: usize, f: impl Fn(f64) -> f64) -> (Vec<T>, Vec<T>, Vec<T>) {
    let (w, v) = eigh_one(a, n);
    let fw: Vec<T> = w.iter().map(|x| T::of(f(x.to64()))).collect();
    let vm = Mat::from_fn(n, n, |i, j| v[i * n + j]);
    let scaled = Mat::from_fn(n, n, |i, j| vm[(i, j)] * fw[j]);
    (rows(mul(scaled.as_ref(), vm.transpose()).as_ref()), fw, v)
}

/// `X` with `S X + X S = C` for a symmetric positive definite `S`, through `S`'s
/// eigendecomposition: `X = V ((Vᵀ C V) ⊘ (s_i + s_j)) Vᵀ`.
fn lyapunov_one<T: Real>(s: &[T], c: &[T], n: usize) -> Vec<T> {
    let (w, v) = eigh_one(s, n);
    let v = Mat::from_fn(n, n, |i, j| v[i * n + j]);
    let c = view(c, n, n);
    let mut m = mul(mul(v.transpose(), c).as_ref(), v.as_ref());
    for i in 0..n {
        for j in 0..n {
            m[(i, j)] /= w[i] + w[j];
        }
    }
    rows(mul(mul(v.as_ref(), m.as_ref()).as_ref(), v.transpose()).as_ref())
}

/// `X` with `S X + X S = C` by `iters` Newton–Schulz steps for the matrix sign of
/// `[[B, C₀], [0, -B]]`, `B = S/‖S‖_F`, `C₀ = C/(2‖S‖_F)`, whose top-right block tends to `X`:
/// `B ← B(3I - B²)/2`, `C ← (3C - B²C + BCB - CB²)/2`.
fn lyapunov_sign_one<T: Real>(s: &[T], c: &[T], n: usize, iters: usize) -> Vec<T> {
    let norm = s.iter().map(|v| v.to64() * v.to64()).sum::<f64>().sqrt();
    let mut b = Mat::from_fn(n, n, |i, j| T::of(s[i * n + j].to64() / norm));
    let mut x = Mat::from_fn(n, n, |i, j| T::of(c[i * n + j].to64() / (2.0 * norm)));
    let (half, three) = (T::of(0.5), T::of(3.0));
    for _ in 0..iters {
        let b2 = mul(b.as_ref(), b.as_ref());
        let b2x = mul(b2.as_ref(), x.as_ref());
        let bxb = mul(mul(b.as_ref(), x.as_ref()).as_ref(), b.as_ref());
        let xb2 = mul(x.as_ref(), b2.as_ref());
        x = Mat::from_fn(n, n, |i, j| half * (three * x[(i, j)] - b2x[(i, j)] + bxb[(i, j)] - xb2[(i, j)]));
        let t = Mat::from_fn(n, n, |i, j| if i == j { three - b2[(i, j)] } else { -b2[(i, j)] });
        let bt = mul(b.as_ref(), t.as_ref());
        b = Mat::from_fn(n, n, |i, j| half * bt[(i, j)]);
    }
    rows(x.as_ref())
}

/// Taylor coefficients of `(1 - z)^a`.
fn taylor(a: f64, terms: usize) -> Vec<f64> {
    let mut c = vec![1.0];
    for k in 1..terms {
        let prev = c[k - 1];
        c.push(prev * (k as f64 - 1.0 - a) / k as f64);
    }
    c
}

/// Numerator and denominator coefficients (in powers of `z`) of the series used by
/// `sqrtm_mtp` (denominator `[1]`) or `sqrtm_mpa` (the `[m/m]` Padé approximant), for
/// `(1 - z)^{1/2}` or `(1 - z)^{-1/2}`.
fn series(pade: bool, degree: usize, inverse: bool) -> (Vec<f64>, Vec<f64>) {
    let a = if inverse { -0.5 } else { 0.5 };
    if !pade {
        return (taylor(a, degree + 1), vec![1.0]);
    }
    let m = degree;
    let c = taylor(a, 2 * m + 1);
    // Σ_{j=1..m} q_j c_{m+i-j} = -c_{m+i}, i = 1..m; q_0 = 1.
    let sys = Mat::from_fn(m, m, |i, j| c[m + i - j]);
    let mut rhs = Mat::from_fn(m, 1, |i, _| -c[m + i + 1]);
    if m > 0 {
        sys.partial_piv_lu().solve_in_place(rhs.as_mut());
    }
    let q: Vec<f64> = std::iter::once(1.0).chain((0..m).map(|i| rhs[(i, 0)])).collect();
    let p = (0..=m).map(|i| (0..=i).map(|j| q[j] * c[i - j]).sum()).collect();
    (p, q)
}

/// `Σ coef_k Z^k` by Horner's rule.
fn poly<T: Real>(z: MatRef<'_, T>, coef: &[f64]) -> Mat<T> {
    let n = z.nrows();
    let mut acc =
        Mat::from_fn(n, n, |i, j| if i == j { T::of(*coef.last().expect("coefficients")) } else { T::of(0.0) });
    for &c in coef.iter().rev().skip(1) {
        acc = mul(acc.as_ref(), z);
        for i in 0..n {
            acc[(i, i)] += T::of(c);
        }
    }
    acc
}

/// `‖A‖^{±1/2} Q(Z)⁻¹ P(Z)` with `Z = I - A/‖A‖_F`.
fn sqrtm_series_one<T: Real>(a: &[T], n: usize, coef: &(Vec<f64>, Vec<f64>), inverse: bool) -> Vec<T> {
    let norm = a.iter().map(|v| v.to64() * v.to64()).sum::<f64>().sqrt();
    let z = Mat::from_fn(n, n, |i, j| {
        let v = -a[i * n + j].to64() / norm;
        T::of(if i == j { 1.0 + v } else { v })
    });
    let mut p = poly(z.as_ref(), &coef.0);
    if coef.1.len() > 1 {
        let q = poly(z.as_ref(), &coef.1);
        q.partial_piv_lu().solve_in_place(p.as_mut());
    }
    let scale = T::of(if inverse { 1.0 / norm.sqrt() } else { norm.sqrt() });
    rows(Mat::from_fn(n, n, |i, j| scale * p[(i, j)]).as_ref())
}

/// The matrix exponential by Padé 13 with scaling and squaring (Higham 2005).
fn expm_mat<T: Real>(a: MatRef<'_, T>) -> Mat<T> {
    const B: [f64; 14] = [
        64764752532480000.0,
        32382376266240000.0,
        7771770303897600.0,
        1187353796428800.0,
        129060195264000.0,
        10559470521600.0,
        670442572800.0,
        33522128640.0,
        1323241920.0,
        40840800.0,
        960960.0,
        16380.0,
        182.0,
        1.0,
    ];
    const THETA13: f64 = 5.371920351148152;
    let n = a.nrows();
    let norm1 = (0..n).map(|j| (0..n).map(|i| a[(i, j)].to64().abs()).sum::<f64>()).fold(0.0, f64::max);
    let s = if norm1 > THETA13 { (norm1 / THETA13).log2().ceil() as i32 } else { 0 };
    let scale = T::of(0.5f64.powi(s));
    let a = Mat::from_fn(n, n, |i, j| a[(i, j)] * scale);
    let ident = Mat::<T>::identity(n, n);
    let a2 = mul(a.as_ref(), a.as_ref());
    let a4 = mul(a2.as_ref(), a2.as_ref());
    let a6 = mul(a4.as_ref(), a2.as_ref());
    let b = |k: usize| T::of(B[k]);
    let comb = |c: [usize; 4]| {
        Mat::from_fn(n, n, |i, j| {
            b(c[0]) * a6[(i, j)] + b(c[1]) * a4[(i, j)] + b(c[2]) * a2[(i, j)] + b(c[3]) * ident[(i, j)]
        })
    };
    let inner_u = Mat::from_fn(n, n, |i, j| b(13) * a6[(i, j)] + b(11) * a4[(i, j)] + b(9) * a2[(i, j)]);
    let u_poly = mul(a6.as_ref(), inner_u.as_ref()) + comb([7, 5, 3, 1]);
    let u = mul(a.as_ref(), u_poly.as_ref());
    let inner_v = Mat::from_fn(n, n, |i, j| b(12) * a6[(i, j)] + b(10) * a4[(i, j)] + b(8) * a2[(i, j)]);
    let v = mul(a6.as_ref(), inner_v.as_ref()) + comb([6, 4, 2, 0]);
    let p = &v + &u;
    let q = &v - &u;
    let mut r = p.clone();
    q.partial_piv_lu().solve_in_place(r.as_mut());
    for _ in 0..s {
        r = mul(r.as_ref(), r.as_ref());
    }
    r
}

fn expm_one<T: Real>(a: &[T], n: usize) -> Vec<T> {
    rows(expm_mat(view(a, n, n)).as_ref())
}

/// The Fréchet derivative of expm at `a` in direction `e`: the top-right block of
/// `expm([[A, E], [0, A]])`.
fn expm_frechet_one<T: Real>(a: &[T], e: &[T], n: usize) -> Vec<T> {
    let (a, e) = (view(a, n, n), view(e, n, n));
    let big = Mat::from_fn(2 * n, 2 * n, |i, j| match (i < n, j < n) {
        (true, true) => a[(i, j)],
        (true, false) => e[(i, j - n)],
        (false, true) => T::of(0.0),
        (false, false) => a[(i - n, j - n)],
    });
    let x = expm_mat(big.as_ref());
    rows(x.as_ref().submatrix(0, n, n, n))
}

// ---------------------------------------------------------------------------------------
// Entry points.

macro_rules! by_dtype {
    ($x:expr, $f:ident ( $($arg:expr),* )) => {
        match &$x.data {
            Data::F32(v) => $f::<f32>(v, $($arg),*),
            Data::F64(v) => $f::<f64>(v, $($arg),*),
            d => panic!("linalg kernels take f32/f64, got {:?}", d.dtype()),
        }
    };
}

fn slice2<T: Real>(x: &Array) -> &[T]
where
    Data: AsSlice<T>,
{
    x.data.as_slice_of()
}

/// Access to a `Data`'s elements of a known type.
trait AsSlice<T> {
    fn as_slice_of(&self) -> &[T];
}
impl AsSlice<f32> for Data {
    fn as_slice_of(&self) -> &[f32] {
        match self {
            Data::F32(v) => v,
            d => panic!("expected f32 data, got {:?}", d.dtype()),
        }
    }
}
impl AsSlice<f64> for Data {
    fn as_slice_of(&self) -> &[f64] {
        match self {
            Data::F64(v) => v,
            d => panic!("expected f64 data, got {:?}", d.dtype()),
        }
    }
}

fn single<T: Real>(x: &[T], op: &LinalgOp, inputs: &[&Array], out: &TensorType) -> Data
where
    Data: AsSlice<T>,
{
    let (count, m, n) = dims(&inputs[0].shape);
    let size = m * n;
    let data: Vec<T> = match op {
        LinalgOp::Cholesky => concat(map_items(x, count, size, |a| cholesky_one(a, n))),
        LinalgOp::Expm => concat(map_items(x, count, size, |a| expm_one(a, n))),
        LinalgOp::Det => map_items(x, count, size, |a| det_one(a, n)),
        LinalgOp::TriangularSolve(o) => {
            let (_, rb, cb) = dims(&inputs[1].shape);
            let b = slice2::<T>(inputs[1]);
            // On one thread per matrix: faer's threaded solve (Par::rayon) of one 256×256 system
            // gained 5% on an idle second core but lost 30-80% when other processes held it.
            concat(map_pairs(x, b, count, (size, rb * cb), |a, b| triangular_solve_one(a, b, n, (rb, cb), *o)))
        }
        LinalgOp::Lyapunov { iters: 0 } => {
            let c = slice2::<T>(inputs[1]);
            concat(map_pairs(x, c, count, (size, size), |s, c| lyapunov_one(s, c, n)))
        }
        LinalgOp::Lyapunov { iters } => {
            let c = slice2::<T>(inputs[1]);
            concat(map_pairs(x, c, count, (size, size), |s, c| lyapunov_sign_one(s, c, n, *iters)))
        }
        LinalgOp::SqrtmApprox { pade, degree, inverse, .. } => {
            let coef = series(*pade, *degree, *inverse);
            concat(map_items(x, count, size, |a| sqrtm_series_one(a, n, &coef, *inverse)))
        }
        LinalgOp::ExpmFrechet => {
            let e = slice2::<T>(inputs[1]);
            concat(map_pairs(x, e, count, (size, size), |a, e| expm_frechet_one(a, e, n)))
        }
        LinalgOp::Eigh | LinalgOp::Lu | LinalgOp::Qr { .. } | LinalgOp::Svd { .. } | LinalgOp::Sqrtm { .. } => {
            unreachable!("{} has several results", op.name())
        }
    };
    debug_assert_eq!(data.len(), out.numel());
    T::wrap(data)
}

/// Runs a single-result linear algebra primitive.
pub(crate) fn kernel(op: &LinalgOp, inputs: &[&Array], out: &TensorType) -> Array {
    let data = by_dtype!(inputs[0], single(op, inputs, out));
    Array::new(out.shape.clone(), data)
}

fn multi<T: Real>(x: &[T], op: &LinalgOp, shape: &[usize]) -> Vec<Data> {
    let (count, m, n) = dims(shape);
    let size = m * n;
    match op {
        LinalgOp::Eigh => {
            let (w, v): (Vec<_>, Vec<_>) = map_items(x, count, size, |a| eigh_one(a, n)).into_iter().unzip();
            vec![T::wrap(concat(w)), T::wrap(concat(v))]
        }
        LinalgOp::Lu => {
            let parts = map_items(x, count, size, |a| lu_one(a, n));
            let (mut lu, mut piv, mut perm) = (vec![], vec![], vec![]);
            for (a, b, c) in parts {
                lu.extend(a);
                piv.extend(b);
                perm.extend(c);
            }
            vec![T::wrap(lu), Data::I64(piv), Data::I64(perm)]
        }
        LinalgOp::Qr { full } => {
            let (q, r): (Vec<_>, Vec<_>) = map_items(x, count, size, |a| qr_one(a, m, n, *full)).into_iter().unzip();
            vec![T::wrap(concat(q)), T::wrap(concat(r))]
        }
        LinalgOp::Svd { full } => {
            let parts = map_items(x, count, size, |a| svd_one(a, m, n, *full));
            let (mut u, mut s, mut vh) = (vec![], vec![], vec![]);
            for (a, b, c) in parts {
                u.extend(a);
                s.extend(b);
                vh.extend(c);
            }
            vec![T::wrap(u), T::wrap(s), T::wrap(vh)]
        }
        LinalgOp::Sqrtm { inverse } => {
            let inverse = *inverse;
            let parts = map_items(x, count, size, |a| {
                spectral_function(a, n, |w| if inverse { 1.0 / w.sqrt() } else { w.sqrt() })
            });
            let (mut sq, mut s, mut v) = (vec![], vec![], vec![]);
            for (a, b, c) in parts {
                sq.extend(a);
                s.extend(b);
                v.extend(c);
            }
            vec![T::wrap(sq), T::wrap(s), T::wrap(v)]
        }
        _ => unreachable!("{} has one result", op.name()),
    }
}

/// Runs a linear algebra primitive with several results; `outs` are its result types.
pub(crate) fn kernel_multi(op: &LinalgOp, inputs: &[&Array], outs: &[TensorType]) -> Vec<Array> {
    let x = inputs[0];
    let datas = by_dtype!(x, multi(op, &x.shape));
    datas.into_iter().zip(outs).map(|(d, t)| Array::new(t.shape.clone(), d)).collect()
}
