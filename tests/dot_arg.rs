//! Plans that fuse a shallow product with the arg-reduction that is its only reader (the
//! k-means assignment step, `argmin_j pᵢ·cⱼ`): the fused step appears in the plan, and its
//! indices equal eager code's (the unfused product and `argmin`) — on random data, exact
//! ties (repeated rows), NaN and infinities, every layout of the right operand, and sizes
//! that leave partial register tiles.

use cotangent::compile::{optimize, Plan};
use cotangent::*;

fn ty(shape: &[usize]) -> TensorType {
    TensorType::new(DType::F64, shape.to_vec())
}

/// Deterministic values in [-0.5, 0.5).
fn values(len: usize, seed: u64) -> Vec<f64> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        })
        .collect()
}

/// `arg(a · b)` with `b` `[k, d]` (`transposed`: used as `bᵀ`) or `[d, k]`.
fn arg_of_product(a: &Tensor, b: &Tensor, transposed: bool, max: bool) -> Tensor {
    let p = if transposed { a.matmul(&b.t()) } else { a.matmul(b) };
    if max {
        p.argmax(1, false)
    } else {
        p.argmin(1, false)
    }
}

/// The plan of `arg_of_product` for these shapes, and its indices against eager code's.
fn check(a: &[f64], b: &[f64], (n, d, k): (usize, usize, usize), transposed: bool, max: bool) -> String {
    let bshape = if transposed { [k, d] } else { [d, k] };
    let g = trace_graph(&[ty(&[n, d]), ty(&bshape)], |x| vec![arg_of_product(&x[0], &x[1], transposed, max)]);
    let plan = Plan::new(&optimize(&g));
    let (at, bt) = (Tensor::from_vec(a.to_vec(), &[n, d]), Tensor::from_vec(b.to_vec(), &bshape));
    let eager = arg_of_product(&at, &bt, transposed, max).to_vec::<i64>();
    let planned = plan.run(&[at.clone(), bt.clone()])[0].to_vec::<i64>();
    assert_eq!(planned, eager, "n={n} d={d} k={k} transposed={transposed} max={max}");
    let jitted = jit(move |(a, b): &(Tensor, Tensor)| arg_of_product(a, b, transposed, max))(&(at, bt));
    assert_eq!(jitted.to_vec::<i64>(), eager);
    plan.dump()
}

#[test]
fn fused_indices_equal_eager_on_random_data_and_ragged_sizes() {
    for &(n, d, k) in &[(1, 1, 1), (3, 9, 5), (37, 9, 100), (64, 17, 1000), (5, 33, 17), (260, 4, 23)] {
        let a = values(n * d, n as u64);
        let b = values(k * d, 1000 + k as u64);
        for transposed in [true, false] {
            for max in [false, true] {
                let dump = check(&a, &b, (n, d, k), transposed, max);
                let op = if max { "argmax" } else { "argmin" };
                assert!(dump.contains(&format!("{op} over {k} of")), "not fused:\n{dump}");
                assert!(!dump.contains("dot_general"), "the product is still computed:\n{dump}");
            }
        }
    }
}

#[test]
fn ties_go_to_the_first_index_and_the_first_nan_wins() {
    let (n, d, k) = (40, 3, 20);
    let a = values(n * d, 7);
    // Rows 3, 11 and 19 of b equal row 2: every point ties between them.
    let mut b = values(k * d, 8);
    for j in [3, 11, 19] {
        for t in 0..d {
            b[j * d + t] = b[2 * d + t];
        }
    }
    check(&a, &b, (n, d, k), true, false);
    check(&a, &b, (n, d, k), true, true);
    // Exact ties everywhere: all rows of b equal.
    let same: Vec<f64> = (0..k * d).map(|q| [0.25, -1.0, 2.0][q % d]).collect();
    check(&a, &same, (n, d, k), true, false);
    // A NaN in row 13 of b: every product with it is NaN, so index 13 for every point; a NaN
    // in a point makes its whole row NaN (index 0).
    let mut with_nan = b.clone();
    with_nan[13 * d + 1] = f64::NAN;
    let mut a_nan = a.clone();
    a_nan[5 * d] = f64::NAN;
    check(&a, &with_nan, (n, d, k), true, false);
    check(&a_nan, &b, (n, d, k), true, true);
    // Infinities: ±inf products, and inf - inf = NaN inside a sum.
    let mut inf = b.clone();
    inf[4 * d] = f64::INFINITY;
    inf[9 * d] = f64::NEG_INFINITY;
    inf[9 * d + 1] = f64::INFINITY;
    check(&a, &inf, (n, d, k), true, false);
    check(&a, &inf, (n, d, k), true, true);
}

