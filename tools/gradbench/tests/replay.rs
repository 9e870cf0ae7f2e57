//! Replays GradBench's reference logs through the tool and checks every output
//! against the logged reference under GradBench's validation rule; checks that
//! bad messages get error responses while the tool keeps serving.

use gradbench_tool::protocol::{handle, handle_line};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// GradBench's structural comparison: same JSON types (ints and floats alike),
/// equal lengths and key sets, numbers within `|x - y| / max(1, |x| + |y|) <= 1e-4`.
fn compare(reference: &Value, output: &Value, path: &str) -> Result<(), String> {
    match (reference, output) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            let err = (x - y).abs() / 1f64.max(x.abs() + y.abs());
            if err <= 1e-4 {
                Ok(())
            } else {
                Err(format!("{path}: reference {x}, output {y} (error {err:e})"))
            }
        }
        (Value::Array(xs), Value::Array(ys)) => {
            if xs.len() != ys.len() {
                return Err(format!("{path}: reference has {} elements, output {}", xs.len(), ys.len()));
            }
            xs.iter().zip(ys).enumerate().try_for_each(|(i, (x, y))| compare(x, y, &format!("{path}[{i}]")))
        }
        (Value::Object(xs), Value::Object(ys)) => {
            let (kx, ky): (Vec<_>, Vec<_>) = (xs.keys().collect(), ys.keys().collect());
            if kx != ky {
                return Err(format!("{path}: keys {kx:?} vs {ky:?}"));
            }
            xs.iter().try_for_each(|(k, x)| compare(x, &ys[k], &format!("{path}.{k}")))
        }
        (x, y) if x == y => Ok(()),
        (x, y) => Err(format!("{path}: reference {x}, output {y}")),
    }
}

#[test]
fn comparison_follows_the_gradbench_rule() {
    assert!(compare(&json!(1), &json!(1.00001), "").is_ok());
    assert!(compare(&json!(1e-6), &json!(5e-5), "").is_ok()); // absolute near 0
    assert!(compare(&json!(1000.0), &json!(1000.5), "").is_err());
    assert!(compare(&json!([1.0, 2.0]), &json!([1.0]), "").is_err());
    assert!(compare(&json!([[1.0]]), &json!([1.0]), "").is_err());
    assert!(compare(&json!({"a": 1}), &json!({"b": 1}), "").is_err());
    assert!(compare(&json!(1.0), &json!([1.0]), "").is_err());
}

