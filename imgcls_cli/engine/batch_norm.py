"""Batch-normalization statistics that fit the trained weights ("precise BN").

In training mode a BatchNormalization layer normalizes each batch by that batch's mean
and variance; in inference mode (validation, the saved model, evaluate, predict, export)
it uses moving averages that training updates at momentum 0.9. A small folder trains
for 20-30 steps, after which those averages still hold much of their start (mean 0,
variance 1): the model that is validated and saved is not the one that trained, and on
small folders it scored at chance. So before every validation the statistics are
measured again with the current weights, over a fixed sample of at most 512 training
images without augmentation (data.prepare.TRAIN_SAMPLE_IMAGES): each layer's moving
mean and variance become the plain average of its per-batch moments, as fvcore's
`update_bn_stats` and pycls' precise BN do.

Under tf.distribute the per-replica moments are summed across replicas and workers
(weighted by their images) and every replica assigns the same result, so all replicas
and workers hold identical statistics.
"""

from __future__ import annotations

import threading
from typing import Any

from imgcls_cli.backend import import_tensorflow

tf = import_tensorflow()  # first, so TensorFlow's start-up log stays quiet
import keras  # noqa: E402


def statistics_layers(model: Any) -> list[Any]:
    """The BatchNormalization layers whose moving statistics a training step of `model`
    updates: trainable ones, in nested models too, except inside a sub-model that the
    model always runs in inference mode (its `inference_mode_layers`)."""
    found: list[Any] = []

    def walk(layer: Any) -> None:
        if isinstance(layer, keras.layers.BatchNormalization):
            if layer.trainable and layer not in found:
                found.append(layer)
            return
        frozen = getattr(layer, "inference_mode_layers", ())
        for child in getattr(layer, "layers", []):
            if not any(child is skipped for skipped in frozen):
                walk(child)

    walk(model)
    return found


class BatchNormStatistics:
    """Re-measures a model's batch-normalization statistics over fixed training batches.

    `batches`: (float 0-255 images, one-hot labels) batches of training images without
    augmentation, the same ones at every call. A model without batch normalization in
    training costs nothing: update() returns at once.
    """

    def __init__(self, model: Any, strategy: Any, batches: Any):
        self.model = model
        self.strategy = strategy
        self.layers = statistics_layers(model)
        self.variables = [
            v for layer in self.layers for v in (layer.moving_mean, layer.moving_variance)
        ]
        weight_ids = {id(weight) for weight in model.weights}
        # Dropout's seed generators: the pass runs in training mode, and must not move
        # the random stream that training (and a bit-identical resume) draws from.
        self.rng_variables = [v for v in model.variables if id(v) not in weight_ids]
        self.batches = batches
        self._distributed = None
        self._step = tf.function(self._distributed_step, reduce_retracing=True, autograph=False)

    @property
    def active(self) -> bool:
        return bool(self.layers) and self.batches is not None

    def _replica_moments(self, images: Any, labels: Any) -> list[Any]:
        """[images, then each layer's batch mean and variance times images] for this
        replica's batch: the moments each layer normalizes by in training mode (over the
        global batch where batch normalization is synchronized), caught as the layer
        computes them. Reading the moving statistics back after a momentum-0 update was
        not ordered after the update under MirroredStrategy (the last layer read a
        stale value); the layer's own `_moments` is."""
        from imgcls_cli.engine.batches import never_empty

        images, labels, weights = never_empty(images, labels)
        count = tf.reduce_sum(weights)
        self.model(images, training=True)
        # MirroredStrategy traces each replica in a thread of its own.
        moments = [self._caught[threading.get_ident(), id(layer)] for layer in self.layers]
        return [count] + [value * count for pair in moments for value in pair]

    def _distributed_step(self, batch: Any) -> list[Any]:
        self._caught: dict[tuple[int, int], tuple[Any, Any]] = {}
        for layer in self.layers:  # this Python runs at trace time only
            layer._moments = catch_moments(layer, self._caught)
        try:
            per_replica = self.strategy.run(self._replica_moments, args=batch)
        finally:
            for layer in self.layers:
                del layer._moments  # back to the class's method
        return [self.strategy.reduce("SUM", value, axis=None) for value in per_replica]

    def update(self) -> None:
        """Set every moving mean and variance to its average over the sample's batches
        (the pass's own updates of them, at the layers' momentum, are overwritten)."""
        if not self.active:
            return
        if self._distributed is None:
            self._distributed = self.strategy.experimental_distribute_dataset(self.batches)
        random_state = [variable.numpy() for variable in self.rng_variables]
        sums = None
        from imgcls_cli.engine.batches import traced_for_any_batch_size

        step = traced_for_any_batch_size(self._step, self._distributed.element_spec)
        for batch in self._distributed:
            values = step(batch)
            sums = values if sums is None else [a + b for a, b in zip(sums, values)]
        if sums is None:  # no image of the sample could be read: keep what there is
            return
        for variable, total in zip(self.variables, sums[1:]):
            variable.assign(total / sums[0])
        for variable, value in zip(self.rng_variables, random_state):
            variable.assign(value)


# Plain Python that runs while the step is traced: AutoGraph would transpile it anew for
# every layer of every run (0.4 s of a small convnet run's 6 s here).
@tf.autograph.experimental.do_not_convert
def catch_moments(layer: Any, caught: dict[tuple[int, int], tuple[Any, Any]]) -> Any:
    """The layer's `_moments(inputs, mask)` (Keras' BatchNormalization computes the batch
    mean and variance there), recording what it returns in `caught[thread, id(layer)]`."""
    compute = type(layer)._moments

    def record(inputs: Any, mask: Any) -> tuple[Any, Any]:
        mean, variance = compute(layer, inputs, mask)
        moments = (tf.reshape(mean, [-1]), tf.reshape(variance, [-1]))
        caught[threading.get_ident(), id(layer)] = moments
        return mean, variance

    return record
