//! Indexing (gather, scatter-add, dynamic slices) and contraction (dot_general and
//! everything built on it) on known values, in f32 and f64.

use cotangent::ops::Prim;
use cotangent::trace::bind;
use cotangent::*;

const FLOATS: [DType; 2] = [DType::F32, DType::F64];

/// A tensor of `dtype` holding `v` (exact small values, so f32 is exact too).
fn t(v: &[f64], shape: &[usize], dtype: DType) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape).cast(dtype)
}

fn idx(v: &[i64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape)
}

/// Checks dtype, shape and values exactly.
#[track_caller]
fn check(x: &Tensor, dtype: DType, shape: &[usize], want: &[f64]) {
    assert_eq!(x.dtype(), dtype, "dtype");
    assert_eq!(x.shape(), shape.to_vec(), "shape");
    assert_eq!(x.to_f64_vec(), want.to_vec(), "values");
}

/// `0, 1, 2, ...` as a tensor of `shape`.
fn range(shape: &[usize], dtype: DType) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|i| i as f64).collect();
    t(&v, shape, dtype)
}

/// Deterministic pseudo-random values in [-1, 1).
fn noise(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

/// Naive row-major `[b, m, k] @ [b, k, n]` in f64.
fn naive_bmm(a: &[f64], b: &[f64], bs: usize, m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut out = vec![0.0; bs * m * n];
    for q in 0..bs {
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0;
                for p in 0..k {
                    acc += a[(q * m + i) * k + p] * b[(q * k + p) * n + j];
                }
                out[(q * m + i) * n + j] = acc;
            }
        }
    }
    out
}

#[track_caller]
fn assert_close(got: &[f64], want: &[f64], rel: f64) {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(1.0f64, |m, w| m.max(w.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= rel * scale, "element {i}: got {g}, want {w} (rel {rel})");
    }
}

// ---------------------------------------------------------------- gather / take

#[test]
fn take_axis0_and_axis1() {
    for dt in FLOATS {
        let x = range(&[3, 4], dt);
        let rows = x.take(&idx(&[2, 0, 2], &[3]), 0);
        check(&rows, dt, &[3, 4], &[8., 9., 10., 11., 0., 1., 2., 3., 8., 9., 10., 11.]);
        let cols = x.take(&idx(&[3, 1], &[2]), 1);
        check(&cols, dt, &[3, 2], &[3., 1., 7., 5., 11., 9.]);
        let cols = x.take(&idx(&[3, 1], &[2]), -1);
        check(&cols, dt, &[3, 2], &[3., 1., 7., 5., 11., 9.]);
    }
}

#[test]
fn take_multi_dim_indices() {
    for dt in FLOATS {
        // x: [2, 3, 2]; indices [2, 2] along axis 1 -> out [2, 2, 2, 2].
        let x = range(&[2, 3, 2], dt);
        let i = Tensor::from_vec(vec![0i32, 2, 1, 1], &[2, 2]);
        let y = x.take(&i, 1);
        check(
            &y,
            dt,
            &[2, 2, 2, 2],
            &[
                0., 1., 4., 5., 2., 3., 2., 3., // first operand row
                6., 7., 10., 11., 8., 9., 8., 9., // second
            ],
        );
        // Scalar index removes the axis.
        let s = x.take(&Tensor::scalar(2i64), 1);
        check(&s, dt, &[2, 2], &[4., 5., 10., 11.]);
    }
}

#[test]
fn take_clamps_out_of_range_indices() {
    for dt in FLOATS {
        let x = t(&[10., 20., 30.], &[3], dt);
        let y = x.take(&idx(&[-5, -1, 0, 2, 3, 100], &[6]), 0);
        check(&y, dt, &[6], &[10., 10., 10., 30., 30., 30.]);
        let i32_idx = Tensor::from_vec(vec![i32::MIN, i32::MAX, 1], &[3]);
        check(&x.take(&i32_idx, 0), dt, &[3], &[10., 30., 20.]);
    }
}

