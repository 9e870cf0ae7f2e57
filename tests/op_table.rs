//! The one table that checks every primitive and composite (DESIGN.md, "How correctness
//! is checked"). Each row is a function of f64 tensors and sample inputs inside its domain;
//! every row automatically gets:
//!
//! 1. jvp against central finite differences;
//! 2. the dot-product test `<J u, v> = <u, Jᵀ v>` of the transpose (vjp) against jvp;
//! 3. second order: jvp of the vjp against finite differences of the vjp;
//! 4. vmap against a loop over a batch, with every argument batched and with each one alone;
//! 5. jit against eager evaluation, for the function, its vjp and its vmap.
//!
//! Adding a primitive means adding one row to `table()`.

mod common;

use common::{assert_tensors_close as assert_close, f64s, Rng};
use cotangent::*;

type Fun = Box<dyn Fn(&[Tensor]) -> Tensor>;

struct Row {
    name: &'static str,
    f: Fun,
    inputs: Vec<Tensor>,
    /// Reverse mode only (`custom_vjp`): forward mode must fail with the documented error,
    /// and the dot-product test uses finite differences for `J u`.
    reverse_only: bool,
    /// Forward mode only (an unbounded `while_loop`, which reverse mode refuses): the
    /// transpose and second-order checks and jit of the vjp are skipped; jvp, vmap and jit of
    /// the function and its vmap still run.
    forward_only: bool,
}

fn row(name: &'static str, inputs: Vec<Tensor>, f: impl Fn(&[Tensor]) -> Tensor + 'static) -> Row {
    Row { name, f: Box::new(f), inputs, reverse_only: false, forward_only: false }
}

/// A [`row`] whose function supports reverse mode only.
fn row_reverse_only(name: &'static str, inputs: Vec<Tensor>, f: impl Fn(&[Tensor]) -> Tensor + 'static) -> Row {
    Row { reverse_only: true, ..row(name, inputs, f) }
}

/// A [`Row`] checked in forward mode only.
fn forward_row(name: &'static str, inputs: Vec<Tensor>, f: impl Fn(&[Tensor]) -> Tensor + 'static) -> Row {
    Row { forward_only: true, ..row(name, inputs, f) }
}

fn i64s(v: &[i64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape)
}

/// Sample inputs: `shape` with entries in `[lo, hi)`, seeded by the row's position.
fn sample(rng: &mut Rng, shape: &[usize], lo: f64, hi: f64) -> Tensor {
    rng.tensor(shape, lo, hi)
}

