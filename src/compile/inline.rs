//! Fusing producers into consumers through views.
//!
//! A fused loop that reads another loop's output through a slice, a zero-padding, a
//! transpose or a reversal can compute the producer's element-wise chain itself, at the
//! composed positions, instead of reading a materialised intermediate: the producer's loads
//! are re-indexed through the view, and where the view pads, a mask puts the padding value
//! back. Each producer element is still computed once per read, so nothing is recomputed
//! unless the consumer reads the producer twice (as stencils do: `x[1:] - x[:-1]`), and the
//! intermediate array disappears. A transpose kernel of a loop's output becomes a loop too.
//!
//! Recomputing costs instructions, which only pays where loops are compiled to native code
//! (where values stay in registers); the caller decides per consumer.

use super::fxhash::FxHashMap;
use super::plan::Step;
use crate::array::Array;
use crate::backend::cpu::fused::{Instr, LoadKind, Program};
use crate::ops::Prim;
use crate::shape::{numel, strides};
use std::sync::Arc;

/// Largest producer chain copied into a consumer, and largest consumer it may grow into.
const MAX_CONE: usize = 64;
const MAX_PROGRAM: usize = 320;

/// Consumers of at most this many elements take producers' chains interpreted as well.
pub(super) const RECOMPUTED_ANYWHERE: usize = 16;

/// How a consumer's index `q` maps to a producer's index `p`:
/// `p[d] = offset[d] + coef[d] * q[axis[d]]`, or `offset[d]` where `axis[d]` is `None`.
/// (One is reused for every load [`IndexMap::build`] maps: its vectors keep their storage.)
#[derive(Default)]
struct IndexMap {
    axis: Vec<Option<usize>>,
    coef: Vec<isize>,
    offset: Vec<isize>,
    /// The consumer indices that read the producer (the rest read `fill`).
    inside: Vec<(isize, isize)>,
    /// Set when the view pads: the value outside `inside`.
    fill: Option<f64>,
    /// The producer's dense (row-major) strides.
    dense: Vec<isize>,
    /// [`emit_cone`]'s working storage, kept between the loads (and chains) it emits.
    scratch: EmitScratch,
}

/// Working storage of [`emit_cone`]: the consumer register of each cone instruction, and the
/// position in the cone of each producer instruction (set for the cone's at each call).
#[derive(Default)]
struct EmitScratch {
    reg: Vec<usize>,
    at: Vec<u32>,
}

/// The index map of a load (over `consumer` shape) of a dense array of `producer` shape,
/// if it reads each producer element at most once per consumer element and never twice
/// along a broadcast axis.
#[cfg(test)]
fn index_map(kind: &LoadKind, consumer: &[usize], producer: &[usize]) -> Option<IndexMap> {
    let mut map = IndexMap::default();
    map.build(kind, consumer, producer).then_some(map)
}

impl IndexMap {
    /// Makes this the index map of a load ([`index_map`]); false when there is none (and
    /// the map is then unspecified).
    fn build(&mut self, kind: &LoadKind, consumer: &[usize], producer: &[usize]) -> bool {
        let IndexMap { axis, coef, offset, inside, fill, dense, .. } = self;
        dense.clear();
        dense.resize(producer.len(), 1);
        for i in (0..producer.len().saturating_sub(1)).rev() {
            dense[i] = dense[i + 1] * producer[i + 1] as isize;
        }
        inside.clear();
        let (base, st): (isize, &[isize]) = match kind {
            LoadKind::Contiguous if consumer == producer => {
                inside.extend(consumer.iter().map(|&m| (0, m as isize)));
                *fill = None;
                (0, dense)
            }
            LoadKind::Strided { base, strides } => {
                inside.extend(consumer.iter().map(|&m| (0, m as isize)));
                *fill = None;
                (*base, strides)
            }
            LoadKind::Padded { base, strides, valid, fill: f } => {
                inside.extend_from_slice(valid);
                *fill = Some(*f);
                (*base, strides)
            }
            _ => return false,
        };
        if inside.iter().any(|&(lo, hi)| lo >= hi) || producer.contains(&0) {
            return false;
        }
        let r = producer.len();
        axis.clear();
        axis.resize(r, None);
        coef.clear();
        coef.resize(r, 0);
        for (e, &s) in st.iter().enumerate() {
            let width = inside[e].1 - inside[e].0;
            if width == 1 {
                continue; // a constant index along this axis
            }
            if s == 0 {
                return false; // a broadcast would recompute the producer along this axis
            }
            let Some(d) = (0..r).find(|&d| s % dense[d] == 0 && (s / dense[d]).unsigned_abs() < producer[d]) else {
                return false;
            };
            if axis[d].is_some() {
                return false;
            }
            axis[d] = Some(e);
            coef[d] = s / dense[d];
        }
        // The producer index at the first consumer index inside, then each axis's range.
        let corner: isize = base + st.iter().zip(inside.iter()).map(|(&s, &(lo, _))| s * lo).sum::<isize>();
        if corner < 0 || corner >= numel(producer) as isize {
            return false;
        }
        offset.clear();
        offset.resize(r, 0);
        let mut rem = corner;
        for d in (0..r).rev() {
            offset[d] = rem % producer[d] as isize;
            rem /= producer[d] as isize;
        }
        for d in 0..r {
            if let Some(e) = axis[d] {
                offset[d] -= coef[d] * inside[e].0;
                let ends = [offset[d] + coef[d] * inside[e].0, offset[d] + coef[d] * (inside[e].1 - 1)];
                if ends.iter().any(|&p| p < 0 || p >= producer[d] as isize) {
                    return false;
                }
            }
        }
        true
    }

    /// The consumer-index ranges where the producer index lies in `valid` (per producer axis),
    /// or `None` if that is not a box (or is empty).
    fn pull_back(&self, valid: &[(isize, isize)], consumer: &[usize]) -> Option<Vec<(isize, isize)>> {
        let mut out: Vec<(isize, isize)> = consumer.iter().map(|&m| (0, m as isize)).collect();
        for (d, &(lo, hi)) in valid.iter().enumerate() {
            let off = self.offset[d];
            match (self.axis[d], self.coef[d]) {
                (None, _) => {
                    if off < lo || off >= hi {
                        return None;
                    }
                }
                (Some(e), 1) => out[e] = (out[e].0.max(lo - off), out[e].1.min(hi - off)),
                (Some(e), -1) => out[e] = (out[e].0.max(off - hi + 1), out[e].1.min(off - lo + 1)),
                _ => return None,
            }
        }
        Some(out)
    }

