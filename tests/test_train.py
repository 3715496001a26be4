"""`imgcls train` end to end on tiny real data: digits, generated folders, mocked TFDS."""

import json
import re
import time

import numpy as np
import pytest
from conftest import make_class_folder

from imgcls_cli import rundir


def train(runner, app, *args):
    return runner.invoke(app, ["train", "--quiet", *args])


def test_train_on_digits_writes_a_complete_run_dir(runner, cli_app, tmp_path):
    run_dir = tmp_path / "run"
    result = train(runner, cli_app, "--epochs", "2", "--output", str(run_dir))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoints",
        "config.json",
        "history.csv",
        "labels.json",
        "logs",
        "metrics.json",
        "model.keras",
        "training.png",
    ]
    assert json.loads((run_dir / "labels.json").read_text()) == [str(i) for i in range(10)]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["options"]["data"]["dataset"] == "digits"
    assert config["resolved"]["image_size"] == [8, 8] and config["resolved"]["channels"] == 1
    assert config["resolved"]["epochs"] == 2
    assert set(config["versions"]) >= {"imgcls", "tensorflow", "keras"}
    assert len((run_dir / "history.csv").read_text().splitlines()) == 3
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"]["examples"] == 450 and metrics["epochs_trained"] == 2
    right = metrics["test"]["accuracy"] * 450  # accuracy is a count of images over 450
    assert right == pytest.approx(round(right), abs=1e-6) and right > 45  # better than chance
    assert str(run_dir) in result.stdout


def test_epochs_not_given_are_chosen_from_the_training_split_and_recorded(tmp_path, monkeypatch):
    from imgcls_cli import api
    from imgcls_cli.commands import train as train_module

    sizes = []
    monkeypatch.setattr(train_module, "default_epochs", lambda n: sizes.append(n) or 2)
    run = api.train(dataset="digits", output=tmp_path / "run")
    config = json.loads((run.path / "config.json").read_text())
    assert sizes == [config["resolved"]["split_sizes"]["train"]]
    assert config["options"]["epochs"] is None and config["resolved"]["epochs"] == 2
    assert len(run.history) == 2


def test_saved_model_reloads_and_predicts_the_same(tmp_path):
    import keras

    from imgcls_cli.commands.train import run_train
    from imgcls_cli.config import DataConfig, TrainConfig
    from imgcls_cli.reporting import SilentReporter

    config = TrainConfig(data=DataConfig(dataset="digits"), epochs=1, arch="resnet8")
    result = run_train(config, tmp_path / "run", SilentReporter())
    images = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 1)).astype("float32")
    reloaded = keras.saving.load_model(tmp_path / "run" / rundir.MODEL_FILE, safe_mode=True)
    np.testing.assert_allclose(
        reloaded.predict(images, verbose=0),
        result.model.predict(images, verbose=0),
        rtol=1e-5,
        atol=1e-6,
    )


def test_ema_run_saves_the_average_of_its_weights_not_the_last_trained_ones(tmp_path):
    import keras
    import tensorflow as tf
    from conftest import train_run

    from imgcls_cli.engine.training import Checkpoints, Trainer, create_optimizer
    from imgcls_cli.models import create_model

    run_dir = train_run(
        tmp_path / "run", {"dataset": "digits"}, arch="simplecnn", epochs=1, ema=0.9
    )
    assert json.loads((run_dir / rundir.CONFIG_FILE).read_text())["options"]["ema"] == 0.9
    saved = keras.saving.load_model(run_dir / rundir.MODEL_FILE, safe_mode=True).get_weights()
    # The last checkpoint holds the trained weights, and the average in the optimizer.
    model = create_model("simplecnn", (8, 8, 1), 10)
    optimizer = create_optimizer("adam", 1e-3, 0.0, ema=0.9)
    trainer = Trainer(model, optimizer, tf.distribute.get_strategy())
    assert Checkpoints(run_dir / rundir.CHECKPOINTS_DIR, trainer).restore() is not None
    trained = model.get_weights()
    assert not any(np.array_equal(a, b) for a, b in zip(trained, saved))
    trainer.keep_averaged_weights()
    for average, kept in zip(model.get_weights(), saved, strict=True):
        np.testing.assert_array_equal(average, kept)


def test_same_seed_gives_the_same_history(runner, cli_app, tmp_path):
    rows = []
    for name in ("a", "b"):
        result = train(runner, cli_app, "--epochs", "2", "--output", str(tmp_path / name))
        assert result.exit_code == 0, result.output
        history = (tmp_path / name / "history.csv").read_text().splitlines()
        rows.append([line.split(",")[:3] for line in history])  # epoch, loss, accuracy
    assert rows[0] == rows[1]


