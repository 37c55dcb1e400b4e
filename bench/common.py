"""Shared helpers for tuna's benchmarks: build the release binary, time commands, print tables."""

import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TUNA = os.path.join(ROOT, "target", "release", "tuna")


def build():
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "tuna", "--bins"], cwd=ROOT, check=True)


def timed(cmd, cwd, env=None, check=True):
    """Runs cmd; returns (seconds, peak RSS of the child in MiB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t0
    if check and p.returncode != 0:
        sys.exit(f"{cmd} failed ({p.returncode}):\n{p.stderr.decode()[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return dt, max(after, before) / 1024.0


def tuna_env(home):
    env = dict(os.environ)
    env["TUNA_HOME"] = home
    env.pop("TUNA_RUNNERS", None)
    return env


def table(title, header, rows):
    print(f"\n{title}")
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    print(fmt.format(*header))
    print(fmt.format(*["-" * w for w in widths]))
    for r in rows:
        print(fmt.format(*r))


def machine():
    model = "unknown cpu"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"
