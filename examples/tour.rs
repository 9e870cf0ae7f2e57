//! A tour of cotangent: tensors and broadcasting, a traced graph, eager results,
//! and derivatives in every mode.
//!
//! Run: `cargo run --release --example tour`

use cotangent::*;

fn main() {
    println!("== Tensors run eagerly, with numpy broadcasting ==");
    let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    let b = Tensor::from_vec(vec![10.0, 20.0, 30.0], &[3]);
    println!("x =\n{x}\n\nx + b =\n{}\n", &x + &b);
    println!("softmax(x, axis=-1) =\n{}\n", x.softmax(-1));
    println!("x @ xᵀ =\n{}\n", x.matmul(&x.t()));

    println!("== The same function, traced into a graph (like a jaxpr) ==");
    let f = |x: &Tensor| (x.sin() * x).sum_all();
    let g = trace_graph(&[x.ty()], |xs| vec![f(&xs[0])]);
    print!("{g}");
    let interpreted = eval_graph(&g, std::slice::from_ref(&x)).remove(0);
    println!("eager f(x) = {}, interpreted graph = {}\n", f(&x), interpreted);

    println!("== Derivatives: grad, jvp, vmap, hessian, nested to any order ==");
    println!("grad f(x) =\n{}\n", grad(f)(&x));
    let (_, tangent) = jvp(|x: &Tensor| x.sin(), &Tensor::scalar(3.0), &Tensor::scalar(1.0));
    println!("d/dx sin(x) at 3 by jvp: {tangent}");
    let d4 = grad(grad(grad(grad(|x: &Tensor| x.sin()))));
    println!("fourth derivative of sin at 3 by four nested grads: {}", d4(&Tensor::scalar(3.0)));
    let rosenbrock = |v: &Tensor| {
        let (a, b) = (v.index(0), v.index(1));
        (1.0 - &a).square() + (b - a.square()).square() * 100.0
    };
    let p = Tensor::from_vec(vec![-1.0, 2.0], &[2]);
    println!("Rosenbrock at (-1, 2): gradient {} and Hessian\n{}", grad(rosenbrock)(&p), hessian(rosenbrock)(&p));
    let per_example = vmap(grad(|row: &Tensor| row.tanh().sum_all()));
    println!("\nper-example gradients by vmap(grad(...)):\n{}", per_example(&x));
}
