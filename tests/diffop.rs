//! Differential operators from Taylor mode: exact operators against each other and closed
//! forms, STDE estimators (exact with every term, unbiased over many keys), forward gradients.

mod common;

use common::{assert_tensors_close as assert_close, f64s};
use cotangent::diffop::*;
use cotangent::*;

fn tenth() -> Tensor {
    f64s(&(1..=10).map(|i| i as f64 / 10.0).collect::<Vec<_>>(), &[10])
}

fn quartic(x: &Tensor) -> Tensor {
    x.square().sum_all().square()
}

/// A small tanh MLP ℝ⁴ → ℝ with fixed weights.
fn mlp(x: &Tensor) -> Tensor {
    let w1 = Tensor::from_vec((0..24).map(|i| ((i * 7 % 11) as f64 - 5.0) / 6.0).collect(), &[4, 6]);
    let w2 = Tensor::from_vec((0..6).map(|i| ((i * 5 % 7) as f64 - 3.0) / 4.0).collect(), &[6]);
    (x.matmul(&w1) + 0.1).tanh().matmul(&w2)
}

#[test]
fn laplacian_of_quartic_norm_is_184_8_every_way() {
    let x = tenth();
    let want = Tensor::scalar(184.8);
    assert_close(&laplacian(quartic, &x), &want, 1e-13, "collapsed");
    assert_close(&laplacian_jets(quartic, &x), &want, 1e-13, "d jets");
    assert_close(&hessian_trace(quartic, &x), &want, 1e-13, "forward-over-reverse");
    let op = DiffOperator::laplacian(10);
    assert_close(&op.exact(quartic, &x), &want, 1e-13, "DiffOperator::exact");
    assert_close(&op.estimate(quartic, &x, &random::key(3), 10), &want, 1e-13, "STDE with all 10 dimensions");
}

#[test]
fn laplacian_of_an_mlp_agrees_with_the_trace_of_the_hessian() {
    let x = f64s(&[0.3, -0.1, 0.7, 0.2], &[4]);
    let h = hessian(mlp)(&x);
    let tr = (h * Tensor::eye(4, DType::F64)).sum_all();
    assert_close(&laplacian(mlp, &x), &tr, 1e-13, "collapsed vs trace(hessian)");
    assert_close(&laplacian_jets(mlp, &x), &tr, 1e-13, "jets vs trace(hessian)");
    assert_close(&hessian_trace(mlp, &x), &tr, 1e-13, "hessian_trace vs trace(hessian)");
    // jit and vmap over a batch of points.
    let xs = f64s(&[0.3, -0.1, 0.7, 0.2, -0.5, 0.4, 0.0, 0.9], &[2, 4]);
    let batched = jit(vmap(|x: &Tensor| laplacian(mlp, x)));
    for _ in 0..2 {
        let want = stack(&[laplacian(mlp, &xs.index(0)), laplacian(mlp, &xs.index(1))], 0);
        assert_close(&batched(&xs), &want, 1e-12, "jit(vmap(laplacian))");
    }
}

#[test]
fn divergence_is_the_trace_of_the_jacobian() {
    let x = f64s(&[0.3, -0.1, 0.7], &[3]);
    let f = |x: &Tensor| x.sin() * x.sum_all() + x.flip(&[0]).square();
    let j = jacfwd(f)(&x);
    let tr = (j * Tensor::eye(3, DType::F64)).sum_all();
    assert_close(&divergence(f, &x), &tr, 1e-13, "divergence");
}

/// f = exp(a·x): every partial is a monomial in `a` times f.
fn expo(x: &Tensor) -> Tensor {
    (x * f64s(&[0.5, -1.5, 2.0, 0.25], &[4])).sum_all().exp()
}

#[test]
fn directional_derivatives_of_every_order() {
    let a = [0.5, -1.5, 2.0, 0.25];
    let x = f64s(&[0.1, 0.2, -0.3, 0.4], &[4]);
    let v = f64s(&[1.0, -0.5, 0.25, 2.0], &[4]);
    let av: f64 = a.iter().zip([1.0, -0.5, 0.25, 2.0]).map(|(a, v)| a * v).sum();
    let fx = expo(&x).item::<f64>();
    for k in 1..=6 {
        let got = directional(expo, &x, &v, k).item::<f64>();
        let want = av.powi(k as i32) * fx;
        assert!((got - want).abs() <= 1e-12 * want.abs().max(1.0), "order {k}: {got} vs {want}");
    }
}

