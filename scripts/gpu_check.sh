#!/usr/bin/env bash
# The one-call GPU check (docs/gpu_check.md): sets fairseq up, then runs benchmarks/gpu_check.py,
# which writes a Markdown report (default outputs/gpu_check/report.md) and prints it.
#   bash scripts/gpu_check.sh [--cpu] [--out REPORT.md] [--data DATA_BIN] [...]   (--help: all options)
# fairseq comes from the first of these that applies:
#   1. $PYTHON finds fairseq, metro_fairseq and what they import already (the project's .venv, your
#      own environment; looked up, not imported: an import costs seconds, and a broken one fails loudly later);
#   2. .gpu/ exists (scripts/gpu_wheels.sh, for a GPU machine without network): installed from it
#      offline into a temporary folder on PYTHONPATH, fairseq's two Cython modules compiled there;
#   3. otherwise scripts/setup_env.sh creates or reuses .venv (needs PyPI).
#   PYTHON=python3      the interpreter to try first
#   METRO_GPU_DIR=path  the offline folder (default .gpu)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
GPU_DIR="${METRO_GPU_DIR:-$ROOT/.gpu}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"  # metro_fairseq from this checkout, installed or not
start=$(date +%s.%N)

NEEDED="fairseq fairseq_cli metro_fairseq hydra omegaconf bitarray fairscale sacrebleu sklearn sentencepiece"
if "$PY" -c 'import importlib.util, sys; sys.exit(any(importlib.util.find_spec(m) is None for m in sys.argv[1:]))' \
    $NEEDED 2>/dev/null; then
  setup="fairseq and its dependencies found by $("$PY" -c 'import sys; print(sys.executable)')"
elif [ -d "$GPU_DIR/wheels" ]; then
  site="$(mktemp -d /tmp/metro-gpu-site.XXXXXX)"
  trap 'rm -rf "$site"' EXIT
  PYTHON="$PY" bash "$ROOT/scripts/gpu_offline_install.sh" "$GPU_DIR" "$site"
  export PYTHONPATH="$PYTHONPATH:$site"  # after the checkout: fairscale's wheel brings a package named benchmarks
  setup="installed offline from $GPU_DIR into a temporary folder"
else
  source "$ROOT/scripts/setup_env.sh"
  PY="$VPY"
  setup="scripts/setup_env.sh ($VENV)"
fi
seconds=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

cd "$ROOT"
"$PY" benchmarks/gpu_check.py --setup "$setup in $seconds s" --command "bash scripts/gpu_check.sh $*" "$@"
