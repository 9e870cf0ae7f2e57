//! Transformations of the closed graphs that structured primitives carry (branches, loop
//! bodies, custom rules): their jvp, transpose and batched versions as new closed graphs,
//! and closure conversion of user functions into closed graphs plus captured operands.
//!
//! A structured primitive's rules (in `ops/control.rs` and its siblings) build the
//! transformed sub-graphs with these and bind a new structured node over them, so the
//! transformation of a `cond` is a `cond` of transformed branches, and so on.

use super::jvp::jvp_graph;
use super::vjp::transpose_graph;
use super::vmap::batch_graph;
use crate::ir::{Graph, Var};
use crate::ops::rules::with_batch_axis;
use crate::ops::Prim;
use crate::trace::{trace_as, TracedGraph};
use crate::{Tensor, TensorType};
use std::collections::HashMap;

/// Traces `f` into a graph that must be closed (everything it reads is an input or a
/// constant): the rules only evaluate closed graphs inside it.
pub(crate) fn trace_closed(
    label: &'static str,
    types: &[TensorType],
    f: impl FnOnce(&[Tensor]) -> Vec<Tensor>,
) -> Graph {
    let t = trace_as(label, types, f);
    assert!(t.captures.is_empty(), "{label}: a transformed sub-graph captured an outer value");
    t.graph
}

/// The graph with its inputs reordered: input `i` of the result is input `order[i]` of `g`.
/// Rebuilt so that the input nodes come first and in order, as the graph passes expect.
pub(crate) fn permute_inputs(g: &Graph, order: &[usize]) -> Graph {
    let mut out = Graph::default();
    let mut map = vec![Var(u32::MAX); g.nodes.len()];
    for &k in order {
        let v = g.inputs[k];
        map[v.index()] = out.add_input(g.ty(v).clone());
    }
    for (i, node) in g.nodes.iter().enumerate() {
        if !matches!(node.prim, Prim::Input(_)) {
            let ins = node.inputs.iter().map(|v| map[v.index()]).collect();
            map[i] = out.push_typed(node.prim.clone(), ins, node.ty.clone());
        }
    }
    out.outputs = g.outputs.iter().map(|v| map[v.index()]).collect();
    out
}

/// The jvp of a closed graph as a closed graph.
///
/// Inputs: `g`'s inputs, then a tangent for each input marked in `with_tangent`. Outputs:
/// the tangents of the outputs marked in `out_mask` (zeros where this graph's tangent is a
/// symbolic zero; all outputs with a non-zero tangent when `out_mask` is `None`). Returns the
/// graph and which outputs have a non-zero tangent in it (before masking).
pub(crate) fn jvp_subgraph(g: &Graph, with_tangent: &[bool], out_mask: Option<&[bool]>) -> (Graph, Vec<bool>) {
    let n = g.inputs.len();
    let mut types = g.input_types();
    types.extend(g.input_types().into_iter().zip(with_tangent).filter(|(_, &w)| w).map(|(t, _)| t));
    let mut nonzero = Vec::new();
    let graph = trace_closed("jvp", &types, |ins| {
        let (primals, tangent_ins) = ins.split_at(n);
        let mut it = tangent_ins.iter();
        let tangents: Vec<Option<Tensor>> =
            with_tangent.iter().map(|&w| if w { it.next().cloned() } else { None }).collect();
        let (outs, touts) = jvp_graph(g, primals, &tangents);
        nonzero = touts.iter().map(Option::is_some).collect();
        let mask: Vec<bool> = out_mask.map_or_else(|| nonzero.clone(), <[bool]>::to_vec);
        touts
            .into_iter()
            .zip(&outs)
            .zip(mask)
            .filter(|(_, m)| *m)
            .map(|((t, y), _)| t.unwrap_or_else(|| y.zeros_like()))
            .collect()
    });
    // Without the primal work no tangent needs (run eagerly, it would be run).
    (crate::compile::dce(&graph), nonzero)
}

/// The jet (Taylor mode, `order` normalised coefficients) of a closed graph as a closed graph.
///
/// Inputs: for each input of `g`, the coefficients marked in `present[i]` (index 0 is the
/// primal, always present). Outputs: for each output, its primal and all `order`
/// coefficients (zeros where this graph's are symbolic zeros).
pub(crate) fn jet_subgraph(g: &Graph, present: &[Vec<bool>], order: usize) -> Graph {
    let in_types = g.input_types();
    let types: Vec<TensorType> =
        in_types.iter().zip(present).flat_map(|(t, p)| p.iter().filter(|&&b| b).map(move |_| t.clone())).collect();
    trace_closed("jet", &types, |ins| {
        let mut it = ins.iter();
        let series: Vec<Vec<Option<Tensor>>> =
            present.iter().map(|p| p.iter().map(|&b| if b { it.next().cloned() } else { None }).collect()).collect();
        super::jet_graph(g, &series, order)
            .into_iter()
            .flat_map(|s| {
                let y = s[0].clone().expect("primal");
                s.into_iter().map(move |c| c.unwrap_or_else(|| y.zeros_like()))
            })
            .collect()
    })
}

