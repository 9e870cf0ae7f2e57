//! The on-disk kernel cache under damage and attack, and compilers that hang or lie.
//!
//! Each test runs its native part in a child process — this test binary run again with
//! `COTANGENT_TEST_CACHE_CHILD=1` and the environment under test — because the variables are
//! read once per process and because loading a damaged library can crash the process that
//! loads it (SIGBUS inside `dlopen`). The parent prepares the cache directory and the fake
//! compilers, and judges the child by its exit status, its output and what it left on disk.

#![cfg(unix)]

use cotangent::*;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD: &str = "COTANGENT_TEST_CACHE_CHILD";

/// Whether this process is a child started by one of the tests below.
fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// The child's part: a plan with every loop native must give the interpreter's results,
/// bitwise; prints `native=yes` or `native=no` (whether the plan's loop was compiled).
fn child_body() {
    let x = Tensor::from_vec((0..10_000).map(|i| i as f64 * 1e-3).collect::<Vec<_>>(), &[10_000]);
    let f = |x: &Tensor| (x.sin() * x + 1.0).exp();
    let interpreted = with_native_mode(NativeMode::Off, || {
        let g = jit(f);
        g(&x);
        g(&x).to_vec::<f64>()
    });
    with_native_mode(NativeMode::Always, || {
        let g = jit(f);
        for _ in 0..3 {
            assert_eq!(g(&x).to_vec::<f64>(), interpreted);
        }
        let plan = jit_inspect(f, &x).plan;
        assert!(plan.contains("fused"), "{plan}");
        println!("native={}", if plan.contains("native") { "yes" } else { "no" });
    });
}

/// What a child did.
struct Outcome {
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Outcome {
    /// Whether the child's plan ran native code.
    fn native(&self) -> bool {
        match (self.stdout.contains("native=yes"), self.stdout.contains("native=no")) {
            (true, false) => true,
            (false, true) => false,
            _ => panic!("the child printed no verdict:\n{}\n{}", self.stdout, self.stderr),
        }
    }

    /// The child's warnings (lines it printed starting with `cotangent:`).
    fn warnings(&self) -> Vec<&str> {
        self.stderr.lines().filter(|l| l.starts_with("cotangent:")).collect()
    }
}

/// Runs test `test` of this binary as a child with `env` set (and no `CC`, `COTANGENT_CC`,
/// `COTANGENT_CC_TIMEOUT` or `COTANGENT_NATIVE` inherited); fails if it does not exit
/// successfully within `limit` (killing it then).
fn run_child(test: &str, env: &[(&str, OsString)], limit: Duration) -> Outcome {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env_remove("CC")
        .env_remove("COTANGENT_CC")
        .env_remove("COTANGENT_CC_TIMEOUT")
        .env_remove("COTANGENT_NATIVE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child running {test} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let outcome = Outcome {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
    };
    assert!(out.status.success(), "the child failed ({}):\n{}\n{}", out.status, outcome.stdout, outcome.stderr);
    outcome
}

/// A fresh directory for one test (mode 0755).
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cotangent-cache-test-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// The names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => vec![],
    };
    names.sort();
    names
}

/// The one kernel library in `dir`.
fn the_library(dir: &Path) -> PathBuf {
    let libs: Vec<String> = listing(dir).into_iter().filter(|n| n.ends_with(".so")).collect();
    assert_eq!(libs.len(), 1, "{:?}", listing(dir));
    dir.join(&libs[0])
}

/// An executable shell script `name` in `dir` with `body`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

const MINUTES: Duration = Duration::from_secs(300);

