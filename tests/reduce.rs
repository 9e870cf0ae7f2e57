//! Reductions (sum, max, min, prod, argmax, argmin), the composites mean, var,
//! std, logsumexp and norm, and the cumulative scans, on known values.

mod common;
use common::*;
use cotangent::ops::{CumOp, Prim};
use cotangent::{Array, DType, Tensor, TensorType};

const SHAPE: [usize; 3] = [2, 3, 4];

fn data() -> Vec<f64> {
    (0..24).map(|i| ((i * 7) % 11) as f64 - 5.0).collect()
}

fn prod_data() -> Vec<f64> {
    (0..24).map(|i| 1.0 + 0.25 * (i % 5) as f64 - 0.5 * (i % 2) as f64).collect()
}

/// User axes (possibly negative, unsorted) and the normalised set they denote.
fn axis_cases() -> Vec<(Vec<isize>, Vec<usize>)> {
    vec![
        (vec![0], vec![0]),
        (vec![1], vec![1]),
        (vec![-1], vec![2]),
        (vec![1, 2], vec![1, 2]),
        (vec![-1, 0], vec![0, 2]),
        (vec![2, -3, 1], vec![0, 1, 2]),
        (vec![], vec![]),
    ]
}

fn kept_shape(axes: &[usize], keepdims: bool) -> Vec<usize> {
    (0..3)
        .filter_map(|a| {
            if !axes.contains(&a) {
                Some(SHAPE[a])
            } else if keepdims {
                Some(1)
            } else {
                None
            }
        })
        .collect()
}

type Reduce = fn(&Tensor, &[isize], bool) -> Tensor;
type Scalar2 = fn(f64, f64) -> f64;

#[test]
fn sum_max_min_prod_over_axes() {
    let ops: [(&str, Reduce, f64, Scalar2, bool); 4] = [
        ("sum", Tensor::sum, 0.0, |a, b| a + b, false),
        ("max", Tensor::max, f64::NEG_INFINITY, f64::max, false),
        ("min", Tensor::min, f64::INFINITY, f64::min, false),
        ("prod", Tensor::prod, 1.0, |a, b| a * b, true),
    ];
    for (name, f, init, r, is_prod) in ops {
        let x = if is_prod { prod_data() } else { data() };
        for dtype in [DType::F32, DType::F64, DType::I32, DType::I64] {
            if is_prod && dtype.is_int() {
                continue;
            }
            let t = f64t(&x, &SHAPE).cast(dtype);
            for (user, axes) in axis_cases() {
                let want = if axes.is_empty() { x.clone() } else { reduce_ref(&x, &SHAPE, &axes, init, r) };
                for keepdims in [false, true] {
                    let y = f(&t, &user, keepdims);
                    let shape = if axes.is_empty() { SHAPE.to_vec() } else { kept_shape(&axes, keepdims) };
                    let what = format!("{name} {dtype} axes={user:?} keepdims={keepdims}");
                    assert_tensor(&what, &y, dtype, &shape, &want);
                }
            }
        }
    }
}

#[test]
fn integer_reductions_are_exact() {
    let x = Tensor::from_vec(vec![3i64, -2, 5, 7, 1, -4], &[2, 3]);
    assert_eq!(x.sum(&[1], false).to_vec::<i64>(), vec![6, 4]);
    assert_eq!(x.prod(&[0], false).to_vec::<i64>(), vec![21, -2, -20]);
    assert_eq!(x.max(&[-1], true).to_vec::<i64>(), vec![5, 7]);
    assert_eq!(x.max(&[-1], true).shape(), vec![2, 1]);
    assert_eq!(x.min(&[0, 1], false).item::<i64>(), -4);
    let y = Tensor::from_vec(vec![i32::MAX, 1], &[2]);
    assert_eq!(y.sum(&[0], false).item::<i32>(), i32::MIN, "sums wrap");
    assert_eq!(y.prod(&[0], false).item::<i32>(), i32::MAX);
}

