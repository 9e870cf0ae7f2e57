//! A score-based diffusion model on two moons (Song et al., "Score-Based Generative Modeling
//! through Stochastic Differential Equations", ICLR 2021): a small score network trained by
//! denoising score matching under the VP SDE, then sampled twice — with the reverse-time SDE
//! ([`euler_maruyama`] from t = 1 down to ε) and with the probability-flow ODE
//! ([`solve`] with the adaptive Tsit5).
//!
//! ```text
//! cargo run --release --example diffusion                      # 20000 steps of 512 (about a minute)
//! cargo run --release --example diffusion -- --steps 2000 --samples 1000 --out /tmp/diffusion
//! ```
//!
//! * Data: two interleaved half circles with Gaussian noise (sd 0.08), drawn from
//!   [`random`] keys, standardised with the distribution's exact mean and standard deviation;
//!   a training set and two independent held-out sets.
//! * Forward SDE (VP): `dx = −½β(t) x dt + √β(t) dW`, `β(t) = 0.1 + t (20 − 0.1)` on
//!   `t ∈ [ε, 1]`, `ε = 10⁻³`. Its marginal is `x_t = α(t) x₀ + σ(t) z` with
//!   `α(t) = exp(−¼t²(β₁ − β₀) − ½tβ₀)` and `σ(t)² = 1 − α(t)²`, so `x_1 ≈ N(0, I)`.
//! * Score network: an MLP (SiLU, 128 hidden units, three hidden layers) on `x` and a
//!   sinusoidal embedding of `t` that predicts the noise `ε̂(x, t)`; the score is
//!   `s(x, t) = −ε̂(x, t) / σ(t)`. Denoising score matching with the weighting
//!   `λ(t) = σ(t)²` is then `E‖σ(t) s(x_t, t) + z‖² = E‖ε̂(x_t, t) − z‖²` (t uniform on
//!   `[ε, 1]`), which keeps the loss O(1) for every t. Adam with a cosine-decayed rate; the
//!   whole step (batch and noise drawn from a key, loss, gradient, update) is one `jit`.
//! * Samplers, both from `x_1 ~ N(0, I)`:
//!   (a) the reverse-time SDE `dx = [f(x, t) − g(t)² s(x, t)] dt + g(t) dW̄` with
//!   `euler_maruyama` and `t0 = 1 > t1 = ε` (its step `h` is then negative and the noise
//!   is scaled by `√|h|`, which is exactly the reverse-time Euler–Maruyama scheme, so no
//!   hand-written loop is needed);
//!   (b) the probability-flow ODE `dx/dt = f(x, t) − ½ g(t)² s(x, t)` with `solve`, Tsit5,
//!   backward in time (negative `dt0`), one adaptive step size for the whole batch (the
//!   error norm is the RMS over all samples); its number of network evaluations is printed.
//! * Quality: the squared maximum mean discrepancy (biased V-statistic) with a sum of RBF
//!   kernels of bandwidths 0.1, 0.2, 0.5, 1 and 2 (data units) between each sampler's draws
//!   and held-out data, next to two baselines: N(0, I) draws (the untrained prior) and a
//!   second held-out draw of the same size (the noise floor of the estimator).
//!
//! Writes `diffusion_samples.png` (data, SDE samples, ODE samples) and `diffusion_loss.png`
//! under `target/diffusion/` (or `--out`).

#[path = "../common/lines.rs"]
mod lines;
mod plot;

use cotangent::diffeq::{euler_maruyama, solve, Options, Solver};
use cotangent::nn::{Init, Linear};
use cotangent::optim::{Adam, AdamState, Optimizer, Schedule};
use cotangent::{concatenate, data, jit, random, stack, value_and_grad, where_, DType, Tensor, Tree};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::time::Instant;

const BETA_MIN: f64 = 0.1;
const BETA_MAX: f64 = 20.0;
/// The smallest time: training and sampling stay on `[ε, 1]`.
const EPS: f64 = 1e-3;
/// Noise added to the moons.
const MOON_NOISE: f64 = 0.08;
/// Frequencies of the time embedding (sin and cos of each).
const TIME_FREQS: usize = 8;
/// RBF bandwidths of the MMD.
const BANDWIDTHS: [f64; 5] = [0.1, 0.2, 0.5, 1.0, 2.0];

