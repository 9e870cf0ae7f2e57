//! Contractions built on `dot_general`: matmul, dot, outer, tensordot, einsum.

use crate::ops::Prim;
use crate::shape::broadcast_shapes;
use crate::trace::bind;
use crate::Tensor;

/// `dot_general` with explicit contracting and batch axes.
/// Output axes: batch, then `lhs`'s free axes, then `rhs`'s free axes.
///
/// ```
/// use cotangent::{dot_general, Tensor};
/// let a = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
/// let b = Tensor::from_vec(vec![1.0, 1.0], &[2]);
/// assert_eq!(dot_general(&a, &b, (&[1], &[0]), (&[], &[])).to_vec::<f64>(), vec![3.0, 7.0]);
/// ```
#[track_caller]
pub fn dot_general(lhs: &Tensor, rhs: &Tensor, contract: (&[usize], &[usize]), batch: (&[usize], &[usize])) -> Tensor {
    bind(
        Prim::DotGeneral {
            lhs_contract: contract.0.to_vec(),
            rhs_contract: contract.1.to_vec(),
            lhs_batch: batch.0.to_vec(),
            rhs_batch: batch.1.to_vec(),
        },
        &[lhs, rhs],
    )
}

impl Tensor {
    /// Matrix product with numpy semantics: 1-D operands are promoted and the added axis
    /// removed, leading (batch) axes broadcast.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let a = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    /// let b = Tensor::from_vec(vec![5.0, 6.0], &[2]);
    /// assert_eq!(a.matmul(&b).to_vec::<f64>(), vec![17.0, 39.0]);
    /// ```
    #[track_caller]
    pub fn matmul(&self, other: &Tensor) -> Tensor {
        let (sa, sb) = (self.shape(), other.shape());
        if sa.is_empty() || sb.is_empty() {
            panic!("matmul: operands must be at least 1-d, got {sa:?} @ {sb:?}");
        }
        let a = if sa.len() == 1 { self.expand_dims(0) } else { self.clone() };
        let b = if sb.len() == 1 { other.expand_dims(1) } else { other.clone() };
        let (pa, pb) = (a.shape(), b.shape());
        let (ra, rb) = (pa.len(), pb.len());
        if pa[ra - 1] != pb[rb - 2] {
            panic!("matmul: contracting dimensions differ: {sa:?} @ {sb:?}");
        }
        let batch = broadcast_shapes(&pa[..ra - 2], &pb[..rb - 2])
            .unwrap_or_else(|| panic!("matmul: batch dimensions do not broadcast: {sa:?} @ {sb:?}"));
        let nb = batch.len();
        let a = a.broadcast_to(&[batch.clone(), pa[ra - 2..].to_vec()].concat());
        let b = b.broadcast_to(&[batch.clone(), pb[rb - 2..].to_vec()].concat());
        let bd: Vec<usize> = (0..nb).collect();
        let out = dot_general(&a, &b, (&[nb + 1], &[nb]), (&bd, &bd));
        match (sa.len(), sb.len()) {
            (1, 1) => out.reshape_to(&[]),
            (1, _) => out.squeeze(&[-2]),
            (_, 1) => out.squeeze(&[-1]),
            _ => out,
        }
    }

    /// Inner product of two vectors; for matrices, the same as [`Tensor::matmul`].
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let a = Tensor::from_vec(vec![1.0, 2.0], &[2]);
    /// assert_eq!(a.dot(&a).item::<f64>(), 5.0);
    /// ```
    #[track_caller]
    pub fn dot(&self, other: &Tensor) -> Tensor {
        self.matmul(other)
    }

    /// Outer product of two vectors.
    ///
    /// ```
    /// use cotangent::Tensor;
    /// let a = Tensor::from_vec(vec![1.0, 2.0], &[2]);
    /// assert_eq!(a.outer(&a).to_vec::<f64>(), vec![1.0, 2.0, 2.0, 4.0]);
    /// ```
    #[track_caller]
    pub fn outer(&self, other: &Tensor) -> Tensor {
        dot_general(&self.flatten(), &other.flatten(), (&[], &[]), (&[], &[]))
    }

    /// Contracts the listed axes of `self` with those of `other` (negative allowed);
    /// output axes are `self`'s free axes then `other`'s.
    ///
    /// ```
    /// use cotangent::{DType, Tensor};
    /// let a = Tensor::ones(&[2, 3, 4], DType::F64);
    /// let b = Tensor::ones(&[4, 3, 5], DType::F64);
    /// assert_eq!(a.tensordot(&b, &[1, 2], &[1, 0]).shape(), vec![2, 5]);
    /// ```
    #[track_caller]
    pub fn tensordot(&self, other: &Tensor, axes_self: &[isize], axes_other: &[isize]) -> Tensor {
        let l: Vec<usize> = axes_self.iter().map(|&a| super::structure::axis_of("tensordot", a, self.rank())).collect();
        let r: Vec<usize> =
            axes_other.iter().map(|&a| super::structure::axis_of("tensordot", a, other.rank())).collect();
        dot_general(self, other, (&l, &r), (&[], &[]))
    }
}