/// Replays the whole exchange in `name.jsonl`: every message goes through the
/// handler (with `min_runs` 1 and `min_seconds` 0), each response must carry the
/// message's id, `define` must succeed, and each `evaluate` output must match the
/// logged reference. Returns the number of evaluations checked.
fn replay(name: &str) -> usize {
    let path = fixtures().join(format!("{name}.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("log line is JSON")).collect();
    let mut checked = 0;
    for (i, line) in lines.iter().enumerate() {
        let Some(msg) = line.get("message") else {
            continue;
        };
        let logged = &lines[i + 1]["response"];
        let mut msg = msg.clone();
        if let Some(input) = msg.get_mut("input").and_then(Value::as_object_mut) {
            input.insert("min_runs".into(), json!(1));
            input.insert("min_seconds".into(), json!(0.0));
        }
        let what = format!("{name} message {} ({} {} {})", msg["id"], msg["kind"], msg["function"], msg["description"]);
        let begin = Instant::now();
        let response = handle(&msg);
        let secs = begin.elapsed().as_secs_f64();
        assert_eq!(response["id"], msg["id"], "{what}: response id");
        match msg["kind"].as_str().unwrap() {
            "start" => assert_eq!(response["tool"], "cotangent", "{what}"),
            "define" => assert_eq!(response["success"], true, "{what}: {response}"),
            "evaluate" => {
                assert_eq!(response["success"], true, "{what}: {response}");
                let timings = response["timings"].as_array().unwrap();
                let runs = timings.iter().filter(|t| t["name"] == "evaluate").count();
                assert_eq!(runs, 1, "{what}: one evaluate timing per run");
                if let Err(e) = compare(&logged["output"], &response["output"], "output") {
                    panic!("{what}: {e}");
                }
                eprintln!("{what}: ok in {secs:.3} s");
                checked += 1;
            }
            _ => assert_eq!(response, json!({"id": msg["id"]}), "{what}"),
        }
    }
    checked
}

#[test]
fn replay_hello() {
    assert_eq!(replay("hello"), 8);
}

#[test]
fn replay_lse() {
    assert_eq!(replay("lse"), 4);
}

#[test]
fn replay_llsq() {
    assert_eq!(replay("llsq"), 4);
}

#[test]
fn replay_gmm() {
    assert_eq!(replay("gmm"), 4);
}

#[test]
fn replay_kmeans() {
    assert_eq!(replay("kmeans"), 2);
}

#[test]
fn replay_ode() {
    assert_eq!(replay("ode"), 4);
}

#[test]
fn replay_lstm() {
    assert_eq!(replay("lstm"), 2);
}

#[test]
fn replay_det() {
    assert_eq!(replay("det"), 6);
}

#[test]
fn replay_particle() {
    assert_eq!(replay("particle"), 4);
}

#[test]
fn replay_saddle() {
    assert_eq!(replay("saddle"), 4);
}

/// Every log in the shared folder (a sibling of the repository, where it exists)
/// has an identical copy among the fixtures, so the tests above replay all of them.
#[test]
fn fixtures_cover_the_shared_logs() {
    let ours: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".jsonl"))
        .collect();
    assert_eq!(ours.len(), 10, "fixtures: {ours:?}");
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/gradbench");
    let Ok(entries) = std::fs::read_dir(&shared) else {
        eprintln!("no {} here: nothing to cross-check", shared.display());
        return;
    };
    for e in entries {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "jsonl") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let copy = fixtures().join(&name);
            assert!(copy.exists(), "{name} is in shared/gradbench but not in fixtures/");
            assert_eq!(
                std::fs::read(&path).unwrap(),
                std::fs::read(&copy).unwrap(),
                "fixtures/{name} differs from shared/gradbench/{name}"
            );
        }
    }
}

