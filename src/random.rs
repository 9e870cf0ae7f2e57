//! Random numbers from explicit, splittable, counter-based keys (like `jax.random`).
//!
//! A *key* is an ordinary `i64` tensor of shape `[2]` holding two 32-bit
//! words. Every sampler is a pure function of its key: the same key gives the
//! same numbers, on any number of threads, eagerly or under any
//! transformation. To get independent streams, derive new keys with [`split`]
//! or [`fold_in`] and never use one key twice.
//!
//! ```
//! use cotangent::{random, DType};
//! let key = random::key(42);
//! let [k_init, k_noise] = random::split2(&key);
//! let w = random::normal(&k_init, &[3, 2], DType::F32);
//! let u = random::uniform(&k_noise, &[4], DType::F64);
//! assert_eq!(w.shape(), vec![3, 2]);
//! assert!(u.to_vec::<f64>().iter().all(|&x| (0.0..1.0).contains(&x)));
//! // Same key, same numbers.
//! assert_eq!(random::normal(&k_init, &[3, 2], DType::F32).to_vec::<f32>(), w.to_vec::<f32>());
//! ```
//!
//! Everything is built on one primitive, [`random_bits`] (Threefry-2x32, see
//! [`crate::ops::random`]); the samplers are compositions of ordinary tensor
//! operations, so they can be traced, vmapped over keys and (later) compiled,
//! with the key as a runtime input. A key tensor with leading axes (`[k..., 2]`,
//! as returned by [`split`]) is a batch of keys: every sampler then returns
//! `[k..., shape...]`, one independent draw per key, which is also what
//! [`vmap`](crate::vmap) over keys produces.

use crate::ops::Prim;
use crate::trace::bind;
use crate::{where_, DType, Tensor};

pub use crate::backend::cpu::random::threefry2x32;

const WORD: f64 = 4_294_967_296.0; // 2^32

/// A key from a 64-bit seed: the words `[seed >> 32, seed & 0xffff_ffff]`.
///
/// ```
/// use cotangent::random;
/// assert_eq!(random::key(7).to_vec::<i64>(), vec![0, 7]);
/// assert_eq!(random::key(1 << 32).to_vec::<i64>(), vec![1, 0]);
/// ```
pub fn key(seed: u64) -> Tensor {
    Tensor::from_vec(vec![(seed >> 32) as i64, (seed & 0xffff_ffff) as i64], &[2])
}

/// Raw random bits: `i64` values uniform in `0..2^32`, of shape `[k..., shape...]` for a
/// key of shape `[k..., 2]`.
///
/// Element `i` (row-major) of each key's output is word `i % 2` of
/// `threefry2x32(key, [hi(i / 2), lo(i / 2)])`.
///
/// ```
/// use cotangent::random::{self, threefry2x32};
/// let b = random::random_bits(&random::key(0), &[3]).to_vec::<i64>();
/// let w0 = threefry2x32([0, 0], [0, 0]);
/// let w1 = threefry2x32([0, 0], [0, 1]);
/// assert_eq!(b, vec![w0[0] as i64, w0[1] as i64, w1[0] as i64]);
/// ```
#[track_caller]
pub fn random_bits(key: &Tensor, shape: &[usize]) -> Tensor {
    bind(Prim::RandomBits { shape: shape.to_vec() }, &[key])
}

/// `n` new keys (shape `[n, 2]`, or `[k..., n, 2]` for a batch of keys), independent of
/// each other and of `key`'s own samples. Do not use `key` itself afterwards.
///
/// ```
/// use cotangent::random;
/// let keys = random::split(&random::key(0), 3);
/// assert_eq!(keys.shape(), vec![3, 2]);
/// let k1 = keys.index(1); // the second key, shape [2]
/// assert_eq!(k1.shape(), vec![2]);
/// ```
#[track_caller]
pub fn split(key: &Tensor, n: usize) -> Tensor {
    random_bits(key, &[n, 2])
}

/// Two new keys, as an array (handy for `let [a, b] = split2(&key);`).
///
/// ```
/// use cotangent::random;
/// let [a, b] = random::split2(&random::key(1));
/// assert_ne!(a.to_vec::<i64>(), b.to_vec::<i64>());
/// ```
#[track_caller]
pub fn split2(key: &Tensor) -> [Tensor; 2] {
    let keys = split(key, 2);
    [keys.index_last_but_one(0), keys.index_last_but_one(1)]
}

