#!/usr/bin/env bash
# The one command that runs every test: unit, snapshot and end-to-end (which drive the real
# `tuna` and `tuna-ml` binaries), and the native ML tests (feature `torch`, against libtorch
# from .venv). It sets itself up on a fresh machine: scripts/setup-system.sh installs the system
# packages the tests use (as root; otherwise it prints the one apt-get line and stops), and
# scripts/setup-venv.sh (libtorch, transformers, peft), scripts/setup-helm.sh (HELM),
# scripts/setup-s3.sh (moto, the S3-compatible server), scripts/setup-ray.sh (a Ray
# cluster for the Ray runner's tests) and scripts/setup-mlflow.sh (the MLflow tracking server)
# create their venvs on first use.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup-system.sh
scripts/setup-venv.sh
scripts/setup-helm.sh
scripts/setup-s3.sh
scripts/setup-ray.sh
scripts/setup-mlflow.sh
cargo build --quiet --workspace --bins
cargo build --quiet -p tuna-steps --features torch --bins
cargo test --workspace --no-fail-fast -- "$@"
cargo test -p tuna-steps --features torch --no-fail-fast -- "$@"
