//! The error type for failures that depend on data from outside the program.

/// Errors from data the program does not control: buffers, files, solvers.
///
/// Mistakes in the traced program itself (shape mismatches and the like)
/// panic at the user's line instead; see the crate docs.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A buffer's length does not match the requested shape.
    #[error("a buffer of {len} elements cannot have shape {shape:?} ({})", shape_size(shape))]
    ShapeMismatch {
        /// Elements supplied.
        len: usize,
        /// Shape requested.
        shape: Vec<usize>,
    },
    /// A file could not be read or written.
    #[error("cannot {action} {path}: {message}")]
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: String,
        /// What the operating system said.
        message: String,
    },
    /// A checkpoint is shorter than its own header says: the file was cut off.
    #[error("truncated checkpoint: {message}")]
    Truncated {
        /// What was missing.
        message: String,
    },
    /// A checkpoint's header is not a valid safetensors header.
    #[error("bad checkpoint header: {message}")]
    BadHeader {
        /// What is wrong with it.
        message: String,
    },
    /// A tensor the tree needs is not in the checkpoint.
    #[error("checkpoint has no tensor named `{name}`")]
    MissingTensor {
        /// The leaf's path in the tree.
        name: String,
    },
    /// A checkpoint tensor has a different dtype than the tree's leaf.
    #[error("tensor `{name}` is {found} in the checkpoint, but the tree expects {expected}")]
    WrongDType {
        /// The leaf's path.
        name: String,
        /// The leaf's dtype.
        expected: crate::DType,
        /// The dtype in the file (its safetensors name).
        found: String,
    },
    /// A checkpoint tensor has a different shape than the tree's leaf.
    #[error("tensor `{name}` has shape {found:?} in the checkpoint, but the tree expects {expected:?}")]
    WrongShape {
        /// The leaf's path.
        name: String,
        /// The leaf's shape.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// [`set_threads`](crate::set_threads) asked for zero threads, or came after the
    /// thread count was fixed (see [`threads`](mod@crate::threads)).
    #[error("cannot set the number of threads: {message}")]
    Threads {
        /// Why not.
        message: String,
    },
    /// Two leaves of a tree have the same path, so they cannot be told apart in a checkpoint.
    #[error("two leaves of the tree are both named `{name}`")]
    DuplicateName {
        /// The repeated path.
        name: String,
    },
    /// A tensor or array could not be converted (to or from `Vec<Vec<_>>` or `ndarray`): the
    /// dtype or rank differs, the rows are ragged, or the tensor is symbolic.
    #[error("cannot convert {what}: {message}")]
    Conversion {
        /// The conversion, e.g. `Tensor to Vec<Vec<f32>>`.
        what: String,
        /// Why not.
        message: String,
    },
}

/// "N elements", or "more elements than memory can address" for a shape whose size overflows.
fn shape_size(shape: &[usize]) -> String {
    match crate::shape::checked_numel(shape) {
        Some(n) => format!("{n} elements"),
        None => "more elements than fit in memory".to_string(),
    }
}
