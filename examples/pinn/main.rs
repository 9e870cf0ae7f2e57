//! A physics-informed network for a high-dimensional Poisson problem, trained with the
//! STDE Laplacian (Shi et al., 2024), compared with the exact Taylor-mode Laplacian and with
//! the Hessian trace by forward-over-reverse.
//!
//! ```text
//! cargo run --release --example pinn                       # d = 100, all three methods
//! cargo run --release --example pinn -- --dim 1000         # STDE and exact (forward-over-reverse
//!                                                          #   only with --all)
//! cargo run --release --example pinn -- --steps 2000 --out /tmp/pinn
//! ```
//!
//! The problem is the inseparable Poisson equation of the STDE paper: `-Δu = g` in the unit
//! ball of ℝᵈ with `u = 0` on the sphere and the exact solution
//! `u*(x) = (1 - ‖x‖²) Σᵢ cᵢ sin(xᵢ + cos xᵢ₊₁ + xᵢ₊₁ cos xᵢ)`, `cᵢ ~ N(0, 1)`; `g = -Δu*` in
//! closed form (checked against `diffop::laplacian` at start). The network is
//! `u(x) = (1 - ‖x‖²)·MLP(x)` (the boundary condition built in), trained with Adam (cosine
//! learning-rate decay) on the squared residual `(Δu + g)²` at random points of the ball. Each method runs in a child process of
//! this program so that its peak memory is its own; each prints a progress bar, and at the
//! end the relative L2 error on held-out points, the time per step and the peak memory
//! (peak resident set) are printed and the error curves drawn to `pinn_error.png`.

#[path = "../common/lines.rs"]
mod lines;

use cotangent::diffop::{self, DiffOperator};
use cotangent::optim::{Adam, Optimizer, Schedule};
use cotangent::{jit, random, value_and_grad, vmap, DType, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use plotters::style::RGBColor;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Clone)]
struct Args {
    dim: usize,
    steps: usize,
    batch: usize,
    samples: usize,
    hidden: usize,
    lr: f64,
    method: Option<String>,
    all: bool,
    out: PathBuf,
}

fn usage(msg: &str) -> ! {
    if !msg.is_empty() {
        eprintln!("pinn: {msg}");
    }
    eprintln!(
        "usage: pinn [--dim D] [--steps N] [--batch B] [--samples K] [--hidden H] [--lr X] \
         [--method stde|exact|hvp] [--all] [--out DIR]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        dim: 100,
        steps: 300,
        batch: 100,
        samples: 16,
        hidden: 128,
        lr: 1e-3,
        method: None,
        all: false,
        out: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/pinn"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--dim" => a.dim = value().parse().unwrap_or_else(|_| usage("bad --dim")),
            "--steps" => a.steps = value().parse().unwrap_or_else(|_| usage("bad --steps")),
            "--batch" => a.batch = value().parse().unwrap_or_else(|_| usage("bad --batch")),
            "--samples" => a.samples = value().parse().unwrap_or_else(|_| usage("bad --samples")),
            "--hidden" => a.hidden = value().parse().unwrap_or_else(|_| usage("bad --hidden")),
            "--lr" => a.lr = value().parse().unwrap_or_else(|_| usage("bad --lr")),
            "--method" => a.method = Some(value()),
            "--all" => a.all = true,
            "--out" => a.out = PathBuf::from(value()),
            "-h" | "--help" => usage(""),
            f => usage(&format!("unknown flag {f}")),
        }
    }
    if a.dim < 2 || a.steps == 0 || a.batch == 0 || a.samples == 0 {
        usage("--dim must be at least 2, and --steps, --batch, --samples at least 1");
    }
    a
}

/// The coefficients `cᵢ` of the exact solution (f64, fixed key).
fn coefficients(d: usize) -> Tensor {
    random::normal(&random::key(2024), &[d - 1], DType::F64)
}

/// `u*(x)` for points `[..., d]`.
fn exact_solution(x: &Tensor, c: &Tensor) -> Tensor {
    let d = x.shape()[x.rank() - 1] as isize;
    let (xi, xn) = (x.slice_axis(-1, 0, d - 1, 1), x.slice_axis(-1, 1, d, 1));
    let phi = &xi + xn.cos() + &xn * xi.cos();
    let s = (phi.sin() * c).sum(&[-1], false);
    (1.0 - x.square().sum(&[-1], false)) * s
}

