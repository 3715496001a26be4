"""Find a run directory, load its model safely, and run the model on batches of images.

Works on any run that follows the run-directory contract (model.keras taking raw 0-255
pixels and returning class probabilities, labels.json, config.json), whichever command or
architecture wrote it: image size and channels are read from the model itself.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from imgcls_cli import rundir
from imgcls_cli.errors import RunDirError, UsageError
from imgcls_cli.rundir.files import read_json
from imgcls_cli.rundir.record import ExportRecord, RunRecord

TRAIN_HINT = "train one with `imgcls train --dataset digits`, or pass {given_as}"


@dataclasses.dataclass
class LoadedRun:
    """A run's model, class names and config, ready to predict."""

    run_dir: Path
    model: Any
    class_names: list[str]
    record: RunRecord  # config.json (empty when absent)
    image_size: tuple[int, int]
    channels: int
    exported: Any = None  # export.runtimes.ExportedModel when run_dir is an export folder
    _predict_fns: dict[bool, Any] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def predict_batch(self, images: Any, tta: bool = False, compiled: bool = True) -> np.ndarray:
        """Class probabilities for a float32 batch already at the model's input size.

        With tta, the average over each image and its horizontal flip. compiled=False runs
        eagerly: for a single call, tracing a graph would cost more than it saves. An
        exported model runs in its own runtime.
        """
        if self.exported is not None:
            return self.exported.predict(images, tta)
        if not compiled:
            return np.asarray(predict_probabilities(self.model, images, tta))
        if tta not in self._predict_fns:
            import tensorflow as tf

            step = functools.partial(predict_probabilities, self.model, tta=tta)
            function = tf.function(step, reduce_retracing=True, autograph=False)
            # One trace for every batch size: a last, smaller batch would trace again.
            function.get_concrete_function(tf.TensorSpec((None, *images.shape[1:]), tf.float32))
            self._predict_fns[tta] = function
        return self._predict_fns[tta](images).numpy()


def predict_probabilities(model: Any, images: Any, tta: bool) -> Any:
    import tensorflow as tf

    probabilities = model(images, training=False)
    if tta:
        flipped = model(tf.image.flip_left_right(images), training=False)
        probabilities = (probabilities + flipped) / 2.0
    return probabilities


def find_run_dir(
    model: Path | None, runs_root: Path = rundir.RUNS_ROOT, given_as: str = "--model RUN_DIR"
) -> tuple[Path, bool]:
    """The run directory to use and whether it was picked automatically. `given_as`: how
    the command takes a run, for the hint when there is none (serve: `imgcls serve RUN_DIR`).

    --model takes a run directory or its model.keras, or an export folder (`imgcls
    export`) or the artifact in it; without it, the run whose model was
    written last under runs/ (runs still training have no model yet and are passed over).
    """
    if model is not None:
        return run_dir_of(Path(model)), False
    patterns = (
        f"*/{rundir.MODEL_FILE}",
        f"*/*/{rundir.MODEL_FILE}",
    )  # runs/<name>, runs/<task>/<name>
    candidates = [path for p in patterns for path in runs_root.glob(p) if path.is_file()]
    if not candidates:
        hint = TRAIN_HINT.format(given_as=given_as)
        raise RunDirError(f"No trained model found under {runs_root}/: {hint}.")
    latest = max(candidates, key=lambda path: path.stat().st_mtime)
    return latest.parent, True


def run_dir_of(model: Path) -> Path:
    if not model.exists():
        raise RunDirError(
            f"--model {model} does not exist; give a run directory (such as "
            f"runs/train-digits-convnet), its {rundir.MODEL_FILE}, or an export folder."
        )
    if rundir.holds_model(model):
        return model
    if model.is_file() and model.suffix == ".keras":
        return model.parent
    for folder in (model.parent, model.parent.parent):  # model.tflite; saved_model/x.pb
        if rundir.is_export_dir(folder):
            return folder
    if model.is_dir() and any(
        (model / n).exists() for n in (rundir.LABELS_FILE, rundir.CONFIG_FILE)
    ):
        raise RunDirError(no_model_message(model))
    # Anything else (an image, a data folder) would otherwise read as a broken run.
    raise RunDirError(
        f"{model} is not a model: give a run directory, its {rundir.MODEL_FILE}, or an "
        "export folder."
    )


