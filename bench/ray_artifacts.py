#!/usr/bin/env python3
"""A 100 MiB output made by a step on Ray and read by a step on this machine, through each of the
Ray runner's artifact modes: the shared folder, the bucket (S3 API, a real moto server) with every
output brought back, and the bucket with the output kept there past `keep_remote_over` until the
local step needs it. Prints the bytes in the runner's store and in the local store after the run,
and the time of each step and of `tuna run`. Runs the ignored test `bench_…` of the e2e_ray_s3
test binary, which starts its own moto server and Ray head on 127.0.0.1 (scripts/setup-s3.sh and
scripts/setup-ray.sh); `BENCH_RELEASE=1` builds and runs in release mode."""

import os
import subprocess

from common import ROOT

if __name__ == "__main__":
    cmd = ["cargo", "test", "-q", "-p", "tuna-tests", "--test", "e2e_ray_s3"]
    if os.environ.get("BENCH_RELEASE") == "1":
        cmd.append("--release")
    cmd += ["--", "--ignored", "--nocapture", "--test-threads", "1", "bench_"]
    subprocess.run(cmd, cwd=ROOT, check=True)
