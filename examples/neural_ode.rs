//! A tiny neural ODE: an MLP vector field `dz/dt = W₂ tanh(W₁ z + b₁) + b₂` fitted, through
//! the continuous adjoint, to a trajectory of the linear ODE dz/dt = A z,
//! A = [[-0.1, 2], [-2, -0.1]], observed at 10 times in [0, 1].
//!
//! Run: `cargo run --release --example neural_ode`

use cotangent::diffeq::{solve, Gradient, Options, Solver};
use cotangent::*;

type Params = (Tensor, Tensor, Tensor, Tensor);

fn field(_t: &Tensor, z: &Tensor, (w1, b1, w2, b2): &Params) -> Tensor {
    w2.matmul(&(w1.matmul(z) + b1).tanh()) + b2
}

fn main() {
    let ts: Vec<f64> = (1..=10).map(|i| i as f64 / 10.0).collect();
    let a = Tensor::from_vec(vec![-0.1, 2.0, -2.0, -0.1], &[2, 2]);
    let z0 = Tensor::from_vec(vec![2.0, 0.0], &[2]);
    let o = Options { rtol: 1e-7, atol: 1e-7, ..Options::default() };
    let data = solve(|_t: &Tensor, z: &Tensor, a: &Tensor| a.matmul(z), Solver::Tsit5, 0.0, 1.0, &z0, &a, &ts, &o).ys;
    let hidden = 16;
    let keys = random::split(&random::key(0), 2);
    let mut p: Params = (
        random::normal(&keys.index(0), &[hidden, 2], DType::F64) * 0.5,
        Tensor::zeros(&[hidden], DType::F64),
        random::normal(&keys.index(1), &[2, hidden], DType::F64) * 0.25,
        Tensor::zeros(&[2], DType::F64),
    );
    let opts = Options { gradient: Gradient::Adjoint, ..o };
    let loss = |p: &Params| {
        let ys = solve(field, Solver::Tsit5, 0.0, 1.0, &z0, p, &ts, &opts).ys;
        ys.iter().zip(&data).map(|(y, d)| (y - d).square().sum_all()).fold(Tensor::scalar(0.0), |a, b| a + b)
            / ts.len() as f64
    };
    let step = value_and_grad(loss);
    let lr = 0.05;
    for it in 0..=300 {
        let (l, g) = step(&p);
        if it % 50 == 0 {
            println!("iteration {it:>3}: loss {:.3e}", l.item::<f64>());
        }
        p = (&p.0 - &g.0 * lr, &p.1 - &g.1 * lr, &p.2 - &g.2 * lr, &p.3 - &g.3 * lr);
    }
}