fn table() -> Vec<Row> {
    let mut r = Rng::new(7);
    let mut rows = Vec::new();
    macro_rules! unary {
        ($name:literal, $lo:expr, $hi:expr, $f:expr) => {
            rows.push(row($name, vec![sample(&mut r, &[2, 3], $lo, $hi)], move |x| $f(&x[0])));
        };
    }
    // Element-wise unary, each inside its domain.
    unary!("neg", -2.0, 2.0, |x: &Tensor| -x);
    unary!("exp", -2.0, 2.0, |x: &Tensor| x.exp());
    unary!("log", 0.2, 3.0, |x: &Tensor| x.log());
    unary!("log1p", -0.5, 2.0, |x: &Tensor| x.log1p());
    unary!("expm1", -2.0, 2.0, |x: &Tensor| x.expm1());
    unary!("sin", -3.0, 3.0, |x: &Tensor| x.sin());
    unary!("cos", -3.0, 3.0, |x: &Tensor| x.cos());
    unary!("tan", -1.2, 1.2, |x: &Tensor| x.tan());
    unary!("tanh", -2.0, 2.0, |x: &Tensor| x.tanh());
    unary!("asin", -0.9, 0.9, |x: &Tensor| x.asin());
    unary!("acos", -0.9, 0.9, |x: &Tensor| x.acos());
    unary!("atan", -2.0, 2.0, |x: &Tensor| x.atan());
    unary!("sinh", -2.0, 2.0, |x: &Tensor| x.sinh());
    unary!("cosh", -2.0, 2.0, |x: &Tensor| x.cosh());
    unary!("asinh", -2.0, 2.0, |x: &Tensor| x.asinh());
    unary!("atanh", -0.9, 0.9, |x: &Tensor| x.atanh());
    unary!("sqrt", 0.2, 3.0, |x: &Tensor| x.sqrt());
    unary!("rsqrt", 0.2, 3.0, |x: &Tensor| x.rsqrt());
    unary!("cbrt", 0.2, 3.0, |x: &Tensor| x.cbrt());
    unary!("cbrt_negative", -3.0, -0.2, |x: &Tensor| x.cbrt());
    unary!("abs", 0.1, 2.0, |x: &Tensor| (x - 1.05).abs());
    unary!("sign", 0.1, 0.9, |x: &Tensor| x * (x - 0.5).sign());
    unary!("floor", 0.1, 0.9, |x: &Tensor| x * (x * 3.0).floor());
    unary!("ceil", 0.1, 0.9, |x: &Tensor| x * (x * 3.0).ceil());
    unary!("round", 0.1, 0.4, |x: &Tensor| x * (x * 3.0).round());
    unary!("sigmoid", -3.0, 3.0, |x: &Tensor| x.sigmoid());
    unary!("erf", -2.0, 2.0, |x: &Tensor| x.erf());
    unary!("erfc", -2.0, 2.0, |x: &Tensor| x.erfc());
    unary!("erfinv", -0.9, 0.9, |x: &Tensor| x.erfinv());
    unary!("recip", 0.3, 2.0, |x: &Tensor| x.recip());
    unary!("square", -2.0, 2.0, |x: &Tensor| x.square());
    unary!("powf", 0.3, 2.0, |x: &Tensor| x.powf(2.5));

    // Element-wise binary, with broadcasting.
    let bin = |r: &mut Rng, lo: f64, hi: f64| vec![sample(r, &[2, 3], lo, hi), sample(r, &[3], lo, hi)];
    rows.push(row("add", bin(&mut r, -2.0, 2.0), |x| &x[0] + &x[1]));
    rows.push(row("sub", bin(&mut r, -2.0, 2.0), |x| &x[0] - &x[1]));
    rows.push(row("mul", bin(&mut r, -2.0, 2.0), |x| &x[0] * &x[1]));
    rows.push(row("div", bin(&mut r, 0.5, 2.0), |x| &x[0] / &x[1]));
    rows.push(row("rem", vec![sample(&mut r, &[2, 3], 2.1, 2.9), sample(&mut r, &[3], 0.9, 1.0)], |x| &x[0] % &x[1]));
    rows.push(row("pow", bin(&mut r, 0.5, 2.0), |x| x[0].pow(&x[1])));
    rows.push(row("maximum", bin(&mut r, -2.0, 2.0), |x| x[0].maximum(&x[1])));
    rows.push(row("minimum", bin(&mut r, -2.0, 2.0), |x| x[0].minimum(&x[1])));
    rows.push(row("atan2", bin(&mut r, 0.5, 2.0), |x| x[0].atan2(&x[1])));
    rows.push(row("where", bin(&mut r, -2.0, 2.0), |x| where_(&x[0].gt(0.0).logical_not(), &x[0], &x[1])));
    rows.push(row("scalar_ops", vec![sample(&mut r, &[4], 0.5, 2.0)], |x| (2.0 - &x[0]) * 3.0 / (1.0 + &x[0])));

    // Reductions.
    let m = |r: &mut Rng| vec![sample(r, &[3, 4], -2.0, 2.0)];
    rows.push(row("sum", m(&mut r), |x| x[0].sum(&[0], false)));
    rows.push(row("sum_keepdims", m(&mut r), |x| x[0].sum(&[-1], true)));
    rows.push(row("sum_all", m(&mut r), |x| x[0].sum_all()));
    rows.push(row("max", m(&mut r), |x| x[0].max(&[1], false)));
    rows.push(row("min", m(&mut r), |x| x[0].min(&[0, 1], false)));
    rows.push(row("prod", m(&mut r), |x| x[0].prod(&[1], false)));
    rows.push(row("prod_with_zero", vec![f64s(&[1.5, 0.0, -2.0, 0.7, 0.0, 3.0], &[2, 3])], |x| {
        x[0].prod(&[0, 1], false)
    }));
    rows.push(row("mean", m(&mut r), |x| x[0].mean(&[0], false)));
    rows.push(row("var", m(&mut r), |x| x[0].var(&[1], 1, false)));
    rows.push(row("std", m(&mut r), |x| x[0].std(&[0], 0, true)));
    rows.push(row("logsumexp", m(&mut r), |x| x[0].logsumexp(&[1], false)));
    rows.push(row("norm", m(&mut r), |x| x[0].norm(&[0], false)));
    rows.push(row("argmax_take", m(&mut r), |x| {
        let i = x[0].argmax(1, true);
        x[0].take_along_axis(&i, 1)
    }));
    rows.push(row("cumsum", m(&mut r), |x| x[0].cumsum(1)));
    rows.push(row("cumprod", m(&mut r), |x| x[0].cumprod(0)));
    rows.push(row("cumprod_with_zero", vec![f64s(&[1.5, 0.0, -2.0, 0.7, 2.0], &[5])], |x| x[0].cumprod(0)));
    rows.push(row("cummax", m(&mut r), |x| x[0].cummax(1)));
    rows.push(row("cummin", m(&mut r), |x| x[0].cummin(0)));

    // Structure.
    rows.push(row("reshape", m(&mut r), |x| x[0].reshape(&[2, -1, 3])));
    rows.push(row("broadcast_to", vec![sample(&mut r, &[3, 1], -1.0, 1.0)], |x| x[0].broadcast_to(&[2, 3, 4])));
    rows.push(row("broadcast_in_dim", vec![sample(&mut r, &[3], -1.0, 1.0)], |x| x[0].broadcast_in_dim(&[3, 2], &[0])));
    rows.push(row("permute", vec![sample(&mut r, &[2, 3, 4], -1.0, 1.0)], |x| x[0].permute(&[2, 0, 1])));
    rows.push(row("slice", vec![sample(&mut r, &[5, 6], -1.0, 1.0)], |x| x[0].slice(&[1, 0], &[5, 5], &[2, 3])));
    rows.push(row("pad", vec![sample(&mut r, &[3, 4], -1.0, 1.0)], |x| x[0].pad(&[1, -1], &[2, 0], &[1, 2], 0.5)));
    rows.push(row("pad_traced_value", vec![sample(&mut r, &[3], -1.0, 1.0), f64s(&[0.3], &[])], |x| {
        x[0].pad_with(&[1], &[1], &[1], &x[1])
    }));
    rows.push(row("concatenate", vec![sample(&mut r, &[2, 3], -1.0, 1.0), sample(&mut r, &[2, 1], -1.0, 1.0)], |x| {
        concatenate(&[x[0].clone(), x[1].clone(), x[0].clone()], 1)
    }));
    rows.push(row("stack", vec![sample(&mut r, &[3], -1.0, 1.0), sample(&mut r, &[3], -1.0, 1.0)], |x| stack(x, 1)));
    rows.push(row("split", vec![sample(&mut r, &[5, 2], -1.0, 1.0)], |x| {
        let p = x[0].split(&[2, 3], 0);
        &p[0].sum(&[0], false) * &p[1].sum(&[0], false)
    }));
    rows.push(row("flip", vec![sample(&mut r, &[3, 4], -1.0, 1.0)], |x| x[0].flip(&[0, 1])));
    rows.push(row("squeeze_expand", vec![sample(&mut r, &[3, 1], -1.0, 1.0)], |x| x[0].squeeze(&[]).expand_dims(0)));
    rows.push(row("cast_int_is_constant", vec![sample(&mut r, &[4], 0.1, 2.9)], |x| {
        &x[0] * x[0].cast(DType::I64).cast(DType::F64)
    }));

    // Indexing (indices are constants of the row).
    rows.push(row("take", vec![sample(&mut r, &[4, 3], -1.0, 1.0)], |x| {
        x[0].take(&i64s(&[3, 0, 3, 1, 2, 2], &[2, 3]), 0)
    }));
    rows.push(row("take_axis1", vec![sample(&mut r, &[2, 4], -1.0, 1.0)], |x| x[0].take(&i64s(&[1, 1, 3], &[3]), 1)));
    rows.push(row("gather_batched", vec![sample(&mut r, &[2, 4, 3], -1.0, 1.0)], |x| {
        x[0].gather(&i64s(&[0, 3, 2, 2], &[2, 2]), 1, 1)
    }));
    rows.push(row("take_along_axis", vec![sample(&mut r, &[3, 4], -1.0, 1.0)], |x| {
        x[0].take_along_axis(&i64s(&[0, 3, 1, 1, 2, 0], &[3, 2]), 1)
    }));
    rows.push(row("scatter_add", vec![sample(&mut r, &[4, 2], -1.0, 1.0), sample(&mut r, &[3, 2], -1.0, 1.0)], |x| {
        x[0].scatter_add(&i64s(&[1, 3, 1], &[3]), &x[1], 0)
    }));
    rows.push(row("dynamic_slice", vec![sample(&mut r, &[5, 4], -1.0, 1.0)], |x| {
        x[0].dynamic_slice(&[Tensor::scalar(1i64), Tensor::scalar(3i64)], &[3, 2])
    }));
    rows.push(row(
        "dynamic_update_slice",
        vec![sample(&mut r, &[5, 4], -1.0, 1.0), sample(&mut r, &[2, 3], -1.0, 1.0)],
        |x| x[0].dynamic_update_slice(&x[1], &[Tensor::scalar(2i64), Tensor::scalar(1i64)]),
    ));

    // Contractions.
    rows.push(row("matmul", vec![sample(&mut r, &[3, 4], -1.0, 1.0), sample(&mut r, &[4, 2], -1.0, 1.0)], |x| {
        x[0].matmul(&x[1])
    }));
    rows.push(row(
        "matmul_batched_broadcast",
        vec![sample(&mut r, &[2, 3, 4], -1.0, 1.0), sample(&mut r, &[4, 2], -1.0, 1.0)],
        |x| x[0].matmul(&x[1]),
    ));
    rows.push(row("matvec", vec![sample(&mut r, &[3, 4], -1.0, 1.0), sample(&mut r, &[4], -1.0, 1.0)], |x| {
        x[0].matmul(&x[1])
    }));
    rows.push(row(
        "dot_general",
        vec![sample(&mut r, &[2, 3, 4, 5], -1.0, 1.0), sample(&mut r, &[5, 2, 3], -1.0, 1.0)],
        |x| dot_general(&x[0], &x[1], (&[1, 3], &[2, 0]), (&[0], &[1])),
    ));
    rows.push(row("outer", vec![sample(&mut r, &[3], -1.0, 1.0), sample(&mut r, &[2], -1.0, 1.0)], |x| {
        x[0].outer(&x[1])
    }));
    rows.push(row("einsum", vec![sample(&mut r, &[2, 3], -1.0, 1.0), sample(&mut r, &[3, 3], -1.0, 1.0)], |x| {
        einsum("ij,jk->ki", &[&x[0], &x[1]]) + einsum("ii->", &[&x[1]])
    }));

    // Composites.
    let act = |r: &mut Rng| vec![sample(r, &[2, 4], -3.0, 3.0)];
    rows.push(row("relu", vec![f64s(&[-1.5, -0.2, 0.3, 2.0], &[4])], |x| x[0].relu()));
    rows.push(row("leaky_relu", vec![f64s(&[-1.5, -0.2, 0.3, 2.0], &[4])], |x| x[0].leaky_relu(0.1)));
    rows.push(row("gelu", act(&mut r), |x| x[0].gelu(false)));
    rows.push(row("gelu_tanh", act(&mut r), |x| x[0].gelu(true)));
    rows.push(row("silu", act(&mut r), |x| x[0].silu()));
    rows.push(row("mish", act(&mut r), |x| x[0].mish()));
    rows.push(row("softplus", act(&mut r), |x| x[0].softplus()));
    rows.push(row("softmax", act(&mut r), |x| x[0].softmax(-1)));
    rows.push(row("log_softmax", act(&mut r), |x| x[0].log_softmax(0)));
    rows.push(row("clamp", vec![f64s(&[-1.5, -0.2, 0.3, 2.0], &[4])], |x| x[0].clamp(-1.0, 1.0)));

    // Sorting (argsort + gather) and random bits (a constant of the row).
    rows.push(row("sort", vec![sample(&mut r, &[3, 4], -1.0, 1.0)], |x| x[0].sort(1, false)));
    rows.push(row("sort_descending", vec![sample(&mut r, &[3, 4], -1.0, 1.0)], |x| x[0].sort(0, true)));
    rows.push(row("times_random_normal", vec![sample(&mut r, &[2, 3], -1.0, 1.0)], |x| {
        &x[0] * random::normal(&random::key(0), &[2, 3], DType::F64)
    }));
    // Control flow (issue 11). Predicates computed from the inputs are traced under jit and
    // batched under vmap, so the structured primitive's own rules run; each takes one side
    // for every sample (finite differences must not straddle the switch).
    let pair = |r: &mut Rng| vec![sample(r, &[2, 3], 0.5, 1.5), sample(r, &[3], -1.0, 1.0)];
    rows.push(row("cond_true_branch", pair(&mut r), |x| {
        let ops = (x[0].clone(), x[1].clone());
        control::cond(&x[0].sum_all().gt(0.0), |(a, b): &(Tensor, Tensor)| a.exp() * b, |(a, b)| a.sin() + b, &ops)
    }));
    rows.push(row("cond_false_branch", pair(&mut r), |x| {
        let ops = (x[0].clone(), x[1].clone());
        control::cond(&x[0].sum_all().lt(0.0), |(a, b): &(Tensor, Tensor)| a.exp() * b, |(a, b)| a.sin() + b * a, &ops)
    }));
    rows.push(row("cond_closure", vec![sample(&mut r, &[3], 0.5, 1.5), sample(&mut r, &[3], -1.0, 1.0)], |x| {
        let w = x[1].clone();
        control::cond(&x[0].sum_all().gt(0.0), move |a: &Tensor| a * &w * &w, |a: &Tensor| a.clone(), &x[0])
    }));
    rows.push(row("switch_three", vec![sample(&mut r, &[4], 0.5, 1.5)], |x| {
        let a = |x: &Tensor| x.exp();
        let b = |x: &Tensor| x.tanh() * x;
        let c = |x: &Tensor| x.log();
        let branches: [&dyn Fn(&Tensor) -> Tensor; 3] = [&a, &b, &c];
        let index = (x[0].sum_all() * 0.0 + 1.0).cast(DType::I64);
        control::switch(&index, &branches, &x[0])
    }));

    // --- ergonomics (issue 18): whole-tensor reductions and everyday jnp composites ---
    let m = |r: &mut Rng| vec![sample(r, &[3, 4], -2.0, 2.0)];
    rows.push(row("max_all", m(&mut r), |x| x[0].max_all()));
    rows.push(row("min_all", m(&mut r), |x| x[0].min_all()));
    rows.push(row("prod_all", m(&mut r), |x| x[0].prod_all()));
    rows.push(row("var_all", m(&mut r), |x| x[0].var_all(1)));
    rows.push(row("std_all", m(&mut r), |x| x[0].std_all(0)));
    rows.push(row("logsumexp_all", m(&mut r), |x| x[0].logsumexp_all()));
    rows.push(row("norm_all", m(&mut r), |x| x[0].norm_all()));
    rows.push(row("ptp", m(&mut r), |x| x[0].ptp(&[1], false)));
    rows.push(row("nansum", m(&mut r), |x| x[0].nansum(&[0], true)));
    rows.push(row("nanmean_all", m(&mut r), |x| x[0].nanmean_all()));
    rows.push(row("reductions_of_0d", vec![sample(&mut r, &[], 0.5, 2.0)], |x| {
        x[0].max_all() + x[0].logsumexp_all() + x[0].norm_all() + x[0].prod_all() + x[0].var_all(0)
    }));
    rows.push(row("softmax_last", m(&mut r), |x| x[0].softmax_last()));
    rows.push(row("log_softmax_last", m(&mut r), |x| x[0].log_softmax_last()));
    rows.push(row("clip_tensors", vec![sample(&mut r, &[3, 4], -2.0, 2.0), sample(&mut r, &[4], 0.2, 1.0)], |x| {
        x[0].clip(-&x[1], &x[1])
    }));
    rows.push(row("where_numbers", m(&mut r), |x| {
        where_(&x[0].gt(0.0), &x[0], 0.5) * where_(&x[0].lt(1.0), 2.0, &x[0])
    }));
    let sq = |r: &mut Rng| vec![sample(r, &[2, 3, 3], -2.0, 2.0)];
    rows.push(row("trace", sq(&mut r), |x| x[0].trace()));
    rows.push(row("diagonal_above", m(&mut r), |x| x[0].diagonal(1)));
    rows.push(row("diagonal_below", m(&mut r), |x| x[0].diagonal(-2)));
    rows.push(row("triu", sq(&mut r), |x| x[0].triu(1)));
    rows.push(row("tril", m(&mut r), |x| x[0].tril(0)));
    rows.push(row("diag", vec![sample(&mut r, &[3], -2.0, 2.0)], |x| x[0].diag()));
    rows.push(row("roll", m(&mut r), |x| x[0].roll(-3, 1)));
    rows.push(row("tile", vec![sample(&mut r, &[2, 3], -2.0, 2.0)], |x| x[0].tile(&[2, 1, 2])));
    rows.push(row("repeat", m(&mut r), |x| x[0].repeat(2, 0)));
    rows.push(row("diff", m(&mut r), |x| x[0].diff(2, -1)));
    rows.push(row("median", vec![sample(&mut r, &[4, 3], -2.0, 2.0)], |x| x[0].median(0, false)));
    rows.push(row("median_all", vec![sample(&mut r, &[2, 3], -2.0, 2.0)], |x| x[0].median_all()));
    rows.push(row("median_odd", vec![sample(&mut r, &[4, 3], -2.0, 2.0)], |x| x[0].median(1, true)));
    rows.push(row("log2_log10_exp2", vec![sample(&mut r, &[2, 3], 0.3, 2.0)], |x| {
        x[0].log2() + x[0].log10() + x[0].exp2()
    }));
    rows.push(row("logaddexp", vec![sample(&mut r, &[2, 3], -2.0, 2.0), sample(&mut r, &[3], -2.0, 2.0)], |x| {
        x[0].logaddexp(&x[1])
    }));
    rows.push(row("nan_to_num", m(&mut r), |x| x[0].nan_to_num(0.0, 1.0, -1.0)));
    // --- end of ergonomics rows ---
    // Custom rules and rematerialisation (issue 11, custom branch). The rules given are the
    // true derivatives, so finite differences check them; closed-over constants and tree
    // arguments go through the captures and the flattening.
    rows.push(row("custom_jvp", pair(&mut r), |x| {
        let k = Tensor::scalar(1.5);
        let f = custom_jvp(
            |(a, b): &(Tensor, Tensor)| a.sin() * b * &k,
            |(a, b): &(Tensor, Tensor), (ta, tb): &(Tensor, Tensor)| {
                (a.sin() * b * &k, (a.cos() * ta * b + a.sin() * tb) * &k)
            },
        );
        f(&(x[0].clone(), x[1].clone()))
    }));
    rows.push(row("custom_jvp_softplus", vec![sample(&mut r, &[2, 3], -3.0, 3.0)], |x| {
        let f = custom_jvp(|x: &Tensor| x.softplus(), |x: &Tensor, t: &Tensor| (x.softplus(), x.sigmoid() * t));
        f(&x[0]).exp()
    }));
    rows.push(row_reverse_only("custom_vjp", pair(&mut r), |x| {
        let f = custom_vjp(
            |(a, b): &(Tensor, Tensor)| a.tanh() * b,
            |(a, b): &(Tensor, Tensor)| {
                let t = a.tanh();
                (&t * b, (t, b.clone()))
            },
            |(t, b): &(Tensor, Tensor), g: &Tensor| ((1.0 - t * t) * g * b, (t * g).sum(&[0], false)),
        );
        f(&(x[0].clone(), x[1].clone())).exp()
    }));
    rows.push(row_reverse_only("custom_vjp_nondiff", vec![sample(&mut r, &[4, 2], -1.0, 1.0)], |x| {
        let f = custom_vjp_nondiff(
            |a: &Tensor, i: &Tensor| a.take(i, 0).sin(),
            |a: &Tensor, i: &Tensor| (a.take(i, 0).sin(), a.take(i, 0).cos()),
            |i: &Tensor, c: &Tensor, g: &Tensor| Tensor::zeros(&[4, 2], DType::F64).scatter_add(i, &(c * g), 0),
        );
        f(&x[0], &i64s(&[3, 0, 3], &[3]))
    }));
    let mlp_args = |r: &mut Rng| vec![sample(r, &[2, 3], -1.0, 1.0), sample(r, &[3, 3], -1.0, 1.0)];
    rows.push(row("checkpoint", mlp_args(&mut r), |x| {
        checkpoint(|(a, w): &(Tensor, Tensor)| a.matmul(w).tanh().matmul(w).sin())(&(x[0].clone(), x[1].clone()))
    }));
    rows.push(row("checkpoint_dots_saveable", mlp_args(&mut r), |x| {
        let w = x[1].clone();
        let f = checkpoint_with(move |a: &Tensor| a.matmul(&w).exp().matmul(&w).tanh(), control::Policy::DotsSaveable);
        f(&x[0])
    }));
    rows.push(row("checkpoint_save_if", mlp_args(&mut r), |x| {
        let p = control::Policy::save_if(|p: &ops::Prim| p.name() == "sin");
        checkpoint_with(|(a, w): &(Tensor, Tensor)| a.sin().matmul(w).sin() * a, p)(&(x[0].clone(), x[1].clone()))
    }));
    // Loops (issue 11, `control::loops`): while (forward mode only: reverse mode refuses an
    // unbounded loop), the bounded while, fori_loop, and scan with consts, trees, xs and
    // reverse. Counts that depend on the data stay the same for every sample and perturbation.
    rows.push(forward_row("while_fixed_count", vec![sample(&mut r, &[3], 0.5, 1.5)], |x| {
        let (_, y) = control::while_loop(
            |(k, _): &(Tensor, Tensor)| k.lt(4.0),
            |(k, y): &(Tensor, Tensor)| (k + 1.0, y * 0.9 + y.sin() * 0.3),
            &(Tensor::scalar(0i64), x[0].clone()),
        );
        y
    }));
    rows.push(forward_row("while_data_dependent", pair(&mut r), |x| {
        let w = x[1].clone();
        control::while_loop(|y: &Tensor| y.sum_all().lt(20.0), move |y: &Tensor| y * 1.5 + w.sum_all().exp(), &x[0])
    }));
    rows.push(row("while_bounded", pair(&mut r), |x| {
        let w = x[1].clone();
        let body = move |y: &Tensor| y * 1.1 + (&w * 0.1).sin();
        control::while_loop_bounded(|y: &Tensor| y.sum_all().lt(1e9), body, &x[0], 13)
    }));
    rows.push(row("while_bounded_stops_early", vec![sample(&mut r, &[2, 3], 0.5, 1.5)], |x| {
        // Every sample doubles past 1000 after the same number of steps (8 or 9 < 40).
        control::while_loop_bounded(|y: &Tensor| y.sum_all().lt(1000.0), |y: &Tensor| y * 2.0 + y.sin(), &x[0], 40)
    }));
    rows.push(row("fori_loop", pair(&mut r), |x| {
        let w = x[1].clone();
        control::fori_loop(1, 5, move |i, y: &Tensor| y * w.sin() + i.cast(DType::F64) * y.tanh(), &x[0])
    }));
    let seq = |r: &mut Rng| vec![sample(r, &[3], -1.0, 1.0), sample(r, &[4, 3], -1.0, 1.0), sample(r, &[3], 0.5, 1.0)];
    for reverse in [false, true] {
        let name = if reverse { "scan_reverse" } else { "scan" };
        rows.push(row(name, seq(&mut r), move |x| {
            let w = x[2].clone();
            let (h, ys) = control::scan(
                |h: &Tensor, x: &Tensor| {
                    let h = (&w * h + x).tanh();
                    (h.clone(), &h * x)
                },
                &x[0],
                &x[1],
                None,
                reverse,
            );
            ys + h
        }));
    }
    rows.push(row(
        "scan_tree_carry_no_xs",
        vec![sample(&mut r, &[3], -1.0, 1.0), sample(&mut r, &[3], 0.5, 1.0)],
        |x| {
            let ((a, b), ys) = control::scan(
                |(a, b): &(Tensor, Tensor), _: &()| ((b.clone(), a * b.cos() + b), a.square()),
                &(x[0].clone(), x[1].clone()),
                &(),
                Some(3),
                false,
            );
            a * b + ys.sum(&[0], false)
        },
    ));
    rows
}

