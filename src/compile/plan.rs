//! Lowering an optimised graph to a [`Plan`]: element-wise chains fused into
//! single loops (with broadcasting loads, and a trailing reduction where it
//! consumes the chain), every other primitive one kernel call, steps in
//! dependency order, and each buffer dropped after its last use.

use super::fxhash::FxHashMap;
use super::inline;
use super::schedule::{concurrent_products, hoist_products, in_place_outputs};
use crate::array::{Array, Data};
use crate::backend::cpu::{self, fused, native};
use crate::ir::{Graph, Var};
use crate::ops::{Prim, ReduceOp};
use crate::shape::Shape;
use crate::{DType, Tensor, TensorType};
use rayon::prelude::*;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

/// One unit of work.
#[derive(Clone, Debug)]
pub(super) enum Step {
    /// One primitive through its CPU kernel.
    Kernel { prim: Prim, ins: Vec<usize>, out: usize, ty: TensorType },
    /// A fused element-wise loop (maybe reduced) reading `ins`, writing `outs`; run by its
    /// native kernel where one was compiled.
    Fused {
        prog: fused::Program,
        ins: Vec<usize>,
        outs: Vec<usize>,
        native: Option<Arc<native::Kernel>>,
        /// For each output, the input (position in `ins`) whose storage it overwrites, where
        /// the native kernel works in place (see [`in_place_outputs`]).
        in_place: Vec<Option<usize>>,
    },
    /// A primitive with several results (a tuple node): writes element `k` into slot `s`
    /// for each `(k, s)` in `outs` (the projections' slots). Its sub-graphs run as the
    /// sub-plans `subs`, built once with the plan and reused by every iteration and call.
    Multi { prim: Prim, ins: Vec<usize>, outs: Vec<(usize, usize)>, subs: Arc<Vec<Plan>> },
    /// A shallow f64 product `ins[0] · ins[1]ᵀ` (`b_rows`) or `ins[0] · ins[1]`, plus the row
    /// `ins[2]` broadcast over its rows where there is a third input, read only by an
    /// arg-reduction over its last axis: the reduction's indices into `out`, the product
    /// never stored (`cpu::dot_arg`; see [`dot_arg_pattern`]).
    DotArg { ins: Vec<usize>, out: usize, dims: (usize, usize, usize), b_rows: bool, max: bool },
}

impl Step {
    /// The slots the step reads.
    pub(super) fn inputs(&self) -> &[usize] {
        match self {
            Step::Kernel { ins, .. } | Step::Fused { ins, .. } | Step::Multi { ins, .. } | Step::DotArg { ins, .. } => {
                ins
            }
        }
    }

    /// The slots the step writes.
    pub(super) fn outputs(&self) -> Vec<usize> {
        match self {
            Step::Kernel { out, .. } | Step::DotArg { out, .. } => vec![*out],
            Step::Fused { outs, .. } => outs.clone(),
            Step::Multi { outs, .. } => outs.iter().map(|&(_, s)| s).collect(),
        }
    }
}

/// Intermediate buffers kept between runs, so repeated calls with the same shapes
/// allocate (and page-fault) nothing for them.
const POOL_LIMIT: usize = 64;

/// Scratch sets kept between runs (one per run of the plan in flight at once).
const SCRATCH_LIMIT: usize = 4;

/// What a run of a plan reuses from earlier runs.
#[derive(Debug, Default)]
struct Scratch {
    /// Storage of intermediates freed by earlier runs (and of values handed back, see
    /// [`SubPlans`]).
    pool: Vec<Data>,
    /// The slot table: between runs it holds the constants only (set when the scratch is
    /// made, never freed), so a run does not touch their reference counts.
    slots: Vec<Option<Arc<Array>>>,
}

/// Storage for an output of `len` elements from `pool`: a recycled buffer, or a new one left
/// uninitialised. Only for kernels that overwrite all of it (fused loops, gemm, gather).
fn take_buffer(pool: &mut Vec<Data>, dtype: DType, len: usize) -> Data {
    match pool.iter().rposition(|d| d.dtype() == dtype && d.len() == len) {
        Some(i) => pool.swap_remove(i),
        // SAFETY: every buffer taken here is overwritten completely before it is read:
        // fused loops write all their output elements, gemm and gather write their whole
        // outputs without reading them (the only users, see `run_with` and `product`). Crate-private; the
        // sizes come from the plan's validated graph, whose inputs `run` checks.
        None => unsafe { Data::for_overwrite(dtype, len) },
    }
}

impl Scratch {
    /// Keeps `data` for a later `take_buffer`; when the pool is full ([`POOL_LIMIT`]), its
    /// oldest buffer makes room. (Dropping the new one instead let storage of a size no step
    /// takes — a kernel that allocates its own output adds one such buffer per run — fill the
    /// pool for good, after which every free went to glibc, which gave the memory back to the
    /// system, and every run page-faulted it in again: w10 orders 7-8 and w7 ran 1.6-2.3x
    /// slower once the heap settled that way.) The pool stays at most 64 buffers: a larger
    /// one made the lookups in `take_buffer` slower than the faults they saved on w9.
    fn recycle(&mut self, data: Data) {
        if self.pool.len() >= POOL_LIMIT {
            self.pool.remove(0);
        }
        self.pool.push(data);
    }

    /// Drops the values read for the last time, recycling their storage.
    fn free(&mut self, free: &[usize]) {
        for &v in free {
            // Only intermediates are uniquely owned here (inputs and constants are shared).
            if let Some(Ok(array)) = self.slots[v].take().map(Arc::try_unwrap) {
                self.recycle(array.data);
            }
        }
    }
}

/// The sub-plans of a structured step as its [`SubRunner`](crate::ops::SubRunner): the
/// storage of values the primitive hands back (a loop's old carries, when no one else holds
/// them) joins the pool of the sub-plan that made them at its next run, so a loop allocates
/// nothing per iteration for its carries.
struct SubPlans<'a> {
    plans: &'a [Plan],
    /// Per sub-plan, storage handed back since its last run.
    spare: Vec<Vec<Data>>,
    /// Sub-plan steps run so far, nested loops' steps included (what a whole native loop would
    /// save: see `Plan::loop_runs`).
    step_runs: u64,
}

thread_local! {
    /// Sub-plan steps run on this thread so far, at any depth: a loop's count includes the
    /// steps of loops nested in its body (`while_loop_bounded` spreads its iterations over
    /// nested scans, none long on its own), so the outermost loop that can run whole does.
    static SUB_STEPS_RUN: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

impl crate::ops::SubRunner for SubPlans<'_> {
    fn run(&mut self, k: usize, args: &[Tensor]) -> Vec<Tensor> {
        let before = SUB_STEPS_RUN.get();
        let out = self.plans[k].run_reusing(args, &mut self.spare[k]);
        // (A sub-plan's nested loops, run on this thread, have added their steps meanwhile.)
        let after = SUB_STEPS_RUN.get().wrapping_add(self.plans[k].steps.len() as u64);
        SUB_STEPS_RUN.set(after);
        self.step_runs += after.wrapping_sub(before);
        out
    }

    fn recycle(&mut self, k: usize, value: Tensor) {
        if let crate::tensor::Repr::Concrete(arc) = value.repr {
            if let (true, Ok(array)) = (self.spare[k].len() < POOL_LIMIT, Arc::try_unwrap(arc)) {
                self.spare[k].push(array.data);
            }
        }
    }
}

/// An executable plan: value slots are graph vars; inputs and constants are preloaded.
#[derive(Debug)]
pub struct Plan {
    /// What earlier runs left for reuse: each run takes one [`Scratch`] (a new one when
    /// another run holds them all) and gives it back, so a run locks this twice, not once
    /// per buffer (a loop body's sub-plan runs once per iteration).
    scratch: Mutex<Vec<Scratch>>,
    steps: Vec<Step>,
    /// After step `i`, these slots are no longer needed.
    free_after: Vec<Vec<usize>>,
    num_slots: usize,
    inputs: Vec<usize>,
    /// The dtype and shape each argument must have: kernels index buffers by them.
    input_types: Vec<TensorType>,
    constants: Vec<(usize, Arc<Array>)>,
    /// Which slots hold constants.
    const_slot: Vec<bool>,
    outputs: Vec<usize>,
    /// Whether some step splits its work over the thread pool.
    parallel: bool,
    /// For each step, how many steps starting there run at the same time (independent
    /// products, each on one thread: better than each on all threads one after another);
    /// 1 for a step on its own, 0 inside such a group.
    together: Vec<usize>,
    /// With `COTANGENT_PROFILE=1`: time spent in each step and number of runs, reported
    /// when the plan is dropped.
    profile: Option<Mutex<(Vec<std::time::Duration>, usize)>>,
    /// Per step: the `while`/`scan` compiled as one native function (see
    /// [`native::whole_loop`]), which then runs in place of the step's sub-plans.
    whole_loops: Vec<Option<Arc<native::whole_loop::LoopKernel>>>,
    /// Per step: the most sub-plan steps one run of a structured step has taken so far (a
    /// `while`'s expected work per call, for deciding to compile it whole).
    loop_runs: Vec<std::sync::atomic::AtomicU64>,
    /// Per step: the loop compiled whole in the background after a long interpreted run
    /// (`NativeMode::Auto`), used from the loop's next run on.
    lazy_loops: Vec<native::whole_loop::Lazy>,
}

/// Whether plans time their steps (`COTANGENT_PROFILE=1`).
fn profiling() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("COTANGENT_PROFILE").is_some_and(|v| v != "0"))
}

impl Drop for Plan {
    fn drop(&mut self) {
        if let Some(report) = self.profile_report() {
            eprint!("{report}");
        }
    }
}

impl Plan {
    /// With `COTANGENT_PROFILE=1` set, the time spent in each step over the runs so far,
    /// slowest first (also printed when the plan is dropped); `None` otherwise or before any run.
    pub fn profile_report(&self) -> Option<String> {
        let (times, runs) = &*self.profile.as_ref()?.lock().unwrap_or_else(|e| e.into_inner());
        if *runs == 0 {
            return None;
        }
        let total: f64 = times.iter().map(|t| t.as_secs_f64()).sum();
        let mut order: Vec<usize> = (0..times.len()).collect();
        order.sort_by(|&a, &b| times[b].cmp(&times[a]));
        let listing = self.dump();
        // Each step's first line in the dump ("  7: ..."), by step number.
        let lines: Vec<&str> = (0..times.len())
            .map(|i| {
                let tag = format!("  {i}: ");
                listing.lines().find(|l| l.starts_with(&tag)).unwrap_or("")
            })
            .collect();
        let mut report = format!(
            "cotangent profile: {} steps, {runs} runs, {:.1} µs per run; steps by time:\n",
            times.len(),
            total / *runs as f64 * 1e6
        );
        // The 12 slowest, or `COTANGENT_PROFILE_TOP` of them.
        let top = std::env::var("COTANGENT_PROFILE_TOP").ok().and_then(|s| s.parse().ok()).unwrap_or(12);
        for &i in order.iter().take(top) {
            let per = times[i].as_secs_f64() / *runs as f64 * 1e6;
            let share = 100.0 * times[i].as_secs_f64() / total.max(f64::MIN_POSITIVE);
            let _ = writeln!(report, "  {per:9.1} µs {share:5.1}%  {}", lines.get(i).map_or("", |l| l.trim()));
        }
        Some(report)
    }
}

