//! Infinite and huge inputs: activations, the softmax family and losses return the
//! mathematical limits (values and gradients) where those are finite or signed
//! infinities, in f32 and f64, eagerly, jitted (traced and compiled) and in native loops.

mod common;
use common::*;
use cotangent::{grad, jit, nn, with_native_mode, DType, NativeMode, Tensor};

const INF: f64 = f64::INFINITY;
const NAN: f64 = f64::NAN;
const LN2: f64 = std::f64::consts::LN_2;
const DTYPES: [DType; 2] = [DType::F32, DType::F64];

/// A huge finite value of `dtype`: 1e30 in f32, 1e300 in f64.
fn big(dtype: DType) -> f64 {
    if dtype == DType::F32 {
        1e30f32 as f64
    } else {
        1e300
    }
}

/// Checks `f(x)` against `value` eagerly and jitted (called twice: the first call runs the
/// traced graph, the second the compiled plan), and the gradient of `scalar(f(x))` against
/// `gradient` (also twice), with and without native loops.
#[track_caller]
fn check(
    what: &str,
    f: &dyn Fn(&Tensor) -> Tensor,
    scalar: &dyn Fn(&Tensor) -> Tensor,
    x: &Tensor,
    value: &[f64],
    gradient: &[f64],
) {
    let (dtype, shape) = (x.dtype(), x.shape());
    let eager = f(x);
    let out_shape = eager.shape();
    assert_tensor(&format!("{what} {dtype} eager value"), &eager, dtype, &out_shape, value);
    for mode in [NativeMode::Off, NativeMode::Always] {
        with_native_mode(mode, || {
            let jf = jit(|x: &Tensor| f(x));
            let g = grad(|x: &Tensor| scalar(&f(x)));
            for call in 0..2 {
                let at = format!("{what} {dtype} {mode:?} call {call}");
                assert_tensor(&format!("{at}: jit value"), &jf(x), dtype, &out_shape, value);
                assert_tensor(&format!("{at}: gradient"), &g(x), dtype, &shape, gradient);
            }
        });
    }
}

fn sum(y: &Tensor) -> Tensor {
    y.sum_all()
}

type Act = fn(&Tensor) -> Tensor;
/// Values at `[-inf, -big, big, inf]` as a function of `big`.
type Values = fn(f64) -> [f64; 4];

#[test]
fn activations_at_infinities_and_huge_values() {
    // (name, f, values at [-inf, -big, big, inf], derivatives there)
    let table: [(&str, Act, Values, [f64; 4]); 10] = [
        ("silu", nn::silu, |b| [0.0, 0.0, b, INF], [0.0, 0.0, 1.0, 1.0]),
        ("gelu", |x| nn::gelu(x, false), |b| [0.0, 0.0, b, INF], [0.0, 0.0, 1.0, 1.0]),
        ("gelu_tanh", |x| nn::gelu(x, true), |b| [0.0, 0.0, b, INF], [0.0, 0.0, 1.0, 1.0]),
        ("mish", nn::mish, |b| [0.0, 0.0, b, INF], [0.0, 0.0, 1.0, 1.0]),
        ("softplus", nn::softplus, |b| [0.0, 0.0, b, INF], [0.0, 0.0, 1.0, 1.0]),
        ("relu", nn::relu, |b| [0.0, 0.0, b, INF], [0.0, 0.0, 1.0, 1.0]),
        ("leaky_relu", |x| nn::leaky_relu(x, 0.5), |b| [-INF, -0.5 * b, b, INF], [0.5, 0.5, 1.0, 1.0]),
        ("sigmoid", nn::sigmoid, |_| [0.0, 0.0, 1.0, 1.0], [0.0; 4]),
        ("tanh", nn::tanh, |_| [-1.0, -1.0, 1.0, 1.0], [0.0; 4]),
        ("logsumexp of one", |x| x.logsumexp(&[], false), |b| [-INF, -b, b, INF], [1.0; 4]),
    ];
    for (name, f, values, grads) in table {
        for dtype in DTYPES {
            let b = big(dtype);
            let x = ft(&[-INF, -b, b, INF], &[4], dtype);
            check(name, &f, &sum, &x, &values(b), &grads);
        }
    }
}

