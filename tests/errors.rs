//! Mistakes in a program panic with a message naming the operation and the
//! shapes/dtypes involved, at the caller's line; bad outside data is an `Err`.

mod common;
use common::*;
use cotangent::{
    concatenate, eval_graph, grad, grad_with_aux, hessian, jacfwd, jacrev, jvp, linearize, stack, trace_graph,
    value_and_grad, value_and_grad_with_aux, vjp, vmap, vmap_axes, where_, DType, Error, Tensor, TensorType,
};
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, Once};

fn m23() -> Tensor {
    iota64(&[2, 3])
}

/// Asserts that `f` panics with a message containing every one of `parts`.
#[track_caller]
fn panics_with<R>(f: impl FnOnce() -> R, parts: &[&str]) {
    let msg = panic_message(AssertUnwindSafe(f));
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} lacks {p:?}");
    }
}

#[test]
#[should_panic(expected = "add: cannot broadcast shapes [3] and [4]")]
fn add_shape_mismatch() {
    let _ = f64t(&[1.0; 3], &[3]) + f64t(&[1.0; 4], &[4]);
}

#[test]
#[should_panic(expected = "mul: operand dtypes differ: f32[3] vs f64[3]")]
fn mul_dtype_mismatch() {
    let _ = f32t(&[1.0; 3], &[3]) * f64t(&[1.0; 3], &[3]);
}

#[test]
#[should_panic(expected = "reshape: cannot reshape f64[2,3] (6 elements) to [4] (4 elements)")]
fn reshape_size_mismatch() {
    let _ = m23().reshape(&[4]);
}

#[test]
#[should_panic(expected = "reduce_sum: axis 2 is out of range for rank 2")]
fn sum_bad_axis() {
    let _ = m23().sum(&[2], false);
}

#[test]
#[should_panic(expected = "exp: expects a float tensor, got i32[2]")]
fn exp_of_integers() {
    let _ = Tensor::from_vec(vec![1i32, 2], &[2]).exp();
}

#[test]
fn binary_errors() {
    let a = f64t(&[1.0, 2.0], &[2]);
    panics_with(|| &a - &m23(), &["sub", "cannot broadcast", "[2]", "[2, 3]"]);
    panics_with(|| a.maximum(f64t(&[1.0; 3], &[3, 1, 1]).reshape(&[1, 3])), &["max", "[2]", "[1, 3]"]);
    panics_with(|| a.pow(f32t(&[1.0, 2.0], &[2])), &["pow", "dtypes differ", "f64[2]", "f32[2]", "cast"]);
    panics_with(|| a.lt(Tensor::from_vec(vec![1i64, 2], &[2])), &["lt", "f64[2]", "i64[2]"]);
    panics_with(|| a.logical_and(&a), &["and", "does not accept f64"]);
    panics_with(|| a.atan2(a.cast(DType::I32).cast(DType::F64).cast(DType::I32)), &["atan2", "dtypes differ"]);
    let i = Tensor::from_vec(vec![1i32, 2], &[2]);
    panics_with(|| i.atan2(&i), &["atan2", "does not accept i32"]);
    let b = Tensor::from_vec(vec![true, false], &[2]);
    panics_with(|| &b + &b, &["add", "does not accept bool"]);
    panics_with(|| b.lt(&b), &["lt", "does not accept bool"]);
    panics_with(|| b.ne(&a), &["ne", "bool[2]", "f64[2]"]);
}

#[test]
fn unary_dtype_errors() {
    let i = Tensor::from_vec(vec![1i64], &[1]);
    let b = Tensor::scalar(true);
    let f = Tensor::scalar(1.0f32);
    panics_with(|| i.sqrt(), &["sqrt", "float", "i64[1]"]);
    panics_with(|| i.sigmoid(), &["logistic", "float", "i64[1]"]);
    panics_with(|| i.is_finite(), &["is_finite", "float", "i64[1]"]);
    panics_with(|| b.erf(), &["erf", "float", "bool[]"]);
    panics_with(|| -&b, &["neg", "numeric", "bool[]"]);
    panics_with(|| b.abs(), &["abs", "numeric", "bool[]"]);
    panics_with(|| f.logical_not(), &["not", "bool or integer", "f32[]"]);
}

