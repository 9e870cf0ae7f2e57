//! Native fused loops (C kernels built by the system compiler) against the interpreter:
//! bitwise equal results for every operation and dtype they support, on special values
//! (±0, ±inf, NaN, subnormals, range-reduction edges), for every kind of load (broadcast,
//! transposed, sliced, reversed, padded) on shapes that cross blocks, rows and threads,
//! with and without a fused reduction.
//!
//! Skipped, with a message, where no C compiler works (the interpreter then runs everything).

use cotangent::ops::{BinaryOp, Prim, UnaryOp};
use cotangent::trace::bind;
use cotangent::*;

/// The compiled plan's text and its outputs, after the second call (the one that compiles).
fn run(mode: NativeMode, f: &dyn Fn(&Vec<Tensor>) -> Vec<Tensor>, args: &Vec<Tensor>) -> (Vec<Tensor>, String) {
    with_native_mode(mode, || {
        let jf = jit(f);
        jf(args);
        let out = jf(args);
        (out, jit_inspect(f, args).plan)
    })
}

/// Whether a C compiler works here (probed once by compiling a tiny plan).
fn native_available() -> bool {
    let x = vec![Tensor::from_vec(vec![1.0f64; 4], &[4])];
    let (_, plan) = run(NativeMode::Always, &|a: &Vec<Tensor>| vec![&a[0] * 2.0], &x);
    if !plan.contains("native") {
        eprintln!("no working C compiler: native kernels are not tested here");
    }
    plan.contains("native")
}

fn same_bits(a: &Tensor, b: &Tensor) -> bool {
    match a.dtype() {
        DType::F32 => a
            .to_vec::<f32>()
            .iter()
            .zip(b.to_vec::<f32>())
            .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())),
        DType::F64 => a
            .to_vec::<f64>()
            .iter()
            .zip(b.to_vec::<f64>())
            .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())),
        DType::Bool => a.to_vec::<bool>() == b.to_vec::<bool>(),
        d => panic!("unexpected dtype {d}"),
    }
}

/// Runs `f` natively and interpreted; asserts the native plan was used and the results agree bitwise.
#[track_caller]
fn check(what: &str, f: &dyn Fn(&Vec<Tensor>) -> Vec<Tensor>, args: &Vec<Tensor>) {
    let (native, plan) = run(NativeMode::Always, f, args);
    let (interpreted, plain) = run(NativeMode::Off, f, args);
    assert!(plan.contains("native fused"), "{what}: no native loop in\n{plan}");
    assert!(!plain.contains("native"), "{what}: NativeMode::Off still compiled\n{plain}");
    for (k, (a, b)) in native.iter().zip(&interpreted).enumerate() {
        assert_eq!(a.shape(), b.shape(), "{what}: output {k} shape");
        if !same_bits(a, b) {
            let show =
                |t: &Tensor| format!("{:?}", t.cast(DType::F64).to_vec::<f64>().iter().take(12).collect::<Vec<_>>());
            panic!("{what}: output {k} differs\nnative      {}\ninterpreted {}\n{plan}", show(a), show(b));
        }
    }
}

/// Special and ordinary values, repeated with small perturbations to `n` elements.
fn values(n: usize) -> Vec<f64> {
    let special = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        -2.5,
        2.5,
        3.5,
        0.624,
        0.626,
        3.7,
        -19.9,
        20.5,
        88.7,
        89.5,
        -103.9,
        -104.5,
        709.7,
        709.9,
        -745.1,
        -746.0,
        100.0,
        -100.0,
        8191.0,
        8193.0,
        1e5,
        1e-30,
        1e30,
        5e-324,
        1e-310,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        0.99,
        -0.99,
    ];
    (0..n).map(|i| special[i % special.len()] * (1.0 + (i / special.len()) as f64 * 1e-3)).collect()
}

fn tensor(v: Vec<f64>, shape: &[usize], dtype: DType) -> Tensor {
    Tensor::from_vec(v, shape).cast(dtype)
}

