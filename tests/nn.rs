//! `nn`: every module's gradient (parameters and input) against central finite differences
//! in f64, convolution and pooling against direct loops, vmap of modules against batches,
//! and known values of normalisation, losses, activations and initialisers.

mod common;

use common::{assert_tensors_close as assert_close, Rng};
use cotangent::nn::{self, *};
use cotangent::{grad, random, vmap, DType, Tensor, Tree};

const EPS: f64 = 1e-6;

/// Checks `grad(f)` at `p` against central differences along random directions
/// (`<∇f, u>` vs `(f(p + εu) − f(p − εu)) / 2ε`), and along each coordinate for small trees.
#[track_caller]
fn check_grad<P: Tree>(what: &str, f: impl Fn(&P) -> Tensor, p: &P, rng: &mut Rng) {
    let g = grad(&f)(p).leaves();
    let leaves = p.leaves();
    let at = |shift: &[Tensor], s: f64| {
        let moved: Vec<Tensor> =
            leaves.iter().zip(shift).map(|(l, u)| if l.dtype().is_float() { l + u * s } else { l.clone() }).collect();
        f(&p.rebuild_from(moved)).item::<f64>()
    };
    let mut directions: Vec<Vec<Tensor>> = (0..3).map(|_| leaves.iter().map(|l| rng.like(l)).collect()).collect();
    let total: usize = leaves.iter().map(|l| l.numel()).sum();
    if total <= 40 {
        for (i, l) in leaves.iter().enumerate() {
            for j in 0..l.numel() {
                let mut e = vec![0.0; l.numel()];
                e[j] = 1.0;
                let mut d: Vec<Tensor> = leaves.iter().map(|x| x.zeros_like()).collect();
                d[i] = Tensor::from_vec(e, &l.shape()).cast(l.dtype());
                directions.push(d);
            }
        }
    }
    for (k, u) in directions.iter().enumerate() {
        let fd = (at(u, EPS) - at(u, -EPS)) / (2.0 * EPS);
        let an: f64 = g
            .iter()
            .zip(u)
            .zip(&leaves)
            .filter(|(_, l)| l.dtype().is_float())
            .map(|((g, u), _)| (g * u).sum_all().item::<f64>())
            .sum();
        assert!(
            (fd - an).abs() <= 1e-6 * (1.0 + fd.abs()),
            "{what}: direction {k}: analytic {an} vs finite differences {fd}"
        );
    }
}

fn f64_key(i: u64) -> Tensor {
    random::key(i)
}

/// A scalar from a module output, weighting elements so no symmetry hides an error.
fn probe(y: &Tensor) -> Tensor {
    let w = Tensor::linspace(0.3, 1.7, y.numel(), DType::F64).reshape_to(&y.shape());
    (y * w).sum_all()
}

#[test]
fn linear_and_mlp_gradients() {
    let mut rng = Rng::new(1);
    let l = Linear::new(&f64_key(0), 3, 2, DType::F64);
    let l = Linear { bias: Some(rng.tensor(&[2], -1.0, 1.0)), ..l };
    let x = rng.tensor(&[4, 3], -1.0, 1.0);
    check_grad("linear params", |m: &Linear| probe(&m.forward(&x)), &l, &mut rng);
    check_grad("linear input", |x: &Tensor| probe(&l.forward(x)), &x, &mut rng);
    for act in [
        Activation::Tanh,
        Activation::Gelu(false),
        Activation::Sine(3.0),
        Activation::Silu,
        Activation::Softplus,
        Activation::Mish,
        Activation::Sigmoid,
    ] {
        let m = Mlp::new(&f64_key(1), &[3, 5, 2], act, DType::F64);
        check_grad(&format!("mlp {act:?}"), |m: &Mlp| probe(&m.forward(&x)), &m, &mut rng);
    }
}

