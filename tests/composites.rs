//! Activation functions and normalisers built from primitives: correct values,
//! and no overflow or NaN for |x| = 1000 in f32.

mod common;
use common::*;
use cotangent::{DType, Tensor};

const XS: [f64; 5] = [-2.0, -0.5, 0.5, 1.0, 3.0];

/// (name, function, reference values at XS from mpmath)
type Act = fn(&Tensor) -> Tensor;
fn table() -> Vec<(&'static str, Act, [f64; 5])> {
    vec![
        ("relu", Tensor::relu, [0.0, 0.0, 0.5, 1.0, 3.0]),
        ("leaky_relu", |x| x.leaky_relu(0.1), [-0.2, -0.05, 0.5, 1.0, 3.0]),
        (
            "gelu",
            |x| x.gelu(false),
            [-0.04550026389635842, -0.15426876936299344, 0.34573123063700656, 0.8413447460685429, 2.99595030590511],
        ),
        (
            "gelu_tanh",
            |x| x.gelu(true),
            [-0.04540230591222498, -0.15428599017485609, 0.34571400982514394, 0.8411919906082768, 2.996362607918227],
        ),
        (
            "silu",
            Tensor::silu,
            [-0.23840584404423512, -0.18877033439907273, 0.3112296656009273, 0.7310585786300049, 2.8577223804672998],
        ),
        (
            "mish",
            Tensor::mish,
            [-0.2525014826957089, -0.22074377465173, 0.37524521130489513, 0.8650983882673103, 2.9865350049679575],
        ),
        (
            "softplus",
            Tensor::softplus,
            [0.1269280110429725, 0.4740769841801067, 0.9740769841801067, 1.3132616875182228, 3.048587351573742],
        ),
        (
            "sigmoid",
            Tensor::sigmoid,
            [0.11920292202211756, 0.37754066879814546, 0.6224593312018546, 0.7310585786300049, 0.9525741268224333],
        ),
        ("clamp", |x| x.clamp(-1.0, 1.0), [-1.0, -0.5, 0.5, 1.0, 1.0]),
    ]
}

#[test]
fn activations_match_reference_values() {
    for (name, f, want) in table() {
        let y = f(&f64t(&XS, &[5]));
        assert_tensor(&format!("{name} f64"), &y, DType::F64, &[5], &want);
        let y = f(&f32t(&XS, &[5]));
        assert_eq!(y.dtype(), DType::F32);
        assert_close(&format!("{name} f32"), &y.to_f64_vec(), &want, 2e-6, 1e-7);
        // Shapes: 0-d, 2-d and empty pass through.
        assert_eq!(f(&Tensor::scalar(1.0f32)).shape(), Vec::<usize>::new(), "{name}");
        assert_eq!(f(&f32t(&XS[..4], &[2, 2])).shape(), vec![2, 2], "{name}");
        assert_eq!(f(&f32t(&[], &[2, 0])).shape(), vec![2, 0], "{name}");
    }
}

#[test]
fn activations_do_not_overflow_at_1000_in_f32() {
    let x = f32t(&[-1000.0, 1000.0], &[2]);
    let cases: [(&str, Tensor, [f64; 2]); 10] = [
        ("relu", x.relu(), [0.0, 1000.0]),
        ("leaky_relu", x.leaky_relu(0.01), [-10.0, 1000.0]),
        ("gelu", x.gelu(false), [0.0, 1000.0]),
        ("gelu_tanh", x.gelu(true), [0.0, 1000.0]),
        ("silu", x.silu(), [0.0, 1000.0]),
        ("mish", x.mish(), [0.0, 1000.0]),
        ("softplus", x.softplus(), [0.0, 1000.0]),
        ("sigmoid", x.sigmoid(), [0.0, 1.0]),
        ("clamp", x.clamp(-3.0, 2.0), [-3.0, 2.0]),
        ("logsumexp elementwise", x.logsumexp(&[], false), [-1000.0, 1000.0]),
    ];
    for (name, y, want) in cases {
        assert_eq!(y.dtype(), DType::F32, "{name}");
        let got = y.to_f64_vec();
        assert!(got.iter().all(|v| v.is_finite()), "{name}: {got:?}");
        assert_exact(name, &y, DType::F32, &[2], &want);
    }
    // Even larger magnitudes stay finite where the true value is.
    let x = f32t(&[-1e30, 1e30], &[2]);
    assert_exact("softplus 1e30", &x.softplus(), DType::F32, &[2], &[0.0, 1e30f32 as f64]);
    assert_exact("sigmoid 1e30", &x.sigmoid(), DType::F32, &[2], &[0.0, 1.0]);
    assert_exact("silu 1e30", &x.silu(), DType::F32, &[2], &[0.0, 1e30f32 as f64]);
    assert_exact("gelu 1e30", &x.gelu(false), DType::F32, &[2], &[0.0, 1e30f32 as f64]);
}

