//! Whole loops in native code (issue 12): a `while`/`fori`/`scan` whose body is all fused
//! element-wise loops over small tensors runs as one C function. Its results must be bitwise
//! those of the interpreted loop (`NativeMode::Off`), including NaN, and loops it cannot
//! take (a reduction in the body, an outer loop around another loop) stay interpreted with
//! the same results.
//!
//! Skipped, with a message, where no C compiler works.

use cotangent::compile::{optimize, Plan};
use cotangent::control::{fori_loop, scan, while_loop};
use cotangent::*;

/// The plan for `f` on `args`' types in `mode` after one interpreted run (so a `while` has
/// recorded its iterations) and the native compile, its dump, and its outputs.
fn compiled(mode: NativeMode, f: &dyn Fn(&[Tensor]) -> Vec<Tensor>, args: &[Tensor]) -> (Vec<Tensor>, String) {
    let types: Vec<TensorType> = args.iter().map(Tensor::ty).collect();
    let g = trace_graph(&types, f);
    with_native_mode(mode, || {
        let plan = Plan::interpreted(&optimize(&g));
        let first = plan.run(args);
        let native = plan.with_native_loops().unwrap_or_else(|| Plan::interpreted(&optimize(&g)));
        let out = native.run(args);
        // The native plan agrees with its own interpreted first run.
        for (a, b) in first.iter().zip(&out) {
            assert!(same_bits(a, b), "first (interpreted) run and native run differ:\n{}", native.dump());
        }
        (out, native.dump())
    })
}

fn same_bits(a: &Tensor, b: &Tensor) -> bool {
    a.shape() == b.shape()
        && match a.dtype() {
            DType::F32 => a.to_vec::<f32>().iter().zip(b.to_vec::<f32>()).all(|(x, y)| x.to_bits() == y.to_bits()),
            DType::F64 => a.to_vec::<f64>().iter().zip(b.to_vec::<f64>()).all(|(x, y)| x.to_bits() == y.to_bits()),
            DType::I64 => a.to_vec::<i64>() == b.to_vec::<i64>(),
            DType::I32 => a.to_vec::<i32>() == b.to_vec::<i32>(),
            DType::Bool => a.to_vec::<bool>() == b.to_vec::<bool>(),
        }
}

/// Whether a C compiler works here.
fn native_available() -> bool {
    let f = |x: &[Tensor]| vec![&x[0] * 2.0];
    let (_, dump) = compiled(NativeMode::Always, &f, &[Tensor::from_vec(vec![1.0f64; 4], &[4])]);
    if !dump.contains("native") {
        eprintln!("no working C compiler: whole loops are not tested here");
    }
    dump.contains("native")
}

/// Runs `f` with every loop native (`Always`) and interpreted (`Off`); asserts how many loops
/// were compiled whole (`usize::MAX`: at least one) and that every output agrees bitwise. Returns the native outputs.
#[track_caller]
fn check(what: &str, whole: usize, f: &dyn Fn(&[Tensor]) -> Vec<Tensor>, args: &[Tensor]) -> Vec<Tensor> {
    let (native, dump) = compiled(NativeMode::Always, f, args);
    let (interpreted, plain) = compiled(NativeMode::Off, f, args);
    assert!(!plain.contains("native"), "{what}: NativeMode::Off compiled something\n{plain}");
    if whole == usize::MAX {
        assert!(dump.contains("native whole loop"), "{what}: no whole loop in\n{dump}");
    } else {
        assert_eq!(dump.matches("native whole loop").count(), whole, "{what}: whole loops in\n{dump}");
    }
    assert_eq!(native.len(), interpreted.len());
    for (k, (a, b)) in native.iter().zip(&interpreted).enumerate() {
        assert!(
            same_bits(a, b),
            "{what}: output {k} differs\nnative      {:?}\ninterpreted {:?}\n{dump}",
            a.cast(DType::F64).to_vec::<f64>(),
            b.cast(DType::F64).to_vec::<f64>()
        );
    }
    native
}

