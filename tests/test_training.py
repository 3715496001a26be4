"""The training loop: learning-rate schedules and early stopping."""

import math

import numpy as np
import pytest

from imgcls_cli.config import Schedule
from imgcls_cli.reporting import SilentReporter
from imgcls_cli.training import Trainer, create_learning_rate, create_optimizer, fit


def schedule_values(schedule, steps):
    import keras

    return [float(keras.ops.convert_to_numpy(schedule(step))) for step in steps]


def test_constant_without_warmup_is_a_plain_float():
    assert create_learning_rate(0.01, Schedule.constant, 100, 0) == 0.01


def test_warmup_rises_linearly_then_constant_stays_flat():
    values = schedule_values(create_learning_rate(0.01, Schedule.constant, 100, 10), [0, 5, 10, 99])
    assert values == pytest.approx([0.0, 0.005, 0.01, 0.01])


def test_cosine_decays_to_zero():
    values = schedule_values(create_learning_rate(0.01, Schedule.cosine, 100, 0), [0, 50, 100])
    assert values == pytest.approx([0.01, 0.005, 0.0], abs=1e-6)


class ScriptedTrainer(Trainer):
    """A real Trainer whose validation losses follow a script, to test early stopping."""

    def __init__(self, model, val_losses):
        import tensorflow as tf

        super().__init__(model, create_optimizer("adam", 1e-3, 0.0), tf.distribute.get_strategy())
        self.val_losses = list(val_losses)
        self.weights_by_epoch = []

    def evaluate(self, dataset, distributed=False):
        self.weights_by_epoch.append(self.model.get_weights())
        return {"loss": self.val_losses.pop(0), "accuracy": 0.5, "examples": 1}


def tiny_model_and_data():
    import keras
    import tensorflow as tf

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    x = np.random.default_rng(0).normal(size=(16, 2)).astype("float32")
    y = tf.one_hot(np.arange(16) % 2, 2)
    return model, tf.data.Dataset.from_tensor_slices((x, y)).batch(8)


def test_early_stopping_stops_and_restores_the_best_weights():
    model, data = tiny_model_and_data()
    trainer = ScriptedTrainer(model, [1.0, 0.5, 0.7, 0.8, 0.9, 0.4])
    history = fit(
        trainer, data, data, epochs=6, steps_per_epoch=2, patience=2, reporter=SilentReporter()
    )
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    for restored, best in zip(model.get_weights(), trainer.weights_by_epoch[1]):
        np.testing.assert_array_equal(restored, best)


def test_without_patience_all_epochs_run_and_last_weights_stay():
    model, data = tiny_model_and_data()
    trainer = ScriptedTrainer(model, [1.0, 0.5, 0.7])
    history = fit(
        trainer, data, data, epochs=3, steps_per_epoch=2, patience=None, reporter=SilentReporter()
    )
    assert len(history) == 3
    for kept, last in zip(model.get_weights(), trainer.weights_by_epoch[-1]):
        np.testing.assert_array_equal(kept, last)


def test_train_epoch_counts_every_example_and_learns():
    model, data = tiny_model_and_data()
    import tensorflow as tf

    trainer = Trainer(model, create_optimizer("adam", 0.05, 0.0), tf.distribute.get_strategy())
    first = trainer.train_epoch(data, SilentReporter())
    assert first["examples"] == 16 and not math.isnan(first["loss"])
    for _ in range(30):
        last = trainer.train_epoch(data, SilentReporter())
    assert last["loss"] < first["loss"]


class CrashAtStep(SilentReporter):
    """Raises (or sends a signal to this process) when training reaches a given step."""

    def __init__(self, step, action):
        self.at, self.action = step, action

    def step(self, step, logs):
        if step == self.at:
            self.action()


def checkpointed_trainer(tmp_path, save_every=None):
    import tensorflow as tf

    from imgcls_cli.training import Checkpoints

    model, data = tiny_model_and_data()
    trainer = Trainer(model, create_optimizer("adam", 1e-2, 0.0), tf.distribute.get_strategy())
    return trainer, Checkpoints(tmp_path / "ckpt", trainer, save_every), data.unbatch().batch(4)


def test_save_every_checkpoints_mid_epoch(tmp_path, monkeypatch):
    from imgcls_cli import training

    monkeypatch.setattr(training, "REPORT_INTERVAL_S", 0.0)  # report every step

    def crash():
        raise RuntimeError("power cut")

    trainer, checkpoints, data = checkpointed_trainer(tmp_path, save_every=2)
    with pytest.raises(RuntimeError):
        fit(
            trainer,
            data,
            None,
            epochs=2,
            steps_per_epoch=4,
            patience=None,
            reporter=CrashAtStep(3, crash),
            checkpoints=checkpoints,
        )
    _, fresh, _ = checkpointed_trainer(tmp_path)
    epochs_done, progress = fresh.restore()
    assert (epochs_done, progress.step) == (0, 2)
    assert progress.totals[2] == 8  # two batches of 4 examples counted


def test_sigint_mid_epoch_saves_that_step_and_resume_finishes_the_epoch(tmp_path, monkeypatch):
    import os
    import signal

    from imgcls_cli import training
    from imgcls_cli.training import TrainingInterrupted

    monkeypatch.setattr(training, "REPORT_INTERVAL_S", 0.0)
    trainer, checkpoints, data = checkpointed_trainer(tmp_path)
    with pytest.raises(TrainingInterrupted) as stop:
        fit(
            trainer,
            data,
            None,
            epochs=2,
            steps_per_epoch=4,
            patience=None,
            reporter=CrashAtStep(3, lambda: os.kill(os.getpid(), signal.SIGINT)),
            checkpoints=checkpoints,
        )
    assert (stop.value.epoch, stop.value.step, stop.value.exit_code) == (1, 3, 130)

    trainer2, checkpoints2, data = checkpointed_trainer(tmp_path)
    history = fit(
        trainer2,
        data,
        None,
        epochs=2,
        steps_per_epoch=4,
        patience=None,
        reporter=SilentReporter(),
        checkpoints=checkpoints2,
    )
    assert [row["epoch"] for row in history] == [1, 2]
    assert int(trainer2.optimizer.iterations.numpy()) == 8  # 3 before the stop + 5 after


def test_a_full_disk_while_checkpointing_is_one_line_and_leaves_no_temp_files(
    tmp_path, monkeypatch
):
    from pathlib import Path

    import tensorflow as tf

    from imgcls_cli.errors import ImgclsError

    trainer, checkpoints, _ = checkpointed_trainer(tmp_path)
    checkpoints.save(1)
    directory = Path(checkpoints.latest.directory)
    complete = sorted(p.name for p in directory.iterdir())

    def disk_full():  # what TensorFlow does on ENOSPC: a half-written ckpt-N_temp, then this
        (directory / "ckpt-2_temp").mkdir()
        (directory / "ckpt-2_temp" / "part-00000-of-00001.data").write_bytes(b"half")
        raise tf.errors.ResourceExhaustedError(None, None, "No space left on device [Op:SaveV2]")

    monkeypatch.setattr(checkpoints.latest, "save", disk_full)
    with pytest.raises(ImgclsError, match="No space left on the disk .* --resume"):
        checkpoints.save(2)
    assert sorted(p.name for p in directory.iterdir()) == complete
