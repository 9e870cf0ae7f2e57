//! Custom derivative rules: `custom_jvp` and `custom_vjp` (the public API is in
//! [`crate::control`]).
//!
//! - [`Prim::CustomJvp`] evaluates its function `f`. Its **jvp** gives the node itself as the
//!   primal (so the next order of differentiation goes through the rule again) and evaluates
//!   the tangent outputs of the user's rule inline, so primal work in the rule runs (or
//!   records) at the primal level and tangent work records into the tangent trace; the rule's
//!   operations are ordinary primitives, so the rule is itself differentiable (second
//!   derivatives go through it) and reverse mode transposes the rule's tangent part (the node
//!   itself is never transposed).
//!   **Batching** is a `custom_jvp` of the batched function and the batched rule.
//! - [`Prim::CustomVjp`] evaluates `f`. Its **jvp** runs `fwd` inline (outputs and
//!   residuals) and binds a linear [`Prim::CustomVjpCall`] on (non-differentiable arguments,
//!   residuals, captures, tangents), whose **transpose** runs the user's `bwd` inline.
//!   Evaluating that node on tangents (forward mode) is the error
//!   "custom_vjp functions support reverse mode only", as in JAX. **Batching** is a
//!   `custom_vjp` of the batched `f`, `fwd` and `bwd`.
//!
//! Both rules refuse derivatives with respect to values the function closes over (its
//! captures): the user's rule only covers the explicit arguments (JAX refuses this too).

use super::rules::{with_batch_axis, LinArg};
use super::Prim;
use crate::ir::{Graph, SubGraph};
use crate::trace::{bind, bind_multi, eval_graph, Tuples};
use crate::transform::subgraph::batch_subgraph;
use crate::{Tensor, TensorType};

fn list(types: &[TensorType]) -> String {
    let s: Vec<String> = types.iter().map(ToString::to_string).collect();
    format!("({})", s.join(", "))
}

fn check_operands(what: &str, expected: &[TensorType], inputs: &[&TensorType]) -> Result<(), String> {
    let got: Vec<TensorType> = inputs.iter().map(|&t| t.clone()).collect();
    if got != expected {
        return Err(format!("{what} takes {} but the operands are {}", list(expected), list(&got)));
    }
    Ok(())
}

/// The results of `custom_jvp`: `f`'s outputs, after checking the operands and the rule.
pub(crate) fn custom_jvp_types(
    f: &SubGraph,
    jvp: &SubGraph,
    num_args: usize,
    inputs: &[&TensorType],
) -> Result<Vec<TensorType>, String> {
    check_operands("f", &f.input_types(), inputs)?;
    let ins = f.input_types();
    let mut rule_ins = ins[..num_args].to_vec();
    rule_ins.extend_from_slice(&ins[..num_args]);
    rule_ins.extend_from_slice(&ins[num_args..]);
    if jvp.input_types() != rule_ins {
        return Err(format!("the rule takes {} but should take {}", list(&jvp.input_types()), list(&rule_ins)));
    }
    let outs = f.output_types();
    let mut rule_outs = outs.clone();
    rule_outs.extend_from_slice(&outs);
    if jvp.output_types() != rule_outs {
        return Err(format!("the rule returns {} but should return {}", list(&jvp.output_types()), list(&rule_outs)));
    }
    Ok(outs)
}

/// The results of `custom_vjp`: `f`'s outputs, after checking the operands.
pub(crate) fn custom_vjp_types(
    f: &SubGraph,
    fwd: &SubGraph,
    bwd: &SubGraph,
    (num_args, num_nondiff, num_res): (usize, usize, usize),
    inputs: &[&TensorType],
) -> Result<Vec<TensorType>, String> {
    check_operands("f", &f.input_types(), inputs)?;
    if fwd.input_types() != f.input_types() {
        return Err(format!("fwd takes {} but f takes {}", list(&fwd.input_types()), list(&f.input_types())));
    }
    let outs = f.output_types();
    let fwd_outs = fwd.output_types();
    if fwd_outs.len() != outs.len() + num_res || fwd_outs[..outs.len()] != outs[..] {
        return Err(format!("fwd returns {} but f returns {}", list(&fwd_outs), list(&outs)));
    }
    let ins = f.input_types();
    let mut bwd_ins = ins[num_args..num_args + num_nondiff].to_vec();
    bwd_ins.extend_from_slice(&fwd_outs[outs.len()..]);
    bwd_ins.extend_from_slice(&outs);
    bwd_ins.extend_from_slice(&ins[num_args + num_nondiff..]);
    if bwd.input_types() != bwd_ins || bwd.output_types() != ins[..num_args] {
        return Err(format!(
            "bwd maps {} to {} but should map {} to {}",
            list(&bwd.input_types()),
            list(&bwd.output_types()),
            list(&bwd_ins),
            list(&ins[..num_args])
        ));
    }
    Ok(outs)
}