#[test]
fn products_read_elsewhere_deeper_or_not_f64_stay_unfused() {
    // The product is also an output: it must be computed, so nothing is fused.
    let g = trace_graph(&[ty(&[8, 3]), ty(&[5, 3])], |x| {
        let p = x[0].matmul(&x[1].t());
        vec![p.argmin(1, false), p]
    });
    assert!(!Plan::new(&optimize(&g)).dump().contains("argmin over"));
    // Too deep.
    let g = trace_graph(&[ty(&[8, 100]), ty(&[5, 100])], |x| vec![x[0].matmul(&x[1].t()).argmin(1, false)]);
    assert!(!Plan::new(&optimize(&g)).dump().contains("argmin over"));
    // f32.
    let f32ty = |s: &[usize]| TensorType::new(DType::F32, s.to_vec());
    let g = trace_graph(&[f32ty(&[8, 3]), f32ty(&[5, 3])], |x| vec![x[0].matmul(&x[1].t()).argmin(1, false)]);
    assert!(!Plan::new(&optimize(&g)).dump().contains("argmin over"));
    // Over the other axis.
    let g = trace_graph(&[ty(&[8, 3]), ty(&[5, 3])], |x| vec![x[0].matmul(&x[1].t()).argmin(0, false)]);
    assert!(!Plan::new(&optimize(&g)).dump().contains("argmin over"));
}

/// `arg(a · bᵀ + bias)`, the bias `[k]` or `[1, k]` broadcast over the rows.
fn arg_with_bias(a: &Tensor, b: &Tensor, bias: &Tensor, max: bool) -> Tensor {
    let p = a.matmul(&b.t()) + bias;
    if max {
        p.argmax(1, false)
    } else {
        p.argmin(1, false)
    }
}

#[test]
fn a_row_added_to_the_product_is_fused_too() {
    for &(n, d, k) in &[(2, 1, 3), (37, 8, 10), (64, 16, 100), (9, 3, 1000)] {
        let a = values(n * d, 3 + n as u64);
        let b = values(k * d, 5 + k as u64);
        let mut bias = values(k, 11);
        // Ties made by the bias, a NaN in it (every row's index), and an infinity.
        for (case, row_shape) in [(0, vec![k]), (1, vec![1, k]), (2, vec![k]), (3, vec![k])] {
            if case == 2 && k > 3 {
                bias[k - 1] = f64::NAN;
            }
            if case == 3 && k > 3 {
                bias[k - 1] = 0.0;
                bias[1] = f64::NEG_INFINITY;
            }
            let args = [
                Tensor::from_vec(a.clone(), &[n, d]),
                Tensor::from_vec(b.clone(), &[k, d]),
                Tensor::from_vec(bias.clone(), &row_shape),
            ];
            for max in [false, true] {
                let g = trace_graph(&[ty(&[n, d]), ty(&[k, d]), ty(&row_shape)], |x| {
                    vec![arg_with_bias(&x[0], &x[1], &x[2], max)]
                });
                let plan = Plan::new(&optimize(&g));
                let dump = plan.dump();
                let op = if max { "argmax" } else { "argmin" };
                assert!(dump.contains(&format!("{op} over {k} of")) && dump.contains(" + %"), "not fused:\n{dump}");
                let eager = arg_with_bias(&args[0], &args[1], &args[2], max).to_vec::<i64>();
                assert_eq!(plan.run(&args)[0].to_vec::<i64>(), eager, "n={n} d={d} k={k} case={case} max={max}");
            }
        }
    }
    // The sum also read elsewhere: not fused.
    let g = trace_graph(&[ty(&[8, 3]), ty(&[5, 3]), ty(&[5])], |x| {
        let p = x[0].matmul(&x[1].t()) + &x[2];
        vec![p.argmin(1, false), p.sum_all()]
    });
    assert!(!Plan::new(&optimize(&g)).dump().contains("argmin over"));
}
