//! Stochastic Taylor derivative estimators (STDE, Shi et al., NeurIPS 2024).

use crate::{jet2_collapsed, jet_sparse, random, vmap, DType, Tensor};
use std::collections::BTreeMap;

/// A linear differential operator `Σₜ cₜ ∂^αₜ` on functions of `x ∈ ℝᵈ`: a polynomial in
/// partial derivatives, each term a coefficient and a multiset of axes (`[i, i, j, j]` is
/// `∂⁴/∂xᵢ²∂xⱼ²`).
///
/// Each term is evaluated from **one** jet (the STDE construction): the term's distinct axes
/// `i` with powers `pᵢ` get distinct orders `aᵢ`, chosen so that `Σ pᵢ aᵢ = n` is the only way to
/// write `n` as a sum of the `aᵢ` with non-negative multiplicities; the input series has
/// `x_{aᵢ} = eᵢ` and zeros elsewhere, and then, by Faà di Bruno's formula, the order-`n` output
/// coefficient is exactly `n!/Πᵢ(aᵢ!^{pᵢ} pᵢ!) · ∂^α f` (pure terms `∂ᵏᵢ`: `a = 1`, `n = k`, a
/// k-th directional derivative; `∂ᵢ∂ⱼ`: orders 2 and 3, `n = 5`; `∂²ᵢ∂²ⱼ`: orders 3 and 4,
/// `n = 14`). Terms with the same powers share the construction and are mapped together.
///
/// [`exact`](DiffOperator::exact) sums every term; [`estimate`](DiffOperator::estimate)
/// samples terms without replacement and rescales, which is unbiased, and equals `exact`
/// when as many samples as terms are drawn.
///
/// ```
/// use cotangent::{diffop::DiffOperator, random, Tensor};
/// let x = Tensor::from_vec((1..=10).map(|i| i as f64 / 10.0).collect(), &[10]);
/// let f = |x: &Tensor| x.square().sum_all().square();
/// let lap = DiffOperator::laplacian(10);
/// assert!((lap.exact(f, &x).item::<f64>() - 184.8).abs() < 1e-10);
/// // Four sampled dimensions: an unbiased estimate.
/// let est = lap.estimate(f, &x, &random::key(0), 4);
/// assert!(est.item::<f64>().is_finite());
/// ```
#[derive(Clone, Debug)]
pub struct DiffOperator {
    dim: usize,
    groups: Vec<Group>,
}

/// Terms sharing one jet construction.
#[derive(Clone, Debug)]
struct Group {
    /// Input order of each slot (one slot per distinct axis of a term).
    orders: Vec<usize>,
    /// Output order read.
    n: usize,
    /// `n!/Π(aᵢ!^{pᵢ} pᵢ!)`: what the order-n coefficient is, in units of the partial.
    factor: f64,
    /// Per term, the axis of each slot.
    axes: Vec<Vec<i64>>,
    /// Per term, its coefficient.
    coefs: Vec<f64>,
}

fn factorial(k: usize) -> f64 {
    (1..=k).map(|i| i as f64).product()
}

/// Number of non-negative solutions `m` of `Σ mᵢ aᵢ = n`, stopping at 2.
fn solutions(a: &[usize], n: usize) -> usize {
    match a.split_first() {
        None => usize::from(n == 0),
        Some((&first, rest)) => {
            let mut count = 0;
            let mut used = 0;
            while used <= n && count < 2 {
                count += solutions(rest, n - used);
                used += first;
            }
            count
        }
    }
}

/// Distinct orders for slots of the given powers that make the construction unique, with the
/// smallest total order `n`.
fn choose_orders(powers: &[usize]) -> (Vec<usize>, usize) {
    const MAX_ORDER: usize = 16;
    let m = powers.len();
    let mut best: Option<(Vec<usize>, usize)> = None;
    let mut a = vec![1; m];
    loop {
        let distinct = (0..m).all(|i| (0..i).all(|j| a[i] != a[j]));
        if distinct {
            let n: usize = a.iter().zip(powers).map(|(a, p)| a * p).sum();
            if best.as_ref().is_none_or(|(_, bn)| n < *bn) && solutions(&a, n) == 1 {
                best = Some((a.clone(), n));
            }
        }
        // Next assignment (odometer).
        let mut i = 0;
        while i < m && a[i] == MAX_ORDER {
            a[i] = 1;
            i += 1;
        }
        if i == m {
            break;
        }
        a[i] += 1;
    }
    best.expect("diffop: no jet construction for this term (too many distinct axes)")
}