#[test]
fn activation_gradients_away_from_kinks() {
    let mut rng = Rng::new(2);
    // Away from 0 so the kinked ones (relu, leaky_relu) are differentiable.
    let x = Tensor::from_vec(vec![-1.7, -0.6, -0.2, 0.3, 0.9, 2.2], &[6]);
    let acts = [
        Activation::Identity,
        Activation::Relu,
        Activation::LeakyRelu(0.1),
        Activation::Gelu(false),
        Activation::Gelu(true),
        Activation::Silu,
        Activation::Mish,
        Activation::Softplus,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Sine(30.0),
    ];
    for a in acts {
        check_grad(&format!("{a:?}"), |x: &Tensor| probe(&a.apply(x)), &x, &mut rng);
    }
    // The free functions are the same functions.
    assert_eq!(nn::swish(&x).to_vec::<f64>(), nn::silu(&x).to_vec::<f64>());
    assert_eq!(nn::sine(&x, 2.0).to_vec::<f64>(), (&x * 2.0).sin().to_vec::<f64>());
    // Subgradients at the kink: relu'(0) = 0, leaky_relu'(0) = alpha.
    let z = Tensor::scalar(0.0);
    assert_eq!(grad(|x: &Tensor| nn::relu(x))(&z).item::<f64>(), 0.0);
    assert_eq!(grad(|x: &Tensor| nn::leaky_relu(x, 0.1))(&z).item::<f64>(), 0.1);
}

/// Direct convolution: out[n, o, i, j] = Σ_{c, p, q} x[n, g·cg + c, i·s + p·d − pad, ...] · w[o, c, p, q].
#[allow(clippy::too_many_arguments)]
fn direct_conv(
    x: &[f64],
    xs: [usize; 4],
    w: &[f64],
    ws: [usize; 4],
    stride: (usize, usize),
    pad: (usize, usize),
    dil: (usize, usize),
    groups: usize,
) -> (Vec<f64>, [usize; 4]) {
    let [n, c, h, wd] = xs;
    let [o, cg, kh, kw] = ws;
    let ho = (h + 2 * pad.0 - dil.0 * (kh - 1) - 1) / stride.0 + 1;
    let wo = (wd + 2 * pad.1 - dil.1 * (kw - 1) - 1) / stride.1 + 1;
    let og = o / groups;
    assert_eq!(c, cg * groups);
    let mut out = vec![0.0; n * o * ho * wo];
    for b in 0..n {
        for oc in 0..o {
            let g = oc / og;
            for i in 0..ho {
                for j in 0..wo {
                    let mut s = 0.0;
                    for ci in 0..cg {
                        for p in 0..kh {
                            for q in 0..kw {
                                let r = (i * stride.0 + p * dil.0) as isize - pad.0 as isize;
                                let t = (j * stride.1 + q * dil.1) as isize - pad.1 as isize;
                                if r < 0 || t < 0 || r >= h as isize || t >= wd as isize {
                                    continue;
                                }
                                let xi = ((b * c + g * cg + ci) * h + r as usize) * wd + t as usize;
                                let wi = ((oc * cg + ci) * kh + p) * kw + q;
                                s += x[xi] * w[wi];
                            }
                        }
                    }
                    out[((b * o + oc) * ho + i) * wo + j] = s;
                }
            }
        }
    }
    (out, [n, o, ho, wo])
}

struct ConvCase {
    x: [usize; 4],
    out: usize,
    k: (usize, usize),
    stride: (usize, usize),
    pad: (usize, usize),
    dil: (usize, usize),
    groups: usize,
}

fn conv_cases() -> Vec<ConvCase> {
    let c = |x, out, k, stride, pad, dil, groups| ConvCase { x, out, k, stride, pad, dil, groups };
    vec![
        c([2, 3, 5, 5], 4, (3, 3), (1, 1), (0, 0), (1, 1), 1),
        c([1, 2, 6, 7], 3, (3, 2), (2, 1), (1, 0), (1, 1), 1),
        c([2, 2, 7, 7], 2, (2, 3), (1, 2), (2, 1), (2, 1), 1),
        c([1, 4, 5, 6], 6, (3, 3), (2, 2), (1, 1), (1, 2), 2),
        c([2, 4, 4, 4], 4, (3, 3), (1, 1), (1, 1), (1, 1), 4),
        c([1, 1, 3, 3], 1, (1, 1), (3, 3), (0, 0), (1, 1), 1),
    ]
}

