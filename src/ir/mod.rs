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
use crate::TensorType;
use std::fmt::Write;

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
#[derive(Clone, Debug)]
pub struct Node {
    /// The operation and its static parameters.
    pub prim: Prim,
    /// Operand values, all defined by earlier nodes.
    pub inputs: Vec<Var>,
    /// Dtype and shape of the value this node defines.
    pub ty: TensorType,
}

/// A typed SSA graph: the unit that transformations rewrite and backends run.
#[derive(Clone, Debug, Default)]
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
        for (i, node) in self.nodes.iter().enumerate() {
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
            let tys: Vec<&TensorType> = node.inputs.iter().map(|v| self.ty(*v)).collect();
            let ty = node.prim.infer_type(&tys).map_err(|e| format!("node %{i} ({}): {e}", node.prim.name()))?;
            if ty != node.ty {
                return Err(format!("node %{i} ({}) is typed {} but its rule gives {ty}", node.prim.name(), node.ty));
            }
        }
        if let Some(bad) = self.outputs.iter().find(|v| v.index() >= self.nodes.len()) {
            return Err(format!("output %{} is not defined", bad.0));
        }
        Ok(())
    }

    /// A readable text form, one line per node (like a jaxpr). Stable: tests compare it.
    pub fn dump(&self) -> String {
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
            let _ = write!(s, "  %{i}: {} = {}", node.ty, node.prim);
            for v in &node.inputs {
                let _ = write!(s, " %{}", v.0);
            }
            s.push('\n');
        }
        s.push_str("  return");
        for (i, v) in self.outputs.iter().enumerate() {
            s.push_str(if i == 0 { " " } else { ", " });
            let _ = write!(s, "%{}", v.0);
        }
        s.push_str("\n}\n");
        s
    }
}

impl std::fmt::Display for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.dump())
    }
}
