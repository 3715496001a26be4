"""TensorBoard logs and training.png: what a run writes, and a resumed run's log holds
each epoch and step once."""

import os
import signal
from collections import defaultdict
from pathlib import Path

import pytest

from imgcls_cli import api, rundir
from imgcls_cli.reporting import SilentReporter


def events(folder: Path) -> dict[str, list[int]]:
    """tag → the steps it was written at, over every event file in folder, in the order
    they were written. Not the files' name order: two writers opened in the same second
    are told apart by a counter, and "10" sorts before "9"."""
    import tensorflow as tf

    found = defaultdict(list)
    for path in folder.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                found[value.tag].append((event.wall_time, event.step))
    return {tag: [step for _, step in sorted(written)] for tag, written in found.items()}


def logged_images(run_dir: Path) -> list:
    """The pixels of the "augmented training images" summary (its PNGs, decoded)."""
    import numpy as np
    import tensorflow as tf

    found = []
    for path in (run_dir / rundir.LOGS_DIR / "train").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.tag == "augmented training images":
                    pngs = tf.make_ndarray(value.tensor)[2:]  # after width and height
                    found += [tf.io.decode_png(png).numpy() for png in pngs]
    return [np.asarray(image) for image in found]


def is_one_of(image, files: list) -> bool:
    """image equals one of the files' pixels (as PNG summaries round them: within 1)."""
    import numpy as np

    return any(
        image.shape == pixels.shape and np.abs(image.astype(int) - pixels).max() <= 1
        for pixels in files
    )


def folder_pixels(folder: Path) -> list:
    import numpy as np
    from PIL import Image

    return [np.asarray(Image.open(path).convert("RGB")) for path in folder.rglob("*.png")]


def test_the_logged_images_are_of_the_first_batch_the_run_trains_on(tmp_path):
    """Taken from training's own pipeline as it reads its first batch (no second
    pipeline is built for them): without augmentation each is one of the folder's
    files, pixel for pixel."""
    from conftest import make_class_folder

    data = make_class_folder(tmp_path / "data", per_class=12, size=16)
    run = api.train(
        data=str(data),
        arch="simplecnn",
        epochs=1,
        batch_size=8,
        augment="none",
        output=tmp_path / "run",
        reporter=SilentReporter(),
    )
    images = logged_images(run.path)
    files = folder_pixels(data)
    assert len(images) == 8 and all(is_one_of(image, files) for image in images)
    assert events(run.path / rundir.LOGS_DIR / "train")["augmented training images"] == [0]


def test_a_run_writes_tensorboard_logs_and_training_curves(tmp_path):
    run = api.train(
        dataset="digits", arch="simplecnn", epochs=2, batch_size=16, output=tmp_path / "run"
    )
    train, validation = (
        events(run.path / rundir.LOGS_DIR / name) for name in ("train", "validation")
    )
    for tag in ("epoch/loss", "epoch/accuracy", "epoch/learning_rate", "epoch/images_per_second"):
        assert train[tag] == [1, 2], tag
    assert len(rundir.read_history(run.path)) == 2
    per_epoch = -(-1211 // 16)  # digits' training split in batches of 16
    assert train["step/loss"] == [20, 40, 60, per_epoch + 20, per_epoch + 40, per_epoch + 60]
    assert train["augmented training images"] == [0]
    assert validation["epoch/loss"] == validation["epoch/accuracy"] == [1, 2]
    assert validation["test confusion matrix"] == [2]
    png = (run.path / rundir.TRAINING_PNG).read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000


def test_a_resumed_run_logs_each_epoch_and_step_once(tmp_path, monkeypatch):
    """Stopped by SIGINT at step 3 of epoch 2 and resumed: epochs 1-3 once each, and
    every step once: an epoch's steps are written when it ends, so those of epoch 2
    before the stop (its step 2, global 6) went with the stopped process, and the
    resumed run wrote the rest (step 4, global 8)."""
    from test_training import CrashAtStep, checkpointed_trainer

    from imgcls_cli.engine import summaries, training
    from imgcls_cli.engine.training import TrainingInterrupted, fit

    monkeypatch.setattr(training, "REPORT_INTERVAL_S", 0.0)
    monkeypatch.setattr(summaries, "STEP_EVERY", 2)
    options = {"epochs": 3, "steps_per_epoch": 4, "patience": None}

    def crash_in_epoch_two():
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)

    calls = []
    trainer, checkpoints, data = checkpointed_trainer(tmp_path)
    log = summaries.TrainingLog(tmp_path, 4)
    with pytest.raises(TrainingInterrupted):
        fit(
            trainer,
            data,
            data,
            reporter=CrashAtStep(3, crash_in_epoch_two),
            checkpoints=checkpoints,
            log=log,
            **options,
        )
    log.close()
    trainer, checkpoints, data = checkpointed_trainer(tmp_path)
    log = summaries.TrainingLog(tmp_path, 4)
    fit(trainer, data, data, reporter=SilentReporter(), checkpoints=checkpoints, log=log, **options)
    log.close()
    train = events(tmp_path / rundir.LOGS_DIR / "train")
    assert train["epoch/loss"] == [1, 2, 3]
    assert sorted(train["step/loss"]) == [2, 4, 8, 10, 12]
    assert events(tmp_path / rundir.LOGS_DIR / "validation")["epoch/loss"] == [1, 2, 3]


def test_the_tensorboard_command_of_the_readme_is_installed():
    """`tensorboard --logdir runs` works after `make install` (TensorFlow 2.21 no longer
    brings the viewer): the tensorboard extra is in the install, and its command runs."""
    import subprocess
    import sys

    makefile = (Path(__file__).parent.parent / "Makefile").read_text()
    assert "tensorboard" in makefile.split("$(STAMP): pyproject.toml", 1)[1].split("\n\n")[0]
    command = Path(sys.executable).parent / "tensorboard"
    outcome = subprocess.run([command, "--version_tb"], capture_output=True, text=True, timeout=120)
    assert outcome.returncode == 0 and outcome.stdout.strip()[0].isdigit(), outcome.stderr
