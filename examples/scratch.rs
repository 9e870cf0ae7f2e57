use cotangent::*;
fn main() {
    let rosenbrock = |x: &Tensor| {
        let n = x.shape()[0] as isize;
        let (head, tail) = (x.slice_axis(0, 0, n - 1, 1), x.slice_axis(0, 1, n, 1));
        ((tail - head.square()).square() * 100.0 + (1.0 - head).square()).sum_all()
    };
    let x = Tensor::linspace(-1.0, 1.0, 200, DType::F64);
    let info = jit_inspect(hessian(rosenbrock), &x);
    println!("{}", info.plan);
}
