//! The on-disk kernel cache: where it is, whether it can be trusted, and the sealed format
//! of the libraries in it.
//!
//! Trust rests on the directory. A library is loaded only from a directory that this user
//! owns and nobody else can write to, reached through parents where nobody else can rename
//! it away ([`open_dir`]); otherwise another local user could plant a library under the name
//! we are about to build and have us (perhaps root) load it. Inside that directory each
//! library carries a checksum of its own bytes and of its name, appended when we wrote it
//! ([`seal`]) and checked before every load ([`unseal`]). The checksum lives in the same
//! directory as the library, so it is no defence against someone who can write there — the
//! directory check is what makes it trustworthy. What it does catch is damage: a library
//! truncated by a full disk, a crash or a faulty compiler (which `dlopen` would map past its
//! end and die of SIGBUS), a stray file under a library's name, or bytes changed later.

use std::fs;
use std::path::{Path, PathBuf};

/// Where compiled kernels are kept: `$COTANGENT_CACHE_DIR`, else `$XDG_CACHE_HOME/cotangent/
/// kernels`, else `~/.cache/cotangent/kernels`, else `cotangent-kernels` in the temporary
/// directory (which [`open_dir`] refuses if another user made it first).
pub(super) fn location() -> PathBuf {
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

/// Creates the cache directory `dir` if absent (mode 0700, and 0700 for the parents it
/// creates) and checks that it can be trusted; returns its canonical path, which callers use
/// from then on so that no symbolic link is followed again after the check.
///
/// The rules, whatever the directory's origin (`COTANGENT_CACHE_DIR` included):
/// - the directory is owned by this process's user and writable by nobody else (no group
///   or world write bit — a sticky bit does not help here: it stops others from deleting
///   our files, not from creating the names we are about to build);
/// - every parent is owned by this user or root and is not world-writable unless sticky
///   (like `/tmp`), so nobody else can rename the directory away and put theirs in its
///   place. Group-writable parents are accepted (user-private groups make them common).
///
/// Which user we are is learnt without `libc`: by creating a file in the directory and
/// reading its owner (files are created with the process's file-system uid, the uid that
/// matters for what it may write). The file is removed at once.
pub(super) fn open_dir(dir: &Path) -> Result<PathBuf, String> {
    let shown = dir.display();
    create_private(dir).map_err(|e| format!("cannot create the kernel cache {shown}: {e}"))?;
    let dir = fs::canonicalize(dir).map_err(|e| format!("cannot resolve the kernel cache {shown}: {e}"))?;
    check(&dir)?;
    Ok(dir)
}

#[cfg(unix)]
fn create_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(not(unix))]
fn create_private(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)
}

#[cfg(unix)]
fn check(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let advice = "chmod 700 it, or point COTANGENT_CACHE_DIR elsewhere";
    let meta = fs::metadata(dir).map_err(|e| format!("cannot read the kernel cache {}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!("the kernel cache {} is not a directory", dir.display()));
    }
    // Before writing anything there: a directory others can write to is refused outright.
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "the kernel cache {} is writable by other users (mode {:o}); {advice}",
            dir.display(),
            meta.mode() & 0o7777
        ));
    }
    let me = own_uid(dir)?;
    if meta.uid() != me {
        return Err(format!(
            "the kernel cache {} belongs to user {}, not to this user ({me}); point COTANGENT_CACHE_DIR elsewhere",
            dir.display(),
            meta.uid()
        ));
    }
    for parent in dir.ancestors().skip(1) {
        let m = fs::metadata(parent).map_err(|e| format!("cannot read {}: {e}", parent.display()))?;
        let (mode, uid) = (m.mode(), m.uid());
        if uid != me && uid != 0 {
            return Err(format!(
                "the kernel cache {} lies in {}, which belongs to user {uid}; point COTANGENT_CACHE_DIR elsewhere",
                dir.display(),
                parent.display()
            ));
        }
        if mode & 0o002 != 0 && mode & 0o1000 == 0 {
            return Err(format!(
                "the kernel cache {} lies in {}, which every user may write to (mode {:o}); point COTANGENT_CACHE_DIR elsewhere",
                dir.display(),
                parent.display(),
                mode & 0o7777
            ));
        }
    }
    Ok(())
}

