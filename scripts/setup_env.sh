#!/usr/bin/env bash
# Create .venv (if absent) and install metro_fairseq with everything it needs.
# Sourced by demo.sh and test.sh; safe to run again (it only installs what is missing).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${METRO_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"

if ! "$VPY" -c "import torch" 2>/dev/null; then
  # Install torch on its own first: pinning a release that has a local CPU wheel keeps pip
  # from resolving a multi-GB CUDA build as a transitive dependency. An existing torch is kept.
  echo "[setup] installing torch"
  "$VPY" -m pip install -q --upgrade pip
  "$VPY" -m pip install -q "torch==${METRO_TORCH_VERSION:-2.13.0}" || "$VPY" -m pip install -q torch
fi

stamp="$VENV/.metro_installed"
if [ ! -f "$stamp" ] || [ "$ROOT/setup.py" -nt "$stamp" ]; then
  echo "[setup] installing metro_fairseq and its dependencies (first time: a few minutes)"
  "$VPY" -m pip install -q -e "$ROOT[dev]"
  touch "$stamp"
fi
export PATH="$VENV/bin:$PATH"