def test_train_on_messy_folder_warns_and_succeeds(runner, cli_app, tmp_path):
    root = make_class_folder(tmp_path / "shapes", per_class=10)
    (root / "circle" / "corrupt.jpg").write_bytes(b"\xff\xd8\xffnot really")
    (root / "square" / "zero.png").write_bytes(b"")
    (root / "square" / "readme.txt").write_text("ignored")
    run_dir = tmp_path / "run"
    arguments = ["--data", str(root), "--epochs", "1", "--batch-size", "4"]
    result = runner.invoke(cli_app, ["train", *arguments, "--output", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "Skipped 2 unreadable image(s)" in result.output
    assert "corrupt.jpg" in result.output and "zero.png" in result.output
    test = json.loads((run_dir / "metrics.json").read_text())["test"]
    said = " ".join(result.output.split())
    assert f"on {test['examples']} images, could be anything from " in said
    assert f"Score the run on more images: `imgcls evaluate --model {run_dir} --data DIR`" in said
    # The splits in training order, as for every source (carving made test first).
    assert re.search(r"Data: shapes, 2 classes, train \d+, val \d+, test \d+ images", result.output)
    assert json.loads((run_dir / "labels.json").read_text()) == ["circle", "square"]
    assert json.loads((run_dir / "config.json").read_text())["resolved"]["channels"] == 3


@pytest.fixture
def online(monkeypatch):
    """Mocked TFDS never downloads, but the fail-fast offline check would still fire."""
    from imgcls_cli.data import tfds_source

    monkeypatch.setattr(tfds_source, "network_available", lambda timeout=3.0: True)


def test_train_on_mocked_mnist(runner, cli_app, tmp_path, online):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=40):
        result = train(
            runner,
            cli_app,
            "--dataset",
            "mnist",
            "--epochs",
            "1",
            "--data-dir",
            str(tmp_path / "tfds"),
            "--output",
            str(tmp_path / "run"),
        )
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["resolved"]["image_size"] == [28, 28]
    assert config["resolved"]["split_sizes"]["test"] == 40  # mnist's own test split


def test_train_on_mocked_tf_flowers_resizes_mixed_sizes(runner, cli_app, tmp_path, online):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=30):
        result = train(
            runner,
            cli_app,
            "--dataset",
            "tf_flowers",
            "--image-size",
            "16",
            "--epochs",
            "1",
            "--data-dir",
            str(tmp_path / "tfds"),
            "--output",
            str(tmp_path / "run"),
        )
    assert result.exit_code == 0, result.output
    labels = json.loads((tmp_path / "run" / "labels.json").read_text())
    assert labels == ["dandelion", "daisy", "tulips", "sunflowers", "roses"]


def test_offline_tfds_dataset_fails_fast_with_advice(runner, cli_app, tmp_path):
    started = time.perf_counter()
    result = train(runner, cli_app, "--dataset", "mnist", "--data-dir", str(tmp_path / "tfds"))
    assert time.perf_counter() - started < 15
    assert result.exit_code == 1
    assert "network is unreachable" in result.output and "--data-dir" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "tfds" / "downloads").exists()


def test_manual_dataset_says_where_to_put_archives(runner, cli_app, tmp_path):
    result = train(
        runner, cli_app, "--dataset", "imagenet2012", "--manual-dir", str(tmp_path / "m")
    )
    assert result.exit_code == 1
    assert (
        "cannot be downloaded automatically" in result.output
        and str(tmp_path / "m") in result.output
    )


def test_config_file_reproduces_a_run_and_flags_override(runner, cli_app, tmp_path):
    first = tmp_path / "first"
    result = train(
        runner,
        cli_app,
        "--epochs",
        "1",
        "--lr",
        "0.002",
        "--label-smoothing",
        "0.1",
        "--output",
        str(first),
    )
    assert result.exit_code == 0, result.output
    second = tmp_path / "second"
    result = train(
        runner,
        cli_app,
        "--config",
        str(first / "config.json"),
        "--epochs",
        "2",
        "--output",
        str(second),
    )
    assert result.exit_code == 0, result.output
    a = json.loads((first / "config.json").read_text())["options"]
    b = json.loads((second / "config.json").read_text())["options"]
    assert b["epochs"] == 2 and b["lr"] == 0.002 and b["label_smoothing"] == 0.1
    assert {**a, "epochs": 2} == b


