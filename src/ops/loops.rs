//! Loop primitives: `while` (a data-dependent number of iterations) and `scan` (a static
//! number, stacking per-iteration outputs). Public API: [`crate::control`].
//!
//! Operand layouts follow JAX:
//!
//! - `While { cond, body, consts }`: operands are `consts` values shared by both sub-graphs,
//!   then the carries. `cond(consts, carries)` is a bool scalar; `body(consts, carries)`
//!   returns the next carries. Results: the final carries.
//! - `Scan { body, consts, carries, length, reverse }`: operands are the consts, the initial
//!   carries, then the `xs` (each with a leading loop axis of extent `length`).
//!   `body(consts, carries, x_i)` returns the next carries, then the `y_i`. Results: the final
//!   carries, then the `ys` stacked along a new leading axis. With `reverse` the iterations
//!   run from the last index to the first (`ys[i]` still belongs to `xs[i]`).
//!
//! Rules:
//!
//! - **jvp** of either loop is the primal loop (primal operands only) and a *tangent loop* of
//!   the same kind over (primal, tangent) carries whose body is the jvp of the body: the
//!   tangent loop recomputes the primal carries it needs, so under `linearize` its residuals
//!   are only its primal operands (initial carries, consts, xs), never per-iteration values.
//!   Which carries get a tangent is a fixpoint (a carry whose update depends on a tangent gets
//!   one).
//! - Under `linearize` (the tangents belong to its tangent trace, the primals to a trace
//!   below), a scan's jvp instead has the primal scan also stack the carries entering each
//!   iteration, and the tangent scan reads them as `xs`: its only carries are the tangents, so
//!   its transpose is the reverse scan alone — reverse mode of a scan of `n` iterations
//!   evaluates the body `n` times forward and once inside each of the `n` vjps, nothing more.
//!   The stacked carries are residuals (the memory the transpose's own stacking would take).
//!   Nested scans (traced in one trace with their tangents) keep the recomputing form.
//! - **transpose** of a scan that is linear in some operands (as the tangent scan is in its
//!   tangents, with the primal carries evolving on their own): a forward scan of the body
//!   restricted to the non-linear carries stacks the carry *entering* each iteration (the
//!   residuals, stacked along the loop axis), then a scan in the opposite direction runs the
//!   body's transpose (which recomputes the iteration's other primal values from those
//!   carries) carrying the cotangents of the linear carries and accumulating those of the
//!   linear consts; the cotangents of linear `xs` come out stacked. Memory: one carry per
//!   iteration, the body's intermediates are recomputed — per-iteration checkpointing.
//! - Nested scans therefore checkpoint hierarchically: transposing an outer scan of `b`
//!   iterations, each an inner scan of `b`, keeps `b` outer carries plus `b` inner carries of
//!   the segment being reversed. [`crate::control::while_loop_bounded`] is built that way:
//!   a top-level scan of `K = ⌈log₂ max_steps⌉` guarded iterations (stored under `linearize`:
//!   no recomputation), then a top-level scan of `b ≈ 10` guarded blocks each a nest of `L - 1`
//!   levels (`O(K + L·b) = O(log n)` carries; an iteration past the `K`-th is re-run once per
//!   inner level, `L - 1` times, before its vjp).
//! - **transpose** of a `while` is an error naming `while_loop_bounded`: the number of
//!   iterations is unknown, so the carries cannot be stored or replayed.
//! - **batching**: carries become batched where their update depends on a batched value
//!   (fixpoint). A `while` whose predicate is batched runs while any lane is live; the body
//!   keeps finished lanes frozen (a per-lane `select`). A scan moves the batch axis of its
//!   `xs` behind the loop axis, and of its `ys` back in front.

use super::rules::{with_batch_axis, LinArg};
use super::{Prim, SubRunner};
use crate::array::{Array, Data};
use crate::compile::dce;
use crate::ir::{Graph, SubGraph, Var};
use crate::trace::{bind_multi, eval_graph};
use crate::transform::subgraph::{batched_outputs, batched_type, trace_closed, transpose_subgraph};
use crate::transform::{batch_graph, jvp_graph};
use crate::{DType, Element, Tensor, TensorType};

fn list(types: &[TensorType]) -> String {
    let s: Vec<String> = types.iter().map(ToString::to_string).collect();
    format!("({})", s.join(", "))
}

/// A type without its leading axis.
fn row_type(ty: &TensorType) -> TensorType {
    TensorType::new(ty.dtype, ty.shape[1..].to_vec())
}

/// A type with a leading axis of extent `n`.
fn stacked_type(ty: &TensorType, n: usize) -> TensorType {
    batched_type(ty, n)
}

