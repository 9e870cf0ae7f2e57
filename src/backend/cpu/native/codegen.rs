//! C source for one fused loop.
//!
//! A kernel computes elements `[start, start + n)` of a [`Program`]'s outputs, writing
//! output `k`'s element `start + o` to `out[k][o]`. The source is generic in the sizes: the
//! *bases* of strided and padded loads (where a slice starts), the iteration shape, the
//! loads' outer strides and the valid ranges of padded loads and masks are read from the
//! kernel's parameter array `prm` (see [`parameters`]) once per call or per row, never per
//! element. What stays constant is what the vectoriser needs: the rank, the instructions,
//! and inner strides of 0 or ±1 (broadcast, contiguous or reversed rows; other inner strides
//! are parameters too). The C compiler still sees plain loops over affine indices, with the
//! bounds tests confined to the out-of-line edge segments.
//!
//! Two uses of that: an unrolled program reads the same loop at a different offset in every
//! step, and all those steps share one function (the source grows with the number of distinct
//! loop shapes, not with the unrolled program); and a program run at another size (GradBench
//! feeds each eval inputs of growing sizes, each to a fresh `jit`) has the same source, so
//! the library compiled for the first size — in this process or in the disk cache — serves
//! the later ones without another compile.
//!
//! Each operation is written so that it rounds exactly like the interpreter's Rust kernel (the same functions or bitwise-identical
//! ports of them, no contraction of `a * b + c`); operations without such a port call
//! back into Rust for every element.

use crate::backend::cpu::fused::{Instr, LoadKind, Program};
use crate::ops::{BinaryOp, UnaryOp};
use crate::DType;
use std::fmt::Write;

fn ctype(d: DType) -> Option<&'static str> {
    match d {
        DType::F32 => Some("float"),
        DType::F64 => Some("double"),
        DType::Bool => Some("u8"),
        DType::I32 | DType::I64 => None,
    }
}

/// The C type of `d` including the integers (whole loops only, see [`kernel_with_ints`]).
pub(super) fn ctype_any(d: DType) -> &'static str {
    match d {
        DType::I32 => "int32_t",
        DType::I64 => "int64_t",
        d => ctype(d).expect("float or bool"),
    }
}

fn is_int(d: DType) -> bool {
    matches!(d, DType::I32 | DType::I64)
}

/// The statement defining register `r` of integer dtype `d` (or an integer operation's
/// result) with the interpreter's semantics (`int_kernels!` in `elementwise.rs`): wrapping
/// arithmetic through the unsigned type, plain comparisons and bit operations. `None` for
/// what is not ported (division, remainder, powers, `abs`, `sign`, float-to-int conversion):
/// the loop then stays interpreted.
fn int_instr(ins: &Instr, dtypes: &[DType], r: &str) -> Option<String> {
    let d = |i: usize| dtypes[i];
    let u = |t: DType| if t == DType::I32 { "uint32_t" } else { "uint64_t" };
    match *ins {
        Instr::Unary(UnaryOp::Neg, a) => {
            let t = ctype_any(d(a));
            Some(format!("const {t} {r} = ({t})(({})0 - ({})r{a});", u(d(a)), u(d(a))))
        }
        Instr::Unary(UnaryOp::Not, a) => {
            let t = ctype_any(d(a));
            Some(format!("const {t} {r} = ({t})~r{a};"))
        }
        Instr::Unary(..) => None,
        Instr::Binary(op, a, b) => {
            let t = ctype_any(d(a));
            let ut = u(d(a));
            let e = match op {
                BinaryOp::Add => format!("({t})(({ut})r{a} + ({ut})r{b})"),
                BinaryOp::Sub => format!("({t})(({ut})r{a} - ({ut})r{b})"),
                BinaryOp::Mul => format!("({t})(({ut})r{a} * ({ut})r{b})"),
                BinaryOp::Max => format!("(r{a} > r{b} ? r{a} : r{b})"),
                BinaryOp::Min => format!("(r{a} < r{b} ? r{a} : r{b})"),
                BinaryOp::And => format!("({t})(r{a} & r{b})"),
                BinaryOp::Or => format!("({t})(r{a} | r{b})"),
                BinaryOp::Xor => format!("({t})(r{a} ^ r{b})"),
                BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                    return Some(format!("const u8 {r} = {};", binary(op, &format!("r{a}"), &format!("r{b}"), d(a))?))
                }
                _ => return None,
            };
            Some(format!("const {t} {r} = {e};"))
        }
        _ => None,
    }
}

/// A C literal of `v` converted to `d`, with the exact value of the Rust conversion.
pub(super) fn literal(v: f64, d: DType) -> String {
    let special = |nan: bool, inf: bool, neg: bool| match (nan, inf, neg) {
        (true, _, _) => Some("NAN"),
        (_, true, false) => Some("INFINITY"),
        (_, true, true) => Some("(-INFINITY)"),
        _ => None,
    };
    match d {
        DType::F32 => {
            let v = v as f32;
            match special(v.is_nan(), v.is_infinite(), v < 0.0) {
                Some(s) => s.to_string(),
                None => format!("{v:e}f"),
            }
        }
        DType::Bool => (if v != 0.0 { "1" } else { "0" }).to_string(),
        _ => match special(v.is_nan(), v.is_infinite(), v < 0.0) {
            Some(s) => s.to_string(),
            None => format!("{v:e}"),
        },
    }
}

/// Whether the program has a fast version valid for most arguments only: the f32 sine/cosine
/// port (small arguments) or the f64 exponential without its clamps (`ct_exp_f64_fast`,
/// |x| <= 708). The kernel then runs a vectorised fast pass that flags other arguments and,
/// if any, a second, exact pass (see `kernel_with_ints`).
pub(super) fn needs_exact_rerun(prog: &Program, live: &[bool]) -> bool {
    prog.instrs.iter().enumerate().any(|(i, ins)| {
        live[i]
            && match ins {
                Instr::Unary(UnaryOp::Sin | UnaryOp::Cos, _) => prog.dtypes[i] == DType::F32,
                Instr::Unary(UnaryOp::Exp, _) => prog.dtypes[i] == DType::F64,
                _ => false,
            }
    })
}

