//! Loops (issue 11): known values through jvp, grad, vmap and jit, and errors.

use cotangent::control::{fori_loop, scan, while_loop, while_loop_bounded};
use cotangent::*;

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

/// Newton's iteration for √a until the update is tiny (a data-dependent count).
fn newton_sqrt(a: &Tensor) -> Tensor {
    let a = a.clone();
    while_loop(
        |(x, prev): &(Tensor, Tensor)| (x - prev).abs().gt(x * 1e-10),
        move |(x, _): &(Tensor, Tensor)| ((x + &a / x) * 0.5, x.clone()),
        &(Tensor::scalar(1.0), Tensor::scalar(0.0)),
    )
    .0
}

#[test]
fn newton_sqrt_in_a_while_loop() {
    for a in [2.0f64, 9.0, 0.25] {
        let x = Tensor::scalar(a);
        assert!(close(newton_sqrt(&x).item::<f64>(), a.sqrt(), 1e-14));
        assert!(close(jit(newton_sqrt)(&x).item::<f64>(), a.sqrt(), 1e-14));
        // jvp: derivative 1/(2√a), eager and jitted.
        let (_, d) = jvp(newton_sqrt, &x, &Tensor::scalar(1.0));
        assert!(close(d.item::<f64>(), 0.5 / a.sqrt(), 1e-12), "a={a}: {}", d.item::<f64>());
        let dj = jit(|x: &Tensor| jvp(newton_sqrt, x, &Tensor::scalar(1.0)).1);
        assert!(close(dj(&x).item::<f64>(), 0.5 / a.sqrt(), 1e-12));
    }
    // vmap with a batched predicate: lanes finish after different numbers of iterations.
    let xs = Tensor::from_vec(vec![2.0, 1e6, 0.01], &[3]);
    let ys = vmap(newton_sqrt)(&xs).to_vec::<f64>();
    for (y, a) in ys.iter().zip([2.0f64, 1e6, 0.01]) {
        assert!(close(*y, a.sqrt(), 1e-14), "{y} vs √{a}");
    }
    let ds = vmap(|x: &Tensor| jvp(newton_sqrt, x, &Tensor::scalar(1.0)).1)(&xs).to_vec::<f64>();
    for (d, a) in ds.iter().zip([2.0f64, 1e6, 0.01]) {
        assert!(close(*d, 0.5 / a.sqrt(), 1e-10), "{d} vs 1/(2√{a})");
    }
}

#[test]
fn while_loop_counts_data_dependent_iterations_under_vmap() {
    // Doubling until above 100: each lane stops at its own count, the others stay frozen.
    let f = |x: &Tensor| {
        while_loop(
            |(x, _): &(Tensor, Tensor)| x.lt(100.0),
            |(x, n): &(Tensor, Tensor)| (x * 2.0, n + 1.0),
            &(x.clone(), Tensor::scalar(0i64)),
        )
    };
    let xs = Tensor::from_vec(vec![1.0, 30.0, 200.0], &[3]);
    let (v, n) = vmap(f)(&xs);
    assert_eq!(v.to_vec::<f64>(), vec![128.0, 120.0, 200.0]);
    assert_eq!(n.to_vec::<i64>(), vec![7, 2, 0]);
    let (vj, nj) = jit(vmap(f))(&xs);
    assert_eq!(vj.to_vec::<f64>(), vec![128.0, 120.0, 200.0]);
    assert_eq!(nj.to_vec::<i64>(), vec![7, 2, 0]);
}

#[test]
fn fori_loop_power_and_its_derivative() {
    for n in [0i64, 1, 3, 7] {
        let pow = move |x: &Tensor| fori_loop(0, n, |_, acc: &Tensor| acc * x, &Tensor::scalar(1.0));
        let x = Tensor::scalar(1.3);
        let expect = 1.3f64.powi(n as i32);
        assert!(close(pow(&x).item::<f64>(), expect, 1e-14));
        assert!(close(jit(pow)(&x).item::<f64>(), expect, 1e-14));
        let d = n as f64 * 1.3f64.powi(n as i32 - 1);
        assert!(close(grad(pow)(&x).item::<f64>(), d, 1e-13), "n={n}");
        assert!(close(jvp(pow, &x, &Tensor::scalar(1.0)).1.item::<f64>(), d, 1e-13));
        // Second derivative n(n-1)xⁿ⁻².
        let d2 = (n * (n - 1)) as f64 * 1.3f64.powi(n as i32 - 2);
        assert!(close(grad(grad(pow))(&x).item::<f64>(), d2, 1e-12), "n={n}");
    }
    // The index is the loop counter: Σ i for i in 3..7.
    let s = fori_loop(3, 7, |i, acc: &Tensor| acc + i.cast(DType::F64), &Tensor::scalar(0.0));
    assert_eq!(s.item::<f64>(), 18.0);
}