fn rotation(x: &Tensor) -> Tensor {
    x * 0.999 + x.flip(&[0]) * 0.001
}

#[test]
fn a_while_loop_runs_whole_and_bitwise_like_the_interpreter() {
    if !native_available() {
        return;
    }
    let f = |a: &[Tensor]| {
        let (k, x) = while_loop(
            |(k, _): &(Tensor, Tensor)| k.lt(1000.0),
            |(k, x): &(Tensor, Tensor)| (k + 1.0, (rotation(x) * 1.0001).tanh() + 0.01),
            &(Tensor::scalar(0.0), a[0].clone()),
        );
        vec![k, x]
    };
    let out = check("while", 1, &f, &[Tensor::from_vec(vec![0.5, -0.25, 3.0], &[3])]);
    assert_eq!(out[0].item::<f64>(), 1000.0, "the counter stops where the predicate turns false");
    // A predicate that is false at once: the initial carries come back unchanged.
    let g = |a: &[Tensor]| vec![while_loop(|x: &Tensor| x.sum_all().lt(-1.0), |x: &Tensor| x * 2.0, &a[0])];
    let x = Tensor::from_vec(vec![0.5f32, 2.0], &[2]);
    let out = check("while never entered", 1, &g, std::slice::from_ref(&x));
    assert!(same_bits(&out[0], &x));
}

#[test]
fn fori_loops_with_integer_counters_and_scans_with_xs_and_ys_run_whole() {
    if !native_available() {
        return;
    }
    // The fori counter is an i64 carry; the body reads it converted to f64.
    let f =
        |a: &[Tensor]| vec![fori_loop(0, 500, |i: &Tensor, x: &Tensor| rotation(x) + i.cast(DType::F64) * 1e-6, &a[0])];
    let x = Tensor::from_vec(vec![0.5, -0.25], &[2]);
    let out = check("fori", 1, &f, std::slice::from_ref(&x));
    assert!(!same_bits(&out[0], &x), "the loop ran");
    // A scan reading rows of xs and stacking ys, forward and reverse, f32 and bool outputs.
    for reverse in [false, true] {
        let f = move |a: &[Tensor]| {
            let (c, (y, b)) = scan(
                |c: &Tensor, x: &Tensor| {
                    let next = (c * 0.5 + x).sin();
                    (next.clone(), (next.clone() * 2.0, next.gt(0.0)))
                },
                &a[0],
                &a[1],
                None,
                reverse,
            );
            vec![c, y, b]
        };
        let xs = Tensor::from_vec((0..60).map(|i| (i as f32 * 0.37).cos()).collect::<Vec<f32>>(), &[20, 3]);
        let c0 = Tensor::from_vec(vec![0.1f32, -2.0, 7.0], &[3]);
        let out = check(&format!("scan reverse={reverse}"), 1, &f, &[c0, xs]);
        assert_eq!(out[1].shape(), &[20, 3]);
        assert_eq!(out[2].dtype(), DType::Bool);
    }
}

#[test]
fn carries_passed_on_to_each_other_are_read_before_they_are_replaced() {
    if !native_available() {
        return;
    }
    // (a, b) -> (b, a + b): the new `a` is the old `b` itself (an operand, not a buffer).
    let f = |a: &[Tensor]| {
        let (x, y) = fori_loop(0, 30, |_, (x, y): &(Tensor, Tensor)| (y.clone(), x + y), &(a[0].clone(), a[1].clone()));
        vec![x, y]
    };
    let out = check("swap", 1, &f, &[Tensor::scalar(0.0), Tensor::scalar(1.0)]);
    assert_eq!((out[0].item::<f64>(), out[1].item::<f64>()), (832040.0, 1346269.0), "Fibonacci 30, 31");
}

