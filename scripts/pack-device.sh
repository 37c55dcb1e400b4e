#!/usr/bin/env bash
# Makes device-bundle/ (ignored by git): what bench/gpu_check.sh runs on a lent CUDA machine that
# has a Python with torch 2.11 but no Rust toolchain and no registry, within the 64 MiB that can
# be carried there:
#   bin/tuna, bin/tuna-shim          release, stripped (no libtorch in them)
#   bin/tuna-ml, bin/ml_bench        wrappers (bench/torch-wrapper.sh): they put the torch/lib of
#                                    the Python they find ($TUNA_LIBTORCH, else $TUNA_PYTHON's or
#                                    python3's torch) on LD_LIBRARY_PATH and run
#   bin/ml-tests                     the same wrapper, for the ML tests' binary
#   libexec/tuna-ml, libexec/ml_bench, libexec/ml-tests
#                                    the libtorch 2.11 (tch 0.24) release builds, libtorch_cuda
#                                    linked (TUNA_TORCH_CUDA=1), stripped
#   fixtures/                        the ML tests' tiny OPT/Llama models with transformers'
#                                    reference logits (for parity where the device has no
#                                    transformers)
# Prints the bundle's size. Builds what is missing: release tuna (cargo build --release -p tuna
# --bins) and, through scripts/build-ml.sh, the 2.11 tuna-ml (which needs .venv-torch211 with
# torch's CUDA wheels to link libtorch_cuda: made here when absent).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
B=$ROOT/device-bundle
T211=$ROOT/target/torch211

# libtorch_cuda.so needs its CUDA libraries at link time: the full torch==2.11.0, not --no-deps.
if ! .venv-torch211/bin/python -c 'import nvidia.cudnn' 2>/dev/null; then
  [[ -x .venv-torch211/bin/pip ]] || python3 -m venv .venv-torch211
  .venv-torch211/bin/pip install -q torch==2.11.0
fi
TUNA_TORCH_CUDA=1 scripts/build-ml.sh --torch 2.11 >/dev/null
TESTS=$(TUNA_TORCH_CUDA=1 scripts/build-ml.sh --torch 2.11 --test-exe | tail -1)
[[ -x target/release/tuna && -x target/release/tuna-shim ]] || cargo build --release -q -p tuna --bins

rm -rf "$B"
mkdir -p "$B/bin" "$B/libexec"
strip -o "$B/bin/tuna" target/release/tuna
strip -o "$B/bin/tuna-shim" target/release/tuna-shim
for exe in tuna-ml ml_bench ml-tests; do
  case $exe in
    tuna-ml) src=$T211/release/tuna-ml ;;
    ml_bench) src=$T211/release/examples/ml_bench ;;
    ml-tests) src=$TESTS ;;
  esac
  strip -o "$B/libexec/$exe" "$src"
  cp bench/torch-wrapper.sh "$B/bin/$exe"
  chmod +x "$B/bin/$exe"
done

# The tiny models with transformers' references: made by the tests' fixture scripts with .venv.
scripts/setup-venv.sh
mkdir -p "$B/fixtures"
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 .venv/bin/python steps/tests/fixtures/make_tiny_opt.py "$B/fixtures" >/dev/null
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 .venv/bin/python steps/tests/fixtures/make_tiny_llama.py "$B/fixtures" >/dev/null
.venv/bin/python -c 'import transformers, torch; print(f"transformers {transformers.__version__} on torch {torch.__version__} (CPU)")' \
  > "$B/fixtures/REFERENCE"

du -b --max-depth=1 "$B" | sort -n
echo "device-bundle: $(du -sb "$B" | cut -f1) bytes ($(du -sh "$B" | cut -f1))"
