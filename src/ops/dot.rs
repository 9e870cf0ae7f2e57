//! Contraction: `dot_general`.

use super::Prim;
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
        return Err(format!("operands must share a numeric dtype: {lhs} vs {rhs}"));
    }
    if lc.len() != rc.len() || lb.len() != rb.len() {
        return Err(format!("contracting {lc:?}/{rc:?} and batch {lb:?}/{rb:?} axes must pair up"));
    }
    // (Without allocating: this rule runs for every product of every graph validated.)
    let distinct = |c: &[usize], b: &[usize], rank: usize| {
        let all = || c.iter().chain(b);
        if rank <= 128 {
            let mut seen = 0u128;
            all().all(|&a| {
                let fresh = a < rank && seen & 1 << a == 0;
                seen |= 1u128.checked_shl(a as u32).unwrap_or(0);
                fresh
            })
        } else {
            let mut seen = vec![false; rank];
            all().all(|&a| a < rank && !std::mem::replace(&mut seen[a], true))
        }
    };
    if !distinct(lc, lb, lhs.rank()) || !distinct(rc, rb, rhs.rank()) {
        return Err(format!("axes out of range or repeated for {lhs} · {rhs}"));
    }
    for (&a, &b) in lc.iter().zip(rc) {
        if lhs.shape[a] != rhs.shape[b] {
            return Err(format!("contracting dimensions differ: {:?} @ {:?}", lhs.shape, rhs.shape));
        }
    }
    for (&a, &b) in lb.iter().zip(rb) {
        if lhs.shape[a] != rhs.shape[b] {
            return Err(format!("batch dimensions differ: {:?} @ {:?}", lhs.shape, rhs.shape));
        }
    }
    let mut shape: Vec<usize> = Vec::with_capacity(lhs.rank() + rhs.rank() - lc.len() - rc.len() - rb.len());
    shape.extend(lb.iter().map(|&a| lhs.shape[a]));
    shape.extend((0..lhs.rank()).filter(|a| !lc.contains(a) && !lb.contains(a)).map(|a| lhs.shape[a]));
    shape.extend((0..rhs.rank()).filter(|a| !rc.contains(a) && !rb.contains(a)).map(|a| rhs.shape[a]));
    Ok(TensorType::new(lhs.dtype, shape))
}

// ---------------------------------------------------------------------------
// Derivative and batching rules. dot_general is bilinear: its jvp (in
// rules.rs) is the sum of the two one-sided products, and each side transposes
// into another dot_general followed by an axis permutation (JAX's rule).
// ---------------------------------------------------------------------------

use super::rules::LinArg;
use crate::trace::bind;
use crate::Tensor;

/// Consecutive ranges with the lengths of the given lists: `[0..a), [a..a+b), ...`.
fn ranges_like(lens: &[usize]) -> Vec<Vec<usize>> {
    let mut start = 0;
    lens.iter()
        .map(|&n| {
            let r = (start..start + n).collect();
            start += n;
            r
        })
        .collect()
}

fn remaining(rank: usize, a: &[usize], b: &[usize]) -> Vec<usize> {
    (0..rank).filter(|i| !a.contains(i) && !b.contains(i)).collect()
}

fn argsort(v: &[usize]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by_key(|&i| v[i]);
    idx
}

/// Cotangent of the lhs `x` of `dot_general(x, y)`; `swap` when the output lists y's free axes first.
fn transpose_lhs(
    ct: &Tensor,
    x_rank: usize,
    y: &Tensor,
    (xc, yc): (&[usize], &[usize]),
    (xb, yb): (&[usize], &[usize]),
    swap: bool,
) -> Tensor {
    let x_kept = remaining(x_rank, xc, xb);
    let y_kept = remaining(y.rank(), yc, yb);
    let (ans_batch, ans_y) = if swap {
        let r = ranges_like(&[xb.len(), y_kept.len(), x_kept.len()]);
        (r[0].clone(), r[1].clone())
    } else {
        let r = ranges_like(&[xb.len(), x_kept.len(), y_kept.len()]);
        (r[0].clone(), r[2].clone())
    };
    let prim =
        Prim::DotGeneral { lhs_contract: ans_y, rhs_contract: y_kept, lhs_batch: ans_batch, rhs_batch: yb.to_vec() };
    let xc_sorted_by_y: Vec<usize> = argsort(yc).iter().map(|&i| xc[i]).collect();
    let order: Vec<usize> = xb.iter().chain(&x_kept).chain(&xc_sorted_by_y).copied().collect();
    let perm = argsort(&order);
    bind(Prim::Transpose { perm }, &[&bind(prim, &[ct, y])])
}

