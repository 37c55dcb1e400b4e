#!/usr/bin/env python3
"""Overhead of MLflow tracking: the same workflow run with tracking to a real `mlflow server`
(.venv-mlflow, SQLite store, artifact proxy, on 127.0.0.1) and with `--no-tracking`, trials
interleaved, best of N. Workflows: the 1,000-step layered DAG of bench/layered.py and
workflows/neurips-qlora.yaml (needs tuna-ml and HELM: scripts/setup-venv.sh, setup-helm.sh).

Two times per run: the wall time of `tuna run` (with tracking it includes sending what is still
queued when the run ends) and the run's own time from the store (created -> ended: the
dispatcher's work, which tracking must not slow).
Target: under 5 % on neurips-qlora.

  python3 bench/tracking.py [--debug] [--trials N] [--only layered|neurips]
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from common import ROOT, machine, table, timed, tuna_env
import layered


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mlflow(d):
    port = free_port()
    log = open(os.path.join(d, "mlflow.log"), "w")
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    p = subprocess.Popen(
        [os.path.join(ROOT, ".venv-mlflow", "bin", "mlflow"), "server", "--host", "127.0.0.1",
         "--port", str(port), "--backend-store-uri", f"sqlite:///{d}/mlflow.db",
         "--serve-artifacts", "--artifacts-destination", f"{d}/artifacts", "--workers", "1"],
        stdout=log, stderr=log, env=env, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(uri + "/health", timeout=2).status == 200:
                return p, uri
        except OSError:
            pass
        if p.poll() is not None:
            sys.exit(f"mlflow server exited:\n{open(os.path.join(d, 'mlflow.log')).read()[-2000:]}")
        time.sleep(0.2)
    sys.exit("mlflow server did not start")


def stop_mlflow(p):
    try:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(p.pid, signal.SIGKILL)


def run_once(tuna, d, wf, env, tracked):
    args = [tuna, "--progress", "quiet", "run", wf, "-j", "2"]
    if not tracked:
        args.append("--no-tracking")
    t, _ = timed(args, d, env)
    runs = subprocess.run([tuna, "runs", "--json"], cwd=d, env=env, capture_output=True, check=True)
    last = json.loads(runs.stdout)[0]
    assert last["status"] == "passed", last
    return t, last["duration_s"], last


def step_runs(uri, experiment, run):
    """How many nested MLflow runs run `run` has (a check that tracking did its work)."""
    def post(endpoint, body):
        req = urllib.request.Request(f"{uri}/api/2.0/mlflow/{endpoint}", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
        return json.load(urllib.request.urlopen(req, timeout=30))
    exp = json.load(urllib.request.urlopen(
        f"{uri}/api/2.0/mlflow/experiments/get-by-name?experiment_name={experiment}", timeout=30))
    n, token = 0, None
    while True:
        body = {"experiment_ids": [exp["experiment"]["experiment_id"]], "max_results": 1000,
                "filter": f"tags.`tuna.in_run` = '{run}'"}
        if token:
            body["page_token"] = token
        v = post("runs/search", body)
        n += len(v.get("runs", []))
        token = v.get("next_page_token")
        if not token:
            return n


def layered_project(d):
    os.mkdir(os.path.join(d, "out"))
    open(os.path.join(d, "wf.yaml"), "w").write(layered.workflow(d))
    return "wf.yaml"


def neurips_project(d):
    shutil.copytree(os.path.join(ROOT, "workflows"), os.path.join(d, "workflows"))
    return "workflows/neurips-qlora.yaml"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--debug", action="store_true", help="use target/debug (no release build)")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--only", choices=["layered", "neurips"])
    a = ap.parse_args()
    profile = "debug" if a.debug else "release"
    if not a.debug:
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "tuna", "--bins"], cwd=ROOT, check=True)
    tuna = os.path.join(ROOT, "target", profile, "tuna")
    base = tempfile.mkdtemp(prefix="tuna-bench-tracking-")
    server, uri = start_mlflow(base)
    rows = []
    try:
        cases = [("layered 10x100", layered_project), ("neurips-qlora", neurips_project)]
        for name, make in cases:
            if a.only and not name.startswith(a.only):
                continue
            best = {}
            for trial in range(a.trials):
                for tracked in [False, True]:
                    d = tempfile.mkdtemp(prefix="p-", dir=base)
                    wf = make(d)
                    env = tuna_env(os.path.join(d, ".tuna"))
                    env["MLFLOW_TRACKING_URI"] = uri
                    env["MLFLOW_EXPERIMENT_NAME"] = f"bench-{name.split()[0]}"
                    env.setdefault("TUNA_ML", os.path.join(ROOT, "target", profile, "tuna-ml"))
                    env.setdefault("TUNA_HELM_RUN", os.path.join(ROOT, ".venv-helm", "bin", "helm-run"))
                    wall, own, last = run_once(tuna, d, wf, env, tracked)
                    if tracked:
                        sent = step_runs(uri, env["MLFLOW_EXPERIMENT_NAME"], last["id"])
                        assert sent == last["steps"], f"{sent} step runs in MLflow for {last['steps']} steps"
                    print(f"  {name} trial {trial + 1} {'tracked' if tracked else 'untracked'}: wall {wall:.2f} s, run {own:.2f} s", file=sys.stderr)
                    w, o = best.get(tracked, (wall, own))
                    best[tracked] = (min(w, wall), min(o, own))
            (w0, o0), (w1, o1) = best[False], best[True]
            rows.append([name, f"{w0:.2f}", f"{w1:.2f}", f"{100 * (w1 - w0) / w0:+.1f} %",
                         f"{o0:.2f}", f"{o1:.2f}", f"{100 * (o1 - o0) / o0:+.1f} %"])
    finally:
        stop_mlflow(server)
        shutil.rmtree(base, ignore_errors=True)
    load = open("/proc/loadavg").read().split()[:3]
    table(f"MLflow tracking overhead, best of {a.trials}, {profile} build ({machine()}, load average {' '.join(load)}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
          ["workflow", "wall s untracked", "wall s tracked", "wall +", "run s untracked", "run s tracked", "run +"], rows)


if __name__ == "__main__":
    main()