/// The uid this process creates files with: the owner of a file it creates in `dir`.
#[cfg(unix)]
fn own_uid(dir: &Path) -> Result<u32, String> {
    use std::os::unix::fs::MetadataExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let probe = dir.join(format!(".owner-probe.{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    let created = fs::OpenOptions::new().write(true).create_new(true).open(&probe);
    let uid = created.and_then(|f| f.metadata()).map(|m| m.uid());
    let _ = fs::remove_file(&probe);
    uid.map_err(|e| format!("cannot write to the kernel cache {}: {e}", dir.display()))
}

#[cfg(not(unix))]
fn check(_dir: &Path) -> Result<(), String> {
    Ok(())
}

/// Marks the end of a sealed library: the checksum's 8 bytes come just before it.
const MAGIC: &[u8; 8] = b"ctkseal1";

/// FNV-1a, 64 bits: stable between releases (unlike std's hashers), and enough to tell a
/// damaged file from the one we wrote (it is not meant to stop someone who can write the
/// directory: see the module documentation).
pub(super) fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in p.iter().chain(&[0xff]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The trailer of library bytes `lib` stored under file `name`.
fn trailer(lib: &[u8], name: &str) -> [u8; 16] {
    let mut t = [0u8; 16];
    t[..8].copy_from_slice(&fnv1a(&[name.as_bytes(), lib]).to_le_bytes());
    t[8..].copy_from_slice(MAGIC);
    t
}

/// Checks that freshly compiled `lib` is a whole shared library and returns the trailer to
/// append to it: its checksum, which also binds it to file name `name`. Loaders ignore bytes
/// past the end of a library.
pub(super) fn seal(lib: &[u8], name: &str) -> Result<[u8; 16], String> {
    whole_library(lib)?;
    Ok(trailer(lib, name))
}

/// Checks the contents `file` of the cache file `name`: a sealed, whole library whose
/// checksum matches its bytes and its name. Returns the library's bytes.
pub(super) fn unseal<'a>(file: &'a [u8], name: &str) -> Result<&'a [u8], String> {
    let Some(lib_len) = file.len().checked_sub(16) else {
        return Err(format!("{} bytes, too short to be a sealed library", file.len()));
    };
    let (lib, t) = file.split_at(lib_len);
    if &t[8..] != MAGIC {
        return Err("no checksum (truncated, or not written by cotangent)".into());
    }
    if t != trailer(lib, name) {
        return Err("its checksum does not match its contents".into());
    }
    whole_library(lib)?;
    Ok(lib)
}

/// Whether `lib` is plausibly a complete shared library: an ELF file whose program headers,
/// segments and section headers all lie within its bytes (a Mach-O one on Apple systems,
/// checked by its magic number only).
fn whole_library(lib: &[u8]) -> Result<(), String> {
    if lib.starts_with(b"\x7fELF") {
        return elf_complete(lib).ok_or_else(|| format!("an incomplete shared library ({} bytes)", lib.len()));
    }
    let macho = [[0xcf, 0xfa, 0xed, 0xfe], [0xca, 0xfe, 0xba, 0xbe]];
    if cfg!(target_vendor = "apple") && macho.iter().any(|m| lib.starts_with(m)) {
        return Ok(());
    }
    Err(format!("not a shared library ({} bytes)", lib.len()))
}

/// `Some(())` if the ELF file `b` holds everything its headers point to.
fn elf_complete(b: &[u8]) -> Option<()> {
    let wide = match b.get(4)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let little = match b.get(5)? {
        1 => true,
        2 => false,
        _ => return None,
    };
    let uint = |at: usize, size: usize| -> Option<u64> {
        let bytes = b.get(at..at.checked_add(size)?)?;
        let mut v = 0u64;
        for i in 0..size {
            let byte = if little { bytes[size - 1 - i] } else { bytes[i] };
            v = v << 8 | byte as u64;
        }
        Some(v)
    };
    let addr = if wide { 8 } else { 4 };
    // Offsets of e_phoff, e_shoff, e_phentsize, e_phnum, e_shentsize, e_shnum.
    let (phoff, shoff, rest) = if wide { (32, 40, 54) } else { (28, 32, 42) };
    let (phoff, shoff) = (uint(phoff, addr)?, uint(shoff, addr)?);
    let (phentsize, phnum) = (uint(rest, 2)?, uint(rest + 2, 2)?);
    let (shentsize, shnum) = (uint(rest + 4, 2)?, uint(rest + 6, 2)?);
    let len = b.len() as u64;
    let within = |start: u64, size: u64| start.checked_add(size).is_some_and(|end| end <= len);
    if phnum == 0 || !within(phoff, phentsize * phnum) || (shoff != 0 && !within(shoff, shentsize * shnum)) {
        return None;
    }
    // Each loaded segment's file bytes (p_offset, p_filesz).
    let (off_at, filesz_at) = if wide { (8, 32) } else { (4, 16) };
    for i in 0..phnum {
        let ph = (phoff + i * phentsize) as usize;
        const PT_LOAD: u64 = 1;
        if uint(ph, 4)? == PT_LOAD && !within(uint(ph + off_at, addr)?, uint(ph + filesz_at, addr)?) {
            return None;
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal 64-bit little-endian ELF image: header, one PT_LOAD segment covering the
    /// first 256 bytes, no section headers.
    fn tiny_elf() -> Vec<u8> {
        let mut b = vec![0u8; 256];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        b[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        b[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        b[64..68].copy_from_slice(&1u32.to_le_bytes()); // p_type = PT_LOAD
        b[64 + 32..64 + 40].copy_from_slice(&256u64.to_le_bytes()); // p_filesz
        b
    }

    #[test]
    fn sealed_libraries_unseal_to_their_bytes() {
        let lib = tiny_elf();
        let mut file = lib.clone();
        file.extend(seal(&lib, "k1.so").unwrap());
        assert_eq!(unseal(&file, "k1.so").unwrap(), &lib[..]);
    }

    #[test]
    fn damaged_or_renamed_libraries_are_rejected() {
        let mut file = tiny_elf();
        let t = seal(&file, "k1.so").unwrap();
        file.extend(t);
        assert!(unseal(&file, "k2.so").unwrap_err().contains("checksum"));
        for cut in [1, 8, 16, 100, file.len()] {
            assert!(unseal(&file[..file.len() - cut], "k1.so").is_err(), "cut {cut}");
        }
        let mut flipped = file.clone();
        flipped[100] ^= 1;
        assert!(unseal(&flipped, "k1.so").unwrap_err().contains("checksum"));
    }

    #[test]
    fn libraries_shorter_than_their_headers_say_are_incomplete() {
        let lib = tiny_elf();
        assert!(whole_library(&lib).is_ok());
        assert!(whole_library(&lib[..255]).unwrap_err().contains("incomplete"));
        assert!(whole_library(&lib[..60]).unwrap_err().contains("incomplete"));
        assert!(whole_library(b"#!/bin/sh").unwrap_err().contains("not a shared library"));
        let mut sections = lib.clone();
        sections[40..48].copy_from_slice(&200u64.to_le_bytes()); // e_shoff
        sections[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
        sections[60..62].copy_from_slice(&2u16.to_le_bytes()); // e_shnum: 128 bytes from 200
        assert!(seal(&sections, "k.so").is_err());
    }

    #[test]
    fn checksums_are_stable_and_distinguish_parts() {
        assert_eq!(fnv1a(&[b"a", b"b"]), fnv1a(&[b"a", b"b"]));
        assert_ne!(fnv1a(&[b"ab", b""]), fnv1a(&[b"a", b"b"]));
    }

    #[cfg(unix)]
    #[test]
    fn directories_others_can_write_are_refused() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let base = std::env::temp_dir().join(format!("cotangent-cache-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let dir = base.join("new").join("kernels");
        let opened = open_dir(&dir).unwrap();
        assert_eq!(fs::metadata(&opened).unwrap().mode() & 0o777, 0o700);
        assert_eq!(fs::read_dir(&opened).unwrap().count(), 0, "the ownership probe is removed");
        for mode in [0o777, 0o1777, 0o720, 0o702] {
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).unwrap();
            assert!(open_dir(&dir).unwrap_err().contains("writable by other users"), "mode {mode:o}");
        }
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(open_dir(&dir).is_ok());
        fs::remove_dir_all(&base).unwrap();
    }
}
