//! Whole loops as one C function (issue 12): a `while` or `scan` whose sub-plans consist only
//! of fused element-wise loops (and reshapes) runs its predicate, its body and the loop itself
//! in native code, with the carries and every intermediate in stack arrays allocated once per
//! call, instead of one interpreted plan run (a slot table, ~10–30 ns of bookkeeping per step
//! and ~60–150 ns per fused step of a few elements) per iteration.
//!
//! Each fused step of a body calls the same C function the step would run as a native fused
//! loop (`codegen::kernel`, plus integer registers for loop counters), so the results are
//! bitwise those of the interpreter. The loop semantics are those of `ops::loops::while_run`
//! and `scan_run`: the predicate is evaluated before each iteration, the body's results
//! replace the carries after the whole body ran, a scan's `xs` rows are read in place and its
//! `ys` rows written into the stacked outputs (from the end with `reverse`).
//!
//! When: [`worth_compiling`] (a loop's expected sub-plan step runs per call, from its static
//! length or from the iterations its earlier runs took), or, for a loop of an interpreted plan
//! in [`NativeMode::Auto`], the step runs of all its runs so far ([`Lazy`]). A loop's float
//! constants are arguments of its function, not literals of its source (see [`parameter`]). Each distinct loop is compiled into a
//! library of its own (cached on disk like the fused loops'), see [`compile`]; a top-level
//! scan's length is an argument, not part of the source, so loops with the same body (a
//! stacked recurrence's layers) share one library at every length and in every plan. An
//! interpreted scan in [`NativeMode::Auto`] looks for its library before each run until it
//! has it ([`Lazy::before_run`]).

use super::codegen;
use super::{native_mode, toolchain, Callbacks, NativeMode, BROKEN, CALLBACKS, NOINLINE};
use crate::array::{Array, Data};
use crate::backend::cpu::fused::{self, Program};
use crate::ops::ReduceOp;
use crate::shape::numel;
use crate::DType;
use std::collections::HashMap;
use std::ffi::c_void;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// One step of a flat sub-plan.
#[derive(Clone, Debug)]
pub(crate) enum FlatStep {
    /// A fused loop (without reduction) reading slots `ins`, writing slots `outs`.
    Fused { prog: Program, ins: Vec<usize>, outs: Vec<usize> },
    /// A reshape: slot `to` holds slot `from`'s elements (dense storage, so the same buffer).
    Alias { from: usize, to: usize },
    /// A reduction kernel (`cpu::reduce::reduce`) of float slot `input` (of `shape`) over the
    /// ascending `axes` into slot `out`: each result folds its elements in row-major order
    /// of the reduced axes from the identity, as that kernel does on every path.
    Reduce { op: ReduceOp, axes: Vec<usize>, shape: Vec<usize>, dtype: DType, input: usize, out: usize },
    /// A `cond`: integer slot `index` (clamped to the branches) picks the branch run on slots
    /// `ins`; its result `k` goes to slot `s` for each `(k, s)` in `outs`, `results` giving
    /// each result's `(dtype, elements)` (as `ops::control::cond_run`).
    Cond {
        index: usize,
        ins: Vec<usize>,
        outs: Vec<(usize, usize)>,
        results: Vec<(DType, usize)>,
        branches: Vec<FlatPlan>,
    },
    /// A nested loop on slots `ins`, its result `k` into slot `s` for each `(k, s)` in `outs`:
    /// generated as a function of its own, called with pointers to the enclosing buffers.
    Loop { spec: Box<LoopSpec>, ins: Vec<usize>, outs: Vec<(usize, usize)> },
}

/// A sub-plan made only of steps a whole loop can run (see `Plan::flat`).
#[derive(Clone, Debug)]
pub(crate) struct FlatPlan {
    /// The slots of the sub-graph's arguments, in order.
    pub inputs: Vec<usize>,
    /// Constant slots and their values.
    pub constants: Vec<(usize, Arc<Array>)>,
    /// The steps in order.
    pub steps: Vec<FlatStep>,
    /// The result slots.
    pub outputs: Vec<usize>,
}

/// Which loop.
#[derive(Clone, Copy, Debug)]
pub(crate) enum LoopKind {
    /// `while`: sub-plans cond, body.
    While { consts: usize },
    /// `scan`: sub-plan body.
    Scan { consts: usize, carries: usize, length: usize, reverse: bool },
}

/// A loop to compile: its kind, operand and result types, and its flat sub-plans.
#[derive(Clone, Debug)]
pub(crate) struct LoopSpec {
    pub kind: LoopKind,
    /// `(dtype, elements)` of each operand.
    pub operands: Vec<(DType, usize)>,
    /// `(dtype, shape)` of each result.
    pub results: Vec<(DType, Vec<usize>)>,
    pub subs: Vec<FlatPlan>,
}

/// Bytes of stack arrays a whole loop may use (carries and intermediates).
const MAX_LOCAL_BYTES: usize = 64 * 1024;

/// Sub-plan step runs per call from which a loop is compiled whole in
/// [`NativeMode::Auto`]/[`NativeMode::Sync`]: ~256 interpreted steps cost 20–40 µs per call.
/// (The compile happens once per machine and loop shape — the library is cached — and `jit`
/// runs it in the background, so the bar only keeps out loops that run a handful of steps.)
const AUTO_MIN_STEP_RUNS: u64 = 256;

/// Sub-plan step runs, over all the runs of one loop of a plan so far, from which the loop is
/// compiled whole in [`NativeMode::Auto`] even when each run takes fewer than
/// [`AUTO_MIN_STEP_RUNS`]: ~20,000 interpreted steps cost 1.5–3 ms, so a loop called that
/// often is likely to be called again (GradBench's protocol calls each input for a second:
/// ode's `s = 1` and `s = 10` scans, 10 and 100 steps a call, then run native for most of
/// it, and their libraries serve the later inputs of the same loop at every length).
const AUTO_MIN_TOTAL_STEP_RUNS: u64 = 20_000;