/// The expression of a unary operation on register `x` of float dtype `d`, or a full
/// statement defining `r` (for the sine/cosine port).
fn unary(op: UnaryOp, x: &str, d: DType, r: &str, src: DType) -> Option<String> {
    let f32 = d == DType::F32;
    let t = if f32 { "float" } else { "double" };
    let suffix = if f32 { "f" } else { "" };
    let bits = if f32 { "f32" } else { "f64" };
    let one = literal(1.0, d);
    let expr = match op {
        UnaryOp::Not => format!("(u8)({x} ^ 1)"),
        UnaryOp::IsFinite => {
            let fabs = if src == DType::F32 { "fabsf" } else { "fabs" };
            format!("(u8)({fabs}({x}) < INFINITY)")
        }
        UnaryOp::Neg => format!("-{x}"),
        // The fast pass's exponential and its flag (see `needs_exact_rerun`).
        UnaryOp::Exp if !f32 => {
            return Some(format!(
                "double {r}; if (exact) {r} = ct_exp_f64({x}); \
                 else {{ {r} = ct_exp_f64_fast({x}); slow |= !(fabs({x}) <= CT_EXP_F64_FAST); }}"
            ));
        }
        UnaryOp::Exp => format!("ct_exp_{bits}({x})"),
        UnaryOp::Tanh => format!("ct_tanh_{bits}({x})"),
        UnaryOp::Logistic => format!("ct_logistic_{bits}({x})"),
        UnaryOp::Log => format!("log{suffix}({x})"),
        UnaryOp::Log1p => format!("log1p{suffix}({x})"),
        UnaryOp::Expm1 => format!("expm1{suffix}({x})"),
        UnaryOp::Sqrt => format!("sqrt{suffix}({x})"),
        UnaryOp::Rsqrt => format!("{one} / sqrt{suffix}({x})"),
        UnaryOp::Reciprocal => format!("{one} / {x}"),
        UnaryOp::Abs => format!("fabs{suffix}({x})"),
        UnaryOp::Floor => format!("floor{suffix}({x})"),
        UnaryOp::Ceil => format!("ceil{suffix}({x})"),
        UnaryOp::Round => format!("nearbyint{suffix}({x})"),
        UnaryOp::Sign => {
            let sel = select_fn(d);
            format!("{sel}({x} > 0, {one}, {sel}({x} < 0, -{one}, {x}))")
        }
        UnaryOp::Sin | UnaryOp::Cos if !f32 => format!("{}({x})", if op == UnaryOp::Sin { "sin" } else { "cos" }),
        UnaryOp::Sin | UnaryOp::Cos => {
            let (cos, exact) = if op == UnaryOp::Sin { (0, "sinf") } else { (1, "cosf") };
            // Above this magnitude the port is not used (as in the Rust kernel).
            let limit = literal(crate::backend::cpu::math::SIN_F32_LIMIT as f64, DType::F32);
            return Some(format!(
                "float {r}; if (exact) {r} = fabsf({x}) <= {limit} ? ct_sin_cos_f32({x}, {cos}) : {exact}({x}); \
                 else {{ {r} = ct_sin_cos_f32({x}, {cos}); slow |= !(fabsf({x}) <= {limit}); }}"
            ));
        }
        // Ports of these would have to match Rust's own implementations (or the `libm`
        // crate's) bit for bit; they are rare in hot loops, so they call back.
        UnaryOp::Tan
        | UnaryOp::Asin
        | UnaryOp::Acos
        | UnaryOp::Atan
        | UnaryOp::Sinh
        | UnaryOp::Cosh
        | UnaryOp::Asinh
        | UnaryOp::Atanh
        | UnaryOp::Cbrt
        | UnaryOp::Erf
        | UnaryOp::Erfc
        | UnaryOp::ErfInv => {
            let code = UnaryOp::ALL.iter().position(|&o| o == op)?;
            format!("cb->un{}({code}, {x})", if f32 { 32 } else { 64 })
        }
    };
    let t = if matches!(op, UnaryOp::Not | UnaryOp::IsFinite) { "u8" } else { t };
    Some(format!("const {t} {r} = {expr};"))
}

/// `c ? a : b` for a condition `c` that is invariant in the loop (a bound's flag), without a
/// branch for floats (the bitwise select helper), so that the loop vectorises.
fn choose(c: &str, a: &str, b: &str, d: DType) -> String {
    if is_int(d) {
        format!("({c} ? {a} : {b})")
    } else {
        format!("{}({c}, {a}, {b})", select_fn(d))
    }
}

/// The name of the bitwise select helper for dtype `d` (see the prelude).
fn select_fn(d: DType) -> &'static str {
    match d {
        DType::F32 => "ct_sel_f32",
        DType::F64 => "ct_sel_f64",
        _ => "ct_sel_u8",
    }
}

fn binary(op: BinaryOp, a: &str, b: &str, operand: DType) -> Option<String> {
    let nan = literal(f64::NAN, operand);
    let sel = select_fn(operand);
    Some(match op {
        BinaryOp::Add => format!("{a} + {b}"),
        BinaryOp::Sub => format!("{a} - {b}"),
        BinaryOp::Mul => format!("{a} * {b}"),
        BinaryOp::Div => format!("{a} / {b}"),
        BinaryOp::Max => format!("{sel}({a} != {a} || {b} != {b}, {nan}, {sel}({a} > {b}, {a}, {b}))"),
        BinaryOp::Min => format!("{sel}({a} != {a} || {b} != {b}, {nan}, {sel}({a} < {b}, {a}, {b}))"),
        BinaryOp::Eq => format!("(u8)({a} == {b})"),
        BinaryOp::Ne => format!("(u8)({a} != {b})"),
        BinaryOp::Lt => format!("(u8)({a} < {b})"),
        BinaryOp::Le => format!("(u8)({a} <= {b})"),
        BinaryOp::Gt => format!("(u8)({a} > {b})"),
        BinaryOp::Ge => format!("(u8)({a} >= {b})"),
        BinaryOp::And => format!("(u8)({a} & {b})"),
        BinaryOp::Or => format!("(u8)({a} | {b})"),
        BinaryOp::Xor => format!("(u8)({a} ^ {b})"),
        BinaryOp::Rem | BinaryOp::Pow | BinaryOp::Atan2 => {
            let code = BinaryOp::ALL.iter().position(|&o| o == op)?;
            let bits = if operand == DType::F32 { 32 } else { 64 };
            format!("cb->bin{bits}({code}, {a}, {b})")
        }
    })
}

