"""The one training loop, for every tf.distribute strategy.

Keras 3's `model.fit` fails under MultiWorkerMirroredStrategy (keras-team/keras#20585),
so steps run through `strategy.run` over a distributed dataset instead: the same code
path on one CPU as on a cluster.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shlex
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from imgcls_cli.backend import import_tensorflow
from imgcls_cli.config import Optimizer, Schedule
from imgcls_cli.engine.batches import never_empty, traced_for_any_batch_size
from imgcls_cli.errors import ImgclsError
from imgcls_cli.reporting import Reporter

tf = import_tensorflow()  # first, so TensorFlow's start-up log stays quiet
import keras  # noqa: E402

REPORT_INTERVAL_S = 0.25  # how often the progress bar is refreshed (each refresh syncs)


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
    name: Optimizer,
    learning_rate: Any,
    weight_decay: float,
    loss_scaling: bool = False,
    ema: float | None = None,
) -> keras.optimizers.Optimizer:
    """Adam, AdamW or SGD with Nesterov momentum; loss scaling for float16 training.

    `ema`: the decay of a moving average of the trainable weights that the optimizer
    updates after every step (Keras' `use_ema`); its variables are the optimizer's, so
    checkpoints hold them. Trainer.averaged_weights puts it in the model.
    """
    averaging = {"use_ema": True, "ema_momentum": ema} if ema else {}
    if name == Optimizer.sgd:
        optimizer = keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True, **averaging)
    elif name == Optimizer.adamw:
        optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay, **averaging)
    else:
        optimizer = keras.optimizers.Adam(learning_rate, **averaging)
    return keras.optimizers.LossScaleOptimizer(optimizer) if loss_scaling else optimizer


class Evaluator:
    """A model under a strategy, with a compiled evaluation step: the loss and accuracy of
    a dataset (what metrics.json records)."""

    def __init__(self, model: Any, strategy: Any, label_smoothing: float = 0.0):
        self.model = model
        self.strategy = strategy
        # reduction=None: per-example losses, averaged over the *global* batch.
        self.loss_fn = keras.losses.CategoricalCrossentropy(
            label_smoothing=label_smoothing, reduction=None
        )
        # autograph=False: the steps are plain graph code (backend.traced_as_written).
        self._eval_step = tf.function(
            self._distributed(self._eval_replica), reduce_retracing=True, autograph=False
        )

    def _distributed(self, replica_fn: Callable) -> Callable:
        def step(batch):
            per_replica = self.strategy.run(replica_fn, args=batch)
            return [self.strategy.reduce("SUM", value, axis=None) for value in per_replica]

        return step

    def _sums(self, labels, probabilities, per_example_loss, weights):
        hits = tf.cast(tf.equal(tf.argmax(probabilities, -1), tf.argmax(labels, -1)), tf.float32)
        return [
            tf.reduce_sum(per_example_loss * weights),
            tf.reduce_sum(hits * weights),
            tf.reduce_sum(weights),
        ]

    def _eval_replica(self, images, labels):
        images, labels, weights = never_empty(images, labels)
        probabilities = self.model(images, training=False)
        sums = self._sums(labels, probabilities, self.loss_fn(labels, probabilities), weights)
        # Every evaluation counts it, so the final test pass needs no second trace; its
        # cost grows with classes squared (a step took +0.15 ms at 10 classes, +0.55 ms at
        # 1,000 on 2 CPU cores), and it is summed across replicas with the scores.
        confusion = tf.math.confusion_matrix(
            tf.argmax(labels, -1),
            tf.argmax(probabilities, -1),
            num_classes=labels.shape[-1],
            weights=weights,
            dtype=tf.float32,
        )
        return [*sums, confusion]

    def distribute(self, dataset: Any) -> Any:
        """Split global batches across replicas (and workers). Done once per dataset: a
        distributed dataset keeps its reshuffle state between epochs.

        A ShardedInput under a multi-worker strategy goes through
        distribute_datasets_from_function instead, so each worker reads and decodes only
        its part of the data (experimental_distribute_dataset would have every worker
        read all of it and keep 1/N of the batches). Workers that run out of batches
        first take empty ones until all are done, so every worker runs the same steps.
        """
        from imgcls_cli.data.pipeline import ShardedInput
        from imgcls_cli.engine.devices import is_multi_worker

        if isinstance(dataset, ShardedInput):
            if is_multi_worker(self.strategy):
                return self.strategy.distribute_datasets_from_function(dataset.for_worker)
            dataset = dataset.dataset
        return self.strategy.experimental_distribute_dataset(dataset)

    def evaluate(self, dataset: Any, distributed: bool = False) -> dict[str, float]:
        """The loss, accuracy and number of examples of a dataset."""
        return self.evaluate_with_confusion(dataset, distributed)[0]

    def evaluate_with_confusion(
        self, dataset: Any, distributed: bool = False
    ) -> tuple[dict[str, float], np.ndarray]:
        """evaluate(), and the confusion matrix of the same pass (rows: true class,
        columns: predicted; summed over replicas and workers), so a split whose matrix is
        wanted too is not run through the model twice."""
        totals, confusion = tf.zeros([3]), None
        batches = dataset if distributed else self.distribute(dataset)
        step = traced_for_any_batch_size(self._eval_step, batches.element_spec)
        for batch in batches:
            *sums, matrix = step(batch)
            totals += tf.stack(sums)
            confusion = matrix if confusion is None else confusion + matrix
        logs = summarize(totals.numpy(), None)
        scores = {"loss": logs["loss"], "accuracy": logs["accuracy"], "examples": logs["examples"]}
        counts = np.zeros([0, 0]) if confusion is None else confusion.numpy()
        return scores, np.rint(counts).astype(np.int64)


class Trainer(Evaluator):
    """An Evaluator that also trains: the optimizer and the compiled training step."""

    def __init__(
        self,
        model: Any,
        optimizer: Any,
        strategy: Any,
        label_smoothing: float = 0.0,
        class_weights: Any = None,
        train_sample: Any = None,
    ):
        """`train_sample`: fixed batches of training images without augmentation, on
        which the model's batch-normalization statistics are measured before every
        validation (batch_norm.py); None leaves them to the moving averages."""
        from imgcls_cli.engine.batch_norm import BatchNormStatistics

        super().__init__(model, strategy, label_smoothing)
        self.optimizer = optimizer
        self.statistics = BatchNormStatistics(model, strategy, train_sample)
        # Optional loss weight per class (e.g. 'balanced' for imbalanced data): each
        # training example's loss is scaled by its class's weight; evaluation is unweighted.
        self.class_weights = (
            None if class_weights is None else tf.constant(class_weights, tf.float32)
        )
        self._train_step = tf.function(
            self._distributed(self._train_replica), reduce_retracing=True, autograph=False
        )

    def _train_replica(self, images, labels):
        images, labels, weights = never_empty(images, labels)
        with tf.GradientTape() as tape:
            probabilities = self.model(images, training=True)
            per_example_loss = self.loss_fn(labels, probabilities) * weights
            if self.class_weights is not None:
                per_example_loss *= tf.reduce_sum(labels * self.class_weights, axis=-1)
            loss = tf.nn.compute_average_loss(per_example_loss)
            if self.model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.model.losses))
            # A no-op unless the optimizer is a LossScaleOptimizer (mixed_float16).
            scaled_loss = self.optimizer.scale_loss(loss)
        variables = self.model.trainable_variables
        gradients = tape.gradient(scaled_loss, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))
        return self._sums(labels, probabilities, per_example_loss, weights)

    def train_step(self, batch: Any) -> dict[str, float]:
        """One step on one distributed batch: its loss, accuracy and examples (this waits
        for the step; train_epoch does not, between its progress reports)."""
        return summarize(tf.stack(self._train_step(batch)).numpy(), None)

    def train_epoch(
        self,
        dataset: Any,
        reporter: Reporter,
        *,
        start: EpochProgress | None = None,
        after_step: Callable[[int, Callable[[], Any]], None] | None = None,
        first_batch: Callable[[Any], None] | None = None,
    ) -> dict[str, float]:
        """One pass over a distributed dataset. `start` resumes an epoch part-way: its
        steps are skipped (read, not trained) and its sums carried on. `after_step(step,
        totals)` may raise to stop between two steps; totals() syncs, so call it rarely.
        `first_batch(batch)` sees the epoch's first batch (distributed) as it is read."""
        start = start or EpochProgress()
        started = last_report = time.perf_counter()
        # The sums carry on in float32 from the resumed ones, in the same order as in an
        # uninterrupted epoch, so a resumed epoch reports bit-identical means.
        seen, step = tf.constant(np.asarray(start.totals, np.float32)), start.step
        train_step = traced_for_any_batch_size(self._train_step, dataset.element_spec)
        for step, batch in enumerate(dataset, 1):
            if step == 1 and first_batch is not None:
                first_batch(batch)
            if step <= start.step:
                continue
            seen += tf.stack(train_step(batch))
            now = time.perf_counter()
            if now - last_report >= REPORT_INTERVAL_S:
                last_report = now
                reporter.step(step, summarize(seen.numpy(), now - started))
            if after_step is not None:
                after_step(step, lambda seen=seen: seen.numpy())
        elapsed = time.perf_counter() - started
        logs = summarize(seen.numpy(), elapsed)
        # Throughput counts only the images trained in this call, not resumed ones.
        trained = float(seen[2]) - float(start.totals[2])
        logs["images_per_second"] = trained / elapsed if elapsed else 0.0
        reporter.step(step, logs)
        return logs

    def current_learning_rate(self) -> float:
        return float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))

    @property
    def has_averaged_weights(self) -> bool:
        """The optimizer keeps a moving average of the weights (--ema) and has stepped."""
        optimizer = getattr(self.optimizer, "inner_optimizer", self.optimizer)  # loss scaling
        return optimizer.use_ema and optimizer.built and int(optimizer.iterations.numpy()) > 0

    @contextlib.contextmanager
    def averaged_weights(self) -> Iterator[None]:
        """Within: the model holds the moving average of its trainable weights (with
        --ema; else its own), for validation and the best weights; after: the trained
        weights again, bit for bit, so training and its checkpoints go on unchanged."""
        if not self.has_averaged_weights:
            yield
            return
        variables = self.model.trainable_variables
        trained = [variable.numpy() for variable in variables]
        self.optimizer.finalize_variable_values(variables)
        try:
            yield
        finally:
            for variable, value in zip(variables, trained):
                variable.assign(value)

    def keep_averaged_weights(self) -> None:
        """At the end of training: the moving average replaces the trained weights for
        good (with --ema; else nothing changes)."""
        if self.has_averaged_weights:
            self.optimizer.finalize_variable_values(self.model.trainable_variables)


