//! Turning C source into a loaded shared library: the system C compiler (every run of it
//! limited by `COTANGENT_CC_TIMEOUT`), the on-disk cache keyed by a hash of what builds the
//! library (so a program compiles once per machine, not once per process; see `cache` for
//! why a library found there can be trusted), and `dlopen` through `libloading`.

use super::cache;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

/// Flags that keep floating point exactly as written (no contraction into fused
/// multiply-adds, no reassociation) while letting the compiler vectorise for this CPU.
const FLAGS: &[&str] = &["-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-fPIC", "-shared"];
/// Tried first; dropped if the compiler rejects it.
const NATIVE_ARCH: &str = "-march=native";
/// Part of every cache key: changes whenever the files' format does, so that libraries
/// written in an older format are never looked at (here: sealed with a checksum).
const CACHE_FORMAT: &str = "sealed-1";
/// How long one compiler run may take unless `COTANGENT_CC_TIMEOUT` says otherwise.
const DEFAULT_TIMEOUT_S: f64 = 60.0;

/// Why no library was loaded.
pub(super) enum Failure {
    /// No C compiler could be started: plans stay interpreted without a word (the documented
    /// behaviour on machines without one).
    NoCompiler,
    /// A compiler that fails, hangs or writes something that is not a library, or a cache
    /// directory that cannot be trusted: worth one line of warning (a compiler's own error
    /// messages follow on the next lines).
    Broken(String),
}

/// The compiler command and how to identify it in cache keys.
struct Toolchain {
    cc: String,
    version: String,
    /// What `-march=native` means on this machine (the compiler's expansion of it into
    /// explicit target flags), so that a cache shared between machines (a networked home
    /// directory) never hands one CPU code built for another's instruction set.
    target: String,
}

/// `$COTANGENT_CC`, else `$CC`, else `cc`, if it answers `--version` (`Err(None)`: it
/// cannot be started at all).
fn toolchain() -> Result<&'static Toolchain, Failure> {
    TC.get_or_init(|| {
        let cc = std::env::var("COTANGENT_CC").or_else(|_| std::env::var("CC")).unwrap_or_else(|_| "cc".to_string());
        let out = match run(Command::new(&cc).arg("--version")) {
            Ok(out) => out,
            Err(Run::CannotStart(_)) => return Err(None),
            Err(Run::TimedOut) => return Err(Some(timed_out(&cc, "answering `--version`"))),
        };
        if !out.status.success() {
            return Err(Some(format!("`{cc} --version` failed ({})", out.status)));
        }
        let version = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("").to_string();
        let target = native_target(&cc).map_err(Some)?;
        Ok(Toolchain { cc, version, target })
    })
    .as_ref()
    .map_err(|e| e.clone().map_or(Failure::NoCompiler, Failure::Broken))
}

/// What `-march=native` expands to with compiler `cc` (its target flags, sorted), or this
/// machine's `/proc/cpuinfo` where the compiler does not say; an error if it hangs.
fn native_target(cc: &str) -> Result<String, String> {
    // `-###` prints the commands the driver would run, with -march=native expanded.
    let out = run(Command::new(cc)
        .args([NATIVE_ARCH, "-###", "-x", "c", "-c", "-o"])
        .arg(std::env::temp_dir().join("cotangent-probe.o"))
        .arg("-"));
    let flags = match out {
        Err(Run::TimedOut) => return Err(timed_out(cc, "describing `-march=native`")),
        Err(Run::CannotStart(_)) => String::new(),
        Ok(o) => {
            // Only the target flags (gcc: -march=…, -mavx2, -mno-…; clang: +avx2 features):
            // the rest names temporary files that change every time.
            let text = String::from_utf8_lossy(&o.stderr).into_owned();
            let mut flags: Vec<&str> = text
                .split_whitespace()
                .map(|t| t.trim_matches('"'))
                .filter(|t| t.starts_with("-m") || t.starts_with('+'))
                .collect();
            flags.sort_unstable();
            flags.dedup();
            flags.join(" ")
        }
    };
    Ok(if flags.is_empty() { fs::read_to_string("/proc/cpuinfo").unwrap_or_default() } else { flags })
}

