#!/usr/bin/env bash
# Creates .venv-ray (once): Ray with its dashboard (the Jobs REST API), the cluster the Ray
# runner's tests start on 127.0.0.1 (tests/src/ray.rs). About 400 MB; skipped when present.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv-ray/bin/ray ] && .venv-ray/bin/python -c 'import ray, ray.dashboard' 2>/dev/null; then
  exit 0
fi
python3 -m venv .venv-ray
.venv-ray/bin/pip install -q --upgrade pip
.venv-ray/bin/pip install -q "ray[default]"
.venv-ray/bin/ray --version >/dev/null
echo "ray $(.venv-ray/bin/python -c 'import ray; print(ray.__version__)') in .venv-ray"