/// Whether a loop expected to run `step_runs` sub-plan steps per call is compiled whole now.
pub(crate) fn worth_compiling(step_runs: u64) -> bool {
    match native_mode() {
        NativeMode::Off => false,
        NativeMode::Auto | NativeMode::Sync if step_runs < AUTO_MIN_STEP_RUNS => false,
        _ => !BROKEN.load(Ordering::Relaxed) && toolchain::available(),
    }
}

/// The identity and the combining expression of `a` and `b` of a float reduction, as
/// `fused::Accumulate` and `reduce::reduce_step` compute them (NaN wins, the first kept).
fn combine(op: ReduceOp, a: &str, b: &str) -> (&'static str, String) {
    match op {
        ReduceOp::Sum => ("0", format!("{a} + {b}")),
        ReduceOp::Prod => ("1", format!("{a} * {b}")),
        ReduceOp::Max => {
            ("(-INFINITY)", format!("(({a}) != ({a}) ? ({a}) : ((({b}) != ({b}) || ({b}) > ({a})) ? ({b}) : ({a})))"))
        }
        ReduceOp::Min => {
            ("INFINITY", format!("(({a}) != ({a}) ? ({a}) : ((({b}) != ({b}) || ({b}) < ({a})) ? ({b}) : ({a})))"))
        }
    }
}

/// Largest reduction kernel a whole loop takes (its index table is static data).
const MAX_REDUCE_ELEMENTS: usize = 4096;

/// Rows of fused reductions are reduced in blocks of this many (`fused::BLOCK`).
const BLOCK: usize = 512;

fn size_of(d: DType) -> usize {
    match d {
        DType::F64 | DType::I64 => 8,
        DType::F32 | DType::I32 => 4,
        DType::Bool => 1,
    }
}

/// A C initialiser of a constant's elements (exact values).
fn initialiser(a: &Array) -> String {
    let items: Vec<String> = match &a.data {
        Data::F32(v) => v.iter().map(|&x| codegen::literal(x as f64, DType::F32)).collect(),
        Data::F64(v) => v.iter().map(|&x| codegen::literal(x, DType::F64)).collect(),
        Data::Bool(v) => v.iter().map(|&x| (x as u8).to_string()).collect(),
        Data::I32(v) => v.iter().map(|&x| format!("(int32_t){x}LL")).collect(),
        Data::I64(v) => v.iter().map(|&x| if x == i64::MIN { "INT64_MIN".into() } else { format!("{x}LL") }).collect(),
    };
    if items.is_empty() {
        "{0}".into()
    } else {
        format!("{{{}}}", items.join(", "))
    }
}

/// Generates C for the library's loops: the fused-step functions (shared by identical loop
/// shapes, as in `native::source`) and one function per loop.
struct Gen {
    src: String,
    /// Fused-step functions by program key.
    kernels: HashMap<String, Option<String>>,
    /// Sub-plans generated so far (each gets its own names).
    subs: usize,
    /// Nested loop functions generated so far.
    nested: usize,
    /// The float constants of the loops generated so far, in the order their functions read
    /// them: passed at run time (see [`parameter`]), not written into the source.
    params: Vec<Arc<Array>>,
    /// Where the current top-level loop's constants start in `params` (its `kt[0]`).
    params_base: usize,
}

/// Whether a constant of a loop's sub-plans is passed to the loop's function at run time (a
/// pointer after the scan length in its arguments, `kt[j]`), rather than written into the
/// source as a static array: float constants are. Their values are often computed from
/// the inputs (GradBench ode's step size `2/s`), and as parameters one library serves every
/// such value: a plan of the same program with other constants writes the same source and
/// finds the library already built. Integer and boolean constants (counters, bounds, masks:
/// part of the loop's structure, and worth folding into index arithmetic) stay literal.
/// Per element the values cost what literals do (a register, loaded once per call of a
/// step), except where the C compiler folds a literal: the one fold that matters, a division
/// by a power of two, is made explicit instead (see [`divisions_by_powers_of_two`]).
fn parameter(a: &Array) -> bool {
    a.data.dtype().is_float()
}

/// Whether `a` is one float element whose reciprocal is exact (a normal power of two): then
/// `x / a` and `x * (1 / a)` have the same bits for every `x` (the interpreter's rule,
/// [`fused::exact_reciprocal_f64`], which computes such divisions so).
fn exact_reciprocal(a: &Array) -> Option<Array> {
    match &a.data {
        Data::F64(v) if v.len() == 1 => {
            fused::exact_reciprocal_f64(v[0]).map(|r| Array::from_vec(vec![r], a.shape.clone()))
        }
        Data::F32(v) if v.len() == 1 => {
            fused::exact_reciprocal_f32(v[0]).map(|r| Array::from_vec(vec![r], a.shape.clone()))
        }
        _ => None,
    }
}

