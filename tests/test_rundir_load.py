"""Finding and loading a run: the latest one by default, one clear line for broken ones."""

import json
import os
import shutil

import pytest

from imgcls_cli import rundir
from imgcls_cli.errors import RunDirError
from imgcls_cli.rundir.load import find_run_dir


def fake_run(root, name, mtime):
    run_dir = root / name
    run_dir.mkdir(parents=True)
    (run_dir / rundir.MODEL_FILE).write_bytes(b"model")
    os.utime(run_dir / rundir.MODEL_FILE, (mtime, mtime))
    return run_dir


def test_latest_written_model_is_picked(tmp_path):
    fake_run(tmp_path, "train-a", 1_000)
    newest = fake_run(tmp_path, "finetune/b", 3_000)  # runs/<task>/<name> works too
    fake_run(tmp_path, "train-c", 2_000)
    (tmp_path / "train-in-progress").mkdir()  # no model yet: passed over
    assert find_run_dir(None, tmp_path) == (newest, True)


def test_model_option_takes_a_run_dir_or_its_model_file(tmp_path):
    run_dir = fake_run(tmp_path, "r", 1_000)
    assert find_run_dir(run_dir, tmp_path) == (run_dir, False)
    assert find_run_dir(run_dir / rundir.MODEL_FILE, tmp_path) == (run_dir, False)


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda root: None, "No trained model found under"),
        (lambda root: (root / "runs" / "empty").mkdir(parents=True), "imgcls train"),
    ],
)
def test_no_runs_says_how_to_train_one(tmp_path, setup, message):
    setup(tmp_path)
    with pytest.raises(RunDirError, match=message):
        find_run_dir(None, tmp_path / "runs")


def test_model_option_errors(tmp_path):
    with pytest.raises(RunDirError, match="does not exist"):
        find_run_dir(tmp_path / "nope", tmp_path)
    (tmp_path / "training").mkdir()
    (tmp_path / "training" / rundir.CONFIG_FILE).write_text("{}")  # claimed, still training
    with pytest.raises(RunDirError, match="has no model.keras") as refused:
        find_run_dir(tmp_path / "training", tmp_path)
    assert "a run still in progress has no model yet" in str(refused.value)
    # Interrupted: it has a checkpoint, so the message says how to continue it.
    stopped = tmp_path / "stopped run"
    (stopped / rundir.CHECKPOINTS_DIR / "head").mkdir(parents=True)
    (stopped / rundir.CHECKPOINTS_DIR / "head" / "checkpoint").write_text("")
    (stopped / rundir.CONFIG_FILE).write_text('{"command": "finetune"}')
    with pytest.raises(RunDirError) as refused:
        find_run_dir(stopped, tmp_path)
    assert str(refused.value) == (
        f"{stopped} has no model.keras: its training stopped before the end (a checkpoint is "
        f"saved); continue it with `imgcls finetune --resume '{stopped}'`, or give a finished "
        "run."
    )


def test_model_option_that_is_no_model_says_so(runner, cli_app, shapes_run, tmp_path):
    image = next((shapes_run.parent / "shapes" / "circle").glob("*.png"))
    (tmp_path / "photos").mkdir()
    for model in (image, tmp_path / "photos"):
        with pytest.raises(RunDirError, match=f"^{model} is not a model: give a run directory"):
            find_run_dir(model, tmp_path)
    result = runner.invoke(cli_app, ["predict", "--model", str(image), str(image)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert (
        len(lines) == 1
        and "is not a model: give a run directory, its model.keras, or an export folder" in lines[0]
    )


def test_without_model_option_the_latest_run_is_used_and_named(
    runner, cli_app, shapes_run, tmp_path, monkeypatch
):
    shutil.copytree(shapes_run, tmp_path / "runs" / "train-shapes")
    image = next((shapes_run.parent / "shapes" / "tri").glob("*.png"))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli_app, ["predict", str(image), "--json"])
    assert result.exit_code == 0, result.output
    assert "Using the latest run: runs/train-shapes" in result.stderr
    assert json.loads(result.stdout)["label"] == "tri"


def test_no_runs_is_one_line_through_the_cli(runner, cli_app, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for command in (["predict", "x.png"], ["evaluate"]):
        result = runner.invoke(cli_app, command)
        assert result.exit_code == 1
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and "imgcls train" in lines[0]


def lambda_model(path):
    import keras

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Lambda(lambda t: t / 255.0)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x)).save(path)


def scale(pixels):
    return pixels / 255.0


def replace_with_named_lambda_model(run_dir):
    """A Lambda layer calling a named function: Keras's error names the function only
    after a config dump of over 1,500 characters."""
    import keras

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Lambda(scale)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    model.save(run_dir / rundir.MODEL_FILE)


def break_labels(run_dir):
    (run_dir / rundir.LABELS_FILE).unlink()


def corrupt_model(run_dir):
    (run_dir / rundir.MODEL_FILE).write_bytes(b"not a zip archive")


def replace_with_lambda_model(run_dir):
    lambda_model(run_dir / rundir.MODEL_FILE)


def add_a_label(run_dir):
    labels = json.loads((run_dir / rundir.LABELS_FILE).read_text())
    (run_dir / rundir.LABELS_FILE).write_text(json.dumps([*labels, "extra"]))


@pytest.mark.parametrize(
    "damage, message",
    [
        (break_labels, "labels.json is missing"),
        (corrupt_model, "is not a Keras model file"),
        (replace_with_lambda_model, "safe mode refuses"),
        (replace_with_named_lambda_model, "Lambda layer imgcls cannot load (Could not locate"),
        (add_a_label, "predicts 3 classes but"),
    ],
)
def test_broken_run_dir_gives_one_clear_line(
    runner, cli_app, shapes_run, tmp_path, damage, message
):
    run_dir = shutil.copytree(shapes_run, tmp_path / "run")
    damage(run_dir)
    image = next((shapes_run.parent / "shapes" / "circle").glob("*.png"))
    for command in (["predict", str(image)], ["evaluate"]):
        result = runner.invoke(cli_app, [*command, "--model", str(run_dir)])
        assert result.exit_code == 1, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and message in lines[0], result.output
        assert len(lines[0]) < 500 and "Traceback" not in result.output
