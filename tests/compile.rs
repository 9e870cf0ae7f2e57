//! jit and the compile passes: caching, each pass on small graphs (dumps before and
//! after), fusion in the plan, and agreement with the interpreter.

use cotangent::compile::{optimize, Plan};
use cotangent::*;
use std::cell::Cell;

fn f64s(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape)
}

fn ty(shape: &[usize]) -> TensorType {
    TensorType::new(DType::F64, shape.to_vec())
}

#[test]
fn jit_traces_once_per_signature() {
    let traces = Cell::new(0);
    let f = jit(|x: &Tensor| {
        traces.set(traces.get() + 1);
        x.sin() * 2.0
    });
    let x = f64s(&[1.0, 2.0], &[2]);
    let a = f(&x);
    let b = f(&x);
    assert_eq!(traces.get(), 1);
    assert_eq!(a.to_vec::<f64>(), b.to_vec::<f64>());
    f(&f64s(&[1.0, 2.0, 3.0], &[3]));
    assert_eq!(traces.get(), 2, "a new shape is a new signature");
    f(&x);
    assert_eq!(traces.get(), 2);
}

#[test]
fn grad_in_a_loop_does_not_retrace() {
    let traces = Cell::new(0);
    let g = grad(|w: &Tensor| {
        traces.set(traces.get() + 1);
        (w * w).sum_all()
    });
    let mut w = f64s(&[1.0, -2.0], &[2]);
    for _ in 0..5 {
        w = &w - g(&w) * 0.25;
    }
    assert_eq!(traces.get(), 1);
    assert_eq!(w.to_vec::<f64>(), vec![1.0 / 32.0, -2.0 / 32.0]);
}

#[test]
fn jit_inside_other_transformations_is_transparent() {
    let f = jit(|x: &Tensor| x.sin() * x);
    let g = grad(|x: &Tensor| f(x).sum_all());
    let x = f64s(&[0.5, 1.5], &[2]);
    let expect: Vec<f64> = [0.5f64, 1.5].iter().map(|x| x.cos() * x + x.sin()).collect();
    let got = g(&x).to_vec::<f64>();
    for (a, b) in got.iter().zip(&expect) {
        assert!((a - b).abs() < 1e-15);
    }
    let h = vmap(jit(|x: &Tensor| x.exp().sum_all()))(&Tensor::ones(&[3, 2], DType::F64));
    assert_eq!(h.shape(), vec![3]);
}

#[test]
fn cse_merges_repeated_work_and_dce_drops_dead_code() {
    let g = trace_graph(&[ty(&[3])], |xs| {
        let x = &xs[0];
        let _unused = x.cos();
        vec![x.sin() + x.sin()]
    });
    assert_eq!(
        g.dump(),
        "graph(%0: f64[3]) {\n  %1: f64[3] = cos %0\n  %2: f64[3] = sin %0\n  %3: f64[3] = sin %0\n  %4: f64[3] = add %2 %3\n  return %4\n}\n"
    );
    assert_eq!(
        optimize(&g).dump(),
        "graph(%0: f64[3]) {\n  %1: f64[3] = sin %0\n  %2: f64[3] = add %1 %1\n  return %2\n}\n"
    );
}

// (compile12) CSE keys nodes by kind and operands and compares parameters: nodes of one kind
// on the same operand with other parameters stay apart, repeats of each merge, and
// commutative operands merge in either order.
#[test]
fn cse_tells_apart_parameters_on_shared_operands() {
    let g = trace_graph(&[ty(&[2, 3]), ty(&[2, 3])], |xs| {
        let (x, y) = (&xs[0], &xs[1]);
        let rows = x.sum(&[0], false) + x.sum(&[0], false);
        let cols = x.sum(&[1], false) * x.sum(&[1], false);
        let r = x.reshape(&[3, 2]) - x.reshape(&[6]).reshape(&[3, 2]);
        let p = x * y - y * x;
        vec![rows, cols, r, p, x.sum(&[0], false)]
    });
    let opt = optimize(&g);
    let count = |name: &str| opt.dump().lines().filter(|l| l.contains(&format!("= {name}"))).count();
    assert_eq!(count("reduce_sum"), 2, "{}", opt.dump()); // axes [0] and [1], once each
    assert_eq!(count("mul"), 2, "{}", opt.dump()); // x*y once, and cols' product
    assert_eq!(count("reshape"), 1, "{}", opt.dump()); // the reshape chain is the same value
    let sums: Vec<_> = opt.nodes.iter().filter(|n| n.prim.name() == "reduce_sum").map(|n| n.ty.shape.clone()).collect();
    assert_eq!(sums, vec![vec![3], vec![2]]);
}

