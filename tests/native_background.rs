//! Background (tiered) native compilation under `jit` (issue 12): in `NativeMode::Auto` a
//! function's first calls run interpreted, its second call starts the C compiler on a thread
//! of its own and returns without waiting for it, and the first call after the library has
//! loaded switches to the native plan — with bitwise the same results on every call.
//!
//! The native part runs in a child process (this test binary again, with
//! `COTANGENT_TEST_BACKGROUND_CHILD` set), with a fresh, empty kernel cache (so the library
//! must really be compiled) and `COTANGENT_DUMP=1`, which prints each plan as `jit` starts
//! running it: the parent reads from the child's output which plan ran which call.

#![cfg(unix)]

mod common;

use cotangent::*;

const CHILD: &str = "COTANGENT_TEST_BACKGROUND_CHILD";

fn f(x: &Tensor) -> Tensor {
    ((x * 0.5).sin() * x + 1.0).exp().tanh()
}

/// Runs `test` in a child with a fresh cache and `COTANGENT_NATIVE=mode` (unset for `None`);
/// its stderr (the dumps and the marks), in order.
fn child(test: &str, mode: Option<&str>) -> String {
    common::child::run(test, CHILD, mode)
}

/// The last of `marks` printed before the first native plan's dump (`native fused`).
fn first_native_after<'a>(text: &str, marks: &[&'a str]) -> Option<&'a str> {
    let at = text.find("native fused")?;
    marks.iter().rev().copied().find(|m| text.find(m).is_some_and(|p| p < at))
}

#[test]
fn auto_compiles_in_the_background_and_switches_between_calls() {
    if std::env::var_os(CHILD).is_some() {
        let x = Tensor::from_vec((0..1 << 15).map(|i| (i % 101) as f64 / 50.0 - 1.0).collect(), &[1 << 15]);
        let g = jit(f);
        let first = g(&x).to_vec::<f64>();
        eprintln!("mark: call 1 returned");
        assert_eq!(g(&x).to_vec::<f64>(), first);
        eprintln!("mark: call 2 returned");
        wait_for_native_compiles();
        eprintln!("mark: compiles finished");
        assert_eq!(g(&x).to_vec::<f64>(), first);
        eprintln!("mark: call 3 returned");
        assert_eq!(g(&x).to_vec::<f64>(), first);
        return;
    }
    // Where no C compiler works, nothing switches (and every call still agrees).
    let text = child("auto_compiles_in_the_background_and_switches_between_calls", None);
    let compiled = text.contains("native fused");
    if !compiled {
        eprintln!("no native plan (no working C compiler?): the switch is not tested here\n{text}");
        return;
    }
    let marks = ["mark: call 1 returned", "mark: call 2 returned", "mark: compiles finished", "mark: call 3 returned"];
    assert_eq!(
        first_native_after(&text, &marks),
        Some("mark: compiles finished"),
        "the native plan must first run at the call after the background compile:\n{text}"
    );
}

/// `COTANGENT_NATIVE=sync`: no background thread — the compile happens on a calling thread,
/// so once `wait_for_native_compiles` has nothing to wait for, a plan that was not compiled
/// by then is still interpreted at the next call (here: the first two calls are too fast to
/// pay for the compiler, so the third runs interpreted too).
#[test]
fn sync_mode_compiles_on_the_calling_thread_only() {
    if std::env::var_os(CHILD).is_some() {
        // Small work per call, so the ski-rental rule waits many calls before compiling.
        let x = Tensor::from_vec((0..4096).map(|i| (i % 101) as f64 / 50.0 - 1.0).collect(), &[4096]);
        let g = jit(f);
        let first = g(&x).to_vec::<f64>();
        assert_eq!(g(&x).to_vec::<f64>(), first);
        eprintln!("mark: call 2 returned");
        wait_for_native_compiles();
        assert_eq!(g(&x).to_vec::<f64>(), first);
        eprintln!("mark: call 3 returned");
        for _ in 0..20_000 {
            assert_eq!(g(&x).to_vec::<f64>(), first);
        }
        eprintln!("mark: many calls returned");
        return;
    }
    let text = child("sync_mode_compiles_on_the_calling_thread_only", Some("sync"));
    if !text.contains("native fused") {
        eprintln!("no native plan (no working C compiler?): not tested here\n{text}");
        return;
    }
    let marks = ["mark: call 2 returned", "mark: call 3 returned", "mark: many calls returned"];
    assert_eq!(
        first_native_after(&text, &marks),
        Some("mark: call 3 returned"),
        "sync mode compiles at a later call, on the calling thread:\n{text}"
    );
}