const EPS: f64 = 1e-6;

fn axpy(xs: &[Tensor], us: &[Tensor], a: f64) -> Vec<Tensor> {
    xs.iter().zip(us).map(|(x, u)| x + u * a).collect()
}

fn inner(a: &[Tensor], b: &[Tensor]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x * y).sum_all().item::<f64>()).sum()
}

fn central_difference(f: &dyn Fn(&[Tensor]) -> Vec<Tensor>, xs: &[Tensor], us: &[Tensor]) -> Vec<Tensor> {
    let hi = f(&axpy(xs, us, EPS));
    let lo = f(&axpy(xs, us, -EPS));
    hi.iter().zip(&lo).map(|(h, l)| (h - l) / (2.0 * EPS)).collect()
}

fn check_row(row: &Row, rng: &mut Rng) {
    let f = |xs: &Vec<Tensor>| (row.f)(xs);
    let xs = row.inputs.clone();
    let us: Vec<Tensor> = xs.iter().map(|x| rng.like(x)).collect();
    let y = f(&xs);
    let v = rng.like(&y);

    // 1. jvp against finite differences.
    let fd = central_difference(&|p| vec![f(&p.to_vec())], &xs, &us);
    let ju = if row.reverse_only {
        let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| jvp(f, &xs, &us))).err();
        let msg = e.and_then(|e| e.downcast_ref::<String>().cloned()).unwrap_or_default();
        assert!(msg.contains("support reverse mode only"), "{}: jvp must refuse: {msg:?}", row.name);
        fd[0].clone()
    } else {
        let (y_jvp, ju) = jvp(f, &xs, &us);
        assert_close(&y_jvp, &y, 0.0, &format!("{}: primal output of jvp", row.name));
        assert_close(&ju, &fd[0], 1e-6, &format!("{}: jvp vs finite differences", row.name));
        ju
    };

    // 2. transpose against jvp: <J u, v> = <u, Jᵀ v>.
    let jt_v = (!row.forward_only).then(|| {
        let (y_vjp, pb) = vjp(f, &xs);
        assert_close(&y_vjp, &y, 0.0, &format!("{}: primal output of vjp", row.name));
        let jt_v = pb.call(&v);
        let (lhs, rhs) = (inner(std::slice::from_ref(&ju), std::slice::from_ref(&v)), inner(&us, &jt_v));
        let tol = if row.reverse_only { 1e-7 } else { 1e-10 }; // J u by finite differences
        assert!((lhs - rhs).abs() <= tol * (1.0 + lhs.abs()), "{}: dot-product test {lhs} vs {rhs}", row.name);

        // 3. second order: jvp of the vjp against finite differences of the vjp.
        let pull = |p: &Vec<Tensor>| vjp(f, p).1.call(&v);
        let (_, second) = jvp(pull, &xs, &us);
        let fd2 = central_difference(&|p| pull(&p.to_vec()), &xs, &us);
        for (s, d) in second.iter().zip(&fd2) {
            assert_close(s, d, 1e-5, &format!("{}: jvp of vjp vs finite differences", row.name));
        }
        jt_v
    });

    // 4. vmap against a loop over a batch of 3 nearby inputs.
    let batch: Vec<Vec<Tensor>> = (0..3).map(|k| axpy(&xs, &us, 0.01 * k as f64)).collect();
    let stacked: Vec<Tensor> =
        (0..xs.len()).map(|i| stack(&batch.iter().map(|b| b[i].clone()).collect::<Vec<_>>(), 0)).collect();
    let looped = stack(&batch.iter().map(f).collect::<Vec<_>>(), 0);
    let mapped = vmap(f)(&stacked);
    assert_close(&mapped, &looped, 1e-12, &format!("{}: vmap vs loop", row.name));
    if xs.len() > 1 {
        for i in 0..xs.len() {
            // Only argument i is batched; the others are shared by every example.
            let args: Vec<Tensor> =
                (0..xs.len()).map(|j| if j == i { stacked[j].clone() } else { xs[j].clone() }).collect();
            let axes: Vec<Option<isize>> = (0..xs.len()).map(|j| (j == i).then_some(0)).collect();
            let expect = stack(
                &(0..3)
                    .map(|k| {
                        let mut p = xs.clone();
                        p[i] = batch[k][i].clone();
                        f(&p)
                    })
                    .collect::<Vec<_>>(),
                0,
            );
            let got = vmap_axes(f, axes, 0)(&args);
            assert_close(&got, &expect, 1e-12, &format!("{}: vmap of argument {i} alone", row.name));
        }
    }

    // 5. jit against eager evaluation (fused loops and reordered reductions: to 1e-12), with
    // every fused loop compiled to native code where a C compiler works (tests/native.rs
    // checks native against interpreted loops bitwise).
    with_native_mode(NativeMode::Always, || check_jit(row, &f, &xs, &y, &v, jt_v.as_deref(), &stacked, &looped));
}

