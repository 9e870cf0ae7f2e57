//! A virtual Brownian tree: Brownian motion (with its time integral) that can be queried at
//! any time, traced or not, and always gives the same path for the same key.
//!
//! The split of a node: on an interval of length `h` with increment `W` and space-time Lévy
//! area `H = (1/h)∫(W(u) - W(a) - (u - a)/h·W) du`, the halves' `(W₁, H₁)`, `(W₂, H₂)` are four
//! independent normals with variances `h/2, h/24, h/2, h/24`, and `W = W₁ + W₂`,
//! `H = (W₁ - W₂)/4 + (H₁ + H₂)/2`. Conditioning on `(W, H)` (an orthogonal change of
//! variables) leaves two free standard normals `s`, `v`:
//! `W₁ = W/2 + 3H/2 + (√h/4)·s`, `W₂ = W - W₁`, `H₁ = H/4 + √(h/48)·(v - (√3/2)·s)`,
//! `H₂ = H/4 - √(h/48)·(v + (√3/2)·s)`. The integral of `W` over the left half is
//! `(h/2)·(W(a) + W₁/2 + H₁)`.

use crate::random::{fold_in, normal, random_bits};
use crate::{where_, DType, Tensor, TensorType, Tree};

/// Brownian motion `W` on `[t0, t1]` (`W(t0) = 0`), one independent path per element of each
/// leaf of a tree, that can be evaluated at any time — a concrete or traced `f64` scalar,
/// inside [`fori_loop`](crate::control::fori_loop) bodies, under [`jit`](crate::jit), [`vmap`](crate::vmap) and the
/// derivatives — and always shows the same path for the same key (Gaines & Lyons 1997; the
/// space-time version of diffrax's `VirtualBrownianTree`).
///
/// The path is defined by bisection: the root holds `W(t1)` and the space-time Lévy area `H`
/// of `[t0, t1]`; each node of the binary tree splits its interval at the midpoint, drawing
/// the two halves' increments and Lévy areas from their exact conditional (Brownian bridge)
/// law given the node's, with a key derived from the node's position (`fold_in` of its heap
/// index), so a node's values never depend on which query reached it. Below the depth
/// `⌈log₂((t1 - t0)/tol)⌉` the path is the quadratic in each leaf interval that has that
/// interval's increment and Lévy area. Every query therefore sees one fixed continuous path:
/// increments `W(t) - W(s)` over any intervals are consistent (a solve with another step, or
/// a backward pass, sees the same noise), and at dyadic times `t0 + k·2⁻ˡ(t1 - t0)` with
/// `l` at most the depth, `W` is exactly Brownian. A query costs two normal draws per level
/// and leaf element (drawn in one batch), and a chain of `depth` element-wise updates.
/// For a solve with steps of `(t1 - t0)/2ᵏ`, `tol` at the step makes every step's ends nodes
/// of the tree (exact Brownian values at the least cost); a smaller `tol` is needed only to
/// compare solves with finer steps on the same path.
///
/// Besides `W(t)` the tree gives `∫_{t0}^{t} W(u) du` ([`Self::integral`]) and with it the
/// space-time Lévy area of any interval ([`Self::levy_increment`]), which
/// [`SdeSolver::Sra1`](super::SdeSolver::Sra1) needs. The tree's arithmetic is `f64`; results
/// are cast to each leaf's dtype.
///
/// ```
/// use cotangent::diffeq::VirtualBrownianTree;
/// use cotangent::{random, DType, Tensor};
/// // 2000 independent paths on [0, 2].
/// let bm = VirtualBrownianTree::new(&random::key(0), 0.0, 2.0, 1e-3, &Tensor::zeros(&[2000], DType::F64));
/// let w = bm.evaluate(&Tensor::scalar(2.0)).to_vec::<f64>();
/// let var = w.iter().map(|x| x * x).sum::<f64>() / 2000.0;
/// assert!((var - 2.0).abs() < 0.2, "{var}");
/// // Increments are differences of the one path.
/// let (s, t) = (Tensor::scalar(0.3), Tensor::scalar(1.1));
/// let d = bm.increment(&s, &t).to_vec::<f64>();
/// let (ws, wt) = (bm.evaluate(&s).to_vec::<f64>(), bm.evaluate(&t).to_vec::<f64>());
/// assert!((d[7] - (wt[7] - ws[7])).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct VirtualBrownianTree<Y> {
    t0: f64,
    t1: f64,
    depth: usize,
    /// One key per leaf (`fold_in(key, leaf)`).
    keys: Vec<Tensor>,
    types: Vec<TensorType>,
    like: Y,
}