#[test]
fn where_errors() {
    let x = f64t(&[1.0, 2.0], &[2]);
    panics_with(|| where_(&x, &x, &x), &["where_", "predicate must be bool", "f64[2]"]);
    let p = x.gt(0.0);
    panics_with(|| where_(&p, &x, &f32t(&[0.0], &[1])), &["where_", "dtypes differ", "f64[2]", "f32[1]"]);
    panics_with(|| where_(&p, &x, &f64t(&[0.0; 3], &[3])), &["where_", "broadcast", "[2]", "[3]"]);
}

#[test]
fn axis_errors() {
    let x = m23();
    panics_with(|| x.sum(&[-3], false), &["reduce_sum", "axis -3", "rank 2"]);
    panics_with(|| x.max(&[0, -2], false), &["reduce_max", "repeated axis", "[0, -2]"]);
    panics_with(|| x.prod(&[7], true), &["reduce_prod", "axis 7"]);
    panics_with(|| x.mean(&[2], false), &["mean", "axis 2"]);
    panics_with(|| x.var(&[-3], 0, false), &["var", "axis -3"]);
    panics_with(|| x.std(&[2], 1, true), &["std", "axis 2"]);
    panics_with(|| x.norm(&[0, 2], false), &["norm", "axis 2"]);
    panics_with(|| x.log_softmax(-3), &["log_softmax", "axis -3"]);
    panics_with(|| x.argmax(2, false), &["argmax", "axis 2", "rank 2"]);
    panics_with(|| x.argmin(-3, true), &["argmin", "axis -3"]);
    panics_with(|| x.cumsum(2), &["cumsum", "axis 2"]);
    panics_with(|| x.cummax(-3), &["cummax", "axis -3"]);
    panics_with(|| x.flip(&[2]), &["flip", "axis 2"]);
    panics_with(|| x.flip(&[1, -1]), &["flip", "repeated"]);
    panics_with(|| x.permute(&[0, 2]), &["permute", "axis 2"]);
    panics_with(|| x.permute(&[0, 0]), &["[0, 0]", "not a permutation"]);
    panics_with(|| x.permute(&[0]), &["[0]", "rank 2"]);
    panics_with(|| x.swap_axes(0, 2), &["swap_axes", "axis 2"]);
    panics_with(|| x.moveaxis(-3, 0), &["moveaxis", "axis -3"]);
    panics_with(|| x.expand_dims(3), &["expand_dims", "axis 3"]);
    panics_with(|| x.expand_dims(-4), &["expand_dims", "axis -4"]);
    panics_with(|| x.squeeze(&[0]), &["squeeze", "axis 0", "f64[2,3]", "extent 2"]);
    panics_with(|| x.squeeze(&[5]), &["squeeze", "axis 5"]);
    panics_with(|| x.slice_axis(2, 0, 1, 1), &["slice_axis", "axis 2"]);
    panics_with(|| x.split(&[1, 1], 1), &["split", "[1, 1]", "extent 3"]);
    panics_with(|| x.split(&[1], 2), &["split", "axis 2"]);
    panics_with(|| x.softmax(2), &["softmax", "axis 2"]);
    panics_with(|| x.logsumexp(&[3], false), &["logsumexp", "axis 3"]);
    panics_with(|| x.logsumexp(&[1, -1], false), &["logsumexp", "repeated"]);
    panics_with(|| Tensor::scalar(1.0).sum(&[0], false), &["reduce_sum", "axis 0", "rank 0"]);
    panics_with(|| concatenate(&[x.clone(), x.clone()], 2), &["concatenate", "axis 2"]);
    panics_with(|| stack(&[x.clone(), x.clone()], 3), &["stack", "axis 3"]);
    panics_with(|| Tensor::iota(&[2, 3], 2, DType::I32), &["iota", "dim 2", "[2, 3]"]);
}

#[test]
fn argmax_of_an_empty_axis() {
    panics_with(|| f64t(&[], &[0]).argmax(0, false), &["argmax", "axis 0", "f64[0]", "empty"]);
    panics_with(|| f64t(&[], &[2, 0]).argmin(-1, false), &["argmin", "axis 1", "f64[2,0]", "empty"]);
}

