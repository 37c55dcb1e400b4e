#!/usr/bin/env python3
"""The ssh runner against two real sshd servers on loopback addresses (needs openssh-server):
step start latency over the reused connection vs a fresh `ssh host true` (target <= 0.5x),
the throughput of 200 small remote steps on two hosts (runner API and `tuna run`), and the bytes a
100 MiB output kept on its host moves for a step on the same host, the other host, and here."""

import os
import subprocess

from common import ROOT, TUNA, build

if __name__ == "__main__":
    build()
    env = dict(os.environ, TUNA_BIN=TUNA)
    subprocess.run(
        ["cargo", "run", "--release", "--quiet", "-p", "tuna-runners", "--example", "ssh_bench"],
        cwd=ROOT, env=env, check=True,
    )
