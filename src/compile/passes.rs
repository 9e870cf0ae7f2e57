//! Graph-to-graph optimisation passes. Each rewrite is exact in floating point,
//! except `sum(broadcast(x)) -> x * n`, which replaces n additions of the same
//! value by one multiplication (equal up to rounding), and the weighted sums of products
//! with a constant factor that `contract.rs` contracts in the other order, then products
//! with a diagonal matrix that `diagonal.rs` turns into scalings (dropping terms that are
//! zero for finite values).

use super::fxhash::{FxHashMap, FxHasher};
use crate::array::{Array, Data};
use crate::ir::{Graph, Var};
use crate::ops::{BinaryOp, Prim, ReduceOp, UnaryOp};
use std::sync::Arc;

/// Constants up to this many elements are computed at compile time.
pub(super) const FOLD_LIMIT: usize = 1 << 16;

/// The common value of an array whose elements are all equal (bitwise, as f64).
fn splat_value(a: &Array) -> Option<f64> {
    fn same<T: Copy>(v: &[T], eq: impl Fn(T, T) -> bool) -> Option<T> {
        let first = *v.first()?;
        v.iter().all(|&x| eq(x, first)).then_some(first)
    }
    match &a.data {
        Data::F32(v) => same(v, |x, y| x.to_bits() == y.to_bits()).map(f64::from),
        Data::F64(v) => same(v, |x, y| x.to_bits() == y.to_bits()),
        Data::I32(v) => same(v, |x, y| x == y).map(f64::from),
        // Only integers that f64 represents exactly.
        Data::I64(v) => same(v, |x, y| x == y).filter(|x| x.unsigned_abs() <= 1 << 53).map(|x| x as f64),
        Data::Bool(v) => same(v, |x, y| x == y).map(|b| if b { 1.0 } else { 0.0 }),
    }
}

/// A constant that repeats along some axes (as eager broadcasts make), as its smallest slice
/// and the axes it keeps (the `dims` of a broadcast back to the full shape), if any repeat.
fn unbroadcast(a: &Array) -> Option<(Array, Vec<usize>)> {
    fn along<T: Copy>(v: &[T], shape: &[usize], axis: usize, eq: impl Fn(T, T) -> bool) -> Option<Vec<T>> {
        let (n, inner) = (shape[axis], shape[axis + 1..].iter().product::<usize>());
        let rows = v.chunks_exact(n * inner);
        if !rows
            .clone()
            .all(|r| r.chunks_exact(inner).skip(1).all(|s| s.iter().zip(&r[..inner]).all(|(&x, &y)| eq(x, y))))
        {
            return None;
        }
        Some(rows.flat_map(|r| r[..inner].iter().copied()).collect())
    }
    let mut shape = a.shape.clone();
    let mut data = a.data.clone();
    let mut kept: Vec<usize> = (0..shape.len()).collect();
    let mut axis = 0;
    while axis < shape.len() {
        let reduced = if shape[axis] < 2 || data.is_empty() {
            None
        } else {
            match &data {
                Data::F32(v) => along(v, &shape, axis, |x, y| x.to_bits() == y.to_bits()).map(Data::F32),
                Data::F64(v) => along(v, &shape, axis, |x, y| x.to_bits() == y.to_bits()).map(Data::F64),
                Data::I32(v) => along(v, &shape, axis, |x, y| x == y).map(Data::I32),
                Data::I64(v) => along(v, &shape, axis, |x, y| x == y).map(Data::I64),
                Data::Bool(v) => along(v, &shape, axis, |x, y| x == y).map(Data::Bool),
            }
        };
        match reduced {
            Some(d) => {
                data = d;
                shape.remove(axis);
                kept.remove(axis);
            }
            None => axis += 1,
        }
    }
    (kept.len() < a.shape.len()).then(|| (Array::new(shape, data), kept))
}

/// The value of a constant whose elements are all equal, if `v` is one (directly or broadcast).
fn splat(g: &Graph, v: Var) -> Option<f64> {
    match &g.nodes[v.index()].prim {
        Prim::Constant(a) => splat_value(a),
        Prim::BroadcastInDim { .. } => splat(g, g.nodes[v.index()].inputs[0]),
        _ => None,
    }
}

/// The values already computed, for common-subexpression elimination.
///
/// Most nodes are found in a short list by their latest operand (see `by_operand`), compared
/// in full (equal primitive, same operands). Past that list, nodes are found by a cheap key: their primitive's kind (and element-wise operation,
/// or the parameters of the common structural primitives) and operands (in order, or sorted for commutative operations); the node found must also
/// have an equal primitive (equal parameters). Nodes whose key is taken by a different
/// primitive, constants (equal only as the same array) and structured primitives (equal only
/// with the same sub-graphs) are found by a text key naming all of that instead.
#[derive(Default)]
struct Seen {
    /// By the hash of [`Seen::plain_key`] (a small entry: graphs of 10^5 nodes make large
    /// tables, and their size is what the probes' cache misses grow with); the node found
    /// is compared with the one looked up.
    plain: FxHashMap<u64, Var>,
    keyed: FxHashMap<String, Var>,
    /// Nodes with operands are first kept in a short list by their latest operand
    /// (`by_operand[v]`: the newest such node of `v`, `next[node]`: the one before it, up
    /// to [`Seen::LISTED`] per operand; `NONE` ends a list): a node's candidates are read
    /// near the operands just written, where a table of 10^5 entries is a cache miss per
    /// probe. Only an operand whose list is full sends its later nodes to `plain`.
    by_operand: Vec<u32>,
    next: Vec<u32>,
    /// Constants by the address of their array (what `identity_key` names them by, without
    /// formatting it).
    constants: FxHashMap<usize, Var>,
    /// Small slices already rewritten (`pads::through_pads`), by operand, start, stride and
    /// shape: a chain that reads a value twice is rewritten once per value, not per path.
    small_slices: FxHashMap<SliceKey, Var>,
    /// How many small-slice rewrites enclose the current one.
    small_slice_depth: usize,
}

/// A slice's operand, start, stride and shape.
type SliceKey = (Var, Vec<usize>, Vec<usize>, Vec<usize>);

/// Deepest chain of element-wise operations a small slice is pushed through.
const MAX_SMALL_SLICE_DEPTH: usize = 64;

