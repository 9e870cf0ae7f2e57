//! Optimisers: two steps of each against a hand computation of its documented rule
//! (Adam and AdamW against PyTorch's documented algorithms), schedules, clipping, and
//! optimiser states as trees (names, checkpoint and resume).

use cotangent::optim::*;
use cotangent::{grad, io, vjp, Tensor, Tree};

type P = (Tensor, Tensor);

fn params() -> P {
    (Tensor::from_vec(vec![0.5, -1.5], &[2]), Tensor::from_vec(vec![2.0, -0.25, 0.0, 1.0], &[2, 2]))
}

/// The gradients fed at steps 1 and 2 (fixed, so the hand computation needs no autodiff).
fn grads() -> [P; 2] {
    [
        (Tensor::from_vec(vec![0.3, -2.0], &[2]), Tensor::from_vec(vec![1e-3, 4.0, -0.5, 0.0], &[2, 2])),
        (Tensor::from_vec(vec![-0.1, -1.0], &[2]), Tensor::from_vec(vec![2e-3, -3.0, 0.25, 0.7], &[2, 2])),
    ]
}

fn flat(p: &P) -> Vec<f64> {
    p.leaves().iter().flat_map(|t| t.to_vec::<f64>()).collect()
}

/// Runs two steps; returns the parameters after each.
fn two_steps<O: Optimizer>(opt: &O) -> [Vec<f64>; 2] {
    let p0 = params();
    let [g1, g2] = grads();
    let s0 = opt.init(&p0);
    let (p1, s1) = opt.update(&g1, &s0, &p0);
    let (p2, _) = opt.update(&g2, &s1, &p1);
    [flat(&p1), flat(&p2)]
}

/// Runs a per-element hand rule for two steps: `rule(t, θ, g, state) -> θ'` with `t` from 1.
fn by_hand(mut rule: impl FnMut(usize, usize, f64, f64) -> f64) -> [Vec<f64>; 2] {
    let mut p = flat(&params());
    let g: Vec<Vec<f64>> = grads().iter().map(flat).collect();
    let mut out = [Vec::new(), Vec::new()];
    for t in 1..=2 {
        p = p.iter().enumerate().map(|(i, &th)| rule(t, i, th, g[t - 1][i])).collect();
        out[t - 1] = p.clone();
    }
    out
}

#[track_caller]
fn assert_same(what: &str, got: &[Vec<f64>; 2], want: &[Vec<f64>; 2]) {
    for s in 0..2 {
        for (i, (a, b)) in got[s].iter().zip(&want[s]).enumerate() {
            assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "{what}: step {} element {i}: {a} vs hand {b}", s + 1);
        }
    }
}

#[test]
fn sgd_plain_momentum_nesterov_weight_decay() {
    for (mu, nesterov, wd) in
        [(0.0, false, 0.0), (0.9, false, 0.0), (0.9, true, 0.0), (0.5, true, 0.1), (0.0, false, 0.01)]
    {
        let opt = Sgd::new(0.1).with_momentum(mu, nesterov).with_weight_decay(wd);
        let mut buf = [0.0; 6];
        let want = by_hand(|t, i, th, g| {
            let g = g + wd * th;
            let d = if mu == 0.0 {
                g
            } else {
                buf[i] = if t == 1 { g } else { mu * buf[i] + g };
                if nesterov {
                    g + mu * buf[i]
                } else {
                    buf[i]
                }
            };
            th - 0.1 * d
        });
        assert_same(&format!("sgd mu={mu} nesterov={nesterov} wd={wd}"), &two_steps(&opt), &want);
    }
}

/// PyTorch's documented Adam (and, with `decoupled`, AdamW) for one element.
fn torch_adam(lr: f64, b1: f64, b2: f64, eps: f64, wd: f64, decoupled: bool) -> [Vec<f64>; 2] {
    let (mut m, mut v) = (vec![0.0; 6], vec![0.0; 6]);
    by_hand(|t, i, th, g| {
        let mut th = th;
        let mut g = g;
        if decoupled {
            th -= lr * wd * th;
        } else if wd != 0.0 {
            g += wd * th;
        }
        m[i] = b1 * m[i] + (1.0 - b1) * g;
        v[i] = b2 * v[i] + (1.0 - b2) * g * g;
        let m_hat = m[i] / (1.0 - b1.powi(t as i32));
        let v_hat = v[i] / (1.0 - b2.powi(t as i32));
        th - lr * m_hat / (v_hat.sqrt() + eps)
    })
}

#[test]
fn adam_matches_pytorch_documented_rule() {
    assert_same("adam defaults", &two_steps(&Adam::new(0.01)), &torch_adam(0.01, 0.9, 0.999, 1e-8, 0.0, false));
    let opt = Adam { lr: 0.05.into(), b1: 0.8, b2: 0.95, eps: 1e-3, weight_decay: 0.1 };
    assert_same("adam with L2", &two_steps(&opt), &torch_adam(0.05, 0.8, 0.95, 1e-3, 0.1, false));
}