/// `items` reordered in place so that item `order[k]` comes `k`-th (`order` is a
/// permutation): no second vector of (large) items to write and page-fault.
fn permute<T>(mut items: Vec<T>, order: &[usize]) -> Vec<T> {
    assert_eq!(items.len(), order.len(), "permute: one position per item");
    // `to[i]`: where the item now at `i` goes; each swap puts one item in its place.
    let mut to = vec![usize::MAX; order.len()];
    for (k, &s) in order.iter().enumerate() {
        assert!(to[s] == usize::MAX, "permute: item {s} listed twice");
        to[s] = k;
    }
    for i in 0..items.len() {
        while to[i] != i {
            let j = to[i];
            items.swap(i, j);
            to.swap(i, j);
        }
    }
    items
}

/// Primitives that become instructions of a fused loop.
fn fusible(prim: &Prim) -> bool {
    matches!(prim, Prim::Unary(_) | Prim::Binary(_) | Prim::Select | Prim::Convert { .. })
}

/// The [`Step::DotArg`] for node `i` when it is an arg-reduction over the last axis of an f64
/// product `[m, d] · [d, k]` (no batch axes, depth at most `cpu::dot_arg::MAX_DEPTH`, `k ≥ 1`),
/// or of such a product plus a row `[k]` (or `[1, k]`) broadcast over its rows, where nothing
/// else reads the product (or sum) and neither is an output; the left operand contracts its
/// last axis. Also the nodes the step replaces (the product, and the addition). `alone`
/// says whether an element-wise node is the only member of its fused group.
fn dot_arg_pattern(
    g: &Graph,
    users: &Users,
    is_output: &[bool],
    alone: &dyn Fn(usize) -> bool,
    i: usize,
) -> Option<(Step, Vec<usize>)> {
    let Prim::Arg { op, axis: 1 } = g.nodes[i].prim else { return None };
    let only_reader = |v: usize| users[v].len() == 1 && !is_output[v];
    let mut v = g.nodes[i].inputs[0].index();
    let mut replaced = vec![];
    let mut bias = None;
    if let Prim::Binary(crate::ops::BinaryOp::Add) = g.nodes[v].prim {
        let (x, y) = (g.nodes[v].inputs[0].index(), g.nodes[v].inputs[1].index());
        let is_dot = |u: usize| matches!(g.nodes[u].prim, Prim::DotGeneral { .. });
        let (dot, row) = if is_dot(x) { (x, y) } else { (y, x) };
        let Prim::BroadcastInDim { dims, .. } = &g.nodes[row].prim else { return None };
        let s = g.nodes[row].inputs[0].index();
        let st = &g.nodes[s].ty;
        let row_of_k = match st.shape[..] {
            [k] => dims[..] == [1] && k == g.nodes[v].ty.shape[1],
            [1, k] => dims[..] == [0, 1] && k == g.nodes[v].ty.shape[1],
            _ => false,
        };
        // The row is read from its own slot: it must be stored there (not a view read through).
        let stored = !is_view(&g.nodes[s].prim) && !matches!(g.nodes[s].prim, Prim::Pad { .. });
        if !(is_dot(dot) && row_of_k && stored && st.dtype == DType::F64 && only_reader(v) && alone(v)) {
            return None;
        }
        replaced.push(v);
        bias = Some(s);
        v = dot;
    }
    let Prim::DotGeneral { lhs_contract, rhs_contract, lhs_batch, rhs_batch } = &g.nodes[v].prim else {
        return None;
    };
    let (a, b) = (g.nodes[v].inputs[0], g.nodes[v].inputs[1]);
    let (sa, sb) = (&g.ty(a).shape, &g.ty(b).shape);
    let shallow = g.ty(a).dtype == DType::F64
        && sa.len() == 2
        && sb.len() == 2
        && lhs_batch.is_empty()
        && rhs_batch.is_empty()
        && lhs_contract[..] == [1]
        && (1..=crate::backend::cpu::dot_arg::MAX_DEPTH).contains(&sa[1])
        && sa[0] > 0
        && only_reader(v);
    let b_rows = match rhs_contract[..] {
        [1] => true,
        [0] => false,
        _ => return None,
    };
    let k = if b_rows { sb[0] } else { sb[1] };
    replaced.push(v);
    let mut ins = vec![a.index(), b.index()];
    ins.extend(bias);
    (shallow && k > 0).then(|| {
        let step = Step::DotArg { ins, out: i, dims: (sa[0], sa[1], k), b_rows, max: op == crate::ops::ArgOp::Max };
        (step, replaced)
    })
}

/// Primitives that only re-index their operand. A fused loop reads through them
/// (a strided load of the operand), so they are materialised only for other readers.
fn is_view(prim: &Prim) -> bool {
    matches!(
        prim,
        Prim::BroadcastInDim { .. }
            | Prim::Transpose { .. }
            | Prim::Slice { .. }
            | Prim::Rev { .. }
            | Prim::Reshape { .. }
    )
}

/// Row-major strides of `shape` as signed steps (one allocation).
#[cfg(test)]
fn dense_strides(shape: &[usize]) -> Vec<isize> {
    let mut s = vec![1isize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1] as isize;
    }
    s
}

/// Whether `st` are the row-major strides of `shape` (`st == dense_strides(shape)`, without
/// building them).
fn is_dense(st: &[isize], shape: &[usize]) -> bool {
    let mut step = 1isize;
    st.len() == shape.len()
        && (0..shape.len()).rev().all(|i| {
            let ok = st[i] == step;
            step *= shape[i] as isize;
            ok
        })
}

/// Row-major strides of `shape` written into `out` (no allocation once `out` is large enough).
fn dense_strides_into(shape: &[usize], out: &mut Vec<isize>) {
    out.clear();
    out.resize(shape.len(), 1);
    for i in (0..shape.len().saturating_sub(1)).rev() {
        out[i] = out[i + 1] * shape[i + 1] as isize;
    }
}

/// Work vectors for [`resolve_in`], reused from operand to operand (a plan resolves every
/// operand of every loop: one strides vector per view level was a third of its allocations).
#[derive(Default)]
struct Strides {
    /// The strides [`resolve_in`] found.
    st: Vec<isize>,
    tmp: Vec<isize>,
}

/// How a fused loop reads `v`: a materialised source value, a base offset and a stride per
/// axis of `v`, found by composing the views between them.
#[cfg(test)]
fn resolve(g: &Graph, v: Var) -> (Var, isize, Vec<isize>) {
    let mut w = Strides::default();
    let (src, base) = resolve_in(g, v, &mut w);
    (src, base, w.st)
}

/// [`resolve`] with the strides left in `w.st`.
fn resolve_in(g: &Graph, v: Var, w: &mut Strides) -> (Var, isize) {
    let node = &g.nodes[v.index()];
    if !is_view(&node.prim) {
        dense_strides_into(&node.ty.shape, &mut w.st);
        return (v, 0);
    }
    let x = node.inputs[0];
    let xs = &g.ty(x).shape;
    let (src, mut base) = resolve_in(g, x, w);
    let Strides { st, tmp } = w;
    match &node.prim {
        Prim::BroadcastInDim { shape, dims } => {
            tmp.clear();
            tmp.resize(shape.len(), 0);
            for (i, &d) in dims.iter().enumerate() {
                tmp[d] = if xs[i] == 1 { 0 } else { st[i] };
            }
            std::mem::swap(st, tmp);
        }
        Prim::Transpose { perm } => {
            tmp.clear();
            tmp.extend(perm.iter().map(|&p| st[p]));
            std::mem::swap(st, tmp);
        }
        Prim::Slice { start, stride, .. } => {
            base += start.iter().zip(st.iter()).map(|(&a, &s)| a as isize * s).sum::<isize>();
            st.iter_mut().zip(stride).for_each(|(s, &k)| *s *= k as isize);
        }
        Prim::Rev { axes } => {
            // (Reads the strides before the reversal: a repeated axis flips once per mention.)
            tmp.clear();
            tmp.extend_from_slice(st);
            for &a in axes {
                if xs[a] > 0 {
                    base += (xs[a] as isize - 1) * tmp[a];
                }
                st[a] = -tmp[a];
            }
        }
        Prim::Reshape { shape } => {
            // Only a reshape of a contiguous view is itself a simple view.
            dense_strides_into(xs, tmp);
            let is_dense = (0..xs.len()).all(|i| xs[i] == 1 || st[i] == tmp[i]);
            if is_dense {
                dense_strides_into(shape, st);
            } else if unit_axes_reshaped_into(xs, st, shape, tmp) {
                std::mem::swap(st, tmp); // (a column of a strided view: `x[:, j]` as slice then reshape)
            } else {
                dense_strides_into(&node.ty.shape, st);
                return (v, 0);
            }
        }
        _ => unreachable!(),
    }
    (src, base)
}

/// The strides (written into `out`) of a reshape of a view (shape `xs`, strides `st`) to `to`
/// that only removes or inserts axes of extent 1: the other axes keep theirs. False (and
/// `out` unspecified) for any other reshape.
fn unit_axes_reshaped_into(xs: &[usize], st: &[isize], to: &[usize], out: &mut Vec<isize>) -> bool {
    let kept = (0..xs.len()).filter(|&i| xs[i] != 1);
    if !kept.clone().map(|i| xs[i]).eq(to.iter().copied().filter(|&d| d != 1)) {
        return false;
    }
    let mut next = kept;
    out.clear();
    out.extend(to.iter().map(|&d| if d == 1 { 0 } else { st[next.next().expect("as many axes")] }));
    true
}

/// The materialised value a fused loop reads when it reads `v` (`resolve_load(..).0`, which
/// does not depend on the loop's shape), computed once per value: grouping asks for the
/// operands of every element-wise node, several times each.
struct Sources<'g> {
    g: &'g Graph,
    cache: Vec<std::cell::Cell<u32>>,
    work: std::cell::RefCell<Strides>,
}

impl<'g> Sources<'g> {
    fn new(g: &'g Graph) -> Sources<'g> {
        Sources { g, cache: vec![std::cell::Cell::new(u32::MAX); g.nodes.len()], work: Default::default() }
    }

    fn source(&self, v: Var) -> Var {
        let cached = self.cache[v.index()].get();
        if cached != u32::MAX {
            return Var(cached);
        }
        let s = load_source(self.g, v, &mut self.work.borrow_mut());
        self.cache[v.index()].set(s.0);
        s
    }

    /// The position after which `v` can be read: inputs and constants are there from the start.
    fn available(&self, v: Var) -> usize {
        let s = self.source(v);
        match self.g.nodes[s.index()].prim {
            Prim::Input(_) | Prim::Constant(_) => 0,
            _ => s.index(),
        }
    }
}

/// The padded operand of a zero-padding fused loops read through (`pad` without interior
/// padding, of a constant), and its low padding and fill value.
fn read_through_pad<'n>(g: &Graph, node: &'n crate::ir::Node) -> Option<(Var, &'n [i64], f64)> {
    if let Prim::Pad { low, interior, .. } = &node.prim {
        let value = &g.nodes[node.inputs[1].index()].prim;
        if let (true, Prim::Constant(c)) = (interior.iter().all(|&i| i == 0), value) {
            return Some((node.inputs[0], low, c.data.get_f64(0)));
        }
    }
    None
}

