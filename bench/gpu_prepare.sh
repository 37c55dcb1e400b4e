#!/usr/bin/env bash
# Builds, on this machine, what bench/gpu_check.sh runs on a CUDA machine that has no Rust
# toolchain: release ml_bench and the torch test binary linked against libtorch_cuda
# (TUNA_TORCH_CUDA=1), stripped, plus the tiny test models — all under target/gpu-carry/
# (carry that folder; about 50 MiB). The CUDA machine still needs libtorch 2.13.0 (TUNA_LIBTORCH).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=target/gpu-carry
mkdir -p "$OUT"
export TUNA_TORCH_CUDA=1
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p tuna-steps --features torch --example ml_bench
TESTS=$(cargo test --release -q -p tuna-steps --features torch --test ml --no-run --message-format=json \
  | python3 -c 'import sys, json
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "ml" and m.get("executable"): print(m["executable"])' | tail -1)
strip -o "$OUT/ml_bench" "$TARGET/release/examples/ml_bench"
strip -o "$OUT/ml-tests" "$TESTS"
# The tiny models: made by the test suite on first use (needs the venv here).
"$OUT/ml-tests" parity::pre_ln >/dev/null
FIX=$(ls -d "$TARGET"/tmp/tiny-models-* | grep -v '\.tmp' | head -1)
rm -rf "$OUT/fixtures" && cp -r "$FIX" "$OUT/fixtures"
du -sh "$OUT"
echo "on the CUDA machine: TUNA_LIBTORCH=... TUNA_ML_BENCH=$OUT/ml_bench TUNA_ML_TESTS=$OUT/ml-tests TUNA_TEST_FIXTURES=$OUT/fixtures bench/gpu_check.sh"