#[test]
fn algebraic_simplification_is_exact() {
    let g = trace_graph(&[ty(&[2, 3])], |xs| {
        let x = &xs[0];
        let a = (x * 1.0) / 1.0 - 0.0; // identities
        let b = -(-&a); // double negation
        let c = b.reshape(&[3, 2]).reshape(&[2, 3]); // reshape chain back to the start
        let d = c.permute(&[1, 0]).permute(&[1, 0]); // transposes cancel
        vec![d.stop_gradient().exp()]
    });
    assert_eq!(optimize(&g).dump(), "graph(%0: f64[2,3]) {\n  %1: f64[2,3] = exp %0\n  return %1\n}\n");
    // Negations fold into additions and subtractions (x + (-y) is x - y by definition).
    let g = trace_graph(&[ty(&[2]), ty(&[2])], |xs| vec![(&xs[0] + -&xs[1]) - -&xs[0]]);
    assert_eq!(
        optimize(&g).dump(),
        "graph(%0: f64[2], %1: f64[2]) {\n  %2: f64[2] = sub %0 %1\n  %3: f64[2] = add %2 %0\n  return %3\n}\n"
    );
    // x + 0 is kept: -0 + 0 = +0, so removing it would not be exact.
    let g = trace_graph(&[ty(&[2])], |xs| vec![&xs[0] + 0.0]);
    assert!(optimize(&g).dump().contains("add"));
}

#[test]
fn constants_fold_and_sums_of_broadcasts_become_products() {
    let c = f64s(&[1.0, 2.0], &[2]);
    let g = trace_graph(&[ty(&[2])], |xs| {
        // Inside the trace, c.exp() runs eagerly already; a graph built from constants only
        // (as a transformation may emit) folds at compile time.
        let k = c.exp();
        vec![&xs[0] * &k]
    });
    assert_eq!(optimize(&g).num_ops(), 1);
    let g = trace_graph(&[ty(&[3])], |xs| vec![xs[0].broadcast_in_dim(&[4, 3], &[1]).sum(&[0], false)]);
    let o = optimize(&g);
    assert!(!o.dump().contains("reduce_sum"), "{o}");
    let x = f64s(&[1.0, 2.0, 3.0], &[3]);
    assert_eq!(eval_graph(&o, std::slice::from_ref(&x))[0].to_vec::<f64>(), vec![4.0, 8.0, 12.0]);
}

#[test]
fn constants_that_repeat_along_axes_become_broadcasts_of_a_slice() {
    // An eager broadcast inside a trace (as vmap of a concrete tangent makes) is a big constant.
    let row = f64s(&[1.0, -0.0, f64::NAN], &[3]);
    let big = row.broadcast_in_dim(&[4, 2, 3], &[2]) * 1.0;
    let g = trace_graph(&[ty(&[4, 2, 3])], |xs| vec![&xs[0] * &big]);
    let o = optimize(&g);
    let dump = o.dump();
    assert!(dump.contains("f64[3] = constant") && dump.contains("dims=[2]"), "{dump}");
    assert!(!dump.contains("f64[4,2,3]] = constant"), "{dump}");
    let x = Tensor::ones(&[4, 2, 3], DType::F64);
    let (a, b) = (eval_graph(&o, std::slice::from_ref(&x)), eval_graph(&g, std::slice::from_ref(&x)));
    let bits = |t: &Tensor| t.to_vec::<f64>().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a[0]), bits(&b[0]));
    // Repeats along the middle axis only: an identity matrix stacked 5 times keeps two axes.
    let eye = Tensor::from_vec((0..9).map(|i| (i % 4 == 0) as u8 as f64).collect::<Vec<_>>(), &[3, 3]);
    let stacked = eye.broadcast_in_dim(&[3, 5, 3], &[0, 2]) * 1.0;
    let g = trace_graph(&[ty(&[3, 5, 3])], |xs| vec![&xs[0] + &stacked]);
    let dump = optimize(&g).dump();
    assert!(dump.contains("f64[3,3] = constant") && dump.contains("dims=[0, 2]"), "{dump}");
}

