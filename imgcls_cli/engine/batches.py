"""A replica's batch made safe to run through a model, for training and the statistics
pass alike."""

from __future__ import annotations

from typing import Any

from imgcls_cli.backend import import_tensorflow

tf = import_tensorflow()


def never_empty(images: Any, labels: Any) -> tuple[Any, Any, Any]:
    """(images, labels, weights): a replica's batch with one all-zero example of weight 0
    added when it is empty, else as it is (weights 1). A replica gets an empty batch when
    the last batch of an epoch has fewer examples than there are replicas, or, on several
    workers, while a worker that ran out of data waits for the others; and a model given
    an empty batch can fail (oneDNN's fused convolution: "input depth must be evenly
    divisible by filter depth"). Padding, not tf.cond: under MirroredStrategy, batch
    normalization is synchronized across replicas, which a branch cannot hold."""
    count = tf.shape(images)[0]
    padding = tf.maximum(0, 1 - count)
    images = tf.pad(images, [[0, padding]] + [[0, 0]] * (len(images.shape) - 1))
    labels = tf.pad(labels, [[0, padding], [0, 0]])
    weights = tf.cast(tf.range(count + padding) < count, tf.float32)
    return images, labels, weights


def traced_for_any_batch_size(step: Any, spec: Any) -> Any:
    """`step` (a tf.function taking one batch) traced once for `spec`, a batch's spec
    whose batch dimension is unknown (a dataset's element_spec): the epoch's last,
    smaller batch then reuses that graph instead of tracing a second one, as it would
    when the first trace takes the first batch's exact shape. Tracing is the slow part of
    a short run: an unfrozen MobileNetV2's training step took about 4 s to trace at
    32 px, each time. Returns `step`, whose later calls find this trace."""
    step.get_concrete_function(spec)
    return step