#[test]
fn adamw_matches_pytorch_documented_rule() {
    assert_same("adamw defaults", &two_steps(&AdamW::new(0.01)), &torch_adam(0.01, 0.9, 0.999, 1e-8, 0.01, true));
    let opt = AdamW { lr: 0.05.into(), b1: 0.7, b2: 0.9, eps: 1e-6, weight_decay: 0.5 };
    assert_same("adamw decay 0.5", &two_steps(&opt), &torch_adam(0.05, 0.7, 0.9, 1e-6, 0.5, true));
}

#[test]
fn rmsprop_two_steps() {
    for (mu, wd) in [(0.0, 0.0), (0.9, 0.0), (0.5, 0.2)] {
        let opt = RmsProp { lr: 0.01.into(), alpha: 0.9, eps: 1e-6, momentum: mu, weight_decay: wd };
        let (mut v, mut b) = (vec![0.0; 6], vec![0.0; 6]);
        let want = by_hand(|_, i, th, g| {
            let g = g + wd * th;
            v[i] = 0.9 * v[i] + 0.1 * g * g;
            let step = g / (v[i].sqrt() + 1e-6);
            if mu > 0.0 {
                b[i] = mu * b[i] + step;
                th - 0.01 * b[i]
            } else {
                th - 0.01 * step
            }
        });
        assert_same(&format!("rmsprop mu={mu} wd={wd}"), &two_steps(&opt), &want);
    }
}

#[test]
fn adagrad_two_steps() {
    let opt = Adagrad { lr: 0.1.into(), lr_decay: 0.5, weight_decay: 0.1, initial_accumulator: 0.2, eps: 1e-10 };
    let mut s = [0.2; 6];
    let want = by_hand(|t, i, th, g| {
        let clr = 0.1 / (1.0 + (t - 1) as f64 * 0.5);
        let g = g + 0.1 * th;
        s[i] += g * g;
        th - clr * g / (s[i].sqrt() + 1e-10)
    });
    assert_same("adagrad", &two_steps(&opt), &want);
}

#[test]
fn diffgrad_two_steps() {
    let opt = DiffGrad::new(0.02);
    let (mut m, mut v, mut prev) = (vec![0.0; 6], vec![0.0; 6], vec![0.0; 6]);
    let want = by_hand(|t, i, th, g| {
        m[i] = 0.9 * m[i] + 0.1 * g;
        v[i] = 0.999 * v[i] + 0.001 * g * g;
        let xi = 1.0 / (1.0 + (-(prev[i] - g).abs()).exp());
        prev[i] = g;
        let m_hat = m[i] / (1.0 - 0.9f64.powi(t as i32));
        let v_hat = v[i] / (1.0 - 0.999f64.powi(t as i32));
        th - 0.02 * xi * m_hat / (v_hat.sqrt() + 1e-8)
    });
    assert_same("diffgrad", &two_steps(&opt), &want);
}

#[test]
fn lion_two_steps() {
    let opt = Lion { lr: 0.01.into(), b1: 0.9, b2: 0.99, weight_decay: 0.5 };
    let mut m = [0.0; 6];
    let sign = |x: f64| {
        if x > 0.0 {
            1.0
        } else if x < 0.0 {
            -1.0
        } else {
            0.0
        }
    };
    let want = by_hand(|_, i, th, g| {
        let c = 0.9 * m[i] + 0.1 * g;
        m[i] = 0.99 * m[i] + 0.01 * g;
        th - 0.01 * (sign(c) + 0.5 * th)
    });
    assert_same("lion", &two_steps(&opt), &want);
}

#[test]
fn schedules() {
    let s = Schedule::step(0.1, 2, 0.5);
    assert_eq!((0..6).map(|t| s.value(t)).collect::<Vec<_>>(), vec![0.1, 0.1, 0.05, 0.05, 0.025, 0.025]);
    let c = Schedule::cosine(2.0, 4, 0.25);
    let expect = |t: f64| 2.0 * (0.75 * 0.5 * (1.0 + (std::f64::consts::PI * t.min(4.0) / 4.0).cos()) + 0.25);
    for t in 0..8 {
        assert!((c.value(t) - expect(t as f64)).abs() < 1e-14);
    }
    let w = Schedule::warmup(3, Schedule::step(1.0, 1, 0.5));
    let got: Vec<f64> = (0..6).map(|t| w.value(t)).collect();
    let want = [1.0 / 3.0, 2.0 / 3.0, 1.0, 1.0, 0.5, 0.25];
    for (g, e) in got.iter().zip(want) {
        assert!((g - e).abs() < 1e-14, "{got:?}");
    }
    // A schedule drives the optimiser through its step counter.
    let opt = Sgd::new(Schedule::step(0.1, 1, 0.5));
    let want = by_hand(|t, _, th, g| th - 0.1 * 0.5f64.powi(t as i32 - 1) * g);
    assert_same("sgd with step schedule", &two_steps(&opt), &want);
}