    /// A producer load re-indexed to read at consumer positions.
    fn compose(&self, kind: &LoadKind, consumer: &[usize]) -> Option<LoadKind> {
        let (b1, t, valid, fill): (isize, &[isize], _, _) = match kind {
            LoadKind::Scalar => return Some(LoadKind::Scalar),
            LoadKind::Contiguous => (0, &self.dense, None, 0.0),
            LoadKind::Strided { base, strides } => (*base, strides, None, 0.0),
            LoadKind::Padded { base, strides, valid, fill } => (*base, strides, Some(valid), *fill),
        };
        let base = b1 + t.iter().zip(&self.offset).map(|(&t, &o)| t * o).sum::<isize>();
        // (Not `vec![0; n]`: a zeroed allocation costs a `calloc`, and this runs per load.)
        let mut st: Vec<isize> = consumer.iter().map(|_| 0).collect();
        for ((axis, coef), t) in self.axis.iter().zip(&self.coef).zip(t) {
            if let Some(e) = axis {
                st[*e] += t * coef;
            }
        }
        let mut valid = match valid {
            Some(v) => Some(self.pull_back(v, consumer)?),
            None => None,
        };
        // Where the view pads, the producer is only read inside (the mask fills the rest).
        if self.fill.is_some() {
            let v = valid.get_or_insert_with(|| consumer.iter().map(|&m| (0, m as isize)).collect());
            for (v, &(lo, hi)) in v.iter_mut().zip(&self.inside) {
                *v = (v.0.max(lo), v.1.min(hi));
            }
        }
        Some(match valid {
            Some(valid) => LoadKind::Padded { base, strides: st, valid, fill },
            None => LoadKind::Strided { base, strides: st },
        })
    }
}

/// The step between consecutive elements along the last axis of a load over `shape`.
fn inner_step(kind: &LoadKind, shape: &[usize]) -> isize {
    match kind {
        LoadKind::Contiguous => 1,
        LoadKind::Scalar => 0,
        LoadKind::Strided { strides, .. } | LoadKind::Padded { strides, .. } => match shape.last() {
            Some(_) => strides.last().copied().unwrap_or(0),
            None => 0,
        },
    }
}

/// [`Cones::cone`] for one search (tests).
#[cfg(test)]
fn cone(prog: &Program, root: usize, limit: usize) -> Option<Vec<usize>> {
    let mut cones = Cones::default();
    cones.fit(prog);
    cones.cone(prog, root, limit)
}

/// Marks for [`cone`] searches, reused between them (and between programs: see [`Cones::fit`]).
#[derive(Default)]
struct Cones {
    mark: Vec<u32>,
    stamp: u32,
    /// The search's work list, reused (a cone grows one push at a time up to the limit).
    work: Vec<usize>,
}

impl Cones {
    /// Makes room for searches in `prog` (stamps only grow: marks of earlier programs are
    /// stale), so that one `Cones` serves every producer.
    fn fit(&mut self, prog: &Program) {
        if self.mark.len() < prog.instrs.len() {
            self.mark.resize(prog.instrs.len(), 0);
        }
    }

    /// The instructions that register `root` of `prog` depends on (itself included), in
    /// program order, or `None` when there are more than `limit`. Costs O(limit), not
    /// O(program): producers can be loops of many thousand instructions.
    fn cone(&mut self, prog: &Program, root: usize, limit: usize) -> Option<Vec<usize>> {
        self.stamp += 1;
        let stamp = self.stamp;
        self.mark[root] = stamp;
        let cone = &mut self.work;
        cone.clear();
        cone.push(root);
        let mut next = 0;
        while next < cone.len() {
            let i = cone[next];
            next += 1;
            let operands: &[usize] = match &prog.instrs[i] {
                Instr::Load { .. } => &[],
                Instr::Unary(_, a) | Instr::Convert(_, a) | Instr::Mask { value: a, .. } => std::slice::from_ref(a),
                Instr::Binary(_, a, b) => &[*a, *b],
                Instr::Select(p, a, b) => &[*p, *a, *b],
            };
            for &a in operands {
                if self.mark[a] != stamp {
                    self.mark[a] = stamp;
                    if cone.len() == limit {
                        return None;
                    }
                    cone.push(a);
                }
            }
        }
        cone.sort_unstable();
        Some(cone.clone())
    }
}

/// Appends producer register `out`'s chain (the instructions `live`, in order) to `instrs`, read at the consumer positions of
/// `map`; returns the register holding the value. `input` maps a producer input to the
/// consumer's input index.
#[allow(clippy::too_many_arguments)]
fn emit_cone(
    producer: &Program,
    out: usize,
    live: &[usize],
    map: &IndexMap,
    consumer_shape: &[usize],
    instrs: &mut Vec<Instr>,
    dtypes: &mut Vec<crate::DType>,
    input: &mut dyn FnMut(usize) -> usize,
    scratch: &mut EmitScratch,
) -> Option<usize> {
    // The consumer register of producer instruction `live[j]` is `reg[j]`; `at[live[j]] = j`
    // (`live` is a cone: every operand of its instructions is in it).
    let EmitScratch { reg, at } = scratch;
    reg.clear();
    if at.len() < producer.instrs.len() {
        at.resize(producer.instrs.len(), 0);
    }
    for (j, &i) in live.iter().enumerate() {
        at[i] = j as u32;
    }
    for &i in live {
        let ins = &producer.instrs[i];
        let r = |x: &usize| {
            debug_assert!(live.binary_search(x).is_ok(), "operands are in the cone");
            reg[at[*x] as usize]
        };
        let new = match ins {
            Instr::Load { input: k, kind } => {
                let composed = map.compose(kind, consumer_shape)?;
                // Turning a streaming read into a gather (as a transpose does) costs more than
                // the intermediate saves: vectorised loops need unit steps along the last axis.
                if inner_step(&composed, consumer_shape).abs() > 1 && inner_step(kind, &producer.shape).abs() <= 1 {
                    return None;
                }
                Instr::Load { input: input(*k), kind: composed }
            }
            Instr::Unary(op, a) => Instr::Unary(*op, r(a)),
            Instr::Binary(op, a, b) => Instr::Binary(*op, r(a), r(b)),
            Instr::Select(p, a, b) => Instr::Select(r(p), r(a), r(b)),
            Instr::Convert(d, a) => Instr::Convert(*d, r(a)),
            Instr::Mask { value, valid, fill } => {
                Instr::Mask { value: r(value), valid: map.pull_back(valid, consumer_shape)?, fill: *fill }
            }
        };
        instrs.push(new);
        dtypes.push(producer.dtypes[i]);
        reg.push(instrs.len() - 1);
    }
    let mut result = reg[live.binary_search(&out).expect("the root is in its cone")];
    if let Some(fill) = map.fill {
        instrs.push(Instr::Mask { value: result, valid: map.inside.clone(), fill });
        dtypes.push(producer.dtypes[out]);
        result = instrs.len() - 1;
    }
    Some(result)
}

