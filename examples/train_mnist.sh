#!/usr/bin/env bash
# Train the classic CNN on MNIST (downloaded once by TensorFlow Datasets), then score it.
#   bash examples/train_mnist.sh
# Quick check without network: DATASET=digits EPOCHS=1 bash examples/train_mnist.sh
set -euo pipefail
IMGCLS=${IMGCLS:-imgcls}
DATASET=${DATASET:-mnist}
EPOCHS=${EPOCHS:-5}
OUTPUT=${OUTPUT:-runs/example-$DATASET-simplecnn}

$IMGCLS train --dataset "$DATASET" --arch simplecnn --epochs "$EPOCHS" --output "$OUTPUT" --force
$IMGCLS evaluate --model "$OUTPUT"