#[test]
fn transposed_products_become_swapped_products() {
    // Weight gradients transpose a product; forward-over-reverse transposes a sum of two.
    let g = trace_graph(&[ty(&[3, 4]), ty(&[3, 5]), ty(&[3, 4]), ty(&[3, 5])], |xs| {
        let p = |a: &Tensor, b: &Tensor| dot_general(a, b, (&[0], &[0]), (&[], &[]));
        vec![p(&xs[0], &xs[1]).permute(&[1, 0]), (p(&xs[2], &xs[1]) + p(&xs[0], &xs[3])).permute(&[1, 0])]
    });
    let o = optimize(&g);
    let dump = o.dump();
    assert!(!dump.contains("transpose"), "{dump}");
    let args: Vec<Tensor> = [(3, 4), (3, 5), (3, 4), (3, 5)]
        .iter()
        .enumerate()
        .map(|(k, &(r, c))| f64s(&(0..r * c).map(|i| ((i * 7 + k) % 5) as f64 - 2.0).collect::<Vec<_>>(), &[r, c]))
        .collect();
    for (a, b) in eval_graph(&o, &args).iter().zip(eval_graph(&g, &args)) {
        assert_eq!(a.shape(), vec![5, 4]);
        assert_eq!(a.to_vec::<f64>(), b.to_vec::<f64>(), "small integers: exact in any order");
    }
}

#[test]
fn independent_products_run_at_the_same_time_with_the_same_results() {
    // Forward-over-reverse makes pairs like these: x·W and x·V, both large enough for threads
    // (at least two tasks of a split product each).
    let g = trace_graph(&[ty(&[192, 256]), ty(&[256, 192]), ty(&[256, 192])], |xs| {
        vec![(xs[0].matmul(&xs[1]) + 1.0).tanh(), xs[0].matmul(&xs[2]).exp()]
    });
    let plan = Plan::new(&optimize(&g));
    if cotangent::threads() > 1 {
        assert!(plan.dump().contains("steps 0..1 run at the same time"), "{}", plan.dump());
    }
    let args: Vec<Tensor> = [(192, 256), (256, 192), (256, 192)]
        .iter()
        .enumerate()
        .map(|(k, &(r, c))| {
            f64s(&(0..r * c).map(|i| ((i * 13 + k) % 17) as f64 / 17.0 - 0.5).collect::<Vec<_>>(), &[r, c])
        })
        .collect();
    let (got, want) = (plan.run(&args), eval_graph(&g, &args));
    for (a, b) in got.iter().zip(&want) {
        for (x, y) in a.to_vec::<f64>().iter().zip(b.to_vec::<f64>()) {
            assert!((x - y).abs() <= 1e-12 * y.abs().max(1.0), "{x} vs {y}");
        }
    }
}

#[test]
fn element_wise_chains_fuse_into_one_loop() {
    let g = trace_graph(&[ty(&[1000]), ty(&[1000])], |xs| {
        let (x, y) = (&xs[0], &xs[1]);
        vec![((x.sin() * y).exp() + 1.0).tanh().sum_all()]
    });
    let plan = Plan::new(&optimize(&g));
    assert_eq!(plan.num_steps(), 1, "{}", plan.dump());
    assert!(plan.dump().contains("then reduce_sum"), "{}", plan.dump());
    // A matmul between two chains: three steps.
    let g = trace_graph(&[ty(&[4, 4])], |xs| vec![xs[0].exp().matmul(&xs[0]).tanh()]);
    let plan = Plan::new(&optimize(&g));
    assert_eq!(plan.num_steps(), 3, "{}", plan.dump());
}

