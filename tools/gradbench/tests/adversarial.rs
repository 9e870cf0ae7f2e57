//! Messages built to exhaust the tool (huge sizes, endless loops, huge repetition
//! requests) are answered promptly with `success: false` and an error that names
//! the field, the value and the limit; the repetition loop keeps bounded memory.

use gradbench_tool::limits::Limits;
use gradbench_tool::protocol::handle_line;
use serde_json::{json, Value};
use std::sync::mpsc;
use std::time::Duration;

/// The response to `msg`, which must come within `secs` seconds (run on a thread).
fn answer_within(msg: Value, secs: u64) -> Value {
    let (tx, rx) = mpsc::channel();
    let line = msg.to_string();
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || {
            let _ = tx.send(handle_line(&line));
        })
        .unwrap();
    let r = rx.recv_timeout(Duration::from_secs(secs)).unwrap_or_else(|_| panic!("no answer within {secs} s to {msg}"));
    assert_eq!(r["id"], msg["id"], "{r}");
    r
}

/// `r` is a failure whose error mentions every one of `words`.
fn assert_fails_naming(r: &Value, words: &[&str]) {
    assert_eq!(r["success"], false, "{r}");
    let e = r["error"].as_str().unwrap_or_else(|| panic!("no error string in {r}"));
    for w in words {
        assert!(e.contains(w), "error {e:?} does not mention {w:?}");
    }
}

fn evaluate(module: &str, function: &str, input: Value) -> Value {
    json!({"id": 42, "kind": "evaluate", "module": module, "function": function, "input": input})
}

#[test]
fn huge_min_seconds_is_refused() {
    let r =
        answer_within(evaluate("lse", "gradient", json!({"x": [0.0, 0.0], "min_runs": 1, "min_seconds": 1e300})), 10);
    let limit = Limits::default().max_min_seconds.to_string();
    assert_fails_naming(&r, &["`min_seconds`", "1e300", &limit]);
}

#[test]
fn huge_min_runs_is_refused() {
    let r = answer_within(evaluate("lse", "primal", json!({"x": [1.0], "min_runs": u64::MAX, "min_seconds": 0})), 10);
    assert_fails_naming(&r, &["`min_runs`", &u64::MAX.to_string(), &Limits::default().max_min_runs.to_string()]);
}

/// One second of a microsecond-long function: the timings stay capped.
#[test]
fn timings_are_capped() {
    let r = answer_within(evaluate("lse", "primal", json!({"x": [0.0], "min_runs": 1, "min_seconds": 1.0})), 10);
    assert_eq!(r["success"], true, "{r}");
    let timings = r["timings"].as_array().unwrap();
    let cap = Limits::default().max_timings;
    let evaluate = timings.iter().filter(|t| t["name"] == "evaluate").count();
    assert!(evaluate >= 1 && evaluate <= cap, "{evaluate} evaluate timings, cap {cap}");
    // prepare, the individual runs and at most one summary of the runs beyond the cap.
    assert!(timings.len() <= cap + 2, "{} timings", timings.len());
    let total: u64 = timings.iter().skip(1).map(|t| t["nanoseconds"].as_u64().unwrap()).sum();
    assert!(total >= 1_000_000_000, "the runs cover min_seconds: {total} ns");
}

#[test]
fn det_size_that_wraps_is_refused() {
    let r = answer_within(
        evaluate("det", "primal", json!({"A": [], "ell": 4294967296u64, "min_runs": 1, "min_seconds": 0})),
        10,
    );
    assert_fails_naming(&r, &["`ell`", "4294967296"]);
}

#[test]
fn det_beyond_the_factorial_limit_is_refused() {
    let a: Vec<f64> = (0..169).map(|i| (i % 7) as f64).collect();
    let r = answer_within(evaluate("det", "gradient", json!({"A": a, "ell": 13, "min_runs": 1, "min_seconds": 0})), 10);
    assert_fails_naming(&r, &["`ell`", "13", &Limits::default().max_det_ell.to_string()]);
}

#[test]
fn llsq_with_a_huge_sample_count_is_refused() {
    let r = answer_within(
        evaluate(
            "llsq",
            "gradient",
            json!({"x": [0.0, 1.0], "n": 1_000_000_000_000u64, "min_runs": 1, "min_seconds": 0}),
        ),
        10,
    );
    assert_fails_naming(&r, &["`n`", "1000000000000"]);
}

#[test]
fn ode_with_a_huge_step_count_is_refused() {
    let r = answer_within(
        evaluate("ode", "primal", json!({"x": [1.0, 2.0], "s": 1_000_000_000u64, "min_runs": 1, "min_seconds": 0})),
        10,
    );
    assert_fails_naming(&r, &["`s`", "1000000000"]);
}

#[test]
fn gmm_with_a_huge_wishart_m_is_refused() {
    let input = json!({"d": 1, "k": 1, "n": 1, "x": [[0.0]], "m": 1_000_000_000_000_000_000u64, "gamma": 1.0,
        "alpha": [0.0], "mu": [[0.0]], "q": [[0.0]], "l": [[]], "min_runs": 1, "min_seconds": 0});
    let r = answer_within(evaluate("gmm", "objective", input), 10);
    assert_fails_naming(&r, &["`m`", "1000000000000000000"]);
}

/// From `w = 2` the particle never lands (the charge sits at its height and pushes it back).
#[test]
fn particle_that_never_lands_fails() {
    for function in ["rr", "ff"] {
        let r = answer_within(evaluate("particle", function, json!({"w": 2.0, "min_runs": 1, "min_seconds": 0})), 60);
        assert_fails_naming(&r, &["`w`"]);
    }
}

#[test]
fn saddle_from_overflowing_start_fails() {
    let r =
        answer_within(evaluate("saddle", "rr", json!({"start": [1e308, -1e308], "min_runs": 1, "min_seconds": 0})), 10);
    assert_fails_naming(&r, &["`start`", "finite"]);
}