/// `W(t)` and `∫_{t0}^{t} W`, per leaf, in `f64`.
pub(crate) struct Point {
    pub(crate) w: Vec<Tensor>,
    pub(crate) k: Vec<Tensor>,
}

/// The deepest tree: node positions stay exact in `f64` and heap indices fit in `i64`.
const MAX_DEPTH: usize = 50;

impl<Y: Tree> VirtualBrownianTree<Y> {
    /// A tree on `[t0, t1]` with leaves shaped and typed like `like`'s (each a float tensor),
    /// resolved down to intervals of length at most `tol` (the depth is
    /// `⌈log₂((t1 - t0)/tol)⌉`, at most 50). `key` is an `i64` key of shape `[2]` from
    /// [`random`](crate::random); under [`vmap`](crate::vmap) over keys, build the tree inside
    /// the mapped function.
    ///
    /// ```
    /// use cotangent::diffeq::VirtualBrownianTree;
    /// use cotangent::{random, DType, Tensor};
    /// let like = (Tensor::zeros(&[3], DType::F32), Tensor::zeros(&[], DType::F64));
    /// let bm = VirtualBrownianTree::new(&random::key(1), 0.0, 1.0, 1.0 / 1024.0, &like);
    /// assert_eq!(bm.depth(), 10);
    /// let (a, b) = bm.evaluate(&Tensor::scalar(0.5));
    /// assert_eq!((a.shape(), a.dtype(), b.dtype()), (vec![3], DType::F32, DType::F64));
    /// ```
    ///
    /// # Panics
    /// At the caller's line when `t0 < t1` does not hold (or either is not finite), `tol` is not
    /// positive or is below `(t1 - t0)·2⁻⁵⁰`, `key` is not an `i64` tensor of shape `[2]`, or a
    /// leaf of `like` is not a float tensor.
    #[track_caller]
    pub fn new(key: &Tensor, t0: f64, t1: f64, tol: f64, like: &Y) -> Self {
        let caller = std::panic::Location::caller();
        let fail = |msg: String| -> ! { panic!("diffeq::VirtualBrownianTree::new (called at {caller}): {msg}") };
        if !(t0.is_finite() && t1.is_finite() && t0 < t1) {
            fail(format!("needs finite t0 < t1, got t0 = {t0}, t1 = {t1}"));
        }
        if tol.is_nan() || tol <= 0.0 {
            fail(format!("tol must be positive, got {tol}"));
        }
        let levels = ((t1 - t0) / tol).log2().ceil().max(0.0);
        if levels > MAX_DEPTH as f64 {
            fail(format!(
                "tol = {tol} needs {levels} levels of bisection on [{t0}, {t1}]; at most {MAX_DEPTH} are supported"
            ));
        }
        if key.dtype() != DType::I64 || key.shape() != [2] {
            fail(format!("key must be an i64 tensor of shape [2] (from cotangent::random), got {}", key.ty()));
        }
        let named = like.named_leaves();
        if let Some((p, t)) = named.iter().find(|(_, t)| !t.dtype().is_float()) {
            fail(format!("every leaf of `like` must be a float tensor; leaf `{p}` is {}", t.ty()));
        }
        let leaves = like.leaves();
        VirtualBrownianTree {
            t0,
            t1,
            depth: levels as usize,
            keys: (0..leaves.len()).map(|j| fold_in(key, j as i64)).collect(),
            types: leaves.iter().map(Tensor::ty).collect(),
            like: like.rebuild_from(leaves),
        }
    }

