//! Replays the fuzzers' seed corpora (`fuzz/corpus/`, see the "Fuzzing" section of
//! the repository's README) as ordinary tests, so the crashing and hanging inputs
//! found so far stay fixed without a fuzzing toolchain.
//!
//! - `handle_line/`: every file is a message line; each must get one JSON object
//!   back, with the message's `id`, within [`BOUND`].
//! - `from_bytes/`: every file is a checkpoint; `cotangent::io::from_bytes` must
//!   return `Ok` or `Err` without panicking. `valid` is [`checkpoint`] written by
//!   `io::to_bytes` and `truncated` its first bytes; set `GRADBENCH_WRITE_SEEDS=1`
//!   to rewrite both after changing [`checkpoint`].

use cotangent::{io, Tensor};
use gradbench_tool::protocol::handle_line;
use serde_json::Value;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The longest any seed message may take to be answered (generous: it only catches hangs).
const BOUND: Duration = Duration::from_secs(10);

/// Whether `name` is one libFuzzer gave an input it generated (its SHA-1 in hex):
/// those are left out of git (`fuzz/.gitignore`) and of these tests.
fn generated(name: &str) -> bool {
    name.len() == 40 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The committed seeds of a fuzz target, in name order.
fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && !generated(&p.file_name().unwrap().to_string_lossy()))
        .collect();
    files.sort();
    files
}

/// The response to `line`, computed on a thread (with a large stack) and awaited for at most `BOUND`.
fn answer(line: String) -> Result<Value, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || {
            let _ = tx.send(handle_line(&line));
        })
        .unwrap();
    rx.recv_timeout(BOUND).map_err(|e| match e {
        RecvTimeoutError::Timeout => format!("no answer within {BOUND:?}"),
        RecvTimeoutError::Disconnected => "the handler panicked".to_string(),
    })
}

#[test]
fn every_handle_line_seed_is_answered_in_time() {
    let files = corpus("handle_line");
    assert!(files.len() >= 10, "{files:?}");
    for path in files {
        let line = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        let id = match serde_json::from_str::<Value>(&line) {
            Ok(Value::Object(m)) => m.get("id").cloned().unwrap_or(Value::Null),
            _ => Value::Null,
        };
        let begin = Instant::now();
        let r = answer(line).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(r.is_object(), "{}: {r}", path.display());
        assert_eq!(r["id"], id, "{}: {r}", path.display());
        let shown: String = r.to_string().chars().take(160).collect();
        eprintln!("{}: {:.2} s: {shown}", path.display(), begin.elapsed().as_secs_f64());
    }
}

/// A small checkpoint of every dtype (`fuzz_targets/from_bytes.rs` loads with a
/// template of the same structure).
fn checkpoint() -> Vec<Tensor> {
    vec![
        Tensor::from_vec(vec![1.0f32, -2.0, 3.5, 0.25], &[2, 2]),
        Tensor::from_vec(vec![1e-300f64, 2.0, -3.0], &[3]),
        Tensor::scalar(-7i64),
        Tensor::from_vec(vec![5i32, -6], &[2]),
        Tensor::from_vec(vec![true, false], &[2]),
    ]
}

fn template() -> Vec<Tensor> {
    checkpoint().iter().map(|t| t.zeros_like()).collect()
}

#[test]
fn the_valid_seed_is_the_checkpoint_written_by_to_bytes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/from_bytes");
    let bytes = io::to_bytes(&checkpoint()).unwrap();
    if std::env::var_os("GRADBENCH_WRITE_SEEDS").is_some() {
        std::fs::write(dir.join("valid"), &bytes).unwrap();
        std::fs::write(dir.join("truncated"), &bytes[..bytes.len() - 5]).unwrap();
    }
    assert_eq!(std::fs::read(dir.join("valid")).unwrap(), bytes, "fuzz/corpus/from_bytes/valid is stale");
    let loaded = io::from_bytes(&template(), &bytes).unwrap();
    for (a, b) in loaded.iter().zip(&checkpoint()) {
        assert_eq!(a.to_f64_vec(), b.to_f64_vec());
    }
}

#[test]
fn every_from_bytes_seed_loads_or_fails_without_panicking() {
    let files = corpus("from_bytes");
    assert!(files.len() >= 3, "{files:?}");
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let result = panic::catch_unwind(AssertUnwindSafe(|| io::from_bytes(&template(), &bytes).map(|_| ())));
        let result = result.unwrap_or_else(|_| panic!("{name}: io::from_bytes panicked"));
        match name.as_str() {
            "valid" => assert!(result.is_ok(), "{name}: {result:?}"),
            "truncated" | "empty" | "header_length_huge" => assert!(result.is_err(), "{name}: loaded"),
            // Sizes that add past 2^64: `io` checks the header before the `safetensors` crate
            // (whose unchecked add panics in debug builds) sees it.
            n if n.starts_with("overflow") => assert!(result.is_err(), "{name}: loaded"),
            _ => {}
        }
        eprintln!("{name}: {result:?}");
    }
}
