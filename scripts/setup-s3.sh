#!/usr/bin/env bash
# Creates .venv-s3 (once): moto's server mode, an S3-compatible server the object-store tests
# start on 127.0.0.1 (tests/src/moto.rs). About 320 MB; skipped when present.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv-s3/bin/moto_server ] && .venv-s3/bin/python -c 'import moto.server' 2>/dev/null; then
  exit 0
fi
python3 -m venv .venv-s3
.venv-s3/bin/pip install -q --upgrade pip
.venv-s3/bin/pip install -q "moto[server]~=5.1"
.venv-s3/bin/moto_server --help >/dev/null
echo "moto $(.venv-s3/bin/python -c 'import moto; print(moto.__version__)') in .venv-s3"
