#!/usr/bin/env bash
# Set up (first run) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
export METRO_DOWNLOAD_DIR="${METRO_DOWNLOAD_DIR:-$ROOT/data/download}"
python -m pytest tests -p no:cacheprovider "$@"
