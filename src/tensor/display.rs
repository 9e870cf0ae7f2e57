//! Numpy-like printing of tensors, and short summaries of constants for graph dumps.
//!
//! The layout follows numpy's `str()` with default print options: floats show at most 8
//! fraction digits (fewer when fewer identify the value), switch to scientific notation
//! when the magnitudes ask for it, align on the decimal point, lines wrap at 75
//! characters, and arrays of more than 1000 elements show only 3 items at each edge.
//! A 0-d tensor prints like a number (`1.0`, `True`).

use crate::array::{Array, Data};
use crate::tensor::Repr;
use crate::Tensor;
use std::fmt;

/// Maximum fraction digits of a float (numpy's `precision`).
const PRECISION: usize = 8;
/// Line width (numpy's `linewidth`).
const LINE_WIDTH: usize = 75;
/// Above this many elements, only the first and last `EDGE` entries of each axis are shown.
const SUMMARIZE_OVER: usize = 1000;
const EDGE: usize = 3;

/// A float element in its own precision, so that its shortest digits are those of its type.
#[derive(Clone, Copy)]
enum Float {
    F32(f32),
    F64(f64),
}

impl Float {
    fn value(self) -> f64 {
        match self {
            Float::F32(x) => x as f64,
            Float::F64(x) => x,
        }
    }

    /// Positional digits: the shortest that round-trip, or exactly `prec` fraction digits.
    fn positional(self, prec: Option<usize>) -> String {
        match (self, prec) {
            (Float::F32(x), None) => format!("{x}"),
            (Float::F64(x), None) => format!("{x}"),
            (Float::F32(x), Some(p)) => format!("{x:.p$}"),
            (Float::F64(x), Some(p)) => format!("{x:.p$}"),
        }
    }

    /// Scientific mantissa and exponent: the shortest digits, or exactly `prec` fraction digits.
    fn scientific(self, prec: Option<usize>) -> (String, i32) {
        let s = match (self, prec) {
            (Float::F32(x), None) => format!("{x:e}"),
            (Float::F64(x), None) => format!("{x:e}"),
            (Float::F32(x), Some(p)) => format!("{x:.p$e}"),
            (Float::F64(x), Some(p)) => format!("{x:.p$e}"),
        };
        let (m, e) = s.split_once('e').expect("`{:e}` has an exponent");
        (m.to_string(), e.parse().expect("integer exponent"))
    }
}

fn fraction_digits(s: &str) -> usize {
    s.find('.').map_or(0, |p| s.len() - p - 1)
}

/// `1.50000000` -> `1.5`, `2.000` -> `2.`, `3` -> `3.`: drops trailing fraction zeros, keeps the point.
fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').to_string()
    } else {
        format!("{s}.")
    }
}

/// numpy's positional float: unique digits, at most [`PRECISION`] of them after the point.
fn positional(x: Float) -> String {
    let s = x.positional(None);
    if fraction_digits(&s) > PRECISION {
        trim_zeros(&x.positional(Some(PRECISION)))
    } else {
        trim_zeros(&s)
    }
}

/// numpy's scientific float: mantissa with unique digits (at most [`PRECISION`]) and exponent.
fn scientific(x: Float) -> (String, i32) {
    let (m, e) = x.scientific(None);
    if fraction_digits(&m) > PRECISION {
        let (m, e) = x.scientific(Some(PRECISION));
        (trim_zeros(&m), e)
    } else {
        (trim_zeros(&m), e)
    }
}

fn non_finite(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v > 0.0 {
        "inf".into()
    } else {
        "-inf".into()
    }
}