#[test]
fn reductions_of_empty_tensors_give_identities() {
    for dtype in [DType::F32, DType::F64] {
        let e = ft(&[], &[0], dtype);
        assert_exact("sum []", &e.sum(&[0], false), dtype, &[], &[0.0]);
        assert_exact("prod []", &e.prod(&[0], false), dtype, &[], &[1.0]);
        assert_exact("max []", &e.max(&[0], false), dtype, &[], &[f64::NEG_INFINITY]);
        assert_exact("min []", &e.min(&[0], false), dtype, &[], &[f64::INFINITY]);
        let e = ft(&[], &[2, 0], dtype);
        assert_exact("sum [2,0] axis 1", &e.sum(&[1], false), dtype, &[2], &[0.0, 0.0]);
        assert_exact("prod [2,0] axis -1", &e.prod(&[-1], true), dtype, &[2, 1], &[1.0, 1.0]);
        assert_exact("sum [2,0] axis 0", &e.sum(&[0], false), dtype, &[0], &[]);
        assert_exact("max [2,0] axis 0", &e.max(&[0], true), dtype, &[1, 0], &[]);
        assert_exact("sum_all [2,0]", &e.sum_all(), dtype, &[], &[0.0]);
    }
    let e = Tensor::from_vec(Vec::<i32>::new(), &[0]);
    assert_eq!(e.max(&[0], false).item::<i32>(), i32::MIN);
    assert_eq!(e.min(&[0], false).item::<i32>(), i32::MAX);
    assert_eq!(e.sum(&[0], false).item::<i32>(), 0);
    let e = Tensor::from_vec(Vec::<i64>::new(), &[3, 0]);
    assert_eq!(e.max(&[1], false).to_vec::<i64>(), vec![i64::MIN; 3]);
    assert_eq!(e.prod(&[1], false).to_vec::<i64>(), vec![1; 3]);
}

#[test]
fn reductions_of_0d_tensors_are_identity() {
    let s = Tensor::scalar(2.5);
    assert_exact("sum_all 0-d", &s.sum_all(), DType::F64, &[], &[2.5]);
    assert_exact("max 0-d", &s.max(&[], false), DType::F64, &[], &[2.5]);
    assert_exact("mean_all 0-d", &s.mean_all(), DType::F64, &[], &[2.5]);
    assert_exact("sum [1]", &f64t(&[4.0], &[1]).sum(&[0], false), DType::F64, &[], &[4.0]);
}

#[test]
fn max_and_min_propagate_nan() {
    for dtype in [DType::F32, DType::F64] {
        let x = ft(&[1.0, f64::NAN, 3.0, 2.0, 5.0, 4.0], &[2, 3], dtype);
        let n = f64::NAN;
        assert_exact("max", &x.max(&[1], false), dtype, &[2], &[n, 5.0]);
        assert_exact("min", &x.min(&[1], false), dtype, &[2], &[n, 2.0]);
        assert_exact("max0", &x.max(&[0], false), dtype, &[3], &[2.0, n, 4.0]);
        assert_exact("min all", &x.min(&[0, 1], false), dtype, &[], &[n]);
        assert_exact("sum", &x.sum(&[1], false), dtype, &[2], &[n, 11.0]);
        // NaN first or last.
        let y = ft(&[n, 1.0, 2.0, n], &[2, 2], dtype);
        assert_exact("max first/last", &y.max(&[1], false), dtype, &[2], &[n, n]);
        assert_exact("min first/last", &y.min(&[1], false), dtype, &[2], &[n, n]);
    }
    // Infinities are ordinary values.
    let x = f64t(&[f64::NEG_INFINITY, 1.0, f64::INFINITY], &[3]);
    assert_eq!(x.max(&[0], false).item::<f64>(), f64::INFINITY);
    assert_eq!(x.min(&[0], false).item::<f64>(), f64::NEG_INFINITY);
}