/// `resolve_load(g, v, ..).0` without building the load.
fn load_source(g: &Graph, v: Var, w: &mut Strides) -> Var {
    match read_through_pad(g, &g.nodes[v.index()]) {
        Some((x, _, _)) => resolve_in(g, x, w).0,
        None => resolve_in(g, v, w).0,
    }
}

/// How a fused loop over `shape` reads operand `v`: its materialised source and the load.
/// A zero-padding (`pad` without interior padding, of a constant) directly under the reader is
/// read through as well, with a bounds check per element.
fn resolve_load(g: &Graph, v: Var, shape: &[usize], w: &mut Strides) -> (Var, fused::LoadKind) {
    let node = &g.nodes[v.index()];
    if let Some((x, low, fill)) = read_through_pad(g, node) {
        let (src, base) = resolve_in(g, x, w);
        let st = &w.st;
        let xs = &g.ty(x).shape;
        let base = base - low.iter().zip(st).map(|(&l, &s)| l as isize * s).sum::<isize>();
        let valid = low.iter().zip(xs).map(|(&l, &n)| (l as isize, l as isize + n as isize)).collect();
        return (src, fused::LoadKind::Padded { base, strides: st.clone(), valid, fill });
    }
    let (src, base) = resolve_in(g, v, w);
    let st = &w.st;
    let kind = if g.ty(src).numel() == 1 {
        fused::LoadKind::Scalar
    } else if base == 0 && is_dense(st, shape) && g.ty(src).numel() == crate::shape::numel(shape) {
        fused::LoadKind::Contiguous
    } else {
        fused::LoadKind::Strided { base, strides: st.clone() }
    };
    (src, kind)
}

/// The readers of each node, in order (a node reading a value twice is listed twice): one
/// flat list with offsets per node, `users[i]` (no list per node to allocate and free).
struct Users {
    start: Vec<u32>,
    list: Vec<usize>,
}

impl Users {
    fn new(g: &Graph) -> Users {
        let n = g.nodes.len();
        let mut start = vec![0u32; n + 1];
        for node in &g.nodes {
            node.inputs.iter().for_each(|v| start[v.index() + 1] += 1);
        }
        for i in 0..n {
            start[i + 1] += start[i];
        }
        let mut fill = start.clone();
        let mut list = vec![0; start[n] as usize];
        for (i, node) in g.nodes.iter().enumerate() {
            for v in &node.inputs {
                list[fill[v.index()] as usize] = i;
                fill[v.index()] += 1;
            }
        }
        Users { start, list }
    }
}

impl std::ops::Index<usize> for Users {
    type Output = [usize];
    fn index(&self, i: usize) -> &[usize] {
        &self.list[self.start[i] as usize..self.start[i + 1] as usize]
    }
}

struct Group {
    first: usize,
    /// The latest position of anything the members read from outside the group (< `first`).
    reads_after: usize,
    shape: Shape,
    members: Vec<usize>,
    /// A reduction node fused onto the group's single output.
    reduce: Option<usize>,
}

impl Plan {
    /// Builds the plan for an (optimised) graph, with its fused loops compiled to native
    /// code where the [`NativeMode`](crate::NativeMode) selects them.
    ///
    /// # Panics
    /// If the graph breaks its invariants ([`Graph::validate`]): the plan's kernels index
    /// buffers by the node types, so they must be the types the primitives' rules give.
    #[track_caller]
    pub fn new(g: &Graph) -> Plan {
        let mut plan = Plan::interpreted(g);
        plan.compile_native();
        plan
    }