/// Step 5 of [`check_row`].
#[allow(clippy::too_many_arguments)]
fn check_jit(
    row: &Row,
    f: &dyn Fn(&Vec<Tensor>) -> Tensor,
    xs: &Vec<Tensor>,
    y: &Tensor,
    v: &Tensor,
    jt_v: Option<&[Tensor]>,
    stacked: &Vec<Tensor>,
    looped: &Tensor,
) {
    let jitted = jit(f);
    assert_close(&jitted(xs), y, 1e-12, &format!("{}: jit vs eager", row.name));
    assert_close(&jitted(xs), y, 1e-12, &format!("{}: jit, second (cached) call", row.name));
    // The first call of a jitted function runs the traced graph, the second the compiled plan.
    let pull = jit(|p: &Vec<Tensor>| vjp(f, p).1.call(v));
    let batched = jit(vmap(f));
    for call in ["first", "second"] {
        if let Some(jt_v) = jt_v {
            for (a, b) in pull(xs).iter().zip(jt_v) {
                assert_close(a, b, 1e-12, &format!("{}: jit of vjp vs eager ({call} call)", row.name));
            }
        }
        let msg = format!("{}: jit of vmap vs loop ({call} call)", row.name);
        assert_close(&batched(stacked), looped, 1e-12, &msg);
    }
}

