//! `hello`: `square(x) = x²` and `double(x)`, its derivative by `grad`.

use super::{unknown_function, Output, Run};
use crate::input::number;
use cotangent::{grad, jit, Tensor};
use serde_json::Value;

/// `x²`.
pub fn square(x: &Tensor) -> Tensor {
    x * x
}

/// Builds `square` or `double` (= `grad(square)`) for the bare-number input.
pub fn prepare(function: &str, input: &Value) -> Result<Run, String> {
    let x = Tensor::scalar(number(input, "input")?);
    match function {
        "square" => {
            let f = jit(square);
            Ok(Box::new(move || Ok(Output::from(f(&x)))))
        }
        "double" => {
            let double = grad(square);
            Ok(Box::new(move || Ok(Output::from(double(&x)))))
        }
        _ => Err(unknown_function("hello", function, &["square", "double"])),
    }
}
