//! The graph IR: typed SSA, one node per value, and its readable dump.
//!
//! A [`Graph`] is a list of [`Node`]s in topological order. Node `i` defines
//! value [`Var`]`(i)`; its inputs refer to earlier nodes. Graph inputs are
//! nodes with [`Prim::Input`], constants are nodes with [`Prim::Constant`].
//!
//! ```
//! use cotangent::{trace_graph, Tensor, TensorType, DType};
//! let g = trace_graph(&[TensorType::new(DType::F64, vec![3])], |xs| {
//!     vec![(&xs[0] * &xs[0]).sum_all()]
//! });
//! assert_eq!(g.dump(), "\
//! graph(%0: f64[3]) {
//!   %1: f64[3] = mul %0 %0
//!   %2: f64[] = reduce_sum[axes=[0]] %1
//!   return %2
//! }
//! ");
//! ```

use crate::ops::Prim;
use crate::{DType, TensorType};
use std::fmt::Write;
use std::sync::Arc;

/// A value of a graph: the index of the node that defines it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Var(pub u32);

impl Var {
    /// The defining node's index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One operation: a primitive applied to earlier values, with its output type.
///
/// A primitive with several results (a loop's carries, a decomposition's factors) defines a
/// *tuple*: its node has the placeholder type [`tuple_type`] and holds no data of its own, and
/// one [`Prim::Proj`] node per result reads element `k` out of it (as XLA does). Only
/// projections read tuples; graph outputs are never tuples. [`Graph::push_multi`] appends
/// both at once.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The operation and its static parameters.
    pub prim: Prim,
    /// Operand values, all defined by earlier nodes.
    pub inputs: Vec<Var>,
    /// Dtype and shape of the value this node defines.
    pub ty: TensorType,
}

/// The placeholder type of a tuple node (`bool[0]`: no elements). The types of the tuple's
/// elements are [`Prim::output_types`] of the node, and of its projections.
pub fn tuple_type() -> TensorType {
    TensorType::new(DType::Bool, vec![0])
}

/// A closed graph carried by a structured primitive (a branch of `cond`, a loop body, a
/// custom rule): everything it reads is an input or a constant, and values it needs from the
/// enclosing program are passed as operands of the node.
///
/// Shared (cloning a primitive does not copy its sub-graphs). Two sub-graphs are equal when
/// they are the same graph or have identical nodes, which lets common-subexpression
/// elimination merge repeated structured nodes.
#[derive(Clone, Debug)]
pub struct SubGraph(pub Arc<Graph>);

impl SubGraph {
    /// Wraps a graph.
    ///
    /// ```
    /// use cotangent::{ir::SubGraph, trace_graph, DType, TensorType};
    /// let g = trace_graph(&[TensorType::new(DType::F64, vec![])], |x| vec![x[0].sin()]);
    /// assert_eq!(SubGraph::new(g).input_types().len(), 1);
    /// ```
    pub fn new(g: Graph) -> SubGraph {
        SubGraph(Arc::new(g))
    }
}

impl std::ops::Deref for SubGraph {
    type Target = Graph;
    fn deref(&self) -> &Graph {
        &self.0
    }
}

impl PartialEq for SubGraph {
    fn eq(&self, other: &SubGraph) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || *self.0 == *other.0
    }
}

/// A typed SSA graph: the unit that transformations rewrite and backends run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    /// Nodes in topological order; node `i` defines `Var(i)`.
    pub nodes: Vec<Node>,
    /// The input nodes, in argument order.
    pub inputs: Vec<Var>,
    /// The returned values.
    pub outputs: Vec<Var>,
}

impl Graph {
    /// Appends a node after checking its operands' types, returning its value.
    pub fn push(&mut self, prim: Prim, inputs: Vec<Var>) -> Result<Var, String> {
        let tys: Vec<&TensorType> = inputs.iter().map(|v| &self.nodes[v.index()].ty).collect();
        let ty = prim.infer_type(&tys)?;
        Ok(self.push_typed(prim, inputs, ty))
    }