#[test]
fn take_other_dtypes() {
    let x = Tensor::from_vec(vec![true, false, true], &[3]);
    assert_eq!(x.take(&idx(&[1, 2, 1], &[3]), 0).to_vec::<bool>(), vec![false, true, false]);
    let x = Tensor::from_vec(vec![5i32, 6, 7], &[3]);
    assert_eq!(x.take(&idx(&[2, 0], &[2]), 0).to_vec::<i32>(), vec![7, 5]);
    let x = Tensor::from_vec(vec![5i64, 6, 7], &[3]);
    assert_eq!(x.take(&idx(&[1], &[1]), 0).to_vec::<i64>(), vec![6]);
    // Empty indices give an empty result.
    let x = range(&[3, 2], DType::F64);
    check(&x.take(&idx(&[], &[0]), 0), DType::F64, &[0, 2], &[]);
}

#[test]
fn gather_with_batch_dims() {
    for dt in FLOATS {
        // batch_dims = 1, axis = 1: x [2, 3], indices [2, 2] -> out [2, 2].
        let x = range(&[2, 3], dt);
        let i = idx(&[2, 0, 1, 1], &[2, 2]);
        check(&x.gather(&i, 1, 1), dt, &[2, 2], &[2., 0., 4., 4.]);

        // batch_dims = 1, axis = 2 with a "p" axis before and an "s" axis after:
        // x [2, 2, 3, 2], indices [2, 1] -> out [2, 2, 1, 2].
        let x = range(&[2, 2, 3, 2], dt);
        let i = idx(&[2, 1], &[2, 1]);
        let y = x.gather(&i, 2, 1);
        // b=0 picks n=2: p=0 -> [4, 5], p=1 -> [10, 11];
        // b=1 picks n=1: p=0 -> [14, 15], p=1 -> [20, 21].
        check(&y, dt, &[2, 2, 1, 2], &[4., 5., 10., 11., 14., 15., 20., 21.]);

        // batch_dims = 2 with clamping.
        let x = range(&[2, 2, 3], dt);
        let i = idx(&[0, 9, -1, 1], &[2, 2]);
        check(&x.gather(&i, 2, 2), dt, &[2, 2], &[0., 5., 6., 10.]);
    }
}

#[test]
fn take_along_axis_known_values() {
    for dt in FLOATS {
        let x = t(&[4., 1., 3., 9., 7., 8.], &[2, 3], dt);
        // Along the last axis (argsort-like indices).
        let i = idx(&[1, 2, 0, 1, 2, 0], &[2, 3]);
        check(&x.take_along_axis(&i, 1), dt, &[2, 3], &[1., 3., 4., 7., 8., 9.]);
        // Along axis 0.
        let i = idx(&[1, 0, 1], &[1, 3]);
        check(&x.take_along_axis(&i, 0), dt, &[1, 3], &[9., 1., 8.]);
        // Negative axis.
        let i = idx(&[2, 0], &[2, 1]);
        check(&x.take_along_axis(&i, -1), dt, &[2, 1], &[3., 9.]);
    }
}

#[test]
fn one_hot_known_values() {
    for dt in FLOATS {
        let y = idx(&[1, 0, 3], &[3]).one_hot(4, dt);
        check(&y, dt, &[3, 4], &[0., 1., 0., 0., 1., 0., 0., 0., 0., 0., 0., 1.]);
        // Out-of-range labels encode as all zeros.
        let y = Tensor::from_vec(vec![-1i32, 2, 5], &[3]).one_hot(3, dt);
        check(&y, dt, &[3, 3], &[0., 0., 0., 0., 0., 1., 0., 0., 0.]);
    }
}

// ---------------------------------------------------------------- scatter_add

#[test]
fn scatter_add_accumulates_and_drops() {
    for dt in FLOATS {
        let z = t(&[1., 1., 1., 1.], &[4], dt);
        let i = idx(&[0, 2, 0, -1, 4, 0, 3], &[7]);
        let u = t(&[1., 2., 3., 100., 200., 4., 5.], &[7], dt);
        check(&z.scatter_add(&i, &u, 0), dt, &[4], &[9., 1., 3., 6.]);
    }
}