#[test]
fn nan_carries_and_predicates_behave_as_interpreted() {
    if !native_available() {
        return;
    }
    // The carry turns NaN (sqrt of a negative); `NaN < 50` is false, so the loop stops there,
    // and max/min propagate NaN on the way.
    let f = |a: &[Tensor]| {
        let (k, x) = while_loop(
            |(_, x): &(Tensor, Tensor)| x.max_all().lt(50.0),
            |(k, x): &(Tensor, Tensor)| (k + 1.0, (x - 3.0).sqrt().maximum(&(x * 0.5)) + x.minimum(&(x + 1.0))),
            &(Tensor::scalar(0.0), a[0].clone()),
        );
        vec![k, x]
    };
    // (max_all is a reduction kernel in the cond: NaN wins in it, as in the interpreter.)
    check("nan with reduction in cond", 1, &f, &[Tensor::from_vec(vec![4.0, 10.0], &[2])]);
    let g = |a: &[Tensor]| {
        let (k, x) = while_loop(
            |(_, x): &(Tensor, Tensor)| x.lt(50.0),
            |(k, x): &(Tensor, Tensor)| (k + 1.0, (x - 3.0).sqrt().maximum(&(x * 0.5)) + x.minimum(&(x + 1.0))),
            &(Tensor::scalar(0.0), a[0].clone()),
        );
        vec![k, x]
    };
    let out = check("nan", 1, &g, &[Tensor::scalar(4.0)]);
    assert!(out[1].item::<f64>().is_nan() || out[1].item::<f64>() >= 50.0);
}

#[test]
fn reductions_and_inner_loops_run_whole_and_products_fall_back() {
    if !native_available() {
        return;
    }
    // Reductions in the body (a kernel and a fused one, max and sum): whole, same bits.
    let f = |a: &[Tensor]| {
        vec![fori_loop(0, 100, |_, x: &Tensor| x * 0.9 + x.sum_all() * 0.01 - (x * 3.0).sin().max_all() * 0.1, &a[0])]
    };
    check("reduction body", 1, &f, &[Tensor::from_vec(vec![0.5, -0.25, 1.0], &[3])]);
    let rows = |a: &[Tensor]| vec![fori_loop(0, 50, |_, x: &Tensor| (x - x.tanh().sum(&[1], true) * 0.3).sin(), &a[0])];
    let x = Tensor::from_vec((0..21).map(|i| i as f64 * 0.1 - 1.0).collect::<Vec<f64>>(), &[3, 7]);
    check("row reductions", 1, &rows, &[x]);
    // A product in the body: interpreted, same bits.
    let p = |a: &[Tensor]| vec![fori_loop(0, 100, |_, x: &Tensor| (x * 0.9 + x.dot(x) * 0.01).tanh(), &a[0])];
    check("product body", 0, &p, &[Tensor::from_vec(vec![0.5, -0.25, 1.0], &[3])]);
    // A while inside a fori: the outer loop runs whole, the inner one a C function it calls.
    let g = |a: &[Tensor]| {
        vec![fori_loop(
            0,
            20,
            |_, x: &Tensor| {
                let (_, y) = while_loop(
                    |(k, _): &(Tensor, Tensor)| k.lt(15.0),
                    |(k, y): &(Tensor, Tensor)| (k + 1.0, rotation(y) + 0.001),
                    &(Tensor::scalar(0.0), x.clone()),
                );
                y.tanh()
            },
            &a[0],
        )]
    };
    check("nested", 1, &g, &[Tensor::from_vec(vec![0.5, -0.25], &[2])]);
}

#[test]
fn auto_mode_compiles_long_loops_whole_and_leaves_short_ones() {
    if !native_available() {
        return;
    }
    let long = |a: &[Tensor]| vec![while_loop(|x: &Tensor| x.lt(1e6), |x: &Tensor| x * 1.01 + 1.0, &a[0])];
    let (out, dump) = compiled(NativeMode::Auto, &long, &[Tensor::scalar(1.0)]);
    assert!(dump.contains("native whole loop"), "a loop of ~900 iterations:\n{dump}");
    assert!(out[0].item::<f64>() >= 1e6);
    let short = |a: &[Tensor]| vec![while_loop(|x: &Tensor| x.lt(5.0), |x: &Tensor| x + 1.0, &a[0])];
    let (_, dump) = compiled(NativeMode::Auto, &short, &[Tensor::scalar(1.0)]);
    assert!(!dump.contains("native whole loop"), "a loop of 4 iterations:\n{dump}");
}