#[test]
fn every_float_unary_op_matches_the_interpreter_bitwise() {
    if !native_available() {
        return;
    }
    for dtype in [DType::F32, DType::F64] {
        let x = tensor(values(1100), &[1100], dtype);
        for op in UnaryOp::ALL {
            if matches!(op, UnaryOp::Not) {
                continue;
            }
            let f = move |a: &Vec<Tensor>| {
                let y = bind(Prim::Unary(op), &[&a[0]]);
                if op == UnaryOp::IsFinite {
                    vec![y]
                } else {
                    vec![y.clone(), &y * 3.0 - &a[0]]
                }
            };
            check(&format!("{} {dtype}", op.name()), &f, &vec![x.clone()]);
        }
    }
}

#[test]
fn every_binary_op_matches_the_interpreter_bitwise() {
    if !native_available() {
        return;
    }
    let n = 35 * 35;
    let a: Vec<f64> = values(35).iter().flat_map(|&v| std::iter::repeat_n(v, 35)).collect();
    let b: Vec<f64> = (0..n).map(|i| values(35)[i % 35]).collect();
    for dtype in [DType::F32, DType::F64] {
        let args = vec![tensor(a.clone(), &[n], dtype), tensor(b.clone(), &[n], dtype)];
        for op in BinaryOp::ALL {
            if matches!(op, BinaryOp::And | BinaryOp::Or | BinaryOp::Xor) {
                continue;
            }
            let f = move |t: &Vec<Tensor>| vec![bind(Prim::Binary(op), &[&t[0], &t[1]])];
            check(&format!("{} {dtype}", op.name()), &f, &args);
        }
    }
    let p: Vec<f64> = (0..n).map(|i| (i % 3 == 0) as u8 as f64).collect();
    let q: Vec<f64> = (0..n).map(|i| (i % 5 < 2) as u8 as f64).collect();
    let args = vec![tensor(p, &[n], DType::Bool), tensor(q, &[n], DType::Bool)];
    for op in [BinaryOp::And, BinaryOp::Or, BinaryOp::Xor, BinaryOp::Eq, BinaryOp::Ne] {
        let f = move |t: &Vec<Tensor>| vec![bind(Prim::Binary(op), &[&t[0], &t[1]]).logical_not()];
        check(&format!("{} bool", op.name()), &f, &args);
    }
}

#[test]
fn selects_conversions_and_mixed_dtypes_match() {
    if !native_available() {
        return;
    }
    let x = tensor(values(3000), &[3000], DType::F64);
    let f = |a: &Vec<Tensor>| {
        let x = &a[0];
        let small = x.cast(DType::F32);
        let positive = x.gt(0.0);
        let back = small.cast(DType::F64);
        let flag = positive.cast(DType::F64) + x.cast(DType::Bool).cast(DType::F32).cast(DType::F64);
        vec![where_(&positive, &back, &(x * -2.0)), flag, small.exp(), x.is_finite()]
    };
    check("select/convert", &f, &vec![x]);
}

#[test]
fn the_f32_sine_falls_back_to_the_exact_path_for_large_arguments() {
    if !native_available() {
        return;
    }
    let mut v: Vec<f64> = (0..5000).map(|i| (i as f64 * 0.37).sin() * 50.0).collect();
    let small = tensor(v.clone(), &[5000], DType::F32);
    v[4321] = 123_456.7; // one argument beyond the fast range: the whole range is redone exactly
    let large = tensor(v, &[5000], DType::F32);
    let f = |a: &Vec<Tensor>| vec![a[0].sin() * a[0].cos()];
    check("sin/cos f32, small arguments", &f, &vec![small]);
    check("sin/cos f32, one large argument", &f, &vec![large]);
}