fn conv_of(case: &ConvCase, rng: &mut Rng) -> (Conv2d, Tensor) {
    let cin = case.x[1];
    let conv = Conv2d::with_groups(&f64_key(3), cin, case.out, case.k, case.groups, Init::Normal(0.5), DType::F64)
        .with_stride(case.stride)
        .with_padding(case.pad)
        .with_dilation(case.dil);
    let conv = Conv2d { bias: Some(rng.tensor(&[case.out], -1.0, 1.0)), ..conv };
    (conv, rng.tensor(&case.x, -1.0, 1.0))
}

#[test]
fn conv2d_matches_direct_convolution() {
    let mut rng = Rng::new(3);
    for (i, case) in conv_cases().iter().enumerate() {
        let (conv, x) = conv_of(case, &mut rng);
        let ws = conv.weight.shape();
        let (expect, shape) = direct_conv(
            &x.to_vec::<f64>(),
            case.x,
            &conv.weight.to_vec::<f64>(),
            [ws[0], ws[1], ws[2], ws[3]],
            case.stride,
            case.pad,
            case.dil,
            case.groups,
        );
        let y = nn::conv2d(&x, &conv.weight, case.stride, case.pad, case.dil, case.groups);
        assert_close(&y, &Tensor::from_vec(expect, &shape), 1e-12, &format!("conv case {i}"));
        // The layer adds the bias per output channel.
        let with_bias = conv.forward(&x);
        let b = conv.bias.as_ref().unwrap().reshape_to(&[1, case.out, 1, 1]);
        assert_close(&with_bias, &(y + b), 1e-12, &format!("conv bias {i}"));
    }
}

#[test]
fn conv2d_gradients() {
    let mut rng = Rng::new(4);
    for (i, case) in conv_cases().iter().enumerate() {
        let (conv, x) = conv_of(case, &mut rng);
        check_grad(&format!("conv {i} params"), |m: &Conv2d| probe(&m.forward(&x)), &conv, &mut rng);
        check_grad(&format!("conv {i} input"), |x: &Tensor| probe(&conv.forward(x)), &x, &mut rng);
    }
}

#[test]
fn conv2d_vmap_over_images_matches_the_batch() {
    let mut rng = Rng::new(5);
    let case = &conv_cases()[3];
    let (conv, x) = conv_of(case, &mut rng);
    let batched = conv.forward(&x);
    let mapped = vmap(|img: &Tensor| conv.forward(img))(&x);
    assert_close(&mapped, &batched, 1e-12, "vmap of conv over images");
    // Per-example gradients of the weights, by vmap of grad.
    let per_example =
        vmap(|img: &Tensor| grad(|w: &Tensor| probe(&nn::conv2d(img, w, (1, 1), (1, 1), (1, 1), 2)))(&conv.weight))(&x);
    let ex0 = grad(|w: &Tensor| probe(&nn::conv2d(&x.index(0), w, (1, 1), (1, 1), (1, 1), 2)))(&conv.weight);
    assert_close(&per_example.index(0), &ex0, 1e-12, "per-example gradient");
}