/// A CSE key's operands: up to three in place (no allocation per node), or a list.
#[derive(PartialEq, Eq, Hash)]
enum Operands {
    Few(u8, [Var; 3]),
    Many(Vec<Var>),
}

/// Commutative operations are exactly commutative in IEEE arithmetic: their operands are
/// compared sorted.
fn commutative(prim: &Prim) -> bool {
    use BinaryOp::*;
    matches!(prim, Prim::Binary(Add | Mul | Max | Min | Eq | Ne | And | Or | Xor))
}

fn operand_order(prim: &Prim, inputs: &[Var]) -> Vec<Var> {
    let mut ins = inputs.to_vec();
    if commutative(prim) {
        ins.sort_unstable();
    }
    ins
}

/// [`operand_order`] as a key.
fn operand_key(prim: &Prim, inputs: &[Var]) -> Operands {
    if inputs.len() > 3 {
        return Operands::Many(operand_order(prim, inputs));
    }
    let mut few = [Var(u32::MAX); 3];
    few[..inputs.len()].copy_from_slice(inputs);
    if commutative(prim) {
        few[..inputs.len()].sort_unstable();
    }
    Operands::Few(inputs.len() as u8, few)
}

impl Seen {
    /// The key of the nodes compared by identity (constants, structured primitives).
    fn identity_key(prim: &Prim, ins: &[Var]) -> Option<String> {
        let subs = prim.subgraphs();
        if !matches!(prim, Prim::Constant(_)) && subs.is_empty() {
            return None;
        }
        let mut key = match prim {
            Prim::Constant(a) => format!("constant@{:p}", Arc::as_ptr(a)),
            p => p.to_string(),
        };
        for sub in subs {
            key.push_str(&format!(" sub@{:p}", Arc::as_ptr(&sub.0)));
        }
        for v in ins {
            key.push_str(&format!(" %{}", v.0));
        }
        Some(key)
    }

    fn plain_key(prim: &Prim, ins: Operands) -> (std::mem::Discriminant<Prim>, u64, Operands) {
        use std::hash::{Hash, Hasher};
        let mut h = FxHasher::default();
        // The parameters of the structural primitives too: the slices of one value (a split),
        // its reshapes and broadcasts would otherwise share a key and go by their text.
        match prim {
            Prim::Unary(op) => op.hash(&mut h),
            Prim::Binary(op) => op.hash(&mut h),
            Prim::Proj(k) => k.hash(&mut h),
            Prim::Reduce { op, axes } => (op, axes).hash(&mut h),
            Prim::Reshape { shape } => shape.hash(&mut h),
            Prim::BroadcastInDim { shape, dims } => (shape, dims).hash(&mut h),
            Prim::Transpose { perm } => perm.hash(&mut h),
            Prim::Slice { start, stop, stride } => (start, stop, stride).hash(&mut h),
            Prim::Pad { low, high, interior } => (low, high, interior).hash(&mut h),
            Prim::Concatenate { axis } => axis.hash(&mut h),
            Prim::Rev { axes } => axes.hash(&mut h),
            Prim::Convert { dtype } => dtype.hash(&mut h),
            Prim::DotGeneral { lhs_contract, rhs_contract, lhs_batch, rhs_batch } => {
                (lhs_contract, rhs_contract, lhs_batch, rhs_batch).hash(&mut h)
            }
            _ => {}
        }
        (std::mem::discriminant(prim), h.finish(), ins)
    }

    /// An existing node computing `prim(ins)` in `out`, or `None` after recording that `v`
    /// (the node about to be pushed) computes it. One key per node: a bucket holds the first
    /// node of its key's hash, and nodes that share it with a different primitive (other axes
    /// or shapes on the same operands: rare) or other operands (a hash collision) go by their
    /// full text instead.
    /// The most nodes listed per operand.
    const LISTED: usize = 8;
    const NONE: u32 = u32::MAX;

    fn find_or_insert(&mut self, out: &Graph, prim: &Prim, ins: &[Var], v: Var) -> Option<Var> {
        use std::collections::hash_map::Entry;
        // Nodes with operands: an equal node is in the list of the latest operand, or, once
        // that list is full (it never shrinks), in the tables below.
        if let Some(&last) = ins.iter().max() {
            if !matches!(prim, Prim::Constant(_)) && prim.subgraphs().is_empty() {
                let key = operand_key(prim, ins);
                if self.by_operand.len() <= last.index() {
                    self.by_operand.resize(out.nodes.len().max(last.index() + 1), Seen::NONE);
                }
                let (mut c, mut listed) = (self.by_operand[last.index()], 0);
                while c != Seen::NONE {
                    let node = &out.nodes[c as usize];
                    if node.prim == *prim && operand_key(prim, &node.inputs) == key {
                        return Some(Var(c));
                    }
                    listed += 1;
                    c = self.next[c as usize];
                }
                if listed < Seen::LISTED {
                    if self.next.len() <= v.index() {
                        self.next.resize(v.index() + 1, Seen::NONE);
                    }
                    self.next[v.index()] = self.by_operand[last.index()];
                    self.by_operand[last.index()] = v.0;
                    return None;
                }
            }
        }
        // (Constants have no operands, and structured primitives are not commutative: their
        // operands are in order.)
        if let Prim::Constant(a) = prim {
            return match self.constants.entry(Arc::as_ptr(a) as usize) {
                Entry::Occupied(e) => Some(*e.get()),
                Entry::Vacant(e) => {
                    e.insert(v);
                    None
                }
            };
        }
        if let Some(key) = Seen::identity_key(prim, ins) {
            return self.keyed_find_or_insert(key, v);
        }
        let key = Seen::plain_key(prim, operand_key(prim, ins));
        let hash = {
            use std::hash::{Hash, Hasher};
            let mut h = FxHasher::default();
            key.hash(&mut h);
            h.finish()
        };
        match self.plain.entry(hash) {
            Entry::Vacant(e) => {
                e.insert(v);
                None
            }
            Entry::Occupied(e)
                if out.nodes[e.get().index()].prim == *prim
                    && operand_key(prim, &out.nodes[e.get().index()].inputs) == key.2 =>
            {
                Some(*e.get())
            }
            Entry::Occupied(_) => {
                let mut key = prim.to_string();
                for w in operand_order(prim, ins) {
                    key.push_str(&format!(" %{}", w.0));
                }
                self.keyed_find_or_insert(key, v)
            }
        }
    }