    /// The plan [`Plan::new`] builds, with every loop interpreted until
    /// [`Plan::compile_native`] is called. Native and interpreted loops give bitwise equal
    /// results, so a plan computes the same values before and after; `jit` runs a function's
    /// first call this way, and pays for the C compiler only if the function is called again.
    #[track_caller]
    pub fn interpreted(g: &Graph) -> Plan {
        if let Err(e) = g.validate() {
            panic!("Plan::new: invalid graph: {e}");
        }
        // Short trailing axes (batched small vectors) split into columns: see `columns`.
        let split = super::columns::split_columns(g);
        let g = split.as_ref().unwrap_or(g);
        let padded = super::columns::concatenates_as_pads(g);
        let g = padded.as_ref().unwrap_or(g);
        let n = g.nodes.len();
        let users = Users::new(g);
        let is_output: Vec<bool> = {
            let mut o = vec![false; n];
            g.outputs.iter().for_each(|v| o[v.index()] = true);
            o
        };

        // 1. Group element-wise nodes of one shape into fusible regions.
        let sources = Sources::new(g);
        let mut group_of: Vec<Option<usize>> = vec![None; n];
        let mut groups: Vec<Group> = Vec::new();
        let mut cands: Vec<usize> = Vec::new();
        for (i, node) in g.nodes.iter().enumerate() {
            if !fusible(&node.prim) || node.ty.numel() == 0 {
                continue;
            }
            // Candidate groups: those of the operands, of this shape, not already reduced.
            cands.clear();
            cands.extend(
                node.inputs
                    .iter()
                    .filter_map(|v| group_of[v.index()])
                    .filter(|&c| groups[c].shape == node.ty.shape && groups[c].reduce.is_none()),
            );
            cands.sort_by_key(|&c| groups[c].first);
            cands.dedup();
            let outside = |group_of: &[Option<usize>], gids: &[usize]| -> usize {
                node.inputs
                    .iter()
                    .filter(|v| !group_of[v.index()].is_some_and(|c| gids.contains(&c)))
                    .map(|v| sources.available(*v))
                    .max()
                    .unwrap_or(0)
            };
            // Everything a group reads from outside must be ready before the group starts: that
            // keeps the steps acyclic. Prefer merging all candidate groups into the earliest.
            let mut chosen = None;
            if let Some(&target) = cands.first() {
                let first = groups[target].first;
                let legal =
                    outside(&group_of, &cands) < first && cands[1..].iter().all(|&c| groups[c].reads_after < first);
                if legal {
                    // The largest group takes in the others (so each node is relabelled
                    // O(log n) times) and starts where the earliest did.
                    let keep = *cands.iter().max_by_key(|&&c| (groups[c].members.len(), std::cmp::Reverse(c))).unwrap();
                    for &c in &cands {
                        if c == keep {
                            continue;
                        }
                        let moved = std::mem::take(&mut groups[c].members);
                        for &m in &moved {
                            group_of[m] = Some(keep);
                        }
                        groups[keep].members.extend(moved);
                        groups[keep].reads_after = groups[keep].reads_after.max(groups[c].reads_after);
                    }
                    groups[keep].first = first;
                    chosen = Some(keep);
                } else {
                    chosen = cands.iter().copied().find(|&c| outside(&group_of, &[c]) < groups[c].first);
                }
            }
            let gid = match chosen {
                Some(c) => {
                    let r = outside(&group_of, &[c]);
                    groups[c].reads_after = groups[c].reads_after.max(r);
                    c
                }
                None => {
                    let r = outside(&group_of, &[]);
                    groups.push(Group {
                        first: i,
                        reads_after: r,
                        shape: node.ty.shape.clone(),
                        members: vec![],
                        reduce: None,
                    });
                    groups.len() - 1
                }
            };
            groups[gid].members.push(i);
            group_of[i] = Some(gid);
        }
        for grp in &mut groups {
            grp.members.sort_unstable();
        }
        // 2. Fuse a float reduction over trailing axes onto a group whose only product it consumes.
        // Per group: how many members are read outside it (or are outputs), and one of them.
        // (Fusing a reduction onto a group changes neither for groups without one.)
        let mut external: Vec<(usize, usize)> = vec![(0, usize::MAX); groups.len()];
        for (gid, grp) in groups.iter().enumerate() {
            for &m in &grp.members {
                if is_output[m] || users[m].iter().any(|u| group_of[*u] != Some(gid)) {
                    external[gid] = (external[gid].0 + 1, m);
                }
            }
        }
        for (i, node) in g.nodes.iter().enumerate() {
            let Prim::Reduce { op, axes } = &node.prim else {
                continue;
            };
            let v = node.inputs[0].index();
            let Some(gid) = group_of[v] else { continue };
            let r = g.nodes[v].ty.rank();
            let trailing = !axes.is_empty() && axes.iter().enumerate().all(|(k, &a)| a == r - axes.len() + k);
            let grp = &groups[gid];
            let only_output = match external[gid] {
                (0, _) => true,
                (1, m) => m == v,
                _ => false,
            };
            if node.ty.dtype.is_float()
                && trailing
                && users[v].len() == 1
                && !is_output[v]
                && only_output
                && grp.reduce.is_none()
                && matches!(op, ReduceOp::Sum | ReduceOp::Max | ReduceOp::Min | ReduceOp::Prod)
            {
                groups[gid].reduce = Some(i);
                group_of[i] = Some(gid);
            }
        }

        // 2b. Shallow products read only by an arg-reduction over their last axis: one step.
        let mut into_arg = vec![false; n];
        let alone =
            |v: usize| group_of[v].is_some_and(|gid| groups[gid].members.len() == 1 && groups[gid].reduce.is_none());
        // (By node, in increasing order: few nodes have one, and a `Vec<Option<Step>>` by node
        // would write (and page-fault) some 200 bytes per node of a large graph.)
        let arg_of_dot: Vec<(usize, Step)> = (0..n)
            .filter_map(|i| {
                let (step, replaced) = dot_arg_pattern(g, &users, &is_output, &alone, i)?;
                replaced.into_iter().for_each(|v| into_arg[v] = true);
                Some((i, step))
            })
            .collect();

        // 3. Steps: one per group, one per other computing node. Record what each defines and reads.
        let mut step_of: Vec<Option<usize>> = vec![None; n];
        let mut steps: Vec<Step> = Vec::new();
        let mut constants = Vec::new();
        // A view is materialised only when something other than a fused loop (or another
        // unmaterialised view) reads it.
        // A node that fused loops read through (views, zero-paddings) is materialised only if a
        // loop reads it as a source or a kernel reads it. A view that `resolve` cannot see through
        // (a reshape of a strided view) is an ordinary kernel.
        let mut work = Strides::default();
        // (The register of each member of the loop being built, by node: set before it is
        // read, so shared by all loops.)
        let mut reg_of = vec![0usize; n];
        let transparent: Vec<bool> = (0..n)
            .map(|i| {
                let v = Var(i as u32);
                matches!(g.nodes[i].prim, Prim::Pad { .. })
                    || is_view(&g.nodes[i].prim) && resolve_in(g, v, &mut work).0 != v
            })
            .collect();
        let mut sourced = vec![false; n];
        for (m, node) in g.nodes.iter().enumerate() {
            if let Some(gid) = group_of[m] {
                for v in &node.inputs {
                    if group_of[v.index()] != Some(gid) {
                        sourced[sources.source(*v).index()] = true;
                    }
                }
            }
        }
        let mut needed = vec![true; n];
        for i in (0..n).rev() {
            if transparent[i] && sources.source(Var(i as u32)) != Var(i as u32) {
                needed[i] = is_output[i]
                    || sourced[i]
                    || users[i].iter().any(|&u| group_of[u].is_none() && (needed[u] || !transparent[u]));
            }
        }
        for (i, node) in g.nodes.iter().enumerate() {
            match &node.prim {
                Prim::Input(_) => continue,
                Prim::Constant(a) => {
                    constants.push((i, a.clone()));
                    continue;
                }
                // Written by its tuple's step.
                Prim::Proj(_) => continue,
                prim if prim.is_tuple() => {
                    let ins: Vec<usize> = node.inputs.iter().map(|v| v.index()).collect();
                    let s = steps.len();
                    let mut outs = Vec::new();
                    for &u in &users[i] {
                        if let Prim::Proj(k) = g.nodes[u].prim {
                            outs.push((k, u));
                            step_of[u] = Some(s);
                        }
                    }
                    step_of[i] = Some(s);
                    let subs =
                        prim.subgraphs().into_iter().map(|sub| Plan::interpreted(&super::optimize(sub))).collect();
                    steps.push(Step::Multi { prim: prim.clone(), ins, outs, subs: Arc::new(subs) });
                    continue;
                }
                _ => {}
            }
            if !needed[i] || into_arg[i] {
                continue; // every reader is a fused loop, which reads through the view (or a dot-arg step)
            }
            if let Ok(k) = arg_of_dot.binary_search_by_key(&i, |e| e.0) {
                let step = &arg_of_dot[k].1;
                step_of[i] = Some(steps.len());
                steps.push(step.clone());
                continue;
            }
            if let Some(gid) = group_of[i] {
                if step_of[i].is_some() {
                    continue;
                }
                let step = fused_step(g, &groups[gid], &users, &is_output, &group_of, gid, &mut work, &mut reg_of);
                let s = steps.len();
                for &m in groups[gid].members.iter().chain(groups[gid].reduce.iter()) {
                    step_of[m] = Some(s);
                }
                steps.push(step);
            } else {
                let ins: Vec<usize> = node.inputs.iter().map(|v| v.index()).collect();
                step_of[i] = Some(steps.len());
                steps.push(Step::Kernel { prim: node.prim.clone(), ins, out: i, ty: node.ty.clone() });
            }
        }

        // 4. Order steps by dependencies (Kahn's algorithm, earliest step first).
        // (The distinct steps each step reads from, as one flat list with offsets; `dependents`
        // the same lists inverted, each in increasing order of the dependent step.)
        let mut dep_start = Vec::with_capacity(steps.len() + 1);
        let mut dep_list: Vec<usize> = Vec::with_capacity(steps.iter().map(|s| s.inputs().len()).sum());
        dep_start.push(0);
        for step in &steps {
            let from = dep_list.len();
            dep_list.extend(step.inputs().iter().filter_map(|&v| step_of[v]));
            dep_list[from..].sort_unstable();
            let mut kept = from;
            for k in from..dep_list.len() {
                if kept == from || dep_list[k] != dep_list[kept - 1] {
                    dep_list[kept] = dep_list[k];
                    kept += 1;
                }
            }
            dep_list.truncate(kept);
            dep_start.push(dep_list.len());
        }
        let mut indegree: Vec<usize> = dep_start.windows(2).map(|w| w[1] - w[0]).collect();
        let mut dependents_start = vec![0usize; steps.len() + 1];
        dep_list.iter().for_each(|&p| dependents_start[p + 1] += 1);
        for s in 0..steps.len() {
            dependents_start[s + 1] += dependents_start[s];
        }
        let mut dependents = vec![0usize; dep_list.len()];
        let mut fill = dependents_start.clone();
        for s in 0..steps.len() {
            for &p in &dep_list[dep_start[s]..dep_start[s + 1]] {
                dependents[fill[p]] = s;
                fill[p] += 1;
            }
        }
        // (A min-heap: the earliest ready step first, as a `BTreeSet`'s `pop_first` would.)
        let mut ready: BinaryHeap<Reverse<usize>> =
            (0..steps.len()).filter(|&s| indegree[s] == 0).map(Reverse).collect();
        let mut order = Vec::with_capacity(steps.len());
        while let Some(Reverse(s)) = ready.pop() {
            order.push(s);
            for &d in &dependents[dependents_start[s]..dependents_start[s + 1]] {
                indegree[d] -= 1;
                if indegree[d] == 0 {
                    ready.push(Reverse(d));
                }
            }
        }
        assert_eq!(order.len(), steps.len(), "plan: fusion produced a dependency cycle");
        let steps = permute(steps, &order);
        let shape_of = |slot: usize| g.nodes[slot].ty.shape.clone();
        let worth_it = |p: &fused::Program| {
            let elements = crate::shape::numel(&p.shape);
            // A loop of a few elements (the head of a concatenate's cotangent, `g[:1]`)
            // recomputes a producer's chain for those elements only, at any speed: cheaper
            // than the producer's whole array, which it may then not need at all.
            if elements <= inline::RECOMPUTED_ANYWHERE {
                return true;
            }
            let native = native::enabled_for(elements);
            if native {
                // Planned for native code: `jit` runs a plan built for the interpreter meanwhile.
                native::note_planned_for_native();
            }
            native
        };
        let steps = inline::fuse_through_views(steps, &is_output, &shape_of, &constants, &worth_it);
        // Multiply-adds of each product large enough to use threads.
        let product_size = |s: &Step| match s {
            Step::Kernel { prim: Prim::DotGeneral { lhs_contract, .. }, ins, ty, .. } => {
                let lhs = &g.nodes[ins[0]].ty.shape;
                let contracted: usize = lhs_contract.iter().map(|&a| lhs[a]).product();
                cpu::dot::runs_in_parallel(ty.numel(), contracted).then_some(ty.numel() * contracted)
            }
            _ => None,
        };
        let threads = crate::threads::threads();
        let mut steps = if threads > 1 { hoist_products(steps, &product_size) } else { steps };

        // 5. Free each slot after its last reader (outputs live to the end).
        // (Per slot, by index: each step frees its slots in increasing order.)
        let mut last_read: Vec<usize> = vec![usize::MAX; n];
        for (s, step) in steps.iter().enumerate() {
            for &v in step.inputs() {
                last_read[v] = s;
            }
        }
        // (Constants stay in their slots for the next run: see `Scratch::slots`.)
        let freed_after = |v: usize| {
            let s = last_read[v];
            (s != usize::MAX && !is_output[v] && !matches!(g.nodes[v].prim, Prim::Constant(_))).then_some(s)
        };
        // (Each list allocated once at its length.)
        let mut count = vec![0usize; steps.len()];
        (0..n).filter_map(freed_after).for_each(|s| count[s] += 1);
        let mut free_after: Vec<Vec<usize>> = count.iter().map(|&c| Vec::with_capacity(c)).collect();
        for v in 0..n {
            if let Some(s) = freed_after(v) {
                free_after[s].push(v);
            }
        }
        // 6. Loops write over intermediates they read for the last time; then compile them.
        let intermediate = |v: usize| !matches!(g.nodes[v].prim, Prim::Input(_) | Prim::Constant(_));
        // (`freed[v]`: slot `v` is freed after the step at hand; set and cleared per step.)
        let mut freed = vec![false; n];
        for (step, free) in steps.iter_mut().zip(&free_after) {
            if let Step::Fused { prog, ins, in_place, .. } = step {
                free.iter().for_each(|&v| freed[v] = true);
                let reusable = |p: usize| {
                    let v = ins[p];
                    freed[v] && intermediate(v) && g.nodes[v].ty.numel() == crate::shape::numel(&prog.shape)
                };
                *in_place = in_place_outputs(prog, &reusable);
                free.iter().for_each(|&v| freed[v] = false);
            }
        }
        let steps_len = steps.len();
        // (A structured step whose sub-plans have parallel steps counts too: the whole plan then
        // moves to a pool thread once, rather than each run of a sub-plan — once per loop
        // iteration — handing its work over and sleeping until it is done.)
        let parallel = steps.iter().any(|s| match s {
            Step::Fused { prog, .. } => fused::runs_in_parallel(prog),
            Step::Multi { subs, .. } => subs.iter().any(|p| p.parallel),
            &Step::DotArg { dims: (m, d, k), .. } => cpu::dot::runs_in_parallel(m * k, d),
            s => product_size(s).is_some(),
        });
        let together = concurrent_products(&steps, &product_size, threads);
        Plan {
            parallel,
            together,
            scratch: Mutex::new(Vec::new()),
            steps,
            free_after,
            num_slots: n,
            inputs: g.inputs.iter().map(|v| v.index()).collect(),
            input_types: g.inputs.iter().map(|v| g.ty(*v).clone()).collect(),
            const_slot: {
                let mut c = vec![false; n];
                constants.iter().for_each(|&(s, _)| c[s] = true);
                c
            },
            constants,
            outputs: g.outputs.iter().map(|v| v.index()).collect(),
            profile: profiling().then(|| Mutex::new((vec![std::time::Duration::ZERO; steps_len], 0))),
            whole_loops: vec![None; steps_len],
            loop_runs: (0..steps_len).map(|_| std::sync::atomic::AtomicU64::new(0)).collect(),
            lazy_loops: (0..steps_len).map(|_| Default::default()).collect(),
        }
    }

    /// Runs the plan on concrete arguments.
    ///
    /// # Panics
    /// If the arguments are not concrete, or their number, dtypes or shapes differ from the
    /// graph's inputs (the kernels are built for exactly those).
    ///
    /// ```
    /// use cotangent::compile::{optimize, Plan};
    /// use cotangent::{trace_graph, Tensor, TensorType, DType};
    /// let g = trace_graph(&[TensorType::new(DType::F32, vec![4])], |x| vec![x[0].exp()]);
    /// let plan = Plan::new(&optimize(&g));
    /// let y = plan.run(&[Tensor::from_vec(vec![0.0f32; 4], &[4])]);
    /// assert_eq!(y[0].to_vec::<f32>(), vec![1.0; 4]);
    /// let wrong = std::panic::catch_unwind(|| plan.run(&[Tensor::from_vec(vec![0.0f32; 2], &[2])]));
    /// assert!(wrong.is_err());
    /// ```
    #[track_caller]
    pub fn run(&self, args: &[Tensor]) -> Vec<Tensor> {
        self.run_reusing(args, &mut Vec::new())
    }

