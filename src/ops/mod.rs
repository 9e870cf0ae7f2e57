//! The primitive set.
//!
//! A [`Prim`] is one operation of the graph IR with its static parameters.
//! Each family has its own file, and each file holds everything about its
//! primitives: the type (shape and dtype) rule here, and the derivative and
//! batching rules beside it. Kernels live in [`crate::backend::cpu`].

pub mod collective;
pub mod control;
pub mod custom;
pub mod dot;
pub mod elementwise;
pub mod index;
pub mod linalg;
pub mod loops;
pub mod random;
pub mod reduce;
pub mod remat;
pub(crate) mod rules;
pub(crate) mod series;
pub mod sort;
pub mod structure;

use crate::array::Array;
use crate::ir::SubGraph;
use crate::shape::Shape;
use crate::{DType, TensorType};
use std::fmt;
use std::sync::Arc;

pub use elementwise::{BinaryOp, UnaryOp};
pub use reduce::{ArgOp, CumOp, ReduceOp};

/// One primitive operation with its static parameters.
///
/// Every node of a [`Graph`](crate::ir::Graph) carries one. Primitives are
/// strict: element-wise operands have identical shapes and dtypes (the
/// [`Tensor`](crate::Tensor) methods insert broadcasts), axes are already
/// non-negative, and every parameter is explicit.
#[derive(Clone, Debug, PartialEq)]
pub enum Prim {
    /// The k-th input of the graph.
    Input(usize),
    /// A concrete value baked into the graph.
    Constant(Arc<Array>),
    /// Element-wise unary function.
    Unary(UnaryOp),
    /// Element-wise binary function of two operands of equal type.
    Binary(BinaryOp),
    /// `select(pred, on_true, on_false)`: element-wise choice by a bool tensor.
    Select,
    /// Reduction over a sorted set of axes, which are removed.
    Reduce {
        /// The combining operation.
        op: ReduceOp,
        /// Sorted, distinct axes to reduce.
        axes: Vec<usize>,
    },
    /// Index of the largest/smallest element along one axis (i64, axis removed).
    /// Ties resolve to the first index; NaN counts as the extreme.
    Arg {
        /// Max or min.
        op: ArgOp,
        /// Axis to search.
        axis: usize,
    },
    /// Inclusive scan along an axis (cumsum, cumprod, cummax, cummin).
    Cumulative {
        /// The combining operation.
        op: CumOp,
        /// Axis of the scan.
        axis: usize,
        /// Scan from the end instead of the start.
        reverse: bool,
    },
    /// Same elements, new shape (same element count).
    Reshape {
        /// The new shape.
        shape: Shape,
    },
    /// Broadcast: operand axis `i` becomes output axis `dims[i]` (extent 1 or equal).
    BroadcastInDim {
        /// Output shape.
        shape: Shape,
        /// Where each operand axis goes, strictly increasing.
        dims: Vec<usize>,
    },
    /// Axis permutation: output axis `i` is operand axis `perm[i]`.
    Transpose {
        /// The permutation.
        perm: Vec<usize>,
    },
    /// Strided window `start..stop` step `stride` on every axis.
    Slice {
        /// First index per axis.
        start: Vec<usize>,
        /// One past the last index per axis.
        stop: Vec<usize>,
        /// Step per axis (at least 1).
        stride: Vec<usize>,
    },
    /// Padding with a scalar value (second operand): `low`/`high` may be negative (cropping),
    /// `interior` inserts that many values between neighbouring elements.
    Pad {
        /// Padding before each axis.
        low: Vec<i64>,
        /// Padding after each axis.
        high: Vec<i64>,
        /// Padding between elements of each axis.
        interior: Vec<usize>,
    },
    /// Joins operands of equal rank along an axis.
    Concatenate {
        /// The joining axis.
        axis: usize,
    },
    /// Reverses the order of elements along the given axes.
    Rev {
        /// Axes to flip.
        axes: Vec<usize>,
    },
    /// `0, 1, 2, ...` along `dim`, broadcast to `shape`.
    Iota {
        /// Element type.
        dtype: DType,
        /// Output shape.
        shape: Shape,
        /// Counting axis.
        dim: usize,
    },
    /// Element type conversion (`as` semantics; to bool: non-zero).
    Convert {
        /// Target dtype.
        dtype: DType,
    },
    /// `out[b, p, i, s] = operand[b, p, indices[b, i], s]`, TF's batched gather:
    /// the first `batch_dims` axes of operand and indices are shared, `axis` is indexed.
    /// Indices are clamped into range.
    Gather {
        /// The indexed operand axis (`>= batch_dims`).
        axis: usize,
        /// Number of leading axes shared by operand and indices.
        batch_dims: usize,
    },
    /// The transpose of [`Prim::Gather`]: `out = operand; out[b, p, indices[b, i], s] += updates[b, p, i, s]`.
    /// Operands: operand, indices, updates. Out-of-range indices are dropped.
    ScatterAdd {
        /// The indexed operand axis.
        axis: usize,
        /// Number of leading axes shared by operand, indices and updates.
        batch_dims: usize,
    },
    /// Window of static `sizes` at dynamic scalar start indices (operands 1..), clamped into range.
    DynamicSlice {
        /// Window extent per axis.
        sizes: Shape,
    },
    /// Writes the update (operand 1) into the operand at dynamic scalar starts (operands 2..), clamped.
    DynamicUpdateSlice,
    /// Identity whose derivative is zero: cuts the operand out of differentiation.
    StopGradient,
    /// General contraction. Output axes: batch, then lhs free, then rhs free.
    DotGeneral {
        /// Contracted lhs axes.
        lhs_contract: Vec<usize>,
        /// Contracted rhs axes (paired with `lhs_contract`).
        rhs_contract: Vec<usize>,
        /// Batch lhs axes.
        lhs_batch: Vec<usize>,
        /// Batch rhs axes (paired with `lhs_batch`).
        rhs_batch: Vec<usize>,
    },
    /// Counter-based random bits (Threefry-2x32): an `i64` key `[k..., 2]` gives `i64`
    /// values in `0..2^32` of shape `[k..., shape...]`. See [`random`].
    RandomBits {
        /// Shape of the bits drawn from each key.
        shape: Shape,
    },
    /// The stable permutation (`i64`) that sorts the operand along `axis`; NaN is largest.
    Argsort {
        /// Axis to sort.
        axis: usize,
        /// Sort from largest to smallest (still stable).
        descending: bool,
    },
    /// Element `k` of the tuple that its operand (a structured primitive's node) defines.
    Proj(usize),
    /// `switch`: runs `branches[index]` on the remaining operands (the index, operand 0, is an
    /// `i32`/`i64` scalar clamped into range). A tuple of the branch's results. See [`control`].
    Cond {
        /// The branches, closed graphs of identical input and output types.
        branches: Vec<SubGraph>,
    },
    /// `custom_jvp`: evaluates `f` on its operands (the explicit arguments, then captured
    /// values); its derivative is the user's rule `jvp`, a closed graph `(arguments,
    /// tangents of the arguments, captures) -> (outputs, output tangents)`. A tuple of `f`'s
    /// results. See [`custom`].
    CustomJvp {
        /// The function: `(arguments, captures) -> outputs`.
        f: SubGraph,
        /// The rule: `(arguments, tangents, captures) -> (outputs, tangents)`.
        jvp: SubGraph,
        /// Number of explicit arguments (the rest of the operands are captures).
        num_args: usize,
        /// The user's function, for error messages.
        name: &'static str,
    },
    /// `custom_vjp`: evaluates `f`; reverse mode runs `fwd` (outputs and residuals) and the
    /// user's `bwd` on (non-differentiable arguments, residuals, cotangents, captures).
    /// Operands: differentiable arguments, non-differentiable ones, captures. A tuple of
    /// `f`'s results. See [`custom`].
    CustomVjp {
        /// The function: `(args, nondiff, captures) -> outputs`.
        f: SubGraph,
        /// The forward pass: `(args, nondiff, captures) -> (outputs, residuals)`.
        fwd: SubGraph,
        /// The backward pass: `(nondiff, residuals, cotangents, captures) -> argument cotangents`.
        bwd: SubGraph,
        /// Number of differentiable arguments.
        num_args: usize,
        /// Number of non-differentiable arguments.
        num_nondiff: usize,
        /// Number of residuals `fwd` returns after the outputs.
        num_res: usize,
        /// The user's function, for error messages.
        name: &'static str,
    },
    /// The tangent of a `custom_vjp` function: linear in its trailing operands (the
    /// arguments' tangents), which follow the non-differentiable arguments, the residuals and
    /// the captures. Its transpose runs `bwd`; evaluating it (forward mode) is an error.
    CustomVjpCall {
        /// The backward pass, as in [`Prim::CustomVjp`].
        bwd: SubGraph,
        /// Number of non-differentiable arguments.
        num_nondiff: usize,
        /// Number of residuals.
        num_res: usize,
        /// Number of outputs (cotangent inputs of `bwd`).
        num_out: usize,
        /// The user's function, for error messages.
        name: &'static str,
    },
    /// `checkpoint`: evaluates `body` on its operands; differentiation saves only the
    /// operands and the values `policy` allows, and recomputes the rest inside the
    /// transposed node's own sub-graph. See [`remat`].
    Checkpoint {
        /// The body, a closed graph.
        body: SubGraph,
        /// Which intermediate values may be saved for the backward pass.
        policy: remat::Policy,
    },
    // Collectives (see [`collective`]): every rank calls them in the same order.
    /// The element-wise sum or mean over the ranks of a distributed world, on every rank.
    AllReduce {
        /// Sum or mean.
        op: collective::CollectiveOp,
    },
    /// The value of rank `root`, on every rank.
    Broadcast {
        /// The rank whose value is sent.
        root: usize,
    },
    /// The sum over ranks on `root`, zeros on the others (the transpose of a broadcast).
    ReduceTo {
        /// The rank that receives the sum.
        root: usize,
    },
    /// A linear algebra primitive on stacks of matrices (see [`linalg`]); decompositions
    /// with several results are tuple-valued.
    Linalg(linalg::LinalgOp),
    /// `while`: operands are `consts` shared values, then the carries; runs `body` on them
    /// while `cond` (a bool scalar) holds. A tuple of the final carries. See [`loops`].
    While {
        /// `(consts, carries) -> bool[]`.
        cond: SubGraph,
        /// `(consts, carries) -> carries`.
        body: SubGraph,
        /// Number of leading operands that are loop-invariant.
        consts: usize,
    },
    /// `scan`: operands are consts, initial carries, then `xs` with a leading loop axis of
    /// extent `length`; `body(consts, carries, x_i)` returns the next carries, then `y_i`. A
    /// tuple of the final carries, then the `ys` stacked along a new leading axis. See [`loops`].
    Scan {
        /// `(consts, carries, x_i) -> (carries, y_i)`.
        body: SubGraph,
        /// Number of loop-invariant operands.
        consts: usize,
        /// Number of carries.
        carries: usize,
        /// Number of iterations.
        length: usize,
        /// Iterate from the last index to the first.
        reverse: bool,
    },
}

