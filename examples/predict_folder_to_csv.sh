#!/usr/bin/env bash
# Classify every image below a folder into a CSV file (path,label,confidence,...,error).
#   bash examples/predict_folder_to_csv.sh examples/images predictions.csv
# Without --model, the most recent run under ./runs is used (after `make demo`: digits).
set -euo pipefail
IMGCLS=${IMGCLS:-imgcls}
FOLDER=${1:-examples/images}
CSV=${2:-predictions.csv}
MODEL_ARGS=()
if [ -n "${MODEL:-}" ]; then MODEL_ARGS=(--model "$MODEL"); fi

# Exit code 1 means some file could not be read; its row says why, the rest are predicted.
$IMGCLS predict "$FOLDER" "${MODEL_ARGS[@]}" --csv > "$CSV"
echo "wrote $CSV"