    /// The number of bisection levels.
    ///
    /// ```
    /// use cotangent::diffeq::VirtualBrownianTree;
    /// use cotangent::{random, Tensor};
    /// let bm = VirtualBrownianTree::new(&random::key(0), 0.0, 1.0, 0.01, &Tensor::scalar(0.0));
    /// assert_eq!(bm.depth(), 7); // 2⁻⁷ < 0.01 ≤ 2⁻⁶
    /// ```
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The interval `(t0, t1)`.
    ///
    /// ```
    /// use cotangent::diffeq::VirtualBrownianTree;
    /// use cotangent::{random, Tensor};
    /// let bm = VirtualBrownianTree::new(&random::key(0), -1.0, 1.0, 0.01, &Tensor::scalar(0.0));
    /// assert_eq!(bm.interval(), (-1.0, 1.0));
    /// ```
    pub fn interval(&self) -> (f64, f64) {
        (self.t0, self.t1)
    }

    /// The leaf types (shapes and dtypes) of the tree's values.
    pub(crate) fn types(&self) -> &[TensorType] {
        &self.types
    }

    /// `W(t)`, shaped like the tree's `like`. `t` (an `f64` scalar, possibly traced) is clamped
    /// into `[t0, t1]`.
    ///
    /// ```
    /// use cotangent::diffeq::VirtualBrownianTree;
    /// use cotangent::{random, Tensor};
    /// let bm = VirtualBrownianTree::new(&random::key(0), 0.0, 1.0, 1e-3, &Tensor::scalar(0.0));
    /// assert_eq!(bm.evaluate(&Tensor::scalar(0.0)).item::<f64>(), 0.0);
    /// let w = bm.evaluate(&Tensor::scalar(0.25)).item::<f64>();
    /// assert_eq!(bm.evaluate(&Tensor::scalar(0.25)).item::<f64>(), w); // the same path
    /// ```
    #[track_caller]
    pub fn evaluate(&self, t: &Tensor) -> Y {
        let p = self.point(t);
        self.cast_out(p.w)
    }

    /// `∫_{t0}^{t} W(u) du`, shaped like the tree's `like`.
    ///
    /// ```
    /// use cotangent::diffeq::VirtualBrownianTree;
    /// use cotangent::{random, DType, Tensor};
    /// // ∫₀¹ W has variance 1/3.
    /// let bm = VirtualBrownianTree::new(&random::key(2), 0.0, 1.0, 1e-2, &Tensor::zeros(&[4000], DType::F64));
    /// let k = bm.integral(&Tensor::scalar(1.0)).to_vec::<f64>();
    /// let var = k.iter().map(|x| x * x).sum::<f64>() / 4000.0;
    /// assert!((var - 1.0 / 3.0).abs() < 0.03, "{var}");
    /// ```
    #[track_caller]
    pub fn integral(&self, t: &Tensor) -> Y {
        let p = self.point(t);
        self.cast_out(p.k)
    }

    /// `W(t) - W(s)`.
    ///
    /// ```
    /// use cotangent::diffeq::VirtualBrownianTree;
    /// use cotangent::{random, Tensor};
    /// let bm = VirtualBrownianTree::new(&random::key(0), 0.0, 1.0, 1e-3, &Tensor::scalar(0.0));
    /// let (a, b, c) = (Tensor::scalar(0.1), Tensor::scalar(0.4), Tensor::scalar(0.9));
    /// let sum = bm.increment(&a, &b).item::<f64>() + bm.increment(&b, &c).item::<f64>();
    /// assert!((sum - bm.increment(&a, &c).item::<f64>()).abs() < 1e-12);
    /// ```
    #[track_caller]
    pub fn increment(&self, s: &Tensor, t: &Tensor) -> Y {
        let (ps, pt) = (self.point(s), self.point(t));
        self.cast_out(pt.w.iter().zip(&ps.w).map(|(a, b)| a - b).collect())
    }