#[test]
fn argmax_argmin() {
    let x = data();
    for dtype in [DType::F32, DType::F64, DType::I32, DType::I64] {
        let t = f64t(&x, &SHAPE).cast(dtype);
        for axis in [0isize, 1, 2, -1, -3] {
            let a = if axis < 0 { axis + 3 } else { axis } as usize;
            // Reference: first index of the extreme along `a`.
            let kept: Vec<usize> = (0..3).filter(|&d| d != a).collect();
            let out_shape: Vec<usize> = kept.iter().map(|&d| SHAPE[d]).collect();
            let mut want_max = vec![];
            let mut want_min = vec![];
            for i in 0..out_shape[0] {
                for j in 0..out_shape[1] {
                    let at = |k: usize| {
                        let mut idx = [0; 3];
                        idx[kept[0]] = i;
                        idx[kept[1]] = j;
                        idx[a] = k;
                        x[idx[0] * 12 + idx[1] * 4 + idx[2]]
                    };
                    let n = SHAPE[a];
                    let mut bmax = 0;
                    let mut bmin = 0;
                    for k in 1..n {
                        if at(k) > at(bmax) {
                            bmax = k;
                        }
                        if at(k) < at(bmin) {
                            bmin = k;
                        }
                    }
                    want_max.push(bmax as f64);
                    want_min.push(bmin as f64);
                }
            }
            let what = format!("argmax {dtype} axis {axis}");
            assert_exact(&what, &t.argmax(axis, false), DType::I64, &out_shape, &want_max);
            assert_exact(&what, &t.argmin(axis, false), DType::I64, &out_shape, &want_min);
            let mut kd = SHAPE.to_vec();
            kd[a] = 1;
            assert_exact(&what, &t.argmax(axis, true), DType::I64, &kd, &want_max);
            assert_exact(&what, &t.argmin(axis, true), DType::I64, &kd, &want_min);
        }
    }
}

#[test]
fn argmax_ties_nan_and_edge_shapes() {
    let n = f64::NAN;
    for dtype in [DType::F32, DType::F64] {
        // Ties resolve to the first index.
        let t = ft(&[1.0, 3.0, 3.0, 0.0, 0.0, -1.0], &[2, 3], dtype);
        assert_eq!(t.argmax(1, false).to_vec::<i64>(), vec![1, 0]);
        assert_eq!(t.argmin(1, false).to_vec::<i64>(), vec![0, 2]);
        // The first NaN counts as the extreme.
        let t = ft(&[1.0, n, 5.0, n, 2.0, n], &[2, 3], dtype);
        assert_eq!(t.argmax(-1, false).to_vec::<i64>(), vec![1, 0]);
        assert_eq!(t.argmin(-1, false).to_vec::<i64>(), vec![1, 0]);
        // Length-1 axis, and an empty other axis.
        assert_eq!(ft(&[7.0], &[1], dtype).argmax(0, false).item::<i64>(), 0);
        let e = ft(&[], &[0, 3], dtype).argmax(1, false);
        assert_eq!(e.shape(), vec![0]);
        assert_eq!(e.dtype(), DType::I64);
        assert_eq!(ft(&[], &[0, 3], dtype).argmin(1, true).shape(), vec![0, 1]);
    }
    let i = Tensor::from_vec(vec![i32::MIN, i32::MAX, i32::MAX], &[3]);
    assert_eq!(i.argmax(0, false).item::<i64>(), 1);
    assert_eq!(i.argmin(0, false).item::<i64>(), 0);
}

/// Reductions over runs of axes (leading, middle, trailing), other sets and all
/// axes of a tensor large enough to be split between threads, bitwise against an
/// in-order fold (each output folded from the initial value over its elements in
/// row-major order), with NaNs for max and min.
#[test]
fn reductions_of_large_tensors_fold_in_order() {
    let shape = [3usize, 700, 37];
    let len: usize = shape.iter().product();
    let x: Vec<f64> = (0..len).map(|i| ((i as f64) * 0.7548776662).sin() * 1.25 + 0.001 * (i % 13) as f64).collect();
    let mut with_nans = x.clone();
    for i in (17..len).step_by(4111) {
        with_nans[i] = f64::NAN;
    }
    let step = |name: &str, a: f64, b: f64| -> f64 {
        match name {
            "sum" => a + b,
            "prod" => a * b,
            "max" => {
                if a.is_nan() || !(b.is_nan() || b > a) {
                    a
                } else {
                    b
                }
            }
            _ => {
                if a.is_nan() || !(b.is_nan() || b < a) {
                    a
                } else {
                    b
                }
            }
        }
    };
    for axes in [vec![0usize], vec![1], vec![2], vec![1, 2], vec![0, 1], vec![0, 2], vec![0, 1, 2]] {
        for (name, init) in [("sum", 0.0), ("prod", 1.0), ("max", f64::NEG_INFINITY), ("min", f64::INFINITY)] {
            let data = if name == "max" || name == "min" { &with_nans } else { &x };
            let kept: Vec<usize> = (0..3).filter(|a| !axes.contains(a)).collect();
            let out_shape: Vec<usize> = kept.iter().map(|&a| shape[a]).collect();
            let mut want = vec![init; out_shape.iter().product()];
            for (flat, &v) in data.iter().enumerate() {
                let idx = [flat / (shape[1] * shape[2]), (flat / shape[2]) % shape[1], flat % shape[2]];
                let o = kept.iter().fold(0, |acc, &a| acc * shape[a] + idx[a]);
                want[o] = step(name, want[o], v);
            }
            let t = Tensor::from_vec(data.clone(), &shape);
            let user: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
            let got = match name {
                "sum" => t.sum(&user, false),
                "prod" => t.prod(&user, false),
                "max" => t.max(&user, false),
                _ => t.min(&user, false),
            };
            assert_exact(&format!("{name} over {axes:?}"), &got, DType::F64, &out_shape, &want);
        }
    }
}

