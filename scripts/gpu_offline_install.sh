#!/usr/bin/env bash
# Install, without network, what scripts/gpu_wheels.sh gathered into a folder for PYTHONPATH: its
# wheels as they are, and fairseq from its source with only the two Cython modules it needs compiled
# (scripts/build_fairseq_cython.py). scripts/gpu_check.sh runs it on a GPU machine with no PyPI.
#   bash scripts/gpu_offline_install.sh GPU_DIR SITE     (PYTHON=python3 picks the interpreter)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
if [ $# -ne 2 ] || [ ! -d "$1/wheels" ] || ! ls "$1"/fairseq/*.tar.gz >/dev/null 2>&1; then
  echo "gpu_offline_install: error: usage: gpu_offline_install.sh GPU_DIR SITE, GPU_DIR as" \
    "scripts/gpu_wheels.sh fills it (wheels/, fairseq/*.tar.gz)" >&2
  exit 2
fi
GPU_DIR="$1"
SITE="$2"
mkdir -p "$SITE"
echo "[gpu_offline_install] $(ls "$GPU_DIR"/wheels | tr '\n' ' ')-> $SITE" >&2
"$PY" -m pip install -q --no-index --no-deps --no-cache-dir --disable-pip-version-check --target "$SITE" \
  "$GPU_DIR"/wheels/*.whl
# fairseq/ and fairseq_cli/ out of the sdist, nothing else (its setup.py would build every C++ extension)
tar -xzf "$GPU_DIR"/fairseq/*.tar.gz -C "$SITE" --strip-components=1 --wildcards '*/fairseq/*' '*/fairseq_cli/*'
"$PY" "$ROOT/scripts/build_fairseq_cython.py" "$SITE"
