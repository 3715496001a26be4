"""`imgcls finetune` end to end on tiny generated folders, with weights files (no network)."""

import csv
import json

import numpy as np
import pytest
from conftest import make_class_folder, write_image
from test_weights import save_backbone_weights

from imgcls_cli import rundir

SIZE = 32


def finetune(runner, app, *args):
    return runner.invoke(app, ["finetune", "--quiet", *args])


def nested_backbone(model):
    import keras

    features = model.get_layer("features")
    return next(layer for layer in features.layers if isinstance(layer, keras.Model))


@pytest.mark.slow
def test_two_phases_change_only_the_head_and_unfrozen_layers(runner, cli_app, tmp_path):
    import keras

    weights_file = tmp_path / "mobilenetv2.weights.h5"
    initial = save_backbone_weights("mobilenetv2", weights_file, SIZE)
    data = make_class_folder(tmp_path / "shapes", classes=("a", "b", "c"), per_class=8, size=40)
    run_dir = tmp_path / "run"
    result = finetune(
        runner,
        cli_app,
        *("--data", str(data), "--weights", str(weights_file), "--image-size", str(SIZE)),
        *("--head-epochs", "2", "--epochs", "1", "--unfreeze", "12", "--batch-size", "8"),
        *("--augment", "none", "--output", str(run_dir)),
    )
    assert result.exit_code == 0, result.output
    contract = (rundir.MODEL_FILE, rundir.LABELS_FILE, rundir.CONFIG_FILE, rundir.HISTORY_FILE)
    insight = (rundir.LOGS_DIR, rundir.TRAINING_PNG)
    assert {p.name for p in run_dir.iterdir()} == {
        *contract,
        *insight,
        rundir.METRICS_FILE,
        "checkpoints",
    }
    assert {p.name for p in (run_dir / "checkpoints").iterdir()} == {"head", "finetune"}

    model = keras.saving.load_model(run_dir / rundir.MODEL_FILE, safe_mode=True)
    backbone = nested_backbone(model)
    unfrozen = {layer.name for layer in initial.layers[-12:]}
    moved = []
    assert len(initial.layers) == len(backbone.layers)
    for before, after in zip(initial.layers, backbone.layers):
        assert before.name == after.name or not before.weights
        for want, got in zip(before.weights, after.weights):
            same = np.array_equal(np.array(want), np.array(got))
            # Frozen layers keep the file's weights; BatchNorm statistics never change.
            if before.name not in unfrozen or "moving_" in want.path:
                assert same, want.path
            else:
                moved.append(not same)
    assert moved and sum(moved) > len(moved) // 2

    with open(run_dir / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["epoch"], row["phase"]) for row in rows] == [
        ("1", "head"),
        ("2", "head"),
        ("3", "finetune"),
    ]
    assert float(rows[2]["lr"]) == pytest.approx(1e-4)

    config = json.loads((run_dir / "config.json").read_text())
    assert config["command"] == "finetune"
    assert config["options"]["backbone"] == "mobilenetv2"
    assert config["resolved"]["weights"] == {"source": "file", "file": str(weights_file)}
    head, tune = config["resolved"]["phases"]
    assert head == {
        "name": "head",
        "epochs": 2,
        "lr": 1e-3,
        "unfrozen_layers": 0,
        "cached_features": True,
    }
    assert tune["name"] == "finetune" and tune["unfrozen_layers"] == 12 and tune["epochs"] == 1
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs_trained"] == 3 and metrics["test"]["examples"] > 0