impl Prim {
    /// The primitive's name as it appears in graph dumps and error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Prim::Input(_) => "input",
            Prim::Constant(_) => "constant",
            Prim::Unary(op) => op.name(),
            Prim::Binary(op) => op.name(),
            Prim::Select => "select",
            Prim::Reduce { op, .. } => op.name(),
            Prim::Arg { op, .. } => op.name(),
            Prim::Cumulative { op, .. } => op.name(),
            Prim::Reshape { .. } => "reshape",
            Prim::BroadcastInDim { .. } => "broadcast_in_dim",
            Prim::Transpose { .. } => "transpose",
            Prim::Slice { .. } => "slice",
            Prim::Pad { .. } => "pad",
            Prim::Concatenate { .. } => "concatenate",
            Prim::Rev { .. } => "rev",
            Prim::Iota { .. } => "iota",
            Prim::Convert { .. } => "convert_element_type",
            Prim::Gather { .. } => "gather",
            Prim::ScatterAdd { .. } => "scatter_add",
            Prim::DynamicSlice { .. } => "dynamic_slice",
            Prim::DynamicUpdateSlice => "dynamic_update_slice",
            Prim::DotGeneral { .. } => "dot_general",
            Prim::StopGradient => "stop_gradient",
            Prim::RandomBits { .. } => "random_bits",
            Prim::Argsort { .. } => "argsort",
            Prim::Proj(_) => "proj",
            Prim::Cond { .. } => "cond",
            Prim::CustomJvp { .. } => "custom_jvp",
            Prim::CustomVjp { .. } => "custom_vjp",
            Prim::CustomVjpCall { .. } => "custom_vjp_call",
            Prim::Checkpoint { .. } => "checkpoint",
            Prim::AllReduce { op } => op.name(),
            Prim::Broadcast { .. } => "broadcast",
            Prim::ReduceTo { .. } => "reduce_to",
            Prim::Linalg(op) => op.name(),
            Prim::While { .. } => "while",
            Prim::Scan { .. } => "scan",
        }
    }

    /// Whether the primitive defines a tuple of results (read through [`Prim::Proj`]) rather
    /// than one tensor.
    pub fn is_tuple(&self) -> bool {
        matches!(
            self,
            Prim::Cond { .. }
                | Prim::While { .. }
                | Prim::Scan { .. }
                | Prim::CustomJvp { .. }
                | Prim::CustomVjp { .. }
                | Prim::CustomVjpCall { .. }
                | Prim::Checkpoint { .. }
        ) || matches!(self, Prim::Linalg(op) if op.is_tuple())
    }

    /// The types of the results: one for an ordinary primitive, the tuple's elements for a
    /// structured one.
    pub fn output_types(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, String> {
        match self {
            Prim::Cond { branches } => control::cond_types(branches, inputs),
            Prim::CustomJvp { f, jvp, num_args, .. } => custom::custom_jvp_types(f, jvp, *num_args, inputs),
            Prim::CustomVjp { f, fwd, bwd, num_args, num_nondiff, num_res, .. } => {
                custom::custom_vjp_types(f, fwd, bwd, (*num_args, *num_nondiff, *num_res), inputs)
            }
            Prim::CustomVjpCall { bwd, num_nondiff, num_res, num_out, .. } => {
                custom::custom_vjp_call_types(bwd, (*num_nondiff, *num_res, *num_out), inputs)
            }
            Prim::Checkpoint { body, .. } => remat::checkpoint_types(body, inputs),
            Prim::Linalg(op) => op.output_types(inputs),
            Prim::While { cond, body, consts } => loops::while_types(cond, body, *consts, inputs),
            Prim::Scan { body, consts, carries, length, .. } => {
                loops::scan_types(body, *consts, *carries, *length, inputs)
            }
            Prim::Proj(_) => Err("a projection's type is its tuple's element (see Graph::validate)".into()),
            prim => Ok(vec![prim.infer_type(inputs)?]),
        }
    }

    /// The closed graphs a structured primitive carries (none for ordinary primitives).
    pub fn subgraphs(&self) -> Vec<&SubGraph> {
        match self {
            Prim::Cond { branches } => branches.iter().collect(),
            Prim::CustomJvp { f, jvp, .. } => vec![f, jvp],
            Prim::CustomVjp { f, fwd, bwd, .. } => vec![f, fwd, bwd],
            Prim::CustomVjpCall { bwd, .. } => vec![bwd],
            Prim::Checkpoint { body, .. } => vec![body],
            Prim::While { cond, body, .. } => vec![cond, body],
            Prim::Scan { body, .. } => vec![body],
            _ => vec![],
        }
    }

    /// How dumps label sub-graph `k` (`branch 0`, `body`, ...).
    pub fn subgraph_name(&self, k: usize) -> String {
        match self {
            Prim::Cond { .. } => format!("branch {k}"),
            Prim::CustomJvp { .. } => ["f", "jvp"][k.min(1)].to_string(),
            Prim::CustomVjp { .. } => ["f", "fwd", "bwd"][k.min(2)].to_string(),
            Prim::CustomVjpCall { .. } => "bwd".to_string(),
            Prim::Checkpoint { .. } => "body".to_string(),
            Prim::While { .. } => (if k == 0 { "cond" } else { "body" }).into(),
            Prim::Scan { .. } => "body".into(),
            _ => format!("sub-graph {k}"),
        }
    }

    /// The static parameters as `key=value` pairs, for dumps.
    pub fn params(&self) -> Vec<(&'static str, String)> {
        let l = |v: &[usize]| format!("{v:?}");
        match self {
            Prim::Input(k) => vec![("index", k.to_string())],
            Prim::Constant(a) => vec![("value", crate::tensor::display::summary(a))],
            Prim::Reduce { axes, .. } => vec![("axes", l(axes))],
            Prim::Arg { axis, .. } => vec![("axis", axis.to_string())],
            Prim::Cumulative { axis, reverse, .. } => {
                let mut p = vec![("axis", axis.to_string())];
                if *reverse {
                    p.push(("reverse", "true".into()));
                }
                p
            }
            Prim::Reshape { shape } => vec![("shape", l(shape))],
            Prim::BroadcastInDim { shape, dims } => vec![("shape", l(shape)), ("dims", l(dims))],
            Prim::Transpose { perm } => vec![("perm", l(perm))],
            Prim::Slice { start, stop, stride } => {
                let mut p = vec![("start", l(start)), ("stop", l(stop))];
                if stride.iter().any(|&s| s != 1) {
                    p.push(("stride", l(stride)));
                }
                p
            }
            Prim::Pad { low, high, interior } => {
                let mut p = vec![("low", format!("{low:?}")), ("high", format!("{high:?}"))];
                if interior.iter().any(|&s| s != 0) {
                    p.push(("interior", l(interior)));
                }
                p
            }
            Prim::Concatenate { axis } => vec![("axis", axis.to_string())],
            Prim::Rev { axes } => vec![("axes", l(axes))],
            Prim::Iota { dtype, shape, dim } => {
                vec![("dtype", dtype.to_string()), ("shape", l(shape)), ("dim", dim.to_string())]
            }
            Prim::Convert { dtype } => vec![("dtype", dtype.to_string())],
            Prim::Gather { axis, batch_dims } | Prim::ScatterAdd { axis, batch_dims } => {
                vec![("axis", axis.to_string()), ("batch_dims", batch_dims.to_string())]
            }
            Prim::DynamicSlice { sizes } => vec![("sizes", l(sizes))],
            Prim::RandomBits { shape } => vec![("shape", l(shape))],
            Prim::Argsort { axis, descending } => {
                let mut p = vec![("axis", axis.to_string())];
                if *descending {
                    p.push(("descending", "true".into()));
                }
                p
            }
            Prim::DotGeneral { lhs_contract, rhs_contract, lhs_batch, rhs_batch } => vec![
                ("contract", format!("({lhs_contract:?}, {rhs_contract:?})")),
                ("batch", format!("({lhs_batch:?}, {rhs_batch:?})")),
            ],
            Prim::Proj(k) => vec![("index", k.to_string())],
            Prim::Cond { branches } => vec![("branches", branches.len().to_string())],
            Prim::CustomJvp { name, .. } | Prim::CustomVjp { name, .. } | Prim::CustomVjpCall { name, .. } => {
                vec![("fun", name.to_string())]
            }
            Prim::Checkpoint { policy, .. } => vec![("policy", policy.to_string())],
            Prim::AllReduce { .. } => vec![],
            Prim::Broadcast { root } | Prim::ReduceTo { root } => vec![("root", root.to_string())],
            Prim::Linalg(op) => op.params(),
            Prim::While { consts, .. } => vec![("consts", consts.to_string())],
            Prim::Scan { consts, carries, length, reverse, .. } => {
                let mut p = vec![
                    ("consts", consts.to_string()),
                    ("carries", carries.to_string()),
                    ("length", length.to_string()),
                ];
                if *reverse {
                    p.push(("reverse", "true".into()));
                }
                p
            }
            Prim::Unary(_) | Prim::Binary(_) | Prim::Select | Prim::DynamicUpdateSlice | Prim::StopGradient => vec![],
        }
    }

    /// The output type for operands of the given types, or the rule that was broken.
    ///
    /// This is the single place that checks a primitive's operands; tracing and
    /// eager execution both call it before anything runs.
    pub fn infer_type(&self, inputs: &[&TensorType]) -> Result<TensorType, String> {
        let arity = |n: usize| -> Result<(), String> {
            if inputs.len() == n {
                Ok(())
            } else {
                Err(format!("expects {n} operand(s), got {}", inputs.len()))
            }
        };
        match self {
            Prim::Input(_) => Err("graph inputs have no type rule".into()),
            Prim::Proj(_) => Err("a projection reads a tuple: build it with Graph::push_multi or bind_multi".into()),
            Prim::Cond { .. }
            | Prim::While { .. }
            | Prim::Scan { .. }
            | Prim::CustomJvp { .. }
            | Prim::CustomVjp { .. }
            | Prim::CustomVjpCall { .. }
            | Prim::Checkpoint { .. } => self.output_types(inputs).map(|_| crate::ir::tuple_type()),
            Prim::Linalg(op) if op.is_tuple() => self.output_types(inputs).map(|_| crate::ir::tuple_type()),
            Prim::Linalg(op) => op.output_types(inputs).map(|mut t| t.remove(0)),
            Prim::Constant(a) => {
                arity(0)?;
                Ok(a.ty())
            }
            Prim::Unary(op) => {
                arity(1)?;
                op.infer_type(inputs[0])
            }
            Prim::Binary(op) => {
                arity(2)?;
                op.infer_type(inputs[0], inputs[1])
            }
            Prim::Select => {
                arity(3)?;
                elementwise::select_type(inputs[0], inputs[1], inputs[2])
            }
            Prim::Reduce { op, axes } => {
                arity(1)?;
                reduce::reduce_type(*op, axes, inputs[0])
            }
            Prim::Arg { axis, .. } => {
                arity(1)?;
                reduce::arg_type(*axis, inputs[0])
            }
            Prim::Cumulative { op, axis, .. } => {
                arity(1)?;
                reduce::cumulative_type(*op, *axis, inputs[0])
            }
            Prim::Iota { dtype, shape, dim } => {
                arity(0)?;
                structure::iota_type(*dtype, shape, *dim)
            }
            Prim::Reshape { .. }
            | Prim::BroadcastInDim { .. }
            | Prim::Transpose { .. }
            | Prim::Slice { .. }
            | Prim::Pad { .. }
            | Prim::Concatenate { .. }
            | Prim::Rev { .. }
            | Prim::Convert { .. } => structure::infer_type(self, inputs),
            Prim::Gather { .. } | Prim::ScatterAdd { .. } | Prim::DynamicSlice { .. } | Prim::DynamicUpdateSlice => {
                index::infer_type(self, inputs)
            }
            Prim::StopGradient => {
                arity(1)?;
                Ok(inputs[0].clone())
            }
            Prim::RandomBits { shape } => {
                arity(1)?;
                random::random_bits_type(shape, inputs[0])
            }
            Prim::Argsort { axis, .. } => {
                arity(1)?;
                sort::argsort_type(*axis, inputs[0])
            }
            Prim::DotGeneral { lhs_contract, rhs_contract, lhs_batch, rhs_batch } => {
                arity(2)?;
                dot::dot_general_type(lhs_contract, rhs_contract, lhs_batch, rhs_batch, inputs[0], inputs[1])
            }
            Prim::AllReduce { .. } | Prim::Broadcast { .. } | Prim::ReduceTo { .. } => {
                arity(1)?;
                collective::collective_type(self, inputs[0])
            }
        }
    }
}