    /// Appends a node whose type is already known.
    pub fn push_typed(&mut self, prim: Prim, inputs: Vec<Var>, ty: TensorType) -> Var {
        let v = Var(self.nodes.len() as u32);
        self.nodes.push(Node { prim, inputs, ty });
        v
    }

    /// Appends a primitive with several results (a tuple node and one projection per
    /// result, see [`Node`]), returning the projections' values.
    ///
    /// ```
    /// use cotangent::ir::{Graph, SubGraph};
    /// use cotangent::ops::Prim;
    /// use cotangent::{trace_graph, DType, TensorType};
    /// let scalar = TensorType::new(DType::F64, vec![]);
    /// let sin = SubGraph::new(trace_graph(&[scalar.clone()], |x| vec![x[0].sin()]));
    /// let cos = SubGraph::new(trace_graph(&[scalar.clone()], |x| vec![x[0].cos()]));
    /// let mut g = Graph::default();
    /// let i = g.add_input(TensorType::new(DType::I64, vec![]));
    /// let x = g.add_input(scalar);
    /// let outs = g.push_multi(Prim::Cond { branches: vec![sin, cos] }, vec![i, x]).unwrap();
    /// g.outputs = outs;
    /// assert!(g.validate().is_ok());
    /// assert!(g.dump().contains("proj[index=0]"));
    /// ```
    pub fn push_multi(&mut self, prim: Prim, inputs: Vec<Var>) -> Result<Vec<Var>, String> {
        let tys: Vec<&TensorType> = inputs.iter().map(|v| &self.nodes[v.index()].ty).collect();
        let out_types = prim.output_types(&tys)?;
        if !prim.is_tuple() {
            return Err(format!("{} has a single result: use push", prim.name()));
        }
        let t = self.push_typed(prim, inputs, tuple_type());
        Ok(out_types.into_iter().enumerate().map(|(k, ty)| self.push_typed(Prim::Proj(k), vec![t], ty)).collect())
    }

    /// Appends a graph input of the given type.
    pub fn add_input(&mut self, ty: TensorType) -> Var {
        let v = self.push_typed(Prim::Input(self.inputs.len()), vec![], ty);
        self.inputs.push(v);
        v
    }

    /// The type of a value.
    pub fn ty(&self, v: Var) -> &TensorType {
        &self.nodes[v.index()].ty
    }

    /// Types of the inputs, in order.
    pub fn input_types(&self) -> Vec<TensorType> {
        self.inputs.iter().map(|&v| self.ty(v).clone()).collect()
    }

    /// Types of the outputs, in order.
    pub fn output_types(&self) -> Vec<TensorType> {
        self.outputs.iter().map(|&v| self.ty(v).clone()).collect()
    }

    /// How many times each value is read: by later nodes, and once per appearance in the outputs.
    pub fn use_counts(&self) -> Vec<usize> {
        let mut uses = vec![0; self.nodes.len()];
        for n in &self.nodes {
            for v in &n.inputs {
                uses[v.index()] += 1;
            }
        }
        for v in &self.outputs {
            uses[v.index()] += 1;
        }
        uses
    }

    /// Number of nodes that are neither inputs nor constants.
    pub fn num_ops(&self) -> usize {
        self.nodes.iter().filter(|n| !matches!(n.prim, Prim::Input(_) | Prim::Constant(_))).count()
    }

