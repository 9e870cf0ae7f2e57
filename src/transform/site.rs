//! Where a transformation was called: its name and the user's line, for error messages.
//!
//! `grad(f)` returns a function whose body runs later, where `#[track_caller]` cannot
//! reach the user's line (closures cannot carry it on stable Rust). So each entry point
//! records its [`Site`] when it is called, and a misuse found later reports both, as
//! `grad (called at src/main.rs:42:13): the function must return ...`.

use crate::{Tensor, TensorType, Tree};
use std::fmt;
use std::panic::Location;

/// The transformation the user called and the line they called it on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Site {
    /// The public name of the transformation (`hessian`, not the `grad` it is built from).
    pub(crate) name: &'static str,
    at: &'static Location<'static>,
}

impl Site {
    /// The site of the caller of the (`#[track_caller]`) function calling this.
    #[track_caller]
    pub(crate) fn here(name: &'static str) -> Site {
        Site { name, at: Location::caller() }
    }

    /// Panics with `msg` after the transformation's name and the user's line.
    #[track_caller]
    pub(crate) fn fail(&self, msg: fmt::Arguments) -> ! {
        panic!("{self}: {msg}")
    }

    /// Panics unless every leaf of `x` is a float tensor: the transformation differentiates
    /// with respect to all of them, and an integer or bool leaf has no derivative (JAX
    /// refuses these too, rather than returning zeros the user did not ask for).
    #[track_caller]
    pub(crate) fn require_float_leaves<A: Tree>(&self, x: &A) {
        if x.leaves().iter().all(|t| t.dtype().is_float()) {
            return;
        }
        let named = x.named_leaves();
        let (i, (path, t)) =
            named.iter().enumerate().find(|(_, (_, t))| !t.dtype().is_float()).expect("a non-float leaf");
        self.fail(format_args!(
            "{} requires float inputs, but {} has dtype {} ({}); to differentiate with respect to \
             some leaves only, pass the others to the function through its closure, or use vjp, which \
             gives integer and bool leaves zero cotangents",
            self.name,
            leaf_name(path, i),
            t.dtype(),
            t.ty()
        ))
    }

    /// Panics unless `ty`, the output of a function whose Jacobian is taken, is a float type.
    #[track_caller]
    pub(crate) fn require_float_output(&self, ty: &TensorType) {
        if !ty.dtype.is_float() {
            self.fail(format_args!("{} requires float outputs, but the function returned {ty}", self.name));
        }
    }

    /// Panics unless `y` is a 0-d float tensor, the output of a function being differentiated.
    #[track_caller]
    pub(crate) fn require_scalar(&self, y: &Tensor) {
        let ty = y.ty();
        if ty.rank() != 0 || !ty.dtype.is_float() {
            self.fail(format_args!("the function must return a 0-d float tensor to be differentiated, got {ty}"));
        }
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (called at {})", self.name, self.at)
    }
}

/// How a message names leaf `i` of a tree, whose dotted path is `path` (empty at the root).
pub(crate) fn leaf_name(path: &str, i: usize) -> String {
    if path.is_empty() && i == 0 {
        "the argument".to_string()
    } else if path.is_empty() {
        format!("leaf {i}")
    } else {
        format!("leaf `{path}`")
    }
}
