"""The Typer app: each command's own options and a call into `api`, nothing else.

Options that several commands share are declared once, in cli_options.py. A command passes
on only the options given on its command line (see `given`), so the library fills in the
same defaults for the CLI and for Python callers. Heavy modules are imported lazily.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from . import __version__, runtime
from .cli_options import (
    AUGMENT_OPTIONS,
    DATA,
    DATA_OPTIONS,
    LR_FIND_OPTIONS,
    OUTPUT,
    PREVIEW_DATA_OPTIONS,
    RUN_FLAGS,
    RUN_OPTIONS,
    SCALE_OPTIONS,
    TRAINING_OPTIONS,
    BatchSize,
    JsonReport,
    ModelOption,
    TrainBatchSize,
    option,
    training_option,
    with_options,
)
from .config import (
    EvalSplit,
    EvaluateConfig,
    ExportConfig,
    ExportFormat,
    FinetuneConfig,
    LrFindConfig,
    PredictConfig,
    Quantize,
    Schedule,
    TrainConfig,
)
from .errors import ImgclsError, UsageError

app = typer.Typer(
    name="imgcls",
    help="Image classification with TensorFlow and Keras: train, fine-tune, evaluate, predict.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="rich",
)


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"imgcls {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=version_callback, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks and TensorFlow's own log messages.")
    ] = False,
) -> None:
    """Image classification with TensorFlow and Keras."""
    runtime.set_debug(debug)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn library errors into one red line and an exit code (no traceback unless --debug)."""
    from . import console

    try:
        yield
    except ImgclsError as error:
        if runtime.debugging():
            raise
        console.error(str(error))
        raise typer.Exit(error.exit_code) from None
    except KeyboardInterrupt:
        console.error("Interrupted.")
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort):
        raise
    except BrokenPipeError:  # stdout's reader stopped early (`| head`): a normal end
        with console.closed_stdout_ends_quietly():
            raise
    except OSError as error:  # unwritable output, full disk, vanished files
        if runtime.debugging():
            raise
        where = f": {error.filename}" if error.filename else ""
        console.error(f"{error.strerror or error}{where}. Check the path and free space.")
        raise typer.Exit(1) from None
    except Exception as error:
        if runtime.debugging():
            raise
        console.error(
            f"Unexpected {type(error).__name__}: {error}. Run again with --debug for the traceback."
        )
        raise typer.Exit(1) from None


def given(ctx: typer.Context, *leave_out: str) -> dict[str, Any]:
    """The options given on the command line: the library fills in the rest."""
    values = {}
    for name, value in ctx.params.items():
        source = ctx.get_parameter_source(name)
        # By name: Typer releases differ in where ParameterSource lives.
        if name not in leave_out and source is not None and source.name == "COMMANDLINE":
            values[name] = value
    return values


def arch_help() -> str:
    from .models import ARCHITECTURES

    return "Architecture: " + "; ".join(
        f"[bold]{n}[/]: {d}" for n, (_, _, d) in ARCHITECTURES.items()
    )


def backbone_help() -> str:
    from .models.backbones import BACKBONES

    return "Pretrained backbone: " + "; ".join(
        f"[bold]{name}[/]: {spec.description}" for name, spec in BACKBONES.items()
    )


# train and finetune: data options first in --help, then each command's own, then the rest.
with_run_options = with_options(
    before=[DATA_OPTIONS], after=[TRAINING_OPTIONS, AUGMENT_OPTIONS, SCALE_OPTIONS, RUN_OPTIONS]
)


@app.command()
@with_run_options
def train(
    ctx: typer.Context,
    arch: training_option(str, arch_help()) = TrainConfig.arch,
    epochs: training_option(
        Optional[int],
        "Training epochs. Default: 10, or 20 when the training split has fewer than 512 "
        "images (an epoch of few images is a few steps).",
    ) = TrainConfig.epochs,
    batch_size: TrainBatchSize = TrainConfig.batch_size,
    lr: training_option(
        str,
        "Learning rate, used as given whatever the replica count (see --scale-lr); or auto: "
        "sweep as `imgcls lr-find` does, on this model and data, then train at its "
        "suggestion (config.json records both).",
    ) = str(TrainConfig.lr),
    schedule: training_option(
        Optional[Schedule],
        "Learning-rate schedule. Default: cosine (constant for simplecnn, its classic recipe).",
    ) = TrainConfig.schedule,
    warmup_epochs: training_option(
        Optional[int],
        "Epochs of linear learning-rate warmup from 0. Default: 1 when there are 3 epochs "
        "or more, else 0.",
    ) = TrainConfig.warmup_epochs,
    **shared: Any,
) -> None:
    """Train a CNN from scratch on a TFDS dataset, a folder of images, or the embedded digits."""
    run_and_report(ctx)


