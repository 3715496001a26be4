"""The one training loop, for every tf.distribute strategy.

Keras 3's `model.fit` fails under MultiWorkerMirroredStrategy (keras-team/keras#20585),
so steps run through `strategy.run` over a distributed dataset instead: the same code
path on one CPU as on a cluster.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Protocol

import keras
import tensorflow as tf

from .config import Optimizer, Schedule

REPORT_INTERVAL_S = 0.25  # how often the progress bar is refreshed (each refresh syncs)


class Reporter(Protocol):
    """How the library reports progress; cli.py passes a Rich implementation."""

    def info(self, message: str) -> None: ...
    def warning(self, message: str) -> None: ...
    def epoch_start(self, epoch: int, epochs: int, steps: int | None) -> None: ...
    def step(self, step: int, logs: dict[str, float]) -> None: ...
    def epoch_end(self, logs: dict[str, float]) -> None: ...


class SilentReporter:
    def info(self, message: str) -> None:
        pass

    def warning(self, message: str) -> None:
        pass

    def epoch_start(self, epoch: int, epochs: int, steps: int | None) -> None:
        pass

    def step(self, step: int, logs: dict[str, float]) -> None:
        pass

    def epoch_end(self, logs: dict[str, float]) -> None:
        pass


def create_learning_rate(
    lr: float, schedule: Schedule, total_steps: int, warmup_steps: int
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """Constant or cosine decay, each with an optional linear warmup from 0."""
    if schedule == Schedule.constant and warmup_steps == 0:
        return lr
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else lr,
        decay_steps=max(1, total_steps - warmup_steps),
        # alpha=1 keeps the rate at its peak: 'constant' after the warmup.
        alpha=1.0 if schedule == Schedule.constant else 0.0,
        warmup_target=lr if warmup_steps else None,
        warmup_steps=warmup_steps,
    )


def create_optimizer(
    name: Optimizer, learning_rate: Any, weight_decay: float
) -> keras.optimizers.Optimizer:
    if name == Optimizer.sgd:
        return keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True)
    if name == Optimizer.adamw:
        return keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
    return keras.optimizers.Adam(learning_rate)


class Trainer:
    """Holds the model, optimizer, strategy and compiled step functions."""

    def __init__(
        self,
        model: Any,
        optimizer: Any,
        strategy: Any,
        label_smoothing: float = 0.0,
        class_weights: Any = None,
    ):
        self.model = model
        self.optimizer = optimizer
        self.strategy = strategy
        # Optional loss weight per class (e.g. 'balanced' for imbalanced data): each
        # training example's loss is scaled by its class's weight; evaluation is unweighted.
        self.class_weights = (
            None if class_weights is None else tf.constant(class_weights, tf.float32)
        )
        # reduction=None: per-example losses, averaged over the *global* batch below.
        self.loss_fn = keras.losses.CategoricalCrossentropy(
            label_smoothing=label_smoothing, reduction=None
        )
        self._train_step = tf.function(
            self._distributed(self._train_replica), reduce_retracing=True
        )
        self._eval_step = tf.function(self._distributed(self._eval_replica), reduce_retracing=True)

    def _distributed(self, replica_fn: Callable) -> Callable:
        def step(batch):
            per_replica = self.strategy.run(replica_fn, args=batch)
            return [self.strategy.reduce("SUM", value, axis=None) for value in per_replica]

        return step

    def _sums(self, labels, probabilities, per_example_loss):
        hits = tf.equal(tf.argmax(probabilities, -1), tf.argmax(labels, -1))
        count = tf.cast(tf.shape(labels)[0], tf.float32)
        return [tf.reduce_sum(per_example_loss), tf.reduce_sum(tf.cast(hits, tf.float32)), count]

    def _train_replica(self, images, labels):
        with tf.GradientTape() as tape:
            probabilities = self.model(images, training=True)
            per_example_loss = self.loss_fn(labels, probabilities)
            if self.class_weights is not None:
                per_example_loss *= tf.reduce_sum(labels * self.class_weights, axis=-1)
            loss = tf.nn.compute_average_loss(per_example_loss)
            if self.model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.model.losses))
        variables = self.model.trainable_variables
        gradients = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))
        return self._sums(labels, probabilities, per_example_loss)

    def _eval_replica(self, images, labels):
        probabilities = self.model(images, training=False)
        return self._sums(labels, probabilities, self.loss_fn(labels, probabilities))

    def train_epoch(self, dataset: Any, reporter: Reporter) -> dict[str, float]:
        totals, step = tf.zeros([3]), 0
        started = last_report = time.perf_counter()
        for step, batch in enumerate(self.strategy.experimental_distribute_dataset(dataset), 1):
            totals += tf.stack(self._train_step(batch))
            now = time.perf_counter()
            if now - last_report >= REPORT_INTERVAL_S:
                last_report = now
                reporter.step(step, summarize(totals.numpy(), now - started))
        logs = summarize(totals.numpy(), time.perf_counter() - started)
        reporter.step(step, logs)
        return logs

    def evaluate(self, dataset: Any) -> dict[str, float]:
        totals = tf.zeros([3])
        for batch in self.strategy.experimental_distribute_dataset(dataset):
            totals += tf.stack(self._eval_step(batch))
        logs = summarize(totals.numpy(), None)
        return {"loss": logs["loss"], "accuracy": logs["accuracy"], "examples": logs["examples"]}

    def current_learning_rate(self) -> float:
        return float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))


def summarize(totals: Any, seconds: float | None) -> dict[str, float]:
    loss_sum, hits, count = (float(v) for v in totals)
    logs = {
        "loss": loss_sum / count if count else math.nan,
        "accuracy": hits / count if count else math.nan,
        "examples": int(count),
    }
    if seconds:
        logs["images_per_second"] = count / seconds
        logs["seconds"] = seconds
    return logs


def fit(
    trainer: Trainer,
    train_ds: Any,
    val_ds: Any | None,
    *,
    epochs: int,
    steps_per_epoch: int | None,
    patience: int | None,
    reporter: Reporter,
    on_epoch_end: Callable[[list[dict[str, float]]], None] = lambda history: None,
) -> list[dict[str, float]]:
    """Train for `epochs`, validating after each; with `patience`, stop when validation
    loss has not improved for that many epochs and restore the best weights."""
    history: list[dict[str, float]] = []
    best_loss, best_weights, best_epoch = math.inf, None, 0
    for epoch in range(1, epochs + 1):
        reporter.epoch_start(epoch, epochs, steps_per_epoch)
        train_logs = trainer.train_epoch(train_ds, reporter)
        row = {
            "epoch": epoch,
            "loss": train_logs["loss"],
            "accuracy": train_logs["accuracy"],
            "lr": trainer.current_learning_rate(),
            "seconds": train_logs.get("seconds", 0.0),
            "images_per_second": train_logs.get("images_per_second", 0.0),
        }
        if val_ds is not None:
            val_logs = trainer.evaluate(val_ds)
            row["val_loss"], row["val_accuracy"] = val_logs["loss"], val_logs["accuracy"]
        history.append(row)
        reporter.epoch_end(row)
        on_epoch_end(history)
        if patience is None or val_ds is None:
            continue
        if row["val_loss"] < best_loss:
            best_loss, best_epoch = row["val_loss"], epoch
            best_weights = trainer.model.get_weights()
        elif epoch - best_epoch >= patience:
            reporter.info(
                f"Early stopping: validation loss has not improved for {patience} epochs; "
                f"restoring the weights of epoch {best_epoch}."
            )
            break
    if best_weights is not None and best_epoch != history[-1]["epoch"]:
        trainer.model.set_weights(best_weights)
    return history