    fn keyed_find_or_insert(&mut self, key: String, v: Var) -> Option<Var> {
        match self.keyed.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(v);
                None
            }
        }
    }
}

/// A rewrite of `prim(inputs)` into an existing value or a simpler node, if one applies.
enum Rewrite {
    Use(Var),
    Node(Prim, Vec<Var>),
}

fn simplify(g: &Graph, prim: &Prim, ins: &[Var]) -> Option<Rewrite> {
    let node = |v: Var| &g.nodes[v.index()];
    let ty = |v: Var| &g.nodes[v.index()].ty;
    match prim {
        Prim::StopGradient => Some(Rewrite::Use(ins[0])),
        Prim::Reshape { shape } => {
            if &ty(ins[0]).shape == shape {
                return Some(Rewrite::Use(ins[0]));
            }
            match &node(ins[0]).prim {
                Prim::Reshape { .. } => Some(Rewrite::Node(prim.clone(), node(ins[0]).inputs.clone())),
                _ => None,
            }
        }
        Prim::Transpose { perm } => {
            if perm.iter().enumerate().all(|(i, &p)| i == p) {
                return Some(Rewrite::Use(ins[0]));
            }
            match &node(ins[0]).prim {
                Prim::Transpose { perm: inner } => {
                    let composed: Vec<usize> = perm.iter().map(|&p| inner[p]).collect();
                    Some(Rewrite::Node(Prim::Transpose { perm: composed }, node(ins[0]).inputs.clone()))
                }
                _ => None,
            }
        }
        Prim::BroadcastInDim { shape, dims } => {
            if &ty(ins[0]).shape == shape && dims.iter().enumerate().all(|(i, &d)| i == d) {
                return Some(Rewrite::Use(ins[0]));
            }
            match &node(ins[0]).prim {
                // broadcast(broadcast(x)): compose the axis maps.
                Prim::BroadcastInDim { dims: inner, .. } => {
                    let composed: Vec<usize> = inner.iter().map(|&d| dims[d]).collect();
                    let x = node(ins[0]).inputs[0];
                    // Valid when every axis of x that is stretched is stretched in one step.
                    let ok = ty(x).shape.iter().enumerate().all(|(i, &n)| n == 1 || n == shape[composed[i]]);
                    ok.then(|| Rewrite::Node(Prim::BroadcastInDim { shape: shape.clone(), dims: composed }, vec![x]))
                }
                _ => None,
            }
        }
        Prim::Unary(UnaryOp::Neg) => match &node(ins[0]).prim {
            Prim::Unary(UnaryOp::Neg) => Some(Rewrite::Use(node(ins[0]).inputs[0])),
            _ => None,
        },
        // x + (-y) and (-x) + y are by definition the same roundings as x - y and y - x,
        // and x - (-y) as x + y: fold the negations away.
        Prim::Binary(op @ (BinaryOp::Add | BinaryOp::Sub)) => {
            let neg = |v: Var| match &node(v).prim {
                Prim::Unary(UnaryOp::Neg) => Some(node(v).inputs[0]),
                _ => None,
            };
            match (op, neg(ins[0]), neg(ins[1])) {
                (BinaryOp::Add, _, Some(y)) => Some(Rewrite::Node(Prim::Binary(BinaryOp::Sub), vec![ins[0], y])),
                (BinaryOp::Add, Some(x), None) => Some(Rewrite::Node(Prim::Binary(BinaryOp::Sub), vec![ins[1], x])),
                (BinaryOp::Sub, _, Some(y)) => Some(Rewrite::Node(Prim::Binary(BinaryOp::Add), vec![ins[0], y])),
                _ if *op == BinaryOp::Sub && splat(g, ins[1]) == Some(0.0) => Some(Rewrite::Use(ins[0])),
                _ => None,
            }
        }
        Prim::Binary(BinaryOp::Mul) => {
            if splat(g, ins[1]) == Some(1.0) {
                Some(Rewrite::Use(ins[0]))
            } else if splat(g, ins[0]) == Some(1.0) {
                Some(Rewrite::Use(ins[1]))
            } else {
                None
            }
        }
        // x - 0 and x / 1 are exact for every x (x + 0 is not: -0 + 0 = +0).
        Prim::Binary(BinaryOp::Div) if splat(g, ins[1]) == Some(1.0) => Some(Rewrite::Use(ins[0])),
        Prim::Select => splat(g, ins[0]).map(|p| Rewrite::Use(if p != 0.0 { ins[1] } else { ins[2] })),
        _ => None,
    }
}

/// `sum(broadcast(x))` over only the axes the broadcast created: `x * n`, reshaped.
/// Returns the nodes to add (the count constant, the product, the reshape) via `push`.
fn sum_of_broadcast(g: &mut Graph, prim: &Prim, ins: &[Var]) -> Option<Var> {
    let Prim::Reduce { op: ReduceOp::Sum, axes } = prim else {
        return None;
    };
    let b = &g.nodes[ins[0].index()];
    let Prim::BroadcastInDim { shape, dims } = &b.prim else {
        return None;
    };
    if axes.iter().any(|a| dims.contains(a)) {
        return None;
    }
    let x = b.inputs[0];
    let xty = g.ty(x).clone();
    // The kept axes must be exactly x's axes, in order, unstretched.
    let kept: Vec<usize> = (0..shape.len()).filter(|a| !axes.contains(a)).collect();
    if kept != *dims || (0..dims.len()).any(|i| xty.shape[i] != shape[dims[i]]) {
        return None;
    }
    let n: usize = axes.iter().map(|&a| shape[a]).product();
    let count = Arc::new(Array::full(xty.dtype, vec![], n as f64));
    let c = g.push_typed(Prim::Constant(count), vec![], crate::TensorType::new(xty.dtype, vec![]));
    let cb = g.push(Prim::BroadcastInDim { shape: xty.shape.clone(), dims: vec![] }, vec![c]).ok()?;
    g.push(Prim::Binary(BinaryOp::Mul), vec![x, cb]).ok()
}

