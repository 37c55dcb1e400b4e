#!/usr/bin/env python3
"""Per-step cost against GNU make, on two DAG shapes of 1,000 steps that each touch one file:
- layered: 10 layers x 100 steps; step (l,i) needs (l-1,i) and (l-1,(i+1) mod 100);
- fan: one root, 998 steps that need it, one sink that needs them all.
Each is run by tuna -j2, GNU make -j2 and a plain shell loop, best of 3 interleaved trials,
with the load average beside it. Target: tuna <= 1.5x make.

`--baseline PATH` adds another tuna binary (e.g. a build of an older commit) to the same
trials, so a change is measured against its baseline on one machine in one run.
`--shape layered|fan|both` (default both), `--trials N` (default 3)."""

import argparse
import os
import shutil
import tempfile

from common import TUNA, build, machine, table, timed, tuna_env

L, W = 10, 100
N = L * W


def layered():
    """(name, needs) of every step."""
    for l in range(L):
        for i in range(W):
            yield f"s{l}-{i}", ([f"s{l-1}-{i}", f"s{l-1}-{(i+1) % W}"] if l else [])


def fan():
    yield "root", []
    for i in range(N - 2):
        yield f"f{i}", ["root"]
    yield "sink", [f"f{i}" for i in range(N - 2)]


SHAPES = {"layered": layered, "fan": fan}


def workflow(d, steps):
    out = ["name: bench", "steps:"]
    for name, needs in steps:
        out.append(f"  {name}:")
        if needs:
            out.append(f"    needs: [{', '.join(needs)}]")
        # the literal path, as make's recipe has it after expanding $@
        out.append(f"    run: touch {d}/out/{name}")
    return "\n".join(out) + "\n"


def makefile(steps):
    steps = list(steps)
    has_dependents = {n for _, needs in steps for n in needs}
    leaves = [name for name, _ in steps if name not in has_dependents]
    out = [".PHONY: all", "all: " + " ".join(f"out/{n}" for n in leaves)]
    for name, needs in steps:
        out.append(f"out/{name}: {' '.join(f'out/{n}' for n in needs)}\n\ttouch $@")
    return "\n".join(out) + "\n"


def shell(steps):
    return "\n".join(f"touch out/{name}" for name, _ in steps) + "\n"


def load():
    return os.getloadavg()[0]


def measure(shape, tunas, trials):
    """Best wall time and the load average at its start, per runner."""
    results = {}
    dirs = []
    names = [f"{label} -j2" for label in tunas] + ["make -j2", "shell loop"]
    # Trials interleave the runners, and nothing is deleted until the end: on ext4, creating
    # files right after deleting many is slow, and that would tax whoever runs next.
    for _ in range(trials):
        for name in names:
            d = tempfile.mkdtemp(prefix="tuna-bench-")
            dirs.append(d)
            os.mkdir(os.path.join(d, "out"))
            steps = list(SHAPES[shape]())
            open(os.path.join(d, "wf.yaml"), "w").write(workflow(d, steps))
            open(os.path.join(d, "Makefile"), "w").write(makefile(steps))
            open(os.path.join(d, "steps.sh"), "w").write(shell(steps))
            before = load()
            label = name[: -len(" -j2")]
            if label in tunas:
                cmd = [tunas[label], "--progress", "quiet", "run", "wf.yaml", "-j", "2"]
                t, _ = timed(cmd, d, tuna_env(os.path.join(d, ".tuna")))
            elif name.startswith("make"):
                t, _ = timed(["make", "-s", "-j2"], d)
            else:
                t, _ = timed(["bash", "steps.sh"], d)
            assert len(os.listdir(os.path.join(d, "out"))) == N
            if name not in results or t < results[name][0]:
                results[name] = (t, before)
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", help="another tuna binary measured in the same trials")
    ap.add_argument("--shape", default="both", choices=["layered", "fan", "both"])
    ap.add_argument("--trials", type=int, default=3)
    args = ap.parse_args()
    build()
    tunas = {"tuna": TUNA}
    if args.baseline:
        tunas["tuna (baseline)"] = os.path.abspath(args.baseline)
    shapes = ["layered", "fan"] if args.shape == "both" else [args.shape]
    verdicts = []
    for shape in shapes:
        results = measure(shape, tunas, args.trials)
        make = results["make -j2"][0]
        rows = [
            [name, f"{t:.2f}", f"{t / make:.2f}x", f"{1000 * t / N:.2f}", f"{la:.1f}"]
            for name, (t, la) in results.items()
        ]
        table(
            f"{shape} DAG, {N} steps, best of {args.trials} ({machine()})",
            ["runner", "wall s", "vs make", "ms/step", "load avg"],
            rows,
        )
        ratio = results["tuna -j2"][0] / make
        verdicts.append(f"{shape}: {'met' if ratio <= 1.5 else 'NOT met'} ({ratio:.2f}x)")
    print("\ntarget tuna <= 1.5x make: " + "; ".join(verdicts))


if __name__ == "__main__":
    main()
