#!/usr/bin/env bash
# The device check of the native ML core (issue #14): run from the repository root on the lent
# CUDA machine with device-bundle/ (scripts/pack-device.sh) carried beside the tree. Under 8
# minutes on an H100/H200; writes its tables to $OUT/gpu_check.md (raw JSON beside it) and
# prints them.
#
#   bench/gpu_check.sh            CUDA, OPT-350M shapes (batch 8 x 512)
#   bench/gpu_check.sh --cpu --quick
#                                 the same code paths on this CPU with tiny shapes (< 2 min): the
#                                 proof that the script and the bundle work before a GPU is lent
#
# Tables: 1 environment (GPU, torch, transformers/peft present or not); 2 parity of tuna's logits
# against transformers' (fp32 <= 1e-4, bf16 within 5 % of the largest logit; OPT post-LN with
# projections, OPT pre-LN, Llama, Mistral); 3 LoRA throughput fp32/bf16, tuna vs
# transformers+peft; 4 QLoRA (NF4, double quant) tokens/s and peak memory vs bf16 LoRA; 5 the
# smoke step's projection vs the measured longer schedule (target within 25 %);
# 6 workflows/neurips-qlora.yaml with `device:` set, at the OPT-350m shape (tiny with --quick),
# without its helm.eval step (no HELM on the device); 7 the ML test suite on the device
# (TUNA_TEST_DEVICE; with --quick only its lora:: tests).
#
# Environment: OUT (default ./gpu-check-out), BUNDLE (default ./device-bundle), PYTHON (the
# python with transformers/peft, default python3), LIBTORCH (the torch folder, holding
# lib/libtorch_cpu.so, of the libtorch 2.11 the bundle's binaries load; default: $PYTHON's torch).
# Exits non-zero when a check FAILs; a part that cannot run says SKIP and why in its table.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEVICE=cuda QUICK=0
for a in "$@"; do
  case $a in
    --cpu) DEVICE=cpu ;;
    --quick) QUICK=1 ;;
    *) echo "gpu_check.sh: unknown argument $a (--cpu, --quick)" >&2; exit 2 ;;
  esac
done
OUT=${OUT:-$ROOT/gpu-check-out}
BUNDLE=$(readlink -f "${BUNDLE:-$ROOT/device-bundle}")
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT/raw"
REPORT=$OUT/gpu_check.md
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
FAILS=0
START=$(date +%s)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
THREADS=()   # on a CPU shared with other work, libtorch's spinning OpenMP threads make step times erratic
[[ $DEVICE == cpu ]] && THREADS=(--threads 1)
if [[ $QUICK == 1 ]]; then
  SIZE=tiny BATCH=2 SEQ=64 STEPS=4 SMOKE=2 FULL_EXAMPLES=40 WF_SHAPE=tiny
else
  SIZE=350m BATCH=8 SEQ=512 STEPS=20 SMOKE=5 FULL_EXAMPLES=480 WF_SHAPE=350m
fi

say() { echo "$*" | tee -a "$REPORT"; }
fail() { FAILS=$((FAILS + 1)); say "FAIL: $*"; }
helper() { "$PYTHON" bench/gpu_check.py "$@"; }
has_py() { "$PYTHON" -c "import $1" >/dev/null 2>&1; }
py_version() { "$PYTHON" -c "import $1; print($1.__version__)" 2>/dev/null || echo absent; }
elapsed() { echo "$(( $(date +%s) - START )) s"; }

: > "$REPORT"
say "# tuna device check ($(date -u +%F) $(date -u +%H:%M) UTC, device: $DEVICE, quick: $QUICK)"
say ""

# --- 1. environment
GPU=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)
if [[ -z "${LIBTORCH:-}" ]]; then
  LIBTORCH=$("$PYTHON" -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>/dev/null)
fi
export LIBTORCH   # read by the bundle's wrappers (bench/torch-wrapper.sh), also in tuna's steps
LIBTORCH_VERSION=$(sed -n 's/^Version: //p' "$LIBTORCH"/../torch-*.dist-info/METADATA 2>/dev/null | head -1)
HAS_HF=0
has_py transformers && has_py peft && HAS_HF=1
say "## 1. Environment"
say "| what | value |"
say "| --- | --- |"
say "| GPU | ${GPU:-none (no nvidia-smi)} |"
say "| libtorch the binaries load | ${LIBTORCH:-none} (torch ${LIBTORCH_VERSION:-?}) |"
say "| python | $PYTHON: torch $(py_version torch), transformers $(py_version transformers), peft $(py_version peft) |"
say "| bundle | $BUNDLE ($(du -sh "$BUNDLE" 2>/dev/null | cut -f1)) |"
say "| shapes | model $SIZE, batch $BATCH x $SEQ, $STEPS steps |"
[[ $HAS_HF == 1 ]] || say "| note | no transformers/peft in $PYTHON: the transformers+peft rows are skipped, parity uses the carried references |"
say ""
ML=$BUNDLE/bin/ml_bench TUNA=$BUNDLE/bin/tuna
if [[ ! -x $ML || ! -x $TUNA ]]; then
  fail "no bundle at $BUNDLE (make it with scripts/pack-device.sh)"; exit 1
