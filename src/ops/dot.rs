//! Contraction: `dot_general`.

use crate::TensorType;

/// Type rule of dot_general: output axes are batch, lhs free, rhs free.
pub fn dot_general_type(
    lc: &[usize],
    rc: &[usize],
    lb: &[usize],
    rb: &[usize],
    lhs: &TensorType,
    rhs: &TensorType,
) -> Result<TensorType, String> {
    if lhs.dtype != rhs.dtype || lhs.dtype == crate::DType::Bool {
        return Err(format!(
            "operands must share a numeric dtype: {lhs} vs {rhs}"
        ));
    }
    if lc.len() != rc.len() || lb.len() != rb.len() {
        return Err(format!(
            "contracting {lc:?}/{rc:?} and batch {lb:?}/{rb:?} axes must pair up"
        ));
    }
    let distinct = |axes: Vec<usize>, rank: usize| {
        let mut seen = vec![false; rank];
        axes.iter()
            .all(|&a| a < rank && !std::mem::replace(&mut seen[a], true))
    };
    if !distinct([lc, lb].concat(), lhs.rank()) || !distinct([rc, rb].concat(), rhs.rank()) {
        return Err(format!("axes out of range or repeated for {lhs} · {rhs}"));
    }
    for (&a, &b) in lc.iter().zip(rc) {
        if lhs.shape[a] != rhs.shape[b] {
            return Err(format!(
                "contracting dimensions differ: {:?} @ {:?}",
                lhs.shape, rhs.shape
            ));
        }
    }
    for (&a, &b) in lb.iter().zip(rb) {
        if lhs.shape[a] != rhs.shape[b] {
            return Err(format!(
                "batch dimensions differ: {:?} @ {:?}",
                lhs.shape, rhs.shape
            ));
        }
    }
    let mut shape: Vec<usize> = lb.iter().map(|&a| lhs.shape[a]).collect();
    shape.extend(
        (0..lhs.rank())
            .filter(|a| !lc.contains(a) && !lb.contains(a))
            .map(|a| lhs.shape[a]),
    );
    shape.extend(
        (0..rhs.rank())
            .filter(|a| !rc.contains(a) && !rb.contains(a))
            .map(|a| rhs.shape[a]),
    );
    Ok(TensorType::new(lhs.dtype, shape))
}