@dataclasses.dataclass(frozen=True)
class EpochProgress:
    """Steps done in the current epoch and their (loss sum, correct, count) sums."""

    step: int = 0
    totals: Any = dataclasses.field(default_factory=lambda: np.zeros(3))


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; when `saved`, a checkpoint holds `epoch`/`step`. A
    KeyboardInterrupt, so a notebook's interrupt stops a training as it stops any cell
    (and `except KeyboardInterrupt` catches it); resume with api.train(resume=RUN_DIR)."""

    def __init__(
        self,
        signal_number: int,
        epoch: int,
        step: int,
        checkpoints: Any = None,
        saved: bool = False,
    ):
        super().__init__(f"interrupted by signal {signal_number} at epoch {epoch}, step {step}")
        self.signal_number, self.epoch, self.step = signal_number, epoch, step
        self.saved = saved or checkpoints is not None

    @property
    def exit_code(self) -> int:
        return 128 + self.signal_number  # 130 for SIGINT, 143 for SIGTERM


def where_in_training(epoch: int, step: int) -> str:
    """Where a run stopped or resumes, in one numbering for both: steps done in the
    epoch in progress ("at epoch 2, after step 5"), or the last whole epoch."""
    return f"after epoch {epoch - 1}" if step == 0 else f"at epoch {epoch}, after step {step}"


class StopRequests:
    """Turns SIGINT/SIGTERM into a flag that the loop checks between steps, so a step is
    never cut in half and a checkpoint can be written before exiting."""

    def __init__(self) -> None:
        self.signal_number: int | None = None

    def __enter__(self) -> StopRequests:
        self._handling = stop_signals_to(self._request)
        self._handling.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._handling.__exit__(*exc)

    def _request(self, number: int, frame: Any) -> None:
        if self.signal_number is not None:  # a second Ctrl-C: stop at once
            raise KeyboardInterrupt
        self.signal_number = number


@contextlib.contextmanager
def ending_interrupts(epochs_done: int) -> Iterator[None]:
    """The run's ending (final scores, model.keras, metrics.json) after its last
    checkpoint: SIGINT or SIGTERM stop it at once as an interruption after the last epoch,
    which --resume finishes (it restores that checkpoint and redoes only the ending).
    Without this, Ctrl-C there said only "Interrupted." and SIGTERM ended the process
    silently, while the run could be resumed. The ending's files are written atomically,
    so an interrupted one leaves none half-written."""

    def stop(number: int, frame: Any) -> None:
        raise TrainingInterrupted(number, epochs_done + 1, 0, saved=True)

    with stop_signals_to(stop):
        yield


@contextlib.contextmanager
def stop_signals_to(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """Within: SIGINT and SIGTERM call `handler`; after: the handlers before. Only the
    main thread may set handlers (a training started from another thread keeps them)."""
    import threading

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGINT, signal.SIGTERM):
            previous[number] = signal.signal(number, handler)
    try:
        yield
    finally:
        for number, handler_before in previous.items():
            signal.signal(number, handler_before)


class Checkpoints:
    """Model, optimizer (with its --ema average), RNG and progress under `directory`,
    written after every epoch (and every `save_every` steps). TensorFlow writes the files
    first and then points the `checkpoint` index at them, so a kill mid-write leaves the
    previous one valid."""

    def __init__(
        self,
        directory: os.PathLike,
        trainer: Trainer,
        save_every: int | None = None,
        restore_from: os.PathLike | None = None,
    ):
        """Saves under `directory`; restores from `restore_from` (default: the same).
        Non-chief workers save to a scratch directory but restore the chief's."""
        model, optimizer = trainer.model, trainer.optimizer
        self.save_every = save_every
        self.restore_dir = os.path.join(restore_from or directory, "latest")
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)  # epochs completed
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)  # steps into the next
        self.totals = tf.Variable(tf.zeros([3], tf.float64), trainable=False)
        optimizer.build(model.trainable_variables)  # create slots now, so restore fills them
        weight_ids = {id(w) for w in model.weights}
        # Dropout and other random layers keep RNG state outside model.weights.
        rng_state = [v for v in model.variables if id(v) not in weight_ids]
        latest = tf.train.Checkpoint(
            model=model,
            optimizer=optimizer,
            rng=rng_state,
            epoch=self.epoch,
            step=self.step,
            totals=self.totals,
        )
        self.latest = tf.train.CheckpointManager(latest, os.path.join(directory, "latest"), 1)
        best = tf.train.Checkpoint(model=model)
        self.best = tf.train.CheckpointManager(best, os.path.join(directory, "best"), 1)
        # A finished stage (a finetune phase) keeps its final weights and RNG state, so a
        # resumed run can restore it and go on to the next stage.
        finished = tf.train.Checkpoint(model=model, rng=rng_state)
        self.finished = tf.train.CheckpointManager(finished, os.path.join(directory, "finished"), 1)
        self.restore_finished_dir = os.path.join(restore_from or directory, "finished")

    def save(self, epoch: int, progress: EpochProgress | None = None) -> None:
        progress = progress or EpochProgress()
        self.epoch.assign(epoch)
        self.step.assign(progress.step)
        self.totals.assign(np.asarray(progress.totals, dtype=np.float64))
        write_checkpoint(self.latest)

    def restore(self) -> tuple[int, EpochProgress] | None:
        """(epochs completed, progress into the next) from the last checkpoint, if any."""
        path = tf.train.latest_checkpoint(self.restore_dir)
        if path is None:
            return None
        self.latest.checkpoint.restore(path).assert_existing_objects_matched()
        return int(self.epoch.numpy()), EpochProgress(int(self.step.numpy()), self.totals.numpy())

    def save_finished(self) -> None:
        write_checkpoint(self.finished)

    def restore_finished(self) -> bool:
        """Restore the weights saved by save_finished, if the stage finished before."""
        path = tf.train.latest_checkpoint(self.restore_finished_dir)
        if path is None:
            return False
        self.finished.checkpoint.restore(path).assert_existing_objects_matched()
        return True

    def save_best(self) -> None:
        write_checkpoint(self.best)

    def restore_best(self) -> bool:
        if self.best.latest_checkpoint is None:
            return False
        self.best.checkpoint.restore(self.best.latest_checkpoint).expect_partial()
        return True