#[test]
fn scatter_add_along_axis1_with_multi_dim_indices() {
    for dt in FLOATS {
        // x [2, 3], indices [2, 2] along axis 1 -> updates [2, 2, 2].
        let x = t(&[0.; 6], &[2, 3], dt);
        let i = idx(&[0, 2, 2, 7], &[2, 2]);
        let u = range(&[2, 2, 2], dt) + 1.0;
        // row 0: u[0] = [[1, 2], [3, 4]] at columns [[0, 2], [2, dropped]].
        // row 1: u[1] = [[5, 6], [7, 8]] likewise.
        let y = x.scatter_add(&i, &u, 1);
        check(&y, dt, &[2, 3], &[1., 0., 5., 5., 0., 13.]);
    }
}

#[test]
fn scatter_add_is_the_transpose_of_take() {
    // <take(x, i), u> == <x, scatter_add(0, i, u)> on a 2-D operand with repeats.
    let x = Tensor::from_vec(noise(12, 1), &[4, 3]);
    let i = idx(&[3, 0, 3, 1, 3], &[5]);
    let u = Tensor::from_vec(noise(15, 2), &[5, 3]);
    let lhs: f64 = x.take(&i, 0).to_f64_vec().iter().zip(u.to_f64_vec()).map(|(a, b)| a * b).sum();
    let s = x.zeros_like().scatter_add(&i, &u, 0);
    let rhs: f64 = x.to_f64_vec().iter().zip(s.to_f64_vec()).map(|(a, b)| a * b).sum();
    assert!((lhs - rhs).abs() < 1e-12, "{lhs} vs {rhs}");
}

#[test]
fn scatter_add_with_batch_dims_and_integers() {
    for dt in [DType::F32, DType::F64, DType::I32, DType::I64] {
        // operand [2, 3], indices [2, 2] with batch_dims = 1, updates [2, 2].
        let x = t(&[1., 1., 1., 1., 1., 1.], &[2, 3], dt);
        let i = idx(&[2, 2, 0, 3], &[2, 2]);
        let u = t(&[10., 20., 30., 40.], &[2, 2], dt);
        let y = bind(Prim::ScatterAdd { axis: 1, batch_dims: 1 }, &[&x, &i, &u]);
        check(&y, dt, &[2, 3], &[1., 1., 31., 31., 1., 1.]);
    }
    // Bools combine with logical or.
    let x = Tensor::from_vec(vec![false, true, false], &[3]);
    let u = Tensor::from_vec(vec![true, false], &[2]);
    let y = x.scatter_add(&idx(&[0, 1], &[2]), &u, 0);
    assert_eq!(y.to_vec::<bool>(), vec![true, true, false]);
}

// ---------------------------------------------------------------- dynamic slices

#[test]
fn dynamic_slice_known_values_and_clamping() {
    for dt in FLOATS {
        let x = range(&[3, 4], dt);
        let w = x.dynamic_slice(&[Tensor::scalar(1i64), Tensor::scalar(2i32)], &[2, 2]);
        check(&w, dt, &[2, 2], &[6., 7., 10., 11.]);
        // Starts clamp into [0, shape - size].
        let w = x.dynamic_slice(&[Tensor::scalar(5i64), Tensor::scalar(-3i64)], &[2, 3]);
        check(&w, dt, &[2, 3], &[4., 5., 6., 8., 9., 10.]);
        // Whole array: any start clamps to 0.
        let w = x.dynamic_slice(&[Tensor::scalar(7i64), Tensor::scalar(7i64)], &[3, 4]);
        check(&w, dt, &[3, 4], &x.to_f64_vec());
        // Empty window.
        let w = x.dynamic_slice(&[Tensor::scalar(1i64), Tensor::scalar(1i64)], &[0, 2]);
        check(&w, dt, &[0, 2], &[]);
    }
}

