//! Control flow primitives: known values through every transformation, and bad input.

use cotangent::control::{cond, switch};
use cotangent::*;

fn piecewise(x: &Tensor) -> Tensor {
    // x² for x > 1, else 3x: derivative 2x on the right, 3 on the left.
    cond(&x.gt(1.0), |x: &Tensor| x * x, |x: &Tensor| x * 3.0, x)
}

#[test]
fn cond_takes_each_branch_eagerly_and_jitted() {
    for (x, want) in [(2.0, 4.0), (0.5, 1.5)] {
        assert_eq!(piecewise(&Tensor::scalar(x)).item::<f64>(), want);
        assert_eq!(jit(piecewise)(&Tensor::scalar(x)).item::<f64>(), want);
    }
}

#[test]
fn grad_of_piecewise_on_both_sides_eager_and_jitted() {
    for (x, want) in [(2.0, 4.0), (0.5, 3.0)] {
        assert_eq!(grad(piecewise)(&Tensor::scalar(x)).item::<f64>(), want);
        // Inside jit the predicate is traced: the cond primitive's jvp and transpose run.
        let g = jit(grad(piecewise));
        assert_eq!(g(&Tensor::scalar(x)).item::<f64>(), want);
        let (_, dy) = jvp(|x: &Tensor| jit(piecewise)(x), &Tensor::scalar(x), &Tensor::scalar(1.0));
        assert_eq!(dy.item::<f64>(), want);
    }
}

#[test]
fn second_derivative_through_traced_cond() {
    // d²/dx² of x³ (right) and sin x (left), predicate traced under jit.
    let f = |x: &Tensor| cond(&x.gt(0.0), |x: &Tensor| x * x * x, |x: &Tensor| x.sin(), x);
    let d2 = jit(grad(grad(f)));
    assert!((d2(&Tensor::scalar(2.0)).item::<f64>() - 12.0).abs() < 1e-12);
    assert!((d2(&Tensor::scalar(-0.5)).item::<f64>() + (-0.5f64).sin()).abs() < 1e-12);
}

#[test]
fn vmap_with_batched_predicate_selects_per_lane() {
    let xs = Tensor::from_vec(vec![2.0, 0.5, 3.0, -1.0], &[4]);
    let ys = vmap(piecewise)(&xs);
    assert_eq!(ys.to_vec::<f64>(), vec![4.0, 1.5, 9.0, -3.0]);
    let gs = vmap(grad(piecewise))(&xs);
    assert_eq!(gs.to_vec::<f64>(), vec![4.0, 3.0, 6.0, 3.0]);
}

#[test]
fn vmap_with_unbatched_predicate_stays_a_cond() {
    // The predicate comes from an unbatched argument: the batched graph keeps one cond.
    let f = |(flag, x): &(Tensor, Tensor)| cond(&flag.gt(0.0), |x: &Tensor| x * 2.0, |x: &Tensor| x * -1.0, x);
    let batched = vmap_axes(f, vec![None, Some(0)], 0);
    let x = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]);
    assert_eq!(batched(&(Tensor::scalar(1.0), x.clone())).to_vec::<f64>(), vec![2.0, 4.0, 6.0]);
    assert_eq!(batched(&(Tensor::scalar(-1.0), x)).to_vec::<f64>(), vec![-1.0, -2.0, -3.0]);
}

#[test]
fn cond_closes_over_outer_traced_values() {
    // w is differentiated; the branches use it without taking it as an operand.
    let f = |w: &Tensor| {
        let x = Tensor::scalar(2.0);
        cond(&w.gt(0.0), |x: &Tensor| x * w, |x: &Tensor| x * w * w, &x)
    };
    assert_eq!(grad(f)(&Tensor::scalar(3.0)).item::<f64>(), 2.0);
    assert_eq!(grad(f)(&Tensor::scalar(-3.0)).item::<f64>(), -12.0);
    assert_eq!(jit(grad(f))(&Tensor::scalar(-3.0)).item::<f64>(), -12.0);
}