#[test]
fn activations_propagate_nan() {
    let fs: [(&str, Act); 6] = [
        ("silu", nn::silu),
        ("gelu", |x| nn::gelu(x, false)),
        ("gelu_tanh", |x| nn::gelu(x, true)),
        ("mish", nn::mish),
        ("softplus", nn::softplus),
        ("bce", |x| nn::binary_cross_entropy_with_logits(x, &x.ones_like())),
    ];
    for (name, f) in fs {
        for dtype in DTYPES {
            let x = ft(&[NAN], &[1], dtype);
            let y = f(&x);
            assert!(y.to_f64_vec()[0].is_nan(), "{name} {dtype}: {y}");
            assert!(jit(f)(&x).to_f64_vec()[0].is_nan(), "{name} {dtype} jit");
        }
    }
}

#[test]
fn gelu_tanh_switches_to_relu_seamlessly() {
    // Beyond |x| = 20 the tanh form is relu(x): there the formula itself rounds to it.
    let formula = |x: &Tensor| {
        let inner = (x + x.powf(3.0) * 0.044715) * (2.0 / std::f64::consts::PI).sqrt();
        x * 0.5 * (inner.tanh() + 1.0)
    };
    let xs: Vec<f64> = (-60..=60).map(|i| i as f64 * 0.5).collect();
    for dtype in DTYPES {
        let x = ft(&xs, &[xs.len()], dtype);
        let want = formula(&x).to_f64_vec();
        assert_exact("gelu_tanh", &nn::gelu(&x, true), dtype, &[xs.len()], &want);
        let want = grad(|x: &Tensor| formula(x).sum_all())(&x).to_f64_vec();
        let g = grad(|x: &Tensor| nn::gelu(x, true).sum_all())(&x);
        assert_exact("gelu_tanh derivative", &g, dtype, &[xs.len()], &want);
    }
}

#[test]
fn softmax_family_propagates_nan() {
    for dtype in DTYPES {
        let x = ft(&[NAN, 0.0, INF], &[1, 3], dtype);
        let fs: [(&str, Act); 3] = [
            ("softmax", |x| x.softmax(-1)),
            ("log_softmax", |x| x.log_softmax(-1)),
            ("logsumexp", |x| x.logsumexp(&[1], false)),
        ];
        for (name, f) in fs {
            let y = f(&x);
            assert!(y.to_f64_vec().iter().all(|v| v.is_nan()), "{name} {dtype}: {y}");
            let g = grad(|x: &Tensor| f(x).sum_all())(&x);
            assert!(g.to_f64_vec()[0].is_nan(), "{name} {dtype} gradient: {g}");
        }
    }
}

/// A row of three logits and what the softmax family returns on it.
struct Row {
    x: [f64; 3],
    logsumexp: f64,
    grad_logsumexp: [f64; 3],
    softmax: [f64; 3],
    log_softmax: [f64; 3],
    /// Gradients of `Σ w·softmax` and `Σ w·log_softmax` for `w = [1, 2, 3]`.
    grad_softmax: [f64; 3],
    grad_log_softmax: [f64; 3],
}

