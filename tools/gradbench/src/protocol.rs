//! GradBench's JSON-lines protocol: one message per line in, one response per line out.
//!
//! | message kind | response |
//! |---|---|
//! | `start` | `{"id", "tool": "cotangent"}` |
//! | `define` | `{"id", "success": true}` for a module of [`MODULES`], else `success: false` with an `error` |
//! | `evaluate` | `{"id", "success": true, "output", "timings": [{"name": "evaluate", "nanoseconds"}, ...]}` or `success: false` with an `error` |
//! | `analysis` | `{"id"}` |
//! | anything else | `{"id", "error"}` |
//!
//! A line that is not a JSON object, or lacks a field the message needs, gets a
//! response with an `error` (and the message's `id`, or `null` when it has none);
//! a function that panics is answered with `success: false`. The tool then goes
//! on serving.

use crate::evals::{self, MODULES};
use crate::input::{field, kind};
use serde_json::{json, Value};
use std::io::{self, BufRead, Write};
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// The tool's name, as reported to `start`.
pub const TOOL_NAME: &str = "cotangent";

/// Handles one message line and returns the response.
///
/// ```
/// use gradbench_tool::protocol::handle_line;
/// let r = handle_line(r#"{"id": 3, "kind": "define", "module": "lse"}"#);
/// assert_eq!(r, serde_json::json!({"id": 3, "success": true}));
/// let r = handle_line("not json");
/// assert!(r["error"].as_str().unwrap().contains("malformed"));
/// ```
pub fn handle_line(line: &str) -> Value {
    match serde_json::from_str::<Value>(line) {
        Ok(msg) => handle(&msg),
        Err(e) => json!({"id": null, "error": format!("malformed message: {e}")}),
    }
}

/// Handles one parsed message and returns the response.
pub fn handle(msg: &Value) -> Value {
    let id = match msg {
        Value::Object(m) => m.get("id").cloned().unwrap_or(Value::Null),
        _ => {
            return json!({"id": null, "error": format!("malformed message: expected a JSON object, got {}", kind(msg))})
        }
    };
    let kind = match field(msg, "kind") {
        Ok(Value::String(k)) => k.as_str(),
        Ok(other) => return json!({"id": id, "error": format!("`kind`: expected a string, got {other}")}),
        Err(e) => return json!({"id": id, "error": e}),
    };
    match kind {
        "start" => json!({"id": id, "tool": TOOL_NAME}),
        "define" => define(id, msg),
        "evaluate" => evaluate(id, msg),
        "analysis" => json!({"id": id}),
        other => json!({"id": id, "error": format!("unknown message kind `{other}`")}),
    }
}

fn str_field<'a>(msg: &'a Value, name: &str) -> Result<&'a str, String> {
    let v = field(msg, name)?;
    v.as_str().ok_or_else(|| format!("`{name}`: expected a string, got {}", kind(v)))
}

fn define(id: Value, msg: &Value) -> Value {
    match str_field(msg, "module") {
        Ok(m) if MODULES.contains(&m) => json!({"id": id, "success": true}),
        Ok(m) => json!({"id": id, "success": false, "error": format!("unknown module `{m}`")}),
        Err(e) => json!({"id": id, "success": false, "error": e}),
    }
}

/// `min_runs` and `min_seconds` from an input object (1 and 0 when absent, as for `hello`).
fn repetition(input: &Value) -> Result<(usize, f64), String> {
    let runs = match input.get("min_runs") {
        None => 1,
        Some(v) => v.as_u64().ok_or_else(|| format!("`min_runs`: expected a non-negative integer, got {v}"))? as usize,
    };
    let seconds = match input.get("min_seconds") {
        None => 0.0,
        Some(v) => v
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .ok_or_else(|| format!("`min_seconds`: expected a non-negative number, got {v}"))?,
    };
    Ok((runs.max(1), seconds))
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

fn evaluate(id: Value, msg: &Value) -> Value {
    match try_evaluate(msg) {
        Ok((output, timings)) => {
            json!({"id": id, "success": true, "output": output, "timings": timings})
        }
        Err(e) => json!({"id": id, "success": false, "error": e}),
    }
}

fn try_evaluate(msg: &Value) -> Result<(Value, Vec<Value>), String> {
    let module = str_field(msg, "module")?;
    let function = str_field(msg, "function")?;
    let input = field(msg, "input")?;
    let (min_runs, min_seconds) = repetition(input)?;
    let min_time = Duration::from_secs_f64(min_seconds);
    // A panic inside the library (e.g. shapes the input checks missed) fails this
    // message only; cotangent unwinds its trace stack, so the next message is clean.
    panic::catch_unwind(AssertUnwindSafe(|| {
        let begin = Instant::now();
        let run = evals::prepare(module, function, input)?;
        let prepare_ns = begin.elapsed().as_nanos() as u64;
        let mut timings = vec![json!({"name": "prepare", "nanoseconds": prepare_ns})];
        let mut total = Duration::ZERO;
        let mut runs = 0;
        let output = loop {
            let t = Instant::now();
            let out = run();
            let dt = t.elapsed();
            timings.push(json!({"name": "evaluate", "nanoseconds": dt.as_nanos() as u64}));
            total += dt;
            runs += 1;
            if runs >= min_runs && total >= min_time {
                break out;
            }
        };
        Ok((output.to_json()?, timings))
    }))
    .unwrap_or_else(|p| Err(format!("evaluation failed: {}", panic_message(p))))
}

/// Serves messages from `input` until it ends, writing one response line each to `output`.
///
/// ```
/// use gradbench_tool::protocol::serve;
/// let mut out = Vec::new();
/// serve(&b"{\"id\": 0, \"kind\": \"start\"}\n\n{\"id\": 1, \"kind\": \"analysis\"}\n"[..], &mut out).unwrap();
/// assert_eq!(String::from_utf8(out).unwrap(), "{\"id\":0,\"tool\":\"cotangent\"}\n{\"id\":1}\n");
/// ```
pub fn serve(mut input: impl BufRead, mut output: impl Write) -> io::Result<()> {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        // Bytes that are not UTF-8 make a malformed message, not the end of the service.
        let line = String::from_utf8_lossy(&buf);
        if line.trim().is_empty() {
            continue;
        }
        let response = handle_line(&line);
        writeln!(output, "{response}")?;
        output.flush()?;
    }
}
