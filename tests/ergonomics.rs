//! Issue 18: whole-tensor reductions (also on 0-d tensors), default-axis softmaxes, the
//! everyday jnp composites against direct computations, numbers and arrays as tangents and
//! cotangents (with the dtype rules kept strict), and `Vec` conversions.

use cotangent::{grad, jvp, linearize, vjp, where_, DType, Tensor};

fn m34() -> Tensor {
    Tensor::from_vec((0..12).map(|i| ((i * 7) % 12) as f64 - 5.5).collect(), &[3, 4])
}

#[test]
fn existing_axis_forms_still_infer() {
    // The argument forms call sites use everywhere: literal arrays (integer literals infer
    // isize), empty lists, vectors and slices of axes.
    let x = m34();
    let axes: Vec<isize> = vec![0, 1];
    assert_eq!(x.sum(&[0], false).shape(), vec![4]);
    assert_eq!(x.max(&[1], false).shape(), vec![3]);
    assert_eq!(x.sum(&[], false).shape(), vec![3, 4]);
    assert_eq!(x.mean(&axes, false).shape(), Vec::<usize>::new());
    assert_eq!(x.var(&axes[..1], 0, true).shape(), vec![1, 4]);
    assert_eq!(x.softmax(-1).shape(), vec![3, 4]);
    assert_eq!(x.sum_all().shape(), Vec::<usize>::new());
}

#[test]
fn whole_tensor_reductions_equal_the_explicit_axes() {
    let x = m34();
    let all = [0, 1];
    let pairs: Vec<(&str, Tensor, Tensor)> = vec![
        ("max", x.max_all(), x.max(&all, false)),
        ("min", x.min_all(), x.min(&all, false)),
        ("prod", x.prod_all(), x.prod(&all, false)),
        ("var", x.var_all(1), x.var(&all, 1, false)),
        ("std", x.std_all(0), x.std(&all, 0, false)),
        ("logsumexp", x.logsumexp_all(), x.logsumexp(&all, false)),
        ("norm", x.norm_all(), x.norm(&all, false)),
        ("ptp", x.ptp_all(), x.ptp(&all, false)),
        ("nansum", x.nansum_all(), x.sum_all()),
        ("nanmean", x.nanmean_all(), x.mean_all()),
    ];
    for (name, a, b) in pairs {
        assert_eq!(a.shape(), Vec::<usize>::new(), "{name}");
        assert_eq!(a.item::<f64>(), b.item::<f64>(), "{name}");
    }
    let v = x.to_vec::<f64>();
    let max = v.iter().cloned().fold(f64::MIN, f64::max);
    assert_eq!(x.max_all().item::<f64>(), max);
    assert_eq!(x.argmax_all().item::<i64>(), v.iter().position(|&e| e == max).unwrap() as i64);
    let min = v.iter().cloned().fold(f64::MAX, f64::min);
    assert_eq!(x.argmin_all().item::<i64>(), v.iter().position(|&e| e == min).unwrap() as i64);
}

#[test]
fn whole_tensor_reductions_work_on_0d_tensors() {
    let x = Tensor::scalar(-2.0f32);
    assert_eq!(x.sum_all().item::<f32>(), -2.0);
    assert_eq!(x.mean_all().item::<f32>(), -2.0);
    assert_eq!(x.max_all().item::<f32>(), -2.0);
    assert_eq!(x.min_all().item::<f32>(), -2.0);
    assert_eq!(x.prod_all().item::<f32>(), -2.0);
    assert_eq!(x.logsumexp_all().item::<f32>(), -2.0);
    assert_eq!(x.norm_all().item::<f32>(), 2.0);
    assert_eq!(x.var_all(0).item::<f32>(), 0.0);
    assert_eq!(x.std_all(0).item::<f32>(), 0.0);
    assert_eq!(x.argmax_all().item::<i64>(), 0);
    assert_eq!(x.argmin_all().item::<i64>(), 0);
    assert!(x.any_all().item::<bool>());
    assert!(x.all_all().item::<bool>());
    assert_eq!(x.count_nonzero_all().item::<i64>(), 1);
    assert_eq!(x.median_all().item::<f32>(), -2.0);
    // And they differentiate there: d|x|/dx = sign(x), d logsumexp(x)/dx = 1.
    let g = grad(|x: &Tensor| x.norm_all() + x.logsumexp_all() + x.max_all());
    assert_eq!(g(&Tensor::scalar(-2.0)).item::<f64>(), 1.0);
}