/// The compiler found by [`toolchain`], once it has been asked.
static TC: OnceLock<Result<Toolchain, Option<String>>> = OnceLock::new();

/// Whether the compiler has been asked already (so [`available`] answers without starting
/// processes or waiting for another thread that is starting them).
pub(super) fn probed() -> bool {
    TC.get().is_some()
}

/// Whether a C compiler answers.
pub(super) fn available() -> bool {
    toolchain().is_ok()
}

/// How long one compiler run may take: `$COTANGENT_CC_TIMEOUT` seconds (fractions allowed),
/// 60 when unset or not a positive number (then with a warning).
fn timeout() -> Duration {
    static LIMIT: OnceLock<Duration> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        let Ok(text) = std::env::var("COTANGENT_CC_TIMEOUT") else {
            return Duration::from_secs_f64(DEFAULT_TIMEOUT_S);
        };
        match text.trim().parse::<f64>() {
            Ok(s) if s > 0.0 && s <= 1e9 => Duration::from_secs_f64(s),
            _ => {
                eprintln!(
                    "cotangent: COTANGENT_CC_TIMEOUT={text:?} is not a positive number of seconds; using {DEFAULT_TIMEOUT_S}"
                );
                Duration::from_secs_f64(DEFAULT_TIMEOUT_S)
            }
        }
    })
}

/// The message for compiler `cc` stopped after [`timeout`] while `doing` something.
fn timed_out(cc: &str, doing: &str) -> String {
    format!(
        "`{cc}` did not finish {doing} within {} s and was stopped (COTANGENT_CC_TIMEOUT sets the limit)",
        timeout().as_secs_f64()
    )
}

/// Why a command gave no output.
enum Run {
    CannotStart(std::io::Error),
    /// It ran past [`timeout`]; it and its children were killed.
    TimedOut,
}

/// What a finished command said.
struct Output {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Runs `cmd` (no input; output captured) for at most [`timeout`].
fn run(cmd: &mut Command) -> Result<Output, Run> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // A process group of its own, so that on timeout the compiler's own children (cc1, as,
    // ld — or whatever a wrapper script started) are stopped with it.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(cmd, 0);
    let mut child = cmd.spawn().map_err(Run::CannotStart)?;
    // Read on other threads: a compiler that fills a pipe would otherwise wait for us forever.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + timeout();
    let mut pause = Duration::from_millis(1);
    loop {
        let status = match child.try_wait() {
            Ok(status) => status,
            Err(e) => {
                stop(&mut child);
                return Err(Run::CannotStart(e));
            }
        };
        let now = Instant::now();
        if let Some(status) = status {
            // The pipes close when the compiler's last child exits: wait for that, within
            // the same limit (and a little longer, to read what it said).
            let grace = deadline.saturating_duration_since(now).max(Duration::from_millis(100));
            let stdout = stdout.recv_timeout(grace).unwrap_or_default();
            let stderr = stderr.recv_timeout(grace).unwrap_or_default();
            return Ok(Output { status, stdout, stderr });
        }
        if now >= deadline {
            stop(&mut child);
            return Err(Run::TimedOut);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Everything read from `pipe`, delivered once it closes.
fn drain(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            let _ = tx.send(bytes);
        });
    }
    rx
}