/// The results of `while`: its carries, after checking both sub-graphs against the operands.
pub(crate) fn while_types(
    cond: &SubGraph,
    body: &SubGraph,
    consts: usize,
    inputs: &[&TensorType],
) -> Result<Vec<TensorType>, String> {
    if inputs.len() < consts {
        return Err(format!("expects at least {consts} operands (the consts), got {}", inputs.len()));
    }
    let operands: Vec<TensorType> = inputs.iter().map(|&t| t.clone()).collect();
    let carries = operands[consts..].to_vec();
    if cond.input_types() != operands {
        return Err(format!("cond takes {} but the operands are {}", list(&cond.input_types()), list(&operands)));
    }
    if cond.output_types() != [TensorType::new(DType::Bool, vec![])] {
        return Err(format!("cond must return one bool scalar, it returns {}", list(&cond.output_types())));
    }
    if body.input_types() != operands {
        return Err(format!("body takes {} but the operands are {}", list(&body.input_types()), list(&operands)));
    }
    if body.output_types() != carries {
        return Err(format!("body returns {} but the carries are {}", list(&body.output_types()), list(&carries)));
    }
    Ok(carries)
}

/// The results of `scan`: final carries, then the stacked `ys`.
pub(crate) fn scan_types(
    body: &SubGraph,
    consts: usize,
    carries: usize,
    length: usize,
    inputs: &[&TensorType],
) -> Result<Vec<TensorType>, String> {
    if inputs.len() < consts + carries {
        return Err(format!(
            "expects at least {} operands (consts and carries), got {}",
            consts + carries,
            inputs.len()
        ));
    }
    let mut expect: Vec<TensorType> = inputs[..consts + carries].iter().map(|&t| t.clone()).collect();
    for x in &inputs[consts + carries..] {
        if x.shape.first() != Some(&length) {
            return Err(format!("each xs needs a leading loop axis of extent {length}, got {x}"));
        }
        expect.push(row_type(x));
    }
    if body.input_types() != expect {
        return Err(format!("body takes {} but the operands give {}", list(&body.input_types()), list(&expect)));
    }
    let outs = body.output_types();
    let carry_types = &expect[consts..consts + carries];
    if outs.len() < carries || outs[..carries] != *carry_types {
        return Err(format!(
            "body returns {} but its first results must be the carries {}",
            list(&outs),
            list(carry_types)
        ));
    }
    let mut result = outs[..carries].to_vec();
    result.extend(outs[carries..].iter().map(|t| stacked_type(t, length)));
    Ok(result)
}

/// Row `i` of a concrete tensor (its leading axis removed), copied.
fn row(x: &Tensor, i: usize) -> Tensor {
    let a = x.as_concrete().expect("loops run on concrete values");
    let n = a.shape[0];
    let r = a.numel().checked_div(n).unwrap_or(0);
    let data = crate::with_data!(&a.data, v => <_ as Element>::into_data(v[i * r..(i + 1) * r].to_vec()));
    Tensor::from_array(Array::new(a.shape[1..].to_vec(), data))
}

/// Sets `slot` to row `i` of `x`: copied into `slot`'s own storage when no one else holds it
/// (the row of the previous iteration, already read), else into a new tensor.
fn set_row(slot: &mut Tensor, x: &Tensor, i: usize) {
    if let crate::tensor::Repr::Concrete(arc) = &mut slot.repr {
        if let Some(dst) = std::sync::Arc::get_mut(arc) {
            let src = x.as_concrete().expect("loops run on concrete values");
            let r = dst.data.len();
            if src.data.dtype() == dst.data.dtype() && src.numel() == r * src.shape[0] {
                copy_range(&mut dst.data, &src.data, i * r);
                return;
            }
        }
    }
    *slot = row(x, i);
}

/// Copies `src[start..start + dst.len()]` over `dst` (same dtype).
fn copy_range(dst: &mut Data, src: &Data, start: usize) {
    let r = dst.len();
    match (dst, src) {
        (Data::F32(d), Data::F32(s)) => d.copy_from_slice(&s[start..start + r]),
        (Data::F64(d), Data::F64(s)) => d.copy_from_slice(&s[start..start + r]),
        (Data::I32(d), Data::I32(s)) => d.copy_from_slice(&s[start..start + r]),
        (Data::I64(d), Data::I64(s)) => d.copy_from_slice(&s[start..start + r]),
        (Data::Bool(d), Data::Bool(s)) => d.copy_from_slice(&s[start..start + r]),
        _ => unreachable!("copy_range: dtypes differ"),
    }
}

/// Writes `src` as row `i` of `dst`.
fn write_row(dst: &mut Data, i: usize, src: &Data) {
    let r = src.len();
    match (dst, src) {
        (Data::F32(d), Data::F32(s)) => d[i * r..(i + 1) * r].copy_from_slice(s),
        (Data::F64(d), Data::F64(s)) => d[i * r..(i + 1) * r].copy_from_slice(s),
        (Data::I32(d), Data::I32(s)) => d[i * r..(i + 1) * r].copy_from_slice(s),
        (Data::I64(d), Data::I64(s)) => d[i * r..(i + 1) * r].copy_from_slice(s),
        (Data::Bool(d), Data::Bool(s)) => d[i * r..(i + 1) * r].copy_from_slice(s),
        _ => unreachable!("a scan output changed dtype between iterations"),
    }
}