/// A producer chain emitted for one load of a consumer (by [`emit_cone`]): registers count
/// from 0, loads name the producer's inputs, and `result` holds the value.
struct Fragment {
    instrs: Vec<Instr>,
    dtypes: Vec<crate::DType>,
    result: usize,
}

/// The chains (one per load, in program order) that replace every load of slot `slot` in
/// `consumer` (reading slots `ins`, now `len` instructions long after earlier inlinings of
/// other slots) by the chain `live` of producer register `out`, and the consumer's length
/// with them; `None` when that cannot be done (a load that is no view of the producer, a
/// read that would become a gather, a program over [`MAX_PROGRAM`]). The loads of `slot`
/// are the consumer's own: inlining other outputs of the same producer adds loads of the
/// producer's inputs only, never of its outputs.
#[allow(clippy::too_many_arguments)]
fn chains_for(
    consumer: &Program,
    ins: &[usize],
    slot: usize,
    producer: &Program,
    out: usize,
    live: &[usize],
    len: usize,
    map: &mut IndexMap,
) -> Option<(usize, Vec<Fragment>)> {
    // Inlining replaces a load by at least one instruction: a consumer already too long
    // only grows (and this keeps the work here proportional to MAX_PROGRAM).
    if len > MAX_PROGRAM {
        return None;
    }
    // Each load of the slot becomes the cone (and maybe a mask): at least this many
    // instructions, and at most `reads` more.
    let reads =
        consumer.instrs.iter().filter(|i| matches!(i, Instr::Load { input, .. } if ins[*input] == slot)).count();
    if len - reads + reads * live.len() > MAX_PROGRAM {
        return None;
    }
    let mut new_len = len - reads;
    let mut chains = Vec::with_capacity(reads);
    // (Taken out of `map` while `map` is read, then put back.)
    let mut scratch = std::mem::take(&mut map.scratch);
    let mut ok = true;
    for i in &consumer.instrs {
        if let Instr::Load { input, kind } = i {
            if ins[*input] == slot {
                if !map.build(kind, &consumer.shape, &producer.shape) {
                    ok = false;
                    break;
                }
                let (mut instrs, mut dtypes) = (Vec::with_capacity(live.len() + 1), Vec::with_capacity(live.len() + 1));
                let shape = &consumer.shape;
                let Some(result) =
                    emit_cone(producer, out, live, map, shape, &mut instrs, &mut dtypes, &mut |k| k, &mut scratch)
                else {
                    ok = false;
                    break;
                };
                new_len += instrs.len();
                chains.push(Fragment { instrs, dtypes, result });
            }
        }
    }
    map.scratch = scratch;
    (ok && new_len <= MAX_PROGRAM).then_some((new_len, chains))
}

/// One producer output to inline: the producer (its step), the slot the consumer reads the
/// output from and the chains ([`chains_for`]) that replace its loads.
struct Inlining {
    producer: usize,
    slot: usize,
    chains: Vec<Fragment>,
}

/// `consumer` (reading slots `ins`) with every load of each `inlinings[j].slot` replaced by
/// its chain of producer `inlinings[j].producer` (reading slots `producer_ins(producer)`),
/// built in one pass that moves the consumer's instructions. The chains come from
/// [`chains_for`], called in this order, each on the length the previous ones left; the
/// producers come in execution order (outputs of one producer, then of a later one: a
/// consumer is rebuilt once, however many producers it takes chains from). A consumer's
/// inputs are distinct and all loaded (as `fused_step` builds them, and as this keeps them).
///
/// The result is exactly that of inlining the outputs one at a time, in order (what
/// [`inline_into`] does for one): the same instructions in the same order (each load is
/// replaced in place, and the chains read only their producer's inputs, never the slots
/// inlined after them: those are outputs of the same producer or of later steps), and the
/// same input order, which the one-at-a-time process defines as: the consumer's inputs,
/// then each producer's inputs in the order the chains first read them, inlining by
/// inlining, each time without the inputs nothing loads any more.
fn inline_all<'p>(
    consumer: Program,
    ins: &[usize],
    producer_ins: impl Fn(usize) -> &'p [usize],
    inlinings: Vec<Inlining>,
    len: usize,
) -> (Program, Vec<usize>) {
    // Chain loads name their producer's input slot (+ CHAIN) until the inputs are numbered.
    const CHAIN: usize = 1 << 40;
    let Program { shape, instrs: old, dtypes: old_dtypes, outputs, reduce } = consumer;
    let slots: Vec<usize> = inlinings.iter().map(|x| x.slot).collect();
    let from: Vec<&[usize]> = inlinings.iter().map(|x| producer_ins(x.producer)).collect();
    let mut chains: Vec<std::vec::IntoIter<Fragment>> = inlinings.into_iter().map(|x| x.chains.into_iter()).collect();
    // The inlining that replaces the loads of each consumer input, if any.
    let inlined: Vec<Option<usize>> = ins.iter().map(|&v| slots.iter().position(|&s| s == v)).collect();
    // The consumer's inputs that any of its loads read.
    let mut loaded = vec![false; ins.len()];
    let mut instrs = Vec::with_capacity(len);
    let mut dtypes = Vec::with_capacity(instrs.capacity());
    // The slots the chains of each inlining read, (inlining, slot) in the order they first
    // read them; `request[start[j] + k]`: the request of input `k` of inlining `j`'s producer.
    let mut start = Vec::with_capacity(from.len());
    let mut total = 0;
    for f in &from {
        start.push(total);
        total += f.len();
    }
    let mut request = vec![u32::MAX; total];
    let mut requests: Vec<(usize, usize)> = Vec::with_capacity(total);
    let mut reg = vec![usize::MAX; old.len()];
    for (i, (ins_i, dtype)) in old.into_iter().zip(old_dtypes).enumerate() {
        let r = |x: usize| reg[x];
        let new = match ins_i {
            Instr::Load { input, kind } => {
                loaded[input] = true;
                match inlined[input] {
                    Some(j) => {
                        let chain = chains[j].next().expect("one chain per load");
                        let base = instrs.len();
                        let at = |x: usize| base + x;
                        for ins_c in chain.instrs {
                            instrs.push(match ins_c {
                                // Chain loads name their request (+ CHAIN) until the inputs
                                // are numbered below.
                                Instr::Load { input: k, kind } => {
                                    let q = &mut request[start[j] + k];
                                    if *q == u32::MAX {
                                        *q = requests.len() as u32;
                                        requests.push((j, from[j][k]));
                                    }
                                    Instr::Load { input: CHAIN + *q as usize, kind }
                                }
                                Instr::Unary(op, a) => Instr::Unary(op, at(a)),
                                Instr::Binary(op, a, b) => Instr::Binary(op, at(a), at(b)),
                                Instr::Select(p, a, b) => Instr::Select(at(p), at(a), at(b)),
                                Instr::Convert(d, a) => Instr::Convert(d, at(a)),
                                Instr::Mask { value, valid, fill } => Instr::Mask { value: at(value), valid, fill },
                            });
                        }
                        dtypes.extend(chain.dtypes);
                        reg[i] = at(chain.result);
                        continue;
                    }
                    None => Instr::Load { input, kind },
                }
            }
            Instr::Unary(op, a) => Instr::Unary(op, r(a)),
            Instr::Binary(op, a, b) => Instr::Binary(op, r(a), r(b)),
            Instr::Select(p, a, b) => Instr::Select(r(p), r(a), r(b)),
            Instr::Convert(d, a) => Instr::Convert(d, r(a)),
            Instr::Mask { value, valid, fill } => Instr::Mask { value: r(value), valid, fill },
        };
        instrs.push(new);
        dtypes.push(dtype);
        reg[i] = instrs.len() - 1;
    }
    // The inputs as inlining them one at a time leaves them: entries are (slot, position in
    // `ins` for the consumer's own, the first inlining whose chains read the slot). After
    // inlining `j`, an entry stays if something loads it: a consumer load of a slot not
    // inlined yet, or a chain of an inlining `<= j`.
    let first_request = |v: usize| requests.iter().filter(|r| r.1 == v).map(|r| r.0).min().unwrap_or(usize::MAX);
    let mut entries: Vec<(usize, Option<usize>, usize)> = Vec::with_capacity(ins.len() + requests.len());
    entries.extend(ins.iter().enumerate().map(|(p, &s)| (s, Some(p), first_request(s))));
    // The requests by inlining (in the order each inlining's chains made them).
    let mut by_inlining: Vec<u32> = (0..requests.len() as u32).collect();
    by_inlining.sort_by_key(|&q| requests[q as usize].0);
    let mut next = 0;
    for j in 0..slots.len() {
        while next < by_inlining.len() && requests[by_inlining[next] as usize].0 == j {
            let v = requests[by_inlining[next] as usize].1;
            next += 1;
            if !entries.iter().any(|e| e.0 == v) {
                entries.push((v, None, j));
            }
        }
        entries.retain(|&(_, own, first)| {
            first <= j || own.is_some_and(|p| loaded[p] && inlined[p].is_none_or(|at| at > j))
        });
    }
    // Consumer loads keep their entry; chain loads read the first entry of their slot.
    let mut position = vec![usize::MAX; ins.len()];
    for (e, &(_, own, _)) in entries.iter().enumerate() {
        if let Some(p) = own {
            position[p] = e;
        }
    }
    let request_at: Vec<usize> = requests
        .iter()
        .map(|&(_, v)| entries.iter().position(|e| e.0 == v).expect("a chain's inputs are kept"))
        .collect();
    for i in instrs.iter_mut() {
        if let Instr::Load { input, .. } = i {
            *input = if *input >= CHAIN { request_at[*input - CHAIN] } else { position[*input] };
        }
    }
    let outputs = outputs.iter().map(|&o| reg[o]).collect();
    (Program { shape, instrs, dtypes, outputs, reduce }, entries.into_iter().map(|e| e.0).collect())
}