def require_run_dir(path: Path) -> Path:
    """path, when it is a finished run directory (with model.keras) or an export folder;
    its folder, when it is a run's model.keras or an export's artifact (run_dir_of);
    else one line."""
    path = Path(path)
    if not path.exists():
        raise RunDirError(
            f"{path} does not exist; give a run directory, such as runs/train-digits-convnet."
        )
    if path.is_file():
        path = run_dir_of(path)
    if not rundir.holds_model(path):
        raise RunDirError(no_model_message(path))
    return path


def no_model_message(path: Path) -> str:
    """Why a folder without model.keras is no model: an interrupted run (it has a
    checkpoint) says how to continue it; anything else, what to give instead."""
    import shlex

    said = f"{path} has no {rundir.MODEL_FILE}: "
    if rundir.has_checkpoint(path):
        try:
            command = read_json(path / rundir.CONFIG_FILE, "the run's options")["command"]
        except (RunDirError, KeyError, TypeError):
            command = "train"
        return said + (
            "its training stopped before the end (a checkpoint is saved); continue it with "
            f"`imgcls {command} --resume {shlex.quote(str(path))}`, or give a finished run."
        )
    return said + (
        "give a run directory written by `imgcls train` or `imgcls finetune` (a run still "
        "in progress has no model yet)."
    )


def describe_run(run_dir: Path) -> str:
    """'runs/x (written 2024-06-01 12:00)', for saying which run was picked."""
    written = (run_dir / rundir.MODEL_FILE).stat().st_mtime
    return f"{run_dir} (written {time.strftime('%Y-%m-%d %H:%M', time.localtime(written))})"


def model_file(run_dir: Path, model: Path | None) -> Path:
    if model is not None and Path(model).is_file():
        return Path(model)
    return run_dir / rundir.MODEL_FILE


def saved_layers(path: Path) -> list[tuple[str, str]] | None:
    """(path, class name) of every layer of a .keras file's saved architecture that is
    not itself a model, nested models' layers under their names ("features/
    mobilenetv2_1.00_32/out_relu", as Grad-CAM names them), read from its config.json
    without TensorFlow. None when it cannot tell them all: no readable architecture, or
    a layer that is not Keras' own (whose inner layers the file does not list)."""
    import json

    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    found: list[tuple[str, str]] = []

    def walk(model: dict, prefix: str) -> bool:
        for layer in model.get("config", {}).get("layers", []):
            if not str(layer.get("module", "")).startswith("keras"):
                return False
            inner = layer.get("config", {})
            path = f"{prefix}{inner.get('name', '')}"
            if isinstance(inner.get("layers"), list):
                if not walk(layer, f"{path}/"):
                    return False
            else:
                found.append((path, str(layer.get("class_name", ""))))
        return True

    return found if walk(config, "") and found else None


def load_keras_model(path: Path) -> Any:
    """keras.saving.load_model with safe mode on, its failures turned into one line."""
    from imgcls_cli.backend import import_tensorflow

    import_tensorflow()
    import keras

    if not zipfile.is_zipfile(path):
        raise RunDirError(f"{path} is not a Keras model file (.keras files are zip archives).")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises ValueError, TypeError, KeyError… for bad files
        text = " ".join(str(error).split())
        if "safe_mode" in text:
            raise RunDirError(
                f"{path} holds Python code (such as a Lambda layer), which safe mode refuses to "
                "load because a model file from elsewhere could run anything; rebuild the "
                "model without it."
            ) from None
        if "'class_name': 'Lambda'" in text:  # in the config dump of the failing layer
            raise RunDirError(
                f"{path} has a Lambda layer imgcls cannot load ({load_failure(text)}); "
                "rebuild the model without Lambda layers."
            ) from None
        raise RunDirError(f"Cannot load the model in {path}: {load_failure(text)}") from None


def load_failure(text: str, limit: int = 240) -> str:
    """The cause in a Keras loading error, bounded. Keras nests causes as '<layer config
    dump>. Exception encountered: <cause>' and ends with 'Full object config: {…}': the
    innermost cause is the informative part, and may sit thousands of characters in."""
    cause = text.rsplit("Exception encountered:", 1)[-1].split(" Full object config:")[0]
    cause = cause.strip()
    return cause if len(cause) <= limit else cause[: limit - 1] + "…"


def input_size(model: Any, record: RunRecord, path: Path) -> tuple[tuple[int, int], int]:
    """(height, width) and channels from the model's input shape; the size falls back to
    config.json for models that accept any size."""
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[-1] not in (1, 3):
        raise RunDirError(
            f"{path} expects inputs of shape {shape}; imgcls needs images "
            "(batch, height, width, 1 or 3 channels)."
        )
    height, width = shape[1], shape[2]
    if height is None or width is None:
        saved = record.resolved.image_size
        if not saved:
            raise RunDirError(
                f"{path} accepts any image size and {rundir.CONFIG_FILE} does not record the "
                "training size ('resolved' → 'image_size')."
            )
        height, width = saved
    return (int(height), int(width)), int(shape[-1])