/// Formats floats the way numpy formats one array of them: a shared notation, precision and width.
fn format_floats(xs: &[Float]) -> Vec<String> {
    let finite: Vec<f64> = xs.iter().map(|x| x.value()).filter(|v| v.is_finite()).collect();
    let magnitudes: Vec<f64> = finite.iter().filter(|v| **v != 0.0).map(|v| v.abs()).collect();
    let exp_format = !magnitudes.is_empty() && {
        let max = magnitudes.iter().cloned().fold(0.0, f64::max);
        let min = magnitudes.iter().cloned().fold(f64::INFINITY, f64::min);
        max >= 1e8 || min < 1e-4 || max / min > 1e3
    };
    // The finite elements' text, without padding.
    let texts: Vec<Option<String>> = if exp_format {
        let parts: Vec<Option<(String, i32)>> =
            xs.iter().map(|x| x.value().is_finite().then(|| scientific(*x))).collect();
        let prec = parts.iter().flatten().map(|(m, _)| fraction_digits(m)).max().unwrap_or(0);
        let exp_digits =
            parts.iter().flatten().map(|(_, e)| e.unsigned_abs().to_string().len()).max().unwrap_or(0).max(2);
        parts
            .into_iter()
            .map(|p| {
                p.map(|(m, e)| {
                    let zeros = "0".repeat(prec - fraction_digits(&m));
                    let sign = if e < 0 { '-' } else { '+' };
                    format!("{m}{zeros}e{sign}{:0>exp_digits$}", e.unsigned_abs())
                })
            })
            .collect()
    } else {
        xs.iter().map(|x| x.value().is_finite().then(|| positional(*x))).collect()
    };
    // Align finite values on the point; right-align nan and inf to the full width.
    let split = |s: &str| {
        let p = s.find('.').expect("finite floats have a point");
        (s[..p].len(), s[p..].len())
    };
    let int_w = texts.iter().flatten().map(|s| split(s).0).max().unwrap_or(0);
    let rest_w = texts.iter().flatten().map(|s| split(s).1).max().unwrap_or(0);
    let odd_w = xs.iter().filter(|x| !x.value().is_finite()).map(|x| non_finite(x.value()).len()).max().unwrap_or(0);
    let width = (int_w + rest_w).max(odd_w);
    let int_w = width - rest_w;
    xs.iter()
        .zip(texts)
        .map(|(x, t)| match t {
            Some(s) => {
                let p = s.find('.').expect("point");
                format!("{:>int_w$}{:<rest_w$}", &s[..p], &s[p..])
            }
            None => format!("{:>width$}", non_finite(x.value())),
        })
        .collect()
}

/// Formats the elements at `idx` of `data` with a shared layout (numpy's per-array format).
fn format_elements(data: &Data, idx: &[usize]) -> Vec<String> {
    let plain: Vec<String> = match data {
        Data::F32(v) => return format_floats(&idx.iter().map(|&i| Float::F32(v[i])).collect::<Vec<_>>()),
        Data::F64(v) => return format_floats(&idx.iter().map(|&i| Float::F64(v[i])).collect::<Vec<_>>()),
        Data::I32(v) => idx.iter().map(|&i| v[i].to_string()).collect(),
        Data::I64(v) => idx.iter().map(|&i| v[i].to_string()).collect(),
        Data::Bool(v) => idx.iter().map(|&i| if v[i] { "True" } else { "False" }.to_string()).collect(),
    };
    let w = plain.iter().map(|s| s.len()).max().unwrap_or(0);
    plain.into_iter().map(|s| format!("{s:>w$}")).collect()
}

/// A 0-d value the way numpy prints a scalar: `1.0`, `2.5`, `1e-05`, `3`, `True`.
fn format_scalar(data: &Data) -> String {
    let x = match data {
        Data::F32(v) => Float::F32(v[0]),
        Data::F64(v) => Float::F64(v[0]),
        Data::I32(v) => return v[0].to_string(),
        Data::I64(v) => return v[0].to_string(),
        Data::Bool(v) => return if v[0] { "True" } else { "False" }.to_string(),
    };
    let v = x.value();
    if !v.is_finite() {
        return non_finite(v);
    }
    if v == 0.0 || (1e-4..1e16).contains(&v.abs()) {
        let s = x.positional(None);
        if s.contains('.') {
            s
        } else {
            s + ".0"
        }
    } else {
        let (m, e) = x.scientific(None);
        let sign = if e < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", e.unsigned_abs())
    }
}

