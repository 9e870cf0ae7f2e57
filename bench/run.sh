#!/usr/bin/env bash
# Runs every benchmark workload in cotangent, JAX (jit, CPU) and PyTorch (eager) on this
# machine, one after another, and prints the medians and the ratios from this one run.
# Installs JAX and PyTorch into bench/.venv with pip on first use.
# Usage: bench/run.sh [workload-id-prefix]
set -euo pipefail
cd "$(dirname "$0")/.."
filter="${1:-}"
venv=bench/.venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import jax, torch" 2>/dev/null; then
  echo "installing jax and torch into $venv (first run only)..." >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "jax[cpu]" torch numpy
fi
out=$(mktemp -d)
echo "cotangent..." >&2
cargo bench -q --bench workloads -- $filter > "$out/cotangent.txt"
echo "jax..." >&2
(cd bench/peers && JAX_PLATFORMS=cpu ../../$venv/bin/python jax_workloads.py $filter) > "$out/jax.txt"
echo "pytorch..." >&2
(cd bench/peers && ../../$venv/bin/python torch_workloads.py $filter) > "$out/torch.txt"
python3 - "$out" <<'PY'
import sys, pathlib
d = pathlib.Path(sys.argv[1])
def load(name):
    rows = {}
    for line in (d / f"{name}.txt").read_text().split("\n"):
        parts = line.split()
        if len(parts) == 2 and parts[0].startswith("w"):
            rows[parts[0]] = float(parts[1])
    return rows
ct, jx, pt = load("cotangent"), load("jax"), load("torch")
def fmt(s):
    return f"{s * 1e6:10.1f} µs" if s < 1e-3 else f"{s * 1e3:10.3f} ms"
print(f"{'workload':<20} {'cotangent':>13} {'jax.jit':>13} {'pytorch':>13} {'ct/jax':>8} {'ct/torch':>9}")
for k in ct:
    j, p = jx.get(k), pt.get(k)
    rj = f"{ct[k] / j:8.2f}" if j else "       -"
    rp = f"{ct[k] / p:9.2f}" if p else "        -"
    print(f"{k:<20} {fmt(ct[k]):>13} {fmt(j) if j else '-':>13} {fmt(p) if p else '-':>13} {rj} {rp}")
PY
