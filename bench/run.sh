#!/usr/bin/env bash
# Runs every benchmark workload in cotangent, JAX (jit, CPU) and PyTorch (eager) on this
# machine and prints the medians and the ratios from this one run.
# Installs JAX and PyTorch into bench/.venv with pip on first use.
#
# Shared machines drift in speed over seconds, so the three frameworks take turns: for each
# workload group, cotangent, JAX and PyTorch run one after another, and the whole sweep is
# repeated ROUNDS times (default 3). Each figure is the median over rounds of the per-round
# medians.
#
# Usage: bench/run.sh [workload-id-prefix]      (e.g. bench/run.sh w5; ROUNDS=5 bench/run.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
filter="${1:-}"
rounds="${ROUNDS:-3}"
venv=bench/.venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import jax, torch, diffrax, torchdiffeq" 2>/dev/null; then
  echo "installing jax, diffrax, torch and torchdiffeq into $venv (first run only)..." >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "jax[cpu]" diffrax numpy
  # PyTorch's CPU-only wheel; where its index cannot be reached, the default wheel (which
  # also pulls CUDA libraries, unused here).
  "$venv/bin/pip" install -q --retries 1 --timeout 15 --index-url https://download.pytorch.org/whl/cpu torch 2>/dev/null \
    || "$venv/bin/pip" install -q torch
  "$venv/bin/pip" install -q torchdiffeq
fi
cargo bench -q --bench workloads --no-run 2>/dev/null || cargo bench --bench workloads --no-run
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
groups="w0 w1 w2 w3 w4 w5 w6 w7 w8 w9 w10"
for r in $(seq 1 "$rounds"); do
  for g in $groups; do
    case "$g" in "$filter"*|"${filter:0:2}") ;; *) [ -n "$filter" ] && continue ;; esac
    echo "round $r/$rounds: $g" >&2
    cargo bench -q --bench workloads -- "$g" >> "$out/cotangent.txt"
    (cd bench/peers && JAX_PLATFORMS=cpu ../../$venv/bin/python jax_workloads.py "$g") >> "$out/jax.txt"
    (cd bench/peers && ../../$venv/bin/python -W ignore torch_workloads.py "$g") >> "$out/torch.txt"
  done
done
python3 - "$out" "$rounds" <<'PY'
import sys, pathlib, statistics
d, rounds = pathlib.Path(sys.argv[1]), sys.argv[2]
def load(name):
    rows = {}
    for line in (d / f"{name}.txt").read_text().split("\n"):
        parts = line.split()
        if len(parts) == 2 and parts[0].startswith("w"):
            rows.setdefault(parts[0], []).append(float(parts[1]))
    return {k: statistics.median(v) for k, v in rows.items()}
ct, jx, pt = load("cotangent"), load("jax"), load("torch")
def fmt(s):
    return f"{s * 1e6:10.1f} µs" if s < 1e-3 else f"{s * 1e3:10.3f} ms"
print(f"medians over {rounds} interleaved rounds")
print(f"{'workload':<20} {'cotangent':>13} {'jax.jit':>13} {'pytorch':>13} {'ct/jax':>8} {'ct/torch':>9}")
for k in ct:
    j, p = jx.get(k), pt.get(k)
    rj = f"{ct[k] / j:8.2f}" if j else "       -"
    rp = f"{ct[k] / p:9.2f}" if p else "        -"
    print(f"{k:<20} {fmt(ct[k]):>13} {fmt(j) if j else '-':>13} {fmt(p) if p else '-':>13} {rj} {rp}")
# Taylor-mode Laplacian (cotangent) against JAX's jitted trace(hessian) on the same workload.
if "w3-laplacian-taylor" in ct and "w3-laplacian" in jx:
    print(f"w3: cotangent laplacian (Taylor) / jax trace(hessian): {ct['w3-laplacian-taylor'] / jx['w3-laplacian']:.2f}")
# Comment lines ("# w7 peak memory ...", "# w9 nfe ..."): the last round's of each workload.
for name in ("cotangent", "jax", "torch"):
    last = {}
    for l in (d / f"{name}.txt").read_text().split("\n"):
        if l.startswith("# "):
            last[l.split()[1]] = l
    for l in last.values():
        print(f"{name}: {l[2:]}")
PY
