"""`imgcls export RUN_DIR`: write the run's model in another format into a folder of its
own, and prove on held-out data that it answers as model.keras does.

The folder (default RUN_DIR/export/<format>[-<quantize>]/) holds the artifact,
labels.json and export.json. It is built beside its final place and moved there when
complete, so a failed export leaves nothing half-written and an earlier export (replaced
only with --force) intact.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from imgcls_cli import rundir
from imgcls_cli.config import (
    EvalSplit,
    EvaluateConfig,
    ExportConfig,
    ExportFormat,
    Quantize,
    protected_paths,
)
from imgcls_cli.errors import OutputRefused
from imgcls_cli.export import writers
from imgcls_cli.export.runtimes import ExportedModel, open_artifact
from imgcls_cli.reporting import Reporter
from imgcls_cli.rundir.files import staging_dir, swap_folder, write_json_atomic
from imgcls_cli.rundir.load import LoadedRun, load_run, refuse_export, require_run_dir
from imgcls_cli.rundir.owned import FolderMark, check_owned

EXPORT_FILE = rundir.EXPORT_FILE
# What an export folder may hold: ours, and evaluate's reports on the export.
EXPORT_ENTRIES = frozenset(
    {EXPORT_FILE, rundir.LABELS_FILE, *writers.ARTIFACTS.values(), *rundir.EVALUATION_FILES}
)
EXPORT_MARK = FolderMark(
    EXPORT_FILE,
    lambda document: isinstance(document.get("artifact"), str),
    lambda document: set(EXPORT_ENTRIES),
    unmarked="is not an imgcls export folder, and imgcls replaces nothing else; "
    "choose another --output.",
)


@dataclasses.dataclass
class ExportResult:
    folder: Path
    document: dict[str, Any]  # export.json


def default_export_dir(run_dir: Path, config: ExportConfig) -> Path:
    return Path(run_dir) / rundir.EXPORT_DIR / config.folder_name


def check_export_target(folder: Path, force: bool) -> None:
    """Refuse a target that holds anything but an earlier imgcls export, and an earlier
    export unless --force."""
    rundir.check_output(folder)
    if check_owned(folder, EXPORT_MARK) is not None and not force:
        raise OutputRefused(
            f"Export folder {folder} already exists; pass --force to replace it or choose "
            "another --output."
        )


def run_export(
    run_dir: Path,
    config: ExportConfig,
    reporter: Reporter,
    output: Path | None = None,
    force: bool = False,
) -> ExportResult:
    """Export, check parity, write the folder (also when the check fails: see
    parity_shortfall)."""
    writers.export_extra(config.format)
    run_dir = require_run_dir(Path(run_dir))  # a run's model.keras names its run
    refuse_export(run_dir, "exports are made from the Keras model")
    folder = Path(output) if output is not None else default_export_dir(run_dir, config)
    # Before the model loads (a refusal costs no TensorFlow); an export inside an image
    # folder would be read as a class of it.
    rundir.check_apart_from_run_data(folder, run_dir, protected_paths(config.data, config.data_dir))
    check_export_target(folder, force)
    run = load_run(run_dir)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_dir(folder.parent, f".{folder.name}.new-")
    try:
        document = write_export(run, config, staging, reporter)
        # An earlier export there is checked again, and replaced only now it is complete.
        swap_folder(staging, folder, lambda earlier: check_export_target(earlier, True))
    finally:
        if staging.exists():
            shutil.rmtree(staging)  # ours, and incomplete
    return ExportResult(folder, document)


def parity_shortfall(document: dict[str, Any], folder: Path) -> str | None:
    """The one-line failure when the export agrees too little with model.keras."""
    parity = document.get("parity")
    if parity is None or parity["passed"]:
        return None
    name = Path(folder).name
    return (
        f"The {name} export agrees with model.keras on {parity['agreement']:.2%} of "
        f"{parity['examples']} held-out images, below --min-agreement "
        f"{parity['min_agreement']:.2%}; the files are kept in {folder} for a look "
        "(export.json has the figures)."
    )


def write_export(
    run: LoadedRun, config: ExportConfig, folder: Path, reporter: Reporter
) -> dict[str, Any]:
    calibration, calibrated = None, None
    if config.quantize is Quantize.int8:
        images = calibration_images(run, config, reporter)
        calibrated = len(images)
        # The number used: a training split smaller than --calibration gives all it has.
        reporter.info(f"Calibrating int8 quantization on {len(images)} training images")
        calibration = lambda: iter(images)  # noqa: E731 - the converter calls it
    reporter.info(f"Exporting {run.run_dir} as {config.folder_name}")
    started = time.perf_counter()
    artifact = writers.write_artifact(
        config.format,
        model_to_export(run),
        folder,
        run.image_size,
        run.channels,
        config.quantize,
        calibration,
    )
    seconds = time.perf_counter() - started
    shutil.copyfile(run.run_dir / rundir.LABELS_FILE, folder / rundir.LABELS_FILE)
    exported = open_artifact(config.format, artifact)
    parity = None
    if config.check:
        parity = check_parity(run, exported, config, reporter)
    document = export_document(run, config, artifact, exported, parity, seconds, calibrated)
    write_json_atomic(folder / EXPORT_FILE, document)
    return document


def model_to_export(run: LoadedRun) -> Any:
    """The model the artifact is made from (a seam: the parity test hands in a wrong one)."""
    return run.model


def calibration_images(run: LoadedRun, config: ExportConfig, reporter: Reporter) -> list[Any]:
    """config.calibration of the run's training images, seeded, one per batch, through
    the same decode and resize as training."""
    from imgcls_cli.data.held_out import open_data
    from imgcls_cli.data.pipeline import create_batches

    data = open_data(run, EvaluateConfig(split=EvalSplit.train), reporter)
    batches = create_batches(
        data.split, run.image_size, run.channels, run.num_classes, 1, shuffle_seed=config.seed
    )
    return [images.numpy() for images, _ in batches.take(config.calibration)]


def check_parity(
    run: LoadedRun, exported: ExportedModel, config: ExportConfig, reporter: Reporter
) -> dict[str, Any]:
    """model.keras and the export on the same held-out batches: top-1 agreement, the
    largest probability difference, and each one's accuracy."""
    from imgcls_cli.data.held_out import open_data
    from imgcls_cli.data.pipeline import create_batches

    options = EvaluateConfig(dataset=config.dataset, data=config.data, data_dir=config.data_dir)
    data = open_data(run, options, reporter)
    reporter.info(f"Checking the export against model.keras on {data.split.num_examples} images")
    batches = create_batches(
        data.split, run.image_size, run.channels, run.num_classes, config.batch_size
    )
    labels, keras_top, export_top, largest = [], [], [], 0.0
    for images, one_hot in batches:
        expected = run.predict_batch(images)
        got = exported.predict(images.numpy())
        labels.append(np.argmax(one_hot.numpy(), axis=1))
        keras_top.append(expected.argmax(axis=1))
        export_top.append(got.argmax(axis=1))
        largest = max(largest, float(np.abs(expected - got).max()))
    truth, keras_top, export_top = map(np.concatenate, (labels, keras_top, export_top))
    agreement = float(np.mean(keras_top == export_top))
    needed = config.agreement_needed
    return {
        "data": data.description,
        "examples": int(len(truth)),
        "agreement": agreement,
        "max_abs_difference": largest,
        "keras_accuracy": float(np.mean(keras_top == truth)),
        "export_accuracy": float(np.mean(export_top == truth)),
        "min_agreement": needed,
        "passed": agreement >= needed,
    }