/// Runs a `while` on concrete operands. The predicates read and the carries replaced go
/// back to `run_sub` (a plan reuses their storage for the next iteration's results).
pub(crate) fn while_run(consts: usize, args: &[Tensor], run_sub: &mut dyn SubRunner) -> Vec<Tensor> {
    let mut state = args.to_vec();
    loop {
        let mut p = run_sub.run(0, &state);
        let pred = p.pop().expect("cond has one result");
        let live = pred.item::<bool>();
        run_sub.recycle(0, pred);
        if !live {
            break;
        }
        let next = run_sub.run(1, &state);
        for (slot, v) in state[consts..].iter_mut().zip(next) {
            let old = std::mem::replace(slot, v);
            run_sub.recycle(1, old);
        }
    }
    state.split_off(consts)
}

/// Runs a `scan` on concrete operands (replaced carries and copied `ys` go back to `run_sub`,
/// each iteration's `xs` rows are copied into the previous iteration's where it can).
pub(crate) fn scan_run(
    body: &SubGraph,
    (consts, carries, length, reverse): (usize, usize, usize, bool),
    args: &[Tensor],
    run_sub: &mut dyn SubRunner,
) -> Vec<Tensor> {
    let y_types: Vec<TensorType> = body.output_types()[carries..].to_vec();
    let mut ys: Vec<Data> = y_types.iter().map(|t| Data::filled(t.dtype, 0.0, t.numel() * length)).collect();
    let xs: Vec<Tensor> = args[consts + carries..].to_vec();
    let mut state = args.to_vec();
    for step in 0..length {
        let i = if reverse { length - 1 - step } else { step };
        for (k, x) in xs.iter().enumerate() {
            if step == 0 {
                state[consts + carries + k] = row(x, i);
            } else {
                set_row(&mut state[consts + carries + k], x, i);
            }
        }
        let outs = run_sub.run(0, &state);
        let mut outs = outs.into_iter();
        for slot in &mut state[consts..consts + carries] {
            let old = std::mem::replace(slot, outs.next().expect("a carry"));
            run_sub.recycle(0, old);
        }
        for (dst, y) in ys.iter_mut().zip(outs) {
            write_row(dst, i, &y.as_concrete().expect("concrete").data);
            run_sub.recycle(0, y);
        }
    }
    let mut result = state[consts..consts + carries].to_vec();
    result.extend(
        ys.into_iter().zip(&y_types).map(|(d, t)| Tensor::from_array(Array::new(stacked_type(t, length).shape, d))),
    );
    result
}

/// Binds a loop primitive (runs it now when every operand is concrete).
fn apply(prim: Prim, args: &[Tensor]) -> Vec<Tensor> {
    let refs: Vec<&Tensor> = args.iter().collect();
    bind_multi(prim, &refs)
}

/// A closed graph traced from `f`, without the nodes no output needs.
fn closed(label: &'static str, types: &[TensorType], f: impl FnOnce(&[Tensor]) -> Vec<Tensor>) -> SubGraph {
    SubGraph::new(dce(&trace_closed(label, types, f)))
}

/// Spreads `items` over the positions marked in `mask` (None elsewhere).
fn scatter_mask<T>(mask: &[bool], items: impl IntoIterator<Item = T>) -> Vec<Option<T>> {
    let mut it = items.into_iter();
    mask.iter().map(|&m| if m { it.next() } else { None }).collect()
}

fn pick<T: Clone>(items: &[T], mask: &[bool]) -> Vec<T> {
    items.iter().zip(mask).filter(|(_, &m)| m).map(|(t, _)| t.clone()).collect()
}

/// Which results of `g` may have a non-zero tangent when the inputs marked `with_tangent`
/// have one: float values that depend on such an input other than through a primitive with
/// no derivative. (A dependency analysis, not a trace: tracing the body's jvp for every
/// fixpoint round would cost exponentially in the nesting depth of loops. Where it is
/// conservative the tangent is a materialised zero.)
fn tangent_outputs(g: &Graph, with_tangent: &[bool]) -> Vec<bool> {
    let mut t = vec![false; g.nodes.len()];
    for (i, node) in g.nodes.iter().enumerate() {
        t[i] = match node.prim {
            Prim::Input(k) => with_tangent[k],
            Prim::StopGradient | Prim::Arg { .. } | Prim::RandomBits { .. } | Prim::Argsort { .. } => false,
            ref p if p.is_tuple() => node.inputs.iter().any(|v| t[v.index()]),
            _ => node.ty.dtype.is_float() && node.inputs.iter().any(|v| t[v.index()]),
        };
    }
    g.outputs.iter().map(|v| t[v.index()] && g.ty(*v).dtype.is_float()).collect()
}

