//! Fused element-wise loops: one pass over the output computes a whole chain of
//! element-wise primitives (with broadcasting loads), optionally reduced on the fly.
//!
//! The program runs over blocks of `BLOCK` elements: each instruction is applied
//! to a block at a time, so dispatch costs are paid once per block while the
//! temporaries stay in L1 cache. Large loops are split over rayon's pool in fixed
//! ranges, so results never depend on the number of threads.

use super::elementwise::{binary_i32, binary_i64, compare, unary_i32, unary_i64, Real};
use super::native::Kernel;
use crate::array::{Array, Data};
use crate::ops::{BinaryOp, ReduceOp, UnaryOp};
use crate::shape::{numel, Shape};
use crate::{with_data, DType};
use rayon::prelude::*;
use std::ffi::c_void;

/// Elements per block.
const BLOCK: usize = 512;
/// Loops up to this many elements run on the calling thread (maps: below [`MAP_PARALLEL_MIN`]).
const PARALLEL_MIN: usize = 1 << 16;
/// Maps (loops without a reduction) of at least this many elements split over the pool, in
/// tasks of [`MAP_TASK`] elements (smaller ones stay whole: w6-hessian's 200×200 map, 14 µs,
/// took 18.6 µs split, the thread wake-up outweighing the work it takes over). A map's result
/// does not depend on how its elements are split, and the 128×512 f32 loops between the products of w2-hvp (an MLP's Hessian-vector
/// product: 65,536 elements, 8–30 µs each on one thread) read operands that the two threads
/// of the products before them left in their own caches: split in four tasks, w2-hvp took
/// 1.99–2.03 ms against 2.09–2.17 ms whole in alternated runs under heavy load, 1.75 against
/// 1.79 ms under lighter load.
const MAP_PARALLEL_MIN: usize = PARALLEL_MIN;
/// Elements per task of a split map (two tasks per thread for w2-hvp's 128×512 loops, so a
/// thread held up by another process leaves its second task to the other).
const MAP_TASK: usize = PARALLEL_MIN / 4;

/// Whether running `prog` splits work over the thread pool.
pub fn runs_in_parallel(prog: &Program) -> bool {
    let total = numel(&prog.shape);
    let large = if prog.reduce.is_none() { total >= MAP_PARALLEL_MIN } else { total > PARALLEL_MIN };
    large && crate::threads::parallel()
}

/// How a program input is read at each output position.
#[derive(Clone, Debug)]
pub enum LoadKind {
    /// Same shape as the iteration space, contiguous.
    Contiguous,
    /// One element, repeated.
    Scalar,
    /// Element at `base + Σ idx[d] · strides[d]` for output index `idx` (0 strides broadcast;
    /// slices, transposes and reversals are other strides and bases).
    Strided {
        /// Offset of the first element.
        base: isize,
        /// Step per output axis.
        strides: Vec<isize>,
    },
    /// Like `Strided`, but only output indices inside `valid` (a range per axis) read the
    /// operand; the others are `fill` (a zero-padding read in place).
    Padded {
        /// Offset of element 0 (which may lie outside the operand).
        base: isize,
        /// Step per output axis.
        strides: Vec<isize>,
        /// The in-bounds range of each output axis.
        valid: Vec<(isize, isize)>,
        /// The value outside.
        fill: f64,
    },
}

/// One instruction; instruction `i` defines register `i`.
#[derive(Clone, Debug)]
pub enum Instr {
    /// Reads a program input.
    Load {
        /// Which program input.
        input: usize,
        /// How it is indexed.
        kind: LoadKind,
    },
    /// A unary primitive of a register.
    Unary(UnaryOp, usize),
    /// A binary primitive of two registers.
    Binary(BinaryOp, usize, usize),
    /// `select(pred, on_true, on_false)` of three registers.
    Select(usize, usize, usize),
    /// Dtype conversion of a register.
    Convert(DType, usize),
    /// A register where the output index lies inside `valid` (a range per axis), `fill`
    /// elsewhere: the padding of a producer computed inside its consumer's loop.
    Mask {
        /// The register.
        value: usize,
        /// The range of each output axis where it is kept.
        valid: Vec<(isize, isize)>,
        /// The value outside.
        fill: f64,
    },
}

/// A fused loop over `shape`: instructions with their register dtypes, the registers
/// written out, and optionally a reduction of the single output over its trailing `row` elements.
#[derive(Clone, Debug)]
pub struct Program {
    /// The iteration space.
    pub shape: Shape,
    /// The instructions.
    pub instrs: Vec<Instr>,
    /// Dtype of each register.
    pub dtypes: Vec<DType>,
    /// Registers materialised as outputs (full `shape`, or reduced).
    pub outputs: Vec<usize>,
    /// Reduce the output over its trailing this-many axes (contiguous rows).
    pub reduce: Option<(ReduceOp, usize)>,
}

impl Program {
    /// The registers that `roots` depend on (themselves included).
    pub fn needed(&self, roots: &[usize]) -> Vec<bool> {
        let mut live = vec![false; self.instrs.len()];
        for &r in roots {
            live[r] = true;
        }
        for i in (0..self.instrs.len()).rev() {
            if !live[i] {
                continue;
            }
            match self.instrs[i] {
                Instr::Load { .. } => {}
                Instr::Unary(_, a) | Instr::Convert(_, a) | Instr::Mask { value: a, .. } => live[a] = true,
                Instr::Binary(_, a, b) => {
                    live[a] = true;
                    live[b] = true;
                }
                Instr::Select(p, a, b) => {
                    live[p] = true;
                    live[a] = true;
                    live[b] = true;
                }
            }
        }
        live
    }

    /// A readable listing for plan dumps.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for (i, ins) in self.instrs.iter().enumerate() {
            let body = match ins {
                Instr::Load { input, kind } => match kind {
                    LoadKind::Contiguous => format!("load in{input}"),
                    LoadKind::Scalar => format!("load in{input} (scalar)"),
                    LoadKind::Strided { base, strides } => format!("load in{input} base={base} strides={strides:?}"),
                    LoadKind::Padded { base, strides, valid, fill } => {
                        format!("load in{input} base={base} strides={strides:?} inside {valid:?} else {fill}")
                    }
                },
                Instr::Unary(op, a) => format!("{} r{a}", op.name()),
                Instr::Binary(op, a, b) => format!("{} r{a} r{b}", op.name()),
                Instr::Select(p, a, b) => format!("select r{p} r{a} r{b}"),
                Instr::Convert(d, a) => format!("convert[{d}] r{a}"),
                Instr::Mask { value, valid, fill } => format!("mask r{value} inside {valid:?} else {fill}"),
            };
            s.push_str(&format!("      r{i}: {} = {body}\n", self.dtypes[i]));
        }
        s
    }
}

/// Which SIMD width this CPU offers, detected once: 0 = baseline, 1 = AVX2+FMA, 2 = AVX-512.
#[cfg(target_arch = "x86_64")]
pub(crate) fn simd_level() -> u8 {
    use std::sync::atomic::{AtomicU8, Ordering};
    static LEVEL: AtomicU8 = AtomicU8::new(u8::MAX);
    let l = LEVEL.load(Ordering::Relaxed);
    if l != u8::MAX {
        return l;
    }
    let l = if is_x86_feature_detected!("avx512f") {
        2
    } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        1
    } else {
        0
    };
    LEVEL.store(l, Ordering::Relaxed);
    l
}

