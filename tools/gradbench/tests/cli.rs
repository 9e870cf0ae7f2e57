//! The binary's command line: `--multithreaded` (GradBench's flag), `--help`, and
//! unknown arguments refused.

use std::io::Write;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_gradbench-tool");

/// Sends `input` to the binary started with `args`; returns (exit code, stdout).
fn run(args: &[&str], input: &str) -> (i32, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("COTANGENT_THREADS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn serves_on_one_thread_or_all() {
    let msg = "{\"id\":0,\"kind\":\"evaluate\",\"module\":\"lse\",\"function\":\"gradient\",\"input\":{\"x\":[0,0]}}\n";
    for args in [&[][..], &["--multithreaded"][..]] {
        let (code, out) = run(args, msg);
        assert_eq!(code, 0, "{args:?}");
        assert!(out.contains("\"output\":[0.5,0.5]"), "{args:?}: {out}");
    }
}

#[test]
fn help_and_unknown_arguments() {
    let (code, out) = run(&["--help"], "");
    assert_eq!(code, 0);
    assert!(out.contains("--multithreaded"), "{out}");
    assert_eq!(run(&["--threads=9"], "").0, 2);
}