#[test]
fn pooling_values_and_gradients() {
    let mut rng = Rng::new(6);
    let x = rng.tensor(&[2, 3, 5, 6], -1.0, 1.0);
    let v = x.to_vec::<f64>();
    for (k, s, p) in [((2, 2), (2, 2), (0, 0)), ((3, 2), (1, 2), (1, 1))] {
        let mp = MaxPool2d { kernel: k, stride: s, padding: p };
        let ap = AvgPool2d { kernel: k, stride: s, padding: p };
        let ym = mp.forward(&x);
        let ya = ap.forward(&x);
        let sh = ym.shape();
        let (ho, wo) = (sh[2], sh[3]);
        let mut em = Vec::new();
        let mut ea = Vec::new();
        for b in 0..2 {
            for c in 0..3 {
                for i in 0..ho {
                    for j in 0..wo {
                        let (mut m, mut s_) = (f64::NEG_INFINITY, 0.0);
                        for a in 0..k.0 {
                            for bb in 0..k.1 {
                                let r = (i * s.0 + a) as isize - p.0 as isize;
                                let t = (j * s.1 + bb) as isize - p.1 as isize;
                                if r >= 0 && t >= 0 && r < 5 && t < 6 {
                                    let val = v[((b * 3 + c) * 5 + r as usize) * 6 + t as usize];
                                    m = m.max(val);
                                    s_ += val;
                                }
                            }
                        }
                        em.push(m);
                        ea.push(s_ / (k.0 * k.1) as f64);
                    }
                }
            }
        }
        assert_close(&ym, &Tensor::from_vec(em, &sh), 0.0, "max pool values");
        assert_close(&ya, &Tensor::from_vec(ea, &sh), 1e-15, "avg pool values");
        check_grad("max pool", |x: &Tensor| probe(&mp.forward(x)), &x, &mut rng);
        check_grad("avg pool", |x: &Tensor| probe(&ap.forward(x)), &x, &mut rng);
    }
}

#[test]
fn layer_norm_values_and_gradients() {
    let mut rng = Rng::new(7);
    let x = rng.tensor(&[3, 2, 4], -2.0, 2.0);
    let mut ln = LayerNorm::new(&[2, 4], DType::F64);
    ln.weight = Some(rng.tensor(&[2, 4], 0.5, 1.5));
    ln.bias = Some(rng.tensor(&[2, 4], -0.5, 0.5));
    let plain = LayerNorm::new(&[2, 4], DType::F64).forward(&x);
    let rows = plain.reshape_to(&[3, 8]);
    let mean = rows.mean(&[1], false).to_vec::<f64>();
    let var = rows.var(&[1], 0, false).to_vec::<f64>();
    for r in 0..3 {
        assert!(mean[r].abs() < 1e-12);
        assert!((var[r] - 1.0).abs() < 1e-4);
    }
    check_grad("layer norm params", |m: &LayerNorm| probe(&m.forward(&x)), &ln, &mut rng);
    check_grad("layer norm input", |x: &Tensor| probe(&ln.forward(x)), &x, &mut rng);
}