/// `consumer` (reading slots `ins`) with every load of slot `slot` replaced by the chain of
/// `producer` register `out` (the producer reads slots `producer_ins`).
#[cfg(test)]
fn inline_into(
    consumer: &Program,
    ins: &[usize],
    slot: usize,
    producer: &Program,
    producer_ins: &[usize],
    out: usize,
    live: &[usize],
) -> Option<(Program, Vec<usize>)> {
    let (len, chains) =
        chains_for(consumer, ins, slot, producer, out, live, consumer.instrs.len(), &mut IndexMap::default())?;
    Some(inline_all(consumer.clone(), ins, |_| producer_ins, vec![Inlining { producer: 0, slot, chains }], len))
}

/// A view kernel as a one-load loop (so that its producer can be inlined into it).
fn view_as_loop(
    prim: &Prim,
    ins: &[usize],
    out_shape: &[usize],
    in_shape: &[usize],
    constants: &[(usize, Arc<Array>)],
    dtype: crate::DType,
) -> Option<Program> {
    let dense: Vec<isize> = strides(in_shape).iter().map(|&s| s as isize).collect();
    let kind = match prim {
        Prim::Transpose { perm } => LoadKind::Strided { base: 0, strides: perm.iter().map(|&p| dense[p]).collect() },
        Prim::Rev { axes } => {
            let mut st = dense.clone();
            let mut base = 0;
            for &a in axes {
                base += (in_shape[a] as isize - 1) * dense[a];
                st[a] = -dense[a];
            }
            LoadKind::Strided { base, strides: st }
        }
        Prim::Slice { start, stride, .. } => LoadKind::Strided {
            base: start.iter().zip(&dense).map(|(&a, &s)| a as isize * s).sum(),
            strides: dense.iter().zip(stride).map(|(&s, &k)| s * k as isize).collect(),
        },
        Prim::Pad { low, interior, .. } if interior.iter().all(|&i| i == 0) => {
            let fill = constants.iter().find(|(s, _)| *s == ins[1])?.1.data.get_f64(0);
            LoadKind::Padded {
                base: -low.iter().zip(&dense).map(|(&l, &s)| l as isize * s).sum::<isize>(),
                strides: dense.clone(),
                valid: low.iter().zip(in_shape).map(|(&l, &n)| (l as isize, l as isize + n as isize)).collect(),
                fill,
            }
        }
        _ => return None,
    };
    Some(Program {
        shape: out_shape.to_vec(),
        instrs: vec![Instr::Load { input: 0, kind }],
        dtypes: vec![dtype],
        outputs: vec![0],
        reduce: None,
    })
}

/// The steps that read each slot, in order and each once (one flat list with offsets per
/// slot: no map and no list per slot to allocate and free).
struct Readers {
    start: Vec<u32>,
    steps: Vec<u32>,
}

impl Readers {
    fn new(steps: &[Step], slots: usize) -> Readers {
        // A step reading a slot twice is listed once (`last`: the latest step counted per slot).
        let mut last = vec![u32::MAX; slots];
        let mut start = vec![0u32; slots + 1];
        for (c, s) in steps.iter().enumerate() {
            for &v in s.inputs() {
                if last[v] != c as u32 {
                    last[v] = c as u32;
                    start[v + 1] += 1;
                }
            }
        }
        for v in 0..slots {
            start[v + 1] += start[v];
        }
        let mut fill = start.clone();
        let mut list = vec![0u32; start[slots] as usize];
        last.iter_mut().for_each(|l| *l = u32::MAX);
        for (c, s) in steps.iter().enumerate() {
            for &v in s.inputs() {
                if last[v] != c as u32 {
                    last[v] = c as u32;
                    list[fill[v] as usize] = c as u32;
                    fill[v] += 1;
                }
            }
        }
        Readers { start, steps: list }
    }

