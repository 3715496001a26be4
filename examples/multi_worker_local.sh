#!/usr/bin/env bash
# Train with MultiWorkerMirroredStrategy on two worker processes on this machine.
# On a real cluster, run the same command on each machine with its own TF_CONFIG
# (every worker lists all addresses; "index" is that machine's position in the list),
# and give --output a folder on a disk all workers share.
#
#   bash examples/multi_worker_local.sh            # 5 epochs on the embedded digits
#   EPOCHS=1 bash examples/multi_worker_local.sh   # quick check
set -euo pipefail

IMGCLS=${IMGCLS:-imgcls}
EPOCHS=${EPOCHS:-5}
# simplecnn: the quickest to train. Every arch ends with the very same weights on both
# workers: batch normalization's statistics (convnet, resnet8) are measured on each
# worker's part of a sample of the training images and averaged across the workers.
ARCH=${ARCH:-simplecnn}
OUTPUT=${OUTPUT:-runs/multi-worker-digits}
PORT0=${PORT0:-12345}
PORT1=${PORT1:-12346}
CLUSTER="\"worker\": [\"127.0.0.1:$PORT0\", \"127.0.0.1:$PORT1\"]"

prefix() {  # each line of a worker's output, led by the worker's index
  while IFS= read -r line; do printf '[worker %s] %s\n' "$1" "$line"; done
}

pids=()
for index in 0 1; do
  TF_CONFIG="{\"cluster\": {$CLUSTER}, \"task\": {\"type\": \"worker\", \"index\": $index}}" \
    $IMGCLS train --strategy multi-worker --dataset digits --arch "$ARCH" --epochs "$EPOCHS" \
      --batch-size 64 --output "$OUTPUT" > >(prefix "$index") 2>&1 &
  pids+=($!)
done

status=0
for pid in "${pids[@]}"; do
  wait "$pid" || status=$?
done
exit $status
