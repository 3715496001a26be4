#!/usr/bin/env bash
# The prepared GPU check: see benchmarks/gpu_check.py. Prints a table, then one JSON line.
#   bash benchmarks/gpu_check.sh            # on a GPU machine (about 8 minutes at most)
#   bash benchmarks/gpu_check.sh --dry-run  # the same steps, tiny, on the CPU
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
exec "$PYTHON" benchmarks/gpu_check.py "$@"
