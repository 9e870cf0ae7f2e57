use cotangent::*;
fn main() {
    let sizes = [784usize, 512, 512, 10];
    let mut params = vec![];
    for w in sizes.windows(2) {
        params.push(Tensor::ones(&[w[0], w[1]], DType::F32) * 0.01);
        params.push(Tensor::zeros(&[w[1]], DType::F32));
    }
    let x = Tensor::ones(&[128, 784], DType::F32);
    let labels =
        Tensor::from_vec((0..128).map(|i| (i % 10) as i64).collect::<Vec<_>>(), &[128]).one_hot(10, DType::F32);
    let loss = |p: &Vec<Tensor>| {
        let mut h = x.clone();
        for l in 0..3 {
            h = h.matmul(&p[2 * l]) + &p[2 * l + 1];
            if l < 2 {
                h = h.relu();
            }
        }
        -(h.log_softmax(-1) * &labels).sum_all() / 128.0
    };
    let info = jit_inspect(value_and_grad(loss), &params);
    println!("{}", info.plan.len());
    let vg = value_and_grad(loss);
    vg(&params);
    let t = std::time::Instant::now();
    for _ in 0..200 {
        std::hint::black_box(vg(&params));
    }
    println!("vg {:?}", t.elapsed() / 200);
}
#[allow(dead_code)]
fn unused() {}
