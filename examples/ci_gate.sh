#!/usr/bin/env bash
# A CI job: train briefly, evaluate as JSON, fail the job when accuracy drops below a bar.
#   MIN_ACCURACY=0.95 bash examples/ci_gate.sh
set -euo pipefail
IMGCLS=${IMGCLS:-imgcls}
PYTHON=${PYTHON:-python3}
EPOCHS=${EPOCHS:-30}
MIN_ACCURACY=${MIN_ACCURACY:-0.95}
OUTPUT=${OUTPUT:-runs/ci-gate}
REPORT=${REPORT:-$OUTPUT.report.json}  # beside the run: --force replaces only imgcls' own files

$IMGCLS train --dataset digits --epochs "$EPOCHS" --quiet --output "$OUTPUT" --force
$IMGCLS evaluate --model "$OUTPUT" --json > "$REPORT"

# With jq: jq -e ".accuracy >= $MIN_ACCURACY" "$REPORT"
# imgcls can also gate by itself: imgcls evaluate --min-accuracy "$MIN_ACCURACY"
$PYTHON - "$REPORT" "$MIN_ACCURACY" <<'PY'
import json, sys
accuracy = json.load(open(sys.argv[1]))["accuracy"]
bar = float(sys.argv[2])
print(f"test accuracy {accuracy:.4f} (bar {bar})")
sys.exit(0 if accuracy >= bar else 1)
PY