/// The results of the tangent node of `custom_vjp`: the output tangents.
pub(crate) fn custom_vjp_call_types(
    bwd: &SubGraph,
    (num_nondiff, num_res, num_out): (usize, usize, usize),
    inputs: &[&TensorType],
) -> Result<Vec<TensorType>, String> {
    let b = bwd.input_types();
    let (head, rest) = b.split_at(num_nondiff + num_res);
    let (outs, caps) = rest.split_at(num_out);
    let mut expected = head.to_vec();
    expected.extend_from_slice(caps);
    expected.extend(bwd.output_types());
    check_operands("custom_vjp_call", &expected, inputs)?;
    Ok(outs.to_vec())
}

/// The error of a `custom_vjp` function under forward mode.
#[track_caller]
pub(crate) fn forward_mode_error(name: &str) -> ! {
    panic!(
        "custom_vjp of `{name}`: custom_vjp functions support reverse mode only (use custom_jvp for forward mode); \
         jvp, jacfwd and calling a linearization need forward mode"
    )
}

#[track_caller]
fn closure_error(kind: &str, name: &str) -> ! {
    panic!(
        "{kind} of `{name}`: differentiated with respect to a value the function closes over, but the custom rule \
         only gives derivatives for its explicit arguments: pass that value as an argument"
    )
}

/// Primal results and tangents of `custom_jvp`: the primal is the `custom_jvp` node itself
/// (so derivatives of the primal at the next order go through the rule again, as JAX's rules
/// get by calling the function recursively), the tangents are the rule's tangent outputs,
/// evaluated inline.
pub(crate) fn custom_jvp_jvp(prim: &Prim, x: &[&Tensor], t: &[Option<&Tensor>]) -> (Vec<Tensor>, Vec<Option<Tensor>>) {
    let Prim::CustomJvp { jvp: rule, num_args, name, .. } = prim else {
        unreachable!("custom_jvp_jvp of {}", prim.name())
    };
    let num_args = *num_args;
    if t[num_args..].iter().any(Option::is_some) {
        closure_error("custom_jvp", name);
    }
    let outs = bind_multi(prim.clone(), x);
    let mut tangent_rule = (**rule).clone();
    tangent_rule.outputs.drain(..outs.len());
    let tangent_rule = crate::compile::dce(&tangent_rule);
    let mut ins: Vec<Tensor> = x[..num_args].iter().map(|&a| a.clone()).collect();
    ins.extend(x[..num_args].iter().zip(&t[..num_args]).map(|(a, t)| t.cloned().unwrap_or_else(|| a.zeros_like())));
    ins.extend(x[num_args..].iter().map(|&a| a.clone()));
    let tangents = eval_inline(&tangent_rule, &ins);
    let tangents = tangents.into_iter().map(|t| t.dtype().is_float().then_some(t)).collect();
    (outs, tangents)
}

/// Evaluates a closed graph with [`bind`]: every operation runs or records at the level of
/// its own operands, and constants are lifted only where they are used. (Unlike
/// [`eval_graph`], which puts every constant into the highest trace among the arguments:
/// the rule's primal work, which reads only primals and constants, must stay at the primal
/// level when its tangent arguments are symbolic.)
fn eval_inline(g: &Graph, args: &[Tensor]) -> Vec<Tensor> {
    let mut env: Vec<Option<Tensor>> = vec![None; g.nodes.len()];
    let mut tuples = Tuples::default();
    for (i, node) in g.nodes.iter().enumerate() {
        let ins = || -> Vec<&Tensor> { node.inputs.iter().map(|v| env[v.index()].as_ref().expect("value")).collect() };
        let value = match &node.prim {
            Prim::Input(k) => args[*k].clone(),
            Prim::Constant(a) => Tensor::from_arc(a.clone()),
            Prim::Proj(k) => tuples.get(node.inputs[0].index(), *k).expect("tuple element"),
            prim if prim.is_tuple() => {
                let results = bind_multi(prim.clone(), &ins());
                tuples.set(i, results);
                continue;
            }
            prim => bind(prim.clone(), &ins()),
        };
        env[i] = Some(value);
    }
    g.outputs.iter().map(|v| env[v.index()].clone().expect("output")).collect()
}