fn softmax_rows(b: f64) -> Vec<Row> {
    let row = |x, logsumexp, grad_logsumexp, softmax, log_softmax, grad_softmax, grad_log_softmax| Row {
        x,
        logsumexp,
        grad_logsumexp,
        softmax,
        log_softmax,
        grad_softmax,
        grad_log_softmax,
    };
    let (n3, hot, z3) = ([NAN; 3], [1.0, 0.0, 0.0], [0.0; 3]);
    vec![
        // One +inf dominates: the limit of one large finite logit (the big row below), but
        // infinite results (logsumexp, the -inf log-probabilities) have no derivative with
        // respect to the +inf logit (the limits: [1, 0, 0] and [-5, 2, 3]).
        row([INF, 0.0, 1.0], INF, z3, hot, [0.0, -INF, -INF], z3, [0.0, 2.0, 3.0]),
        row([INF, -INF, 0.0], INF, z3, hot, [0.0, -INF, -INF], z3, [0.0, 2.0, 3.0]),
        row([b, 0.0, -b], b, hot, hot, [0.0, -b, -2.0 * b], z3, [-5.0, 2.0, 3.0]),
        // -inf logits get probability 0 and no derivative.
        row(
            [-INF, 0.0, 0.0],
            LN2,
            [0.0, 0.5, 0.5],
            [0.0, 0.5, 0.5],
            [-INF, -LN2, -LN2],
            [0.0, -0.25, 0.25],
            [1.0, -1.0, 0.0],
        ),
        row(
            [-b, 0.0, 0.0],
            LN2,
            [0.0, 0.5, 0.5],
            [0.0, 0.5, 0.5],
            [-b, -LN2, -LN2],
            [0.0, -0.25, 0.25],
            [1.0, -1.0, 0.0],
        ),
        // Tied +inf logits share the probability.
        row([INF, INF, 0.0], INF, z3, [0.5, 0.5, 0.0], [-LN2, -LN2, -INF], z3, [0.0, 0.0, 3.0]),
        // All -inf: 0/0, NaN like JAX (logsumexp itself is -inf).
        row([-INF; 3], -INF, n3, n3, n3, n3, n3),
    ]
}

#[test]
fn softmax_family_at_infinities() {
    let w = |y: &Tensor| Tensor::from_vec(vec![1.0, 2.0, 3.0], &[1, 3]).cast(y.dtype());
    let weighted = |y: &Tensor| (y * w(y)).sum_all();
    for dtype in DTYPES {
        for r in softmax_rows(big(dtype)) {
            let x = ft(&r.x, &[1, 3], dtype);
            let what = format!("{:?}", r.x);
            let lse = |x: &Tensor| x.logsumexp(&[-1], false);
            check(&format!("logsumexp {what}"), &lse, &sum, &x, &[r.logsumexp], &r.grad_logsumexp);
            check(&format!("softmax {what}"), &|x| x.softmax(-1), &weighted, &x, &r.softmax, &r.grad_softmax);
            let (v, g) = (&r.log_softmax, &r.grad_log_softmax);
            check(&format!("log_softmax {what}"), &|x| x.log_softmax(-1), &weighted, &x, v, g);
        }
    }
}

#[test]
fn logsumexp_over_several_axes_with_infinities() {
    for dtype in DTYPES {
        let x = ft(&[1.0, INF, 0.0, -INF], &[2, 2], dtype);
        check("logsumexp all", &|x| x.logsumexp(&[0, 1], false), &sum, &x, &[INF], &[0.0; 4]);
        let x = ft(&[-INF, -INF, 0.0, INF, -INF, 1.0], &[3, 2], dtype);
        let (lse, grad) = (&[-INF, INF, 1.0], &[NAN, NAN, 0.0, 0.0, 0.0, 1.0]);
        check("logsumexp rows", &|x| x.logsumexp(&[1], true), &sum, &x, lse, grad);
    }
}