/// `prog` (reading slots `ins`) with each division by a one-element float constant that is a
/// normal power of two turned into a multiplication by its reciprocal, read as an extra
/// input (appended to the returned inputs; `recip` gives the slot of that reciprocal for the
/// constant's slot). Same bits (see [`exact_reciprocal`]); a literal divisor was folded so
/// by the C compiler, and a divisor passed as a parameter (see [`parameter`]) would cost a
/// vector division per element. Other programs come back unchanged.
fn divisions_by_powers_of_two(
    prog: &Program,
    ins: &[usize],
    constant: &dyn Fn(usize) -> Option<Arc<Array>>,
    recip: &mut dyn FnMut(usize, Array) -> usize,
) -> (Program, Vec<usize>) {
    use crate::backend::cpu::fused::{Instr, LoadKind};
    use crate::ops::BinaryOp;
    // Registers loading such a divisor, and the reciprocal's slot.
    let mut divisor: HashMap<usize, usize> = HashMap::new();
    for ins_ in &prog.instrs {
        if let Instr::Binary(BinaryOp::Div, _, b) = *ins_ {
            if divisor.contains_key(&b) {
                continue;
            }
            if let Instr::Load { input, kind } = &prog.instrs[b] {
                if matches!(kind, LoadKind::Padded { .. }) {
                    continue;
                }
                if let Some(r) = constant(ins[*input]).and_then(|c| exact_reciprocal(&c)) {
                    let slot = ins[*input];
                    divisor.insert(b, recip(slot, r));
                }
            }
        }
    }
    if divisor.is_empty() {
        return (prog.clone(), ins.to_vec());
    }
    let mut ins = ins.to_vec();
    let mut map = vec![0usize; prog.instrs.len()];
    let mut recip_reg: HashMap<usize, usize> = HashMap::new();
    let (mut instrs, mut dtypes) = (Vec::new(), Vec::new());
    for (i, instr) in prog.instrs.iter().enumerate() {
        let m = |r: usize| map[r];
        let new = match instr {
            Instr::Load { .. } => instr.clone(),
            Instr::Unary(op, a) => Instr::Unary(*op, m(*a)),
            Instr::Binary(BinaryOp::Div, a, b) if recip_reg.contains_key(b) => {
                Instr::Binary(BinaryOp::Mul, m(*a), recip_reg[b])
            }
            Instr::Binary(op, a, b) => Instr::Binary(*op, m(*a), m(*b)),
            Instr::Select(p, a, b) => Instr::Select(m(*p), m(*a), m(*b)),
            Instr::Convert(d, a) => Instr::Convert(*d, m(*a)),
            Instr::Mask { value, valid, fill } => Instr::Mask { value: m(*value), valid: valid.clone(), fill: *fill },
        };
        map[i] = instrs.len();
        instrs.push(new);
        dtypes.push(prog.dtypes[i]);
        if let (Some(&slot), Instr::Load { kind, .. }) = (divisor.get(&i), instr) {
            recip_reg.insert(i, instrs.len());
            instrs.push(Instr::Load { input: ins.len(), kind: kind.clone() });
            dtypes.push(prog.dtypes[i]);
            ins.push(slot);
        }
    }
    let outputs = prog.outputs.iter().map(|&r| map[r]).collect();
    (Program { shape: prog.shape.clone(), instrs, dtypes, outputs, reduce: prog.reduce }, ins)
}

/// Where a slot's elements are, as a C expression of type `T*` (or `const T*`).
type Slots = HashMap<usize, String>;

impl Gen {
    fn kernel_for(&mut self, prog: &Program) -> Option<(String, Vec<i64>)> {
        let (shape, params) = codegen::parameters(prog);
        let key = format!("{shape:?}");
        let count = self.kernels.len();
        let src = &mut self.src;
        let name = self
            .kernels
            .entry(key)
            .or_insert_with(|| {
                let name = format!("ct_lk{count}");
                codegen::kernel_with_ints(&shape, &[], &name).map(|s| {
                    // Inlined where called, with its parameters (a static array of constants,
                    // see `flat`), the sizes fold back into constants: the loop's steps
                    // run a few elements each, where the generic kernel's per-call work shows.
                    let entry = format!("int32_t {name}(");
                    src.push_str(&s.replace(&entry, &format!("CT_INLINE {entry}")));
                    name
                })
            })
            .clone()?;
        Some((name, params))
    }

