//! Taylor mode: push truncated power series through a graph with each primitive's jet rule.
//!
//! Internally a series is normalised (`x(t) = Σ ck t^k`, see `ops::series`), with `None`
//! for coefficients known to be zero; the public functions use JAX's derivative-scaled
//! coefficients `xk = k!·ck` and convert once at the boundary.

use super::site::{leaf_name, Site};
use super::vmap::batch_graph;
use super::{trace_tree_as, types_of};
use crate::ir::Graph;
use crate::ops::series::{self, Series};
use crate::ops::{rules, Prim};
use crate::trace::{bind, trace_as};
use crate::{Tensor, Tree};

pub(crate) fn zero_series(x: Tensor, order: usize) -> Series {
    let mut s = vec![Some(x)];
    s.resize(order + 1, None);
    s
}

fn is_constant(s: &[Option<Tensor>]) -> bool {
    s[1..].iter().all(|c| c.is_none())
}

/// Evaluates `g` on the series `inputs` (each `[x0, c1, ..., cK]`, normalised), returning the
/// series of every output.
pub(crate) fn jet_graph(g: &Graph, inputs: &[Series], order: usize) -> Vec<Series> {
    let mut ser: Vec<Option<Series>> = vec![None; g.nodes.len()];
    // The series of each tuple node's elements.
    let mut tuples: std::collections::HashMap<usize, Vec<Series>> = std::collections::HashMap::new();
    for (i, node) in g.nodes.iter().enumerate() {
        ser[i] = Some(match &node.prim {
            Prim::Input(k) => inputs[*k].clone(),
            Prim::Proj(k) => tuples[&node.inputs[0].index()][*k].clone(),
            prim if prim.is_tuple() => {
                let xs: Vec<&[Option<Tensor>]> =
                    node.inputs.iter().map(|v| ser[v.index()].as_deref().expect("series")).collect();
                let outs = if xs.iter().all(|s| is_constant(s)) {
                    let p: Vec<&Tensor> = xs.iter().map(|s| series::primal(s)).collect();
                    crate::trace::bind_multi(prim.clone(), &p).into_iter().map(|y| zero_series(y, order)).collect()
                } else {
                    rules::jet_multi(prim, &xs, order)
                };
                tuples.insert(i, outs);
                continue;
            }
            Prim::Constant(a) => zero_series(Tensor::from_arc(a.clone()), order),
            prim => {
                let xs: Vec<&[Option<Tensor>]> =
                    node.inputs.iter().map(|v| ser[v.index()].as_deref().expect("series")).collect();
                let p: Vec<&Tensor> = xs.iter().map(|s| series::primal(s)).collect();
                let y = bind(prim.clone(), &p);
                if xs.iter().all(|s| is_constant(s)) || !y.dtype().is_float() {
                    zero_series(y, order)
                } else {
                    rules::jet(prim, &xs, &y)
                }
            }
        });
    }
    g.outputs.iter().map(|v| ser[v.index()].clone().expect("output")).collect()
}

/// A function of the series variable `t` (one derivative of the primitive's results).
type Derivative<'a> = Box<dyn Fn(&Tensor) -> Vec<Tensor> + 'a>;

