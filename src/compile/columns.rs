//! Splitting values with a short trailing axis into columns, before lowering to a plan.
//!
//! A batched per-example computation on small vectors (`vmap` of a function of 3-vectors, as
//! bundle adjustment's rotations and cross products are) has values of shape `[n, 3]`, `[n, 2]`
//! and `[n]` side by side, joined by concatenates (`stack`), column slices and reductions over
//! the short axis. Fused loops group values of one shape only, so such a program becomes many
//! small loops with intermediates between them, and concatenates as kernel calls.
//!
//! This pass rewrites every element-wise value of shape `[.., k]` (k ≤ [`MAX_COLUMNS`], many
//! rows) as `k` values of shape `[..]`, one per column: element-wise operations apply column by
//! column, a concatenate along the short axis just lists its operands' columns, a slice along
//! it picks columns, a broadcast along it repeats one value, adding or removing a trailing axis
//! of extent 1 is free, and a sum over the short axis becomes additions of columns (in the
//! reduction kernels' order, from `+0`, so results are bitwise the same). Columns of values
//! that are not split are column views (slice and reshape), which fused loops read in place
//! through strided loads. Every value then has the rows' shape, so the whole per-example
//! computation fuses into one loop. Values that other kernels or the outputs need whole are
//! put back together by one concatenate.

use crate::array::Array;
use crate::ir::{Graph, Var};
use crate::ops::{Prim, ReduceOp};
use crate::shape::numel;
use std::collections::HashMap;
use std::sync::Arc;

/// Longest trailing axis split into columns.
pub(super) const MAX_COLUMNS: usize = 4;
/// Fewest rows (elements per column) for a split: below this, loops are cheap anyway.
pub(super) const MIN_ROWS: usize = 1024;

/// A value of the rewritten graph: whole, or one value per column of its trailing axis.
#[derive(Clone)]
enum Val {
    Whole(Var),
    Cols(Vec<Var>),
}

/// Whether a value of this shape has a short trailing axis over enough rows.
fn splittable(shape: &[usize]) -> bool {
    shape.len() >= 2
        && (1..=MAX_COLUMNS).contains(&shape[shape.len() - 1])
        && numel(&shape[..shape.len() - 1]) >= MIN_ROWS
}

/// Element-wise primitives (those fused loops compute).
fn elementwise(prim: &Prim) -> bool {
    matches!(prim, Prim::Unary(_) | Prim::Binary(_) | Prim::Select | Prim::Convert { .. })
}

/// Whether node `i` would be split or rewritten column by column.
fn candidate(g: &Graph, i: usize) -> bool {
    let node = &g.nodes[i];
    let shape = &node.ty.shape;
    match &node.prim {
        p if elementwise(p) => splittable(shape),
        Prim::Concatenate { axis } => splittable(shape) && *axis == shape.len() - 1,
        Prim::Reduce { op: ReduceOp::Sum, axes } => {
            let x = &g.ty(node.inputs[0]).shape;
            node.ty.dtype.is_float() && splittable(x) && axes[..] == [x.len() - 1]
        }
        _ => false,
    }
}

/// Builds the rewritten graph.
struct Splitter {
    out: Graph,
    /// Column views of whole values, by (value, column).
    column_views: HashMap<(Var, usize), Var>,
    /// Whole values put back together from columns, by the first column.
    assembled: HashMap<Vec<Var>, Var>,
}

impl Splitter {
    fn push(&mut self, prim: Prim, ins: Vec<Var>) -> Var {
        self.out.push(prim, ins).expect("columns: the split node types check")
    }

    /// Column `j` of a value (a view of it when it is whole).
    fn column(&mut self, v: &Val, j: usize) -> Var {
        let w = match v {
            Val::Cols(c) => return c[j],
            Val::Whole(w) => *w,
        };
        if let Some(&c) = self.column_views.get(&(w, j)) {
            return c;
        }
        let shape = self.out.ty(w).shape.clone();
        let r = shape.len();
        let mut start = vec![0; r];
        start[r - 1] = j;
        let mut stop = shape.clone();
        stop[r - 1] = j + 1;
        let slice = self.push(Prim::Slice { start, stop, stride: vec![1; r] }, vec![w]);
        let c = self.push(Prim::Reshape { shape: shape[..r - 1].to_vec() }, vec![slice]);
        self.column_views.insert((w, j), c);
        c
    }

    /// `x` broadcast to `shape` (itself where that changes nothing).
    fn broadcast(&mut self, x: Var, shape: &[usize], dims: &[usize]) -> Var {
        if self.out.ty(x).shape == shape {
            return x; // (dims, strictly increasing, are then 0, 1, ...)
        }
        self.push(Prim::BroadcastInDim { shape: shape.to_vec(), dims: dims.to_vec() }, vec![x])
    }

