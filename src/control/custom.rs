//! Custom derivative rules: [`custom_jvp`], [`custom_vjp`] and [`custom_vjp_nondiff`].
//!
//! The function and its rules are traced when the returned function is called (the types
//! are known then) into closed graphs carried by one structured primitive, so the result
//! composes with every transformation: see [`crate::ops::custom`] for the rules.
//!
//! Values the functions close over (traced or concrete) are passed to the primitive for
//! them; differentiating with respect to such a value is an error (the rule only covers the
//! explicit arguments), as in JAX: pass it as an argument instead.

use crate::ir::SubGraph;
use crate::ops::Prim;
use crate::trace::bind_multi;
use crate::transform::site::Site;
use crate::transform::subgraph::close_over;
use crate::transform::{trace_tree_as, types_of};
use crate::{Tensor, TensorType, Tree};

fn show(types: &[TensorType]) -> String {
    types.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

fn paths<T: Tree>(t: &T) -> Vec<String> {
    t.named_leaves().into_iter().map(|(p, _)| p).collect()
}

/// A copy of a tree (same leaves).
fn copy<T: Tree>(t: &T) -> T {
    t.rebuild_from(t.leaves())
}

/// `f` with a custom forward-mode derivative: `rule(primals, tangents)` returns
/// `(outputs, output tangents)`.
///
/// The rule must be linear in the tangents (reverse mode transposes it) and is itself
/// differentiated by ordinary means, so second derivatives go through it (it should be
/// written with differentiable operations). Its primal outputs must have `f`'s types; the
/// values used are `f`'s (the `custom_jvp` function itself), so derivatives of every order
/// go through the rule, as JAX's rules get by calling the function recursively. Under [`vmap`](crate::vmap) both `f` and the
/// rule are batched; under [`jit`](crate::jit) both are compiled. Integer and bool leaves of
/// the argument get zero tangents of their own dtype.
///
/// ```
/// use cotangent::{control::custom_jvp, grad, Tensor};
/// // log(1 + e^x) with the stable derivative sigmoid(x) (the naive one is NaN at x = 1000).
/// let log1pexp = custom_jvp(
///     |x: &Tensor| x.softplus(),
///     |x: &Tensor, t: &Tensor| (x.softplus(), x.sigmoid() * t),
/// );
/// assert_eq!(grad(&log1pexp)(&Tensor::scalar(1000.0)).item::<f64>(), 1.0);
/// // Second derivative through the rule: sigmoid'(0) = 1/4.
/// assert_eq!(grad(grad(&log1pexp))(&Tensor::scalar(0.0)).item::<f64>(), 0.25);
/// ```
///
/// # Panics
/// At the line that created the function, when the rule's results do not have the
/// structure and types of `f`'s outputs twice over, or when a value `f` closes over is
/// differentiated.
#[track_caller]
pub fn custom_jvp<A: Tree, B: Tree, F, R>(f: F, rule: R) -> impl Fn(&A) -> B
where
    F: Fn(&A) -> B,
    R: Fn(&A, &A) -> (B, B),
{
    let site = Site::here("custom_jvp");
    let name = std::any::type_name::<F>();
    move |x: &A| {
        let leaves = x.leaves();
        let types = types_of(&leaves);
        let (tf, template) = trace_tree_as(site.name, |a: &A| f(a), x, &types);
        let pair = (copy(x), copy(x));
        let mut rule_types = types.clone();
        rule_types.extend(types.iter().cloned());
        let (tr, (rule_out, rule_tan)) = trace_tree_as(site.name, |p: &(A, A)| rule(&p.0, &p.1), &pair, &rule_types);
        let outs = tf.graph.output_types();
        let got = tr.graph.output_types();
        let mut want = outs.clone();
        want.extend(outs.iter().cloned());
        if got != want || paths(&rule_out) != paths(&template) || paths(&rule_tan) != paths(&template) {
            site.fail(format_args!(
                "the rule of `{name}` must return (outputs, tangents), each with the structure and types of the \
                 function's outputs: ({}), but it returned ({})",
                show(&want),
                show(&got)
            ));
        }
        let (graphs, captures) = close_over(vec![tf, tr]);
        let mut g = graphs.into_iter().map(SubGraph::new);
        let (fg, rg) = (g.next().expect("f"), g.next().expect("rule"));
        let mut args = leaves;
        args.extend(captures);
        let refs: Vec<&Tensor> = args.iter().collect();
        let prim = Prim::CustomJvp { f: fg, jvp: rg, num_args: types.len(), name };
        template.rebuild_from(bind_multi(prim, &refs))
    }
}

/// `f` with a custom reverse-mode derivative: `fwd(x)` returns `f(x)` and residuals, and
/// `bwd(residuals, output cotangents)` returns the cotangents of `x` (a tree shaped like
/// `x`, of its types).
///
/// Only reverse mode ([`grad`](crate::grad), [`vjp`](crate::vjp), [`jacrev`](crate::jacrev))
/// goes through a `custom_vjp` function; forward mode ([`jvp`](crate::jvp),
/// [`jacfwd`](crate::jacfwd)) panics with "custom_vjp functions support reverse mode only
/// (use custom_jvp for forward mode)", as in JAX. Higher-order reverse mode differentiates
/// `fwd` and `bwd` as ordinary functions. Every leaf of `x` must be a float tensor; pass
/// other values with [`custom_vjp_nondiff`].
///
/// ```
/// use cotangent::{control::custom_vjp, grad, Tensor};
/// // The identity, with its gradient clipped to [-1, 1].
/// let clip_gradient = custom_vjp(
///     |x: &Tensor| x.clone(),
///     |x: &Tensor| (x.clone(), ()),
///     |_: &(), g: &Tensor| g.clamp(-1.0, 1.0),
/// );
/// let f = |x: &Tensor| (clip_gradient(x) * 5.0).sum_all();
/// assert_eq!(grad(f)(&Tensor::scalar(2.0)).item::<f64>(), 1.0);
/// ```
///
/// # Panics
/// When the returned function is called, with a message naming the line that created it,
/// the function and both types: when `fwd`'s outputs differ from `f`'s, when `bwd` returns a
/// structure or types other than the argument's, or when a leaf of the argument is not a
/// float tensor.
#[track_caller]
pub fn custom_vjp<A: Tree, B: Tree, Res: Tree, F, Fwd, Bwd>(f: F, fwd: Fwd, bwd: Bwd) -> impl Fn(&A) -> B
where
    F: Fn(&A) -> B,
    Fwd: Fn(&A) -> (B, Res),
    Bwd: Fn(&Res, &B) -> A,
{
    let site = Site::here("custom_vjp");
    let name = std::any::type_name::<F>();
    let g = custom_vjp_at(
        site,
        name,
        move |a: &A, _: &()| f(a),
        move |a: &A, _: &()| fwd(a),
        move |_: &(), r: &Res, c: &B| bwd(r, c),
    );
    move |x: &A| g(x, &())
}

/// [`custom_vjp`] with non-differentiable arguments (JAX's `nondiff_argnums`): `f(x, n)`
/// where no derivative flows to `n` (any tensors: integer indices, flags, hyper-parameters),
/// and `bwd(n, residuals, output cotangents)` returns the cotangents of `x` only.
///
/// ```
/// use cotangent::{control::custom_vjp_nondiff, grad, Tensor};
/// // Scale the gradient by a (non-differentiable) factor.
/// let scale_grad = custom_vjp_nondiff(
///     |x: &Tensor, _: &Tensor| x.clone(),
///     |x: &Tensor, _: &Tensor| (x.clone(), ()),
///     |k: &Tensor, _: &(), g: &Tensor| g * k,
/// );
/// let k = Tensor::scalar(0.5);
/// let dx = grad(|x: &Tensor| scale_grad(x, &k).sum_all())(&Tensor::from_vec(vec![1.0, 2.0], &[2]));
/// assert_eq!(dx.to_vec::<f64>(), vec![0.5, 0.5]);
/// ```
///
/// # Panics
/// As [`custom_vjp`].
#[track_caller]
pub fn custom_vjp_nondiff<A: Tree, N: Tree, B: Tree, Res: Tree, F, Fwd, Bwd>(
    f: F,
    fwd: Fwd,
    bwd: Bwd,
) -> impl Fn(&A, &N) -> B
where
    F: Fn(&A, &N) -> B,
    Fwd: Fn(&A, &N) -> (B, Res),
    Bwd: Fn(&N, &Res, &B) -> A,
{
    let site = Site::here("custom_vjp_nondiff");
    let name = std::any::type_name::<F>();
    custom_vjp_at(site, name, f, fwd, bwd)
}

/// The body of [`custom_vjp`] and [`custom_vjp_nondiff`].
fn custom_vjp_at<A: Tree, N: Tree, B: Tree, Res: Tree>(
    site: Site,
    name: &'static str,
    f: impl Fn(&A, &N) -> B,
    fwd: impl Fn(&A, &N) -> (B, Res),
    bwd: impl Fn(&N, &Res, &B) -> A,
) -> impl Fn(&A, &N) -> B {
    move |x: &A, n: &N| {
        let named = x.named_leaves();
        if let Some((path, t)) = named.iter().find(|(_, t)| !t.dtype().is_float()) {
            site.fail(format_args!(
                "the differentiable argument of `{name}` must have float leaves, but `{path}` is {}; pass integer \
                 and bool values as non-differentiable arguments (custom_vjp_nondiff)",
                t.ty()
            ));
        }
        let (a_leaves, n_leaves) = (x.leaves(), n.leaves());
        let (a_types, n_types) = (types_of(&a_leaves), types_of(&n_leaves));
        let mut types = a_types.clone();
        types.extend(n_types.iter().cloned());
        let pair = (copy(x), copy(n));
        let (tf, template) = trace_tree_as(site.name, |p: &(A, N)| f(&p.0, &p.1), &pair, &types);
        let (tfwd, (fwd_out, res)) = trace_tree_as(site.name, |p: &(A, N)| fwd(&p.0, &p.1), &pair, &types);
        let outs = tf.graph.output_types();
        let num_out = outs.len();
        let fwd_outs = tfwd.graph.output_types();
        if fwd_outs[..num_out.min(fwd_outs.len())] != outs[..] || paths(&fwd_out) != paths(&template) {
            site.fail(format_args!(
                "fwd of `{name}` must return (outputs, residuals) with outputs of the function's structure and types \
                 ({}), but it returned ({})",
                show(&outs),
                show(&fwd_outs)
            ));
        }
        let res_types = fwd_outs[num_out..].to_vec();
        let mut bwd_types = n_types.clone();
        bwd_types.extend(res_types.iter().cloned());
        bwd_types.extend(outs.iter().cloned());
        let triple = (copy(n), copy(&res), copy(&template));
        let (tbwd, cts) = trace_tree_as(site.name, |p: &(N, Res, B)| bwd(&p.0, &p.1, &p.2), &triple, &bwd_types);
        let ct_types = tbwd.graph.output_types();
        if ct_types != a_types || paths(&cts) != paths(x) {
            let described = |p: Vec<String>, t: &[TensorType]| {
                p.iter()
                    .zip(t)
                    .map(|(p, t)| if p.is_empty() { t.to_string() } else { format!("{p}: {t}") })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            site.fail(format_args!(
                "bwd of `{name}` must return cotangents with the structure and types of the differentiable argument \
                 ({}), but it returned ({})",
                described(paths(x), &a_types),
                described(paths(&cts), &ct_types)
            ));
        }
        let (graphs, captures) = close_over(vec![tf, tfwd, tbwd]);
        let mut g = graphs.into_iter().map(SubGraph::new);
        let (fg, fwdg, bwdg) = (g.next().expect("f"), g.next().expect("fwd"), g.next().expect("bwd"));
        let mut args = a_leaves;
        args.extend(n_leaves);
        args.extend(captures);
        let refs: Vec<&Tensor> = args.iter().collect();
        let prim = Prim::CustomVjp {
            f: fg,
            fwd: fwdg,
            bwd: bwdg,
            num_args: a_types.len(),
            num_nondiff: n_types.len(),
            num_res: res_types.len(),
            name,
        };
        template.rebuild_from(bind_multi(prim, &refs))
    }
}
