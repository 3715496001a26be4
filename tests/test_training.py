"""The training loop: learning-rate schedules and early stopping."""

import math

import numpy as np
import pytest

from imgcls_cli.config import Schedule
from imgcls_cli.engine.training import (
    Evaluator,
    Trainer,
    create_learning_rate,
    create_optimizer,
    fit,
)
from imgcls_cli.reporting import SilentReporter


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


def test_a_last_smaller_batch_reuses_the_steps_one_trace():
    """Each step is traced once, for batches of any size: tracing a second graph for the
    epoch's last, smaller batch cost an unfrozen MobileNetV2 about 4 s a run."""
    import keras
    import tensorflow as tf

    from imgcls_cli.engine.batch_norm import BatchNormStatistics

    _, data = tiny_model_and_data()
    data = data.unbatch().batch(5)  # 16 images: 5, 5, 5, then 1
    model = keras.Sequential(
        [keras.Input((2,)), keras.layers.BatchNormalization(), keras.layers.Dense(2, "softmax")]
    )
    optimizer = create_optimizer("adam", 0.05, 0.0)
    optimizer.build(model.trainable_variables)  # as Checkpoints does before training
    trainer = Trainer(model, optimizer, tf.distribute.get_strategy())
    for _ in range(2):
        assert trainer.train_epoch(data, SilentReporter())["examples"] == 16
        assert trainer.evaluate(data)["examples"] == 16
    statistics = BatchNormStatistics(model, tf.distribute.get_strategy(), data)
    statistics.update()
    counts = [
        function.experimental_get_tracing_count()
        for function in (trainer._train_step, trainer._eval_step, statistics._step)
    ]
    assert statistics.active and counts == [1, 1, 1]


def test_evaluation_counts_the_confusion_matrix_of_its_own_pass():
    """The test split's confusion matrix (the run's TensorBoard picture) comes from the
    final evaluation, not a second pass: it must count every image of every batch, the
    last smaller one included, as the model predicts it."""
    import tensorflow as tf

    model, data = tiny_model_and_data()
    data = data.unbatch().batch(5)  # 16 images: 5, 5, 5, then 1
    evaluator = Evaluator(model, tf.distribute.get_strategy())
    scores, confusion = evaluator.evaluate_with_confusion(data)
    images, labels = (np.concatenate(part) for part in zip(*data.as_numpy_iterator()))
    predicted = np.argmax(model(images, training=False), axis=-1)
    expected = np.zeros((2, 2), np.int64)
    np.add.at(expected, (np.argmax(labels, -1), predicted), 1)
    assert confusion.tolist() == expected.tolist() and confusion.sum() == 16
    assert scores["accuracy"] == pytest.approx(np.trace(expected) / 16)


class CrashAtStep(SilentReporter):
    """Raises (or sends a signal to this process) when training reaches a given step."""

    def __init__(self, step, action):
        self.at, self.action = step, action

    def step(self, step, logs):
        if step == self.at:
            self.action()


def checkpointed_trainer(tmp_path, save_every=None, ema=None):
    import tensorflow as tf

    from imgcls_cli.engine.training import Checkpoints

    model, data = tiny_model_and_data()
    optimizer = create_optimizer("adam", 1e-2, 0.0, ema=ema)
    trainer = Trainer(model, optimizer, tf.distribute.get_strategy())
    return trainer, Checkpoints(tmp_path / "ckpt", trainer, save_every), data.unbatch().batch(4)


def test_save_every_checkpoints_mid_epoch(tmp_path, monkeypatch):
    from imgcls_cli.engine import training

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

    from imgcls_cli.engine import training
    from imgcls_cli.engine.training import TrainingInterrupted

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


class WeightsRecorder(SilentReporter):
    """The model's weights after every training step, and when each epoch's row is
    reported (while the validation weights are in place)."""

    def __init__(self, model):
        self.model, self.epoch = model, 0
        self.after_step, self.validated = {}, []

    def epoch_start(self, epoch, epochs, steps):
        self.epoch = epoch

    def step(self, step, logs):  # the last step is reported twice: keyed, kept once
        self.after_step[(self.epoch, step)] = self.model.get_weights()

    def epoch_end(self, logs):
        self.validated.append(self.model.get_weights())