/// Which dense distribution [`hutchinson_laplacian`] draws directions from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Distribution {
    /// Independent ±1 entries (the lower-variance choice for a trace).
    Rademacher,
    /// Independent standard normal entries.
    Gaussian,
}

/// `samples` directions with `E[v vᵀ] = I`, stacked: `[samples, shape...]`.
pub(crate) fn draw(key: &Tensor, samples: usize, shape: &[usize], dtype: DType, dist: Distribution) -> Tensor {
    let mut full = vec![samples];
    full.extend_from_slice(shape);
    match dist {
        Distribution::Gaussian => random::normal(key, &full, dtype),
        Distribution::Rademacher => {
            let b = random::bernoulli(key, 0.5, &full).cast(dtype);
            b * 2.0 - 1.0
        }
    }
}

/// Hutchinson's estimator of the Laplacian (the trace of the Hessian): the mean of `vᵀ∇²f v`
/// over `samples` dense random directions, all from one collapsed second-order jet
/// ([`jet2_collapsed`]). Unbiased because `E[v vᵀ] = I`.
///
/// ```
/// use cotangent::{diffop::{hutchinson_laplacian, Distribution}, random, Tensor};
/// // For a quadratic form with a diagonal Hessian, Rademacher directions are exact.
/// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]);
/// let f = |x: &Tensor| (x.square() * Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3])).sum_all();
/// let est = hutchinson_laplacian(f, &x, &random::key(1), 5, Distribution::Rademacher);
/// assert!((est.item::<f64>() - 12.0).abs() < 1e-12);
/// ```
#[track_caller]
pub fn hutchinson_laplacian(
    f: impl Fn(&Tensor) -> Tensor,
    x: &Tensor,
    key: &Tensor,
    samples: usize,
    dist: Distribution,
) -> Tensor {
    assert!(samples >= 1, "hutchinson_laplacian: needs at least one sample");
    let v = draw(key, samples, &x.shape(), x.dtype(), dist);
    jet2_collapsed(f, x, &v).1 * (1.0 / samples as f64)
}

impl DiffOperator {
    /// The operator `Σₜ cₜ ∂^αₜ` on `ℝᵈ` from `(coefficient, axes)` terms.
    ///
    /// Panics (naming the term) on an empty axis list or an axis `≥ dim`.
    ///
    /// ```
    /// use cotangent::{diffop::DiffOperator, Tensor};
    /// // ∂²/∂x₀∂x₁ of x₀² x₁³ at (1, 1) is 2·3 = 6.
    /// let op = DiffOperator::new(2, &[(1.0, vec![0, 1])]);
    /// let v = op.exact(|x: &Tensor| x.index(0).square() * x.index(1).powf(3.0), &Tensor::from_vec(vec![1.0, 1.0], &[2]));
    /// assert!((v.item::<f64>() - 6.0).abs() < 1e-9);
    /// ```
    #[track_caller]
    pub fn new(dim: usize, terms: &[(f64, Vec<usize>)]) -> DiffOperator {
        let mut groups: Vec<Group> = Vec::new();
        let mut by_powers: BTreeMap<Vec<usize>, usize> = BTreeMap::new();
        for (t, (c, axes)) in terms.iter().enumerate() {
            assert!(!axes.is_empty(), "DiffOperator::new: term {t} has no partial derivative");
            let mut count: BTreeMap<usize, usize> = BTreeMap::new();
            for &a in axes {
                assert!(a < dim, "DiffOperator::new: term {t} differentiates axis {a}, but the dimension is {dim}");
                *count.entry(a).or_default() += 1;
            }
            // Slots ordered by power (descending), then axis.
            let mut slots: Vec<(usize, usize)> = count.into_iter().collect();
            slots.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
            let powers: Vec<usize> = slots.iter().map(|s| s.1).collect();
            let g = *by_powers.entry(powers.clone()).or_insert_with(|| {
                let (orders, n) = choose_orders(&powers);
                let denom: f64 =
                    orders.iter().zip(&powers).map(|(&a, &p)| factorial(a).powi(p as i32) * factorial(p)).product();
                groups.push(Group { orders, n, factor: factorial(n) / denom, axes: Vec::new(), coefs: Vec::new() });
                groups.len() - 1
            });
            groups[g].axes.push(slots.iter().map(|s| s.0 as i64).collect());
            groups[g].coefs.push(*c);
        }
        DiffOperator { dim, groups }
    }

