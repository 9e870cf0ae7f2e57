//! The benchmark workloads (issue: jit and a fast CPU backend). Each prints one line,
//! `<id> <median seconds>`, so `bench/run.sh` can set them beside the same workloads in
//! JAX and PyTorch (`bench/peers/`).
//!
//! Run alone: `cargo bench --bench workloads [-- <id-prefix>]`

use cotangent::*;
use std::hint::black_box;
use std::time::Instant;

/// Median wall time of `f` over enough repetitions to take about `budget` seconds.
fn median_seconds(mut f: impl FnMut()) -> f64 {
    // Warm-up: the first call traces and plans; native loops are compiled once interpreted
    // runs have taken the compiler's expected time (at once with a warm kernel cache), so
    // keep calling for two seconds before measuring the steady state.
    let warm = Instant::now();
    f();
    f();
    while warm.elapsed().as_secs_f64() < 2.0 {
        f();
    }
    let t = Instant::now();
    f();
    let once = t.elapsed().as_secs_f64().max(1e-7);
    let reps = ((0.5 / once) as usize).clamp(5, 2000);
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    times[reps / 2]
}

/// Deterministic pseudo-random values in [-scale, scale).
fn uniform(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn tensor(shape: &[usize], seed: u64, scale: f64, dtype: DType) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(uniform(n, seed, scale), shape).cast(dtype)
}

fn mlp_params(sizes: &[usize], dtype: DType, seed: u64) -> Vec<Tensor> {
    let mut p = Vec::new();
    for (k, w) in sizes.windows(2).enumerate() {
        let scale = (6.0 / (w[0] + w[1]) as f64).sqrt();
        p.push(tensor(&[w[0], w[1]], seed + k as u64, scale, dtype));
        p.push(Tensor::zeros(&[w[1]], dtype));
    }
    p
}

fn mlp_loss(params: &[Tensor], x: &Tensor, labels: &Tensor) -> Tensor {
    let mut h = x.clone();
    let layers = params.len() / 2;
    for l in 0..layers {
        h = h.matmul(&params[2 * l]) + &params[2 * l + 1];
        if l + 1 < layers {
            h = h.relu();
        }
    }
    let logp = h.log_softmax(-1);
    -(logp * labels).sum_all() / x.shape()[0] as f64
}

/// Peak resident set of this process (VmHWM), in MB.
fn peak_memory_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn report(id: &str, seconds: f64) {
    println!("{id} {seconds:.6e}");
}