/// The carries that get a tangent: those given one, and those whose update depends on a
/// tangent (iterated to a fixpoint). `fixed` marks the non-carry inputs with a tangent;
/// carries are the inputs `first..first + n`, and the first `n` outputs.
fn carry_fixpoint(
    g: &Graph,
    before: &[bool],
    mut carry: Vec<bool>,
    after: &[bool],
    f: fn(&Graph, &[bool]) -> Vec<bool>,
) -> Vec<bool> {
    loop {
        let mask: Vec<bool> = before.iter().chain(&carry).chain(after).copied().collect();
        let outs = f(g, &mask);
        let next: Vec<bool> = carry.iter().zip(&outs).map(|(&c, &o)| c || o).collect();
        if next == carry {
            return carry;
        }
        carry = next;
    }
}

/// Primal results and tangents of `while`.
pub(crate) fn while_jvp(
    cond: &SubGraph,
    body: &SubGraph,
    consts: usize,
    x: &[&Tensor],
    t: &[Option<&Tensor>],
) -> (Vec<Tensor>, Vec<Option<Tensor>>) {
    let args: Vec<Tensor> = x.iter().map(|&a| a.clone()).collect();
    let outs = apply(Prim::While { cond: cond.clone(), body: body.clone(), consts }, &args);
    let ct: Vec<bool> = t[..consts].iter().map(Option::is_some).collect();
    let kt0: Vec<bool> = t[consts..].iter().map(Option::is_some).collect();
    let kt = carry_fixpoint(body, &ct, kt0, &[], tangent_outputs);
    if !kt.iter().any(|&k| k) {
        return (outs, vec![None; kt.len()]);
    }
    let in_types = body.input_types();
    let (const_types, carry_types) = in_types.split_at(consts);
    let (nc, nk) = (pick(const_types, &ct).len(), pick(carry_types, &kt).len());
    // Tangent loop operands: consts, const tangents, carries, carry tangents.
    let mut types: Vec<TensorType> = const_types.to_vec();
    types.extend(pick(const_types, &ct));
    types.extend(carry_types.iter().cloned());
    types.extend(pick(carry_types, &kt));
    let split = |ins: &[Tensor]| -> (Vec<Tensor>, Vec<Option<Tensor>>) {
        let (c, rest) = ins.split_at(consts);
        let (tc, rest) = rest.split_at(nc);
        let (k, tk) = rest.split_at(carry_types.len());
        let primals: Vec<Tensor> = c.iter().chain(k).cloned().collect();
        let mut tangents = scatter_mask(&ct, tc.iter().cloned());
        tangents.extend(scatter_mask(&kt, tk.iter().cloned()));
        (primals, tangents)
    };
    let tcond = closed("jvp", &types, |ins| eval_graph(cond, &split(ins).0));
    let tbody = closed("jvp", &types, |ins| {
        let (primals, tangents) = split(ins);
        let (outs, touts) = jvp_graph(body, &primals, &tangents);
        let mut res = outs.clone();
        res.extend(
            touts
                .into_iter()
                .zip(&outs)
                .zip(&kt)
                .filter(|(_, &k)| k)
                .map(|((t, y), _)| t.unwrap_or_else(|| y.zeros_like())),
        );
        res
    });
    let mut operands: Vec<Tensor> = args[..consts].to_vec();
    operands.extend(t[..consts].iter().flatten().map(|&t| t.clone()));
    operands.extend(args[consts..].iter().cloned());
    operands.extend(
        args[consts..]
            .iter()
            .zip(&t[consts..])
            .zip(&kt)
            .filter(|(_, &k)| k)
            .map(|((a, t), _)| t.cloned().unwrap_or_else(|| a.zeros_like())),
    );
    let touts = apply(Prim::While { cond: tcond, body: tbody, consts: consts + nc }, &operands);
    let tangents = scatter_mask(&kt, touts.into_iter().skip(carry_types.len()).take(nk));
    (outs, tangents)
}

/// The error reverse mode meets at an unbounded `while`.
pub(crate) fn while_transpose() -> ! {
    panic!(
        "while_loop: reverse-mode differentiation (grad, vjp, linearize's transpose) of an unbounded while loop is \
         not supported: its number of iterations is unknown, so its carries cannot be stored or replayed. Give a \
         bound: control::while_loop_bounded(cond_fn, body_fn, init, max_steps) is reverse-differentiable with \
         checkpointing (or use fori_loop/scan for a fixed count)"
    )
}