#[test]
fn evaluate_repeats_for_min_runs_and_min_seconds() {
    let msg = |runs: u64, secs: f64| {
        json!({"id": 7, "kind": "evaluate", "module": "lse", "function": "gradient",
               "input": {"x": [0.0, 0.0], "min_runs": runs, "min_seconds": secs}})
    };
    let r = handle(&msg(3, 0.0));
    assert_eq!(r["output"], json!([0.5, 0.5]));
    let evaluate = |r: &Value| -> Vec<u64> {
        r["timings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["name"] == "evaluate")
            .map(|t| t["nanoseconds"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(evaluate(&r).len(), 3);
    let r = handle(&msg(1, 0.02));
    let ns = evaluate(&r);
    assert!(ns.len() > 1, "{r}");
    // Runs beyond the individually reported ones are summed in one `evaluate (N more runs)` entry.
    let all: u64 = r["timings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"].as_str().unwrap().starts_with("evaluate"))
        .map(|t| t["nanoseconds"].as_u64().unwrap())
        .sum();
    assert!(all >= 20_000_000, "{r}");
}

#[test]
fn bad_messages_get_error_responses() {
    let error = |r: &Value| r["error"].as_str().unwrap_or_default().to_string();
    let r = handle_line("{\"id\": 1, \"kind\": ");
    assert_eq!(r["id"], Value::Null);
    assert!(error(&r).contains("malformed"), "{r}");
    let r = handle_line("[1, 2]");
    assert!(error(&r).contains("malformed"), "{r}");
    let r = handle(&json!({"id": 2, "kind": "frobnicate"}));
    assert_eq!(r["id"], 2);
    assert!(error(&r).contains("unknown message kind"), "{r}");
    let r = handle(&json!({"id": 3}));
    assert!(error(&r).contains("`kind`"), "{r}");
    let r = handle(&json!({"id": 4, "kind": "define", "module": "nope"}));
    assert_eq!((r["id"].clone(), r["success"].clone()), (json!(4), json!(false)));
    assert!(error(&r).contains("unknown module"), "{r}");
    let r = handle(&json!({"id": 5, "kind": "evaluate", "module": "nope", "function": "f", "input": {}}));
    assert_eq!(r["success"], false);
    assert!(error(&r).contains("unknown module"), "{r}");
    let r = handle(&json!({"id": 6, "kind": "evaluate", "module": "lse", "function": "f", "input": {"x": [1.0]}}));
    assert!(error(&r).contains("no function `f`"), "{r}");
    let r = handle(&json!({"id": 7, "kind": "evaluate", "module": "lse", "function": "primal"}));
    assert!(error(&r).contains("missing field `input`"), "{r}");
    let r = handle(&json!({"id": 8, "kind": "evaluate", "module": "lse", "function": "primal", "input": {}}));
    assert!(error(&r).contains("missing field `x`"), "{r}");
    let r = handle(&json!({"id": 9, "kind": "evaluate", "module": "gmm", "function": "objective",
        "input": {"d": 2, "k": 1, "n": 1, "x": [[0.0, 0.0]], "m": 0, "gamma": 1.0,
                  "alpha": [0.0], "mu": [[0.0]], "q": [[0.0, 0.0]], "l": [[0.0]]}}));
    assert!(error(&r).contains("`mu`: expected shape [1, 2]"), "{r}");
    let r = handle(&json!({"id": 10, "kind": "evaluate", "module": "kmeans", "function": "cost",
        "input": {"points": [[0.0], [1.0, 2.0]], "centroids": [[0.0]]}}));
    assert!(error(&r).contains("rows have different lengths"), "{r}");
    // The handler still answers normally afterwards.
    let r = handle(&json!({"id": 11, "kind": "evaluate", "module": "hello", "function": "double", "input": 3.0}));
    assert_eq!(r["output"], json!(6.0), "{r}");
}

/// The binary answers a bad line with an error and keeps serving the next ones.
#[test]
fn the_binary_keeps_serving_after_bad_input() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gradbench-tool"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn gradbench-tool");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut ask_bytes = |line: &[u8]| -> Value {
        stdin.write_all(line).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
        let mut reply = String::new();
        stdout.read_line(&mut reply).unwrap();
        serde_json::from_str(&reply).unwrap_or_else(|e| panic!("bad reply {reply:?}: {e}"))
    };
    // Bytes that are not UTF-8 are a malformed message like any other.
    let r = ask_bytes(b"{\"id\": 0, \xff\xfe}");
    assert!(r["error"].as_str().unwrap().contains("malformed"), "{r}");
    let mut ask = |line: &str| ask_bytes(line.as_bytes());
    assert_eq!(ask(r#"{"id": 0, "kind": "start", "eval": "hello"}"#), json!({"id": 0, "tool": "cotangent"}));
    let r = ask("this is not json");
    assert!(r["error"].as_str().unwrap().contains("malformed"), "{r}");
    let r = ask(r#"{"id": 1, "kind": "mystery"}"#);
    assert_eq!(r["id"], 1);
    assert!(r["error"].is_string(), "{r}");
    let r = ask(r#"{"id": 2, "kind": "define", "module": "no_such_eval"}"#);
    assert_eq!((r["id"].clone(), r["success"].clone()), (json!(2), json!(false)));
    let r = ask(r#"{"id": 3, "kind": "evaluate", "module": "no_such_eval", "function": "objective", "input": {}}"#);
    assert_eq!(r["success"], false);
    let r = ask(r#"{"id": 4, "kind": "evaluate", "module": "det", "input": {"A": [1.0], "ell": 1}}"#);
    assert!(r["error"].as_str().unwrap().contains("missing field `function`"), "{r}");
    let r = ask(
        r#"{"id": 5, "kind": "evaluate", "module": "det", "function": "gradient", "input": {"A": [1.0, 2.0], "ell": 3}}"#,
    );
    assert_eq!(r["success"], false, "{r}");
    assert_eq!(ask(r#"{"id": 6, "kind": "define", "module": "hello"}"#), json!({"id": 6, "success": true}));
    let r = ask(r#"{"id": 7, "kind": "evaluate", "module": "hello", "function": "square", "input": 3.0}"#);
    assert_eq!((r["id"].clone(), r["success"].clone(), r["output"].clone()), (json!(7), json!(true), json!(9.0)));
    assert_eq!(ask(r#"{"id": 8, "kind": "analysis", "of": 7, "valid": true}"#), json!({"id": 8}));
    drop(stdin);
    assert!(child.wait().unwrap().success());
}
