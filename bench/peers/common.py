"""Shared helpers for the peer benchmarks: the same data and timing rule as benches/workloads.rs."""
import time

import numpy as np


def uniform(n, seed, scale):
    """The same deterministic values as the Rust benchmark's `uniform` (64-bit LCG)."""
    mask = (1 << 64) - 1
    s = (seed * 6364136223846793005 + 1442695040888963407) & mask
    out = np.empty(n)
    for i in range(n):
        s = (s * 6364136223846793005 + 1442695040888963407) & mask
        out[i] = ((s >> 11) / float(1 << 53) * 2.0 - 1.0) * scale
    return out


def fast_uniform(n, seed, scale):
    """Large inputs: values from numpy's generator (the workload's cost does not depend on them)."""
    return np.random.default_rng(seed).uniform(-scale, scale, n)


def median_seconds(f):
    f()  # warm-up (compiles)
    t = time.perf_counter()
    f()
    once = max(time.perf_counter() - t, 1e-7)
    reps = int(min(max(0.5 / once, 5), 2000))
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[reps // 2]


def report(name, seconds):
    print(f"{name} {seconds:.6e}", flush=True)


def mlp_arrays(sizes, seed):
    """Glorot-uniform weights and zero biases as numpy arrays, as benches/workloads.rs makes them."""
    p = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        scale = np.sqrt(6.0 / (a + b))
        p.append(uniform(a * b, seed + k, scale).reshape(a, b))
        p.append(np.zeros(b))
    return p


def node_arrays():
    """w9: the vector field's MLP 2-64-64-2 (Glorot-uniform weights times 2, zero biases; at
    Glorot scale the field is nearly linear and Dopri5 takes 3 steps) and 256 initial states,
    as benches/workloads.rs makes them."""
    p = [a * 2.0 if a.ndim == 2 else a for a in mlp_arrays([2, 64, 64, 2], 90)]
    return p, uniform(256 * 2, 91, 1.0).reshape(256, 2)
