//! `vmap` inside `jit` batches the constants of the function it maps (e.g. `jacfwd`'s basis)
//! in the trace, on the small constant, instead of broadcasting them eagerly into
//! `[batch, ..]` arrays baked into the graph (which cost memory and time per element).

use cotangent::ops::Prim;
use cotangent::{jacfwd, jit, jit_inspect, vmap, DType, Tensor};

/// The largest constant in a graph, in elements.
fn largest_constant(g: &cotangent::ir::Graph) -> usize {
    g.nodes
        .iter()
        .filter_map(|n| if let Prim::Constant(a) = &n.prim { Some(a.numel()) } else { None })
        .max()
        .unwrap_or(0)
}

fn per_row(x: &Tensor) -> Tensor {
    // Mixes the row with a constant vector: the constant is unbatched beside a batched value.
    let c = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]);
    (x * &c).sin() * x.sum_all()
}

#[test]
fn vmap_of_jacfwd_in_jit_bakes_no_batch_sized_constant() {
    let rows = 5000;
    let x = Tensor::from_vec((0..rows * 3).map(|i| (i as f64 * 0.001).cos()).collect(), &[rows, 3]);
    let info = jit_inspect(|x: &Tensor| vmap(jacfwd(per_row))(x), &x);
    let largest = largest_constant(&info.traced).max(largest_constant(&info.optimized));
    assert!(largest < rows, "a constant of {largest} elements was baked into the graph");
    // And the values are those of the eager computation, row by row.
    let jitted = jit(|x: &Tensor| vmap(jacfwd(per_row))(x))(&x);
    assert_eq!(jitted.shape(), vec![rows, 3, 3]);
    for r in [0, 1, rows - 1] {
        let expect = jacfwd(per_row)(&x.index(r as isize));
        let got = jitted.index(r as isize);
        let err = (&got - &expect).abs().max_all().item::<f64>();
        assert!(err < 1e-12, "row {r}: {err}");
    }
}

#[test]
fn vmap_of_a_constant_output_in_jit_is_broadcast_in_the_trace() {
    let rows = 5000;
    let x = Tensor::zeros(&[rows, 2], DType::F64);
    let f = |x: &Tensor| {
        // The second output does not depend on the mapped argument.
        vmap(|r: &Tensor| (r.sum_all(), Tensor::from_vec(vec![4.0, 5.0], &[2])))(x)
    };
    let info = jit_inspect(f, &x);
    assert!(largest_constant(&info.traced) < rows, "a [{rows}, 2] constant was baked into the graph");
    let (_, c) = jit(f)(&x);
    assert_eq!(c.shape(), vec![rows, 2]);
    assert_eq!(c.index(rows as isize - 1).to_vec::<f64>(), vec![4.0, 5.0]);
}