    fn of(&self, slot: usize) -> impl Iterator<Item = usize> + Clone + '_ {
        self.steps[self.start[slot] as usize..self.start[slot + 1] as usize].iter().map(|&c| c as usize)
    }
}

/// Rebuilds loop `steps[c]` with the chains `inlinings` of earlier producers ([`inline_all`];
/// `len`: its length with them).
fn materialise(steps: &mut [Step], c: usize, inlinings: Vec<Inlining>, len: usize) {
    let (before, rest) = steps.split_at_mut(c);
    let Step::Fused { prog, ins, .. } = &mut rest[0] else { unreachable!("pending readers are loops") };
    let empty = Program { shape: vec![], instrs: vec![], dtypes: vec![], outputs: vec![], reduce: None };
    let before: &[Step] = before;
    let (new_prog, new_ins) = inline_all(std::mem::replace(prog, empty), ins, |q| before[q].inputs(), inlinings, len);
    *prog = new_prog;
    *ins = new_ins;
}

/// Inlines fused producers into the fused loops (and view kernels) that read them through
/// views, wherever every reader of a producer's output can take it and `worth_it(consumer)`.
/// `steps` are in execution order; `keep[slot]` marks values that must stay materialised.
pub(super) fn fuse_through_views(
    steps: Vec<Step>,
    keep: &[bool],
    shape_of: &dyn Fn(usize) -> Vec<usize>,
    constants: &[(usize, Arc<Array>)],
    worth_it: &dyn Fn(&Program) -> bool,
) -> Vec<Step> {
    // View kernels reading a loop's output are candidates as one-load loops.
    let mut producers = vec![false; keep.len()];
    for s in &steps {
        if let Step::Fused { prog, outs, .. } = s {
            if prog.reduce.is_none() {
                outs.iter().for_each(|&o| producers[o] = true);
            }
        }
    }
    // The view kernels turned into loops, by step (in increasing order: few steps are, and
    // a `Vec<Option<Step>>` by step would write some 200 bytes per step).
    let mut original: Vec<(usize, Step)> = Vec::new();
    let mut steps: Vec<Step> = steps
        .into_iter()
        .enumerate()
        .map(|(i, s)| match &s {
            Step::Kernel { prim, ins, out, ty } if producers[ins[0]] => {
                match view_as_loop(prim, ins, &ty.shape, &shape_of(ins[0]), constants, ty.dtype) {
                    Some(prog) => {
                        original.push((i, s.clone()));
                        Step::Fused { prog, ins: vec![ins[0]], outs: vec![*out], native: None, in_place: vec![] }
                    }
                    None => s,
                }
            }
            _ => s,
        })
        .collect();
    let mut inlined_into = vec![false; steps.len()];
    // The steps that read each slot, in order (a superset: entries go stale when inlining
    // replaces a read, so each is checked again before use). Built once: inlining into a
    // consumer adds reads of the producer's inputs, which earlier steps write (steps are in
    // execution order), and only outputs of later producers are looked up.
    let readers = Readers::new(&steps, keep.len());
    let mut map = IndexMap::default();
    let mut cones = Cones::default();
    // Per consumer, the outputs it takes (from every producer so far, in order) and its
    // length with them. Each consumer is rebuilt once, when it is a producer in turn, or at
    // the end (`materialise`), exactly as inlining them one by one would have left it. Until
    // then its step keeps its own instructions and inputs, which is all that deciding needs:
    // the loads of a later producer's output are the consumer's own (chains read earlier
    // producers' inputs, which earlier steps write), in the same order, from the same
    // inputs; and its shape (all `worth_it` sees of it here) does not change.
    let mut pending: FxHashMap<usize, (usize, Vec<Inlining>)> = FxHashMap::default();

    for p in 0..steps.len() {
        if let Some((len, inlinings)) = pending.remove(&p) {
            materialise(&mut steps, p, inlinings, len);
        }
        let Step::Fused { prog: producer, .. } = &steps[p] else { continue };
        if producer.reduce.is_some() {
            continue;
        }
        // The producer leaves its place while its outputs are offered to the readers (no
        // reader is the producer itself); the outputs inlined everywhere are removed after.
        let placeholder = Program { shape: vec![], instrs: vec![], dtypes: vec![], outputs: vec![], reduce: None };
        let placeholder = Step::Fused { prog: placeholder, ins: vec![], outs: vec![], native: None, in_place: vec![] };
        let mut taken = std::mem::replace(&mut steps[p], placeholder);
        let Step::Fused { prog: producer, outs, .. } = &mut taken else { unreachable!() };
        let mut removed = Vec::new();
        cones.fit(producer);
        for (k, &slot) in outs.iter().enumerate() {
            if keep[slot] {
                continue;
            }
            let out = producer.outputs[k];
            let candidates = readers.of(slot);
            // Cheap refusals first: a kernel reads it, or no other loop does.
            let kernel_reads = candidates.clone().any(
                |c| matches!(&steps[c], Step::Kernel { ins, .. } | Step::Multi { ins, .. } | Step::DotArg { ins, .. } if ins.contains(&slot)),
            );
            let loop_reads = candidates
                .clone()
                .any(|c| matches!(&steps[c], Step::Fused { ins, .. } if c != p && ins.contains(&slot)));
            if kernel_reads || !loop_reads {
                continue;
            }
            let Some(live) = cones.cone(producer, out, MAX_CONE) else { continue };
            // Every reader must be a loop that can take the chain.
            let mut rewritten = Vec::new();
            let mut ok = true;
            for c in candidates {
                match &steps[c] {
                    Step::Kernel { ins, .. } | Step::Multi { ins, .. } | Step::DotArg { ins, .. }
                        if ins.contains(&slot) =>
                    {
                        ok = false
                    }
                    Step::Fused { prog, ins, .. } if c != p && ins.contains(&slot) => {
                        let len = pending.get(&c).map_or(prog.instrs.len(), |e| e.0);
                        match (worth_it(prog), chains_for(prog, ins, slot, producer, out, &live, len, &mut map)) {
                            (true, Some((new_len, chains))) => rewritten.push((c, new_len, chains)),
                            _ => ok = false,
                        }
                    }
                    _ => {}
                }
                if !ok {
                    break;
                }
            }
            if !ok || rewritten.is_empty() {
                continue;
            }
            for (c, new_len, chains) in rewritten {
                let e = pending.entry(c).or_default();
                e.0 = new_len;
                e.1.push(Inlining { producer: p, slot, chains });
                inlined_into[c] = true;
            }
            // The producer no longer writes this output.
            removed.push(k);
        }
        if !removed.is_empty() {
            let mut gone = vec![false; outs.len()];
            removed.iter().for_each(|&k| gone[k] = true);
            let mut k = 0;
            outs.retain(|_| {
                k += 1;
                !gone[k - 1]
            });
            let mut k = 0;
            producer.outputs.retain(|_| {
                k += 1;
                !gone[k - 1]
            });
        }
        steps[p] = taken;
    }
    let mut rest: Vec<(usize, (usize, Vec<Inlining>))> = pending.into_iter().collect();
    rest.sort_unstable_by_key(|e| e.0);
    for (c, (len, inlinings)) in rest {
        materialise(&mut steps, c, inlinings, len);
    }
    let mut original = original.into_iter().peekable();
    steps
        .into_iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let kernel = original.next_if(|e| e.0 == i).map(|e| e.1);
            match (&s, kernel) {
                // A loop left with no outputs is gone; a view that gained nothing is a kernel again.
                (Step::Fused { outs, .. }, _) if outs.is_empty() => None,
                (_, Some(kernel)) if !inlined_into[i] => Some(kernel),
                _ => Some(s),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    /// The one-at-a-time inlining [`inline_all`] reproduces (as it was before): `consumer` (reading slots `ins`) with every load of slot `slot` replaced by the chain of
    /// `producer` register `out` (the producer reads slots `producer_ins`).
    fn inline_into_reference(
        consumer: &Program,
        ins: &[usize],
        slot: usize,
        producer: &Program,
        producer_ins: &[usize],
        out: usize,
        live: &[usize],
    ) -> Option<(Program, Vec<usize>)> {
        // Inlining replaces a load by at least one instruction: a consumer already too long
        // only grows (and this keeps the work here proportional to MAX_PROGRAM).
        if consumer.instrs.len() > MAX_PROGRAM {
            return None;
        }
        let mut new_ins: Vec<usize> = ins.to_vec();
        // Each load of the slot becomes the cone (and maybe a mask): at least this many
        // instructions, and at most `reads` more.
        let reads =
            consumer.instrs.iter().filter(|i| matches!(i, Instr::Load { input, .. } if ins[*input] == slot)).count();
        let size = consumer.instrs.len() - reads + reads * live.len();
        if size > MAX_PROGRAM {
            return None;
        }
        let mut instrs = Vec::with_capacity(size + reads);
        let mut dtypes = Vec::with_capacity(size + reads);
        let mut reg = vec![usize::MAX; consumer.instrs.len()];
        for (i, ins_i) in consumer.instrs.iter().enumerate() {
            let r = |x: &usize| reg[*x];
            let new = match ins_i {
                Instr::Load { input, kind } if ins[*input] == slot => {
                    let map = index_map(kind, &consumer.shape, &producer.shape)?;
                    let mut input = |k: usize| match new_ins.iter().position(|&s| s == producer_ins[k]) {
                        Some(p) => p,
                        None => {
                            new_ins.push(producer_ins[k]);
                            new_ins.len() - 1
                        }
                    };
                    reg[i] = emit_cone(
                        producer,
                        out,
                        live,
                        &map,
                        &consumer.shape,
                        &mut instrs,
                        &mut dtypes,
                        &mut input,
                        &mut EmitScratch::default(),
                    )?;
                    continue;
                }
                Instr::Load { input, kind } => Instr::Load { input: *input, kind: kind.clone() },
                Instr::Unary(op, a) => Instr::Unary(*op, r(a)),
                Instr::Binary(op, a, b) => Instr::Binary(*op, r(a), r(b)),
                Instr::Select(p, a, b) => Instr::Select(r(p), r(a), r(b)),
                Instr::Convert(d, a) => Instr::Convert(*d, r(a)),
                Instr::Mask { value, valid, fill } => {
                    Instr::Mask { value: r(value), valid: valid.clone(), fill: *fill }
                }
            };
            instrs.push(new);
            dtypes.push(consumer.dtypes[i]);
            reg[i] = instrs.len() - 1;
        }
        if instrs.len() > MAX_PROGRAM {
            return None;
        }
        // Drop inputs nothing loads any more (the inlined slot), renumbering the loads.
        let mut used = vec![false; new_ins.len()];
        for i in &instrs {
            if let Instr::Load { input, .. } = i {
                used[*input] = true;
            }
        }
        let renumber: Vec<usize> = used
            .iter()
            .scan(0, |n, &u| {
                Some(if u {
                    *n += 1;
                    *n - 1
                } else {
                    usize::MAX
                })
            })
            .collect();
        for i in instrs.iter_mut() {
            if let Instr::Load { input, .. } = i {
                *input = renumber[*input];
            }
        }
        let new_ins = new_ins.iter().zip(&used).filter(|(_, &u)| u).map(|(&s, _)| s).collect();
        let outputs = consumer.outputs.iter().map(|&o| reg[o]).collect();
        Some((Program { shape: consumer.shape.clone(), instrs, dtypes, outputs, reduce: consumer.reduce }, new_ins))
    }

    use super::*;
    use crate::array::Data;
    use crate::backend::cpu::fused;
    use crate::ops::BinaryOp;
    use crate::DType;

    fn run(prog: &Program, inputs: &[&Array]) -> Vec<f64> {
        let mut buffer = |d: DType, n: usize| Data::filled(d, 0.0, n);
        let out = fused::run(prog, None, inputs, &mut buffer);
        (0..out[0].data.len()).map(|i| out[0].data.get_f64(i)).collect()
    }

    /// `x * x + x` over `shape`, x contiguous.
    fn producer(shape: &[usize]) -> Program {
        Program {
            shape: shape.to_vec(),
            instrs: vec![
                Instr::Load { input: 0, kind: LoadKind::Contiguous },
                Instr::Binary(BinaryOp::Mul, 0, 0),
                Instr::Binary(BinaryOp::Add, 1, 0),
            ],
            dtypes: vec![DType::F64; 3],
            outputs: vec![2],
            reduce: None,
        }
    }

    /// A consumer of slot 7 through `kind`, plus 1.
    fn consumer(shape: &[usize], kind: LoadKind) -> Program {
        Program {
            shape: shape.to_vec(),
            instrs: vec![
                Instr::Load { input: 0, kind },
                Instr::Load { input: 1, kind: LoadKind::Scalar },
                Instr::Binary(BinaryOp::Add, 0, 1),
            ],
            dtypes: vec![DType::F64; 3],
            outputs: vec![2],
            reduce: None,
        }
    }

    /// Runs producer then consumer, and the inlined consumer alone (both interpreted).
    fn both_ways(kind: LoadKind, p_shape: &[usize], c_shape: &[usize]) -> (Vec<f64>, Vec<f64>, Program) {
        let n = numel(p_shape);
        let x = Array::new(p_shape.to_vec(), Data::F64((0..n).map(|i| i as f64 - 3.5).collect()));
        let one = Array::new(vec![], Data::F64(vec![1.0]));
        let p = producer(p_shape);
        let mid = Array::new(p_shape.to_vec(), Data::F64(run(&p, &[&x])));
        let c = consumer(c_shape, kind);
        let two_steps = run(&c, &[&mid, &one]);
        // Slots: 7 = the producer's output, 8 = the scalar, 3 = x.
        let (inlined, ins) =
            inline_into(&c, &[7, 8], 7, &p, &[3], 2, &cone(&p, 2, MAX_CONE).unwrap()).expect("inlinable");
        assert_eq!(ins, vec![8, 3], "the intermediate is no longer read");
        let fused = run(&inlined, &[&one, &x]);
        (two_steps, fused, inlined)
    }

    /// The reader lists are, per slot, the steps reading it, in order, each once.
    #[test]
    fn readers_list_each_reading_step_once_in_order() {
        let kernel = |ins: Vec<usize>, out: usize| Step::Kernel {
            prim: Prim::Unary(crate::ops::UnaryOp::Exp),
            ins,
            out,
            ty: crate::TensorType::new(DType::F64, vec![2]),
        };
        // Step c reads slots (c * 7 + k * 3) % 11 for k < c % 4 + 1, with repeats.
        let steps: Vec<Step> = (0..40)
            .map(|c| kernel((0..c % 4 + 1).map(|k| (c * 7 + k * 3) % 11).chain([c % 11]).collect(), 11 + c))
            .collect();
        let readers = Readers::new(&steps, 60);
        for slot in 0..60 {
            let naive: Vec<usize> = (0..steps.len()).filter(|&c| steps[c].inputs().contains(&slot)).collect();
            assert_eq!(readers.of(slot).collect::<Vec<_>>(), naive, "slot {slot}");
        }
        assert!(readers.of(3).count() > 1);
    }

    #[test]
    fn padded_reads_become_masked_recomputation() {
        // pad [6] by 2 low, 1 high with fill 0.5.
        let kind = LoadKind::Padded { base: -2, strides: vec![1], valid: vec![(2, 8)], fill: 0.5 };
        let (a, b, prog) = both_ways(kind, &[6], &[9]);
        assert_eq!(a, b);
        assert_eq!(a[0], 1.5);
        assert!(prog.instrs.iter().any(|i| matches!(i, Instr::Mask { .. })), "{}", prog.describe());
    }

    #[test]
    fn reversed_and_sliced_reads_compose() {
        // reversal of axis 1 of [3, 4]
        let r = LoadKind::Strided { base: 3, strides: vec![4, -1] };
        let (a, b, _) = both_ways(r, &[3, 4], &[3, 4]);
        assert_eq!(a, b);
        // rows 1.. and columns 1..3 of [3, 4], then padded on both axes
        let s = LoadKind::Padded { base: -4, strides: vec![4, 1], valid: vec![(1, 3), (1, 3)], fill: -1.0 };
        let (a, b, _) = both_ways(s, &[3, 4], &[4, 4]);
        assert_eq!(a, b);
    }

    #[test]
    fn reads_that_would_become_gathers_are_not_inlined() {
        // A transpose (or a step of 2 along the last axis) would turn the producer's streaming
        // reads into gathers, which cost more than the intermediate saves.
        for (kind, c_shape) in [
            (LoadKind::Strided { base: 0, strides: vec![1, 4] }, [4, 3]),
            (LoadKind::Strided { base: 0, strides: vec![4, 2] }, [3, 2]),
        ] {
            assert!(inline_into(
                &consumer(&c_shape, kind),
                &[7, 8],
                7,
                &producer(&[3, 4]),
                &[3],
                2,
                &cone(&producer(&[3, 4]), 2, MAX_CONE).unwrap()
            )
            .is_none());
        }
    }

    /// Inlining several outputs of one producer in one rebuild gives exactly what inlining
    /// them one at a time does (instructions and input order), in either order.
    #[test]
    fn inlining_outputs_together_equals_one_at_a_time() {
        // Producer over [6] reading x (slot 3) and y (slot 4): outputs x*x + y (slot 7), x - y (slot 9).
        let producer = Program {
            shape: vec![6],
            instrs: vec![
                Instr::Load { input: 0, kind: LoadKind::Contiguous },
                Instr::Load { input: 1, kind: LoadKind::Contiguous },
                Instr::Binary(BinaryOp::Mul, 0, 0),
                Instr::Binary(BinaryOp::Add, 2, 1),
                Instr::Binary(BinaryOp::Sub, 0, 1),
            ],
            dtypes: vec![DType::F64; 5],
            outputs: vec![3, 4],
            reduce: None,
        };
        let producer_ins = [3, 4];
        // Consumer over [6]: reversed slot 9, scalar slot 8, slot 7 padded by one, y itself.
        let consumer = Program {
            shape: vec![6],
            instrs: vec![
                Instr::Load { input: 0, kind: LoadKind::Strided { base: 5, strides: vec![-1] } },
                Instr::Load { input: 1, kind: LoadKind::Scalar },
                Instr::Load {
                    input: 2,
                    kind: LoadKind::Padded { base: -1, strides: vec![1], valid: vec![(1, 6)], fill: 0.5 },
                },
                Instr::Load { input: 3, kind: LoadKind::Contiguous },
                Instr::Binary(BinaryOp::Add, 0, 1),
                Instr::Binary(BinaryOp::Mul, 4, 2),
                Instr::Binary(BinaryOp::Sub, 5, 3),
            ],
            dtypes: vec![DType::F64; 7],
            outputs: vec![6],
            reduce: None,
        };
        let ins = [9, 8, 7, 4];
        let x = Array::new(vec![6], Data::F64((0..6).map(|i| i as f64 * 0.7 - 1.5).collect()));
        let y = Array::new(vec![6], Data::F64((0..6).map(|i| 2.0 - i as f64 * 0.3).collect()));
        let eight = Array::new(vec![], Data::F64(vec![0.25]));
        for order in [[(7, 3), (9, 4)], [(9, 4), (7, 3)]] {
            let mut sequential = (consumer.clone(), ins.to_vec());
            for &(slot, out) in &order {
                let live = cone(&producer, out, MAX_CONE).unwrap();
                sequential =
                    inline_into_reference(&sequential.0, &sequential.1, slot, &producer, &producer_ins, out, &live)
                        .expect("inlinable");
            }
            let mut len = consumer.instrs.len();
            let mut inlinings = Vec::new();
            for &(slot, out) in &order {
                let live = cone(&producer, out, MAX_CONE).unwrap();
                let (new_len, chains) =
                    chains_for(&consumer, &ins, slot, &producer, out, &live, len, &mut IndexMap::default()).unwrap();
                len = new_len;
                inlinings.push(Inlining { producer: 0, slot, chains });
            }
            let together = inline_all(consumer.clone(), &ins, |_| &producer_ins[..], inlinings, len);
            assert_eq!(together.1, sequential.1, "input order");
            assert_eq!(format!("{:?}", together.0), format!("{:?}", sequential.0));
            assert_eq!(len, together.0.instrs.len());
            assert_eq!(together.1, vec![8, 4, 3], "only x joins; y was read already");
            // And it computes what the two loops do.
            let mut buffer = |d: DType, n: usize| Data::filled(d, 0.0, n);
            let outs = fused::run(&producer, None, &[&x, &y], &mut buffer);
            let two_steps = run(&consumer, &[&outs[1], &eight, &outs[0], &y]);
            let args: Vec<&Array> = together
                .1
                .iter()
                .map(|s| match s {
                    8 => &eight,
                    4 => &y,
                    3 => &x,
                    _ => unreachable!(),
                })
                .collect();
            assert_eq!(run(&together.0, &args), two_steps);
        }
    }

    /// Chains of two producers inlined into a consumer in one rebuild (as `fuse_through_views`
    /// now does, a consumer rebuilt once in all) give exactly what inlining them one at a
    /// time, producer after producer, does: instructions, input order and values.
    #[test]
    fn inlining_from_two_producers_together_equals_one_at_a_time() {
        // Producer 0 over [6] reads x (slot 3) and z (slot 5): x*x - z into slot 7.
        let first = Program {
            shape: vec![6],
            instrs: vec![
                Instr::Load { input: 0, kind: LoadKind::Contiguous },
                Instr::Load { input: 1, kind: LoadKind::Contiguous },
                Instr::Binary(BinaryOp::Mul, 0, 0),
                Instr::Binary(BinaryOp::Sub, 2, 1),
            ],
            dtypes: vec![DType::F64; 4],
            outputs: vec![3],
            reduce: None,
        };
        // Producer 1 over [6] reads y (slot 4) and x (slot 3): y + x into slot 9, y * 2y into 10.
        let second = Program {
            shape: vec![6],
            instrs: vec![
                Instr::Load { input: 0, kind: LoadKind::Contiguous },
                Instr::Load { input: 1, kind: LoadKind::Contiguous },
                Instr::Binary(BinaryOp::Add, 0, 1),
                Instr::Binary(BinaryOp::Add, 0, 0),
                Instr::Binary(BinaryOp::Mul, 0, 3),
            ],
            dtypes: vec![DType::F64; 5],
            outputs: vec![2, 4],
            reduce: None,
        };
        let producers = [(&first, vec![3usize, 5]), (&second, vec![4usize, 3])];
        // Consumer over [6]: slot 9 reversed, slot 7 padded by one, y, slot 10 twice.
        let consumer = Program {
            shape: vec![6],
            instrs: vec![
                Instr::Load { input: 0, kind: LoadKind::Strided { base: 5, strides: vec![-1] } },
                Instr::Load {
                    input: 1,
                    kind: LoadKind::Padded { base: -1, strides: vec![1], valid: vec![(1, 6)], fill: 0.5 },
                },
                Instr::Load { input: 2, kind: LoadKind::Contiguous },
                Instr::Binary(BinaryOp::Mul, 0, 1),
                Instr::Binary(BinaryOp::Sub, 3, 2),
                Instr::Load { input: 3, kind: LoadKind::Contiguous },
                Instr::Load { input: 3, kind: LoadKind::Strided { base: 5, strides: vec![-1] } },
                Instr::Binary(BinaryOp::Add, 4, 5),
                Instr::Binary(BinaryOp::Mul, 7, 6),
            ],
            dtypes: vec![DType::F64; 9],
            outputs: vec![8],
            reduce: None,
        };
        let ins = [9, 7, 4, 10];
        // (slot, producer, output register), in execution order of the producers.
        let order = [(7, 0, 3), (9, 1, 2), (10, 1, 4)];
        let mut sequential = (consumer.clone(), ins.to_vec());
        for &(slot, q, out) in &order {
            let (prog, pins) = &producers[q];
            let live = cone(prog, out, MAX_CONE).unwrap();
            sequential =
                inline_into_reference(&sequential.0, &sequential.1, slot, prog, pins, out, &live).expect("inlinable");
        }
        let mut len = consumer.instrs.len();
        let mut inlinings = Vec::new();
        for &(slot, q, out) in &order {
            let (prog, _) = &producers[q];
            let live = cone(prog, out, MAX_CONE).unwrap();
            let (new_len, chains) =
                chains_for(&consumer, &ins, slot, prog, out, &live, len, &mut IndexMap::default()).unwrap();
            len = new_len;
            inlinings.push(Inlining { producer: q, slot, chains });
        }
        let together = inline_all(consumer.clone(), &ins, |q| &producers[q].1[..], inlinings, len);
        assert_eq!(together.1, sequential.1, "input order");
        assert_eq!(format!("{:?}", together.0), format!("{:?}", sequential.0));
        assert_eq!(len, together.0.instrs.len());
        assert_eq!(together.1, vec![4, 3, 5], "y stays first; x and z join from the first producer");
        // And it computes what the three loops do.
        let data = |f: &dyn Fn(f64) -> f64| Array::new(vec![6], Data::F64((0..6).map(|i| f(i as f64)).collect()));
        let (x, y, z) = (data(&|i| i * 0.7 - 1.5), data(&|i| 2.0 - i * 0.3), data(&|i| 0.1 * i * i));
        let mut buffer = |d: DType, n: usize| Data::filled(d, 0.0, n);
        let a = fused::run(&first, None, &[&x, &z], &mut buffer);
        let b = fused::run(&second, None, &[&y, &x], &mut buffer);
        let three_steps = run(&consumer, &[&b[0], &a[0], &y, &b[1]]);
        assert_eq!(run(&together.0, &[&y, &x, &z]), three_steps);
    }

    #[test]
    fn broadcasts_are_not_recomputed() {
        let kind = LoadKind::Strided { base: 0, strides: vec![0, 1] };
        assert!(index_map(&kind, &[5, 4], &[4]).is_none());
    }
}