#[test]
fn jitted_loops_agree_from_the_first_call_on() {
    if !native_available() {
        return;
    }
    let f = jit(|x: &Tensor| fori_loop(0, 2000, |_, x: &Tensor| rotation(x).sin() + 0.5, x));
    let x = Tensor::from_vec(vec![0.5, -0.25, 0.125], &[3]);
    let first = f(&x);
    let second = f(&x);
    wait_for_native_compiles();
    let third = f(&x);
    assert!(same_bits(&first, &second) && same_bits(&first, &third));
}

/// In `Auto`, an interpreted plan compiles a loop whole in the background once one of its
/// runs has taken enough steps, and runs it natively from its next run on — here an inner
/// `while` re-run by every iteration of an outer loop, which switches between two outer
/// iterations without changing a bit.
#[test]
fn auto_mode_compiles_a_long_inner_loop_in_the_background_and_switches_between_its_runs() {
    if !native_available() {
        return;
    }
    let f = |a: &[Tensor]| {
        vec![fori_loop(
            0,
            40,
            |_, x: &Tensor| {
                let (_, y) = while_loop(
                    |(k, _): &(Tensor, Tensor)| k.lt(300.0),
                    |(k, y): &(Tensor, Tensor)| (k + 1.0, rotation(y).sin() + 0.001),
                    &(Tensor::scalar(0.0), x.clone()),
                );
                y.tanh() + x * 0.5
            },
            &a[0],
        )]
    };
    let x = [Tensor::from_vec(vec![0.5, -0.25], &[2])];
    let g = trace_graph(&[x[0].ty()], f);
    let off = with_native_mode(NativeMode::Off, || Plan::interpreted(&optimize(&g)).run(&x));
    with_native_mode(NativeMode::Auto, || {
        let plan = Plan::interpreted(&optimize(&g));
        let first = plan.run(&x);
        wait_for_native_compiles();
        assert!(plan.dump().contains("native whole loop"), "the inner loop was compiled:\n{}", plan.dump());
        let second = plan.run(&x);
        assert!(same_bits(&first[0], &off[0]) && same_bits(&second[0], &off[0]));
    });
}

/// `while_loop_bounded` (scans of `cond`-guarded iterations, nested) and its gradient (a
/// transposed scan reading stacked residuals): loops with conds and loops in their bodies run
/// whole, bitwise like the interpreter; the bounded loop's "hit max_steps" flag too.
#[test]
fn bounded_loops_with_conds_and_nested_loops_and_their_gradients_run_whole() {
    use cotangent::control::while_loop_bounded;
    if !native_available() {
        return;
    }
    let body = |(k, x): &(Tensor, Tensor)| (k + 1.0, (rotation(x) * 1.01).sin());
    let f = move |a: &[Tensor]| {
        let (k, x) = while_loop_bounded(
            |(k, _): &(Tensor, Tensor)| k.lt(300.0),
            body,
            &(Tensor::scalar(0.0), a[0].clone()),
            1000,
        );
        vec![k, x]
    };
    let x = Tensor::from_vec(vec![0.5, -0.25], &[2]);
    let out = check("bounded", usize::MAX, &f, std::slice::from_ref(&x));
    assert_eq!(out[0].item::<f64>(), 300.0);
    // Stopped by max_steps before the predicate turns false.
    let short = move |a: &[Tensor]| {
        let (k, x) =
            while_loop_bounded(|(k, _): &(Tensor, Tensor)| k.lt(300.0), body, &(Tensor::scalar(0.0), a[0].clone()), 37);
        vec![k, x]
    };
    let out = check("bounded, max_steps", usize::MAX, &short, std::slice::from_ref(&x));
    assert_eq!(out[0].item::<f64>(), 37.0);
    let g = move |a: &[Tensor]| {
        vec![grad(move |x: &Tensor| {
            while_loop_bounded(|(k, _): &(Tensor, Tensor)| k.lt(300.0), body, &(Tensor::scalar(0.0), x.clone()), 1000)
                .1
                .sum_all()
        })(&a[0])]
    };
    check("bounded gradient", usize::MAX, &g, &[x]);
}

