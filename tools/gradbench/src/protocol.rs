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
//!
//! Every message is answered in bounded time and memory: sizes, repetition
//! requests and loops are checked against [`Limits`] (see [`crate::limits`]), and
//! a message beyond them gets `success: false` with an error naming the field, the
//! value and the limit.

use crate::evals::{self, Output, Run, MODULES};
use crate::input::{field, kind};
use crate::limits::Limits;
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
    handle_line_with(line, &Limits::default())
}

/// [`handle_line`] under the given limits (tighter ones make fuzzing fast).
pub fn handle_line_with(line: &str, limits: &Limits) -> Value {
    match serde_json::from_str::<Value>(line) {
        Ok(msg) => handle_with(&msg, limits),
        Err(e) => json!({"id": null, "error": format!("malformed message: {e}")}),
    }
}

/// Handles one parsed message and returns the response.
pub fn handle(msg: &Value) -> Value {
    handle_with(msg, &Limits::default())
}

/// [`handle`] under the given limits.
pub fn handle_with(msg: &Value, limits: &Limits) -> Value {
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
        "evaluate" => evaluate(id, msg, limits),
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
        Ok(m) if MODULES.contains(&m) => {
            // Compiling ahead is only a speed-up: a failure here shows again, with its
            // message, in the evaluation that needs the plan.
            let _ = panic::catch_unwind(|| evals::define(m));
            json!({"id": id, "success": true})
        }
        Ok(m) => json!({"id": id, "success": false, "error": format!("unknown module `{m}`")}),
        Err(e) => json!({"id": id, "success": false, "error": e}),
    }
}

/// `min_runs` and `min_seconds` from an input object (1 and 0 when absent, as for
/// `hello`), each at most its limit.
fn repetition(input: &Value, limits: &Limits) -> Result<(usize, Duration), String> {
    let runs = match input.get("min_runs") {
        None => 1,
        Some(v) => {
            let n = v.as_u64().ok_or_else(|| format!("`min_runs`: expected a non-negative integer, got {v}"))?;
            if n > limits.max_min_runs as u64 {
                return Err(format!("`min_runs` = {n} is beyond the limit of {}", limits.max_min_runs));
            }
            n as usize
        }
    };
    let seconds = match input.get("min_seconds") {
        None => 0.0,
        Some(v) => v
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .ok_or_else(|| format!("`min_seconds`: expected a non-negative number, got {v}"))?,
    };
    if seconds > limits.max_min_seconds {
        return Err(format!("`min_seconds` = {seconds:e} is beyond the limit of {} s", limits.max_min_seconds));
    }
    let time = Duration::try_from_secs_f64(seconds).map_err(|e| format!("`min_seconds` = {seconds:e}: {e}"))?;
    Ok((runs.max(1), time))
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

fn evaluate(id: Value, msg: &Value, limits: &Limits) -> Value {
    match try_evaluate(msg, limits) {
        Ok((output, timings)) => {
            json!({"id": id, "success": true, "output": output, "timings": timings})
        }
        Err(e) => json!({"id": id, "success": false, "error": e}),
    }
}

fn try_evaluate(msg: &Value, limits: &Limits) -> Result<(Value, Vec<Value>), String> {
    let module = str_field(msg, "module")?;
    let function = str_field(msg, "function")?;
    let input = field(msg, "input")?;
    let (min_runs, min_time) = repetition(input, limits)?;
    // A panic inside the library (e.g. shapes the input checks missed) fails this
    // message only; cotangent unwinds its trace stack, so the next message is clean.
    panic::catch_unwind(AssertUnwindSafe(|| {
        let begin = Instant::now();
        let run = evals::prepare(module, function, input, limits)?;
        let prepare_ns = begin.elapsed().as_nanos() as u64;
        let mut timings = vec![json!({"name": "prepare", "nanoseconds": prepare_ns})];
        let (output, rest) = repeat(&run, min_runs, min_time, limits, |dt| {
            timings.push(json!({"name": "evaluate", "nanoseconds": dt.as_nanos() as u64}));
        })?;
        if rest.runs > 0 {
            timings.push(json!({"name": format!("evaluate ({} more runs)", rest.runs),
                                "nanoseconds": rest.time.as_nanos() as u64}));
        }
        Ok((output.to_json()?, timings))
    }))
    .unwrap_or_else(|p| Err(format!("evaluation failed: {}", panic_message(p))))
}

/// Runs beyond [`Limits::max_timings`]: how many, and their summed time.
struct Rest {
    runs: usize,
    time: Duration,
}

/// Calls `run` at least `min_runs` times and until the summed run time reaches
/// `min_time`; passes the time of each of the first [`Limits::max_timings`] runs to
/// `record` and sums the rest. Fails if a run fails, or if `min_runs` runs would
/// take longer than [`Limits::max_min_seconds`].
fn repeat(
    run: &Run,
    min_runs: usize,
    min_time: Duration,
    limits: &Limits,
    mut record: impl FnMut(Duration),
) -> Result<(Output, Rest), String> {
    let budget = Duration::try_from_secs_f64(limits.max_min_seconds).unwrap_or(Duration::MAX);
    let mut rest = Rest { runs: 0, time: Duration::ZERO };
    let mut total = Duration::ZERO;
    let mut runs = 0;
    loop {
        let t = Instant::now();
        let out = run()?;
        let dt = t.elapsed();
        if runs < limits.max_timings {
            record(dt);
        } else {
            rest.runs += 1;
            rest.time += dt;
        }
        total += dt;
        runs += 1;
        if runs >= min_runs && total >= min_time {
            return Ok((out, rest));
        }
        if total > budget {
            return Err(format!(
                "`min_runs` = {min_runs}: {runs} runs took {:.1} s, beyond the limit of {} s",
                total.as_secs_f64(),
                limits.max_min_seconds
            ));
        }
    }
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
