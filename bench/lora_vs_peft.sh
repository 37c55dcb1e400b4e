#!/usr/bin/env bash
# LoRA training throughput and peak memory: tuna (Rust, tch) vs transformers + peft, on the same
# random OPT (6 layers × 512 hidden, OPT's 50272-token vocabulary), data, batch, sequence
# length, dtype, LoRA settings (r 8, alpha 16, dropout 0.05 on fc1/fc2) and optimizer (AdamW,
# clip 1.0), each in its own process; then NF4 vs bf16 weight memory.
#
# Usage: bench/lora_vs_peft.sh [STEPS] [BATCH] [SEQ] [THREADS] [DTYPES]
# Env: PYTHON (default .venv/bin/python), DEVICE (cpu|cuda, default cpu), SIZE (bench|350m),
#      WORK (scratch folder, default a temp dir), ML_BENCH (a prebuilt ml_bench binary).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-10}; BATCH=${2:-8}; SEQ=${3:-128}; THREADS=${4:-2}; DTYPES=${5:-fp32}
PYTHON=${PYTHON:-.venv/bin/python}
DEVICE=${DEVICE:-cpu}
SIZE=${SIZE:-bench}
WORK=${WORK:-$(mktemp -d)}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

if [[ -z "${ML_BENCH:-}" ]]; then
  cargo build --release -q -p tuna-steps --features torch --example ml_bench
  ML_BENCH=${CARGO_TARGET_DIR:-target}/release/examples/ml_bench
fi

echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), threads: $THREADS, device: $DEVICE"
[[ -d $WORK/model ]] || "$ML_BENCH" make-model --size "$SIZE" --out "$WORK/model" >/dev/null
"$ML_BENCH" make-data --out "$WORK/data.jsonl" --examples 512 --prompt-words 32 --completion-words $((SEQ)) >/dev/null

row() { # impl dtype json
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
impl, dtype, j = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
print(f"{impl:<18} {dtype:<5} {j['tokens_per_s']:>12.1f} {j['peak_memory_bytes']/2**20:>12.0f} {j['loss_first']:>9.4f} {j['loss_last']:>9.4f}")
PY
}

printf '%-18s %-5s %12s %12s %9s %9s\n' impl dtype tokens/s peak_MiB loss_1st loss_last
for dtype in $DTYPES; do
  t=$("$ML_BENCH" train --model "$WORK/model" --data "$WORK/data.jsonl" --out "$WORK/out" --steps "$STEPS" \
        --batch "$BATCH" --seq "$SEQ" --dtype "$dtype" --device "$DEVICE" --threads "$THREADS")
  row tuna "$dtype" "$t"
  h=$("$PYTHON" bench/hf_peft_train.py --model "$WORK/model" --data "$WORK/data.jsonl" --steps "$STEPS" \
        --batch "$BATCH" --seq "$SEQ" --dtype "$dtype" --device "$DEVICE" --threads "$THREADS" 2>/dev/null | tail -1)
  row transformers+peft "$dtype" "$h"
  python3 -c "import json,sys; t,h=json.loads(sys.argv[1]),json.loads(sys.argv[2]); print(f'  tuna/peft speed: {t[\"tokens_per_s\"]/h[\"tokens_per_s\"]:.2f}x, memory: {t[\"peak_memory_bytes\"]/h[\"peak_memory_bytes\"]:.2f}x')" "$t" "$h"
done
q=$("$ML_BENCH" train --model "$WORK/model" --data "$WORK/data.jsonl" --out "$WORK/out" --steps "$STEPS" \
      --batch "$BATCH" --seq "$SEQ" --dtype bf16 --quantize nf4 --device "$DEVICE" --threads "$THREADS")
row "tuna qlora(nf4)" bf16 "$q"

echo
echo "weight memory (linear layers; embeddings stay bf16):"
"$ML_BENCH" weights --model "$WORK/model" | python3 -c "
import json, sys
w = json.load(sys.stdin)
print(f\"  linear bf16 {w['linear_bf16_bytes']/2**20:.1f} MiB, nf4 {w['linear_nf4_bytes']/2**20:.1f} MiB ({w['linear_ratio']:.3f}x),\"
      f\" nf4+double-quant {w['linear_nf4_double_quant_bytes']/2**20:.1f} MiB ({w['linear_ratio_double_quant']:.3f}x)\")
print(f\"  whole model bf16 {w['model_bf16_bytes']/2**20:.1f} MiB, with nf4 linears {w['model_nf4_bytes']/2**20:.1f} MiB ({w['model_ratio']:.3f}x)\")
"