/// The series of a primitive's results by nested forward mode in the series variable `t`:
/// with `x(t) = Σ cₖ tᵏ` for every operand, the k-th coefficient of `eval(x(t))` is its k-th
/// derivative in `t` at 0 over k!, and each derivative is one more [`jvp`](crate::jvp) in the
/// scalar `t`. Exact, but costs O(2^K) evaluations of the primitive's jvp rule (against
/// O(K²) for a dedicated Taylor rule): the fallback for primitives whose Taylor rule would
/// be long to derive (linear algebra decompositions, loops).
pub(crate) fn nested_jet(
    eval: &dyn Fn(&[Tensor]) -> Vec<Tensor>,
    xs: &[&[Option<Tensor>]],
    order: usize,
) -> Vec<Series> {
    let path = |t: &Tensor| -> Vec<Tensor> {
        xs.iter()
            .map(|s| {
                let x0 = series::primal(s);
                if !x0.dtype().is_float() {
                    return x0.clone();
                }
                let t = t.cast(x0.dtype());
                let mut x = x0.clone();
                let mut tk = t.clone();
                for c in &s[1..] {
                    if let Some(c) = c {
                        x = x + c * &tk;
                    }
                    tk = &tk * &t;
                }
                x
            })
            .collect()
    };
    let t0 = Tensor::scalar(0.0f64);
    let g0 = eval(&path(&t0));
    let mut out: Vec<Series> = g0.iter().map(|y| zero_series(y.clone(), order)).collect();
    // d_k(t) = the k-th derivative of eval(path(t)).
    let mut d: Derivative<'_> = Box::new(move |t: &Tensor| eval(&path(t)));
    let mut factorial = 1.0;
    for k in 1..=order {
        let prev = d;
        d = Box::new(move |t: &Tensor| crate::jvp(|t: &Tensor| prev(t), t, &Tensor::scalar(1.0f64)).1);
        factorial *= k as f64;
        for (s, dk) in out.iter_mut().zip(d(&t0)) {
            if dk.dtype().is_float() {
                s[k] = Some(dk * (1.0 / factorial));
            }
        }
    }
    out
}

/// The normalised series of `f(x(t))` for a one-tensor function: how composite jet rules
/// (products, scans) reuse the other rules.
pub(crate) fn jet_series(f: &dyn Fn(&Tensor) -> Tensor, x: &[Option<Tensor>]) -> Series {
    let x0 = series::primal(x);
    let traced = trace_as("jet", &[x0.ty()], |v| vec![f(&v[0])]);
    let order = series::order(x);
    let mut inputs = vec![x.to_vec()];
    inputs.extend(traced.captures.iter().map(|c| zero_series(c.clone(), order)));
    jet_graph(&traced.graph, &inputs, order).swap_remove(0)
}

fn factorial(k: usize) -> f64 {
    (1..=k).map(|i| i as f64).product()
}

/// Taylor mode: the Taylor coefficients of `f(x(t))` for the truncated series
/// `x(t) = x₀ + Σₖ xₖ tᵏ/k!`, `x₀ = primals`, `xₖ = series[k-1]`.
///
/// Returns `f(x₀)` and `[y₁, ..., y_K]` (`K = series.len()`) with `f(x(t)) = y₀ + Σₖ yₖ tᵏ/k! +
/// O(t^{K+1})`. The convention is JAX's (`jax.experimental.jet`): coefficients are scaled by
/// `k!`, so `yₖ` is the k-th derivative `dᵏ/dtᵏ f(x(t))` at `t = 0`; with `x₁ = v` and the rest
/// zero, `y_k` is the k-th directional derivative of `f` along `v`. Each order costs O(K) for
/// linear operations and O(K²) for the non-linear ones (the standard recurrences). Every
/// element of `series` has the tree structure and types of `primals`; integer and bool leaves
/// carry no series. Use [`jet_sparse`] to mark whole orders as zero at no cost.
///
/// A primitive without a jet rule panics naming the primitive and `jet`. Piecewise primitives
/// follow the active branch (`select`, `abs`, `relu`); ties of max/min take the mean of the
/// tied operands' series, and `abs(0)` has the zero series, as the jvp rules do. Like
/// [`jvp`](crate::jvp), `jet` works eagerly and inside [`jit`](crate::jit), [`vmap`](crate::vmap),
/// [`grad`](crate::grad) and itself.
///
/// ```
/// use cotangent::{jet, Tensor};
/// let x = Tensor::scalar(0.5f64);
/// let (y, ys) = jet(|x: &Tensor| x.sin(), &x, &[Tensor::scalar(1.0), Tensor::scalar(0.0), Tensor::scalar(0.0)]);
/// assert!((y.item::<f64>() - 0.5f64.sin()).abs() < 1e-15);
/// // sin', sin'', sin''' at 0.5.
/// assert!((ys[0].item::<f64>() - 0.5f64.cos()).abs() < 1e-15);
/// assert!((ys[1].item::<f64>() + 0.5f64.sin()).abs() < 1e-15);
/// assert!((ys[2].item::<f64>() + 0.5f64.cos()).abs() < 1e-15);
/// ```
#[track_caller]
pub fn jet<A: Tree, B: Tree>(f: impl Fn(&A) -> B, primals: &A, series: &[A]) -> (B, Vec<B>) {
    let sparse: Vec<Option<&A>> = series.iter().map(Some).collect();
    jet_at(Site::here("jet"), f, primals, &sparse)
}