/// `Δu*` in closed form for points `[..., d]`.
fn exact_laplacian(x: &Tensor, c: &Tensor) -> Tensor {
    let d = x.shape()[x.rank() - 1];
    let (xi, xn) = (x.slice_axis(-1, 0, d as isize - 1, 1), x.slice_axis(-1, 1, d as isize, 1));
    let phi = &xi + xn.cos() + &xn * xi.cos();
    let a = 1.0 - &xn * xi.sin(); // ∂φ/∂xᵢ
    let b = xi.cos() - xn.sin(); // ∂φ/∂xᵢ₊₁
    let lap_phi = -(&xn * xi.cos()) - xn.cos();
    let (sp, cp) = (phi.sin(), phi.cos());
    let s = (&sp * c).sum(&[-1], false);
    let x_grad_s = (&cp * (&xi * &a + &xn * &b) * c).sum(&[-1], false);
    let lap_s = ((&cp * lap_phi - &sp * (a.square() + b.square())) * c).sum(&[-1], false);
    let r2 = x.square().sum(&[-1], false);
    s * (-2.0 * d as f64) - x_grad_s * 4.0 + (1.0 - r2) * lap_s
}

/// `n` points uniform in the unit ball of ℝᵈ.
fn ball(key: &Tensor, n: usize, d: usize) -> Tensor {
    let k = random::split(key, 2);
    let z = random::normal(&k.index(0), &[n, d], DType::F64);
    let r = random::uniform(&k.index(1), &[n, 1], DType::F64).powf(1.0 / d as f64);
    &z / z.square().sum(&[-1], true).sqrt() * r
}

type Params = Vec<(Tensor, Tensor)>;

fn init(key: &Tensor, sizes: &[usize]) -> Params {
    let keys = random::split(key, sizes.len() - 1);
    (0..sizes.len() - 1)
        .map(|i| {
            let w = random::normal(&keys.index(i as isize), &[sizes[i], sizes[i + 1]], DType::F32)
                * (1.0 / sizes[i] as f64).sqrt();
            (w, Tensor::zeros(&[sizes[i + 1]], DType::F32))
        })
        .collect()
}

/// `u(x) = (1 - ‖x‖²)·MLP(x)` for one point `[d]` or a batch `[n, d]`.
fn model(p: &Params, x: &Tensor) -> Tensor {
    let mut h = x.clone();
    for (i, (w, b)) in p.iter().enumerate() {
        h = h.matmul(w) + b;
        if i + 1 < p.len() {
            h = h.tanh();
        }
    }
    let out = h.squeeze(&[-1]);
    (1.0 - x.square().sum(&[-1], false)) * out
}