    /// The Laplacian `Σᵢ ∂²/∂xᵢ²` on `ℝᵈ`.
    ///
    /// ```
    /// use cotangent::{diffop::DiffOperator, Tensor};
    /// let x = Tensor::from_vec(vec![1.0, 2.0], &[2]);
    /// let v = DiffOperator::laplacian(2).exact(|x: &Tensor| x.powf(3.0).sum_all(), &x);
    /// assert!((v.item::<f64>() - 18.0).abs() < 1e-10);
    /// ```
    pub fn laplacian(dim: usize) -> DiffOperator {
        DiffOperator::sum_of_powers(dim, 2)
    }

    /// `Σᵢ ∂ᵏ/∂xᵢᵏ` on `ℝᵈ`.
    ///
    /// ```
    /// use cotangent::{diffop::DiffOperator, Tensor};
    /// let x = Tensor::from_vec(vec![1.0, 2.0], &[2]);
    /// let v = DiffOperator::sum_of_powers(2, 4).exact(|x: &Tensor| x.powf(4.0).sum_all(), &x);
    /// assert!((v.item::<f64>() - 48.0).abs() < 1e-9);
    /// ```
    pub fn sum_of_powers(dim: usize, k: usize) -> DiffOperator {
        let terms: Vec<(f64, Vec<usize>)> = (0..dim).map(|i| (1.0, vec![i; k])).collect();
        DiffOperator::new(dim, &terms)
    }

    /// The biharmonic operator `Δ² = Σᵢ ∂⁴ᵢ + 2 Σ_{i<j} ∂²ᵢ∂²ⱼ` on `ℝᵈ` (pure and mixed terms).
    ///
    /// ```
    /// use cotangent::{diffop::DiffOperator, Tensor};
    /// // Δ²‖x‖⁴ = 8d(d + 2) in d dimensions.
    /// let x = Tensor::from_vec(vec![0.3, -0.5, 0.7], &[3]);
    /// let v = DiffOperator::biharmonic(3).exact(|x: &Tensor| x.square().sum_all().square(), &x);
    /// assert!((v.item::<f64>() - 120.0).abs() < 1e-6);
    /// ```
    pub fn biharmonic(dim: usize) -> DiffOperator {
        let mut terms: Vec<(f64, Vec<usize>)> = (0..dim).map(|i| (1.0, vec![i; 4])).collect();
        for i in 0..dim {
            for j in i + 1..dim {
                terms.push((2.0, vec![i, i, j, j]));
            }
        }
        DiffOperator::new(dim, &terms)
    }

    /// The number of terms.
    ///
    /// ```
    /// assert_eq!(cotangent::diffop::DiffOperator::biharmonic(4).num_terms(), 4 + 6);
    /// ```
    pub fn num_terms(&self) -> usize {
        self.groups.iter().map(|g| g.coefs.len()).sum()
    }

    /// The operator applied to a scalar `f` at `x` (shape `[d]`), every term evaluated.
    ///
    /// ```
    /// use cotangent::{diffop::DiffOperator, Tensor};
    /// let x = Tensor::from_vec(vec![0.5, 0.25], &[2]);
    /// // ∂²/∂x₀² + 3 ∂²/∂x₀∂x₁ of sin(x₀)·x₁².
    /// let op = DiffOperator::new(2, &[(1.0, vec![0, 0]), (3.0, vec![0, 1])]);
    /// let want = -(0.5f64.sin()) * 0.0625 + 3.0 * 0.5f64.cos() * 0.5;
    /// let got = op.exact(|x: &Tensor| x.index(0).sin() * x.index(1).square(), &x);
    /// assert!((got.item::<f64>() - want).abs() < 1e-9);
    /// ```
    #[track_caller]
    pub fn exact(&self, f: impl Fn(&Tensor) -> Tensor, x: &Tensor) -> Tensor {
        self.check_point(x);
        let mut total: Option<Tensor> = None;
        for g in &self.groups {
            let idx = Tensor::from_vec((0..g.coefs.len() as i64).collect(), &[g.coefs.len()]);
            let v = g.eval(&f, x, &idx, self.dim);
            total = Some(match total {
                Some(t) => t + v,
                None => v,
            });
        }
        total.expect("an operator has at least one term")
    }