#[test]
fn clipping_by_global_norm() {
    let g = grads()[0].clone();
    let norm = flat(&g).iter().map(|x| x * x).sum::<f64>().sqrt();
    let (c, n) = clip_by_global_norm(&g, 1.0);
    assert!((n.item::<f64>() - norm).abs() < 1e-12);
    let cn = flat(&c).iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!((cn - 1.0).abs() < 1e-12);
    for (a, b) in flat(&c).iter().zip(flat(&g)) {
        assert!((a - b / norm).abs() < 1e-12);
    }
    // Below the threshold nothing changes; zero gradients stay zero.
    let (same, _) = clip_by_global_norm(&g, 100.0);
    assert_eq!(flat(&same), flat(&g));
    let zero = g.map_leaves(|t| t.zeros_like());
    let (z, n0) = clip_by_global_norm(&zero, 1.0);
    assert_eq!(n0.item::<f64>(), 0.0);
    assert!(flat(&z).iter().all(|&x| x == 0.0));
}

#[test]
fn integer_leaves_pass_through() {
    let p = (Tensor::scalar(1.0), Tensor::from_vec(vec![3i64, 4], &[2]));
    // grad refuses integer leaves; vjp gives them zero cotangents of their own dtype.
    let (_, pullback) = vjp(|p: &(Tensor, Tensor)| &p.0 * 2.0, &p);
    let g = pullback.call(&Tensor::scalar(1.0));
    let opt = Adam::new(0.1);
    let (p1, _) = opt.update(&g, &opt.init(&p), &p);
    assert_eq!(p1.1.to_vec::<i64>(), vec![3, 4]);
    assert!(p1.0.item::<f64>() < 1.0);
}

#[test]
fn states_are_trees_that_checkpoint_and_resume() {
    let opt = Adam::new(0.05);
    let p0 = params();
    let [g1, g2] = grads();
    let s0 = opt.init(&p0);
    let names: Vec<String> = s0.named_leaves().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["step", "m.0", "m.1", "v.0", "v.1"]);
    let (p1, s1) = opt.update(&g1, &s0, &p0);
    // Save after one step, reload into fresh templates, take the second step.
    let dir = std::env::temp_dir().join(format!("cotangent_optim_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    io::save(&p1, dir.join("p.safetensors")).unwrap();
    io::save(&s1, dir.join("s.safetensors")).unwrap();
    let p1r = io::load(&params(), dir.join("p.safetensors")).unwrap();
    let s1r = io::load(&opt.init(&params()), dir.join("s.safetensors")).unwrap();
    assert_eq!(s1r.step.item::<i64>(), 1);
    let (p2, _) = opt.update(&g2, &s1, &p1);
    let (p2r, _) = opt.update(&g2, &s1r, &p1r);
    assert_eq!(flat(&p2), flat(&p2r));
    std::fs::remove_dir_all(&dir).unwrap();
    // Every optimiser's state has one step counter plus parameter-shaped buffers.
    fn count<O: Optimizer>(o: &O) -> usize {
        o.init(&params()).leaves().len()
    }
    assert_eq!(count(&Sgd::new(0.1)), 3);
    assert_eq!(count(&AdamW::new(0.1)), 5);
    assert_eq!(count(&RmsProp::new(0.1)), 5);
    assert_eq!(count(&Adagrad::new(0.1)), 3);
    assert_eq!(count(&DiffGrad::new(0.1)), 7);
    assert_eq!(count(&Lion::new(0.1)), 3);
}

#[test]
fn every_optimiser_descends_a_quadratic() {
    let target = Tensor::from_vec(vec![1.0, -2.0, 0.5], &[3]);
    let loss = |w: &Tensor| (w - &target).square().sum_all();
    fn run<O: Optimizer>(opt: &O, loss: &dyn Fn(&Tensor) -> Tensor) -> f64 {
        let mut w = Tensor::from_vec(vec![0.0; 3], &[3]);
        let mut s = opt.init(&w);
        for _ in 0..200 {
            let g = grad(loss)(&w);
            (w, s) = opt.update(&g, &s, &w);
        }
        loss(&w).item::<f64>()
    }
    let start = loss(&Tensor::from_vec(vec![0.0; 3], &[3])).item::<f64>();
    let results = [
        ("sgd", run(&Sgd::new(0.1), &loss)),
        ("nesterov", run(&Sgd::new(0.05).with_momentum(0.9, true), &loss)),
        ("adam", run(&Adam::new(0.1), &loss)),
        ("adamw", run(&AdamW::new(0.1), &loss)),
        ("rmsprop", run(&RmsProp::new(0.01), &loss)),
        ("adagrad", run(&Adagrad::new(0.5), &loss)),
        ("diffgrad", run(&DiffGrad::new(0.1), &loss)),
        ("lion", run(&Lion::new(0.01), &loss)),
    ];
    for (name, end) in results {
        assert!(end < 0.05 * start, "{name}: loss {start} -> {end}");
    }
}
