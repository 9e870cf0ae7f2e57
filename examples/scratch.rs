use cotangent::*;
use std::time::Instant;
fn main() {
    let rosenbrock = |x: &Tensor| {
        let n = x.shape()[0] as isize;
        let (head, tail) = (x.slice_axis(0, 0, n - 1, 1), x.slice_axis(0, 1, n, 1));
        ((tail - head.square()).square() * 100.0 + (1.0 - head).square()).sum_all()
    };
    let x = Tensor::linspace(-1.0, 1.0, 1_000_000, DType::F64);
    let g = grad(rosenbrock);
    g(&x);
    let t = Instant::now();
    for _ in 0..50 { g(&x); }
    println!("grad {:?}", t.elapsed() / 50);
    let g = jit(grad(rosenbrock));
    g(&x);
    let t = Instant::now();
    for _ in 0..50 { g(&x); }
    println!("jit(grad) {:?}", t.elapsed() / 50);
    let info = jit_inspect(value_and_grad(rosenbrock), &x);
    println!("{}", info.plan);
}