/// Defines `$name` as `$body` compiled three times (baseline, AVX2, AVX-512) and picked at run
/// time. Only the vector width differs: no fused multiply-adds are formed (Rust never contracts
/// `a * b + c`), so every version gives bitwise identical results.
macro_rules! multiversion {
    ($vis:vis fn $name:ident<$t:ident: $bound:path>($($arg:ident: $ty:ty),*) $(-> $ret:ty)? $body:block) => {
        $vis fn $name<$t: $bound>($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body<$t: $bound>($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                // `unsafe` only because of `target_feature`: called solely through the check
                // below (SAFETY there); safe callers cannot reach either version directly.
                #[target_feature(enable = "avx512f")]
                unsafe fn wide<$t: $bound>($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn mid<$t: $bound>($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                // SAFETY: each version runs only on a CPU that has its features (detected at
                // run time); the arguments are safe slices, so no input can make this unsound.
                match $crate::backend::cpu::fused::simd_level() {
                    2 => return unsafe { wide($($arg),*) },
                    1 => return unsafe { mid($($arg),*) },
                    _ => {}
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use multiversion;

multiversion! { pub(crate) fn unary_float<T: Real>(op: UnaryOp, a: &[T], o: &mut [T]) {
    // Sine and cosine vectorise when no argument needs the slow, exact reduction.
    if matches!(op, UnaryOp::Sin | UnaryOp::Cos) && a.iter().all(|v| v.magnitude() <= T::SIN_LIMIT) {
        let cos = op == UnaryOp::Cos;
        for (o, &x) in o.iter_mut().zip(a) {
            *o = T::sin_small(x, cos);
        }
        return;
    }
    macro_rules! go {
        ($($k:ident),*) => {
            match op {
                $(UnaryOp::$k => for (o, &x) in o.iter_mut().zip(a) { *o = T::unary(UnaryOp::$k, x) },)*
                UnaryOp::IsFinite | UnaryOp::Not => unreachable!("not float-to-float"),
            }
        };
    }
    go!(
        Neg, Exp, Log, Log1p, Expm1, Sin, Cos, Tan, Tanh, Asin, Acos, Atan, Sinh, Cosh, Asinh, Atanh, Sqrt, Rsqrt,
        Cbrt, Abs, Sign, Floor, Ceil, Round, Logistic, Erf, Erfc, ErfInv, Reciprocal
    );
}}

multiversion! { pub(crate) fn binary_float<T: Real>(op: BinaryOp, a: &[T], b: &[T], o: &mut [T]) {
    macro_rules! go {
        ($($k:ident),*) => {
            match op {
                $(BinaryOp::$k => for ((o, &x), &y) in o.iter_mut().zip(a).zip(b) { *o = T::binary(BinaryOp::$k, x, y) },)*
                _ => unreachable!("not float-to-float"),
            }
        };
    }
    go!(Add, Sub, Mul, Div, Rem, Pow, Max, Min, Atan2);
}}

multiversion! { pub(crate) fn binary_float_scalar_right<T: Real>(op: BinaryOp, a: &[T], s: T, o: &mut [T]) {
    macro_rules! go {
        ($($k:ident),*) => {
            match op {
                $(BinaryOp::$k => for (o, &x) in o.iter_mut().zip(a) { *o = T::binary(BinaryOp::$k, x, s) },)*
                _ => unreachable!("not float-to-float"),
            }
        };
    }
    go!(Add, Sub, Mul, Div, Rem, Pow, Max, Min, Atan2);
}}

multiversion! { pub(crate) fn binary_float_scalar_left<T: Real>(op: BinaryOp, s: T, b: &[T], o: &mut [T]) {
    macro_rules! go {
        ($($k:ident),*) => {
            match op {
                $(BinaryOp::$k => for (o, &y) in o.iter_mut().zip(b) { *o = T::binary(BinaryOp::$k, s, y) },)*
                _ => unreachable!("not float-to-float"),
            }
        };
    }
    go!(Add, Sub, Mul, Div, Rem, Pow, Max, Min, Atan2);
}}

/// The reciprocal of `c` when `x / c` and `x * (1/c)` are the same number for every `x`:
/// `c` a power of two whose reciprocal is exact (`c` normal, mantissa zero), so both
/// operations round the same exact quotient. (A vector division costs ~20x a
/// multiplication: RK4's `k·h/2`.) The one test of that rule, for the interpreter here and
/// for native whole loops (`native::whole_loop`).
pub(crate) fn exact_reciprocal_f64(c: f64) -> Option<f64> {
    (c.is_normal() && c.to_bits() & ((1u64 << 52) - 1) == 0).then(|| 1.0 / c)
}

/// [`exact_reciprocal_f64`] in single precision.
pub(crate) fn exact_reciprocal_f32(c: f32) -> Option<f32> {
    (c.is_normal() && c.to_bits() & ((1u32 << 23) - 1) == 0).then(|| 1.0 / c)
}

/// Which registers of `prog` are float scalar loads read only as an operand of float
/// arithmetic (`add`, `mul`, ...; not comparisons, selects, masks or outputs): those are not
/// spread over a block; the arithmetic reads the one value (`lazy[r]`, `r < lazy.len()`).
fn lazy_scalars(prog: &Program, lazy: &mut [bool]) {
    for (l, (instr, dtype)) in lazy.iter_mut().zip(prog.instrs.iter().zip(&prog.dtypes)) {
        *l = matches!(instr, Instr::Load { kind: LoadKind::Scalar, .. }) && matches!(dtype, DType::F32 | DType::F64);
    }
    let mut not = |r: usize| {
        if let Some(l) = lazy.get_mut(r) {
            *l = false;
        }
    };
    for instr in &prog.instrs {
        match *instr {
            Instr::Load { .. } => {}
            Instr::Binary(op, a, b) if op.is_comparison() => {
                not(a);
                not(b);
            }
            Instr::Binary(..) => {}
            Instr::Unary(_, a) | Instr::Convert(_, a) | Instr::Mask { value: a, .. } => not(a),
            Instr::Select(p, a, b) => {
                not(p);
                not(a);
                not(b);
            }
        }
    }
    for &r in &prog.outputs {
        not(r);
    }
}

/// Element types that fused loops move around.
pub(crate) trait Scalar: PartialOrd + Copy {}
impl<T: PartialOrd + Copy> Scalar for T {}

multiversion! { pub(crate) fn select_slices<T: Scalar>(p: &[bool], a: &[T], b: &[T], o: &mut [T]) {
    for ((o, &c), (&x, &y)) in o.iter_mut().zip(p).zip(a.iter().zip(b)) {
        *o = if c { x } else { y };
    }
}}

multiversion! { pub(crate) fn compare_slices<T: Scalar>(op: BinaryOp, a: &[T], b: &[T], o: &mut [bool]) {
    macro_rules! go {
        ($($k:ident),*) => {
            match op {
                $(BinaryOp::$k => for ((o, &x), &y) in o.iter_mut().zip(a).zip(b) { *o = compare(BinaryOp::$k, x, y) },)*
                _ => unreachable!("not a comparison"),
            }
        };
    }
    go!(Eq, Ne, Lt, Le, Gt, Ge);
}}

macro_rules! convert_into {
    ($src:expr, $dst:expr, $n:expr) => {
        match $dst {
            ViewMut::F32(o) => o[..$n].iter_mut().zip($src).for_each(|(o, &x)| *o = x as f32),
            ViewMut::F64(o) => o[..$n].iter_mut().zip($src).for_each(|(o, &x)| *o = x as f64),
            ViewMut::I32(o) => o[..$n].iter_mut().zip($src).for_each(|(o, &x)| *o = x as i32),
            ViewMut::I64(o) => o[..$n].iter_mut().zip($src).for_each(|(o, &x)| *o = x as i64),
            ViewMut::Bool(o) => o[..$n].iter_mut().zip($src).for_each(|(o, &x)| *o = (x as f64) != 0.0),
        }
    };
}

/// Applies instruction `instr` to the first `n` elements of its operands: registers, or
/// (`direct`) contiguous input slices read in place.
/// Registers marked in `lazy` (see [`lazy_scalars`]) hold their value in element 0 only.
/// Registers marked in `whole` hold a whole output (written straight into its buffer): this
/// block is their elements `start..start + n`.
#[allow(clippy::too_many_arguments)]
fn step(
    instr: &Instr,
    before: &[Data],
    direct: &[Option<View>],
    lazy: &[bool],
    whole: &[bool],
    out: ViewMut,
    start: usize,
    n: usize,
) {
    let at = |r: usize| if whole.get(r).copied().unwrap_or(false) { start } else { 0 };
    let reg = |r: usize| direct[r].unwrap_or_else(|| View::range(&before[r], at(r), n));
    let mut out = out;
    let is_lazy = |r: usize| lazy.get(r).copied().unwrap_or(false);
    match instr {
        Instr::Load { .. } | Instr::Mask { .. } => unreachable!("loads and masks are handled by the caller"),
        Instr::Unary(op, a) => match (reg(*a), out) {
            (_, ViewMut::Bool(o)) if *op == UnaryOp::IsFinite => match reg(*a) {
                View::F32(x) => o[..n].iter_mut().zip(&x[..n]).for_each(|(o, v)| *o = v.is_finite()),
                View::F64(x) => o[..n].iter_mut().zip(&x[..n]).for_each(|(o, v)| *o = v.is_finite()),
                _ => unreachable!(),
            },
            (View::F32(x), ViewMut::F32(o)) => unary_float(*op, &x[..n], &mut o[..n]),
            (View::F64(x), ViewMut::F64(o)) => unary_float(*op, &x[..n], &mut o[..n]),
            (View::I32(x), ViewMut::I32(o)) => {
                o[..n].iter_mut().zip(&x[..n]).for_each(|(o, &v)| *o = unary_i32(*op, v))
            }
            (View::I64(x), ViewMut::I64(o)) => {
                o[..n].iter_mut().zip(&x[..n]).for_each(|(o, &v)| *o = unary_i64(*op, v))
            }
            (View::Bool(x), ViewMut::Bool(o)) => o[..n].iter_mut().zip(&x[..n]).for_each(|(o, &v)| *o = !v),
            _ => unreachable!("register dtypes checked when the program was built"),
        },
        Instr::Binary(op, a, b) => {
            let (x, y) = (reg(*a), reg(*b));
            if op.is_comparison() {
                let ViewMut::Bool(o) = out else { unreachable!() };
                let o = &mut o[..n];
                match (x, y) {
                    (View::F32(x), View::F32(y)) => compare_slices(*op, &x[..n], &y[..n], o),
                    (View::F64(x), View::F64(y)) => compare_slices(*op, &x[..n], &y[..n], o),
                    (View::I32(x), View::I32(y)) => compare_slices(*op, &x[..n], &y[..n], o),
                    (View::I64(x), View::I64(y)) => compare_slices(*op, &x[..n], &y[..n], o),
                    (View::Bool(x), View::Bool(y)) => compare_slices(*op, &x[..n], &y[..n], o),
                    _ => unreachable!(),
                }
                return;
            }
            match (is_lazy(*a), is_lazy(*b), x, y, &mut out) {
                (false, true, View::F64(x), View::F64(y), ViewMut::F64(o)) => {
                    let (op, c) = match exact_reciprocal_f64(y[0]) {
                        Some(r) if *op == BinaryOp::Div => (BinaryOp::Mul, r),
                        _ => (*op, y[0]),
                    };
                    return binary_float_scalar_right(op, &x[..n], c, &mut o[..n]);
                }
                (false, true, View::F32(x), View::F32(y), ViewMut::F32(o)) => {
                    let (op, c) = match exact_reciprocal_f32(y[0]) {
                        Some(r) if *op == BinaryOp::Div => (BinaryOp::Mul, r),
                        _ => (*op, y[0]),
                    };
                    return binary_float_scalar_right(op, &x[..n], c, &mut o[..n]);
                }
                (true, false, View::F64(x), View::F64(y), ViewMut::F64(o)) => {
                    return binary_float_scalar_left(*op, x[0], &y[..n], &mut o[..n])
                }
                (true, false, View::F32(x), View::F32(y), ViewMut::F32(o)) => {
                    return binary_float_scalar_left(*op, x[0], &y[..n], &mut o[..n])
                }
                (true, true, View::F64(x), View::F64(y), ViewMut::F64(o)) => {
                    return o[..n].fill(f64::binary(*op, x[0], y[0]));
                }
                (true, true, View::F32(x), View::F32(y), ViewMut::F32(o)) => {
                    return o[..n].fill(f32::binary(*op, x[0], y[0]));
                }
                _ => {}
            }
            match (x, y, out) {
                (View::F32(x), View::F32(y), ViewMut::F32(o)) => binary_float(*op, &x[..n], &y[..n], &mut o[..n]),
                (View::F64(x), View::F64(y), ViewMut::F64(o)) => binary_float(*op, &x[..n], &y[..n], &mut o[..n]),
                (View::I32(x), View::I32(y), ViewMut::I32(o)) => {
                    for k in 0..n {
                        o[k] = binary_i32(*op, x[k], y[k]);
                    }
                }
                (View::I64(x), View::I64(y), ViewMut::I64(o)) => {
                    for k in 0..n {
                        o[k] = binary_i64(*op, x[k], y[k]);
                    }
                }
                (View::Bool(x), View::Bool(y), ViewMut::Bool(o)) => {
                    for k in 0..n {
                        o[k] = match op {
                            BinaryOp::And => x[k] & y[k],
                            BinaryOp::Or => x[k] | y[k],
                            BinaryOp::Xor => x[k] ^ y[k],
                            _ => unreachable!(),
                        };
                    }
                }
                _ => unreachable!("register dtypes checked when the program was built"),
            }
        }
        Instr::Select(p, a, b) => {
            let View::Bool(p) = reg(*p) else { unreachable!() };
            macro_rules! pick {
                ($x:expr, $y:expr, $o:expr) => {
                    select_slices(&p[..n], &$x[..n], &$y[..n], &mut $o[..n])
                };
            }
            match (reg(*a), reg(*b), out) {
                (View::F32(x), View::F32(y), ViewMut::F32(o)) => pick!(x, y, o),
                (View::F64(x), View::F64(y), ViewMut::F64(o)) => pick!(x, y, o),
                (View::I32(x), View::I32(y), ViewMut::I32(o)) => pick!(x, y, o),
                (View::I64(x), View::I64(y), ViewMut::I64(o)) => pick!(x, y, o),
                (View::Bool(x), View::Bool(y), ViewMut::Bool(o)) => pick!(x, y, o),
                _ => unreachable!(),
            }
        }
        Instr::Convert(_, a) => {
            let src = reg(*a);
            match src {
                View::F32(x) => convert_into!(&x[..n], out, n),
                View::F64(x) => convert_into!(&x[..n], out, n),
                View::I32(x) => convert_into!(&x[..n], out, n),
                View::I64(x) => convert_into!(&x[..n], out, n),
                View::Bool(x) => {
                    let x: Vec<u8> = x[..n].iter().map(|&b| b as u8).collect();
                    convert_into!(&x, out, n)
                }
            }
        }
    }
}

/// Walks output elements `start..start + len` of an iteration space row by row (a row runs
/// along the last axis): calls `f(idx, k0, k1, j)` for each piece of a row, where `idx` is the
/// multi-index of the piece's first element, the piece covers last-axis positions `k0..k1`,
/// and it is elements `j..j + (k1 - k0)` of the walk. Needs rank ≥ 1.
fn for_each_row_piece(shape: &[usize], start: usize, len: usize, mut f: impl FnMut(&[usize], usize, usize, usize)) {
    let r = shape.len();
    let mut idx = vec![0usize; r];
    let mut rem = start;
    for d in (0..r).rev() {
        idx[d] = rem % shape[d];
        rem /= shape[d];
    }
    let mut j = 0;
    while j < len {
        let (k0, k1) = (idx[r - 1], shape[r - 1].min(idx[r - 1] + len - j));
        f(&idx, k0, k1, j);
        j += k1 - k0;
        idx[r - 1] = k1;
        let mut d = r - 1;
        while idx[d] == shape[d] && d > 0 {
            idx[d] = 0;
            d -= 1;
            idx[d] += 1;
        }
    }
}

/// The part of the row piece `k0..k1` (outer indices `idx`) inside the box `valid`, as
/// offsets `a..b` from `k0` (empty when the row lies outside).
fn inside_part(valid: &[(isize, isize)], idx: &[usize], k0: usize, k1: usize) -> (usize, usize) {
    let r = idx.len();
    let row_inside = (0..r - 1).all(|d| valid[d].0 <= idx[d] as isize && (idx[d] as isize) < valid[d].1);
    if !row_inside {
        return (k1 - k0, k1 - k0);
    }
    let (lo, hi) = valid[r - 1];
    let (k0i, k1i) = (k0 as isize, k1 as isize);
    let a = lo.clamp(k0i, k1i);
    let b = hi.clamp(k0i, k1i).max(a);
    ((a - k0i) as usize, (b - k0i) as usize)
}

/// Copies output elements `start..start+out.len()` of a strided read of `x` (row by row;
/// contiguous rows are plain copies). With `pad`, indices outside the valid ranges read `fill`.
fn strided_rows<T: Copy>(
    out: &mut [T],
    x: &[T],
    shape: &[usize],
    start: usize,
    base: isize,
    st: &[isize],
    pad: Option<(&[(isize, isize)], T)>,
) {
    let r = shape.len();
    if r == 0 {
        out[0] = x[base as usize];
        return;
    }
    // Without padding, axes that step through memory as one (`st[d] = st[d+1]·shape[d+1]`:
    // contiguous runs, or broadcasts of broadcasts) and axes of one element are merged, so a
    // load broadcast along leading axes of a space whose last axis is short (a `[k, 2]` table
    // read at every `[n, k, 2]` position) copies long rows, not rows of 2.
    if pad.is_none() && r > 1 && r <= MERGE_RANK {
        let (mut ms, mut mt) = ([0usize; MERGE_RANK], [0isize; MERGE_RANK]);
        let mut m = 0;
        for d in 0..r {
            if shape[d] == 1 {
                continue; // one element: its stride never applies
            }
            if m > 0 && mt[m - 1] == st[d] * shape[d] as isize {
                ms[m - 1] *= shape[d];
                mt[m - 1] = st[d];
            } else {
                ms[m] = shape[d];
                mt[m] = st[d];
                m += 1;
            }
        }
        if m == 0 {
            (ms[0], mt[0], m) = (1, 0, 1); // a single element
        }
        if m < r {
            return strided_rows(out, x, &ms[..m], start, base, &mt[..m], None);
        }
    }
    let s = st[r - 1];
    let len = out.len();
    for_each_row_piece(shape, start, len, |idx, k0, k1, j| {
        let row = base + (0..r - 1).map(|d| idx[d] as isize * st[d]).sum::<isize>();
        let seg = &mut out[j..j + (k1 - k0)];
        // The piece splits into fill, in-bounds, fill parts.
        let (a, b) = match pad {
            Some((valid, fill)) => {
                let (a, b) = inside_part(valid, idx, k0, k1);
                seg[..a].fill(fill);
                seg[b..].fill(fill);
                (a, b)
            }
            None => (0, k1 - k0),
        };
        let first = (k0 + a) as isize;
        if a == b {
            // Nothing in bounds on this row (its start may not even be addressable).
        } else if s == 1 {
            let from = (row + first) as usize;
            seg[a..b].copy_from_slice(&x[from..from + (b - a)]);
        } else if s == 0 {
            seg[a..b].fill(x[row as usize]);
        } else {
            for (o, k) in seg[a..b].iter_mut().zip(first..) {
                *o = x[(row + k * s) as usize];
            }
        }
    });
}

/// The highest rank whose axes [`strided_rows`] merges (on the stack).
const MERGE_RANK: usize = 8;

/// Fills a register with elements `start..start+n` of a load.
fn load(reg: &mut Data, src: &Array, kind: &LoadKind, shape: &[usize], start: usize, n: usize) {
    macro_rules! fill {
        ($o:expr, $x:expr, $conv:expr) => {
            match kind {
                LoadKind::Contiguous => $o[..n].copy_from_slice(&$x[start..start + n]),
                LoadKind::Scalar => $o[..n].fill($x[0]),
                LoadKind::Strided { base, strides } => {
                    strided_rows(&mut $o[..n], $x, shape, start, *base, strides, None)
                }
                LoadKind::Padded { base, strides, valid, fill } => {
                    strided_rows(&mut $o[..n], $x, shape, start, *base, strides, Some((valid, $conv(*fill))))
                }
            }
        };
    }
    match (reg, &src.data) {
        (Data::F32(o), Data::F32(x)) => fill!(o, x, |v: f64| v as f32),
        (Data::F64(o), Data::F64(x)) => fill!(o, x, |v: f64| v),
        (Data::I32(o), Data::I32(x)) => fill!(o, x, |v: f64| v as i32),
        (Data::I64(o), Data::I64(x)) => fill!(o, x, |v: f64| v as i64),
        (Data::Bool(o), Data::Bool(x)) => fill!(o, x, |v: f64| v != 0.0),
        _ => unreachable!("load dtype checked when the program was built"),
    }
}

/// Copies `n` elements of `src` into `out`, with `fill` at the output indices
/// (`start`, `start + 1`, ...) outside the `valid` ranges.
fn mask(out: &mut Data, src: View, valid: &[(isize, isize)], fill: f64, shape: &[usize], start: usize, n: usize) {
    fn go<T: Copy>(o: &mut [T], x: &[T], valid: &[(isize, isize)], fill: T, shape: &[usize], start: usize) {
        o.copy_from_slice(&x[..o.len()]);
        if shape.is_empty() {
            return;
        }
        let len = o.len();
        for_each_row_piece(shape, start, len, |idx, k0, k1, j| {
            let (a, b) = inside_part(valid, idx, k0, k1);
            let seg = &mut o[j..j + (k1 - k0)];
            seg[..a].fill(fill);
            seg[b..].fill(fill);
        });
    }
    match (out, src) {
        (Data::F32(o), View::F32(x)) => go(&mut o[..n], x, valid, fill as f32, shape, start),
        (Data::F64(o), View::F64(x)) => go(&mut o[..n], x, valid, fill, shape, start),
        (Data::I32(o), View::I32(x)) => go(&mut o[..n], x, valid, fill as i32, shape, start),
        (Data::I64(o), View::I64(x)) => go(&mut o[..n], x, valid, fill as i64, shape, start),
        (Data::Bool(o), View::Bool(x)) => go(&mut o[..n], x, valid, fill != 0.0, shape, start),
        _ => unreachable!("mask dtype checked when the program was built"),
    }
}

/// Where elements `start..start + n` of a load lie as one contiguous run of its input, when
/// they do: contiguous loads, strided loads whose strides are the iteration space's own
/// (a slice at an offset: `x[1:]` read over `[999]`), and rank-1 unit-stride padded loads on
/// a block inside their valid range (a concatenate's or pad's interior). Those are read in
/// place instead of copied into a register.
fn in_place_offset(kind: &LoadKind, shape: &[usize], start: usize, n: usize) -> Option<usize> {
    match kind {
        LoadKind::Contiguous => Some(start),
        LoadKind::Scalar => None,
        LoadKind::Strided { base, strides } => {
            let mut expect = 1isize;
            for (&d, &st) in shape.iter().zip(strides).rev() {
                if d > 1 && st != expect {
                    return None;
                }
                expect *= d as isize;
            }
            usize::try_from(base + start as isize).ok()
        }
        LoadKind::Padded { base, strides, valid, .. } => {
            let inside = shape.len() == 1
                && strides[0] == 1
                && valid[0].0 <= start as isize
                && (start + n) as isize <= valid[0].1;
            if inside {
                usize::try_from(base + start as isize).ok()
            } else {
                None
            }
        }
    }
}

/// Runs the program on one block `[start, start+n)`, leaving results in the registers.
fn run_block(prog: &Program, inputs: &[&Array], regs: &mut [Data], start: usize, n: usize) {
    run_block_into(prog, inputs, regs, &[], start, n)
}

/// [`run_block`], where the registers marked in `whole` are whole output buffers (written at
/// `start..start + n`; only instructions [`step`] runs may be marked).
fn run_block_into(prog: &Program, inputs: &[&Array], regs: &mut [Data], whole: &[bool], start: usize, n: usize) {
    // Contiguous inputs are read in place; other loads fill their register. (On the stack
    // for short programs: a loop over a few elements, run once per iteration of a compiled
    // `while`, spent a noticeable share of its time allocating this.)
    const ON_STACK: usize = 32;
    let mut stack: [Option<View>; ON_STACK] = [None; ON_STACK];
    let mut heap: Vec<Option<View>> = Vec::new();
    let direct: &mut [Option<View>] = if prog.instrs.len() <= ON_STACK {
        &mut stack[..prog.instrs.len()]
    } else {
        heap.resize(prog.instrs.len(), None);
        &mut heap
    };
    for (d, instr) in direct.iter_mut().zip(&prog.instrs) {
        if let Instr::Load { input, kind } = instr {
            if let Some(at) = in_place_offset(kind, &prog.shape, start, n) {
                *d = Some(View::range(&inputs[*input].data, at, n));
            }
        }
    }
    let direct: &[Option<View>] = direct;
    // Scalars read only by arithmetic stay one value.
    let (mut lazy_stack, mut lazy_heap) = ([false; ON_STACK], Vec::new());
    let lazy: &mut [bool] = if prog.instrs.len() <= ON_STACK {
        &mut lazy_stack[..prog.instrs.len()]
    } else {
        lazy_heap.resize(prog.instrs.len(), false);
        &mut lazy_heap
    };
    lazy_scalars(prog, lazy);
    let lazy: &[bool] = lazy;
    for (i, instr) in prog.instrs.iter().enumerate() {
        match instr {
            Instr::Load { .. } if direct[i].is_some() => {}
            Instr::Load { input, kind } if lazy.get(i).copied().unwrap_or(false) => {
                load(&mut regs[i], inputs[*input], kind, &prog.shape, start, 1)
            }
            Instr::Load { input, kind } => load(&mut regs[i], inputs[*input], kind, &prog.shape, start, n),
            Instr::Mask { value, valid, fill } => {
                let (before, rest) = regs.split_at_mut(i);
                let at = if whole.get(*value).copied().unwrap_or(false) { start } else { 0 };
                let src = direct[*value].unwrap_or_else(|| View::range(&before[*value], at, n));
                mask(&mut rest[0], src, valid, *fill, &prog.shape, start, n);
            }
            _ => {
                let (before, rest) = regs.split_at_mut(i);
                let at = if whole.get(i).copied().unwrap_or(false) { start } else { 0 };
                step(instr, before, direct, lazy, whole, ViewMut::range(&mut rest[0], at, n), start, n)
            }
        }
    }
}

/// A mutably borrowed, typed run of elements: the block of a register (or of an output
/// buffer) an instruction writes.
enum ViewMut<'a> {
    F32(&'a mut [f32]),
    F64(&'a mut [f64]),
    I32(&'a mut [i32]),
    I64(&'a mut [i64]),
    Bool(&'a mut [bool]),
}

impl<'a> ViewMut<'a> {
    fn range(d: &'a mut Data, start: usize, n: usize) -> ViewMut<'a> {
        match d {
            Data::F32(v) => ViewMut::F32(&mut v[start..start + n]),
            Data::F64(v) => ViewMut::F64(&mut v[start..start + n]),
            Data::I32(v) => ViewMut::I32(&mut v[start..start + n]),
            Data::I64(v) => ViewMut::I64(&mut v[start..start + n]),
            Data::Bool(v) => ViewMut::Bool(&mut v[start..start + n]),
        }
    }
}

/// A borrowed, typed run of elements: a register or a slice of an input.
#[derive(Clone, Copy)]
enum View<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
    I32(&'a [i32]),
    I64(&'a [i64]),
    Bool(&'a [bool]),
}

impl<'a> View<'a> {
    fn range(d: &'a Data, start: usize, n: usize) -> View<'a> {
        match d {
            Data::F32(v) => View::F32(&v[start..start + n]),
            Data::F64(v) => View::F64(&v[start..start + n]),
            Data::I32(v) => View::I32(&v[start..start + n]),
            Data::I64(v) => View::I64(&v[start..start + n]),
            Data::Bool(v) => View::Bool(&v[start..start + n]),
        }
    }
}

/// A loop's registers (one block of elements per instruction), taken from this thread's
/// spare sets and given back to them when dropped: a small loop run once per iteration of a
/// compiled `while` would otherwise allocate (and zero) one buffer per instruction each time.
/// A register is written before it is read in every block, so reused ones need no zeroing.
struct Registers(Vec<Data>);

/// The most spare register sets a thread keeps (whole sets, one per recent program shape).
const SPARE_SETS: usize = 16;

/// The most elements (all registers together) of a set kept spare. Loops of many
/// instructions (a high-order jet's, 30-odd registers of 512 elements) fit: allocating
/// theirs per run cost more than the allocation itself, since glibc gives the freed set
/// back to the system (`brk` trim) and the next run page-faults it in again (w10's
/// interpreted plans: 247 register allocations per call before).
const SPARE_SET_ELEMENTS: usize = 1 << 17;

/// The most elements all of a thread's spare sets hold together (2 MiB of f64; 16 sets of
/// 8192 elements, the bound before, held 1 MiB); the oldest sets go first.
const SPARE_ELEMENTS: usize = 1 << 18;

thread_local! {
    /// Register sets of loops run on this thread, most recent last.
    static SPARES: std::cell::RefCell<Vec<Vec<Data>>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl std::ops::Deref for Registers {
    type Target = Vec<Data>;
    fn deref(&self) -> &Vec<Data> {
        &self.0
    }
}

impl std::ops::DerefMut for Registers {
    fn deref_mut(&mut self) -> &mut Vec<Data> {
        &mut self.0
    }
}

impl Drop for Registers {
    fn drop(&mut self) {
        if self.0.is_empty() || self.0.len() * self.0[0].len() > SPARE_SET_ELEMENTS {
            return;
        }
        let set = std::mem::take(&mut self.0);
        let _ = SPARES.try_with(|s| {
            if let Ok(mut s) = s.try_borrow_mut() {
                let size = |set: &Vec<Data>| set.len() * set.first().map_or(0, Data::len);
                let mut held: usize = s.iter().map(size).sum::<usize>() + size(&set);
                while !s.is_empty() && (s.len() >= SPARE_SETS || held > SPARE_ELEMENTS) {
                    held -= size(&s.remove(0));
                }
                s.push(set);
            }
        });
    }
}

fn registers(prog: &Program) -> Registers {
    let len = BLOCK.min(numel(&prog.shape));
    let fits = |set: &Vec<Data>| {
        set.len() == prog.dtypes.len() && set.iter().zip(&prog.dtypes).all(|(d, &t)| d.dtype() == t && d.len() == len)
    };
    let spare = SPARES
        .try_with(|s| {
            let mut s = s.try_borrow_mut().ok()?;
            let i = s.iter().rposition(fits)?;
            Some(s.swap_remove(i))
        })
        .ok()
        .flatten();
    Registers(spare.unwrap_or_else(|| prog.dtypes.iter().map(|&d| Data::filled(d, 0.0, len)).collect()))
}

/// A raw pointer that may cross threads: each task writes a disjoint range.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T>(pub(crate) *mut T);
// SAFETY: a `SendPtr` only carries an address between threads; every dereference is an
// `unsafe` block of its own that argues why its range is not touched by another thread.
// Crate-private: safe code outside the crate cannot make or use one.
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: as for `Send`: sharing the address is harmless, dereferences are argued where made.
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

/// Copies `src` to elements `start..` of the typed buffer behind `base`.
///
/// # Safety
/// `base` must point to a live buffer of `T` with at least `start + src.len()` elements
/// that no one else reads or writes in that range meanwhile.
unsafe fn write_block<T: Copy>(base: *mut u8, src: &[T], start: usize) {
    // SAFETY: the caller guarantees the destination range (see above); `src` is a slice of
    // another allocation (a register), so the ranges cannot overlap.
    std::ptr::copy_nonoverlapping(src.as_ptr(), (base as *mut T).add(start), src.len());
}

/// The address of each input's first element, for native kernels.
fn input_pointers(inputs: &[&Array]) -> Vec<SendPtr<c_void>> {
    inputs.iter().map(|a| SendPtr(with_data!(&a.data, v => v.as_ptr() as *mut c_void))).collect()
}

/// The address of element `start` of a typed buffer.
///
/// # Safety
/// `base` must point to a buffer of `dtype` elements with at least `start` of them.
unsafe fn element_pointer(base: *mut u8, dtype: DType, start: usize) -> *mut c_void {
    // SAFETY: the caller guarantees `start` elements lie inside the buffer (see above).
    unsafe { base.add(start * dtype.size_in_bytes()) as *mut c_void }
}

/// Runs a program without reduction: one full-size array per output register.
fn run_map(
    prog: &Program,
    native: Option<&Kernel>,
    inputs: &[&Array],
    buffer: &mut dyn FnMut(DType, usize) -> Data,
) -> Vec<Array> {
    let total = numel(&prog.shape);
    let mut outs: Vec<Data> = prog.outputs.iter().map(|&r| buffer(prog.dtypes[r], total)).collect();
    // The kernels below write `total` elements through raw pointers: the buffers must hold them.
    for (d, &r) in outs.iter().zip(&prog.outputs) {
        assert!(d.len() == total && d.dtype() == prog.dtypes[r], "fused loop: output buffer of the wrong size");
    }
    if native.is_none() && total > 0 && !(total >= MAP_PARALLEL_MIN && crate::threads::parallel()) {
        // On this thread (small and medium loops, e.g. a loop body run per iteration): the
        // output registers that arithmetic defines are the output buffers themselves, each
        // block written in place (no copy out of a register), without the task machinery.
        let mut regs = registers(prog);
        let mut whole = vec![false; prog.instrs.len()];
        for (k, &r) in prog.outputs.iter().enumerate() {
            let computed = !matches!(prog.instrs[r], Instr::Load { .. } | Instr::Mask { .. });
            if computed && prog.outputs.iter().filter(|&&q| q == r).count() == 1 {
                whole[r] = true;
                std::mem::swap(&mut regs[r], &mut outs[k]);
            }
        }
        for b in 0..total.div_ceil(BLOCK) {
            let start = b * BLOCK;
            let n = BLOCK.min(total - start);
            run_block_into(prog, inputs, &mut regs, &whole, start, n);
            for (d, &r) in outs.iter_mut().zip(&prog.outputs) {
                if whole[r] {
                    continue;
                }
                match (d, &regs[r]) {
                    (Data::F32(o), Data::F32(v)) => o[start..start + n].copy_from_slice(&v[..n]),
                    (Data::F64(o), Data::F64(v)) => o[start..start + n].copy_from_slice(&v[..n]),
                    (Data::I32(o), Data::I32(v)) => o[start..start + n].copy_from_slice(&v[..n]),
                    (Data::I64(o), Data::I64(v)) => o[start..start + n].copy_from_slice(&v[..n]),
                    (Data::Bool(o), Data::Bool(v)) => o[start..start + n].copy_from_slice(&v[..n]),
                    _ => unreachable!("an output register has its output's dtype"),
                }
            }
        }
        // The buffers back to the outputs, the registers back to the set (for reuse).
        for (k, &r) in prog.outputs.iter().enumerate() {
            if whole[r] {
                std::mem::swap(&mut regs[r], &mut outs[k]);
            }
        }
        return outs.into_iter().map(|d| Array::new(prog.shape.clone(), d)).collect();
    }
    // Each output's base pointer, by dtype; tasks write disjoint block ranges.
    let ptrs: Vec<(SendPtr<u8>, DType)> =
        outs.iter_mut().map(|d| (SendPtr(with_data!(d, v => v.as_mut_ptr() as *mut u8)), d.dtype())).collect();
    let in_ptrs = input_pointers(inputs);
    let work = |range: std::ops::Range<usize>| {
        if let Some(kernel) = native {
            let (start, end) = (range.start * BLOCK, (range.end * BLOCK).min(total));
            let ins: Vec<*const c_void> = in_ptrs.iter().map(|p| p.0 as *const c_void).collect();
            // SAFETY: each output has `total` elements of its dtype and this task alone writes
            // elements [start, end) of them (asserted above); the inputs are the program's:
            // this module is crate-private, and plans build programs from validated graphs
            // and check their arguments' types at `Plan::run`, so public code cannot pass others.
            let outs: Vec<*mut c_void> =
                ptrs.iter().map(|&(SendPtr(p), d)| unsafe { element_pointer(p, d, start) }).collect();
            unsafe { kernel.run(&ins, &outs, start, end - start) };
            return;
        }
        let mut regs = registers(prog);
        for b in range {
            let start = b * BLOCK;
            let n = BLOCK.min(total - start);
            run_block(prog, inputs, &mut regs, start, n);
            for (k, &r) in prog.outputs.iter().enumerate() {
                let (SendPtr(p), _) = ptrs[k];
                // SAFETY: `p` points to an output of `total` elements of this register's dtype,
                // and blocks [start, start+n) are written by exactly one task (sizes asserted above).
                unsafe { with_data!(&regs[r], v => write_block(p, &v[..n], start)) }
            }
        }
    };
    for_each_task(total, &work);
    let out_shape = prog.shape.clone();
    outs.into_iter().map(|d| Array::new(out_shape.clone(), d)).collect()
}

/// Calls `work` on ranges of blocks covering a map of `total` elements: fixed ranges of
/// [`MAP_TASK`] elements over the pool for maps of at least [`MAP_PARALLEL_MIN`] (so results
/// never depend on the thread count), one range here otherwise (handing a single task to the
/// pool would only add a thread wake-up).
fn for_each_task(total: usize, work: &(dyn Fn(std::ops::Range<usize>) + Sync)) {
    let blocks = total.div_ceil(BLOCK);
    if total >= MAP_PARALLEL_MIN && crate::threads::parallel() {
        let per_task = (MAP_TASK / BLOCK).max(1);
        (0..blocks.div_ceil(per_task))
            .into_par_iter()
            .for_each(|t| work(t * per_task..((t + 1) * per_task).min(blocks)));
    } else {
        work(0..blocks);
    }
}

/// Runs a program (without reduction) through its native kernel, with output `k` written
/// over input `p` where `in_place[k] = Some(p)`. The caller gives those inputs up: `owned`
/// holds `(p, array)` for them, and `inputs[p]` is `None`. Their storage becomes the outputs.
pub fn run_in_place(
    prog: &Program,
    kernel: &Kernel,
    inputs: &[Option<&Array>],
    mut owned: Vec<(usize, Array)>,
    in_place: &[Option<usize>],
    buffer: &mut dyn FnMut(DType, usize) -> Data,
) -> Vec<Array> {
    assert!(prog.reduce.is_none(), "reductions do not run in place");
    let total = numel(&prog.shape);
    let mut in_ptrs: Vec<SendPtr<c_void>> = inputs
        .iter()
        .map(|a| SendPtr(a.map_or(std::ptr::null_mut(), |a| with_data!(&a.data, v => v.as_ptr() as *mut c_void))))
        .collect();
    for (p, a) in owned.iter_mut() {
        assert_eq!(a.data.len(), total, "an in-place input has the loop's size");
        in_ptrs[*p] = SendPtr(with_data!(&mut a.data, v => v.as_mut_ptr() as *mut c_void));
    }
    let mut outs: Vec<Option<Data>> = prog
        .outputs
        .iter()
        .enumerate()
        .map(|(k, &r)| in_place.get(k).copied().flatten().is_none().then(|| buffer(prog.dtypes[r], total)))
        .collect();
    for d in outs.iter().flatten() {
        assert_eq!(d.len(), total, "fused loop: output buffer of the wrong size");
    }
    // Output base pointers (an in-place output's is its input's; the kernel writes through that).
    let ptrs: Vec<(SendPtr<u8>, DType)> = outs
        .iter_mut()
        .enumerate()
        .map(|(k, d)| match (d, in_place.get(k).copied().flatten()) {
            (Some(d), _) => (SendPtr(with_data!(d, v => v.as_mut_ptr() as *mut u8)), d.dtype()),
            (None, Some(p)) => (SendPtr(in_ptrs[p].0 as *mut u8), prog.dtypes[prog.outputs[k]]),
            (None, None) => unreachable!("an output without storage"),
        })
        .collect();
    let work = |range: std::ops::Range<usize>| {
        let (start, end) = (range.start * BLOCK, (range.end * BLOCK).min(total));
        let ins: Vec<*const c_void> = in_ptrs.iter().map(|p| p.0 as *const c_void).collect();
        // SAFETY: every pointer addresses `total` elements of its dtype (the owned inputs were
        // checked above); this task alone writes elements [start, end) of each output, and an
        // in-place output's kernel reads each element of its input before writing it. No Rust
        // reference to the owned arrays exists while the kernel runs.
        let outs: Vec<*mut c_void> =
            ptrs.iter().map(|&(SendPtr(p), d)| unsafe { element_pointer(p, d, start) }).collect();
        unsafe { kernel.run(&ins, &outs, start, end - start) };
    };
    for_each_task(total, &work);
    let shape = prog.shape.clone();
    let mut owned: Vec<Option<(usize, Array)>> = owned.into_iter().map(Some).collect();
    outs.into_iter()
        .enumerate()
        .map(|(k, d)| match (d, in_place.get(k).copied().flatten()) {
            (Some(d), _) => Array::new(shape.clone(), d),
            (None, Some(p)) => {
                let at = owned.iter().position(|o| o.as_ref().is_some_and(|(q, _)| *q == p)).expect("owned input");
                let (_, a) = owned[at].take().expect("taken once");
                Array::new(shape.clone(), a.data)
            }
            (None, None) => unreachable!("an output without storage"),
        })
        .collect()
}

trait Accumulate: Copy {
    fn identity(op: ReduceOp) -> Self;
    fn combine(op: ReduceOp, a: Self, b: Self) -> Self;
}

macro_rules! accumulate_float {
    ($t:ty) => {
        impl Accumulate for $t {
            fn identity(op: ReduceOp) -> Self {
                match op {
                    ReduceOp::Sum => 0.0,
                    ReduceOp::Prod => 1.0,
                    ReduceOp::Max => <$t>::NEG_INFINITY,
                    ReduceOp::Min => <$t>::INFINITY,
                }
            }
            #[inline(always)]
            fn combine(op: ReduceOp, a: Self, b: Self) -> Self {
                match op {
                    ReduceOp::Sum => a + b,
                    ReduceOp::Prod => a * b,
                    // NaN wins on either side (the first one seen is kept), as in the eager
                    // kernels.
                    ReduceOp::Max => {
                        if !a.is_nan() && (b.is_nan() || b > a) {
                            b
                        } else {
                            a
                        }
                    }
                    ReduceOp::Min => {
                        if !a.is_nan() && (b.is_nan() || b < a) {
                            b
                        } else {
                            a
                        }
                    }
                }
            }
        }
    };
}
accumulate_float!(f32);
accumulate_float!(f64);

/// Sums (or otherwise reduces) a block into an accumulator, in 8 interleaved lanes
/// that are combined at the end (vectorisable, and in a fixed order). Compiled for the
/// widest vectors this CPU has (picked at run time); the lanes, hence the result, are the
/// same in every version.
/// Short slices (rows of a few elements, many to a block) are reduced inline, without the
/// call: it would cost more than the wider vectors save.
#[inline(always)]
fn reduce_block<T: Accumulate>(op: ReduceOp, v: &[T]) -> T {
    if v.len() >= 128 {
        return reduce_block_wide(op, v);
    }
    reduce_block_lanes(op, v)
}

multiversion! { fn reduce_block_wide<T: Accumulate>(op: ReduceOp, v: &[T]) -> T {
    reduce_block_lanes(op, v)
}}

/// [`reduce_block`]'s body (one definition, inlined into each version), with `op` made a
/// constant in each arm so the lane loop holds no match.
#[inline(always)]
fn reduce_block_lanes<T: Accumulate>(op: ReduceOp, v: &[T]) -> T {
    match op {
        ReduceOp::Sum => block_in_lanes(ReduceOp::Sum, v),
        ReduceOp::Prod => block_in_lanes(ReduceOp::Prod, v),
        ReduceOp::Max => block_in_lanes(ReduceOp::Max, v),
        ReduceOp::Min => block_in_lanes(ReduceOp::Min, v),
    }
}

#[inline(always)]
fn block_in_lanes<T: Accumulate>(op: ReduceOp, v: &[T]) -> T {
    if v.len() < 8 {
        // No whole lane group: the identity combined with the elements in order (what the
        // lanes below compute for such a slice, without combining eight identities).
        return v.iter().fold(T::identity(op), |a, &x| T::combine(op, a, x));
    }
    let mut lanes = [T::identity(op); 8];
    let chunks = v.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for k in 0..8 {
            lanes[k] = T::combine(op, lanes[k], c[k]);
        }
    }
    let mut acc = T::identity(op);
    for l in lanes {
        acc = T::combine(op, acc, l);
    }
    for &x in tail {
        acc = T::combine(op, acc, x);
    }
    acc
}

/// Runs a program whose single output is reduced over its trailing `axes` axes.
fn run_reduce(prog: &Program, native: Option<&Kernel>, inputs: &[&Array], op: ReduceOp, axes: usize) -> Array {
    // The axes are counted, not derived from the row length: axes of size 1 leave that unchanged.
    let (out_shape, row_shape) = prog.shape.split_at(prog.shape.len() - axes);
    let (out_shape, row) = (out_shape.to_vec(), numel(row_shape));
    let total = numel(&prog.shape);
    let rows = total.checked_div(row).unwrap_or(0);
    let out_reg = prog.outputs[0];
    let dtype = prog.dtypes[out_reg];
    let in_ptrs = input_pointers(inputs);
    // The kernel's input pointers, gathered once per range or task (not once per block).
    let kernel_inputs = || -> Vec<*const c_void> {
        match native {
            Some(_) => in_ptrs.iter().map(|p| p.0 as *const c_void).collect(),
            None => Vec::new(),
        }
    };
    // Computes elements `s..s+n` (at most one block) into the output's register.
    let fill_block = |regs: &mut Vec<Data>, ins: &[*const c_void], s: usize, n: usize| match native {
        Some(kernel) => {
            let out = with_data!(&mut regs[out_reg], v => v.as_mut_ptr() as *mut c_void);
            // SAFETY: the register holds `BLOCK >= n` elements of the output's dtype (both
            // callers pass at most a block); `ins` are the program's inputs (see `run_map`: not
            // reachable from public code).
            unsafe { kernel.run(ins, &[out], s, n) };
        }
        None => run_block(prog, inputs, regs, s, n),
    };
    // Reduce a range of one row: blocks in order, each block reduced in lanes.
    let reduce_range = |regs: &mut Vec<Data>, start: usize, end: usize| -> f64 {
        let mut acc64: Option<f64> = None;
        let mut s = start;
        let ins = kernel_inputs();
        while s < end {
            let n = BLOCK.min(end - s);
            fill_block(regs, &ins, s, n);
            let part = match &regs[out_reg] {
                Data::F32(v) => reduce_block(op, &v[..n]) as f64,
                Data::F64(v) => reduce_block(op, &v[..n]),
                _ => unreachable!("fused reductions are float-only"),
            };
            acc64 = Some(match acc64 {
                None => part,
                Some(a) => match dtype {
                    DType::F32 => f32::combine(op, a as f32, part as f32) as f64,
                    _ => f64::combine(op, a, part),
                },
            });
            s += n;
        }
        acc64.unwrap_or_else(|| f64::identity(op))
    };
    let mut out = vec![0f64; rows];
    // Short rows (a reduction over a trailing axis of 2, say): each block holds many whole
    // rows, so the instructions' dispatch is paid per block, not per row. Each row is still
    // reduced on its own by `reduce_block`, as the one-block range below does (same results).
    let group = if row > 0 && row < BLOCK { BLOCK / row } else { 1 };
    if group > 1 && rows > 1 {
        // `slots` has at most `group` rows: one block.
        let reduce_rows = |regs: &mut Vec<Data>, ins: &[*const c_void], first: usize, slots: &mut [f64]| {
            fill_block(regs, ins, first * row, slots.len() * row);
            for (j, slot) in slots.iter_mut().enumerate() {
                let seg = j * row..(j + 1) * row;
                *slot = match &regs[out_reg] {
                    Data::F32(v) => reduce_block(op, &v[seg]) as f64,
                    Data::F64(v) => reduce_block(op, &v[seg]),
                    _ => unreachable!("fused reductions are float-only"),
                };
            }
        };
        if total > PARALLEL_MIN && crate::threads::parallel() {
            // Tasks of about PARALLEL_MIN elements, each a run of whole blocks.
            let per_task = group * (PARALLEL_MIN / BLOCK).max(1);
            out.par_chunks_mut(per_task).enumerate().for_each_init(
                || (registers(prog), kernel_inputs()),
                |(regs, ins), (t, chunk)| {
                    for (c, slots) in chunk.chunks_mut(group).enumerate() {
                        reduce_rows(regs, ins, t * per_task + c * group, slots);
                    }
                },
            );
        } else {
            let (mut regs, ins) = (registers(prog), kernel_inputs());
            for (c, slots) in out.chunks_mut(group).enumerate() {
                reduce_rows(&mut regs, &ins, c * group, slots);
            }
        }
    } else if rows == 1 && row > PARALLEL_MIN {
        // One long row: fixed-size pieces reduced in parallel, combined in order.
        let piece = PARALLEL_MIN;
        // (The same pieces on one thread: combining them in order is what fixes the result.)
        let pieces = 0..row.div_ceil(piece);
        let parts: Vec<f64> = if crate::threads::parallel() {
            pieces
                .into_par_iter()
                .map(|p| {
                    let mut regs = registers(prog);
                    reduce_range(&mut regs, p * piece, ((p + 1) * piece).min(row))
                })
                .collect()
        } else {
            let mut regs = registers(prog);
            pieces.map(|p| reduce_range(&mut regs, p * piece, ((p + 1) * piece).min(row))).collect()
        };
        let mut acc = parts[0];
        for &p in &parts[1..] {
            acc = match dtype {
                DType::F32 => f32::combine(op, acc as f32, p as f32) as f64,
                _ => f64::combine(op, acc, p),
            };
        }
        out[0] = acc;
    } else if total > PARALLEL_MIN && rows > 1 && crate::threads::parallel() {
        out.par_iter_mut()
            .enumerate()
            .for_each_init(|| registers(prog), |regs, (r, slot)| *slot = reduce_range(regs, r * row, (r + 1) * row));
    } else {
        let mut regs = registers(prog);
        for (r, slot) in out.iter_mut().enumerate() {
            *slot = reduce_range(&mut regs, r * row, (r + 1) * row);
        }
    }
    let data = match dtype {
        DType::F32 => Data::F32(out.iter().map(|&v| v as f32).collect()),
        _ => Data::F64(out),
    };
    Array::new(out_shape, data)
}

/// Runs a fused program on its inputs.
///
/// `buffer(dtype, len)` supplies storage for each full-size output (its contents are
/// overwritten), so a caller can recycle buffers between runs.
/// With `native`, the program's compiled kernel replaces the interpreter (same results).
pub fn run(
    prog: &Program,
    native: Option<&Kernel>,
    inputs: &[&Array],
    buffer: &mut dyn FnMut(DType, usize) -> Data,
) -> Vec<Array> {
    match prog.reduce {
        None => run_map(prog, native, inputs, buffer),
        Some((op, axes)) => vec![run_reduce(prog, native, inputs, op, axes)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `a * b + a` over `shape`, both inputs contiguous f32.
    fn map(shape: Shape) -> Program {
        Program {
            shape,
            instrs: vec![
                Instr::Load { input: 0, kind: LoadKind::Contiguous },
                Instr::Load { input: 1, kind: LoadKind::Contiguous },
                Instr::Binary(BinaryOp::Mul, 0, 1),
                Instr::Binary(BinaryOp::Add, 2, 0),
            ],
            dtypes: vec![DType::F32; 4],
            outputs: vec![3],
            reduce: None,
        }
    }

    #[test]
    fn maps_of_a_layer_split_over_threads_and_match_the_elementwise_result() {
        // A 128×512 map (the loops between w2-hvp's products) splits; a reduction of the same
        // size, and a 200×200 map, stay whole.
        let parallel = crate::threads::parallel();
        assert_eq!(runs_in_parallel(&map(vec![128, 512])), parallel);
        assert!(!runs_in_parallel(&map(vec![200, 200])));
        let reduce = Program { reduce: Some((ReduceOp::Sum, 512)), ..map(vec![128, 512]) };
        assert!(!runs_in_parallel(&reduce));
        // Split into tasks, every element is still computed once and exactly: checked against
        // the same arithmetic element by element, for sizes around the task boundaries.
        for total in [MAP_PARALLEL_MIN, MAP_PARALLEL_MIN + 7, 128 * 784, 3 * PARALLEL_MIN + 100] {
            let a: Vec<f32> = (0..total).map(|i| (i % 97) as f32 * 0.25 - 3.0).collect();
            let b: Vec<f32> = (0..total).map(|i| (i % 89) as f32 * -0.5 + 1.0).collect();
            let (x, y) = (Array::new(vec![total], Data::F32(a.clone())), Array::new(vec![total], Data::F32(b.clone())));
            let out = run_map(&map(vec![total]), None, &[&x, &y], &mut |d, len| Data::filled(d, f64::NAN, len));
            let Data::F32(got) = &out[0].data else { panic!("f32 output") };
            assert_eq!(got.len(), total);
            for i in 0..total {
                assert_eq!(got[i], a[i] * b[i] + a[i], "element {i} of {total}");
            }
        }
    }

    /// Runs `prog` on `inputs` (the interpreter, one output buffer per output).
    fn interpret(prog: &Program, inputs: &[&Array]) -> Vec<Array> {
        run_map(prog, None, inputs, &mut |d, len| Data::filled(d, f64::NAN, len))
    }

    #[test]
    fn scalar_operands_and_offset_reads_give_the_elementwise_bits() {
        // Scalars read only by arithmetic stay one value (a division by a power of two becomes
        // the exact multiplication); slices at an offset and a concatenate's interior are read
        // in place. Every bit must match the same operations element by element, on special
        // values, on both sides of the block boundary, for divisors that are and are not exact
        // powers of two (2^1023: reciprocal subnormal; 2^-1074: reciprocal overflows).
        let n = 1000;
        let specials = [0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 5e-324, -2.2e-308, 1.7e308, 3.0];
        let xs: Vec<f64> = (0..n)
            .map(|i| if i % 7 == 0 { specials[i / 7 % specials.len()] } else { (i as f64 * 0.37).sin() * 1e3 })
            .collect();
        let x = Array::new(vec![n], Data::F64(xs.clone()));
        let prog = Program {
            shape: vec![n],
            instrs: vec![
                Instr::Load {
                    input: 0,
                    kind: LoadKind::Padded { base: -1, strides: vec![1], valid: vec![(1, n as isize)], fill: -0.0 },
                },
                Instr::Load { input: 1, kind: LoadKind::Scalar },
                Instr::Binary(BinaryOp::Div, 0, 1),
                Instr::Binary(BinaryOp::Sub, 1, 0),
                Instr::Binary(BinaryOp::Mul, 1, 1),
                Instr::Binary(BinaryOp::Add, 2, 4),
                Instr::Binary(BinaryOp::Add, 5, 3),
                Instr::Load { input: 0, kind: LoadKind::Contiguous },
                Instr::Binary(BinaryOp::Atan2, 7, 1),
                Instr::Binary(BinaryOp::Add, 6, 8),
                Instr::Load { input: 1, kind: LoadKind::Scalar },
                Instr::Binary(BinaryOp::Lt, 7, 10),
                Instr::Select(11, 9, 10),
            ],
            dtypes: [vec![DType::F64; 11], vec![DType::Bool, DType::F64]].concat(),
            outputs: vec![12, 2, 1],
            reduce: None,
        };
        let b = |op, a, c| <f64 as Real>::binary(op, a, c);
        for c in [
            2.0,
            6.0,
            0.5,
            -4.0,
            2f64.powi(1023),
            2f64.powi(-1022),
            5e-324,
            0.0,
            -0.0,
            f64::INFINITY,
            f64::NAN,
            3.0e-310,
        ] {
            let s = Array::new(vec![], Data::F64(vec![c]));
            let out = interpret(&prog, &[&x, &s]);
            let (Data::F64(got), Data::F64(quot), Data::F64(scal)) = (&out[0].data, &out[1].data, &out[2].data) else {
                panic!("f64 outputs")
            };
            for i in 0..n {
                let prev = if i == 0 { -0.0 } else { xs[i - 1] };
                let q = b(BinaryOp::Div, prev, c);
                let v = b(
                    BinaryOp::Add,
                    b(BinaryOp::Add, b(BinaryOp::Add, q, b(BinaryOp::Mul, c, c)), b(BinaryOp::Sub, c, prev)),
                    b(BinaryOp::Atan2, xs[i], c),
                );
                let want = if xs[i] < c { v } else { c };
                assert_eq!(got[i].to_bits(), want.to_bits(), "element {i}, c = {c:e}: {} vs {want}", got[i]);
                assert_eq!(quot[i].to_bits(), q.to_bits(), "quotient {i}, c = {c:e}");
                assert_eq!(scal[i].to_bits(), c.to_bits(), "scalar output {i}");
            }
        }
        // A slice at an offset over a 2-D space (`x[1:991].reshape(10, 99)`), and f32 division.
        let slice = Program {
            shape: vec![10, 99],
            instrs: vec![
                Instr::Load { input: 0, kind: LoadKind::Strided { base: 1, strides: vec![99, 1] } },
                Instr::Load { input: 1, kind: LoadKind::Scalar },
                Instr::Binary(BinaryOp::Div, 0, 1),
            ],
            dtypes: vec![DType::F64; 3],
            outputs: vec![2],
            reduce: None,
        };
        let out = interpret(&slice, &[&x, &Array::new(vec![], Data::F64(vec![0.25]))]);
        let Data::F64(got) = &out[0].data else { panic!("f64 output") };
        for (k, g) in got.iter().enumerate() {
            assert_eq!(g.to_bits(), (xs[1 + k] / 0.25).to_bits(), "slice element {k}");
        }
        // An output written in place read again by a mask, and one register output twice.
        for outputs in [vec![1, 2], vec![1, 1, 2]] {
            let masked = Program {
                shape: vec![n],
                instrs: vec![
                    Instr::Load { input: 0, kind: LoadKind::Contiguous },
                    Instr::Unary(UnaryOp::Neg, 0),
                    Instr::Mask { value: 1, valid: vec![(3, n as isize - 3)], fill: 7.0 },
                ],
                dtypes: vec![DType::F64; 3],
                outputs: outputs.clone(),
                reduce: None,
            };
            let out = interpret(&masked, &[&x]);
            for (k, &r) in outputs.iter().enumerate() {
                let Data::F64(got) = &out[k].data else { panic!("f64 output") };
                for i in 0..n {
                    let want = if r == 2 && !(3..n - 3).contains(&i) { 7.0 } else { -xs[i] };
                    assert_eq!(got[i].to_bits(), want.to_bits(), "output {k} (r{r}) element {i}");
                }
            }
        }
        let xf: Vec<f32> = xs.iter().map(|&v| v as f32).collect();
        let f32prog = Program { dtypes: vec![DType::F32; 3], ..slice };
        for c in [0.25f32, 3.0, 2f32.powi(127), 1e-45] {
            let out = interpret(
                &f32prog,
                &[&Array::new(vec![n], Data::F32(xf.clone())), &Array::new(vec![], Data::F32(vec![c]))],
            );
            let Data::F32(got) = &out[0].data else { panic!("f32 output") };
            for (k, g) in got.iter().enumerate() {
                assert_eq!(g.to_bits(), (xf[1 + k] / c).to_bits(), "f32 element {k}, c = {c:e}");
            }
        }
    }
}