#[test]
fn scan_cumulative_product_and_gradient() {
    let x = Tensor::from_vec(vec![1.5, -0.5, 2.0, 0.8, 1.2], &[5]);
    let v: Vec<f64> = x.to_vec();
    for reverse in [false, true] {
        let cumprod =
            move |x: &Tensor| scan(|c: &Tensor, x: &Tensor| (c * x, c * x), &Tensor::scalar(1.0), x, None, reverse);
        let (last, ys) = cumprod(&x);
        let mut expect = vec![0.0; 5];
        let mut acc = 1.0;
        for k in 0..5 {
            let i = if reverse { 4 - k } else { k };
            acc *= v[i];
            expect[i] = acc;
        }
        assert!(close(last.item::<f64>(), acc, 1e-15));
        for (a, b) in ys.to_vec::<f64>().iter().zip(&expect) {
            assert!(close(*a, *b, 1e-15));
        }
        // grad of Σ ys against the closed form: ∂/∂x_j Σ_i P_i = Σ_{i covers j} P_i / x_j.
        let total = move |x: &Tensor| cumprod(x).1.sum_all();
        let g = grad(total)(&x).to_vec::<f64>();
        let gj = jit(grad(total))(&x).to_vec::<f64>();
        for j in 0..5 {
            let covers = |i: usize| if reverse { i <= j } else { i >= j };
            let e: f64 = (0..5).filter(|&i| covers(i)).map(|i| expect[i] / v[j]).sum();
            assert!(close(g[j], e, 1e-13), "reverse={reverse} j={j}: {} vs {e}", g[j]);
            assert!(close(gj[j], e, 1e-13));
        }
    }
}

#[test]
fn scan_with_consts_trees_and_vmap() {
    // A linear recurrence h ← a·h + x with a closed-over weight, ys = h².
    let run = |w: &Tensor, xs: &Tensor| {
        let w = w.clone();
        scan(
            move |(h, n): &(Tensor, Tensor), x: &Tensor| {
                let h = &w * h + x;
                ((h.clone(), n + 1.0), h.square())
            },
            &(Tensor::zeros(&[2], DType::F64), Tensor::scalar(0i64)),
            xs,
            None,
            false,
        )
    };
    let w = Tensor::from_vec(vec![0.5, -0.3], &[2]);
    let xs = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2]);
    let ((h, n), ys) = run(&w, &xs);
    assert_eq!(n.item::<i64>(), 3);
    // By hand: h1 = x0, h2 = w h1 + x1, h3 = w h2 + x2.
    let h1 = [1.0, 2.0];
    let h2 = [0.5 * 1.0 + 3.0, -0.3 * 2.0 + 4.0];
    let h3 = [0.5 * h2[0] + 5.0, -0.3 * h2[1] + 6.0];
    assert_eq!(h.to_vec::<f64>(), h3.to_vec());
    assert_eq!(ys.to_vec::<f64>(), [h1, h2, h3].iter().flat_map(|h| h.iter().map(|v| v * v)).collect::<Vec<_>>());
    // vmap over a batch of weights against a loop.
    let ws = Tensor::from_vec(vec![0.5, -0.3, 0.1, 0.9, -1.0, 0.2], &[3, 2]);
    let (hb, yb) = vmap(|w: &Tensor| {
        let ((h, _), ys) = run(w, &xs);
        (h, ys)
    })(&ws);
    for k in 0..3 {
        let wk = ws.slice(&[k, 0], &[k + 1, 2], &[1, 1]).reshape(&[2]);
        let ((h, _), ys) = run(&wk, &xs);
        assert_eq!(hb.to_vec::<f64>()[2 * k..2 * k + 2], h.to_vec::<f64>()[..]);
        assert_eq!(yb.to_vec::<f64>()[6 * k..6 * k + 6], ys.to_vec::<f64>()[..]);
    }
}