#[test]
fn mixed_partials_from_one_jet_match_closed_forms() {
    let a = [0.5, -1.5, 2.0, 0.25];
    let x = f64s(&[0.1, 0.2, -0.3, 0.4], &[4]);
    let fx = expo(&x).item::<f64>();
    for axes in [vec![0, 1], vec![2, 2, 3, 3], vec![0, 1, 2], vec![1, 1, 1, 3], vec![0, 0, 1, 2], vec![3; 5]] {
        let op = DiffOperator::new(4, &[(1.0, axes.clone())]);
        let want: f64 = axes.iter().map(|&i| a[i]).product::<f64>() * fx;
        let got = op.exact(expo, &x).item::<f64>();
        assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "∂ over {axes:?}: {got} vs {want}");
    }
}

#[test]
fn biharmonic_of_quartic_norm() {
    // Δ²‖x‖⁴ = 8d(d + 2).
    let x = tenth();
    let op = DiffOperator::biharmonic(10);
    assert_eq!(op.num_terms(), 10 + 45);
    assert_close(&op.exact(quartic, &x), &Tensor::scalar(960.0), 1e-10, "exact");
    assert_close(&op.estimate(quartic, &x, &random::key(1), 55), &Tensor::scalar(960.0), 1e-10, "all terms drawn");
}

