//! The GradBench evals, one module each.
//!
//! Each module has a `prepare(function, input)` that parses the input into
//! tensors and builds the function to time, once per input: a [`Run`] closure
//! that owns the tensors and the derivative closures made by cotangent's
//! transformations (`grad(f)`, `jvp(..)`, ...). The protocol calls it as many
//! times as the eval asks and converts the last [`Output`] to JSON outside the
//! timing. (When cotangent gains `jit`, wrapping the derivative closure built
//! in `prepare`, e.g. `jit(grad(f))`, compiles it once per input.)

pub mod ba;
pub mod det;
pub mod gmm;
pub mod hello;
pub mod ht;
pub mod kmeans;
pub mod llsq;
pub mod lse;
pub mod lstm;
pub mod ode;
pub mod particle;
pub mod saddle;

use crate::limits::Limits;
use cotangent::{grad, jacfwd, jvp, vmap_axes, Tensor, Tree};
use serde_json::{Map, Number, Value};

/// What a function returns: tensors, possibly gathered in a JSON object.
///
/// A tensor becomes a JSON number (0-d), an array (1-d) or nested arrays.
pub enum Output {
    /// A tensor, written as nested arrays of its shape.
    Tensor(Tensor),
    /// A JSON object with these fields.
    Object(Vec<(&'static str, Output)>),
}

impl From<Tensor> for Output {
    fn from(t: Tensor) -> Output {
        Output::Tensor(t)
    }
}

impl Output {
    /// The JSON value, or an error if it holds a number JSON cannot represent (NaN, ±inf).
    ///
    /// ```
    /// use cotangent::Tensor;
    /// use gradbench_tool::evals::Output;
    /// let out = Output::from(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]));
    /// assert_eq!(out.to_json().unwrap(), serde_json::json!([[1.0, 2.0], [3.0, 4.0]]));
    /// ```
    pub fn to_json(&self) -> Result<Value, String> {
        match self {
            Output::Tensor(t) => {
                let data = t.to_f64_vec();
                nested(&data, &t.shape())
            }
            Output::Object(fields) => {
                let mut map = Map::new();
                for (name, v) in fields {
                    map.insert(name.to_string(), v.to_json()?);
                }
                Ok(Value::Object(map))
            }
        }
    }
}

fn nested(data: &[f64], shape: &[usize]) -> Result<Value, String> {
    match shape.split_first() {
        None => Number::from_f64(data[0])
            .map(Value::Number)
            .ok_or_else(|| format!("the output contains a non-finite number ({})", data[0])),
        Some((&n, rest)) => {
            let stride: usize = rest.iter().product();
            (0..n)
                .map(|i| nested(&data[i * stride..(i + 1) * stride], rest))
                .collect::<Result<Vec<Value>, String>>()
                .map(Value::Array)
        }
    }
}

/// A prepared function: call it to run the benchmarked computation once. A run
/// fails only where the computation has a data-dependent loop that may not end
/// (particle, saddle), with an error naming the input field.
pub type Run = Box<dyn Fn() -> Result<Output, String>>;

/// The modules this tool implements, by GradBench name.
pub const MODULES: &[&str] =
    &["hello", "lse", "llsq", "gmm", "kmeans", "ode", "lstm", "det", "particle", "saddle", "ba", "ht"];

/// Parses `input` for `module`'s `function` and builds the function to time.
///
/// Errors name the unknown module or function, or what is wrong with the input,
/// including sizes beyond `limits` (checked against the input's actual data, with
/// checked arithmetic, before anything is allocated).
pub fn prepare(module: &str, function: &str, input: &Value, limits: &Limits) -> Result<Run, String> {
    match module {
        "hello" => hello::prepare(function, input),
        "lse" => lse::prepare(function, input),
        "llsq" => llsq::prepare(function, input, limits),
        "gmm" => gmm::prepare(function, input, limits),
        "kmeans" => kmeans::prepare(function, input, limits),
        "ode" => ode::prepare(function, input, limits),
        "lstm" => lstm::prepare(function, input, limits),
        "det" => det::prepare(function, input, limits),
        "particle" => particle::prepare(function, input, limits),
        "saddle" => saddle::prepare(function, input, limits),
        "ba" => ba::prepare(function, input, limits),
        "ht" => ht::prepare(function, input, limits),
        _ => Err(format!("unknown module `{module}`")),
    }
}

/// Prepares `module` when GradBench defines it (its `define` message, untimed, which is
/// when GradBench's own C++ tools build their binaries): modules whose functions run one
/// plan of a fixed size for every input trace it and compile it to native code here, so
/// no evaluation waits for or competes with the compiler. Others do nothing.
///
/// ```
/// use gradbench_tool::evals::define;
/// define("hello"); // nothing to prepare
/// define("ht"); // compiles ht's per-point plan
/// ```
pub fn define(module: &str) {
    match module {
        "ba" => ba::warm_up(),
        "ht" => ht::warm_up(),
        _ => {}
    }
}

/// The error for a function name a module does not have.
pub(crate) fn unknown_function(module: &str, function: &str, known: &[&str]) -> String {
    format!("module `{module}` has no function `{function}` (it has: {})", known.join(", "))
}

/// Forward or reverse mode, as named by the particle and saddle functions
/// (`rf` = reverse outer derivative, forward inner derivative).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward mode (`jvp`; a gradient takes one jvp per input, batched with `vmap`).
    Forward,
    /// Reverse mode (`vjp`; a gradient is one pullback).
    Reverse,
}

impl Mode {
    /// The `(outer, inner)` modes named by `rr`, `ff`, `fr` or `rf`.
    pub fn pair(function: &str) -> Option<(Mode, Mode)> {
        let m = |c| match c {
            'f' => Some(Mode::Forward),
            'r' => Some(Mode::Reverse),
            _ => None,
        };
        let cs: Vec<char> = function.chars().collect();
        match cs.as_slice() {
            [a, b] => Some((m(*a)?, m(*b)?)),
            _ => None,
        }
    }
}

/// The gradient of a scalar function of a vector, in the given mode:
/// `grad(f)` (reverse) or `jacfwd(f)` (forward: a `vmap` of `jvp` over the basis).
///
/// ```
/// use cotangent::Tensor;
/// use gradbench_tool::evals::{gradient, Mode};
/// let x = Tensor::from_vec(vec![1.0, 2.0], &[2]);
/// for mode in [Mode::Forward, Mode::Reverse] {
///     let g = gradient(mode, &x, |x: &Tensor| (x * x).sum_all());
///     assert_eq!(g.to_vec::<f64>(), vec![2.0, 4.0]);
/// }
/// ```
pub fn gradient(mode: Mode, x: &Tensor, f: impl Fn(&Tensor) -> Tensor) -> Tensor {
    match mode {
        Mode::Reverse => grad(f)(x),
        Mode::Forward => jacfwd(f)(x),
    }
}

/// The names of the four particle/saddle functions.
pub(crate) const MODE_FUNCTIONS: &[&str] = &["rr", "ff", "fr", "rf"];

/// Forward mode along several directions at once: `f(primals)` and its directional
/// derivatives along each `tangents[i, ...]` (every tangent leaf has a leading
/// direction axis), as `vmap` of `jvp` over the tangents, the way `jacfwd` works.
///
/// ```
/// use cotangent::{DType, Tensor};
/// use gradbench_tool::evals::jvp_dirs;
/// let x = Tensor::from_vec(vec![1.0, 2.0], &[2]);
/// let (y, dy) = jvp_dirs(|x: &Tensor| (x * x).sum_all(), &x, &Tensor::eye(2, DType::F64));
/// assert_eq!(y.item::<f64>(), 5.0);
/// assert_eq!(dy.to_vec::<f64>(), vec![2.0, 4.0]);
/// ```
pub fn jvp_dirs<A: Tree, B: Tree>(f: impl Fn(&A) -> B, primals: &A, tangents: &A) -> (B, B) {
    let n = primals.leaves().len();
    let axes = [vec![None; n], vec![Some(0); n]].concat();
    let batched = vmap_axes(|(p, t): &(A, A)| jvp(&f, p, t), axes, 0);
    let copy = |a: &A| a.rebuild_from(a.leaves());
    let (out, dout) = batched(&(copy(primals), copy(tangents)));
    // The primal output does not depend on the mapped tangents: vmap broadcast it.
    (out.map_leaves(|t| t.index(0)), dout)
}