/// In `Auto`, the steps of loops nested in a loop's body count towards its threshold:
/// `while_loop_bounded` (nested scans of a few steps each, none long on its own) of 300
/// iterations is compiled whole after one run, bitwise like the interpreter; a bounded loop of
/// 3 iterations is not.
#[test]
fn auto_mode_counts_nested_steps_so_bounded_loops_compile_whole() {
    use cotangent::control::while_loop_bounded;
    if !native_available() {
        return;
    }
    let body = |(k, x): &(Tensor, Tensor)| (k + 1.0, (rotation(x) * 1.01).sin());
    let bounded = move |stop: f64| {
        move |a: &[Tensor]| {
            let (k, x) = while_loop_bounded(
                move |(k, _): &(Tensor, Tensor)| k.lt(stop),
                body,
                &(Tensor::scalar(0.0), a[0].clone()),
                1000,
            );
            vec![k, x]
        }
    };
    let x = [Tensor::from_vec(vec![0.5, -0.25], &[2])];
    let long = bounded(300.0);
    let (out, dump) = compiled(NativeMode::Auto, &long, &x);
    assert!(dump.contains("native whole loop"), "a bounded loop of 300 iterations:\n{dump}");
    let g = trace_graph(&[x[0].ty()], long);
    let off = with_native_mode(NativeMode::Off, || Plan::interpreted(&optimize(&g)).run(&x));
    assert_eq!(out[0].item::<f64>(), 300.0);
    assert!(same_bits(&out[1], &off[1]));
    let (_, dump) = compiled(NativeMode::Auto, &bounded(3.0), &x);
    assert!(!dump.contains("native whole loop"), "a bounded loop of 3 iterations:\n{dump}");
}

/// GradBench lstm feeds sequences of 1024, 4096 and 8192 steps, each to a fresh `jit`: a
/// scan's length is an argument of its whole-loop function, not a constant of the C source,
/// so the library built for one length serves the scan at every length (build cost zero, no
/// second compile), forward and reverse, and computes bitwise what the interpreter does.
#[test]
fn a_whole_scan_compiled_at_one_length_serves_every_length_bitwise() {
    use std::time::Duration;
    if !native_available() {
        return;
    }
    let g = |length: usize, reverse: bool| {
        trace_graph(&[TensorType::new(DType::F64, vec![3]), TensorType::new(DType::F64, vec![length, 3])], move |a| {
            let (c, y) = scan(
                |c: &Tensor, x: &Tensor| {
                    let next = (rotation(c) * 0.5 + x).tanh();
                    (next.clone(), next.sigmoid() - x)
                },
                &a[0],
                &a[1],
                None,
                reverse,
            );
            vec![c, y]
        })
    };
    for reverse in [false, true] {
        with_native_mode(NativeMode::Auto, || {
            let first = Plan::interpreted(&optimize(&g(300, reverse)));
            assert!(first.native_build_cost().is_some(), "a loop to compile");
            assert!(first.with_native_loops().expect("compiled").dump().contains("native whole loop"));
            for length in [257, 1000, 4099] {
                let plan = Plan::interpreted(&optimize(&g(length, reverse)));
                assert_eq!(
                    plan.native_build_cost(),
                    Some(Duration::ZERO),
                    "length {length}, reverse {reverse}: cached, no second compile"
                );
                let native = plan.with_native_loops().expect("the cached library loads");
                assert!(native.dump().contains("native whole loop"), "length {length}:\n{}", native.dump());
                let c0 = Tensor::from_vec(vec![0.1, -2.0, 7.0], &[3]);
                let xs = Tensor::from_vec((0..3 * length).map(|i| (i as f64 * 0.37).cos()).collect(), &[length, 3]);
                let args = [c0, xs];
                let (a, b) = (plan.run(&args), native.run(&args));
                assert_eq!(b[1].shape(), &[length, 3]);
                for (x, y) in a.iter().zip(&b) {
                    assert!(same_bits(x, y), "length {length}, reverse {reverse}");
                }
            }
        });
    }
}