    /// The value whole (its columns joined again where it was split).
    fn whole(&mut self, v: &Val) -> Var {
        let cols = match v {
            Val::Whole(w) => return *w,
            Val::Cols(c) => c.clone(),
        };
        if let Some(&w) = self.assembled.get(&cols) {
            return w;
        }
        let mut lead = self.out.ty(cols[0]).shape.clone();
        lead.push(1);
        let pieces: Vec<Var> =
            cols.iter().map(|&c| self.push(Prim::Reshape { shape: lead.clone() }, vec![c])).collect();
        let w =
            if pieces.len() == 1 { pieces[0] } else { self.push(Prim::Concatenate { axis: lead.len() - 1 }, pieces) };
        self.assembled.insert(cols, w);
        w
    }
}

/// The graph with its short trailing axes split into columns (see the module docs), or `None`
/// when nothing in it would be.
pub(super) fn split_columns(g: &Graph) -> Option<Graph> {
    // Only programs that build short vectors by concatenation (`stack` of per-example
    // scalars): elsewhere, values of shape `[n, k]` are best left to fused loops as they are.
    if !(0..g.nodes.len()).any(|i| matches!(g.nodes[i].prim, Prim::Concatenate { .. }) && candidate(g, i)) {
        return None;
    }
    let mut s = Splitter { out: Graph::default(), column_views: HashMap::new(), assembled: HashMap::new() };
    let mut map: Vec<Val> = Vec::with_capacity(g.nodes.len());
    for (i, node) in g.nodes.iter().enumerate() {
        let shape = &node.ty.shape;
        let r = shape.len();
        let val = match &node.prim {
            Prim::Input(_) => Val::Whole(s.out.add_input(node.ty.clone())),
            p if elementwise(p) && candidate(g, i) => {
                let ins: Vec<Val> = node.inputs.iter().map(|v| map[v.index()].clone()).collect();
                let cols = (0..shape[r - 1])
                    .map(|j| {
                        let cs: Vec<Var> = ins.iter().map(|v| s.column(v, j)).collect();
                        s.push(p.clone(), cs)
                    })
                    .collect();
                Val::Cols(cols)
            }
            Prim::Concatenate { .. } if candidate(g, i) => {
                let mut cols = Vec::new();
                for v in &node.inputs {
                    let x = map[v.index()].clone();
                    for j in 0..*g.ty(*v).shape.last().expect("rank >= 2") {
                        cols.push(s.column(&x, j));
                    }
                }
                Val::Cols(cols)
            }
            Prim::Reduce { .. } if candidate(g, i) => {
                // ((0 + x0) + x1) + ...: the order (and the sign of a zero sum) of the kernels.
                let x = map[node.inputs[0].index()].clone();
                let zero = Arc::new(Array::full(node.ty.dtype, vec![], 0.0));
                let zero =
                    s.out.push_typed(Prim::Constant(zero), vec![], crate::TensorType::new(node.ty.dtype, vec![]));
                let mut acc = s.push(Prim::BroadcastInDim { shape: shape.clone(), dims: vec![] }, vec![zero]);
                for j in 0..*g.ty(node.inputs[0]).shape.last().expect("rank >= 2") {
                    let c = s.column(&x, j);
                    acc = s.push(Prim::Binary(crate::ops::BinaryOp::Add), vec![acc, c]);
                }
                Val::Whole(acc)
            }
            // A slice along the trailing axis only, of a split value: some of its columns.
            Prim::Slice { start, stop, stride }
                if splittable(shape)
                    && matches!(map[node.inputs[0].index()], Val::Cols(_))
                    && (0..r - 1).all(|d| start[d] == 0 && stride[d] == 1 && stop[d] == shape[d]) =>
            {
                let Val::Cols(c) = &map[node.inputs[0].index()] else { unreachable!() };
                Val::Cols((0..shape[r - 1]).map(|j| c[start[r - 1] + j * stride[r - 1]]).collect())
            }
            // Removing a trailing axis of extent 1 from a split value: its one column.
            Prim::Reshape { shape: to }
                if matches!(&map[node.inputs[0].index()], Val::Cols(c) if c.len() == 1)
                    && g.ty(node.inputs[0]).shape[..] == [&to[..], &[1]].concat()[..] =>
            {
                let Val::Cols(c) = &map[node.inputs[0].index()] else { unreachable!() };
                Val::Whole(c[0])
            }
            // Adding a trailing axis of extent 1: the value is its own single column.
            Prim::Reshape { shape: to }
                if splittable(to) && to[r - 1] == 1 && g.ty(node.inputs[0]).shape[..] == to[..r - 1] =>
            {
                Val::Cols(vec![s.whole(&map[node.inputs[0].index()].clone())])
            }
            // A broadcast along the trailing axis: every column is the same value.
            Prim::BroadcastInDim { shape: to, dims } if splittable(to) && !dims.contains(&(r - 1)) => {
                let x = s.whole(&map[node.inputs[0].index()].clone());
                let col = s.broadcast(x, &to[..r - 1], dims);
                Val::Cols(vec![col; to[r - 1]])
            }
            // A broadcast along other axes that keeps the trailing one (a per-row vector used
            // for each of several directions): column by column.
            Prim::BroadcastInDim { shape: to, dims } if splittable(to) && dims.last() == Some(&(r - 1)) => {
                let x = map[node.inputs[0].index()].clone();
                let xk = *g.ty(node.inputs[0]).shape.last().expect("rank >= 1");
                let inner = &dims[..dims.len() - 1];
                let cols = (0..to[r - 1])
                    .map(|j| {
                        let c = s.column(&x, if xk == 1 { 0 } else { j });
                        s.broadcast(c, &to[..r - 1], inner)
                    })
                    .collect();
                Val::Cols(cols)
            }
            // A transpose that moves the split axis and keeps the others in order (a Jacobian
            // `[n, d, k]` returned as `[n, k, d]`): the columns, each reshaped with the unit
            // axis where the split one goes, joined along it (chunks of whole rows, not
            // interleaved elements).
            Prim::Transpose { perm }
                if matches!(map[node.inputs[0].index()], Val::Cols(_))
                    && perm.iter().filter(|&&p| p != r - 1).is_sorted() =>
            {
                let Val::Cols(cols) = map[node.inputs[0].index()].clone() else { unreachable!() };
                let a = perm.iter().position(|&p| p == r - 1).expect("a permutation");
                let mut piece = shape.clone();
                piece[a] = 1;
                let pieces: Vec<Var> =
                    cols.iter().map(|&c| s.push(Prim::Reshape { shape: piece.clone() }, vec![c])).collect();
                Val::Whole(if pieces.len() == 1 { pieces[0] } else { s.push(Prim::Concatenate { axis: a }, pieces) })
            }
            prim => {
                let ins: Vec<Var> = node.inputs.iter().map(|v| map[v.index()].clone()).map(|v| s.whole(&v)).collect();
                Val::Whole(s.out.push_typed(prim.clone(), ins, node.ty.clone()))
            }
        };
        map.push(val);
    }
    let outputs: Vec<Var> = g.outputs.iter().map(|v| map[v.index()].clone()).map(|v| s.whole(&v)).collect();
    s.out.outputs = outputs;
    Some(super::dce(&s.out))
}

