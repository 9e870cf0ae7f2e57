//! Linear algebra (issue 14): identities of the decompositions, known values, degenerate
//! points and errors. Derivatives of every primitive and composite are checked
//! generically by the op table (`tests/op_table.rs`, rows after "Linear algebra").

mod common;

use common::{assert_tensors_close as assert_close, f64s, panic_message, rel_err, Rng};
use cotangent::linalg::{self, MatrixNorm, TriangularSolve};
use cotangent::*;

/// A random symmetric positive definite batch `B Bᵀ + n I`.
fn spd(rng: &mut Rng, batch: &[usize], n: usize) -> Tensor {
    let shape = [batch, &[n, n]].concat();
    let b = rng.tensor(&shape, -1.0, 1.0);
    b.matmul(&b.swap_axes(-1, -2)) + Tensor::eye(n, DType::F64) * n as f64
}

fn eye(n: usize) -> Tensor {
    Tensor::eye(n, DType::F64)
}

fn mt(x: &Tensor) -> Tensor {
    x.swap_axes(-1, -2)
}

fn max_abs(x: &Tensor) -> f64 {
    x.to_f64_vec().iter().fold(0.0f64, |m, v| m.max(v.abs()))
}

#[test]
fn decompositions_reproduce_their_matrix() {
    let mut rng = Rng::new(1);
    let a = spd(&mut rng, &[3], 5);
    let g = rng.tensor(&[3, 5, 5], -1.0, 1.0);

    let l = linalg::cholesky(&a);
    assert_close(&l.matmul(&mt(&l)), &a, 1e-13, "L Lᵀ = A");
    assert_eq!(max_abs(&(&l * f64s(&upper_strict(5), &[5, 5]))), 0.0, "L is lower triangular");

    let (w, v) = linalg::eigh(&a);
    assert_close(&(&v * w.expand_dims(-2)).matmul(&mt(&v)), &a, 1e-13, "V diag(w) Vᵀ = A");
    assert_close(&mt(&v).matmul(&v), &eye(5).broadcast_to(&[3, 5, 5]), 1e-13, "Vᵀ V = I");
    let wv = w.to_f64_vec();
    assert!(wv.chunks(5).all(|c| c.windows(2).all(|p| p[0] <= p[1])), "eigenvalues ascending: {wv:?}");

    for (m, n) in [(6, 4), (4, 6), (5, 5)] {
        let x = rng.tensor(&[2, m, n], -1.0, 1.0);
        for complete in [false, true] {
            let (q, r) = linalg::qr(&x, complete);
            let k = q.shape()[2];
            assert_close(&q.matmul(&r), &x, 1e-13, &format!("Q R = A ({m}x{n}, complete={complete})"));
            assert_close(&mt(&q).matmul(&q), &eye(k).broadcast_to(&[2, k, k]), 1e-13, "Qᵀ Q = I");
        }
        let (u, s, vh) = linalg::svd(&x, false);
        assert_close(&(&u * s.expand_dims(-2)).matmul(&vh), &x, 1e-13, &format!("U diag(s) Vᵀ = A ({m}x{n})"));
        let (uf, sf, vhf) = linalg::svd(&x, true);
        assert_eq!((uf.shape(), vhf.shape()), (vec![2, m, m], vec![2, n, n]));
        assert_close(&sf, &s, 1e-13, "full and reduced singular values agree");
        assert_close(&mt(&uf).matmul(&uf), &eye(m).broadcast_to(&[2, m, m]), 1e-13, "full U orthogonal");
    }

    let (lu, pivots, perm) = linalg::lu(&g);
    let lower = lu.clone() * f64s(&lower_strict(5), &[5, 5]) + eye(5);
    let upper = &lu - &lu * f64s(&lower_strict(5), &[5, 5]);
    let pa = perm.one_hot(5, DType::F64).matmul(&g);
    assert_close(&lower.matmul(&upper), &pa, 1e-13, "L U = A[perm]");
    // Replaying the LAPACK swaps gives the permutation.
    for (p, q) in pivots.to_vec::<i64>().chunks(5).zip(perm.to_vec::<i64>().chunks(5)) {
        let mut rows: Vec<i64> = (0..5).collect();
        for (i, &j) in p.iter().enumerate() {
            rows.swap(i, j as usize);
        }
        assert_eq!(rows, q);
    }
}

fn lower_strict(n: usize) -> Vec<f64> {
    (0..n * n).map(|k| if k % n < k / n { 1.0 } else { 0.0 }).collect()
}