/// Primal results and tangents of `scan`.
pub(crate) fn scan_jvp(
    body: &SubGraph,
    (consts, carries, length, reverse): (usize, usize, usize, bool),
    x: &[&Tensor],
    t: &[Option<&Tensor>],
) -> (Vec<Tensor>, Vec<Option<Tensor>>) {
    let args: Vec<Tensor> = x.iter().map(|&a| a.clone()).collect();
    let nx = args.len() - consts - carries;
    let ct: Vec<bool> = t[..consts].iter().map(Option::is_some).collect();
    let xt: Vec<bool> = t[consts + carries..].iter().map(Option::is_some).collect();
    let kt0: Vec<bool> = t[consts..consts + carries].iter().map(Option::is_some).collect();
    let kt = carry_fixpoint(body, &ct, kt0, &xt, tangent_outputs);
    let mask: Vec<bool> = ct.iter().chain(&kt).chain(&xt).copied().collect();
    let yt: Vec<bool> = tangent_outputs(body, &mask)[carries..].to_vec();
    if !kt.iter().chain(&yt).any(|&k| k) {
        let outs = apply(Prim::Scan { body: body.clone(), consts, carries, length, reverse }, &args);
        let n = outs.len();
        return (outs, vec![None; n]);
    }
    if carries > 0 && tangents_above_primals(x, t) {
        return scan_jvp_stacked(
            body,
            (consts, carries, length, reverse),
            &args,
            t,
            [&ct[..], &kt[..], &xt[..], &yt[..]],
        );
    }
    let outs = apply(Prim::Scan { body: body.clone(), consts, carries, length, reverse }, &args);
    let in_types = body.input_types();
    let const_types = &in_types[..consts];
    let carry_types = &in_types[consts..consts + carries];
    let x_types = &in_types[consts + carries..];
    let (nct, nkt) = (pick(const_types, &ct).len(), pick(carry_types, &kt).len());
    // Tangent scan layout: [consts, const tangents | carries, carry tangents | xs, xs tangents].
    let mut types: Vec<TensorType> = const_types.to_vec();
    types.extend(pick(const_types, &ct));
    types.extend(carry_types.iter().cloned());
    types.extend(pick(carry_types, &kt));
    types.extend(x_types.iter().cloned());
    types.extend(pick(x_types, &xt));
    let tbody = closed("jvp", &types, |ins| {
        let (c, rest) = ins.split_at(consts);
        let (tc, rest) = rest.split_at(nct);
        let (k, rest) = rest.split_at(carries);
        let (tk, rest) = rest.split_at(nkt);
        let (xs, txs) = rest.split_at(nx);
        let primals: Vec<Tensor> = c.iter().chain(k).chain(xs).cloned().collect();
        let mut tangents = scatter_mask(&ct, tc.iter().cloned());
        tangents.extend(scatter_mask(&kt, tk.iter().cloned()));
        tangents.extend(scatter_mask(&xt, txs.iter().cloned()));
        let (outs, touts) = jvp_graph(body, &primals, &tangents);
        let mut res: Vec<Tensor> = outs[..carries].to_vec();
        let out_mask: Vec<bool> = kt.iter().chain(&yt).copied().collect();
        res.extend(
            touts
                .into_iter()
                .zip(&outs)
                .zip(&out_mask)
                .filter(|(_, &m)| m)
                .map(|((t, y), _)| t.unwrap_or_else(|| y.zeros_like())),
        );
        res
    });
    let mut operands: Vec<Tensor> = args[..consts].to_vec();
    operands.extend(t[..consts].iter().flatten().map(|&t| t.clone()));
    operands.extend(args[consts..consts + carries].iter().cloned());
    operands.extend(
        args[consts..consts + carries]
            .iter()
            .zip(&t[consts..consts + carries])
            .zip(&kt)
            .filter(|(_, &k)| k)
            .map(|((a, t), _)| t.cloned().unwrap_or_else(|| a.zeros_like())),
    );
    operands.extend(args[consts + carries..].iter().cloned());
    operands.extend(t[consts + carries..].iter().flatten().map(|&t| t.clone()));
    let prim = Prim::Scan { body: tbody, consts: consts + nct, carries: carries + nkt, length, reverse };
    let touts = apply(prim, &operands);
    let mut rest = touts.into_iter().skip(carries);
    let mut tangents = scatter_mask(&kt, rest.by_ref().take(nkt).collect::<Vec<_>>());
    tangents.extend(scatter_mask(&yt, rest));
    (outs, tangents)
}

/// Whether a jvp rule runs where `linearize` puts it: some tangent belongs to `linearize`'s
/// tangent trace, above every primal (primal work runs or records below, tangent work is the
/// linear graph). There, values the primal computation stacks become residuals instead of
/// being recomputed; in forward mode stacking would only cost memory.
fn tangents_above_primals(x: &[&Tensor], t: &[Option<&Tensor>]) -> bool {
    let level = |v: &Tensor| v.as_traced().map(|tr| tr.level);
    let primal = x.iter().filter_map(|v| level(v)).max();
    let tangent = t.iter().flatten().filter_map(|v| level(v)).max();
    tangent.is_some_and(crate::transform::is_linearize_level) && tangent > primal
}