/// The indices shown along an axis of extent `n` (`None` marks the elision).
fn shown(n: usize, summarize: bool) -> Vec<Option<usize>> {
    if summarize && n > 2 * EDGE {
        (0..EDGE).map(Some).chain([None]).chain((n - EDGE..n).map(Some)).collect()
    } else {
        (0..n).map(Some).collect()
    }
}

/// Flat indices of the shown elements, in printing order.
fn shown_indices(shape: &[usize], summarize: bool, axis: usize, offset: usize, out: &mut Vec<usize>) {
    if axis == shape.len() {
        out.push(offset);
        return;
    }
    let stride: usize = shape[axis + 1..].iter().product();
    for i in shown(shape[axis], summarize).into_iter().flatten() {
        shown_indices(shape, summarize, axis + 1, offset + i * stride, out);
    }
}

/// Appends `word` to `line`, first moving `line` into `s` if the word would pass `width`.
fn extend_line(s: &mut String, line: &mut String, word: &str, width: usize, prefix: &str) {
    // Wrapping a line that holds only the indent would not help.
    if line.len() + word.len() > width && line.len() > prefix.len() {
        s.push_str(line.trim_end());
        s.push('\n');
        *line = prefix.to_string();
    }
    line.push_str(word);
}

/// numpy's `_formatArray`: nested brackets, hanging indents, wrapping at the line width.
fn render(
    shape: &[usize],
    axis: usize,
    words: &mut dyn Iterator<Item = String>,
    summarize: bool,
    hanging: &str,
    width: usize,
) -> String {
    let left = shape.len() - axis;
    let items = shown(shape[axis], summarize);
    let next_hanging = format!("{hanging} ");
    let mut s = String::new();
    if left == 1 {
        // Leave room for the closing bracket.
        let elem_width = width - 1;
        let mut line = hanging.to_string();
        for (k, item) in items.iter().enumerate() {
            let word = match item {
                Some(_) => words.next().expect("one word per shown element"),
                None => "...".to_string(),
            };
            extend_line(&mut s, &mut line, &word, elem_width, hanging);
            if k + 1 < items.len() {
                line.push(' ');
            }
        }
        s.push_str(&line);
    } else {
        let sep = "\n".repeat(left - 1);
        for (k, item) in items.iter().enumerate() {
            s.push_str(hanging);
            match item {
                Some(_) => s.push_str(&render(shape, axis + 1, words, summarize, &next_hanging, width - 1)),
                None => s.push_str("..."),
            }
            if k + 1 < items.len() {
                s.push_str(&sep);
            }
        }
    }
    format!("[{}]", &s[hanging.len()..])
}

/// Numpy-style text of an array, e.g. `[[1.  2.5]\n [3.  4. ]]`.
pub(crate) fn format_array(a: &Array) -> String {
    if a.shape.is_empty() {
        return format_scalar(&a.data);
    }
    if a.numel() == 0 {
        return "[]".into();
    }
    let summarize = a.numel() > SUMMARIZE_OVER;
    let mut idx = Vec::new();
    shown_indices(&a.shape, summarize, 0, 0, &mut idx);
    let mut words = format_elements(&a.data, &idx).into_iter();
    render(&a.shape, 0, &mut words, summarize, " ", LINE_WIDTH)
}

/// A one-line description of a constant for graph dumps: its value when small, else its type.
pub(crate) fn summary(a: &Array) -> String {
    if a.numel() <= 6 {
        format_array(a).replace('\n', "")
    } else {
        a.ty().to_string()
    }
}

impl fmt::Display for Tensor {
    /// ```
    /// use cotangent::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 2.5, 3.0, 4.0], &[2, 2]);
    /// assert_eq!(x.to_string(), "[[1.  2.5]\n [3.  4. ]]");
    /// assert_eq!(Tensor::scalar(1.0).to_string(), "1.0");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Concrete(a) => f.write_str(&format_array(a)),
            Repr::Traced(t) => write!(f, "Traced<{}>", t.ty),
        }
    }
}
