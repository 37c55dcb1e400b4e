#!/usr/bin/env bash
# One short check of the native ML core on a CUDA machine (budget: < 6 minutes on an H100/H200).
# Prints PASS/FAIL/SKIP lines and a throughput table; exits non-zero if any check FAILs.
#
#   1. CUDA visible to libtorch; fp32 logits on CUDA equal CPU's; NF4 on CUDA equals CPU's.
#   2. The torch test suite (parity, LoRA/QLoRA, finetune/resume, server) on CUDA
#      (TUNA_TEST_DEVICE=cuda).
#   3. LoRA / QLoRA training throughput and memory of an OPT-350M-shaped random model
#      (24 layers, 1024 hidden, 512 embeddings, post-LN, 50272 vocab), batch 8 × 512 tokens,
#      20 steps, fp32 and bf16 (+ NF4); transformers + peft on the same data when the python
#      there has torch, transformers and peft.
#
# Environment:
#   TUNA_LIBTORCH      libtorch folder (holding lib/libtorch_cpu.so), e.g. a pip torch's
#                      site-packages/torch. Default: the torch of $PYTHON, if importable.
#   TUNA_ML_BENCH      prebuilt ml_bench   (default target/gpu-carry/ml_bench from
#                      bench/gpu_prepare.sh, else target/release/examples/ml_bench, else built;
#                      prebuilt binaries must be linked with TUNA_TORCH_CUDA=1, as gpu_prepare does)
#   TUNA_ML_TESTS      prebuilt test binary (default newest target/release/deps/ml-*, else built)
#   TUNA_TEST_FIXTURES tiny models made by steps/tests/fixtures/make_tiny_{opt,llama}.py
#                      (default: target/tmp/tiny-models-*; else made with $PYTHON if it has
#                      transformers)
#   PYTHON             python with torch/transformers/peft, optional (default python3)
#   STEPS BATCH SEQ    throughput run size (default 20 8 512)
# Building needs cargo and a libtorch of the version tch expects (2.13.0); prebuilt binaries
# need the same libtorch version at run time.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PYTHON=${PYTHON:-python3}
STEPS=${STEPS:-20}; BATCH=${BATCH:-8}; SEQ=${SEQ:-512}
WORK=$(mktemp -d)
FAILS=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }
skip() { echo "SKIP $*"; }
has_py() { "$PYTHON" -c "import $1" >/dev/null 2>&1; }
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "(no nvidia-smi)"

# --- libtorch
if [[ -z "${TUNA_LIBTORCH:-}" ]] && has_py torch; then
  TUNA_LIBTORCH=$("$PYTHON" -c 'import torch, os; print(os.path.dirname(torch.__file__))')
fi
if [[ -z "${TUNA_LIBTORCH:-}" || ! -f "$TUNA_LIBTORCH/lib/libtorch_cpu.so" ]]; then
  fail "libtorch: set TUNA_LIBTORCH to a folder with lib/libtorch_cpu.so (pip torch==2.13.0's torch/)"
  exit 1
fi
pass "libtorch at $TUNA_LIBTORCH"
export LD_LIBRARY_PATH="$TUNA_LIBTORCH/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# --- binaries
CARRY=target/gpu-carry   # made by bench/gpu_prepare.sh
if [[ -x $CARRY/ml_bench && -x $CARRY/ml-tests ]]; then
  ML_BENCH=${TUNA_ML_BENCH:-$CARRY/ml_bench}; ML_TESTS=${TUNA_ML_TESTS:-$CARRY/ml-tests}
  TUNA_TEST_FIXTURES=${TUNA_TEST_FIXTURES:-$CARRY/fixtures}
else
  ML_BENCH=${TUNA_ML_BENCH:-target/release/examples/ml_bench}
  ML_TESTS=${TUNA_ML_TESTS:-$(ls -t target/release/deps/ml-* 2>/dev/null | grep -v '\.d$' | head -1)}