/// The f64 exponential's fast pass (no clamps, valid for |x| <= 708) and its exact rerun:
/// a sweep across both edges of the fast range, blocks where only one argument leaves it
/// (+inf, -inf, NaN, an underflow to a subnormal, an overflow), and runs of blocks full of
/// such arguments (the calls after a redone pass run exactly at once), in maps (never
/// written over their inputs: a redone pass would read them) and in fused sums and
/// logsumexps.
#[test]
fn the_f64_exponential_falls_back_to_the_exact_path_outside_its_fast_range() {
    if !native_available() {
        return;
    }
    let mut v: Vec<f64> = (0..20_000).map(|i| -712.0 + 4.0 * (i % 2000) as f64 / 2000.0).collect();
    v.extend((0..20_000).map(|i| 706.0 + 4.0 * (i % 2000) as f64 / 2000.0));
    v.extend((0..40_000).map(|i| (i as f64 * 0.37).sin() * 30.0));
    for (at, odd) in [(45_000, f64::INFINITY), (50_000, f64::NEG_INFINITY), (55_000, f64::NAN), (60_000, -740.0)] {
        v[at] = odd;
    }
    v[65_000] = 709.5;
    v.extend((0..20_000).map(|i| if i % 3 == 0 { f64::NEG_INFINITY } else { -(i as f64) * 0.05 }));
    v.extend((0..20_000).map(|i| (i as f64 * 0.11).cos() * 5.0));
    let n = v.len();
    let x = tensor(v, &[n], DType::F64);
    check("exp f64 across the fast range's edges", &|a: &Vec<Tensor>| vec![a[0].exp()], &vec![x.clone()]);
    // The product is read for the last time by the exponential's loop, which would write over
    // it if its pass could not be redone (its arguments leave the fast range): it does not.
    let in_place = |a: &Vec<Tensor>| vec![(a[0].matmul(&a[1]) * 0.5).exp()];
    let m = tensor((0..64 * 48).map(|i| ((i * 37) % 101) as f64 * 15.0 - 750.0).collect(), &[64, 48], DType::F64);
    let w = tensor((0..48 * 64).map(|i| if i % 65 == 0 { 2.0 } else { 0.0 }).collect(), &[48, 64], DType::F64);
    check("exp f64 after a product", &in_place, &vec![m.clone(), w.clone()]);
    let plan = run(NativeMode::Always, &in_place, &vec![m.clone(), w.clone()]).1;
    assert!(!plan.contains("(in place of %"), "{plan}");
    // Without the exponential, the same loop writes over the product.
    let scaled = |a: &Vec<Tensor>| vec![a[0].matmul(&a[1]) * 0.5 + 1.0];
    assert!(run(NativeMode::Always, &scaled, &vec![m, w]).1.contains("(in place of %"));
    let sums = |a: &Vec<Tensor>| vec![a[0].exp().sum_all(), (&a[0] * 0.01).logsumexp_all(), a[0].logsumexp_all()];
    check("exp f64 in fused sums", &sums, &vec![x]);
}

#[test]
fn strided_broadcast_and_padded_loads_match_across_rows_blocks_and_threads() {
    if !native_available() {
        return;
    }
    // 90,600 elements: above the parallel threshold, so ranges start in the middle of rows.
    let (r, c) = (300, 302);
    let m = tensor((0..r * c).map(|i| (i as f64 * 0.01).sin()).collect(), &[r, c], DType::F64);
    let col = tensor((0..r).map(|i| i as f64).collect(), &[r, 1], DType::F64);
    let row = tensor((0..c).map(|i| 1.0 / (i as f64 + 1.0)).collect(), &[c], DType::F64);
    let args = vec![m, col, row];
    let f = |a: &Vec<Tensor>| {
        let (m, col, row) = (&a[0], &a[1], &a[2]);
        let bcast = m * col + row; // [r,1] and [c] broadcast
        let t = m.permute(&[1, 0]).permute(&[1, 0]) * m.flip(&[1]); // transposes and a reversal
        let sliced = m.slice(&[1, 2], &[r, c], &[1, 1]) * m.slice(&[0, 0], &[r - 1, c - 2], &[1, 1]);
        let strided = m.slice(&[0, 0], &[r, c], &[2, 3]).exp();
        // Zero-padded reads: shifted copies added, as in the gradient of a stencil.
        let padded = sliced.pad(&[1, 2], &[0, 0], &[0, 0], 0.0) + sliced.pad(&[0, 0], &[1, 2], &[0, 0], 0.0) * 2.0;
        vec![bcast, t.tanh(), padded, strided]
    };
    check("views", &f, &args);
    // Padding on an outer axis, negative padding (a crop), and a fill value.
    let f = |a: &Vec<Tensor>| {
        let m = &a[0];
        vec![m.pad(&[3, -1], &[2, 4], &[0, 0], 0.0) * 1.5 + 1.0, (m * m).pad(&[0, 1], &[1, 0], &[0, 0], -7.0).sqrt()]
    };
    check("outer and negative padding", &f, &args);
}

