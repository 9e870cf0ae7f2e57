#!/usr/bin/env python3
"""Runs GradBench's JAX tool with each timed call blocked until its result is ready.

    gradbench_jax_blocked.py CHECKOUT/python/gradbench/gradbench/tools/jax/run.py [ARGS...]

GradBench's `wrap.multiple_runs` and `wrap.function` time `function(input)` and convert
the output afterwards, untimed; JAX dispatches asynchronously, so the timing of a jitted
call can end before the computation does (at lse's largest size: 0.03 ms for a
million-element reduction). This wrapper replaces the two decorators, before any tool
module is imported, by copies that call `jax.block_until_ready` on the output inside the
timed region, then runs the tool's own run.py unchanged. Everything else (the tool's
modules, its jit placement, its CPU pinning) is upstream's, except that 64-bit floats
are switched on for every module (upstream's gmm, kmeans, llsq and lse modules do so
themselves; its ode module does not and would otherwise compute in float32, unlike the
other tools).
"""

import os
import runpy
import sys
import time

import jax
from gradbench import wrap


def _function(*, pre, post):
    def decorator(function):
        def wrapped(input_raw):
            input = pre(input_raw)
            start = time.perf_counter_ns()
            output = jax.block_until_ready(function(input))
            end = time.perf_counter_ns()
            return wrap.OutputAndTimings(
                success=True,
                output=post(output),
                timings=[wrap.Timing(name="evaluate", nanoseconds=end - start)],
            )

        return wrap.Wrapped(function=function, wrapped=wrapped)

    return decorator


def _multiple_runs(*, min_runs=lambda x: x["min_runs"], min_seconds=lambda x: x["min_seconds"], pre, post):
    def decorator(function):
        def wrapped(input_raw):
            timings = []
            elapsed = 0.0
            input = pre(input_raw)
            runs, seconds = min_runs(input_raw), min_seconds(input_raw)
            while len(timings) < runs or elapsed < seconds:
                start = time.perf_counter_ns()
                output = jax.block_until_ready(function(input))
                end = time.perf_counter_ns()
                timings.append(wrap.Timing(name="evaluate", nanoseconds=end - start))
                elapsed += (end - start) / 1e9
            return wrap.OutputAndTimings(success=True, output=post(output), timings=timings)

        return wrap.Wrapped(function=function, wrapped=wrapped)

    return decorator


def main():
    run_py = os.path.abspath(sys.argv[1])
    jax.config.update("jax_enable_x64", True)
    wrap.function = _function
    wrap.multiple_runs = _multiple_runs
    sys.argv = [run_py] + sys.argv[2:]
    sys.path.insert(0, os.path.dirname(run_py))  # as `python run.py` would
    runpy.run_path(run_py, run_name="__main__")


if __name__ == "__main__":
    main()