def test_an_existing_folder_of_the_users_is_refused_even_with_force(runner, cli_app, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "keep.txt").write_text("precious")
    for force in ([], ["--force"]):
        result = train(runner, cli_app, "--epochs", "1", "--output", str(run_dir), *force)
        assert result.exit_code == 2 and "not an imgcls run directory" in result.output
    assert [p.name for p in run_dir.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--dataset", "mnsit"], 2, "Did you mean 'mnist'?"),
        (["--arch", "simplcnn"], 2, "Did you mean 'simplecnn'?"),
        (["--data", "/no/such/folder"], 1, "does not exist"),
        (["--data", __file__], 1, "is a file; give a folder with one sub-folder per class, or a"),
        (["--epochs", "0"], 2, "--epochs must be between 1 and 100000"),
        (["--batch-size", "-3"], 2, "--batch-size must be at least 1"),
        (["--ema", "1.5"], 2, "--ema must be a decay between 0 and 1"),
        (["--dataset", "digits", "--data", "x"], 2, "exactly one"),
        (["--config", "/no/such/config.json"], 2, "does not exist"),
    ],
)
def test_bad_input_gives_one_line_and_exit_code(runner, cli_app, tmp_path, args, code, message):
    result = train(runner, cli_app, *args, "--output", str(tmp_path / "run"))
    assert result.exit_code == code, result.output
    assert message in result.output
    error_lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(error_lines) == 1 and error_lines[0].startswith("Error:")
    assert not (tmp_path / "run").exists()


def test_folder_errors_through_the_cli(runner, cli_app, tmp_path):
    make_class_folder(tmp_path / "one", classes=("cats",))
    (tmp_path / "empty" / "cats").mkdir(parents=True)
    (tmp_path / "texts" / "cats").mkdir(parents=True)
    (tmp_path / "texts" / "cats" / "a.png").write_text("not an image")
    unread = "none of its 1 image file(s) could be read (" + str(tmp_path / "texts" / "cats")
    for folder, message in (
        ("one", "only 1 class"),
        ("empty", "No readable images"),
        ("texts", unread),
    ):
        result = train(runner, cli_app, "--data", str(tmp_path / folder))
        assert result.exit_code == 1 and message in result.output


