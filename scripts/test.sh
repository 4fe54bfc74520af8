#!/usr/bin/env bash
# Set up (first run only) and run the whole test suite (fast tiny-random tests and SmolLM2 tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
# two processes (pytest-xdist), one torch thread each: every core of a 2-core machine busy; the two
# Ray modules share one worker (their xdist_group), so one local Ray instance runs at a time
python -m pytest -q -n "${MULTISEAL_TEST_WORKERS:-2}" --dist loadgroup "$@"