#[test]
fn bounded_while_matches_the_unrolled_loop() {
    let body = |x: &Tensor| x * 0.99 + x.sin() * 0.02;
    let cond_fn = |x: &Tensor| x.sum_all().lt(50.0);
    let x0 = Tensor::from_vec(vec![0.3, 0.7, 1.1], &[3]);
    for max_steps in [1usize, 7, 100, 1000] {
        let bounded = move |x: &Tensor| while_loop_bounded(cond_fn, body, x, max_steps).square().sum_all();
        let unrolled = move |x: &Tensor| {
            let mut x = x.clone();
            for _ in 0..max_steps {
                x = body(&x);
            }
            x.square().sum_all()
        };
        let (a, b) = (bounded(&x0).item::<f64>(), unrolled(&x0).item::<f64>());
        assert!(close(a, b, 1e-14), "max_steps={max_steps}: {a} vs {b}");
        let (ga, gb) = (grad(bounded)(&x0).to_vec::<f64>(), grad(unrolled)(&x0).to_vec::<f64>());
        for (p, q) in ga.iter().zip(&gb) {
            assert!(close(*p, *q, 1e-12), "max_steps={max_steps}: {p} vs {q}");
        }
    }
    // A loop that ends before the bound: the gradient counts the iterations taken.
    let grow = |x: &Tensor| while_loop_bounded(|x: &Tensor| x.lt(10.0), |x: &Tensor| x * 1.5, x, 1000);
    let x = Tensor::scalar(1.0);
    // 1.5^6 = 11.39 > 10: six iterations.
    assert!(close(grow(&x).item::<f64>(), 1.5f64.powi(6), 1e-15));
    assert!(close(grad(grow)(&x).item::<f64>(), 1.5f64.powi(6), 1e-14));
    assert!(close(jit(grad(grow))(&x).item::<f64>(), 1.5f64.powi(6), 1e-14));
}

fn panic_message(f: impl FnOnce()) -> String {
    let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).expect_err("should panic");
    e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

#[test]
fn unbounded_while_under_reverse_mode_names_the_fix() {
    let msg = panic_message(|| {
        let _ = grad(|x: &Tensor| while_loop(|x: &Tensor| x.lt(10.0), |x: &Tensor| x * 2.0, x))(&Tensor::scalar(1.0));
    });
    assert!(msg.contains("while_loop_bounded"), "{msg}");
    assert!(msg.contains("reverse"), "{msg}");
}

#[test]
fn a_body_changing_the_carry_type_is_an_error() {
    let msg = panic_message(|| {
        let _ = while_loop(
            |x: &Tensor| x.sum_all().lt(3.0),
            |x: &Tensor| concatenate(&[x.clone(), x.clone()], 0),
            &Tensor::zeros(&[2], DType::F64),
        );
    });
    assert!(msg.contains("while_loop") && msg.contains("body_fn"), "{msg}");
    assert!(msg.contains("f64[4]") && msg.contains("f64[2]"), "{msg}");
    assert!(msg.contains("tests/loops.rs"), "names the user's line: {msg}");
    let msg = panic_message(|| {
        let _ = scan(
            |c: &Tensor, x: &Tensor| (c.cast(DType::F32), x.clone()),
            &Tensor::scalar(0.0),
            &Tensor::zeros(&[3], DType::F64),
            None,
            false,
        );
    });
    assert!(msg.contains("scan") && msg.contains("f32") && msg.contains("f64"), "{msg}");
    let msg = panic_message(|| {
        let _ = fori_loop(0, 3, |_, c: &Tensor| c.sum(&[0], true), &Tensor::zeros(&[2], DType::F64));
    });
    assert!(msg.contains("fori_loop") && msg.contains("f64[1]") && msg.contains("f64[2]"), "{msg}");
    let msg = panic_message(|| {
        let _ = while_loop(|x: &Tensor| x.clone(), |x: &Tensor| x * 2.0, &Tensor::scalar(1.0));
    });
    assert!(msg.contains("cond_fn") && msg.contains("bool"), "{msg}");
}