#[test]
fn every_row_passes_every_check() {
    let mut rng = Rng::new(2024);
    let rows = table();
    eprintln!("checking {} rows", rows.len());
    let mut failures = Vec::new();
    for row in &rows {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check_row(row, &mut rng)));
        if let Err(e) = outcome {
            let msg = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
            failures.push(format!("{}: {}", row.name, msg.unwrap_or_default()));
        }
    }
    assert!(failures.is_empty(), "{} of {} rows failed:\n{}", failures.len(), rows.len(), failures.join("\n\n"));
}

// ---------------------------------------------------------------------------
// Jet (Taylor mode): every row's series to order 4 against nested jvps.
// ---------------------------------------------------------------------------

/// Rows whose primitives have no jet rule yet (each must fail with a message naming `jet`).
/// Listed explicitly so that no row is skipped silently.
const JET_UNSUPPORTED: &[&str] = &[
    "while_fixed_count",
    "while_data_dependent",
    "while_bounded",
    "while_bounded_stops_early",
    "fori_loop",
    "scan",
    "scan_reverse",
    "scan_tree_carry_no_xs",
];

const JET_ORDER: usize = 4;

/// The k-th derivative (k = 1..=JET_ORDER) at t = 0 of `f(x(t))`, `x(t) = xs + Σ cs[k-1] t^k/k!`,
/// by nested jvps in the scalar `t`.
fn nested_jvps(f: &Fun, xs: &[Tensor], cs: &[Vec<Tensor>]) -> Vec<Tensor> {
    let path = |t: &Tensor| -> Vec<Tensor> {
        let mut p = xs.to_vec();
        let mut fact = 1.0;
        for (k, c) in cs.iter().enumerate() {
            fact *= (k + 1) as f64;
            let tk = t.powf((k + 1) as f64) * (1.0 / fact);
            for (pi, ci) in p.iter_mut().zip(c) {
                *pi = &*pi + ci * &tk;
            }
        }
        p
    };
    let mut d: Box<dyn Fn(&Tensor) -> Tensor + '_> = Box::new(move |t: &Tensor| f(&path(t)));
    let mut out = Vec::new();
    let t0 = Tensor::scalar(0.0);
    for _ in 0..JET_ORDER {
        let prev = d;
        d = Box::new(move |t: &Tensor| jvp(|t: &Tensor| prev(t), t, &Tensor::scalar(1.0)).1);
        out.push(d(&t0));
    }
    out
}