#[test]
fn softmax_and_log_softmax() {
    let x = [1.0, 2.0, 3.0, -1.0, 0.0, 4.0];
    // Reference by hand along the last axis.
    let soft = |v: &[f64]| -> Vec<f64> {
        let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = v.iter().map(|a| (a - m).exp()).collect();
        let s: f64 = e.iter().sum();
        e.iter().map(|a| a / s).collect()
    };
    let rows: Vec<f64> = x.chunks(3).flat_map(soft).collect();
    let cols_t: Vec<Vec<f64>> = (0..3).map(|j| soft(&[x[j], x[3 + j]])).collect();
    let cols: Vec<f64> = (0..2).flat_map(|i| (0..3).map(move |j| (i, j))).map(|(i, j)| cols_t[j][i]).collect();
    for dtype in [DType::F32, DType::F64] {
        let t = ft(&x, &[2, 3], dtype);
        assert_tensor("softmax -1", &t.softmax(-1), dtype, &[2, 3], &rows);
        assert_tensor("softmax 1", &t.softmax(1), dtype, &[2, 3], &rows);
        assert_tensor("softmax 0", &t.softmax(0), dtype, &[2, 3], &cols);
        // x - logsumexp(x) cancels near 0: allow an absolute error of an ulp of the inputs.
        let atol = if dtype == DType::F32 { 1e-6 } else { 1e-15 };
        let logs: Vec<f64> = rows.iter().map(|p| p.ln()).collect();
        let y = t.log_softmax(-1);
        assert_eq!((y.dtype(), y.shape()), (dtype, vec![2, 3]));
        assert_close("log_softmax -1", &y.to_f64_vec(), &logs, 2e-6, atol);
        let logs: Vec<f64> = cols.iter().map(|p| p.ln()).collect();
        assert_close("log_softmax 0", &t.log_softmax(-2).to_f64_vec(), &logs, 2e-6, atol);
        // Rows sum to one.
        let s = t.softmax(-1).sum(&[-1], false);
        assert_close("softmax sums", &s.to_f64_vec(), &[1.0, 1.0], 1e-6, 0.0);
        // Large magnitudes.
        let big = ft(&[1000.0, -1000.0, 0.0, 1000.0, 1000.0, 1000.0], &[2, 3], dtype);
        let third = 1.0 / 3.0;
        assert_tensor("softmax big", &big.softmax(-1), dtype, &[2, 3], &[1.0, 0.0, 0.0, third, third, third]);
        let l3 = -(3f64.ln());
        assert_tensor("log_softmax big", &big.log_softmax(-1), dtype, &[2, 3], &[0.0, -2000.0, -1000.0, l3, l3, l3]);
        assert_tensor("logsumexp big", &big.logsumexp(&[-1], false), dtype, &[2], &[1000.0, 1000.0 + 3f64.ln()]);
        // A single element, and an empty batch.
        assert_exact("softmax one", &ft(&[5.0], &[1], dtype).softmax(0), dtype, &[1], &[1.0]);
        assert_exact("softmax empty", &ft(&[], &[0, 3], dtype).softmax(-1), dtype, &[0, 3], &[]);
    }
}

#[test]
fn relu_family_at_special_points() {
    for dtype in [DType::F32, DType::F64] {
        let x = ft(&[0.0, -0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY], &[5], dtype);
        let n = f64::NAN;
        let inf = f64::INFINITY;
        // NaN propagates, like jax.nn.relu (= maximum(x, 0)).
        assert_exact("relu", &x.relu(), dtype, &[5], &[0.0, 0.0, n, inf, 0.0]);
        assert_exact("leaky", &x.leaky_relu(0.5), dtype, &[5], &[0.0, 0.0, n, inf, -inf]);
        let ln2 = if dtype == DType::F32 { 2f32.ln() as f64 } else { 2f64.ln() };
        assert_exact("softplus", &x.softplus(), dtype, &[5], &[ln2, ln2, n, inf, 0.0]);
        assert_exact("sigmoid", &x.sigmoid(), dtype, &[5], &[0.5, 0.5, n, 1.0, 0.0]);
        assert_exact("clamp", &x.clamp(-1.0, 1.0), dtype, &[5], &[0.0, 0.0, n, 1.0, -1.0]);
        // The limit at -inf, where x · sigmoid(x) would be -inf · 0 (JAX gives NaN).
        assert_exact("silu", &x.silu(), dtype, &[5], &[0.0, 0.0, n, inf, 0.0]);
    }
    // relu on integers.
    let i = Tensor::from_vec(vec![-3i32, 0, 4], &[3]);
    assert_eq!(i.relu().to_vec::<i32>(), vec![0, 0, 4]);
    let i = Tensor::from_vec(vec![-3i64, 5], &[2]);
    assert_eq!(i.relu().to_vec::<i64>(), vec![0, 5]);
    // Clamp with equal bounds.
    assert_eq!(f64t(&[-5.0, 5.0], &[2]).clamp(2.0, 2.0).to_vec::<f64>(), vec![2.0, 2.0]);
}
