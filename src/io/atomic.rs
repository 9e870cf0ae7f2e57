//! Replacing a file atomically: write a unique temporary beside it, `fsync` it, rename it
//! over the target, `fsync` the directory. See the module docs of [`crate::io`] for the
//! guarantees and for how temporaries of killed processes are cleaned up.

use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hash, Hasher};
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// A temporary older than this is removed whatever its pid says (pids are reused).
const STALE_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// Distinguishes this process from earlier ones that had the same pid (in a container the
/// main process is often pid 1 every time it restarts). Random: std's hasher keys come
/// from the operating system's random source.
fn process_token() -> u64 {
    static TOKEN: OnceLock<u64> = OnceLock::new();
    *TOKEN.get_or_init(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        SystemTime::now().hash(&mut h);
        std::process::id().hash(&mut h);
        h.finish()
    })
}

/// Numbers this process's temporaries, so two threads never pick the same name.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// `<file>.tmp.`, the prefix of every temporary of `file`.
fn tmp_prefix(file: &OsStr) -> OsString {
    let mut p = file.to_owned();
    p.push(".tmp.");
    p
}

/// Parses the rest of a temporary's name after [`tmp_prefix`]: `<pid>.<token hex>.<n>`.
fn parse_tmp_suffix(rest: &[u8]) -> Option<(u32, u64)> {
    let s = std::str::from_utf8(rest).ok()?;
    let mut parts = s.split('.');
    let (pid, token, n) = (parts.next()?, parts.next()?, parts.next()?);
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if parts.next().is_some() || !digits(pid) || !digits(n) || token.is_empty() || token.len() > 16 {
        return None;
    }
    Some((pid.parse().ok()?, u64::from_str_radix(token, 16).ok()?))
}

/// Whether process `pid` exists, where the system can tell (Linux: `/proc/<pid>`).
fn process_alive(pid: u32) -> Option<bool> {
    if cfg!(target_os = "linux") && Path::new("/proc/self").exists() {
        Some(Path::new("/proc").join(pid.to_string()).exists())
    } else {
        None
    }
}

/// Removes the temporaries of `file` in `dir` that no running save can own: those of a
/// process that no longer exists, those of an earlier process with this process's pid, and
/// those not modified for [`STALE_AGE`]. Best effort: errors (such as another save having
/// removed the same file first) are ignored.
fn remove_stale(dir: &Path, file: &OsStr) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let prefix = tmp_prefix(file);
    let prefix = prefix.as_encoded_bytes();
    let (me, token) = (std::process::id(), process_token());
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.as_encoded_bytes().strip_prefix(prefix) else { continue };
        let Some((pid, their_token)) = parse_tmp_suffix(rest) else { continue };
        let dead = if pid == me { their_token != token } else { process_alive(pid) == Some(false) };
        let old = || {
            let modified = entry.metadata().and_then(|m| m.modified());
            modified.is_ok_and(|t| t.elapsed().is_ok_and(|age| age > STALE_AGE))
        };
        if dead || old() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A temporary file that is removed when dropped, unless it was renamed into place.
struct Temp {
    path: PathBuf,
    committed: bool,
}

impl Drop for Temp {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Creates a new temporary for `file` in `dir`, never one another writer already has.
fn create_temp(dir: &Path, file: &OsStr) -> io::Result<(File, Temp)> {
    let (me, token) = (std::process::id(), process_token());
    loop {
        let mut name = tmp_prefix(file);
        name.push(format!("{me}.{token:x}.{}", COUNTER.fetch_add(1, Ordering::Relaxed)));
        let path = dir.join(name);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => return Ok((f, Temp { path, committed: false })),
            // Only a temporary of an earlier process with our pid and token can be in the
            // way (the counter never repeats within a process); the next number is free.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Makes a rename in `dir` durable. Some file systems cannot `fsync` a directory and say
/// so with `EINVAL`; there the rename is as durable as that file system makes it, and that
/// is not an error. Elsewhere than Unix, std cannot open a directory to sync it.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    match File::open(dir)?.sync_all() {
        Err(e) if matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::Unsupported) => Ok(()),
        other => other,
    }
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Replaces `path` with `bytes`: afterwards `path` holds either its old contents or all of
/// `bytes`, even if this process is killed or concurrent calls race on the same path.
pub(super) fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let file =
        path.file_name().ok_or_else(|| io::Error::new(ErrorKind::InvalidInput, "the path does not name a file"))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    remove_stale(dir, file);
    let (mut f, mut temp) = create_temp(dir, file)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&temp.path, path)?;
    temp.committed = true;
    sync_dir(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("the file is in place, but syncing its directory failed: {e}")))
}
