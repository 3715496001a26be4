"""Batch-normalization statistics measured on the training images (precise BN), and the
end-of-training check that the saved model predicts as it trained."""

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import make_class_folder

pytestmark = pytest.mark.slow  # TensorFlow models


class RecordingReporter:
    def __init__(self):
        self.warnings = []

    def warning(self, message):
        self.warnings.append(message)

    def __getattr__(self, name):  # info, epoch_start, step, ...: ignored
        return lambda *args, **kwargs: None


def sample_batches(seed=0, sizes=(8, 8, 5), shape=(16, 16, 3), classes=3):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(sum(sizes), *shape)).astype(np.float32)
    labels = np.eye(classes, dtype=np.float32)[rng.integers(0, classes, sum(sizes))]
    batches, start = [], 0
    for size in sizes:
        batches.append((images[start : start + size], labels[start : start + size]))
        start += size
    return tf.data.Dataset.from_generator(
        lambda: iter(batches),
        output_signature=(
            tf.TensorSpec((None, *shape), tf.float32),
            tf.TensorSpec((None, classes), tf.float32),
        ),
    ), batches


def first_batch_norm_moments(model, batches):
    """The image-weighted average of the batch moments at the model's first
    BatchNormalization layer, computed here without the layer (its input comes from a
    convolution alone, so training mode does not change it)."""
    import keras

    layer = next(x for x in model.layers if isinstance(x, keras.layers.BatchNormalization))
    reach = keras.Model(model.input, layer.input)
    means, variances, counts = [], [], []
    for images, _ in batches:
        values = np.asarray(reach(images, training=False), np.float64)
        means.append(values.mean(axis=(0, 1, 2)))
        variances.append(values.var(axis=(0, 1, 2)))
        counts.append(len(images))
    weights = np.array(counts, np.float64) / sum(counts)
    return layer, weights @ np.array(means), weights @ np.array(variances)


def test_statistics_become_the_average_of_the_samples_batch_moments():
    import tensorflow as tf

    from imgcls_cli.engine.batch_norm import BatchNormStatistics
    from imgcls_cli.models import create_model

    model = create_model("convnet", (16, 16, 3), 3)
    dataset, batches = sample_batches()
    statistics = BatchNormStatistics(model, tf.distribute.get_strategy(), dataset)
    assert statistics.active and len(statistics.layers) == 5
    trainable = [w.numpy() for w in model.trainable_weights]
    random_state = [v.numpy() for v in statistics.rng_variables]
    assert random_state  # dropout's seed generator

    statistics.update()

    layer, mean, variance = first_batch_norm_moments(model, batches)
    np.testing.assert_allclose(layer.moving_mean.numpy(), mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(), variance, rtol=1e-4, atol=1e-6)
    for later in statistics.layers[1:]:  # none left at its start (mean 0, variance 1)
        assert not np.allclose(later.moving_variance.numpy(), 1.0)
    assert all(later.momentum == 0.9 for later in statistics.layers)  # restored
    for before, after in zip(trainable, model.trainable_weights):
        np.testing.assert_array_equal(before, after.numpy())
    for before, after in zip(random_state, statistics.rng_variables):
        np.testing.assert_array_equal(before, after.numpy())


def test_a_model_without_batch_normalization_never_reads_the_sample():
    import tensorflow as tf

    from imgcls_cli.engine.batch_norm import BatchNormStatistics
    from imgcls_cli.models import create_model

    read = []

    def batches():
        read.append(True)
        yield np.zeros((1, 16, 16, 3), np.float32), np.eye(3, dtype=np.float32)[:1]

    dataset = tf.data.Dataset.from_generator(
        batches,
        output_signature=(
            tf.TensorSpec((None, 16, 16, 3), tf.float32),
            tf.TensorSpec((None, 3), tf.float32),
        ),
    )
    statistics = BatchNormStatistics(
        create_model("simplecnn", (16, 16, 3), 3), tf.distribute.get_strategy(), dataset
    )
    statistics.update()
    assert not statistics.active and not read


