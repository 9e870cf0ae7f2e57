#!/usr/bin/env bash
# Runs GradBench's own evals (its Python harness, at the evals' default sizes) against
# gradbench-tool, and against a reference tool beside it, and prints the timings as a table.
#
# Usage: bench/gradbench.sh [GRADBENCH_CHECKOUT] [EVAL...]
#
#   GRADBENCH_CHECKOUT  a checkout of https://github.com/gradbench/gradbench (or $GRADBENCH);
#                       kept outside this repository. Without one, this prints how to get it
#                       and exits 0.
#   EVAL...             evals to run (default: hello lse llsq gmm kmeans ode lstm det particle
#                       saddle ba ht)
#
# Environment:
#   GRADBENCH_PYTHON     python with numpy, pydantic and dataclasses-json, and scipy for gmm
#                        (default: python3)
#   GRADBENCH_EVAL_ARGS  extra arguments for every eval, e.g. "--min-runs 1 --min-seconds 0"
#                        (default: none, so GradBench's defaults: all sizes, ≥ 1 s per input)
#   GRADBENCH_EVAL_ARGS_<eval>  extra arguments for that eval only, after GRADBENCH_EVAL_ARGS
#                        (e.g. GRADBENCH_EVAL_ARGS_ht="--max 11" when hand12's data is absent)
#   GRADBENCH_TOOL_ARGS  arguments for gradbench-tool (default: none = one thread, as
#                        GradBench runs tools; "--multithreaded" for every core)
#   GRADBENCH_REFERENCE  reference tools, space-separated (default: "manual"; "" for none):
#                        "jax" and "pytorch" run GradBench's own Python tools
#                        (python/gradbench/gradbench/tools/<tool>/run.py, as its Dockerfiles
#                        do) on one thread: JAX pins itself to CPU 0 (upstream) and gets
#                        XLA_FLAGS=--xla_cpu_multi_thread_eigen=false
#                        intra_op_parallelism_threads=1; PyTorch gets OMP_NUM_THREADS=1 and
#                        MKL_NUM_THREADS=1. JAX runs through bench/gradbench_jax_blocked.py,
#                        which times each call up to jax.block_until_ready (upstream's
#                        wrapper stops the clock at dispatch) and switches on float64 for
#                        every module. Any other name is a C++ tool run through
#                        GradBench's cpp.py (e.g. "manual", GradBench's hand-written C++).
#                        A tool is skipped on an eval it has no module for.
#   GRADBENCH_TOOLS_PYTHON  python for the jax and pytorch tools: GRADBENCH_PYTHON's packages
#                        plus jax and torch (default: GRADBENCH_PYTHON)
#   GRADBENCH_COTANGENT  0 to run only the reference tools (their times do not depend on
#                        this repository, so they can be measured once on a quiet machine)
#   GRADBENCH_TIMEOUT    seconds per eval and tool before both are stopped (default: 3600)
#   GRADBENCH_OUT        where the logs go (default: target/gradbench), one JSON-lines log per
#                        eval and tool in the format of `gradbench run -o`
#
# The evals validate each output against GradBench's `manual` tool, whose binaries they run
# from tools/manual/bin; this script builds the ones it needs (`make -C cpp` first fetches
# cpp/json.hpp, nlohmann/json 3.11.3; put it there by hand on a machine without network).
# GradBench's CLI is not needed: bench/gradbench_relay.py relays the messages as it does.
# The lstm eval reads evals/lstm/data/lstm_full.txt from the checkout (a large file).
#
# cotangent runs each eval with a fresh, empty kernel cache (COTANGENT_CACHE_DIR in a new
# temporary directory), so its first call per input ("first ms") includes any compilation.
# Every tool's peak resident memory (MiB, from wait4's rusage: the tool and the processes it
# waited for) is printed per eval.
#
# The tables give, per input, the mean of the tool's evaluate timings (what GradBench's own
# summary scores: with the default --min-seconds 1 an input slower than ~0.5 s runs twice,
# so a first call that traces and compiles weighs half) and the minimum (the steady state).
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
all_evals="hello lse llsq gmm kmeans ode lstm det particle saddle ba ht"

