//! How compilation scales with program size: an unrolled recurrent cell (an LSTM-like
//! step per time step: a matrix-vector product of the concatenated state and input,
//! four gates split off it, element-wise updates, the outputs stacked into a loss) traced,
//! differentiated (linearize, then transpose), optimised, planned and turned into C
//! source for native loops. Every phase should be linear in the number of nodes: the
//! last line fits the exponent `t ∝ nodes^k` per phase (k ≤ 1.1 is the target).
//!
//! Run: `cargo bench --bench compile_scaling` (sizes 10³, 10⁴, 10⁵ nodes);
//! `COMPILE_SCALING_MAX=1000000` (or the argument `--max 1000000`) adds 10⁶.

use cotangent::compile::{optimize, Plan};
use cotangent::{concatenate, stack, trace_graph, vjp, with_native_mode, DType, NativeMode, Tensor};
use std::cell::Cell;
use std::time::Instant;

/// State width: small, so that running the plan is never what is measured.
const D: usize = 4;

/// The loss of `steps` unrolled cells with weights `w` `[4D, 2D]`, biases `b` `[4D]`,
/// inputs `xs` `[steps, D]` and initial state `h0`, `c0` `[D]`.
fn cells(w: &Tensor, b: &Tensor, xs: &Tensor, h0: &Tensor, c0: &Tensor) -> Tensor {
    let steps = xs.shape()[0];
    let (mut h, mut c) = (h0.clone(), c0.clone());
    let mut outs = Vec::with_capacity(steps);
    for t in 0..steps {
        let x = xs.index(t as isize);
        let z = w.matmul(&concatenate(&[h.clone(), x], 0)) + b;
        let g = z.split(&[D, D, D, D], 0);
        let (i, f, o, u) = (g[0].sigmoid(), g[1].sigmoid(), g[2].sigmoid(), g[3].tanh());
        c = &c * f + i * u;
        h = o * c.tanh();
        outs.push(h.clone());
    }
    let ys = stack(&outs, 0);
    (ys.exp().sum_all() + 2.0).log() - (ys * xs).sum_all()
}

fn time<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed().as_secs_f64())
}

const PHASES: [&str; 7] = ["trace", "linearize", "transpose", "optimize", "plan", "codegen", "total"];

/// Seconds per phase and node counts (traced forward graph, gradient graph) for `steps`.
fn measure(steps: usize) -> (usize, usize, usize, [f64; 7]) {
    let tys = [
        Tensor::zeros(&[4 * D, 2 * D], DType::F64).ty(),
        Tensor::zeros(&[4 * D], DType::F64).ty(),
        Tensor::zeros(&[steps, D], DType::F64).ty(),
        Tensor::zeros(&[D], DType::F64).ty(),
        Tensor::zeros(&[D], DType::F64).ty(),
    ];
    let (fwd, t_trace) = time(|| trace_graph(&tys, |a| vec![cells(&a[0], &a[1], &a[2], &a[3], &a[4])]));
    let (t_lin, t_tr) = (Cell::new(0.0), Cell::new(0.0));
    let grad = trace_graph(&tys, |a| {
        let params = (a[0].clone(), a[1].clone());
        let ((loss, pb), t) = time(|| vjp(|(w, b): &(Tensor, Tensor)| cells(w, b, &a[2], &a[3], &a[4]), &params));
        t_lin.set(t);
        let ((gw, gb), t) = time(|| pb.call(&Tensor::scalar(1.0)));
        t_tr.set(t);
        vec![loss, gw, gb]
    });
    let (opt, t_opt) = time(|| optimize(&grad));
    let ((plan, src), t_plan, t_gen) = with_native_mode(NativeMode::Always, || {
        let (plan, t_plan) = time(|| Plan::interpreted(&opt));
        let (src, t_gen) = time(|| plan.native_source());
        ((plan, src), t_plan, t_gen)
    });
    let _ = plan.num_steps();
    let mut t = [t_trace, t_lin.get(), t_tr.get(), t_opt, t_plan, t_gen, 0.0];
    t[6] = t[..6].iter().sum();
    (fwd.nodes.len(), grad.nodes.len(), src.len(), t)
}

/// Least-squares slope of log(t) against log(n).
fn exponent(ns: &[f64], ts: &[f64]) -> f64 {
    let pts: Vec<(f64, f64)> = ns.iter().zip(ts).filter(|(_, &t)| t > 0.0).map(|(&n, &t)| (n.ln(), t.ln())).collect();
    let k = pts.len() as f64;
    let (mx, my) = (pts.iter().map(|p| p.0).sum::<f64>() / k, pts.iter().map(|p| p.1).sum::<f64>() / k);
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    sxy / sxx
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let max = args
        .iter()
        .position(|a| a == "--max")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| std::env::var("COMPILE_SCALING_MAX").ok())
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(100_000);
    // About 30 nodes per unrolled step in the forward graph.
    let per_step = measure(10).0 as f64 / 10.0;
    println!(
        "{:>8} {:>8} {:>9} {}   (seconds; C source in KiB)",
        "nodes",
        "grad",
        "C KiB",
        PHASES.map(|p| format!("{p:>9}")).join(" ")
    );
    let (mut ns, mut ts) = (Vec::new(), Vec::new());
    for target in [1_000usize, 10_000, 100_000, 1_000_000].into_iter().filter(|&n| n <= max) {
        let steps = ((target as f64 / per_step).round() as usize).max(1);
        let (nodes, grad_nodes, c_len, t) = measure(steps);
        let row: Vec<String> = t.iter().map(|x| format!("{x:>9.4}")).collect();
        println!("{nodes:>8} {grad_nodes:>8} {:>9.1} {}", c_len as f64 / 1024.0, row.join(" "));
        ns.push(nodes as f64);
        ts.push(t);
    }
    if ns.len() >= 2 {
        let ks: Vec<String> = (0..PHASES.len())
            .map(|p| format!("{:>9.2}", exponent(&ns, &ts.iter().map(|t| t[p]).collect::<Vec<_>>())))
            .collect();
        println!("{:>8} {:>8} {:>9} {}", "exponent", "", "", ks.join(" "));
    }
}