#[test]
fn cross_entropy_with_infinite_logits() {
    for dtype in DTYPES {
        let b = big(dtype);
        // The true class at +inf costs nothing and has gradient softmax − onehot = 0.
        let logits = ft(&[INF, 0.0, 1.0, 0.0, -INF, 0.0], &[2, 3], dtype);
        let grad_row2 = [0.25, 0.0, -0.25];
        let labels = Tensor::from_vec(vec![0i64, 2], &[2]);
        let want = [0.0, 0.0, 0.0, grad_row2[0], grad_row2[1], grad_row2[2]];
        let ce = |x: &Tensor| nn::cross_entropy(x, &labels);
        check("cross_entropy true +inf", &ce, &sum, &logits, &[LN2 / 2.0], &want);
        let onehot = ft(&[1.0, 0.0, 0.0, 0.0, 0.0, 1.0], &[2, 3], dtype);
        let ceo = |x: &Tensor| nn::cross_entropy_one_hot(x, &onehot);
        check("cross_entropy_one_hot true +inf", &ceo, &sum, &logits, &[LN2 / 2.0], &want);
        // Another class at +inf: the loss is +inf; the gradient is −1/batch at the label and,
        // unlike softmax − onehot, 0 at the +inf logit.
        let labels = Tensor::from_vec(vec![1i64, 2], &[2]);
        let want = [0.0, -0.5, 0.0, grad_row2[0], grad_row2[1], grad_row2[2]];
        let ce = |x: &Tensor| nn::cross_entropy(x, &labels);
        check("cross_entropy false +inf", &ce, &sum, &logits, &[INF], &want);
        // Huge finite logits behave the same.
        let logits = ft(&[b, 0.0, 1.0, 0.0, -b, 0.0], &[2, 3], dtype);
        let labels = Tensor::from_vec(vec![0i64, 2], &[2]);
        let want = [0.0, 0.0, 0.0, grad_row2[0], grad_row2[1], grad_row2[2]];
        let ce = |x: &Tensor| nn::cross_entropy(x, &labels);
        check("cross_entropy true big", &ce, &sum, &logits, &[LN2 / 2.0], &want);
    }
}

#[test]
fn binary_cross_entropy_with_infinite_logits() {
    for dtype in DTYPES {
        let b = big(dtype);
        // (logit, target, loss, d loss / d logit = sigmoid(x) − t)
        let cases = [
            (INF, 1.0, 0.0, 0.0),
            (INF, 0.0, INF, 1.0),
            (INF, 0.5, INF, 0.5),
            (-INF, 0.0, 0.0, 0.0),
            (-INF, 1.0, INF, -1.0),
            (b, 1.0, 0.0, 0.0),
            (b, 0.0, b, 1.0),
            (-b, 0.0, 0.0, 0.0),
            (-b, 1.0, b, -1.0),
            (0.0, 0.25, LN2, 0.25),
        ];
        for (x, t, loss, g) in cases {
            // Each case twice, so the mean halves the gradient.
            let target = ft(&[t, t], &[2], dtype);
            let bce = |x: &Tensor| nn::binary_cross_entropy_with_logits(x, &target);
            check(&format!("bce({x}, {t})"), &bce, &sum, &ft(&[x, x], &[2], dtype), &[loss], &[g / 2.0, g / 2.0]);
        }
        // Averaged over a batch.
        let target = ft(&[1.0, 0.0, 1.0], &[3], dtype);
        let bce = |x: &Tensor| nn::binary_cross_entropy_with_logits(x, &target);
        check("bce batch", &bce, &sum, &ft(&[INF, -INF, 0.0], &[3], dtype), &[LN2 / 3.0], &[0.0, 0.0, -0.5 / 3.0]);
    }
}

#[test]
fn loss_gradients_with_respect_to_hard_targets() {
    // Zero weights are guarded only against infinite factors: d/dt stays exact at t = 0, 1.
    for dtype in DTYPES {
        let x = ft(&[2.0, -3.0, 0.5, -0.5], &[4], dtype);
        let t = ft(&[0.0, 1.0, 1.0, 0.0], &[4], dtype);
        let g = grad(|t: &Tensor| nn::binary_cross_entropy_with_logits(&x, t))(&t);
        assert_tensor("bce d/dt", &g, dtype, &[4], &[-0.5, 0.75, -0.125, 0.125]);
        let logits = ft(&[1.0, 2.0, 3.0, 0.0], &[2, 2], dtype);
        let onehot = ft(&[1.0, 0.0, 0.0, 1.0], &[2, 2], dtype);
        let g = grad(|t: &Tensor| nn::cross_entropy_one_hot(&logits, t))(&onehot);
        let want: Vec<f64> = logits.log_softmax(-1).to_f64_vec().iter().map(|l| -l / 2.0).collect();
        assert_tensor("cross_entropy_one_hot d/dt", &g, dtype, &[2, 2], &want);
    }
}