/// One-iteration scans replaced by their bodies (`single_iteration.rs`), then
/// simplification, constant folding and common-subexpression elimination in one
/// forward walk (with the rewrites of `pads.rs`; pads of constants that kernels read folded
/// back after it), then dead-code elimination, then the product rewrites of `contract.rs` and
/// `diagonal.rs`, then transposes of element-wise results sunk into them (`sink_transpose.rs`).
///
/// # Panics
/// If the graph breaks its invariants ([`Graph::validate`]): constant folding runs kernels
/// on the node types as they are.
#[track_caller]
pub fn optimize(g: &Graph) -> Graph {
    if let Err(e) = g.validate() {
        panic!("optimize: invalid graph: {e}");
    }
    let inlined = super::single_iteration::inline_single_iteration_scans(g);
    let g = inlined.as_ref().unwrap_or(g);
    // Reserved up front: growing a vector of 10^5 nodes by doubling copies (and page-faults)
    // it several times over.
    let mut out = Graph { nodes: Vec::with_capacity(g.nodes.len()), ..Graph::default() };
    let mut map: Vec<Var> = Vec::with_capacity(g.nodes.len());
    let mut seen = Seen {
        plain: FxHashMap::default(),
        keyed: FxHashMap::default(),
        constants: FxHashMap::default(),
        by_operand: Vec::with_capacity(g.nodes.len()),
        next: Vec::with_capacity(g.nodes.len()),
        ..Seen::default()
    };
    for node in &g.nodes {
        let ins: Vec<Var> = node.inputs.iter().map(|v| map[v.index()]).collect();
        let v = match &node.prim {
            Prim::Input(_) => out.add_input(node.ty.clone()),
            prim => emit(&mut out, &mut seen, prim.clone(), ins, &node.ty),
        };
        map.push(v);
    }
    out.outputs = g.outputs.iter().map(|v| map[v.index()]).collect();
    let out = super::diagonal::diagonal_products(super::contract::weighted_sums_of_products(swap_and_dce(
        super::pads::refold_pads_read_by_kernels(out),
    )));
    super::sink_transpose::sink_transposes(out)
}

/// The product(s) that replace a transposed product (see `swap_transposed_products`):
/// one swapped `dot_general`, or two combined by an element-wise op. Operands are variables
/// of the graph the rewrite was found in.
enum Swap {
    One(Prim, Vec<Var>),
    Two(BinaryOp, [(Prim, Vec<Var>); 2]),
}

/// The swapped product for node `d` of `g` (`uses`: its readers per node), if it is a
/// dot_general with no other reader that `perm` transposes that way.
fn swapped_product(g: &Graph, uses: &[usize], d: Var, perm: &[usize]) -> Option<(Prim, Vec<Var>)> {
    let dot = &g.nodes[d.index()];
    let Prim::DotGeneral { lhs_contract, rhs_contract, lhs_batch, rhs_batch } = &dot.prim else { return None };
    if !lhs_batch.is_empty() || uses[d.index()] != 1 {
        return None;
    }
    let nl = g.ty(dot.inputs[0]).rank() - lhs_contract.len();
    let nr = g.ty(dot.inputs[1]).rank() - rhs_contract.len();
    let order: Vec<usize> = (nl..nl + nr).chain(0..nl).collect();
    (perm == order).then(|| {
        let prim = Prim::DotGeneral {
            lhs_contract: rhs_contract.clone(),
            rhs_contract: lhs_contract.clone(),
            lhs_batch: rhs_batch.clone(),
            rhs_batch: lhs_batch.clone(),
        };
        (prim, vec![dot.inputs[1], dot.inputs[0]])
    })
}

/// Where `swap_transposed_products` rewrites `g` (by node index), decided on `g` alone.
fn transposed_products(g: &Graph) -> Vec<(usize, Swap)> {
    let uses = g.use_counts();
    let swapped = |d: Var, perm: &[usize]| swapped_product(g, &uses, d, perm);
    let mut swaps = Vec::new();
    for (i, node) in g.nodes.iter().enumerate() {
        let Prim::Transpose { perm } = &node.prim else { continue };
        let x = node.inputs[0];
        if let Some(one) = swapped(x, perm) {
            swaps.push((i, Swap::One(one.0, one.1)));
        } else if let (Prim::Binary(op), 1) = (&g.nodes[x.index()].prim, uses[x.index()]) {
            let ins = &g.nodes[x.index()].inputs;
            if op.is_comparison() || ins.len() != 2 {
                continue;
            }
            if let (Some(a), Some(b)) = (swapped(ins[0], perm), swapped(ins[1], perm)) {
                swaps.push((i, Swap::Two(*op, [a, b])));
            }
        }
    }
    swaps
}

/// `dce(&swap_transposed_products(&g))` in one copy that moves `g`'s nodes: the same graph,
/// node for node. Liveness is computed on the rewritten graph without building it (a
/// replaced transpose reads its products' operands; the products it replaces had no other
/// reader, so they die with it), then the live nodes are moved in order.
fn swap_and_dce(g: Graph) -> Graph {
    let swaps = transposed_products(&g);
    let mut live = vec![false; g.nodes.len()];
    for v in &g.outputs {
        live[v.index()] = true;
    }
    let mut next_swap = swaps.len();
    for i in (0..g.nodes.len()).rev() {
        let replaced = next_swap > 0 && swaps[next_swap - 1].0 == i;
        if replaced {
            next_swap -= 1;
        }
        if !live[i] {
            continue;
        }
        if replaced {
            match &swaps[next_swap].1 {
                Swap::One(_, operands) => operands.iter().for_each(|v| live[v.index()] = true),
                Swap::Two(_, pair) => pair.iter().flat_map(|(_, o)| o).for_each(|v| live[v.index()] = true),
            }
        } else {
            for v in &g.nodes[i].inputs {
                live[v.index()] = true;
            }
        }
    }
    if swaps.iter().all(|(_, s)| matches!(s, Swap::One(..))) {
        return dce_in_place(g, &live, swaps);
    }
    let mut out = Graph { nodes: Vec::with_capacity(live.iter().filter(|&&l| l).count()), ..Graph::default() };
    let mut map = vec![Var(u32::MAX); g.nodes.len()];
    let mut swaps = swaps.into_iter().peekable();
    for (i, node) in g.nodes.into_iter().enumerate() {
        let swap = match swaps.peek() {
            Some((s, _)) if *s == i => swaps.next().map(|(_, swap)| swap),
            _ => None,
        };
        if let Prim::Input(_) = node.prim {
            map[i] = out.add_input(node.ty);
            continue;
        }
        if !live[i] {
            continue;
        }
        let remap = |ins: Vec<Var>| -> Vec<Var> { ins.into_iter().map(|v| map[v.index()]).collect() };
        map[i] = match swap {
            Some(Swap::One(prim, operands)) => out.push_typed(prim, remap(operands), node.ty),
            Some(Swap::Two(op, [(pa, oa), (pb, ob)])) => {
                let a = out.push_typed(pa, remap(oa), node.ty.clone());
                let b = out.push_typed(pb, remap(ob), node.ty.clone());
                out.push_typed(Prim::Binary(op), vec![a, b], node.ty)
            }
            None => {
                let mut ins = node.inputs;
                ins.iter_mut().for_each(|v| *v = map[v.index()]);
                out.push_typed(node.prim, ins, node.ty)
            }
        };
    }
    out.outputs = g.outputs.iter().map(|v| map[v.index()]).collect();
    out
}

