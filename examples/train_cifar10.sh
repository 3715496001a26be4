#!/usr/bin/env bash
# Train the small residual CNN on CIFAR-10 with a cosine schedule, warmup and augmentation.
#   bash examples/train_cifar10.sh
# Quick check without network: DATASET=digits EPOCHS=1 WARMUP=0 bash examples/train_cifar10.sh
set -euo pipefail
IMGCLS=${IMGCLS:-imgcls}
DATASET=${DATASET:-cifar10}
EPOCHS=${EPOCHS:-30}
WARMUP=${WARMUP:-2}
OUTPUT=${OUTPUT:-runs/example-$DATASET-resnet8}

$IMGCLS train --dataset "$DATASET" --arch resnet8 --epochs "$EPOCHS" --batch-size 128 \
  --optimizer adamw --schedule cosine --warmup-epochs "$WARMUP" --augment standard \
  --patience 5 --output "$OUTPUT" --force