#[test]
fn jit_agrees_with_the_interpreter_bitwise_for_element_wise_code() {
    let x = Tensor::linspace(-3.0, 3.0, 5000, DType::F32);
    let f = |x: &Tensor| (x.sin() * (-(x * x)).exp() + x.tanh()) * 0.5;
    let eager = f(&x).to_vec::<f32>();
    let jf = jit(f);
    jf(&x); // first call: the traced graph
    let compiled = jf(&x).to_vec::<f32>();
    assert!(eager.iter().zip(&compiled).all(|(a, b)| a.to_bits() == b.to_bits()));
    // Reductions are reordered (blocked partial sums): equal to rounding.
    let s_eager = f(&x).cast(DType::F64).sum_all().item::<f64>();
    let js = jit(|x: &Tensor| f(x).cast(DType::F64).sum_all());
    js(&x);
    let s_jit = js(&x).item::<f64>();
    assert!((s_eager - s_jit).abs() <= 1e-12 * s_eager.abs().max(1.0));
}

#[test]
fn large_loops_run_the_same_on_any_number_of_threads() {
    let x = Tensor::linspace(-3.0, 3.0, 1 << 18, DType::F32);
    let f = jit(|x: &Tensor| (x.sin() * x.exp()).sum_all());
    f(&x); // the first call runs the traced graph; the plan runs from the second on
    let reference = f(&x).item::<f32>();
    let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap();
    for n in [1, 2, 3] {
        let v = pool(n).install(|| f(&x).item::<f32>());
        assert_eq!(v.to_bits(), reference.to_bits(), "{n} threads");
    }
}

#[test]
fn inspection_shows_the_optimised_graph_and_plan() {
    let x = f64s(&[1.0, 2.0], &[2]);
    let info = jit_inspect(|x: &Tensor| (x * 1.0).exp(), &x);
    assert!(info.traced.dump().contains("mul"));
    assert!(!info.optimized.dump().contains("mul"));
    assert!(info.plan.contains("exp r0"), "{}", info.plan);
}

/// A jitted function gives bitwise the same results on every call (the first runs the same
/// plan as later ones, interpreted), and whichever thread makes the first call.
#[test]
fn every_call_of_a_jitted_function_agrees_bitwise() {
    let x = Tensor::from_vec((0..64 * 128).map(|i| ((i * 37) % 101) as f32 * 0.013 - 0.6).collect(), &[64, 128]);
    let body = |x: &Tensor| ((x * 2.0 + 1.0).exp().sum(&[1], false), (x.tanh() * 3.0).max(&[0], false));
    for mode in [NativeMode::Off, NativeMode::Auto, NativeMode::Always] {
        with_native_mode(mode, || {
            let f = jit(body);
            let calls: Vec<(Tensor, Tensor)> = (0..3).map(|_| f(&x)).collect();
            for (k, (a, b)) in calls.iter().enumerate() {
                assert_eq!(a.to_vec::<f32>(), calls[0].0.to_vec::<f32>(), "{mode:?}: call {} of the sum", k + 1);
                assert_eq!(b.to_vec::<f32>(), calls[0].1.to_vec::<f32>(), "{mode:?}: call {} of the max", k + 1);
            }
            // A fresh function whose first call happens on a pool thread.
            let g = jit(body);
            let (a, _) = rayon::join(|| g(&x), || ());
            assert_eq!(a.0.to_vec::<f32>(), calls[0].0.to_vec::<f32>(), "{mode:?}: first call on another thread");
        });
    }
}

