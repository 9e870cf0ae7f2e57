#!/usr/bin/env python3
"""Relays GradBench messages between one eval and one tool, as GradBench's CLI does.

    gradbench_relay.py --eval 'CMD' --tool 'CMD' --log FILE [--timeout S] [--name EVAL]

The eval's stdout lines go to the tool's stdin and each tool response goes back to the
eval. The exchange is logged in the CLI's format (`{"elapsed": {"nanoseconds": N},
"message": ...}` / `"response": ...`), and one table row per evaluate is printed to
stdout (and, with --tsv, appended to a file): eval, tool, function, description, runs, the
mean (what GradBench's own summary scores, first call included), median and minimum of the
tool's `evaluate` timings in ms, and the eval's verdict (from its `analysis` message); the
TSV rows add the first call's time in ms and the tool's peak resident memory in MiB (the
largest of the tool process and every child it waited for, from wait4's rusage, so the
per-input binaries of GradBench's C++ tools count). Exit status: 0 if every
evaluate succeeded and was judged valid, 1 otherwise, 2 on a protocol failure or timeout.

Standard library only, so any python3 runs it; the eval needs its own packages.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--eval", required=True, help="eval command (run through the shell)")
    p.add_argument("--tool", required=True, help="tool command (run through the shell)")
    p.add_argument("--log", required=True, help="where to write the JSON-lines log")
    p.add_argument("--name", default="", help="eval name for the table")
    p.add_argument("--label", default="", help="tool name for the table")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds for the whole exchange")
    p.add_argument("--tool-stderr", default=None, help="file for the tool's stderr")
    p.add_argument("--tsv", default=None, help="also append the rows to this file, tab-separated")
    a = p.parse_args()

    started = time.monotonic_ns()
    tool_err = open(a.tool_stderr, "w") if a.tool_stderr else subprocess.DEVNULL
    # Each in its own process group, so that a timeout stops the shell's children too (a
    # /bin/sh that forks rather than execs would otherwise leave them holding the pipes).
    ev = subprocess.Popen(
        a.eval, shell=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, start_new_session=True
    )
    tool = subprocess.Popen(
        a.tool,
        shell=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=tool_err,
        text=True,
        bufsize=1,
        start_new_session=True,
    )
    timed_out = threading.Event()

    def stop():
        timed_out.set()
        for proc in (ev, tool):
            try:
                os.killpg(proc.pid, 9)
            except OSError:
                pass

    timer = threading.Timer(a.timeout, stop)
    timer.daemon = True
    timer.start()

    rows = {}  # evaluate id -> row
    order = []
    status = 0
    with open(a.log, "w") as log:

        def write(key, obj):
            elapsed = time.monotonic_ns() - started
            log.write(json.dumps({"elapsed": {"nanoseconds": elapsed}, key: obj}) + "\n")
            log.flush()

        for line in ev.stdout:
            if not line.strip():
                continue
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                print(f"relay: the eval printed a line that is not JSON: {line.strip()[:200]}", file=sys.stderr)
                status = 2
                break
            write("message", msg)
            kind = msg.get("kind")
            if kind == "end":
                break
            tool.stdin.write(json.dumps(msg) + "\n")
            tool.stdin.flush()
            reply = tool.stdout.readline()
            if not reply:
                print(f"relay: the tool closed its output (message {msg.get('id')}: {kind})", file=sys.stderr)
                status = 2
                break
            resp = json.loads(reply)
            write("response", resp)
            if kind == "define" and not resp.get("success", False):
                print(f"relay: define failed: {resp.get('error', '(no error)')}", file=sys.stderr)
            if kind == "evaluate":
                runs = [t["nanoseconds"] for t in resp.get("timings", []) if t.get("name") == "evaluate"]
                rows[msg["id"]] = {
                    "function": msg.get("function", ""),
                    "description": msg.get("description", ""),
                    "success": resp.get("success", False),
                    "error": resp.get("error"),
                    "runs": runs,
                    "valid": None,
                }
                order.append(msg["id"])
            if kind == "analysis" and msg.get("of") in rows:
                rows[msg["of"]]["valid"] = msg.get("valid")
                rows[msg["of"]]["error"] = msg.get("error")
            ev.stdin.write(reply if reply.endswith("\n") else reply + "\n")
            ev.stdin.flush()
        for pipe in (tool.stdin, ev.stdin):
            try:
                pipe.close()
            except OSError:
                pass
        ev.wait()
        peak_rss_mib = None
        try:
            # wait4 rather than tool.wait(): its rusage carries the peak RSS of the tool and
            # of the processes it waited for (the shell execs the tool's command).
            _, wstatus, usage = os.wait4(tool.pid, 0)
            tool.returncode = os.waitstatus_to_exitcode(wstatus)
            if not timed_out.is_set():  # (a killed shell has not waited for the tool)
                peak_rss_mib = usage.ru_maxrss / 1024.0  # Linux: KiB
        except ChildProcessError:
            tool.wait()
    timer.cancel()
    if timed_out.is_set():
        print(f"relay: stopped after {a.timeout:.0f} s", file=sys.stderr)
        status = 2
    if ev.returncode not in (0, None) and status == 0 and not timed_out.is_set():
        print(f"relay: the eval exited with status {ev.returncode}", file=sys.stderr)
        status = 2

    tsv = open(a.tsv, "a") if a.tsv else None
    for i in order:
        r = rows[i]
        ok = r["success"] and r["runs"]
        # GradBench's own summary scores each input by the mean of its evaluate timings
        # (first call included); the minimum shows the steady state.
        mean = sum(r["runs"]) / len(r["runs"]) / 1e6 if ok else None
        med = statistics.median(r["runs"]) / 1e6 if ok else None
        low = min(r["runs"]) / 1e6 if ok else None
        first = r["runs"][0] / 1e6 if ok else None
        cell = lambda v: f"{v:>11.3f}" if v is not None else f"{'-':>11}"
        verdict = "ok" if r["success"] and r["valid"] else ("invalid" if r["success"] else "failed")
        if verdict != "ok":
            status = max(status, 1)
        note = ""
        if r["error"]:
            note = "  " + " ".join(str(r["error"]).split())[:120]
        print(
            f"{a.name:<9} {a.label:<10} {r['function']:<10} {r['description'][:28]:<28} {len(r['runs']):>5}"
            f" {cell(mean)} {cell(med)} {cell(low)} {verdict:<8}{note}"
        )
        if tsv:
            num = lambda v: "" if v is None else repr(v)
            tsv.write(
                f"{a.name}\t{r['function']}\t{r['description']}\t{len(r['runs'])}\t{num(mean)}\t{num(med)}\t{num(low)}\t{verdict}\t{num(first)}\t{num(peak_rss_mib)}\n"
            )
    if tsv:
        tsv.close()
    sys.stdout.flush()
    return status


if __name__ == "__main__":
    sys.exit(main())
