//! The per-call path of `jit` (issue 12, GradBench's small inputs): a function's second call
//! never waits for the C compiler in `NativeMode::Auto`, whether its loops are at the top of
//! the plan or only inside loop bodies (`fori_loop`, `scan`, `while_loop`), and whether or
//! not the process has asked the compiler yet whether it works.
//!
//! The call-order part runs in a child process (this test binary again, with
//! `COTANGENT_TEST_JIT_CALLS_CHILD` set), with a fresh, empty kernel cache and
//! `COTANGENT_DUMP=1`, which prints each plan as `jit` starts running it: the parent reads
//! from the child's output which plan ran which call.

#![cfg(unix)]

use cotangent::compile::{optimize, Plan};
use cotangent::trace::trace_graph;
mod common;

use cotangent::*;

const CHILD: &str = "COTANGENT_TEST_JIT_CALLS_CHILD";
const N: usize = 1 << 14;

/// A loop whose body is one large element-wise loop (the plan's only fused loop).
fn looped(x: &Tensor) -> Tensor {
    control::fori_loop(0, 3, |_, y: &Tensor| ((y * 0.5).sin() * 0.9 + 0.25).tanh(), x)
}

fn input() -> Tensor {
    Tensor::from_vec((0..N).map(|i| (i % 101) as f64 / 50.0 - 1.0).collect(), &[N])
}

/// Runs `test` in a child with a fresh cache and `COTANGENT_NATIVE` unset (`Auto`); its
/// stderr (the dumps and the marks), in order.
fn child(test: &str) -> String {
    common::child::run(test, CHILD, None)
}

/// The last of `marks` printed before the first native plan's dump (`native fused`).
fn first_native_after<'a>(text: &str, marks: &[&'a str]) -> Option<&'a str> {
    let at = text.find("native fused")?;
    marks.iter().rev().copied().find(|m| text.find(m).is_some_and(|p| p < at))
}

/// A plan whose loops are all inside a loop body has a build cost like any other (it was
/// `None`, "nothing to compile", so `jit` compiled the body on the calling thread at the
/// second call: GradBench's `ode` waited 0.03–3 s for the C compiler there); once the
/// sub-plan's library is in the cache, the cost is zero.
#[test]
fn build_costs_count_the_loops_inside_loop_bodies() {
    let ty = TensorType::new(DType::F64, vec![N]);
    let g = trace_graph(&[ty], |x| vec![looped(&x[0])]);
    let plan = Plan::interpreted(&optimize(&g));
    let dump = plan.dump();
    let top_level_loop = |l: &str| {
        l.strip_prefix("  ").is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()) && r.contains("fused["))
    };
    assert!(dump.contains("fused[") && !dump.lines().any(top_level_loop), "the loop is in the body only:\n{dump}");
    with_native_mode(NativeMode::Off, || assert_eq!(plan.native_build_cost(), None));
    with_native_mode(NativeMode::Auto, || {
        let flat = trace_graph(&[TensorType::new(DType::F64, vec![N])], |x| vec![(&x[0] * 3.0).tanh()]);
        if Plan::interpreted(&optimize(&flat)).native_build_cost().is_none() {
            eprintln!("no working C compiler: not tested here");
            return;
        }
        let cost = plan.native_build_cost().expect("the body's loop is to be compiled");
        let native = plan.with_native_loops().expect("the body's loop compiles");
        assert!(native.dump().contains("native fused"), "{}", native.dump());
        assert_eq!(native.native_build_cost(), None, "everything compiled");
        assert_eq!(plan.native_build_cost(), Some(std::time::Duration::ZERO), "cached now (was {cost:?})");
        let x = input();
        assert_eq!(plan.run(std::slice::from_ref(&x))[0].to_vec::<f64>(), native.run(&[x])[0].to_vec::<f64>());
    });
}

/// In `Auto`, the second call of a function whose only loop is a `fori_loop`'s body runs
/// interpreted and returns; the native plan runs first at the call after the background
/// compile (before the fix it ran at the second call, compiled on the calling thread).
/// Every call agrees bitwise.
#[test]
fn the_second_call_of_a_looped_function_does_not_wait_for_the_compiler() {
    if std::env::var_os(CHILD).is_some() {
        let x = input();
        let g = jit(looped);
        let first = g(&x).to_vec::<f64>();
        eprintln!("mark: call 1 returned");
        // The first call asked, in the background, whether a compiler works: with the answer
        // in, the second call weighs the plan's build cost (the path that compiled at once).
        wait_for_native_compiles();
        assert_eq!(g(&x).to_vec::<f64>(), first);
        eprintln!("mark: call 2 returned");
        wait_for_native_compiles();
        eprintln!("mark: compiles finished");
        assert_eq!(g(&x).to_vec::<f64>(), first);
        eprintln!("mark: call 3 returned");
        assert_eq!(g(&x).to_vec::<f64>(), first);
        return;
    }
    let text = child("the_second_call_of_a_looped_function_does_not_wait_for_the_compiler");
    if !text.contains("native fused") {
        eprintln!("no native plan (no working C compiler?): not tested here\n{text}");
        return;
    }
    let marks = ["mark: call 1 returned", "mark: call 2 returned", "mark: compiles finished", "mark: call 3 returned"];
    assert_eq!(
        first_native_after(&text, &marks),
        Some("mark: compiles finished"),
        "the native plan must first run at the call after the background compile:\n{text}"
    );
}

/// A long chain of element-wise operations: one interpreted loop of many instructions.
fn heavy(x: &Tensor) -> Tensor {
    let mut y = x.clone();
    for k in 0..12 {
        y = ((&y * (0.5 + k as f64 * 0.01)).sin() + x * 0.25).tanh();
    }
    y
}

/// A function whose one interpreted run is expected to take longer than compiling it starts
/// the background compile at its first call, so its second call (after the compile) runs the
/// native plan; before, the second call only started the compile.
#[test]
fn a_heavy_first_call_starts_the_compile() {
    if std::env::var_os(CHILD).is_some() {
        // A small function first: its call asks (in the background) whether a compiler works.
        jit(|x: &Tensor| x * 2.0)(&Tensor::from_vec(vec![1.0f64; 8], &[8]));
        wait_for_native_compiles();
        let x = Tensor::from_vec((0..1 << 22).map(|i| (i % 101) as f64 / 50.0 - 1.0).collect(), &[1 << 22]);
        let g = jit(heavy);
        let first = g(&x).to_vec::<f64>();
        eprintln!("mark: call 1 returned");
        wait_for_native_compiles();
        eprintln!("mark: compiles finished");
        assert_eq!(g(&x).to_vec::<f64>(), first);
        eprintln!("mark: call 2 returned");
        // (Where the first call did not start it, the second did: a third call would be native.)
        wait_for_native_compiles();
        assert_eq!(g(&x).to_vec::<f64>(), first);
        eprintln!("mark: call 3 returned");
        return;
    }
    let text = child("a_heavy_first_call_starts_the_compile");
    if !text.contains("native fused") {
        eprintln!("no native plan (no working C compiler?): not tested here\n{text}");
        return;
    }
    let marks = ["mark: call 1 returned", "mark: compiles finished", "mark: call 2 returned", "mark: call 3 returned"];
    assert_eq!(
        first_native_after(&text, &marks),
        Some("mark: compiles finished"),
        "the second call must run the plan compiled since the first:\n{text}"
    );
}
