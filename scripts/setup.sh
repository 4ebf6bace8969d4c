#!/usr/bin/env bash
# Create .venv (if missing) and install svdyn with its test, torch and xarray extras.
# torch is pinned here to the CPU build 2.13.0 (an unpinned torch pulls a multi-GB CUDA build);
# the package itself only asks for torch>=2.1.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test,torch,xarray]" "torch==2.13.0"