/// Arg-reductions over every axis of a tensor large enough to be split between
/// threads, with NaNs (the first wins) and ties (the first wins) along each axis,
/// against a scalar reference.
#[test]
fn argmax_argmin_every_axis_with_nans_and_many_rows() {
    let shape = [3usize, 700, 37];
    let len: usize = shape.iter().product();
    // Few distinct values, so ties are common; NaNs at scattered places.
    let x: Vec<f64> = (0..len)
        .map(|i| if (i * 7919) % 1013 == 5 { f64::NAN } else { ((i * 2654435761) % 97) as f64 - 48.0 })
        .collect();
    for dtype in [DType::F32, DType::F64] {
        let t = ft(&x, &shape, dtype);
        for a in 0..3 {
            let kept: Vec<usize> = (0..3).filter(|&d| d != a).collect();
            let (mut want_max, mut want_min) = (vec![], vec![]);
            for i in 0..shape[kept[0]] {
                for j in 0..shape[kept[1]] {
                    let at = |k: usize| {
                        let mut idx = [0; 3];
                        idx[kept[0]] = i;
                        idx[kept[1]] = j;
                        idx[a] = k;
                        x[(idx[0] * shape[1] + idx[1]) * shape[2] + idx[2]]
                    };
                    let pick = |better: &dyn Fn(f64, f64) -> bool| {
                        let mut b = 0;
                        for k in 1..shape[a] {
                            if at(b).is_nan() {
                                break;
                            }
                            if at(k).is_nan() || better(at(k), at(b)) {
                                b = k;
                            }
                        }
                        b as f64
                    };
                    want_max.push(pick(&|u, v| u > v));
                    want_min.push(pick(&|u, v| u < v));
                }
            }
            let out_shape: Vec<usize> = kept.iter().map(|&d| shape[d]).collect();
            let what = format!("arg {dtype} axis {a}");
            assert_exact(&what, &t.argmax(a as isize, false), DType::I64, &out_shape, &want_max);
            assert_exact(&what, &t.argmin(a as isize, false), DType::I64, &out_shape, &want_min);
        }
    }
}