@app.command()
@with_run_options
def finetune(
    ctx: typer.Context,
    backbone: training_option(str, backbone_help()) = FinetuneConfig.backbone,
    weights: training_option(
        str,
        "imagenet (Keras' cache ~/.keras/models, downloaded when missing), none (random), "
        "or a weights file saved from the backbone (include_top=False).",
    ) = FinetuneConfig.weights,
    head_epochs: training_option(
        int, "Phase 1: epochs training the new head on the frozen backbone."
    ) = FinetuneConfig.head_epochs,
    epochs: training_option(
        int, "Phase 2: epochs fine-tuning the unfrozen layers."
    ) = FinetuneConfig.epochs,
    unfreeze: training_option(
        str, "Phase 2 trains the top N backbone layers, or 'all'; 0 skips phase 2."
    ) = str(FinetuneConfig.unfreeze),
    lr: training_option(float, "Phase 1 learning rate.") = FinetuneConfig.lr,
    finetune_lr: training_option(
        Optional[float], "Phase 2 learning rate. Default: --lr / 10."
    ) = None,
    batch_size: BatchSize = FinetuneConfig.batch_size,
    dropout: training_option(float, "Dropout before the new classifier.") = FinetuneConfig.dropout,
    **shared: Any,
) -> None:
    """Fine-tune an ImageNet backbone (MobileNetV2, EfficientNetB0, ResNet50): train a new
    head on the frozen backbone, then unfreeze its top layers at a lower learning rate."""
    run_and_report(ctx)


def run_and_report(ctx: typer.Context) -> None:
    """Train or finetune with the options given, then print the result; an interruption
    says how to resume."""
    import shlex

    from . import console

    command, flags = ctx.info_name or "train", ctx.params
    with user_errors():
        from .api import execute_run, prepare_run
        from .training import TrainingInterrupted

        config, run_dir, resuming = prepare_run(
            command,
            given(ctx, *RUN_FLAGS),
            flags["output"],
            flags["force"],
            flags["resume"],
            flags["config_file"],
        )
        try:
            run = execute_run(config, run_dir, resuming, console.RichReporter(flags["quiet"]))
        except TrainingInterrupted as stop:
            console.error(
                f"Interrupted at epoch {stop.epoch}, step {stop.step}; checkpoint saved. "
                f"Resume with: imgcls {command} --resume {shlex.quote(str(run_dir))}"
            )
            raise typer.Exit(stop.exit_code) from None
        fingerprint = run.metrics["weights_fingerprint"]
        if not run.is_chief:
            console.out.print(
                f"Worker done (weights {fingerprint}); the chief writes {console.escape(run.path)}",
                soft_wrap=True,
            )
            return
        if not flags["quiet"]:
            console.out.print(console.metrics_table(run.metrics))
        console.out.print(
            f"Run saved to [bold]{console.escape(run.path)}[/] (weights {fingerprint})",
            soft_wrap=True,
        )


@app.command("lr-find")
@with_options(before=[DATA_OPTIONS], after=LR_FIND_OPTIONS)
def lr_find(
    ctx: typer.Context,
    arch: training_option(str, arch_help()) = TrainConfig.arch,
    batch_size: TrainBatchSize = TrainConfig.batch_size,
    start_lr: training_option(float, "The sweep's first learning rate.") = LrFindConfig.start_lr,
    end_lr: training_option(
        float, "The sweep's last learning rate (unless the loss diverges first)."
    ) = LrFindConfig.end_lr,
    steps: training_option(
        int, "Training steps of the sweep, the rate growing by the same factor each step."
    ) = LrFindConfig.steps,
    output: Annotated[
        Optional[Path],
        option(
            "Write lr_find.png (the loss against the rate) and lr_find.json into this "
            "folder. Default: write nothing.",
            panel=OUTPUT,
        ),
    ] = None,
    quiet: Annotated[bool, option("No progress output.", "--quiet", "-q", panel=OUTPUT)] = False,
    json_output: JsonReport = False,
    **shared: Any,
) -> None:
    """Find a learning rate for train: from the model's initial weights, train a few hundred
    steps as train would while the rate grows exponentially, and suggest a rate on the
    loss's longest descent (fastai's valley; the steepest descent too). Nothing of the
    model is kept: `imgcls train --lr auto` runs the same sweep itself."""
    import json

    from . import console

    with user_errors():
        from .api import lr_find as sweep

        options = given(ctx, "output", "quiet", "json_output")
        document = sweep(output=output, reporter=console.RichReporter(quiet), **options)
        if json_output:
            console.write_line(json.dumps(document, indent=2, allow_nan=False))
            return
        console.print_result(console.lr_find_table(document))
        if document["suggested_lr"] is None:
            raise ImgclsError(
                f"No learning rate to suggest: the loss did not fall over "
                f"{document['steps']} steps; try a lower --start-lr or more --steps."
            )
        if output is not None:
            console.info(f"Wrote lr_find.png, lr_find.json to {output}")
        elif not quiet and console.err.is_terminal:
            console.info("Pass --output DIR for the plot (lr_find.png) and every step's loss.")


