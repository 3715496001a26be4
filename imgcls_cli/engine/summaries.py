"""TensorBoard event files of a run, from the custom training loop (Keras' TensorBoard
callback needs `fit`): RUN_DIR/logs/train and logs/validation, written by the chief.

- every epoch: loss, accuracy, learning rate, images/s (train) and loss, accuracy
  (validation), at step = epoch;
- every STEP_EVERY steps: the epoch's running loss and accuracy, at step = the global
  step. They are kept in memory and written when the epoch ends, so an epoch cut short
  and then resumed writes its steps once;
- a few augmented training images of a new run's first batch (the one it trains on); the
  test split's confusion matrix at the end.

`tensorboard --logdir runs` shows every run side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from imgcls_cli.rundir import LOGS_DIR, TRAINING_PNG
from imgcls_cli.rundir.files import write_bytes_atomic

STEP_EVERY = 20
IMAGES_SHOWN = 8


class TrainingLog:
    def __init__(self, run_dir: Path, steps_per_epoch: int, epoch_offset: int = 0) -> None:
        import tensorflow as tf

        self._tf = tf
        root = Path(run_dir) / LOGS_DIR
        self._train = tf.summary.create_file_writer(str(root / "train"))
        self._validation = tf.summary.create_file_writer(str(root / "validation"))
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.epoch_offset = epoch_offset  # finetune: epochs count on across phases
        self._steps: list[tuple[int, float, float]] = []
        self.images_wanted = False  # a new run logs its first batch's images

    def step(self, epoch: int, step: int, totals: Any) -> None:
        """After `step` of phase epoch `epoch`; totals() gives the epoch's running sums
        (called only every STEP_EVERY steps: it waits for the device)."""
        if step % STEP_EVERY:
            return
        loss_sum, hits, count = (float(v) for v in totals())
        if count:
            global_step = (self.epoch_offset + epoch - 1) * self.steps_per_epoch + step
            self._steps.append((global_step, loss_sum / count, hits / count))

    def epoch(self, row: dict[str, Any]) -> None:
        tf = self._tf
        epoch = self.epoch_offset + int(row["epoch"])
        with self._train.as_default():
            for global_step, loss, accuracy in self._steps:
                tf.summary.scalar("step/loss", loss, step=global_step)
                tf.summary.scalar("step/accuracy", accuracy, step=global_step)
            for key, name in (
                ("loss", "epoch/loss"),
                ("accuracy", "epoch/accuracy"),
                ("lr", "epoch/learning_rate"),
                ("images_per_second", "epoch/images_per_second"),
            ):
                if key in row:
                    tf.summary.scalar(name, float(row[key]), step=epoch)
        if "val_loss" in row:
            with self._validation.as_default():
                tf.summary.scalar("epoch/loss", float(row["val_loss"]), step=epoch)
                tf.summary.scalar("epoch/accuracy", float(row["val_accuracy"]), step=epoch)
        self._steps = []
        self.flush()

    def images(self, images: Any, name: str = "augmented training images") -> None:
        """A batch of float 0-255 images, the first IMAGES_SHOWN of it, at step 0."""
        tf = self._tf
        shown = np.clip(np.asarray(images[:IMAGES_SHOWN], np.float32) / 255.0, 0.0, 1.0)
        with self._train.as_default():
            tf.summary.image(name, shown, step=0, max_outputs=IMAGES_SHOWN)
        self.flush()

    def first_batch(self, strategy: Any) -> Any:
        """A train_epoch hook that logs the images of the first batch of images it sees
        (this worker's first replica's part), once; None when they are logged already.
        A batch of cached features (rank 2, a finetune's head phase) is passed over."""
        if not self.images_wanted:
            return None

        def log_images(batch: Any) -> None:
            images = strategy.experimental_local_results(batch[0])[0]
            if self.images_wanted and len(images.shape) == 4:
                self.images_wanted = False
                self.images(images)

        return log_images

    def picture(self, name: str, png: bytes, step: int) -> None:
        """A PNG (a confusion matrix) as an image summary."""
        tf = self._tf
        image = tf.io.decode_png(png, channels=4)[None]
        with self._validation.as_default():
            tf.summary.image(name, image, step=step)
        self.flush()

    def flush(self) -> None:
        self._train.flush()
        self._validation.flush()

    def close(self) -> None:
        self._train.close()
        self._validation.close()


def log_confusion_matrix(
    log: TrainingLog, confusion: np.ndarray | None, classes: list[str], step: int
) -> None:
    """The test split's confusion matrix (from the final evaluation's pass: the test
    images are not run through the model again) as an image summary; nothing without a
    test split."""
    from imgcls_cli.report import plots

    if confusion is None or not confusion.sum():
        return
    log.picture("test confusion matrix", plots.confusion_matrix_png(confusion, classes), step)


def write_training_curves(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """training.png, from the history rows."""
    from imgcls_cli.report import plots

    if rows:
        write_bytes_atomic(Path(run_dir) / TRAINING_PNG, plots.training_curves_png(rows))


def start_log(run_dir: Path, work_dir: Path, data: Any, history: list) -> TrainingLog | None:
    """The chief's TensorBoard log (other workers write none). A new run logs the
    augmented images of the first batch it trains on (a resumed one logged them when it
    began): taken from training's own pipeline, not a second one built for them, which
    cost a short run a second of tracing."""
    if Path(work_dir) != Path(run_dir):
        return None
    log = TrainingLog(run_dir, data.steps_per_epoch)
    log.images_wanted = not history
    return log


def finish_log(
    log: TrainingLog | None,
    work_dir: Path,
    test_confusion: np.ndarray | None,
    classes: list[str],
    history: list,
) -> None:
    """At the end of training: the test split's confusion matrix into the log, and
    training.png."""
    if log is None:
        return
    log_confusion_matrix(log, test_confusion, classes, len(history))
    log.close()
    write_training_curves(work_dir, history)