    /// Statements running flat sub-plan `sub` (index `si` in loop `li`) with its inputs at
    /// `inputs`; declares its buffers into `decls`. Returns the statements and the C pointers
    /// of its outputs.
    fn sub(
        &mut self,
        li: usize,
        sub: &FlatPlan,
        inputs: &[String],
        decls: &mut String,
        bytes: &mut usize,
    ) -> Option<(String, Vec<String>)> {
        let si = self.subs;
        self.subs += 1;
        let mut at: Slots = HashMap::new();
        for (&s, p) in sub.inputs.iter().zip(inputs) {
            at.insert(s, p.clone());
        }
        for (s, a) in &sub.constants {
            let t = codegen::ctype_any(a.data.dtype());
            let name = format!("k{li}_{si}_{s}");
            if parameter(a) {
                let j = self.params.len() - self.params_base;
                self.params.push(a.clone());
                let _ = writeln!(decls, "    const {t}* const {name} = (const {t}*)kt[{j}];");
            } else {
                let _ = writeln!(decls, "    static const {t} {name}[] = {};", initialiser(a));
            }
            at.insert(*s, name.to_string());
        }
        let mut code = String::new();
        for (j, step) in sub.steps.iter().enumerate() {
            match step {
                FlatStep::Alias { from, to } => {
                    let p = at.get(from)?.clone();
                    at.insert(*to, p);
                }
                FlatStep::Cond { index, ins, outs, results, branches } => {
                    let idx = at.get(index)?.clone();
                    let args: Vec<String> = ins.iter().map(|s| at.get(s).cloned()).collect::<Option<_>>()?;
                    let n = branches.len();
                    let mut bufs = Vec::new();
                    for &(k, o) in outs {
                        let (d, m) = results[k];
                        *bytes += size_of(d) * m.max(1);
                        let b = format!("b{li}_{si}_{o}");
                        let _ = writeln!(decls, "    {} {b}[{}];", codegen::ctype_any(d), m.max(1));
                        bufs.push((k, b.clone(), size_of(d) * m));
                        at.insert(o, b);
                    }
                    // The index as an integer of its own dtype (i32 or i64), clamped.
                    let _ = writeln!(
                        code,
                        "        {{ int64_t ci = (int64_t)*{idx}; if (ci < 0) ci = 0; if (ci > {}) ci = {};",
                        n - 1,
                        n - 1
                    );
                    for (bi, branch) in branches.iter().enumerate() {
                        let (body, bouts) = self.sub(li, branch, &args, decls, bytes)?;
                        let _ = writeln!(code, "        {}if (ci == {bi}) {{", if bi > 0 { "else " } else { "" });
                        code.push_str(&body);
                        for (k, b, size) in &bufs {
                            let _ = writeln!(code, "        memcpy({b}, {}, {size});", bouts[*k]);
                        }
                        let _ = writeln!(code, "        }}");
                    }
                    let _ = writeln!(code, "        }}");
                }
                FlatStep::Loop { spec, ins, outs } => {
                    let name = format!("ct_nest{}", self.nested);
                    self.nested += 1;
                    let f = self.looped(&name, li, spec)?;
                    self.src.push_str(&f);
                    let args: Vec<String> =
                        ins.iter().map(|s| at.get(s).map(|p| format!("(const void*){p}"))).collect::<Option<_>>()?;
                    let mut bufs = Vec::new();
                    for (k, (d, shape)) in spec.results.iter().enumerate() {
                        let m = numel(shape);
                        *bytes += size_of(*d) * m.max(1);
                        let b = format!("b{li}_{si}_r{j}_{k}");
                        let _ = writeln!(decls, "    {} {b}[{}];", codegen::ctype_any(*d), m.max(1));
                        bufs.push(format!("(void*){b}"));
                        for &(_, o) in outs.iter().filter(|(kk, _)| *kk == k) {
                            at.insert(o, b.clone());
                        }
                    }
                    let _ = writeln!(
                        code,
                        "        {{ const void* a_[] = {{{}}}; void* r_[] = {{{}}}; {name}(a_, r_, cb, kt); }}",
                        if args.is_empty() { "0".into() } else { args.join(", ") },
                        if bufs.is_empty() { "0".into() } else { bufs.join(", ") }
                    );
                }
                FlatStep::Reduce { op, axes, shape, dtype, input, out } => {
                    if !dtype.is_float() || !axes.windows(2).all(|w| w[0] < w[1]) {
                        return None;
                    }
                    let total = numel(shape);
                    if total > MAX_REDUCE_ELEMENTS {
                        return None;
                    }
                    let kept: Vec<usize> = (0..shape.len()).filter(|a| !axes.contains(a)).collect();
                    let strides = crate::shape::strides(shape);
                    let (outer, row): (usize, usize) =
                        (kept.iter().map(|&a| shape[a]).product(), axes.iter().map(|&a| shape[a]).product());
                    // Input offsets in fold order: per result, its elements.
                    let offset = |axes: &[usize], mut i: usize| -> usize {
                        let mut at = 0;
                        for &a in axes.iter().rev() {
                            at += (i % shape[a]) * strides[a];
                            i /= shape[a];
                        }
                        at
                    };
                    let table: Vec<String> = (0..outer)
                        .flat_map(|o| (0..row).map(move |r| (o, r)))
                        .map(|(o, r)| (offset(&kept, o) + offset(axes, r)).to_string())
                        .collect();
                    let t = codegen::ctype_any(*dtype);
                    let x = at.get(input)?.clone();
                    let b = format!("b{li}_{si}_{out}");
                    let tn = format!("x{li}_{si}_{j}");
                    *bytes += size_of(*dtype) * outer.max(1);
                    let _ = writeln!(decls, "    {t} {b}[{}];", outer.max(1));
                    let _ = writeln!(
                        decls,
                        "    static const int32_t {tn}[] = {{{}}};",
                        if table.is_empty() { "0".into() } else { table.join(", ") }
                    );
                    let (id, comb) = combine(*op, "acc", &format!("{x}[{tn}[o * {row} + r]]"));
                    let _ = writeln!(
                        code,
                        "        for (int64_t o = 0; o < {outer}; o++) {{ {t} acc = {id}; for (int64_t r = 0; r < {row}; r++) acc = {comb}; {b}[o] = acc; }}"
                    );
                    at.insert(*out, b);
                }
                FlatStep::Fused { prog, ins, outs } => {
                    let constant = |slot: usize| sub.constants.iter().find(|(s, _)| *s == slot).map(|(_, a)| a.clone());
                    let mut recips: Vec<(usize, Array)> = Vec::new();
                    let base = self.params.len() - self.params_base;
                    let mut recip = |_slot: usize, r: Array| {
                        recips.push((usize::MAX - base - recips.len(), r));
                        recips.last().expect("pushed").0
                    };
                    let (prog, ins) = divisions_by_powers_of_two(prog, ins, &constant, &mut recip);
                    let (prog, ins) = (&prog, &ins);
                    for (slot, r) in recips {
                        let t = codegen::ctype_any(r.data.dtype());
                        let j = self.params.len() - self.params_base;
                        self.params.push(Arc::new(r));
                        let name = format!("kr{li}_{si}_{j}");
                        let _ = writeln!(decls, "    const {t}* const {name} = (const {t}*)kt[{j}];");
                        at.insert(slot, name);
                    }
                    let (name, params) = self.kernel_for(prog)?;
                    let n = numel(&prog.shape);
                    let mut outp = Vec::new();
                    let reduced = match prog.reduce {
                        Some((op, axes)) => {
                            let d = prog.dtypes[prog.outputs[0]];
                            if !d.is_float() || outs.len() != 1 {
                                return None;
                            }
                            let row = numel(&prog.shape[prog.shape.len() - axes..]);
                            Some((op, row, d))
                        }
                        None => None,
                    };
                    for (k, &o) in outs.iter().enumerate() {
                        let d = prog.dtypes[prog.outputs[k]];
                        *bytes += size_of(d) * n.max(1);
                        // A reduced step's loop writes its elements into `e`, reduced into `b`.
                        let b = format!("{}{li}_{si}_{o}", if reduced.is_some() { "e" } else { "b" });
                        let _ = writeln!(decls, "    {} {b}[{}];", codegen::ctype_any(d), n.max(1));
                        if reduced.is_none() {
                            at.insert(o, b.clone());
                        }
                        outp.push(b);
                    }
                    let inp: Vec<String> =
                        ins.iter().map(|s| at.get(s).map(|p| format!("(const void*){p}"))).collect::<Option<_>>()?;
                    let prm: Vec<String> = params.iter().map(|p| p.to_string()).collect();
                    let pn = format!("p{li}_{si}_{j}");
                    let _ = writeln!(
                        decls,
                        "    static const int64_t {pn}[] = {{{}}};",
                        if prm.is_empty() { "0".into() } else { prm.join(", ") }
                    );
                    let _ = writeln!(
                        code,
                        "        {{ const void* i_[] = {{{}}}; void* o_[] = {{{}}}; {name}(i_, o_, 0, {n}, cb, {pn}); }}",
                        if inp.is_empty() { "0".into() } else { inp.join(", ") },
                        outp.iter().map(|b| format!("(void*){b}")).collect::<Vec<_>>().join(", ")
                    );
                    if let Some((op, row, d)) = reduced {
                        // `fused::run_reduce` on one thread: per row, blocks of `BLOCK` in
                        // order, each folded in 8 interleaved lanes combined at the end, then the
                        // remainder; the blocks' results combined in order (in f32 for f32).
                        let t = codegen::ctype_any(d);
                        let rows = n.checked_div(row).unwrap_or(0);
                        let (id, lane) = combine(op, "ln[k]", "v[i + k]");
                        let (_, acc) = combine(op, "part", "ln[k]");
                        let (_, tail) = combine(op, "part", "v[i]");
                        let (_, join) = combine(op, "acc", "part");
                        let e = &outp[0];
                        let b = format!("b{li}_{si}_{}", outs[0]);
                        *bytes += size_of(d) * rows.max(1);
                        let _ = writeln!(decls, "    {t} {b}[{}];", rows.max(1));
                        let _ = writeln!(
                            code,
                            "        for (int64_t o = 0; o < {rows}; o++) {{\n\
                             \x20           {t} acc = {id}; int have = 0;\n\
                             \x20           for (int64_t s = 0; s < {row}; s += {BLOCK}) {{\n\
                             \x20               const {t}* v = {e} + o * {row} + s; const int64_t m = {row} - s < {BLOCK} ? {row} - s : {BLOCK};\n\
                             \x20               {t} ln[8]; for (int k = 0; k < 8; k++) ln[k] = {id};\n\
                             \x20               int64_t i = 0;\n\
                             \x20               for (; i + 8 <= m; i += 8) for (int k = 0; k < 8; k++) ln[k] = {lane};\n\
                             \x20               {t} part = {id};\n\
                             \x20               for (int k = 0; k < 8; k++) part = {acc};\n\
                             \x20               for (; i < m; i++) part = {tail};\n\
                             \x20               acc = have ? {join} : part; have = 1;\n\
                             \x20           }}\n\
                             \x20           {b}[o] = acc;\n\
                             \x20       }}"
                        );
                        at.insert(outs[0], b);
                    }
                }
            }
        }
        let outs: Vec<String> = sub.outputs.iter().map(|s| at.get(s).cloned()).collect::<Option<_>>()?;
        Some((code, outs))
    }