    /// Checks the invariants: topological order, input numbering, and every node's type.
    pub fn validate(&self) -> Result<(), String> {
        for (i, v) in self.inputs.iter().enumerate() {
            match self.nodes.get(v.index()).map(|n| &n.prim) {
                Some(Prim::Input(k)) if *k == i => {}
                _ => return Err(format!("graph input {i} ({v:?}) is not an input node with index {i}")),
            }
        }
        // Operand types, reused from node to node (graphs of unrolled programs are long).
        let mut tys: Vec<&TensorType> = Vec::new();
        // Whether a node carries sub-graphs (checked after the nodes and outputs).
        let mut structured = false;
        for (i, node) in self.nodes.iter().enumerate() {
            structured = structured || !node.prim.subgraphs().is_empty();
            if let Some(bad) = node.inputs.iter().find(|v| v.index() >= i) {
                return Err(format!(
                    "node %{i} ({}) uses %{}, which is not defined before it",
                    node.prim.name(),
                    bad.0
                ));
            }
            if let Prim::Input(k) = node.prim {
                if self.inputs.get(k) != Some(&Var(i as u32)) {
                    return Err(format!("node %{i} claims to be input {k} but is not listed as such"));
                }
                continue;
            }
            let reads_tuple = |v: &Var| self.nodes[v.index()].prim.is_tuple();
            if let Prim::Proj(k) = node.prim {
                let [t] = node.inputs[..] else {
                    return Err(format!("node %{i} (proj) needs exactly one operand"));
                };
                let producer = &self.nodes[t.index()];
                if !producer.prim.is_tuple() {
                    return Err(format!("node %{i} (proj) reads %{}, which is not a tuple", t.0));
                }
                let tys: Vec<&TensorType> = producer.inputs.iter().map(|v| self.ty(*v)).collect();
                let outs = producer.prim.output_types(&tys).map_err(|e| format!("node %{}: {e}", t.0))?;
                match outs.get(k) {
                    Some(ty) if *ty == node.ty => continue,
                    Some(ty) => {
                        return Err(format!("node %{i} (proj {k}) is typed {} but the tuple gives {ty}", node.ty))
                    }
                    None => return Err(format!("node %{i} projects element {k} of a {}-tuple", outs.len())),
                }
            }
            if let Some(bad) = node.inputs.iter().find(|v| reads_tuple(v)) {
                return Err(format!("node %{i} ({}) reads the tuple %{} directly", node.prim.name(), bad.0));
            }
            tys.clear();
            tys.extend(node.inputs.iter().map(|v| self.ty(*v)));
            // Element-wise nodes (most of a graph) are checked without building their type;
            // any other outcome goes through the rule, which says what is wrong.
            let fits = match (&node.prim, &tys[..]) {
                (Prim::Unary(op), [x]) => op.has_type(x, &node.ty),
                (Prim::Binary(op), [a, b]) => op.has_type(a, b, &node.ty),
                (prim, tys) => fits_structurally(prim, tys, &node.ty),
            };
            if fits {
                continue;
            }
            let ty = node.prim.infer_type(&tys).map_err(|e| format!("node %{i} ({}): {e}", node.prim.name()))?;
            if ty != node.ty {
                return Err(format!("node %{i} ({}) is typed {} but its rule gives {ty}", node.prim.name(), node.ty));
            }
        }
        if let Some(bad) = self.outputs.iter().find(|v| v.index() >= self.nodes.len()) {
            return Err(format!("output %{} is not defined", bad.0));
        }
        if let Some(bad) = self.outputs.iter().find(|v| self.nodes[v.index()].prim.is_tuple()) {
            return Err(format!("output %{} is a tuple", bad.0));
        }
        // (A second walk over the nodes only when one carries sub-graphs: graphs of
        // unrolled programs are long, and most have none.)
        if !structured {
            return Ok(());
        }
        for (i, node) in self.nodes.iter().enumerate() {
            for (k, sub) in node.prim.subgraphs().into_iter().enumerate() {
                sub.validate().map_err(|e| format!("node %{i} ({}), sub-graph {k}: {e}", node.prim.name()))?;
            }
        }
        Ok(())
    }

    /// A readable text form, one line per node (like a jaxpr), with the sub-graphs of
    /// structured primitives indented under their node. Stable: tests compare it.
    pub fn dump(&self) -> String {
        self.dump_indented(0)
    }