/// Mean and standard error of the mean of a sample.
fn mean_and_sem(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

/// A function whose second and fourth partials differ from axis to axis.
fn uneven(x: &Tensor) -> Tensor {
    let w = f64s(&(1..=8).map(|i| i as f64 / 4.0).collect::<Vec<_>>(), &[8]);
    ((x * &w).sin() * x.cos()).sum_all() + quartic(x)
}

#[test]
fn stde_is_unbiased_over_many_keys() {
    let x = f64s(&[0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, -0.8], &[8]);
    let keys = random::split(&random::key(11), 4000);
    for (name, op, samples) in [
        ("laplacian", DiffOperator::laplacian(8), 3),
        ("sum of fourth powers", DiffOperator::sum_of_powers(8, 4), 2),
        ("biharmonic", DiffOperator::biharmonic(8), 6),
    ] {
        let exact = op.exact(uneven, &x).item::<f64>();
        let est = vmap(|k: &Tensor| op.estimate(uneven, &x, k, samples))(&keys).to_vec::<f64>();
        let (m, sem) = mean_and_sem(&est);
        assert!(sem > 0.0, "{name}: the estimator must vary between keys");
        assert!((m - exact).abs() < 4.5 * sem, "{name}: mean {m} ± {sem} vs exact {exact}");
    }
}

#[test]
fn hutchinson_is_unbiased() {
    let x = f64s(&[0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, -0.8], &[8]);
    let exact = laplacian(uneven, &x).item::<f64>();
    let keys = random::split(&random::key(5), 4000);
    for dist in [Distribution::Rademacher, Distribution::Gaussian] {
        let est = vmap(|k: &Tensor| hutchinson_laplacian(uneven, &x, k, 2, dist))(&keys).to_vec::<f64>();
        let (m, sem) = mean_and_sem(&est);
        assert!(sem > 0.0);
        assert!((m - exact).abs() < 4.5 * sem, "{dist:?}: mean {m} ± {sem} vs exact {exact}");
    }
}

/// grad of an STDE loss (a PINN's), jitted with the key as an argument, against finite
/// differences with the same key.
#[test]
fn grad_of_an_stde_loss_with_a_traced_key() {
    let x = f64s(&[0.3, -0.1, 0.7, 0.2], &[4]);
    let op = DiffOperator::laplacian(4);
    let loss = |(w, key): &(Tensor, Tensor)| {
        let f = |x: &Tensor| (x * w).sum_all().tanh();
        op.estimate(f, &x, key, 2).square()
    };
    let w = f64s(&[0.5, -0.3, 0.8, 0.1], &[4]);
    let key = random::key(9);
    let step = jit(|(w, key): &(Tensor, Tensor)| grad(|w: &Tensor| loss(&(w.clone(), key.clone())))(w));
    let g = step(&(w.clone(), key.clone()));
    assert_close(&step(&(w.clone(), key.clone())), &g, 1e-14, "second (compiled) call");
    let eps = 1e-6;
    let fd: Vec<f64> = (0..4)
        .map(|i| {
            let mut e = vec![0.0; 4];
            e[i] = eps;
            let d = f64s(&e, &[4]);
            let hi = loss(&(&w + &d, key.clone())).item::<f64>();
            let lo = loss(&(&w - &d, key.clone())).item::<f64>();
            (hi - lo) / (2.0 * eps)
        })
        .collect();
    assert_close(&g, &f64s(&fd, &[4]), 1e-6, "grad(STDE loss) vs finite differences");
}

fn linear(x: &Tensor) -> Tensor {
    (x * f64s(&(1..=10).map(|i| i as f64).collect::<Vec<_>>(), &[10])).sum_all()
}

#[test]
fn forward_gradient_is_unbiased_with_the_gaussian_second_moment() {
    let x = tenth();
    let keys = random::split(&random::key(2), 20000);
    let gs = vmap(|k: &Tensor| forward_grad(linear, &x, k).1)(&keys);
    let grad_true: Vec<f64> = (1..=10).map(|i| i as f64).collect();
    let g = gs.to_vec::<f64>();
    for (i, want) in grad_true.iter().enumerate() {
        let col: Vec<f64> = (0..20000).map(|s| g[s * 10 + i]).collect();
        let (m, sem) = mean_and_sem(&col);
        assert!((m - want).abs() < 4.5 * sem, "component {i}: {m} ± {sem} vs {want}");
    }
    // E‖g‖² = (d + 2)‖∇f‖² = 12 · 385 = 4620.
    let sq: Vec<f64> = (0..20000).map(|s| (0..10).map(|i| g[s * 10 + i].powi(2)).sum()).collect();
    let (m, sem) = mean_and_sem(&sq);
    assert!((m - 4620.0).abs() < 4.5 * sem, "E‖g‖² = {m} ± {sem}, want 4620");
    assert!(sem < 0.05 * 4620.0, "enough samples to tell 4620 from d‖∇f‖² = 3850: {sem}");
}

#[test]
fn rademacher_and_guided_forward_gradients() {
    let x = tenth();
    let keys = random::split(&random::key(4), 4000);
    let gs = vmap(|k: &Tensor| forward_grad_with(linear, &x, k, &Guess::Rademacher).1)(&keys).to_vec::<f64>();
    // ‖v‖² = d exactly, so ‖g‖² = d (∇f·v)² with E = d‖∇f‖² = 3850.
    let sq: Vec<f64> = (0..4000).map(|s| (0..10).map(|i| gs[s * 10 + i].powi(2)).sum()).collect();
    let (m, sem) = mean_and_sem(&sq);
    assert!((m - 3850.0).abs() < 4.5 * sem, "Rademacher E‖g‖² = {m} ± {sem}");
    // A guess projects the gradient on it.
    let u = f64s(&[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], &[10]);
    let (_, g) = forward_grad_with(linear, &x, &random::key(0), &Guess::Direction(u));
    let mut want = vec![0.0; 10];
    (want[0], want[9]) = (5.5, 5.5);
    assert_close(&g, &f64s(&want, &[10]), 1e-14, "projection on the guess");
}

#[test]
fn forward_gradient_optimiser_trains_a_tree() {
    let opt = ForwardGradient::new(optim::Sgd::new(0.02), Guess::Gaussian);
    let target = f64s(&[1.0, -2.0, 0.5], &[3]);
    let loss = |(w, b): &(Tensor, Tensor)| (w - &target).square().sum_all() + (b - 1.0).square();
    let mut p = (Tensor::zeros(&[3], DType::F64), Tensor::scalar(0.0));
    let mut s = opt.init(&p);
    let first = loss(&p).item::<f64>();
    for step in 0..400 {
        let (_, p2, s2) = opt.step(loss, &p, &s, &random::fold_in(&random::key(0), step));
        (p, s) = (p2, s2);
    }
    let last = loss(&p).item::<f64>();
    assert!(last < 1e-3 * first, "loss {first} -> {last}");
}