#[test]
fn any_all_and_counts() {
    let x = Tensor::from_vec(vec![0.0, 1.0, 0.0, 0.0, f64::NAN, 0.0], &[2, 3]);
    assert_eq!(x.any(&[1], false).to_vec::<bool>(), vec![true, true]);
    // NaN is non-zero, as in numpy.
    assert_eq!(x.all(&[0], false).to_vec::<bool>(), vec![false, true, false]);
    assert_eq!(x.count_nonzero(&[0], true).to_vec::<i64>(), vec![0, 2, 0]);
    assert_eq!(x.count_nonzero_all().item::<i64>(), 2);
    let empty = Tensor::zeros(&[0, 2], DType::Bool);
    assert_eq!(empty.any(&[0], false).to_vec::<bool>(), vec![false, false]);
    assert_eq!(empty.all(&[0], false).to_vec::<bool>(), vec![true, true]);
}

#[test]
fn default_axis_softmaxes_use_the_last_axis() {
    let x = m34();
    assert_eq!(x.softmax_last().to_vec::<f64>(), x.softmax(1).to_vec::<f64>());
    assert_eq!(x.log_softmax_last().to_vec::<f64>(), x.log_softmax(1).to_vec::<f64>());
    let rows = x.softmax_last().sum(&[1], false).to_vec::<f64>();
    assert!(rows.iter().all(|s| (s - 1.0).abs() < 1e-15), "{rows:?}");
}

#[test]
fn where_takes_numbers_with_the_dtype_of_the_other_branch() {
    let x = Tensor::from_vec(vec![-1.0f32, 0.5, 2.0], &[3]);
    let p = x.gt(0.0);
    let y = where_(&p, &x, 0.0);
    assert_eq!(y.dtype(), DType::F32);
    assert_eq!(y.to_vec::<f32>(), vec![0.0, 0.5, 2.0]);
    let y = where_(&p, -1, &Tensor::from_vec(vec![7i64, 8, 9], &[3]));
    assert_eq!(y.to_vec::<i64>(), vec![7, -1, -1]);
    // Two numbers: their own dtype.
    assert_eq!(where_(&p, 1i32, 0i32).to_vec::<i32>(), vec![0, 1, 1]);
    assert_eq!(where_(&p, 1.0f32, 0.0f32).dtype(), DType::F32);
    // Broadcasting a 0-d tensor.
    let y = where_(&p, &x, &Tensor::scalar(9.0f32));
    assert_eq!(y.to_vec::<f32>(), vec![9.0, 0.5, 2.0]);
    // Its gradient flows to the selected tensor entries only.
    let g = grad(|x: &Tensor| where_(&x.gt(0.0), x, 0.0).sum_all())(&Tensor::from_vec(vec![-1.0, 3.0], &[2]));
    assert_eq!(g.to_vec::<f64>(), vec![0.0, 1.0]);
}

#[test]
#[should_panic(expected = "where_: branch dtypes differ")]
fn where_keeps_tensor_dtypes_strict() {
    let x = Tensor::from_vec(vec![1.0f32], &[1]);
    where_(&x.gt(0.0), &x, &Tensor::scalar(0.0f64));
}