    fn dump_indented(&self, depth: usize) -> String {
        let pad = "    ".repeat(depth);
        let mut s = String::from("graph(");
        for (i, v) in self.inputs.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            let _ = write!(s, "%{}: {}", v.0, self.ty(*v));
        }
        s.push_str(") {\n");
        for (i, node) in self.nodes.iter().enumerate() {
            if matches!(node.prim, Prim::Input(_)) {
                continue;
            }
            if node.prim.is_tuple() {
                let tys: Vec<&TensorType> = node.inputs.iter().map(|v| self.ty(*v)).collect();
                let outs = node.prim.output_types(&tys).unwrap_or_default();
                let list: Vec<String> = outs.iter().map(ToString::to_string).collect();
                let _ = write!(s, "{pad}  %{i}: ({}) = {}", list.join(", "), node.prim);
            } else {
                let _ = write!(s, "{pad}  %{i}: {} = {}", node.ty, node.prim);
            }
            for v in &node.inputs {
                let _ = write!(s, " %{}", v.0);
            }
            s.push('\n');
            for (k, sub) in node.prim.subgraphs().into_iter().enumerate() {
                let _ = write!(s, "{pad}    {}: {}", node.prim.subgraph_name(k), sub.dump_indented(depth + 1));
            }
        }
        s.push_str(&pad);
        s.push_str("  return");
        for (i, v) in self.outputs.iter().enumerate() {
            s.push_str(if i == 0 { " " } else { ", " });
            let _ = write!(s, "%{}", v.0);
        }
        s.push('\n');
        s.push_str(&pad);
        s.push_str("}\n");
        s
    }
}

/// Whether the type rule of `prim` surely accepts operands `tys` and gives exactly `ty`,
/// decided without building a type (the common structural primitives of long graphs and
/// constants). `false` means "ask the rule", which then says what is wrong, if anything.
fn fits_structurally(prim: &Prim, tys: &[&TensorType], ty: &TensorType) -> bool {
    match (prim, tys) {
        (Prim::Constant(a), []) => a.dtype() == ty.dtype && a.shape() == &ty.shape[..],
        (Prim::StopGradient, [x]) => *x == ty,
        (Prim::Select, [p, t, f]) => p.dtype == DType::Bool && t == f && p.shape == t.shape && *t == ty,
        (Prim::Reshape { shape }, [x]) => {
            x.dtype == ty.dtype && ty.shape == *shape && crate::shape::numel(shape) == x.numel()
        }
        (Prim::BroadcastInDim { shape, dims }, [x]) => {
            x.dtype == ty.dtype
                && ty.shape == *shape
                && dims.len() == x.rank()
                && dims.windows(2).all(|w| w[0] < w[1])
                && dims.iter().zip(&x.shape).all(|(&d, &e)| d < shape.len() && (e == 1 || e == shape[d]))
        }
        (Prim::Transpose { perm }, [x]) => {
            // A permutation of 0..rank (ranks below 64: a bit set), each output extent the
            // operand's.
            let r = x.rank();
            let mut seen = 0u64;
            x.dtype == ty.dtype
                && r < 64
                && perm.len() == r
                && ty.shape.len() == r
                && perm.iter().zip(&ty.shape).all(|(&p, &e)| {
                    let fresh = p < r && seen & (1 << p) == 0;
                    seen |= 1 << p.min(63);
                    fresh && x.shape[p] == e
                })
        }
        (Prim::Slice { start, stop, stride }, [x]) => {
            let r = x.rank();
            x.dtype == ty.dtype
                && start.len() == r
                && stop.len() == r
                && stride.len() == r
                && ty.shape.len() == r
                && (0..r).all(|i| {
                    start[i] <= stop[i]
                        && stop[i] <= x.shape[i]
                        && stride[i] != 0
                        && (stop[i] - start[i]).div_ceil(stride[i]) == ty.shape[i]
                })
        }
        _ => false,
    }
}