/// A load normalised to the kernel's rank (rank-0 programs run as rank 1).
struct View {
    strides: Vec<isize>,
    valid: Option<(Vec<(isize, isize)>, f64)>,
}

fn view_of(kind: &LoadKind, rank: usize) -> Option<View> {
    let pad = |s: &[isize]| if s.is_empty() { vec![0; rank] } else { s.to_vec() };
    match kind {
        LoadKind::Strided { strides, .. } => Some(View { strides: pad(strides), valid: None }),
        LoadKind::Padded { strides, valid, fill, .. } => {
            let valid = if valid.is_empty() { vec![(0, 1)] } else { valid.clone() };
            Some(View { strides: pad(strides), valid: Some((valid, *fill)) })
        }
        LoadKind::Contiguous | LoadKind::Scalar => None,
    }
}

/// Whether a load's innermost stride is a constant of the generated code (0, ±1: broadcast
/// and contiguous rows, which the C compiler vectorises) rather than a parameter.
fn constant_inner_stride(stride: isize) -> bool {
    (-1..=1).contains(&stride)
}

/// `prog` with everything that depends on the sizes it runs at set to zero: the base of every
/// strided or padded load, the iteration shape (its rank kept), the loads' outer strides and
/// inner strides other than 0 and ±1, and the bounds of padded loads and masks. That is what
/// the generated code depends on, so the key under which identical loops share a function;
/// and with it the kernel's parameter array `prm` for this program, in this order (the
/// generated code reads it in the same order, see [`kernel_with_ints`]):
/// 1. the base of each *live* strided or padded load, in instruction order;
/// 2. if the kernel walks rows (any live strided or padded load, or mask): the shape (rank
///    values; a rank-0 program runs as `[1]`);
/// 3. per live strided or padded load: its outer strides, then its inner stride if that is
///    not a constant (see `constant_inner_stride`);
/// 4. per distinct valid range of the live padded loads and masks (in order of first use):
///    `lo, hi` per axis.
///
/// So a program traced at another size (an input of another length, a loop of other
/// bounds) has the same key and runs the same C function, and the library compiled for one
/// size serves every size of that program.
pub(super) fn parameters(prog: &Program) -> (Program, Vec<i64>) {
    let merged = merge_repeats(prog);
    let prog = &merged;
    let live = prog.needed(&prog.outputs);
    let rank = prog.shape.len().max(1);
    let (mut bases, mut strides) = (Vec::new(), Vec::new());
    // Distinct valid ranges, in order of first use, and each live bound's among them.
    let mut ranges: Vec<Vec<(isize, isize)>> = Vec::new();
    let mut group = vec![None; prog.instrs.len()];
    let mut range_of = |i: usize, valid: &[(isize, isize)]| {
        let valid = if valid.is_empty() { vec![(0, 1)] } else { valid.to_vec() };
        group[i] = Some(ranges.iter().position(|r| *r == valid).unwrap_or_else(|| {
            ranges.push(valid);
            ranges.len() - 1
        }));
    };
    let mut rows = false;
    for (i, ins) in prog.instrs.iter().enumerate() {
        if !live[i] {
            continue;
        }
        match ins {
            Instr::Load { kind, .. } => {
                if let Some(v) = view_of(kind, rank) {
                    rows = true;
                    if let LoadKind::Strided { base, .. } | LoadKind::Padded { base, .. } = kind {
                        bases.push(*base as i64);
                    }
                    strides.extend(v.strides[..rank - 1].iter().map(|&s| s as i64));
                    if !constant_inner_stride(v.strides[rank - 1]) {
                        strides.push(v.strides[rank - 1] as i64);
                    }
                    if let Some((valid, _)) = v.valid {
                        range_of(i, &valid);
                    }
                }
            }
            Instr::Mask { valid, .. } => {
                rows = true;
                range_of(i, valid);
            }
            _ => {}
        }
    }
    let mut params = bases;
    if rows {
        let shape = if prog.shape.is_empty() { vec![1] } else { prog.shape.clone() };
        params.extend(shape.iter().map(|&d| d as i64));
    }
    params.extend(strides);
    params.extend(ranges.iter().flatten().flat_map(|&(lo, hi)| [lo as i64, hi as i64]));

    let mut key = prog.clone();
    key.shape = vec![0; prog.shape.len()];
    let generic_strides = |strides: &mut Vec<isize>| {
        let n = strides.len();
        for (d, s) in strides.iter_mut().enumerate() {
            if d + 1 < n || !constant_inner_stride(*s) {
                *s = 2 * (d + 1 == n) as isize;
            }
        }
    };
    // A bound's range is replaced by its group's number (bounds of equal ranges share one
    // test, as they would with constant ranges), or emptied if the instruction is dead.
    // A group whose range along the rows is a thin slice or nearly the whole row says so
    // (see `bulk_class`): the kernel gets a copy of its body for segments where those bounds
    // are as usual, with them as constants.
    let inner = prog.shape.last().copied().unwrap_or(1) as isize;
    let class: Vec<isize> = ranges.iter().map(|r| bulk_class(*r.last().expect("a range per axis"), inner)).collect();
    let numbered = |valid: &mut Vec<(isize, isize)>, g: Option<usize>| match g {
        Some(g) => {
            *valid = vec![(g as isize, g as isize); rank];
            if class[g] < 0 {
                valid[rank - 1].1 = class[g];
            }
        }
        None => valid.clear(),
    };
    for (i, ins) in key.instrs.iter_mut().enumerate() {
        match ins {
            Instr::Load { kind: LoadKind::Strided { base, strides }, .. } => {
                *base = 0;
                generic_strides(strides);
            }
            Instr::Load { kind: LoadKind::Padded { base, strides, valid, .. }, .. } => {
                *base = 0;
                generic_strides(strides);
                numbered(valid, group[i]);
            }
            Instr::Mask { valid, .. } => numbered(valid, group[i]),
            _ => {}
        }
    }
    (key, params)
}

