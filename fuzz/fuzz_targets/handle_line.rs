//! Fuzzes the GradBench tool's message handler: any line gets exactly one JSON
//! object back, carrying the message's `id` when the line is a JSON object with one.
//!
//! Runs under tight [`Limits`] (tiny sizes, few runs, short descents) so each
//! input takes milliseconds; the limits' checks are the same code as with the
//! defaults. Native code generation is off: it would start a C compiler.
#![no_main]

use cotangent::{with_native_mode, NativeMode};
use gradbench_tool::limits::Limits;
use gradbench_tool::protocol::handle_line_with;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn limits() -> Limits {
    Limits {
        max_min_runs: 4,
        max_min_seconds: 0.01,
        max_timings: 2,
        max_elements: 1 << 12,
        max_steps: 64,
        max_det_ell: 6,
        max_descent_steps: 2_000,
        max_simulation_steps: 300,
    }
}

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    let response = with_native_mode(NativeMode::Off, || handle_line_with(&line, &limits()));
    let Value::Object(r) = &response else { panic!("response is not an object: {response}") };
    let id = match serde_json::from_str::<Value>(&line) {
        Ok(Value::Object(m)) => m.get("id").cloned().unwrap_or(Value::Null),
        _ => Value::Null,
    };
    assert_eq!(r.get("id"), Some(&id), "response {response} to {line:?}");
    // The response must be writable as one line.
    assert!(!response.to_string().contains('\n'));
});
