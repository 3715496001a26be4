"""The commands that use a trained model: evaluate, predict, explain, inspect (the data),
export, benchmark. Each declares its own options and calls into `api`, nothing else."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from imgcls_cli.cli.invoke import given, user_errors
from imgcls_cli.cli.options import (
    DATA,
    DATA_OPTIONS,
    OUTPUT,
    TABLE_OPTIONS,
    JsonReport,
    KerasModelOption,
    ModelOption,
    option,
    with_options,
)
from imgcls_cli.config import (
    EvalSplit,
    EvaluateConfig,
    ExplainMethod,
    ExportConfig,
    ExportFormat,
    PredictConfig,
    Quantize,
    ServeConfig,
    TrainConfig,
)
from imgcls_cli.errors import ImgclsError, UsageError

# The options of CSV label files and Hugging Face datasets, as train declares them.
TABLE_HELP = {name: typing.get_args(kind)[1] for name, kind, _ in TABLE_OPTIONS}


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
            "Evaluate on a folder with one sub-folder per class, or a CSV label file (class "
            "names as in the run).",
            panel=DATA,
        ),
    ] = None,
    data_dir: Annotated[
        Optional[Path], option("TFDS data_dir (default: the run's).", panel=DATA)
    ] = None,
    images: Annotated[Optional[Path], TABLE_HELP["images"]] = None,
    path_column: Annotated[Optional[str], TABLE_HELP["path_column"]] = None,
    label_column: Annotated[Optional[str], TABLE_HELP["label_column"]] = None,
    image_column: Annotated[Optional[str], TABLE_HELP["image_column"]] = None,
    revision: Annotated[Optional[str], TABLE_HELP["revision"]] = None,
    split: Annotated[
        Optional[EvalSplit],
        option(
            "Which part of the data: train, val, test or all. Default: test (carved the "
            "same way as in training); all for a --data folder without a test/ folder.",
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
        option(
            "CI gate: exit with code 1 when accuracy is below this fraction (e.g. 0.9). "
            "Default: off."
        ),
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
        option(
            "Where to write the report files. Default: the run directory (for an export "
            "folder, FOLDER-evaluation beside it).",
            panel=OUTPUT,
        ),
    ] = None,
    json_output: JsonReport = False,
) -> None:
    """Score a trained model: loss, accuracy, per-class precision/recall/F1, confusion matrix,
    calibration; writes evaluation.json, confusion_matrix.csv/.png (and for folders the
    mistakes and the top losses, by loss, as galleries)."""
    import json

    from imgcls_cli.cli import console

    with user_errors():
        from imgcls_cli.api import evaluate as score
        from imgcls_cli.commands.evaluate import accuracy_shortfall, default_report_dir
        from imgcls_cli.rundir import REPORT_FILES

        options = given(ctx, "model", "output", "json_output")
        report = score(model, output=output, reporter=console.RichReporter(), **options)
        for item in report["unreadable"]:
            console.warning(f"Left out {item['path']} ({item['reason']}): it could not be read.")
        if json_output:
            console.write_line(json.dumps(report, indent=2))
        else:
            console.print_evaluation(report)
            names = [*REPORT_FILES, *report["mistakes_files"]]
            folder = output or default_report_dir(Path(report["model"]))
            console.info(f"Wrote {', '.join(names)} to {folder}")
        shortfall = accuracy_shortfall(report, options.get("min_accuracy"))
        if shortfall:
            raise ImgclsError(shortfall)


def predict(
    ctx: typer.Context,
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

    from imgcls_cli.cli import console

    with user_errors():
        if json_output and csv_output:
            raise UsageError("Give at most one of --json and --csv.")
        from imgcls_cli.api import open_predictions

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
            failed = sum(p.error is not None for p in shown)
            if shown and failed == len(shown):  # a table of reasons alone: one line instead
                raise nothing_predicted([(p.path, p.error) for p in shown])
            console.print_result(console.predictions_table(shown, k))
        if failed:
            raise inputs_failed(failed, len(predictions.inputs), json_output or csv_output)


def inputs_failed(failed: int, count: int, as_records: bool) -> ImgclsError:
    """predict's and explain's last line when some inputs could not be read. Records
    (--json, --csv) may have gone to a file, so only a table is "above"."""
    where = "their records say why" if as_records else "see above"
    return ImgclsError(f"{failed} of {count} input(s) could not be read; {where}.")


def nothing_predicted(failed: list[tuple[str, str]]) -> ImgclsError:
    """predict's one line, as a table would show, when no input could be read."""
    from imgcls_cli.reporting import nothing_read

    return ImgclsError(nothing_read(failed, "predicted"))


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
    model: KerasModelOption = None,
    class_name: Annotated[
        Optional[str],
        option("Explain this class instead of each image's predicted class.", "--class"),
    ] = None,
    layer: Annotated[
        Optional[str],
        option("The layer to read (name or path). Default: the last convolutional block."),
    ] = None,
    method: Annotated[
        ExplainMethod,
        option(
            "gradcam, hirescam (gradients kept per position: faithful where the feature map "
            "is flattened into the classifier, as in simplecnn and convnet), or auto: gradcam "
            "where the map is globally pooled (resnet8, every backbone), else hirescam."
        ),
    ] = ExplainMethod.auto,
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

    from imgcls_cli.cli import console

    with user_errors():
        from imgcls_cli.api import explain as run_explain

        document = run_explain(
            model,
            inputs,
            class_name=class_name,
            layer=layer,
            method=method.value,
            output=output,
            read_stdin=sys.stdin.read,
            reporter=console.RichReporter(),
        )
        if json_output:
            console.write_line(json.dumps(document, indent=2))
        else:
            console.print_result(console.explain_table(document))
            overlays = sum(record["file"] is not None for record in document["images"])
            written = f"{overlays} overlay" + ("s" if overlays != 1 else "")
            console.info(f"Wrote {written}, grid.png and explain.json to {document['folder']}")
        failed = sum(item["error"] is not None for item in document["images"])
        if failed:
            raise inputs_failed(failed, len(document["images"]), json_output)


