//! Known values of the transformations (issue: composable transformations).

use cotangent::*;

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

#[test]
fn jvp_of_sin() {
    let (_, t) = jvp(|x: &Tensor| x.sin(), &Tensor::scalar(3.0), &Tensor::scalar(1.0));
    assert!(close(t.item::<f64>(), -0.9899924966004454, 1e-12));
}

#[test]
fn fourth_derivative_of_sin_by_nested_grad_and_jvp() {
    let d4 = grad(grad(grad(grad(|x: &Tensor| x.sin()))));
    assert!(close(d4(&Tensor::scalar(3.0)).item::<f64>(), 0.1411200080598672, 1e-12));
    let d1 = |x: &Tensor| jvp(|x: &Tensor| x.sin(), x, &Tensor::scalar(1.0)).1;
    let d2 = |x: &Tensor| jvp(d1, x, &Tensor::scalar(1.0)).1;
    let d3 = |x: &Tensor| jvp(d2, x, &Tensor::scalar(1.0)).1;
    let d4 = |x: &Tensor| jvp(d3, x, &Tensor::scalar(1.0)).1;
    assert!(close(d4(&Tensor::scalar(3.0)).item::<f64>(), 0.1411200080598672, 1e-12));
}

#[test]
fn grad_of_x_minus_two_sin() {
    let g = grad(|x: &Tensor| x - x.sin() * 2.0);
    assert!(close(g(&Tensor::scalar(3.0)).item::<f64>(), 2.979984993200891, 1e-12));
}

#[test]
fn no_perturbation_confusion() {
    // d/dx [ x * (d/dy (x + y) at y = 1) ] at x = 1 is 1, not 2.
    let f = |x: &Tensor| {
        let inner = grad(|y: &Tensor| x + y);
        x * inner(&Tensor::scalar(1.0))
    };
    assert_eq!(grad(f)(&Tensor::scalar(1.0)).item::<f64>(), 1.0);
}

fn rosenbrock(v: &Tensor) -> Tensor {
    let (x, y) = (v.index(0), v.index(1));
    (1.0 - &x).square() + (y - x.square()).square() * 100.0
}

#[test]
fn rosenbrock_gradient_and_hessian() {
    let p = Tensor::from_vec(vec![-1.0, 2.0], &[2]);
    assert_eq!(grad(rosenbrock)(&p).to_vec::<f64>(), vec![396.0, 200.0]);
    assert_eq!(hessian(rosenbrock)(&p).to_vec::<f64>(), vec![402.0, 400.0, 400.0, 200.0]);
}
