//! The argsort kernel: a stable sort of each lane along one axis.

use crate::array::{Array, Data};
use crate::shape::strides;
use std::cmp::Ordering;

/// Total order with NaN above every number (and equal to itself).
fn cmp_nan_last<T: PartialOrd>(a: &T, b: &T) -> Ordering {
    match a.partial_cmp(b) {
        Some(o) => o,
        #[allow(clippy::eq_op)]
        None => {
            let a_nan = a != a;
            let b_nan = b != b;
            a_nan.cmp(&b_nan)
        }
    }
}

fn lanes<T: PartialOrd + Copy>(v: &[T], shape: &[usize], axis: usize, desc: bool) -> Vec<i64> {
    let n = shape[axis];
    let stride = strides(shape)[axis];
    let outer: usize = shape[..axis].iter().product();
    let mut out = vec![0i64; v.len()];
    let mut idx: Vec<usize> = Vec::with_capacity(n);
    for o in 0..outer {
        for inner in 0..stride {
            let base = o * n * stride + inner;
            idx.clear();
            idx.extend(0..n);
            let key = |i: usize| v[base + i * stride];
            if desc {
                idx.sort_by(|&a, &b| cmp_nan_last(&key(b), &key(a)));
            } else {
                idx.sort_by(|&a, &b| cmp_nan_last(&key(a), &key(b)));
            }
            for (k, &i) in idx.iter().enumerate() {
                out[base + k * stride] = i as i64;
            }
        }
    }
    out
}

/// Indices that sort `x` along `axis` (stable).
pub(crate) fn argsort(x: &Array, axis: usize, descending: bool) -> Array {
    let s = &x.shape;
    let out = match &x.data {
        Data::F32(v) => lanes(v, s, axis, descending),
        Data::F64(v) => lanes(v, s, axis, descending),
        Data::I32(v) => lanes(v, s, axis, descending),
        Data::I64(v) => lanes(v, s, axis, descending),
        Data::Bool(v) => lanes(v, s, axis, descending),
    };
    Array::new(s.clone(), Data::I64(out))
}