#[test]
fn clip_with_tensor_bounds() {
    let x = Tensor::from_vec(vec![-3.0, -0.5, 0.5, 3.0], &[2, 2]);
    let lo = Tensor::from_vec(vec![-1.0, 0.0], &[2]);
    let y = x.clip(&lo, 1.0);
    assert_eq!(y.to_vec::<f64>(), vec![-1.0, 0.0, 0.5, 1.0]);
    assert_eq!(x.clip(-1.0, 1.0).to_vec::<f64>(), x.clamp(-1.0, 1.0).to_vec::<f64>());
    let g = grad(|x: &Tensor| x.clip(&lo, 1.0).sum_all())(&x);
    assert_eq!(g.to_vec::<f64>(), vec![0.0, 0.0, 1.0, 0.0]);
}

#[test]
fn matrix_helpers_match_loops() {
    let x = m34();
    let v = x.to_vec::<f64>();
    let at = |i: usize, j: usize| v[i * 4 + j];
    for k in -3isize..=4 {
        let expect: Vec<f64> =
            (0..3).filter_map(|i| usize::try_from(i as isize + k).ok().filter(|&j| j < 4).map(|j| at(i, j))).collect();
        assert_eq!(x.diagonal(k).to_vec::<f64>(), expect, "diagonal({k})");
        let tri = |keep: &dyn Fn(isize) -> bool| -> Vec<f64> {
            (0..12).map(|e| if keep((e % 4) as isize - (e / 4) as isize) { v[e] } else { 0.0 }).collect()
        };
        assert_eq!(x.triu(k).to_vec::<f64>(), tri(&|d| d >= k), "triu({k})");
        assert_eq!(x.tril(k).to_vec::<f64>(), tri(&|d| d <= k), "tril({k})");
    }
    // Batched over leading axes.
    let b = Tensor::from_vec((0..18).map(f64::from).collect(), &[2, 3, 3]);
    assert_eq!(b.trace().to_vec::<f64>(), vec![0.0 + 4.0 + 8.0, 9.0 + 13.0 + 17.0]);
    assert_eq!(b.diagonal(0).shape(), vec![2, 3]);
    let d = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]).diag();
    assert_eq!(d.matmul(&Tensor::ones(&[3], DType::F64)).to_vec::<f64>(), vec![1.0, 2.0, 3.0]);
    assert_eq!(d.trace().item::<f64>(), 6.0);
}

#[test]
fn roll_tile_repeat_diff_median_match_loops() {
    let x = m34();
    let v = x.to_vec::<f64>();
    for shift in [-5isize, -1, 0, 2, 4, 9] {
        let expect: Vec<f64> =
            (0..12).map(|e| v[(e / 4) * 4 + ((e % 4) as isize - shift).rem_euclid(4) as usize]).collect();
        assert_eq!(x.roll(shift, 1).to_vec::<f64>(), expect, "roll({shift})");
    }
    let t = Tensor::from_vec(vec![1, 2, 3], &[3]).tile(&[2, 2]);
    assert_eq!(t.shape(), vec![2, 6]);
    assert_eq!(t.to_vec::<i32>(), vec![1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3]);
    let r = x.repeat(3, 0);
    assert_eq!(r.shape(), vec![9, 4]);
    assert_eq!(r.index(4).to_vec::<f64>(), x.index(1).to_vec::<f64>());
    let d = x.diff(1, 1).to_vec::<f64>();
    assert_eq!(d.len(), 9);
    assert_eq!(d[0], at2(&v, 0, 1) - at2(&v, 0, 0));
    assert_eq!(x.diff(4, 1).shape(), vec![3, 0]);
    // Median: against a sort by hand, odd and even counts.
    let col: Vec<f64> = (0..3).map(|i| at2(&v, i, 2)).collect();
    let mut s = col.clone();
    s.sort_by(f64::total_cmp);
    assert_eq!(x.median(0, false).to_vec::<f64>()[2], s[1]);
    let mut row: Vec<f64> = (0..4).map(|j| at2(&v, 1, j)).collect();
    row.sort_by(f64::total_cmp);
    assert_eq!(x.median(1, false).to_vec::<f64>()[1], (row[1] + row[2]) / 2.0);
}