impl std::fmt::Display for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.dump())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::array::Array;

    /// The structural check never accepts what the type rule would not give, and accepts
    /// every well-typed case it covers: each primitive x operand types x candidate result
    /// types, compared with `infer_type`.
    #[test]
    fn fits_structurally_agrees_with_infer_type() {
        let shapes: [&[usize]; 6] = [&[], &[1], &[3], &[2, 3], &[3, 2], &[2, 1, 3]];
        let dtypes = [DType::F64, DType::F32, DType::Bool];
        let types: Vec<TensorType> =
            dtypes.iter().flat_map(|&d| shapes.iter().map(move |s| TensorType::new(d, s.to_vec()))).collect();
        let mut prims = vec![
            Prim::StopGradient,
            Prim::Select,
            Prim::Constant(Arc::new(Array::full(DType::F64, vec![2, 3], 1.0))),
            Prim::Constant(Arc::new(Array::full(DType::F32, vec![], 1.0))),
        ];
        for s in &shapes {
            prims.push(Prim::Reshape { shape: s.to_vec() });
        }
        for (shape, dims) in
            [(vec![2, 3], vec![1]), (vec![2, 3], vec![0, 1]), (vec![2, 3], vec![1, 0]), (vec![3], vec![])]
        {
            prims.push(Prim::BroadcastInDim { shape, dims });
        }
        prims.push(Prim::BroadcastInDim { shape: vec![2, 1, 3], dims: vec![0, 2, 2] });
        prims.push(Prim::BroadcastInDim { shape: vec![2, 3], dims: vec![0, 2] });
        for perm in [vec![], vec![0], vec![1, 0], vec![0, 1], vec![0, 0], vec![2, 0, 1], vec![0, 5]] {
            prims.push(Prim::Transpose { perm });
        }
        for (start, stop, stride) in [
            (vec![0, 1], vec![2, 3], vec![1, 2]),
            (vec![1], vec![3], vec![1]),
            (vec![0], vec![3], vec![0]),
            (vec![2], vec![1], vec![1]),
            (vec![0, 0], vec![2, 4], vec![1, 1]),
            (vec![0, 0, 0], vec![2, 1, 3], vec![2, 1, 2]),
        ] {
            prims.push(Prim::Slice { start, stop, stride });
        }
        let (mut accepted, mut checked) = (0, 0);
        for prim in &prims {
            let arity = match prim {
                Prim::Constant(_) => 0,
                Prim::Select => 3,
                _ => 1,
            };
            let operand_lists: Vec<Vec<&TensorType>> = match arity {
                0 => vec![vec![]],
                1 => types.iter().map(|a| vec![a]).collect(),
                _ => types
                    .iter()
                    .flat_map(|p| types.iter().map(move |a| vec![p, a, a]))
                    .chain([vec![&types[15], &types[3], &types[9]]])
                    .collect(),
            };
            for ops in &operand_lists {
                let rule = prim.infer_type(ops);
                for ty in &types {
                    let fits = fits_structurally(prim, ops, ty);
                    checked += 1;
                    if fits {
                        accepted += 1;
                        assert_eq!(rule.as_ref().ok(), Some(ty), "{prim} on {ops:?} accepted as {ty}");
                    } else if rule.as_ref().ok() == Some(ty) {
                        panic!("{prim} on {ops:?} -> {ty}: the rule accepts it, the check does not");
                    }
                }
            }
        }
        assert!(accepted > 40 && checked > accepted * 10, "{accepted} of {checked}");
    }

    /// `validate` still reports a bad node of each kind the structural check covers.
    #[test]
    fn validate_reports_mistyped_structural_nodes() {
        let mut g = Graph::default();
        let x = g.add_input(TensorType::new(DType::F64, vec![2, 3]));
        g.push_typed(Prim::Transpose { perm: vec![1, 0] }, vec![x], TensorType::new(DType::F64, vec![2, 3]));
        assert!(g.validate().unwrap_err().contains("transpose"));
        let mut g = Graph::default();
        let x = g.add_input(TensorType::new(DType::F64, vec![2, 3]));
        let r = g.push_typed(Prim::Reshape { shape: vec![3, 2] }, vec![x], TensorType::new(DType::F64, vec![3, 2]));
        g.outputs = vec![r];
        assert_eq!(g.validate(), Ok(()));
    }
}