#[test]
fn mean_var_std() {
    let x = data();
    for dtype in [DType::F32, DType::F64] {
        let t = ft(&x, &SHAPE, dtype);
        for (user, axes) in axis_cases() {
            if axes.is_empty() {
                continue;
            }
            let count: usize = axes.iter().map(|&a| SHAPE[a]).product();
            let sum = reduce_ref(&x, &SHAPE, &axes, 0.0, |a, b| a + b);
            let mean: Vec<f64> = sum.iter().map(|s| s / count as f64).collect();
            // Sum of squared deviations, by broadcasting the mean back by hand.
            let kept: Vec<usize> = (0..3).filter(|a| !axes.contains(a)).collect();
            let mut ss = vec![0.0; mean.len()];
            for (flat, &v) in x.iter().enumerate() {
                let idx = [flat / 12, (flat / 4) % 3, flat % 4];
                let mut o = 0;
                for &a in &kept {
                    o = o * SHAPE[a] + idx[a];
                }
                ss[o] += (v - mean[o]).powi(2);
            }
            for keepdims in [false, true] {
                let shape = kept_shape(&axes, keepdims);
                let what = format!("{dtype} axes={user:?} keepdims={keepdims}");
                assert_tensor(&format!("mean {what}"), &t.mean(&user, keepdims), dtype, &shape, &mean);
                for ddof in [0usize, 1] {
                    let var: Vec<f64> = ss.iter().map(|s| s / (count - ddof) as f64).collect();
                    let std: Vec<f64> = var.iter().map(|v| v.sqrt()).collect();
                    let v = t.var(&user, ddof, keepdims);
                    assert_tensor(&format!("var{ddof} {what}"), &v, dtype, &shape, &var);
                    let s = t.std(&user, ddof, keepdims);
                    assert_tensor(&format!("std{ddof} {what}"), &s, dtype, &shape, &std);
                }
            }
        }
        assert_tensor("mean_all", &t.mean_all(), dtype, &[], &[x.iter().sum::<f64>() / 24.0]);
    }
    // Two-pass variance is stable with a large offset.
    let big = f64t(&[1e9 + 1.0, 1e9 + 2.0, 1e9 + 3.0, 1e9 + 4.0], &[4]);
    assert_eq!(big.var(&[0], 0, false).item::<f64>(), 1.25);
    // 0-d and empty.
    assert_exact("var 0-d", &Tensor::scalar(3.0).var(&[], 0, false), DType::F64, &[], &[0.0]);
    let m = f64t(&[], &[0]).mean(&[0], false).item::<f64>();
    assert!(m.is_nan(), "mean of nothing is NaN, got {m}");
}

#[test]
fn mean_var_std_of_integers_are_float() {
    // Like numpy: the mean of integers is a float (f64), not a truncated integer.
    let x = Tensor::from_vec(vec![1i32, 2, 4, 4], &[2, 2]);
    assert_exact("mean i32", &x.mean(&[1], false), DType::F64, &[2], &[1.5, 4.0]);
    assert_exact("mean_all i32", &x.mean_all(), DType::F64, &[], &[2.75]);
    let y = Tensor::from_vec(vec![1i64, 2, 3, 4], &[4]);
    assert_exact("var i64", &y.var(&[0], 0, false), DType::F64, &[], &[1.25]);
    assert_exact("std i64", &y.std(&[0], 1, true), DType::F64, &[1], &[(5.0f64 / 3.0).sqrt()]);
}

