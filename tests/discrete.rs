//! Discrete gradient estimators: known values (ReinMax, straight-through), sample statistics
//! (Gumbel-softmax, ReinMax), quantisation, and the traced dropout switch.

mod common;

use common::f64t;
use cotangent::nn::{self, Dropout};
use cotangent::*;

fn e0() -> Tensor {
    f64t(&[1.0, 0.0, 0.0], &[3])
}

fn assert_near(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= tol, "{what}: got {got:?}, want {want:?}");
    }
}

#[test]
fn reinmax_and_straight_through_known_gradients() {
    let theta = Tensor::zeros(&[3], DType::F64);
    let rm = grad(|t: &Tensor| (nn::reinmax_given(t, &e0(), 1.0) * e0()).sum_all());
    let st = grad(|t: &Tensor| (nn::straight_through_softmax_given(t, &e0()) * e0()).sum_all());
    for _ in 0..2 {
        // First call: the traced graph; second: the compiled plan.
        assert_near(&rm(&theta).to_vec::<f64>(), &[1.0 / 3.0, -1.0 / 6.0, -1.0 / 6.0], 1e-15, "ReinMax");
        assert_near(&st(&theta).to_vec::<f64>(), &[2.0 / 9.0, -1.0 / 9.0, -1.0 / 9.0], 1e-15, "ST");
    }
    // The value is the sample itself.
    assert_eq!(nn::reinmax_given(&theta, &e0(), 1.0).to_vec::<f64>(), vec![1.0, 0.0, 0.0]);
    assert_eq!(nn::straight_through_softmax_given(&theta, &e0()).to_vec::<f64>(), vec![1.0, 0.0, 0.0]);
    // Forward mode agrees with reverse mode, and vmap with a loop.
    let u = f64t(&[0.3, -1.0, 2.0], &[3]);
    let (_, du) = jvp(|t: &Tensor| (nn::reinmax_given(t, &e0(), 1.0) * e0()).sum_all(), &theta, &u);
    let want = (rm(&theta) * &u).sum_all().item::<f64>();
    assert!((du.item::<f64>() - want).abs() < 1e-15);
    let thetas = f64t(&[0.0, 0.0, 0.0, 0.5, -1.0, 2.0], &[2, 3]);
    let batched = vmap(|t: &Tensor| rm(t))(&thetas).to_vec::<f64>();
    let looped: Vec<f64> = (0..2).flat_map(|i| rm(&thetas.index(i)).to_vec::<f64>()).collect();
    assert_eq!(batched, looped);
}

#[test]
fn reinmax_with_a_temperature_against_its_formula() {
    // The gradient of ⟨c, output⟩ is 2·J(π₁)ᵀc − J(π₀)ᵀc/2, J(p) = diag(p) − p pᵀ, with
    // π₁ = (D + softmax(θ/τ))/2.
    let theta = f64t(&[0.4, -0.3, 1.1], &[3]);
    let c = f64t(&[0.7, -2.0, 0.5], &[3]);
    let d = f64t(&[0.0, 1.0, 0.0], &[3]);
    let tau = 2.0;
    let g = grad(|t: &Tensor| (nn::reinmax_given(t, &d, tau) * &c).sum_all())(&theta).to_vec::<f64>();
    let jt = |p: &[f64], c: &[f64]| -> Vec<f64> {
        let pc: f64 = p.iter().zip(c).map(|(a, b)| a * b).sum();
        p.iter().zip(c).map(|(pi, ci)| pi * (ci - pc)).collect()
    };
    let pi0 = theta.softmax(-1).to_vec::<f64>();
    let pi1: Vec<f64> = (&d + (&theta / tau).softmax(-1)).to_vec::<f64>().iter().map(|v| v / 2.0).collect();
    let cv = c.to_vec::<f64>();
    let want: Vec<f64> = jt(&pi1, &cv).iter().zip(jt(&pi0, &cv)).map(|(a, b)| 2.0 * a - b / 2.0).collect();
    assert_near(&g, &want, 1e-14, "ReinMax with τ = 2");
}

