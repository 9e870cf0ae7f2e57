//! Random keys and samplers: known answers, determinism across thread counts, behaviour
//! under transformations, and statistical tests that a broken sampler would fail.
//!
//! The statistical tests use fixed keys, so they are deterministic; their thresholds are
//! the 0.1% critical values, so a correct sampler passes them for all but one key in a
//! thousand, while a biased one (wrong scale, shifted, correlated) fails by a wide margin.

use cotangent::random::{self, threefry2x32};
use cotangent::{grad, jit, vmap, DType, Tensor};

#[test]
fn threefry_known_answers() {
    // Random123's known-answer tests for threefry2x32_20 (also in JAX's test-suite).
    assert_eq!(threefry2x32([0, 0], [0, 0]), [0x6b200159, 0x99ba4efe]);
    assert_eq!(threefry2x32([u32::MAX, u32::MAX], [u32::MAX, u32::MAX]), [0x1cb996fc, 0xbb002be7]);
    assert_eq!(threefry2x32([0x13198a2e, 0x03707344], [0x243f6a88, 0x85a308d3]), [0xc4923a9c, 0x483df7a0]);
}

#[test]
fn bits_follow_the_documented_counter_layout() {
    let key = random::key((5u64 << 32) | 9);
    let bits = random::random_bits(&key, &[3, 3]).to_vec::<i64>();
    for (i, b) in bits.iter().enumerate() {
        let block = (i / 2) as u64;
        let w = threefry2x32([5, 9], [(block >> 32) as u32, block as u32]);
        assert_eq!(*b, w[i % 2] as i64, "element {i}");
    }
}

#[test]
fn same_numbers_on_any_thread_count() {
    // Large enough to be split across threads by the kernel.
    let key = random::key(2024);
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| {
            (
                random::random_bits(&key, &[300_001]).to_vec::<i64>(),
                random::normal(&random::split(&key, 3), &[40_000], DType::F32).to_vec::<f32>(),
            )
        })
    };
    let one = run(1);
    for threads in [2, 3, 8] {
        assert!(one == run(threads), "{threads} threads gave other numbers");
    }
    // And the parallel result is the serial definition.
    let serial: Vec<i64> = (0..300_001usize)
        .map(|i| {
            let b = (i / 2) as u64;
            threefry2x32([0, 2024], [(b >> 32) as u32, b as u32])[i % 2] as i64
        })
        .collect();
    assert!(one.0 == serial);
}

#[test]
fn keys_split_and_fold_in() {
    let k = random::key(0);
    let keys = random::split(&k, 4);
    assert_eq!(keys.shape(), vec![4, 2]);
    let words = keys.to_vec::<i64>();
    assert!(words.iter().all(|&w| (0..1 << 32).contains(&w)));
    let mut rows: Vec<&[i64]> = words.chunks(2).collect();
    rows.sort();
    rows.dedup();
    assert_eq!(rows.len(), 4, "split keys are distinct");
    // fold_in: deterministic, distinct per datum (including negative ones), and unlike split.
    let f: Vec<Vec<i64>> = [-1i64, 0, 1, 2, 1 << 40].iter().map(|&d| random::fold_in(&k, d).to_vec::<i64>()).collect();
    for i in 0..f.len() {
        assert_eq!(f[i].len(), 2);
        for j in 0..i {
            assert_ne!(f[i], f[j]);
        }
        for r in &rows {
            assert_ne!(&f[i][..], *r);
        }
    }
    assert_eq!(random::fold_in(&k, 7).to_vec::<i64>(), random::fold_in(&k, 7).to_vec::<i64>());
    // Batched keys split into a batch of key sets.
    assert_eq!(random::split(&keys, 3).shape(), vec![4, 3, 2]);
}