#[test]
fn batch_norm_train_and_eval() {
    let mut rng = Rng::new(8);
    let x = rng.tensor(&[4, 3, 2, 2], -2.0, 2.0);
    let mut bn = BatchNorm::new(3, DType::F64);
    bn.weight = rng.tensor(&[3], 0.5, 1.5);
    bn.bias = rng.tensor(&[3], -0.5, 0.5);
    bn.running_mean = rng.tensor(&[3], -0.5, 0.5);
    bn.running_var = rng.tensor(&[3], 0.5, 1.5);
    let (y, next) = bn.forward_train(&x);
    // Hand computation per channel.
    let v = x.to_vec::<f64>();
    let yv = y.to_vec::<f64>();
    for c in 0..3 {
        let idx: Vec<usize> = (0..4).flat_map(|b| (0..4).map(move |s| (b * 3 + c) * 4 + s)).collect();
        let vals: Vec<f64> = idx.iter().map(|&i| v[i]).collect();
        let m = vals.iter().sum::<f64>() / 16.0;
        let var = vals.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 16.0;
        let (w, b) = (bn.weight.to_vec::<f64>()[c], bn.bias.to_vec::<f64>()[c]);
        for &i in &idx {
            let e = (v[i] - m) / (var + 1e-5).sqrt() * w + b;
            assert!((yv[i] - e).abs() < 1e-12);
        }
        let rm = bn.running_mean.to_vec::<f64>()[c] * 0.9 + 0.1 * m;
        let rv = bn.running_var.to_vec::<f64>()[c] * 0.9 + 0.1 * var * 16.0 / 15.0;
        assert!((next.running_mean.to_vec::<f64>()[c] - rm).abs() < 1e-12);
        assert!((next.running_var.to_vec::<f64>()[c] - rv).abs() < 1e-12);
    }
    // Evaluation uses the running statistics.
    let ye = bn.forward(&x).to_vec::<f64>();
    let (rm, rv) = (bn.running_mean.to_vec::<f64>(), bn.running_var.to_vec::<f64>());
    let (w, b) = (bn.weight.to_vec::<f64>(), bn.bias.to_vec::<f64>());
    for (i, &val) in v.iter().enumerate() {
        let c = (i / 4) % 3;
        let e = (val - rm[c]) / (rv[c] + 1e-5).sqrt() * w[c] + b[c];
        assert!((ye[i] - e).abs() < 1e-12);
    }
    // Gradients in both modes; the running statistics get zero gradient.
    check_grad("batch norm train", |m: &BatchNorm| probe(&m.forward_train(&x).0), &bn, &mut rng);
    check_grad("batch norm train input", |x: &Tensor| probe(&bn.forward_train(x).0), &x, &mut rng);
    // In evaluation the running statistics are constants (cut from differentiation), so
    // only the scale and shift are perturbed.
    check_grad(
        "batch norm eval",
        |(w, b): &(Tensor, Tensor)| {
            let m = BatchNorm { weight: w.clone(), bias: b.clone(), ..bn.clone() };
            probe(&m.forward(&x))
        },
        &(bn.weight.clone(), bn.bias.clone()),
        &mut rng,
    );
    check_grad("batch norm eval input", |x: &Tensor| probe(&bn.forward(x)), &x, &mut rng);
    let g = grad(|m: &BatchNorm| probe(&m.forward_train(&x).0))(&bn);
    assert_eq!(g.running_mean.to_vec::<f64>(), vec![0.0; 3]);
    assert_eq!(g.running_var.to_vec::<f64>(), vec![0.0; 3]);
    // 2-d inputs [n, c] work too.
    let x2 = rng.tensor(&[5, 3], -1.0, 1.0);
    check_grad("batch norm 2d", |m: &BatchNorm| probe(&m.forward_train(&x2).0), &bn, &mut rng);
}

#[test]
fn dropout_embedding_and_attention() {
    let mut rng = Rng::new(9);
    let x = rng.tensor(&[4, 5], -1.0, 1.0);
    let key = f64_key(10);
    let d = Dropout::new(0.4);
    check_grad("dropout", |x: &Tensor| probe(&d.forward(x, Some(&key))), &x, &mut rng);
    let y = d.forward(&x, Some(&key)).to_vec::<f64>();
    let xv = x.to_vec::<f64>();
    assert!(y.iter().zip(&xv).all(|(a, b)| *a == 0.0 || (a - b / 0.6).abs() < 1e-12));
    assert_eq!(d.forward(&x, None).to_vec::<f64>(), xv);

    let emb = Embedding::new(&f64_key(11), 6, 3, DType::F64);
    let ids = Tensor::from_vec(vec![0i64, 5, 2, 2], &[2, 2]);
    assert_eq!(emb.forward(&ids).shape(), vec![2, 2, 3]);
    check_grad("embedding", |m: &Embedding| probe(&m.forward(&ids)), &emb, &mut rng);
    let g = grad(|m: &Embedding| m.forward(&ids).sum_all())(&emb).weight;
    // Row 2 is used twice, rows 1, 3, 4 never.
    assert_eq!(g.sum(&[1], false).to_vec::<f64>(), vec![3.0, 0.0, 6.0, 0.0, 0.0, 3.0]);

    let mha = MultiHeadAttention::new(&f64_key(12), 4, 2, DType::F64);
    let q = rng.tensor(&[2, 3, 4], -1.0, 1.0);
    let kv = rng.tensor(&[2, 5, 4], -1.0, 1.0);
    check_grad("attention params", |m: &MultiHeadAttention| probe(&m.forward(&q, &kv, &kv, None)), &mha, &mut rng);
    check_grad("attention query", |q: &Tensor| probe(&mha.forward(q, &kv, &kv, None)), &q, &mut rng);
    // Causal self-attention: position 0 does not depend on later positions.
    let causal = Tensor::iota(&[3, 3], 0, DType::I64).ge(Tensor::iota(&[3, 3], 1, DType::I64));
    let self_attn = |x: &Tensor| mha.forward(x, x, x, Some(&causal));
    let g0 = grad(|x: &Tensor| self_attn(x).slice_axis(1, 0, 1, 1).sum_all())(&q);
    let later = g0.slice_axis(1, 1, 3, 1).abs().sum_all().item::<f64>();
    assert_eq!(later, 0.0);
    check_grad("causal attention", |x: &Tensor| probe(&self_attn(x)), &q, &mut rng);
    // Unbatched input is the batch of one.
    let one = mha.forward(&q.index(0), &kv.index(0), &kv.index(0), None);
    assert_close(&one, &mha.forward(&q, &kv, &kv, None).index(0), 1e-12, "unbatched attention");
}

