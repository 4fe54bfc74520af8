#!/usr/bin/env bash
# Set up (first run only) and run the quickstart scenario end to end, logged to ./mlflow.db.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
multiseal run scenarios/quickstart.yaml "$@"