struct Args {
    steps: usize,
    batch: usize,
    lr: f64,
    hidden: usize,
    samples: usize,
    sde_steps: usize,
    tol: f64,
    out: PathBuf,
}

fn parse_args() -> Args {
    let mut a = Args {
        steps: 20_000,
        batch: 512,
        lr: 2e-3,
        hidden: 128,
        samples: 2000,
        sde_steps: 500,
        tol: 1e-3,
        out: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/diffusion"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--steps" => a.steps = value().parse().unwrap_or_else(|_| usage("bad --steps")),
            "--batch" => a.batch = value().parse().unwrap_or_else(|_| usage("bad --batch")),
            "--lr" => a.lr = value().parse().unwrap_or_else(|_| usage("bad --lr")),
            "--hidden" => a.hidden = value().parse().unwrap_or_else(|_| usage("bad --hidden")),
            "--samples" => a.samples = value().parse().unwrap_or_else(|_| usage("bad --samples")),
            "--sde-steps" => a.sde_steps = value().parse().unwrap_or_else(|_| usage("bad --sde-steps")),
            "--tol" => a.tol = value().parse().unwrap_or_else(|_| usage("bad --tol")),
            "--out" => a.out = PathBuf::from(value()),
            "-h" | "--help" => usage(""),
            f => usage(&format!("unknown argument {f}")),
        }
    }
    if a.steps == 0 || a.batch == 0 || a.hidden == 0 || a.samples < 2 || a.sde_steps == 0 {
        usage("--steps, --batch, --hidden and --sde-steps must be positive, --samples at least 2");
    }
    if !(a.lr > 0.0 && a.tol > 0.0) {
        usage("--lr and --tol must be above 0");
    }
    a
}

fn usage(msg: &str) -> ! {
    if !msg.is_empty() {
        eprintln!("diffusion: {msg}");
    }
    eprintln!(
        "usage: diffusion [--steps N] [--batch N] [--lr X] [--hidden N] [--samples N] [--sde-steps N] [--tol X] [--out DIR]"
    );
    std::process::exit(2)
}

/// `n` points of two moons, standardised, `[n, 2]` f32.
fn two_moons(key: &Tensor, n: usize) -> Tensor {
    let [k_angle, k_moon, k_noise] = [0, 1, 2].map(|i| random::fold_in(key, i));
    let theta = random::uniform_range(&k_angle, &[n], 0.0, std::f64::consts::PI, DType::F64);
    let upper = random::bernoulli(&k_moon, 0.5, &[n]);
    let x = where_(&upper, &theta.cos(), &(1.0 - theta.cos()));
    let y = where_(&upper, &theta.sin(), &(0.5 - theta.sin()));
    let pts = stack(&[x, y], 1) + random::normal(&k_noise, &[n, 2], DType::F64) * MOON_NOISE;
    // Exact moments of the mixture (θ uniform on [0, π]): x has mean 1/2 and variance
    // 1/2 + 1/4 (cos θ has mean 0 and variance 1/2; the moons' means are 0 and 1); y has mean
    // 1/4 and variance (1/2 − 4/π²) + (m₁ − m₂)²/4 (sin θ has mean 2/π and variance
    // 1/2 − 4/π²; the moons' means are m₁ = 2/π and m₂ = 1/2 − 2/π); plus the noise.
    let pi = std::f64::consts::PI;
    let (my_up, my_lo) = (2.0 / pi, 0.5 - 2.0 / pi);
    let var_x = 0.5 + 0.25 + MOON_NOISE * MOON_NOISE;
    let var_y = (0.5 - 4.0 / (pi * pi)) + 0.25 * (my_up - my_lo).powi(2) + MOON_NOISE * MOON_NOISE;
    let mean = Tensor::from_vec(vec![0.5, 0.25], &[2]);
    let sd = Tensor::from_vec(vec![var_x.sqrt(), var_y.sqrt()], &[2]);
    ((pts - mean) / sd).cast(DType::F32)
}