/// The first two derivatives at t = 0 of `f(x(t))` (as [`nested_jvps`]) by central
/// differences in `t`, with their tolerances.
fn path_differences(f: &Fun, xs: &[Tensor], cs: &[Vec<Tensor>]) -> (Vec<Tensor>, Vec<f64>) {
    let at = |t: f64| -> Tensor {
        let mut p = xs.to_vec();
        let mut fact = 1.0;
        for (k, c) in cs.iter().enumerate() {
            fact *= (k + 1) as f64;
            let tk = t.powi(k as i32 + 1) / fact;
            for (pi, ci) in p.iter_mut().zip(c) {
                *pi = &*pi + ci * tk;
            }
        }
        f(&p)
    };
    let h = 1e-4;
    let (hi, lo, mid) = (at(h), at(-h), at(0.0));
    let first = (&hi - &lo) * (1.0 / (2.0 * h));
    let second = (&hi - &mid * 2.0 + &lo) * (1.0 / (h * h));
    (vec![first, second], vec![1e-6, 1e-4])
}

fn check_row_jet(row: &Row, rng: &mut Rng) {
    let xs = row.inputs.clone();
    let us: Vec<Tensor> = xs.iter().map(|x| rng.like(x)).collect();
    // Along a direction (x1 = u, higher coefficients zero), then along a full random series.
    let directional: Vec<Vec<Tensor>> =
        (0..JET_ORDER).map(|k| if k == 0 { us.clone() } else { us.iter().map(|u| u.zeros_like()).collect() }).collect();
    let full: Vec<Vec<Tensor>> = (0..JET_ORDER).map(|_| xs.iter().map(|x| rng.like(x)).collect()).collect();
    for (kind, cs) in [("directional", directional), ("full series", full)] {
        let cs = &cs;
        let (y, ys) = jet(|p: &Vec<Tensor>| (row.f)(p), &xs, cs);
        assert_close(&y, &(row.f)(&xs), 0.0, &format!("{}: primal output of jet", row.name));
        if row.reverse_only {
            // Forward mode refuses these rows (custom_vjp): orders 1 and 2 against finite
            // differences along the path instead.
            let (want, tol) = path_differences(&row.f, &xs, cs);
            for (k, (got, want)) in ys.iter().zip(&want).enumerate() {
                assert_close(got, want, tol[k], &format!("{}: jet order {} ({kind}) vs differences", row.name, k + 1));
            }
        } else {
            let want = nested_jvps(&row.f, &xs, cs);
            for (k, (got, want)) in ys.iter().zip(&want).enumerate() {
                assert_close(got, want, 1e-9, &format!("{}: jet order {} ({kind}) vs nested jvps", row.name, k + 1));
            }
        }
        // The same jet jitted (the series are arguments, so the compiled plan sees them as data).
        let jitted = jit(|(p, cs): &(Vec<Tensor>, Vec<Vec<Tensor>>)| jet(|p: &Vec<Tensor>| (row.f)(p), p, cs).1);
        for (k, (got, want)) in jitted(&(xs.clone(), cs.to_vec())).iter().zip(&ys).enumerate() {
            assert_close(got, want, 1e-12, &format!("{}: jit of jet order {} ({kind}) vs eager", row.name, k + 1));
        }
    }
}

#[test]
fn every_row_jet_matches_nested_jvps() {
    let mut rng = Rng::new(4242);
    let rows = table();
    let mut failures = Vec::new();
    let mut unsupported = Vec::new();
    for row in &rows {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check_row_jet(row, &mut rng)));
        if let Err(e) = outcome {
            let msg = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
            let msg = msg.unwrap_or_default();
            if msg.contains("no Taylor-mode (jet) rule") {
                unsupported.push(row.name);
            } else {
                failures.push(format!("{}: {}", row.name, msg));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} rows failed:\n{}", failures.len(), rows.len(), failures.join("\n\n"));
    assert_eq!(unsupported, JET_UNSUPPORTED, "rows without a jet rule");
}