/// How a structured primitive runs its sub-graphs on concrete values (see [`run_structured`]):
/// eagerly through [`crate::eval_graph`], or in a plan through compiled sub-plans. Any
/// `FnMut(usize, &[Tensor]) -> Vec<Tensor>` closure is one (running, recycling nothing).
pub(crate) trait SubRunner {
    /// Runs sub-graph `k` on `args`.
    fn run(&mut self, k: usize, args: &[crate::Tensor]) -> Vec<crate::Tensor>;

    /// Hands back `value`, a result of sub-graph `k` that the primitive no longer needs (a
    /// loop's replaced carry, a predicate already read), so that its storage may serve a
    /// later run of `k` (a plan recycles it into `k`'s buffer pool when no one else holds it).
    fn recycle(&mut self, _k: usize, _value: crate::Tensor) {}
}

impl<F: FnMut(usize, &[crate::Tensor]) -> Vec<crate::Tensor>> SubRunner for F {
    fn run(&mut self, k: usize, args: &[crate::Tensor]) -> Vec<crate::Tensor> {
        self(k, args)
    }
}

/// Runs a primitive with several results on concrete operands. `run_sub` runs the
/// primitive's sub-graphs (eagerly: [`crate::eval_graph`]; in a plan: its compiled
/// sub-plans), so each structured primitive's semantics are written once, here.
pub(crate) fn run_structured(prim: &Prim, args: &[crate::Tensor], run_sub: &mut dyn SubRunner) -> Vec<crate::Tensor> {
    match prim {
        Prim::Cond { branches } => control::cond_run(branches.len(), args, run_sub),
        // Evaluation runs the function (sub-graph 0); the rules only matter to transformations.
        Prim::CustomJvp { .. } | Prim::CustomVjp { .. } | Prim::Checkpoint { .. } => run_sub.run(0, args),
        Prim::CustomVjpCall { name, .. } => custom::forward_mode_error(name),
        Prim::Linalg(op) => linalg::run_multi(op, args),
        Prim::While { consts, .. } => loops::while_run(*consts, args, run_sub),
        Prim::Scan { body, consts, carries, length, reverse } => {
            loops::scan_run(body, (*consts, *carries, *length, *reverse), args, run_sub)
        }
        _ => unreachable!("{} is not a structured primitive", prim.name()),
    }
}

impl fmt::Display for Prim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        let params = self.params();
        if !params.is_empty() {
            f.write_str("[")?;
            for (i, (k, v)) in params.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{k}={v}")?;
            }
            f.write_str("]")?;
        }
        Ok(())
    }
}