/// [`jet`] where `None` marks an order whose coefficients are all zero: a symbolic zero that
/// costs nothing (a k-th directional derivative is `jet_sparse(f, x, &[Some(v), None, ...])`).
///
/// ```
/// use cotangent::{jet_sparse, Tensor};
/// let x = Tensor::from_vec(vec![1.0f64, 2.0], &[2]);
/// let v = Tensor::from_vec(vec![1.0f64, 0.0], &[2]);
/// // d⁴/dt⁴ of Σ x⁴ along e₀ is 4! = 24.
/// let (_, ys) = jet_sparse(|x: &Tensor| x.powf(4.0).sum_all(), &x, &[Some(&v), None, None, None]);
/// assert!((ys[3].item::<f64>() - 24.0).abs() < 1e-9);
/// ```
#[track_caller]
pub fn jet_sparse<A: Tree, B: Tree>(f: impl Fn(&A) -> B, primals: &A, series: &[Option<&A>]) -> (B, Vec<B>) {
    jet_at(Site::here("jet_sparse"), f, primals, series)
}

#[track_caller]
fn jet_at<A: Tree, B: Tree>(site: Site, f: impl Fn(&A) -> B, primals: &A, series_in: &[Option<&A>]) -> (B, Vec<B>) {
    let p = primals.leaves();
    let order = series_in.len();
    let mut inputs: Vec<Series> = p.iter().map(|x| zero_series(x.clone(), order)).collect();
    for (k, s) in series_in.iter().enumerate() {
        let Some(s) = s else { continue };
        let leaves = s.leaves();
        if leaves.len() != p.len() {
            site.fail(format_args!(
                "primals have {} leaves but the series coefficient of order {} has {}",
                p.len(),
                k + 1,
                leaves.len()
            ));
        }
        for (i, (x, c)) in p.iter().zip(&leaves).enumerate() {
            if x.ty() != c.ty() {
                let path = primals.named_leaves().swap_remove(i).0;
                site.fail(format_args!(
                    "series coefficient of order {} for {} is {} but its primal is {}",
                    k + 1,
                    leaf_name(&path, i),
                    c.ty(),
                    x.ty()
                ));
            }
            if x.dtype().is_float() {
                let scale = 1.0 / factorial(k + 1);
                inputs[i][k + 1] = Some(if k == 0 { c.clone() } else { c * scale });
            }
        }
    }
    let (traced, template) = trace_tree_as(site.name, f, primals, &types_of(&p));
    inputs.extend(traced.captures.iter().map(|c| zero_series(c.clone(), order)));
    let outs = jet_graph(&traced.graph, &inputs, order);
    let y0: Vec<Tensor> = outs.iter().map(|s| series::primal(s).clone()).collect();
    let ys: Vec<B> = (1..=order)
        .map(|k| {
            let leaves = outs
                .iter()
                .map(|s| match &s[k] {
                    Some(c) if k == 1 => c.clone(),
                    Some(c) => c * factorial(k),
                    None => series::primal(s).zeros_like(),
                })
                .collect();
            template.rebuild_from(leaves)
        })
        .collect();
    (template.rebuild_from(y0), ys)
}

