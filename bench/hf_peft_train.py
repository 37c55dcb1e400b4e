"""The Hugging Face side of bench/lora_vs_peft.sh: LoRA training with transformers + peft on
the same model folder, data, tokenization, batch, sequence length, dtype and optimizer settings
as `ml_bench train`, printing the same JSON fields.

Usage: hf_peft_train.py --model DIR --data FILE [--steps N] [--batch B] [--seq L]
                        [--dtype fp32|bf16] [--device cpu|cuda] [--threads T]
"""
import argparse
import json
import os
import resource
import subprocess
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from peft import LoraConfig, get_peft_model
from tokenizers import Tokenizer
from transformers import OPTForCausalLM


def load_examples(path, tok, max_len, eos):
    examples = []
    for line in open(path):
        if not line.strip():
            continue
        row = json.loads(line)
        p = tok.encode(row["prompt"]).ids
        c = tok.encode(row["completion"], add_special_tokens=False).ids + [eos]
        if len(p) >= max_len:
            continue
        ids = (p + c)[:max_len]
        labels = ([-100] * len(p) + c)[:max_len]
        examples.append((ids, labels))
    return examples


def collate(batch, pad, device):
    width = max(len(i) for i, _ in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    for r, (i, l) in enumerate(batch):
        ids[r, : len(i)] = torch.tensor(i)
        mask[r, : len(i)] = 1
        labels[r, : len(l)] = torch.tensor(l)
    return ids.to(device), mask.to(device), labels.to(device)


def nvidia_smi_bytes():
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return 0
    total = 0
    for line in out.splitlines():
        pid, mib = [x.strip() for x in line.split(",")]
        if pid == str(os.getpid()):
            total += int(mib) * 1024 * 1024
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--dtype", default="fp32")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--lr", type=float, default=2e-4)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(42)
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    tok = Tokenizer.from_file(os.path.join(a.model, "tokenizer.json"))
    model = OPTForCausalLM.from_pretrained(a.model, dtype=dtype).to(a.device)
    cfg = model.config
    model = get_peft_model(
        model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=["fc1", "fc2"], task_type="CAUSAL_LM")
    )
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=a.lr, weight_decay=0.0)
    examples = load_examples(a.data, tok, min(a.seq, cfg.max_position_embeddings), cfg.eos_token_id)
    tokens = 0
    losses = []
    seconds = 0.0
    step_seconds = []
    i = 0
    for step in range(a.steps):
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        batch = [examples[(i + k) % len(examples)] for k in range(a.batch)]
        i += a.batch
        ids, mask, labels = collate(batch, cfg.pad_token_id, a.device)
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(out.loss.item())
        tokens += int(mask.sum())
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        step_seconds.append(time.perf_counter() - t0)
        seconds += step_seconds[-1]
    if a.device.startswith("cuda"):
        peak, kind = nvidia_smi_bytes(), "cuda_process"
        extra = {"torch_max_allocated_bytes": torch.cuda.max_memory_allocated()}
    else:
        peak, kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "cpu_rss"
        extra = {}
    print(json.dumps({
        "impl": "transformers+peft", "tokens_per_s": tokens / seconds, "peak_memory_bytes": peak,
        "memory_kind": kind, "loss_first": losses[0], "loss_last": losses[-1], "steps": len(losses),
        "trainable_params": sum(p.numel() for p in trainable), "train_seconds": seconds,
        "step_seconds": step_seconds, "tokens_trained": tokens, **extra,
    }))


if __name__ == "__main__":
    main()
