//! Running one test of the current test binary again in a child process, with a fresh
//! private kernel cache and `COTANGENT_DUMP=1`: for tests of what a process does from its
//! first `jit` call on (native compiles, cache look-ups), which must not share the parent's
//! cache or its already-loaded libraries.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

/// Runs test `test` of this binary in a child with `flag=1` set (the test checks it to know
/// it is the child), a fresh empty cache directory (mode 0700, removed afterwards), dumps on,
/// and `COTANGENT_NATIVE=mode` (unset for `None`, i.e. `auto`). Panics if the child fails;
/// returns its stderr (the dumps and any `eprintln!` marks, in order).
pub fn run(test: &str, flag: &str, mode: Option<&str>) -> String {
    let dir = std::env::temp_dir().join(format!("cotangent-child-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(flag, "1")
        .env("COTANGENT_CACHE_DIR", &dir)
        .env("COTANGENT_DUMP", "1")
        .env_remove("COTANGENT_NATIVE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(mode) = mode {
        cmd.env("COTANGENT_NATIVE", mode);
    }
    let out = cmd.output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "the child failed ({}):\n{}\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    text
}