    /// The C function `ct_loop{li}` for `spec`, or `None` if something in it is not supported.
    /// Signature: `int32_t f(const void* const* args, void* const* outs, const ct_callbacks* cb)`;
    /// a top-level scan's `args` end with a pointer to its length (an `int64_t`).
    fn looped(&mut self, name: &str, li: usize, spec: &LoopSpec) -> Option<String> {
        let nested = name.starts_with("ct_nest");
        // The constants passed at run time (see `parameter`): after the operands and the
        // length in a top-level loop's arguments, handed on to the nested loops' functions.
        let mut decls = if nested {
            String::new()
        } else {
            format!("    const void* const* kt = args + {};\n    (void)kt;\n", spec.operands.len() + 1)
        };
        let mut bytes = 0usize;
        let t = |d: DType| codegen::ctype_any(d);
        let (consts, carries) = match spec.kind {
            LoopKind::While { consts } => (consts, spec.operands.len() - consts),
            LoopKind::Scan { consts, carries, .. } => (consts, carries),
        };
        // Carries live in stack arrays `st`, with `nx` for the updates that read carries.
        let mut operands: Vec<String> = Vec::new();
        for (i, &(d, _)) in spec.operands[..consts].iter().enumerate() {
            operands.push(format!("(({} const*)args[{i}])", t(d)));
        }
        let mut copy_in = String::new();
        for k in 0..carries {
            let (d, n) = spec.operands[consts + k];
            bytes += 2 * size_of(d) * n.max(1);
            let _ = writeln!(decls, "    {} st{k}[{}], nx{k}[{}];", t(d), n.max(1), n.max(1));
            let _ = writeln!(copy_in, "    memcpy(st{k}, args[{}], {});", consts + k, size_of(d) * n);
            operands.push(format!("st{k}"));
        }
        // The carries' update: results held in buffers of the body go straight into the carries,
        // results that are operands (a carry passed on, maybe to another carry) go through `nx`
        // first, so that no carry is overwritten before it is read.
        let update = |outs: &[String], body: &FlatPlan| -> String {
            let mut first = String::new();
            let mut then = String::new();
            for (k, p) in outs.iter().enumerate().take(carries) {
                let (d, n) = spec.operands[consts + k];
                let bytes = size_of(d) * n;
                if p.starts_with('b') {
                    let _ = writeln!(then, "        memcpy(st{k}, {p}, {bytes});");
                } else {
                    let _ = writeln!(first, "        memcpy(nx{k}, {p}, {bytes});");
                    let _ = writeln!(then, "        memcpy(st{k}, nx{k}, {bytes});");
                }
            }
            let _ = body;
            first + &then
        };
        let mut copy_out = String::new();
        for k in 0..carries {
            let (d, n) = (spec.results[k].0, numel(&spec.results[k].1));
            let _ = writeln!(copy_out, "    memcpy(outs[{k}], st{k}, {});", size_of(d) * n);
        }
        let looped = match spec.kind {
            LoopKind::While { .. } => {
                let (cond, pred) = self.sub(li, &spec.subs[0], &operands, &mut decls, &mut bytes)?;
                let (body, outs) = self.sub(li, &spec.subs[1], &operands, &mut decls, &mut bytes)?;
                format!(
                    "    for (;;) {{\n{cond}        if (!*(const u8*){}) break;\n{body}{}    }}\n",
                    pred[0],
                    update(&outs, &spec.subs[1])
                )
            }
            LoopKind::Scan { length, reverse, .. } => {
                let xs = spec.operands.len() - consts - carries;
                let mut ops = operands.clone();
                for x in 0..xs {
                    let (d, n) = spec.operands[consts + carries + x];
                    let row = n.checked_div(length).unwrap_or(0);
                    ops.push(format!("(({} const*)args[{}] + i * {row})", t(d), consts + carries + x));
                }
                let (body, outs) = self.sub(li, &spec.subs[0], &ops, &mut decls, &mut bytes)?;
                let mut ys = String::new();
                for (y, p) in outs[carries..].iter().enumerate() {
                    let (d, n) = (spec.results[carries + y].0, numel(&spec.results[carries + y].1));
                    let row = n.checked_div(length).unwrap_or(0);
                    let _ = writeln!(
                        ys,
                        "        memcpy(({}*)outs[{}] + i * {row}, {p}, {});",
                        t(d),
                        carries + y,
                        size_of(d) * row
                    );
                }
                // A loop's own length is an argument (after its operands), so that one library
                // serves the same scan at every length (GradBench lstm's sequence lengths);
                // a nested loop's, fixed by the body, stays a constant.
                let n = if name.starts_with("ct_nest") {
                    length.to_string()
                } else {
                    format!("(*(const int64_t*)args[{}])", spec.operands.len())
                };
                let i = if reverse { "n_ - 1 - step".to_string() } else { "step".into() };
                format!(
                    "    const int64_t n_ = {n};\n    for (int64_t step = 0; step < n_; step++) {{\n        const int64_t i = {i}; (void)i;\n{body}{ys}{}    }}\n",
                    update(&outs, &spec.subs[0])
                )
            }
        };
        if bytes > MAX_LOCAL_BYTES {
            return None;
        }
        Some(format!(
            "{}int32_t {name}(const void* const* args, void* const* outs, const ct_callbacks* cb{}) {{\n    (void)cb;\n{decls}{copy_in}{looped}{copy_out}    return 0;\n}}\n",
            if nested { "static " } else { "" },
            if nested { ", const void* const* kt" } else { "" }
        ))
    }
}