/// Loops are compiled one library per distinct loop: scans with the same body (a stacked
/// recurrence's layers, each with its own weights as operands) share one library, and a plan
/// with more of them (a deeper stack) finds it in the cache — build cost zero — and runs every
/// one of them whole, bitwise like the interpreter.
#[test]
fn scans_with_the_same_body_share_one_library_across_plans() {
    use std::time::Duration;
    if !native_available() {
        return;
    }
    let stack = |layers: usize| {
        let types = vec![TensorType::new(DType::F64, vec![2 * layers, 4]), TensorType::new(DType::F64, vec![400, 4])];
        trace_graph(&types, move |a| {
            let mut xs = a[1].clone();
            for l in 0..layers {
                let (w, h0) = (a[0].index(2 * l as isize), a[0].index(2 * l as isize + 1));
                let step = |h: &Tensor, x: &Tensor| {
                    let h = (h * &w + x).tanh() * 0.75 + x.sigmoid() * 0.25;
                    (h.clone(), h)
                };
                xs = scan(step, &h0, &xs, None, false).1;
            }
            vec![xs]
        })
    };
    with_native_mode(NativeMode::Auto, || {
        let two = Plan::interpreted(&optimize(&stack(2)));
        assert_eq!(two.with_native_loops().expect("compiled").dump().matches("native whole loop").count(), 2);
        let five = Plan::interpreted(&optimize(&stack(5)));
        assert_eq!(five.native_build_cost(), Some(Duration::ZERO), "the one library is cached");
        let native = five.with_native_loops().expect("the cached library loads");
        assert_eq!(native.dump().matches("native whole loop").count(), 5, "{}", native.dump());
        let params = Tensor::from_vec((0..40).map(|i| (i as f64 * 0.29).sin()).collect(), &[10, 4]);
        let xs = Tensor::from_vec((0..1600).map(|i| (i as f64 * 0.13).cos()).collect(), &[400, 4]);
        let args = [params, xs];
        assert!(same_bits(&five.run(&args)[0], &native.run(&args)[0]));
        // An interpreted plan whose scans' library is cached by the time they run loads it
        // before running them (no background compile to wait for): its first run is native.
        let three = Plan::interpreted(&optimize(&stack(3)));
        assert!(!three.dump().contains("native"), "built interpreted:\n{}", three.dump());
        let args = [args[0].slice_axis(0, 0, 6, 1), args[1].clone()];
        let first = three.run(&args);
        assert_eq!(three.dump().matches("native whole loop").count(), 3, "{}", three.dump());
        let off = with_native_mode(NativeMode::Off, || Plan::interpreted(&optimize(&stack(3))).run(&args));
        assert!(same_bits(&first[0], &off[0]));
    });
}

// ---- avail8 (issue 12): float constants are parameters of whole loops ----