/// `g` without the nodes not `live` (inputs always stay), each node at a position of
/// `swaps` (increasing; all [`Swap::One`]) replaced by its swapped product, in its own
/// storage: the nodes kept move down in place (no second vector of 10^5 nodes to write and
/// page-fault), in order. What rebuilding node by node leaves: `g`'s inputs are in node
/// order (as `optimize` builds them), so they keep their numbers.
fn dce_in_place(mut g: Graph, live: &[bool], swaps: Vec<(usize, Swap)>) -> Graph {
    let mut map = vec![Var(u32::MAX); g.nodes.len()];
    let mut kept = 0;
    let mut swaps = swaps.into_iter().peekable();
    for i in 0..g.nodes.len() {
        let swap = swaps.next_if(|(s, _)| *s == i).map(|(_, swap)| swap);
        if !live[i] && !matches!(g.nodes[i].prim, Prim::Input(_)) {
            continue;
        }
        match swap {
            Some(Swap::One(prim, operands)) => {
                g.nodes[i].prim = prim;
                g.nodes[i].inputs = operands;
            }
            Some(Swap::Two(..)) => unreachable!("dce_in_place: one product per swap"),
            None => {}
        }
        // (Everything between `kept` and `i` is dropped: swapped behind `i`, never read again.
        // While nothing before `i` was dropped, `map` is the identity there: the operands stay,
        // unread — reading each node's operand list is a cache miss at 10^5 nodes.)
        if kept != i {
            g.nodes[i].inputs.iter_mut().for_each(|v| *v = map[v.index()]);
            g.nodes.swap(kept, i);
        }
        map[i] = Var(kept as u32);
        kept += 1;
    }
    g.nodes.truncate(kept);
    g.inputs.iter_mut().for_each(|v| *v = map[v.index()]);
    g.outputs.iter_mut().for_each(|v| *v = map[v.index()]);
    debug_assert!(g
        .inputs
        .iter()
        .enumerate()
        .all(|(k, v)| matches!(g.nodes[v.index()].prim, Prim::Input(j) if j == k)));
    g
}

/// `transpose(dot_general(a, b))` that only swaps the two operands' free axes (as reverse
/// mode produces for weight gradients) becomes `dot_general(b, a)`: no transpose pass. Also
/// through one element-wise op: `transpose(dot(a, b) + dot(c, d))` becomes
/// `dot(b, a) + dot(d, c)` (forward-over-reverse sums such pairs). Applied only where the
/// products (and the element-wise op) have no other reader.
#[cfg(test)]
fn swap_transposed_products(g: &Graph) -> Graph {
    let uses = g.use_counts();
    let swapped = |d: Var, perm: &[usize]| swapped_product(g, &uses, d, perm);
    let mut out = Graph::default();
    let mut map: Vec<Var> = Vec::with_capacity(g.nodes.len());
    for node in &g.nodes {
        let ins: Vec<Var> = node.inputs.iter().map(|v| map[v.index()]).collect();
        let mut emitted = None;
        if let Prim::Transpose { perm } = &node.prim {
            let x = node.inputs[0];
            if let Some((prim, operands)) = swapped(x, perm) {
                let operands = operands.iter().map(|v| map[v.index()]).collect();
                emitted = Some(out.push_typed(prim, operands, node.ty.clone()));
            } else if let (Prim::Binary(op), 1) = (&g.nodes[x.index()].prim, uses[x.index()]) {
                let pair: Option<Vec<(Prim, Vec<Var>)>> =
                    g.nodes[x.index()].inputs.iter().map(|&d| swapped(d, perm)).collect();
                if let (false, Some(pair)) = (op.is_comparison(), pair) {
                    let products: Vec<Var> = pair
                        .into_iter()
                        .map(|(prim, operands)| {
                            let operands = operands.iter().map(|v| map[v.index()]).collect();
                            out.push_typed(prim, operands, node.ty.clone())
                        })
                        .collect();
                    emitted = Some(out.push_typed(Prim::Binary(*op), products, node.ty.clone()));
                }
            }
        }
        let v = match (emitted, &node.prim) {
            (Some(v), _) => v,
            (None, Prim::Input(_)) => out.add_input(node.ty.clone()),
            (None, prim) => out.push_typed(prim.clone(), ins, node.ty.clone()),
        };
        map.push(v);
    }
    out.outputs = g.outputs.iter().map(|v| map[v.index()]).collect();
    out
}