// --- loops branch (issue 12): storage reuse across iterations must not change values -------------
// Compiled loops hand replaced carries back to the body's plan, whose next results are written
// into them, and a scan copies each `xs` row into the previous row's storage when no one else
// holds it. Bodies that pass rows and carries through (so storage is shared) must still give the
// eager loop's values, bit for bit.

#[test]
fn scan_passing_rows_through_matches_eager_bitwise() {
    let n = 40;
    let xs = Tensor::from_vec((0..2 * n).map(|i| (i as f64 * 0.37).sin()).collect::<Vec<f64>>(), &[n, 2]);
    // Carry 0 becomes the row itself, carry 1 accumulates; ys: the row and the old carry.
    let f = |(c0, c1, xs): &(Tensor, Tensor, Tensor)| {
        scan(
            |(a, b): &(Tensor, Tensor), x: &Tensor| ((x.clone(), b * 0.5 + x + a), (x.clone(), a.clone())),
            &(c0.clone(), c1.clone()),
            xs,
            None,
            false,
        )
    };
    let args = (Tensor::from_vec(vec![1.0, 2.0], &[2]), Tensor::from_vec(vec![0.0, 0.0], &[2]), xs.clone());
    let ((a, b), (rows, olds)) = f(&args);
    let jf = jit(f);
    for _ in 0..3 {
        let ((ja, jb), (jrows, jolds)) = jf(&args);
        assert_eq!(ja.to_vec::<f64>(), a.to_vec::<f64>());
        assert_eq!(jb.to_vec::<f64>(), b.to_vec::<f64>());
        assert_eq!(jrows.to_vec::<f64>(), xs.to_vec::<f64>(), "ys[i] must be row i");
        assert_eq!(jolds.to_vec::<f64>(), olds.to_vec::<f64>());
    }
    assert_eq!(rows.to_vec::<f64>(), xs.to_vec::<f64>());
    assert_eq!(a.to_vec::<f64>(), xs.to_vec::<f64>()[2 * n - 2..].to_vec(), "the last row");
}

#[test]
fn while_with_unchanged_and_swapped_carries_matches_eager_bitwise() {
    // (k, u, v, w): u and v swap every iteration, w is passed through unchanged, so carries share
    // storage with each other and with the loop's inputs.
    let f = |(u, v, w): &(Tensor, Tensor, Tensor)| {
        while_loop(
            |(k, _, _, _): &(Tensor, Tensor, Tensor, Tensor)| k.lt(25.0),
            |(k, u, v, w): &(Tensor, Tensor, Tensor, Tensor)| (k + 1.0, v * 1.01 + w, u.clone(), w.clone()),
            &(Tensor::scalar(0.0), u.clone(), v.clone(), w.clone()),
        )
    };
    let args = (
        Tensor::from_vec(vec![1.0, -2.0, 3.0], &[3]),
        Tensor::from_vec(vec![0.5, 0.25, -1.0], &[3]),
        Tensor::from_vec(vec![0.1, 0.2, 0.3], &[3]),
    );
    let (k, u, v, w) = f(&args);
    let jf = jit(f);
    for _ in 0..3 {
        let (jk, ju, jv, jw) = jf(&args);
        assert_eq!(jk.item::<f64>(), 25.0);
        assert_eq!(k.item::<f64>(), 25.0);
        assert_eq!(ju.to_vec::<f64>(), u.to_vec::<f64>());
        assert_eq!(jv.to_vec::<f64>(), v.to_vec::<f64>());
        assert_eq!(jw.to_vec::<f64>(), w.to_vec::<f64>());
        // The inputs are untouched by the loop's reuse of storage.
        assert_eq!(args.2.to_vec::<f64>(), vec![0.1, 0.2, 0.3]);
        assert_eq!(args.0.to_vec::<f64>(), vec![1.0, -2.0, 3.0]);
    }
    assert_ne!(u.to_vec::<f64>(), args.0.to_vec::<f64>());
}
