#!/usr/bin/env bash
# The one command that runs every test: unit, snapshot and end-to-end (which drive the real
# `tuna` binary).
set -euo pipefail
cd "$(dirname "$0")"
cargo build --quiet --workspace --bins
cargo test --workspace --no-fail-fast -- "$@"