pub(crate) fn transpose(
    ct: &Tensor,
    args: &[LinArg],
    (lc, rc): (&[usize], &[usize]),
    (lb, rb): (&[usize], &[usize]),
) -> Vec<Option<Tensor>> {
    match (&args[0], &args[1]) {
        (LinArg::Linear(x), LinArg::Value(y)) => {
            vec![Some(transpose_lhs(ct, x.rank(), y, (lc, rc), (lb, rb), false)), None]
        }
        (LinArg::Value(x), LinArg::Linear(y)) => {
            vec![None, Some(transpose_lhs(ct, y.rank(), x, (rc, lc), (rb, lb), true))]
        }
        _ => panic!("transpose: dot_general must have exactly one linear operand"),
    }
}

pub(crate) fn batch(
    lhs: &Tensor,
    rhs: &Tensor,
    batched: &[bool],
    (lc, rc): (&[usize], &[usize]),
    (lb, rb): (&[usize], &[usize]),
) -> Tensor {
    use super::rules::shift;
    let with0 = |v: &[usize]| -> Vec<usize> { std::iter::once(0).chain(shift(v)).collect() };
    match (batched[0], batched[1]) {
        (true, true) => bind(
            Prim::DotGeneral {
                lhs_contract: shift(lc),
                rhs_contract: shift(rc),
                lhs_batch: with0(lb),
                rhs_batch: with0(rb),
            },
            &[lhs, rhs],
        ),
        (true, false) => {
            // The batch axis is lhs's first free axis: it lands right after the batch axes.
            let out = bind(
                Prim::DotGeneral {
                    lhs_contract: shift(lc),
                    rhs_contract: rc.to_vec(),
                    lhs_batch: shift(lb),
                    rhs_batch: rb.to_vec(),
                },
                &[lhs, rhs],
            );
            out.moveaxis(lb.len() as isize, 0)
        }
        (false, true) => {
            // It is rhs's first free axis: after the batch axes and lhs's free axes.
            let out = bind(
                Prim::DotGeneral {
                    lhs_contract: lc.to_vec(),
                    rhs_contract: shift(rc),
                    lhs_batch: lb.to_vec(),
                    rhs_batch: shift(rb),
                },
                &[lhs, rhs],
            );
            let lhs_free = lhs.rank() - lc.len() - lb.len();
            out.moveaxis((lb.len() + lhs_free) as isize, 0)
        }
        (false, false) => unreachable!("batch rule called without batched operands"),
    }
}

#[cfg(test)]
mod type_tests {
    use super::dot_general_type;
    use crate::{DType, TensorType};

    /// The type rule rejects repeated and out-of-range axes (checked with a bit set) and
    /// gives batch, then free lhs, then free rhs axes.
    #[test]
    fn dot_general_type_checks_axes() {
        let t = |s: &[usize]| TensorType::new(DType::F64, s.to_vec());
        let (a, b) = (t(&[2, 3, 4]), t(&[2, 4, 5]));
        assert_eq!(dot_general_type(&[2], &[1], &[0], &[0], &a, &b), Ok(t(&[2, 3, 5])));
        assert_eq!(dot_general_type(&[2], &[1], &[], &[], &a, &b), Ok(t(&[2, 3, 2, 5])));
        for (lc, rc, lb, rb) in [
            (&[2usize][..], &[1usize][..], &[2usize][..], &[0usize][..]), // lhs axis 2 twice
            (&[2], &[1], &[0], &[1]),                                     // rhs axis 1 twice
            (&[3], &[1], &[], &[]),                                       // out of range
            (&[2], &[200], &[], &[]),                                     // far out of range
        ] {
            let e = dot_general_type(lc, rc, lb, rb, &a, &b).unwrap_err();
            assert!(e.contains("out of range or repeated"), "{lc:?} {rc:?} {lb:?} {rb:?}: {e}");
        }
        // Ranks above the bit set's 128 axes take the general path.
        let big = t(&[1; 130]);
        assert!(dot_general_type(&[129], &[129], &[], &[], &big, &big).is_ok());
        assert!(dot_general_type(&[129, 129], &[128, 129], &[], &[], &big, &big).is_err());
    }
}