/// Einstein summation in explicit form (`"ij,jk->ik"`), for one or more operands.
/// Letters appearing in several operands and in the output are batch axes; letters
/// absent from the output are summed. A letter repeated within one operand takes the diagonal.
///
/// ```
/// use cotangent::{einsum, Tensor};
/// let a = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
/// let b = Tensor::from_vec(vec![1.0, 0.0, 0.0, 1.0], &[2, 2]);
/// assert_eq!(einsum("ij,jk->ik", &[&a, &b]).to_vec::<f64>(), vec![1.0, 2.0, 3.0, 4.0]);
/// assert_eq!(einsum("ij->ji", &[&a]).to_vec::<f64>(), vec![1.0, 3.0, 2.0, 4.0]);
/// assert_eq!(einsum("ii->", &[&b]).item::<f64>(), 2.0);
/// ```
#[track_caller]
pub fn einsum(spec: &str, operands: &[&Tensor]) -> Tensor {
    let spec: String = spec.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, out) = spec
        .split_once("->")
        .unwrap_or_else(|| panic!("einsum: only the explicit form with '->' is supported, got {spec:?}"));
    let inputs: Vec<Vec<char>> = lhs.split(',').map(|s| s.chars().collect()).collect();
    let out: Vec<char> = out.chars().collect();
    if inputs.len() != operands.len() {
        panic!("einsum: {spec:?} names {} operands, got {}", inputs.len(), operands.len());
    }
    let mut terms: Vec<(Vec<char>, Tensor)> = Vec::new();
    for (labels, t) in inputs.iter().zip(operands) {
        if labels.len() != t.rank() {
            panic!("einsum: operand {labels:?} of {spec:?} has rank {}, got {}", labels.len(), t.ty());
        }
        if labels.iter().any(|c| !c.is_ascii_alphabetic()) {
            panic!("einsum: labels must be letters, got {labels:?}");
        }
        terms.push(diagonalize(labels, t));
    }
    for c in &out {
        if !inputs.iter().any(|l| l.contains(c)) {
            panic!("einsum: output label {c:?} of {spec:?} appears in no operand");
        }
    }
    // Contract left to right, keeping only the labels that are still needed.
    let (mut labels, mut acc) = terms.remove(0);
    for (i, (rl, rt)) in terms.into_iter().enumerate() {
        let later: Vec<char> = inputs[i + 2..].iter().flatten().copied().chain(out.iter().copied()).collect();
        let (l2, t2) = contract_pair(&labels, &acc, &rl, &rt, &later, &spec);
        labels = l2;
        acc = t2;
    }
    // Sum labels absent from the output, then order as requested.
    let sum_axes: Vec<isize> = (0..labels.len()).filter(|&i| !out.contains(&labels[i])).map(|i| i as isize).collect();
    let acc = acc.sum(&sum_axes, false);
    let labels: Vec<char> = labels.into_iter().filter(|c| out.contains(c)).collect();
    let perm: Vec<isize> = out.iter().map(|c| labels.iter().position(|l| l == c).unwrap() as isize).collect();
    acc.permute(&perm)
}

/// Takes the diagonal for a label repeated within one operand (`ii` -> `i`).
#[track_caller]
fn diagonalize(labels: &[char], t: &Tensor) -> (Vec<char>, Tensor) {
    let mut labels = labels.to_vec();
    let mut t = t.clone();
    while let Some((i, j)) = (0..labels.len())
        .flat_map(|i| (i + 1..labels.len()).map(move |j| (i, j)))
        .find(|&(i, j)| labels[i] == labels[j])
    {
        let shape = t.shape();
        if shape[i] != shape[j] {
            panic!("einsum: label {:?} has extents {} and {}", labels[i], shape[i], shape[j]);
        }
        // Multiply by an identity mask over (i, j) and sum j away.
        let n = shape[i];
        let eye = Tensor::eye(n, t.dtype());
        let mut eshape = vec![1; shape.len()];
        eshape[i] = n;
        eshape[j] = n;
        let mask = eye.reshape_to(&eshape).broadcast_to(&shape);
        t = (&t * &mask).sum(&[j as isize], false);
        labels.remove(j);
    }
    (labels, t)
}

#[track_caller]
fn contract_pair(
    ll: &[char],
    lt: &Tensor,
    rl: &[char],
    rt: &Tensor,
    later: &[char],
    spec: &str,
) -> (Vec<char>, Tensor) {
    let (ls, rs) = (lt.shape(), rt.shape());
    let mut batch = (vec![], vec![]);
    let mut contract = (vec![], vec![]);
    for (i, c) in ll.iter().enumerate() {
        if let Some(j) = rl.iter().position(|x| x == c) {
            if ls[i] != rs[j] {
                panic!("einsum: label {c:?} of {spec:?} has extents {} and {}", ls[i], rs[j]);
            }
            if later.contains(c) {
                batch.0.push(i);
                batch.1.push(j);
            } else {
                contract.0.push(i);
                contract.1.push(j);
            }
        }
    }
    let out = dot_general(lt, rt, (&contract.0, &contract.1), (&batch.0, &batch.1));
    let mut labels: Vec<char> = batch.0.iter().map(|&i| ll[i]).collect();
    labels.extend(
        ll.iter().enumerate().filter(|(i, _)| !batch.0.contains(i) && !contract.0.contains(i)).map(|(_, c)| *c),
    );
    labels.extend(
        rl.iter().enumerate().filter(|(j, _)| !batch.1.contains(j) && !contract.1.contains(j)).map(|(_, c)| *c),
    );
    (labels, out)
}