/// A reduction fused onto a loop keeps the type the graph gives it when reduced axes have
/// size 1 (the rows are then one element long, or as long as with the axis left out).
#[test]
fn fused_reductions_over_axes_of_size_one_drop_those_axes() {
    let cases: [(&[usize], &[isize]); 5] =
        [(&[1], &[0]), (&[1, 1], &[1]), (&[3, 1, 1], &[1, 2]), (&[3, 1, 2], &[1, 2]), (&[2, 1], &[1])];
    for (shape, axes) in cases {
        let n: usize = shape.iter().product();
        let x = Tensor::from_vec((0..n).map(|i| i as f64).collect(), shape);
        let f = jit(|x: &Tensor| (x + 1.0).sum(axes, false));
        let (first, second) = (f(&x), f(&x));
        let want = (&x + 1.0).sum(axes, false);
        for (call, y) in [(1, first), (2, second)] {
            assert_eq!(y.shape(), want.shape(), "call {call} of a sum of {shape:?} over {axes:?}");
            assert_eq!(y.to_vec::<f64>(), want.to_vec::<f64>());
        }
    }
}

// ---- gbsmall (issue 12): fused reductions over short rows, strided loads of merged axes ----

/// A sum over a short trailing axis fused onto a loop (`gmm`'s `Σᵢ (Q x - Q μ)²` over `d = 2`)
/// runs many rows per block; each row is still reduced alone, so results are those of the
/// eager reduction (to rounding) and the same on every call, in every native mode and on any
/// number of threads (the last case is long enough to split over the pool).
#[test]
fn fused_reductions_over_short_rows_agree_with_eager() {
    for (n, k, d) in [(3, 5, 1), (7, 3, 2), (300, 100, 2), (40, 9, 3), (33, 10, 7), (600, 100, 2)] {
        let x = Tensor::from_vec((0..n * d).map(|i| ((i * 37) % 101) as f64 * 0.013 - 0.6).collect(), &[n, d]);
        let c = Tensor::from_vec((0..k * d).map(|i| ((i * 11) % 23) as f64 * 0.07 - 0.5).collect(), &[k, d]);
        // [n, k, d] from a broadcast of the points and one of the [k, d] table, reduced over d.
        let body = |(x, c): &(Tensor, Tensor)| {
            let diff = x.expand_dims(1) - c.expand_dims(0);
            (diff.square().sum(&[2], false), (diff * 2.0).exp().max(&[2], false))
        };
        let (want_sum, want_max) = body(&(x.clone(), c.clone()));
        for mode in [NativeMode::Off, NativeMode::Always] {
            with_native_mode(mode, || {
                let f = jit(body);
                let args = (x.clone(), c.clone());
                let first = f(&args);
                let (sum, max) = f(&args);
                assert_eq!(sum.shape(), &[n, k][..]);
                let (sum, max) = (sum.to_vec::<f64>(), max.to_vec::<f64>());
                assert_eq!(sum, first.0.to_vec::<f64>(), "{mode:?} [{n}, {k}, {d}]: calls differ");
                for (i, (a, b)) in sum.iter().zip(want_sum.to_vec::<f64>()).enumerate() {
                    assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{mode:?} [{n}, {k}, {d}] sum {i}: {a} vs {b}");
                }
                // A maximum is exact whatever the order.
                assert_eq!(max, want_max.to_vec::<f64>(), "{mode:?} [{n}, {k}, {d}]: max");
                let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
                let (threaded, _) = pool.install(|| f(&args));
                assert_eq!(threaded.to_vec::<f64>(), sum, "{mode:?} [{n}, {k}, {d}]: 3 threads");
            });
        }
    }
}

