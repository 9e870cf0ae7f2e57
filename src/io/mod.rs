//! Checkpoints: save any [`Tree`] to a [safetensors] file and load it back.
//!
//! Each leaf is stored under its tree path ([`Tree::named_leaves`], e.g.
//! `layers.0.weight`; a tree that is a single tensor uses the name `value`).
//! Loading takes a *template* — a value of the same type and structure, such as
//! a freshly initialised model — and returns a new value with every leaf read
//! from the file. Loading is all or nothing: a file that is truncated, has a
//! bad header, lacks a name, or holds a tensor of the wrong dtype or shape
//! returns an [`Error`] naming the problem, and nothing is half-loaded.
//!
//! Supported dtypes: `f32`, `f64`, `i32`, `i64` and `bool` (safetensors `F32`,
//! `F64`, `I32`, `I64`, `BOOL`). Extra tensors in the file are ignored.
//!
//! ```
//! use cotangent::{io, Tensor, Tree};
//! #[derive(Tree)]
//! struct Model { w: Tensor, b: Tensor }
//! let m = Model { w: Tensor::from_vec(vec![1.0f32, 2.0], &[2]), b: Tensor::scalar(0.5f32) };
//! let bytes = io::to_bytes(&m).unwrap();
//! let fresh = Model { w: Tensor::from_vec(vec![0.0f32; 2], &[2]), b: Tensor::scalar(0.0f32) };
//! let back = io::from_bytes(&fresh, &bytes).unwrap();
//! assert_eq!(back.w.to_vec::<f32>(), vec![1.0, 2.0]);
//! ```
//!
//! # Untrusted files
//!
//! The header is checked before the `safetensors` crate reads it: every tensor's shape
//! product times its dtype size, its `data_offsets` (ordered, tiling the data from byte 0
//! without gaps or overlaps, within the file) and their sum, all with checked arithmetic.
//! A crafted header is an [`Error`] naming the tensor, in debug builds too (where the
//! crate's own unchecked sums would panic), and nothing is allocated from declared sizes:
//! memory use is bounded by the file's length.
//!
//! # Saving safely
//!
//! [`save`] never leaves a partly written file under its path. It writes a temporary
//! `<path>.tmp.<pid>.<token>.<n>` beside it (created exclusively, so concurrent saves,
//! from threads or processes, never share one; `token` is random per process, `n`
//! counts within it), `fsync`s it, renames it over `path` and `fsync`s the directory.
//! Of several concurrent saves to one path, every one returns `Ok` and the file holds
//! exactly one of their trees, whole. On an error the temporary is removed.
//!
//! A process killed during a save cannot remove its temporary, so each save first
//! removes the temporaries of its path that no running save can own: those whose pid
//! is not a live process (known on Linux, through `/proc`), those with this process's
//! pid but another token (an earlier process that had the same pid, such as pid 1 of
//! a restarted container), and any not modified for 24 hours (pids get reused; this is
//! the only rule where `/proc` is missing). Processes in different pid namespaces that
//! save to one shared directory can mistake each other's temporaries for stale ones;
//! the save that loses its temporary then returns an error, and the file stays whole.
//!
//! [safetensors]: https://github.com/huggingface/safetensors

use crate::array::Data;
use crate::{DType, Error, Tensor, Tree};
use safetensors::tensor::{SafeTensors, TensorView};
use safetensors::Dtype;
use std::collections::HashSet;
use std::path::Path;

mod atomic;
mod header;

/// The name a leaf gets in a checkpoint: its tree path, or `value` for a root leaf.
fn leaf_name(path: String) -> String {
    if path.is_empty() {
        "value".to_string()
    } else {
        path
    }
}

fn st_dtype(d: DType) -> Dtype {
    match d {
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
        DType::I32 => Dtype::I32,
        DType::I64 => Dtype::I64,
        DType::Bool => Dtype::BOOL,
    }
}

fn to_le_bytes(data: &Data) -> Vec<u8> {
    match data {
        Data::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::Bool(v) => v.iter().map(|&b| b as u8).collect(),
    }
}

/// Decodes little-endian bytes whose length the safetensors validator already matched to
/// the shape; returns `None` only for a bool byte other than 0 or 1.
fn from_le_bytes(dtype: DType, b: &[u8]) -> Option<Data> {
    fn chunks<const N: usize, T>(b: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
        b.chunks_exact(N).map(|c| f(c.try_into().expect("chunk of N bytes"))).collect()
    }
    Some(match dtype {
        DType::F32 => Data::F32(chunks(b, f32::from_le_bytes)),
        DType::F64 => Data::F64(chunks(b, f64::from_le_bytes)),
        DType::I32 => Data::I32(chunks(b, i32::from_le_bytes)),
        DType::I64 => Data::I64(chunks(b, i64::from_le_bytes)),
        DType::Bool => Data::Bool(
            b.iter()
                .map(|&x| match x {
                    0 => Some(false),
                    1 => Some(true),
                    _ => None,
                })
                .collect::<Option<Vec<bool>>>()?,
        ),
    })
}