    /// [`Plan::run`], its buffer pool first topped up with `spare` (storage of values this
    /// plan returned earlier, which the caller is done with: see [`SubPlans`]).
    #[track_caller]
    fn run_reusing(&self, args: &[Tensor], spare: &mut Vec<Data>) -> Vec<Tensor> {
        self.check_args(args);
        // A plan with parallel steps runs on a pool thread: its kernels (fused loops, gemm)
        // then share work with the other pool threads directly, instead of this thread handing
        // each one over and sleeping until it is done (measured: ~15% on the MLP workloads).
        // Plans without parallel steps stay here: the hop alone costs microseconds.
        if self.parallel && rayon::current_thread_index().is_none() {
            let mut out = None;
            rayon::scope(|s| s.spawn(|_| out = Some(self.run_here(args, spare))));
            return out.expect("the plan ran");
        }
        self.run_here(args, spare)
    }

    /// Panics at the caller's line unless `args` are concrete and typed like the graph's inputs
    /// (checked without allocating: steady-state calls allocate only their outputs).
    #[inline]
    #[track_caller]
    fn check_args(&self, args: &[Tensor]) {
        let fits = |(a, ty): (&Tensor, &TensorType)| match a.as_concrete() {
            // (Compared element by element: shapes are short, and a `memcmp` call costs more.)
            Some(a) => {
                a.data.dtype() == ty.dtype
                    && a.shape.len() == ty.shape.len()
                    && a.shape.iter().zip(&ty.shape).all(|(x, y)| x == y)
            }
            None => false,
        };
        if args.len() != self.input_types.len() || !args.iter().zip(&self.input_types).all(fits) {
            self.wrong_args(args);
        }
    }

    #[cold]
    #[inline(never)]
    #[track_caller]
    fn wrong_args(&self, args: &[Tensor]) -> ! {
        let list = |types: Vec<String>| types.join(", ");
        let got = args.iter().map(|a| if a.is_traced() { format!("traced {}", a.ty()) } else { a.ty().to_string() });
        panic!(
            "Plan::run: the plan was built for concrete arguments ({}), got ({})",
            list(self.input_types.iter().map(ToString::to_string).collect()),
            list(got.collect())
        );
    }

    fn run_here(&self, args: &[Tensor], spare: &mut Vec<Data>) -> Vec<Tensor> {
        let taken = self.scratch.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut scratch = taken.unwrap_or_else(|| {
            let mut slots = vec![None; self.num_slots];
            for (s, a) in &self.constants {
                slots[*s] = Some(a.clone());
            }
            Scratch { pool: Vec::new(), slots }
        });
        let room = POOL_LIMIT.saturating_sub(scratch.pool.len()).min(spare.len());
        scratch.pool.extend(spare.drain(..room));
        spare.clear();
        let outputs = self.run_with(&mut scratch, args);
        // Everything but the constants leaves the table: values read for the last time were
        // freed as the run went, what is left (inputs, outputs) is dropped here.
        for (slot, is_const) in scratch.slots.iter_mut().zip(&self.const_slot) {
            if !is_const {
                *slot = None;
            }
        }
        let mut kept = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() < SCRATCH_LIMIT {
            kept.push(scratch);
        }
        outputs
    }

    fn run_with(&self, scratch: &mut Scratch, args: &[Tensor]) -> Vec<Tensor> {
        let slots = &mut scratch.slots;
        for (&s, a) in self.inputs.iter().zip(args) {
            slots[s] = Some(a.concrete_arc());
        }
        let mut times = self.profile.as_ref().map(|_| Vec::with_capacity(self.steps.len()));
        let mut i = 0;
        while i < self.steps.len() {
            let group = self.together[i];
            if group > 1 {
                // Independent products at the same time, their blocks in one pool (a thread
                // done with one product takes blocks of the other rather than wait for it).
                let started = std::time::Instant::now();
                let pool = Mutex::new(&mut scratch.pool);
                let slots = &scratch.slots;
                let values: Vec<Array> = (i..i + group)
                    .into_par_iter()
                    .map(|s| match &self.steps[s] {
                        Step::Kernel { prim, ins, ty, .. } => {
                            let mut buffer = |dtype: DType, len: usize| {
                                take_buffer(&mut pool.lock().unwrap_or_else(|e| e.into_inner()), dtype, len)
                            };
                            product(prim, ins, ty, slots, true, &mut buffer)
                        }
                        Step::Fused { .. } | Step::Multi { .. } | Step::DotArg { .. } => {
                            unreachable!("groups hold products only")
                        }
                    })
                    .collect();
                for (s, value) in (i..i + group).zip(values) {
                    if let Step::Kernel { out, .. } = &self.steps[s] {
                        scratch.slots[*out] = Some(Arc::new(value));
                    }
                }
                for s in i..i + group {
                    scratch.free(&self.free_after[s]);
                }
                if let Some(times) = times.as_mut() {
                    times.extend(std::iter::repeat_n(started.elapsed() / group as u32, group));
                }
                i += group;
                continue;
            }
            let (step, free, at) = (&self.steps[i], &self.free_after[i], i);
            i += 1;
            let started = times.as_ref().map(|_| std::time::Instant::now());
            if let Step::Multi { prim: Prim::Scan { length, .. }, subs, .. } = step {
                // A scan about to run interpreted whose work is known beforehand: its library
                // if one is in the cache by now (built meanwhile for another plan, e.g. another
                // layer's scan), else its compile queued before this run rather than after.
                if self.whole_loop(at).is_none() {
                    let own = (*length as u64).saturating_mul(subs[0].steps.len() as u64);
                    self.lazy_loops[at].before_run(own, || self.whole_loop_spec(at, Some(false)));
                }
            }
            let Scratch { pool, slots } = &mut *scratch;
            let mut buffer = |dtype: DType, len: usize| take_buffer(pool, dtype, len);
            match step {
                // A reshape of a value read for the last time takes over its storage.
                Step::Kernel { prim: Prim::Reshape { shape }, ins, out, .. }
                    if free.contains(&ins[0]) && slots[ins[0]].as_ref().is_some_and(|a| Arc::strong_count(a) == 1) =>
                {
                    let arc = slots[ins[0]].take().expect("ready");
                    let mut array = Arc::try_unwrap(arc).expect("uniquely owned");
                    array.shape = shape.clone();
                    slots[*out] = Some(Arc::new(array));
                }
                Step::Kernel { prim, ins, out, ty } => {
                    let value = product(prim, ins, ty, slots, true, &mut buffer);
                    slots[*out] = Some(Arc::new(value));
                }
                Step::Fused { prog, ins, outs, native: Some(kernel), in_place }
                    if in_place.iter().any(Option::is_some) =>
                {
                    // The in-place inputs leave their slots: the kernel writes over them.
                    let mut owned: Vec<(usize, Array)> = Vec::new();
                    for &p in in_place.iter().flatten() {
                        let arc = slots[ins[p]].take().expect("ready");
                        owned.push((p, Arc::try_unwrap(arc).unwrap_or_else(|shared| (*shared).clone())));
                    }
                    let arrays: Vec<Option<&Array>> = ins
                        .iter()
                        .enumerate()
                        .map(|(p, &v)| if in_place.contains(&Some(p)) { None } else { slots[v].as_deref() })
                        .collect();
                    let values = fused::run_in_place(prog, kernel, &arrays, owned, in_place, &mut buffer);
                    drop(arrays);
                    for (&o, v) in outs.iter().zip(values) {
                        slots[o] = Some(Arc::new(v));
                    }
                }
                Step::Fused { prog, ins, outs, native, .. } => {
                    let arrays: Vec<&Array> = ins.iter().map(|&v| slots[v].as_deref().expect("ready")).collect();
                    let values = fused::run(prog, native.as_deref(), &arrays, &mut buffer);
                    drop(arrays);
                    for (&o, v) in outs.iter().zip(values) {
                        slots[o] = Some(Arc::new(v));
                    }
                }
                Step::Multi { ins, outs, .. } if self.whole_loop(at).is_some() => {
                    let kernel = self.whole_loop(at).expect("compiled");
                    let arrays: Vec<&Array> = ins.iter().map(|&v| slots[v].as_deref().expect("ready")).collect();
                    let values: Vec<Arc<Array>> = kernel.run(&arrays, &mut buffer).into_iter().map(Arc::new).collect();
                    drop(arrays);
                    for &(k, o) in outs {
                        slots[o] = Some(values[k].clone());
                    }
                }
                &Step::DotArg { ref ins, out, dims, b_rows, max } => {
                    let (a, b) = (slots[ins[0]].as_deref().expect("ready"), slots[ins[1]].as_deref().expect("ready"));
                    let (a, b) = (a.as_slice::<f64>().expect("f64"), b.as_slice::<f64>().expect("f64"));
                    let mut indices = vec![0i64; dims.0];
                    let parallel = cpu::dot::runs_in_parallel(dims.0 * dims.2, dims.1);
                    let bias = ins.get(2).map(|&v| slots[v].as_deref().expect("ready").as_slice::<f64>().expect("f64"));
                    cpu::dot_arg::dot_arg(a, b, b_rows, bias, dims, max, &mut indices, parallel);
                    slots[out] = Some(Arc::new(Array::from_vec(indices, vec![dims.0])));
                }
                Step::Multi { prim, ins, outs, subs } => {
                    let args: Vec<Tensor> =
                        ins.iter().map(|&v| Tensor::from_arc(slots[v].clone().expect("ready"))).collect();
                    let mut runner = SubPlans { plans: subs, spare: vec![Vec::new(); subs.len()], step_runs: 0 };
                    let values = crate::ops::run_structured(prim, &args, &mut runner);
                    for &(k, o) in outs {
                        slots[o] = Some(values[k].concrete_arc());
                    }
                    self.loop_runs[at].fetch_max(runner.step_runs, std::sync::atomic::Ordering::Relaxed);
                    self.lazy_loops[at].ran(runner.step_runs, || self.whole_loop_spec(at, Some(false)));
                }
            }
            scratch.free(free);
            if let (Some(times), Some(started)) = (times.as_mut(), started) {
                times.push(started.elapsed());
            }
        }
        if let (Some(profile), Some(times)) = (&self.profile, times) {
            let mut p = profile.lock().unwrap_or_else(|e| e.into_inner());
            p.0.iter_mut().zip(times).for_each(|(t, d)| *t += d);
            p.1 += 1;
        }
        // Outputs leave their slots (a value returned twice, or a constant, is shared).
        let n = self.outputs.len();
        (0..n)
            .map(|i| {
                let v = self.outputs[i];
                let slot = &mut scratch.slots[v];
                let last = !self.const_slot[v] && !self.outputs[i + 1..].contains(&v);
                Tensor::from_arc(if last { slot.take() } else { slot.clone() }.expect("output computed"))
            })
            .collect()
    }

