//! The trace stack: how an operation on a [`Tensor`] either runs or is recorded.
//!
//! Each active trace is a frame on a thread-local stack; its level is its
//! position. A symbolic tensor remembers the trace (id and level) it belongs
//! to. [`bind`] applies a primitive: it checks the operand types, then
//!
//! - runs the CPU kernel at once if every operand is concrete (eager mode);
//! - otherwise records a node into the trace of the *highest* level among the
//!   operands. Operands from lower levels are lifted: a concrete tensor becomes
//!   a constant node, a symbolic tensor of an outer trace becomes an implicit
//!   input of this trace (a *capture*) that transformations of this trace do
//!   not differentiate. After inlining, the outer trace sees the dependence,
//!   which is what keeps nested derivatives free of perturbation confusion.
//!
//! A trace is recorded on the thread that started it. A symbolic tensor used
//! after its trace ended, or on another thread, panics with a message naming
//! the transformation it belongs to (its *label*, carried in the trace id).

use crate::array::Array;
use crate::compile::fxhash::FxHashMap;
use crate::ir::{Graph, Var};
use crate::ops::Prim;
use crate::tensor::{Repr, Traced};
use crate::{Tensor, TensorType};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::ThreadId;

static NEXT_TRACE_ID: AtomicU64 = AtomicU64::new(1);

/// Trace ids keep the index of their label (in [`LABELS`]) above this many bits.
const LABEL_SHIFT: u32 = 48;

/// The labels of traces (the names of the transformations that started them), interned so
/// that a trace id can carry its label: a tensor outliving its trace still knows it.
static LABELS: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

/// The active traces of every thread, by id: which thread records each.
static LIVE: Mutex<BTreeMap<u64, ThreadId>> = Mutex::new(BTreeMap::new());

/// Locks `m`, ignoring poisoning (its data stays consistent: each update is one insertion
/// or removal).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fresh trace id carrying `label`.
fn new_trace_id(label: &'static str) -> u64 {
    let mut labels = lock(&LABELS);
    let index = match labels.iter().position(|&l| l == label) {
        Some(i) => i,
        None => {
            labels.push(label);
            labels.len() - 1
        }
    };
    NEXT_TRACE_ID.fetch_add(1, Ordering::Relaxed) | (index as u64) << LABEL_SHIFT
}

/// The label a trace id carries.
fn label_of(id: u64) -> &'static str {
    lock(&LABELS).get((id >> LABEL_SHIFT) as usize).copied().unwrap_or("a transformation")
}

/// One active trace: the graph being recorded and how outer values were lifted into it.
struct Frame {
    id: u64,
    graph: Graph,
    /// Outer tensors captured as implicit inputs, in the order of those inputs.
    captures: Vec<Tensor>,
    /// (outer trace id, outer var) -> local implicit input.
    lifted: FxHashMap<(u64, Var), Var>,
    /// Address of a concrete array -> its constant node (the node keeps the `Arc` alive).
    constants: FxHashMap<usize, Var>,
}

thread_local! {
    static STACK: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
}

/// The result of [`trace`]: a graph plus the outer values it captured.
#[derive(Clone)]
pub struct TracedGraph {
    /// The recorded graph; its inputs are the explicit arguments, then the captures.
    pub graph: Graph,
    /// Number of explicit inputs.
    pub num_args: usize,
    /// Outer symbolic tensors the closure used, fed as the trailing inputs.
    pub captures: Vec<Tensor>,
}

/// Ends a trace: pops its frame (and any above it) and unregisters it.
struct PopGuard {
    level: usize,
    id: u64,
}
impl Drop for PopGuard {
    fn drop(&mut self) {
        // Runs on success and on unwinding alike, so a panicking closure never leaves its frame behind.
        STACK.with(|s| s.borrow_mut().truncate(self.level));
        lock(&LIVE).remove(&self.id);
    }
}

/// The level a new trace would get: the number of active traces.
pub fn depth() -> usize {
    STACK.with(|s| s.borrow().len())
}

/// Traces `f` on symbolic inputs of the given types into a graph.
///
/// Concrete tensors the closure uses become constants; symbolic tensors of
/// outer traces become captures.
#[track_caller]
pub fn trace(in_types: &[TensorType], f: impl FnOnce(&[Tensor]) -> Vec<Tensor>) -> TracedGraph {
    trace_as("trace", in_types, f)
}

