//! Reverse mode as linearize + transpose, and the gradient combinators.

use super::jvp::jvp_graph;
use super::site::{leaf_name, Site};
use super::{trace_tree_as, types_of};
use crate::ir::Graph;
use crate::ops::rules::{self, LinArg};
use crate::ops::Prim;
use crate::trace::{bind, eval_graph, trace, Tuples};
use crate::{Tensor, TensorType, Tree, TreeLike};
use std::collections::HashMap;

/// A linear map recorded as a graph: the tangent part of a linearized function.
///
/// Graph inputs: one per *linear* argument (those marked in `linear_args`), then the
/// captured residuals. Graph outputs: one per output marked in `nonzero_outs`.
#[derive(Clone)]
struct LinearGraph {
    graph: Graph,
    residuals: Vec<Tensor>,
    arg_types: Vec<TensorType>,
    linear_args: Vec<bool>,
    out_types: Vec<TensorType>,
    nonzero_outs: Vec<bool>,
    /// The transformation that recorded it, which errors name.
    site: Site,
}

thread_local! {
    /// The levels of the tangent traces of the `linearize` calls in progress on this thread.
    static LINEARIZING: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Whether the trace at `level` is the tangent trace of a `linearize` in progress: what a
/// jvp rule records there is the linear graph, whose primal operands become residuals (so
/// a rule may stack per-iteration primal values instead of having the transpose recompute
/// them). Plain forward mode (`jvp`, `jacfwd`) never answers true.
pub(crate) fn is_linearize_level(level: usize) -> bool {
    LINEARIZING.with(|l| l.borrow().contains(&level))
}

/// Marks the innermost trace as a `linearize` tangent trace while alive.
struct Linearizing;
impl Linearizing {
    fn enter() -> Self {
        let level = crate::trace::depth() - 1;
        LINEARIZING.with(|l| l.borrow_mut().push(level));
        Linearizing
    }
}
impl Drop for Linearizing {
    fn drop(&mut self) {
        LINEARIZING.with(|l| l.borrow_mut().pop());
    }
}

/// Runs `f` at `primals` and records its linearization, with tangents for the float leaves.
#[track_caller]
fn linearize_flat<A: Tree, B: Tree>(site: Site, f: impl Fn(&A) -> B, primals: &A) -> (Vec<Tensor>, B, LinearGraph) {
    let p = primals.leaves();
    let (traced, template) = trace_tree_as(site.name, f, primals, &types_of(&p));
    let mut args = p.clone();
    args.extend(traced.captures.iter().cloned());
    let linear_args: Vec<bool> = p.iter().map(|t| t.dtype().is_float()).collect();
    let tangent_types: Vec<TensorType> = p.iter().filter(|t| t.dtype().is_float()).map(|t| t.ty()).collect();
    let mut outs = Vec::new();
    let mut nonzero_outs = Vec::new();
    // Primal operations have concrete (or outer) operands and run now; tangent operations
    // involve the symbolic tangents and are recorded: that recording is the linear graph.
    let lin = trace(&tangent_types, |tangents| {
        let _linearizing = Linearizing::enter();
        let mut it = tangents.iter();
        let mut tans: Vec<Option<Tensor>> =
            linear_args.iter().map(|&l| if l { it.next().cloned() } else { None }).collect();
        tans.resize(args.len(), None);
        let (o, touts) = jvp_graph(&traced.graph, &args, &tans);
        outs = o;
        nonzero_outs = touts.iter().map(|t| t.is_some()).collect();
        touts.into_iter().flatten().collect()
    });
    let out_types = types_of(&outs);
    let lg = LinearGraph {
        graph: lin.graph,
        residuals: lin.captures,
        arg_types: types_of(&p),
        linear_args,
        out_types,
        nonzero_outs,
        site,
    };
    (outs, template, lg)
}

impl LinearGraph {
    /// Applies the linear map to tangents of every argument.
    fn apply(&self, tangents: &[Tensor]) -> Vec<Tensor> {
        let mut ins: Vec<Tensor> =
            tangents.iter().zip(&self.linear_args).filter(|(_, &l)| l).map(|(t, _)| t.clone()).collect();
        ins.extend(self.residuals.iter().cloned());
        let mut outs = eval_graph(&self.graph, &ins).into_iter();
        self.out_types
            .iter()
            .zip(&self.nonzero_outs)
            .map(|(ty, &nz)| if nz { outs.next().expect("output") } else { Tensor::zeros(&ty.shape, ty.dtype) })
            .collect()
    }

    /// Applies the transposed map to output cotangents, giving one cotangent per argument.
    ///
    /// `out_template` (the output's tree) names the leaves in errors.
    #[track_caller]
    fn transpose<B: Tree>(&self, cts: &[Tensor], out_template: &B) -> Vec<Tensor> {
        if cts.len() != self.out_types.len() {
            let n = self.out_types.len();
            self.site.fail(format_args!("{} cotangents given for an output with {n} leaves", cts.len()));
        }
        for (i, (ct, ty)) in cts.iter().zip(&self.out_types).enumerate() {
            if &ct.ty() != ty {
                let path = out_template.named_leaves().swap_remove(i).0;
                let leaf = leaf_name(&path, i).replace("the argument", "the output");
                self.site.fail(format_args!("cotangent {} does not match {leaf}, which is {ty}", ct.ty()));
            }
        }
        let graph_cts: Vec<Option<Tensor>> =
            cts.iter().zip(&self.nonzero_outs).filter(|(_, &nz)| nz).map(|(c, _)| Some(c.clone())).collect();
        let n_linear = self.linear_args.iter().filter(|&&l| l).count();
        let mut lin_cts = transpose_graph(&self.graph, n_linear, &self.residuals, &graph_cts).into_iter();
        self.arg_types
            .iter()
            .zip(&self.linear_args)
            .map(|(ty, &l)| {
                let ct = if l { lin_cts.next().expect("cotangent") } else { None };
                ct.unwrap_or_else(|| Tensor::zeros(&ty.shape, ty.dtype))
            })
            .collect()
    }
}

/// Transposes a graph that is linear in its first `n_linear` inputs.
///
/// The remaining inputs are bound to `residuals`. Nodes that do not depend on the
/// linear inputs are evaluated forward first; then cotangents flow backward
/// through each linear node's transpose rule, accumulating where values fan out.
pub(crate) fn transpose_graph(
    g: &Graph,
    n_linear: usize,
    residuals: &[Tensor],
    cts: &[Option<Tensor>],
) -> Vec<Option<Tensor>> {
    let n = g.nodes.len();
    let mut linear = vec![false; n];
    let mut val: Vec<Option<Tensor>> = vec![None; n];
    let mut tuples = Tuples::default();
    // The operands of the node at hand, in a list kept across nodes.
    let mut xs_kept: Vec<&'static Tensor> = vec![];
    for (i, node) in g.nodes.iter().enumerate() {
        match &node.prim {
            Prim::Input(k) if *k < n_linear => linear[i] = true,
            Prim::Input(k) => val[i] = Some(residuals[k - n_linear].clone()),
            Prim::Constant(a) => val[i] = Some(Tensor::from_arc(a.clone())),
            prim => {
                if node.inputs.iter().any(|v| linear[v.index()]) {
                    linear[i] = true;
                } else if let Prim::Proj(k) = prim {
                    val[i] = tuples.get(node.inputs[0].index(), *k);
                } else {
                    let mut xs: Vec<&Tensor> = super::recycle(std::mem::take(&mut xs_kept));
                    xs.extend(node.inputs.iter().map(|v| val[v.index()].as_ref().expect("value")));
                    if prim.is_tuple() {
                        tuples.set(i, crate::trace::bind_multi(prim.clone(), &xs));
                        xs_kept = super::recycle(xs);
                    } else {
                        let y = bind(prim.clone(), &xs);
                        xs_kept = super::recycle(xs);
                        val[i] = Some(y);
                    }
                }
            }
        }
    }
    let mut ct: Vec<Option<Tensor>> = vec![None; n];
    let accumulate = |slot: &mut Option<Tensor>, c: Tensor| {
        *slot = Some(match slot.take() {
            Some(prev) => prev + c,
            None => c,
        });
    };
    for (v, c) in g.outputs.iter().zip(cts) {
        if let Some(c) = c {
            if linear[v.index()] {
                accumulate(&mut ct[v.index()], c.clone());
            }
        }
    }
    // Cotangents of the elements of linear tuple nodes, gathered from their projections.
    let mut tuple_cts: HashMap<usize, Vec<Option<Tensor>>> = HashMap::new();
    // The operands of the node at hand, in a list kept across nodes.
    let mut args_kept: Vec<LinArg<'static>> = vec![];
    for i in (0..n).rev() {
        let node = &g.nodes[i];
        if !linear[i] || matches!(node.prim, Prim::Input(_)) {
            continue;
        }
        if let Prim::Proj(k) = node.prim {
            if let Some(c) = ct[i].take() {
                let t = node.inputs[0].index();
                let tn = &g.nodes[t];
                let tys: Vec<&TensorType> = tn.inputs.iter().map(|v| g.ty(*v)).collect();
                let len = tn.prim.output_types(&tys).map_or(0, |o| o.len());
                let slots = tuple_cts.entry(t).or_insert_with(|| vec![None; len]);
                accumulate(&mut slots[k], c);
            }
            continue;
        }
        if node.prim.is_tuple() {
            let Some(cts) = tuple_cts.remove(&i) else { continue };
            let args: Vec<LinArg> = node
                .inputs
                .iter()
                .map(|v| {
                    if linear[v.index()] {
                        LinArg::Linear(g.ty(*v).clone())
                    } else {
                        LinArg::Value(val[v.index()].as_ref().expect("value"))
                    }
                })
                .collect();
            let in_cts = rules::transpose_multi(&node.prim, &cts, &args);
            for (v, c) in node.inputs.iter().zip(in_cts) {
                if let Some(c) = c {
                    if linear[v.index()] {
                        accumulate(&mut ct[v.index()], c);
                    }
                }
            }
            continue;
        }
        let Some(c) = ct[i].take() else { continue };
        let mut args: Vec<LinArg> = super::recycle(std::mem::take(&mut args_kept));
        args.extend(node.inputs.iter().map(|v| {
            if linear[v.index()] {
                LinArg::Linear(g.ty(*v).clone())
            } else {
                LinArg::Value(val[v.index()].as_ref().expect("value"))
            }
        }));
        let in_cts = rules::transpose(&node.prim, &c, &args);
        args_kept = super::recycle(args);
        for (v, c) in node.inputs.iter().zip(in_cts) {
            if let Some(c) = c {
                if linear[v.index()] {
                    accumulate(&mut ct[v.index()], c);
                }
            }
        }
    }
    g.inputs[..n_linear].iter().map(|v| ct[v.index()].take()).collect()
}

/// The linear map returned by [`linearize`]: call it on tangents.
pub struct Linearized<A, B> {
    lin: LinearGraph,
    arg_template: A,
    out_template: B,
}

impl<A: Tree, B: Tree> Linearized<A, B> {
    /// The recorded linear map, for inspection: its inputs are the tangents of the float
    /// leaves, then the residuals captured from outer traces; its outputs are the non-zero
    /// output tangents.
    ///
    /// ```
    /// use cotangent::{linearize, Tensor};
    /// let (_, lin) = linearize(|x: &Tensor| x.sin(), &Tensor::scalar(1.0));
    /// assert_eq!(lin.graph().num_ops(), 1); // t * cos(x), with cos(x) a residual
    /// ```
    pub fn graph(&self) -> &Graph {
        &self.lin.graph
    }

    /// How many forward-pass values the linear map keeps (constants and captures).
    ///
    /// ```
    /// use cotangent::{linearize, Tensor};
    /// let y = Tensor::scalar(2.0);
    /// // Only x is differentiated: nothing about exp(y)'s derivative is kept.
    /// let (_, lin) = linearize(|x: &Tensor| x.sin() * y.exp(), &Tensor::scalar(1.0));
    /// assert_eq!(lin.num_residuals(), 2); // cos(x) and exp(y)
    /// ```
    pub fn num_residuals(&self) -> usize {
        let constants = self.lin.graph.nodes.iter().filter(|n| matches!(n.prim, Prim::Constant(_))).count();
        constants + self.lin.residuals.len()
    }

    /// The Jacobian-vector product at the linearization point.
    ///
    /// ```
    /// use cotangent::{linearize, Tensor};
    /// let (y, f_jvp) = linearize(|x: &Tensor| x.exp(), &Tensor::scalar(0.0));
    /// assert_eq!(f_jvp.call(&Tensor::scalar(2.0)).item::<f64>(), 2.0);
    /// ```
    #[track_caller]
    pub fn call(&self, tangents: impl TreeLike<A>) -> B {
        let t = tangents.into_leaves_like(&self.arg_template);
        let primal_types = &self.lin.arg_types;
        if t.len() != primal_types.len() {
            let n = primal_types.len();
            self.lin.site.fail(format_args!("{} tangents given for primals with {n} leaves", t.len()));
        }
        for (i, (t, ty)) in t.iter().zip(primal_types).enumerate() {
            if &t.ty() != ty {
                let path = self.arg_template.named_leaves().swap_remove(i).0;
                self.lin.site.fail(format_args!(
                    "tangent {} for {} does not match its primal {ty}",
                    t.ty(),
                    leaf_name(&path, i)
                ));
            }
        }
        self.out_template.rebuild_from(self.lin.apply(&t))
    }

    /// The transposed map (a vector-Jacobian product), without recomputing anything.
    ///
    /// ```
    /// use cotangent::{linearize, Tensor};
    /// let x = Tensor::from_vec(vec![1.0, 2.0], &[2]);
    /// let (_, f_jvp) = linearize(|x: &Tensor| x * 3.0, &x);
    /// let ct = f_jvp.transpose(&Tensor::from_vec(vec![1.0, 1.0], &[2]));
    /// assert_eq!(ct.to_vec::<f64>(), vec![3.0, 3.0]);
    /// ```
    #[track_caller]
    pub fn transpose(&self, cotangents: impl TreeLike<B>) -> A {
        let cts = cotangents.into_leaves_like(&self.out_template);
        self.arg_template.rebuild_from(self.lin.transpose(&cts, &self.out_template))
    }
}

/// `f(primals)` and its linearization at `primals` (JAX's `linearize`).
///
/// Only float leaves are linearized: integer and bool leaves get zero tangent outputs and
/// zero cotangents. Mismatched tangents or cotangents panic at the caller's line.
///
/// ```
/// use cotangent::{linearize, Tensor};
/// let (y, lin) = linearize(|x: &Tensor| x.sin(), &Tensor::scalar(0.0));
/// assert_eq!(y.item::<f64>(), 0.0);
/// assert_eq!(lin.call(&Tensor::scalar(5.0)).item::<f64>(), 5.0);
/// ```
#[track_caller]
pub fn linearize<A: Tree, B: Tree>(f: impl Fn(&A) -> B, primals: &A) -> (B, Linearized<A, B>) {
    linearize_at(Site::here("linearize"), f, primals)
}

/// [`linearize`] for the transformation at `site` (the one errors name).
#[track_caller]
fn linearize_at<A: Tree, B: Tree>(site: Site, f: impl Fn(&A) -> B, primals: &A) -> (B, Linearized<A, B>) {
    let (outs, template, lin) = linearize_flat(site, f, primals);
    let out = template.rebuild_from(outs.clone());
    let out_template = template.rebuild_from(outs);
    (out, Linearized { lin, arg_template: primals.rebuild_from(primals.leaves()), out_template })
}

/// The pullback returned by [`vjp`]: maps output cotangents to input cotangents.
pub struct Pullback<A, B> {
    inner: Linearized<A, B>,
}

impl<A: Tree, B: Tree> Pullback<A, B> {
    /// Cotangents of the inputs for the given output cotangents (`ctᵀ J`).
    ///
    /// ```
    /// use cotangent::{vjp, Tensor};
    /// let (y, pb) = vjp(|x: &Tensor| x * x, &Tensor::scalar(3.0));
    /// assert_eq!(pb.call(&Tensor::scalar(1.0)).item::<f64>(), 6.0);
    /// ```
    #[track_caller]
    pub fn call(&self, cotangents: impl TreeLike<B>) -> A {
        self.inner.transpose(cotangents)
    }
}

/// `f(primals)` and its pullback (reverse mode), computed as linearize + transpose.
///
/// Unlike [`grad`], `vjp` accepts integer and bool leaves in `primals`: they have no
/// derivative, and the pullback gives them zero cotangents of their own dtype (where JAX
/// gives `float0` zeros). A cotangent that does not match the output panics at the line
/// that calls the pullback.
///
/// ```
/// use cotangent::{vjp, Tensor};
/// let x = Tensor::from_vec(vec![1.0, 2.0], &[2]);
/// let (y, pb) = vjp(|x: &Tensor| x.exp(), &x);
/// let g = pb.call(&Tensor::ones(&[2], cotangent::DType::F64));
/// assert_eq!(g.to_vec::<f64>(), y.to_vec::<f64>());
/// ```
#[track_caller]
pub fn vjp<A: Tree, B: Tree>(f: impl Fn(&A) -> B, primals: &A) -> (B, Pullback<A, B>) {
    vjp_at(Site::here("vjp"), f, primals)
}

/// [`vjp`] for the transformation at `site` (the one errors name).
#[track_caller]
pub(crate) fn vjp_at<A: Tree, B: Tree>(site: Site, f: impl Fn(&A) -> B, primals: &A) -> (B, Pullback<A, B>) {
    let (out, inner) = linearize_at(site, f, primals);
    (out, Pullback { inner })
}

/// `f(x)` and the gradient of a scalar-valued `f` with respect to every leaf of `x`.
///
/// Every leaf of `x` must be a float tensor, as in JAX: an integer or bool leaf has no
/// gradient, so it panics rather than returning zeros (pass such values to `f` through
/// its closure, or use [`vjp`], which gives them zero cotangents). This and a function
/// that does not return a 0-d float tensor panic with a message naming `value_and_grad`
/// and the line that called it.
///
/// ```
/// use cotangent::{value_and_grad, Tensor};
/// let vg = value_and_grad(|x: &Tensor| (x * x).sum_all());
/// let (v, g) = vg(&Tensor::from_vec(vec![1.0, 2.0], &[2]));
/// assert_eq!(v.item::<f64>(), 5.0);
/// assert_eq!(g.to_vec::<f64>(), vec![2.0, 4.0]);
/// ```
#[track_caller]
pub fn value_and_grad<A: Tree, F: Fn(&A) -> Tensor>(f: F) -> impl Fn(&A) -> (Tensor, A) {
    let site = Site::here("value_and_grad");
    super::jit(move |x: &A| value_and_grad_now(site, &f, x))
}

/// The value and gradient, traced or computed in place (the body of [`value_and_grad`] and [`grad`]).
fn value_and_grad_now<A: Tree>(site: Site, f: impl Fn(&A) -> Tensor, x: &A) -> (Tensor, A) {
    site.require_float_leaves(x);
    let (outs, template, lin) = linearize_flat(site, f, x);
    let y = template.rebuild_from(outs);
    site.require_scalar(&y);
    let g = x.rebuild_from(lin.transpose(&[y.ones_like()], &y));
    (y, g)
}

/// The gradient of a scalar-valued `f`, as a function of the same tree type.
///
/// The returned function compiles itself per input signature (see [`jit`](super::jit)),
/// so calling it in a training loop traces and optimises only once. Every leaf of the
/// argument must be a float tensor, and `f` must return a 0-d float tensor; otherwise the
/// returned function panics with a message naming `grad` and the line that called it
/// (see [`value_and_grad`]).
///
/// ```
/// use cotangent::{grad, Tensor};
/// let df = grad(|x: &Tensor| x - x.sin() * 2.0);
/// assert!((df(&Tensor::scalar(3.0)).item::<f64>() - 2.979984993200891).abs() < 1e-15);
/// let d2f = grad(grad(|x: &Tensor| x.sin()));
/// assert!((d2f(&Tensor::scalar(1.0)).item::<f64>() + 1f64.sin()).abs() < 1e-15);
/// ```
#[track_caller]
pub fn grad<A: Tree, F: Fn(&A) -> Tensor>(f: F) -> impl Fn(&A) -> A {
    grad_at(Site::here("grad"), f)
}

/// [`grad`] for the transformation at `site` (the one errors name).
pub(crate) fn grad_at<A: Tree, F: Fn(&A) -> Tensor>(site: Site, f: F) -> impl Fn(&A) -> A {
    // The compiled function returns only the gradient, so work that only the value needs
    // (the final reduction, say) is dead code and never runs.
    super::jit(move |x: &A| value_and_grad_now(site, &f, x).1)
}

/// Like [`value_and_grad`] for a function that also returns auxiliary data (not differentiated).
///
/// ```
/// use cotangent::{value_and_grad_with_aux, Tensor};
/// let vg = value_and_grad_with_aux(|x: &Tensor| {
///     let y = x * x;
///     (y.sum_all(), y)
/// });
/// let ((loss, aux), g) = vg(&Tensor::scalar(3.0));
/// assert_eq!((loss.item::<f64>(), aux.item::<f64>(), g.item::<f64>()), (9.0, 9.0, 6.0));
/// ```
#[track_caller]
pub fn value_and_grad_with_aux<A: Tree, X: Tree, F: Fn(&A) -> (Tensor, X)>(f: F) -> impl Fn(&A) -> ((Tensor, X), A) {
    let site = Site::here("value_and_grad_with_aux");
    super::jit(move |x: &A| value_and_grad_with_aux_now(site, &f, x))
}

/// The body of [`value_and_grad_with_aux`] and [`grad_with_aux`].
fn value_and_grad_with_aux_now<A: Tree, X: Tree>(site: Site, f: impl Fn(&A) -> (Tensor, X), x: &A) -> ((Tensor, X), A) {
    site.require_float_leaves(x);
    let (outs, template, lin) = linearize_flat(site, &f, x);
    let (y, aux) = template.rebuild_from(outs.clone());
    site.require_scalar(&y);
    // Only the loss gets a cotangent; the auxiliary outputs get zeros (symbolic zeros
    // are dropped before transposition, so they cost nothing).
    let mut cts: Vec<Tensor> = outs.iter().map(|o| o.zeros_like()).collect();
    cts[0] = y.ones_like();
    let g = x.rebuild_from(lin.transpose(&cts, &template));
    ((y, aux), g)
}

/// Like [`grad`] for a function that also returns auxiliary data: gives `(gradient, aux)`.
///
/// ```
/// use cotangent::{grad_with_aux, Tensor};
/// let g = grad_with_aux(|x: &Tensor| ((x * x).sum_all(), x.sum_all()));
/// let (dx, aux) = g(&Tensor::scalar(2.0));
/// assert_eq!((dx.item::<f64>(), aux.item::<f64>()), (4.0, 2.0));
/// ```
#[track_caller]
pub fn grad_with_aux<A: Tree, X: Tree, F: Fn(&A) -> (Tensor, X)>(f: F) -> impl Fn(&A) -> (A, X) {
    let site = Site::here("grad_with_aux");
    super::jit(move |x: &A| {
        let ((_, aux), g) = value_and_grad_with_aux_now(site, &f, x);
        (g, aux)
    })
}

/// The transpose of a linear function `f`, traced at arguments shaped like `example`.
///
/// `f` must be linear in its (float) inputs; a non-linear operation on them panics.
///
/// ```
/// use cotangent::{linear_transpose, Tensor};
/// let m = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
/// let ft = linear_transpose(|x: &Tensor| m.matmul(x), &Tensor::zeros(&[2], cotangent::DType::F64));
/// assert_eq!(ft(&Tensor::from_vec(vec![1.0, 0.0], &[2])).to_vec::<f64>(), vec![1.0, 2.0]);
/// ```
pub fn linear_transpose<A: Tree, B: Tree>(f: impl Fn(&A) -> B, example: &A) -> impl Fn(&B) -> A {
    let leaves = example.leaves();
    let (traced, _) = trace_tree_as("linear_transpose", &f, example, &types_of(&leaves));
    let n = leaves.len();
    let arg_template = example.rebuild_from(leaves.clone());
    move |cts: &B| {
        let c: Vec<Option<Tensor>> = cts.leaves().into_iter().map(Some).collect();
        let out = transpose_graph(&traced.graph, n, &traced.captures, &c);
        let zeros = leaves.iter().map(|t| t.zeros_like());
        arg_template.rebuild_from(out.into_iter().zip(zeros).map(|(c, z)| c.unwrap_or(z)).collect())
    }
}