#[test]
fn vmap_over_keys_matches_a_loop_and_batched_keys() {
    let keys = random::split(&random::key(11), 5);
    let sample =
        |k: &Tensor| random::normal(k, &[3], DType::F64) + random::uniform(&random::fold_in(k, 1), &[3], DType::F64);
    let mapped = vmap(sample)(&keys);
    let looped: Vec<Tensor> = (0..5).map(|i| sample(&keys.index(i))).collect();
    assert_eq!(mapped.to_vec::<f64>(), cotangent::stack(&looped, 0).to_vec::<f64>());
    // A batch of keys given directly is the same as vmap.
    let direct = random::normal(&keys, &[3], DType::F64);
    let mapped_normal = vmap(|k: &Tensor| random::normal(k, &[3], DType::F64))(&keys);
    assert_eq!(direct.to_vec::<f64>(), mapped_normal.to_vec::<f64>());
    // Permutations and categorical draws batch too.
    let perms = vmap(|k: &Tensor| random::permutation(k, 6))(&keys);
    for i in 0..5 {
        assert_eq!(perms.index(i).to_vec::<i64>(), random::permutation(&keys.index(i), 6).to_vec::<i64>());
    }
}

#[test]
fn samplers_inside_grad_are_constants() {
    let key = random::key(3);
    let x = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]);
    let g = grad(|x: &Tensor| (x * random::normal(&key, &[3], DType::F64)).sum_all())(&x);
    assert_eq!(g.to_vec::<f64>(), random::normal(&key, &[3], DType::F64).to_vec::<f64>());
    // A traced key (the key is an input of the traced function: jit's argument).
    let g2 =
        jit(|(x, k): &(Tensor, Tensor)| grad(|x: &Tensor| (x * random::uniform(k, &[3], DType::F64)).sum_all())(x))(&(
            x.clone(),
            key.clone(),
        ));
    assert_eq!(g2.to_vec::<f64>(), random::uniform(&key, &[3], DType::F64).to_vec::<f64>());
}

// ---------------------------------------------------------------------------
// Statistics.
// ---------------------------------------------------------------------------

fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, var)
}

/// Kolmogorov–Smirnov statistic of a sample against a CDF.
fn ks(mut v: Vec<f64>, cdf: impl Fn(f64) -> f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len() as f64;
    v.iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = cdf(x);
            (f - i as f64 / n).abs().max((f - (i + 1) as f64 / n).abs())
        })
        .fold(0.0, f64::max)
}

/// The KS critical value at level 0.001 for `n` samples.
fn ks_critical(n: usize) -> f64 {
    1.949 / (n as f64).sqrt()
}

/// Pearson's chi-square statistic of counts against expected probabilities.
fn chi_square(counts: &[usize], probs: &[f64]) -> f64 {
    let n: usize = counts.iter().sum();
    counts
        .iter()
        .zip(probs)
        .map(|(&c, &p)| {
            let e = n as f64 * p;
            (c as f64 - e).powi(2) / e
        })
        .sum()
}

/// Chi-square critical values at level 0.001, by degrees of freedom.
fn chi_critical(df: usize) -> f64 {
    match df {
        4 => 18.467,
        9 => 27.877,
        19 => 43.820,
        _ => panic!("no table entry for {df} degrees of freedom"),
    }
}

fn normal_cdf(x: f64) -> f64 {
    0.5 * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
}

const N: usize = 20_000;

#[test]
fn uniform_moments_and_ks() {
    for dtype in [DType::F32, DType::F64] {
        let u = random::uniform(&random::key(1), &[N], dtype).to_f64_vec();
        assert!(u.iter().all(|&x| (0.0..1.0).contains(&x)));
        let (m, v) = mean_var(&u);
        let se = (1.0 / 12.0 / N as f64).sqrt();
        assert!((m - 0.5).abs() < 4.0 * se, "{dtype}: mean {m}");
        assert!((v - 1.0 / 12.0).abs() < 0.004, "{dtype}: variance {v}");
        let d = ks(u, |x| x.clamp(0.0, 1.0));
        assert!(d < ks_critical(N), "{dtype}: KS statistic {d}");
    }
    let r = random::uniform_range(&random::key(2), &[N], -3.0, 5.0, DType::F64).to_vec::<f64>();
    assert!(r.iter().all(|&x| (-3.0..5.0).contains(&x)));
    let d = ks(r, |x| ((x + 3.0) / 8.0).clamp(0.0, 1.0));
    assert!(d < ks_critical(N), "uniform_range KS {d}");
}

