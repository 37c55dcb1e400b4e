#!/usr/bin/env bash
# Builds tuna-ml (the libtorch half of tuna) and ml_bench against a chosen libtorch, with the tch
# release made for it, and optionally runs the ML tests against that build.
#
#   scripts/build-ml.sh [--torch 2.13|2.11] [--debug] [--test [TEST-FILTER...]]
#
#   --torch 2.13  (default) tch 0.26, steps/Cargo.toml, libtorch of .venv (scripts/setup-venv.sh),
#                 target dir target/
#   --torch 2.11  tch 0.24, steps/torch211/Cargo.toml (same sources, its own lock file),
#                 libtorch of .venv-torch211 (made here: torch==2.11.0 without its CUDA wheels,
#                 plus the two CUDA runtime wheels libtorch_cpu.so loads), target dir
#                 target/torch211
#   --debug       the dev profile (default: release)
#   --test        then runs the ML tests (steps/tests/ml) against that build, with .venv's python
#                 (transformers, peft) making the tiny models and references
#   --test-exe    builds the ML tests' binary and prints its path instead of running it
#
# Prints the path of the built tuna-ml. TUNA_TORCH_CUDA=1 links libtorch_cuda (steps/build.rs),
# as a binary for a CUDA machine needs. Cargo allows one package with `links = "tch"` per
# dependency graph, optional or not, so each tch release has its own manifest.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TORCH=2.13
PROFILE=release
TEST=0
FILTER=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --torch) TORCH=${2:?--torch needs a version}; shift 2 ;;
    --debug) PROFILE=debug; shift ;;
    --test) TEST=1; shift; FILTER=("$@"); break ;;
    --test-exe) TEST=exe; shift ;;
    *) echo "build-ml.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

case $TORCH in
  2.13)
    scripts/setup-venv.sh
    VENV=.venv MANIFEST=steps/Cargo.toml TARGET=${CARGO_TARGET_DIR:-target} FEATURES=(--features torch) ;;
  2.11)
    VENV=.venv-torch211 MANIFEST=steps/torch211/Cargo.toml TARGET=${CARGO_TARGET_DIR:-target/torch211} FEATURES=()
    if ! "$VENV/bin/python" -c 'import importlib.metadata as m; assert m.version("torch") == "2.11.0"' 2>/dev/null; then
      python3 -m venv "$VENV"
      # --no-deps: the CUDA wheels torch asks for are ~3 GB; a CPU build loads only these two.
      "$VENV/bin/pip" install -q --no-deps torch==2.11.0 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85
    fi ;;
  *) echo "build-ml.sh: --torch 2.13 or 2.11 (the libtorch versions tch 0.26 and 0.24 are made for)" >&2; exit 2 ;;
esac

export LIBTORCH=$ROOT/$VENV/lib/python3.11/site-packages/torch
export CARGO_TARGET_DIR=$ROOT/$TARGET
[[ -f $LIBTORCH/lib/libtorch_cpu.so ]] || { echo "build-ml.sh: no libtorch at $LIBTORCH" >&2; exit 1; }
PROF=()
[[ $PROFILE == release ]] && PROF=(--release)
cargo build -q "${PROF[@]}" --manifest-path "$MANIFEST" -p tuna-steps "${FEATURES[@]}" --bin tuna-ml --example ml_bench
echo "$CARGO_TARGET_DIR/$PROFILE/tuna-ml"

if [[ $TEST == exe ]]; then
  cargo test -q "${PROF[@]}" --manifest-path "$MANIFEST" -p tuna-steps "${FEATURES[@]}" --test ml --no-run \
    --message-format=json | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "ml" and m.get("executable"):
        print(m["executable"])'
elif [[ $TEST == 1 ]]; then
  # The tests find the workspace (venv, fixture scripts) through TUNA_TEST_ROOT: the 2.11
  # manifest's folder is not the workspace's steps/.
  TUNA_TEST_ROOT=$ROOT TUNA_TEST_PYTHON=${TUNA_TEST_PYTHON:-$ROOT/.venv/bin/python} \
    cargo test -q "${PROF[@]}" --manifest-path "$MANIFEST" -p tuna-steps "${FEATURES[@]}" --test ml -- "${FILTER[@]}"
fi