def test_the_transfer_training_view_measures_its_head_not_the_inference_mode_backbone():
    import keras

    from imgcls_cli.engine.batch_norm import statistics_layers
    from imgcls_cli.models.transfer import InferenceModeBackbone

    images = keras.Input((8, 8, 3))
    backbone_norm = keras.layers.BatchNormalization(name="backbone_bn")
    pooled = keras.layers.GlobalAveragePooling2D()(backbone_norm(keras.layers.Conv2D(4, 3)(images)))
    features = keras.Model(images, pooled)
    head_input = keras.Input((4,))
    head_norm = keras.layers.BatchNormalization(name="head_bn")
    classifier = keras.Model(head_input, keras.layers.Dense(2)(head_norm(head_input)))
    view = InferenceModeBackbone(features, classifier)
    view(np.zeros((1, 8, 8, 3), np.float32))

    assert statistics_layers(view) == [head_norm]
    assert statistics_layers(features) == [backbone_norm]
    features.trainable = False  # a frozen backbone's statistics never change
    assert statistics_layers(features) == []


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """The default model on 4 classes of 10 images (3 epochs of one step each), twice:
    as it trains now, and with the statistics left to the moving averages (the old
    behaviour, planted). The statistics are captured at every validation."""
    from imgcls_cli.commands.train import run_train
    from imgcls_cli.config import DataConfig, TrainConfig
    from imgcls_cli.engine import batch_norm, training

    root = tmp_path_factory.mktemp("tiny")
    folder = make_class_folder(root / "data", classes=("a", "b", "c", "d"), per_class=10)
    runs = {}
    original_evaluate = training.Evaluator.evaluate
    for name in ("fitted", "planted"):
        reporter = RecordingReporter()
        validated = []

        def evaluate(self, dataset, distributed=False, validated=validated):
            if distributed:  # the epoch's validation pass
                layers = batch_norm.statistics_layers(self.model)
                validated.append([layer.moving_mean.numpy() for layer in layers])
            return original_evaluate(self, dataset, distributed)

        patches = [(training.Evaluator, "evaluate", evaluate)]
        if name == "planted":
            patches.append((batch_norm.BatchNormStatistics, "update", lambda self: None))
        originals = [(owner, attr, getattr(owner, attr)) for owner, attr, _ in patches]
        try:
            for owner, attr, value in patches:
                setattr(owner, attr, value)
            config = TrainConfig(data=DataConfig(data=str(folder)), epochs=3)
            result = run_train(config, root / name, reporter)
        finally:
            for owner, attr, value in originals:
                setattr(owner, attr, value)
        runs[name] = (result, reporter.warnings, validated, folder)
    return runs


def test_on_a_tiny_folder_the_old_statistics_give_chance_and_the_fitted_ones_do_not(tiny_runs):
    planted, fitted = tiny_runs["planted"][0].metrics, tiny_runs["fitted"][0].metrics
    # Trained alike (training mode never reads the statistics), inferred apart.
    assert planted["train_sample"]["examples"] == fitted["train_sample"]["examples"] == 32
    assert planted["train_sample"]["accuracy"] <= 0.4  # 4 classes: chance is 0.25
    assert fitted["train_sample"]["accuracy"] >= 0.9
    assert fitted["test"]["accuracy"] > planted["test"]["accuracy"]


def test_the_saved_model_predicts_its_training_images_as_training_did(tiny_runs, runner, cli_app):
    import json

    result, warnings, _, folder = tiny_runs["fitted"]
    # Its only warning: 4 test images make a rough score.
    assert [w for w in warnings if not w.startswith("The test accuracy, ")] == []
    assert result.metrics["inference_gap"] <= 0.1
    recorded = json.loads((result.run_dir / "metrics.json").read_text())
    assert recorded["train_sample"] == result.metrics["train_sample"]
    # 32 training images: the default batch for small splits, as config.json records.
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["options"]["batch_size"] is None
    assert config["resolved"]["global_batch_size"] == 32


def test_a_planted_gap_between_training_and_inference_is_warned_and_recorded(tiny_runs):
    result, warnings, _, _ = tiny_runs["planted"]
    assert result.metrics["inference_gap"] > 0.2
    [gap] = [w for w in warnings if not w.startswith("The test accuracy, ")]
    assert "own training images in inference mode" in gap
    assert (
        f"`imgcls evaluate --model {result.run_dir} --split train`; try more epochs, or --arch "
        "simplecnn" in gap
    )


def test_every_validation_sees_the_statistics_measured_on_the_training_images(tiny_runs):
    """At each epoch's validation the statistics differ from the planted run's moving
    averages, and at the last one they equal the sample's moments under the final
    weights (the first layer's, recomputed here)."""
    import keras

    from imgcls_cli.config import DataConfig, TrainConfig
    from imgcls_cli.data.prepare import prepare_data
    from imgcls_cli.reporting import SilentReporter as Quiet

    result, _, validated, folder = tiny_runs["fitted"]
    _, _, planted_validated, _ = tiny_runs["planted"]
    assert len(validated) == len(planted_validated) == 3
    for fitted_epoch, planted_epoch in zip(validated, planted_validated):
        assert not np.allclose(fitted_epoch[0], planted_epoch[0])
    model = keras.saving.load_model(result.run_dir / "model.keras", safe_mode=True)
    # The sample as training built it (same data options, seed and batch size).
    prepared = prepare_data(
        DataConfig(data=str(folder)),
        seed=TrainConfig.seed,
        batch_size=TrainConfig.batch_size,
        reporter=Quiet(),
    )
    layer, mean, _ = first_batch_norm_moments(model, prepared.train_sample)
    np.testing.assert_array_equal(validated[-1][0], layer.moving_mean.numpy())
    np.testing.assert_allclose(validated[-1][0], mean, rtol=1e-4, atol=1e-5)