#[test]
fn shape_errors() {
    let x = m23();
    panics_with(|| x.reshape(&[-1, -1]), &["reshape", "one -1", "[-1, -1]"]);
    panics_with(|| x.reshape(&[4, -1]), &["reshape", "f64[2,3]", "[4, -1]"]);
    panics_with(|| x.reshape(&[-2, 3]), &["reshape", "[-2, 3]"]);
    panics_with(|| f64t(&[], &[0, 3]).reshape(&[0, -1]), &["reshape", "f64[0,3]", "[0, -1]"]);
    panics_with(|| x.reshape_to(&[7]), &["reshape", "f64[2,3]", "[7]"]);
    panics_with(|| x.broadcast_to(&[4, 3]), &["broadcast_to", "[2, 3]", "[4, 3]"]);
    panics_with(|| x.broadcast_to(&[3]), &["broadcast_to", "[2, 3]", "[3]"]);
    panics_with(|| x.broadcast_in_dim(&[2, 3], &[1, 0]), &["broadcast_in_dim", "[1, 0]"]);
    panics_with(|| x.broadcast_in_dim(&[2, 4], &[0, 1]), &["broadcast_in_dim", "f64[2,3]", "[2, 4]"]);
    panics_with(|| x.broadcast_in_dim(&[2, 3, 1], &[0]), &["broadcast_in_dim", "[0]", "f64[2,3]"]);
    panics_with(|| x.slice(&[0, 0], &[3, 3], &[1, 1]), &["slice", "axis 0", "0..3", "extent 2", "f64[2,3]"]);
    panics_with(|| x.slice(&[2, 0], &[1, 3], &[1, 1]), &["slice", "axis 0", "2..1"]);
    panics_with(|| x.slice(&[0, 0], &[2, 3], &[1, 0]), &["slice", "axis 1", "step 0"]);
    panics_with(|| x.slice(&[0], &[2], &[1]), &["slice", "f64[2,3]"]);
    panics_with(|| x.pad(&[-2, 0], &[-1, 0], &[0, 0], 0.0), &["pad", "axis 0", "f64[2,3]", "negative extent -1"]);
    panics_with(|| x.pad(&[0], &[0], &[0], 0.0), &["pad", "f64[2,3]"]);
    panics_with(|| x.pad_with(&[0, 0], &[0, 0], &[0, 0], &f64t(&[1.0], &[1])), &["pad", "0-d f64", "f64[1]"]);
    panics_with(|| x.pad_with(&[0, 0], &[0, 0], &[0, 0], &Tensor::scalar(1.0f32)), &["pad", "f32[]"]);
    panics_with(|| concatenate(&[x.clone(), iota64(&[3, 2])], 0), &["concatenate", "axis 0", "f64[2,3]", "f64[3,2]"]);
    panics_with(|| concatenate(&[x.clone(), x.cast(DType::F32)], 0), &["concatenate", "f64[2,3]", "f32[2,3]"]);
    panics_with(|| concatenate(&[x.clone(), iota64(&[6])], 0), &["concatenate", "f64[6]"]);
    panics_with(|| concatenate(&[], 0), &["concatenate", "at least one"]);
    panics_with(|| stack(&[x.clone(), iota64(&[3, 2])], 0), &["stack", "[2, 3]", "[3, 2]"]);
    panics_with(|| stack(&[], 0), &["stack", "at least one"]);
    panics_with(|| x.index(2), &["index", "2", "extent 2"]);
    panics_with(|| x.index(-3), &["index", "-3", "extent 2"]);
    panics_with(|| Tensor::scalar(1.0).index(0), &["index", "0-d"]);
    panics_with(|| f64t(&[], &[0]).index(0), &["index", "0", "extent 0"]);
}

#[test]
fn dtype_errors_of_reductions_and_structure() {
    let b = Tensor::from_vec(vec![true, false], &[2]);
    panics_with(|| b.sum(&[0], false), &["reduce_sum", "bool", "cast"]);
    panics_with(|| b.argmax(0, false), &["argmax", "bool"]);
    panics_with(|| b.cumsum(0), &["cumsum", "bool"]);
    panics_with(|| Tensor::iota(&[3], 0, DType::Bool), &["iota", "bool"]);
}

#[test]
fn reading_values() {
    let x = f64t(&[1.0, 2.0], &[2]);
    panics_with(|| x.to_vec::<f32>(), &["to_vec", "f64[2]", "not f32"]);
    panics_with(|| x.item::<f64>(), &["item", "f64[2]", "2 elements"]);
    panics_with(|| Tensor::scalar(1i32).item::<i64>(), &["item", "i32[]", "not i64"]);
    panics_with(|| f64t(&[], &[0]).item::<f64>(), &["item", "0 elements"]);
}