/// `prog` with each instruction that repeats an earlier one (the same operation of the same
/// registers, or the same load: inlined producers read the same element through several
/// paths) replaced by that one in its readers and the outputs. The generated code cannot
/// see that two loads are one (their bases are parameters), so without this each would be
/// a pointer and a load of its own. Same values, so the same bits.
fn merge_repeats(prog: &Program) -> Program {
    let mut p = prog.clone();
    let mut first: std::collections::HashMap<(RepeatKey, DType), usize> = std::collections::HashMap::new();
    let mut canon: Vec<usize> = (0..p.instrs.len()).collect();
    for i in 0..p.instrs.len() {
        let c = |r: usize| canon[r];
        p.instrs[i] = match &p.instrs[i] {
            Instr::Unary(op, a) => Instr::Unary(*op, c(*a)),
            Instr::Binary(op, a, b) => Instr::Binary(*op, c(*a), c(*b)),
            Instr::Select(q, a, b) => Instr::Select(c(*q), c(*a), c(*b)),
            Instr::Convert(d, a) => Instr::Convert(*d, c(*a)),
            Instr::Mask { value, valid, fill } => Instr::Mask { value: c(*value), valid: valid.clone(), fill: *fill },
            load @ Instr::Load { .. } => load.clone(),
        };
        let key = (RepeatKey::of(&p.instrs[i]), p.dtypes[i]);
        match first.get(&key) {
            Some(&j) => canon[i] = j,
            None => {
                first.insert(key, i);
            }
        }
    }
    for o in &mut p.outputs {
        *o = canon[*o];
    }
    p
}

/// An instruction as a hashable value for [`merge_repeats`]: its operands and parameters,
/// with every float (a fill) by its bits, so -0 and 0 (and NaNs of other payloads) differ.
/// Cheap to build: no formatting, and the one allocation is a load's or mask's ranges.
#[derive(PartialEq, Eq, Hash)]
enum RepeatKey {
    Load { input: usize, kind: u8, base: isize, strides: Vec<isize>, valid: Vec<(isize, isize)>, fill: u64 },
    Unary(UnaryOp, usize),
    Binary(BinaryOp, usize, usize),
    Select(usize, usize, usize),
    Convert(DType, usize),
    Mask { value: usize, valid: Vec<(isize, isize)>, fill: u64 },
}

impl RepeatKey {
    fn of(instr: &Instr) -> RepeatKey {
        match instr {
            Instr::Load { input, kind } => {
                let (k, base, strides, valid, fill) = match kind {
                    LoadKind::Contiguous => (0, 0, Vec::new(), Vec::new(), 0),
                    LoadKind::Scalar => (1, 0, Vec::new(), Vec::new(), 0),
                    LoadKind::Strided { base, strides } => (2, *base, strides.clone(), Vec::new(), 0),
                    LoadKind::Padded { base, strides, valid, fill } => {
                        (3, *base, strides.clone(), valid.clone(), fill.to_bits())
                    }
                };
                RepeatKey::Load { input: *input, kind: k, base, strides, valid, fill }
            }
            Instr::Unary(op, a) => RepeatKey::Unary(*op, *a),
            Instr::Binary(op, a, b) => RepeatKey::Binary(*op, *a, *b),
            Instr::Select(q, a, b) => RepeatKey::Select(*q, *a, *b),
            Instr::Convert(d, a) => RepeatKey::Convert(*d, *a),
            Instr::Mask { value, valid, fill } => {
                RepeatKey::Mask { value: *value, valid: valid.clone(), fill: fill.to_bits() }
            }
        }
    }
}

/// How a bound's valid range `(lo, hi)` along rows of `inner` elements usually relates to
/// a segment, as a code in the kernel key (see `parameters`): `BULK_OUTSIDE` for a thin range
/// (at most `BULK_EDGE` elements: the head of a concatenate, `x[:1]`, read through a
/// padding), which most segments lie outside; `BULK_INSIDE` for one that leaves at most
/// `BULK_EDGE` elements out at each end of the row (`y[:-1]` shifted by one); its group number
/// (no class) otherwise. Depends on the sizes only for rows of fewer than about
/// `2·BULK_EDGE` elements, so the key (and the library) stays the same at every larger size.
fn bulk_class((lo, hi): (isize, isize), inner: isize) -> isize {
    if hi - lo <= BULK_EDGE {
        BULK_OUTSIDE
    } else if lo <= BULK_EDGE && inner - hi <= BULK_EDGE {
        BULK_INSIDE
    } else {
        0
    }
}

/// See [`bulk_class`].
const BULK_EDGE: isize = 16;
const BULK_OUTSIDE: isize = -1;
const BULK_INSIDE: isize = -2;

/// The C source of a kernel named `name` for `prog`, or `None` if the program uses
/// something kernels do not support (integer registers).
///
/// Layout: `NAME_run` computes one segment of a row (the innermost axis) with every array a
/// `restrict` parameter, so the compiler vectorises it without aliasing checks; `edge`
/// selects the bounds-tested version used near padding edges. `NAME_pass` walks the rows of
/// `[start, start + n)` and splits each into edge and inside segments. `NAME` is the entry.
///
/// `in_place[k] = Some(p)` makes output `k` overwrite input `p` (read only element for
/// element), instead of writing to its own output pointer. The bases of loads come from the
/// entry's `prm` argument (see [`parameters`]); those in `prog` are ignored.
pub(super) fn kernel(prog: &Program, in_place: &[Option<usize>], name: &str) -> Option<String> {
    for &d in &prog.dtypes {
        ctype(d)?;
    }
    kernel_with_ints(prog, in_place, name)
}