fi
if [[ ! -f $LIBTORCH/lib/libtorch_cpu.so ]]; then
  fail "no libtorch: set LIBTORCH or a PYTHON whose torch is 2.11"; exit 1
fi
[[ $LIBTORCH_VERSION == 2.11.* ]] || say "WARNING: the bundle is built for libtorch 2.11, this one is ${LIBTORCH_VERSION:-unknown}"

# --- CUDA basics: without them nothing else runs on CUDA
if [[ $DEVICE == cuda ]]; then
  "$ML" make-model --size tiny --out "$WORK/tiny" >/dev/null
  if timeout 120 "$ML" cuda-check --model "$WORK/tiny" > "$OUT/raw/cuda_check.txt" 2>&1; then
    say "CUDA basics: $(tr '\n' ';' < "$OUT/raw/cuda_check.txt")"
  else
    fail "CUDA basics: $(tr '\n' ';' < "$OUT/raw/cuda_check.txt") (stopping: nothing else can run on CUDA)"; exit 1
  fi
fi

# --- 2. parity
say ""
say "## 2. Parity of tuna's logits with transformers' ($DEVICE)"
FIX=$BUNDLE/fixtures REF="carried: $(cat "$BUNDLE/fixtures/REFERENCE" 2>/dev/null)"
if has_py transformers; then
  FIX=$WORK/fixtures
  if "$PYTHON" steps/tests/fixtures/make_tiny_opt.py "$FIX" >/dev/null 2>&1 &&
     "$PYTHON" steps/tests/fixtures/make_tiny_llama.py "$FIX" >/dev/null 2>&1; then
    REF="made here: transformers $(py_version transformers) on torch $(py_version torch) (CPU)"
  else
    FIX=$BUNDLE/fixtures
  fi
fi
say "references: $REF"
say "| model | dtype | device | max abs diff | bound | verdict |"
say "| --- | --- | --- | --- | --- | --- |"
timeout 180 "$ML" parity --fixtures "$FIX" --device "$DEVICE" > "$OUT/raw/parity.jsonl" 2> "$OUT/raw/parity.err"
rc=$?
helper parity-rows "$OUT/raw/parity.jsonl" | tee -a "$REPORT"
[[ $rc == 0 ]] || fail "parity (exit $rc): $(tail -1 "$OUT/raw/parity.err")"

# --- 3./4. LoRA and QLoRA throughput
say ""
say "## 3-4. LoRA / QLoRA training, OPT-$SIZE-shaped random model, batch $BATCH x $SEQ, $STEPS steps ($DEVICE) [$(elapsed)]"
"$ML" make-model --size "$SIZE" --out "$WORK/model" >/dev/null || fail "make-model $SIZE"
"$ML" make-data --out "$WORK/data.jsonl" --examples $((BATCH * STEPS)) --prompt-words 16 --completion-words "$SEQ" >/dev/null
say "| impl | dtype | tokens/s (run) | tokens/s (steady) | vs baseline | peak memory MiB | loss |"
say "| --- | --- | --- | --- | --- | --- | --- |"
train() {  # NAME DTYPE QUANTIZE -> raw/NAME.json
  timeout 240 "$ML" train --model "$WORK/model" --data "$WORK/data.jsonl" --out "$WORK/o" --device "$DEVICE" \
    --steps "$STEPS" --batch "$BATCH" --seq "$SEQ" --dtype "$2" --quantize "$3" "${THREADS[@]}" 2> "$OUT/raw/$1.err" | tail -1 > "$OUT/raw/$1.json"
  [[ $(head -c1 "$OUT/raw/$1.json") == "{" ]] || { fail "train $1: $(tail -2 "$OUT/raw/$1.err" | tr '\n' ' ')"; return 1; }
}
for dtype in fp32 bf16; do
  hf=""
  if [[ $HAS_HF == 1 ]]; then
    timeout 240 "$PYTHON" bench/hf_peft_train.py --model "$WORK/model" --data "$WORK/data.jsonl" --device "$DEVICE" \
      --steps "$STEPS" --batch "$BATCH" --seq "$SEQ" --dtype "$dtype" "${THREADS[@]}" 2> "$OUT/raw/hf_$dtype.err" | tail -1 > "$OUT/raw/hf_$dtype.json"
    if [[ $(head -c1 "$OUT/raw/hf_$dtype.json") == "{" ]]; then
      hf=$(cat "$OUT/raw/hf_$dtype.json")
      helper train-row transformers+peft "$dtype" "$hf" | tee -a "$REPORT"
    else
      fail "transformers+peft $dtype: $(tail -2 "$OUT/raw/hf_$dtype.err" | tr '\n' ' ')"
    fi
  else
    say "| transformers+peft | $dtype | SKIP: not in $PYTHON | | | | |"
  fi
  if train "lora_$dtype" "$dtype" none; then
    helper train-row "tuna LoRA" "$dtype" "$(cat "$OUT/raw/lora_$dtype.json")" "$hf" | tee -a "$REPORT"
  fi