/// The transpose of a closed graph that is linear in the inputs marked `linear`.
///
/// Inputs: the other (non-linear) inputs of `g` in order, then a cotangent for each output
/// marked in `ct_mask`. Outputs: the cotangent of each linear input, in order (zeros where
/// nothing flows).
pub(crate) fn transpose_subgraph(g: &Graph, linear: &[bool], ct_mask: &[bool]) -> Graph {
    let lin: Vec<usize> = (0..linear.len()).filter(|&i| linear[i]).collect();
    let vals: Vec<usize> = (0..linear.len()).filter(|&i| !linear[i]).collect();
    let order: Vec<usize> = lin.iter().chain(&vals).copied().collect();
    let permuted = permute_inputs(g, &order);
    let in_types = g.input_types();
    let out_types = g.output_types();
    let mut types: Vec<TensorType> = vals.iter().map(|&i| in_types[i].clone()).collect();
    types.extend(out_types.iter().zip(ct_mask).filter(|(_, &m)| m).map(|(t, _)| t.clone()));
    let g = trace_closed("transpose", &types, |ins| {
        let (residuals, ct_ins) = ins.split_at(vals.len());
        let mut it = ct_ins.iter();
        let cts: Vec<Option<Tensor>> = ct_mask.iter().map(|&m| if m { it.next().cloned() } else { None }).collect();
        let in_cts = transpose_graph(&permuted, lin.len(), residuals, &cts);
        in_cts
            .into_iter()
            .zip(&lin)
            .map(|(c, &i)| c.unwrap_or_else(|| Tensor::zeros(&in_types[i].shape, in_types[i].dtype)))
            .collect()
    });
    // Without the forward values no cotangent needs (run eagerly, they would be computed).
    crate::compile::dce(&g)
}

/// A type with a leading batch axis of extent `size`.
pub(crate) fn batched_type(ty: &TensorType, size: usize) -> TensorType {
    let mut shape = vec![size];
    shape.extend_from_slice(&ty.shape);
    TensorType::new(ty.dtype, shape)
}

/// The batched version of a closed graph: inputs marked `batched` carry a leading axis of
/// extent `size`; every output does.
pub(crate) fn batch_subgraph(g: &Graph, batched: &[bool], size: usize) -> Graph {
    let types: Vec<TensorType> =
        g.input_types().iter().zip(batched).map(|(t, &b)| if b { batched_type(t, size) } else { t.clone() }).collect();
    trace_closed("vmap", &types, |ins| {
        batch_graph(g, ins, batched, size)
            .into_iter()
            .map(|(t, b)| if b { t } else { with_batch_axis(&t, size) })
            .collect()
    })
}

/// Which outputs of `g` (as a function of inputs marked `batched`) come out batched.
pub(crate) fn batched_outputs(g: &Graph, batched: &[bool]) -> Vec<bool> {
    let mut b = vec![false; g.nodes.len()];
    for (i, node) in g.nodes.iter().enumerate() {
        b[i] = match node.prim {
            Prim::Input(k) => batched[k],
            _ => node.inputs.iter().any(|v| b[v.index()]),
        };
    }
    g.outputs.iter().map(|v| b[v.index()]).collect()
}

/// Closure conversion of traced user functions that share their explicit arguments: each
/// becomes a closed graph taking the explicit arguments, then every value any of them
/// captured from outer traces (in one shared order), which are returned to be passed as
/// operands.
pub(crate) fn close_over(traced: Vec<TracedGraph>) -> (Vec<Graph>, Vec<Tensor>) {
    let mut captures: Vec<Tensor> = Vec::new();
    let mut index: HashMap<(u64, Var), usize> = HashMap::new();
    let positions: Vec<Vec<usize>> = traced
        .iter()
        .map(|t| {
            t.captures
                .iter()
                .map(|c| {
                    let tr = c.as_traced().expect("captures are traced");
                    *index.entry((tr.trace, tr.var)).or_insert_with(|| {
                        captures.push(c.clone());
                        captures.len() - 1
                    })
                })
                .collect()
        })
        .collect();
    let graphs = traced
        .iter()
        .zip(&positions)
        .map(|(t, pos)| {
            let mut g = Graph::default();
            let mut map: Vec<Var> = Vec::with_capacity(t.graph.nodes.len());
            let args: Vec<Var> =
                t.graph.inputs[..t.num_args].iter().map(|v| g.add_input(t.graph.ty(*v).clone())).collect();
            let caps: Vec<Var> = captures.iter().map(|c| g.add_input(c.ty())).collect();
            for node in &t.graph.nodes {
                let v = match node.prim {
                    Prim::Input(k) if k < t.num_args => args[k],
                    Prim::Input(k) => caps[pos[k - t.num_args]],
                    _ => {
                        let ins = node.inputs.iter().map(|v| map[v.index()]).collect();
                        g.push_typed(node.prim.clone(), ins, node.ty.clone())
                    }
                };
                map.push(v);
            }
            g.outputs = t.graph.outputs.iter().map(|v| map[v.index()]).collect();
            g
        })
        .collect();
    (graphs, captures)
}