fn peak_memory_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Trains with one method (in a child process) and writes its curve and summary.
fn train(args: &Args, method: &str) {
    let d = args.dim;
    let c = coefficients(d);
    let test_x = ball(&random::key(7), 2000, d);
    let test_u = exact_solution(&test_x, &c);
    let test_x32 = test_x.cast(DType::F32);
    let mut params = init(&random::key(1), &[d, args.hidden, args.hidden, 1]);
    let opt = Adam::new(args.lr);
    let mut state = opt.init(&params);
    let op = DiffOperator::laplacian(d);
    let samples = args.samples;
    let method_owned = method.to_string();
    let (lr, steps) = (args.lr, args.steps);
    // One jitted step: points, sources and keys are arguments, so it compiles once.
    let step = jit(move |(p, s, x, g, keys): &(Params, _, Tensor, Tensor, Tensor)| {
        let loss = |p: &Params| {
            let u = |x: &Tensor| model(p, x);
            let lap = match method_owned.as_str() {
                "stde" => vmap(|(x, k): &(Tensor, Tensor)| op.estimate(u, x, k, samples))(&(x.clone(), keys.clone())),
                "exact" => vmap(|x: &Tensor| diffop::laplacian(u, x))(x),
                _ => vmap(|x: &Tensor| diffop::hessian_trace(u, x))(x),
            };
            // The residual of -Δu = g.
            (lap + g).square().mean_all()
        };
        let (l, grads) = value_and_grad(loss)(p);
        let (p, s) = Adam::new(Schedule::cosine(lr, steps, 0.01)).update(&grads, s, p);
        (l, p, s)
    });
    let error = |p: &Params| {
        let u = model(p, &test_x32).cast(DType::F64);
        ((&u - &test_u).square().sum_all().sqrt() / test_u.square().sum_all().sqrt()).item::<f64>()
    };
    let bar = ProgressBar::new(args.steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix:>5} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(method.to_string());
    let mut curve = vec![(0.0, error(&params))];
    let data_key = random::key(3);
    let mut times = Vec::new();
    for i in 0..args.steps {
        let k = random::split(&random::fold_in(&data_key, i as i64), 2);
        let x = ball(&k.index(0), args.batch, d);
        let g = (-exact_laplacian(&x, &c)).cast(DType::F32); // the source, -Δu*
        let keys = random::split(&k.index(1), args.batch);
        let t = Instant::now();
        let (loss, p, s) = step(&(params, state, x.cast(DType::F32), g, keys));
        let loss = loss.item::<f32>();
        times.push(t.elapsed().as_secs_f64());
        (params, state) = (p, s);
        if (i + 1) % 10 == 0 || i + 1 == args.steps {
            curve.push(((i + 1) as f64, error(&params)));
        }
        bar.set_message(format!("loss {loss:.3e} rel. L2 error {:.3e}", curve.last().expect("point").1));
        bar.inc(1);
    }
    bar.finish_and_clear();
    // Time per step in the steady state: the first step traces and compiles.
    let steady = if times.len() > 1 { &times[1..] } else { &times[..] };
    let per_step = steady.iter().sum::<f64>() / steady.len() as f64;
    let final_error = curve.last().expect("point").1;
    let mut txt = format!("{method} {final_error} {} {}\n", per_step * 1e3, peak_memory_mb());
    for (s, e) in &curve {
        txt.push_str(&format!("{s} {e}\n"));
    }
    let path = args.out.join(format!("pinn_{method}.txt"));
    std::fs::write(&path, txt).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn main() {
    let args = parse_args();
    std::fs::create_dir_all(&args.out).unwrap_or_else(|e| panic!("cannot create {}: {e}", args.out.display()));
    if let Some(m) = &args.method {
        if !["stde", "exact", "hvp"].contains(&m.as_str()) {
            usage(&format!("unknown method {m}"));
        }
        train(&args, m);
        return;
    }
    let d = args.dim;
    println!(
        "pinn: -Δu = g in the unit ball of R^{d}, MLP {d}-{h}-{h}-1 (tanh), batch {}, {} steps, Adam lr {}",
        args.batch,
        args.steps,
        args.lr,
        h = args.hidden
    );
    // The closed-form source against Taylor mode, at two points.
    let c = coefficients(d);
    let pts = ball(&random::key(99), 2, d);
    let closed = exact_laplacian(&pts, &c).to_vec::<f64>();
    let taylor: Vec<f64> =
        (0..2).map(|i| diffop::laplacian(|x: &Tensor| exact_solution(x, &c), &pts.index(i)).item::<f64>()).collect();
    let check = closed.iter().zip(&taylor).map(|(a, b)| (a - b).abs() / b.abs().max(1.0)).fold(0.0f64, f64::max);
    println!("source check: closed-form Laplacian vs diffop::laplacian, max relative difference {check:.1e}");
    assert!(check < 1e-10, "the closed-form source disagrees with Taylor mode");

    let mut methods = vec!["stde", "exact"];
    // Forward-over-reverse keeps d Hessian-vector products per point alive: only where it fits.
    if args.all || d <= 200 {
        methods.push("hvp");
    }
    let exe = std::env::current_exe().expect("own path");
    let mut results = Vec::new();
    for m in &methods {
        let status = std::process::Command::new(&exe)
            .args(std::env::args().skip(1))
            .args(["--method", m])
            .status()
            .expect("child runs");
        assert!(status.success(), "the {m} run failed");
        let txt = std::fs::read_to_string(args.out.join(format!("pinn_{m}.txt"))).expect("child result");
        let mut lines = txt.lines();
        let head: Vec<String> = lines.next().expect("summary").split(' ').map(String::from).collect();
        let curve: Vec<(f64, f64)> = lines
            .map(|l| {
                let v: Vec<f64> = l.split(' ').map(|s| s.parse().expect("number")).collect();
                (v[0], v[1])
            })
            .collect();
        let name = match *m {
            "stde" => format!("STDE ({} dims)", args.samples),
            "exact" => "exact Taylor".to_string(),
            _ => "Hessian trace (fwd-rev)".to_string(),
        };
        println!(
            "{name:<26} relative L2 error {:.3e}, {:.1} ms per step, peak memory {:.0} MB",
            head[1].parse::<f64>().expect("error"),
            head[2].parse::<f64>().expect("time"),
            head[3].parse::<f64>().expect("memory")
        );
        results.push((name, head[1].parse::<f64>().expect("error"), curve));
    }
    let colors = [RGBColor(31, 119, 180), RGBColor(214, 39, 40), RGBColor(44, 160, 44)];
    let curves: Vec<lines::Curve> = results
        .iter()
        .zip(colors)
        .map(|((name, _, c), color)| lines::Curve { name: name.to_uppercase(), color, points: c.clone() })
        .collect();
    let png = args.out.join("pinn_error.png");
    lines::draw(&png, &format!("POISSON D {d}: RELATIVE L2 ERROR"), "STEP", &curves, true)
        .unwrap_or_else(|e| panic!("cannot draw {}: {e}", png.display()));
    println!("wrote {}", png.display());
    println!("final relative L2 error (STDE): {:.3e}", results[0].1);
}