#[test]
fn dynamic_update_slice_known_values_and_clamping() {
    for dt in FLOATS {
        let x = t(&[0.; 12], &[3, 4], dt);
        let u = t(&[1., 2., 3., 4.], &[2, 2], dt);
        let y = x.dynamic_update_slice(&u, &[Tensor::scalar(1i64), Tensor::scalar(1i32)]);
        check(&y, dt, &[3, 4], &[0., 0., 0., 0., 0., 1., 2., 0., 0., 3., 4., 0.]);
        // Clamped: row start 9 -> 1, column start -2 -> 0.
        let y = x.dynamic_update_slice(&u, &[Tensor::scalar(9i64), Tensor::scalar(-2i64)]);
        check(&y, dt, &[3, 4], &[0., 0., 0., 0., 1., 2., 0., 0., 3., 4., 0., 0.]);
        // The operand itself is unchanged.
        assert_eq!(x.to_f64_vec(), vec![0.; 12]);
    }
    // Other dtypes.
    let x = Tensor::from_vec(vec![false; 4], &[4]);
    let u = Tensor::from_vec(vec![true, true], &[2]);
    let y = x.dynamic_update_slice(&u, &[Tensor::scalar(3i64)]);
    assert_eq!(y.to_vec::<bool>(), vec![false, false, true, true]);
    let x = Tensor::from_vec(vec![1i32, 2, 3], &[3]);
    let y = x.dynamic_update_slice(&Tensor::from_vec(vec![9i32], &[1]), &[Tensor::scalar(0i64)]);
    assert_eq!(y.to_vec::<i32>(), vec![9, 2, 3]);
}

// ---------------------------------------------------------------- dot_general

#[test]
fn dot_general_batch_and_several_contracting_dims() {
    // lhs [c0=2, b=3, f=2, c1=4], rhs [c1=4, g=5, b=3, c0=2].
    // out[b, f, g] = sum_{c0, c1} lhs[c0, b, f, c1] * rhs[c1, g, b, c0].
    let lv = noise(2 * 3 * 2 * 4, 10);
    let rv = noise(4 * 5 * 3 * 2, 11);
    let mut want = vec![0.0; 3 * 2 * 5];
    for b in 0..3 {
        for f in 0..2 {
            for g in 0..5 {
                let mut acc = 0.0;
                for c0 in 0..2 {
                    for c1 in 0..4 {
                        acc += lv[((c0 * 3 + b) * 2 + f) * 4 + c1] * rv[((c1 * 5 + g) * 3 + b) * 2 + c0];
                    }
                }
                want[(b * 2 + f) * 5 + g] = acc;
            }
        }
    }
    for dt in FLOATS {
        let l = Tensor::from_vec(lv.clone(), &[2, 3, 2, 4]).cast(dt);
        let r = Tensor::from_vec(rv.clone(), &[4, 5, 3, 2]).cast(dt);
        let y = dot_general(&l, &r, (&[0, 3], &[3, 0]), (&[1], &[2]));
        assert_eq!(y.dtype(), dt);
        assert_eq!(y.shape(), vec![3, 2, 5]);
        let tol = if dt == DType::F32 { 1e-5 } else { 1e-14 };
        assert_close(&y.to_f64_vec(), &want, tol);
    }
}

#[test]
fn dot_general_known_small_values() {
    for dt in FLOATS {
        let a = t(&[1., 2., 3., 4., 5., 6.], &[2, 3], dt);
        let b = t(&[1., 0., -1., 2., 1., 0.], &[3, 2], dt);
        // Contract a's axis 0 with b's... a^T-like: [2,3] with [2,3]^T contracting axis 0 of both.
        let c = t(&[1., 1., 1., 2., 2., 2.], &[2, 3], dt);
        let y = dot_general(&a, &c, (&[0], &[0]), (&[], &[]));
        // y[i, j] = sum_k a[k, i] c[k, j] = a[0,i] + 2 a[1,i]
        check(&y, dt, &[3, 3], &[9., 9., 9., 12., 12., 12., 15., 15., 15.]);
        let y = dot_general(&a, &b, (&[1], &[0]), (&[], &[]));
        check(&y, dt, &[2, 2], &[2., 4., 5., 10.]);
        // Contract everything: a full inner product.
        let y = dot_general(&a, &c, (&[0, 1], &[0, 1]), (&[], &[]));
        check(&y, dt, &[], &[6. + 30.]);
        // Batch only: an element-wise product.
        let y = dot_general(&a, &c, (&[], &[]), (&[0, 1], &[0, 1]));
        check(&y, dt, &[2, 3], &[1., 2., 3., 8., 10., 12.]);
    }
}