    /// The STDE estimate from `samples` terms drawn without replacement (per group of terms
    /// sharing a construction, in proportion to its size, at least one each), each group's
    /// sum rescaled by its size over its draws: unbiased, and equal to [`exact`](Self::exact)
    /// when `samples` is at least the number of terms. Traceable: `key` may be symbolic (a
    /// jitted training step takes it as an argument).
    ///
    /// ```
    /// use cotangent::{diffop::DiffOperator, random, Tensor};
    /// let x = Tensor::from_vec(vec![0.1, 0.2, 0.3], &[3]);
    /// let f = |x: &Tensor| x.sin().sum_all();
    /// let op = DiffOperator::laplacian(3);
    /// // With every dimension drawn, the estimate is exact.
    /// let est = op.estimate(f, &x, &random::key(7), 3);
    /// assert!((&est - &op.exact(f, &x)).abs().item::<f64>() < 1e-12);
    /// ```
    #[track_caller]
    pub fn estimate(&self, f: impl Fn(&Tensor) -> Tensor, x: &Tensor, key: &Tensor, samples: usize) -> Tensor {
        self.check_point(x);
        assert!(samples >= 1, "DiffOperator::estimate: needs at least one sample");
        let total_terms = self.num_terms();
        let mut total: Option<Tensor> = None;
        for (gi, g) in self.groups.iter().enumerate() {
            let size = g.coefs.len();
            let k = ((samples as f64 * size as f64 / total_terms as f64).round() as usize).clamp(1, size);
            let k = if samples >= total_terms { size } else { k };
            let gkey = random::fold_in(key, gi as i64);
            let idx = random::permutation(&gkey, size).slice(&[0], &[k], &[1]);
            let v = g.eval(&f, x, &idx, self.dim) * (size as f64 / k as f64);
            total = Some(match total {
                Some(t) => t + v,
                None => v,
            });
        }
        total.expect("an operator has at least one term")
    }

    #[track_caller]
    fn check_point(&self, x: &Tensor) {
        assert!(
            x.shape() == [self.dim] && x.dtype().is_float(),
            "DiffOperator: the point must be a float tensor of shape [{}], got {}",
            self.dim,
            x.ty()
        );
    }
}

impl Group {
    /// `Σ_{t ∈ idx} cₜ ∂^αₜ f(x)` for the terms `idx` (an i64 tensor, possibly traced).
    fn eval(&self, f: &dyn Fn(&Tensor) -> Tensor, x: &Tensor, idx: &Tensor, dim: usize) -> Tensor {
        let slots = self.orders.len();
        let flat: Vec<i64> = self.axes.iter().flatten().copied().collect();
        let table = Tensor::from_vec(flat, &[self.coefs.len(), slots]).take(idx, 0);
        let coefs = Tensor::from_vec(self.coefs.clone(), &[self.coefs.len()]).cast(x.dtype()).take(idx, 0);
        let dirs: Vec<Tensor> = (0..slots).map(|s| table.index_axis(s).one_hot(dim, x.dtype())).collect();
        // Second-order pure terms with one coefficient: one collapsed jet for all of them.
        if self.orders == [1] && self.n == 2 && self.coefs.iter().all(|&c| c == self.coefs[0]) {
            return jet2_collapsed(f, x, &dirs[0]).1 * self.coefs[0];
        }
        let n = self.n;
        let orders = self.orders.clone();
        let per_term = vmap(move |dirs: &Vec<Tensor>| {
            let mut series: Vec<Option<&Tensor>> = vec![None; n];
            for (d, &a) in dirs.iter().zip(&orders) {
                series[a - 1] = Some(d);
            }
            jet_sparse(f, x, &series).1.swap_remove(n - 1)
        });
        (per_term(&dirs) * coefs).sum(&[0], false) * (1.0 / self.factor)
    }
}

/// Column `s` of a matrix.
trait IndexAxis {
    fn index_axis(&self, s: usize) -> Tensor;
}

impl IndexAxis for Tensor {
    fn index_axis(&self, s: usize) -> Tensor {
        self.slice_axis(1, s as isize, s as isize + 1, 1).squeeze(&[1])
    }
}
