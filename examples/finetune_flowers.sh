#!/usr/bin/env bash
# Fine-tune MobileNetV2 (ImageNet weights) on a folder of photos, one sub-folder per class:
#
#   flowers/
#     daisy/      100080576_f52e8ee070_n.jpg ...
#     roses/      ...
#     tulips/     ...
#
# (or flowers/train/<class>/..., flowers/val/<class>/..., flowers/test/<class>/...).
#   bash examples/finetune_flowers.sh ./flowers
# Quick check offline on a small folder: WEIGHTS=none IMAGE_SIZE=32 HEAD_EPOCHS=1 EPOCHS=0 \
#   bash examples/finetune_flowers.sh some/folder
set -euo pipefail
IMGCLS=${IMGCLS:-imgcls}
DATA=${1:-./flowers}
WEIGHTS=${WEIGHTS:-imagenet}
IMAGE_SIZE=${IMAGE_SIZE:-224}
HEAD_EPOCHS=${HEAD_EPOCHS:-5}
EPOCHS=${EPOCHS:-5}
OUTPUT=${OUTPUT:-runs/example-finetune-mobilenetv2}

$IMGCLS finetune --backbone mobilenetv2 --data "$DATA" --weights "$WEIGHTS" \
  --image-size "$IMAGE_SIZE" --head-epochs "$HEAD_EPOCHS" --epochs "$EPOCHS" \
  --augment none --output "$OUTPUT" --force
$IMGCLS evaluate --model "$OUTPUT"