#[test]
fn normal_moments_and_ks() {
    for dtype in [DType::F32, DType::F64] {
        let z = random::normal(&random::key(5), &[N], dtype).to_f64_vec();
        assert!(z.iter().all(|x| x.is_finite()));
        let (m, v) = mean_var(&z);
        assert!(m.abs() < 4.0 / (N as f64).sqrt(), "{dtype}: mean {m}");
        assert!((v - 1.0).abs() < 0.05, "{dtype}: variance {v}");
        let skew = z.iter().map(|x| (x - m).powi(3)).sum::<f64>() / N as f64 / v.powf(1.5);
        let kurt = z.iter().map(|x| (x - m).powi(4)).sum::<f64>() / N as f64 / (v * v);
        assert!(skew.abs() < 0.1, "{dtype}: skewness {skew}");
        assert!((kurt - 3.0).abs() < 0.2, "{dtype}: kurtosis {kurt}");
        let d = ks(z, normal_cdf);
        assert!(d < ks_critical(N), "{dtype}: KS statistic {d}");
    }
}

#[test]
fn truncated_normal_bounds_and_ks() {
    let (a, b) = (-1.0, 2.0);
    let z = random::truncated_normal(&random::key(8), a, b, &[N], DType::F64).to_vec::<f64>();
    assert!(z.iter().all(|&x| x > a && x < b));
    let (fa, fb) = (normal_cdf(a), normal_cdf(b));
    let d = ks(z.clone(), |x| ((normal_cdf(x) - fa) / (fb - fa)).clamp(0.0, 1.0));
    assert!(d < ks_critical(N), "KS statistic {d}");
    // The mean of a truncated normal: (φ(a) − φ(b)) / (Φ(b) − Φ(a)).
    let phi = |x: f64| (-x * x / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let expect = (phi(a) - phi(b)) / (fb - fa);
    let (m, _) = mean_var(&z);
    assert!((m - expect).abs() < 0.02, "mean {m} vs {expect}");
    let f32s = random::truncated_normal(&random::key(9), -2.0, 2.0, &[N], DType::F32).to_vec::<f32>();
    assert!(f32s.iter().all(|&x| x > -2.0 && x < 2.0));
}

#[test]
fn bernoulli_frequency() {
    for p in [0.1, 0.5, 0.93] {
        let b = random::bernoulli(&random::key(4), p, &[N]).to_vec::<bool>();
        let k = b.iter().filter(|&&x| x).count();
        let chi = chi_square(&[k, N - k], &[p, 1.0 - p]);
        assert!(chi < 10.83, "p = {p}: {k} of {N}, chi-square {chi}"); // df 1 at 0.001
    }
    assert!(random::bernoulli(&random::key(4), 0.0, &[100]).to_vec::<bool>().iter().all(|&x| !x));
    assert!(random::bernoulli(&random::key(4), 1.0, &[100]).to_vec::<bool>().iter().all(|&x| x));
}

#[test]
fn randint_chi_square() {
    let d = random::randint(&random::key(6), &[N], -3, 7).to_vec::<i64>();
    let mut counts = vec![0usize; 10];
    for &x in &d {
        assert!((-3..7).contains(&x));
        counts[(x + 3) as usize] += 1;
    }
    let chi = chi_square(&counts, &[0.1; 10]);
    assert!(chi < chi_critical(9), "chi-square {chi}: {counts:?}");
}

#[test]
fn categorical_chi_square() {
    let logits = Tensor::from_vec(vec![0.0, 1.0, -1.0, 2.0, 0.5], &[5]);
    let probs = logits.softmax(0).to_vec::<f64>();
    let keys = random::split(&random::key(7), N);
    let draws = vmap(|k: &Tensor| random::categorical(k, &logits, -1))(&keys).to_vec::<i64>();
    let mut counts = vec![0usize; 5];
    draws.iter().for_each(|&c| counts[c as usize] += 1);
    let chi = chi_square(&counts, &probs);
    assert!(chi < chi_critical(4), "chi-square {chi}: {counts:?} vs {probs:?}");
    // One key, a batch of logit rows: one draw per row.
    let rows = random::categorical(&random::key(1), &logits.broadcast_to(&[N, 5]), 1).to_vec::<i64>();
    let mut counts = vec![0usize; 5];
    rows.iter().for_each(|&c| counts[c as usize] += 1);
    let chi = chi_square(&counts, &probs);
    assert!(chi < chi_critical(4), "chi-square {chi}: {counts:?}");
}

#[test]
fn permutation_is_uniform() {
    let n = 5;
    let trials = 10_000;
    let keys = random::split(&random::key(12), trials);
    let perms = vmap(|k: &Tensor| random::permutation(k, n))(&keys).to_vec::<i64>();
    // Every row is a permutation; the position of each element is uniform.
    let mut pos = vec![vec![0usize; n]; n];
    for row in perms.chunks(n) {
        let mut s = row.to_vec();
        s.sort();
        assert_eq!(s, (0..n as i64).collect::<Vec<_>>());
        for (p, &v) in row.iter().enumerate() {
            pos[v as usize][p] += 1;
        }
    }
    for counts in &pos {
        let chi = chi_square(counts, &vec![1.0 / n as f64; n]);
        assert!(chi < chi_critical(4), "positions {counts:?}, chi-square {chi}");
    }
    // A larger permutation is still a permutation.
    let mut big = random::permutation(&random::key(0), 100_000).to_vec::<i64>();
    big.sort();
    assert!(big.iter().enumerate().all(|(i, &v)| v == i as i64));
    // Shuffling moves rows together.
    let x = Tensor::from_vec((0..20).map(|v| v as f64).collect(), &[10, 2]);
    let s = random::shuffle(&random::key(3), &x, 0).to_vec::<f64>();
    assert!(s.chunks(2).all(|r| r[1] == r[0] + 1.0));
}

#[test]
fn split_streams_are_uncorrelated() {
    let keys = random::split(&random::key(21), 2);
    let a = random::normal(&keys.index(0), &[N], DType::F64).to_vec::<f64>();
    let b = random::normal(&keys.index(1), &[N], DType::F64).to_vec::<f64>();
    let r = a.iter().zip(&b).map(|(x, y)| x * y).sum::<f64>() / N as f64;
    assert!(r.abs() < 4.0 / (N as f64).sqrt(), "correlation {r}");
    // Neighbouring elements of one stream are uncorrelated too.
    let lag = a.windows(2).map(|w| w[0] * w[1]).sum::<f64>() / N as f64;
    assert!(lag.abs() < 4.0 / (N as f64).sqrt(), "lag-1 correlation {lag}");
}

#[test]
fn uniform_histogram_chi_square() {
    let u = random::uniform(&random::key(30), &[N], DType::F32).to_f64_vec();
    let mut counts = vec![0usize; 20];
    u.iter().for_each(|&x| counts[(x * 20.0) as usize] += 1);
    let chi = chi_square(&counts, &[0.05; 20]);
    assert!(chi < chi_critical(19), "chi-square {chi}");
}

#[test]
fn dropout_keeps_expectation() {
    let x = Tensor::ones(&[N], DType::F64);
    let y = random::dropout(&random::key(1), &x, 0.25).to_vec::<f64>();
    let kept = y.iter().filter(|&&v| v != 0.0).count();
    assert!(y.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-12));
    let chi = chi_square(&[kept, N - kept], &[0.75, 0.25]);
    assert!(chi < 10.83, "kept {kept} of {N}");
}