def export_document(
    run: LoadedRun,
    config: ExportConfig,
    artifact: Path,
    exported: ExportedModel,
    parity: dict[str, Any] | None,
    seconds: float,
    calibrated: int | None = None,
) -> dict[str, Any]:
    from imgcls_cli.backend import versions

    facts = {"input": {"dtype": "float32"}, "output": {"dtype": "float32"}}
    if config.format is ExportFormat.tflite:
        facts = exported.runner.tensor_facts()
        facts["input"]["batch"] = (
            "the interpreter starts at batch 1: for n images, resize_tensor_input(input, "
            "[n, height, width, channels]), then allocate_tensors()"
        )
    return {
        "format": config.format.value,
        "quantize": config.quantize.value,
        "artifact": artifact.name,
        "file_bytes": writers.artifact_bytes(artifact),
        "keras_model_bytes": (run.run_dir / rundir.MODEL_FILE).stat().st_size,
        "input": input_card(run, facts["input"]),
        "output": output_card(run, facts["output"]),
        "labels": rundir.LABELS_FILE,
        # TFLite keeps the SavedModel's signature: its names `images` and `probabilities`
        # are the signature runner's (the bare tensors have the converter's names).
        "signature": None if config.format is ExportFormat.onnx else writers.SIGNATURE,
        "source_run": str(run.run_dir.resolve()),
        "options": config.to_dict(),
        # int8: the training images calibrated on (fewer than --calibration when the
        # training split holds fewer); None for other exports.
        "calibration_images": calibrated,
        "seconds": round(seconds, 2),
        "versions": {**versions(), **converter_versions(config.format)},
        "parity": parity,
        "run_config": run.record.to_dict(),  # what evaluate needs to find the run's data
    }


