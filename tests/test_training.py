"""The training loop: learning-rate schedules and early stopping."""

import math

import numpy as np
import pytest

from imgcls_cli.config import Schedule
from imgcls_cli.training import SilentReporter, Trainer, create_learning_rate, create_optimizer, fit


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