#[test]
fn sequential_cnn_gradients_and_names() {
    let mut rng = Rng::new(13);
    let k = random::split(&f64_key(14), 3);
    let model = Sequential::new(vec![
        Layer::Conv2d(Conv2d::new(&k.index(0), 1, 2, (3, 3), DType::F64).with_padding((1, 1))),
        Layer::Activation(Activation::Tanh),
        Layer::AvgPool2d(AvgPool2d::new((2, 2))),
        Layer::Flatten,
        Layer::LayerNorm(LayerNorm::new(&[8], DType::F64)),
        Layer::Dropout(Dropout::new(0.2)),
        Layer::Linear(Linear::new(&k.index(1), 8, 3, DType::F64)),
    ]);
    let names: Vec<String> = model.named_leaves().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        vec![
            "layers.0.weight",
            "layers.0.bias",
            "layers.4.weight",
            "layers.4.bias",
            "layers.6.weight",
            "layers.6.bias"
        ]
    );
    let x = rng.tensor(&[2, 1, 4, 4], -1.0, 1.0);
    let labels = Tensor::from_vec(vec![2i64, 0], &[2]);
    let key = f64_key(15);
    check_grad("sequential eval", |m: &Sequential| nn::cross_entropy(&m.forward(&x), &labels), &model, &mut rng);
    check_grad(
        "sequential train",
        |m: &Sequential| nn::cross_entropy(&m.forward_train(&x, &key), &labels),
        &model,
        &mut rng,
    );
}