#[test]
fn dot_general_integers_wrap() {
    let a = Tensor::from_vec(vec![1i32, 2, 3, 4], &[2, 2]);
    let b = Tensor::from_vec(vec![5i32, 6, 7, 8], &[2, 2]);
    assert_eq!(a.matmul(&b).to_vec::<i32>(), vec![19, 22, 43, 50]);
    let a = Tensor::from_vec(vec![1i64, 2, 3, 4], &[2, 2]);
    let b = Tensor::from_vec(vec![5i64, 6, 7, 8], &[2, 2]);
    assert_eq!(a.matmul(&b).to_vec::<i64>(), vec![19, 22, 43, 50]);
    let big = Tensor::from_vec(vec![i32::MAX, 1], &[2]);
    let two = Tensor::from_vec(vec![2i32, 2], &[2]);
    assert_eq!(big.dot(&two).item::<i32>(), i32::MAX.wrapping_mul(2).wrapping_add(2));
}

// ---------------------------------------------------------------- matmul and friends

#[test]
fn matmul_shapes_and_values() {
    for dt in FLOATS {
        let a = t(&[1., 2., 3., 4., 5., 6.], &[2, 3], dt);
        let b = t(&[7., 8., 9., 10., 11., 12.], &[3, 2], dt);
        check(&a.matmul(&b), dt, &[2, 2], &[58., 64., 139., 154.]);
        let v3 = t(&[1., 0., -1.], &[3], dt);
        let v2 = t(&[1., -1.], &[2], dt);
        // 1-D @ 2-D and 2-D @ 1-D.
        check(&v2.matmul(&a), dt, &[3], &[-3., -3., -3.]);
        check(&a.matmul(&v3), dt, &[2], &[-2., -2.]);
        // 1-D @ 1-D.
        check(&v3.matmul(&v3), dt, &[], &[2.]);
        check(&v3.dot(&t(&[4., 5., 6.], &[3], dt)), dt, &[], &[-2.]);
        check(&a.dot(&b), dt, &[2, 2], &[58., 64., 139., 154.]);
    }
}

#[test]
fn matmul_batched_with_broadcasting() {
    for dt in FLOATS {
        // [2, 1, 2, 3] @ [3, 3, 2] -> [2, 3, 2, 2].
        let av = noise(2 * 2 * 3, 20);
        let bv = noise(3 * 3 * 2, 21);
        let a = Tensor::from_vec(av.clone(), &[2, 1, 2, 3]).cast(dt);
        let b = Tensor::from_vec(bv.clone(), &[3, 3, 2]).cast(dt);
        let y = a.matmul(&b);
        assert_eq!(y.shape(), vec![2, 3, 2, 2]);
        let mut want = Vec::new();
        for i in 0..2 {
            for j in 0..3 {
                want.extend(naive_bmm(&av[i * 6..(i + 1) * 6], &bv[j * 6..(j + 1) * 6], 1, 2, 3, 2));
            }
        }
        let tol = if dt == DType::F32 { 1e-6 } else { 1e-15 };
        assert_close(&y.to_f64_vec(), &want, tol);

        // Batched matrix @ vector and vector @ batched matrix.
        let m = range(&[2, 2, 3], dt);
        let v = t(&[1., 1., 1.], &[3], dt);
        check(&m.matmul(&v), dt, &[2, 2], &[3., 12., 21., 30.]);
        let w = t(&[1., -1.], &[2], dt);
        check(&w.matmul(&m), dt, &[2, 3], &[-3., -3., -3., -3., -3., -3.]);
    }
}

