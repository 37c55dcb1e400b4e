#!/usr/bin/env python3
"""Scale: validate + plan of the largest layered DAG a workflow file may hold (1 MiB, about
16,000 steps; a 100,000-step file is 6 MB and is refused since the hardening work) (time, peak
RSS; targets < 2 s, < 1 GiB); the first run and an all-cached rerun of 10,000 steps (target
< 2 s for the rerun); resume of a 10,000-step run until its first new dispatch (target < 0.5 s).

`--baseline PATH` measures another tuna binary (e.g. a build of an older commit) the same way,
one after the other on the same machine, and prints both columns with the load average at the
start of each figure."""

import argparse

import os
import signal
import subprocess
import tempfile
import time

from common import TUNA, build, machine, table, timed, tuna_env

# The largest workflow file tuna loads (`workflow::yaml::MAX_TEXT_BYTES`).
MAX_WORKFLOW_BYTES = 1024 * 1024


def layered(n_layers, width, name, cmd="true"):
    """Every step's command is distinct (else identical steps would share one cache entry)."""
    out = [f"name: {name}", "steps:"]
    for l in range(n_layers):
        for i in range(width):
            out.append(f"  s{l}-{i}:")
            if l:
                out.append(f"    needs: [s{l-1}-{i}, s{l-1}-{(i+1) % width}]")
            out.append(f"    run: {cmd} s{l}-{i}")
    return "\n".join(out) + "\n"


def load():
    return f"{os.getloadavg()[0]:.1f}"


def measure(tuna):
    """(what, time, peak RSS, load average, target) rows for one tuna binary."""
    rows = []
    d = tempfile.mkdtemp(prefix="tuna-scale-")
    env = tuna_env(os.path.join(d, ".tuna"))
    layers = 1
    while len(layered(layers + 1, 100, "big")) <= MAX_WORKFLOW_BYTES:
        layers += 1
    steps = f"{layers * 100:,} steps"
    open(os.path.join(d, "big.yaml"), "w").write(layered(layers, 100, "big"))
    la = load()
    t, rss = timed([tuna, "validate", "big.yaml"], d, env)
    rows.append([f"validate {steps} (1 MiB)", f"{t:.2f} s", f"{rss:.0f} MiB", la, "< 2 s, < 1 GiB"])
    la = load()
    t, rss = timed([tuna, "plan", "big.yaml"], d, env)
    rows.append([f"plan {steps} (empty store)", f"{t:.2f} s", f"{rss:.0f} MiB", la, "< 2 s, < 1 GiB"])

    open(os.path.join(d, "ten.yaml"), "w").write(layered(100, 100, "ten"))
    la = load()
    t, _ = timed([tuna, "--progress", "quiet", "run", "ten.yaml", "-j", "2"], d, env)
    rows.append(["first run of 10,000 steps (-j2)", f"{t:.2f} s", "", la, "<= 15 s"])
    la = load()
    t, rss = timed([tuna, "--progress", "quiet", "run", "ten.yaml", "-j", "2"], d, env)
    rows.append(["all-cached rerun of 10,000 steps", f"{t:.2f} s", f"{rss:.0f} MiB", la, "< 2 s"])

    # A 10,000-step run killed part-way, then resumed: time until the first new dispatch.
    open(os.path.join(d, "resume.yaml"), "w").write(layered(100, 100, "resume", "sleep 0.01; true"))
    p = subprocess.Popen([tuna, "--progress", "plain", "run", "resume.yaml", "-j", "2"], cwd=d, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    passed = 0
    for line in p.stderr:
        if line.rstrip().endswith(": passed"):
            passed += 1
            if passed >= 2000:
                break
    p.send_signal(signal.SIGKILL)
    p.wait()
    la = load()
    t0 = time.perf_counter()
    r = subprocess.Popen([tuna, "--progress", "plain", "resume", "--last", "-j", "2"], cwd=d, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first = None
    for line in r.stderr:
        if line.rstrip().endswith(": launching"):
            first = time.perf_counter() - t0
            break
    r.send_signal(signal.SIGKILL)
    r.wait()
    rows.append(["resume 10,000 steps to first dispatch", f"{first:.3f} s" if first else "n/a", "", la,
                 "< 0.5 s"])
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", help="another tuna binary, measured after this one")
    args = ap.parse_args()
    build()
    rows = measure(TUNA)
    if not args.baseline:
        table(f"Scale ({machine()})", ["what", "time", "peak RSS", "load avg", "target"], rows)
        return
    base = measure(os.path.abspath(args.baseline))
    merged = [[r[0], r[1], r[2], r[3], b[1], b[2], b[3], r[4]] for r, b in zip(rows, base)]
    table(f"Scale ({machine()})",
          ["what", "time", "peak RSS", "load avg", "baseline time", "baseline RSS", "load avg", "target"],
          merged)


if __name__ == "__main__":
    main()