fn emit(out: &mut Graph, seen: &mut Seen, prim: Prim, ins: Vec<Var>, ty: &crate::TensorType) -> Var {
    // Rewrites may produce a new node that simplifies further: loop until none applies.
    let (mut prim, mut ins) = (prim, ins);
    // A constant whose elements are all equal (as eager broadcasts produce) becomes a scalar
    // broadcast, which fused loops read without touching memory.
    if let Prim::Constant(a) = &prim {
        if a.numel() > 1 {
            if let Some(v) = splat_value(a) {
                let scalar = Arc::new(Array::full(ty.dtype, vec![], v));
                let c = emit(out, seen, Prim::Constant(scalar), vec![], &crate::TensorType::new(ty.dtype, vec![]));
                return emit(out, seen, Prim::BroadcastInDim { shape: ty.shape.clone(), dims: vec![] }, vec![c], ty);
            }
            // Likewise one that repeats along some axes: fused loops read the small slice.
            if let Some((small, dims)) = unbroadcast(a) {
                let sty = crate::TensorType::new(ty.dtype, small.shape.clone());
                let c = emit(out, seen, Prim::Constant(Arc::new(small)), vec![], &sty);
                return emit(out, seen, Prim::BroadcastInDim { shape: ty.shape.clone(), dims }, vec![c], ty);
            }
            // Or one that is zero outside a small box (a one-hot cotangent seed): a padding
            // of the box, which fused loops read in place.
            if let Some((small, low, high)) = super::pads::unpad(a) {
                let rank = low.len();
                let sty = crate::TensorType::new(ty.dtype, small.shape.clone());
                let c = emit(out, seen, Prim::Constant(Arc::new(small)), vec![], &sty);
                let zero = Arc::new(Array::full(ty.dtype, vec![], 0.0));
                let z = emit(out, seen, Prim::Constant(zero), vec![], &crate::TensorType::new(ty.dtype, vec![]));
                return emit(out, seen, Prim::Pad { low, high, interior: vec![0; rank] }, vec![c, z], ty);
            }
        }
    }
    // gbsmall: a gather from a scalar broadcast reads that scalar wherever its (clamped)
    // indices point: a broadcast of the scalar, with nothing stored or read. (Forward-over-
    // reverse code gathers its all-ones tangent so: kmeans's `jvp(grad(cost), c, ones)`.)
    if let Prim::Gather { .. } = prim {
        let src = &out.nodes[ins[0].index()];
        if let Prim::BroadcastInDim { dims, .. } = &src.prim {
            if dims.is_empty() && src.ty.numel() > 0 {
                let scalar = src.inputs[0];
                return emit(
                    out,
                    seen,
                    Prim::BroadcastInDim { shape: ty.shape.clone(), dims: vec![] },
                    vec![scalar],
                    ty,
                );
            }
        }
    }
    loop {
        match simplify(out, &prim, &ins) {
            Some(Rewrite::Use(v)) => return v,
            Some(Rewrite::Node(p, i)) => {
                prim = p;
                ins = i;
            }
            None => break,
        }
    }
    if let Some(v) = sum_of_broadcast(out, &prim, &ins) {
        return v;
    }
    // Small slices pushed through element-wise operations recurse along the chain: each
    // (operand, window) is rewritten once (`small_slices`), and only so deep.
    let small_slice = matches!(prim, Prim::Slice { .. }) && ty.numel() <= super::pads::SMALL_SLICE;
    let memo_key = if let (true, Prim::Slice { start, stride, .. }) = (small_slice, &prim) {
        let key = (ins[0], start.clone(), stride.clone(), ty.shape.clone());
        if let Some(&v) = seen.small_slices.get(&key) {
            return v;
        }
        Some(key)
    } else {
        None
    };
    let push_small = small_slice && seen.small_slice_depth < MAX_SMALL_SLICE_DEPTH;
    seen.small_slice_depth += usize::from(small_slice);
    let mut emit_more = |out: &mut Graph, p: Prim, i: Vec<Var>, t: &crate::TensorType| emit(out, seen, p, i, t);
    let rewritten = super::pads::through_pads(out, &prim, &ins, ty, push_small, &mut emit_more);
    seen.small_slice_depth -= usize::from(small_slice);
    if let Some(v) = rewritten {
        if let Some(key) = memo_key {
            seen.small_slices.insert(key, v);
        }
        return v;
    }
    let all_constant = !ins.is_empty() && ins.iter().all(|v| matches!(out.nodes[v.index()].prim, Prim::Constant(_)));
    // Collectives stay in the plan: folding would communicate while optimising.
    // (A pad that is mostly padding stays one: fused loops read it in place.)
    let sparse_pad = matches!(prim, Prim::Pad { .. }) && super::pads::mostly_padding(out.ty(ins[0]), ty);
    let foldable = !matches!(prim, Prim::BroadcastInDim { .. } | Prim::Iota { .. } | Prim::Proj(_))
        && !matches!(prim, Prim::AllReduce { .. } | Prim::Broadcast { .. } | Prim::ReduceTo { .. })
        && !prim.is_tuple()
        && !sparse_pad
        && ty.numel() <= FOLD_LIMIT;
    if all_constant && foldable {
        let arrays: Vec<&Array> = ins
            .iter()
            .map(|v| match &out.nodes[v.index()].prim {
                Prim::Constant(a) => a.as_ref(),
                _ => unreachable!(),
            })
            .collect();
        let value = crate::backend::cpu::kernel(&prim, &arrays, ty);
        return out.push_typed(Prim::Constant(Arc::new(value)), vec![], ty.clone());
    }
    if let Some(v) = seen.find_or_insert(out, &prim, &ins, Var(out.nodes.len() as u32)) {
        return v;
    }
    out.push_typed(prim, ins, ty.clone())
}

/// Removes nodes that no output depends on (inputs always stay).
pub fn dce(g: &Graph) -> Graph {
    let mut live = vec![false; g.nodes.len()];
    for v in &g.outputs {
        live[v.index()] = true;
    }
    for i in (0..g.nodes.len()).rev() {
        if live[i] {
            for v in &g.nodes[i].inputs {
                live[v.index()] = true;
            }
        }
    }
    let mut out = Graph::default();
    let mut map = vec![Var(u32::MAX); g.nodes.len()];
    for (i, node) in g.nodes.iter().enumerate() {
        if let Prim::Input(_) = node.prim {
            map[i] = out.add_input(node.ty.clone());
        } else if live[i] {
            let ins = node.inputs.iter().map(|v| map[v.index()]).collect();
            map[i] = out.push_typed(node.prim.clone(), ins, node.ty.clone());
        }
    }
    out.outputs = g.outputs.iter().map(|v| map[v.index()]).collect();
    out
}