/// `custom_jvp` on operands of which those marked `batched` carry a leading batch axis:
/// every explicit argument gets the axis (so the rule's tangents are batched like its
/// primals), and the function and rule are batched.
pub(crate) fn custom_jvp_batch(
    (f, rule): (&SubGraph, &SubGraph),
    num_args: usize,
    name: &'static str,
    args: &[Tensor],
    batched: &[bool],
    size: usize,
) -> Vec<Tensor> {
    let (args, flags) = batch_args(num_args, args, batched, size);
    let fb = SubGraph::new(batch_subgraph(f, &flags, size));
    let mut rule_flags = vec![true; 2 * num_args];
    rule_flags.extend_from_slice(&flags[num_args..]);
    let rb = SubGraph::new(batch_subgraph(rule, &rule_flags, size));
    let refs: Vec<&Tensor> = args.iter().collect();
    bind_multi(Prim::CustomJvp { f: fb, jvp: rb, num_args, name }, &refs)
}

/// The operands with every one of the first `n` batched (broadcast where it was not), and
/// the new flags.
fn batch_args(n: usize, args: &[Tensor], batched: &[bool], size: usize) -> (Vec<Tensor>, Vec<bool>) {
    let args = args
        .iter()
        .zip(batched)
        .enumerate()
        .map(|(i, (a, &b))| if i < n && !b { with_batch_axis(a, size) } else { a.clone() })
        .collect();
    let flags = batched.iter().enumerate().map(|(i, &b)| b || i < n).collect();
    (args, flags)
}

/// Primal results and tangents of `custom_vjp`: `fwd` inline, then the linear tangent node.
pub(crate) fn custom_vjp_jvp(prim: &Prim, x: &[&Tensor], t: &[Option<&Tensor>]) -> (Vec<Tensor>, Vec<Option<Tensor>>) {
    let Prim::CustomVjp { fwd, bwd, num_args, num_nondiff, num_res, name, .. } = prim else {
        unreachable!("custom_vjp_jvp of {}", prim.name())
    };
    let (na, nn) = (*num_args, *num_nondiff);
    if t[na + nn..].iter().any(Option::is_some) {
        closure_error("custom_vjp", name);
    }
    if t[..na].iter().all(Option::is_none) {
        // Only non-differentiable arguments carry tangents: they get no derivative.
        let outs = bind_multi(prim.clone(), x);
        let n = outs.len();
        return (outs, vec![None; n]);
    }
    let args: Vec<Tensor> = x.iter().map(|&a| a.clone()).collect();
    let mut outs = eval_graph(fwd, &args);
    let residuals = outs.split_off(outs.len() - num_res);
    let num_out = outs.len();
    let mut operands: Vec<Tensor> = args[na..na + nn].to_vec();
    operands.extend(residuals);
    operands.extend_from_slice(&args[na + nn..]);
    operands.extend(x[..na].iter().zip(&t[..na]).map(|(a, t)| t.cloned().unwrap_or_else(|| a.zeros_like())));
    let refs: Vec<&Tensor> = operands.iter().collect();
    let call = Prim::CustomVjpCall { bwd: bwd.clone(), num_nondiff: nn, num_res: *num_res, num_out, name };
    let tangents = bind_multi(call, &refs).into_iter().map(|t| t.dtype().is_float().then_some(t)).collect();
    (outs, tangents)
}

