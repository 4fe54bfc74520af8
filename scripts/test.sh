#!/usr/bin/env bash
# Set up (first run only) and run the whole test suite (fast tiny-random tests and SmolLM2 tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
# two processes (pytest-xdist), one torch thread each: every core of a 2-core machine busy; each test
# file runs in one process (its module fixtures built once), and one local Ray instance at a time
# (the local_ray fixture's lock)
python -m pytest -q -n "${MULTISEAL_TEST_WORKERS:-2}" --dist loadfile "$@"
