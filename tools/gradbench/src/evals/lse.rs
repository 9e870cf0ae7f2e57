//! `lse`: log-sum-exp of a vector, and its gradient (the softmax) by `grad`.

use super::{unknown_function, Output, Run};
use crate::input::vector;
use cotangent::{grad, jit, Tensor};
use serde_json::Value;

/// `log Σ exp(xᵢ)`, computed stably (cotangent's `logsumexp` shifts by the maximum).
pub fn lse(x: &Tensor) -> Tensor {
    x.logsumexp(&[0], false)
}

/// Builds `primal` or `gradient` for input `{x: float[n]}`.
pub fn prepare(function: &str, input: &Value) -> Result<Run, String> {
    let x = vector(input, "x")?;
    if x.numel() == 0 {
        return Err("`x`: must not be empty".into());
    }
    match function {
        "primal" => {
            let f = jit(lse);
            Ok(Box::new(move || Ok(Output::from(f(&x)))))
        }
        "gradient" => {
            let df = grad(lse);
            Ok(Box::new(move || Ok(Output::from(df(&x)))))
        }
        _ => Err(unknown_function("lse", function, &["primal", "gradient"])),
    }
}