def weights_fingerprint(model: Any) -> str:
    """A short hash of all weights: equal runs (or workers) have equal fingerprints."""
    import hashlib

    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(weight.tobytes())
    return digest.hexdigest()[:16]


# A saved model that scores its own training images this much below the training
# accuracy of its epoch does not behave in inference as it did in training.
INFERENCE_GAP_WARNING = 0.20


def final_metrics(
    evaluator: Evaluator,
    data: Any,
    history: list[dict[str, Any]],
    reporter: Reporter,
    patience: int | None,
    remedy: str,
    run_dir: Path,
) -> tuple[dict[str, Any], np.ndarray | None]:
    """(metrics.json, the test split's confusion matrix or None). metrics.json: epochs
    trained, the weights' fingerprint, the val and test scores of `data`
    (data.prepare.PreparedData), and the inference check: the model's scores in
    inference mode on the data's fixed sample of training images (`train_sample`), and
    how far they fall below the training accuracy of the epoch whose weights were kept
    (`inference_gap`), with one warning line above INFERENCE_GAP_WARNING that ends with
    the command's `remedy`."""
    metrics: dict[str, Any] = {
        "epochs_trained": len(history),
        "weights_fingerprint": weights_fingerprint(evaluator.model),
    }
    val, test, test_confusion = data.inputs("val"), data.inputs("test"), None
    if val is not None:
        metrics["val"] = evaluator.evaluate(val)
    if test is not None:
        metrics["test"], test_confusion = evaluator.evaluate_with_confusion(test)
    if data.train_sample is None or not history:
        return metrics, test_confusion
    metrics["train_sample"] = evaluator.evaluate(data.train_sample)
    trained = kept_epoch(history, patience)["accuracy"]
    inferred = metrics["train_sample"]["accuracy"]
    metrics["inference_gap"] = trained - inferred
    if metrics["inference_gap"] > INFERENCE_GAP_WARNING:
        reporter.warning(
            f"The saved model scores {inferred:.0%} on {metrics['train_sample']['examples']} "
            f"of its own training images in inference mode, against {trained:.0%} in "
            "training: it does not predict as it trained, so its validation and test "
            "scores undersell what it learned. Check with `imgcls evaluate --model "
            f"{shlex.quote(str(run_dir))} --split train`; {remedy}."
        )
    return metrics, test_confusion


