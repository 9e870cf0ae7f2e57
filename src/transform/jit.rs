//! `jit`: trace once per input signature, optimise, lower to a plan, and cache it.

use super::{trace_tree, types_of};
use crate::compile::{optimize, Plan};
use crate::ir::Graph;
use crate::trace::eval_graph;
use crate::{TensorType, Tree};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A compiled function for one input signature.
struct Compiled<B> {
    plan: Plan,
    template: B,
}

/// What `jit` does with a function, for users who want to know why something is slow.
pub struct Inspection {
    /// The graph as traced.
    pub traced: Graph,
    /// The graph after the optimisation passes.
    pub optimized: Graph,
    /// The execution plan (fused loops and kernel calls).
    pub plan: String,
}

/// Traces, optimises and plans `f` at arguments shaped like `example`, without running it.
///
/// ```
/// use cotangent::{jit_inspect, Tensor};
/// let x = Tensor::from_vec(vec![1.0, 2.0], &[2]);
/// let info = jit_inspect(|x: &Tensor| (x.sin() * 2.0 + 1.0).exp(), &x);
/// assert!(info.plan.contains("fused"));
/// println!("{}\n{}", info.optimized, info.plan);
/// ```
pub fn jit_inspect<A: Tree, B: Tree>(f: impl Fn(&A) -> B, example: &A) -> Inspection {
    let leaves = example.leaves();
    let (traced, _) = trace_tree(f, example, &types_of(&leaves));
    let optimized = optimize(&traced.graph);
    let plan = Plan::new(&optimized).dump();
    Inspection { traced: traced.graph, optimized, plan }
}

/// Compiles `f`: the first call with a given input signature (dtypes and shapes of the
/// leaves) traces it (and runs the traced graph as it is); the second optimises the graph
/// (constant folding, simplification, CSE, DCE), fuses element-wise chains into single
/// loops and caches the plan; later calls only run it.
///
/// Called with symbolic arguments (inside another transformation), `jit(f)` is simply `f`,
/// so it composes with `grad`, `vmap` and the rest. Set `COTANGENT_DUMP=1` to print each
/// optimised graph and plan as it is compiled.
///
/// Like JAX's `jit`, the closure's captured values are baked into the plan: a closure
/// that reads changing state through interior mutability (`Cell`, `RefCell`) would not
/// see the change. Rust's borrow rules rule out the other ways for captures to change.
///
/// ```
/// use cotangent::{grad, jit, Tensor};
/// let step = jit(|w: &Tensor| w - grad(|w: &Tensor| w.square().sum_all())(w) * 0.1);
/// let w = Tensor::from_vec(vec![1.0, -2.0], &[2]);
/// let w = step(&step(&w)); // traced and compiled once, run twice
/// assert_eq!(w.to_vec::<f64>(), vec![0.64, -1.28]);
/// ```
pub fn jit<A: Tree, B: Tree>(f: impl Fn(&A) -> B) -> impl Fn(&A) -> B {
    let cache: Mutex<HashMap<Vec<TensorType>, Arc<Entry<B>>>> = Mutex::new(HashMap::new());
    move |x: &A| {
        let leaves = x.leaves();
        if leaves.iter().any(|t| t.is_traced()) {
            return f(x);
        }
        let key = types_of(&leaves);
        let cached = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
        match cached.as_deref() {
            Some(Entry::Compiled(c)) => c.template.rebuild_from(c.plan.run(&leaves)),
            // Second call with this signature: now it pays to optimise and plan.
            Some(Entry::Traced(graph, template)) => {
                let optimized = optimize(graph);
                let plan = Plan::new(&optimized);
                if std::env::var_os("COTANGENT_DUMP").is_some_and(|v| v != "0") {
                    eprintln!("cotangent: compiled for {key:?}\n{optimized}{}", plan.dump());
                }
                let outs = plan.run(&leaves);
                let out = template.rebuild_from(outs);
                let compiled = Compiled { plan, template: template.rebuild_from(template.leaves()) };
                cache.lock().unwrap_or_else(|e| e.into_inner()).insert(key, Arc::new(Entry::Compiled(compiled)));
                out
            }
            // First call: trace, and run the traced graph as it is (a function called once
            // should not pay for optimisation and planning).
            None => {
                let (traced, template) = trace_tree(&f, x, &key);
                let mut args = leaves.clone();
                args.extend(traced.captures.iter().cloned());
                let out = template.rebuild_from(eval_graph(&traced.graph, &args));
                if traced.captures.is_empty() {
                    // (A closure using values of an enclosing trace has nothing to cache on its own.)
                    let entry = Entry::Traced(traced.graph, template);
                    cache.lock().unwrap_or_else(|e| e.into_inner()).insert(key, Arc::new(entry));
                }
                out
            }
        }
    }
}

/// What `jit` keeps per input signature: the traced graph after the first call, the
/// compiled plan from the second call on.
enum Entry<B> {
    Traced(Graph, B),
    Compiled(Compiled<B>),
}
