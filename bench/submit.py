#!/usr/bin/env python3
"""A project with one big input submitted to `tuna serve` with `tuna submit` (release build,
loopback): the time of the first submission (hash, upload, lay out), of an unchanged
resubmission (hash only: nothing travels), the bytes the daemon's counter saw, and how much the
daemon's resident memory grew while taking the file in (VmHWM after minus VmRSS before, from
/proc/PID/status). BENCH_SUBMIT_MIB sets the input's size (default 200)."""

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

from common import TUNA, build, machine, table, tuna_env

MIB = int(os.environ.get("BENCH_SUBMIT_MIB", "200"))
TOKEN = "bench-token-0123456789abcdef"
WF = "name: big\nsteps:\n  size:\n    inputs: [data/big.bin]\n    run: wc -c < data/big.bin\n"


def vm_kib(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key):
            return int(line.split()[1])
    raise SystemExit(f"{key} not in /proc/{pid}/status")


def received(url):
    req = urllib.request.Request(url + "/api/v1/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)["uploads"]["bytes_received"]


def main():
    build()
    work = tempfile.mkdtemp(prefix="tuna-bench-submit-")
    proj = os.path.join(work, "proj")
    os.makedirs(os.path.join(proj, "data"))
    with open(os.path.join(proj, "big.yaml"), "w") as f:
        f.write(WF)
    with open(os.path.join(proj, "data", "big.bin"), "wb") as f:
        for _ in range(MIB):
            f.write(os.urandom(1 << 20))
    env = tuna_env(os.path.join(work, "home"))
    env["TUNA_SERVE_TOKENS"] = TOKEN
    serve = subprocess.Popen([TUNA, "serve", "--listen", "127.0.0.1:0"], cwd=work, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = serve.stdout.readline().strip().removeprefix("listening on ")
        client = dict(env, TUNA_SERVER=url, TUNA_TOKEN=TOKEN)
        submit = [TUNA, "--progress", "quiet", "submit", "big.yaml", "--follow"]
        rss_before = vm_kib(serve.pid, "VmRSS:")
        t0 = time.perf_counter()
        subprocess.run(submit, cwd=proj, env=client, check=True, capture_output=True)
        first = time.perf_counter() - t0
        peak = vm_kib(serve.pid, "VmHWM:")
        sent_first = received(url)
        t0 = time.perf_counter()
        subprocess.run(submit, cwd=proj, env=client, check=True, capture_output=True)
        again = time.perf_counter() - t0
        sent_again = received(url) - sent_first
    finally:
        serve.terminate()
        serve.wait()
        shutil.rmtree(work, ignore_errors=True)
    print(f"machine: {machine()}; one input of {MIB} MiB")
    table("tuna submit of a project to tuna serve on loopback", ["measure", "value"], [
        ["first submission, run to the end (s)", f"{first:.2f}"],
        ["bytes uploaded", f"{sent_first}"],
        ["daemon RSS before (MiB)", f"{rss_before / 1024:.1f}"],
        ["daemon peak RSS growth taking it in (MiB)", f"{(peak - rss_before) / 1024:.1f}"],
        ["unchanged resubmission, run to the end (s)", f"{again:.2f}"],
        ["bytes uploaded by the resubmission", f"{sent_again}"],
    ])


if __name__ == "__main__":
    main()