#[test]
fn fused_reductions_match() {
    if !native_available() {
        return;
    }
    let (r, c) = (257, 1001);
    let m = tensor((0..r * c).map(|i| ((i * 7919) % 1000) as f64 / 1000.0 - 0.5).collect(), &[r, c], DType::F32);
    let v = tensor((0..300_001).map(|i| (i as f64 * 1e-3).cos()).collect(), &[300_001], DType::F64);
    let f = |a: &Vec<Tensor>| {
        vec![
            (a[0].tanh() * 2.0).sum(&[1], false),
            a[0].exp().max(&[1], false),
            (&a[1] * &a[1]).sum_all(),
            a[1].slice(&[1], &[300_001], &[1]).sin().sum_all(),
        ]
    };
    check("reductions", &f, &vec![m, v]);
}

#[test]
fn rosenbrock_gradient_matches() {
    if !native_available() {
        return;
    }
    let n = 100_003;
    let x = tensor((0..n).map(|i| (i as f64 * 0.013).cos()).collect(), &[n], DType::F64);
    let rosenbrock = |x: &Tensor| {
        let (a, b) = (x.slice(&[0], &[n - 1], &[1]), x.slice(&[1], &[n], &[1]));
        ((&b - &a * &a).square() * 100.0 + (-&a + 1.0).square()).sum_all()
    };
    let g = grad(rosenbrock);
    let f = move |a: &Vec<Tensor>| vec![g(&a[0])];
    check("rosenbrock gradient", &f, &vec![x.clone()]);
    // The backward pass pads the two slices' cotangents and adds them: with native loops the
    // producer chains are recomputed inside the padded sum, so the whole gradient is one loop.
    let (_, plan) = run(NativeMode::Always, &f, &vec![x]);
    assert!(plan.starts_with("plan (1 steps)"), "{plan}");
}

#[test]
fn a_transposed_loop_output_is_materialised_then_read_through() {
    if !native_available() {
        return;
    }
    let m = tensor((0..120 * 70).map(|i| (i as f64).sqrt()).collect(), &[120, 70], DType::F32);
    let f = |a: &Vec<Tensor>| vec![(&a[0] * 3.0).tanh().permute(&[1, 0]).pad(&[2, 0], &[1, 3], &[0, 0], 0.0) + 1.0];
    check("transpose of a loop", &f, &vec![m.clone()]);
    // Recomputing the chain in transposed order would read its input by gathers; instead the
    // chain runs in its own order and the next loop reads its output transposed, in place.
    let (_, plan) = run(NativeMode::Always, &f, &vec![m]);
    assert!(plan.starts_with("plan (2 steps)") && plan.contains("strides=[1, 70]"), "{plan}");
}

#[test]
fn auto_mode_compiles_only_large_loops() {
    if !native_available() {
        return;
    }
    // Whether a small loop is *compiled* (its plan's build cost): it may still run native
    // when a library of the same program, built at a larger size, is in the disk cache
    // (kernels are generic in the sizes; the cache outlives test processes).
    use cotangent::compile::{optimize, Plan};
    let f = |a: &Vec<Tensor>| vec![(&a[0] * 2.0).exp()];
    let cost = |n: usize| {
        let g = trace_graph(&[TensorType::new(DType::F64, vec![n])], |x| vec![(&x[0] * 2.0).exp()]);
        with_native_mode(NativeMode::Auto, || Plan::interpreted(&optimize(&g)).native_build_cost())
    };
    assert_eq!(cost(100), None, "too small to compile");
    assert!(cost(10_000).is_some());
    let large = vec![Tensor::from_vec(vec![1.0f64; 10_000], &[10_000])];
    assert!(run(NativeMode::Auto, &f, &large).1.contains("native"));
    assert!(!run(NativeMode::Off, &f, &large).1.contains("native"));
}