#[test]
fn misuse_of_helpers() {
    let x = f64t(&[1.0, 2.0], &[2]);
    panics_with(|| x.clamp(1.0, 0.0), &["clamp", "lower bound 1", "upper bound 0"]);
    panics_with(|| Tensor::arange(0.0, 1.0, 0.0, DType::F64), &["arange", "step"]);
    panics_with(|| Tensor::from_vec(vec![1.0; 5], &[2, 3]), &["5 elements", "[2, 3]", "6 elements"]);
}

#[test]
fn try_from_vec_reports_length_mismatch() {
    let e = Tensor::try_from_vec(vec![1.0f32; 5], &[2, 3]).unwrap_err();
    assert_eq!(e, Error::ShapeMismatch { len: 5, shape: vec![2, 3] });
    assert_eq!(e.to_string(), "a buffer of 5 elements cannot have shape [2, 3] (6 elements)");
    assert!(Tensor::try_from_vec(vec![1i64], &[]).is_ok());
    assert!(Tensor::try_from_vec(Vec::<bool>::new(), &[]).is_err());
    assert!(Tensor::try_from_vec(vec![true], &[0]).is_err());
}

#[test]
fn reading_a_traced_value_points_to_control_flow() {
    let ty = [TensorType::new(DType::F64, vec![3])];
    let msg = panic_message(|| {
        trace_graph(&ty, |xs| {
            let v = xs[0].to_vec::<f64>();
            vec![Tensor::scalar(v[0])]
        })
    });
    for part in ["to_vec", "traced", "f64[3]", "cond", "while_loop"] {
        assert!(msg.contains(part), "message {msg:?} lacks {part:?}");
    }
    let msg = panic_message(|| trace_graph(&ty, |xs| vec![Tensor::scalar(xs[0].sum_all().item::<f64>())]));
    assert!(msg.contains("item") && msg.contains("traced") && msg.contains("while_loop"), "{msg}");
    let msg = panic_message(|| trace_graph(&ty, |xs| vec![Tensor::from_vec(xs[0].to_f64_vec(), &[3])]));
    assert!(msg.contains("to_f64_vec") && msg.contains("cond"), "{msg}");
    // The failed trace left nothing behind: tracing and eager work as before.
    assert_eq!(cotangent::trace::depth(), 0);
    let g = trace_graph(&ty, |xs| vec![xs[0].exp()]);
    assert_eq!(g.num_ops(), 1);
    assert_eq!(f64t(&[1.0], &[1]).add(1.0).to_vec::<f64>(), vec![2.0]);
}

#[test]
fn a_traced_value_that_escapes_its_trace() {
    let ty = [TensorType::new(DType::F32, vec![2])];
    let kept = Mutex::new(None);
    trace_graph(&ty, |xs| {
        *kept.lock().unwrap() = Some(xs[0].clone());
        vec![xs[0].clone()]
    });
    let leaked = kept.lock().unwrap().take().unwrap();
    assert!(leaked.is_traced());
    assert_eq!(leaked.to_string(), "Traced<f32[2]>");
    panics_with(|| leaked.exp(), &["escaped", "f32[2]"]);
    panics_with(|| &leaked + &f32t(&[1.0, 2.0], &[2]), &["escaped"]);
    panics_with(|| leaked.to_vec::<f32>(), &["to_vec", "traced"]);
}

const READ_LINE: u32 = line!() + 3;
/// A traced function that reads its argument (on line `READ_LINE`).
fn read_first(xs: &[Tensor]) -> Vec<Tensor> {
    let v = xs[0].to_vec::<f64>();
    vec![Tensor::scalar(v[0])]
}

thread_local! {
    /// Set while `panic_location` runs on this thread: where its panic was reported.
    static CAUGHT: RefCell<Option<Option<(String, u32)>>> = const { RefCell::new(None) };
}

/// Runs `f` and returns the file and line its panic was reported at.
///
/// One hook, installed once, serves every test thread (tests run in parallel, and hooks
/// swapped per call would restore one another's): it records the location on threads
/// inside `panic_location` and hands other panics to the default hook.
fn panic_location(f: impl FnOnce()) -> (String, u32) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let at = info.location().map(|l| (l.file().to_string(), l.line()));
            let caught = CAUGHT.with(|c| c.borrow_mut().as_mut().map(|slot| *slot = at).is_some());
            if !caught {
                prev(info);
            }
        }));
    });
    CAUGHT.with(|c| *c.borrow_mut() = Some(None));
    let r = catch_unwind(AssertUnwindSafe(f));
    let at = CAUGHT.with(|c| c.borrow_mut().take()).flatten();
    assert!(r.is_err(), "expected a panic");
    at.expect("the panic has a location")
}