    /// A readable listing of the steps.
    pub fn dump(&self) -> String {
        let mut s = format!("plan ({} steps):\n", self.steps.len());
        for (i, step) in self.steps.iter().enumerate() {
            if self.together[i] > 1 {
                let _ = writeln!(s, "  steps {i}..{} run at the same time:", i + self.together[i] - 1);
            }
            match step {
                Step::Kernel { prim, ins, out, ty } => {
                    let ins: Vec<String> = ins.iter().map(|v| format!("%{v}")).collect();
                    let _ = writeln!(s, "  {i}: %{out}: {ty} = {prim} {}", ins.join(" "));
                }
                Step::Fused { prog, ins, outs, native, in_place } => {
                    let outs: Vec<String> = outs
                        .iter()
                        .enumerate()
                        .map(|(k, v)| match (native, in_place.get(k).copied().flatten()) {
                            (Some(_), Some(p)) => format!("%{v} (in place of %{})", ins[p]),
                            _ => format!("%{v}"),
                        })
                        .collect();
                    let ins: Vec<String> = ins.iter().map(|v| format!("%{v}")).collect();
                    let red = match prog.reduce {
                        Some((op, axes)) => {
                            let row = crate::shape::numel(&prog.shape[prog.shape.len() - axes..]);
                            format!(" then {}[rows of {row}]", op.name())
                        }
                        None => String::new(),
                    };
                    let how = if native.is_some() { "native " } else { "" };
                    let _ =
                        writeln!(s, "  {i}: {} = {how}fused{:?}{red}({})", outs.join(", "), prog.shape, ins.join(", "));
                    s.push_str(&prog.describe());
                }
                Step::DotArg { ins, out, dims: (m, d, k), b_rows, max } => {
                    let op = if *max { "argmax" } else { "argmin" };
                    let b = if *b_rows { format!("%{}ᵀ", ins[1]) } else { format!("%{}", ins[1]) };
                    let bias = ins.get(2).map(|v| format!(" + %{v}")).unwrap_or_default();
                    let _ =
                        writeln!(s, "  {i}: %{out}: i64[{m}] = {op} over {k} of (%{} · {b}{bias}), depth {d}", ins[0]);
                }
                Step::Multi { prim, ins, outs, subs } => {
                    let ins: Vec<String> = ins.iter().map(|v| format!("%{v}")).collect();
                    let outs: Vec<String> = outs.iter().map(|(k, v)| format!("%{v}=[{k}]")).collect();
                    let how = if self.whole_loop(i).is_some() { "native whole loop " } else { "" };
                    let _ = writeln!(s, "  {i}: {} = {how}{prim} {}", outs.join(", "), ins.join(" "));
                    for (k, sub) in subs.iter().enumerate() {
                        let _ = write!(s, "    {}: ", prim.subgraph_name(k));
                        for line in sub.dump().lines() {
                            let _ = writeln!(s, "    {line}");
                        }
                    }
                }
            }
        }
        let outs: Vec<String> = self.outputs.iter().map(|v| format!("%{v}")).collect();
        let _ = writeln!(s, "  return {}", outs.join(", "));
        s
    }

    /// The C source that [`Plan::compile_native`] would compile now (for the loops not
    /// compiled yet that the native mode selects), without running the C compiler: for
    /// inspecting generated code and timing its generation.
    pub fn native_source(&self) -> String {
        native::source(&self.interpreted_loops()).0
    }

    /// What [`Plan::compile_native`] would cost now: `None` if it would compile nothing, zero
    /// if the library is cached on disk, else an estimate of the C compiler's time. The loops
    /// of sub-plans (loop bodies, branches), which `compile_native` compiles too, each sub-plan
    /// into a library of its own, count at any depth: a plan whose only loops are inside a
    /// `fori_loop` has a cost like any other.
    pub fn native_build_cost(&self) -> Option<std::time::Duration> {
        let (at, specs) = self.whole_loop_specs();
        let mut total = native::build_cost(&self.interpreted_loops());
        let mut add = |c: Option<std::time::Duration>| {
            total = match (total, c) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            }
        };
        add(native::whole_loop::build_cost(&specs));
        // Sub-plans of loops not compiled whole compile their own loops.
        for (i, step) in self.steps.iter().enumerate() {
            if let Step::Multi { subs, .. } = step {
                if self.whole_loops[i].is_none() && !at.contains(&i) {
                    for sub in subs.iter().filter(|p| p.has_interpreted_loops()) {
                        add(sub.native_build_cost());
                    }
                }
            }
        }
        total
    }

    /// The work of one run's interpreted fused loops, in element-instructions (each loop's
    /// elements times its instructions; a sub-plan counts once, however often it runs): what
    /// `jit` weighs against the C compiler's time on a function's first call.
    pub(crate) fn interpreted_work(&self) -> u64 {
        self.steps
            .iter()
            .map(|s| match s {
                Step::Fused { prog, native: None, .. } => {
                    (crate::shape::numel(&prog.shape) as u64).saturating_mul(prog.instrs.len() as u64)
                }
                Step::Multi { subs, .. } => subs.iter().map(Plan::interpreted_work).sum(),
                _ => 0,
            })
            .sum()
    }

    /// The shape of slot `v` where the plan knows it (inputs, constants, outputs of fused
    /// loops without reduction and of kernels).
    fn slot_shape(&self, v: usize) -> Option<Vec<usize>> {
        if let Some(p) = self.inputs.iter().position(|&s| s == v) {
            return Some(self.input_types[p].shape.clone());
        }
        if let Some((_, a)) = self.constants.iter().find(|(s, _)| *s == v) {
            return Some(a.shape.clone());
        }
        self.steps.iter().find_map(|s| match s {
            Step::Fused { prog, outs, .. } if prog.reduce.is_none() && outs.contains(&v) => Some(prog.shape.clone()),
            Step::Kernel { out, ty, .. } if *out == v => Some(ty.shape.clone()),
            _ => None,
        })
    }

    /// A sub-plan as a whole loop runs it: only fused loops without reduction and reshapes.
    fn flat(&self) -> Option<native::whole_loop::FlatPlan> {
        use native::whole_loop::FlatStep;
        let mut steps = Vec::with_capacity(self.steps.len());
        for step in &self.steps {
            steps.push(match step {
                Step::Fused { prog, ins, outs, .. } => {
                    FlatStep::Fused { prog: prog.clone(), ins: ins.clone(), outs: outs.clone() }
                }
                Step::Multi { prim: Prim::While { .. } | Prim::Scan { .. }, ins, outs, .. } => {
                    let i = self.steps.iter().position(|t| std::ptr::eq(t, step)).expect("a step of this plan");
                    FlatStep::Loop {
                        spec: Box::new(self.whole_loop_spec(i, None)?),
                        ins: ins.clone(),
                        outs: outs.clone(),
                    }
                }
                Step::Multi { prim: Prim::Cond { branches }, ins, outs, subs } => FlatStep::Cond {
                    index: ins[0],
                    ins: ins[1..].to_vec(),
                    outs: outs.clone(),
                    results: branches[0].output_types().iter().map(|t| (t.dtype, t.numel())).collect(),
                    branches: subs.iter().map(Plan::flat).collect::<Option<Vec<_>>>()?,
                },
                Step::Kernel { prim: Prim::Reduce { op, axes }, ins, out, ty } => FlatStep::Reduce {
                    op: *op,
                    axes: axes.clone(),
                    shape: self.slot_shape(ins[0])?,
                    dtype: ty.dtype,
                    input: ins[0],
                    out: *out,
                },
                Step::Kernel { prim: Prim::Reshape { .. }, ins, out, .. } => FlatStep::Alias { from: ins[0], to: *out },
                _ => return None,
            });
        }
        Some(native::whole_loop::FlatPlan {
            inputs: self.inputs.clone(),
            constants: self.constants.clone(),
            steps,
            outputs: self.outputs.clone(),
        })
    }

    /// The `while`/`scan` steps not compiled yet that the native mode would compile whole
    /// (their sub-plans flat, their expected work per call enough: see
    /// [`native::whole_loop::worth_compiling`]), and their descriptions.
    fn whole_loop_specs(&self) -> (Vec<usize>, Vec<native::whole_loop::LoopSpec>) {
        let (mut at, mut specs) = (Vec::new(), Vec::new());
        for i in 0..self.steps.len() {
            if let Some(spec) = self.whole_loop_spec(i, Some(true)) {
                at.push(i);
                specs.push(spec);
            }
        }
        (at, specs)
    }

    /// The compiled whole loop of step `i`, if any (compiled with the plan or since, lazily).
    fn whole_loop(&self, i: usize) -> Option<&Arc<native::whole_loop::LoopKernel>> {
        self.whole_loops[i].as_ref().or_else(|| self.lazy_loops[i].get())
    }

    /// The description of step `i` as a whole loop, if it is a `while`/`scan` whose sub-plans
    /// are flat. With `Some(check_work)`: only if not compiled yet and, with `check_work`, if
    /// its expected work per call is enough for the native mode; with `None` (a loop nested in
    /// another's body) in any case.
    fn whole_loop_spec(&self, i: usize, check: Option<bool>) -> Option<native::whole_loop::LoopSpec> {
        use native::whole_loop::{worth_compiling, LoopKind, LoopSpec};
        let check_work = check == Some(true);
        {
            let Step::Multi { prim, subs, .. } = &self.steps[i] else { return None };
            if check.is_some() && self.whole_loop(i).is_some() {
                return None;
            }
            let types = |ts: Vec<TensorType>| ts.into_iter().map(|t| (t.dtype, t.numel())).collect::<Vec<_>>();
            let shapes = |ts: &[TensorType]| ts.iter().map(|t| (t.dtype, t.shape.clone())).collect::<Vec<_>>();
            let (kind, runs, operands, results) = match prim {
                Prim::While { cond, consts, .. } => {
                    let ins = cond.input_types();
                    let runs = self.loop_runs[i].load(std::sync::atomic::Ordering::Relaxed);
                    (LoopKind::While { consts: *consts }, runs, types(ins.clone()), shapes(&ins[*consts..]))
                }
                Prim::Scan { body, consts, carries, length, reverse } => {
                    let mut ins = body.input_types();
                    for x in &mut ins[consts + carries..] {
                        x.shape.insert(0, *length);
                    }
                    let outs = body.output_types();
                    let mut results = shapes(&outs[..*carries]);
                    for y in &outs[*carries..] {
                        let mut shape = y.shape.clone();
                        shape.insert(0, *length);
                        results.push((y.dtype, shape));
                    }
                    let kind =
                        LoopKind::Scan { consts: *consts, carries: *carries, length: *length, reverse: *reverse };
                    // Its own steps, or more where a run has counted the steps of nested loops.
                    let own = (*length as u64).saturating_mul(subs[0].steps.len() as u64);
                    let runs = own.max(self.loop_runs[i].load(std::sync::atomic::Ordering::Relaxed));
                    (kind, runs, types(ins), results)
                }
                _ => return None,
            };
            if check_work && !worth_compiling(runs) {
                return None;
            }
            let flats = subs.iter().map(Plan::flat).collect::<Option<Vec<_>>>()?;
            Some(LoopSpec { kind, operands, results, subs: flats })
        }
    }

    /// The fused loops not compiled yet, with the inputs their outputs overwrite.
    fn interpreted_loops(&self) -> Vec<(&fused::Program, &[Option<usize>])> {
        self.steps
            .iter()
            .filter_map(|s| match s {
                Step::Fused { prog, in_place, native: None, .. } => Some((prog, &in_place[..])),
                _ => None,
            })
            .collect()
    }

    /// Compiles the fused loops that the native mode selects (when the plan was built) to
    /// native kernels, all in one library (see [`native`]); loops already compiled stay.
    pub fn compile_native(&mut self) {
        // Loops whose sub-plans are all native-able become one C function each.
        let (at, specs) = self.whole_loop_specs();
        if !specs.is_empty() {
            for (i, kernel) in at.into_iter().zip(native::whole_loop::compile(&specs)) {
                self.whole_loops[i] = kernel;
            }
        }
        for (i, step) in self.steps.iter_mut().enumerate() {
            if self.whole_loops[i].is_some() {
                continue;
            }
            if let Step::Multi { subs, .. } = step {
                // At any depth: a loop nest (`while_loop_bounded`: conds around scans around
                // conds ...) has sub-plans whose only step is another structured one.
                if subs.iter().any(Plan::has_interpreted_loops) {
                    let compiled: Vec<Plan> =
                        subs.iter().map(|p| p.with_native_loops().unwrap_or_else(|| p.duplicate())).collect();
                    *subs = Arc::new(compiled);
                }
            }
        }
        let progs = self.interpreted_loops();
        if progs.is_empty() {
            return;
        }
        let mut kernels = native::compile(&progs).into_iter();
        for step in self.steps.iter_mut() {
            if let Step::Fused { native: native @ None, .. } = step {
                *native = kernels.next().expect("one kernel slot per interpreted loop");
            }
        }
    }

    /// A copy of this plan with its loops compiled as [`Plan::compile_native`] does, or
    /// `None` when no loop would be (so this plan is already as fast as it gets).
    pub fn with_native_loops(&self) -> Option<Plan> {
        let mut copy = self.duplicate();
        copy.compile_native();
        let compiled = |p: &Plan| {
            p.steps.iter().filter(|s| matches!(s, Step::Fused { native: Some(_), .. })).count()
                + p.whole_loops.iter().flatten().count()
                + p.steps
                    .iter()
                    .map(|s| match s {
                        Step::Multi { subs, .. } => subs.iter().map(|p| p.native_count()).sum(),
                        _ => 0,
                    })
                    .sum::<usize>()
        };
        (compiled(&copy) > compiled(self)).then_some(copy)
    }

    /// Whether this plan or any sub-plan, at any depth, has a loop not compiled yet.
    fn has_interpreted_loops(&self) -> bool {
        if !self.whole_loop_specs().1.is_empty() {
            return true;
        }
        self.steps.iter().enumerate().any(|(i, s)| match s {
            Step::Multi { .. } if self.whole_loops[i].is_some() => false,
            Step::Fused { native: None, .. } => true,
            Step::Multi { subs, .. } => subs.iter().any(Plan::has_interpreted_loops),
            Step::Fused { .. } | Step::Kernel { .. } | Step::DotArg { .. } => false,
        })
    }

    /// Whether any loop of the plan or of its sub-plans runs native code.
    pub(crate) fn has_native_loops(&self) -> bool {
        self.native_count() > 0
    }

    /// Number of native loops, sub-plans included.
    fn native_count(&self) -> usize {
        self.whole_loops.iter().flatten().count()
            + self
                .steps
                .iter()
                .map(|s| match s {
                    Step::Fused { native: Some(_), .. } => 1,
                    Step::Multi { subs, .. } => subs.iter().map(Plan::native_count).sum(),
                    _ => 0,
                })
                .sum::<usize>()
    }

    /// A copy sharing the compiled kernels, with an empty buffer pool.
    fn duplicate(&self) -> Plan {
        Plan {
            scratch: Mutex::new(Vec::new()),
            steps: self.steps.clone(),
            free_after: self.free_after.clone(),
            num_slots: self.num_slots,
            inputs: self.inputs.clone(),
            input_types: self.input_types.clone(),
            constants: self.constants.clone(),
            const_slot: self.const_slot.clone(),
            outputs: self.outputs.clone(),
            parallel: self.parallel,
            together: self.together.clone(),
            profile: self.profile.as_ref().map(|_| Mutex::new((vec![std::time::Duration::ZERO; self.steps.len()], 0))),
            whole_loops: (0..self.steps.len()).map(|i| self.whole_loop(i).cloned()).collect(),
            loop_runs: self
                .loop_runs
                .iter()
                .map(|r| std::sync::atomic::AtomicU64::new(r.load(std::sync::atomic::Ordering::Relaxed)))
                .collect(),
            lazy_loops: (0..self.steps.len()).map(|_| Default::default()).collect(),
        }
    }

    /// Number of steps (fused loops and kernel calls).
    pub fn num_steps(&self) -> usize {
        self.steps.len()
    }
}