@app.command("augment-preview")
@with_options(before=[PREVIEW_DATA_OPTIONS], after=[AUGMENT_OPTIONS])
def augment_preview(
    ctx: typer.Context,
    files: Annotated[
        Optional[list[Path]],
        typer.Argument(
            metavar="IMAGE...",
            help="Image files to preview, instead of --dataset or --data.",
            show_default=False,
        ),
    ] = None,
    samples: Annotated[
        int, option("Source images (rows), from --dataset or --data; at most 64.", panel=OUTPUT)
    ] = 4,
    variants: Annotated[
        int, option("Augmented versions of each image (columns); at most 64.", panel=OUTPUT)
    ] = 5,
    seed: Annotated[
        int, option("Random seed: picks the samples and drives the augmentation.", panel=OUTPUT)
    ] = 42,
    output: Annotated[Path, option("The PNG to write.", panel=OUTPUT)] = Path(
        "augment-preview.png"
    ),
    **shared: Any,
) -> None:
    """Draw a PNG grid of images and augmented versions of them, to check an augmentation
    before training with it: one row per image, the original first."""
    from . import console

    with user_errors():
        from .api import augment_preview as preview

        options = given(ctx, "files", "samples", "variants", "seed", "output")
        path = preview(
            files,
            output=output,
            samples=samples,
            variants=variants,
            seed=seed,
            reporter=console.RichReporter(),
            **options,
        )
        console.out.print(str(path), soft_wrap=True, markup=False)


@app.command()
def evaluate(
    ctx: typer.Context,
    model: ModelOption = None,
    dataset: Annotated[
        Optional[str],
        option(
            "Evaluate on this TFDS dataset (or 'digits') instead of the run's own data.",
            panel=DATA,
        ),
    ] = None,
    data: Annotated[
        Optional[Path],
        option(
            "Evaluate on a folder with one sub-folder per class (class names as in the run).",
            panel=DATA,
        ),
    ] = None,
    data_dir: Annotated[
        Optional[Path], option("TFDS data_dir (default: the run's).", panel=DATA)
    ] = None,
    split: Annotated[
        Optional[EvalSplit],
        option(
            "Which part of the data. Default: test (carved the same way as in training); "
            "'all' for a --data folder without a test/ folder.",
            panel=DATA,
        ),
    ] = None,
    top_k: Annotated[
        Optional[int],
        option("Also report top-K accuracy. Default: 5 when there are more than 5 classes."),
    ] = None,
    batch_size: Annotated[int, option("Images per batch.")] = EvaluateConfig.batch_size,
    mistakes: Annotated[
        int, option("How many of the most confident mistakes to list (folder data).")
    ] = EvaluateConfig.mistakes,
    min_accuracy: Annotated[
        Optional[float],
        option("CI gate: exit with code 1 when accuracy is below this fraction (e.g. 0.9)."),
    ] = None,
    explain: Annotated[
        bool,
        option(
            "Draw Grad-CAM heatmaps (for the predicted class) on the galleries of mistakes "
            "and top losses (folder data).",
            "--explain",
            panel=OUTPUT,
        ),
    ] = False,
    output: Annotated[
        Optional[Path],
        option("Where to write the report files. Default: the run directory.", panel=OUTPUT),
    ] = None,
    json_output: JsonReport = False,
) -> None:
    """Score a trained model: loss, accuracy, per-class precision/recall/F1, confusion matrix,
    calibration; writes evaluation.json, confusion_matrix.csv/.png (and for folders the
    mistakes and the top losses, by loss, as galleries)."""
    import json

    from . import console

    with user_errors():
        from .api import evaluate as score
        from .evaluate import accuracy_shortfall
        from .runs import REPORT_FILES

        options = given(ctx, "model", "output", "json_output")
        report = score(model, output=output, reporter=console.RichReporter(), **options)
        for item in report["unreadable"]:
            console.warning(f"Left out {item['path']} ({item['reason']}): it could not be read.")
        if json_output:
            console.write_line(json.dumps(report, indent=2))
        else:
            console.print_evaluation(report)
            names = [*REPORT_FILES, *report["mistakes_files"]]
            console.info(f"Wrote {', '.join(names)} to {output or report['model']}")
        shortfall = accuracy_shortfall(report, options.get("min_accuracy"))
        if shortfall:
            raise ImgclsError(shortfall)


