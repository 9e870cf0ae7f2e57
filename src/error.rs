//! The error type for failures that depend on data from outside the program.

/// Errors from data the program does not control: buffers, files, solvers.
///
/// Mistakes in the traced program itself (shape mismatches and the like)
/// panic at the user's line instead; see the crate docs.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A buffer's length does not match the requested shape.
    #[error("a buffer of {len} elements cannot have shape {shape:?} ({} elements)", crate::shape::numel(shape))]
    ShapeMismatch {
        /// Elements supplied.
        len: usize,
        /// Shape requested.
        shape: Vec<usize>,
    },
}