/// [`trace`] for the transformation named `label`, which errors about its traced values name.
#[track_caller]
pub(crate) fn trace_as(
    label: &'static str,
    in_types: &[TensorType],
    f: impl FnOnce(&[Tensor]) -> Vec<Tensor>,
) -> TracedGraph {
    let id = new_trace_id(label);
    lock(&LIVE).insert(id, std::thread::current().id());
    let level = STACK.with(|s| {
        let mut s = s.borrow_mut();
        s.push(Frame {
            id,
            graph: Graph::default(),
            captures: Vec::new(),
            lifted: FxHashMap::default(),
            constants: FxHashMap::default(),
        });
        s.len() - 1
    });
    let guard = PopGuard { level, id };
    let args: Vec<Tensor> = STACK.with(|s| {
        let mut s = s.borrow_mut();
        let frame = &mut s[level];
        in_types
            .iter()
            .map(|ty| {
                let var = frame.graph.add_input(ty.clone());
                Tensor::traced(Traced { trace: id, level, var, ty: ty.clone() })
            })
            .collect()
    });
    let outs = f(&args);
    let frame = STACK.with(|s| {
        let mut s = s.borrow_mut();
        let vars: Vec<Var> = outs.iter().map(|t| lift(&mut s[level], t)).collect();
        s[level].graph.outputs = vars;
        s.pop().expect("trace frame present")
    });
    drop(guard);
    TracedGraph { graph: frame.graph, num_args: in_types.len(), captures: frame.captures }
}

/// The var of `t` inside `frame`, lifting constants and outer values as needed.
#[track_caller]
fn lift(frame: &mut Frame, t: &Tensor) -> Var {
    match &t.repr {
        Repr::Concrete(a) => {
            let key = Arc::as_ptr(a) as usize;
            if let Some(&v) = frame.constants.get(&key) {
                return v;
            }
            let v = frame.graph.push_typed(Prim::Constant(a.clone()), vec![], a.ty());
            frame.constants.insert(key, v);
            v
        }
        Repr::Traced(tr) if tr.trace == frame.id => tr.var,
        Repr::Traced(tr) => {
            if let Some(&v) = frame.lifted.get(&(tr.trace, tr.var)) {
                return v;
            }
            let v = frame.graph.add_input(tr.ty.clone());
            frame.lifted.insert((tr.trace, tr.var), v);
            frame.captures.push(t.clone());
            v
        }
    }
}

/// Panics, at the caller's line, unless every symbolic operand belongs to a trace active on
/// this thread, saying what went wrong. (Called outside `STACK.with`: its closure would
/// hide the caller's line.)
#[track_caller]
fn check_alive(inputs: &[&Tensor]) {
    let dead = STACK.with(|s| {
        let s = s.borrow();
        inputs.iter().filter_map(|t| t.as_traced()).find(|tr| s.get(tr.level).map(|f| f.id) != Some(tr.trace)).cloned()
    });
    if let Some(tr) = dead {
        report_dead(&tr);
    }
}

/// Panics about a symbolic tensor whose trace is not active on this thread.
#[track_caller]
fn report_dead(tr: &Traced) -> ! {
    let label = label_of(tr.trace);
    let here = std::thread::current().id();
    match lock(&LIVE).get(&tr.trace) {
        Some(&owner) if owner != here => panic!(
            "a traced value ({}) of {label} was used on another thread than the one tracing it: \
             transformations trace on the calling thread only; compute with traced values on that \
             thread, and give other threads concrete values",
            tr.ty
        ),
        _ => panic!(
            "a traced value ({}) of {label} escaped the transformation that created it: a tensor \
             from inside a grad/jvp/vmap/jit closure was kept and used after that closure returned",
            tr.ty
        ),
    }
}

/// The operands, with every concrete one turned into a constant of the trace that the
/// highest-level symbolic operand belongs to (unchanged when all are concrete).
///
/// Frontend methods that prepare operands one by one (broadcasting a number to the shape
/// of a traced tensor, say) call this first, so the preparation is recorded on the small
/// constant instead of running eagerly and baking a large one into the graph.
#[track_caller]
pub(crate) fn lift_operands(inputs: &[&Tensor]) -> Vec<Tensor> {
    let top = inputs.iter().filter_map(|t| t.as_traced()).max_by_key(|tr| tr.level);
    let Some(top) = top else {
        return inputs.iter().map(|&t| t.clone()).collect();
    };
    let (trace, level) = (top.trace, top.level);
    check_alive(inputs);
    STACK.with(|s| {
        let mut s = s.borrow_mut();
        let frame = &mut s[level];
        inputs
            .iter()
            .map(|&t| match &t.repr {
                Repr::Concrete(a) => {
                    let ty = a.ty();
                    let var = lift(frame, t);
                    Tensor::traced(Traced { trace, level, var, ty })
                }
                Repr::Traced(_) => t.clone(),
            })
            .collect()
    })
}