@app.command()
def predict(
    ctx: typer.Context,
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Image files, folders (searched recursively), glob patterns in quotes, "
            "or - to read paths from stdin.",
            show_default=False,
        ),
    ],
    model: ModelOption = None,
    top_k: Annotated[int, option("How many classes to show per image.")] = PredictConfig.top_k,
    tta: Annotated[
        bool,
        option(
            "Average over each image and its horizontal flip (skipped for models trained "
            "without horizontal flips).",
            "--tta",
        ),
    ] = False,
    batch_size: Annotated[int, option("Images per batch.")] = PredictConfig.batch_size,
    json_output: Annotated[
        bool,
        option(
            "One JSON object per line: path, label, confidence, top_k, error.",
            "--json",
            panel=OUTPUT,
        ),
    ] = False,
    csv_output: Annotated[bool, option("CSV with a header row.", "--csv", panel=OUTPUT)] = False,
) -> None:
    """Classify images with a trained model. Exit code 1 when any input could not be read."""
    import sys

    from . import console

    with user_errors():
        if json_output and csv_output:
            raise UsageError("Give at most one of --json and --csv.")
        from .api import open_predictions

        options = given(ctx, "inputs", "model", "json_output", "csv_output")
        predictions = open_predictions(
            model, inputs, read_stdin=sys.stdin.read, reporter=console.RichReporter(), **options
        )
        if predictions.tta_skipped:
            console.warning(f"--tta skipped: {predictions.tta_skipped}.")
        records, k = predictions.records, predictions.top_k
        if json_output:
            failed = console.write_json_lines(records)
        elif csv_output:
            failed = console.write_csv_rows(records, k)
        else:
            shown = list(records)
            console.print_result(console.predictions_table(shown, k))
            failed = sum(p.error is not None for p in shown)
        if failed:
            count = len(predictions.inputs)
            raise ImgclsError(f"{failed} of {count} input(s) could not be read; see above.")


@app.command()
def explain(
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="IMAGES...",
            help="Image files, folders (searched recursively), glob patterns in quotes, "
            "or - to read paths from stdin.",
            show_default=False,
        ),
    ],
    model: ModelOption = None,
    class_name: Annotated[
        Optional[str],
        option("Explain this class instead of each image's predicted class.", "--class"),
    ] = None,
    layer: Annotated[
        Optional[str],
        option("The layer to read (name or path). Default: the last convolutional block."),
    ] = None,
    method: Annotated[
        str,
        option(
            "gradcam, hirescam (gradients kept per position: faithful where the feature map "
            "is flattened into the classifier, as in simplecnn and convnet), or auto: gradcam "
            "where the map is globally pooled (resnet8, every backbone), else hirescam."
        ),
    ] = "auto",
    output: Annotated[
        Optional[Path],
        option(
            "Folder for the overlays, grid.png and explain.json. Default: RUN_DIR/explain "
            "(an earlier explanation there is replaced).",
            panel=OUTPUT,
        ),
    ] = None,
    json_output: JsonReport = False,
) -> None:
    """Show where the model looks: Grad-CAM heatmaps over each image for its predicted
    class, one overlay PNG per image and a grid. Exit code 1 when any input could not be
    read."""
    import json
    import sys

    from . import console

    with user_errors():
        from .api import explain as run_explain

        document = run_explain(
            model,
            inputs,
            class_name=class_name,
            layer=layer,
            method=method,
            output=output,
            read_stdin=sys.stdin.read,
            reporter=console.RichReporter(),
        )
        if json_output:
            console.write_line(json.dumps(document, indent=2))
        else:
            console.print_result(console.explain_table(document))
            console.info(f"Wrote {len(document['files'])} file(s) to {document['folder']}")
        failed = sum(item["error"] is not None for item in document["images"])
        if failed:
            count = len(document["images"])
            raise ImgclsError(f"{failed} of {count} input(s) could not be read; see above.")