#[test]
fn losses_values_and_gradients() {
    let mut rng = Rng::new(16);
    let logits = rng.tensor(&[4, 3], -2.0, 2.0);
    let labels = Tensor::from_vec(vec![0i64, 2, 1, 2], &[4]);
    let onehot = labels.one_hot(3, DType::F64);
    // Hand value of the cross-entropy.
    let l = logits.to_vec::<f64>();
    let mut expect = 0.0;
    for (r, &c) in [0usize, 2, 1, 2].iter().enumerate() {
        let row = &l[r * 3..r * 3 + 3];
        let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
        expect += lse - row[c];
    }
    expect /= 4.0;
    let ce = nn::cross_entropy(&logits, &labels).item::<f64>();
    assert!((ce - expect).abs() < 1e-14);
    let ce1 = nn::cross_entropy_one_hot(&logits, &onehot).item::<f64>();
    assert!((ce1 - expect).abs() < 1e-14);
    // Stable at huge logits, in f32, with finite gradients.
    let big = Tensor::from_vec(vec![1e4f32, -1e4, 0.0, 1e4], &[2, 2]);
    let lab = Tensor::from_vec(vec![1i64, 0], &[2]);
    let v = nn::cross_entropy(&big, &lab).item::<f32>();
    assert!((v - 1.5e4).abs() < 1.0, "{v}");
    let g = grad(|z: &Tensor| nn::cross_entropy(z, &lab))(&big).to_vec::<f32>();
    assert!(g.iter().all(|x| x.is_finite()));
    check_grad("cross entropy", |z: &Tensor| nn::cross_entropy(z, &labels), &logits, &mut rng);
    check_grad("cross entropy one-hot", |z: &Tensor| nn::cross_entropy_one_hot(z, &onehot), &logits, &mut rng);
    let t = rng.tensor(&[4, 3], 0.0, 1.0);
    check_grad("bce logits", |z: &Tensor| nn::binary_cross_entropy_with_logits(z, &t), &logits, &mut rng);
    let bce = nn::binary_cross_entropy_with_logits(&logits, &t).item::<f64>();
    let s: f64 = l
        .iter()
        .zip(t.to_vec::<f64>())
        .map(|(&x, t)| {
            let p = 1.0 / (1.0 + (-x).exp());
            -(t * p.ln() + (1.0 - t) * (1.0 - p).ln())
        })
        .sum::<f64>()
        / 12.0;
    assert!((bce - s).abs() < 1e-12);
    let target = rng.tensor(&[4, 3], -1.0, 1.0);
    check_grad("mse", |z: &Tensor| nn::mse(z, &target), &logits, &mut rng);
    check_grad("huber", |z: &Tensor| nn::huber(z, &target, 0.7), &logits, &mut rng);
    let h = nn::huber(&logits, &target, 0.7).item::<f64>();
    let hv: f64 = l
        .iter()
        .zip(target.to_vec::<f64>())
        .map(|(&p, t)| {
            let d = (p - t).abs();
            if d <= 0.7 {
                0.5 * d * d
            } else {
                0.7 * (d - 0.35)
            }
        })
        .sum::<f64>()
        / 12.0;
    assert!((h - hv).abs() < 1e-14);
    assert_eq!(nn::accuracy(&logits, &logits.argmax(-1, false)).item::<f64>(), 1.0);
}

#[test]
fn initialisers_have_the_stated_scale() {
    let shape = [200, 100];
    let (fi, fo) = nn::fans(&shape);
    let stats = |t: &Tensor| {
        let v = t.to_vec::<f64>();
        let n = v.len() as f64;
        let m = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
        let max = v.iter().fold(0.0f64, |a, x| a.max(x.abs()));
        (m, var, max)
    };
    let cases = [
        (Init::GlorotUniform, 2.0 / (fi + fo) as f64, Some((6.0 / (fi + fo) as f64).sqrt())),
        (Init::GlorotNormal, 2.0 / (fi + fo) as f64, None),
        (Init::HeUniform, 2.0 / fi as f64, Some((6.0 / fi as f64).sqrt())),
        (Init::HeNormal, 2.0 / fi as f64, None),
        (Init::LecunUniform, 1.0 / fi as f64, Some((3.0 / fi as f64).sqrt())),
        (Init::LecunNormal, 1.0 / fi as f64, None),
        (
            Init::Siren { w0: 30.0, first: false },
            (6.0 / fi as f64) / 900.0 / 3.0,
            Some((6.0 / fi as f64).sqrt() / 30.0),
        ),
        (Init::Siren { w0: 30.0, first: true }, 1.0 / (fi * fi) as f64 / 3.0, Some(1.0 / fi as f64)),
    ];
    for (init, var, bound) in cases {
        let w = init.sample(&f64_key(20), &shape, fi, fo, DType::F64);
        let (m, v, max) = stats(&w);
        assert!(m.abs() < 5.0 * (var / 20_000.0).sqrt(), "{init:?}: mean {m}");
        assert!((v / var - 1.0).abs() < 0.05, "{init:?}: variance {v} vs {var}");
        if let Some(b) = bound {
            assert!(max <= b, "{init:?}: {max} beyond {b}");
        } else {
            // Truncated at two standard deviations.
            assert!(max <= 2.0 * var.sqrt() / 0.8796 + 1e-12, "{init:?}: {max}");
        }
    }
    assert_eq!(nn::fans(&[8, 4, 3, 3]), (36, 72));
}