/// `scan_jvp` under `linearize`: the primal scan also stacks the carries entering each
/// iteration, and the tangent scan reads them as `xs` instead of recomputing them. Its only
/// carries are then the tangents, so its transpose needs no forward scan of its own: the
/// backward pass runs the transposed body once per iteration over the stacked carries
/// (one forward sweep and one vjp sweep in all, against two forward sweeps without).
fn scan_jvp_stacked(
    body: &SubGraph,
    (consts, carries, length, reverse): (usize, usize, usize, bool),
    args: &[Tensor],
    t: &[Option<&Tensor>],
    [ct, kt, xt, yt]: [&[bool]; 4],
) -> (Vec<Tensor>, Vec<Option<Tensor>>) {
    let in_types = body.input_types();
    let n_out = body.outputs.len();
    let nx = args.len() - consts - carries;
    // 1. The primal scan, whose extra `ys` are the carries entering each iteration.
    let fwd = closed("jvp", &in_types, |ins| {
        let mut res = eval_graph(body, ins);
        res.extend(ins[consts..consts + carries].iter().cloned());
        res
    });
    let mut outs = apply(Prim::Scan { body: fwd, consts, carries, length, reverse }, args);
    let stacked = outs.split_off(n_out);
    // 2. The tangent scan. Layout: [consts, const tangents | carry tangents | xs, entering
    // carries, xs tangents].
    let const_types = &in_types[..consts];
    let carry_types = &in_types[consts..consts + carries];
    let x_types = &in_types[consts + carries..];
    let (nct, nkt) = (pick(const_types, ct).len(), pick(carry_types, kt).len());
    let mut types: Vec<TensorType> = const_types.to_vec();
    types.extend(pick(const_types, ct));
    types.extend(pick(carry_types, kt));
    types.extend(x_types.iter().cloned());
    types.extend(carry_types.iter().cloned());
    types.extend(pick(x_types, xt));
    let out_mask: Vec<bool> = kt.iter().chain(yt).copied().collect();
    let tbody = closed("jvp", &types, |ins| {
        let (c, rest) = ins.split_at(consts);
        let (tc, rest) = rest.split_at(nct);
        let (tk, rest) = rest.split_at(nkt);
        let (xs, rest) = rest.split_at(nx);
        let (k, txs) = rest.split_at(carries);
        let primals: Vec<Tensor> = c.iter().chain(k).chain(xs).cloned().collect();
        let mut tangents = scatter_mask(ct, tc.iter().cloned());
        tangents.extend(scatter_mask(kt, tk.iter().cloned()));
        tangents.extend(scatter_mask(xt, txs.iter().cloned()));
        let (pouts, touts) = jvp_graph(body, &primals, &tangents);
        touts
            .into_iter()
            .zip(&pouts)
            .zip(&out_mask)
            .filter(|(_, &m)| m)
            .map(|((t, y), _)| t.unwrap_or_else(|| y.zeros_like()))
            .collect()
    });
    let mut operands: Vec<Tensor> = args[..consts].to_vec();
    operands.extend(t[..consts].iter().flatten().map(|&t| t.clone()));
    operands.extend(
        args[consts..consts + carries]
            .iter()
            .zip(&t[consts..consts + carries])
            .zip(kt)
            .filter(|(_, &k)| k)
            .map(|((a, t), _)| t.cloned().unwrap_or_else(|| a.zeros_like())),
    );
    operands.extend(args[consts + carries..].iter().cloned());
    operands.extend(stacked);
    operands.extend(t[consts + carries..].iter().flatten().map(|&t| t.clone()));
    let prim = Prim::Scan { body: tbody, consts: consts + nct, carries: nkt, length, reverse };
    let mut touts = apply(prim, &operands).into_iter();
    let mut tangents = scatter_mask(kt, touts.by_ref().take(nkt).collect::<Vec<_>>());
    tangents.extend(scatter_mask(yt, touts));
    (outs, tangents)
}