done
QDTYPE=bf16
if train qlora "$QDTYPE" nf4; then
  base=$(cat "$OUT/raw/lora_$QDTYPE.json" 2>/dev/null)
  helper train-row "tuna QLoRA (NF4, double quant)" "$QDTYPE" "$(cat "$OUT/raw/qlora.json")" "$base" | tee -a "$REPORT"
  say "(QLoRA's 'vs baseline' is against tuna's $QDTYPE LoRA row.)"
fi

# --- 5. the smoke step's projection
say ""
PDTYPE=bf16
[[ $DEVICE == cpu ]] && PDTYPE=fp32   # libtorch's bf16 on a CPU is slow and erratic
say "## 5. Smoke projection vs the measured schedule ($PDTYPE LoRA, $DEVICE) [$(elapsed)]"
"$ML" make-data --out "$WORK/full.jsonl" --examples "$FULL_EXAMPLES" --prompt-words 16 --completion-words "$SEQ" >/dev/null
say "| smoke steps | schedule steps | projected s | measured s | error | verdict (within 25 %) |"
say "| --- | --- | --- | --- | --- | --- |"
proj_ok=1
for run in "smoke $SMOKE" "full all"; do
  set -- $run
  timeout 240 "$ML" train --model "$WORK/model" --data "$WORK/full.jsonl" --out "$WORK/p" --device "$DEVICE" \
    --steps "$2" --batch "$BATCH" --seq "$SEQ" --dtype "$PDTYPE" "${THREADS[@]}" 2> "$OUT/raw/proj_$1.err" | tail -1 > "$OUT/raw/proj_$1.json"
  [[ $(head -c1 "$OUT/raw/proj_$1.json") == "{" ]] || { fail "projection $1 run: $(tail -2 "$OUT/raw/proj_$1.err" | tr '\n' ' ')"; proj_ok=0; }
done
if [[ $proj_ok == 1 ]]; then
  row=$(helper projection-row "$(cat "$OUT/raw/proj_smoke.json")" "$(cat "$OUT/raw/proj_full.json")")
  say "$row"
  if [[ $QUICK == 1 ]]; then
    say "(--quick: a few tiny steps measure noise and the first step's warm-up; not counted)"
  elif [[ $row != *PASS* ]]; then
    FAILS=$((FAILS + 1))
  fi
fi

# --- 6. the NeurIPS workflow
say ""
say "## 6. workflows/neurips-qlora.yaml, device: $DEVICE, base at the $WF_SHAPE shape, without helm-eval [$(elapsed)]"
mkdir -p "$WORK/wf"
cp -r workflows/data "$WORK/wf/data"
helper workflow workflows/neurips-qlora.yaml "$WORK/wf/neurips-qlora.yaml" "$DEVICE" "$WF_SHAPE"
cp "$WORK/wf/neurips-qlora.yaml" "$OUT/raw/neurips-qlora.$DEVICE.yaml"
WF_ARGS=()
[[ $QUICK == 1 ]] && WF_ARGS=(-p epochs=1)
(cd "$WORK/wf" && timeout 240 "$TUNA" run neurips-qlora.yaml "${WF_ARGS[@]}" > "$OUT/raw/workflow.log" 2>&1)
rc=$?
(cd "$WORK/wf" && "$TUNA" status last --json > "$OUT/raw/workflow_status.json" 2>/dev/null)
say "tuna run exit: $rc"
say "| step | status | seconds | metrics | note |"
say "| --- | --- | --- | --- | --- |"
helper status-rows "$OUT/raw/workflow_status.json" | tee -a "$REPORT"
[[ $rc == 0 ]] || fail "workflow (exit $rc; raw/workflow.log)"

# --- 7. the ML tests on the device
say ""
say "## 7. The ML test suite (steps/tests/ml) on $DEVICE [$(elapsed)]"
TEST_ARGS=(--test-threads 2)
[[ $QUICK == 1 ]] && TEST_ARGS+=(lora::)
has_py peft || TEST_ARGS+=(--skip adapter_loads_in_peft)
if (( $(date +%s) - START > 390 )); then
  say "SKIP: past 390 s, kept out to stay under the device's 8 minutes"
elif [[ -x $BUNDLE/bin/ml-tests ]]; then
  TUNA_TEST_DEVICE=$DEVICE TUNA_TEST_FIXTURES=$FIX TUNA_TEST_ROOT=$ROOT TUNA_TEST_PYTHON=$(command -v "$PYTHON") \
    timeout 90 "$BUNDLE/bin/ml-tests" "${TEST_ARGS[@]}" > "$OUT/raw/ml_tests.txt" 2>&1
  rc=$?
  say "ml-tests ${TEST_ARGS[*]}: exit $rc, $(grep '^test result' "$OUT/raw/ml_tests.txt" | tail -1)"
  grep -E '^test .* (FAILED|ignored)$' "$OUT/raw/ml_tests.txt" | tee -a "$REPORT"
  [[ $rc == 0 ]] || fail "ML tests on $DEVICE (raw/ml_tests.txt)"
else
  say "SKIP: no ml-tests in the bundle"
fi

say ""
say "total: $(elapsed), $FAILS failure(s)"
[[ $FAILS == 0 ]]