fn lse_ref(v: &[f64]) -> f64 {
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

#[test]
fn logsumexp_values() {
    let x: Vec<f64> = (0..24).map(|i| (i as f64 * 0.37).sin() * 3.0).collect();
    for dtype in [DType::F32, DType::F64] {
        let t = ft(&x, &SHAPE, dtype);
        // Over the last axis, by hand.
        let want: Vec<f64> = x.chunks(4).map(lse_ref).collect();
        assert_tensor("lse -1", &t.logsumexp(&[-1], false), dtype, &[2, 3], &want);
        assert_tensor("lse -1 kd", &t.logsumexp(&[2], true), dtype, &[2, 3, 1], &want);
        // Over all axes.
        assert_tensor("lse all", &t.logsumexp(&[0, 1, 2], false), dtype, &[], &[lse_ref(&x)]);
        // Over axes 0 and 2.
        let mut want = vec![];
        for j in 0..3 {
            let v: Vec<f64> =
                (0..2).flat_map(|i| (0..4).map(move |k| (i, k))).map(|(i, k)| x[i * 12 + j * 4 + k]).collect();
            want.push(lse_ref(&v));
        }
        assert_tensor("lse 0,2", &t.logsumexp(&[0, -1], false), dtype, &[3], &want);
        assert_tensor("lse 0,2 kd", &t.logsumexp(&[0, -1], true), dtype, &[1, 3, 1], &want);
        // Large magnitudes do not overflow.
        let big = ft(&[1000.0, 1000.0, -1000.0, -1000.0], &[2, 2], dtype);
        let l = big.logsumexp(&[1], false);
        assert_tensor("lse big", &l, dtype, &[2], &[1000.0 + 2f64.ln(), -1000.0 + 2f64.ln()]);
        // All -inf gives -inf, +inf gives +inf, NaN gives NaN.
        let ninf = f64::NEG_INFINITY;
        let special = ft(&[ninf, ninf, f64::INFINITY, 0.0, f64::NAN, 0.0], &[3, 2], dtype);
        assert_exact("lse special", &special.logsumexp(&[1], false), dtype, &[3], &[ninf, f64::INFINITY, f64::NAN]);
        // No axes: the identity, without squeezing size-1 axes.
        let one = ft(&[1.0, 2.0, 3.0], &[1, 3], dtype);
        assert_exact("lse no axes", &one.logsumexp(&[], false), dtype, &[1, 3], &[1.0, 2.0, 3.0]);
        // Empty: log(0) = -inf.
        assert_exact("lse empty", &ft(&[], &[0], dtype).logsumexp(&[0], false), dtype, &[], &[ninf]);
    }
}

#[test]
fn norm_values() {
    for dtype in [DType::F32, DType::F64] {
        let x = ft(&[3.0, 4.0, 0.0, -5.0, 12.0, 0.0], &[2, 3], dtype);
        assert_tensor("norm -1", &x.norm(&[-1], false), dtype, &[2], &[5.0, 13.0]);
        assert_tensor("norm -1 kd", &x.norm(&[-1], true), dtype, &[2, 1], &[5.0, 13.0]);
        assert_tensor("norm 0", &x.norm(&[0], false), dtype, &[3], &[34f64.sqrt(), 160f64.sqrt(), 0.0]);
        assert_tensor("norm all", &x.norm(&[0, 1], false), dtype, &[], &[194f64.sqrt()]);
        // Zero vectors have norm 0 (no 0/0).
        assert_exact("norm 0s", &ft(&[0.0, 0.0], &[2], dtype).norm(&[0], false), dtype, &[], &[0.0]);
        // Huge values do not overflow, tiny ones do not underflow.
        let s = if dtype == DType::F32 { 1e30 } else { 1e200 };
        let huge = ft(&[3.0 * s, 4.0 * s], &[2], dtype);
        assert_tensor("norm huge", &huge.norm(&[0], false), dtype, &[], &[5.0 * s]);
        let t = if dtype == DType::F32 { 1e-30 } else { 1e-200 };
        let tiny = ft(&[3.0 * t, 4.0 * t], &[2], dtype);
        assert_tensor("norm tiny", &tiny.norm(&[0], false), dtype, &[], &[5.0 * t]);
        // Infinities give inf, NaN gives NaN.
        let inf = ft(&[f64::INFINITY, 1.0, f64::NEG_INFINITY, f64::INFINITY, f64::NAN, 1.0], &[3, 2], dtype);
        assert_exact("norm inf", &inf.norm(&[1], false), dtype, &[3], &[f64::INFINITY, f64::INFINITY, f64::NAN]);
        // Empty: 0.
        assert_exact("norm empty", &ft(&[], &[0], dtype).norm(&[0], false), dtype, &[], &[0.0]);
        // No axes: |x|, shape kept.
        let one = ft(&[-2.0, 3.0], &[1, 2], dtype);
        assert_exact("norm no axes", &one.norm(&[], false), dtype, &[1, 2], &[2.0, 3.0]);
    }
}

type Scan = fn(&Tensor, isize) -> Tensor;

fn scan_ref(x: &[f64], shape: &[usize], axis: usize, f: fn(f64, f64) -> f64, reverse: bool) -> Vec<f64> {
    let mut out = x.to_vec();
    let inner: usize = shape[axis + 1..].iter().product();
    let outer: usize = shape[..axis].iter().product();
    let n = shape[axis];
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| o * n * inner + k * inner + i;
            let order: Vec<usize> = if reverse { (0..n).rev().collect() } else { (0..n).collect() };
            for w in order.windows(2) {
                out[at(w[1])] = f(out[at(w[0])], out[at(w[1])]);
            }
        }
    }
    out
}

fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