#[test]
fn loops_write_over_intermediates_they_read_for_the_last_time() {
    if !native_available() {
        return;
    }
    let a = tensor((0..96 * 80).map(|i| ((i * 7) % 23) as f64 / 23.0 - 0.5).collect(), &[96, 80], DType::F32);
    let b = tensor((0..80 * 120).map(|i| ((i * 5) % 19) as f64 / 19.0 - 0.5).collect(), &[80, 120], DType::F32);
    // The product's storage is reused by the loop after it (and its storage is recycled by
    // the pool on the next call); the bias is read through a broadcast, so it is not.
    let f = |t: &Vec<Tensor>| {
        let h = t[0].matmul(&t[1]);
        vec![(&h + t[1].sum(&[0], false)).tanh() * 2.0]
    };
    check("in place", &f, &vec![a.clone(), b.clone()]);
    let (_, plan) = run(NativeMode::Always, &f, &vec![a, b]);
    assert!(plan.contains("(in place of %"), "{plan}");
}

/// What compiling a plan would cost, which `jit` weighs against the time spent interpreting
/// (`NativeMode::Auto`): nothing to compile is `None`; a library already in the disk cache
/// costs nothing.
#[test]
fn build_costs_are_none_without_loops_and_zero_once_cached() {
    use cotangent::compile::{optimize, Plan};
    if !native_available() {
        return;
    }
    let big = TensorType::new(DType::F64, vec![1 << 14]);
    let g = trace_graph(std::slice::from_ref(&big), |x| vec![(&x[0] * 3.0).tanh() + 0.25]);
    with_native_mode(NativeMode::Off, || assert_eq!(Plan::interpreted(&optimize(&g)).native_build_cost(), None));
    with_native_mode(NativeMode::Auto, || {
        let small = trace_graph(&[TensorType::new(DType::F64, vec![8])], |x| vec![x[0].tanh()]);
        assert_eq!(Plan::interpreted(&optimize(&small)).native_build_cost(), None, "too small for Auto");
        let plan = Plan::interpreted(&optimize(&g));
        assert!(plan.native_build_cost().is_some());
        let native = plan.with_native_loops().expect("a loop to compile");
        assert_eq!(native.native_build_cost(), None, "everything compiled");
        assert_eq!(plan.native_build_cost(), Some(std::time::Duration::ZERO), "the library is cached now");
        let x = Tensor::from_vec(vec![0.5; 1 << 14], &[1 << 14]);
        assert!(same_bits(&plan.run(std::slice::from_ref(&x))[0], &native.run(&[x])[0]));
    });
}

// ---- w9 (neural ODE benchmark): loops inside nested loops are compiled too ----

/// `while_loop_bounded` is a nest of conds and scans, some of whose sub-plans hold nothing
/// but the next structured step: the loops of the body, several levels down, are compiled
/// with the plan all the same, and agree bitwise with the interpreter.
#[test]
fn loops_deep_inside_nested_loops_are_compiled() {
    use cotangent::compile::{optimize, Plan};
    use cotangent::control::while_loop_bounded;
    if !native_available() {
        return;
    }
    let ty = TensorType::new(DType::F64, vec![64, 64]);
    let g = trace_graph(&[ty], |x| {
        let body = |(k, y): &(Tensor, Tensor)| (k + 1.0, (y * 0.9 + 0.1).tanh());
        let (_, y) =
            while_loop_bounded(|(k, _): &(Tensor, Tensor)| k.lt(7.0), body, &(Tensor::scalar(0.0), x[0].clone()), 1000);
        vec![y]
    });
    with_native_mode(NativeMode::Always, || {
        let plan = Plan::interpreted(&optimize(&g));
        let native = plan.with_native_loops().expect("loops to compile");
        let dump = native.dump();
        let loops: Vec<&str> = dump.lines().filter(|l| l.contains("fused[64, 64]")).collect();
        assert!(!loops.is_empty(), "{dump}");
        assert!(loops.iter().all(|l| l.contains("native fused")), "a [64, 64] loop left interpreted:\n{dump}");
        let x = Tensor::from_vec((0..4096).map(|i| (i % 17) as f64 / 8.0 - 1.0).collect(), &[64, 64]);
        assert!(same_bits(&plan.run(std::slice::from_ref(&x))[0], &native.run(&[x])[0]));
    });
}

