#!/usr/bin/env bash
# Creates .venv (once) with the libtorch that tch 0.26 links against (torch==2.13.0) and the
# Hugging Face packages the ML parity tests compare against. About 3 GB; skipped when present.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ] && .venv/bin/python -c 'import torch, transformers, peft, safetensors, numpy; assert torch.__version__.startswith("2.13.0")' 2>/dev/null; then
  exit 0
fi
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q transformers safetensors numpy peft
.venv/bin/python -c 'import torch; print("torch", torch.__version__, "in .venv")'
