//! Before the other passes: a `scan` of exactly one iteration is replaced by its body, as
//! XLA's while-loop simplifier does with a loop of trip count one.
//!
//! A one-step scan is what a `fori_loop` of one step (GradBench's ode at `s = 1`) and its
//! gradient (a forward scan stacking the carries, a reverse scan of the transposed body)
//! become. As loops they run as separate sub-plans: the forward scan computes a new carry
//! nobody reads, the reverse body cannot fuse with what surrounds it, and the operands it
//! reads through slices (or the zeros it starts from) are materialised first. Inlined, the
//! passes see one graph — dead results go, constants fold, slices become views — and the
//! planner fuses across what was the loop's boundary.
//!
//! Exact: the body runs once on the same values, whichever way (`reverse`) the scan goes.
//! The row `xs[0]` the body reads is a reshape of each stacked operand (`[1, ...]` to
//! `[...]`), and each stacked result `ys` a reshape of the body's row back to `[1, ...]`.

use crate::ir::{Graph, Var};
use crate::ops::Prim;

/// `g` with every one-iteration `scan` (nested ones too, once inlined) replaced by its
/// body, or `None` when it has none (the common case costs one scan over the nodes).
pub(super) fn inline_single_iteration_scans(g: &Graph) -> Option<Graph> {
    if !g.nodes.iter().any(|n| is_single_iteration_scan(&n.prim)) {
        return None;
    }
    let mut out = Graph { nodes: Vec::with_capacity(g.nodes.len()), ..Graph::default() };
    let inputs: Vec<Var> = g.inputs.iter().map(|&v| out.add_input(g.ty(v).clone())).collect();
    out.outputs = copy_into(&mut out, g, &inputs);
    Some(out)
}

fn is_single_iteration_scan(prim: &Prim) -> bool {
    matches!(prim, Prim::Scan { length: 1, .. })
}

/// Appends the nodes of `g` to `out`, reading `args` for its inputs, inlining one-iteration
/// scans on the way; returns the values of `g`'s outputs in `out`.
fn copy_into(out: &mut Graph, g: &Graph, args: &[Var]) -> Vec<Var> {
    let mut map: Vec<Var> = Vec::with_capacity(g.nodes.len());
    // The results of each inlined scan, by its tuple node's index (read by its projections).
    let mut inlined: Vec<Option<Vec<Var>>> = vec![None; g.nodes.len()];
    for (i, node) in g.nodes.iter().enumerate() {
        let ins: Vec<Var> = node.inputs.iter().map(|v| map[v.index()]).collect();
        let v = match &node.prim {
            Prim::Input(k) => args[*k],
            Prim::Proj(k) if inlined[node.inputs[0].index()].is_some() => {
                inlined[node.inputs[0].index()].as_ref().expect("checked")[*k]
            }
            Prim::Scan { body, consts, carries, length: 1, .. } => {
                let fixed = consts + carries;
                let mut body_args = ins[..fixed].to_vec();
                for &xs in &ins[fixed..] {
                    let row = out.ty(xs).shape[1..].to_vec();
                    body_args.push(reshaped(out, xs, row));
                }
                let mut results = copy_into(out, body, &body_args);
                for y in &mut results[*carries..] {
                    let mut stacked = vec![1];
                    stacked.extend_from_slice(&out.ty(*y).shape);
                    *y = reshaped(out, *y, stacked);
                }
                inlined[i] = Some(results);
                // The tuple node itself has no value; only its projections (above) read it.
                Var(u32::MAX)
            }
            prim => out.push_typed(prim.clone(), ins, node.ty.clone()),
        };
        map.push(v);
    }
    g.outputs.iter().map(|v| map[v.index()]).collect()
}

/// `x` reshaped to `shape` (same elements).
fn reshaped(out: &mut Graph, x: Var, shape: Vec<usize>) -> Var {
    let ty = crate::TensorType::new(out.ty(x).dtype, shape.clone());
    out.push_typed(Prim::Reshape { shape }, vec![x], ty)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{control, trace_graph, DType, Tensor, TensorType};

    fn one_step(reverse: bool) -> Graph {
        let ty = TensorType::new(DType::F64, vec![3]);
        trace_graph(&[ty.clone(), TensorType::new(DType::F64, vec![1, 3])], |a| {
            let (c, ys) = control::scan(|c: &Tensor, x: &Tensor| (c * x + 1.0, c.sin()), &a[0], &a[1], None, reverse);
            vec![c, ys]
        })
    }

    #[test]
    fn a_one_step_scan_becomes_its_body_and_agrees() {
        for reverse in [false, true] {
            let g = one_step(reverse);
            let inlined = inline_single_iteration_scans(&g).expect("one scan to inline");
            inlined.validate().unwrap();
            assert!(!inlined.nodes.iter().any(|n| matches!(n.prim, Prim::Scan { .. })));
            let c = Tensor::from(vec![0.5, -1.0, 2.0]);
            let xs = Tensor::from(vec![1.5, 2.0, -0.25]).reshape(&[1, 3]);
            let run = |g: &Graph| crate::trace::eval_graph(g, &[c.clone(), xs.clone()]);
            let (want, got) = (run(&g), run(&inlined));
            for (w, g) in want.iter().zip(&got) {
                assert_eq!(w.shape(), g.shape());
                assert_eq!(w.to_vec::<f64>(), g.to_vec::<f64>());
            }
        }
    }

    #[test]
    fn longer_scans_are_left_alone() {
        let ty = TensorType::new(DType::F64, vec![3]);
        let g = trace_graph(&[ty], |a| vec![control::fori_loop(0, 2, |_, y: &Tensor| y * 2.0, &a[0])]);
        assert!(inline_single_iteration_scans(&g).is_none());
    }
}