/// Cotangents of the tangents a `custom_vjp` tangent node is linear in: the user's `bwd`.
pub(crate) fn custom_vjp_call_transpose(
    bwd: &SubGraph,
    (num_nondiff, num_res, num_out): (usize, usize, usize),
    cts: &[Option<Tensor>],
    args: &[LinArg],
) -> Vec<Option<Tensor>> {
    let num_caps = bwd.inputs.len() - num_nondiff - num_res - num_out;
    let head = num_nondiff + num_res;
    let values: Vec<Tensor> = args[..head + num_caps]
        .iter()
        .map(|a| a.value("a custom_vjp residual or non-differentiable argument").clone())
        .collect();
    let out_types = &bwd.input_types()[head..head + num_out];
    let mut ins: Vec<Tensor> = values[..head].to_vec();
    ins.extend(
        cts.iter().zip(out_types).map(|(c, ty)| c.clone().unwrap_or_else(|| Tensor::zeros(&ty.shape, ty.dtype))),
    );
    ins.extend_from_slice(&values[head..]);
    let in_cts = eval_graph(bwd, &ins);
    let mut out = vec![None; head + num_caps];
    out.extend(in_cts.into_iter().map(Some));
    out
}

/// `custom_vjp` on batched operands: every differentiable argument batched, and `f`, `fwd`
/// and `bwd` batched (residuals and cotangents all carry the batch axis).
pub(crate) fn custom_vjp_batch(prim: &Prim, args: &[Tensor], batched: &[bool], size: usize) -> Vec<Tensor> {
    let Prim::CustomVjp { f, fwd, bwd, num_args, num_nondiff, num_res, name } = prim else {
        unreachable!("custom_vjp_batch of {}", prim.name())
    };
    let (args, flags) = batch_args(*num_args, args, batched, size);
    let fb = SubGraph::new(batch_subgraph(f, &flags, size));
    let fwdb = SubGraph::new(batch_subgraph(fwd, &flags, size));
    let num_out = f.outputs.len();
    let mut bwd_flags = flags[*num_args..*num_args + *num_nondiff].to_vec();
    bwd_flags.extend(std::iter::repeat_n(true, num_res + num_out));
    bwd_flags.extend_from_slice(&flags[*num_args + *num_nondiff..]);
    let bwdb = SubGraph::new(batch_subgraph(bwd, &bwd_flags, size));
    let refs: Vec<&Tensor> = args.iter().collect();
    let p = Prim::CustomVjp {
        f: fb,
        fwd: fwdb,
        bwd: bwdb,
        num_args: *num_args,
        num_nondiff: *num_nondiff,
        num_res: *num_res,
        name,
    };
    bind_multi(p, &refs)
}

/// Transpose of a `custom_vjp` node found in a linear graph (its differentiable arguments are
/// linear values: the function is applied to tangents, e.g. a linear solve inside a
/// `custom_jvp` rule). A linear function's vjp is the same at every point, so the residuals
/// are those of `fwd` at zero and the cotangents are the user's `bwd`. Non-differentiable
/// arguments and captures must not depend on the linear input.
pub(crate) fn custom_vjp_transpose(prim: &Prim, cts: &[Option<Tensor>], args: &[LinArg]) -> Vec<Option<Tensor>> {
    let Prim::CustomVjp { f, fwd, bwd, num_args, num_nondiff, num_res, .. } = prim else {
        unreachable!("custom_vjp_transpose of {}", prim.name())
    };
    let (na, nn) = (*num_args, *num_nondiff);
    let mut fwd_in: Vec<Tensor> = args[..na]
        .iter()
        .map(|a| match a {
            LinArg::Linear(ty) => Tensor::zeros(&ty.shape, ty.dtype),
            LinArg::Value(v) => v.zeros_like(),
        })
        .collect();
    let rest: Vec<Tensor> =
        args[na..].iter().map(|a| a.value("a custom_vjp non-differentiable argument or capture").clone()).collect();
    fwd_in.extend(rest.iter().cloned());
    let mut outs = eval_graph(fwd, &fwd_in);
    let residuals = outs.split_off(outs.len() - num_res);
    let out_types = f.output_types();
    let mut ins: Vec<Tensor> = rest[..nn].to_vec();
    ins.extend(residuals);
    ins.extend(
        cts.iter().zip(&out_types).map(|(c, ty)| c.clone().unwrap_or_else(|| Tensor::zeros(&ty.shape, ty.dtype))),
    );
    ins.extend_from_slice(&rest[nn..]);
    let in_cts = eval_graph(bwd, &ins);
    let mut out: Vec<Option<Tensor>> = in_cts.into_iter().map(Some).collect();
    out.extend(std::iter::repeat_n(None, args.len() - na));
    out
}
