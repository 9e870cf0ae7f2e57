//! Numpy-like printing: the expected strings are what numpy's `str()` prints.

mod common;
use common::*;
use cotangent::{DType, Tensor};

fn show(t: &Tensor) -> String {
    t.to_string()
}

#[test]
fn zero_d_prints_like_a_number() {
    assert_eq!(show(&Tensor::scalar(1.0)), "1.0");
    assert_eq!(show(&Tensor::scalar(2.5)), "2.5");
    assert_eq!(show(&Tensor::scalar(-0.0)), "-0.0");
    assert_eq!(show(&Tensor::scalar(0.1f32)), "0.1");
    assert_eq!(show(&Tensor::scalar(1.0 / 3.0)), "0.3333333333333333");
    assert_eq!(show(&Tensor::scalar(1e-5)), "1e-05");
    assert_eq!(show(&Tensor::scalar(1.5e20)), "1.5e+20");
    assert_eq!(show(&Tensor::scalar(123456.0)), "123456.0");
    assert_eq!(show(&Tensor::scalar(f64::NAN)), "nan");
    assert_eq!(show(&Tensor::scalar(f32::NEG_INFINITY)), "-inf");
    assert_eq!(show(&Tensor::scalar(-3i32)), "-3");
    assert_eq!(show(&Tensor::scalar(7i64)), "7");
    assert_eq!(show(&Tensor::scalar(true)), "True");
    assert_eq!(show(&Tensor::scalar(false)), "False");
    assert_eq!(format!("{:?}", Tensor::scalar(1.5)), "1.5");
}

#[test]
fn one_d() {
    assert_eq!(show(&f64t(&[1.0, 2.5, -3.0], &[3])), "[ 1.   2.5 -3. ]");
    assert_eq!(show(&f64t(&[1.0, 2.0, 3.0], &[3])), "[1. 2. 3.]");
    assert_eq!(show(&f32t(&[0.1, 0.25], &[2])), "[0.1  0.25]");
    assert_eq!(show(&f64t(&[1.0 / 3.0, 2.0 / 3.0], &[2])), "[0.33333333 0.66666667]");
    assert_eq!(show(&f64t(&[0.1 + 0.2], &[1])), "[0.3]");
    assert_eq!(show(&f64t(&[-0.0, 1.0], &[2])), "[-0.  1.]");
    assert_eq!(show(&f64t(&[1.5, f64::NAN, f64::NEG_INFINITY], &[3])), "[ 1.5  nan -inf]");
    assert_eq!(show(&f64t(&[f64::NAN, f64::INFINITY], &[2])), "[nan inf]");
    assert_eq!(show(&Tensor::from_vec(vec![1i32, -20, 300], &[3])), "[  1 -20 300]");
    assert_eq!(show(&Tensor::from_vec(vec![5i64], &[1])), "[5]");
    assert_eq!(show(&Tensor::from_vec(vec![true, false, true], &[3])), "[ True False  True]");
    assert_eq!(show(&Tensor::from_vec(vec![true, true], &[2])), "[True True]");
}

#[test]
fn scientific_notation_when_magnitudes_ask_for_it() {
    assert_eq!(show(&f64t(&[1e-5, 1.0], &[2])), "[1.e-05 1.e+00]");
    assert_eq!(show(&f64t(&[1.5e10, 1.0], &[2])), "[1.5e+10 1.0e+00]");
    assert_eq!(show(&f64t(&[1e8], &[1])), "[1.e+08]");
    assert_eq!(show(&f64t(&[1.0, 1000.0], &[2])), "[   1. 1000.]");
    assert_eq!(show(&f64t(&[1.0, 1001.0], &[2])), "[1.000e+00 1.001e+03]");
    assert_eq!(show(&f64t(&[-1e-200, 0.0, 1e300], &[3])), "[-1.e-200  0.e+000  1.e+300]");
    assert_eq!(show(&f32t(&[1e30, f64::NAN], &[2])), "[1.e+30    nan]");
    assert_eq!(show(&f64t(&[1.0 / 3.0, 1e9], &[2])), "[3.33333333e-01 1.00000000e+09]");
}