@with_options(before=[DATA_OPTIONS])
def inspect(
    ctx: typer.Context,
    seed: Annotated[
        int, option("Random seed: carves val/test as train --seed does.")
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

    from imgcls_cli.cli import console

    with user_errors():
        from imgcls_cli.api import inspect as inspect_data

        options = given(ctx, "json_output")
        report = inspect_data(reporter=console.RichReporter(), **options)
        if json_output:
            console.write_line(json.dumps(report, indent=2))
        else:
            console.print_data_report(report)


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
            "TFLite only: none (float32), fp16 weights, dynamic (int8 weights), or int8 "
            "(full integer, calibrated on training images)."
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

    from imgcls_cli.cli import console

    with user_errors():
        from imgcls_cli.api import export as export_run
        from imgcls_cli.commands.export import parity_shortfall

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


def benchmark(
    run_dir: Annotated[
        Path, typer.Argument(help="The run directory (its exports are found in it).")
    ],
    batch_sizes: Annotated[
        list[int] | None,
        option(
            "A batch size to time; repeat it for several. Default: 1 and 32.",
            "--batch-size",
            "-b",
        ),
    ] = None,
    runs: Annotated[int, option("Timed calls per batch size (after 3 warm-up calls).")] = 20,
    json_output: JsonReport = False,
) -> None:
    """Time model.keras and each export of a run on this machine: p50/p95 latency per batch
    size, images/s, file size, parameters, FLOPs per image and held-out accuracy."""
    import json

    from imgcls_cli.cli import console

    with user_errors():
        from imgcls_cli.api import benchmark as time_models

        sizes = {"batch_sizes": batch_sizes} if batch_sizes else {}  # else the API's default
        report = time_models(run_dir, runs_per_size=runs, reporter=console.RichReporter(), **sizes)
        if json_output:
            console.write_line(json.dumps(report, indent=2))
        else:
            console.print_result(console.benchmark_table(report))


def serve(
    ctx: typer.Context,
    model: Annotated[
        Optional[Path],
        typer.Argument(
            metavar="MODEL",
            help="A run directory, its model.keras, or an export folder. Default: the latest "
            "run under ./runs.",
            show_default=False,
        ),
    ] = None,
    host: Annotated[
        str, option("Address to listen on; 0.0.0.0 for every network (use --api-key).")
    ] = ServeConfig.host,
    port: Annotated[int, option("Port to listen on (0: any free port).")] = ServeConfig.port,
    name: Annotated[
        Optional[str],
        option("Model name in TF Serving's URLs (/v1/models/NAME). Default: the run's folder."),
    ] = None,
    top_k: Annotated[int, option("Classes per image in /predict's answers.")] = ServeConfig.top_k,
    max_batch: Annotated[
        int, option("Most images in one model call (concurrent requests are gathered).")
    ] = ServeConfig.max_batch,
    batch_timeout_ms: Annotated[
        float, option("Longest wait for more images while other requests are decoding.")
    ] = ServeConfig.batch_timeout_ms,
    max_upload_mb: Annotated[
        float, option("Largest request body; larger ones get 413 before they are read.")
    ] = ServeConfig.max_upload_mb,
    max_megapixels: Annotated[
        float, option("Largest image (width x height), read from its header before decoding.")
    ] = ServeConfig.max_megapixels,
    decode_threads: Annotated[
        int, option("Threads that decode uploads.")
    ] = ServeConfig.decode_threads,
    api_key: Annotated[
        Optional[str],
        option(
            "Require `Authorization: Bearer KEY` on every endpoint but /health and the page.",
            envvar="IMGCLS_API_KEY",
            show_envvar=True,
        ),
    ] = None,
    quiet: Annotated[bool, option("No log line per request.", "--quiet", "-q")] = False,
) -> None:
    """Serve a model over HTTP: a page to try it, /predict, /explain, TF Serving's REST
    API, /health, /ready and /metrics. Stops on Ctrl-C or SIGTERM after answering the
    requests in flight."""
    from imgcls_cli.cli import console

    with user_errors():
        from imgcls_cli.api import serve as serve_model

        options = given(ctx, "model", "api_key")
        serve_model(model, api_key=api_key or None, reporter=console.RichReporter(), **options)
