#!/usr/bin/env bash
# Creates .venv-helm (once): HELM (crfm-helm 0.5.16) without its torch-heavy extras, enough for
# `helm-run` against a model served over HTTP (tuna's model server) and HELM's offline
# run entries (simple1, simple_mcqa, ...). About 1 GB; skipped when present.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv-helm/bin/helm-run ] && .venv-helm/bin/python -c 'import helm, importlib.metadata as m; assert m.version("crfm-helm") == "0.5.16"' 2>/dev/null; then
  exit 0
fi
python3 -m venv .venv-helm
.venv-helm/bin/pip install -q --upgrade pip
.venv-helm/bin/pip install -q --no-deps crfm-helm==0.5.16
.venv-helm/bin/pip install -q --no-warn-conflicts "cattrs~=22.2" "colorlog~=6.9" "dacite~=1.6" "Mako~=1.2" numpy "pandas~=2.0" \
  "pyhocon~=0.3.59" "ubelt~=1.3" "retrying~=1.3" "spacy~=3.5" tqdm "zstandard~=0.18.0" sqlitedict \
  "datasets~=3.1" pyarrow pyarrow-hotfix nltk rouge-score scipy "uncertainty-calibration~=0.1.4" \
  scikit-learn "transformers<6" pillow
.venv-helm/bin/helm-run --help >/dev/null
echo "crfm-helm 0.5.16 in .venv-helm"