/// GradBench ode's loop: `steps` classic RK4 steps of `y' = [x₀, x₁y₀, x₂y₁, ...]` of size
/// `h` (a constant of the body, computed from the input as `2/s`), plus divisions by
/// constants that are powers of two (normal, and 2^1023 whose reciprocal is subnormal), by
/// 6 and by a subnormal power of two (its reciprocal overflows: a real division stays).
fn ode_like(n: usize, steps: usize, h: f64) -> cotangent::ir::Graph {
    trace_graph(&[TensorType::new(DType::F64, vec![n])], move |a| {
        let x = a[0].clone();
        let n = n as isize;
        let rhs = |y: &Tensor| {
            concatenate(&[x.slice_axis(0, 0, 1, 1), x.slice_axis(0, 1, n, 1) * y.slice_axis(0, 0, n - 1, 1)], 0)
        };
        let y = fori_loop(
            0,
            steps as i64,
            |_, y: &Tensor| {
                let k1 = rhs(y);
                let k2 = rhs(&(y + &k1 * h / 2.0));
                let k3 = rhs(&(y + &k2 * h / 0.25));
                let k4 = rhs(&(y + &k3 * h));
                let big = (&k4 / 2f64.powi(1023) + &k4 / f64::from_bits(1)).tanh();
                y + (k1 + k2 * 2.0 + k3 * 2.0 + k4) * h / 6.0 + big * 1e-3
            },
            &x.zeros_like(),
        );
        vec![y]
    })
}

/// A whole loop's float constants are arguments of its C function, not literals of its
/// source: the plan of the same program with another step size (and another length) finds
/// the library built for the first one in the cache (build cost zero: no second compile),
/// and both run bitwise like the interpreter, with divisions by powers of two done as
/// multiplications by their reciprocals (same bits) on special values too.
#[test]
fn whole_loops_take_float_constants_as_parameters_and_share_one_library() {
    use std::time::Duration;
    if !native_available() {
        return;
    }
    let n = 300;
    let mut xs: Vec<f64> = (0..n).map(|i| ((i as f64) * 0.37 + 1.0).sin() * 0.5).collect();
    xs[n - 13] = f64::NAN;
    xs[n - 11] = f64::INFINITY;
    xs[n - 9] = -0.0;
    xs[n - 7] = f64::from_bits(3); // subnormal
    xs[n - 5] = f64::MAX;
    xs[n - 3] = -f64::MIN_POSITIVE;
    let x = Tensor::from_vec(xs, &[n]);
    with_native_mode(NativeMode::Auto, || {
        let first = Plan::interpreted(&optimize(&ode_like(n, 300, 2.0 / 300.0)));
        assert!(first.native_build_cost().is_some(), "a loop to compile:\n{}", first.dump());
        let native = first.with_native_loops().expect("compiled");
        assert!(native.dump().contains("native whole loop"), "{}", native.dump());
        let off = with_native_mode(NativeMode::Off, || Plan::interpreted(&optimize(&ode_like(n, 300, 2.0 / 300.0))));
        assert!(
            same_bits(&native.run(std::slice::from_ref(&x))[0], &off.run(std::slice::from_ref(&x))[0]),
            "h = 2/300"
        );
        // Step sizes no earlier run can have compiled a library for (the cache is on disk):
        // with constants in the source, each would need a compile of its own.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let salt = (nanos as f64 + std::process::id() as f64) * 1e-15;
        for (steps, h) in [(310, 2.0 / 310.0 + salt), (257, 0.1 + salt), (1000, -3.75e-3 - salt)] {
            let plan = Plan::interpreted(&optimize(&ode_like(n, steps, h)));
            assert_eq!(plan.native_build_cost(), Some(Duration::ZERO), "steps {steps}, h {h}: the same library");
            let native = plan.with_native_loops().expect("the cached library loads");
            assert!(native.dump().contains("native whole loop"), "{}", native.dump());
            let off = with_native_mode(NativeMode::Off, || Plan::interpreted(&optimize(&ode_like(n, steps, h))));
            let (a, b) = (native.run(std::slice::from_ref(&x)), off.run(std::slice::from_ref(&x)));
            assert!(same_bits(&a[0], &b[0]), "steps {steps}, h {h}: native and interpreted differ");
            assert!(a[0].to_vec::<f64>().iter().any(|v| v.is_finite() && *v != 0.0), "something computed");
        }
    });
}