def rough_score_warning(metrics: dict[str, Any], run_dir: Path) -> str | None:
    """One line when the run's held-out score (test, else val) rests on too few images
    to mean much (report.metrics.few_images_warning)."""
    from imgcls_cli.report.metrics import few_images_warning

    split = next((name for name in ("test", "val") if metrics.get(name, {}).get("examples")), None)
    if split is None:
        return None
    scores = metrics[split]
    return few_images_warning(
        f"The {split} accuracy",
        scores["accuracy"],
        scores["examples"],
        f"Score the run on more images: `imgcls evaluate --model {shlex.quote(str(run_dir))} "
        "--data DIR`",
    )


def kept_epoch(history: list[dict[str, Any]], patience: int | None) -> dict[str, Any]:
    """The history row of the epoch whose weights training kept: under --patience the
    best validation loss of the last phase (fit restores it), else the last epoch."""
    phase = [row for row in history if row.get("phase") == history[-1].get("phase")]
    validated = [row for row in phase if row.get("val_loss") is not None]
    if patience is not None and validated:
        return min(validated, key=lambda row: row["val_loss"])
    return history[-1]


def write_checkpoint(manager: Any) -> None:
    """manager.save(), with a full disk said in one line and TensorFlow's half-written
    `ckpt-N_temp` folder removed (the previous checkpoint stays valid for --resume)."""
    import errno
    import shutil

    try:
        manager.save()
    except (tf.errors.ResourceExhaustedError, OSError) as error:
        if isinstance(error, OSError) and error.errno != errno.ENOSPC:
            raise
        for leftover in Path(manager.directory).glob("ckpt-*_temp*"):
            shutil.rmtree(leftover, ignore_errors=True)
        raise ImgclsError(
            f"No space left on the disk while writing a checkpoint to {manager.directory}; "
            "free some space, then continue the run with --resume (its last complete "
            "checkpoint is kept)."
        ) from None


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
    checkpoints: Checkpoints | None = None,
    history: list[dict[str, float]] | None = None,
    log: Any = None,
) -> list[dict[str, float]]:
    """Train for `epochs`, validating after each; with `patience`, stop when validation
    loss has not improved for that many epochs and restore the best weights.

    With `checkpoints`, training resumes from the last one (`history` holds the rows of
    the epochs it covers) and SIGINT/SIGTERM save one and raise TrainingInterrupted.
    With --ema, the weights' moving average is what is validated, kept as the best and
    left in the model at the end. `log` (summaries.TrainingLog) receives the steps and
    epochs for TensorBoard, and the images of the first batch while it waits for them.
    """
    history = list(history or [])
    done, progress = 0, EpochProgress()
    if checkpoints is not None and (restored := checkpoints.restore()) is not None:
        done, progress = restored
        history = history[:done]
        reporter.info(f"Resuming {where_in_training(done + 1, progress.step)}")
    train_batches = trainer.distribute(train_ds)
    val_batches = trainer.distribute(val_ds) if val_ds is not None else None
    for _ in range(done):
        iter(train_batches)  # replay the reshuffles of the epochs already done (no data read)
    best = min(history, key=lambda row: row["val_loss"], default=None) if val_ds else None
    best_loss, best_epoch = (best["val_loss"], best["epoch"]) if best else (math.inf, 0)
    best_weights = None

    with StopRequests() as stop:
        for epoch in range(done + 1, epochs + 1):
            reporter.epoch_start(epoch, epochs, steps_per_epoch)

            def after_step(step: int, totals: Callable[[], Any], epoch: int = epoch) -> None:
                if log is not None:
                    log.step(epoch, step, totals)
                if stop.signal_number is not None:
                    if checkpoints is not None:
                        checkpoints.save(epoch - 1, EpochProgress(step, totals()))
                    raise TrainingInterrupted(stop.signal_number, epoch, step, checkpoints)
                if checkpoints and checkpoints.save_every and step % checkpoints.save_every == 0:
                    checkpoints.save(epoch - 1, EpochProgress(step, totals()))

            train_logs = trainer.train_epoch(
                train_batches,
                reporter,
                start=progress,
                after_step=after_step,
                first_batch=log.first_batch(trainer.strategy) if log is not None else None,
            )
            progress = EpochProgress()
            row = {
                "epoch": epoch,
                "loss": train_logs["loss"],
                "accuracy": train_logs["accuracy"],
                "lr": trainer.current_learning_rate(),
                "seconds": train_logs.get("seconds", 0.0),
                "images_per_second": train_logs.get("images_per_second", 0.0),
            }
            # With --ema, the averaged weights are the ones validated and kept as the best;
            # the trained ones come back for the next epoch and the checkpoint. Either way
            # batch normalization's statistics are measured for the weights validated, so
            # the epoch chosen as best is scored as it will be saved. Training itself
            # never reads them: it normalizes by each batch's own moments.
            with trainer.averaged_weights():
                trainer.statistics.update()
                if val_batches is not None:
                    val_logs = trainer.evaluate(val_batches, distributed=True)
                    row["val_loss"], row["val_accuracy"] = val_logs["loss"], val_logs["accuracy"]
                history.append(row)
                if log is not None:
                    log.epoch(row)
                reporter.epoch_end(row)
                on_epoch_end(history)  # history first: a checkpoint never runs ahead of it
                improved = val_batches is not None and row["val_loss"] < best_loss
                if improved:
                    best_loss, best_epoch = row["val_loss"], epoch
                if improved and patience is not None:
                    if checkpoints is not None:
                        checkpoints.save_best()
                    else:
                        best_weights = trainer.model.get_weights()
            if checkpoints is not None:
                checkpoints.save(epoch)
            if stop.signal_number is not None:
                raise TrainingInterrupted(stop.signal_number, epoch + 1, 0, checkpoints)
            if patience is not None and val_batches is not None and epoch - best_epoch >= patience:
                reporter.info(
                    f"Early stopping: validation loss has not improved for {patience} epochs."
                )
                break

    if patience is not None and best_epoch and best_epoch != history[-1]["epoch"]:
        reporter.info(f"Restoring the weights of epoch {best_epoch} (best validation loss).")
        if checkpoints is not None:
            checkpoints.restore_best()
        else:
            trainer.model.set_weights(best_weights)
    else:
        trainer.keep_averaged_weights()
    return history