/// The float constants a loop's function is passed at run time, in order (see [`parameter`]).
type Constants = Vec<Arc<Array>>;

/// The C source of the library for `specs`, and per loop the index of its function and the
/// constants it is passed at run time (`None` where the loop is not supported).
fn source(specs: &[LoopSpec]) -> (String, Vec<Option<(usize, Constants)>>) {
    let mut gen = Gen {
        src: String::from(include_str!("prelude.c")),
        kernels: HashMap::new(),
        subs: 0,
        nested: 0,
        params: Vec::new(),
        params_base: 0,
    };
    gen.src.push_str(NOINLINE);
    let mut names = Vec::new();
    let mut loops = String::new();
    for (li, spec) in specs.iter().enumerate() {
        gen.params_base = gen.params.len();
        match gen.looped(&format!("ct_loop{li}"), li, spec) {
            Some(f) => {
                loops.push_str(&f);
                names.push(Some((li, gen.params[gen.params_base..].to_vec())));
            }
            None => names.push(None),
        }
    }
    gen.src.push_str(&loops);
    (gen.src, names)
}

/// Each loop's own C source (its library's) and the constants its function is passed, or
/// `None` where the loop is not supported: a plan's loops are compiled one library per
/// distinct loop, so that a loop shared by plans (every layer of a stacked recurrence, at
/// every depth and length, with any values of its float constants) is compiled once and found
/// in the cache by every plan that has it.
fn sources(specs: &[LoopSpec]) -> Vec<Option<(String, Vec<Arc<Array>>)>> {
    specs
        .iter()
        .map(|spec| {
            let (src, mut names) = source(std::slice::from_ref(spec));
            names.pop().flatten().map(|(_, consts)| (src, consts))
        })
        .collect()
}