fn upper_strict(n: usize) -> Vec<f64> {
    (0..n * n).map(|k| if k % n > k / n { 1.0 } else { 0.0 }).collect()
}

#[test]
fn solves_and_inverses() {
    let mut rng = Rng::new(2);
    let a = rng.tensor(&[2, 4, 4], -1.0, 1.0) + eye(4) * 3.0;
    let b = rng.tensor(&[2, 4, 3], -1.0, 1.0);
    let x = linalg::solve(&a, &b);
    assert_close(&a.matmul(&x), &b, 1e-13, "A solve(A, B) = B");
    let bv = rng.tensor(&[2, 4], -1.0, 1.0);
    assert_close(&a.matmul(&linalg::solve(&a, &bv).expand_dims(-1)).squeeze(&[-1]), &bv, 1e-13, "vector rhs");
    assert_close(&a.matmul(&linalg::inv(&a)), &eye(4).broadcast_to(&[2, 4, 4]), 1e-13, "A inv(A) = I");

    // Every triangular solve variant against the dense solve with the masked matrix.
    let t = rng.tensor(&[4, 4], -1.0, 1.0) + eye(4) * 3.0;
    for bits in 0..16 {
        let o = TriangularSolve {
            left_side: bits & 1 != 0,
            lower: bits & 2 != 0,
            transpose_a: bits & 4 != 0,
            unit_diagonal: bits & 8 != 0,
        };
        let mask = if o.lower { lower_strict(4) } else { upper_strict(4) };
        let mut dense = &t * f64s(&mask, &[4, 4]);
        dense = if o.unit_diagonal { dense + eye(4) } else { dense + &t * eye(4) };
        let op = if o.transpose_a { mt(&dense) } else { dense };
        let rhs = rng.tensor(&[4, 2], -1.0, 1.0);
        let (x, check) = if o.left_side {
            let x = linalg::triangular_solve(&t, &rhs, o);
            (x.clone(), op.matmul(&x))
        } else {
            let rhs = mt(&rhs);
            let x = linalg::triangular_solve(&t, &rhs, o);
            (x.clone(), x.matmul(&op))
        };
        let rhs = if o.left_side { rhs } else { mt(&rhs) };
        assert_close(&check, &rhs, 1e-13, &format!("{o:?}"));
        let _ = x;
    }

    let tall = rng.tensor(&[6, 3], -1.0, 1.0);
    let y = rng.tensor(&[6], -1.0, 1.0);
    let c = linalg::lstsq(&tall, &y);
    // Normal equations: Aᵀ (A c − y) = 0.
    let resid = tall.matmul(&c) - &y;
    assert!(max_abs(&mt(&tall).matmul(&resid)) < 1e-13, "lstsq satisfies the normal equations");
    let wide = mt(&tall);
    let z = rng.tensor(&[3], -1.0, 1.0);
    let x = linalg::lstsq(&wide, &z);
    assert_close(&wide.matmul(&x), &z, 1e-13, "underdetermined lstsq solves exactly");
    assert_close(&x, &linalg::pinv(&wide, None).matmul(&z), 1e-12, "minimum-norm solution = pinv solution");
    let p = linalg::pinv(&tall, None);
    assert_close(&p.matmul(&tall), &eye(3), 1e-13, "pinv is a left inverse of a full-rank tall matrix");
}

#[test]
fn determinants() {
    let a = f64s(&[2.0, 1.0, 0.5, 1.0, 3.0, -1.0, 0.0, 2.0, 4.0], &[3, 3]);
    // Cofactor expansion: 2(12 + 2) - 1(4 - 0) + 0.5(2 - 0) = 25.
    assert!((linalg::det(&a).item::<f64>() - 25.0).abs() < 1e-12);
    let (sign, logabs) = linalg::slogdet(&(-&a));
    assert_eq!(sign.item::<f64>(), -1.0);
    assert!((logabs.item::<f64>() - 25f64.ln()).abs() < 1e-12);
    // grad det = det · inv(A)ᵀ for an invertible matrix.
    let g = grad(|a: &Tensor| linalg::det(a))(&a);
    assert_close(&g, &(mt(&linalg::inv(&a)) * 25.0), 1e-12, "grad det = adj(A)ᵀ");
    let g = grad(|a: &Tensor| linalg::slogdet(a).1)(&a);
    assert_close(&g, &mt(&linalg::inv(&a)), 1e-12, "grad log|det| = inv(A)ᵀ");
}

