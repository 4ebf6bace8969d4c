#!/usr/bin/env bash
# One command: set up (.venv) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$PWD/.numba_cache}"
export MPLBACKEND=Agg
.venv/bin/python -m pytest -q "$@"
