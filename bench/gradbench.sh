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
#   GRADBENCH_TOOL_ARGS  arguments for gradbench-tool (default: none = one thread, as
#                        GradBench runs tools; "--multithreaded" for every core)
#   GRADBENCH_REFERENCE  reference tools, space-separated, run through GradBench's cpp.py
#                        (default: "manual", GradBench's hand-written C++; "" for none)
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
tool_bin="$root/target/release/gradbench-tool"

# The evals validate against tools/manual/bin/<eval>: build the missing ones.
for e in $evals; do
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
run_one() { # tool-name tool-command eval
  local name="$1" cmd="$2" e="$3"
  echo "== $e with $name" >&2
  (cd "$checkout" && PYTHONPATH="$checkout/python/gradbench${PYTHONPATH:+:$PYTHONPATH}" \
    "$py" "$root/bench/gradbench_relay.py" --name "$e" --label "$name" --timeout "$timeout" \
      --eval "$py python/gradbench/gradbench/evals/$e/run.py $eval_args" \
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
  run_one cotangent "$tool_bin $tool_args" "$e" || status=1
  for ref in $references; do
    # (single-threaded, as GradBench runs tools by default)
    run_one "$ref" "$py python/gradbench/gradbench/cpp.py $ref" "$e" || true
  done
done

# Side by side: cotangent against each reference, per eval, function and input: the mean
# (GradBench's own score: a slow first call counts) and the minimum (the steady state).
"$py" - "$out" cotangent $references <<'PY'
import sys, pathlib
out, names = pathlib.Path(sys.argv[1]), sys.argv[2:]
tables = {}
for n in names:
    rows = {}
    f = out / f"rows.{n}.tsv"
    for line in (f.read_text().splitlines() if f.exists() else []):
        e, fn, desc, runs, mean, med, low, verdict = line.split("\t")
        rows[(e, fn, desc)] = (float(mean) if mean else None, float(low) if low else None, verdict)
    tables[n] = rows
keys = list(tables["cotangent"])
if not keys or len(names) < 2:
    sys.exit(0)
ratio = lambda a, b: f"{a / b:.2f}" if a is not None and b else "-"
num = lambda v, verdict: f"{v:.3f}" if v is not None else verdict
print()
head = f"{'eval':<9} {'function':<10} {'input':<28} {'mean ms':>11} {'min ms':>11}"
for n in names[1:]:
    head += f" | {n + ' mean':>13} {'min':>11} {'ratio':>6} {'(min)':>6}"
print(head)
for k in keys:
    mean, low, verdict = tables["cotangent"][k]
    line = f"{k[0]:<9} {k[1]:<10} {k[2][:28]:<28} {num(mean, verdict):>11} {num(low, verdict):>11}"
    for n in names[1:]:
        rm, rl, rv = tables[n].get(k, (None, None, "-"))
        line += f" | {num(rm, rv):>13} {num(rl, rv):>11} {ratio(mean, rm):>6} {ratio(low, rl):>6}"
    print(line)
print(f"\n(ratio: cotangent's time over the reference's, of the means and of the minima; logs in {out})")
PY
exit $status