#[test]
fn panics_point_at_the_callers_line() {
    let x = m23();
    let y = f64t(&[1.0; 4], &[4]);
    // `line!()` in a macro is the line of the macro call.
    macro_rules! case {
        ($e:expr) => {
            (line!(), Box::new(|| drop($e)) as Box<dyn FnOnce()>)
        };
    }
    let cases = vec![
        case!(&x + &y),
        case!(x.add(&y)),
        case!(x.sum(&[5], false)),
        case!(x.sum(&[0, 0], false)),
        case!(x.mean(&[5], false)),
        case!(x.var(&[5], 0, false)),
        case!(x.std(&[5], 0, false)),
        case!(x.logsumexp(&[5], false)),
        case!(x.norm(&[5], false)),
        case!(x.softmax(5)),
        case!(x.log_softmax(5)),
        case!(x.relu().leaky_relu(0.1).add(&y)),
        case!(x.argmax(5, false)),
        case!(x.cumsum(5)),
        case!(x.reshape(&[5])),
        case!(x.reshape(&[4, -1])),
        case!(x.permute(&[0, 5])),
        case!(x.expand_dims(9)),
        case!(x.squeeze(&[0])),
        case!(x.index(9)),
        case!(x.slice(&[0, 0], &[9, 9], &[1, 1])),
        case!(x.exp().cast(DType::I32).exp()),
        case!(where_(&x, &x, &x)),
        case!(where_(&x.gt(0.0), &x, &y)),
        case!(concatenate(&[], 0)),
        case!(concatenate(&[x.clone(), y.clone()], 0)),
        case!(stack(&[], 0)),
        case!(x.broadcast_to(&[9])),
        case!(x.to_vec::<f32>()),
        case!(Tensor::from_vec(vec![1.0], &[2])),
    ];
    for (line, f) in cases {
        let (file, at) = panic_location(f);
        assert!(file.ends_with("errors.rs"), "case at line {line} reported {file}:{at}");
        assert_eq!(at, line, "case at line {line} reported {file}:{at}");
    }
    // Inside a trace, the line in the traced function.
    let ty = [TensorType::new(DType::F64, vec![3])];
    let (file, at) = panic_location(|| drop(trace_graph(&ty, read_first)));
    let line = READ_LINE;
    assert!(file.ends_with("errors.rs") && at == line, "reported {file}:{at}, want line {line}");
}

// ----- Misuse of transformations: the message names the transformation the user called
// and the user's line; functions called directly also panic at that line. -----

/// `"<name> (called at tests/errors.rs:<line>:"`, the prefix of a transformation's message.
fn site(name: &str, line: u32) -> String {
    format!("{name} (called at tests/errors.rs:{line}:")
}

