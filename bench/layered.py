#!/usr/bin/env python3
"""The layered DAG (10 layers x 100 steps; step (l,i) needs (l-1,i) and (l-1,(i+1) mod 100);
each step touches one file) run by tuna -j2, GNU make -j2 and a plain shell loop.
Target: tuna <= 1.5x make."""

import os
import shutil
import tempfile

from common import TUNA, build, machine, table, timed, tuna_env

L, W = 10, 100


def workflow(d):
    out = ["name: layered", "steps:"]
    for l in range(L):
        for i in range(W):
            out.append(f"  s{l}-{i}:")
            if l:
                out.append(f"    needs: [s{l-1}-{i}, s{l-1}-{(i+1) % W}]")
            # the literal path, as make's recipe has it after expanding $@
            out.append(f"    run: touch {d}/out/s{l}-{i}")
    return "\n".join(out) + "\n"


def makefile():
    out = [".PHONY: all", "all: " + " ".join(f"out/s{L-1}-{i}" for i in range(W))]
    for l in range(L):
        for i in range(W):
            deps = f"out/s{l-1}-{i} out/s{l-1}-{(i+1) % W}" if l else ""
            out.append(f"out/s{l}-{i}: {deps}\n\ttouch $@")
    return "\n".join(out) + "\n"


def shell():
    return "\n".join(f"touch out/s{l}-{i}" for l in range(L) for i in range(W)) + "\n"


def main():
    build()
    rows = []
    results = {}
    dirs = []
    # Trials interleave the three runners, and nothing is deleted until the end: on ext4,
    # creating files right after deleting many is slow, and that would tax whoever runs next.
    for _ in range(3):
        for name in ["tuna -j2", "make -j2", "shell loop"]:
            d = tempfile.mkdtemp(prefix="tuna-bench-")
            dirs.append(d)
            os.mkdir(os.path.join(d, "out"))
            open(os.path.join(d, "wf.yaml"), "w").write(workflow(d))
            open(os.path.join(d, "Makefile"), "w").write(makefile())
            open(os.path.join(d, "steps.sh"), "w").write(shell())
            if name.startswith("tuna"):
                t, _ = timed([TUNA, "--progress", "quiet", "run", "wf.yaml", "-j", "2"], d, tuna_env(os.path.join(d, ".tuna")))
            elif name.startswith("make"):
                t, _ = timed(["make", "-s", "-j2"], d)
            else:
                t, _ = timed(["bash", "steps.sh"], d)
            assert len(os.listdir(os.path.join(d, "out"))) == L * W
            results[name] = min(results.get(name, t), t)
    for d in dirs:
        shutil.rmtree(d)
    for name, t in results.items():
        rows.append([name, f"{t:.2f}", f"{t / results['make -j2']:.2f}x", f"{1000 * t / (L * W):.2f}"])
    table(f"Layered DAG, {L}x{W} steps, best of 3 ({machine()})", ["runner", "wall s", "vs make", "ms/step"], rows)
    ratio = results["tuna -j2"] / results["make -j2"]
    print(f"\ntarget tuna <= 1.5x make: {'met' if ratio <= 1.5 else 'NOT met'} ({ratio:.2f}x)")


if __name__ == "__main__":
    main()
