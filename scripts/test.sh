#!/usr/bin/env bash
# Set up (first run only) and run the whole test suite (fast tiny-random tests and SmolLM2 tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
python -m pytest -q "$@"