// ---- codegen (issue 12): loops that differ only in their offsets share one C function ----

/// An unrolled recurrence whose every step reads another slice of the input: one native
/// loop per step, all running one C function with their own offsets, so the C source does
/// not grow with the number of steps; and the shared function computes each step's values
/// bitwise like the interpreter.
#[test]
fn unrolled_steps_share_one_function_with_their_offsets_as_arguments() {
    use cotangent::compile::{optimize, Plan};
    if !native_available() {
        return;
    }
    let n = 8;
    let unrolled = |steps: usize| {
        let tys = [TensorType::new(DType::F64, vec![n, n]), TensorType::new(DType::F64, vec![steps * n])];
        trace_graph(&tys, move |a| {
            let mut y = a[1].slice_axis(0, 0, n as isize, 1).sin();
            for k in 1..steps as isize {
                let x = a[1].slice_axis(0, k * n as isize, (k + 1) * n as isize, 1);
                y = (a[0].matmul(&y) * 0.5 + x).tanh();
            }
            vec![y]
        })
    };
    with_native_mode(NativeMode::Always, || {
        let functions = |src: &str| src.matches("\nint32_t ct_kernel").count();
        let (short, long) = (Plan::interpreted(&optimize(&unrolled(5))), Plan::interpreted(&optimize(&unrolled(40))));
        let (short_src, long_src) = (short.native_source(), long.native_source());
        assert!(functions(&long_src) >= 1, "{long_src}");
        assert_eq!(functions(&short_src), functions(&long_src), "one function per distinct loop, not per step");
        assert_eq!(short_src.len(), long_src.len(), "the source does not grow with the steps");
        let native = long.with_native_loops().expect("loops to compile");
        let dump = native.dump();
        assert!(dump.matches("native fused").count() >= 39, "every step's loop is native:\n{dump}");
        let w = Tensor::from_vec((0..n * n).map(|i| ((i * 7) % 11) as f64 / 20.0 - 0.25).collect(), &[n, n]);
        let x = Tensor::from_vec((0..40 * n).map(|i| ((i * 5) % 13) as f64 / 6.0 - 1.0).collect(), &[40 * n]);
        let args = [w, x];
        let (a, b) = (&long.run(&args)[0], &native.run(&args)[0]);
        assert!(same_bits(a, b), "{:?}\n{:?}", a.to_vec::<f64>(), b.to_vec::<f64>());
    });
}

// ---- w9fwd: tanh (one-division f64 form) over a dense sweep ----

/// `tanh` natively and interpreted over a dense sweep of both branches, the branch switch at
/// 0.625 and the saturation at 40: bitwise equal in f32 and f64 (the C twin in `prelude.c`
/// must repeat `math.rs` operation for operation).
#[test]
fn tanh_matches_the_interpreter_bitwise_over_a_sweep() {
    if !native_available() {
        return;
    }
    let mut v: Vec<f64> = (0..40_000).map(|i| -50.0 + 100.0 * i as f64 / 40_000.0).collect();
    v.extend((0..4_000).map(|i| 0.6 + 0.05 * i as f64 / 4_000.0));
    v.extend((0..4_000).map(|i| -(1e-12f64).powf(i as f64 / 4_000.0)));
    for dtype in [DType::F32, DType::F64] {
        let x = tensor(v.clone(), &[v.len()], dtype);
        check(&format!("tanh sweep {dtype}"), &|a: &Vec<Tensor>| vec![a[0].tanh()], &vec![x]);
    }
}

// ---- generic kernels (issue 12): a library built at one size serves the program at others ----