fn beta(t: &Tensor) -> Tensor {
    t * (BETA_MAX - BETA_MIN) + BETA_MIN
}

/// `(α(t), σ(t))` of the VP SDE's marginal `x_t = α x₀ + σ z`.
fn marginal(t: &Tensor) -> (Tensor, Tensor) {
    let log_alpha = t.square() * (-0.25 * (BETA_MAX - BETA_MIN)) - t * (0.5 * BETA_MIN);
    let alpha = log_alpha.exp();
    let sigma = (1.0 - (log_alpha * 2.0).exp()).sqrt();
    (alpha, sigma)
}

/// The noise-prediction MLP `ε̂(x, t)`.
#[derive(Clone, Tree)]
struct ScoreNet {
    layers: Vec<Linear>,
}

impl ScoreNet {
    fn new(key: &Tensor, hidden: usize) -> ScoreNet {
        let dims = [2 + 2 * TIME_FREQS, hidden, hidden, hidden, 2];
        let layers = dims
            .windows(2)
            .enumerate()
            .map(|(i, d)| {
                let k = random::fold_in(key, i as i64);
                let init = if i + 2 < dims.len() { Init::HeUniform } else { Init::GlorotUniform };
                Linear::with_init(&k, d[0], d[1], init, true, DType::F32)
            })
            .collect();
        ScoreNet { layers }
    }

    /// `x`: `[n, 2]` f32; `t`: `[n]` f32, or a scalar of any float type (the same time for
    /// every point).
    fn eps_hat(&self, x: &Tensor, t: &Tensor) -> Tensor {
        let n = x.shape()[0];
        let t = t.cast(DType::F32).broadcast_to(&[n]);
        let h = concatenate(&[x.clone(), time_features(&t)], 1);
        let last = self.layers.len() - 1;
        self.layers.iter().enumerate().fold(h, |h, (i, l)| {
            let y = l.forward(&h);
            if i < last {
                y.silu()
            } else {
                y
            }
        })
    }

    /// The score `∇ log p_t(x) ≈ −ε̂(x, t) / σ(t)` at one time `t` (a scalar) for every point.
    fn score(&self, x: &Tensor, t: &Tensor) -> Tensor {
        let t = t.cast(DType::F32);
        let (_, sigma) = marginal(&t);
        -self.eps_hat(x, &t) / sigma
    }
}

/// DDPM's sinusoidal embedding of `1000 t`: `[n]` → `[n, 2·TIME_FREQS]`.
fn time_features(t: &Tensor) -> Tensor {
    let k = Tensor::arange(0.0, TIME_FREQS as f64, 1.0, DType::F32);
    let freqs = (k * (-(10_000f64.ln()) / TIME_FREQS as f64)).exp();
    let arg = (t * 1000.0).expand_dims(1) * freqs.expand_dims(0);
    concatenate(&[arg.sin(), arg.cos()], 1)
}

/// Denoising score matching with `λ(t) = σ(t)²` on a batch `x0`, noise and times from `key`.
fn dsm_loss(net: &ScoreNet, x0: &Tensor, key: &Tensor) -> Tensor {
    let b = x0.shape()[0];
    let [kt, kz] = random::split2(key);
    let t = random::uniform_range(&kt, &[b], EPS, 1.0, DType::F32);
    let z = random::normal(&kz, &[b, 2], DType::F32);
    let (alpha, sigma) = marginal(&t);
    let xt = x0 * alpha.expand_dims(1) + &z * sigma.expand_dims(1);
    (net.eps_hat(&xt, &t) - z).square().sum(&[1], false).mean_all()
}

/// Biased squared MMD with the sum of RBF kernels of [`BANDWIDTHS`] (averaged), in f64.
fn mmd2(x: &Tensor, y: &Tensor) -> f64 {
    let (x, y) = (x.cast(DType::F64), y.cast(DType::F64));
    let mean_k = |a: &Tensor, b: &Tensor| {
        let d2 = a.square().sum(&[1], true) + b.square().sum(&[1], false).expand_dims(0) - a.matmul(&b.t()) * 2.0;
        let d2 = d2.maximum(0.0);
        let k = BANDWIDTHS.iter().map(|h| (&d2 * (-0.5 / (h * h))).exp()).reduce(|a, b| a + b).unwrap();
        k.mean_all().item::<f64>() / BANDWIDTHS.len() as f64
    };
    mean_k(&x, &x) + mean_k(&y, &y) - 2.0 * mean_k(&x, &y)
}

