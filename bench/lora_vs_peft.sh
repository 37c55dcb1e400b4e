#!/usr/bin/env bash
# LoRA training throughput and peak memory: tuna (Rust, tch) vs transformers + peft, on the same
# random OPT (6 layers × 512 hidden, OPT's 50272-token vocabulary), data, batch, sequence
# length, dtype, LoRA settings (r 8, alpha 16, dropout 0.05 on fc1/fc2; model dropout 0.1) and
# optimizer (AdamW, clip 1.0), each run in its own process. Runs alternate REPEATS times; the
# table shows per-step throughput (best and median step, first step of a run left out: shared
# machines are noisy), the median whole-run tokens/s and the largest peak memory. Then QLoRA (NF4 base) throughput and NF4 vs bf16 weight memory.
#
# Usage: bench/lora_vs_peft.sh [STEPS] [BATCH] [SEQ] [THREADS] [DTYPES]
# Env: PYTHON (default .venv/bin/python), DEVICE (cpu|cuda, default cpu), SIZE (bench|350m),
#      REPEATS (default 3), WORK (scratch folder), ML_BENCH (a prebuilt ml_bench binary),
#      QDTYPE (compute dtype of the QLoRA row: fp32 on cpu, bf16 on cuda by default).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-10}; BATCH=${2:-8}; SEQ=${3:-128}; THREADS=${4:-2}; DTYPES=${5:-fp32}
PYTHON=${PYTHON:-.venv/bin/python}
DEVICE=${DEVICE:-cpu}
SIZE=${SIZE:-bench}
REPEATS=${REPEATS:-3}
WORK=${WORK:-$(mktemp -d)}
if [[ $DEVICE == cpu ]]; then QDTYPE=${QDTYPE:-fp32}; else QDTYPE=${QDTYPE:-bf16}; fi
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

if [[ -z "${ML_BENCH:-}" ]]; then
  cargo build --release -q -p tuna-steps --features torch --example ml_bench
  ML_BENCH=${CARGO_TARGET_DIR:-target}/release/examples/ml_bench
fi

echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores, threads: $THREADS, device: $DEVICE"
echo "model: $SIZE, batch $BATCH x $SEQ tokens, $STEPS steps, $REPEATS alternating runs each"
[[ -d $WORK/model ]] || "$ML_BENCH" make-model --size "$SIZE" --out "$WORK/model" >/dev/null
"$ML_BENCH" make-data --out "$WORK/data.jsonl" --examples $((BATCH * STEPS)) --prompt-words 32 --completion-words "$SEQ" >/dev/null
: > "$WORK/runs.jsonl"

tuna() { # dtype quantize
  "$ML_BENCH" train --model "$WORK/model" --data "$WORK/data.jsonl" --out "$WORK/out" --steps "$STEPS" \
    --batch "$BATCH" --seq "$SEQ" --dtype "$1" --quantize "$2" --device "$DEVICE" --threads "$THREADS" | tail -1
}
peft() { # dtype
  "$PYTHON" bench/hf_peft_train.py --model "$WORK/model" --data "$WORK/data.jsonl" --steps "$STEPS" \
    --batch "$BATCH" --seq "$SEQ" --dtype "$1" --device "$DEVICE" --threads "$THREADS" 2>/dev/null | tail -1
}
record() { # label dtype json
  python3 -c 'import json,sys; j=json.loads(sys.argv[3]); j["label"]=sys.argv[1]; j["dtype"]=sys.argv[2]; print(json.dumps(j))' "$@" >> "$WORK/runs.jsonl"
}

for dtype in $DTYPES; do
  for _ in $(seq "$REPEATS"); do
    record tuna "$dtype" "$(tuna "$dtype" none)"
    record transformers+peft "$dtype" "$(peft "$dtype")"
  done
done
for _ in $(seq "$REPEATS"); do
  record "tuna qlora (nf4)" "$QDTYPE" "$(tuna "$QDTYPE" nf4)"
done

python3 - "$WORK/runs.jsonl" <<'PY'
import json, statistics, sys
# Per-step throughput (tokens of a step / its seconds), first step of each run left out (warm-up):
# on a shared machine the fastest steps show the code's speed, the median what a user sees.
runs = [json.loads(l) for l in open(sys.argv[1])]
groups = {}
for r in runs:
    groups.setdefault((r["label"], r["dtype"]), []).append(r)
print(f"{'impl':<18} {'dtype':<5} {'best step tok/s':>15} {'median step':>12} {'run tok/s':>10} {'peak MiB':>9} {'loss last':>9}")
stats = {}
for (label, dtype), rs in groups.items():
    per_step = []
    for r in rs:
        tok = r["tokens_trained"] / len(r["step_seconds"])
        per_step += [tok / t for t in r["step_seconds"][1:]]
    run_tps = statistics.median(r["tokens_per_s"] for r in rs)
    mem = max(r["peak_memory_bytes"] for r in rs)
    stats[(label, dtype)] = (max(per_step), statistics.median(per_step), mem)
    print(f"{label:<18} {dtype:<5} {max(per_step):>15.1f} {statistics.median(per_step):>12.1f} {run_tps:>10.1f} "
          f"{mem / 2**20:>9.0f} {rs[-1]['loss_last']:>9.4f}")
for (label, dtype), (b, m, mem) in stats.items():
    if label == "tuna" and ("transformers+peft", dtype) in stats:
        hb, hm, hmem = stats[("transformers+peft", dtype)]
        print(f"tuna / transformers+peft ({dtype}): speed {b / hb:.2f}x (best step), {m / hm:.2f}x (median step); "
              f"peak memory {mem / hmem:.2f}x")
PY

echo
echo "weight memory (linear layers; embeddings stay bf16):"
"$ML_BENCH" weights --model "$WORK/model" | python3 -c "
import json, sys
w = json.load(sys.stdin)
print(f\"  linear bf16 {w['linear_bf16_bytes']/2**20:.1f} MiB, nf4 {w['linear_nf4_bytes']/2**20:.1f} MiB ({w['linear_ratio']:.3f}x),\"
      f\" nf4+double-quant {w['linear_nf4_double_quant_bytes']/2**20:.1f} MiB ({w['linear_ratio_double_quant']:.3f}x)\")
print(f\"  whole model bf16 {w['model_bf16_bytes']/2**20:.1f} MiB, with nf4 linears {w['model_nf4_bytes']/2**20:.1f} MiB ({w['model_ratio']:.3f}x)\")
"