/// A key derived from `key` and an integer, e.g. a step or layer number.
///
/// Different `data` give independent keys; the same `data` always gives the same key.
///
/// ```
/// use cotangent::random;
/// let k = random::key(0);
/// assert_eq!(random::fold_in(&k, 5).to_vec::<i64>(), random::fold_in(&k, 5).to_vec::<i64>());
/// assert_ne!(random::fold_in(&k, 5).to_vec::<i64>(), random::fold_in(&k, 6).to_vec::<i64>());
/// ```
#[track_caller]
pub fn fold_in(key: &Tensor, data: i64) -> Tensor {
    fold_in_tensor(key, &Tensor::scalar(data))
}

/// [`fold_in`] with the integer as a 0-d `i64` tensor, which may be traced (a step counter
/// inside a compiled training step).
///
/// The new key is `bits(bits(key, [2]) ^ [lo(data) ^ C0, hi(data) ^ C1], [2])` for two
/// fixed constants: two rounds of Threefry, so it shares no words with `key`'s samples
/// or with its [`split`] children.
///
/// ```
/// use cotangent::{random, Tensor};
/// let k = random::key(0);
/// let a = random::fold_in_tensor(&k, &Tensor::scalar(3i64));
/// assert_eq!(a.to_vec::<i64>(), random::fold_in(&k, 3).to_vec::<i64>());
/// ```
#[track_caller]
pub fn fold_in_tensor(key: &Tensor, data: &Tensor) -> Tensor {
    assert!(
        data.dtype() == DType::I64 && data.rank() == 0,
        "fold_in: data must be a 0-d i64 tensor, got {}",
        data.ty()
    );
    let mask = Tensor::scalar(0xffff_ffffi64);
    let lo = data.logical_and(&mask);
    let hi = ((data - &lo) / WORD).logical_and(&mask);
    let words = crate::stack(&[lo, hi], 0).logical_xor(&Tensor::from_vec(vec![0x243f_6a88i64, 0x85a3_08d3], &[2]));
    let h = random_bits(key, &[2]);
    random_bits(&h.logical_xor(&words), &[2])
}

/// Bits with a trailing axis of 2 words per element, for 53-bit floats and 63-bit sort keys.
fn word_pairs(key: &Tensor, shape: &[usize]) -> (Tensor, Tensor) {
    let mut s = shape.to_vec();
    s.push(2);
    let b = random_bits(key, &s);
    let hi = b.slice_axis(-1, 0, 1, 1).squeeze(&[-1]);
    let lo = b.slice_axis(-1, 1, 2, 1).squeeze(&[-1]);
    (hi, lo)
}

/// Uniform in `[0, 1)`: 24 random bits for `f32`, 53 for `f64` (every value a multiple of
/// `2^-24` or `2^-53`).
fn unit(key: &Tensor, shape: &[usize], dtype: DType) -> Tensor {
    match dtype {
        DType::F32 => {
            let b = random_bits(key, shape) / 256.0;
            b.cast(DType::F32) * (1.0 / 16_777_216.0)
        }
        DType::F64 => {
            let (hi, lo) = word_pairs(key, shape);
            let m = hi * 2_097_152.0 + lo / 2048.0; // 32 + 21 bits
            m.cast(DType::F64) * (1.0 / 9_007_199_254_740_992.0)
        }
        d => panic!("random: floating samplers need dtype f32 or f64, got {d}"),
    }
}

/// Uniform in `[0, 1)` of the given float dtype.
///
/// ```
/// use cotangent::{random, DType};
/// let u = random::uniform(&random::key(0), &[1000], DType::F32).to_vec::<f32>();
/// let mean = u.iter().sum::<f32>() / 1000.0;
/// assert!((mean - 0.5).abs() < 0.05);
/// ```
#[track_caller]
pub fn uniform(key: &Tensor, shape: &[usize], dtype: DType) -> Tensor {
    unit(key, shape, dtype)
}