fn main() {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let want = |id: &str| filter.as_deref().is_none_or(|f| id.starts_with(f) || f.starts_with(id));

    if want("w0") {
        let f = jit(grad(|x: &Tensor| x * x + x.sin()));
        let x = Tensor::scalar(0.3f64);
        report(
            "w0-call",
            median_seconds(|| {
                black_box(f(&x));
            }),
        );
    }

    if want("w1") || want("w2") {
        let params = mlp_params(&[784, 512, 512, 10], DType::F32, 1);
        let x = tensor(&[128, 784], 7, 1.0, DType::F32);
        let labels =
            Tensor::from_vec((0..128).map(|i| (i * 7 % 10) as i64).collect::<Vec<_>>(), &[128]).one_hot(10, DType::F32);
        if want("w1") {
            let fwd = jit(|p: &Vec<Tensor>| mlp_loss(p, &x, &labels));
            report(
                "w1-forward",
                median_seconds(|| {
                    black_box(fwd(&params));
                }),
            );
            let vg = value_and_grad(|p: &Vec<Tensor>| mlp_loss(p, &x, &labels));
            report(
                "w1-value_and_grad",
                median_seconds(|| {
                    black_box(vg(&params));
                }),
            );
        }
        if want("w2") {
            let v: Vec<Tensor> =
                params.iter().enumerate().map(|(k, p)| tensor(&p.shape(), 100 + k as u64, 1.0, DType::F32)).collect();
            let hvp = jit(|(p, v): &(Vec<Tensor>, Vec<Tensor>)| {
                jvp(grad(|p: &Vec<Tensor>| mlp_loss(p, &x, &labels)), p, v).1
            });
            let args = (params.clone(), v);
            report(
                "w2-hvp",
                median_seconds(|| {
                    black_box(hvp(&args));
                }),
            );
        }
    }

    if want("w3") {
        let d = 64;
        let params = mlp_params(&[d, 128, 128, 1], DType::F64, 3);
        let pts = tensor(&[64, d], 9, 1.0, DType::F64);
        let params = &params;
        let net = move |x: &Tensor| {
            let h1 = (x.matmul(&params[0]) + &params[1]).tanh();
            let h2 = (h1.matmul(&params[2]) + &params[3]).tanh();
            (h2.matmul(&params[4]) + &params[5]).sum_all()
        };
        let laplacian = jit(vmap(move |x: &Tensor| {
            let h = hessian(net)(x);
            (h * Tensor::eye(d, DType::F64)).sum_all()
        }));
        report(
            "w3-laplacian",
            median_seconds(|| {
                black_box(laplacian(&pts));
            }),
        );
        // The same Laplacian by Taylor mode: collapsed (one summed second-order coefficient)
        // and with d second-order jets.
        let collapsed = jit(vmap(move |x: &Tensor| diffop::laplacian(net, x)));
        report(
            "w3-laplacian-taylor",
            median_seconds(|| {
                black_box(collapsed(&pts));
            }),
        );
        let jets = jit(vmap(move |x: &Tensor| diffop::laplacian_jets(net, x)));
        report(
            "w3-laplacian-jets",
            median_seconds(|| {
                black_box(jets(&pts));
            }),
        );
    }

    if want("w4") {
        let x = tensor(&[1_000_000], 4, 2.0, DType::F32);
        let f = |x: &Tensor| (x.sin() * (-(x * x)).exp() + x.tanh()).sum_all();
        let fwd = jit(f);
        report(
            "w4-forward",
            median_seconds(|| {
                black_box(fwd(&x));
            }),
        );
        let g = grad(f);
        report(
            "w4-grad",
            median_seconds(|| {
                black_box(g(&x));
            }),
        );
    }

    let rosenbrock = |x: &Tensor| {
        let n = x.shape()[0] as isize;
        let (head, tail) = (x.slice_axis(0, 0, n - 1, 1), x.slice_axis(0, 1, n, 1));
        ((tail - head.square()).square() * 100.0 + (1.0 - head).square()).sum_all()
    };
    if want("w5") {
        let x = tensor(&[1_000_000], 5, 1.0, DType::F64);
        let fwd = jit(rosenbrock);
        report(
            "w5-forward",
            median_seconds(|| {
                black_box(fwd(&x));
            }),
        );
        // Jitted, as the peers' `jax.jit(jax.grad(...))`.
        let g = jit(grad(rosenbrock));
        report(
            "w5-grad",
            median_seconds(|| {
                black_box(g(&x));
            }),
        );
    }
    if want("w6") {
        let x = tensor(&[200], 6, 1.0, DType::F64);
        let h = jit(hessian(rosenbrock));
        report(
            "w6-hessian",
            median_seconds(|| {
                black_box(h(&x));
            }),
        );
    }

    if want("w7") {
        // One PINN training step with the STDE Laplacian: d = 1000, batch 100, 16 sampled
        // dimensions per point, MLP d-128-128-1 (tanh) with the boundary built in, Adam.
        let (d, batch, samples) = (1000, 100, 16);
        let params = mlp_params(&[d, 128, 128, 1], DType::F32, 7);
        let x = tensor(&[batch, d], 11, 1.0 / (d as f64).sqrt(), DType::F32);
        let g = tensor(&[batch], 12, 1.0, DType::F32);
        let keys = random::split(&random::key(0), batch);
        let op = diffop::DiffOperator::laplacian(d);
        let opt = optim::Adam::new(1e-3);
        use optim::Optimizer;
        let state = opt.init(&params);
        let step =
            jit(move |(p, s, x, g, keys): &(Vec<Tensor>, optim::AdamState<Vec<Tensor>>, Tensor, Tensor, Tensor)| {
                let loss = |p: &Vec<Tensor>| {
                    let u = |x: &Tensor| {
                        let h1 = (x.matmul(&p[0]) + &p[1]).tanh();
                        let h2 = (h1.matmul(&p[2]) + &p[3]).tanh();
                        (1.0 - x.square().sum_all()) * (h2.matmul(&p[4]) + &p[5]).sum_all()
                    };
                    let lap =
                        vmap(|(x, k): &(Tensor, Tensor)| op.estimate(u, x, k, samples))(&(x.clone(), keys.clone()));
                    (lap - g).square().mean_all()
                };
                let (l, grads) = value_and_grad(loss)(p);
                let (p, s) = opt.update(&grads, s, p);
                (l, p, s)
            });
        let args = (params, state, x, g, keys);
        report(
            "w7-pinn-stde",
            median_seconds(|| {
                black_box(step(&args));
            }),
        );
        println!("# w7 peak memory (process): {:.0} MB", peak_memory_mb());
    }

    if want("w10") {
        // Jet cost against the order K: the K-th directional derivative of the w3 network at
        // 1024 points (one jet of order K each).
        let d = 64;
        let params = mlp_params(&[d, 128, 128, 1], DType::F64, 3);
        let pts = tensor(&[1024, d], 9, 1.0, DType::F64);
        let v = tensor(&[d], 10, 1.0, DType::F64);
        let params = &params;
        let net = move |x: &Tensor| {
            let h1 = (x.matmul(&params[0]) + &params[1]).tanh();
            let h2 = (h1.matmul(&params[2]) + &params[3]).tanh();
            (h2.matmul(&params[4]) + &params[5]).sum_all()
        };
        for k in 1..=8 {
            let v = v.clone();
            let f = jit(vmap(move |x: &Tensor| diffop::directional(net, x, &v, k)));
            report(
                &format!("w10-jet-order-{k}"),
                median_seconds(|| {
                    black_box(f(&pts));
                }),
            );
        }
    }

    if want("w9") {
        w9_neural_ode();
    }

    if want("w8") {
        // Linear algebra (issue 14): value and gradient of logdet of a 256x256 SPD matrix
        // (f64, through Cholesky) and of sum(sqrtm(A)) over 32 SPD 64x64 matrices (f32,
        // eigendecomposition form with the Lyapunov backward).
        let spd = |batch: &[usize], n: usize, seed: u64, dtype: DType| {
            let b = tensor(&[batch, &[n, n]].concat(), seed, 1.0, dtype);
            b.matmul(&b.swap_axes(-1, -2)) / n as f64 + Tensor::eye(n, dtype)
        };
        let a = spd(&[], 256, 8, DType::F64);
        let vg = value_and_grad(|a: &Tensor| linalg::logdet(a));
        report(
            "w8-logdet",
            median_seconds(|| {
                black_box(vg(&a));
            }),
        );
        let a = spd(&[32], 64, 9, DType::F32);
        let vg = value_and_grad(|a: &Tensor| linalg::sqrtm(a).sum_all());
        report(
            "w8-sqrtm",
            median_seconds(|| {
                black_box(vg(&a));
            }),
        );
    }
}