#[test]
fn matmul_matches_naive_f64() {
    let (m, k, n) = (37, 53, 29);
    let av = noise(m * k, 30);
    let bv = noise(k * n, 31);
    let a = Tensor::from_vec(av.clone(), &[m, k]);
    let b = Tensor::from_vec(bv.clone(), &[k, n]);
    let want = naive_bmm(&av, &bv, 1, m, k, n);
    assert_close(&a.matmul(&b).to_f64_vec(), &want, 1e-12);
    // Transposed operands go through the permuting path.
    let at = a.t();
    let y = dot_general(&at, &b, (&[0], &[0]), (&[], &[]));
    assert_close(&y.to_f64_vec(), &want, 1e-12);
    let bt = b.t();
    let y = dot_general(&a, &bt, (&[1], &[1]), (&[], &[]));
    assert_close(&y.to_f64_vec(), &want, 1e-12);
    // f32 against the same reference, loosely.
    let y = a.cast(DType::F32).matmul(&b.cast(DType::F32));
    assert_close(&y.to_f64_vec(), &want, 1e-5);
}

#[test]
fn matmul_batched_matches_naive_f64() {
    let (bs, m, k, n) = (3, 17, 40, 23);
    let av = noise(bs * m * k, 40);
    let bv = noise(bs * k * n, 41);
    let a = Tensor::from_vec(av.clone(), &[bs, m, k]);
    let b = Tensor::from_vec(bv.clone(), &[bs, k, n]);
    let want = naive_bmm(&av, &bv, bs, m, k, n);
    assert_close(&a.matmul(&b).to_f64_vec(), &want, 1e-12);
    assert_close(&einsum("bij,bjk->bik", &[&a, &b]).to_f64_vec(), &want, 1e-12);
}

#[test]
fn matmul_large_enough_to_run_in_parallel_is_deterministic() {
    let (m, k, n) = (80, 70, 90);
    let av = noise(m * k, 50);
    let bv = noise(k * n, 51);
    let a = Tensor::from_vec(av.clone(), &[m, k]);
    let b = Tensor::from_vec(bv.clone(), &[k, n]);
    let y = a.matmul(&b).to_f64_vec();
    assert_close(&y, &naive_bmm(&av, &bv, 1, m, k, n), 1e-12);
    assert_eq!(a.matmul(&b).to_f64_vec(), y);
}

#[test]
fn matmul_empty_shapes() {
    for dt in FLOATS {
        let y = Tensor::zeros(&[0, 3], dt).matmul(&Tensor::ones(&[3, 4], dt));
        check(&y, dt, &[0, 4], &[]);
        let y = Tensor::ones(&[2, 0], dt).matmul(&Tensor::ones(&[0, 3], dt));
        check(&y, dt, &[2, 3], &[0.; 6]);
        let y = Tensor::ones(&[2, 3], dt).matmul(&Tensor::ones(&[3, 0], dt));
        check(&y, dt, &[2, 0], &[]);
        let y = Tensor::ones(&[0], dt).dot(&Tensor::ones(&[0], dt));
        check(&y, dt, &[], &[0.]);
    }
    let y = Tensor::ones(&[2, 0], DType::I64).matmul(&Tensor::ones(&[0, 2], DType::I64));
    assert_eq!(y.to_vec::<i64>(), vec![0; 4]);
}

#[test]
fn outer_and_tensordot() {
    for dt in FLOATS {
        let a = t(&[1., 2.], &[2], dt);
        let b = t(&[3., 4., 5.], &[3], dt);
        check(&a.outer(&b), dt, &[2, 3], &[3., 4., 5., 6., 8., 10.]);

        // tensordot over two axes, in swapped order: x [2, 3, 4], y [4, 3, 2].
        let xv = noise(24, 60);
        let yv = noise(24, 61);
        let x = Tensor::from_vec(xv.clone(), &[2, 3, 4]).cast(dt);
        let y = Tensor::from_vec(yv.clone(), &[4, 3, 2]).cast(dt);
        let z = x.tensordot(&y, &[1, 2], &[1, 0]);
        assert_eq!(z.shape(), vec![2, 2]);
        let mut want = vec![0.0; 4];
        for i in 0..2 {
            for l in 0..2 {
                for j in 0..3 {
                    for k in 0..4 {
                        want[i * 2 + l] += xv[(i * 3 + j) * 4 + k] * yv[(k * 3 + j) * 2 + l];
                    }
                }
            }
        }
        let tol = if dt == DType::F32 { 1e-5 } else { 1e-14 };
        assert_close(&z.to_f64_vec(), &want, tol);
        // Negative axes.
        let z = x.tensordot(&y, &[-2, -1], &[-2, 0]);
        assert_close(&z.to_f64_vec(), &want, tol);
    }
}