#[test]
fn two_d_and_three_d() {
    let m = Tensor::from_vec(vec![1.0, 2.5, 3.0, 4.0], &[2, 2]);
    assert_eq!(show(&m), "[[1.  2.5]\n [3.  4. ]]");
    let i = Tensor::from_vec((1..=6).collect::<Vec<i32>>(), &[2, 3]);
    assert_eq!(show(&i), "[[1 2 3]\n [4 5 6]]");
    let b = Tensor::from_vec(vec![true, false, false, true], &[2, 2]);
    assert_eq!(show(&b), "[[ True False]\n [False  True]]");
    let c = Tensor::from_vec((0..8).collect::<Vec<i64>>(), &[2, 2, 2]);
    assert_eq!(show(&c), "[[[0 1]\n  [2 3]]\n\n [[4 5]\n  [6 7]]]");
    let col = f32t(&[-1.0, 10.5], &[2, 1]);
    assert_eq!(show(&col), "[[-1. ]\n [10.5]]");
    assert_eq!(show(&f64t(&[7.0], &[1, 1, 1])), "[[[7.]]]");
}

#[test]
fn empty_tensors_print_as_empty_brackets() {
    assert_eq!(show(&f64t(&[], &[0])), "[]");
    assert_eq!(show(&f32t(&[], &[2, 0])), "[]");
    assert_eq!(show(&Tensor::from_vec(Vec::<bool>::new(), &[0, 3])), "[]");
}

#[test]
fn long_lines_wrap_at_75_characters() {
    let x = Tensor::arange(0.0, 30.0, 1.0, DType::F64);
    assert_eq!(
        show(&x),
        "[ 0.  1.  2.  3.  4.  5.  6.  7.  8.  9. 10. 11. 12. 13. 14. 15. 16. 17.\n \
         18. 19. 20. 21. 22. 23. 24. 25. 26. 27. 28. 29.]"
    );
    let y = Tensor::arange(0.0, 40.0, 1.0, DType::I32).reshape(&[2, 20]);
    assert_eq!(
        show(&y),
        "[[ 0  1  2  3  4  5  6  7  8  9 10 11 12 13 14 15 16 17 18 19]\n \
         [20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39]]"
    );
}

#[test]
fn large_tensors_are_summarised() {
    let x = Tensor::arange(0.0, 2000.0, 1.0, DType::I64);
    assert_eq!(show(&x), "[   0    1    2 ... 1997 1998 1999]");
    let m = Tensor::arange(1000.0, 2010.0, 1.0, DType::F32).reshape(&[101, 10]);
    assert_eq!(
        show(&m),
        "[[1000. 1001. 1002. ... 1007. 1008. 1009.]\n \
         [1010. 1011. 1012. ... 1017. 1018. 1019.]\n \
         [1020. 1021. 1022. ... 1027. 1028. 1029.]\n \
         ...\n \
         [1980. 1981. 1982. ... 1987. 1988. 1989.]\n \
         [1990. 1991. 1992. ... 1997. 1998. 1999.]\n \
         [2000. 2001. 2002. ... 2007. 2008. 2009.]]"
    );
    // From 0 the ratio of magnitudes passes 1000: scientific, like numpy.
    let z = Tensor::arange(0.0, 1010.0, 1.0, DType::F64);
    assert_eq!(show(&z), "[0.000e+00 1.000e+00 2.000e+00 ... 1.007e+03 1.008e+03 1.009e+03]");
}

#[test]
fn traced_tensors_print_their_type() {
    let g = cotangent::trace_graph(&[cotangent::TensorType::new(DType::F32, vec![2, 3])], |xs| {
        assert_eq!(show(&xs[0]), "Traced<f32[2,3]>");
        assert_eq!(format!("{:?}", xs[0]), "Traced<f32[2,3]>");
        vec![xs[0].clone()]
    });
    assert_eq!(g.num_ops(), 0);
}