#[test]
fn differentiating_with_respect_to_integers_is_an_error() {
    let i = Tensor::from_vec(vec![1i32, 2], &[2]);
    let sum = |x: &Tensor| x.cast(DType::F64).sum_all();
    let (df, line) = (grad(sum), line!());
    panics_with(|| df(&i), &[&site("grad", line), "requires float inputs", "i32[2]"]);
    let pair = (f64t(&[1.0], &[1]), Tensor::from_vec(vec![3i64], &[1]));
    let loss = |p: &(Tensor, Tensor)| (&p.0 * p.1.cast(DType::F64)).sum_all();
    let (vg, line) = (value_and_grad(loss), line!());
    panics_with(|| vg(&pair), &[&site("value_and_grad", line), "leaf `1`", "i64[1]"]);
    let aux = |x: &Tensor| (sum(x), x.clone());
    let (vga, line) = (value_and_grad_with_aux(aux), line!());
    panics_with(|| vga(&i), &[&site("value_and_grad_with_aux", line), "i32[2]"]);
    let (ga, line) = (grad_with_aux(aux), line!());
    panics_with(|| ga(&i), &[&site("grad_with_aux", line), "i32[2]"]);
    let (jr, line) = (jacrev(|x: &Tensor| x.cast(DType::F64)), line!());
    panics_with(|| jr(&i), &[&site("jacrev", line), "i32[2]"]);
    let (jf, line) = (jacfwd(|x: &Tensor| x.cast(DType::F64)), line!());
    panics_with(|| jf(&i), &[&site("jacfwd", line), "i32[2]"]);
    // The Jacobian of an integer output would be zeros too.
    let round = |x: &Tensor| x.round().cast(DType::I64);
    let (jr, line) = (jacrev(round), line!());
    panics_with(|| jr(&iota64(&[2])), &[&site("jacrev", line), "requires float outputs", "i64[2]"]);
    let (jf, line) = (jacfwd(round), line!());
    panics_with(|| jf(&iota64(&[2])), &[&site("jacfwd", line), "requires float outputs", "i64[2]"]);
    let b = Tensor::from_vec(vec![true, false], &[2]);
    let (h, line) = (hessian(sum), line!());
    panics_with(|| h(&b), &[&site("hessian", line), "bool[2]"]);
    // vjp and jvp accept integer leaves and give them zero (co)tangents, as documented.
    let (_, pb) = vjp(loss, &pair);
    let (gx, gi) = pb.call(&Tensor::scalar(1.0));
    assert_eq!((gx.to_vec::<f64>(), gi.to_vec::<i64>()), (vec![3.0], vec![0]));
    let (_, dy) = jvp(sum, &i, &i);
    assert_eq!(dy.item::<f64>(), 0.0);
}

#[test]
fn grad_of_a_non_scalar_names_the_transformation() {
    let x = f64t(&[1.0, 2.0, 3.0], &[3]);
    let double = |x: &Tensor| x * 2.0;
    let want = "the function must return a 0-d float tensor to be differentiated, got f64[3]";
    let (df, line) = (grad(double), line!());
    panics_with(|| df(&x), &[&site("grad", line), want]);
    let (vg, line) = (value_and_grad(double), line!());
    panics_with(|| vg(&x), &[&site("value_and_grad", line), want]);
    let (h, line) = (hessian(double), line!());
    panics_with(|| h(&x), &[&site("hessian", line), want]);
    let (ga, line) = (grad_with_aux(|x: &Tensor| (x * 2.0, ())), line!());
    panics_with(|| ga(&x), &[&site("grad_with_aux", line), want]);
    // Nested: the inner transformation is the one misused.
    let (inner, line) = (grad(double), line!());
    let outer = grad(|x: &Tensor| inner(x).sum_all());
    panics_with(|| outer(&x), &[&site("grad", line), want]);
    let cast = |x: &Tensor| x.sum_all().cast(DType::I32);
    let (df, line) = (grad(cast), line!());
    panics_with(|| df(&x), &[&site("grad", line), "got i32[]"]);
}

#[test]
fn vmap_errors_name_vmap_and_the_leaves() {
    let (a, b) = (iota64(&[2]), iota64(&[3]));
    let add = |(a, b): &(Tensor, Tensor)| a + b;
    let (f, line) = (vmap(add), line!());
    let sizes = "mapped axes have different sizes: 2 and 3";
    panics_with(|| f(&(a.clone(), b.clone())), &[&site("vmap", line), sizes, "leaf `0`", "f64[2]", "leaf `1`"]);
    let (f, line) = (vmap(|x: &Tensor| x * 2.0), line!());
    panics_with(|| f(&Tensor::scalar(1.0)), &[&site("vmap", line), "in_axes 0", "f64[]", "rank 0"]);
    let (f, line) = (vmap_axes(add, vec![Some(0)], 0), line!());
    panics_with(|| f(&(a.clone(), a.clone())), &[&site("vmap_axes", line), "1 in_axes", "2 leaves"]);
    let (f, line) = (vmap_axes(add, vec![None, None], 0), line!());
    panics_with(|| f(&(a.clone(), a.clone())), &[&site("vmap_axes", line), "no argument leaf is mapped"]);
    let (f, line) = (vmap_axes(add, vec![Some(0), Some(-2)], 0), line!());
    panics_with(|| f(&(a.clone(), a.clone())), &[&site("vmap_axes", line), "in_axes -2", "leaf `1`"]);
    // The output axis is checked against each output's rank, as vmap's out_axes, not moveaxis.
    let (f, line) = (vmap_axes(|x: &Tensor| x.sum_all(), vec![Some(0)], 1), line!());
    let msg = panic_message(AssertUnwindSafe(|| f(&m23())));
    for part in [&site("vmap_axes", line) as &str, "out_axes 1", "f64[2]", "rank 1"] {
        assert!(msg.contains(part), "message {msg:?} lacks {part:?}");
    }
    assert!(!msg.contains("moveaxis"), "{msg}");
}

