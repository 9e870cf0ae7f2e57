//! Stiff problems and the implicit solvers (issue 16): Kvaerno3 and Kvaerno5 on Robertson's
//! problem against its reference and against Dopri5's step count, a stiff linear problem,
//! the linear ODE's known values and gradients by both reverse-mode methods, convergence
//! orders with fixed steps, jit against eager, vmap against a loop, and Newton failures.

use cotangent::diffeq::{solve, Gradient, Options, Solver};
use cotangent::*;

const IMPLICIT: [Solver; 2] = [Solver::Kvaerno3, Solver::Kvaerno5];

/// Robertson's chemical kinetics: k1 = 0.04, k2 = 3e7, k3 = 1e4.
fn robertson(_t: &Tensor, y: &Tensor, _: &()) -> Tensor {
    let (y1, y2, y3) = (y.index(0), y.index(1), y.index(2));
    let r1 = &y1 * 0.04;
    let r2 = y2.square() * 3e7;
    let r3 = &y2 * &y3 * 1e4;
    stack(&[-&r1 + &r3, &r1 - &r2 - &r3, r2], 0)
}

const ROBERTSON_40: [f64; 3] = [0.7158270687, 9.185534764e-6, 0.2841637457];

fn robertson_y0() -> Tensor {
    Tensor::from_vec(vec![1.0, 0.0, 0.0], &[3])
}

#[test]
fn robertson_to_t40_matches_the_reference_with_far_fewer_steps_than_dopri5() {
    let opts = Options { rtol: 1e-6, atol: 1e-10, ..Options::default() };
    let mut implicit_steps = vec![];
    for s in IMPLICIT {
        let sol = solve(robertson, s, 0.0, 40.0, &robertson_y0(), &(), &[], &opts);
        sol.expect_success();
        let y = sol.ys[0].to_vec::<f64>();
        for k in 0..3 {
            // Global error within a small multiple of the local tolerance.
            let tol = 20.0 * (1e-6 * ROBERTSON_40[k] + 1e-10);
            assert!((y[k] - ROBERTSON_40[k]).abs() < tol, "{s:?}: y(40) = {y:?}");
        }
        // Mass is conserved.
        assert!((y.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{s:?}: {y:?}");
        let (acc, rej, nfe) =
            (sol.stats.accepted.item::<i64>(), sol.stats.rejected.item::<i64>(), sol.stats.nfe.item::<i64>());
        println!("{s:?}: {acc} accepted, {rej} rejected, {nfe} evaluations");
        implicit_steps.push(acc + rej);
    }
    // The explicit pair is held to its stability limit (|λ| ≈ 1e4): thousands of steps.
    let o = Options { max_steps: 100_000, ..opts };
    let sol = solve(robertson, Solver::Dopri5, 0.0, 40.0, &robertson_y0(), &(), &[], &o);
    sol.expect_success();
    let (acc, rej, nfe) =
        (sol.stats.accepted.item::<i64>(), sol.stats.rejected.item::<i64>(), sol.stats.nfe.item::<i64>());
    println!("Dopri5: {acc} accepted, {rej} rejected, {nfe} evaluations");
    for (s, n) in IMPLICIT.iter().zip(&implicit_steps) {
        assert!(acc + rej > 20 * n, "{s:?}: {n} steps against Dopri5's {}", acc + rej);
    }
    // With the default max_steps Dopri5 does not reach t = 40 at all.
    let sol = solve(robertson, Solver::Dopri5, 0.0, 40.0, &robertson_y0(), &(), &[], &opts);
    assert_eq!(sol.result.item::<i64>(), 1);
}