/// w9: a neural ODE's loss and gradient. Vector field: MLP 2-64-64-2 (tanh), f64, Glorot
/// weights times 2 and zero biases (`mlp_params`, seed 90; identical in the peers: at Glorot
/// scale the field is nearly linear and Dopri5 takes 3 steps); 256 initial states (seed 91); Dopri5 with rtol = atol = 1e-6 from t = 0 to 1, first step chosen by the
/// solver; loss = mean of the final state's squares. Rows: the forward solve, value and
/// gradient with respect to the MLP's parameters discretise-then-optimise and by the
/// continuous adjoint. Comment lines give the function evaluations of each.
fn w9_neural_ode() {
    use cotangent::diffeq::{solve, Gradient, Options, Solver};
    let params: Vec<Tensor> = mlp_params(&[2, 64, 64, 2], DType::F64, 90)
        .into_iter()
        .map(|p| if p.rank() == 2 { p * 2.0 } else { p })
        .collect();
    let y0 = tensor(&[256, 2], 91, 1.0, DType::F64);
    let field = |_t: &Tensor, y: &Tensor, p: &Vec<Tensor>| {
        let h1 = (y.matmul(&p[0]) + &p[1]).tanh();
        let h2 = (h1.matmul(&p[2]) + &p[3]).tanh();
        h2.matmul(&p[4]) + &p[5]
    };
    let opts = |gradient| Options { rtol: 1e-6, atol: 1e-6, gradient, ..Options::default() };
    let y0 = &y0;
    let loss = move |p: &Vec<Tensor>, gradient| {
        let sol = solve(field, Solver::Dopri5, 0.0, 1.0, y0, p, &[], &opts(gradient));
        (sol.ys[0].square().mean_all(), sol.stats, sol.result)
    };
    // Counts (outside the timed rows).
    let (value, stats, code) = jit(|p: &Vec<Tensor>| {
        let (l, st, code) = loss(p, Gradient::Discretise);
        (l, (st.nfe, st.accepted, st.rejected), code)
    })(&params);
    assert_eq!(code.item::<i64>(), 0, "w9: the forward solve failed");
    let (nfe, acc, rej) = (stats.0.item::<i64>(), stats.1.item::<i64>(), stats.2.item::<i64>());
    let fwd = jit(move |p: &Vec<Tensor>| loss(p, Gradient::Discretise).0);
    report(
        "w9-node-forward",
        median_seconds(|| {
            black_box(fwd(&params));
        }),
    );
    let vg = value_and_grad(move |p: &Vec<Tensor>| loss(p, Gradient::Discretise).0);
    report(
        "w9-node-grad",
        median_seconds(|| {
            black_box(vg(&params));
        }),
    );
    let vga = value_and_grad(move |p: &Vec<Tensor>| loss(p, Gradient::Adjoint).0);
    report(
        "w9-node-grad-adjoint",
        median_seconds(|| {
            black_box(vga(&params));
        }),
    );
    // The adjoint's backward solve, as Gradient::Adjoint runs it (augmented state (y, a, g)
    // from t = 1 back to 0 in the variable u = -t, the same solver and tolerances), to count
    // its evaluations (each an evaluation of f and its vjp).
    let back = jit(move |p: &Vec<Tensor>| {
        let y1 = solve(field, Solver::Dopri5, 0.0, 1.0, y0, p, &[], &opts(Gradient::Discretise)).ys[0].clone();
        let a1 = grad(|y: &Tensor| y.square().mean_all())(&y1);
        let aug = |u: &Tensor, (y, a, _g): &(Tensor, Tensor, Vec<Tensor>), p: &Vec<Tensor>| {
            let (fv, pb) = vjp(|(y, p): &(Tensor, Vec<Tensor>)| field(&-u, y, p), &(y.clone(), p.clone()));
            let (ay, ap) = pb.call(a);
            (-fv, ay, ap)
        };
        let z1 = (y1, a1, p.iter().map(Tensor::zeros_like).collect::<Vec<_>>());
        let sol = solve(aug, Solver::Dopri5, -1.0, 0.0, &z1, p, &[], &opts(Gradient::Discretise));
        (sol.stats.nfe, sol.stats.accepted, sol.stats.rejected)
    })(&params);
    // Discretise-then-optimise, by the structure of reverse mode through `while_loop_bounded`
    // (checked by counting evaluations of f through a counting communicator, as
    // tests/loop_checkpoints.rs does: 50 forward, 99 + 49 vjps for the gradient; the starting-step
    // probe only sets the step size, so it is neither recomputed nor transposed): the first
    // K = ceil(log2(max_steps)) iterations are stored, so each is evaluated once forward and
    // once inside its vjp; later ones are re-run once per level of the nest below the top
    // one, L = ceil(log10(max_steps - K)) evaluations per iteration in the backward pass.
    let max_steps = Options::default().max_steps;
    let stored = ((max_steps as f64).log2().ceil() as i64).max(1);
    let levels = ((max_steps as f64 - stored as f64).log10().ceil() as i64).max(1);
    let iterations = (acc + rej).max(1);
    let recomputed =
        if iterations <= stored { nfe } else { nfe * (stored + levels * (iterations - stored)) / iterations };
    println!(
        "# w9 nfe cotangent (loss {:.6e}): forward {nfe} ({acc} accepted, {rej} rejected steps, Dopri5 with FSAL: 6 per step tried + f(t0, y0) + the starting-step probe); \
         value_and_grad {} f + {} vjp ({iterations} iterations, the first {stored} stored: {} recomputation sweeps); adjoint backward {} f+vjp ({} accepted, {} rejected)",
        value.item::<f64>(),
        nfe + recomputed - 1,
        nfe - 1,
        if iterations <= stored { 0 } else { levels - 1 },
        back.0.item::<i64>(),
        back.1.item::<i64>(),
        back.2.item::<i64>()
    );
}
