//! Batched small-vector programs (`vmap` over rows of 3-vectors built with `stack`): plans split
//! the short trailing axis into columns, so the per-row computation fuses into one loop instead
//! of a loop per shape with concatenates between them, and the results stay bitwise those of
//! eager evaluation.

use cotangent::{jacfwd, jit, jit_inspect, stack, vmap, where_, Tensor};

/// `a × b` for 3-vectors, built with `stack` as user code writes it.
fn cross(a: &Tensor, b: &Tensor) -> Tensor {
    let (a0, a1, a2) = (a.index(0), a.index(1), a.index(2));
    let (b0, b1, b2) = (b.index(0), b.index(1), b.index(2));
    stack(&[&a1 * &b2 - &a2 * &b1, &a2 * &b0 - &a0 * &b2, &a0 * &b1 - &a1 * &b0], 0)
}

/// Rotates the point `q[3..6]` by the angle-axis vector `q[0..3]` and projects it: `[2]`.
fn per_row(q: &Tensor) -> Tensor {
    let rot = q.slice(&[0], &[3], &[1]);
    let x = q.slice(&[3], &[6], &[1]);
    let sq = rot.square().sum_all();
    let zero = sq.eq(0.0);
    let theta = where_(&zero, &sq.ones_like(), &sq).sqrt();
    let axis = &rot / &theta;
    let along = (&axis * &x).sum_all() * (1.0 - theta.cos());
    let rotated = &x * theta.cos() + cross(&axis, &x) * theta.sin() + axis * along;
    let xcam = where_(&zero.broadcast_to(&[3]), &(&x + cross(&rot, &x)), &rotated);
    let proj = xcam.slice(&[0], &[2], &[1]) / xcam.index(2);
    &proj * (1.0 + proj.square().sum_all() * q.index(6))
}

/// `n` rows of 7 parameters, deterministic, with an exact zero rotation in row 0.
fn rows(n: usize) -> Tensor {
    let v: Vec<f64> = (0..n * 7)
        .map(|i| {
            if i < 3 {
                0.0
            } else {
                ((i * 7919 % 1013) as f64 / 1013.0 - 0.5) * if i % 7 == 5 { 0.1 } else { 2.0 }
                    + if i % 7 == 5 { 4.0 } else { 0.0 }
            }
        })
        .collect();
    Tensor::from_vec(v, &[n, 7])
}

fn bits(t: &Tensor) -> Vec<u64> {
    t.to_vec::<f64>().iter().map(|x| x.to_bits()).collect()
}

fn fused_loops(plan: &str) -> usize {
    plan.lines().filter(|l| l.contains("fused[")).count()
}

#[test]
fn batched_small_vectors_fuse_into_one_loop_bitwise_equal_to_eager() {
    let f = |q: &Tensor| vmap(per_row)(q);
    let q = rows(3000);
    let eager = f(&q);
    assert_eq!(eager.shape(), vec![3000, 2]);
    let jitted = jit(f);
    for _ in 0..2 {
        assert_eq!(bits(&jitted(&q)), bits(&eager), "jit differs from eager");
    }
    let plan = jit_inspect(f, &q).plan;
    assert_eq!(plan.matches("fused[3000]").count(), 1, "one loop for the whole per-row computation:\n{plan}");
    // The cross products' stacks are gone, and the result's columns are joined by a loop
    // that reads them padded, not by a concatenate kernel.
    assert_eq!(plan.matches("concatenate").count(), 0, "{plan}");
    assert_eq!(fused_loops(&plan), 2, "{plan}");
}

/// The step count in a plan listing ("plan (N steps):").
fn steps(plan: &str) -> usize {
    plan.split_once('(').and_then(|(_, r)| r.split_once(' ')).map(|(n, _)| n.parse().unwrap()).unwrap()
}

