#!/usr/bin/env bash
# The one command that runs every test: unit, snapshot and end-to-end (which drive the real
# `tuna` binary), and the native ML tests (feature `torch`, against libtorch from .venv, which
# scripts/setup-venv.sh creates on first use).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup-venv.sh
cargo build --quiet --workspace --bins
cargo test --workspace --no-fail-fast -- "$@"
cargo test -p tuna-steps --features torch --no-fail-fast -- "$@"