/// Serialises a tree to safetensors bytes, one tensor per leaf, named by its path.
///
/// Fails with [`Error::DuplicateName`] if two leaves share a path. Panics if a leaf is a
/// traced value (checkpoints hold data, not programs).
///
/// ```
/// use cotangent::{io, Tensor};
/// let bytes = io::to_bytes(&vec![Tensor::scalar(1.0), Tensor::scalar(2.0)]).unwrap();
/// assert!(bytes.len() > 16);
/// ```
#[track_caller]
pub fn to_bytes<T: Tree>(tree: &T) -> Result<Vec<u8>, Error> {
    let named = tree.named_leaves();
    let mut seen = HashSet::new();
    let mut bufs = Vec::with_capacity(named.len());
    for (path, t) in named {
        let name = leaf_name(path);
        if !seen.insert(name.clone()) {
            return Err(Error::DuplicateName { name });
        }
        let bytes = to_le_bytes(t.data());
        bufs.push((name, t.dtype(), t.shape(), bytes));
    }
    let views: Vec<(String, TensorView)> = bufs
        .iter()
        .map(|(name, d, shape, bytes)| {
            let view = TensorView::new(st_dtype(*d), shape.clone(), bytes).expect("a tensor's bytes match its shape");
            (name.clone(), view)
        })
        .collect();
    safetensors::tensor::serialize(views, None).map_err(|e| Error::BadHeader { message: e.to_string() })
}

/// Reads every leaf of `template` from safetensors bytes, returning a new tree.
///
/// ```
/// use cotangent::{io, Error, Tensor};
/// let t = Tensor::from_vec(vec![1i64, 2, 3], &[3]);
/// let bytes = io::to_bytes(&t).unwrap();
/// assert_eq!(io::from_bytes(&t, &bytes).unwrap().to_vec::<i64>(), vec![1, 2, 3]);
/// // A cut-off file is an error, not a panic.
/// assert!(matches!(io::from_bytes(&t, &bytes[..bytes.len() - 3]), Err(Error::Truncated { .. })));
/// ```
pub fn from_bytes<T: Tree>(template: &T, bytes: &[u8]) -> Result<T, Error> {
    // Our own checked validation first: the crate's unchecked sums panic in debug builds.
    header::check(bytes)?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| Error::BadHeader { message: e.to_string() })?;
    let mut leaves = Vec::new();
    for (path, t) in template.named_leaves() {
        let name = leaf_name(path);
        let view = st.tensor(&name).map_err(|_| Error::MissingTensor { name: name.clone() })?;
        let expected = t.dtype();
        if view.dtype() != st_dtype(expected) {
            return Err(Error::WrongDType { name, expected, found: format!("{:?}", view.dtype()) });
        }
        if view.shape() != t.shape().as_slice() {
            return Err(Error::WrongShape { name, expected: t.shape(), found: view.shape().to_vec() });
        }
        let data = from_le_bytes(expected, view.data()).ok_or_else(|| Error::BadHeader {
            message: format!("tensor `{name}` is BOOL but holds bytes other than 0 and 1"),
        })?;
        leaves.push(Tensor::from_array(crate::Array::new(t.shape(), data)));
    }
    Ok(template.rebuild_from(leaves))
}

/// Saves a tree to a safetensors file (see [`to_bytes`]).
///
/// The file is written to a unique temporary beside `path`, synced and renamed into place,
/// so an interrupted save never leaves a half-written checkpoint under `path`, and of
/// concurrent saves to one path the last rename wins whole. Temporaries of killed
/// processes are cleaned up by later saves to the same path (see the [module
/// docs](crate::io#saving-safely)). Fails with [`Error::Io`] if the file cannot be written (no
/// temporary is left behind) or if the directory cannot be synced after the rename.
///
/// ```
/// use cotangent::{io, Tensor};
/// let path = std::env::temp_dir().join("cotangent_doc_save.safetensors");
/// io::save(&Tensor::scalar(3.0f32), &path).unwrap();
/// let back = io::load(&Tensor::scalar(0.0f32), &path).unwrap();
/// assert_eq!(back.item::<f32>(), 3.0);
/// ```
#[track_caller]
pub fn save<T: Tree>(tree: &T, path: impl AsRef<Path>) -> Result<(), Error> {
    let path = path.as_ref();
    let bytes = to_bytes(tree)?;
    atomic::write(path, &bytes).map_err(|e| Error::Io {
        action: "write",
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Loads a tree shaped like `template` from a safetensors file (see [`from_bytes`]).
///
/// ```
/// use cotangent::{io, Error, Tensor};
/// let err = io::load(&Tensor::scalar(0.0), "/no/such/file.safetensors").unwrap_err();
/// assert!(matches!(err, Error::Io { .. }));
/// ```
pub fn load<T: Tree>(template: &T, path: impl AsRef<Path>) -> Result<T, Error> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        action: "read",
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    from_bytes(template, &bytes)
}
