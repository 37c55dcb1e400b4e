#!/usr/bin/env python3
"""The daemon under a bounded loopback load: C client threads submit N one-step workflows
(`tuna serve` accepts, records and runs each), then C threads read runs (GET /api/v1/runs/ID)
for a fixed count while those runs finish. Prints submissions/s accepted, runs/s completed and
API latency p50/p99."""

import http.client
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time

from common import TUNA, build, machine, table, tuna_env

N = int(os.environ.get("BENCH_SUBMISSIONS", "400"))
C = int(os.environ.get("BENCH_CLIENTS", "8"))
READS = int(os.environ.get("BENCH_READS", "2000"))
TOKEN = "bench-token-0123456789abcdef"
WF = "name: tiny\nparams:\n  n: '0'\nsteps:\n  a:\n    run: echo ${{ params.n }}\n"


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] * 1000.0


def worker(addr, jobs, lat, ids, lock):
    conn = http.client.HTTPConnection(*addr)
    while True:
        with lock:
            if not jobs:
                break
            job = jobs.pop()
        method, path, body = job
        t0 = time.perf_counter()
        conn.request(method, path, body=body, headers={
            "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        dt = time.perf_counter() - t0
        if r.status >= 300:
            raise SystemExit(f"{method} {path}: {r.status} {data[:200]}")
        with lock:
            lat.append(dt)
            if method == "POST":
                ids.append(json.loads(data)["id"])


def phase(addr, jobs):
    lat, ids, lock = [], [], threading.Lock()
    t0 = time.perf_counter()
    ts = [threading.Thread(target=worker, args=(addr, jobs, lat, ids, lock)) for _ in range(C)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.perf_counter() - t0, lat, ids


def main():
    build()
    home = tempfile.mkdtemp(prefix="tuna-bench-daemon-")
    env = tuna_env(home)
    env["TUNA_SERVE_TOKENS"] = TOKEN
    p = subprocess.Popen([TUNA, "serve", "--listen", "127.0.0.1:0"], cwd=home, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = p.stdout.readline().strip().removeprefix("listening on http://")
        host, port = url.split(":")
        addr = (host, int(port))
        jobs = [("POST", "/api/v1/runs", json.dumps({"workflow": WF, "params": {"n": str(i)}}))
                for i in range(N)]
        t_start = time.perf_counter()
        t_sub, lat_sub, ids = phase(addr, jobs)
        reads = [("GET", f"/api/v1/runs/{ids[i % len(ids)]}", None) for i in range(READS)]
        t_read, lat_read, _ = phase(addr, reads)
        conn = http.client.HTTPConnection(*addr)
        while True:
            conn.request("GET", "/api/v1/runs?status=running",
                         headers={"Authorization": f"Bearer {TOKEN}"})
            if json.loads(conn.getresponse().read()) == []:
                break
            time.sleep(0.05)
        total = time.perf_counter() - t_start
        conn.request("GET", "/api/v1/runs?status=passed", headers={"Authorization": f"Bearer {TOKEN}"})
        passed = len(json.loads(conn.getresponse().read()))
    finally:
        p.terminate()
        p.wait()
        shutil.rmtree(home, ignore_errors=True)
    print(f"machine: {machine()}; {N} submissions, {C} clients, {READS} reads")
    table("tuna serve on loopback", ["measure", "value"], [
        ["submissions accepted /s", f"{N / t_sub:.0f}"],
        ["submit latency p50 (ms)", f"{pct(lat_sub, 0.5):.1f}"],
        ["submit latency p99 (ms)", f"{pct(lat_sub, 0.99):.1f}"],
        ["GET run latency p50 (ms)", f"{pct(lat_read, 0.5):.1f}"],
        ["GET run latency p99 (ms)", f"{pct(lat_read, 0.99):.1f}"],
        ["runs passed", f"{passed} of {N}"],
        ["first submission → all runs ended (s)", f"{total:.2f}"],
        ["runs completed /s", f"{passed / total:.0f}"],
    ])


if __name__ == "__main__":
    main()
