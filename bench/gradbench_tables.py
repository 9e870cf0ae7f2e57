#!/usr/bin/env python3
"""Prints bench/gradbench.sh's results as one table per eval.

    gradbench_tables.py OUT_DIR TOOL [REFERENCE...]

Reads OUT_DIR/rows.<tool>.tsv (written by gradbench_relay.py --tsv: eval, function,
description, runs, mean, median, min, verdict, first, peak RSS MiB) for the first TOOL and
every REFERENCE, and prints, per eval, one row per function and input with each tool's mean
and minimum in ms, the first TOOL's minimum over each reference's minimum ("/jax": below 1
means the first tool is faster in the steady state), the first TOOL's first call (with
gradbench.sh's cold kernel cache), and a last line with each tool's peak resident memory.
A tool that failed an input shows its verdict instead of a time; "." means not run.

Standard library only.
"""

import pathlib
import sys


def load(path):
    rows = {}
    if not path.exists():
        return rows
    for line in path.read_text().splitlines():
        f = line.split("\t")
        if len(f) < 8:
            continue
        num = lambda v: float(v) if v not in ("", "None") else None
        e, fn, desc, runs, mean, _med, low, verdict = f[:8]
        first = num(f[8]) if len(f) > 8 else None
        rss = num(f[9]) if len(f) > 9 else None
        rows[(e, fn, desc)] = dict(runs=int(runs), mean=num(mean), min=num(low), verdict=verdict, first=first, rss=rss)
    return rows


def fmt(v):
    if v is None:
        return "."
    return f"{v:.3f}" if v < 10 else f"{v:.1f}" if v < 1000 else f"{v:.0f}"


def main():
    out, names = pathlib.Path(sys.argv[1]), sys.argv[2:]
    if not names:
        print(__doc__)
        return 2
    tables = {n: load(out / f"rows.{n}.tsv") for n in names}
    me, refs = names[0], names[1:]
    evals = []
    for n in names:
        for k in tables[n]:
            if k[0] not in evals:
                evals.append(k[0])
    for e in evals:
        keys = []
        for n in names:
            keys += [k for k in tables[n] if k[0] == e and k not in keys]
        width = max([len(k[2][:32]) for k in keys] + [5])
        head = f"{'function':<10} {'input':<{width}}"
        for n in names:
            head += f" | {n[:9] + ' mean':>14} {'min':>9}"
        for n in refs:
            head += f" {'/' + n[:7]:>8}"
        head += f" | {me[:9] + ' first':>15}"
        print(f"\n### {e}\n")
        print(head)
        print("-" * len(head))
        for k in keys:
            line = f"{k[1]:<10} {k[2][:32]:<{width}}"
            for n in names:
                r = tables[n].get(k)
                if r is None:
                    line += f" | {'.':>14} {'.':>9}"
                elif r["verdict"] != "ok" and r["mean"] is None:
                    line += f" | {r['verdict']:>14} {'.':>9}"
                else:
                    flag = "" if r["verdict"] == "ok" else "!"
                    line += f" | {fmt(r['mean']) + flag:>14} {fmt(r['min']):>9}"
            mine = tables[me].get(k)
            for n in refs:
                r = tables[n].get(k)
                ok = mine and r and mine["min"] and r["min"]
                line += f" {(mine['min'] / r['min']) if ok else float('nan'):>8.2f}" if ok else f" {'.':>8}"
            line += f" | {fmt(mine['first']) if mine else '.':>15}"
            print(line)
        rss = []
        for n in names:
            vals = [r["rss"] for k, r in tables[n].items() if k[0] == e and r["rss"] is not None]
            rss.append(f"{n} {max(vals):.0f}" if vals else f"{n} .")
        print(f"peak RSS MiB: {', '.join(rss)}")
    print(f"\n(times in ms; '!' marks an output the eval judged invalid; logs in {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