fn at2(v: &[f64], i: usize, j: usize) -> f64 {
    v[i * 4 + j]
}

#[test]
fn elementwise_helpers() {
    let x = Tensor::from_vec(vec![1.0, 8.0, 0.5, 1e-3], &[4]);
    for (a, e) in x.log2().to_vec::<f64>().iter().zip([0.0, 3.0, -1.0, (1e-3f64).log2()]) {
        assert!((a - e).abs() < 1e-14, "{a} vs {e}");
    }
    for (a, e) in x.log10().to_vec::<f64>().iter().zip([0.0, 8f64.log10(), 0.5f64.log10(), -3.0]) {
        assert!((a - e).abs() < 1e-14, "{a} vs {e}");
    }
    assert_eq!(Tensor::scalar(3.0).exp2().item::<f64>().round(), 8.0);
    let special = Tensor::from_vec(vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1.0], &[4]);
    assert_eq!(special.isnan().to_vec::<bool>(), vec![true, false, false, false]);
    assert_eq!(special.isinf().to_vec::<bool>(), vec![false, true, true, false]);
    assert_eq!(special.nan_to_num(0.0, 5.0, -5.0).to_vec::<f64>(), vec![0.0, 5.0, -5.0, 1.0]);
    assert_eq!(Tensor::from_vec(vec![1i32], &[1]).isinf().to_vec::<bool>(), vec![false]);
    // logaddexp: exact limits at infinities, no overflow at 1000.
    let a = Tensor::from_vec(vec![f64::NEG_INFINITY, f64::INFINITY, 1000.0, 0.0], &[4]);
    let b = Tensor::from_vec(vec![f64::NEG_INFINITY, f64::INFINITY, 1000.0, f64::NEG_INFINITY], &[4]);
    let l = a.logaddexp(&b).to_vec::<f64>();
    assert_eq!(l[..2], [f64::NEG_INFINITY, f64::INFINITY]);
    assert!((l[2] - (1000.0 + 2f64.ln())).abs() < 1e-12);
    assert_eq!(l[3], 0.0);
    let p = Tensor::from_vec(vec![1.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1.0], &[5]);
    let q = Tensor::from_vec(vec![1.0 + 1e-10, f64::INFINITY, f64::INFINITY, f64::NAN, f64::INFINITY], &[5]);
    assert_eq!(p.isclose(&q, 1e-9, 0.0).to_vec::<bool>(), vec![true, true, false, false, false]);
    assert!(!p.allclose(&q, 1e-9, 0.0));
    assert!(x.allclose(&(&x * (1.0 + 1e-12)), 1e-9, 0.0));
}

#[test]
fn numbers_stand_for_scalar_cotangents_and_tangents() {
    let x = Tensor::from_vec(vec![1.0f32, 2.0], &[2]);
    let (_, pb) = vjp(|x: &Tensor| (x * x).sum_all(), &x);
    // The number takes the output's dtype (f32), like a literal in `x * 2.0`.
    assert_eq!(pb.call(1.0).to_vec::<f32>(), vec![2.0, 4.0]);
    assert_eq!(pb.call(0.5f32).to_vec::<f32>(), vec![1.0, 2.0]);
    assert_eq!(pb.call(&Tensor::scalar(1.0f32)).to_vec::<f32>(), vec![2.0, 4.0]);
    // A `&&Tensor` (which used to deref-coerce to the `&Tensor` parameter) still works.
    let ct: &Tensor = &Tensor::scalar(1.0f32);
    #[allow(clippy::needless_borrows_for_generic_args)]
    let g = pb.call(&ct);
    assert_eq!(g.to_vec::<f32>(), vec![2.0, 4.0]);
    #[allow(clippy::needless_borrows_for_generic_args)]
    let y = where_(&ct.gt(0.0), &ct, 0.0);
    assert_eq!(y.item::<f32>(), 1.0);
    let (_, t) = jvp(|x: &Tensor| x.sin(), &Tensor::scalar(0.0), 1.0);
    assert_eq!(t.item::<f64>(), 1.0);
    let (_, lin) = linearize(|x: &Tensor| x * 3.0, &x);
    assert_eq!(lin.call(vec![1.0f32, 2.0]).to_vec::<f32>(), vec![3.0, 6.0]);
    assert_eq!(lin.transpose(vec![1.0f32, 1.0]).to_vec::<f32>(), vec![3.0, 3.0]);
    let (_, lin2) = linearize(|x: &Tensor| x * 2.0, &Tensor::zeros(&[2, 2], DType::F64));
    assert_eq!(lin2.call(vec![vec![1.0, 2.0], vec![3.0, 4.0]]).to_vec::<f64>(), vec![2.0, 4.0, 6.0, 8.0]);
    // Trees still take references to trees.
    let (_, pb) = vjp(|p: &Vec<Tensor>| &p[0] * &p[1], &vec![Tensor::scalar(2.0), Tensor::scalar(3.0)]);
    let g = pb.call(&Tensor::scalar(1.0));
    assert_eq!((g[0].item::<f64>(), g[1].item::<f64>()), (3.0, 2.0));
}

