//! One kernel library serves a program at every input size (issue 12, GradBench's cold
//! cache): a function called twice at a size whose loops are all below what
//! `NativeMode::Auto` compiles (4096 elements) still leaves, from the background worker, the
//! library that a new function of the same program loads at a larger size — so the larger
//! input runs native from its first call, with every loop native (its constant-size loops
//! too) and without a compile of its own. The compile runs even when the small function was
//! dropped before the worker reached it (GradBench's tools build a fresh function per input).
//!
//! Runs in a child process (this test binary again, with `COTANGENT_TEST_REUSE_CHILD` set)
//! with a fresh, empty kernel cache and `COTANGENT_DUMP=1`, which prints each plan as `jit`
//! builds it; the parent reads the dumps and the number of libraries the child saw.

#![cfg(unix)]

mod common;

use cotangent::*;
use std::path::Path;

const CHILD: &str = "COTANGENT_TEST_REUSE_CHILD";

/// Like GradBench ode's right-hand side (a product of shifted slices, concatenated), scaled
/// by a scalar computed from a sum: a loop of `n` elements and a loop of one.
fn program(x: &Tensor) -> Tensor {
    let n = x.numel() as isize;
    let y = concatenate(&[x.slice_axis(0, 0, 1, 1), x.slice_axis(0, 1, n, 1) * x.slice_axis(0, 0, n - 1, 1)], 0);
    (y.sin() * 3.0 + 0.5) * (x.sum_all().cos() * 2.0 + 1.0)
}

fn input(n: usize) -> Tensor {
    Tensor::from_vec((0..n).map(|i| (i % 97) as f64 / 48.0 - 1.0).collect(), &[n])
}

/// Kernel libraries in the cache directory.
fn libraries(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().ends_with(".so")).count())
        .unwrap_or(0)
}

/// Runs `test` in a child with a fresh cache (`COTANGENT_NATIVE` unset: `auto`); its stderr.
fn child(test: &str) -> String {
    common::child::run(test, CHILD, None)
}

/// In the child: whether a C compiler works here at all, shown by a large function compiled
/// the usual way (its plan dumped between `mark: probe` and `mark: end`; see [`compiler_works`]).
fn probe_compiler() {
    let k = jit(|x: &Tensor| (x * 0.25).tanh() + 2.0);
    let large = input(20_000);
    let (_, _) = (k(&large), k(&large));
    wait_for_native_compiles();
    eprintln!("mark: probe");
    let _ = k(&large);
    eprintln!("mark: end");
}

/// In the parent: whether the child's [`probe_compiler`] ran native code.
fn compiler_works(text: &str) -> bool {
    between(text, "mark: probe", "mark: end").contains("native fused")
}

/// The text between `from` and `to` (both must be there).
fn between<'a>(text: &'a str, from: &str, to: &str) -> &'a str {
    let a = text.find(from).unwrap_or_else(|| panic!("no {from:?} in:\n{text}")) + from.len();
    let b = a + text[a..].find(to).unwrap_or_else(|| panic!("no {to:?} after {from:?} in:\n{text}"));
    &text[a..b]
}