/// Runs a kernel step (products through gemm into storage from `buffer`, on all threads or,
/// with `threads` false, on this one).
fn product(
    prim: &Prim,
    ins: &[usize],
    ty: &TensorType,
    slots: &[Option<Arc<Array>>],
    threads: bool,
    buffer: &mut dyn FnMut(DType, usize) -> Data,
) -> Array {
    let arrays: Vec<&Array> = ins.iter().map(|&v| slots[v].as_deref().expect("ready")).collect();
    match prim {
        Prim::DotGeneral { lhs_contract, rhs_contract, lhs_batch, rhs_batch } => cpu::dot::dot_general_with(
            arrays[0],
            arrays[1],
            lhs_contract,
            rhs_contract,
            lhs_batch,
            rhs_batch,
            ty,
            buffer,
            threads,
        ),
        // gbsmall: a gather writes every element of its output, so it takes a recycled buffer.
        Prim::Gather { axis, batch_dims } => {
            cpu::index::gather_with(arrays[0], arrays[1], *axis, *batch_dims, ty, buffer)
        }
        _ => cpu::kernel(prim, &arrays, ty),
    }
}

/// A key telling loads apart (the same value read the same way is loaded once): the kind's
/// fields as integers, the fill by its bits. (Cheaper than formatting the kind.) Only for
/// loads whose [`load_hash`] collides with a different load's.
fn load_key(kind: &fused::LoadKind) -> Vec<i64> {
    match kind {
        fused::LoadKind::Contiguous => vec![0],
        fused::LoadKind::Scalar => vec![1],
        fused::LoadKind::Strided { base, strides } => {
            let mut k = Vec::with_capacity(strides.len() + 2);
            k.extend([2, *base as i64]);
            k.extend(strides.iter().map(|&s| s as i64));
            k
        }
        fused::LoadKind::Padded { base, strides, valid, fill } => {
            let mut k = Vec::with_capacity(3 * strides.len() + 4);
            k.extend([3, *base as i64, strides.len() as i64, fill.to_bits() as i64]);
            k.extend(strides.iter().map(|&s| s as i64));
            k.extend(valid.iter().flat_map(|&(lo, hi)| [lo as i64, hi as i64]));
            k
        }
    }
}

/// A hash of [`load_key`] (without building it).
fn load_hash(kind: &fused::LoadKind) -> u64 {
    use std::hash::Hasher;
    let mut h = super::fxhash::FxHasher::default();
    match kind {
        fused::LoadKind::Contiguous => h.write_i64(0),
        fused::LoadKind::Scalar => h.write_i64(1),
        fused::LoadKind::Strided { base, strides } => {
            h.write_i64(2);
            h.write_i64(*base as i64);
            strides.iter().for_each(|&s| h.write_i64(s as i64));
        }
        fused::LoadKind::Padded { base, strides, valid, fill } => {
            h.write_i64(3);
            h.write_i64(*base as i64);
            h.write_i64(strides.len() as i64);
            h.write_i64(fill.to_bits() as i64);
            strides.iter().for_each(|&s| h.write_i64(s as i64));
            valid.iter().for_each(|&(lo, hi)| {
                h.write_i64(lo as i64);
                h.write_i64(hi as i64)
            });
        }
    }
    h.finish()
}

/// Whether two loads have equal [`load_key`]s (without building them).
fn same_load(a: &fused::LoadKind, b: &fused::LoadKind) -> bool {
    use fused::LoadKind::*;
    match (a, b) {
        (Contiguous, Contiguous) | (Scalar, Scalar) => true,
        (Strided { base: b1, strides: s1 }, Strided { base: b2, strides: s2 }) => b1 == b2 && s1 == s2,
        (
            Padded { base: b1, strides: s1, valid: v1, fill: f1 },
            Padded { base: b2, strides: s2, valid: v2, fill: f2 },
        ) => b1 == b2 && s1 == s2 && v1 == v2 && f1.to_bits() == f2.to_bits(),
        _ => false,
    }
}

/// Builds the fused loop of a group: loads for outside values, one instruction per member.
#[allow(clippy::too_many_arguments)]
fn fused_step(
    g: &Graph,
    grp: &Group,
    users: &Users,
    is_output: &[bool],
    group_of: &[Option<usize>],
    gid: usize,
    work: &mut Strides,
    reg_of: &mut [usize],
) -> Step {
    // (The tables and lists come from this thread's `LoadTables`, empty, and go back after:
    // one allocation and growth of each per plan, not per loop; the program's lists are
    // copied out at their length, so none is grown by doubling, which left a new block and
    // its page faults at each step.)
    let mut tables = LOAD_TABLES.with(|t| t.take());
    let LoadTables { input_of, loads, collided, instrs, dtypes, inputs } = &mut tables;
    let (mut instrs, mut dtypes, inputs) = (std::mem::take(instrs), std::mem::take(dtypes), inputs);
    let shape = &grp.shape;
    let mut load = |v: Var, kind: fused::LoadKind, instrs: &mut Vec<fused::Instr>, dtypes: &mut Vec<crate::DType>| {
        let hashed = (v.index(), load_hash(&kind));
        let mut full = None;
        if let Some(&r) = loads.get(&hashed) {
            if matches!(&instrs[r], fused::Instr::Load { kind: k, .. } if same_load(k, &kind)) {
                return r;
            }
            let key = (v.index(), load_key(&kind));
            if let Some(&r) = collided.get(&key) {
                return r;
            }
            full = Some(key);
        }
        // (A map, not a search of `inputs`: one loop of an unrolled program can read thousands.)
        let input = *input_of.entry(v.index()).or_insert_with(|| {
            inputs.push(v.index());
            inputs.len() - 1
        });
        instrs.push(fused::Instr::Load { input, kind });
        dtypes.push(g.ty(v).dtype);
        match full {
            Some(key) => collided.insert(key, instrs.len() - 1),
            None => loads.insert(hashed, instrs.len() - 1),
        };
        instrs.len() - 1
    };
    for &m in &grp.members {
        let node = &g.nodes[m];
        let mut operand = |v: Var, instrs: &mut Vec<fused::Instr>, dtypes: &mut Vec<crate::DType>| -> usize {
            if group_of[v.index()] == Some(gid) {
                return reg_of[v.index()];
            }
            let (src, kind) = resolve_load(g, v, shape, work);
            load(src, kind, instrs, dtypes)
        };
        let instr = match &node.prim {
            Prim::Unary(op) => fused::Instr::Unary(*op, operand(node.inputs[0], &mut instrs, &mut dtypes)),
            Prim::Binary(op) => {
                let a = operand(node.inputs[0], &mut instrs, &mut dtypes);
                let b = operand(node.inputs[1], &mut instrs, &mut dtypes);
                fused::Instr::Binary(*op, a, b)
            }
            Prim::Select => {
                let p = operand(node.inputs[0], &mut instrs, &mut dtypes);
                let a = operand(node.inputs[1], &mut instrs, &mut dtypes);
                let b = operand(node.inputs[2], &mut instrs, &mut dtypes);
                fused::Instr::Select(p, a, b)
            }
            Prim::Convert { dtype } => fused::Instr::Convert(*dtype, operand(node.inputs[0], &mut instrs, &mut dtypes)),
            other => unreachable!("{} is not fusible", other.name()),
        };
        instrs.push(instr);
        dtypes.push(node.ty.dtype);
        reg_of[m] = instrs.len() - 1;
    }
    let (outputs, outs, reduce) = match grp.reduce {
        Some(rnode) => {
            let Prim::Reduce { op, axes } = &g.nodes[rnode].prim else { unreachable!() };
            let v = g.nodes[rnode].inputs[0].index();
            (vec![reg_of[v]], vec![rnode], Some((*op, axes.len())))
        }
        None => {
            let outs: Vec<usize> = grp
                .members
                .iter()
                .copied()
                .filter(|&m| is_output[m] || users[m].iter().any(|u| group_of[*u] != Some(gid)))
                .collect();
            (outs.iter().map(|&m| reg_of[m]).collect(), outs, None)
        }
    };
    let prog = fused::Program {
        shape: shape.clone(),
        instrs: moved_out(&mut instrs),
        dtypes: moved_out(&mut dtypes),
        outputs,
        reduce,
    };
    let ins = moved_out(inputs);
    (tables.instrs, tables.dtypes) = (instrs, dtypes);
    tables.recycle();
    LOAD_TABLES.with(|t| t.set(tables));
    Step::Fused { prog, ins, outs, native: None, in_place: vec![] }
}