REPLICAS_SCRIPT = """
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from imgcls_cli.engine.devices import split_cpu
split_cpu(2)
import tensorflow as tf
from imgcls_cli.engine.batch_norm import BatchNormStatistics
from imgcls_cli.models import create_model
from test_batch_norm import sample_batches

dataset, _ = sample_batches(sizes=(8, 8, 5))
default = create_model("convnet", (16, 16, 3), 3)
BatchNormStatistics(default, tf.distribute.get_strategy(), dataset).update()
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with mirrored.scope():
    model = create_model("convnet", (16, 16, 3), 3)
    model.set_weights([w.numpy() for w in default.weights])
    statistics = BatchNormStatistics(model, mirrored, dataset)
for layer in statistics.layers:  # other values than the default model's, before
    layer.moving_mean.assign(np.full(layer.moving_mean.shape, 5.0, np.float32))
statistics.update()
worst = 0.0
for layer, reference in zip(statistics.layers, BatchNormStatistics(default, None, None).layers):
    for variable, expected in ((layer.moving_mean, reference.moving_mean),
                               (layer.moving_variance, reference.moving_variance)):
        replicas = [v.numpy() for v in mirrored.experimental_local_results(variable.value)]
        assert len(replicas) == 2
        np.testing.assert_array_equal(replicas[0], replicas[1])
        np.testing.assert_allclose(replicas[0], expected.numpy(), rtol=1e-4, atol=1e-5)
print("replicas agree")
"""


def test_mirrored_replicas_hold_the_same_statistics_as_one_device(tmp_path):
    """Two CPU replicas (synchronized batch normalization, a last batch split 3/2):
    every replica ends with the same statistics, equal to one device's."""
    tests = os.path.dirname(__file__)
    process = subprocess.run(
        [sys.executable, "-c", REPLICAS_SCRIPT, tests],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([tests, os.getcwd()])},
    )
    assert process.returncode == 0 and "replicas agree" in process.stdout, process.stderr[-3000:]


def test_finetune_from_random_weights_learns_the_backbones_statistics(runner, cli_app, tmp_path):
    """--weights none: nothing pretrained to keep, so the unfrozen backbone's batch
    normalization trains on its batches and is measured on the training images (it
    used to stay at its start, mean 0 and variance 1, and the network trained at
    chance); a pretrained backbone's statistics stay as loaded (test_finetune)."""
    import keras

    data = make_class_folder(tmp_path / "shapes", classes=("a", "b", "c"), per_class=8, size=32)
    run_dir = tmp_path / "run"
    result = runner.invoke(
        cli_app,
        [
            "finetune",
            "--quiet",
            *("--data", str(data), "--weights", "none", "--image-size", "32"),
            *("--head-epochs", "0", "--epochs", "1", "--unfreeze", "all", "--batch-size", "8"),
            *("--augment", "none", "--output", str(run_dir)),
        ],
    )
    assert result.exit_code == 0, result.output
    model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    backbone = next(
        layer for layer in model.get_layer("features").layers if isinstance(layer, keras.Model)
    )
    norms = [x for x in backbone.layers if isinstance(x, keras.layers.BatchNormalization)]
    assert norms and not any(np.allclose(bn.moving_variance.numpy(), 1.0) for bn in norms)
    assert not any(np.allclose(bn.moving_mean.numpy(), 0.0) for bn in norms)


def test_the_inference_check_compares_with_the_epoch_whose_weights_were_kept():
    """Under --patience the best epoch's weights are saved: its training accuracy, not
    the last epoch's, is what the saved model should match (within the last phase)."""
    from imgcls_cli.engine.training import kept_epoch

    history = [
        {"epoch": 1, "phase": "head", "accuracy": 0.5, "val_loss": 0.1},
        {"epoch": 2, "phase": "finetune", "accuracy": 0.6, "val_loss": 0.4},
        {"epoch": 3, "phase": "finetune", "accuracy": 0.7, "val_loss": 0.3},
        {"epoch": 4, "phase": "finetune", "accuracy": 0.99, "val_loss": 0.5},
    ]
    assert kept_epoch(history, patience=2)["epoch"] == 3
    assert kept_epoch(history, patience=None)["epoch"] == 4
    unvalidated = [{"epoch": 1, "accuracy": 0.4}, {"epoch": 2, "accuracy": 0.8}]
    assert kept_epoch(unvalidated, patience=2)["epoch"] == 2