#[test]
#[should_panic(expected = "does not match")]
fn a_number_is_not_a_cotangent_for_a_vector_output() {
    let x = Tensor::from_vec(vec![1.0, 2.0], &[2]);
    let (_, pb) = vjp(|x: &Tensor| x * 2.0, &x);
    pb.call(1.0);
}

#[test]
#[should_panic(expected = "the dtypes differ")]
fn a_vec_of_another_dtype_is_not_a_tangent() {
    let x = Tensor::from_vec(vec![1.0f32, 2.0], &[2]);
    jvp(|x: &Tensor| x * 2.0, &x, vec![1.0f64, 1.0]);
}

#[test]
#[should_panic(expected = "cannot stand for a f64[2]")]
fn a_vec_of_another_length_is_not_a_cotangent() {
    let x = Tensor::from_vec(vec![1.0, 2.0], &[2]);
    let (_, pb) = vjp(|x: &Tensor| x * 2.0, &x);
    pb.call(vec![1.0, 2.0, 3.0]);
}

#[test]
fn vec_and_array_conversions_check_shapes() {
    let m = Tensor::try_from(vec![vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]]).unwrap();
    assert_eq!(m.shape(), vec![2, 3]);
    assert_eq!(m.to_vec2::<f64>(), vec![vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]]);
    let e = Tensor::try_from(vec![vec![1], vec![2, 3]]).unwrap_err();
    assert!(e.to_string().contains("row 1 has 2 elements"), "{e}");
    assert_eq!(Tensor::try_from(Vec::<Vec<f32>>::new()).unwrap().shape(), vec![0, 0]);
    assert_eq!(Tensor::from([[1, 2], [3, 4]]).to_vec2::<i32>(), vec![vec![1, 2], vec![3, 4]]);
    assert_eq!(Tensor::from(vec![true, false]).shape(), vec![2]);
    assert_eq!(Tensor::from(&[1.5f32][..]).to_vec::<f32>(), vec![1.5]);
    assert_eq!(Vec::<Vec<f64>>::try_from(&Tensor::zeros(&[2, 0], DType::F64)).unwrap(), vec![Vec::<f64>::new(); 2]);
    assert!(Vec::<f64>::try_from(&m).unwrap_err().to_string().contains("not of rank 1"));
    assert!(Vec::<Vec<f32>>::try_from(&m).unwrap_err().to_string().contains("use .cast()"));
    let g = grad(|x: &Tensor| {
        assert!(Vec::<f64>::try_from(x).unwrap_err().to_string().contains("traced"));
        x.sum_all()
    });
    g(&Tensor::from(vec![1.0]));
}

#[test]
#[should_panic(expected = "to_vec2")]
fn to_vec2_of_a_vector_panics_naming_itself() {
    Tensor::from(vec![1.0]).to_vec2::<f64>();
}