/// The ode eval's right-hand side, `[x₀, x₁ y₀, ...]`, as one padded fused loop (with an
/// uncommon tail so that no other test builds the same loop), at length `n`.
fn shifted_product(n: usize) -> cotangent::ir::Graph {
    trace_graph(&[TensorType::new(DType::F64, vec![n])], |x| {
        let n = n as isize;
        let head = x[0].slice_axis(0, 0, 1, 1);
        let tail = x[0].slice_axis(0, 1, n, 1) * x[0].slice_axis(0, 0, n - 1, 1);
        vec![(concatenate(&[head, tail], 0) * 0.75).expm1().cbrt() + 0.5]
    })
}

/// GradBench feeds each eval inputs of growing sizes, each to a fresh `jit`: the C source of
/// a loop does not depend on its sizes (shape, strides, padding bounds are arguments), so
/// once one size's library is built, a plan of the same program at another size finds it in
/// the cache (build cost zero: no second compile) and computes bitwise what the interpreter
/// does.
#[test]
fn a_library_built_at_one_size_serves_the_program_at_every_size() {
    use cotangent::compile::{optimize, Plan};
    if !native_available() {
        return;
    }
    with_native_mode(NativeMode::Auto, || {
        // (The disk cache outlives the test process: the build cost here may already be zero.)
        let first = Plan::interpreted(&optimize(&shifted_product(6000)));
        assert!(first.native_build_cost().is_some(), "a loop to compile");
        first.with_native_loops().expect("compiled");
        for n in [4100, 9000, 20_000] {
            let plan = Plan::interpreted(&optimize(&shifted_product(n)));
            assert_eq!(plan.native_build_cost(), Some(std::time::Duration::ZERO), "n = {n}: cached, no second compile");
            let native = plan.with_native_loops().unwrap_or_else(|| panic!("n = {n}: the cached library loads"));
            assert!(native.dump().contains("native fused"), "n = {n}:\n{}", native.dump());
            let x = Tensor::from_vec((0..n).map(|i| ((i * 7) % 13) as f64 / 6.0 - 1.0).collect(), &[n]);
            let (a, b) = (&plan.run(std::slice::from_ref(&x))[0], &native.run(&[x])[0]);
            assert!(same_bits(a, b), "n = {n}");
        }
    });
}

/// The same for two-dimensional loops whose rows, padding and transposed reads change with
/// the size: `[r, c]` matrices padded on both axes, and a transposed read (an inner stride
/// that is a parameter, not a constant of the source). Rows are cut at every padding edge,
/// so this also checks the segments inside and outside each bound bitwise.
#[test]
fn padded_and_transposed_loops_of_other_sizes_share_the_library_bitwise() {
    use cotangent::compile::{optimize, Plan};
    if !native_available() {
        return;
    }
    let g = |r: usize, c: usize| {
        trace_graph(&[TensorType::new(DType::F32, vec![r, c])], |x| {
            let t = (&x[0] * 1.5).sin().permute(&[1, 0]).pad(&[1, 0], &[2, 1], &[0, 0], 0.0);
            vec![(t.expm1() * 0.25).atan()]
        })
    };
    with_native_mode(NativeMode::Auto, || {
        Plan::interpreted(&optimize(&g(80, 70))).with_native_loops().expect("compiled");
        // A plan with no loop large enough to compile does not look for a library (writing
        // its source would cost its calls more than its small loops gain).
        assert!(Plan::interpreted(&optimize(&g(3, 5))).with_native_loops().is_none());
        for (r, c) in [(70, 80), (96, 130), (64, 100)] {
            let plan = Plan::interpreted(&optimize(&g(r, c)));
            let cost = plan.native_build_cost();
            assert!(cost.is_none_or(|c| c.is_zero()), "{r}x{c}: no second compile ({cost:?})");
            let native = plan.with_native_loops().unwrap_or_else(|| panic!("{r}x{c}: the cached library loads"));
            let x = tensor((0..r * c).map(|i| ((i * 5) % 17) as f64 / 4.0 - 2.0).collect(), &[r, c], DType::F32);
            let (a, b) = (&plan.run(std::slice::from_ref(&x))[0], &native.run(&[x])[0]);
            assert!(same_bits(a, b), "{r}x{c}");
        }
    });
}

// ---- odekern8: the bulk copy of padded loops (thin and near-whole paddings as constants) ----

