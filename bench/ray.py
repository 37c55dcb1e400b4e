#!/usr/bin/env python3
"""The Ray runner against a real one-node Ray cluster started here on 127.0.0.1 (from .venv-ray,
scripts/setup-ray.sh), beside the local runner (release build): the submit-to-start latency of
a one-step run (from the attempt's start in tuna's store to the first instruction of the step's
command, which stamps the clock), and the throughput of a run of 100 trivial steps
(`run: "true"`, no cache) with 4 steps at once on either runner. The Ray runner moves its
artifacts through a shared folder (`artifacts: { shared: DIR }`). BENCH_RAY_STEPS sets the
number of steps (default 100), BENCH_RAY_PROBES the latency samples (default 5)."""

import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

from common import ROOT, TUNA, build, machine, table, tuna_env

RAY = os.path.join(ROOT, ".venv-ray", "bin", "ray")
STEPS = int(os.environ.get("BENCH_RAY_STEPS", "100"))
PROBES = int(os.environ.get("BENCH_RAY_PROBES", "5"))
PARALLEL = 4


def free_ports(n):
    """n distinct free ports on 127.0.0.1 (all held open until all are chosen)."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def ray_get(port, token, path):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status, r.read().decode()


def session_pids(sid):
    """Processes of session `sid` (what the head started, Ray's workers included)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = open(f"/proc/{name}/stat").read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == sid:
            out.append(int(name))
    return out


class RayHead:
    """`ray start --head --block` in a session of its own, in its own temp folder, token
    authentication on; stopped (its session) by `stop`."""

    def __init__(self):
        # Ray's unix sockets live under the temp dir: keep its path short.
        self.dir = tempfile.mkdtemp(prefix="tuna-ray-", dir="/tmp")
        self.token = secrets.token_hex(16)
        p = free_ports(8)
        self.port = p[1]
        env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0",
                   RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token, HOME=self.dir)
        env.pop("RAY_ADDRESS", None)
        cmd = [RAY, "start", "--head", "--block", "--disable-usage-stats",
               "--node-ip-address", "127.0.0.1", "--dashboard-host", "127.0.0.1",
               "--port", str(p[0]), "--dashboard-port", str(p[1]),
               "--ray-client-server-port", str(p[2]), "--dashboard-agent-listen-port", str(p[3]),
               "--dashboard-agent-grpc-port", str(p[4]), "--node-manager-port", str(p[5]),
               "--object-manager-port", str(p[6]), "--runtime-env-agent-port", str(p[7]),
               "--num-cpus", "2", "--object-store-memory", "100000000",
               "--include-dashboard", "true", "--temp-dir", self.dir]
        self.log = open(os.path.join(self.dir, "head.log"), "w")
        # Run from its own folder: from bench/ this file would shadow the `ray` package in
        # Ray's own Python processes.
        self.proc = subprocess.Popen(cmd, cwd=self.dir, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if ray_get(self.port, self.token, "/api/version")[0] == 200 and \
                        '"ALIVE"' in ray_get(self.port, self.token, "/api/v0/nodes")[1]:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        log = open(os.path.join(self.dir, "head.log")).read()[-3000:]
        self.stop()
        raise SystemExit(f"Ray did not start:\n{log}")

    def address(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        sid = self.proc.pid
        try:
            os.killpg(sid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        for pid in session_pids(sid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def workflow(name, steps, runner, run, outputs=None):
    lines = [f"name: {name}", "steps:"]
    for s in steps:
        lines += [f"  {s}:", f"    runs-on: {runner}", "    cache: false", f"    run: {json.dumps(run)}"]
        if outputs:
            lines.append(f"    outputs: {json.dumps(outputs)}")
    return "\n".join(lines) + "\n"


def tuna_run(proj, env, wf):
    """`tuna run` of `wf` (a file in proj): (seconds, run id)."""
    cmd = [TUNA, "--runners", "runners.yaml", "--progress", "quiet", "run", wf]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=proj, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{cmd} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return dt, p.stdout.strip().splitlines()[0]


def status(proj, env, run_id):
    p = subprocess.run([TUNA, "status", run_id, "--json"], cwd=proj, env=env,
                       capture_output=True, text=True, check=True)
    return json.loads(p.stdout)


def probe_latency(proj, env, home, runner):
    """Submit-to-start latencies (ms) of one-step runs on `runner`."""
    with open(os.path.join(proj, f"probe-{runner}.yaml"), "w") as f:
        f.write(workflow(f"probe-{runner}", ["probe"], runner, "date +%s%N > start.txt",
                         ["start.txt"]))
    out = []
    for _ in range(PROBES):
        _, run_id = tuna_run(proj, env, f"probe-{runner}.yaml")
        step = status(proj, env, run_id)["steps"][0]
        stamp = open(os.path.join(home, "runs", run_id, "probe", "1", "work", "start.txt")).read()
        out.append(int(stamp) / 1e6 - step["started_at"])
    return out


def throughput(proj, env, runner):
    """(seconds, steps passed, mean step duration s) of a run of STEPS trivial steps."""
    with open(os.path.join(proj, f"many-{runner}.yaml"), "w") as f:
        f.write(workflow(f"many-{runner}", [f"s{i:03d}" for i in range(STEPS)], runner, "true"))
    dt, run_id = tuna_run(proj, env, f"many-{runner}.yaml")
    steps = status(proj, env, run_id)["steps"]
    passed = sum(1 for s in steps if s["status"] == "passed")
    mean = statistics.mean(s["duration_s"] for s in steps)
    return dt, passed, mean


def main():
    if not os.path.exists(RAY):
        raise SystemExit(f"{RAY} not found: run scripts/setup-ray.sh")
    build()
    work = tempfile.mkdtemp(prefix="tuna-bench-ray-")
    head = RayHead()
    try:
        proj, home, shared = (os.path.join(work, d) for d in ("proj", "home", "shared"))
        for d in (proj, shared):
            os.makedirs(d)
        with open(os.path.join(proj, "runners.yaml"), "w") as f:
            f.write(f"runners:\n  local: {{ type: local, slots: {PARALLEL} }}\n"
                    f"  ray:\n    type: ray\n    address: {head.address()}\n"
                    f"    token_env: RAY_TOKEN\n    max_parallel: {PARALLEL}\n"
                    f"    artifacts: {{ shared: {shared} }}\n")
        env = dict(tuna_env(home), RAY_TOKEN=head.token)
        rows_lat, rows_tp = [], []
        for runner in ("local", "ray"):
            lat = probe_latency(proj, env, home, runner)
            rows_lat.append([runner, f"{statistics.median(lat):.0f}", f"{min(lat):.0f}",
                             f"{max(lat):.0f}"])
            dt, passed, mean = throughput(proj, env, runner)
            rows_tp.append([runner, f"{passed} of {STEPS}", f"{dt:.1f}", f"{passed / dt:.2f}",
                            f"{mean:.2f}"])
    finally:
        head.stop()
        shutil.rmtree(work, ignore_errors=True)
    load = " ".join(open("/proc/loadavg").read().split()[:3])
    print(f"machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"load average {load}; Ray head with 2 CPUs on 127.0.0.1")
    table(f"submit-to-start of a one-step run ({PROBES} runs each): attempt start in tuna's "
          "store -> first instruction of the command", ["runner", "median (ms)", "min (ms)",
                                                         "max (ms)"], rows_lat)
    table(f"{STEPS} trivial steps (`true`, no cache), {PARALLEL} at once",
          ["runner", "passed", "tuna run (s)", "steps/s", "mean step duration (s)"], rows_tp)


if __name__ == "__main__":
    main()