fi
if [[ ! -x "$ML_BENCH" || ! -x "${ML_TESTS:-/nonexistent}" ]]; then
  if command -v cargo >/dev/null; then
    echo "== building (cargo, LIBTORCH=$TUNA_LIBTORCH)"
    export LIBTORCH=$TUNA_LIBTORCH LIBTORCH_BYPASS_VERSION_CHECK=${LIBTORCH_BYPASS_VERSION_CHECK:-0} TUNA_TORCH_CUDA=1
    cargo build --release -q -p tuna-steps --features torch --example ml_bench || { fail "build ml_bench"; exit 1; }
    ML_TESTS=$(cargo test --release -q -p tuna-steps --features torch --test ml --no-run --message-format=json 2>/dev/null \
      | "$PYTHON" -c 'import sys, json
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "ml" and m.get("executable"): print(m["executable"])' | tail -1)
    [[ -x "$ML_TESTS" ]] || { fail "build test binary"; exit 1; }
  else
    fail "no prebuilt ml_bench/test binary (TUNA_ML_BENCH, TUNA_ML_TESTS) and no cargo to build them"
    exit 1
  fi
fi
pass "binaries: $ML_BENCH, $ML_TESTS"

# --- 1. CUDA basics
echo "== CUDA basics"
"$ML_BENCH" make-model --size tiny --out "$WORK/tiny" >/dev/null || fail "make tiny model"
if timeout 120 "$ML_BENCH" cuda-check --model "$WORK/tiny"; then
  pass "cuda-check"
else
  fail "cuda-check (nothing else can run on CUDA; stopping)"
  rm -rf "$WORK"; exit 1
fi

# --- 2. test suite on CUDA
echo "== torch tests on CUDA"
FIX=${TUNA_TEST_FIXTURES:-$(ls -d target/tmp/tiny-models-* 2>/dev/null | grep -v '\.tmp' | head -1)}
SKIPS=()
if [[ -z "$FIX" ]]; then
  if has_py transformers; then
    FIX=$WORK/fixtures
    { "$PYTHON" steps/tests/fixtures/make_tiny_opt.py "$FIX" && "$PYTHON" steps/tests/fixtures/make_tiny_llama.py "$FIX"; } \
      >/dev/null 2>&1 || fail "make fixtures with $PYTHON"
  else
    fail "no fixtures: set TUNA_TEST_FIXTURES (or carry target/tmp/tiny-models-*), or give a PYTHON with transformers"
  fi
fi
if ! has_py peft; then
  skip "PEFT cross-check (no peft in $PYTHON)"
  SKIPS+=(--skip adapter_loads_in_peft)
fi
if [[ -n "$FIX" ]]; then
  if TUNA_TEST_DEVICE=cuda TUNA_TEST_FIXTURES=$FIX TUNA_TEST_ROOT=$ROOT TUNA_TEST_PYTHON=$(command -v "$PYTHON") \
       timeout 240 "$ML_TESTS" --test-threads 2 "${SKIPS[@]}" 2>&1 | tail -40; then
    pass "torch tests on CUDA"
  else
    fail "torch tests on CUDA (see above)"
  fi
fi

# --- 3. throughput, OPT-350M-shaped
echo "== LoRA throughput: OPT-350M-shaped random model, batch $BATCH x $SEQ tokens, $STEPS steps"
"$ML_BENCH" make-model --size 350m --out "$WORK/m350" >/dev/null || fail "make 350m model"
"$ML_BENCH" make-data --out "$WORK/data.jsonl" --examples $((BATCH * STEPS)) --prompt-words 64 --completion-words "$SEQ" >/dev/null
printf '%-22s %-5s %12s %14s %9s\n' impl dtype tokens/s gpu_mem_MiB loss_last
line() { "$PYTHON" -c 'import json,sys
j=json.loads(sys.argv[3]); print(f"{sys.argv[1]:<22} {sys.argv[2]:<5} {j[\"tokens_per_s\"]:>12.0f} {j[\"peak_memory_bytes\"]/2**20:>14.0f} {j[\"loss_last\"]:>9.4f}")' "$@"; }
for spec in "tuna fp32 none" "tuna bf16 none" "tuna-qlora(nf4) bf16 nf4"; do
  set -- $spec
  out=$(timeout 150 "$ML_BENCH" train --model "$WORK/m350" --data "$WORK/data.jsonl" --out "$WORK/o" --device cuda \
          --steps "$STEPS" --batch "$BATCH" --seq "$SEQ" --dtype "$2" --quantize "$3" 2>&1 | tail -1)
  if [[ $out == \{* ]]; then line "$1" "$2" "$out"; else fail "train $spec: $out"; fi
  if [[ $1 == tuna && $3 == none ]] && has_py peft && has_py transformers; then
    h=$(timeout 150 "$PYTHON" bench/hf_peft_train.py --model "$WORK/m350" --data "$WORK/data.jsonl" --device cuda \
          --steps "$STEPS" --batch "$BATCH" --seq "$SEQ" --dtype "$2" 2>/dev/null | tail -1)
    if [[ $h == \{* ]]; then line transformers+peft "$2" "$h"; else skip "transformers+peft $2 failed"; fi
  fi
done
"$ML_BENCH" weights --model "$WORK/m350" || true

rm -rf "$WORK"
echo "== $FAILS failure(s)"
[[ $FAILS -eq 0 ]]