@pytest.mark.slow
def test_grayscale_run_directory_reloads_and_predicts_the_same(tmp_path):
    """Grayscale images reach the backbone as RGB; the saved model takes RGB."""
    import keras

    from imgcls_cli.commands.finetune import run_finetune
    from imgcls_cli.config import DataConfig, FinetuneConfig
    from imgcls_cli.reporting import SilentReporter

    rng = np.random.default_rng(0)
    for name in ("dark", "light"):
        for i in range(8):
            low = 0 if name == "dark" else 150
            pixels = rng.integers(low, low + 100, (20, 20), dtype=np.uint8)
            write_image(tmp_path / "gray" / name / f"{i}.png", pixels, mode="L")
    config = FinetuneConfig(
        data=DataConfig(data=str(tmp_path / "gray"), image_size=SIZE),
        backbone="mobilenetv2",
        weights="none",
        head_epochs=1,
        unfreeze=0,
        batch_size=8,
    )
    result = run_finetune(config, tmp_path / "run", SilentReporter())
    images = np.random.default_rng(0).integers(0, 256, (4, SIZE, SIZE, 3)).astype("float32")
    reloaded = keras.saving.load_model(tmp_path / "run" / rundir.MODEL_FILE, safe_mode=True)
    np.testing.assert_allclose(
        reloaded.predict(images, verbose=0), result.model.predict(images, verbose=0), atol=1e-6
    )
    assert [row["phase"] for row in result.history] == ["head"]
    config_json = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config_json["resolved"]["channels"] == 3 and reloaded.input_shape == (
        None,
        SIZE,
        SIZE,
        3,
    )


@pytest.mark.slow
def test_class_weights_scale_each_examples_training_loss():
    import keras
    import tensorflow as tf

    from imgcls_cli.engine.training import Trainer, create_optimizer
    from imgcls_cli.reporting import SilentReporter

    def first_epoch_loss(class_weights):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
        trainer = Trainer(
            model,
            create_optimizer("sgd", 0.0, 0.0),
            tf.distribute.get_strategy(),
            class_weights=class_weights,
        )
        x = np.random.default_rng(0).normal(size=(6, 2)).astype("float32")
        y = tf.one_hot([0, 0, 0, 0, 1, 1], 2)
        data = tf.data.Dataset.from_tensors((x, y))
        return trainer.train_epoch(data, SilentReporter())["loss"], model, x, y

    plain, model, x, y = first_epoch_loss(None)
    weighted, *_ = first_epoch_loss([0.5, 2.0])
    per_example = keras.losses.categorical_crossentropy(y, model(x)).numpy()
    expected = np.mean(per_example * np.array([0.5, 0.5, 0.5, 0.5, 2.0, 2.0]))
    assert plain == pytest.approx(float(np.mean(per_example)), rel=1e-5)
    assert weighted == pytest.approx(float(expected), rel=1e-5)


@pytest.mark.slow
def test_class_weight_balanced_reports_the_weights(runner, cli_app, tmp_path):
    root = make_class_folder(tmp_path / "skewed", classes=("many", "few"), per_class=12, size=SIZE)
    for path in sorted((root / "few").iterdir())[4:]:
        path.unlink()
    result = runner.invoke(
        cli_app,
        [
            "finetune",
            *("--data", str(root), "--weights", "none", "--image-size", str(SIZE)),
            *("--head-epochs", "1", "--unfreeze", "0", "--class-weight", "balanced"),
            *("--augment", "none", "--output", str(tmp_path / "run")),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Class weights (balanced): few" in result.output
    assert "Bottleneck caching" in result.output
    # The head trained on cached features: the log's images are the first batch of images.
    from test_summaries import folder_pixels, is_one_of, logged_images

    images, files = logged_images(tmp_path / "run"), folder_pixels(root)
    assert len(images) == 8 and all(is_one_of(image, files) for image in images)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    few, many = config["resolved"]["class_weights"]
    assert few > 1.0 > many

    # --config reruns those options; options given win (the run's options, resolved as
    # `finetune --config RUN/config.json --lr 0.01` resolves them, without training again).
    from imgcls_cli.api import prepare_run

    saved = tmp_path / "run" / "config.json"
    rerun, _, _ = prepare_run("finetune", {"lr": 0.01}, tmp_path / "rerun", False, None, saved)
    assert rerun.to_dict() == {**config["options"], "lr": 0.01}


def test_config_of_another_command_is_refused(runner, cli_app, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"command": "train", "options": {"arch": "simplecnn"}}))
    result = finetune(runner, cli_app, "--config", str(path), "--output", str(tmp_path / "r"))
    assert result.exit_code == 2
    assert "config of an `imgcls train` run" in result.output
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--backbone", "resnet"], 2, "Unknown backbone 'resnet'. Did you mean 'resnet50'?"),
        (["--image-size", "16"], 2, "below mobilenetv2's minimum of 32"),
        (["--unfreeze", "top"], 2, "--unfreeze must be a number of layers"),
        (["--head-epochs", "0", "--unfreeze", "0"], 2, "Nothing to train"),
        (["--weights", "/no/such.weights.h5"], 1, "no such file"),  # a missing file
        (["--dropout", "1.5"], 2, "--dropout must be in [0, 1)"),
    ],
)
def test_bad_input_gives_one_line_and_exit_code(runner, cli_app, tmp_path, args, code, message):
    result = finetune(runner, cli_app, *args, "--output", str(tmp_path / "run"))
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    assert message in result.output
    assert not (tmp_path / "run").exists()