/// Four RK4 stages of the ode eval's right-hand side (`[x₀, x₁ y₀, ...]`), inlined into one
/// loop through shifted paddings: its rows have bounds one element wide (the concatenates'
/// heads) and bounds covering all but the first elements, which the generated code takes
/// as constants in a second copy of the body for the segments where they are as usual.
fn rk4_like(x: &Tensor, y: &Tensor) -> Tensor {
    let n = x.numel() as isize;
    let (head, tail) = (x.slice_axis(0, 0, 1, 1), x.slice_axis(0, 1, n, 1));
    let f = |y: &Tensor| concatenate(&[head.clone(), &tail * y.slice_axis(0, 0, n - 1, 1)], 0);
    let k1 = f(y);
    let k2 = f(&(y + &k1 * 0.3));
    let k3 = f(&(y + &k2 * 0.3));
    let k4 = f(&(y + &k3 * 0.6));
    y + (k1 + (k2 * 2.0 + k3 * 2.0 + k4)) * 0.1
}

#[test]
fn rows_with_thin_and_near_whole_paddings_match_at_every_size() {
    if !native_available() {
        return;
    }
    // Sizes below, at and above the width of a "thin" bound (16), and rows longer than a
    // zero-page segment (512), so segments of every kind (inside a thin bound's few
    // elements, outside it, pieces of long rows) run.
    for n in [2usize, 3, 5, 16, 17, 18, 33, 40, 513, 1500] {
        let x = Tensor::from_vec(values(n).iter().map(|v| v.clamp(-4.0, 4.0)).collect(), &[n]);
        let y = Tensor::from_vec((0..n).map(|i| ((i * 7) % 11) as f64 / 5.0 - 1.0).collect(), &[n]);
        check(&format!("rk4-like n = {n}"), &|a: &Vec<Tensor>| vec![rk4_like(&a[0], &a[1])], &vec![x, y]);
    }
    // The gradient: the transposed chain reads the cotangents through the mirrored paddings.
    let n = 700;
    let x = Tensor::from_vec((0..n).map(|i| ((i * 5) % 13) as f64 / 7.0).collect(), &[n]);
    let y = Tensor::from_vec((0..n).map(|i| ((i * 3) % 7) as f64 / 3.0 - 1.0).collect(), &[n]);
    check(
        "rk4-like gradient",
        &|a: &Vec<Tensor>| {
            let y = a[1].clone();
            vec![grad(move |x: &Tensor| (rk4_like(x, &y) * rk4_like(x, &y)).sum_all())(&a[0])]
        },
        &vec![x, y],
    );
}

#[test]
fn the_bulk_copy_is_generated_and_rows_outside_their_row_range_use_the_tested_copy() {
    use cotangent::compile::{optimize, Plan};
    if !native_available() {
        return;
    }
    // A thin bound along the rows: the bulk copy exists.
    let g = trace_graph(&[TensorType::new(DType::F64, vec![3000]), TensorType::new(DType::F64, vec![3000])], |a| {
        vec![rk4_like(&a[0], &a[1])]
    });
    let src = with_native_mode(NativeMode::Always, || Plan::interpreted(&optimize(&g)).native_source());
    assert!(src.contains("_bulk("), "a copy for the usual segments:\n{src}");
    // Two-dimensional: a padding whose range along the rows is near-whole but that holds only
    // the first row (`x[:1] · 3` on top of `x[1:] · 2`): rows past the first are outside it, so
    // their segments do not have the usual flags and run the tested copy.
    for (r, c) in [(4usize, 40usize), (9, 600), (3, 17)] {
        let x = Tensor::from_vec(values(r * c), &[r, c]);
        let f = |a: &Vec<Tensor>| {
            let r = a[0].shape()[0] as isize;
            let top = a[0].slice_axis(0, 0, 1, 1) * 3.0;
            vec![(concatenate(&[top, a[0].slice_axis(0, 1, r, 1) * 2.0], 0) * 0.5).exp()]
        };
        check(&format!("{r}x{c} row-limited padding"), &f, &vec![x]);
    }
}
