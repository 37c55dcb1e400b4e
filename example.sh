#!/usr/bin/env bash
# The main job: builds tuna and runs the example pipeline end to end.
# Extra arguments go to `tuna run` (e.g. -p lr=1e-4, --no-cache).
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --quiet -p tuna --bins
exec target/release/tuna run workflows/neurips-qlora.yaml "$@"
