//! Losses (each the mean over the batch) and a classification metric.

use crate::{where_, DType, Tensor};

/// Mean squared error `mean((pred − target)²)`.
///
/// ```
/// use cotangent::{nn, Tensor};
/// let l = nn::mse(&Tensor::from_vec(vec![1.0, 3.0], &[2]), &Tensor::from_vec(vec![0.0, 1.0], &[2]));
/// assert_eq!(l.item::<f64>(), 2.5);
/// ```
#[track_caller]
pub fn mse(pred: &Tensor, target: &Tensor) -> Tensor {
    (pred - target).square().mean_all()
}

/// Cross-entropy of logits `[..., classes]` against integer labels `[...]`, averaged:
/// `mean(logsumexp(logits) − logits[label])`, stable for any logit size. The gradient is
/// `(softmax(logits) − onehot(label)) / batch`, also where the true class is the one +inf
/// logit of its row: that row costs 0 with gradient 0 (JAX gives NaN). Where another class is
/// +inf the row costs +inf, and its gradient is −1/batch at the label and 0 elsewhere (see
/// [`Tensor::log_softmax`]).
///
/// ```
/// use cotangent::{nn, Tensor};
/// let logits = Tensor::from_vec(vec![1000.0f32, 0.0, 0.0, 1000.0], &[2, 2]);
/// let labels = Tensor::from_vec(vec![0i64, 1], &[2]);
/// assert_eq!(nn::cross_entropy(&logits, &labels).item::<f32>(), 0.0);
/// ```
#[track_caller]
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Tensor {
    assert!(
        labels.dtype().is_int() && labels.rank() + 1 == logits.rank(),
        "cross_entropy: labels must be integers with the logits' shape minus the class axis; \
         got logits {} and labels {}",
        logits.ty(),
        labels.ty()
    );
    let logp = logits.log_softmax(-1);
    let picked = logp.take_along_axis(&labels.expand_dims(-1), -1);
    -picked.mean_all()
}

/// Cross-entropy of logits against target distributions of the same shape (one-hot or
/// soft labels): `mean(−Σ targets · log_softmax(logits))`, where a zero target contributes 0
/// even against a log-probability of -inf (the convention `0 · log 0 = 0`), so infinite
/// logits behave as in [`cross_entropy`].
///
/// ```
/// use cotangent::{nn, Tensor};
/// let logits = Tensor::from_vec(vec![0.0, 0.0], &[1, 2]);
/// let onehot = Tensor::from_vec(vec![1.0, 0.0], &[1, 2]);
/// assert!((nn::cross_entropy_one_hot(&logits, &onehot).item::<f64>() - 2f64.ln()).abs() < 1e-15);
/// ```
#[track_caller]
pub fn cross_entropy_one_hot(logits: &Tensor, targets: &Tensor) -> Tensor {
    -times_or_zero(&logits.log_softmax(-1), targets).sum(&[-1], false).mean_all()
}

/// Binary cross-entropy of logits against targets in `[0, 1]`:
/// `mean(t·softplus(−x) + (1 − t)·softplus(x))`, which equals
/// `−t log σ(x) − (1 − t) log(1 − σ(x))` without ever computing `log(0)`. A zero weight
/// (`t` or `1 − t`) contributes 0 even where its softplus is +inf, so at `x = +inf` the loss
/// is 0 for `t = 1` and +inf otherwise, at `x = -inf` 0 for `t = 0` and +inf otherwise; the
/// gradient is `(σ(x) − t) / n` everywhere (1 − t at +inf, −t at -inf).
///
/// ```
/// use cotangent::{nn, Tensor};
/// let l = nn::binary_cross_entropy_with_logits(&Tensor::scalar(0.0), &Tensor::scalar(1.0));
/// assert!((l.item::<f64>() - 2f64.ln()).abs() < 1e-15);
/// let big = nn::binary_cross_entropy_with_logits(&Tensor::scalar(-1000.0f32), &Tensor::scalar(1.0f32));
/// assert_eq!(big.item::<f32>(), 1000.0);
/// let inf = Tensor::scalar(f32::INFINITY);
/// assert_eq!(nn::binary_cross_entropy_with_logits(&inf, &Tensor::scalar(1.0f32)).item::<f32>(), 0.0);
/// ```
#[track_caller]
pub fn binary_cross_entropy_with_logits(logits: &Tensor, targets: &Tensor) -> Tensor {
    // softplus(±x) = max(±x, 0) + log1p(e^-|x|); `maximum` splits its derivative at 0, so
    // the two halves give σ(0) − t there.
    let tail = (-logits.abs()).exp().log1p();
    let pos = times_or_zero(&logits.maximum(0.0), &(1.0 - targets));
    let neg = times_or_zero(&(-logits).maximum(0.0), targets);
    (pos + neg + tail).mean_all()
}

/// `a · w`, but 0 where `w` is 0 and `a` is ±inf (NaN stays NaN). Such an `a` is replaced
/// by 0 before the product (the "double where"), so its cotangent `w · ct` is 0, not NaN, and
/// the derivative with respect to `w` is `a` wherever `a` is finite.
fn times_or_zero(a: &Tensor, w: &Tensor) -> Tensor {
    let void = w.eq(0.0).logical_and(&a.abs().eq(f64::INFINITY));
    where_(&void, &a.scalar_like(0.0), a) * w
}

/// Huber loss: `½d²` where `|d| ≤ delta`, `delta·(|d| − ½delta)` beyond, averaged
/// (`d = pred − target`).
///
/// ```
/// use cotangent::{nn, Tensor};
/// let d = Tensor::from_vec(vec![0.5, 3.0], &[2]);
/// let l = nn::huber(&d, &Tensor::from_vec(vec![0.0, 0.0], &[2]), 1.0);
/// assert_eq!(l.item::<f64>(), (0.125 + 2.5) / 2.0);
/// ```
#[track_caller]
pub fn huber(pred: &Tensor, target: &Tensor, delta: f64) -> Tensor {
    assert!(delta > 0.0, "huber: delta must be positive, got {delta}");
    let d = pred - target;
    let a = d.abs();
    let quad = d.square() * 0.5;
    let lin = (&a - 0.5 * delta) * delta;
    where_(&a.le(delta), &quad, &lin).mean_all()
}

/// Fraction of rows whose largest logit is at the label (a 0-d `f64` tensor).
///
/// ```
/// use cotangent::{nn, Tensor};
/// let logits = Tensor::from_vec(vec![2.0, 1.0, 0.0, 3.0], &[2, 2]);
/// let acc = nn::accuracy(&logits, &Tensor::from_vec(vec![0i64, 0], &[2]));
/// assert_eq!(acc.item::<f64>(), 0.5);
/// ```
#[track_caller]
pub fn accuracy(logits: &Tensor, labels: &Tensor) -> Tensor {
    let pred = logits.argmax(-1, false);
    pred.eq(labels.cast(DType::I64)).cast(DType::F64).mean_all()
}
