//! cotangent's `ndarray` feature: conversions both ways, zero-copy where the layout allows,
//! errors for wrong dtypes, ranks and symbolic tensors, and arrays as tangents/cotangents.

use cotangent::{grad, jvp, vjp, Error, Tensor};
use ndarray::{array, s, Array, Array1, Array2, Array3, ArrayD, Axis, IxDyn, ShapeBuilder};

#[test]
fn owned_standard_layout_moves_without_copying() {
    let a = Array::from_shape_vec((2, 3), vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    let ptr = a.as_ptr();
    let t = Tensor::from(a);
    assert_eq!(t.shape(), vec![2, 3]);
    match t.data() {
        cotangent::Data::F32(v) => assert_eq!(v.as_ptr(), ptr, "the buffer was copied"),
        other => panic!("expected f32 storage, got {other:?}"),
    }
    // And back: an unshared tensor hands its buffer over.
    let back = Array2::<f32>::try_from(t).unwrap();
    assert_eq!(back.as_ptr(), ptr, "the buffer was copied on the way back");
    assert_eq!(back, array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]]);
}

#[test]
fn shared_tensor_is_copied_and_left_intact() {
    let t = Tensor::from_vec(vec![1i64, 2, 3], &[3]);
    let keep = t.clone();
    let a = Array1::<i64>::try_from(t).unwrap();
    assert_eq!(a.to_vec(), vec![1, 2, 3]);
    assert_eq!(keep.to_vec::<i64>(), vec![1, 2, 3]);
}

#[test]
fn other_layouts_are_copied_in_row_major_order() {
    let a = Array::from_shape_vec((2, 3), (0..6).map(f64::from).collect()).unwrap();
    // Transposed (column-major) view.
    let t = Tensor::from(a.t());
    assert_eq!(t.shape(), vec![3, 2]);
    assert_eq!(t.to_vec::<f64>(), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    // Strided slice of an owned array, and a column-major owned array.
    let strided = a.slice(s![.., ..;2]).to_owned();
    assert_eq!(Tensor::from(&a.slice(s![.., ..;2])).to_vec::<f64>(), vec![0.0, 2.0, 3.0, 5.0]);
    assert_eq!(Tensor::from(strided).to_vec::<f64>(), vec![0.0, 2.0, 3.0, 5.0]);
    let fortran = Array::from_shape_vec((2, 3).f(), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]).unwrap();
    assert!(!fortran.is_standard_layout());
    assert_eq!(fortran, a);
    assert_eq!(Tensor::from(fortran).to_vec::<f64>(), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    // A row sliced out of an owned array (the buffer starts at an offset).
    let row = a.clone().slice_move(s![1, ..]);
    assert_eq!(Tensor::from(row).to_vec::<f64>(), vec![3.0, 4.0, 5.0]);
    // Reversed axis: negative strides.
    let rev = a.slice(s![.., ..;-1]);
    assert_eq!(Tensor::from(rev).to_vec::<f64>(), vec![2.0, 1.0, 0.0, 5.0, 4.0, 3.0]);
}

#[test]
fn every_dtype_and_rank_round_trips() {
    let b = array![[true, false], [false, true]];
    assert_eq!(Array2::<bool>::try_from(&Tensor::from(&b)).unwrap(), b);
    let i = Array3::<i32>::from_shape_fn((2, 1, 3), |(a, b, c)| (a * 100 + b * 10 + c) as i32);
    assert_eq!(Array3::<i32>::try_from(&Tensor::from(&i)).unwrap(), i);
    let scalar = ndarray::arr0(2.5f64);
    let t = Tensor::from(scalar.clone());
    assert_eq!(t.shape(), Vec::<usize>::new());
    assert_eq!(ndarray::Array0::<f64>::try_from(&t).unwrap(), scalar);
    let dynamic = ArrayD::<f32>::zeros(IxDyn(&[2, 0, 4]));
    let t = Tensor::from(dynamic.clone());
    assert_eq!(t.shape(), vec![2, 0, 4]);
    assert_eq!(ArrayD::<f32>::try_from(&t).unwrap(), dynamic);
}

#[test]
fn wrong_dtype_rank_or_traced_tensor_is_an_error() {
    let t = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    let e = Array2::<f32>::try_from(&t).unwrap_err();
    assert!(matches!(&e, Error::Conversion { message, .. } if message.contains("f64")), "{e}");
    let e = Array1::<f64>::try_from(&t).unwrap_err();
    assert!(e.to_string().contains("2 axes"), "{e}");
    let e = Array1::<f64>::try_from(t.clone()).unwrap_err();
    assert!(e.to_string().contains("2 axes"), "{e}");
    // Inside a transformation the value is not known.
    let g = grad(|x: &Tensor| {
        let e = Array1::<f64>::try_from(x).unwrap_err();
        assert!(e.to_string().contains("traced"), "{e}");
        x.sum_all()
    });
    assert_eq!(g(&Tensor::from(vec![1.0, 2.0])).to_vec::<f64>(), vec![1.0, 1.0]);
}

#[test]
fn arrays_stand_for_tangents_and_cotangents() {
    let x = Tensor::from(array![1.0, 2.0, 3.0]);
    let (_, t) = jvp(|x: &Tensor| x.square(), &x, array![1.0, 0.0, 1.0]);
    assert_eq!(t.to_vec::<f64>(), vec![2.0, 0.0, 6.0]);
    let (_, pb) = vjp(|x: &Tensor| x * 2.0, &x);
    let ct = array![1.0, 1.0, 0.5];
    assert_eq!(pb.call(ct.view()).to_vec::<f64>(), vec![2.0, 2.0, 1.0]);
}

#[test]
#[should_panic(expected = "cannot stand for a f64[3]")]
fn an_array_of_another_dtype_is_not_a_cotangent() {
    let x = Tensor::from(array![1.0, 2.0, 3.0]);
    let (_, pb) = vjp(|x: &Tensor| x * 2.0, &x);
    pb.call(array![1.0f32, 1.0, 1.0]);
}

#[test]
#[should_panic(expected = "cannot stand for a f64[3]")]
fn an_array_of_another_shape_is_not_a_tangent() {
    let x = Tensor::from(array![1.0, 2.0, 3.0]);
    jvp(|x: &Tensor| x * 2.0, &x, array![[1.0, 1.0, 1.0]]);
}

#[test]
fn a_gradient_step_in_ndarray_terms() {
    // Least squares: the gradient computed by cotangent matches the closed form 2 Aᵀ(Ax − b).
    let a = array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]];
    let b = array![1.0, 0.0, 1.0];
    let x0 = array![0.5, -0.5];
    let (at, bt) = (Tensor::from(&a), Tensor::from(&b));
    let loss = |x: &Tensor| (at.matmul(x) - &bt).square().sum_all();
    let g = Array1::<f64>::try_from(grad(loss)(&Tensor::from(&x0))).unwrap();
    let expect = a.t().dot(&(a.dot(&x0) - &b)) * 2.0;
    for (g, e) in g.iter().zip(expect.iter()) {
        assert!((g - e).abs() < 1e-12, "{g} vs {e}");
    }
    // Axis sums agree with ndarray's.
    let sums = Array1::<f64>::try_from(Tensor::from(&a).sum(&[0], false)).unwrap();
    assert_eq!(sums, a.sum_axis(Axis(0)));
}