/// `f` applied to `batched` (each with a leading axis of extent `size`) by tracing it once on
/// one slice and batching the graph; `None` when `f` returns nothing (a symbolic zero).
fn batched_rule(f: &dyn Fn(&[Tensor]) -> Option<Tensor>, batched: &[Tensor], size: usize) -> Option<Tensor> {
    let types: Vec<_> = batched
        .iter()
        .map(|t| {
            let mut ty = t.ty();
            ty.shape.remove(0);
            ty
        })
        .collect();
    let mut some = false;
    let traced = trace_as("jet2_collapsed", &types, |v| {
        let out: Vec<Tensor> = f(v).into_iter().collect();
        some = !out.is_empty();
        out
    });
    if !some {
        return None;
    }
    let mut args = batched.to_vec();
    args.extend(traced.captures.iter().cloned());
    let mut flags = vec![true; batched.len()];
    flags.resize(args.len(), false);
    let (out, is_batched) = batch_graph(&traced.graph, &args, &flags, size).swap_remove(0);
    Some(if is_batched { out } else { rules::with_batch_axis(&out, size) })
}

/// Collapsed Taylor mode (Dangel et al., 2024) for second order: `f(x)` and
/// `Σ_d d²/dt² f(x + t·v_d)` at `t = 0`, i.e. `Σ_d v_dᵀ ∇²f(x) v_d` for scalar `f`.
///
/// `directions` has the tree structure of `primals` with a leading axis of extent `D` on
/// every leaf (`v_d` is slice `d`). The first-order coefficients are propagated for all `D`
/// directions at once, but the second-order coefficient only once, as the sum over
/// directions: every linear operation after the input costs as much as one direction, not
/// `D` (the sum is moved through linear operations; non-linear ones add their per-direction
/// quadratic terms and sum them at once). With the unit directions this is the Laplacian.
///
/// ```
/// use cotangent::{jet2_collapsed, Tensor};
/// let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], &[3]);
/// // Laplacian of Σ x³ = Σ 6x = 36.
/// let (_, lap) = jet2_collapsed(|x: &Tensor| x.powf(3.0).sum_all(), &x, &Tensor::eye(3, cotangent::DType::F64));
/// assert!((lap.item::<f64>() - 36.0).abs() < 1e-9);
/// ```
#[track_caller]
pub fn jet2_collapsed<A: Tree, B: Tree>(f: impl Fn(&A) -> B, primals: &A, directions: &A) -> (B, B) {
    let site = Site::here("jet2_collapsed");
    let (p, v) = (primals.leaves(), directions.leaves());
    if p.len() != v.len() {
        site.fail(format_args!("primals have {} leaves but directions have {}", p.len(), v.len()));
    }
    let mut size = None;
    for (i, (x, d)) in p.iter().zip(&v).enumerate() {
        let mut want = vec![d.shape().first().copied().unwrap_or(0)];
        want.extend(x.shape());
        if d.rank() != x.rank() + 1 || d.shape() != want || d.dtype() != x.dtype() || size.is_some_and(|s| s != want[0])
        {
            let path = primals.named_leaves().swap_remove(i).0;
            site.fail(format_args!(
                "directions for {} must be {} with one leading axis of the same extent for every leaf, got {}",
                leaf_name(&path, i),
                x.ty(),
                d.ty()
            ));
        }
        size = Some(want[0]);
    }
    let size = size.unwrap_or(0);
    let (traced, template) = trace_tree_as(site.name, f, primals, &types_of(&p));
    // Per node: primal, first-order coefficients [D, ...], summed second-order coefficient.
    type Node = (Tensor, Option<Tensor>, Option<Tensor>);
    let mut args: Vec<Node> =
        p.iter().zip(&v).map(|(x, d)| (x.clone(), x.dtype().is_float().then(|| d.clone()), None)).collect();
    args.extend(traced.captures.iter().map(|c| (c.clone(), None, None)));
    let g = &traced.graph;
    let mut val: Vec<Option<Node>> = vec![None; g.nodes.len()];
    for (i, node) in g.nodes.iter().enumerate() {
        val[i] = Some(match &node.prim {
            Prim::Input(k) => args[*k].clone(),
            Prim::Constant(a) => (Tensor::from_arc(a.clone()), None, None),
            prim => {
                let ins: Vec<&Node> = node.inputs.iter().map(|v| val[v.index()].as_ref().expect("value")).collect();
                let xs: Vec<&Tensor> = ins.iter().map(|n| &n.0).collect();
                let y = bind(prim.clone(), &xs);
                if !y.dtype().is_float() || ins.iter().all(|n| n.1.is_none() && n.2.is_none()) {
                    (y, None, None)
                } else {
                    collapsed_rule(prim, &ins, y, size)
                }
            }
        });
    }
    let outs: Vec<&Node> = g.outputs.iter().map(|v| val[v.index()].as_ref().expect("output")).collect();
    let y0 = outs.iter().map(|n| n.0.clone()).collect();
    let y2 = outs.iter().map(|n| n.2.as_ref().map(|s| s * 2.0).unwrap_or_else(|| n.0.zeros_like())).collect();
    (template.rebuild_from(y0), template.rebuild_from(y2))
}

