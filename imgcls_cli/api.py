"""imgcls from Python, for notebooks and scripts: the CLI's commands as functions that take
the CLI's option names as keywords (`--batch-size 32` is `batch_size=32`).

    from imgcls_cli import api

    run = api.train(dataset="digits", epochs=5)
    run.path, run.metrics["test"]["accuracy"]
    report = api.evaluate(run.path)          # what `imgcls evaluate --json` prints
    records = api.predict(run.path, ["a.png", "photos/"])

Errors are the CLI's: ImgclsError (UsageError for bad options) with the same one-line
messages. Importing this module imports no TensorFlow; each call imports what it needs.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from imgcls_cli import rundir
from imgcls_cli.backend import process_state_kept, quiet_logger
from imgcls_cli.config import RUN_CONFIGS, ExplainMethod, RunConfig, is_hub_dataset
from imgcls_cli.errors import (
    CLI_SPELLING,
    DataError,
    ImgclsError,
    UsageError,
    python_spelling,
    unknown_name_message,
)
from imgcls_cli.options import config_from_options, options_of, paths_as_text
from imgcls_cli.reporting import Reporter, api_reporter, files_and_reasons

__all__ = [
    "Run",
    "augment_preview",
    "benchmark",
    "evaluate",
    "explain",
    "export",
    "finetune",
    "inspect",
    "lr_find",
    "open_run",
    "predict",
    "train",
]

# What `--resume` may change: how long, on what devices, how often to checkpoint.
RESUME_OVERRIDES = ("epochs", "strategy", "save_every")


def library_call(function: Callable[..., Any]) -> Callable[..., Any]:
    """A public API function: it leaves the process as it found it (backend's
    process_state_kept: seeds, Keras' policy, op determinism, loggers, os.environ), and
    its errors name options as Python keywords (`force=True`), not flags."""

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        # TensorFlow's own warnings (retracing notes) stay out of the call, as in the CLI.
        with process_state_kept(), quiet_logger("tensorflow"):
            try:
                return function(*args, **kwargs)
            except ImgclsError as error:
                if not CLI_SPELLING.get():
                    error.args = (python_spelling(str(error)),)
                raise

    return call


@dataclasses.dataclass(frozen=True)
class TrainingCommand:
    """A command that trains into a run directory: where its run function lives, and the
    history phase whose epochs --epochs counts (None: every row)."""

    module: str
    function: str
    epochs_phase: str | None
    check_model: Callable[[Any], None]  # refuses an unknown model name before any work

    def run_function(self) -> Callable[..., Any]:
        import importlib

        return getattr(importlib.import_module(self.module), self.function)


def check_arch_name(config: Any) -> None:
    from imgcls_cli.models import check_architecture

    check_architecture(config.arch)


def check_backbone_name(config: Any) -> None:
    """The backbone, its input size and --weights (a missing file; ImageNet weights not
    cached while offline), before TensorFlow starts or a run directory is made."""
    from imgcls_cli.models.backbones import DEFAULT_IMAGE_SIZE, check_image_size, get_backbone
    from imgcls_cli.models.weights import resolve_weights

    get_backbone(config.backbone)
    image_size = config.data.image_size or DEFAULT_IMAGE_SIZE
    check_image_size(config.backbone, image_size)
    resolve_weights(config.weights, config.backbone, image_size)


# One row per training command (multi-label or other tasks add theirs here).
TRAINING_COMMANDS = {
    "train": TrainingCommand("imgcls_cli.commands.train", "run_train", None, check_arch_name),
    "finetune": TrainingCommand(
        "imgcls_cli.commands.finetune", "run_finetune", "finetune", check_backbone_name
    ),
}


@dataclasses.dataclass(frozen=True)
class Run:
    """A finished train or finetune run: its directory, metrics.json's content and the
    history. Wherever the API takes a run directory, a Run works too (it is path-like:
    `Path(run)` is its directory)."""

    path: Path
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    is_chief: bool = True  # False on the other workers of a multi-worker job

    def __fspath__(self) -> str:
        return str(self.path)

    @property
    def model_path(self) -> Path:
        return self.path / rundir.MODEL_FILE

    @property
    def class_names(self) -> list[str]:
        """The model's classes, in the order of its outputs (labels.json)."""
        return rundir.read_labels(self.path)

    @property
    def model(self) -> Any:
        """The trained Keras model (model.keras), loaded on first use."""
        from imgcls_cli.rundir.load import load_keras_model

        cached = self.__dict__.get("_model")
        if cached is None:
            cached = load_keras_model(self.model_path)
            object.__setattr__(self, "_model", cached)
        return cached


@library_call
def open_run(path: str | Path) -> Run:
    """A finished run directory, reopened (as api.train returned it): metrics, history,
    class names and the model on demand."""
    from imgcls_cli.rundir.load import require_run_dir

    run_dir = require_run_dir(Path(path))
    metrics = rundir.read_json(run_dir / rundir.METRICS_FILE, "the run's metrics")
    return Run(run_dir, metrics, rundir.read_history(run_dir))


def default_options(command: str) -> dict[str, Any]:
    """The flat options of a training command and their defaults, for its docstring
    (from the dataclasses, without pydantic: importing the API stays light)."""
    from imgcls_cli.config import DataConfig
    from imgcls_cli.options import AUGMENT_OPTION

    values = dataclasses.asdict(RUN_CONFIGS[command](data=DataConfig(dataset="digits")))
    data, augment = values.pop("data"), values.pop("augment")
    flat = {**data, **values, **{AUGMENT_OPTION.get(k, k): v for k, v in augment.items()}}
    return {name: getattr(value, "value", value) for name, value in flat.items()}


def check_flag(name: str, value: Any) -> None:
    """A yes/no keyword is a bool: `force="false"` would read as true and replace a run."""
    if not isinstance(value, bool):
        raise UsageError(f"{name} must be True or False; got {value!r}.")


def command_function(command: str, summary: str) -> Callable[..., Run]:
    """api.train and api.finetune: the command with the CLI's options as keywords."""

    def run(
        *,
        output: str | Path | None = None,
        force: bool = False,
        resume: str | Path | None = None,
        config: str | Path | None = None,
        reporter: Any = None,
        **options: Any,
    ) -> Run:
        check_flag("force", force)
        return run_command(command, options, output, force, resume, config, reporter)

    run.__name__ = run.__qualname__ = command
    run = library_call(run)
    listed = ", ".join(f"{name}={value!r}" for name, value in default_options(command).items())
    run.__doc__ = (
        f"{summary} (`imgcls {command}`); returns a Run. `config`: a run's config.json "
        "whose options are the defaults here; `reporter`: progress callbacks (any of "
        "reporting.Reporter's methods); `resume`: a run directory to continue. Options, "
        f"as `imgcls {command} --help` describes them, with their defaults: {listed}. "
        "An interruption (Ctrl-C, a notebook's stop) raises TrainingInterrupted, a "
        "KeyboardInterrupt, after saving a checkpoint."
    )
    return run


train = command_function("train", "Train a CNN from scratch")
finetune = command_function("finetune", "Fine-tune an ImageNet backbone")


def run_command(
    command: str,
    options: dict[str, Any],
    output: str | Path | None,
    force: bool,
    resume: str | Path | None,
    config_file: str | Path | None,
    reporter: Any,
) -> Run:
    config, run_dir, resuming = prepare_run(command, options, output, force, resume, config_file)
    return execute_run(config, run_dir, resuming, reporter)


def prepare_run(
    command: str,
    options: dict[str, Any],
    output: str | Path | None = None,
    force: bool = False,
    resume: str | Path | None = None,
    config_file: str | Path | None = None,
) -> tuple[RunConfig, Path, bool]:
    """(config, run directory, resuming): a run to resume, or a new one from the options
    over a --config file's, with its directory claimed."""
    if resume is not None:
        if output is not None or config_file is not None:
            raise UsageError("--resume continues RUN_DIR itself; drop --output and --config.")
        from imgcls_cli.engine.devices import check_cluster_described

        config = resumed_config(command, Path(resume), options)
        check_cluster_described(config.strategy.value)
        check_resumed_data(config, Path(resume))
        return config, Path(resume), True
    cls = RUN_CONFIGS[command]
    if config_file is not None:
        saved = rundir.read_options_file(Path(config_file), command)
        if rundir.is_flat_options(saved):
            saved = {"dataset": None, "data": None, **paths_as_text(saved)}
            try:  # its values, named as its keys, and the file named
                config_from_options(cls, saved, from_file=True)
            except UsageError as error:
                raise UsageError(
                    f"Config file {config_file}: {python_spelling(str(error))}"
                ) from None
        else:
            saved = options_of(cls.from_dict(saved))
            saved["data"] = rundir.recorded_data_folder(Path(config_file), saved["data"])
        if "data" in options or "dataset" in options:  # a source given replaces the saved one
            saved.pop("data"), saved.pop("dataset")
        options = {**saved, **options}
    config = config_from_options(cls, options)
    check_names(config)
    run_dir, resuming = rundir.plan_run_dir(config, Path(output) if output else None, force)
    return config, run_dir, resuming


def resumed_config(command: str, run_dir: Path, changes: dict[str, Any]) -> RunConfig:
    """The saved options of the `command` run in run_dir, with the few that may change."""
    refused = [name for name in changes if name not in RESUME_OVERRIDES]
    if refused:
        flags = ", ".join("--" + name.replace("_", "-") for name in refused)
        raise UsageError(
            f"--resume continues a run with its saved options; drop {flags} "
            "(only --epochs, --strategy and --save-every may change)."
        )
    saved = rundir.read_run_options(run_dir, command)
    done = rundir.epochs_trained(run_dir, TRAINING_COMMANDS[command].epochs_phase)
    # A finished run resumed as it is would only redo its ending, scoring and saving over
    # its own files (on data that may have changed since).
    if rundir.is_finished(run_dir) and changes.get("epochs", done) <= done:
        raise UsageError(
            f"{run_dir} has finished ({done} epoch(s) trained): nothing to resume. To train "
            f"it longer, add --epochs N with N above {done}."
        )
    # config.json would claim fewer epochs than metrics.json and the model have.
    if changes.get("epochs", done) < done:
        raise UsageError(
            f"{run_dir} has trained {done} epoch(s) already; give --epochs {done} or more."
        )
    cls = RUN_CONFIGS[command]
    return config_from_options(cls, {**options_of(cls.from_dict(saved)), **changes})


def check_resumed_data(config: RunConfig, run_dir: Path) -> None:
    """A --data folder or label file that is gone, or whose classes or files changed since
    the run started, refused before TensorFlow: the splits are drawn again here, as
    training would draw them, and compared with the run's (rundir.check_same_classes,
    check_same_data)."""
    from imgcls_cli.data.factory import carved_fingerprints

    data = config.data.data
    if data is not None and not Path(data).exists():
        relative = "" if Path(data).is_absolute() else " (a path from the folder it started in)"
        raise DataError(
            f"{run_dir} was trained on --data {data}{relative}, which does not exist here: "
            "put the data back where it was to resume."
        )
    found = carved_fingerprints(config.data, config.seed)
    if found is not None:
        class_names, fingerprints = found
        rundir.check_same_classes(run_dir, class_names)
        sizes = {name: split["images"] for name, split in fingerprints.items()}
        rundir.check_same_data(run_dir, fingerprints, sizes)


def check_names(config: RunConfig) -> None:
    """Model and dataset names (refused with the closest valid one), a --data folder
    that is missing or holds no class folders, and a cluster for --strategy
    multi-worker, before any work or TensorFlow."""
    from imgcls_cli.engine.devices import check_cluster_described

    TRAINING_COMMANDS[config.command].check_model(config)
    check_cluster_described(config.strategy.value)

    hugging_face = is_hub_dataset(config.data.dataset)
    if config.data.data is not None or hugging_face:
        from imgcls_cli.data.factory import check_data

        check_data(config.data)
    elif config.data.dataset is not None:
        check_dataset(config.data.dataset, config.data.data_dir, config.data.manual_dir)


def check_dataset(name: str, data_dir: str | None, manual_dir: str | None = None) -> None:
    """A --dataset name before any directory or TensorFlow: a Hugging Face name's syntax
    and, offline, its cache; a TFDS name refused with the closest valid one, and one that
    must be downloaded while the network is unreachable."""
    from imgcls_cli.data.sources import EMBEDDED_DATASETS

    if is_hub_dataset(name):
        from imgcls_cli.data.hf_source import check_hub_name

        check_hub_name(name)
    elif name not in EMBEDDED_DATASETS:
        from imgcls_cli.data.tfds_source import check_dataset_name, check_download_possible

        check_dataset_name(name)
        check_download_possible(name, data_dir, manual_dir)


@library_call
def lr_find(
    *,
    output: str | Path | None = None,
    reporter: Reporter | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Sweep the learning rate (`imgcls lr-find`): train's data, model and training
    options (dataset, data, arch, batch_size, optimizer, the augmentation, strategy, …)
    and the sweep's start_lr, end_lr and steps. Returns what `imgcls lr-find --json`
    prints (suggested_lr, suggestions, lrs, losses, …); writes lr_find.json and
    lr_find.png into `output` when given, and nothing otherwise."""
    from imgcls_cli.commands.lr_find import check_output_dir, run_lr_find
    from imgcls_cli.config import LR_FIND_IGNORES, LrFindConfig, TrainConfig, from_dict

    names = [field.name for field in dataclasses.fields(LrFindConfig)]
    given = {name: options.pop(name) for name in names if name in options}
    sweep = from_dict(LrFindConfig, given, where="lr-find options")
    ignored = [name for name in LR_FIND_IGNORES if name in options]
    if ignored:
        flags = ", ".join("--" + name.replace("_", "-") for name in ignored)
        raise UsageError(
            f"lr-find takes no {flags}: it sets the learning rate itself for "
            f"{sweep.steps} steps and trains no run."
        )
    config = config_from_options(TrainConfig, options)
    check_names(config)
    if output is not None:  # before any work: it may be a folder of the user's
        rundir.check_apart_from_data(Path(output), config.data.protected_paths)
        check_output_dir(Path(output))
    return run_lr_find(config, sweep, Path(output) if output else None, api_reporter(reporter))


def execute_run(config: RunConfig, run_dir: Path, resuming: bool, reporter: Any = None) -> Run:
    """Train `config` into run_dir. A run that stops before its first checkpoint gives
    its claimed directory back (nothing in it could be resumed); one with a checkpoint
    keeps it, for --resume."""
    reporter = api_reporter(reporter)
    claim = None if resuming else rundir.claim_of(run_dir)
    try:
        run = TRAINING_COMMANDS[config.command].run_function()
        result = run(config, run_dir, reporter, resume=resuming)
    except BaseException as stop:
        if claim is not None:
            rundir.release_claim(run_dir, claim)
        if isinstance(stop, KeyboardInterrupt):  # TrainingInterrupted: where, how to go on
            stop.run_dir = run_dir
            if getattr(stop, "saved", False) and not CLI_SPELLING.get():
                stop.args = (f"{stop}; checkpoint saved: api.train(resume={str(run_dir)!r})",)
        raise
    if result.is_chief and not CLI_SPELLING.get():  # the CLI says so under its table
        from imgcls_cli.report.metrics import held_out_splits, nothing_held_out

        if not held_out_splits(result.metrics):
            scores = "the run's only scores (metrics['train_sample']) are"
            reporter.warning(
                nothing_held_out(config.data.val_split, config.data.test_split, scores)
            )
    return Run(result.run_dir, result.metrics, result.history, result.is_chief)


@library_call
def evaluate(
    model: str | Path | None = None,
    *,
    output: str | Path | None = None,
    reporter: Reporter | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Score a trained model (`imgcls evaluate`) and write its report files into `output`
    (default: the run directory; for an export folder, `<folder>-evaluation` beside it).
    Returns what `imgcls evaluate --json` prints. `model`: a run directory, its
    model.keras or an export folder (default: the latest run under ./runs). With
    min_accuracy, the report's `min_accuracy` says whether it `passed` (`imgcls evaluate`
    exits 1 when not; here an ImgclsWarning says by how much)."""
    from imgcls_cli.commands.evaluate import (
        accuracy_shortfall,
        check_report_dir,
        default_report_dir,
        write_evaluation,
    )
    from imgcls_cli.commands.evaluate import evaluate as score
    from imgcls_cli.config import EvaluateConfig, from_dict, protected_paths
    from imgcls_cli.data.held_out import (
        check_explained_files,
        check_held_out_data,
        open_data,
        training_copies_warning,
    )
    from imgcls_cli.rundir.load import load_run, locate_run, refuse_export

    reporter = api_reporter(reporter)
    config = from_dict(EvaluateConfig, paths_as_text(options), where="evaluate options")
    if config.dataset is not None:
        check_dataset(config.dataset, config.data_dir)  # before the model loads TensorFlow
    run_dir = locate_run(Path(model) if model else None, reporter)
    if config.explain:
        refuse_export(run_dir, "--explain draws Grad-CAM, which needs the Keras model")
    check_held_out_data(run_dir, config)  # before the model loads TensorFlow
    check_explained_files(run_dir, config)
    classes = len(rundir.read_labels(run_dir))
    if config.top_k is not None and config.top_k >= classes:
        raise UsageError(
            f"--top-k must be below the model's {classes} classes (the top {classes} always "
            f"hold the true one); got {config.top_k}."
        )
    # Before the model loads: the output may be a file or a folder of the user's, or lie
    # in an image folder, whose images the report's pictures would join.
    report_dir = Path(output) if output is not None else default_report_dir(run_dir)
    rundir.check_output(report_dir)
    rundir.check_apart_from_run_data(
        report_dir, run_dir, protected_paths(config.data, config.data_dir)
    )
    check_report_dir(report_dir)
    run = load_run(run_dir, Path(model) if model else None)
    data = open_data(run, config, reporter)
    copies = training_copies_warning(run, config, data)
    if copies:
        reporter.warning(copies)
    evaluation = score(run, data, config, reporter)
    if config.min_accuracy is not None:  # the CI gate: recorded; the CLI exits 1 on it
        passed = evaluation.report["accuracy"] >= config.min_accuracy
        evaluation.report["min_accuracy"] = {"required": config.min_accuracy, "passed": passed}
    write_evaluation(evaluation, report_dir, run.channels)
    shortfall = accuracy_shortfall(evaluation.report, config.min_accuracy)
    if shortfall and not CLI_SPELLING.get():
        reporter.warning(shortfall)
    return evaluation.report


@dataclasses.dataclass
class Predictions:
    """predict's inputs expanded and the model loaded; `records` yields one Prediction
    per input as it is classified (the CLI prints them as they come)."""

    inputs: list[Any]
    top_k: int  # columns to show: --top-k, at most the number of classes
    tta_skipped: str | None  # why --tta was not applied, if it was asked for
    records: Iterator[Any]


def open_predictions(
    model: str | Path | Run | None,
    inputs: Any,
    *,
    read_stdin: Callable[[], str] | None = None,
    reporter: Reporter | None = None,
    **options: Any,
) -> Predictions:
    """The lazy form of predict: inputs expanded (files, folders, globs, "-" for paths
    on `read_stdin`; images in memory as they are), the model loaded, nothing classified
    yet. When no input can be read, their records come without loading the model (and
    TensorFlow): a one-line answer at once."""
    from imgcls_cli.commands.predict import (
        predict_inputs,
        python_inputs,
        tta_skip_reason,
        unreadable_records,
    )
    from imgcls_cli.config import PredictConfig, from_dict
    from imgcls_cli.rundir.load import load_run, locate_run

    config = from_dict(PredictConfig, options, where="predict options")
    items = python_inputs(inputs, read_stdin)
    model_path = Path(model) if model else None
    run_dir = locate_run(model_path, api_reporter(reporter))  # a wrong --model first
    failed = unreadable_records(items)
    if failed is not None:
        top_k = min(config.top_k, len(rundir.read_labels(run_dir)))
        return Predictions(items, top_k, None, iter(failed))
    run = load_run(run_dir, model_path)
    skipped = tta_skip_reason(run.record) if config.tta else None
    if skipped:
        config = dataclasses.replace(config, tta=False)
    top_k = min(config.top_k, run.num_classes)
    return Predictions(items, top_k, skipped, predict_inputs(items, run, config))


@library_call
def predict(model: str | Path | Run | None, inputs: Any, **options: Any) -> list[dict[str, Any]]:
    """Classify images (`imgcls predict`): one record per image, as `predict --json`
    prints them (path, label, confidence, top_k, error); a file reached twice (another
    spelling, a link) once, as on the command line. `inputs`: a path (str or Path)
    to an image or a folder, a glob pattern, a PIL image, a uint8 numpy array (HxWxC, or
    NxHxWxC for several), or a list of these; an image in memory goes through the same
    channel conversion and resize as a file of its pixels, and its record has `index`
    (its position among the inputs, each image of a batch counted) in place of `path`.
    An input that cannot be read (a missing file, an empty folder) gets a record with its
    `error`, as on the command line, and an ImgclsWarning. `model`: a run directory, a
    Run, its model.keras or an export folder (None: the latest run under ./runs).
    Options: top_k (3), tta (False), batch_size (64)."""
    reporter = api_reporter(options.pop("reporter", None))
    predictions = open_predictions(model, inputs, reporter=reporter, **options)
    if predictions.tta_skipped:
        reporter.warning(f"--tta skipped: {predictions.tta_skipped}.")
    records = [record.to_dict() for record in predictions.records]
    failed = [r for r in records if r["error"] is not None]
    if failed:
        shown = files_and_reasons([(r.get("path"), r["error"]) for r in failed], limit=5)
        reporter.warning(f"{len(failed)} of {len(records)} input(s) could not be read: {shown}")
    return records


@library_call
def explain(
    model: str | Path | Run | None,
    inputs: Any,
    *,
    class_name: str | None = None,
    layer: str | None = None,
    method: str | ExplainMethod = "auto",
    output: str | Path | None = None,
    read_stdin: Callable[[], str] | None = None,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Grad-CAM heatmaps (`imgcls explain`) for each input's predicted class, or for
    `class_name`, from the last convolutional block (or `layer`); method "gradcam",
    "hirescam" or "auto" (Grad-CAM where the map is globally pooled, else HiResCAM).
    Writes an overlay per image, grid.png and explain.json into `output` (default:
    RUN_DIR/explain) and returns explain.json's content with `folder`; unreadable inputs
    carry their `error`. When no input can be read: ImgclsError, before the model loads,
    and nothing written."""
    from imgcls_cli.commands.explain import nothing_explained, run_explain
    from imgcls_cli.commands.predict import ArrayInput, python_inputs, unreadable_records
    from imgcls_cli.rundir.load import open_run

    method = getattr(method, "value", method)
    methods = [choice.value for choice in ExplainMethod]
    if method not in methods:  # before the model loads
        raise UsageError(unknown_name_message("method", str(method), methods))
    items = python_inputs(inputs, read_stdin)
    if any(isinstance(item, ArrayInput) for item in items):
        raise UsageError(
            "explain draws its overlays over image files: give paths (save an image in "
            "memory first, e.g. PIL.Image.fromarray(array).save('x.png'))."
        )
    check_explain_target(model, output, class_name, layer, explained_folders(inputs, items))
    failed = unreadable_records(items)
    if failed is not None:  # nothing to draw: say why at once, write nothing
        raise nothing_explained([(r.path, r.error) for r in failed])
    run = open_run(Path(model) if model else None, api_reporter(reporter))
    return run_explain(run, items, Path(output) if output else None, class_name, layer, method)


def explained_folders(inputs: Any, items: list[Any]) -> list[Path]:
    """The folders explain's overlays must keep out of, as they would be read as images
    there: each folder given, and the folder of each file (a class folder, say), but the
    current one (where overlays of one's own photos may go)."""
    given = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    folders = [Path(p) for p in given if isinstance(p, (str, os.PathLike)) and Path(p).is_dir()]
    here = Path.cwd().resolve()
    parents = {Path(item.path).parent for item in items if item.error is None}
    return folders + sorted(parent for parent in parents if parent.resolve() != here)


def check_explain_target(
    model: Any,
    output: Any,
    class_name: str | None,
    layer: str | None = None,
    input_folders: list[Path] | None = None,
) -> None:
    """explain's output folder, --class and --layer, before the model loads (no
    TensorFlow). A refused --class or --layer names the run when it was not given. The
    output keeps apart from the folders explained and the run's training data: overlays
    there would be read as images of them."""
    from imgcls_cli.commands.explain import check_layer_name, check_output
    from imgcls_cli.rundir.load import find_run_dir, model_file, refuse_export

    given = Path(model) if model else None
    run_dir, latest = find_run_dir(given)
    refuse_export(run_dir, "Grad-CAM needs the Keras model")
    folder = Path(output) if output is not None else run_dir / rundir.EXPLAIN_DIR
    rundir.check_apart_from_run_data(
        folder, run_dir, input_folders or [], "the folder of the images {}"
    )
    check_output(folder)
    try:
        if class_name is not None:
            names = rundir.read_labels(run_dir)
            if class_name not in names:
                raise UsageError(unknown_name_message("class", class_name, names))
        if layer is not None:
            check_layer_name(model_file(run_dir, given), layer)
    except UsageError as error:
        if not latest:
            raise
        raise UsageError(f"{error} (Run: {run_dir}, the latest; --model names another.)") from None


@library_call
def export(
    run_dir: str | Path,
    *,
    output: str | Path | None = None,
    force: bool = False,
    reporter: Reporter | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Export a run's model (`imgcls export`): options as ExportConfig (format, quantize,
    calibration, min_agreement, check, dataset, data, data_dir, batch_size, seed).
    Returns export.json's content with `folder`, where it was written; when the parity
    check failed, `parity.passed` is false and an ImgclsWarning says so (`imgcls export`
    then exits 1)."""
    from imgcls_cli.commands.export import parity_shortfall, run_export
    from imgcls_cli.config import ExportConfig, from_dict

    check_flag("force", force)
    reporter = api_reporter(reporter)
    config = from_dict(ExportConfig, paths_as_text(options), where="export options")
    result = run_export(Path(run_dir), config, reporter, Path(output) if output else None, force)
    shortfall = parity_shortfall(result.document, result.folder)
    if shortfall and not CLI_SPELLING.get():  # the CLI exits 1 on it
        reporter.warning(shortfall)
    return {"folder": str(result.folder), **result.document}


@library_call
def benchmark(
    run_dir: str | Path,
    *,
    batch_sizes: list[int] | tuple[int, ...] = (1, 32),
    runs_per_size: int = 20,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Time model.keras and every export of a run (`imgcls benchmark`); returns what
    `imgcls benchmark --json` prints."""
    from imgcls_cli.commands.benchmark import benchmark_run

    sizes = [int(size) for size in batch_sizes]
    if not sizes or min(sizes) < 1:
        raise UsageError(f"--batch-size must be at least 1 (each of them); got {sizes}.")
    if runs_per_size < 1:
        raise UsageError(f"--runs must be at least 1; got {runs_per_size}.")
    return benchmark_run(Path(run_dir), sizes, runs_per_size, api_reporter(reporter))


@library_call
def serve(
    model: str | Path | None = None,
    *,
    api_key: str | None = None,
    reporter: Reporter | None = None,
    **options: Any,
) -> None:
    """Serve a run or an export over HTTP (`imgcls serve`) until SIGTERM or Ctrl-C: the
    page at /, POST /predict (records as `predict --json` prints them), POST /explain,
    TF Serving's REST API under /v1/models/NAME, /health, /ready and /metrics. `api_key`
    (default: the IMGCLS_API_KEY environment variable) is then needed by every endpoint
    but /health and the page. Options: host ("127.0.0.1"), port (8080; 0 picks a free
    one), name, top_k (3), max_batch (32), batch_timeout_ms (5), max_upload_mb (20),
    max_megapixels (50), decode_threads (4), quiet (False)."""
    from imgcls_cli.commands.serve import bind, check_serve_extra, is_loopback, run_serve
    from imgcls_cli.config import ServeConfig, from_dict
    from imgcls_cli.errors import RunDirError
    from imgcls_cli.rundir.load import describe_run, find_run_dir, load_run

    config = from_dict(ServeConfig, options, where="serve options")
    check_serve_extra()
    if model is not None and not Path(model).exists():
        raise RunDirError(
            f"{model} does not exist; give a run directory (such as "
            "runs/train-digits-convnet), its model.keras, or an export folder."
        )
    given = Path(model) if model else None
    run_dir, picked = find_run_dir(given, given_as="the run: imgcls serve RUN_DIR")  # before TF
    key = api_key if api_key is not None else os.environ.get("IMGCLS_API_KEY") or None
    reporter = api_reporter(reporter)
    if picked:
        reporter.info(f"Using the latest run: {describe_run(run_dir)}")
    sock = bind(config.host, config.port)  # first: a refused address is the only line
    if not is_loopback(config.host) and key is None:
        reporter.warning(
            f"Listening on {config.host} without an API key: anyone who can reach this "
            "machine can use the model."
        )
    run_serve(
        run_dir,
        lambda: load_run(run_dir, given),
        sock,
        config,
        key,
        log=reporter.info,
        info=reporter.info,
    )


@library_call
def augment_preview(
    files: list[str | Path] | None = None,
    *,
    output: str | Path = "augment-preview.png",
    samples: int = 4,
    variants: int = 5,
    seed: int = 42,
    reporter: Reporter | None = None,
    **options: Any,
) -> Path:
    """Draw the augmentation (`imgcls augment-preview`) as a PNG grid of images and their
    augmented versions: `files`, or samples of --dataset/--data (options: dataset, data,
    data_dir, image_size and the augmentation options of train). Returns the PNG's path."""
    from imgcls_cli.commands.augment_preview import check_files, run_augment_preview
    from imgcls_cli.config import AugmentConfig, DataConfig, from_dict
    from imgcls_cli.options import split_augment_options, with_default_source

    options, augment = split_augment_options(paths_as_text(options))
    augment_config = from_dict(AugmentConfig, augment, where="augmentation options")
    if files and (options.get("dataset") is not None or options.get("data") is not None):
        raise UsageError("Give image files or --dataset/--data, not both.")
    if files:
        source: Any = [Path(f) for f in files]
        check_files(source)  # before TensorFlow
    else:
        source = from_dict(DataConfig, with_default_source(options), where="data options")
        if source.dataset is not None:
            check_dataset(source.dataset, source.data_dir, source.manual_dir)  # no TensorFlow
        # a picture inside the image folder would be read as one of its images
        rundir.check_apart_from_data(Path(output), source.protected_paths)
    return run_augment_preview(
        source,
        image_size=options.get("image_size"),
        augment=augment_config,
        samples=samples,
        variants=variants,
        seed=seed,
        output=Path(output),
        reporter=api_reporter(reporter),
    )


@library_call
def inspect(
    *,
    seed: int = 42,
    throughput: bool = False,
    batch_size: int = 64,
    reporter: Reporter | None = None,
    **options: Any,
) -> dict[str, Any]:
    """The data report (`imgcls inspect`): classes and counts per split, sizes, modes,
    formats, unreadable files, exact duplicates; with `throughput`, one timed pass of the
    training input pipeline. Options: the data options of train (dataset, data, data_dir,
    image_size, val_split, test_split, cache). Returns what `inspect --json` prints."""
    from imgcls_cli.commands.inspect import inspect_data
    from imgcls_cli.config import DataConfig, from_dict
    from imgcls_cli.options import with_default_source

    options = with_default_source(paths_as_text(options))
    config = from_dict(DataConfig, options, where="data options")
    if config.dataset is not None:
        check_dataset(config.dataset, config.data_dir, config.manual_dir)
    return inspect_data(
        config,
        api_reporter(reporter),
        seed=seed,
        throughput=throughput,
        batch_size=batch_size,
    )