/// The graph computing `outputs` of `g` from the inputs in `keep` (in that order); panics if
/// one of those outputs needs another input.
fn restrict(g: &Graph, keep: &[usize], outputs: &[usize], what: &str) -> Graph {
    let mut live = vec![false; g.nodes.len()];
    for &o in outputs {
        live[g.outputs[o].index()] = true;
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
    for &k in keep {
        map[g.inputs[k].index()] = out.add_input(g.ty(g.inputs[k]).clone());
    }
    for (i, node) in g.nodes.iter().enumerate() {
        if !live[i] {
            continue;
        }
        match node.prim {
            Prim::Input(k) => {
                assert!(keep.contains(&k), "transpose: {what}");
            }
            _ => {
                let ins = node.inputs.iter().map(|v| map[v.index()]).collect();
                map[i] = out.push_typed(node.prim.clone(), ins, node.ty.clone());
            }
        }
    }
    out.outputs = outputs.iter().map(|&o| map[g.outputs[o].index()]).collect();
    out
}

/// Cotangents of the linear operands of a `scan` (see the module docs).
pub(crate) fn scan_transpose(
    body: &SubGraph,
    (consts, carries, length, reverse): (usize, usize, usize, bool),
    cts: &[Option<Tensor>],
    args: &[LinArg],
) -> Vec<Option<Tensor>> {
    let given: Vec<bool> = args.iter().map(LinArg::is_linear).collect();
    // A carry whose update reads a linear value is linear too, even where its initial value
    // is a known constant (a tangent materialised as zeros): that value gets no cotangent.
    let kl = carry_fixpoint(
        body,
        &given[..consts],
        given[consts..consts + carries].to_vec(),
        &given[consts + carries..],
        batched_outputs,
    );
    let mut lin = given.clone();
    lin[consts..consts + carries].copy_from_slice(&kl);
    let n_in = lin.len();
    let nl: Vec<usize> = (0..n_in).filter(|&i| !lin[i]).collect();
    let nl_carries: Vec<usize> = (consts..consts + carries).filter(|&i| !lin[i]).collect();
    let lin_consts: Vec<usize> = (0..consts).filter(|&i| lin[i]).collect();
    let lin_carries: Vec<usize> = (consts..consts + carries).filter(|&i| lin[i]).collect();
    let lin_xs: Vec<usize> = (consts + carries..n_in).filter(|&i| lin[i]).collect();
    let nl_consts = (0..consts).filter(|&i| !lin[i]).count();
    let n_out = body.outputs.len();
    let value = |i: usize| args[i].value("a scan residual").clone();
    let in_types = body.input_types();

    // 1. The non-linear carries entering each iteration, stacked (the residuals).
    let stacked: Vec<Tensor> = if nl_carries.is_empty() {
        vec![]
    } else {
        let outs: Vec<usize> = nl_carries.iter().map(|&i| i - consts).collect();
        let g = restrict(body, &nl, &outs, "a scan's non-linear carries depend on its linear operands");
        let types: Vec<TensorType> = nl.iter().map(|&i| in_types[i].clone()).collect();
        let k0 = nl_consts;
        let nk = nl_carries.len();
        let fwd = closed("transpose", &types, |ins| {
            let mut res = eval_graph(&g, ins);
            res.extend(ins[k0..k0 + nk].iter().cloned());
            res
        });
        let operands: Vec<Tensor> = nl.iter().map(|&i| value(i)).collect();
        let prim = Prim::Scan { body: fwd, consts: nl_consts, carries: nk, length, reverse };
        apply(prim, &operands).split_off(nk)
    };

    // 2. The transposed body in the opposite direction.
    let mut ct_mask = vec![false; n_out];
    for &i in &lin_carries {
        ct_mask[i - consts] = true;
    }
    for j in carries..n_out {
        ct_mask[j] = cts[j].is_some();
    }
    let tb = transpose_subgraph(body, &lin, &ct_mask);
    let out_types = body.output_types();
    let nlk = nl_carries.len();
    let nlx = nl.len() - nl_consts - nlk;
    let ys_ct: Vec<usize> = (carries..n_out).filter(|&j| ct_mask[j]).collect();
    // Reverse scan layout: [nl consts | ct linear carries, acc linear consts | stacked nl
    // carries, nl xs, ct ys].
    let mut types: Vec<TensorType> = nl[..nl_consts].iter().map(|&i| in_types[i].clone()).collect();
    types.extend(lin_carries.iter().map(|&i| in_types[i].clone()));
    types.extend(lin_consts.iter().map(|&i| in_types[i].clone()));
    types.extend(nl[nl_consts..].iter().map(|&i| in_types[i].clone()));
    types.extend(ys_ct.iter().map(|&j| out_types[j].clone()));
    let (nlc_, nkl, ncl) = (nl_consts, lin_carries.len(), lin_consts.len());
    let rev = closed("transpose", &types, |ins| {
        let (c, rest) = ins.split_at(nlc_);
        let (ctk, rest) = rest.split_at(nkl);
        let (acc, rest) = rest.split_at(ncl);
        let (res_i, cty) = rest.split_at(nlk + nlx);
        let mut targs: Vec<Tensor> = c.iter().chain(res_i).cloned().collect();
        targs.extend(ctk.iter().cloned());
        targs.extend(cty.iter().cloned());
        let outs = eval_graph(&tb, &targs);
        let (ctc, rest) = outs.split_at(ncl);
        let (ctk_prev, ctx) = rest.split_at(nkl);
        let mut res: Vec<Tensor> = ctk_prev.to_vec();
        res.extend(acc.iter().zip(ctc).map(|(a, c)| a + c));
        res.extend(ctx.iter().cloned());
        res
    });
    let mut operands: Vec<Tensor> = nl[..nl_consts].iter().map(|&i| value(i)).collect();
    operands.extend(
        lin_carries
            .iter()
            .map(|&i| cts[i - consts].clone().unwrap_or_else(|| Tensor::zeros(&in_types[i].shape, in_types[i].dtype))),
    );
    operands.extend(lin_consts.iter().map(|&i| Tensor::zeros(&in_types[i].shape, in_types[i].dtype)));
    operands.extend(stacked);
    operands.extend(nl[nl_consts + nlk..].iter().map(|&i| value(i)));
    operands.extend(ys_ct.iter().map(|&j| cts[j].clone().expect("masked")));
    let prim = Prim::Scan { body: rev, consts: nl_consts, carries: nkl + ncl, length, reverse: !reverse };
    let mut outs = apply(prim, &operands).into_iter();
    let mut result: Vec<Option<Tensor>> = vec![None; n_in];
    for &i in &lin_carries {
        let ct = outs.next();
        result[i] = if given[i] { ct } else { None };
    }
    for &i in &lin_consts {
        result[i] = outs.next();
    }
    for &i in &lin_xs {
        result[i] = outs.next();
    }
    result
}

/// A closed graph of `g` batched: inputs marked `batched` carry a leading axis of extent
/// `size`; outputs marked in `out_batched` come out with it (broadcast if needed), the others
/// without (they must not depend on a batched input).
fn batch_body(g: &Graph, batched: &[bool], out_batched: &[bool], size: usize) -> SubGraph {
    let types: Vec<TensorType> =
        g.input_types().iter().zip(batched).map(|(t, &b)| if b { batched_type(t, size) } else { t.clone() }).collect();
    closed("vmap", &types, |ins| {
        batch_graph(g, ins, batched, size)
            .into_iter()
            .zip(out_batched)
            .map(|((t, b), &want)| match (b, want) {
                (true, true) | (false, false) => t,
                (false, true) => with_batch_axis(&t, size),
                (true, false) => unreachable!("an unbatched loop output depends on a batched value"),
            })
            .collect()
    })
}

/// `while` on operands of which those marked `batched` carry a leading batch axis.
pub(crate) fn while_batch(
    cond: &SubGraph,
    body: &SubGraph,
    consts: usize,
    args: &[Tensor],
    batched: &[bool],
    size: usize,
) -> Vec<Tensor> {
    let bc = &batched[..consts];
    let mut bk = carry_fixpoint(body, bc, batched[consts..].to_vec(), &[], batched_outputs);
    let mask = |bk: &[bool]| bc.iter().chain(bk).copied().collect::<Vec<bool>>();
    let pred_batched = batched_outputs(cond, &mask(&bk))[0];
    if pred_batched {
        bk = vec![true; bk.len()];
    }
    let m = mask(&bk);
    let operands: Vec<Tensor> = args
        .iter()
        .zip(batched)
        .zip(&m)
        .map(|((a, &b), &want)| if want && !b { with_batch_axis(a, size) } else { a.clone() })
        .collect();
    let outs = if !pred_batched {
        let bcond = batch_body(cond, &m, &[false], size);
        let bbody = batch_body(body, &m, &bk, size);
        apply(Prim::While { cond: bcond, body: bbody, consts }, &operands)
    } else {
        // Run while any lane is live; finished lanes keep their carries.
        let types: Vec<TensorType> = operands.iter().map(Tensor::ty).collect();
        let lanes = batch_body(cond, &m, &[true], size);
        let step = batch_body(body, &m, &bk, size);
        let any = closed("vmap", &types, |ins| {
            let p = eval_graph(&lanes, ins).remove(0);
            vec![p.cast(DType::I32).max(&[0], false).gt(0i32)]
        });
        let guarded = closed("vmap", &types, |ins| {
            let p = eval_graph(&lanes, ins).remove(0);
            let next = eval_graph(&step, ins);
            next.iter()
                .zip(&ins[consts..])
                .map(|(n, c)| {
                    let lane = p.broadcast_in_dim(&n.shape(), &[0]);
                    crate::where_(&lane, n, c)
                })
                .collect()
        });
        apply(Prim::While { cond: any, body: guarded, consts }, &operands)
    };
    outs.into_iter().zip(&bk).map(|(o, &b)| if b { o } else { with_batch_axis(&o, size) }).collect()
}

/// `scan` on operands of which those marked `batched` carry a leading batch axis.
pub(crate) fn scan_batch(
    body: &SubGraph,
    (consts, carries, length, reverse): (usize, usize, usize, bool),
    args: &[Tensor],
    batched: &[bool],
    size: usize,
) -> Vec<Tensor> {
    let bc = &batched[..consts];
    let bx = &batched[consts + carries..];
    let bk = carry_fixpoint(body, bc, batched[consts..consts + carries].to_vec(), bx, batched_outputs);
    let m: Vec<bool> = bc.iter().chain(&bk).chain(bx).copied().collect();
    let by = batched_outputs(body, &m)[carries..].to_vec();
    let out_mask: Vec<bool> = bk.iter().chain(&by).copied().collect();
    let bbody = batch_body(body, &m, &out_mask, size);
    // Loop axis first, batch axis second, for batched xs.
    let swap = |t: &Tensor| {
        let mut perm: Vec<isize> = (0..t.rank() as isize).collect();
        perm.swap(0, 1);
        t.permute(&perm)
    };
    let operands: Vec<Tensor> = args
        .iter()
        .enumerate()
        .map(|(i, a)| {
            if i >= consts + carries {
                if batched[i] {
                    swap(a)
                } else {
                    a.clone()
                }
            } else if m[i] && !batched[i] {
                with_batch_axis(a, size)
            } else {
                a.clone()
            }
        })
        .collect();
    let outs = apply(Prim::Scan { body: bbody, consts, carries, length, reverse }, &operands);
    outs.into_iter()
        .zip(&out_mask)
        .enumerate()
        .map(|(j, (o, &b))| match (j < carries, b) {
            (_, false) => with_batch_axis(&o, size),
            (true, true) => o,
            (false, true) => swap(&o),
        })
        .collect()
}