#[test]
fn a_damaged_cached_library_is_rebuilt_not_loaded() {
    const ME: &str = "a_damaged_cached_library_is_rebuilt_not_loaded";
    if is_child() {
        return child_body();
    }
    let dir = scratch("damaged");
    let cache = dir.join("kernels");
    let env = [("COTANGENT_CACHE_DIR", cache.clone().into_os_string())];

    let first = run_child(ME, &env, MINUTES);
    assert!(first.native(), "{}", first.stderr);
    let lib = the_library(&cache);
    let full = fs::read(&lib).unwrap();

    // Each damage: the bytes planted under the library's own name. The next process must
    // notice, delete and rebuild it, and run native code with the right results.
    let mut flipped = full.clone();
    flipped[full.len() / 2] ^= 0x40;
    let damages: [(&str, Vec<u8>); 4] = [
        ("truncated to half", full[..full.len() / 2].to_vec()),
        ("truncated by its last byte", full[..full.len() - 1].to_vec()),
        ("one byte changed", flipped),
        ("not a library", b"#!/bin/sh\necho planted\n".to_vec()),
    ];
    for (what, bytes) in damages {
        fs::write(&lib, &bytes).unwrap();
        let run = run_child(ME, &env, MINUTES);
        assert!(run.native(), "{what}: {}", run.stderr);
        assert_eq!(run.warnings().len(), 1, "{what}: {}", run.stderr);
        assert!(run.warnings()[0].contains("rebuil"), "{what}: {}", run.stderr);
        assert_eq!(the_library(&cache), lib, "{what}");
        assert_ne!(fs::read(&lib).unwrap(), bytes, "{what}: the damaged library is still there");
        // The rebuilt library is trusted as it is: the next process loads it without a word.
        let again = run_child(ME, &env, MINUTES);
        assert!(again.native() && again.warnings().is_empty(), "{what}: {}", again.stderr);
    }
    assert!(!listing(&cache).iter().any(|n| n.matches('.').count() > 1), "temporary files left: {:?}", listing(&cache));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_compiler_that_leaves_a_truncated_library_disables_native_loops_for_its_process_only() {
    const ME: &str = "a_compiler_that_leaves_a_truncated_library_disables_native_loops_for_its_process_only";
    if is_child() {
        return child_body();
    }
    let dir = scratch("truncating");
    let cache = dir.join("kernels");
    // Compiles with the real compiler, reports success, but keeps only the first 2000 bytes.
    let cc = script(
        &dir,
        "truncating-cc",
        r#"case "$*" in *--version*|*-###*) exec cc "$@";; esac
cc "$@" || exit $?
out=""; prev=""
for a in "$@"; do [ "$prev" = "-o" ] && out="$a"; prev="$a"; done
head -c 2000 "$out" > "$out.cut" && mv "$out.cut" "$out""#,
    );
    let run = run_child(
        ME,
        &[("COTANGENT_CACHE_DIR", cache.clone().into_os_string()), ("COTANGENT_CC", cc.into_os_string())],
        MINUTES,
    );
    assert!(!run.native(), "{}", run.stderr);
    assert_eq!(run.warnings().len(), 1, "{}", run.stderr);
    assert!(run.warnings()[0].contains("interpreted"), "{}", run.stderr);
    assert_eq!(listing(&cache), Vec::<String>::new(), "nothing may stay in the cache");
    // The next process, with a working compiler, is not affected.
    let fixed = run_child(ME, &[("COTANGENT_CACHE_DIR", cache.clone().into_os_string())], MINUTES);
    assert!(fixed.native() && fixed.warnings().is_empty(), "{}", fixed.stderr);
    fs::remove_dir_all(&dir).unwrap();
}

/// Whether process `pid` has exited (a zombie counts as exited).
fn gone(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the parenthesised command name.
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

#[test]
fn a_hanging_compiler_is_killed_after_the_timeout_and_plans_run_interpreted() {
    const ME: &str = "a_hanging_compiler_is_killed_after_the_timeout_and_plans_run_interpreted";
    if is_child() {
        return child_body();
    }
    let dir = scratch("hanging");
    let cache = dir.join("kernels");
    let pid_file = dir.join("sleeper.pid");
    // Answers the probes, then never finishes a build: a child process of its own sleeps
    // (so killing the script alone is not enough).
    let cc = script(
        &dir,
        "hanging-cc",
        &format!(
            r#"case "$*" in *--version*) echo "hanging-cc 1.0"; exit 0;; *-###*) exit 0;; esac
sleep 600 &
echo $! > "{}"
wait"#,
            pid_file.display()
        ),
    );
    let run = run_child(
        ME,
        &[
            ("COTANGENT_CACHE_DIR", cache.clone().into_os_string()),
            ("COTANGENT_CC", cc.into_os_string()),
            ("COTANGENT_CC_TIMEOUT", "1".into()),
        ],
        Duration::from_secs(60),
    );
    assert!(!run.native(), "{}", run.stderr);
    assert!(run.elapsed < Duration::from_secs(30), "{:?}", run.elapsed);
    let warnings = run.warnings();
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    assert!(warnings[0].contains("1 s") && warnings[0].contains("COTANGENT_CC_TIMEOUT"), "{}", run.stderr);
    assert_eq!(listing(&cache), Vec::<String>::new(), "partial files left in the cache");
    let sleeper: u32 = fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gone(sleeper) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(gone(sleeper), "the compiler's own child {sleeper} still runs");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_cache_directory_others_can_write_is_refused() {
    const ME: &str = "a_cache_directory_others_can_write_is_refused";
    if is_child() {
        return child_body();
    }
    let dir = scratch("shared");
    let cache = dir.join("kernels");
    fs::create_dir(&cache).unwrap();
    let env = [("COTANGENT_CACHE_DIR", cache.clone().into_os_string())];
    let set_mode = |path: &Path, mode: u32| fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();

    // Messages name directories as the library saw them, with symbolic links resolved.
    let shown = fs::canonicalize(&dir).unwrap().to_string_lossy().into_owned();
    let refused = |why: &str| {
        let run = run_child(ME, &env, MINUTES);
        assert!(!run.native(), "{why}: {}", run.stderr);
        let warnings = run.warnings();
        assert_eq!(warnings.len(), 1, "{why}: {}", run.stderr);
        assert!(warnings[0].contains(&shown), "{why}: {}", run.stderr);
        assert_eq!(listing(&cache), Vec::<String>::new(), "{why}: something was written");
    };
    // The /tmp attack: another user made the directory and everyone may write to it.
    set_mode(&cache, 0o777);
    refused("world-writable");
    set_mode(&cache, 0o1777);
    refused("world-writable and sticky");
    set_mode(&cache, 0o770);
    refused("group-writable");
    // Ours and private, but inside a directory where anyone can rename it away.
    set_mode(&cache, 0o700);
    set_mode(&dir, 0o777);
    refused("in a world-writable parent");
    // Only root can hand a directory to someone else.
    let am_root = fs::metadata(&dir).unwrap().uid() == 0;
    if am_root {
        set_mode(&dir, 0o755);
        std::os::unix::fs::chown(&cache, Some(65534), Some(65534)).unwrap();
        set_mode(&cache, 0o755);
        refused("owned by another user");
        std::os::unix::fs::chown(&cache, Some(0), Some(0)).unwrap();
    }

    // A sticky parent (like /tmp) cannot have our directory renamed: accepted.
    set_mode(&cache, 0o700);
    set_mode(&dir, 0o1777);
    let run = run_child(ME, &env, MINUTES);
    assert!(run.native() && run.warnings().is_empty(), "{}", run.stderr);
    set_mode(&dir, 0o755);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_new_cache_directory_is_private() {
    const ME: &str = "a_new_cache_directory_is_private";
    if is_child() {
        return child_body();
    }
    let dir = scratch("private");
    let cache = dir.join("a").join("kernels");
    let run = run_child(ME, &[("COTANGENT_CACHE_DIR", cache.clone().into_os_string())], MINUTES);
    assert!(run.native() && run.warnings().is_empty(), "{}", run.stderr);
    assert_eq!(fs::metadata(&cache).unwrap().mode() & 0o777, 0o700);
    fs::remove_dir_all(&dir).unwrap();
}