    /// `(W(t) - W(s), H)` with `H = (1/h)∫ₛᵗ (W(u) - W(s) - (u - s)/h·(W(t) - W(s))) du`,
    /// `h = t - s`: the space-time Lévy area, independent of the increment with variance
    /// `h/12`. `∫ₛᵗ (W(u) - W(s)) du = h·(ΔW/2 + H)`.
    ///
    /// ```
    /// use cotangent::diffeq::VirtualBrownianTree;
    /// use cotangent::{random, DType, Tensor};
    /// let bm = VirtualBrownianTree::new(&random::key(4), 0.0, 1.0, 1e-3, &Tensor::zeros(&[4000], DType::F64));
    /// let (dw, h) = bm.levy_increment(&Tensor::scalar(0.25), &Tensor::scalar(0.75));
    /// let h = h.to_vec::<f64>();
    /// let var = h.iter().map(|x| x * x).sum::<f64>() / 4000.0;
    /// assert!((var - 0.5 / 12.0).abs() < 0.005, "{var}");
    /// # let _ = dw;
    /// ```
    #[track_caller]
    pub fn levy_increment(&self, s: &Tensor, t: &Tensor) -> (Y, Y) {
        let (ps, pt) = (self.point(s), self.point(t));
        let h = t.cast(DType::F64) - s.cast(DType::F64);
        let (dw, hh) = levy(&ps, &pt, &h);
        (self.cast_out(dw), self.cast_out(hh))
    }

    fn cast_out(&self, leaves: Vec<Tensor>) -> Y {
        let v = leaves.into_iter().zip(&self.types).map(|(x, ty)| x.cast(ty.dtype)).collect();
        self.like.rebuild_from(v)
    }