/// Uniform in `[lo, hi)` of the given float dtype.
///
/// ```
/// use cotangent::{random, DType};
/// let u = random::uniform_range(&random::key(0), &[100], -2.0, 3.0, DType::F64).to_vec::<f64>();
/// assert!(u.iter().all(|&x| (-2.0..3.0).contains(&x)));
/// ```
#[track_caller]
pub fn uniform_range(key: &Tensor, shape: &[usize], lo: f64, hi: f64, dtype: DType) -> Tensor {
    assert!(lo < hi, "uniform_range: need lo < hi, got [{lo}, {hi})");
    let u = unit(key, shape, dtype);
    let x = u * (hi - lo) + lo;
    // Rounding can reach `hi`; keep the interval half-open.
    x.maximum(lo).minimum(below(hi, dtype))
}

/// The largest value of `dtype` below `x`.
fn below(x: f64, dtype: DType) -> f64 {
    match dtype {
        DType::F32 => next_down_f32(x as f32) as f64,
        _ => next_down_f64(x),
    }
}

fn next_down_f64(x: f64) -> f64 {
    if x == 0.0 {
        -f64::from_bits(1)
    } else if x > 0.0 {
        f64::from_bits(x.to_bits() - 1)
    } else {
        f64::from_bits(x.to_bits() + 1)
    }
}

fn next_down_f32(x: f32) -> f32 {
    if x == 0.0 {
        -f32::from_bits(1)
    } else if x > 0.0 {
        f32::from_bits(x.to_bits() - 1)
    } else {
        f32::from_bits(x.to_bits() + 1)
    }
}

/// The smallest value of `dtype` above `x`.
fn above(x: f64, dtype: DType) -> f64 {
    -below(-x, dtype)
}

/// Standard normal samples, by the inverse CDF: `√2 · erfinv(u)` with `u` uniform in
/// `(-1, 1)` (as JAX does).
///
/// ```
/// use cotangent::{random, DType};
/// let z = random::normal(&random::key(3), &[2000], DType::F64).to_vec::<f64>();
/// let mean = z.iter().sum::<f64>() / 2000.0;
/// assert!(mean.abs() < 0.1);
/// ```
#[track_caller]
pub fn normal(key: &Tensor, shape: &[usize], dtype: DType) -> Tensor {
    let u = uniform_range(key, shape, above(-1.0, dtype), 1.0, dtype);
    u.erfinv() * std::f64::consts::SQRT_2
}

/// Normal samples truncated to `[lower, upper]` (in standard deviations), by the inverse
/// CDF on `[Φ(lower), Φ(upper)]` (as JAX does). Used for initialisation with `(-2, 2)`.
///
/// ```
/// use cotangent::{random, DType};
/// let z = random::truncated_normal(&random::key(0), -2.0, 2.0, &[500], DType::F32).to_vec::<f32>();
/// assert!(z.iter().all(|&x| (-2.0..=2.0).contains(&x)));
/// ```
#[track_caller]
pub fn truncated_normal(key: &Tensor, lower: f64, upper: f64, shape: &[usize], dtype: DType) -> Tensor {
    assert!(lower < upper, "truncated_normal: need lower < upper, got [{lower}, {upper}]");
    let s = std::f64::consts::SQRT_2;
    let a = libm::erf(lower / s);
    let b = libm::erf(upper / s);
    let u = uniform_range(key, shape, a, b, dtype).maximum(above(-1.0, dtype));
    let z = u.erfinv() * s;
    z.maximum(above(lower, dtype)).minimum(below(upper, dtype))
}

/// `true` with probability `p`, independently for each element.
///
/// ```
/// use cotangent::random;
/// let b = random::bernoulli(&random::key(0), 0.3, &[1000]).to_vec::<bool>();
/// let hits = b.iter().filter(|&&x| x).count();
/// assert!((250..350).contains(&hits));
/// ```
#[track_caller]
pub fn bernoulli(key: &Tensor, p: f64, shape: &[usize]) -> Tensor {
    assert!((0.0..=1.0).contains(&p), "bernoulli: p must be in [0, 1], got {p}");
    unit(key, shape, DType::F64).lt(p)
}