#[test]
fn concatenates_become_padded_reads_bitwise_equal() {
    // Signed zeros, NaNs and infinities in every piece; the pieces along a middle axis.
    let special = [0.0, -0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1.5, -2.25];
    let piece = |n: usize, k: usize| {
        let v: Vec<f64> = (0..n * k * 3).map(|i| special[(i * 5 + k) % special.len()]).collect();
        Tensor::from_vec(v, &[n, k, 3])
    };
    let (a, b, c) = (piece(400, 1), piece(400, 2), piece(400, 4));
    let f = |(a, b, c): &(Tensor, Tensor, Tensor)| cotangent::concatenate(&[a.clone(), b.sin(), c * 2.0], 1);
    let args = (a, b, c);
    let eager = f(&args);
    assert_eq!(bits(&jit(f)(&args)), bits(&eager));
    let signs: Vec<bool> = eager.to_vec::<f64>().iter().filter(|x| **x == 0.0).map(|x| x.is_sign_negative()).collect();
    assert!(signs.contains(&true) && signs.contains(&false), "both zeros occur");
    let plan = jit_inspect(f, &args).plan;
    assert_eq!(plan.matches("concatenate").count(), 0, "{plan}");
    // Integers too.
    let ints = |n: usize, o: i64| Tensor::from_vec((0..n as i64).map(|i| i * 3 - o).collect::<Vec<i64>>(), &[n]);
    let (x, y) = (ints(300, 7), ints(200, 1000));
    let g = |(x, y): &(Tensor, Tensor)| cotangent::concatenate(&[x.clone(), y.clone()], 0);
    let want: Vec<i64> = x.to_vec::<i64>().into_iter().chain(y.to_vec::<i64>()).collect();
    assert_eq!(jit(g)(&(x, y)).to_vec::<i64>(), want);
}

#[test]
fn few_rows_keep_their_shapes() {
    let f = |q: &Tensor| vmap(per_row)(q);
    let q = rows(50);
    assert_eq!(bits(&jit(f)(&q)), bits(&f(&q)));
    let plan = jit_inspect(f, &q).plan;
    assert!(fused_loops(&plan) > 1, "below the row threshold nothing is split:\n{plan}");
}

#[test]
fn batched_jacobians_split_too_and_agree_bitwise() {
    let f = |q: &Tensor| vmap(jacfwd(per_row))(q);
    let q = rows(1500);
    let eager = f(&q);
    assert_eq!(eager.shape(), vec![1500, 2, 7]);
    assert_eq!(bits(&jit(f)(&q)), bits(&eager), "jit differs from eager");
    // Row 0 (zero rotation) takes the other branch: its derivative is finite.
    assert!(eager.to_vec::<f64>().iter().all(|x| x.is_finite()));
    let plan = jit_inspect(f, &q).plan;
    let small = jit_inspect(f, &rows(50)).plan;
    assert!(steps(&plan) < steps(&small), "split:\n{plan}\nnot split:\n{small}");
}

#[test]
fn gradients_through_split_plans_match_finite_differences() {
    let loss = |q: &Tensor| vmap(per_row)(q).square().sum_all();
    let q = rows(1200);
    let g = cotangent::grad(loss)(&q);
    let (qv, gv) = (q.to_vec::<f64>(), g.to_vec::<f64>());
    for &k in &[7usize, 7 * 3 + 1, 7 * 600 + 4, 7 * 1199 + 6] {
        let h = 1e-6;
        let mut plus = qv.clone();
        plus[k] += h;
        let mut minus = qv.clone();
        minus[k] -= h;
        let fd = (loss(&Tensor::from_vec(plus, &[1200, 7])).item::<f64>()
            - loss(&Tensor::from_vec(minus, &[1200, 7])).item::<f64>())
            / (2.0 * h);
        assert!((fd - gv[k]).abs() <= 1e-5 * (1.0 + fd.abs()), "entry {k}: fd {fd}, grad {}", gv[k]);
    }
}