/// Applies a primitive to operands: runs it eagerly or records it (see the module docs).
///
/// Panics, at the caller's line, with the primitive's name and the broken rule
/// when the operands do not fit.
#[track_caller]
pub fn bind(prim: Prim, inputs: &[&Tensor]) -> Tensor {
    // (The operand types in place for up to three operands: two lists fewer to allocate for
    // each operation traced.)
    let inferred = match inputs {
        [] => prim.infer_type(&[]),
        [a] => prim.infer_type(&[&*a.ty_cow()]),
        [a, b] => prim.infer_type(&[&*a.ty_cow(), &*b.ty_cow()]),
        [a, b, c] => prim.infer_type(&[&*a.ty_cow(), &*b.ty_cow(), &*c.ty_cow()]),
        _ => {
            let tys: Vec<std::borrow::Cow<TensorType>> = inputs.iter().map(|t| t.ty_cow()).collect();
            let refs: Vec<&TensorType> = tys.iter().map(|t| t.as_ref()).collect();
            prim.infer_type(&refs)
        }
    };
    let ty = match inferred {
        Ok(ty) => ty,
        Err(e) => panic!("{}: {e}", prim.name()),
    };
    let top = inputs.iter().filter_map(|t| t.as_traced()).max_by_key(|tr| tr.level);
    match top {
        None => {
            let arrays: Vec<&Array> = inputs.iter().map(|t| t.as_concrete().expect("concrete operand")).collect();
            Tensor::from_array(crate::backend::cpu::kernel(&prim, &arrays, &ty))
        }
        Some(top) => {
            let (trace, level) = (top.trace, top.level);
            check_alive(inputs);
            STACK.with(|s| {
                let mut s = s.borrow_mut();
                let frame = &mut s[level];
                let vars: Vec<Var> = inputs.iter().map(|t| lift(frame, t)).collect();
                let var = frame.graph.push_typed(prim, vars, ty.clone());
                Tensor::traced(Traced { trace, level, var, ty })
            })
        }
    }
}

/// Applies a primitive with several results (a structured primitive such as `cond`, see
/// [`crate::ir::Node`]): runs it eagerly or records its tuple node and one projection per
/// result into the trace, like [`bind`]. Returns the results.
///
/// Panics, at the caller's line, with the primitive's name and the broken rule when the
/// operands do not fit.
#[track_caller]
pub fn bind_multi(prim: Prim, inputs: &[&Tensor]) -> Vec<Tensor> {
    let tys: Vec<std::borrow::Cow<TensorType>> = inputs.iter().map(|t| t.ty_cow()).collect();
    let refs: Vec<&TensorType> = tys.iter().map(|t| t.as_ref()).collect();
    let out_types = match prim.output_types(&refs) {
        Ok(ts) => ts,
        Err(e) => panic!("{}: {e}", prim.name()),
    };
    assert!(prim.is_tuple(), "bind_multi: {} has a single result: use bind", prim.name());
    let top = inputs.iter().filter_map(|t| t.as_traced()).max_by_key(|tr| tr.level);
    match top {
        None => {
            let args: Vec<Tensor> = inputs.iter().map(|&t| t.clone()).collect();
            crate::ops::run_structured(&prim, &args, &mut |k: usize, a: &[Tensor]| eval_graph(prim.subgraphs()[k], a))
        }
        Some(top) => {
            let (trace, level) = (top.trace, top.level);
            check_alive(inputs);
            STACK.with(|s| {
                let mut s = s.borrow_mut();
                let frame = &mut s[level];
                let vars: Vec<Var> = inputs.iter().map(|t| lift(frame, t)).collect();
                let tuple = frame.graph.push_typed(prim, vars, crate::ir::tuple_type());
                out_types
                    .into_iter()
                    .enumerate()
                    .map(|(k, ty)| {
                        let var = frame.graph.push_typed(Prim::Proj(k), vec![tuple], ty.clone());
                        Tensor::traced(Traced { trace, level, var, ty })
                    })
                    .collect()
            })
        }
    }
}

/// The values of a graph's tuple nodes during a walk: node index -> its results.
#[derive(Default)]
pub(crate) struct Tuples(HashMap<usize, Vec<Option<Tensor>>>);

