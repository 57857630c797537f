#!/usr/bin/env bash
# Set up (first run) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
export METRO_DOWNLOAD_DIR="${METRO_DOWNLOAD_DIR:-$ROOT/data/download}"
# one pytest-xdist worker per core (METRO_TEST_WORKERS=0: no workers, one process with every thread); a file's tests share a worker,
# so its module fixtures are built once (tests/conftest.py: one thread per worker, session data built once)
python -m pytest tests -p no:cacheprovider -n "${METRO_TEST_WORKERS:-$(nproc)}" --dist loadfile "$@"
