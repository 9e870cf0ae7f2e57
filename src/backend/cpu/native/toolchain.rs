//! Turning C source into a loaded shared library: the system C compiler, an on-disk cache
//! keyed by a hash of the source (so a program compiles once per machine, not once per
//! process), and `dlopen` through `libloading`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Flags that keep floating point exactly as written (no contraction into fused
/// multiply-adds, no reassociation) while letting the compiler vectorise for this CPU.
const FLAGS: &[&str] = &["-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-fPIC", "-shared"];
/// Tried first; dropped if the compiler rejects it.
const NATIVE_ARCH: &str = "-march=native";

/// The compiler command and how to identify it in cache keys.
struct Toolchain {
    cc: String,
    version: String,
    /// What `-march=native` means on this machine (the compiler's expansion of it into
    /// explicit target flags), so that a cache shared between machines (a networked home
    /// directory) never hands one CPU code built for another's instruction set.
    target: String,
}

/// `$COTANGENT_CC`, else `$CC`, else `cc`, if it answers `--version`.
fn toolchain() -> Result<&'static Toolchain, String> {
    static TC: OnceLock<Result<Toolchain, String>> = OnceLock::new();
    TC.get_or_init(|| {
        let cc = std::env::var("COTANGENT_CC").or_else(|_| std::env::var("CC")).unwrap_or_else(|_| "cc".to_string());
        let out = Command::new(&cc).arg("--version").output().map_err(|e| format!("no C compiler `{cc}`: {e}"))?;
        if !out.status.success() {
            return Err(format!("`{cc} --version` failed"));
        }
        let version = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("").to_string();
        let target = native_target(&cc);
        Ok(Toolchain { cc, version, target })
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// What `-march=native` expands to with compiler `cc` (its target flags, sorted), or this
/// machine's `/proc/cpuinfo` where the compiler does not say.
fn native_target(cc: &str) -> String {
    // `-###` prints the commands the driver would run, with -march=native expanded.
    let flags = Command::new(cc)
        .args([NATIVE_ARCH, "-###", "-x", "c", "-c", "-o"])
        .arg(std::env::temp_dir().join("cotangent-probe.o"))
        .arg("-")
        .stdin(std::process::Stdio::null())
        .output()
        .map(|o| {
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
        })
        .unwrap_or_default();
    if flags.is_empty() {
        std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default()
    } else {
        flags
    }
}

/// Whether a C compiler answers.
pub(super) fn available() -> bool {
    toolchain().is_ok()
}

/// Where compiled kernels are kept: `$COTANGENT_CACHE_DIR`, else the user's cache directory.
fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("COTANGENT_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("cotangent").join("kernels");
    }
    if let Some(d) = std::env::var_os("HOME") {
        return PathBuf::from(d).join(".cache").join("cotangent").join("kernels");
    }
    std::env::temp_dir().join("cotangent-kernels")
}

/// FNV-1a: a stable hash for cache keys (std's hashers may change between releases).
fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in p.as_bytes().iter().chain(&[0xff]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Whether `-march=native` works with this compiler (decided by the first build).
static ARCH_OK: OnceLock<bool> = OnceLock::new();

/// Compiles `source` into a shared library (or finds it in the cache) and returns its path.
pub(super) fn build(source: &str) -> Result<PathBuf, String> {
    let tc = toolchain()?;
    let dir = cache_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let attempt = |arch: bool| -> Result<PathBuf, String> {
        let mut flags: Vec<&str> = FLAGS.to_vec();
        if arch {
            flags.push(NATIVE_ARCH);
        }
        let target = if arch { tc.target.as_str() } else { "" };
        let key = fnv1a(&[&tc.cc, &tc.version, target, &flags.join(" "), env!("CARGO_PKG_VERSION"), source]);
        let lib = dir.join(format!("k{key:016x}.so"));
        if lib.exists() {
            return Ok(lib);
        }
        // Unique temporary names, renamed into place: concurrent builds of the same kernel
        // (other threads, other processes) never see a half-written library.
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let tag = format!("{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let c_path = dir.join(format!("k{key:016x}.c"));
        let tmp_c = dir.join(format!("k{key:016x}.{tag}.c"));
        let tmp_lib = dir.join(format!("k{key:016x}.{tag}.so"));
        std::fs::write(&tmp_c, source).map_err(|e| format!("cannot write {}: {e}", tmp_c.display()))?;
        let out = Command::new(&tc.cc)
            .args(&flags)
            .arg("-o")
            .arg(&tmp_lib)
            .arg(&tmp_c)
            .arg("-lm")
            .output()
            .map_err(|e| format!("cannot run `{}`: {e}", tc.cc))?;
        if !out.status.success() {
            let _ = std::fs::remove_file(&tmp_c);
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(format!(
                "`{}` failed on {}:\n{}",
                tc.cc,
                tmp_c.display(),
                err.lines().take(20).collect::<Vec<_>>().join("\n")
            ));
        }
        // The source stays beside the library for anyone who wants to read it.
        let _ = std::fs::rename(&tmp_c, &c_path);
        std::fs::rename(&tmp_lib, &lib).map_err(|e| format!("cannot move {} into place: {e}", tmp_lib.display()))?;
        Ok(lib)
    };
    match ARCH_OK.get() {
        Some(&arch) => attempt(arch),
        None => match attempt(true) {
            Ok(lib) => {
                let _ = ARCH_OK.set(true);
                Ok(lib)
            }
            Err(_) => {
                let lib = attempt(false)?;
                let _ = ARCH_OK.set(false);
                Ok(lib)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_description_is_stable_between_probes() {
        if let Ok(tc) = toolchain() {
            assert_eq!(native_target(&tc.cc), tc.target);
            assert!(!tc.target.is_empty());
        }
    }

    #[test]
    fn cache_keys_are_stable_and_distinguish_sources() {
        assert_eq!(fnv1a(&["a", "b"]), fnv1a(&["a", "b"]));
        assert_ne!(fnv1a(&["ab", ""]), fnv1a(&["a", "b"]));
    }
}