/// [`kernel`], also for programs with integer registers (wrapping arithmetic, comparisons,
/// conversions from integers: see `int_instr`); `None` for integer operations not ported.
/// Used by whole loops (`whole_loop.rs`), whose counters are often `i64`.
pub(super) fn kernel_with_ints(prog: &Program, in_place: &[Option<usize>], name: &str) -> Option<String> {
    let ctype = |d: DType| Some(ctype_any(d));
    let in_place_of = |k: usize| in_place.get(k).copied().flatten();
    let overwritten = |p: usize| (0..prog.outputs.len()).any(|k| in_place_of(k) == Some(p));
    let live = prog.needed(&prog.outputs);
    // Sizes are not in `prog` (see `parameters`): only the rank is.
    let rank = prog.shape.len().max(1);
    let views: Vec<Option<View>> = prog
        .instrs
        .iter()
        .enumerate()
        .map(|(i, ins)| match ins {
            Instr::Load { kind, .. } if live[i] => view_of(kind, rank),
            _ => None,
        })
        .collect();
    // Bounds tested per element near edges: padded loads and masks.
    // (Each bound's valid range is a group number in the key, see `parameters`.)
    let bounds: Vec<Option<usize>> = prog
        .instrs
        .iter()
        .enumerate()
        .map(|(i, ins)| match (ins, &views[i]) {
            (Instr::Mask { valid, .. }, _) if live[i] => Some(valid.first().map_or(0, |v| v.0 as usize)),
            (_, Some(View { valid: Some((valid, _)), .. })) => Some(valid[0].0 as usize),
            _ => None,
        })
        .collect();
    let groups = bounds.iter().flatten().map(|&g| g + 1).max().unwrap_or(0);
    // Per group, its pin in the bulk copy of the body (see `bulk_class`), if it has one.
    let mut bulk: Vec<Option<bool>> = vec![None; groups];
    for (i, ins) in prog.instrs.iter().enumerate() {
        let valid = match (ins, &views[i]) {
            (Instr::Mask { valid, .. }, _) if live[i] => valid,
            (_, Some(View { valid: Some((valid, _)), .. })) => valid,
            _ => continue,
        };
        if let (Some(g), Some(&(_, code))) = (bounds[i], valid.last()) {
            bulk[g] = match code {
                BULK_OUTSIDE => Some(false),
                BULK_INSIDE => Some(true),
                _ => None,
            };
        }
    }
    let rows = views.iter().any(Option::is_some) || bounds.iter().any(Option::is_some);
    let padded = bounds.iter().any(Option::is_some);

    // Parameters of the row function, and the arguments `NAME_pass` gives it.
    let mut params: Vec<String> = Vec::new();
    let mut args: Vec<String> = Vec::new();
    let mut casts = String::new();
    let mut input_type: Vec<Option<&str>> = vec![None; prog.instrs.len()];
    for (i, ins) in prog.instrs.iter().enumerate() {
        if let (true, Instr::Load { input, .. }) = (live[i], ins) {
            input_type[*input] = Some(ctype(prog.dtypes[i])?);
        }
    }
    for (p, t) in input_type.iter().enumerate() {
        if let Some(t) = t {
            let c = if overwritten(p) { "" } else { "const " };
            params.push(format!("{c}{t}* restrict in{p}"));
            args.push(format!("in{p}"));
            let _ = writeln!(casts, "    {c}{t}* in{p} = ({c}{t}*)in_[{p}];");
        }
    }
    for (k, &r) in prog.outputs.iter().enumerate() {
        if in_place_of(k).is_none() {
            let t = ctype(prog.dtypes[r])?;
            params.push(format!("{t}* restrict out{k}"));
            args.push(format!("out{k}"));
            let _ = writeln!(casts, "    {t}* out{k} = ({t}*)out_[{k}];");
        }
    }
    let pointers = args.len();
    params.extend(["int64_t g0", "int64_t o0", "int64_t k0", "int64_t len"].map(String::from));
    for (i, v) in views.iter().enumerate() {
        if v.is_some() {
            params.push(format!("int64_t rb{i}"));
            args.push(format!("rb{i}"));
        }
    }
    for g in 0..groups {
        params.push(format!("int pin{g}"));
        args.push(format!("pin{g}"));
    }
    // Inner strides other than 0 and ±1 are parameters of the row function too (the kernel is
    // generic in the sizes).
    for (i, v) in views.iter().enumerate() {
        if v.as_ref().is_some_and(|v| !constant_inner_stride(v.strides[rank - 1])) {
            params.push(format!("int64_t st{i}"));
            args.push(format!("st{i}"));
        }
    }
    params.extend(["const ct_callbacks* cb", "const int exact", "const int edge"].map(String::from));

    // The loop body: one statement per live instruction, then the stores; what the body
    // needs set up once per call.
    let mut body = String::new();
    let mut prologue = String::new();
    for (i, ins) in prog.instrs.iter().enumerate() {
        if !live[i] {
            continue;
        }
        let d = prog.dtypes[i];
        let t = ctype(d)?;
        let r = format!("r{i}");
        let inside = || {
            let g = bounds[i].expect("live masks and padded loads have bounds");
            match bulk[g] {
                // `edge == 2`: the bulk copy, where this bound is a constant.
                Some(pin) => format!("(edge == 2 ? {} : (!edge || pin{g}))", pin as u8),
                None => format!("(!edge || pin{g})"),
            }
        };
        let stmt = match ins {
            Instr::Load { input, kind } => {
                let expr = match (kind, &views[i]) {
                    (LoadKind::Contiguous, _) => format!("in{input}[g]"),
                    (LoadKind::Scalar, _) => format!("in{input}[0]"),
                    (_, Some(v)) => {
                        let inner = v.strides[rank - 1];
                        let stride = if constant_inner_stride(inner) { inner.to_string() } else { format!("st{i}") };
                        let at = format!("in{input}[rb{i} + k * {stride}]");
                        match &v.valid {
                            // Rows of stride 0 or 1 load unconditionally, from the zeros outside
                            // their bounds (see `prologue`), so the edge segments vectorise.
                            Some((_, fill)) if inner == 0 || inner == 1 => {
                                let _ = writeln!(
                                    prologue,
                                    "    const {t}* q{i} = {} ? in{input} + rb{i} + k0 * {inner} : ct_zero_{t};",
                                    inside()
                                );
                                let at = format!("q{i}[(k - k0) * {inner}]");
                                choose(&inside(), &at, &literal(*fill, d), d)
                            }
                            Some((_, fill)) => format!("{} ? {at} : {}", inside(), literal(*fill, d)),
                            None => at,
                        }
                    }
                    (_, None) => unreachable!("views exist for live strided loads"),
                };
                format!("const {t} {r} = {expr};")
            }
            Instr::Unary(_, a) | Instr::Binary(_, a, _) if is_int(d) || is_int(prog.dtypes[*a]) => {
                int_instr(ins, &prog.dtypes, &r)?
            }
            Instr::Select(p, a, b) if is_int(d) => format!("const {t} {r} = r{p} ? r{a} : r{b};"),
            Instr::Convert(_, a) if is_int(prog.dtypes[*a]) || is_int(d) => {
                let from = prog.dtypes[*a];
                let e = match (from, d) {
                    (f, t) if f == t => format!("r{a}"),
                    (_, DType::Bool) => format!("(u8)(r{a} != 0)"),
                    // Float to integer saturates in Rust (NaN to 0): not ported.
                    (f, _) if f.is_float() => return None,
                    _ => format!("({t})r{a}"),
                };
                format!("const {t} {r} = {e};")
            }
            Instr::Unary(op, a) => unary(*op, &format!("r{a}"), d, &r, prog.dtypes[*a])?,
            Instr::Binary(op, a, b) => {
                let e = binary(*op, &format!("r{a}"), &format!("r{b}"), prog.dtypes[*a])?;
                format!("const {t} {r} = {e};")
            }
            Instr::Select(p, a, b) => format!("const {t} {r} = {}(r{p}, r{a}, r{b});", select_fn(d)),
            Instr::Mask { value, fill, .. } => {
                format!("const {t} {r} = {};", choose(&inside(), &format!("r{value}"), &literal(*fill, d), d))
            }
            Instr::Convert(_, a) => {
                let from = prog.dtypes[*a];
                let e = match (from, d) {
                    (f, t) if f == t => format!("r{a}"),
                    (_, DType::Bool) => format!("(u8)(r{a} != 0)"),
                    _ => format!("({t})r{a}"),
                };
                format!("const {t} {r} = {e};")
            }
        };
        let _ = writeln!(body, "        {stmt}");
    }
    for (k, &r) in prog.outputs.iter().enumerate() {
        match in_place_of(k) {
            Some(p) => writeln!(body, "        in{p}[g] = r{r};"),
            None => writeln!(body, "        out{k}[o] = r{r};"),
        }
        .ok()?;
    }

    let mut src = String::new();
    let _ = write!(
        src,
        "CT_INLINE int32_t {name}_run({}) {{\n    (void)cb; (void)exact; (void)edge; (void)g0; (void)k0;\n    int32_t slow = 0;\n{prologue}    \
         for (int64_t i = 0; i < len; i++) {{\n        const int64_t g = g0 + i, o = o0 + i, k = k0 + i;\n        \
         (void)g; (void)k;\n{body}    }}\n    return slow;\n}}\n",
        params.join(", ")
    );
    // Rows of padded loops run through `NAME_edge`: one out-of-line copy of the row function,
    // whose bounds tests are per-segment flags (loop invariants, applied by branch-free
    // selects, so it vectorises: the ode eval's loop has a bound one element wide, so every
    // segment is outside some bound). One copy of the body keeps the C compiler's time down:
    // a second, test-free copy for segments inside every bound ran that loop no faster (2.6 vs
    // 2.7 ms at n = 10⁵, s = 10) and took the compiler 0.19 s instead of 0.17 s (0.11 s for
    // the previous scheme, whose edge copy was not vectorised and ran the loop at 7.5-15 ms).
    // odekern8: a second copy, `NAME_bulk`, where the bounds with a class (see `bulk_class`)
    // are constants: segments whose flags match (all but a few elements of the ode eval's
    // rows) skip the loads of thin paddings (fill values instead) and the selects.
    let has_bulk = padded && bulk.iter().any(Option::is_some);
    for (copy, edge, wanted) in [("edge", "1", padded), ("bulk", "2", has_bulk)] {
        if !wanted {
            continue;
        }
        let plain: Vec<String> = params.iter().filter(|p| !p.ends_with(" edge")).cloned().collect();
        let mut all: Vec<String> = args[..pointers].to_vec();
        all.extend(["g0", "o0", "k0", "len"].map(String::from));
        all.extend(args[pointers..].iter().cloned());
        all.extend(["cb".to_string(), "exact".to_string(), edge.to_string()]);
        let _ = write!(
            src,
            "static __attribute__((noinline)) int32_t {name}_{copy}({}) {{\n    return {name}_run({});\n}}\n",
            plain.join(", "),
            all.join(", ")
        );
    }
    let call = |g0: &str, o0: &str, k0: &str, len: &str, edge: u8| {
        let mut all: Vec<String> = args[..pointers].to_vec();
        all.extend([g0, o0, k0, len].map(String::from));
        all.extend(args[pointers..].iter().cloned());
        all.extend(["cb".to_string(), "exact".to_string()]);
        match edge {
            1 => format!("{name}_edge({})", all.join(", ")),
            2 => format!("{name}_bulk({})", all.join(", ")),
            _ => {
                all.push("0".to_string());
                format!("{name}_run({})", all.join(", "))
            }
        }
    };
    let mut loops = String::new();
    if !rows {
        let _ = writeln!(loops, "    slow |= {};", call("start", "0", "0", "n", 0));
    } else {
        // The parameters' layout (see `parameters`): bases, shape, strides, valid ranges.
        let nviews = views.iter().flatten().count();
        let at_shape = nviews;
        let mut at = at_shape + rank;
        let _ = writeln!(loops, "    int64_t shape[{rank}];");
        let _ = writeln!(loops, "    for (int d = 0; d < {rank}; d++) shape[d] = prm[{at_shape} + d];");
        let _ = writeln!(loops, "    const int64_t inner = shape[{}];", rank - 1);
        let _ = writeln!(loops, "    int64_t idx[{rank}];");
        let _ = writeln!(loops, "    int64_t rem = start;");
        let _ = writeln!(
            loops,
            "    for (int d = {rank} - 1; d >= 0; d--) {{ idx[d] = rem % shape[d]; rem /= shape[d]; }}"
        );
        // Per-view strides and per-bound ranges are read once per call.
        let mut per_row = String::new();
        for (j, (i, v)) in views.iter().enumerate().filter_map(|(i, v)| v.as_ref().map(|v| (i, v))).enumerate() {
            let mut rb = format!("prm[{j}]");
            for d in 0..rank - 1 {
                let _ = writeln!(loops, "    const int64_t sd{i}_{d} = prm[{at}];");
                at += 1;
                let _ = write!(rb, " + idx[{d}] * sd{i}_{d}");
            }
            if !constant_inner_stride(v.strides[rank - 1]) {
                let _ = writeln!(loops, "    const int64_t st{i} = prm[{at}];");
                at += 1;
            }
            let _ = writeln!(per_row, "        const int64_t rb{i} = {rb};");
        }
        // Each row is cut at every bound's edges, so that in each segment every bound is
        // wholly inside (`pinG`) or wholly outside: segments inside all bounds run the row
        // function without tests, the others `NAME_edge` with the flags (loop invariants).
        let mut per_segment = String::new();
        let mut all_in = vec!["1".to_string()];
        if groups > 0 {
            let _ = writeln!(
                per_row,
                "        int64_t cut[{}];
        int nc = 0;
        cut[nc++] = k0;",
                2 * groups + 2
            );
        }
        for i in 0..groups {
            let mut inside = vec!["1".to_string()];
            for d in 0..rank {
                let _ = writeln!(loops, "    const int64_t vl{i}_{d} = prm[{at}], vh{i}_{d} = prm[{}];", at + 1);
                at += 2;
                if d + 1 < rank {
                    inside.push(format!("(idx[{d}] >= vl{i}_{d} && idx[{d}] < vh{i}_{d})"));
                }
            }
            let d = rank - 1;
            let _ = writeln!(loops, "    const int64_t lo{i} = vl{i}_{d}, hi{i} = vh{i}_{d};");
            let _ = writeln!(per_row, "        const int rp{i} = {};", inside.join(" && "));
            let _ = writeln!(
                per_row,
                "        if (rp{i}) {{ if (lo{i} > k0 && lo{i} < k1) cut[nc++] = lo{i}; \
                 if (hi{i} > k0 && hi{i} < k1) cut[nc++] = hi{i}; }}"
            );
            let _ = writeln!(per_segment, "            const int pin{i} = rp{i} && s0 >= lo{i} && s1 <= hi{i};");
            all_in.push(format!("pin{i}"));
        }
        if groups > 0 {
            let _ = writeln!(
                per_row,
                "        cut[nc++] = k1;\n        for (int x = 1; x < nc; x++) {{ const int64_t v = cut[x]; int y = x - 1; \
                 while (y >= 0 && cut[y] > v) {{ cut[y + 1] = cut[y]; y--; }} cut[y + 1] = v; }}"
            );
        }
        let _ = writeln!(loops, "    int64_t j = 0;");
        let _ = writeln!(loops, "    while (j < n) {{");
        let _ = writeln!(loops, "        const int64_t k0 = idx[{}];", rank - 1);
        let _ = writeln!(loops, "        const int64_t k1 = inner < k0 + (n - j) ? inner : k0 + (n - j);");
        loops.push_str(&per_row);
        let seg = |from: &str, to: &str, edge: u8| {
            let c = call(
                &format!("start + j + ({from} - k0)"),
                &format!("j + ({from} - k0)"),
                from,
                &format!("{to} - {from}"),
                edge,
            );
            format!("        slow |= {c};\n")
        };
        if padded {
            let _ = writeln!(loops, "        for (int c = 0; c + 1 < nc; c++) {{");
            let _ = writeln!(loops, "            const int64_t s0 = cut[c], s1 = cut[c + 1];");
            let _ = writeln!(loops, "            if (s0 >= s1) continue;");
            loops.push_str(&per_segment);
            // The bulk copy where every bound with a class has its usual flag.
            let usual: Vec<String> =
                bulk.iter().enumerate().filter_map(|(g, c)| c.map(|pin| format!("pin{g} == {}", pin as u8))).collect();
            let bulk_here = if has_bulk { usual.join(" && ") } else { "0".to_string() };
            let _ = writeln!(loops, "            const int bulk = {bulk_here};");
            let _ = writeln!(loops, "            if (!bulk && {})", all_in.join(" && "));
            loops.push_str(&format!("    {}", seg("s0", "s1", 1)));
            // Edge segments in pieces the zeros cover (see the prelude).
            let _ = writeln!(loops, "            else for (int64_t e0 = s0; e0 < s1; e0 += CT_SEGMENT) {{");
            let _ = writeln!(loops, "                const int64_t e1 = s1 - e0 < CT_SEGMENT ? s1 : e0 + CT_SEGMENT;");
            if has_bulk {
                let _ = writeln!(loops, "                if (bulk)");
                loops.push_str(&format!("        {}", seg("e0", "e1", 2)));
                let _ = writeln!(loops, "                else");
            }
            loops.push_str(&format!("        {}", seg("e0", "e1", 1)));
            let _ = writeln!(loops, "            }}");
            let _ = writeln!(loops, "        }}");
        } else {
            loops.push_str(&seg("k0", "k1", 0));
        }
        let _ = writeln!(loops, "        j += k1 - k0;");
        let _ = writeln!(loops, "        idx[{}] = k1;", rank - 1);
        let _ = writeln!(
            loops,
            "        for (int d = {rank} - 1; d > 0 && idx[d] == shape[d]; d--) {{ idx[d] = 0; idx[d - 1]++; }}"
        );
        let _ = writeln!(loops, "    }}");
    }

    // A pass that writes over its inputs cannot be redone (plans never ask for that, see
    // `native::may_redo_passes`; if one did, its loop would run exactly at once).
    let rerun = needs_exact_rerun(prog, &live) && !(0..prog.outputs.len()).any(|k| in_place_of(k).is_some());
    let _ = write!(
        src,
        "CT_INLINE int32_t {name}_pass(const void* const* in_, void* const* out_, int64_t start, int64_t n, \
         const ct_callbacks* cb, const int64_t* prm, const int exact) {{\n    (void)prm;\n{casts}    int32_t slow = 0;\n{loops}    return slow;\n}}\n"
    );
    let pass = |exact: u8| format!("{name}_pass(in_, out_, start, n, cb, prm, {exact})");
    // After a pass that had to be redone, the next `CT_EXACT_RUNS` calls run exactly at once
    // (data with many arguments outside the fast range, an exponential of -inf masks, pay
    // about 1/CT_EXACT_RUNS of a pass more than the exact pass alone, not twice). Both
    // passes give the same bits, so this counter (shared by threads, relaxed: a hint) only
    // chooses the speed.
    let run = if rerun {
        format!(
            "static int exact_runs = 0;\n    \
             const int left = __atomic_load_n(&exact_runs, __ATOMIC_RELAXED);\n    \
             if (left > 0) {{ __atomic_store_n(&exact_runs, left - 1, __ATOMIC_RELAXED); {}; }}\n    \
             else if ({}) {{ __atomic_store_n(&exact_runs, CT_EXACT_RUNS, __ATOMIC_RELAXED); {}; }}",
            pass(1),
            pass(0),
            pass(1)
        )
    } else {
        format!("{};", pass(1))
    };
    let _ = write!(
        src,
        "int32_t {name}(const void* const* in_, void* const* out_, int64_t start, int64_t n, const ct_callbacks* cb, \
         const int64_t* prm) {{\n    {run}\n    return 0;\n}}\n"
    );
    Some(src)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_round_trip() {
        assert_eq!(literal(0.1, DType::F64).parse::<f64>().unwrap(), 0.1);
        assert_eq!(literal(0.1, DType::F32), format!("{:e}f", 0.1f32));
        assert_eq!(literal(-0.0, DType::F64), "-0e0");
        assert_eq!(literal(f64::NEG_INFINITY, DType::F32), "(-INFINITY)");
        assert_eq!(literal(2.0, DType::Bool), "1");
    }

    #[test]
    fn loops_differing_only_in_their_bases_have_one_key_and_their_own_parameters() {
        let prog = |b0: isize, b1: isize, dead: isize| Program {
            shape: vec![2, 3],
            instrs: vec![
                Instr::Load { input: 0, kind: LoadKind::Strided { base: b0, strides: vec![5, 1] } },
                Instr::Load { input: 0, kind: LoadKind::Strided { base: dead, strides: vec![5, 1] } },
                Instr::Load {
                    input: 1,
                    kind: LoadKind::Padded { base: b1, strides: vec![3, 1], valid: vec![(0, 2), (1, 3)], fill: 0.0 },
                },
                Instr::Binary(BinaryOp::Add, 0, 2),
            ],
            dtypes: vec![DType::F64; 4],
            outputs: vec![3],
            reduce: None,
        };
        let (a, pa) = parameters(&prog(7, -1, 100));
        let (b, pb) = parameters(&prog(12, 4, 200));
        assert_eq!(format!("{a:?}"), format!("{b:?}"), "one shape, one key");
        // Bases of the live loads (the dead one is left out), the shape, the outer strides
        // (inner strides of 1 are constants), the padded load's valid ranges.
        assert_eq!(pa, vec![7, -1, 2, 3, 5, 3, 0, 2, 1, 3]);
        assert_eq!(pb, vec![12, 4, 2, 3, 5, 3, 0, 2, 1, 3]);
        let src = kernel(&a, &[], "k").expect("supported");
        assert!(src.contains("prm[0]") && src.contains("prm[1]") && !src.contains("prm[2]"), "{src}");
        assert!(src.contains("k_edge("), "padded loops run their edges out of line:\n{src}");
        let mut wider = prog(7, -1, 100);
        wider.shape = vec![2, 4];
        if let Instr::Load { kind: LoadKind::Padded { valid, strides, .. }, .. } = &mut wider.instrs[2] {
            *valid = vec![(0, 2), (1, 4)];
            *strides = vec![4, 1];
        }
        let (c, pc) = parameters(&wider);
        assert_eq!(format!("{a:?}"), format!("{c:?}"), "other sizes, the same function");
        assert_eq!(pc, vec![7, -1, 2, 4, 5, 4, 0, 2, 1, 4]);
        assert!(!src.contains("10000") && !src.contains("{2, 3}"), "no size in the source:\n{src}");
        let mut gather = prog(7, -1, 100);
        if let Instr::Load { kind: LoadKind::Strided { strides, .. }, .. } = &mut gather.instrs[0] {
            *strides = vec![1, 5];
        }
        let (d, pd) = parameters(&gather);
        assert_ne!(format!("{a:?}"), format!("{d:?}"), "a strided row is another loop than a contiguous one");
        assert_eq!(pd, vec![7, -1, 2, 3, 1, 5, 3, 0, 2, 1, 3], "its inner stride is a parameter");
        assert!(kernel(&d, &[], "k").expect("supported").contains("k * st0"));
    }

    #[test]
    fn integer_programs_are_left_to_the_interpreter() {
        let prog = Program {
            shape: vec![4],
            instrs: vec![Instr::Load { input: 0, kind: LoadKind::Contiguous }],
            dtypes: vec![DType::I32],
            outputs: vec![0],
            reduce: None,
        };
        assert!(kernel(&prog, &[], "k").is_none());
    }

    // odekern8: repeated loads and operations (as inlining through several views makes) are
    // one register in the key; a bound one element wide gets the bulk copy of the body.
    #[test]
    fn repeated_loads_and_operations_become_one_and_thin_bounds_get_a_bulk_copy() {
        let padded = |base: isize, valid: (isize, isize), fill: f64| Instr::Load {
            input: 0,
            kind: LoadKind::Padded { base, strides: vec![1], valid: vec![valid], fill },
        };
        let prog = Program {
            shape: vec![100],
            instrs: vec![
                padded(-1, (1, 100), 0.0),
                Instr::Load { input: 1, kind: LoadKind::Contiguous },
                Instr::Binary(BinaryOp::Mul, 0, 1),
                padded(-1, (1, 100), 0.0),
                Instr::Binary(BinaryOp::Mul, 3, 1),
                Instr::Binary(BinaryOp::Add, 2, 4),
                // Same place, other fill (-0): another value, kept.
                padded(-1, (1, 100), -0.0),
                Instr::Binary(BinaryOp::Add, 5, 6),
                // One element wide: the head of a concatenate.
                padded(0, (0, 1), 0.0),
                Instr::Binary(BinaryOp::Add, 7, 8),
            ],
            dtypes: vec![DType::F64; 10],
            outputs: vec![9, 4],
            reduce: None,
        };
        let (key, params) = parameters(&prog);
        let live = key.needed(&key.outputs);
        assert!(!live[3] && !live[4], "the repeats are dead: {key:?}");
        assert_eq!(key.outputs, vec![9, 2], "an output that repeated a register is that register");
        // Bases of the live padded loads (0, 6, 8), the shape, two distinct ranges.
        assert_eq!(params, vec![-1, -1, 0, 100, 1, 100, 0, 1]);
        let src = kernel(&key, &[], "k").expect("supported");
        assert!(src.contains("k_bulk(") && src.contains("pin0 == 1 && pin1 == 0"), "{src}");
    }
}