def load_run(run_dir: Path, model: Path | None = None) -> LoadedRun:
    """Class names, config and model of a run, each checked with a clear error."""
    if rundir.is_export_dir(run_dir):
        return load_export(run_dir)
    class_names = rundir.read_labels(run_dir)
    record = rundir.read_run_record(run_dir)
    path = model_file(run_dir, model)
    keras_model = load_keras_model(path)
    outputs = keras_model.outputs[0].shape[-1]
    if outputs != len(class_names):
        raise RunDirError(
            f"{path} predicts {outputs} classes but {run_dir / rundir.LABELS_FILE} lists "
            f"{len(class_names)}: they come from different runs."
        )
    image_size, channels = input_size(keras_model, record, path)
    return LoadedRun(run_dir, keras_model, class_names, record, image_size, channels)


def load_export(folder: Path) -> LoadedRun:
    """An export folder as a run: its artifact, run by the format's own runtime, with the
    class names, input size and the source run's config that export.json records."""
    from imgcls_cli.config import ExportFormat
    from imgcls_cli.export.runtimes import open_artifact

    path = Path(folder) / rundir.EXPORT_FILE
    record = ExportRecord.from_dict(read_json(path, "the export's description"), path)
    class_names = rundir.read_labels(folder)
    try:
        format = ExportFormat(record.format)
    except ValueError:
        raise RunDirError(
            f"{path} is not as `imgcls export` writes it; export the run again."
        ) from None
    artifact = Path(folder) / record.artifact
    if not artifact.exists():
        raise RunDirError(f"{artifact} is missing; export the run again.")
    exported = open_artifact(format, artifact)
    return LoadedRun(
        Path(folder), None, class_names, record.run, record.image_size, record.channels, exported
    )


def refuse_export(folder: Path, needs: str) -> None:
    """An export folder given where a command `needs` the run itself: one line naming
    the run it came from (export.json's source_run), before anything loads."""
    if not rundir.is_export_dir(Path(folder)):
        return
    try:
        source = read_json(Path(folder) / rundir.EXPORT_FILE, "the export's description")
        source_run = source.get("source_run") if isinstance(source, dict) else None
    except RunDirError:
        source_run = None
    named = ""
    if isinstance(source_run, str) and Path(source_run).is_dir():
        relative = os.path.relpath(source_run)  # export.json records it absolute
        named = f" ({source_run if relative.startswith('..') else relative})"
    raise UsageError(f"{folder} is an export; {needs}: give the run directory it came from{named}.")


def recorded_run(run_dir: Path) -> LoadedRun:
    """A run's or export folder's class names and record without its model (and without
    TensorFlow): enough to choose and check data before the model loads. Its model,
    image size and channels are not read (None, (0, 0), 0)."""
    class_names = rundir.read_labels(run_dir)
    if rundir.is_export_dir(run_dir):
        path = Path(run_dir) / rundir.EXPORT_FILE
        record = ExportRecord.from_dict(read_json(path, "the export's description"), path).run
    else:
        record = rundir.read_run_record(run_dir)
    return LoadedRun(Path(run_dir), None, class_names, record, (0, 0), 0)


def open_run(model: Path | None, reporter: Any) -> LoadedRun:
    """locate_run + load_run."""
    return load_run(locate_run(model, reporter), model)


def locate_run(model: Path | None, reporter: Any) -> Path:
    """find_run_dir, saying which run was picked when none was given, and when its model
    is older than its training (nothing loaded)."""
    run_dir, picked = find_run_dir(model)
    if picked:
        reporter.info(f"Using the latest run: {describe_run(run_dir)}")
    warning = unfinished_extension(run_dir)
    if warning:
        reporter.warning(warning)
    return run_dir


def unfinished_extension(run_dir: Path) -> str | None:
    """A warning for a run stopped while `--resume --epochs` trained it longer: its
    model.keras and metrics.json are still those of its earlier ending."""
    beyond = rundir.epochs_after_ending(run_dir)
    if not beyond:
        return None
    trained = rundir.epochs_trained(run_dir)
    return (
        f"{run_dir} was stopped while training longer ({trained} epochs in history.csv): "
        f"its {rundir.MODEL_FILE} is still its earlier ending's; `imgcls "
        f"{rundir.run_command(run_dir) or 'train'} --resume {run_dir}` finishes it."
    )
