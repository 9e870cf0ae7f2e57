//! Reading eval inputs from JSON into tensors, with errors that name the field.
//!
//! Every function returns `Err(message)` for input that does not have the
//! expected shape; the protocol turns it into an error response.

use cotangent::Tensor;
use serde_json::Value;

/// A field of a JSON object, or an error naming the missing field.
///
/// ```
/// use gradbench_tool::input::field;
/// let v = serde_json::json!({"x": 1});
/// assert!(field(&v, "x").is_ok());
/// assert_eq!(field(&v, "y").unwrap_err(), "missing field `y`");
/// ```
pub fn field<'a>(v: &'a Value, name: &str) -> Result<&'a Value, String> {
    match v {
        Value::Object(map) => map.get(name).ok_or_else(|| format!("missing field `{name}`")),
        _ => Err(format!("expected an object with field `{name}`, got {}", kind(v))),
    }
}

/// A short name for the JSON type of `v`, for error messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `v` as a number.
pub fn number(v: &Value, what: &str) -> Result<f64, String> {
    v.as_f64().ok_or_else(|| format!("`{what}`: expected a number, got {}", kind(v)))
}

/// The number in field `name`.
pub fn f64_field(v: &Value, name: &str) -> Result<f64, String> {
    number(field(v, name)?, name)
}

/// The non-negative integer in field `name`.
pub fn usize_field(v: &Value, name: &str) -> Result<usize, String> {
    let x = field(v, name)?;
    x.as_u64().map(|n| n as usize).ok_or_else(|| format!("`{name}`: expected a non-negative integer, got {x}"))
}

/// The numbers of a JSON array.
fn numbers(v: &Value, what: &str) -> Result<Vec<f64>, String> {
    let items = v.as_array().ok_or_else(|| format!("`{what}`: expected an array of numbers, got {}", kind(v)))?;
    items.iter().map(|x| number(x, what)).collect::<Result<Vec<f64>, String>>()
}

/// Field `name` as a 1-d `f64` tensor (a JSON array of numbers).
///
/// ```
/// use gradbench_tool::input::vector;
/// let v = serde_json::json!({"x": [1.0, 2.5]});
/// assert_eq!(vector(&v, "x").unwrap().to_vec::<f64>(), vec![1.0, 2.5]);
/// ```
pub fn vector(v: &Value, name: &str) -> Result<Tensor, String> {
    let xs = numbers(field(v, name)?, name)?;
    let n = xs.len();
    Ok(Tensor::from_vec(xs, &[n]))
}

/// Field `name` as a 2-d `f64` tensor (a JSON array of equally long arrays of numbers).
///
/// ```
/// use gradbench_tool::input::matrix;
/// let v = serde_json::json!({"m": [[1, 2, 3], [4, 5, 6]]});
/// assert_eq!(matrix(&v, "m").unwrap().shape(), vec![2, 3]);
/// assert!(matrix(&serde_json::json!({"m": [[1], [2, 3]]}), "m").is_err());
/// ```
pub fn matrix(v: &Value, name: &str) -> Result<Tensor, String> {
    let x = field(v, name)?;
    let rows = x.as_array().ok_or_else(|| format!("`{name}`: expected an array of arrays, got {}", kind(x)))?;
    let mut data = Vec::new();
    let mut cols = None;
    for row in rows {
        let r = numbers(row, name)?;
        match cols {
            None => cols = Some(r.len()),
            Some(c) if c != r.len() => {
                return Err(format!("`{name}`: rows have different lengths ({c} and {})", r.len()))
            }
            Some(_) => {}
        }
        data.extend(r);
    }
    Ok(Tensor::from_vec(data, &[rows.len(), cols.unwrap_or(0)]))
}

/// Checks that `t` has exactly `shape`, naming the field otherwise.
pub fn expect_shape(t: &Tensor, name: &str, shape: &[usize]) -> Result<(), String> {
    if t.shape() == shape {
        Ok(())
    } else {
        Err(format!("`{name}`: expected shape {shape:?}, got {:?}", t.shape()))
    }
}