/// Strided loads whose axes merge (a `[k, d]` table broadcast over leading axes, axes of one
/// element between them) or do not (a transposed table) read the same elements as eager code.
#[test]
fn strided_loads_over_merged_axes_read_the_right_elements() {
    let t = Tensor::from_vec((0..24).map(|i| i as f64 * 0.5 - 3.0).collect(), &[4, 6]);
    let y = Tensor::from_vec((0..5 * 4 * 6).map(|i| (i % 13) as f64).collect(), &[5, 1, 4, 1, 6]);
    type Case = (&'static str, fn(&Tensor, &Tensor) -> Tensor);
    let cases: [Case; 4] = [
        ("table broadcast over leading axes", |t, y| y + t.reshape(&[1, 1, 4, 1, 6])),
        ("transposed table", |t, y| y * t.reshape(&[6, 4]).t().expand_dims(1).expand_dims(0).expand_dims(0).exp()),
        ("a column broadcast along rows", |t, y| y - t.slice(&[0, 2], &[4, 3], &[1, 1]).reshape(&[1, 1, 4, 1, 1])),
        ("one element", |t, y| y * t.slice(&[1, 3], &[2, 4], &[1, 1]).reshape(&[1, 1, 1, 1, 1])),
    ];
    for (what, f) in cases {
        let want = f(&t, &y).to_vec::<f64>();
        with_native_mode(NativeMode::Off, || {
            let g = jit(move |(t, y): &(Tensor, Tensor)| f(t, y));
            let args = (t.clone(), y.clone());
            g(&args);
            assert_eq!(g(&args).to_vec::<f64>(), want, "{what}");
        });
    }
}

/// A gather from a broadcast scalar (the all-ones tangent that forward-over-reverse code
/// gathers) becomes a broadcast of the scalar: no gather in the plan, same values.
#[test]
fn gathers_from_a_broadcast_scalar_become_broadcasts() {
    let idx = Tensor::from_vec(vec![3i64, 0, 2, 2, 1, 3], &[6]);
    let x = Tensor::from_vec((0..8).map(|i| i as f64).collect(), &[4, 2]);
    let f = |x: &Tensor| -> Tensor { (x.ones_like() * 2.5).take(&idx, 0) + x.take(&idx, 0) };
    let info = jit_inspect(f, &x);
    assert_eq!(info.plan.matches("gather").count(), 1, "{}", info.plan);
    let g = jit(f);
    g(&x);
    assert_eq!(g(&x).to_vec::<f64>(), f(&x).to_vec::<f64>());
    // kmeans's direction: the Hessian's diagonal from the gathered ones tangent.
    let h = jit(|c: &Tensor| jvp(grad(|c: &Tensor| c.take(&idx, 0).square().sum_all()), c, &c.ones_like()).1);
    h(&x);
    let counts = [1.0, 1.0, 2.0, 2.0];
    let want: Vec<f64> = counts.iter().flat_map(|&n| [2.0 * n, 2.0 * n]).collect();
    assert_eq!(h(&x).to_vec::<f64>(), want);
}

/// Gathers in a plan write into recycled buffers (the storage of an earlier call's value):
/// every element is overwritten, with rows (`s > 1`) or single elements, batched or not,
/// clamped indices, for floats and integers, on every call.
#[test]
fn gathers_into_recycled_buffers_match_eager() {
    let x = Tensor::from_vec((0..60).map(|i| i as f64 * 0.25 - 3.0).collect(), &[3, 4, 5]);
    let xi = Tensor::from_vec((0..60).map(|i| i as i64 * 7 - 100).collect(), &[3, 4, 5]);
    let idx = Tensor::from_vec(vec![3i64, -1, 2, 9, 0, 1], &[6]);
    let bidx = Tensor::from_vec(vec![1i64, 0, 3, 3, 2, 1], &[3, 2]);
    let f = |(x, xi): &(Tensor, Tensor)| {
        (
            x.take(&idx, 1) * 2.0,             // rows of 5, indices clamped
            x.take(&idx, 2) + 1.0,             // single elements
            x.gather(&bidx, 1, 1),             // batched
            xi.take(&idx, 0).cast(DType::F64), // integers
        )
    };
    let args = (x.clone(), xi.clone());
    let want = f(&args);
    let g = jit(f);
    for call in 0..4 {
        let got = g(&args);
        assert_eq!(got.0.to_vec::<f64>(), want.0.to_vec::<f64>(), "call {call}: rows");
        assert_eq!(got.1.to_vec::<f64>(), want.1.to_vec::<f64>(), "call {call}: elements");
        assert_eq!(got.2.to_vec::<f64>(), want.2.to_vec::<f64>(), "call {call}: batched");
        assert_eq!(got.3.to_vec::<f64>(), want.3.to_vec::<f64>(), "call {call}: integers");
    }
}

/// The bits of each element of `t`, so that `-0.0` and NaN payloads count.
fn bits(t: &Tensor) -> Vec<u64> {
    t.to_vec::<f64>().iter().map(|v| v.to_bits()).collect()
}

/// Inputs with the values an exact rewrite must not change: signed zeros, infinities, NaN.
fn awkward(n: usize) -> Tensor {
    let special = [0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e308, -3.5];
    Tensor::from_vec((0..n).map(|i| if i % 5 == 3 { special[i % 7] } else { 0.5 + i as f64 * 0.01 }).collect(), &[n])
}

#[test]
fn a_one_step_loop_and_its_gradient_become_one_graph_with_paddings_for_the_seed() {
    // GradBench ode's shape at s = 1: a one-step fori_loop of a shifted product, and the
    // gradient of its last component (whose seed is a one-hot constant).
    let n = 64;
    let f = |x: &Tensor| {
        let (head, tail) = (x.slice_axis(0, 0, 1, 1), x.slice_axis(0, 1, n as isize, 1));
        let rhs = |y: &Tensor| concatenate(&[head.clone(), &tail * y.slice_axis(0, 0, n as isize - 1, 1)], 0);
        let step = |_: &Tensor, y: &Tensor| {
            let k1 = rhs(y);
            let k2 = rhs(&(y + &k1 * 0.5));
            y + (k1 + k2 * 2.0) * (1.0 / 3.0)
        };
        control::fori_loop(0, 1, step, &x.zeros_like()).index(-1)
    };
    let g = trace_graph(&[ty(&[n])], |xs| vec![grad(f)(&xs[0])]);
    let o = optimize(&g);
    let dump = o.dump();
    assert!(!dump.contains("scan"), "{dump}");
    assert!(dump.contains(&format!("pad[low=[{}], high=[0]]", n - 1)), "{dump}");
    assert!(!dump.contains(&format!("f64[{n}] = constant")), "{dump}");
    for x in [awkward(n), Tensor::from_vec((0..n).map(|i| 1.0 + i as f64 * 0.1).collect(), &[n])] {
        let (want, got) = (eval_graph(&g, std::slice::from_ref(&x)), eval_graph(&o, std::slice::from_ref(&x)));
        assert_eq!(bits(&want[0]), bits(&got[0]));
        assert_eq!(bits(&Plan::new(&o).run(std::slice::from_ref(&x))[0]), bits(&want[0]));
    }
}

#[test]
fn small_slices_are_taken_before_element_wise_work_and_slices_of_views_compose() {
    let g = trace_graph(&[ty(&[40]), ty(&[40])], |xs| {
        let y = (xs[0].exp() * &xs[1]).sin();
        let joined = concatenate(&[y.clone(), xs[1].clone()], 0);
        vec![
            y.slice_axis(0, 3, 5, 1),                                // two elements of a chain
            joined.slice_axis(0, 45, 60, 1).slice_axis(0, 2, 14, 3), // a slice of a slice of one operand
            y.slice_axis(0, 1, 40, 1) + 1.0,                         // and the whole chain read too
        ]
    });
    let o = optimize(&g);
    let dump = o.dump();
    // The two elements are computed from two-element slices of the inputs.
    assert!(dump.contains("f64[2] = slice[start=[3], stop=[5]] %0"), "{dump}");
    assert!(dump.contains("f64[4] = slice[start=[7], stop=[17], stride=[3]] %1"), "{dump}");
    assert!(!dump.contains("concatenate"), "{dump}");
    let (x, w) = (awkward(40), Tensor::from_vec((0..40).map(|i| 0.1 * i as f64 - 2.0).collect(), &[40]));
    let args = [x, w];
    let (want, got) = (eval_graph(&g, &args), eval_graph(&o, &args));
    for (a, b) in want.iter().zip(&got) {
        assert_eq!(bits(a), bits(b));
    }
}
