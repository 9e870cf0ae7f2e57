use cotangent::*;
use std::time::Instant;
fn main() {
    let x = Tensor::linspace(-2.0, 2.0, 1_000_000, DType::F32);
    let f = |x: &Tensor| (x.sin() * (-(x * x)).exp() + x.tanh()).sum_all();
    let info = jit_inspect(f, &x);
    println!("{}", info.plan);
    let j = jit(f);
    j(&x);
    let t = Instant::now();
    for _ in 0..10 {
        j(&x);
    }
    println!("jit {:?}", t.elapsed() / 10);
    let t = Instant::now();
    for _ in 0..10 {
        f(&x);
    }
    println!("eager {:?}", t.elapsed() / 10);
    let t = Instant::now();
    let v = x.to_vec::<f32>();
    for _ in 0..10 {
        let s: f32 = v.iter().map(|&a| a.sin() * (-(a * a)).exp() + a.tanh()).sum();
        std::hint::black_box(s);
    }
    println!("plain loop {:?}", t.elapsed() / 10);
}
