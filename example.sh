#!/usr/bin/env bash
# The main job: builds tuna and tuna-ml (libtorch), and runs the example pipeline end to end on
# this machine's CPU (or GPU): a tiny OPT made on the spot -> data preparation -> smoke test
# with projection -> scale-up -> QLoRA -> HELM evaluation of the served adapter.
# Extra arguments go to `tuna run` (e.g. -p lr=5e-3, --no-cache).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup-venv.sh
scripts/setup-helm.sh
cargo build --release --quiet -p tuna --bins
cargo build --release --quiet -p tuna-steps --features torch --bins
export TUNA_HELM_RUN="$PWD/.venv-helm/bin/helm-run"
exec target/release/tuna run workflows/neurips-qlora.yaml "$@"