def test_offline_imagenet_through_the_cli_is_fast_and_writes_nothing(
    runner, cli_app, tmp_path, no_network, monkeypatch
):
    import time

    from imgcls_cli.models.weights import keras_models_dir

    # A Keras cache of its own: the README walk-through caches stand-in weights in the
    # shared one while it runs, in the other test process.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))

    data = make_class_folder(tmp_path / "shapes", per_class=4)
    started = time.perf_counter()
    result = finetune(runner, cli_app, "--data", str(data), "--output", str(tmp_path / "run"))
    assert time.perf_counter() - started < 15
    assert result.exit_code == 1
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5" in result.output
    assert str(keras_models_dir()) in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_augmentation_turns_caching_off_and_evaluate_predict_use_the_run(runner, cli_app, tmp_path):
    root = make_class_folder(tmp_path / "shapes", classes=("a", "b"), per_class=6, size=SIZE)
    run_dir = tmp_path / "run"
    result = runner.invoke(
        cli_app,
        [
            "finetune",
            *("--data", str(root), "--weights", "none", "--image-size", str(SIZE)),
            *("--head-epochs", "1", "--unfreeze", "0", "--augment", "standard"),
            *("--output", str(run_dir)),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "No bottleneck caching (augmentation" in result.output
    config = json.loads((run_dir / "config.json").read_text())
    assert config["resolved"]["augment"]["flip"] == "horizontal"

    result = runner.invoke(cli_app, ["evaluate", "--model", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert report["examples"] == metrics["test"]["examples"]  # the run's own test split
    assert report["accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    image = next((root / "a").iterdir())
    result = runner.invoke(cli_app, ["predict", str(image), "--model", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["label"] in ("a", "b") and record["error"] is None


@pytest.fixture
def deterministic_ops():
    """--deterministic switches TensorFlow's op determinism on for the whole process."""
    yield
    from tensorflow.python.framework import config  # not exported under tf.config

    config.disable_op_determinism()


def interrupt_epoch(monkeypatch, number):
    """Send SIGINT to this process as the number-th training epoch starts (counted over
    both phases), as Ctrl-C would."""
    import os
    import signal

    from imgcls_cli.engine.training import Trainer

    real_train_epoch, calls = Trainer.train_epoch, []

    def train_epoch(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == number:
            os.kill(os.getpid(), signal.SIGINT)
        return real_train_epoch(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)


@pytest.mark.slow
def test_interrupted_finetune_resumes_to_the_same_history_and_averaged_weights(
    runner, cli_app, tmp_path, monkeypatch, deterministic_ops
):
    """Stopped in the head phase (its second epoch, on cached features) or in the
    fine-tuning phase, a run resumes to the history and weights of one never stopped,
    with each phase's weight average (--ema) saved and restored with it."""
    weights_file = tmp_path / "mobilenetv2.weights.h5"
    save_backbone_weights("mobilenetv2", weights_file, SIZE)
    data = make_class_folder(tmp_path / "shapes", classes=("a", "b"), per_class=8, size=SIZE)
    options = [
        *("--data", str(data), "--weights", str(weights_file), "--image-size", str(SIZE)),
        *("--head-epochs", "2", "--epochs", "1", "--unfreeze", "6", "--batch-size", "4"),
        *("--augment", "none", "--deterministic", "--dropout", "0.5", "--ema", "0.5"),
    ]

    def outcome(run_dir):
        metrics = json.loads((run_dir / rundir.METRICS_FILE).read_text())
        return outcome_rows(run_dir), metrics["weights_fingerprint"]

    from imgcls_cli.engine import training

    decays, create_optimizer = [], training.create_optimizer

    def recording_decays(*args, ema=None):
        decays.append(ema)
        return create_optimizer(*args, ema=ema)

    with monkeypatch.context() as patch:
        patch.setattr(training, "create_optimizer", recording_decays)
        result = finetune(runner, cli_app, *options, "--output", str(tmp_path / "a"))
    assert result.exit_code == 0, result.output
    assert decays == [0.5, 0.5]  # each phase's optimizer averages
    expected = outcome(tmp_path / "a")
    assert [row[1] for row in expected[0][1:]] == ["head", "head", "finetune"]

    # Stopped in epoch 2, the second head epoch (cached features); its resume stopped in
    # epoch 3, the fine-tuning one; then resumed to the end.
    run_dir = tmp_path / "stopped"
    with monkeypatch.context() as patch:
        interrupt_epoch(patch, 2)
        result = finetune(runner, cli_app, *options, "--output", str(run_dir))
    assert result.exit_code == 130, result.output
    assert f"Resume with: imgcls finetune --resume {run_dir}" in result.output
    assert not (run_dir / rundir.MODEL_FILE).exists()
    with monkeypatch.context() as patch:
        interrupt_epoch(patch, 2)  # the resumed run's second epoch: epoch 3
        result = runner.invoke(cli_app, ["finetune", "--resume", str(run_dir)])
    assert result.exit_code == 130, result.output
    assert [row[1] for row in outcome_rows(run_dir)[1:]] == ["head", "head"]
    assert not (run_dir / rundir.MODEL_FILE).exists()
    result = runner.invoke(cli_app, ["finetune", "--resume", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "Phase already finished (2 epoch(s)): restored" in result.output
    assert json.loads((run_dir / rundir.CONFIG_FILE).read_text())["options"]["ema"] == 0.5
    assert outcome(run_dir) == expected


def outcome_rows(run_dir):
    history = (run_dir / rundir.HISTORY_FILE).read_text().splitlines()
    return [line.split(",")[:4] for line in history]  # epoch, phase, loss, accuracy


def test_finetune_says_when_images_are_enlarged_or_their_channel_repeated():
    from imgcls_cli.commands.finetune import enlargement_note

    note = enlargement_note((28, 28), 1, (224, 224))
    assert note.startswith("Images are enlarged 8x from 28x28 to 224x224 and their gray channel")
    assert "--image-size" in note
    assert "enlarged" not in enlargement_note((128, 128), 1, (224, 224))  # 1.75x: fine
    assert enlargement_note((96, 96), 3, (224, 224)).startswith("Images are enlarged 2.33x")
    assert enlargement_note((200, 300), 3, (224, 224)) is None
    assert enlargement_note(None, 3, (224, 224)) is None  # sizes differ: nothing to say
    # At the backbone's smallest size, a smaller one is no advice.
    smallest = enlargement_note((8, 8), 1, (32, 32), minimum=32)
    assert "a smaller --image-size" not in smallest
    assert "32 is the backbone's smallest --image-size" in smallest


@pytest.mark.parametrize(
    "options, warned",
    [
        ({"weights": "none", "unfreeze": "10"}, True),
        ({"weights": "none", "unfreeze": "0", "head_epochs": 2}, True),
        ({"weights": "none", "unfreeze": "all", "epochs": 0, "head_epochs": 2}, True),
        ({"weights": "none", "unfreeze": "all"}, False),
        ({"weights": "imagenet", "unfreeze": "10"}, False),
    ],
)
def test_random_weights_left_frozen_are_warned_about(options, warned):
    from imgcls_cli.commands.finetune import random_frozen_layers_warning
    from imgcls_cli.config import FinetuneConfig
    from imgcls_cli.options import config_from_options

    config = config_from_options(FinetuneConfig, {"dataset": "digits", **options})
    warning = random_frozen_layers_warning(config)
    assert (warning is not None) is warned
    if warned:
        assert "Use --unfreeze all" in warning