/// The items of `scratch` moved into a vector of exactly their number; `scratch` is left
/// empty with its storage.
fn moved_out<T>(scratch: &mut Vec<T>) -> Vec<T> {
    let mut v = Vec::with_capacity(scratch.len());
    v.append(scratch);
    v
}

/// [`fused_step`]'s working storage: the input position of each value read, the loads by
/// value and hash of the load (loads whose hash collides with a different load's go by their
/// full key, `load_key`, in `collided`) — lookup only, never iterated — and the lists the
/// program is built in.
#[derive(Default)]
struct LoadTables {
    input_of: FxHashMap<usize, usize>,
    loads: FxHashMap<(usize, u64), usize>,
    collided: FxHashMap<(usize, Vec<i64>), usize>,
    instrs: Vec<fused::Instr>,
    dtypes: Vec<DType>,
    inputs: Vec<usize>,
}

impl LoadTables {
    /// Empties everything for the next loop, keeping the storage unless a large loop grew it
    /// (clearing a table costs its capacity, and most loops read a few values).
    fn recycle(&mut self) {
        const KEEP: usize = 256;
        if self.input_of.capacity() > KEEP || self.loads.capacity() > KEEP || self.collided.capacity() > KEEP {
            (self.input_of, self.loads, self.collided) = Default::default();
        } else {
            self.input_of.clear();
            self.loads.clear();
            self.collided.clear();
        }
        if self.instrs.capacity() > 16 * KEEP {
            (self.instrs, self.dtypes, self.inputs) = Default::default();
        }
        self.instrs.clear();
        self.dtypes.clear();
        self.inputs.clear();
    }
}

thread_local! {
    /// Each thread's [`LoadTables`], lent to one [`fused_step`] at a time (a nested plan
    /// built meanwhile would find it taken and use fresh ones).
    static LOAD_TABLES: std::cell::Cell<LoadTables> = std::cell::Cell::new(LoadTables::default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::BinaryOp;

    /// `permute` puts item `order[k]` at `k`, as collecting `order.map(|s| items[s])` does.
    #[test]
    fn permute_matches_gathering_in_order() {
        let orders: [&[usize]; 5] = [&[], &[0], &[2, 0, 1], &[3, 2, 1, 0, 4], &[1, 0, 3, 2, 6, 4, 5]];
        for order in orders {
            let items: Vec<String> = (0..order.len()).map(|i| format!("item{i}")).collect();
            let expected: Vec<String> = order.iter().map(|&s| items[s].clone()).collect();
            assert_eq!(super::permute(items, order), expected, "order {order:?}");
        }
        // A longer pseudo-random permutation (one long cycle and short ones).
        let n = 1000;
        let order: Vec<usize> = (0..n).map(|k| (k * 337 + 11) % n).collect();
        let items: Vec<usize> = (0..n).map(|i| i * 3).collect();
        let got = super::permute(items, &order);
        assert!(got.iter().zip(&order).all(|(&g, &s)| g == s * 3));
    }

    /// Loops built after others on one thread (`fused_step` reusing its working storage,
    /// also after a loop of 300 distinct loads, which makes it drop that storage) equal the
    /// loops built on a fresh thread, instruction for instruction.
    #[test]
    fn fused_steps_equal_with_recycled_working_storage() {
        use crate::trace_graph;
        // A loop of `k` distinct strided loads of `x` (slices at offsets 0..k), plus a chain.
        fn dump(k: usize) -> String {
            let g = trace_graph(&[TensorType::new(DType::F64, vec![4 * k + 8])], move |x| {
                let x = &x[0];
                let mut y = x.slice_axis(0, 0, 8, 1).sin();
                for j in 0..k {
                    y = y * x.slice_axis(0, 4 * j as isize, 4 * j as isize + 8, 1) + 1.0;
                }
                vec![y.exp(), (y * 2.0).tanh()]
            });
            Plan::interpreted(&crate::compile::optimize(&g)).dump()
        }
        let sizes = [3, 300, 2, 40, 1];
        let fresh: Vec<String> = sizes.iter().map(|&k| std::thread::spawn(move || dump(k)).join().unwrap()).collect();
        let reused: Vec<String> = sizes.iter().map(|&k| dump(k)).collect();
        for ((k, a), b) in sizes.iter().zip(&fresh).zip(&reused) {
            assert_eq!(a, b, "{k} loads");
        }
        // The loop of 300 reads as many slices (one input, 300 loads), so the test covers a
        // large loop.
        assert!(fresh[1].matches("load in0").count() >= 300, "{}", &fresh[1][..fresh[1].len().min(2000)]);
    }

    /// The flat reader lists are the per-node lists, in order, repeats included.
    #[test]
    fn users_list_every_reader_in_order() {
        let mut g = Graph::default();
        let x = g.add_input(TensorType::new(DType::F64, vec![3]));
        let y = g.add_input(TensorType::new(DType::F64, vec![3]));
        let a = g.push(Prim::Binary(BinaryOp::Mul), vec![x, x]).unwrap();
        let b = g.push(Prim::Binary(BinaryOp::Add), vec![a, y]).unwrap();
        let c = g.push(Prim::Binary(BinaryOp::Sub), vec![x, b]).unwrap();
        g.outputs = vec![c];
        let users = Users::new(&g);
        let mut naive: Vec<Vec<usize>> = vec![Vec::new(); g.nodes.len()];
        for (i, node) in g.nodes.iter().enumerate() {
            node.inputs.iter().for_each(|v| naive[v.index()].push(i));
        }
        for (i, list) in naive.iter().enumerate() {
            assert_eq!(&users[i], &list[..], "readers of %{i}");
        }
        assert_eq!(&users[x.index()], &[a.index(), a.index(), c.index()]);
        assert!(users[c.index()].is_empty());
    }

    /// `dense_strides` are `shape::strides`, and `is_dense` recognises exactly them.
    #[test]
    fn dense_strides_match_shape_strides() {
        for shape in [vec![], vec![5], vec![2, 3, 4], vec![3, 0, 2], vec![1, 7, 1]] {
            let dense = dense_strides(&shape);
            let expected: Vec<isize> = crate::shape::strides(&shape).iter().map(|&s| s as isize).collect();
            assert_eq!(dense, expected);
            assert!(is_dense(&dense, &shape));
            if let Some(last) = dense.len().checked_sub(1) {
                let mut other = dense.clone();
                other[last] += 1;
                assert!(!is_dense(&other, &shape));
            }
            assert!(!is_dense(&dense[..dense.len().saturating_sub(1)], &shape) || shape.is_empty());
        }
    }

    /// Loads are told apart by `same_load` exactly as by their full `load_key`, and equal
    /// keys hash alike (so `fused_step` loads the same value read the same way once).
    #[test]
    fn load_hash_and_equality_follow_the_key() {
        use fused::LoadKind::*;
        let kinds = vec![
            Contiguous,
            Scalar,
            Strided { base: 0, strides: vec![1, 0] },
            Strided { base: 0, strides: vec![1, 0] },
            Strided { base: 1, strides: vec![1, 0] },
            Strided { base: 0, strides: vec![0, 1] },
            Strided { base: 0, strides: vec![1] },
            Padded { base: -1, strides: vec![1], valid: vec![(1, 4)], fill: 0.0 },
            Padded { base: -1, strides: vec![1], valid: vec![(1, 4)], fill: 0.0 },
            Padded { base: -1, strides: vec![1], valid: vec![(1, 4)], fill: -0.0 },
            Padded { base: -1, strides: vec![1], valid: vec![(1, 5)], fill: 0.0 },
            Padded { base: -1, strides: vec![1], valid: vec![(1, 4)], fill: f64::NAN },
            Padded { base: -1, strides: vec![1], valid: vec![(1, 4)], fill: f64::NAN },
        ];
        let mut equal_pairs = 0;
        for a in &kinds {
            for b in &kinds {
                let same = load_key(a) == load_key(b);
                assert_eq!(same_load(a, b), same, "{a:?} vs {b:?}");
                if same {
                    assert_eq!(load_hash(a), load_hash(b), "{a:?}");
                    equal_pairs += 1;
                }
            }
        }
        // Each kind equals itself, and three pairs are listed twice (both orders).
        assert_eq!(equal_pairs, kinds.len() + 6);
    }

    /// `resolve` composes views into strides: a transposed slice of a reversed matrix.
    #[test]
    fn resolve_composes_views() {
        let mut g = Graph::default();
        let x = g.add_input(TensorType::new(DType::F64, vec![4, 6]));
        let r = g.push(Prim::Rev { axes: vec![1] }, vec![x]).unwrap();
        let s = g.push(Prim::Slice { start: vec![1, 0], stop: vec![4, 6], stride: vec![1, 2] }, vec![r]).unwrap();
        let t = g.push(Prim::Transpose { perm: vec![1, 0] }, vec![s]).unwrap();
        g.outputs = vec![t];
        // Element [i, j] of t is x[1 + j, 5 - 2 i]: base 1·6 + 5 = 11, strides (-2, 6).
        assert_eq!(resolve(&g, t), (x, 11, vec![-2, 6]));
        assert_eq!(resolve(&g, x), (x, 0, vec![6, 1]));
        let (src, kind) = resolve_load(&g, t, &[3, 3], &mut Strides::default());
        assert_eq!(src, x);
        assert!(matches!(kind, fused::LoadKind::Strided { base: 11, ref strides } if strides == &[-2, 6]));
    }
}