def test_unwritable_output_is_one_line_not_a_traceback(runner, cli_app, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    result = train(runner, cli_app, "--epochs", "1", "--output", str(blocker / "run"))
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and str(blocker) in lines[0]


@pytest.mark.parametrize("arch", ["convnet", "resnet8"])
def test_batch_normalized_models_predict_at_inference_after_few_steps(tmp_path, arch):
    """A small folder trains for few steps: the moving statistics that inference uses
    must have caught up with the data by then (Keras' default momentum, 0.99, keeps most
    of its initial variance of 1 for hundreds of steps, and inference then fails)."""
    from imgcls_cli import api

    folder = make_class_folder(tmp_path / "shapes", per_class=24)
    run = api.train(
        data=folder,
        arch=arch,
        epochs=4,
        batch_size=4,
        val_split=0.25,
        test_split=0.0,
        augment="none",
        output=tmp_path / "run",
    )  # 36 training images: 9 steps an epoch, 36 in all
    assert run.history[-1]["accuracy"] >= 0.9
    assert run.metrics["val"]["accuracy"] >= 0.9


def test_a_stop_in_the_ending_resumes_and_a_finished_run_is_not_redone(
    runner, cli_app, tmp_path, monkeypatch
):
    """SIGTERM while the run scores and saves itself (after its last checkpoint) says how
    to resume, and --resume finishes it. A finished run resumed as it is is refused with
    nothing rewritten; --epochs above it trains on and records the new count. A run whose
    folder changed since it started is refused rather than resumed on redrawn splits."""
    import os
    import signal

    from imgcls_cli.engine import training

    data = make_class_folder(tmp_path / "shapes", per_class=10, size=8)
    options = ["--data", str(data), "--arch", "simplecnn", "--epochs", "2", "-q"]
    real_final_metrics = training.final_metrics

    def stopped_in_the_ending(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return real_final_metrics(*args, **kwargs)

    run_dir = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(training, "final_metrics", stopped_in_the_ending)
        result = train(runner, cli_app, *options, "--output", str(run_dir))
    assert result.exit_code == 143, result.output
    assert result.output.strip().splitlines()[-1] == (
        f"Interrupted after epoch 2; checkpoint saved. Resume with: imgcls train --resume {run_dir}"
    )
    assert not (run_dir / rundir.MODEL_FILE).exists()
    assert not (run_dir / rundir.METRICS_FILE).exists()
    # Ended by the default handler again: the guard is gone after the ending.
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

    result = runner.invoke(cli_app, ["train", "--resume", str(run_dir), "-q"])
    assert result.exit_code == 0, result.output
    assert (run_dir / rundir.METRICS_FILE).exists()

    written = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir() if p.is_file()}
    result = runner.invoke(cli_app, ["train", "--resume", str(run_dir)])
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"Error: {run_dir} has finished (2 epoch(s) trained): nothing to resume. To train "
        "it longer, add --epochs N with N above 2."
    )
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir() if p.is_file()} == written

    result = runner.invoke(cli_app, ["train", "--resume", str(run_dir), "--epochs", "3", "-q"])
    assert result.exit_code == 0, result.output
    record = json.loads((run_dir / rundir.CONFIG_FILE).read_text())
    assert (record["options"]["epochs"], record["resolved"]["epochs"]) == (3, 3)
    assert len((run_dir / rundir.HISTORY_FILE).read_text().splitlines()) == 1 + 3
    result = runner.invoke(cli_app, ["train", "--resume", str(run_dir), "--epochs", "2"])
    assert result.exit_code == 2 and "has finished (3 epoch(s) trained)" in result.output
    # Stopped while training longer (here in that resume's ending): the earlier ending's
    # files are still there, yet the printed command goes on.
    with monkeypatch.context() as patch:
        patch.setattr(training, "final_metrics", stopped_in_the_ending)
        result = runner.invoke(cli_app, ["train", "--resume", str(run_dir), "--epochs", "4"])
    assert result.exit_code == 143, result.output
    assert f"Resume with: imgcls train --resume {run_dir}" in result.output
    from imgcls_cli.rundir.load import unfinished_extension

    assert unfinished_extension(run_dir) == (
        f"{run_dir} was stopped while training longer (4 epochs in history.csv): its "
        f"model.keras is still its earlier ending's; `imgcls train --resume {run_dir}` "
        "finishes it."
    )
    result = runner.invoke(cli_app, ["train", "--resume", str(run_dir), "-q"])
    assert result.exit_code == 0, result.output
    assert json.loads((run_dir / rundir.METRICS_FILE).read_text())["epochs_trained"] == 4
    assert unfinished_extension(run_dir) is None

    # Stopped again in its ending; then the folder gains images before the resume.
    other = tmp_path / "other"
    with monkeypatch.context() as patch:
        patch.setattr(training, "final_metrics", stopped_in_the_ending)
        result = train(runner, cli_app, *options, "--output", str(other))
    assert result.exit_code == 143, result.output
    before = (other / rundir.CONFIG_FILE).read_text()
    result = runner.invoke(cli_app, ["train", "--resume", str(other), "--epochs", "1"])
    assert result.exit_code == 2
    assert "has trained 2 epoch(s) already; give --epochs 2 or more" in result.output
    from imgcls_cli import api

    def refused_before_the_run_starts(reason: str) -> str:
        def started(*args, **kwargs):
            raise AssertionError("the run started: the data was not checked before it")

        with monkeypatch.context() as patch:
            patch.setattr(api, "execute_run", started)
            result = runner.invoke(cli_app, ["train", "--resume", str(other)])
        assert result.exit_code == 1, result.output
        assert f"The data of {other} changed since the run started ({reason}" in result.output
        return result.output

    renamed = sorted(data.rglob("*.png"))[0]
    renamed.rename(renamed.with_name("renamed.png"))  # as many files
    refused_before_the_run_starts("as many images, but files renamed, edited or relabelled, ")
    renamed.with_name("renamed.png").rename(renamed)
    (data / "empty").mkdir()  # a class of no image: one output more
    with monkeypatch.context() as patch:
        patch.setattr(api, "execute_run", None)  # not reached
        result = runner.invoke(cli_app, ["train", "--resume", str(other)])
    assert (result.exit_code, result.output.strip()) == (
        1,
        f"Error: The classes of {other} changed since the run started (2 then, 3 now: added "
        "empty): its model has one output for each class it started with. Put the data back "
        "as it was to resume, or start a new run.",
    )
    (data / "empty").rmdir()
    data.rename(tmp_path / "moved")
    result = runner.invoke(cli_app, ["train", "--resume", str(other)])
    assert (result.exit_code, result.output.strip()) == (
        1,
        f"Error: {other} was trained on --data {data}, which does not exist here: put the "
        "data back where it was to resume.",
    )
    (tmp_path / "moved").rename(data)
    result = runner.invoke(cli_app, ["train", "--resume", str(other / "config.json")])
    assert (result.exit_code, result.output.strip()) == (
        1,
        f"Error: {other / 'config.json'} is a file: --resume takes the run directory that "
        f"train printed when it stopped ({other}?).",
    )
    added = [data / "circle" / f"added_{i}.png" for i in range(10)]
    for path in added:
        path.write_bytes(renamed.read_bytes())
    output = refused_before_the_run_starts("train/val/test images 16/2/2 then, 24/3/3 now)")
    assert "Put the data back as it was to resume, or start a new run." in output
    assert (other / rundir.CONFIG_FILE).read_text() == before
    # Put back as it was, the run resumes and finishes.
    for path in added:
        path.unlink()
    result = runner.invoke(cli_app, ["train", "--resume", str(other), "-q"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli_app, ["train", "--resume", str(tmp_path / "nope")])
    assert (result.exit_code, result.output.strip()) == (
        1,
        f"Error: {tmp_path / 'nope'} does not exist: --resume takes the run directory that "
        "train printed when it stopped.",
    )