    /// `W(t)` and `∫_{t0}^{t} W` in `f64`, by descending the tree to the leaf interval holding
    /// `t` and evaluating its quadratic.
    ///
    /// The path from the root depends on `t` alone: at level `l` the node is number
    /// `j_l = max(⌈u·2ˡ⌉ - 1, 0)` (`u` the normalised time; a time on a midpoint belongs to the
    /// left half) with heap index `2ˡ + j_l`. So all the nodes' keys and normals are drawn at
    /// once (one batch of keys), and the levels are a chain of element-wise updates.
    #[track_caller]
    pub(crate) fn point(&self, t: &Tensor) -> Point {
        if t.rank() != 0 || !t.dtype().is_float() {
            panic!("diffeq::VirtualBrownianTree: the time must be a float scalar, got {}", t.ty());
        }
        let (span, d) = (self.t1 - self.t0, self.depth);
        let u = ((t.cast(DType::F64) - self.t0) / span).clamp(0.0, 1.0).stop_gradient();
        let scales = Tensor::from_vec((0..=d).map(|l| (l as f64).exp2()).collect::<Vec<f64>>(), &[d + 1]);
        let j = ((&u * &scales).ceil() - 1.0).maximum(0.0); // exact integers in f64
                                                            // Node keys: the root's values from index 0, level l's split from index 2ˡ + j_l.
        let heap = (&j + &scales).cast(DType::I64).slice_axis(0, 0, d as isize, 1);
        let data = crate::concatenate(&[Tensor::zeros(&[1], DType::I64), heap], 0);
        // right_l: whether level l's node continues into its right half.
        let right: Vec<Tensor> = (0..d)
            .map(|l| {
                let (a, b) = (j.index(l as isize), j.index(l as isize + 1));
                (b - a * 2.0).gt(0.5)
            })
            .collect();
        let theta = (&u * scales.index(d as isize) - j.index(d as isize)).clamp(0.0, 1.0);
        let delta = span * (-(d as f64)).exp2();
        let (th2, th3) = (theta.square(), theta.square() * &theta);
        let bump = (&theta - &th2) * 6.0;
        let area = &th2 * 3.0 - &th3 * 2.0;
        let (r3, c48) = (0.75f64.sqrt(), (1.0f64 / 48.0).sqrt());
        let (mut ws, mut ks) = (Vec::new(), Vec::new());
        for (key, ty) in self.keys.iter().zip(&self.types) {
            // [d + 1, 2, shape...]: two normals per element and node.
            let z = draw(&fold_in_many(key, &data), &ty.shape);
            let root = z.index(0);
            // Per leaf: W at the left end, the increment over the interval, its Lévy area,
            // and ∫ W up to the left end. The root: W(t1) ~ N(0, T), H ~ N(0, T/12).
            let mut wa = Tensor::zeros(&ty.shape, DType::F64);
            let mut wab = root.index(0) * span.sqrt();
            let mut hab = root.index(1) * (span / 12.0).sqrt();
            let mut ka = Tensor::zeros(&ty.shape, DType::F64);
            for (l, right) in right.iter().enumerate() {
                let h = span * (-(l as f64)).exp2(); // the node's interval length
                let sq = h.sqrt();
                let zl = z.index(l as isize + 1);
                let (s, v) = (zl.index(0), zl.index(1));
                // The halves' increments and Lévy areas given the node's: the Brownian bridge
                // conditioned on (ΔW, H) (see the module's documentation).
                let w_l = &wab * 0.5 + &hab * 1.5 + &s * (0.25 * sq);
                let w_r = &wab - &w_l;
                let h_l = &hab * 0.25 + (&v - &s * r3) * (c48 * sq);
                let h_r = &hab * 0.25 - (&v + &s * r3) * (c48 * sq);
                let k_l = (&wa + &w_l * 0.5 + &h_l) * (0.5 * h);
                ka = where_(right, &(&ka + k_l), &ka);
                wa = where_(right, &(&wa + &w_l), &wa);
                wab = where_(right, &w_r, &w_l);
                hab = where_(right, &h_r, &h_l);
            }
            // Inside the leaf interval: W(a + θδ) = W(a) + θ·ΔW + 6θ(1 - θ)·H, whose integral
            // is δ·(θ·W(a) + θ²/2·ΔW + (3θ² - 2θ³)·H).
            ws.push(&wa + &wab * &theta + &hab * &bump);
            ks.push(&ka + (&wa * &theta + &wab * (&th2 * 0.5) + &hab * &area) * delta);
        }
        Point { w: ws, k: ks }
    }
}

/// `fold_in_tensor(key, data[i])` for each element of the `i64` vector `data`: keys `[n, 2]`
/// (the same words, computed as one batch).
fn fold_in_many(key: &Tensor, data: &Tensor) -> Tensor {
    let mask = Tensor::scalar(0xffff_ffffi64);
    let lo = data.logical_and(&mask);
    let hi = ((data - &lo) / 4_294_967_296.0).logical_and(&mask);
    let words = crate::stack(&[lo, hi], 1).logical_xor(&Tensor::from_vec(vec![0x243f_6a88i64, 0x85a3_08d3], &[2]));
    let h = random_bits(key, &[2]);
    random_bits(&h.logical_xor(&words), &[2])
}

/// Two independent standard normals per element, `[2, shape...]`, in `f64`.
fn draw(key: &Tensor, shape: &[usize]) -> Tensor {
    let mut s = vec![2];
    s.extend_from_slice(shape);
    normal(key, &s, DType::F64)
}

/// The increment and space-time Lévy area between two points `h` apart (`f64`, per leaf).
pub(crate) fn levy(ps: &Point, pt: &Point, h: &Tensor) -> (Vec<Tensor>, Vec<Tensor>) {
    let mut dws = Vec::new();
    let mut hs = Vec::new();
    for j in 0..ps.w.len() {
        let dw = &pt.w[j] - &ps.w[j];
        let hh = (&pt.k[j] - &ps.k[j]) / h - &ps.w[j] - &dw * 0.5;
        dws.push(dw);
        hs.push(hh);
    }
    (dws, hs)
}