impl Tuples {
    /// Records the results of tuple node `i`.
    pub fn set(&mut self, i: usize, values: Vec<Tensor>) {
        self.0.insert(i, values.into_iter().map(Some).collect());
    }

    /// Records results some of which may be absent (symbolic zeros).
    pub fn set_opt(&mut self, i: usize, values: Vec<Option<Tensor>>) {
        self.0.insert(i, values);
    }

    /// Element `k` of tuple node `i` (`None` for a symbolic zero or an unknown tuple).
    pub fn get(&self, i: usize, k: usize) -> Option<Tensor> {
        self.0.get(&i).and_then(|v| v[k].clone())
    }
}

/// Evaluates a graph on the given arguments with [`bind`], node by node.
///
/// With concrete arguments this is the interpreter: every node runs its CPU
/// kernel. With symbolic arguments it re-emits the graph into their trace,
/// which is how a transformed graph is inlined into an outer transformation;
/// constants stay constant nodes there (they are not folded with the nodes
/// that use them), so re-emitting a traced graph reproduces it node for node.
/// Values are dropped after their last use.
///
/// Panics, at the caller's line, unless the arguments match the graph's inputs in number,
/// dtype and shape.
#[track_caller]
pub fn eval_graph(g: &Graph, args: &[Tensor]) -> Vec<Tensor> {
    check_arguments(g, args);
    let mut uses = g.use_counts();
    // When re-emitting, the symbolic argument of the highest trace, into which constants go.
    let anchor = args.iter().filter(|t| t.is_traced()).max_by_key(|t| t.as_traced().map(|tr| tr.level));
    let mut env: Vec<Option<Tensor>> = vec![None; g.nodes.len()];
    let mut tuples = Tuples::default();
    for (i, node) in g.nodes.iter().enumerate() {
        let value = match &node.prim {
            Prim::Input(k) => args[*k].clone(),
            Prim::Proj(k) => tuples.get(node.inputs[0].index(), *k).expect("tuple element"),
            prim if prim.is_tuple() => {
                let ins: Vec<&Tensor> =
                    node.inputs.iter().map(|v| env[v.index()].as_ref().expect("live value")).collect();
                tuples.set(i, bind_multi(prim.clone(), &ins));
                for v in &node.inputs {
                    uses[v.index()] -= 1;
                    if uses[v.index()] == 0 {
                        env[v.index()] = None;
                    }
                }
                continue;
            }
            Prim::Constant(a) => {
                let c = Tensor::from_arc(a.clone());
                match anchor {
                    Some(t) => lift_operands(&[&c, t]).swap_remove(0),
                    None => c,
                }
            }
            prim => {
                let ins: Vec<&Tensor> =
                    node.inputs.iter().map(|v| env[v.index()].as_ref().expect("live value")).collect();
                bind(prim.clone(), &ins)
            }
        };
        env[i] = Some(value);
        for v in &node.inputs {
            uses[v.index()] -= 1;
            if uses[v.index()] == 0 {
                env[v.index()] = None;
            }
        }
    }
    g.outputs.iter().map(|v| env[v.index()].clone().expect("output value")).collect()
}

/// Panics unless `args` fit the inputs of `g`.
#[track_caller]
fn check_arguments(g: &Graph, args: &[Tensor]) {
    let n = g.inputs.len();
    if args.len() != n {
        let s = if n == 1 { "" } else { "s" };
        panic!("eval_graph: the graph expects {n} argument{s}, got {}", args.len());
    }
    for (i, (t, v)) in args.iter().zip(&g.inputs).enumerate() {
        let (got, want) = (t.ty(), g.ty(*v));
        if &got != want {
            panic!("eval_graph: argument {i} is {got} but the graph's input {i} is {want}");
        }
    }
}

/// Traces a closure over tensors of the given types into a [`Graph`].
///
/// The closure must not capture symbolic tensors of an outer trace (use
/// [`trace`] for that, which reports the captures).
///
/// ```
/// use cotangent::{trace_graph, DType, TensorType};
/// let g = trace_graph(&[TensorType::new(DType::F32, vec![2])], |xs| vec![xs[0].exp()]);
/// assert_eq!(g.num_ops(), 1);
/// ```
#[track_caller]
pub fn trace_graph(in_types: &[TensorType], f: impl FnOnce(&[Tensor]) -> Vec<Tensor>) -> Graph {
    let t = trace_as("trace_graph", in_types, f);
    assert!(t.captures.is_empty(), "trace_graph: the closure captured values of an outer trace; use trace()");
    t.graph
}