/// Copies `g` node by node into a new graph, except the nodes at the positions in `found`
/// (increasing), whose replacement `replace` pushes (it gets the new graph, the new variable
/// of every earlier node, the old node and what was found there, and returns the variable
/// that stands for the node); then removes what became unread. The rebuild shared by the
/// rewriting passes (`contract.rs`, `diagonal.rs`).
pub(super) fn rebuild_replacing<F>(
    g: Graph,
    found: Vec<(usize, F)>,
    mut replace: impl FnMut(&mut Graph, &[Var], crate::ir::Node, F) -> Var,
) -> Graph {
    let mut out = Graph { nodes: Vec::with_capacity(g.nodes.len() + 6 * found.len()), ..Graph::default() };
    let mut map = vec![Var(u32::MAX); g.nodes.len()];
    let mut found = found.into_iter().peekable();
    for (i, node) in g.nodes.into_iter().enumerate() {
        if let Prim::Input(_) = node.prim {
            map[i] = out.add_input(node.ty);
            continue;
        }
        map[i] = match found.next_if(|(at, _)| *at == i) {
            None => {
                let ins = node.inputs.iter().map(|v| map[v.index()]).collect();
                out.push_typed(node.prim, ins, node.ty)
            }
            Some((_, f)) => replace(&mut out, &map[..i], node, f),
        };
    }
    out.outputs = g.outputs.iter().map(|v| map[v.index()]).collect();
    dce(&out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DType, TensorType};

    fn dot(g: &mut Graph, a: Var, b: Var) -> Var {
        let prim =
            Prim::DotGeneral { lhs_contract: vec![1], rhs_contract: vec![0], lhs_batch: vec![], rhs_batch: vec![] };
        g.push(prim, vec![a, b]).unwrap()
    }

    /// The one-copy rewrite gives exactly the two-copy one: transposed products (alone, and
    /// summed), a product read twice (not swapped), a comparison (not swapped), dead nodes.
    #[test]
    fn swap_and_dce_equals_swap_then_dce() {
        let mut g = Graph::default();
        let a = g.add_input(TensorType::new(DType::F64, vec![2, 3]));
        let b = g.add_input(TensorType::new(DType::F64, vec![3, 4]));
        let unused = g.add_input(TensorType::new(DType::F64, vec![5]));
        let t = Prim::Transpose { perm: vec![1, 0] };
        let d = dot(&mut g, a, b);
        let dead = g.push(Prim::Unary(UnaryOp::Exp), vec![a]).unwrap();
        let t1 = g.push(t.clone(), vec![d]).unwrap();
        let (d1, d2) = (dot(&mut g, a, b), dot(&mut g, a, b));
        let s = g.push(Prim::Binary(BinaryOp::Add), vec![d1, d2]).unwrap();
        let t2 = g.push(t.clone(), vec![s]).unwrap();
        let twice = dot(&mut g, a, b);
        let w = g.push(Prim::Binary(BinaryOp::Mul), vec![twice, twice]).unwrap();
        let t3 = g.push(t.clone(), vec![w]).unwrap();
        let (d3, d4) = (dot(&mut g, a, b), dot(&mut g, a, b));
        let c = g.push(Prim::Binary(BinaryOp::Lt), vec![d3, d4]).unwrap();
        let t4 = g.push(t.clone(), vec![c]).unwrap();
        let read_again = dot(&mut g, a, b);
        let t5 = g.push(t, vec![read_again]).unwrap();
        g.outputs = vec![t1, t2, t3, t4, t5, read_again];
        let _ = (unused, dead);
        g.validate().unwrap();
        let expected = dce(&swap_transposed_products(&g));
        let got = swap_and_dce(g.clone());
        assert_eq!(got.dump(), expected.dump());
        assert_eq!(got, expected);
        // Two transposes went (the lone product and the sum of two), three stay.
        let transposes = got.nodes.iter().filter(|n| matches!(n.prim, Prim::Transpose { .. })).count();
        assert_eq!(transposes, 3, "{}", got.dump());
        assert_eq!(got.inputs.len(), 3, "inputs stay, used or not");
    }

    /// Without products to swap (or with lone ones), `swap_and_dce` removes the dead nodes in
    /// place: the same graph as `dce` (inputs kept, used or not; node order; operands
    /// renumbered) after swapping.
    #[test]
    fn swap_and_dce_without_swaps_equals_dce() {
        let mut g = Graph::default();
        let a = g.add_input(TensorType::new(DType::F64, vec![4]));
        let dead = g.push(Prim::Unary(UnaryOp::Exp), vec![a]).unwrap();
        let b = g.add_input(TensorType::new(DType::F64, vec![4]));
        let s = g.push(Prim::Binary(BinaryOp::Add), vec![a, b]).unwrap();
        let _dead2 = g.push(Prim::Binary(BinaryOp::Mul), vec![dead, s]).unwrap();
        let t = g.push(Prim::Unary(UnaryOp::Sin), vec![s]).unwrap();
        let _unused = g.add_input(TensorType::new(DType::F64, vec![2]));
        let u = g.push(Prim::Binary(BinaryOp::Mul), vec![t, s]).unwrap();
        g.outputs = vec![u, s, u];
        g.validate().unwrap();
        let expected = dce(&g);
        let got = swap_and_dce(g.clone());
        got.validate().unwrap();
        assert_eq!(got.dump(), expected.dump());
        assert_eq!(got, expected);
        assert_eq!((got.nodes.len(), got.inputs.len()), (6, 3), "{}", got.dump());

        // A kept prefix (its operand lists left as they are), then a dead node, then readers
        // of nodes on both sides of it (renumbered).
        let mut g = Graph::default();
        let a = g.add_input(TensorType::new(DType::F64, vec![4]));
        let p = g.push(Prim::Unary(UnaryOp::Sin), vec![a]).unwrap();
        let q = g.push(Prim::Binary(BinaryOp::Add), vec![p, a]).unwrap();
        let _dead = g.push(Prim::Unary(UnaryOp::Exp), vec![q]).unwrap();
        let r = g.push(Prim::Binary(BinaryOp::Mul), vec![q, p]).unwrap();
        let s = g.push(Prim::Binary(BinaryOp::Sub), vec![r, q]).unwrap();
        g.outputs = vec![s, p];
        let expected = dce(&g);
        let got = swap_and_dce(g.clone());
        got.validate().unwrap();
        assert_eq!(got, expected);
        assert_eq!(got.nodes.len(), 5, "{}", got.dump());
        assert_eq!(got.nodes[4].inputs, vec![Var(3), Var(2)], "{}", got.dump());

        // With lone products to swap (one node for one), in place too: as swapping, then dce.
        let mut g = Graph::default();
        let a = g.add_input(TensorType::new(DType::F64, vec![2, 3]));
        let b = g.add_input(TensorType::new(DType::F64, vec![3, 4]));
        let dead = g.push(Prim::Unary(UnaryOp::Exp), vec![a]).unwrap();
        let d = dot(&mut g, a, b);
        let t = g.push(Prim::Transpose { perm: vec![1, 0] }, vec![d]).unwrap();
        let e = g.push(Prim::Unary(UnaryOp::Exp), vec![t]).unwrap();
        g.outputs = vec![e];
        let _ = dead;
        g.validate().unwrap();
        let expected = dce(&swap_transposed_products(&g));
        let got = swap_and_dce(g.clone());
        got.validate().unwrap();
        assert_eq!(got.dump(), expected.dump());
        assert_eq!(got, expected);
        assert!(got.nodes.iter().all(|n| !matches!(n.prim, Prim::Transpose { .. })), "{}", got.dump());
    }

    /// Many nodes on one latest operand (more than its short list holds, so the later ones
    /// go by the tables): each repeat merges with the first of its kind, in either phase,
    /// and nodes differing only in parameters or operand order stay apart.
    #[test]
    fn cse_merges_past_the_operand_lists() {
        let mut g = Graph::default();
        let x = g.add_input(TensorType::new(DType::F64, vec![40]));
        let y = g.add_input(TensorType::new(DType::F64, vec![40]));
        let slice = |k: usize| Prim::Slice { start: vec![k], stop: vec![k + 2], stride: vec![1] };
        let n = 3 * Seen::LISTED;
        let mut outs = Vec::new();
        for round in 0..2 {
            for k in 0..n {
                outs.push(g.push(slice(k), vec![y]).unwrap());
            }
            // Binary nodes whose latest operand is `y`, both orders of a non-commutative op.
            outs.push(g.push(Prim::Binary(BinaryOp::Sub), vec![x, y]).unwrap());
            outs.push(g.push(Prim::Binary(BinaryOp::Sub), vec![y, x]).unwrap());
            outs.push(g.push(Prim::Binary(BinaryOp::Mul), vec![if round == 0 { x } else { y }, y]).unwrap());
            outs.push(g.push(Prim::Binary(BinaryOp::Mul), vec![y, x]).unwrap());
        }
        g.outputs = outs;
        let opt = optimize(&g);
        let o = &opt.outputs;
        let per = n + 4;
        // The second round repeats the first, except its `y * y`.
        for k in 0..per {
            if k != n + 2 {
                assert_eq!(o[k], o[per + k], "node {k}: {}", opt.dump());
            }
        }
        assert_eq!(o[n + 2], o[n + 3], "x * y and y * x");
        let mut first: Vec<Var> = o[..n + 2].to_vec();
        first.push(o[n + 2]);
        first.push(o[per + n + 2]);
        first.sort();
        first.dedup();
        assert_eq!(first.len(), n + 4, "{}", opt.dump());
        assert_eq!(opt.nodes.len(), 2 + n + 4, "{}", opt.dump());
    }

    /// Commutative operations merge in either operand order; others, and other operands
    /// (the same primitive: the same key but for its operands), do not.
    #[test]
    fn cse_merges_equal_operands_only() {
        let mut g = Graph::default();
        let x = g.add_input(TensorType::new(DType::F64, vec![3]));
        let y = g.add_input(TensorType::new(DType::F64, vec![3]));
        let z = g.add_input(TensorType::new(DType::F64, vec![3]));
        let mut outs = Vec::new();
        for (op, a, b) in [
            (BinaryOp::Add, x, y),
            (BinaryOp::Add, y, x),
            (BinaryOp::Sub, x, y),
            (BinaryOp::Sub, y, x),
            (BinaryOp::Sub, x, y),
            (BinaryOp::Add, x, z),
            (BinaryOp::Mul, z, y),
            (BinaryOp::Mul, y, z),
        ] {
            outs.push(g.push(Prim::Binary(op), vec![a, b]).unwrap());
        }
        g.outputs = outs;
        let opt = optimize(&g);
        let o = &opt.outputs;
        assert_eq!(o[0], o[1]);
        assert_eq!(o[2], o[4]);
        assert_eq!(o[6], o[7]);
        let distinct = [o[0], o[2], o[3], o[5], o[6]];
        for (i, a) in distinct.iter().enumerate() {
            assert!(distinct[i + 1..].iter().all(|b| b != a), "{}", opt.dump());
        }
        assert_eq!(opt.nodes.len(), 3 + 5, "{}", opt.dump());
    }

    /// Common-subexpression elimination keys structural primitives by their parameters:
    /// repeated slices, reshapes and broadcasts of one value merge, distinct ones (a split's
    /// pieces) stay apart, whichever of them comes first.
    #[test]
    fn cse_merges_equal_parameters_only() {
        let mut g = Graph::default();
        let x = g.add_input(TensorType::new(DType::F64, vec![8]));
        let slice = |a: usize| Prim::Slice { start: vec![a], stop: vec![a + 4], stride: vec![1] };
        let mut outs = Vec::new();
        for a in [0, 4, 0, 2, 4, 2] {
            outs.push(g.push(slice(a), vec![x]).unwrap());
        }
        for shape in [vec![2, 4], vec![4, 2], vec![2, 4]] {
            outs.push(g.push(Prim::Reshape { shape }, vec![x]).unwrap());
        }
        for (shape, dims) in [(vec![8, 3], vec![0]), (vec![3, 8], vec![1]), (vec![8, 3], vec![0])] {
            outs.push(g.push(Prim::BroadcastInDim { shape, dims }, vec![x]).unwrap());
        }
        g.outputs = outs;
        g.validate().unwrap();
        let opt = optimize(&g);
        let o = &opt.outputs;
        // Slices at 0, 4, 0, 2, 4, 2: three distinct; reshapes: two; broadcasts: two.
        assert_eq!((o[0], o[1], o[3]), (o[2], o[4], o[5]));
        assert!(o[0] != o[1] && o[0] != o[3] && o[1] != o[3]);
        assert_eq!(o[6], o[8]);
        assert_ne!(o[6], o[7]);
        assert_eq!(o[9], o[11]);
        assert_ne!(o[9], o[10]);
        assert_eq!(opt.nodes.len(), 1 + 3 + 2 + 2, "{}", opt.dump());
        for (v, w) in g.outputs.iter().zip(o) {
            assert_eq!(g.nodes[v.index()].prim, opt.nodes[w.index()].prim);
        }
    }
}