def input_card(run: LoadedRun, facts: dict[str, Any]) -> dict[str, Any]:
    """export.json's input: all an app needs to feed the artifact the pixels `predict`
    feeds model.keras (data.folder.FileDecoder's decode and resize)."""
    height, width = run.image_size
    card: dict[str, Any] = {
        "name": writers.INPUT_NAME,
        "shape": [None, height, width, run.channels],
        "layout": "NHWC",
        **facts,
        "channels": "RGB" if run.channels == 3 else "grayscale",
        "value_range": [0, 255],
        "pixels": "raw 0-255 values, "
        + ("RGB" if run.channels == 3 else "grayscale")
        + f", resized to {height}x{width}; the model normalises them",
        "resize": {
            "size": [height, width],
            "shrink": "area (each pixel the mean of the pixels it covers)",
            "enlarge": "bilinear",
            "otherwise": "bilinear with antialiasing (larger on one side, smaller on the other)",
            "rounding": "to the nearest integer, clipped to 0-255",
        },
        "jpeg_decode": "at the largest of 1/2, 1/4, 1/8 scale that keeps both sides at least "
        "the input size (libjpeg's DCT scaling), then resized as above; EXIF orientation "
        "applied",
        "grayscale_from_colour": "ITU-R 601-2 luma (PIL's convert('L'))",
        "alpha": "dropped, as PIL's convert('RGB') or convert('L') drops it",
    }
    if "scale" in facts:
        how = "round(pixel / scale + zero_point), clipped to the dtype's range"
        card["quantization"] = quantization_card(facts, stored=how)
    return card


def quantization_card(facts: dict[str, Any], **how: str) -> dict[str, Any]:
    """An int8 tensor's scale and zero point, and how to apply them."""
    return {"scale": facts["scale"], "zero_point": facts["zero_point"], **how}


def output_card(run: LoadedRun, facts: dict[str, Any]) -> dict[str, Any]:
    card: dict[str, Any] = {
        "name": writers.OUTPUT_NAME,
        "shape": [None, run.num_classes],
        **facts,
        "meaning": f"class probabilities (softmax), in the order of {rundir.LABELS_FILE}",
    }
    if "scale" in facts:
        card["quantization"] = quantization_card(
            facts, probabilities="scale * (stored - zero_point)"
        )
    return card


def converter_versions(format: ExportFormat) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    packages = {
        ExportFormat.onnx: ("tf2onnx", "onnx", "onnxruntime"),
        ExportFormat.tflite: ("ai-edge-litert",),
    }.get(format, ())
    found = {}
    for package in packages:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found