/// Samples class indices (`i64`) from unnormalised log-probabilities along `axis`, by the
/// Gumbel-max trick: `argmax(logits + gumbel)`. The output drops `axis`.
///
/// ```
/// use cotangent::{random, Tensor};
/// let logits = Tensor::from_vec(vec![0.0, 0.0, -1e9], &[3]);
/// let keys = random::split(&random::key(0), 100);
/// let draws: Vec<i64> = (0..100)
///     .map(|i| random::categorical(&keys.index(i), &logits, -1).item::<i64>())
///     .collect();
/// assert!(draws.iter().all(|&c| c == 0 || c == 1));
/// ```
#[track_caller]
pub fn categorical(key: &Tensor, logits: &Tensor, axis: isize) -> Tensor {
    let dtype = logits.dtype();
    assert!(dtype.is_float(), "categorical: logits must be f32 or f64, got {}", logits.ty());
    let tiny = match dtype {
        DType::F32 => f32::MIN_POSITIVE as f64,
        _ => f64::MIN_POSITIVE,
    };
    let u = uniform_range(key, &logits.shape(), tiny, 1.0, dtype);
    let gumbel = -(-u.log()).log();
    (logits.stop_gradient() + gumbel).argmax(axis, false)
}

/// Integers (`i64`) uniform in `lo..hi`.
///
/// Computed as `lo + ⌊u · (hi - lo)⌋` from a 53-bit uniform `u`: the bias is at most
/// `(hi - lo) / 2^53` per value, far below what any test could see for spans below 2^32.
///
/// ```
/// use cotangent::random;
/// let d = random::randint(&random::key(0), &[100], 1, 7).to_vec::<i64>();
/// assert!(d.iter().all(|&x| (1..7).contains(&x)));
/// ```
#[track_caller]
pub fn randint(key: &Tensor, shape: &[usize], lo: i64, hi: i64) -> Tensor {
    assert!(lo < hi, "randint: need lo < hi, got {lo}..{hi}");
    let span = (hi - lo) as f64;
    let u = unit(key, shape, DType::F64);
    let k = (u * span).floor().cast(DType::I64);
    k.minimum((hi - lo - 1) as f64) + lo as f64
}

/// A uniformly random permutation of `0..n` (`i64`), by sorting 63-bit random keys.
///
/// ```
/// use cotangent::random;
/// let mut p = random::permutation(&random::key(0), 10).to_vec::<i64>();
/// p.sort();
/// assert_eq!(p, (0..10).collect::<Vec<i64>>());
/// ```
#[track_caller]
pub fn permutation(key: &Tensor, n: usize) -> Tensor {
    let (hi, lo) = word_pairs(key, &[n]);
    let sort_key = hi * 2_147_483_648.0 + lo / 2.0; // 32 + 31 bits, non-negative
    sort_key.argsort(-1, false)
}

/// `x` with its slices along `axis` in a random order.
///
/// ```
/// use cotangent::{random, Tensor};
/// let x = Tensor::from_vec(vec![0.0, 1.0, 2.0, 3.0], &[4]);
/// let y = random::shuffle(&random::key(0), &x, 0).to_vec::<f64>();
/// assert_eq!(y.iter().sum::<f64>(), 6.0);
/// ```
#[track_caller]
pub fn shuffle(key: &Tensor, x: &Tensor, axis: isize) -> Tensor {
    let a = crate::shape::normalize_axis(axis, x.rank()).unwrap_or_else(|e| panic!("shuffle: {e}"));
    let p = permutation(key, x.shape()[a]);
    x.take(&p, axis)
}

/// Dropout mask helper: keeps each element with probability `1 - rate`, scaling kept
/// values by `1 / (1 - rate)` so the expectation is unchanged.
///
/// ```
/// use cotangent::{random, DType, Tensor};
/// let x = Tensor::ones(&[1000], DType::F32);
/// let y = random::dropout(&random::key(0), &x, 0.5).to_vec::<f32>();
/// assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
/// ```
#[track_caller]
pub fn dropout(key: &Tensor, x: &Tensor, rate: f64) -> Tensor {
    assert!((0.0..1.0).contains(&rate), "dropout: rate must be in [0, 1), got {rate}");
    if rate == 0.0 {
        return x.clone();
    }
    let keep = bernoulli(key, 1.0 - rate, &x.shape());
    where_(&keep, &(x / (1.0 - rate)), &x.zeros_like())
}

trait IndexLastButOne {
    fn index_last_but_one(&self, i: usize) -> Tensor;
}

impl IndexLastButOne for Tensor {
    /// Row `i` of the key axis of a `[k..., n, 2]` tensor of keys.
    fn index_last_but_one(&self, i: usize) -> Tensor {
        let i = i as isize;
        self.slice_axis(-2, i, i + 1, 1).squeeze(&[-2])
    }
}