#[test]
fn gumbel_softmax_sample_statistics() {
    let n = 20_000;
    let logits = f64t(&[0.5, -1.0, 1.5, 0.0], &[4]);
    let probs = logits.softmax(-1).to_vec::<f64>();
    let batch = logits.broadcast_to(&[n, 4]);
    let key = random::key(42);
    let hard = nn::gumbel_softmax(&key, &batch, 0.5, true);
    let soft = nn::gumbel_softmax(&key, &batch, 0.5, false);
    // Each hard sample is one-hot at the soft sample's largest entry.
    assert!(hard.sum(&[1], false).to_vec::<f64>() == vec![1.0; n], "hard samples are one-hot");
    assert!(hard.argmax(-1, false).to_vec::<i64>() == soft.argmax(-1, false).to_vec::<i64>());
    let sums = soft.sum(&[1], false).to_vec::<f64>();
    assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-12));
    // The Gumbel-max trick: the hard samples follow softmax(logits) (within 4.5 standard errors).
    let freq = hard.mean(&[0], false).to_vec::<f64>();
    for (f, p) in freq.iter().zip(&probs) {
        let se = (p * (1.0 - p) / n as f64).sqrt();
        assert!((f - p).abs() < 4.5 * se, "frequency {f} vs probability {p} (se {se})");
    }
    // At a low temperature the soft samples are nearly one-hot.
    let cold = nn::gumbel_softmax(&key, &batch, 0.01, false).max(&[1], false).mean_all().item::<f64>();
    assert!(cold > 0.99, "{cold}");
    // The hard sample's gradient is the soft sample's.
    let c = f64t(&[1.0, -2.0, 0.5, 3.0], &[4]);
    let gh = grad(|l: &Tensor| (nn::gumbel_softmax(&key, l, 0.5, true) * &c).sum_all())(&logits);
    let gs = grad(|l: &Tensor| (nn::gumbel_softmax(&key, l, 0.5, false) * &c).sum_all())(&logits);
    assert_eq!(gh.to_vec::<f64>(), gs.to_vec::<f64>());
    // ReinMax and ST samples follow softmax(logits) too.
    for (name, s) in [("reinmax", nn::reinmax(&key, &batch, 1.0)), ("st", nn::straight_through_softmax(&key, &batch))] {
        let freq = s.mean(&[0], false).to_vec::<f64>();
        for (f, p) in freq.iter().zip(&probs) {
            assert!((f - p).abs() < 4.5 * (p * (1.0 - p) / n as f64).sqrt(), "{name}: {f} vs {p}");
        }
    }
}

#[test]
fn straight_through_and_quantisation() {
    let x = f64t(&[0.1, 0.34, 0.5, 0.8, 1.3, -0.2], &[6]);
    // 3 bits: levels k/7, clamped to [0, 1].
    let q = nn::quantize_ste(&x, 3).to_vec::<f64>();
    let want: Vec<f64> = [0.1f64, 0.34, 0.5, 0.8, 1.0, 0.0].iter().map(|v| (v * 7.0).round() / 7.0).collect();
    assert_eq!(q, want);
    // The derivative is the identity, in reverse and forward mode, eager and jitted.
    let f = |x: &Tensor| (nn::quantize_ste(x, 3) * nn::quantize_ste(x, 3)).sum_all();
    let g = grad(f)(&x).to_vec::<f64>();
    assert_eq!(g, want.iter().map(|v| 2.0 * v).collect::<Vec<_>>());
    let (_, t) = jvp(|x: &Tensor| nn::quantize_ste(x, 1), &x, &Tensor::ones(&[6], DType::F64));
    assert_eq!(t.to_vec::<f64>(), vec![1.0; 6]);
    // Second order: d²/dx² [st(x)·x] = 2 with st' := 1 at every order (the primal of the
    // rule is the custom function again).
    let h = grad(grad(|x: &Tensor| (nn::straight_through(x, |x| x.floor()) * x).sum_all()))(&Tensor::scalar(1.5));
    assert_eq!(h.item::<f64>(), 2.0);
    let msg = common::panic_message(|| nn::quantize_ste(&x, 0));
    assert!(msg.contains("quantize_ste: bits must be in 1..=32, got 0"), "{msg}");
}

#[test]
fn dropout_switch_is_traced_not_branched_in_rust() {
    let d = Dropout::new(0.5);
    let x = random::normal(&random::key(0), &[64], DType::F64);
    let k = random::key(7);
    // One jitted gradient for both modes: the mode is an argument, traced.
    let step =
        jit(|(x, training): &(Tensor, Tensor)| grad(|x: &Tensor| d.forward_switch(x, &k, training).sum_all())(x));
    let g = |training: bool| step(&(x.clone(), Tensor::scalar(training))).to_vec::<f64>();
    assert_eq!(g(false), vec![1.0; 64]);
    let train = g(true);
    assert!(train.iter().all(|&v| v == 0.0 || v == 2.0));
    let mask: Vec<f64> = d.forward(&Tensor::ones(&[64], DType::F64), Some(&k)).to_vec::<f64>();
    assert_eq!(train, mask);
}
