#!/usr/bin/env bash
# Create .venv (if absent) and install metro_fairseq with everything it needs.
# Sourced by demo.sh and test.sh; running it again only installs what is missing.
#   PYTHON=python3.11   interpreter for a new venv
#   METRO_VENV=path     use another venv location
#   METRO_TORCH=spec    torch requirement when none is installed (default torch==2.13.0)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${METRO_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  venv_flags=()
  # a torch already installed for this interpreter (e.g. a CUDA build on a GPU node) is kept
  if "$PY" -c "import torch" 2>/dev/null; then
    echo "[setup] reusing the torch installed for $PY"
    venv_flags+=(--system-site-packages)
  fi
  echo "[setup] creating $VENV"
  "$PY" -m venv "${venv_flags[@]}" "$VENV"
fi
VPY="$VENV/bin/python"
pipq() { "$VPY" -m pip install -q --disable-pip-version-check "$@"; }

if ! "$VPY" -c "import torch" 2>/dev/null; then
  # torch first and pinned: left to resolve it as a dependency, pip picks a multi-GB CUDA build
  echo "[setup] installing ${METRO_TORCH:-torch==2.13.0}"
  pipq "${METRO_TORCH:-torch==2.13.0}"
fi

stamp="$VENV/.metro_fairseq_installed"
if [ ! -f "$stamp" ] || [ "$ROOT/setup.py" -nt "$stamp" ]; then
  echo "[setup] installing metro_fairseq and its dependencies (first time: a few minutes, fairseq compiles)"
  # fairseq builds C++ extensions against torch; without build isolation it uses the torch above
  # instead of downloading another one into a temporary build environment
  pipq setuptools wheel cython "numpy<2.5"
  pipq --no-build-isolation -e "$ROOT[dev,tensorboard]"
  touch "$stamp"
fi
if ! "$VPY" -c "import transformers, google.protobuf" 2>/dev/null; then
  # the [hf] extra (scripts/export_hf.py and its tests), pinned to the versions tested
  echo "[setup] installing transformers for the Hugging Face export"
  pipq "transformers==5.23.0" "protobuf==7.36.2"
fi
# fairseq declares torchaudio, so pip installs its newest wheel, which is built for another torch (2.11.1,
# a CUDA 13 build for torch 2.11: with our torch its _torchaudio.so does not load). fairseq imports it
# only inside its speech functions, but transformers imports it whenever it is installed, so a plain
# `from transformers import pipeline` (or any model class) dies with OSError. Remove a torchaudio that
# does not import; one that does (e.g. matching a reused CUDA torch) is kept. Runs every time: a
# reinstall above brings it back. `pip check` then reports fairseq's requirement as missing.
torchaudio_state() {
  "$VPY" -c 'import importlib.util as u
if u.find_spec("torchaudio") is None:
    print("absent")
else:
    import torchaudio
    print("ok")' 2>/dev/null || echo broken
}
if [ "$(torchaudio_state)" = broken ]; then
  echo "[setup] removing torchaudio: built for another torch, it does not import, and it breaks transformers"
  "$VPY" -m pip uninstall -q -y torchaudio || true  # pip leaves one outside the venv: checked next
  if [ "$(torchaudio_state)" = broken ]; then
    echo "[setup] warning: a torchaudio that does not import remains outside $VENV (system site-packages);" \
         "transformers model imports fail until it is removed" >&2
  fi
fi
export PATH="$VENV/bin:$PATH"