#[test]
fn switch_picks_and_clamps() {
    let a = |x: &Tensor| x + 1.0;
    let b = |x: &Tensor| x * 10.0;
    let branches: [&dyn Fn(&Tensor) -> Tensor; 2] = [&a, &b];
    let f = |(i, x): &(Tensor, Tensor)| switch(i, &branches, x);
    let x = Tensor::scalar(2.0);
    for (i, want) in [(-4i64, 3.0), (0, 3.0), (1, 20.0), (9, 20.0)] {
        assert_eq!(f(&(Tensor::scalar(i), x.clone())).item::<f64>(), want);
        assert_eq!(jit(f)(&(Tensor::scalar(i), x.clone())).item::<f64>(), want);
    }
    let is = Tensor::from_vec(vec![0i64, 1, 5], &[3]);
    let xs = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]);
    assert_eq!(vmap(f)(&(is, xs)).to_vec::<f64>(), vec![2.0, 20.0, 30.0]);
}

#[test]
fn cond_returns_trees() {
    let f = |x: &Tensor| {
        cond(&x.sum_all().gt(0.0), |x: &Tensor| (x * 2.0, x.sum_all()), |x: &Tensor| (x * 0.0, x.max(&[0], false)), x)
    };
    let (a, b) = jit(f)(&Tensor::from_vec(vec![1.0, 2.0], &[2]));
    assert_eq!(a.to_vec::<f64>(), vec![2.0, 4.0]);
    assert_eq!(b.item::<f64>(), 3.0);
}

#[test]
fn dump_shows_branches_indented() {
    let g = trace_graph(&[TensorType::new(DType::F64, vec![])], |x| vec![piecewise(&x[0])]);
    let d = g.dump();
    assert!(d.contains("= cond[branches=2]"), "{d}");
    assert!(d.contains("    branch 0: graph("), "{d}");
    assert!(d.contains("    branch 1: graph("), "{d}");
    assert!(d.contains("proj[index=0]"), "{d}");
    g.validate().unwrap();
}

#[test]
fn grad_under_jit_keeps_only_the_taken_branch_operands() {
    // The tangent cond recomputes what it needs inside the branch: the linear graph of a
    // traced cond holds the cond, not the branches' intermediates.
    let (_, lin) = linearize(
        |x: &Tensor| jit(|x: &Tensor| cond(&x.gt(0.0), |x: &Tensor| x.exp().sin(), |x: &Tensor| x.cos(), x))(x),
        &Tensor::scalar(0.3),
    );
    let y = lin.call(&Tensor::scalar(1.0));
    let want = 0.3f64.exp() * 0.3f64.exp().cos();
    assert!((y.item::<f64>() - want).abs() < 1e-12);
}

#[test]
#[should_panic(expected = "false_fn returns (f32[])")]
fn mismatched_branch_types_name_both() {
    let x = Tensor::scalar(1.0);
    let _ = cond(&x.gt(0.0), |x: &Tensor| x.clone(), |x: &Tensor| x.cast(DType::F32), &x);
}

#[test]
#[should_panic(expected = "cond (called at")]
fn non_bool_predicate_is_an_error() {
    let x = Tensor::scalar(1.0);
    let _ = cond(&x, |x: &Tensor| x.clone(), |x: &Tensor| x.clone(), &x);
}

#[test]
fn jet_through_cond_eager_and_traced() {
    // Third-order Taylor coefficients of x³ (right branch) and sin x (left), with a concrete
    // predicate (the branch is inlined) and a traced one under jit (a cond of jets).
    let f = |x: &Tensor| cond(&x.gt(0.0), |x: &Tensor| x * x * x, |x: &Tensor| x.sin(), x);
    for x0 in [1.5f64, -0.5] {
        let series = [Tensor::scalar(1.0), Tensor::scalar(0.0), Tensor::scalar(0.0)];
        let want: Vec<f64> =
            if x0 > 0.0 { vec![3.0 * x0 * x0, 6.0 * x0, 6.0] } else { vec![x0.cos(), -x0.sin(), -x0.cos()] };
        let (_, eager) = jet(f, &Tensor::scalar(x0), &series);
        let (_, traced) = jit(|x: &Tensor| jet(f, x, &series))(&Tensor::scalar(x0));
        for (k, w) in want.iter().enumerate() {
            assert!((eager[k].item::<f64>() - w).abs() < 1e-12, "eager order {}", k + 1);
            assert!((traced[k].item::<f64>() - w).abs() < 1e-12, "traced order {}", k + 1);
        }
    }
}