fn main() {
    let args = parse_args();
    let root = random::key(0);
    let k = |i: i64| random::fold_in(&root, i);
    let n_train = 10_000;
    let train = two_moons(&k(0), n_train);
    let held_out = two_moons(&k(1), args.samples);
    let held_out2 = two_moons(&k(2), args.samples);
    println!(
        "diffusion: two moons, {n_train} training points; VP SDE β ∈ [{BETA_MIN}, {BETA_MAX}], t ∈ [{EPS}, 1]; {} steps of batch {}",
        args.steps, args.batch
    );

    // ---- training: one jitted step draws the batch, times and noise from its key ----
    let mut net = ScoreNet::new(&k(3), args.hidden);
    let opt = Adam::new(Schedule::cosine(args.lr, args.steps, 0.05));
    let mut state = opt.init(&net);
    let batch = args.batch;
    let step = {
        let (opt, train) = (opt.clone(), train.clone());
        jit(move |(net, state, key): &(ScoreNet, AdamState<ScoreNet>, Tensor)| {
            let [kb, kn] = random::split2(key);
            let x0 = data::take(&train, &random::randint(&kb, &[batch], 0, n_train as i64));
            let (loss, grads) = value_and_grad(|n: &ScoreNet| dsm_loss(n, &x0, &kn))(net);
            let (net, state) = opt.update(&grads, state, net);
            (loss, net, state)
        })
    };
    let bar = ProgressBar::new(args.steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} train [{bar:30}] {pos}/{len} {msg} ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let k_steps = k(4);
    let mut losses = Vec::with_capacity(args.steps);
    let started = Instant::now();
    for i in 0..args.steps {
        let (loss, n, s) = step(&(net, state, random::fold_in(&k_steps, i as i64)));
        (net, state) = (n, s);
        losses.push(loss.item::<f32>() as f64);
        if i % 50 == 0 || i + 1 == args.steps {
            let recent = &losses[losses.len().saturating_sub(100)..];
            bar.set_message(format!("loss {:.3}", recent.iter().sum::<f64>() / recent.len() as f64));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let train_secs = started.elapsed().as_secs_f64();
    let avg = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let window = (args.steps / 10).clamp(1, 200);
    println!(
        "training: {:.1} s ({:.2} ms per step); loss {:.3} over the first {window} steps, loss {:.3} over the last {window}",
        train_secs,
        1e3 * train_secs / args.steps as f64,
        avg(&losses[..window]),
        avg(&losses[losses.len() - window..])
    );

    // ---- sampling ----
    let x1 = random::normal(&k(5), &[args.samples, 2], DType::F32);
    let sde_steps = args.sde_steps;
    let sde = jit(move |(net, x1, key): &(ScoreNet, Tensor, Tensor)| {
        // Reverse-time drift f − g² s and diffusion g, integrated from t = 1 down to ε.
        let drift = |t: &Tensor, x: &Tensor, net: &ScoreNet| {
            let b = beta(&t.cast(DType::F32));
            x * (&b * -0.5) - net.score(x, t) * b
        };
        let diffusion = |t: &Tensor, x: &Tensor, _: &ScoreNet| x.ones_like() * beta(&t.cast(DType::F32)).sqrt();
        euler_maruyama(drift, diffusion, 1.0, EPS, sde_steps, x1, net, key)
    });
    let started = Instant::now();
    let x_sde = sde(&(net.clone(), x1.clone(), k(6)));
    let sde_secs = started.elapsed().as_secs_f64();

    let opts = Options { rtol: args.tol, atol: args.tol, dt0: Some(-0.01), ..Options::default() };
    let ode = jit(move |(net, x1): &(ScoreNet, Tensor)| {
        // The probability-flow ODE dx/dt = f − ½ g² s, backward from t = 1 to ε.
        let field = |t: &Tensor, x: &Tensor, net: &ScoreNet| {
            let b = beta(&t.cast(DType::F32));
            (x + net.score(x, t)) * (&b * -0.5)
        };
        let sol = solve(field, Solver::Tsit5, 1.0, EPS, x1, net, &[], &opts);
        (sol.ys[0].clone(), sol.stats.nfe, sol.stats.accepted, sol.stats.rejected, sol.result)
    });
    let started = Instant::now();
    let (x_ode, nfe, accepted, rejected, result) = ode(&(net.clone(), x1.clone()));
    let ode_secs = started.elapsed().as_secs_f64();
    let result = result.item::<i64>();
    if result != 0 {
        eprintln!("diffusion: the probability-flow ODE solve failed (result code {result})");
        std::process::exit(1);
    }
    let nfe = nfe.cast(DType::I64).item::<i64>();
    println!(
        "reverse SDE: Euler–Maruyama, {sde_steps} steps = {sde_steps} network evaluations, {sde_secs:.2} s (one call, tracing and compiling included)"
    );
    println!(
        "probability-flow ODE: Tsit5, rtol = atol = {:e}: {} accepted and {} rejected steps, {nfe} network evaluations, {ode_secs:.2} s (one call, tracing and compiling included)",
        args.tol,
        accepted.cast(DType::I64).item::<i64>(),
        rejected.cast(DType::I64).item::<i64>()
    );

    // ---- quality: MMD² against held-out data ----
    let m_sde = mmd2(&x_sde, &held_out);
    let m_ode = mmd2(&x_ode, &held_out);
    let m_prior = mmd2(&x1, &held_out);
    let m_floor = mmd2(&held_out2, &held_out);
    println!("MMD² to {} held-out points (RBF bandwidths {BANDWIDTHS:?}):", args.samples);
    println!("MMD2 prior N(0, I): {m_prior:.3e}");
    println!("MMD2 reverse SDE: {m_sde:.3e}");
    println!("MMD2 probability-flow ODE: {m_ode:.3e}");
    println!("MMD2 second held-out draw (noise floor): {m_floor:.3e}");
    println!(
        "ratios: SDE/floor {:.2}, ODE/floor {:.2}, prior/floor {:.1}; prior/SDE {:.1}, prior/ODE {:.1}",
        m_sde / m_floor,
        m_ode / m_floor,
        m_prior / m_floor,
        m_prior / m_sde,
        m_prior / m_ode
    );

    // ---- plots ----
    std::fs::create_dir_all(&args.out).unwrap_or_else(|e| panic!("cannot create {}: {e}", args.out.display()));
    let png = args.out.join("diffusion_samples.png");
    let points = |x: &Tensor| -> Vec<(f64, f64)> {
        x.cast(DType::F64).to_vec::<f64>().chunks(2).map(|p| (p[0], p[1])).collect()
    };
    let panels = [
        ("HELD-OUT DATA".to_string(), points(&held_out)),
        (format!("REVERSE SDE ({sde_steps} STEPS)"), points(&x_sde)),
        (format!("PROBABILITY FLOW ODE ({nfe} NFE)"), points(&x_ode)),
    ];
    plot::scatter(&png, &panels).unwrap_or_else(|e| panic!("cannot draw {}: {e}", png.display()));
    println!("wrote {}", png.display());
    let png = args.out.join("diffusion_loss.png");
    // The loss averaged over blocks of steps (a single step's loss is noisy).
    let block = (args.steps / 100).max(1);
    let curve = lines::Curve {
        name: "DSM LOSS".to_string(),
        color: plotters::style::BLUE,
        points: losses.chunks(block).enumerate().map(|(i, c)| (((i + 1) * block) as f64, avg(c))).collect(),
    };
    lines::draw(&png, "DENOISING SCORE MATCHING LOSS", "STEP", &[curve], false)
        .unwrap_or_else(|e| panic!("cannot draw {}: {e}", png.display()));
    println!("wrote {}", png.display());
}