checkout="${GRADBENCH:-}"
if [ $# -gt 0 ] && [ -d "$1" ]; then
  checkout="$1"
  shift
fi
if [ -z "$checkout" ] || [ ! -f "$checkout/python/gradbench/gradbench/eval.py" ]; then
  cat <<EOF
No GradBench checkout${checkout:+ at $checkout} (python/gradbench/gradbench/eval.py not found).
To run GradBench's evals against gradbench-tool:

  git clone https://github.com/gradbench/gradbench ~/gradbench   # outside this repository
  python3 -m venv ~/gradbench/.venv
  ~/gradbench/.venv/bin/pip install numpy pydantic dataclasses-json scipy
  make -C ~/gradbench/cpp            # fetches cpp/json.hpp; needs a C++ compiler
  GRADBENCH_PYTHON=~/gradbench/.venv/bin/python bench/gradbench.sh ~/gradbench [EVAL...]

Quick check at small sizes: GRADBENCH_EVAL_ARGS="--min-runs 1 --min-seconds 0" bench/gradbench.sh ...
EOF
  exit 0
fi
checkout="$(cd "$checkout" && pwd)"
evals="${*:-$all_evals}"
py="${GRADBENCH_PYTHON:-python3}"
eval_args="${GRADBENCH_EVAL_ARGS:-}"
tool_args="${GRADBENCH_TOOL_ARGS:-}"
references="${GRADBENCH_REFERENCE-manual}"
tools_py="${GRADBENCH_TOOLS_PYTHON:-$py}"
timeout="${GRADBENCH_TIMEOUT:-3600}"
out="${GRADBENCH_OUT:-$root/target/gradbench}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

if ! "$py" -c "import numpy, pydantic, dataclasses_json" 2>/dev/null; then
  echo "$py lacks numpy, pydantic or dataclasses-json (set GRADBENCH_PYTHON to a python that has them)" >&2
  exit 1
fi
echo "building gradbench-tool (release)..." >&2
(cd "$root" && cargo build -q --release --bin gradbench-tool) || exit 1
# A copy, so that a rebuild during the run does not change the tool under test.
cp "$root/target/release/gradbench-tool" "$out/gradbench-tool" || exit 1
tool_bin="$out/gradbench-tool"

# The evals validate against tools/manual/bin/<eval>: build the missing ones.
for e in $evals; do
  [ -f "$checkout/tools/manual/$e.cpp" ] || continue
  if [ ! -x "$checkout/tools/manual/bin/$e" ]; then
    if [ ! -f "$checkout/cpp/json.hpp" ]; then
      make -s -C "$checkout/cpp" >&2 || echo "warning: make -C cpp failed (cpp/json.hpp missing)" >&2
    fi
    echo "building GradBench's manual/$e (the evals' reference)..." >&2
    make -s -C "$checkout/tools/manual" "bin/$e" >&2 || echo "warning: manual/$e did not build: $e cannot validate" >&2
  fi
done

status=0
printf '%-9s %-10s %-10s %-28s %5s %11s %11s %11s %s\n' eval tool function input runs "mean ms" "median ms" "min ms" verdict
per_eval_args() { # eval
  local v="GRADBENCH_EVAL_ARGS_$1"
  printf '%s' "${!v:-}"
}
run_one() { # tool-name tool-command eval
  local name="$1" cmd="$2" e="$3"
  echo "== $e with $name" >&2
  (cd "$checkout" && PYTHONPATH="$checkout/python/gradbench${PYTHONPATH:+:$PYTHONPATH}" \
    "$py" "$root/bench/gradbench_relay.py" --name "$e" --label "$name" --timeout "$timeout" \
      --eval "$py python/gradbench/gradbench/evals/$e/run.py $eval_args $(per_eval_args "$e")" \
      --tool "$cmd" --log "$out/$e.$name.jsonl" --tool-stderr "$out/$e.$name.stderr" \
      --tsv "$out/rows.$name.tsv")
}
for name in cotangent $references; do : > "$out/rows.$name.tsv"; done
for e in $evals; do
  if [ ! -f "$checkout/python/gradbench/gradbench/evals/$e/run.py" ]; then
    echo "no eval $e in $checkout" >&2
    status=1
    continue
  fi
  # A fresh kernel cache per eval: the first call of each input pays any compilation.
  if [ "${GRADBENCH_COTANGENT:-1}" != 0 ]; then
    cache="$(mktemp -d "${TMPDIR:-/tmp}/cotangent-cache.XXXXXX")"
    run_one cotangent "env COTANGENT_CACHE_DIR=$cache $tool_bin $tool_args" "$e" || status=1
    rm -rf "$cache"
  fi
  for ref in $references; do
    # (single-threaded, as GradBench runs tools by default)
    case "$ref" in
      jax | pytorch)
        if [ ! -f "$checkout/python/gradbench/gradbench/tools/$ref/$e.py" ]; then
          echo "== $e: GradBench's $ref tool has no $e module; skipped" >&2
          continue
        fi
        if [ "$ref" = jax ]; then
          env_cmd="env XLA_FLAGS='--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1'"
        else
          env_cmd="env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1"
        fi
        run_py="python/gradbench/gradbench/tools/$ref/run.py"
        if [ "$ref" = jax ]; then
          # block on each result inside the timed region (JAX dispatches asynchronously)
          run_py="$root/bench/gradbench_jax_blocked.py $run_py"
        fi
        run_one "$ref" "$env_cmd $tools_py $run_py" "$e" || true
        ;;
      *)
        if [ ! -f "$checkout/tools/$ref/$e.cpp" ]; then
          echo "== $e: GradBench's $ref tool has no $e.cpp; skipped" >&2
          continue
        fi
        run_one "$ref" "$py python/gradbench/gradbench/cpp.py $ref" "$e" || true
        ;;
    esac
  done
done

# Per eval, one table: function x input -> each tool's mean and minimum (ms), cotangent's
# ratios of the minima to each reference ("/jax", "/manual": below 1 means cotangent is
# faster), cotangent's first call with the cold cache, then each tool's peak RSS.
"$py" "$root/bench/gradbench_tables.py" "$out" cotangent $references
exit $status