/// The number printed after `label` (`label N`).
fn number_after(text: &str, label: &str) -> usize {
    let at = text.find(label).unwrap_or_else(|| panic!("no {label:?} in:\n{text}")) + label.len();
    text[at..].split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn a_small_input_leaves_the_library_a_larger_one_loads_at_its_first_call() {
    if let Some(dir) = std::env::var_os(CHILD).and(std::env::var_os("COTANGENT_CACHE_DIR")) {
        let dir = Path::new(&dir);
        let (small, large) = (input(1000), input(20_000));
        let g = jit(program);
        let small_out = g(&small).to_vec::<f64>();
        assert_eq!(g(&small).to_vec::<f64>(), small_out);
        drop(g); // the compile queued by the second call still runs
        wait_for_native_compiles();
        eprintln!("mark: small done, libraries {}", libraries(dir));
        let h = jit(program);
        let large_out = h(&large).to_vec::<f64>();
        eprintln!("mark: large call 1, libraries {}", libraries(dir));
        let off = with_native_mode(NativeMode::Off, || jit(program)(&large).to_vec::<f64>());
        assert_eq!(large_out, off, "bitwise the interpreter's results");
        probe_compiler();
        return;
    }
    let text = child("a_small_input_leaves_the_library_a_larger_one_loads_at_its_first_call");
    if !compiler_works(&text) {
        eprintln!("no working C compiler here: nothing to check");
        return;
    }
    let before = number_after(&text, "mark: small done, libraries");
    assert!(before > 0, "the small input's second call built no library (dropped, or below the bar):\n{text}");
    let large_plan = between(&text, "mark: small done", "mark: large call 1");
    assert!(large_plan.contains("native fused"), "the larger input's first plan runs nothing native:\n{text}");
    assert!(
        !large_plan.contains("= fused["),
        "a loop of the larger input's first plan is interpreted (the library without its small loops was built):\n{text}"
    );
    assert_eq!(number_after(&text, "mark: large call 1, libraries"), before, "the larger input compiled:\n{text}");
}

// ---- avail8 (issue 12): interpreted runs use the plan built for the interpreter ----

/// GradBench ode's first RK4 stages at the top level: consumers reading their producers
/// through slices and paddings (the concatenate), which a plan for native code inlines.
fn stages(x: &Tensor) -> Tensor {
    let n = x.numel() as isize;
    let rhs = |y: &Tensor| {
        concatenate(&[x.slice_axis(0, 0, 1, 1), x.slice_axis(0, 1, n, 1) * y.slice_axis(0, 0, n - 1, 1)], 0)
    };
    let k1 = rhs(x);
    let k2 = rhs(&(x + &k1 * 0.1));
    let k3 = rhs(&(x + &k2 * 0.1));
    x + (k1 + k2 * 2.0 + k3) * 0.05
}

/// The step count a plan dump starts with (`plan (N steps)`).
fn steps_of(dump: &str) -> usize {
    number_after(dump, "plan (")
}

/// In `NativeMode::Auto` with an empty cache, a function whose loops are large enough to
/// compile runs its first calls on the plan built for the interpreter (the same plan as
/// `NativeMode::Off`'s: no producer inlined into its consumers, where the interpreter would
/// recompute it), while the plan built for native code (with the producers inlined) compiles
/// in the background and runs from the call after; every call bitwise the same.
#[test]
fn auto_runs_the_interpreters_plan_until_the_native_one_is_compiled() {
    if std::env::var_os(CHILD).is_some() {
        let x = input(20_000);
        let off = with_native_mode(NativeMode::Off, || {
            eprintln!("mark: off plan\n{}mark: off end", jit_inspect(stages, &x).plan);
            jit(stages)(&x).to_vec::<f64>()
        });
        eprintln!("mark: start");
        let f = jit(stages);
        let first = f(&x).to_vec::<f64>();
        eprintln!("mark: call 1");
        let second = f(&x).to_vec::<f64>();
        wait_for_native_compiles();
        let third = f(&x).to_vec::<f64>();
        eprintln!("mark: call 3");
        assert_eq!(first, off, "first call");
        assert_eq!(second, off, "second call");
        assert_eq!(third, off, "third call (native)");
        return;
    }
    let text = child("auto_runs_the_interpreters_plan_until_the_native_one_is_compiled");
    let native = between(&text, "mark: call 1", "mark: call 3");
    if !native.contains("native fused") {
        eprintln!("no working C compiler here: nothing to check");
        return;
    }
    let off = between(&text, "mark: off plan\n", "mark: off end");
    let first = between(&text, "mark: start", "mark: call 1");
    assert!(first.contains(off), "the first calls' plan is not the interpreter's:\n{first}\nOff:\n{off}");
    let native_plan = &native[native.find("plan (").expect("a plan dump")..];
    assert!(
        steps_of(native_plan) < steps_of(off),
        "the native plan inlines nothing (planned for the interpreter?):\n{native}\nOff:\n{off}"
    );
}

/// A function whose loops are all below what `NativeMode::Auto` compiles (4096 elements) but
/// of 512 and more, called again, switches to the plan of its speculative build once that is
/// built (its loops native): GradBench's ode at n = 1000, called for a second per input.
#[test]
fn a_small_function_called_again_switches_to_its_speculative_plan() {
    if std::env::var_os(CHILD).is_some() {
        let x = input(1000);
        let off = with_native_mode(NativeMode::Off, || jit(stages)(&x).to_vec::<f64>());
        let f = jit(stages);
        let first = f(&x).to_vec::<f64>();
        let second = f(&x).to_vec::<f64>();
        wait_for_native_compiles();
        eprintln!("mark: call 2");
        let third = f(&x).to_vec::<f64>();
        eprintln!("mark: call 3");
        let fourth = f(&x).to_vec::<f64>();
        assert_eq!(first, off, "first call");
        assert_eq!(second, off, "second call");
        assert_eq!(third, off, "third call (native)");
        assert_eq!(fourth, off, "fourth call");
        eprintln!("mark: new function");
        let g = jit(stages);
        assert_eq!(g(&x).to_vec::<f64>(), off, "a new function's first call");
        eprintln!("mark: new function's call 1");
        probe_compiler();
        return;
    }
    let text = child("a_small_function_called_again_switches_to_its_speculative_plan");
    if !compiler_works(&text) {
        eprintln!("no working C compiler here: nothing to check");
        return;
    }
    let third = between(&text, "mark: call 2", "mark: call 3");
    assert!(third.contains("native fused"), "the third call runs no native loop:\n{text}");
    let new = between(&text, "mark: new function", "mark: new function's call 1");
    assert!(new.contains("native fused"), "a new function of the program builds an interpreted plan:\n{text}");
}

// ---- odeland9 (issue 12): a plan found only in part is not taken from the cache ----

/// An RK-like stage of GradBench ode's right-hand side, `x` as its coefficients.
fn stage(x: &Tensor, y: &Tensor, h: f64) -> Tensor {
    let n = x.numel() as isize;
    let k = concatenate(&[x.slice_axis(0, 0, 1, 1), x.slice_axis(0, 1, n, 1) * y.slice_axis(0, 0, n - 1, 1)], 0);
    y + k * h
}

/// One loop of stages.
fn one_loop(x: &Tensor) -> Tensor {
    control::fori_loop(0, 4, |_, y: &Tensor| stage(x, y, 0.1), &x.zeros_like())
}

/// The same loop, then a second one with another body (GradBench ode's gradient after its
/// primal: the primal's loop body, then the reverse loop).
fn two_loops(x: &Tensor) -> Tensor {
    let y = one_loop(x);
    control::fori_loop(0, 4, |_, z: &Tensor| (z * 0.5).sin() * x + 0.25, &y)
}

/// A function of loops below what `NativeMode::Auto` compiles, one of whose loop bodies an
/// earlier function's speculative build has left in the cache, does not run the plan found in
/// part (its other loops, planned for native code, interpreted) from its first call on: it
/// runs the interpreter's plan, and its own speculative build (which loads the library that
/// is there) gives it a plan whose loops are all native.
#[test]
fn a_plan_found_in_part_leaves_the_function_its_own_speculative_build() {
    if std::env::var_os(CHILD).is_some() {
        let x = input(1000);
        let f = jit(one_loop);
        let (_, _) = (f(&x), f(&x));
        wait_for_native_compiles();
        let off = with_native_mode(NativeMode::Off, || jit(two_loops)(&x).to_vec::<f64>());
        eprintln!("mark: start");
        let g = jit(two_loops);
        assert_eq!(g(&x).to_vec::<f64>(), off, "first call");
        assert_eq!(g(&x).to_vec::<f64>(), off, "second call");
        wait_for_native_compiles();
        eprintln!("mark: call 2");
        assert_eq!(g(&x).to_vec::<f64>(), off, "third call");
        eprintln!("mark: call 3");
        probe_compiler();
        return;
    }
    let text = child("a_plan_found_in_part_leaves_the_function_its_own_speculative_build");
    if !compiler_works(&text) {
        eprintln!("no working C compiler here: nothing to check");
        return;
    }
    let third = between(&text, "mark: call 2", "mark: call 3");
    assert!(third.contains("native fused"), "the third call did not switch to a speculative plan:\n{text}");
    for interpreted in ["= fused[1000]", "= fused[999]"] {
        assert!(!third.contains(interpreted), "a large loop of the third call's plan is interpreted:\n{third}");
    }
}