def moving_average(trajectory, decay):
    """Keras' EMA: the first step's weights, then decay * average + (1 - decay) * weights."""
    average = trajectory[0]
    for weights in trajectory[1:]:
        average = [decay * a + (1 - decay) * w for a, w in zip(average, weights)]
    return average


def assert_weights_close(got, want):
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_ema_validates_and_keeps_the_average_while_training_uses_the_trained_weights(
    monkeypatch,
):
    import keras
    import tensorflow as tf

    from imgcls_cli.engine import training

    monkeypatch.setattr(training, "REPORT_INTERVAL_S", 0.0)  # report every step
    runs = {}
    for ema in (None, 0.5):
        keras.utils.set_random_seed(0)
        model, data = tiny_model_and_data()
        optimizer = create_optimizer("adam", 0.05, 0.0, ema=ema)
        trainer = Trainer(model, optimizer, tf.distribute.get_strategy())
        recorder = WeightsRecorder(model)
        fit(trainer, data, data, epochs=3, steps_per_epoch=2, patience=None, reporter=recorder)
        runs[ema] = recorder, model.get_weights()
    (plain, plain_final), (averaged, final) = runs[None], runs[0.5]

    # Swapping the average in for validation leaves training exactly as without EMA.
    assert list(averaged.after_step) == [(e, s) for e in (1, 2, 3) for s in (1, 2)]
    for got, want in zip(averaged.after_step.values(), plain.after_step.values(), strict=True):
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)
    trajectory = list(averaged.after_step.values())
    for epoch, validated in enumerate(averaged.validated, 1):
        assert_weights_close(validated, moving_average(trajectory[: 2 * epoch], 0.5))
    # The model left at the end holds the average, not the last trained weights.
    assert_weights_close(final, moving_average(trajectory, 0.5))
    assert not any(np.allclose(a, b) for a, b in zip(final, plain_final))


def test_ema_with_early_stopping_restores_the_best_epochs_average(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    trainer, checkpoints, data = checkpointed_trainer(tmp_path, ema=0.5)
    validated = []

    class ScriptedValidation(SilentReporter):
        def epoch_end(self, logs):
            validated.append(trainer.model.get_weights())

    scripted = iter([1.0, 0.5, 0.7, 0.8])
    trainer.evaluate = lambda dataset, distributed=False: {
        "loss": next(scripted),
        "accuracy": 0.5,
        "examples": 1,
    }
    history = fit(
        trainer,
        data,
        data,
        epochs=4,
        steps_per_epoch=4,
        patience=2,
        reporter=ScriptedValidation(),
        checkpoints=checkpoints,
    )
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    for restored, best in zip(trainer.model.get_weights(), validated[1], strict=True):
        np.testing.assert_array_equal(restored, best)


def test_interrupted_ema_run_resumes_to_the_same_average(tmp_path, monkeypatch):
    """The average is optimizer state: the checkpoint must carry it, or the resumed run
    would average from scratch."""
    import os
    import signal

    import keras

    from imgcls_cli.engine import training
    from imgcls_cli.engine.training import TrainingInterrupted

    monkeypatch.setattr(training, "REPORT_INTERVAL_S", 0.0)

    def run(directory, reporter):
        keras.utils.set_random_seed(0)
        trainer, checkpoints, data = checkpointed_trainer(directory, ema=0.5)
        options = dict(epochs=2, steps_per_epoch=4, patience=None, checkpoints=checkpoints)
        fit(trainer, data, None, reporter=reporter, **options)
        return trainer.model.get_weights()

    whole = run(tmp_path / "whole", SilentReporter())
    with pytest.raises(TrainingInterrupted):
        run(tmp_path / "stopped", CrashAtStep(3, lambda: os.kill(os.getpid(), signal.SIGINT)))
    resumed = run(tmp_path / "stopped", SilentReporter())
    for a, b in zip(resumed, whole, strict=True):
        np.testing.assert_array_equal(a, b)