#[test]
fn einsum_known_values() {
    for dt in FLOATS {
        let a = t(&[1., 2., 3., 4., 5., 6.], &[2, 3], dt);
        let b = t(&[7., 8., 9., 10., 11., 12.], &[3, 2], dt);
        check(&einsum("ij,jk->ik", &[&a, &b]), dt, &[2, 2], &[58., 64., 139., 154.]);
        check(&einsum("ij->ji", &[&a]), dt, &[3, 2], &[1., 4., 2., 5., 3., 6.]);
        let v = t(&[1., 2., 3.], &[3], dt);
        check(&einsum("i,i->", &[&v, &v]), dt, &[], &[14.]);
        check(&einsum("ij,j->i", &[&a, &v]), dt, &[2], &[14., 32.]);
        let sq = range(&[3, 3], dt);
        check(&einsum("ii->", &[&sq]), dt, &[], &[12.]);
        check(&einsum("ii->i", &[&sq]), dt, &[3], &[0., 4., 8.]);
        // Batched.
        let x = range(&[2, 2, 3], dt);
        let y = range(&[2, 3, 1], dt);
        check(&einsum("bij,bjk->bik", &[&x, &y]), dt, &[2, 2, 1], &[5., 14., 86., 122.]);
        // Three operands: a @ b @ c.
        let c = t(&[1., -1., 2., 0.], &[2, 2], dt);
        check(&einsum("ij,jk,kl->il", &[&a, &b, &c]), dt, &[2, 2], &[186., -58., 447., -139.]);
        // Outer product and a sum over a free label.
        check(&einsum("i,j->ij", &[&v, &t(&[1., 10.], &[2], dt)]), dt, &[3, 2], &[1., 10., 2., 20., 3., 30.]);
        check(&einsum("ij->j", &[&a]), dt, &[3], &[5., 7., 9.]);
    }
}

// ---------------------------------------------------------------- errors

#[test]
#[should_panic(expected = "matmul: contracting dimensions differ: [3, 4] @ [5, 2]")]
fn matmul_mismatch_panics() {
    let a = Tensor::zeros(&[3, 4], DType::F32);
    let b = Tensor::zeros(&[5, 2], DType::F32);
    let _ = a.matmul(&b);
}

#[test]
#[should_panic(expected = "gather: indices must be i32 or i64, got f32[2]")]
fn gather_with_float_indices_panics() {
    let x = Tensor::zeros(&[3], DType::F32);
    let i = Tensor::zeros(&[2], DType::F32);
    let _ = x.gather(&i, 0, 0);
}

#[test]
#[should_panic(expected = "gather: indices must be integers, got f64[1]")]
fn gather_prim_with_float_indices_panics() {
    let x = Tensor::zeros(&[3], DType::F64);
    let i = Tensor::zeros(&[1], DType::F64);
    let _ = bind(Prim::Gather { axis: 0, batch_dims: 0 }, &[&x, &i]);
}

#[test]
#[should_panic(expected = "dot_general: contracting dimensions differ: [2, 3] @ [4, 2]")]
fn dot_general_mismatch_panics() {
    let a = Tensor::zeros(&[2, 3], DType::F64);
    let b = Tensor::zeros(&[4, 2], DType::F64);
    let _ = dot_general(&a, &b, (&[1], &[0]), (&[], &[]));
}
