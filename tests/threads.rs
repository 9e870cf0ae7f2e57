//! `COTANGENT_THREADS` and `set_threads`: every parallel path (fused loops and their
//! reductions, native or interpreted, reduction and arg-reduction kernels, random bits,
//! products through gemm, products run side by side in a plan, gradients) gives the same
//! bits on one thread as on several.
//!
//! The setting is read once per process, so each case runs in a child process: this test
//! binary run again with `COTANGENT_TEST_THREADS_CHILD=1` and the environment under test.
//! The children print a hash of each workload's bits; the parent compares them.

use cotangent::*;
use std::process::{Command, Stdio};

const CHILD: &str = "COTANGENT_TEST_THREADS_CHILD";

fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// FNV-1a over the bits of every element.
fn hash(ts: &[Tensor]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |bits: u64| {
        for b in bits.to_le_bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    };
    for t in ts {
        match t.dtype() {
            DType::F32 => t.to_vec::<f32>().iter().for_each(|v| eat(v.to_bits() as u64)),
            DType::F64 => t.to_vec::<f64>().iter().for_each(|v| eat(v.to_bits())),
            DType::I64 => t.to_vec::<i64>().iter().for_each(|&v| eat(v as u64)),
            d => panic!("unexpected dtype {d}"),
        }
    }
    h
}

/// Runs `f` three times jitted (traced graph, then the interpreted plan, then native loops
/// where a C compiler works) and hashes the last result, checking all three agree.
fn jitted(f: impl Fn(&Tensor) -> Tensor, x: &Tensor) -> u64 {
    let g = jit(f);
    let runs: Vec<u64> = (0..3).map(|_| hash(&[g(x)])).collect();
    assert!(runs.iter().all(|&r| r == runs[0]), "calls of one jitted function differ: {runs:?}");
    runs[0]
}

/// Each workload's name and hash, every size above the kernels' thresholds for threads.
fn workloads() -> Vec<(&'static str, u64)> {
    let key = random::key(7);
    let ks = random::split(&key, 4);
    let long = random::normal(&ks.index(0), &[1 << 18], DType::F32);
    let wide = random::normal(&ks.index(1), &[256, 1024], DType::F64);
    let deep = random::normal(&ks.index(2), &[16, 1024, 8], DType::F64);
    let (a, b) = (wide.reshape(&[512, 512]), random::normal(&ks.index(3), &[512, 512], DType::F64));
    let mut out = vec![
        ("random bits", hash(&[long.clone(), wide.clone()])),
        ("long row, fused", jitted(|x| (x.sin() * x.exp()).sum_all(), &long)),
        ("rows, fused", jitted(|x| x.tanh().exp().sum(&[1], false), &wide)),
        ("map, fused", jitted(|x| ((x * 1.5).sin() + 1.0).tanh(), &long)),
        ("middle axis", hash(&[deep.sum(&[1], false), deep.max(&[1], false)])),
        ("trailing axis", hash(&[wide.sum(&[1], false), wide.max(&[1], false)])),
        ("argmax", hash(&[wide.argmax(1, false), wide.argmax(0, false), deep.argmax(1, false)])),
        ("product", hash(&[a.matmul(&b), a.matmul(&b.t())])),
    ];
    // Two independent products (run side by side on several threads).
    let pair = jit(|xs: &(Tensor, Tensor, Tensor)| (xs.0.matmul(&xs.1).tanh(), xs.0.matmul(&xs.2).exp()));
    let args = (a.clone(), b.clone(), wide.reshape(&[512, 512]));
    let runs: Vec<u64> = (0..3)
        .map(|_| {
            let (p, q) = pair(&args);
            hash(&[p, q])
        })
        .collect();
    assert!(runs.iter().all(|&r| r == runs[0]));
    out.push(("side-by-side products", runs[0]));
    // A gradient through products, element-wise code and reductions.
    let loss = |w: &Tensor| (a.matmul(w).tanh().matmul(&b) * 0.01).exp().sum_all();
    let g = grad(loss);
    let w = b.t();
    let runs: Vec<u64> = (0..3).map(|_| hash(&[g(&w)])).collect();
    assert!(runs.iter().all(|&r| r == runs[0]));
    out.push(("gradient", runs[0]));
    out
}

/// The child's part: prints `threads=N` and one `hash name` line per workload.
fn child_body() {
    if let Ok(n) = std::env::var("COTANGENT_TEST_SET_THREADS") {
        set_threads(n.parse().unwrap()).expect("set_threads before first use");
    }
    println!("threads={}", threads());
    for (name, h) in workloads() {
        println!("hash {h:016x} {name}");
    }
}

/// Runs the child with `env`; returns its stdout (and fails if it fails).
fn run_child(env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env_remove("COTANGENT_THREADS")
        .env_remove("RAYON_NUM_THREADS")
        .env_remove("COTANGENT_TEST_SET_THREADS")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "child with {env:?} failed:\n{stdout}\n{stderr}");
    // Warnings go to stderr; keep them with the verdicts.
    let warnings: String = stderr.lines().filter(|l| l.starts_with("cotangent:")).map(|l| format!("{l}\n")).collect();
    format!("{warnings}{stdout}")
}

fn threads_line(out: &str) -> usize {
    // (libtest prints `test child ... ` before the child's first line.)
    let line = out.lines().find_map(|l| l.split_once("threads=")).expect("a threads= line").1;
    line.trim().parse().unwrap()
}

fn hashes(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.starts_with("hash ")).collect()
}

#[test]
fn child() {
    if is_child() {
        child_body();
    }
}

#[test]
fn every_thread_count_gives_the_same_bits() {
    if is_child() {
        return;
    }
    let one = run_child(&[("COTANGENT_THREADS", "1")]);
    assert_eq!(threads_line(&one), 1);
    assert_eq!(hashes(&one).len(), 10, "{one}");
    for n in ["2", "3"] {
        let many = run_child(&[("COTANGENT_THREADS", n)]);
        assert_eq!(threads_line(&many), n.parse::<usize>().unwrap(), "{many}");
        assert_eq!(hashes(&many), hashes(&one), "COTANGENT_THREADS={n} against 1");
    }
    let default = run_child(&[]);
    assert_eq!(threads_line(&default), std::thread::available_parallelism().unwrap().get());
    assert_eq!(hashes(&default), hashes(&one), "the default against 1");
}

#[test]
fn set_threads_wins_over_the_environment_and_bad_values_warn() {
    if is_child() {
        return;
    }
    let out = run_child(&[("COTANGENT_THREADS", "3"), ("COTANGENT_TEST_SET_THREADS", "1")]);
    assert_eq!(threads_line(&out), 1, "{out}");
    let out = run_child(&[("COTANGENT_THREADS", "zero")]);
    assert!(out.contains("cotangent: COTANGENT_THREADS=\"zero\" is not a positive integer"), "{out}");
    assert_eq!(threads_line(&out), std::thread::available_parallelism().unwrap().get());
}

#[test]
fn set_threads_after_first_use_is_an_error() {
    if is_child() {
        return;
    }
    // Fixes the setting in this process (whatever it is), then asks for another.
    let n = threads();
    assert!(set_threads(n + 1).is_err());
    assert!(matches!(set_threads(0), Err(Error::Threads { .. })));
}