/// Kills `child` and its process group, and reaps it.
fn stop(child: &mut Child) {
    // The group's id is the child's, which cannot have been given to another process yet:
    // the child is not reaped. std offers no kill(2) on a group, and this crate does not
    // depend on libc, so `kill` the command does it (if absent, the child alone is killed).
    #[cfg(unix)]
    let _ = Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{}", child.id())])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

/// Whether `-march=native` works with this compiler (decided by the first build).
static ARCH_OK: OnceLock<bool> = OnceLock::new();

/// What went wrong in one build.
enum BuildError {
    /// The compiler ran and reported failure (perhaps it does not know `-march=native`).
    Rejected(String),
    /// Anything else: a compiler that hangs or writes something that is not a library, a
    /// file-system error.
    Other(String),
}

/// Compiles `source` into a shared library, or finds it in the cache, and loads it.
///
/// A cached library that is damaged (see `cache::unseal`) or fails to load is deleted and
/// rebuilt, with one line of warning. A build that fails leaves nothing behind in the cache.
pub(super) fn load(source: &str) -> Result<libloading::Library, Failure> {
    let tc = toolchain()?;
    let dir = cache::open_dir(&cache::location()).map_err(Failure::Broken)?;
    let attempt = |arch: bool| build_and_load(tc, &dir, source, arch);
    let loaded = match ARCH_OK.get() {
        Some(&arch) => attempt(arch),
        None => match attempt(true) {
            // Only a compiler that answered "no" is asked again, without -march=native.
            Err(BuildError::Rejected(_)) => attempt(false).inspect(|_| {
                let _ = ARCH_OK.set(false);
            }),
            other => other.inspect(|_| {
                let _ = ARCH_OK.set(true);
            }),
        },
    };
    loaded.map_err(|(BuildError::Rejected(e) | BuildError::Other(e))| Failure::Broken(e))
}

/// The cache name (without extension) of the library built from `source` with `flags`.
fn library_key(tc: &Toolchain, flags: &[&str], source: &str, arch: bool) -> String {
    let target = if arch { tc.target.as_str() } else { "" };
    let parts = [CACHE_FORMAT, &tc.cc, &tc.version, target, &flags.join(" "), env!("CARGO_PKG_VERSION"), source];
    format!("k{:016x}", cache::fnv1a(&parts.map(str::as_bytes)))
}

/// Whether the cache already holds a library for `source` (so [`load`] would not run the
/// compiler; the library is still checked when it is loaded).
pub(super) fn is_cached(source: &str) -> bool {
    let Ok(tc) = toolchain() else { return false };
    let arch = ARCH_OK.get().copied().unwrap_or(true);
    let mut flags: Vec<&str> = FLAGS.to_vec();
    if arch {
        flags.push(NATIVE_ARCH);
    }
    cache::location().join(format!("{}.so", library_key(tc, &flags, source, arch))).is_file()
}

/// [`load`] with or without `-march=native`.
fn build_and_load(tc: &Toolchain, dir: &Path, source: &str, arch: bool) -> Result<libloading::Library, BuildError> {
    let mut flags: Vec<&str> = FLAGS.to_vec();
    if arch {
        flags.push(NATIVE_ARCH);
    }
    let key = library_key(tc, &flags, source, arch);
    let name = format!("{key}.so");
    let lib = dir.join(&name);
    match open(&lib, &name) {
        Ok(loaded) => return Ok(loaded),
        Err(Open::Missing) => {}
        Err(Open::Bad(why)) => {
            let _ = fs::remove_file(&lib);
            eprintln!("cotangent: the cached kernel library {} is damaged ({why}); rebuilding it", lib.display());
        }
    }
    compile(tc, &flags, source, dir, &key)?;
    open(&lib, &name).map_err(|e| {
        let _ = fs::remove_file(&lib);
        let why = match e {
            Open::Missing => "it vanished".to_string(),
            Open::Bad(why) => why,
        };
        BuildError::Other(format!("the kernel library just built, {}, is unusable: {why}", lib.display()))
    })
}

/// Why a cached library was not loaded.
enum Open {
    Missing,
    /// Damaged, not ours, or rejected by the loader: to be deleted and rebuilt.
    Bad(String),
}

/// Loads the library at `path` (file `name` of the cache) if its seal is intact.
fn open(path: &Path, name: &str) -> Result<libloading::Library, Open> {
    let file = match fs::read(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Open::Missing),
        Err(e) => return Err(Open::Bad(format!("cannot read it: {e}"))),
    };
    cache::unseal(&file, name).map_err(Open::Bad)?;
    // SAFETY: `dlopen` maps the file and runs its initialisers. The file is one this crate
    // compiled: it lies in the cache directory, which `cache::open_dir` checked that only
    // this user can write (so nobody else can have planted it), and it carries the checksum
    // we recorded when we wrote it, just verified against its bytes and name — so it is
    // whole (a truncated file would make `dlopen` fault with SIGBUS) and its only
    // initialisers are the C runtime's. Files in the cache are only ever replaced by an
    // atomic rename, never rewritten in place, so the checked bytes are the loaded ones.
    // Safe public code cannot reach this with other input: the path comes from the cache key,
    // and the environment variables only choose the compiler (the user's own choice) and
    // the directory (checked as above).
    unsafe { libloading::Library::new(path) }.map_err(|e| Open::Bad(format!("cannot load it: {e}")))
}