@app.command()
@with_options(before=[DATA_OPTIONS])
def inspect(
    ctx: typer.Context,
    seed: Annotated[
        int, option("Random seed: carves val/test as `train --seed` does.")
    ] = TrainConfig.seed,
    throughput: Annotated[
        bool,
        option(
            "Also time one pass of the training input pipeline (at --image-size, --cache).",
            "--throughput",
        ),
    ] = False,
    batch_size: Annotated[int, option("Images per batch, for --throughput.")] = 64,
    json_output: JsonReport = False,
    **shared: Any,
) -> None:
    """Report what a dataset holds before training on it: classes and counts per split, image
    sizes, modes and formats, unreadable files, exact duplicates and train/test leaks."""
    import json

    from . import console

    with user_errors():
        from .api import inspect as inspect_data

        options = given(ctx, "json_output")
        report = inspect_data(reporter=console.RichReporter(), **options)
        if json_output:
            console.write_line(json.dumps(report, indent=2))
        else:
            console.print_data_report(report)


@app.command()
def export(
    ctx: typer.Context,
    run_dir: Annotated[
        Path, typer.Argument(help="The run directory to export.", show_default=False)
    ],
    format: Annotated[
        ExportFormat, option("savedmodel (TF Serving), tflite (phones, edge), onnx.")
    ] = ExportConfig.format,
    quantize: Annotated[
        Quantize,
        option(
            "TFLite only: fp16 weights, dynamic (int8 weights), or int8 (full integer, "
            "calibrated on training images)."
        ),
    ] = ExportConfig.quantize,
    calibration: Annotated[
        int, option("Training images that calibrate --quantize int8 (seeded sample).")
    ] = ExportConfig.calibration,
    min_agreement: Annotated[
        Optional[float],
        option(
            "Exit 1 when the export's top-1 answers agree with model.keras on less than "
            "this fraction of held-out images. Default: 0.99, and 0.97 for int8."
        ),
    ] = None,
    check: Annotated[
        bool,
        option("Check the export against model.keras on held-out data.", "--check/--no-check"),
    ] = ExportConfig.check,
    dataset: Annotated[
        Optional[str],
        option("Check on this TFDS dataset instead of the run's test split.", panel=DATA),
    ] = None,
    data: Annotated[
        Optional[Path],
        option("Check on this folder (one sub-folder per class) instead.", panel=DATA),
    ] = None,
    data_dir: Annotated[
        Optional[Path], option("TFDS data_dir (default: the run's).", panel=DATA)
    ] = None,
    batch_size: Annotated[int, option("Images per batch.")] = ExportConfig.batch_size,
    output: Annotated[
        Optional[Path],
        option("Export folder. Default: RUN_DIR/export/<format>[-<quantize>].", panel=OUTPUT),
    ] = None,
    force: Annotated[
        bool,
        option("Replace an earlier export in the folder (nothing else).", "--force", panel=OUTPUT),
    ] = False,
    json_output: JsonReport = False,
) -> None:
    """Export a trained model to SavedModel, TFLite (float, fp16, dynamic, int8) or ONNX, and
    check that it answers like model.keras; writes the artifact, labels.json, export.json."""
    import json

    from . import console

    with user_errors():
        from .api import export as export_run
        from .export.command import parity_shortfall

        options = given(ctx, "run_dir", "output", "force", "json_output")
        document = export_run(
            run_dir, output=output, force=force, reporter=console.RichReporter(), **options
        )
        if json_output:
            console.write_line(json.dumps(document, indent=2))
        else:
            console.print_result(console.export_table(document))
            console.info(
                f"Wrote {document['artifact']}, labels.json, export.json to {document['folder']}"
            )
        shortfall = parity_shortfall(document, Path(document["folder"]))
        if shortfall:
            raise ImgclsError(shortfall)


@app.command()
def benchmark(
    run_dir: Annotated[
        Path, typer.Argument(help="The run directory (its exports are found in it).")
    ],
    batch_sizes: Annotated[str, option("Batch sizes to time, comma-separated.")] = "1,32",
    runs: Annotated[int, option("Timed calls per batch size (after 3 warm-up calls).")] = 20,
    json_output: JsonReport = False,
) -> None:
    """Time model.keras and each export of a run on this machine: p50/p95 latency per batch
    size, images/s, file size, parameters, FLOPs per image and held-out accuracy."""
    import json

    from . import console

    with user_errors():
        from .api import benchmark as time_models

        try:
            sizes = [int(part) for part in batch_sizes.split(",") if part.strip()]
        except ValueError:
            raise UsageError(
                "--batch-sizes takes whole numbers separated by commas, e.g. 1,32; "
                f"got {batch_sizes!r}."
            ) from None
        report = time_models(
            run_dir, batch_sizes=sizes, runs_per_size=runs, reporter=console.RichReporter()
        )
        if json_output:
            console.write_line(json.dumps(report, indent=2))
        else:
            console.print_result(console.benchmark_table(report))


def main() -> None:
    app()