/// What compiling `specs` costs now: `None` if nothing would be compiled, zero if cached.
pub(crate) fn build_cost(specs: &[LoopSpec]) -> Option<Duration> {
    if specs.is_empty() || native_mode() == NativeMode::Off || BROKEN.load(Ordering::Relaxed) {
        return None;
    }
    let mut distinct: Vec<String> = sources(specs).into_iter().flatten().map(|(src, _)| src).collect();
    if distinct.is_empty() {
        return None;
    }
    distinct.sort_unstable();
    distinct.dedup();
    let bytes: usize = distinct.iter().filter(|src| !toolchain::is_cached(src)).map(String::len).sum();
    Some(Duration::from_nanos(bytes as u64 * super::COMPILE_NS_PER_KIB.load(Ordering::Relaxed) / 1024))
}

type LoopFn = unsafe extern "C" fn(*const *const c_void, *const *mut c_void, *const Callbacks) -> i32;

/// A compiled whole loop.
pub(crate) struct LoopKernel {
    func: LoopFn,
    name: String,
    /// `(dtype, elements)` of each operand and result: `run` checks its arguments against them.
    operands: Vec<(DType, usize)>,
    results: Vec<(DType, Vec<usize>)>,
    /// A scan's length, passed after the operands (the source does not fix it).
    length: i64,
    /// The float constants of its sub-plans, passed after the length (see [`parameter`]).
    consts: Vec<Arc<Array>>,
    _lib: Arc<libloading::Library>,
}

impl std::fmt::Debug for LoopKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LoopKernel({})", self.name)
    }
}

fn data_ptr(d: &Data) -> *const c_void {
    crate::with_data!(d, v => v.as_ptr() as *const c_void)
}

fn data_ptr_mut(d: &mut Data) -> *mut c_void {
    match d {
        Data::F32(v) => v.as_mut_ptr() as *mut c_void,
        Data::F64(v) => v.as_mut_ptr() as *mut c_void,
        Data::I32(v) => v.as_mut_ptr() as *mut c_void,
        Data::I64(v) => v.as_mut_ptr() as *mut c_void,
        Data::Bool(v) => v.as_mut_ptr() as *mut c_void,
    }
}

impl LoopKernel {
    /// Runs the loop on `args` (the primitive's operands), its results' storage from `buffer`.
    ///
    /// # Panics
    /// If the arguments' dtypes or sizes are not those the loop was compiled for (the plan
    /// checks its inputs, so this cannot happen through it).
    pub(crate) fn run(&self, args: &[&Array], buffer: &mut dyn FnMut(DType, usize) -> Data) -> Vec<Array> {
        assert!(
            args.len() == self.operands.len()
                && args.iter().zip(&self.operands).all(|(a, &(d, n))| a.data.dtype() == d && a.data.len() == n),
            "whole loop {}: operands differ from those it was compiled for",
            self.name
        );
        let mut ins: Vec<*const c_void> = args.iter().map(|a| data_ptr(&a.data)).collect();
        ins.push(&self.length as *const i64 as *const c_void);
        ins.extend(self.consts.iter().map(|c| data_ptr(&c.data)));
        let mut outs: Vec<Data> = self.results.iter().map(|(d, s)| buffer(*d, numel(s))).collect();
        let ptrs: Vec<*mut c_void> = outs.iter_mut().map(data_ptr_mut).collect();
        // SAFETY: `func` is a `ct_loop` function generated by `Gen::looped` for operands and
        // results of exactly these dtypes and sizes, a scan's length (`self.length`, which
        // `ins` has a pointer to after the operands, alive for the call) being the one the
        // results' and `xs`' sizes were made for, and after it one pointer per constant the
        // function reads (`self.consts`, in the order and of the dtypes and sizes `Gen`
        // generated it for: `compile` takes them from the same `sources` call as the
        // library's source, and they live in `self`) (checked above for the operands; the
        // result buffers come from `buffer` with the sizes given); it reads each operand's
        // elements, writes every element of each result (the final carries, and all rows of
        // the stacked `ys`) through `ptrs`, which point to distinct buffers nothing else
        // accesses during the call, and touches nothing else but its own stack arrays. The
        // library stays mapped while `self._lib` lives; `CALLBACKS` has the prelude's layout.
        unsafe { (self.func)(ins.as_ptr(), ptrs.as_ptr(), &CALLBACKS) };
        outs.into_iter().zip(&self.results).map(|(d, (_, s))| Array::new(s.clone(), d)).collect()
    }
}

/// A loop of an interpreted plan compiled whole in the background once one of its runs has
/// taken enough steps ([`NativeMode::Auto`]): the plan runs the loop interpreted until the
/// kernel is there, then natively from the next run of the loop on (a loop nested in
/// another switches between two iterations of the outer one). Both give the same bits.
#[derive(Debug, Default)]
pub(crate) struct Lazy {
    started: std::sync::atomic::AtomicBool,
    kernel: Arc<std::sync::OnceLock<Option<Arc<LoopKernel>>>>,
    /// A scan's description and library source, made at its first run (see
    /// [`Lazy::before_run`]); `None` for a loop that cannot run whole.
    pending: std::sync::OnceLock<Option<(LoopSpec, String)>>,
    /// When the cache was last looked at for it (µs since [`epoch_us`]'s start, plus one;
    /// zero: never): a loop run over and over (nested in another) looks at most every
    /// [`LOOK_EVERY_US`].
    looked: std::sync::atomic::AtomicU64,
    /// Sub-plan step runs of its interpreted runs so far (see [`AUTO_MIN_TOTAL_STEP_RUNS`]).
    total: std::sync::atomic::AtomicU64,
}

/// How often an interpreted loop waiting for its library looks in the cache (µs).
const LOOK_EVERY_US: u64 = 2000;

/// Microseconds since the first call (a monotonic clock for [`Lazy::looked`]).
fn epoch_us() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_micros() as u64
}