#[test]
fn known_values_from_the_issue() {
    let a = f64s(&[4.0, 2.0, 2.0, 3.0], &[2, 2]);
    assert!((linalg::logdet(&a).item::<f64>() - 2.0794415417).abs() < 1e-10);
    let g = grad(|a: &Tensor| linalg::logdet(a))(&a);
    assert_close(&g, &f64s(&[0.375, -0.25, -0.25, 0.5], &[2, 2]), 1e-12, "grad logdet = inv(A)ᵀ");
    assert_close(&g, &mt(&linalg::inv(&a)), 1e-12, "grad logdet = inv(A)ᵀ");

    let a = f64s(&[4.0, 1.0, 1.0, 3.0], &[2, 2]);
    let want = f64s(&[0.2200699323, 0.2359924080, 0.2359924080, 0.2549097304], &[2, 2]);
    let g = grad(|a: &Tensor| linalg::sqrtm(a).sum_all())(&a);
    assert!(rel_err(&g, &want) < 1e-9, "grad sum sqrtm (eigh): {g}");
    let g = grad(|a: &Tensor| linalg::sqrtm_newton_schulz(a, 25).0.sum_all())(&a);
    assert!(rel_err(&g, &want) < 1e-9, "grad sum sqrtm (Newton–Schulz): {g}");
    // The same through jit, f32.
    let g32 = jit(grad(|a: &Tensor| linalg::sqrtm(a).sum_all()))(&a.cast(DType::F32));
    assert!(rel_err(&g32.cast(DType::F64), &want) < 1e-5, "f32 under jit: {g32}");
}

#[test]
fn matrix_functions() {
    let mut rng = Rng::new(3);
    let a = spd(&mut rng, &[2], 6);
    let s = linalg::sqrtm(&a);
    assert_close(&s.matmul(&s), &a, 1e-13, "sqrtm(A)² = A");
    let r = linalg::inv_sqrtm(&a);
    assert_close(&r.matmul(&a).matmul(&r), &eye(6).broadcast_to(&[2, 6, 6]), 1e-12, "A^{-1/2} A A^{-1/2} = I");
    let (sn, rn) = linalg::sqrtm_newton_schulz(&a, 30);
    assert_close(&sn, &s, 1e-12, "Newton–Schulz sqrt");
    assert_close(&rn, &r, 1e-12, "Newton–Schulz inverse sqrt");

    for inverse in [false, true] {
        let want = if inverse { &r } else { &s };
        let mpa = linalg::sqrtm_mpa(&a, 10, inverse, 30);
        assert!(rel_err(&mpa, want) < 1e-10, "MPA [10/10] (inverse={inverse}): {}", rel_err(&mpa, want));
        let mtp = linalg::sqrtm_mtp(&a, 200, inverse, 30);
        assert!(rel_err(&mtp, want) < 1e-8, "MTP 200 (inverse={inverse}): {}", rel_err(&mtp, want));
        // Their gradients use the iterative Lyapunov solve; compare with the exact form's.
        let g = |f: &dyn Fn(&Tensor) -> Tensor| grad(|a: &Tensor| f(a).sum_all())(&a);
        let exact = g(&|a| if inverse { linalg::inv_sqrtm(a) } else { linalg::sqrtm(a) });
        let approx = g(&|a| linalg::sqrtm_mpa(a, 10, inverse, 30));
        assert!(rel_err(&approx, &exact) < 1e-9, "MPA gradient (inverse={inverse}): {}", rel_err(&approx, &exact));
    }

    // expm against its series for a small matrix, and a large-norm case against
    // exp(a) e^{...} of a diagonalisable (symmetric) matrix.
    let x = rng.tensor(&[4, 4], -0.5, 0.5);
    let mut term = eye(4);
    let mut series = eye(4);
    for k in 1..30 {
        term = term.matmul(&x) / k as f64;
        series = series + &term;
    }
    assert_close(&linalg::expm(&x), &series, 1e-14, "expm vs series");
    let big = spd(&mut rng, &[], 4) * 2.0;
    let (w, v) = linalg::eigh(&big);
    let want = (&v * w.exp().expand_dims(-2)).matmul(&mt(&v));
    assert_close(&linalg::expm(&big), &want, 1e-12, "expm with scaling and squaring vs eigh");
    // expm(A) expm(-A) = I.
    let y = rng.tensor(&[3, 3], -3.0, 3.0);
    assert_close(&linalg::expm(&y).matmul(&linalg::expm(&(-&y))), &eye(3), 1e-11, "expm(A) expm(-A) = I");

    assert_close(&linalg::matrix_power(&x, 3), &x.matmul(&x).matmul(&x), 1e-14, "matrix_power 3");
    assert_close(&linalg::matrix_power(&a, -1), &linalg::inv(&a), 1e-14, "matrix_power -1");
    let n = linalg::matrix_norm(&x, MatrixNorm::Spectral).item::<f64>();
    let (_, sv, _) = linalg::svd(&x, false);
    assert_eq!(n, sv.to_f64_vec()[0]);
    let nuc = linalg::matrix_norm(&x, MatrixNorm::Nuclear).item::<f64>();
    assert!((nuc - sv.sum_all().item::<f64>()).abs() < 1e-14);
}