fn scans() -> [(&'static str, Scan, CumOp, Scalar2); 4] {
    [
        ("cumsum", Tensor::cumsum, CumOp::Sum, |a, b| a + b),
        ("cumprod", Tensor::cumprod, CumOp::Prod, |a, b| a * b),
        ("cummax", Tensor::cummax, CumOp::Max, nan_max),
        ("cummin", Tensor::cummin, CumOp::Min, nan_min),
    ]
}

#[test]
fn cumulative_scans() {
    let x: Vec<f64> = (0..24).map(|i| ((i * 5) % 7) as f64 - 3.0).collect();
    for (name, f, _, r) in scans() {
        for dtype in [DType::F32, DType::F64, DType::I32, DType::I64] {
            let t = f64t(&x, &SHAPE).cast(dtype);
            for axis in [0isize, 1, 2, -1, -2] {
                let a = if axis < 0 { axis + 3 } else { axis } as usize;
                let want = scan_ref(&x, &SHAPE, a, r, false);
                let what = format!("{name} {dtype} axis {axis}");
                assert_tensor(&what, &f(&t, axis), dtype, &SHAPE, &want);
            }
        }
        // 1-d, length 1, empty.
        let v = f64t(&[2.0, -1.0, 3.0], &[3]);
        assert_tensor(name, &f(&v, 0), DType::F64, &[3], &scan_ref(&[2.0, -1.0, 3.0], &[3], 0, r, false));
        assert_exact(name, &f(&f64t(&[4.0], &[1]), 0), DType::F64, &[1], &[4.0]);
        assert_exact(name, &f(&f64t(&[], &[0]), 0), DType::F64, &[0], &[]);
        assert_exact(name, &f(&f32t(&[], &[2, 0]), 1), DType::F32, &[2, 0], &[]);
        assert_exact(name, &f(&f32t(&[], &[2, 0]), 0), DType::F32, &[2, 0], &[]);
        assert_exact(name, &f(&f32t(&[], &[0, 3]), -1), DType::F32, &[0, 3], &[]);
    }
    let t = f64t(&[1.0, 2.0, 3.0, 4.0], &[4]);
    assert_eq!(t.cumsum(0).to_vec::<f64>(), vec![1.0, 3.0, 6.0, 10.0]);
    assert_eq!(t.cumprod(0).to_vec::<f64>(), vec![1.0, 2.0, 6.0, 24.0]);
}

#[test]
fn cummax_cummin_propagate_nan() {
    let n = f64::NAN;
    for dtype in [DType::F32, DType::F64] {
        let t = ft(&[1.0, n, 3.0, 0.0], &[4], dtype);
        assert_exact("cummax", &t.cummax(0), dtype, &[4], &[1.0, n, n, n]);
        assert_exact("cummin", &t.cummin(0), dtype, &[4], &[1.0, n, n, n]);
        assert_exact("cumsum", &t.cumsum(0), dtype, &[4], &[1.0, n, n, n]);
    }
}

#[test]
fn reverse_scans_through_the_kernel() {
    // The frontend has no reverse flag yet; the primitive does.
    let x: Vec<f64> = (0..24).map(|i| ((i * 5) % 7) as f64 - 3.0).collect();
    for (name, _, op, r) in scans() {
        for axis in 0..3 {
            let a = Array::from_vec(x.clone(), SHAPE.to_vec());
            let prim = Prim::Cumulative { op, axis, reverse: true };
            let ty = prim.infer_type(&[&a.ty()]).unwrap();
            assert_eq!(ty, TensorType::new(DType::F64, SHAPE.to_vec()));
            let y = cotangent::backend::cpu::execute(&prim, &[&a], &ty);
            let want = scan_ref(&x, &SHAPE, axis, r, true);
            let t = Tensor::from_array(y);
            assert_tensor(&format!("reverse {name} axis {axis}"), &t, DType::F64, &SHAPE, &want);
        }
    }
}

/// NaN wins in max/min wherever it sits, in every reduction path: eager, a fused loop
/// interpreted or native, one short row, many rows in parallel, one long row split into
/// parallel pieces, the 8-lane body and the tail of a block.
#[test]
fn nan_propagates_through_every_max_and_min_path() {
    use cotangent::{jit, with_native_mode, NativeMode};
    let cases: [(usize, usize); 4] = [(1, 2), (3, 1000), (40, 4099), (1, 300_001)];
    for (rows, cols) in cases {
        for at in [0, 1, 7, cols / 2, cols - 1] {
            for dtype in [DType::F32, DType::F64] {
                let mut v: Vec<f64> = (0..rows * cols).map(|i| (i % 97) as f64).collect();
                for r in 0..rows {
                    v[r * cols + at.min(cols - 1)] = f64::NAN;
                }
                let x = ft(&v, &[rows, cols], dtype);
                for mode in [NativeMode::Off, NativeMode::Always] {
                    with_native_mode(mode, || {
                        let max = jit(|x: &Tensor| (x + 0.0).max(&[1], false));
                        let min = jit(|x: &Tensor| (x + 0.0).min(&[1], false));
                        let eager = [x.max(&[1], false), x.min(&[1], false)];
                        for (which, f) in [("max", &max as &dyn Fn(&Tensor) -> Tensor), ("min", &min)] {
                            for call in 1..=2 {
                                let got = f(&x).cast(DType::F64).to_vec::<f64>();
                                assert!(
                                    got.iter().all(|y| y.is_nan()),
                                    "{which} of {rows}x{cols} {dtype} with NaN at column {at}, {mode:?}, call {call}: {:?}",
                                    &got[..got.len().min(4)]
                                );
                            }
                        }
                        for e in eager {
                            assert!(e.cast(DType::F64).to_vec::<f64>().iter().all(|y| y.is_nan()), "eager");
                        }
                    });
                }
            }
        }
    }
}

/// Long rows take the two-pass (vectorised) arg-reduction: the same index as a one-pass
/// scan keeping the first extreme, with ties, zeros of both signs and NaNs anywhere.
#[test]
fn argmin_argmax_long_rows_match_a_scan() {
    let row = 1000;
    let rows = 12;
    let mut v: Vec<f64> = (0..rows * row).map(|i| ((i * 7919) % 613) as f64 - 300.0).collect();
    v[row + 17] = -1e9; // a clear minimum
    v[row + 900] = -1e9; // and its later tie
    for (j, x) in v[2 * row..3 * row].iter_mut().enumerate() {
        *x = if j % 2 == 0 { 0.0 } else { -0.0 }; // all zeros: the first wins
    }
    v[3 * row + 5] = f64::NAN; // an early NaN
    v[4 * row + 999] = f64::NAN; // a NaN in the tail of the row
    v[5 * row + 400] = f64::NAN;
    v[5 * row + 401] = f64::NEG_INFINITY;
    v[6 * row + 998] = f64::INFINITY;
    let scan = |r: &[f64], better: fn(f64, f64) -> bool| -> i64 {
        let mut best = 0;
        for (i, &x) in r.iter().enumerate() {
            if x.is_nan() {
                return i as i64;
            }
            if better(x, r[best]) {
                best = i;
            }
        }
        best as i64
    };
    let t = Tensor::from_vec(v.clone(), &[rows, row]);
    let (mins, maxs) = (t.argmin(1, false).to_vec::<i64>(), t.argmax(1, false).to_vec::<i64>());
    for r in 0..rows {
        let s = &v[r * row..(r + 1) * row];
        assert_eq!(mins[r], scan(s, |x, b| x < b), "argmin of row {r}");
        assert_eq!(maxs[r], scan(s, |x, b| x > b), "argmax of row {r}");
    }
    assert_eq!((mins[1], mins[2], mins[3], mins[4], mins[5]), (17, 0, 5, 999, 400));
    assert_eq!(maxs[6], 998);
    // f32 and integers too.
    let t32 = Tensor::from_vec(v.iter().map(|&x| x as f32).collect::<Vec<f32>>(), &[rows, row]);
    assert_eq!(t32.argmin(1, false).to_vec::<i64>(), mins);
    let ints: Vec<i64> = (0..rows * row).map(|i| ((i * 7919) % 613) as i64).collect();
    let ti = Tensor::from_vec(ints.clone(), &[rows, row]);
    let want: Vec<i64> = (0..rows)
        .map(|r| scan(&ints[r * row..(r + 1) * row].iter().map(|&x| x as f64).collect::<Vec<_>>(), |x, b| x < b))
        .collect();
    assert_eq!(ti.argmin(1, false).to_vec::<i64>(), want);
}