#[test]
fn jvp_vjp_and_linearize_misuse_panics_at_the_callers_line() {
    let x = f64t(&[1.0, 2.0], &[2]);
    let pair = (x.clone(), x.clone());
    let sum = |p: &(Tensor, Tensor)| (&p.0 * &p.1).sum_all();
    let t32 = (x.clone(), x.cast(DType::F32));
    let msg = panic_message(AssertUnwindSafe(|| jvp(sum, &pair, &t32)));
    for part in ["jvp (called at tests/errors.rs:", "leaf `1`", "tangent f32[2]", "primal f64[2]"] {
        assert!(msg.contains(part), "message {msg:?} lacks {part:?}");
    }
    let (_, pb) = vjp(sum, &pair);
    let (_, lin) = linearize(sum, &pair);
    let (l0, l1, l2) = (line!() + 2, line!() + 3, line!() + 4);
    let cases: Vec<(u32, Box<dyn FnOnce()>)> = vec![
        (l0, Box::new(|| drop(jvp(sum, &pair, &t32)))),
        (l1, Box::new(|| drop(pb.call(&Tensor::scalar(1.0f32))))),
        (l2, Box::new(|| drop(lin.call(&t32)))),
    ];
    for (line, f) in cases {
        let (file, at) = panic_location(f);
        assert!(file.ends_with("errors.rs") && at == line, "case at line {line} reported {file}:{at}");
    }
    let msg = panic_message(AssertUnwindSafe(|| pb.call(&Tensor::scalar(1.0f32))));
    assert!(msg.contains("vjp") && msg.contains("f32[]") && msg.contains("f64[]"), "{msg}");
}

#[test]
fn a_leaked_tracer_names_its_transformation_and_the_users_line() {
    let kept = Mutex::new(None);
    let df = grad(|x: &Tensor| {
        *kept.lock().unwrap() = Some(x.clone());
        x.sin()
    });
    df(&Tensor::scalar(1.0));
    let leaked = kept.lock().unwrap().take().unwrap();
    panics_with(|| leaked.exp(), &["traced value (f64[]) of grad", "escaped"]);
    let line = line!() + 1;
    let (file, at) = panic_location(|| drop(&leaked * 2.0));
    assert!(file.ends_with("errors.rs") && at == line, "reported {file}:{at}, want line {line}");
}

#[test]
fn a_tracer_used_on_another_thread_says_so() {
    let seen = Mutex::new(String::new());
    grad(|x: &Tensor| {
        let r = std::thread::scope(|s| s.spawn(|| x.exp()).join());
        let e = r.expect_err("using a tracer on another thread panics");
        *seen.lock().unwrap() = e.downcast_ref::<String>().cloned().unwrap_or_default();
        x.sin()
    })(&Tensor::scalar(1.0));
    let msg = seen.into_inner().unwrap();
    for part in ["traced value (f64[]) of grad", "another thread", "calling thread"] {
        assert!(msg.contains(part), "message {msg:?} lacks {part:?}");
    }
    assert!(!msg.contains("escaped"), "{msg}");
}

#[test]
fn eval_graph_checks_its_arguments() {
    let g = trace_graph(&[TensorType::new(DType::F64, vec![3])], |xs| vec![xs[0].exp()]);
    let ok = eval_graph(&g, &[iota64(&[3])]);
    assert_eq!(ok[0].shape(), vec![3]);
    panics_with(|| eval_graph(&g, &[]), &["eval_graph", "1 argument", "got 0"]);
    panics_with(|| eval_graph(&g, &[iota64(&[3]).cast(DType::F32)]), &["eval_graph", "argument 0", "f32[3]", "f64[3]"]);
    panics_with(|| eval_graph(&g, &[iota64(&[4])]), &["eval_graph", "argument 0", "f64[4]", "f64[3]"]);
    let line = line!() + 1;
    let (file, at) = panic_location(|| drop(eval_graph(&g, &[iota64(&[4])])));
    assert!(file.ends_with("errors.rs") && at == line, "reported {file}:{at}, want line {line}");
}