#[test]
fn f32_works_everywhere() {
    let mut rng = Rng::new(4);
    let a = spd(&mut rng, &[2], 4).cast(DType::F32);
    let l = linalg::cholesky(&a);
    assert_eq!(l.dtype(), DType::F32);
    assert!(rel_err(&l.matmul(&mt(&l)), &a) < 1e-6);
    let (w, v) = linalg::eigh(&a);
    assert!(rel_err(&(&v * w.expand_dims(-2)).matmul(&mt(&v)), &a) < 1e-6);
    let (u, s, vh) = linalg::svd(&a, false);
    assert!(rel_err(&(&u * s.expand_dims(-2)).matmul(&vh), &a) < 1e-6);
    let (q, r) = linalg::qr(&a, false);
    assert!(rel_err(&q.matmul(&r), &a) < 1e-6);
    assert!(rel_err(&a.matmul(&linalg::inv(&a)), &Tensor::eye(4, DType::F32).broadcast_to(&[2, 4, 4])) < 1e-5);
    let g = grad(|a: &Tensor| linalg::logdet(a).sum_all())(&a);
    assert!(rel_err(&g, &mt(&linalg::inv(&a))) < 1e-5);
}

#[test]
fn degenerate_points() {
    // Repeated eigenvalues: the identity (all equal) and diag(2, 2, 5).
    for a in [eye(3) * 2.0, f64s(&[2.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 5.0], &[3, 3])] {
        let g = grad(|a: &Tensor| linalg::eigh(a).0.sum_all())(&a);
        assert_close(&g, &eye(3), 1e-14, "grad of the sum of eigenvalues is I");
        let g = grad(|a: &Tensor| linalg::eigh(a).0.exp().sum_all())(&a);
        // d tr exp(A) = exp(A) (symmetric).
        assert_close(&g, &linalg::expm(&a), 1e-12, "grad of Σ exp(wᵢ) = expm(A)");
        let g = grad(|a: &Tensor| linalg::sqrtm(a).sum_all())(&a);
        assert!(g.to_f64_vec().iter().all(|v| v.is_finite()), "sqrtm gradient finite at repeated eigenvalues");
        // d Σ sqrtm(A) at a diagonal A: (1 1ᵀ) ⊘ (√aᵢ + √aⱼ).
        let d: Vec<f64> = a.to_f64_vec().iter().step_by(4).map(|x| x.sqrt()).collect();
        let want: Vec<f64> = (0..9).map(|k| 1.0 / (d[k / 3] + d[k % 3])).collect();
        assert_close(&g, &f64s(&want, &[3, 3]), 1e-12, "Daleckii–Krein at repeated eigenvalues");
        let g = grad(|a: &Tensor| linalg::logdet(a))(&a);
        assert_close(&g, &linalg::inv(&a), 1e-14, "grad logdet at repeated eigenvalues");
        // Eigenvector gradients there are basis-dependent but stay finite.
        let g = grad(|a: &Tensor| linalg::eigh(a).1.square().sum_all())(&a);
        assert!(g.to_f64_vec().iter().all(|v| v.is_finite()));
    }
    // Repeated singular values: the nuclear norm of an orthogonal matrix (all s = 1).
    let q = linalg::qr(&Rng::new(5).tensor(&[4, 4], -1.0, 1.0), false).0;
    let g = grad(|a: &Tensor| linalg::matrix_norm(a, MatrixNorm::Nuclear))(&q);
    // d Σ s = U Vᵀ, which for an orthogonal matrix is the matrix itself.
    assert_close(&g, &q, 1e-12, "nuclear norm gradient at repeated singular values");

    // Singular matrices: det's gradient is the adjugate, finite.
    let s = f64s(&[1.0, 2.0, 3.0, 2.0, 4.0, 6.0, 1.0, 0.0, 1.0], &[3, 3]);
    assert!(linalg::det(&s).item::<f64>().abs() < 1e-12);
    let g = grad(|a: &Tensor| linalg::det(a))(&s);
    // Cofactors of s: C_ij = (-1)^{i+j} M_ij.
    let want = f64s(&[4.0, 4.0, -4.0, -2.0, -2.0, 2.0, 0.0, 0.0, 0.0], &[3, 3]);
    assert_close(&g, &want, 1e-12, "grad det at a singular matrix = cofactor matrix");
    let inv = linalg::inv(&f64s(&[1.0, 2.0, 2.0, 4.0], &[2, 2]));
    assert!(inv.to_f64_vec().iter().any(|v| !v.is_finite()), "inv of a singular matrix is not finite: {inv}");
}

