"""Helpers of bench/gpu_check.sh (standard library only, so any python3 runs them): the markdown
rows of its tables from the JSON lines `ml_bench` and hf_peft_train.py print, and the device
copy of workflows/neurips-qlora.yaml.

  gpu_check.py train-row LABEL DTYPE RESULT_JSON [BASELINE_JSON]
  gpu_check.py parity-rows JSONL_FILE
  gpu_check.py projection-row SMOKE_JSON FULL_JSON
  gpu_check.py workflow SRC DST DEVICE tiny|350m
  gpu_check.py status-rows STATUS_JSON
"""
import json
import statistics
import sys


def steady_tokens_per_s(r):
    """Tokens/s of the median step after the first (the first holds CUDA's warm-up); every
    step of the check holds the same number of tokens (examples longer than the sequence)."""
    steps = r.get("step_seconds") or []
    if len(steps) < 2 or not r.get("steps"):
        return r["tokens_per_s"]
    return r["tokens_trained"] / r["steps"] / statistics.median(steps[1:])


def train_row(label, dtype, result, baseline=None):
    r = json.loads(result)
    steady = steady_tokens_per_s(r)
    ratio = ""
    if baseline:
        b = json.loads(baseline)
        ratio = f"{steady / steady_tokens_per_s(b):.2f}x"
    mib = r["peak_memory_bytes"] / 2**20
    print(f"| {label} | {dtype} | {r['tokens_per_s']:.0f} | {steady:.0f} | {ratio} | {mib:.0f} ({r['memory_kind']}) "
          f"| {r['loss_first']:.3f} -> {r['loss_last']:.3f} |")


def parity_rows(path):
    for line in open(path):
        if line.startswith("{"):
            r = json.loads(line)
            verdict = "PASS" if r["pass"] else "FAIL"
            print(f"| {r['model']} | {r['dtype']} | {r['device']} | {r['max_abs_diff']:.2e} | {r['bound']:.2e} | {verdict} |")


def projection_row(smoke, full):
    s, f = json.loads(smoke), json.loads(full)
    projected = s["projected_hours"] * 3600
    measured = f["train_seconds"]
    err = (projected - measured) / measured * 100 if measured > 0 else float("nan")
    verdict = "PASS" if abs(err) <= 25 else "FAIL"
    print(f"| {s['steps']} | {f['steps']} | {projected:.1f} | {measured:.1f} | {err:+.0f} % | {verdict} |")


# OPT-350m's shapes for the workflow's `base` step (model.init), replacing its tiny ones.
SHAPE_350M = {"hidden_size": 1024, "word_embed_proj_dim": 512, "layers": 24, "heads": 16, "ffn_dim": 4096}


def workflow(src, dst, device, shape):
    """The workflow with `device:` on each finetune and model.serve step, the base model at
    `shape`, and without the helm.eval step (HELM is not on the device machine)."""
    lines = open(src).read().splitlines()

    def steps():  # (line, the step it belongs to), steps being the keys under `steps:`
        step = None
        for line in lines:
            if not line.strip() or line.startswith("#"):
                pass
            elif not line.startswith(" "):
                step = "" if line.rstrip() == "steps:" else None
            elif step is not None and line.startswith("  ") and line[2] != " " and line.rstrip().endswith(":"):
                step = line.strip()[:-1]
            yield line, step

    uses = {step: line.split(":", 1)[1].strip() for line, step in steps() if step and line.strip().startswith("uses:")}
    out = []
    for line, step in steps():
        if step == "helm-eval":
            continue
        key = line.strip().split(":", 1)[0]
        if shape == "350m" and step == "base" and key in SHAPE_350M:
            line = line.split(":", 1)[0] + f": {SHAPE_350M[key]}"
        out.append(line)
        if line.strip() == "with:" and uses.get(step) in ("finetune", "model.serve"):
            out.append(" " * (line.index("with:") + 2) + f"device: {device}")
    open(dst, "w").write("\n".join(out) + "\n")


def status_rows(path):
    try:
        doc = json.load(open(path))
    except (OSError, ValueError):
        print("| (no run to show: see raw/workflow.log) | | | | |")
        return
    for s in doc.get("steps", []):
        metrics = s.get("metrics") or {}
        keep = {k: v for k, v in metrics.items() if k in (
            "tokens_per_s", "loss_first", "loss_last", "eval_loss", "peak_memory_bytes", "projected_hours", "train_seconds")}
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in sorted(keep.items()))
        secs = s.get("duration_s")
        took = f"{secs:.1f}" if isinstance(secs, (int, float)) else ""
        note = (s.get("message") or "").replace("|", "/")[:120]
        print(f"| {s['name']} | {s['status']} | {took} | {shown} | {note} |")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"train-row": train_row, "parity-rows": parity_rows, "projection-row": projection_row,
     "workflow": workflow, "status-rows": status_rows}[cmd](*args)