/// Fewest elements of a concatenate that [`concatenates_as_pads`] rewrites.
const MIN_CONCAT: usize = 256;
/// Most operands of a concatenate that it rewrites (each is one load per element).
const MAX_PIECES: usize = 8;

/// Concatenates as sums of paddings, which fused loops read in place: each operand padded to
/// the result's shape with `-0` (floats; `0` for integers) around it, and the paddings added.
/// At each position one operand is itself and the others are `-0`, and `x + -0` is `x` for
/// every `x` (signed zeros and NaNs included), so the values are bitwise the concatenate's.
/// The concatenate then costs no kernel call and no intermediate: its consumers' loop reads
/// the pieces (`ode`'s `[y0, f(y)[..n-1]]` stencils, the columns joined again above).
/// `None` when the graph has no such concatenate.
pub(super) fn concatenates_as_pads(g: &Graph) -> Option<Graph> {
    use crate::DType;
    let eligible = |node: &crate::ir::Node| {
        matches!(node.prim, Prim::Concatenate { .. })
            && matches!(node.ty.dtype, DType::F32 | DType::F64 | DType::I32 | DType::I64)
            && node.ty.numel() >= MIN_CONCAT
            && (2..=MAX_PIECES).contains(&node.inputs.len())
            && node.inputs.iter().all(|x| g.ty(*x).numel() > 0)
    };
    if !g.nodes.iter().any(eligible) {
        return None;
    }
    let mut out = Graph::default();
    let mut map: Vec<Var> = Vec::with_capacity(g.nodes.len());
    for node in &g.nodes {
        let ins: Vec<Var> = node.inputs.iter().map(|v| map[v.index()]).collect();
        let v = match &node.prim {
            Prim::Input(_) => out.add_input(node.ty.clone()),
            Prim::Concatenate { axis } if eligible(node) => {
                let dtype = node.ty.dtype;
                let fill = if dtype.is_float() { -0.0 } else { 0.0 };
                let scalar = crate::TensorType::new(dtype, vec![]);
                let fill = out.push_typed(Prim::Constant(Arc::new(Array::full(dtype, vec![], fill))), vec![], scalar);
                let (r, total) = (node.ty.rank(), node.ty.shape[*axis]);
                let mut offset = 0;
                let mut sum: Option<Var> = None;
                for (&x, &orig) in ins.iter().zip(&node.inputs) {
                    let len = g.ty(orig).shape[*axis];
                    let (mut low, mut high) = (vec![0i64; r], vec![0i64; r]);
                    low[*axis] = offset as i64;
                    high[*axis] = (total - offset - len) as i64;
                    offset += len;
                    let padded = out
                        .push(Prim::Pad { low, high, interior: vec![0; r] }, vec![x, fill])
                        .expect("columns: the padding types check");
                    sum = Some(match sum {
                        None => padded,
                        Some(a) => out
                            .push(Prim::Binary(crate::ops::BinaryOp::Add), vec![a, padded])
                            .expect("columns: the sum types check"),
                    });
                }
                sum.expect("two or more operands")
            }
            prim => out.push_typed(prim.clone(), ins, node.ty.clone()),
        };
        map.push(v);
    }
    out.outputs = g.outputs.iter().map(|v| map[v.index()]).collect();
    Some(out)
}