/// Files removed when dropped: the temporary files of a build, on every way out of it (after
/// a successful build they have been renamed away and nothing is left to remove).
struct Scratch<'a>(&'a [&'a Path]);

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        for path in self.0 {
            let _ = fs::remove_file(path);
        }
    }
}

/// Compiles `source` with `flags` into `dir/{key}.so`, sealed (`dir/{key}.c` keeps the source).
fn compile(tc: &Toolchain, flags: &[&str], source: &str, dir: &Path, key: &str) -> Result<(), BuildError> {
    // Unique temporary names, renamed into place: concurrent builds of the same kernel
    // (other threads, other processes) never see a half-written library.
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let tag = format!("{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    let (c_path, lib): (PathBuf, PathBuf) = (dir.join(format!("{key}.c")), dir.join(format!("{key}.so")));
    let tmp_c = dir.join(format!("{key}.{tag}.c"));
    let tmp_lib = dir.join(format!("{key}.{tag}.so"));
    let _scratch = Scratch(&[&tmp_c, &tmp_lib]);
    let fail = |what: &str, path: &Path, e: std::io::Error| {
        BuildError::Other(format!("cannot {what} {}: {e}", path.display()))
    };
    fs::write(&tmp_c, source).map_err(|e| fail("write", &tmp_c, e))?;
    let out = match run(Command::new(&tc.cc).args(flags).arg("-o").arg(&tmp_lib).arg(&tmp_c).arg("-lm")) {
        Ok(out) => out,
        Err(Run::TimedOut) => return Err(BuildError::Other(timed_out(&tc.cc, "building kernels"))),
        Err(Run::CannotStart(e)) => return Err(BuildError::Other(format!("cannot run `{}`: {e}", tc.cc))),
    };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let err: Vec<&str> = err.lines().take(20).collect();
        return Err(BuildError::Rejected(format!(
            "`{}` rejected the generated kernel source ({}):\n{}",
            tc.cc,
            out.status,
            err.join("\n")
        )));
    }
    let bytes = fs::read(&tmp_lib)
        .map_err(|e| BuildError::Other(format!("`{}` reported success but wrote no library: {e}", tc.cc)))?;
    let trailer = cache::seal(&bytes, &format!("{key}.so"))
        .map_err(|why| BuildError::Other(format!("`{}` reported success but wrote {why}", tc.cc)))?;
    fs::OpenOptions::new()
        .append(true)
        .open(&tmp_lib)
        .and_then(|mut f| f.write_all(&trailer))
        .map_err(|e| fail("seal", &tmp_lib, e))?;
    // The source stays beside the library for anyone who wants to read it.
    let _ = fs::rename(&tmp_c, &c_path);
    fs::rename(&tmp_lib, &lib).map_err(|e| fail("move into place", &tmp_lib, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_description_is_stable_between_probes() {
        if let Ok(tc) = toolchain() {
            assert_eq!(native_target(&tc.cc).unwrap(), tc.target);
            assert!(!tc.target.is_empty());
        }
    }

    #[test]
    fn commands_report_their_output_and_status() {
        let out = run(Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"])).ok().unwrap();
        assert_eq!((out.stdout.as_slice(), out.stderr.as_slice()), (&b"out\n"[..], &b"err\n"[..]));
        assert_eq!(out.status.code(), Some(3));
        assert!(matches!(run(&mut Command::new("/nonexistent/cc")), Err(Run::CannotStart(_))));
    }
}
