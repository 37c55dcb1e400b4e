#!/bin/sh
# Runs ../libexec/<this name> (a tuna-ml or ml_bench built against libtorch 2.11 by
# scripts/pack-device.sh) with the torch libraries of the Python environment it runs in:
# $LIBTORCH (a folder holding lib/libtorch_cpu.so, as torch-sys names it; it reaches the steps
# tuna runs, where tuna drops its own TUNA_* variables), else the torch that $TUNA_PYTHON
# (default python3) imports. Copied into device-bundle/bin/ under each binary's name.
here=$(dirname "$(readlink -f "$0")")
name=$(basename "$0")
if [ -z "${LIBTORCH:-}" ]; then
  LIBTORCH=$("${TUNA_PYTHON:-python3}" -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>/dev/null) || {
    echo "$name: no torch in ${TUNA_PYTHON:-python3}: set LIBTORCH or TUNA_PYTHON (libtorch 2.11 is needed)" >&2
    exit 127
  }
  export LIBTORCH
fi
if [ ! -f "$LIBTORCH/lib/libtorch_cpu.so" ]; then
  echo "$name: $LIBTORCH/lib/libtorch_cpu.so not found" >&2
  exit 127
fi
LD_LIBRARY_PATH="$LIBTORCH/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$here/../libexec/$name" "$@"
