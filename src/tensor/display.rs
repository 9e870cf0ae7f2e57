//! Numpy-like printing of tensors, and short summaries of constants for graph dumps.

use crate::array::{Array, Data};
use crate::tensor::Repr;
use crate::Tensor;
use std::fmt;

/// Formats one element the way numpy does: floats always show a point (`1.`, `2.5`).
fn element(data: &Data, i: usize) -> String {
    match data {
        Data::F32(v) => float(v[i] as f64, format!("{}", v[i])),
        Data::F64(v) => float(v[i], format!("{}", v[i])),
        Data::I32(v) => v[i].to_string(),
        Data::I64(v) => v[i].to_string(),
        Data::Bool(v) => if v[i] { "True" } else { "False" }.to_string(),
    }
}

fn float(x: f64, s: String) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.into()
    } else if s.contains('.') || s.contains('e') {
        s
    } else {
        s + "."
    }
}

/// Above this many elements, only the first and last 3 entries of each axis are shown.
const SUMMARIZE_OVER: usize = 1000;
const EDGE: usize = 3;

/// The indices shown along an axis of extent `n` (`None` marks the elision).
fn shown(n: usize, summarize: bool) -> Vec<Option<usize>> {
    if summarize && n > 2 * EDGE {
        (0..EDGE)
            .map(Some)
            .chain([None])
            .chain((n - EDGE..n).map(Some))
            .collect()
    } else {
        (0..n).map(Some).collect()
    }
}

/// Column layout: floats align on the decimal point (`int` and `frac` widths), others right-align.
#[derive(Clone, Copy)]
struct Layout {
    int: usize,
    frac: usize,
}

impl Layout {
    fn of(a: &Array) -> Layout {
        let mut l = Layout { int: 0, frac: 0 };
        for i in 0..a.numel() {
            let e = element(&a.data, i);
            let (ip, fp) = split_point(&e);
            l.int = l.int.max(ip.len());
            l.frac = l.frac.max(fp.len());
        }
        l
    }

    fn pad(self, e: &str) -> String {
        let (ip, fp) = split_point(e);
        format!("{:>iw$}{:<fw$}", ip, fp, iw = self.int, fw = self.frac)
    }
}

/// Splits `12.5` into (`12`, `.5`); strings without a plain decimal point have no fraction part.
fn split_point(e: &str) -> (&str, &str) {
    match e.find('.') {
        Some(p) if !e.contains('e') => (&e[..p], &e[p..]),
        _ => (e, ""),
    }
}

fn render(a: &Array, width: Layout, summarize: bool, axis: usize, offset: usize, out: &mut String) {
    let shape = &a.shape;
    if axis == shape.len() {
        out.push_str(&width.pad(&element(&a.data, offset)));
        return;
    }
    let stride: usize = shape[axis + 1..].iter().product();
    out.push('[');
    let items = shown(shape[axis], summarize);
    for (k, item) in items.iter().enumerate() {
        if k > 0 {
            if axis + 1 == shape.len() {
                out.push(' ');
            } else {
                out.push_str(&"\n".repeat(shape.len() - axis - 1));
                out.push_str(&" ".repeat(axis + 1));
            }
        }
        match item {
            Some(i) => render(a, width, summarize, axis + 1, offset + i * stride, out),
            None => out.push_str("..."),
        }
    }
    out.push(']');
}

/// Numpy-style text of an array, e.g. `[[1. 2.]\n [3. 4.]]`.
pub fn format_array(a: &Array) -> String {
    let summarize = a.numel() > SUMMARIZE_OVER;
    let width = Layout::of(a);
    let mut s = String::new();
    render(a, width, summarize, 0, 0, &mut s);
    s
}

/// A one-line description of a constant for graph dumps: its value when small, else its type.
pub fn summary(a: &Array) -> String {
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
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Concrete(a) => f.write_str(&format_array(a)),
            Repr::Traced(t) => write!(f, "Traced<{}>", t.ty),
        }
    }
}
