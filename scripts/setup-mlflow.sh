#!/usr/bin/env bash
# Creates .venv-mlflow (once): the MLflow tracking server the tracking tests start on 127.0.0.1
# (tests/src/mlflow.rs). About 850 MB; skipped when present.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv-mlflow/bin/mlflow ] && .venv-mlflow/bin/python -c 'import mlflow.server' 2>/dev/null; then
  exit 0
fi
python3 -m venv .venv-mlflow
.venv-mlflow/bin/pip install -q --upgrade pip
.venv-mlflow/bin/pip install -q "mlflow~=3.17"
.venv-mlflow/bin/mlflow --version >/dev/null
echo "mlflow $(.venv-mlflow/bin/python -c 'import mlflow; print(mlflow.__version__)') in .venv-mlflow"