impl Lazy {
    /// The kernel, once compiled.
    pub(crate) fn get(&self) -> Option<&Arc<LoopKernel>> {
        self.kernel.get().and_then(Option::as_ref)
    }

    /// Before an interpreted run of a loop expected to take `step_runs` sub-plan steps (a
    /// scan's, known beforehand): in [`NativeMode::Auto`], once the compiler has answered
    /// the background probe and if that is enough work, loads the loop's library as soon as
    /// it is in the cache (checked before a run until then, at most every 2 ms: a look-up of
    /// its name; a cached library loads in well under a millisecond, and the run then is
    /// native), and
    /// queues its compile at the first run (once), before the run rather than after. The
    /// library may appear meanwhile by another plan's compile of the same loop (another
    /// layer, depth or length) even while this plan's own compile waits in the queue.
    pub(crate) fn before_run(&self, step_runs: u64, spec: impl FnOnce() -> Option<LoopSpec>) {
        if self.get().is_some()
            || native_mode() != NativeMode::Auto
            || !super::toolchain_probed()
            || !self.worth_compiling(step_runs)
        {
            return;
        }
        let pending = self.pending.get_or_init(|| {
            let spec = spec()?;
            let (src, _) = sources(std::slice::from_ref(&spec)).pop().flatten()?;
            Some((spec, src))
        });
        let Some((spec, src)) = pending else { return };
        let (now, last) = (epoch_us() + 1, self.looked.load(Ordering::Relaxed));
        if last != 0 && now < last + LOOK_EVERY_US {
            return;
        }
        self.looked.store(now, Ordering::Relaxed);
        if toolchain::is_cached(src) {
            let kernel = super::cached_only(|| compile(std::slice::from_ref(spec))).pop().flatten();
            if kernel.is_some() {
                let _ = self.kernel.set(kernel);
                return;
            }
        }
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let (slot, spec) = (self.kernel.clone(), spec.clone());
        super::spawn_whole_loop(move || {
            let kernel = super::with_native_mode(NativeMode::Auto, || compile(std::slice::from_ref(&spec)));
            let _ = slot.set(kernel.into_iter().next().flatten());
        });
    }

    /// Whether a run of `step_runs` sub-plan steps is enough work to compile the loop whole,
    /// or the loop's interpreted runs so far have been (in [`NativeMode::Auto`]).
    fn worth_compiling(&self, step_runs: u64) -> bool {
        worth_compiling(step_runs)
            || (self.total.load(Ordering::Relaxed) >= AUTO_MIN_TOTAL_STEP_RUNS
                // (Never waits here for the compiler's probe: a later run decides.)
                && super::toolchain_probed()
                && worth_compiling(u64::MAX))
    }

    /// After an interpreted run of the loop that took `step_runs` sub-plan steps: in
    /// [`NativeMode::Auto`], if that is enough (this run's, or all its runs' so far), queues
    /// the compile of `spec()` (once).
    pub(crate) fn ran(&self, step_runs: u64, spec: impl FnOnce() -> Option<LoopSpec>) {
        if native_mode() != NativeMode::Auto || self.started.load(Ordering::Relaxed) {
            return;
        }
        self.total.fetch_add(step_runs, Ordering::Relaxed);
        if !self.worth_compiling(step_runs) {
            return;
        }
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let Some(spec) = spec() else { return };
        let slot = self.kernel.clone();
        super::spawn_whole_loop(move || {
            let kernel = super::with_native_mode(NativeMode::Auto, || compile(std::slice::from_ref(&spec)));
            let _ = slot.set(kernel.into_iter().next().flatten());
        });
    }
}

/// Compiles `specs`, one library per distinct loop (see [`sources`]): a kernel for each
/// supported loop (`None` for the others, and for all of them when no compiler works).
pub(crate) fn compile(specs: &[LoopSpec]) -> Vec<Option<Arc<LoopKernel>>> {
    let mut kernels = vec![None; specs.len()];
    if specs.is_empty() || native_mode() == NativeMode::Off || BROKEN.load(Ordering::Relaxed) {
        return kernels;
    }
    let mut libs: HashMap<String, Option<Arc<libloading::Library>>> = HashMap::new();
    for (li, (spec, src)) in specs.iter().zip(sources(specs)).enumerate() {
        let Some((src, consts)) = src else { continue };
        let lib = match libs.get(&src) {
            Some(lib) => lib.clone(),
            None => {
                let lib = match super::load(&src) {
                    Ok(lib) => Some(Arc::new(lib)),
                    Err(failure) => {
                        if let Some(failure) = failure {
                            super::give_up(failure);
                            return kernels;
                        }
                        None
                    }
                };
                libs.insert(src, lib.clone());
                lib
            }
        };
        let Some(lib) = lib else { continue };
        let name = "ct_loop0";
        // SAFETY: `name` is the function that `Gen::looped` generated into this library's
        // source (the source of `spec` alone) with exactly the `LoopFn` signature (the library
        // is the one built from that source: its cache name hashes the source and its seal was
        // checked before loading). Calling it is `LoopKernel::run`'s business, and the kernel
        // keeps the library mapped.
        let func = unsafe { lib.get::<LoopFn>(name.as_bytes()) }.map(|s| *s);
        match func {
            Ok(func) => {
                kernels[li] = Some(Arc::new(LoopKernel {
                    func,
                    name: format!("{name} (loop {li})"),
                    operands: spec.operands.clone(),
                    results: spec.results.clone(),
                    length: match spec.kind {
                        LoopKind::Scan { length, .. } => length as i64,
                        LoopKind::While { .. } => 0,
                    },
                    consts,
                    _lib: lib.clone(),
                }))
            }
            Err(e) => eprintln!("cotangent: loop {name} missing from its library: {e}"),
        }
    }
    kernels
}