#[test]
fn not_positive_definite() {
    let a = f64s(&[1.0, 2.0, 2.0, 1.0], &[2, 2]); // eigenvalues 3, -1
    for (name, f) in [
        ("cholesky", &(|a: &Tensor| linalg::cholesky(a)) as &dyn Fn(&Tensor) -> Tensor),
        ("logdet", &|a: &Tensor| linalg::logdet(a)),
        ("sqrtm", &|a: &Tensor| linalg::sqrtm(a)),
        ("inv_sqrtm", &|a: &Tensor| linalg::inv_sqrtm(a)),
    ] {
        let msg = panic_message(std::panic::AssertUnwindSafe(|| f(&a)));
        assert!(msg.contains(name) && msg.contains("not symmetric positive definite"), "{name}: {msg}");
        // Inside jit the values are unknown while tracing: NaN-filled results.
        let y = jit(|a: &Tensor| f(a))(&a);
        assert!(y.to_f64_vec().iter().any(|v| v.is_nan()), "{name} under jit: {y}");
    }
    // vmap over a batch with one bad matrix: only that one is NaN.
    let batch = stack(&[eye(2) * 4.0, a.clone()], 0);
    let l = vmap(|a: &Tensor| linalg::cholesky(a))(&batch);
    let v = l.to_f64_vec();
    assert_eq!(&v[..4], &[2.0, 0.0, 0.0, 2.0]);
    assert!(v[4..].iter().all(|x| x.is_nan()));
}

#[test]
fn shape_errors_name_the_operation() {
    let m = Tensor::zeros(&[2, 3], DType::F64);
    assert!(panic_message(|| linalg::cholesky(&m)).contains("cholesky: expects f32/f64 square matrices"));
    let i = Tensor::zeros(&[2, 2], DType::I64);
    assert!(panic_message(|| linalg::det(&i)).contains("det"));
    let a = eye(3);
    let b = Tensor::zeros(&[2, 1], DType::F64);
    assert!(panic_message(|| linalg::solve(&a, &b)).contains("solve"));
    let o = TriangularSolve { left_side: true, lower: true, ..Default::default() };
    assert!(panic_message(|| linalg::triangular_solve(&a, &b, o)).contains("triangular_solve"));
}

#[test]
fn batched_and_jitted_decompositions_agree_with_single_ones() {
    let mut rng = Rng::new(6);
    let a = spd(&mut rng, &[2, 3], 4);
    let per = |f: &dyn Fn(&Tensor) -> Tensor| {
        let mut outs = vec![];
        for i in 0..2 {
            for j in 0..3 {
                outs.push(f(&a.index(i as isize).index(j as isize)));
            }
        }
        stack(&outs, 0).reshape(&[2, 3, -1])
    };
    let f = |a: &Tensor| {
        let (w, _) = linalg::eigh(a);
        let (_, s, _) = linalg::svd(a, false);
        concatenate(&[w, s, linalg::cholesky(a).flatten_last(), linalg::sqrtm(a).flatten_last()], -1)
    };
    let whole = f(&a);
    let looped = per(&|m: &Tensor| f(m));
    assert_close(&whole, &looped, 0.0, "batched kernels vs one matrix at a time");
    assert_close(&jit(f)(&a), &whole, 0.0, "jit vs eager");
}

trait FlattenLast {
    fn flatten_last(&self) -> Tensor;
}
impl FlattenLast for Tensor {
    fn flatten_last(&self) -> Tensor {
        let s = self.shape();
        let mut t: Vec<isize> = s[..s.len() - 2].iter().map(|&d| d as isize).collect();
        t.push(-1);
        self.reshape(&t)
    }
}