/// One node of [`jet2_collapsed`].
fn collapsed_rule(
    prim: &Prim,
    ins: &[&(Tensor, Option<Tensor>, Option<Tensor>)],
    y: Tensor,
    size: usize,
) -> (Tensor, Option<Tensor>, Option<Tensor>) {
    let xs: Vec<&Tensor> = ins.iter().map(|n| &n.0).collect();
    // Operands with first-order coefficients, by position.
    let which: Vec<usize> = (0..ins.len()).filter(|&i| ins[i].1.is_some()).collect();
    let batched: Vec<Tensor> = which.iter().map(|&i| ins[i].1.clone().expect("first order")).collect();
    let place = |ts: &[Tensor]| -> Vec<Option<Tensor>> {
        let mut out = vec![None; ins.len()];
        for (&i, t) in which.iter().zip(ts) {
            out[i] = Some(t.clone());
        }
        out
    };
    // First order, per direction: the jvp.
    let y1 = if which.is_empty() {
        None
    } else {
        batched_rule(
            &|ts| {
                let t = place(ts);
                let refs: Vec<Option<&Tensor>> = t.iter().map(|t| t.as_ref()).collect();
                rules::jvp(prim, &xs, &refs, &y)
            },
            &batched,
            size,
        )
    };
    // Second order: the rule's linear part on the summed coefficients, once ...
    let mut y2 = None;
    if ins.iter().any(|n| n.2.is_some()) {
        let sers: Vec<Series> = ins.iter().map(|n| vec![Some(n.0.clone()), None, n.2.clone()]).collect();
        let refs: Vec<&[Option<Tensor>]> = sers.iter().map(|s| s.as_slice()).collect();
        y2 = rules::jet(prim, &refs, &y).swap_remove(2);
    }
    // ... plus its quadratic part in the first-order coefficients, per direction, summed.
    if !which.is_empty() {
        let quad = batched_rule(
            &|ts| {
                let t = place(ts);
                let sers: Vec<Series> =
                    ins.iter().zip(&t).map(|(n, t)| vec![Some(n.0.clone()), t.clone(), None]).collect();
                let refs: Vec<&[Option<Tensor>]> = sers.iter().map(|s| s.as_slice()).collect();
                rules::jet(prim, &refs, &y).swap_remove(2)
            },
            &batched,
            size,
        );
        y2 = series::add(y2, quad.map(|q| q.sum(&[0], false)));
    }
    (y, y1, y2)
}
