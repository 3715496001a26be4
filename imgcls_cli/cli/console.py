"""Rich output: messages and progress on stderr, results on stdout."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table


class PipeSafeConsole(Console):
    """A Console whose reader may stop early (`imgcls train | head`): the rest of its
    output goes nowhere and the command carries on, where Rich's own handler exits 1 (a
    training cut short, a finished evaluate reported failed)."""

    def on_broken_pipe(self) -> None:
        import io
        import os
        import sys

        self.quiet = True
        stream = sys.stderr if self.stderr else sys.stdout
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
        except (AttributeError, OSError, io.UnsupportedOperation):
            pass  # a stream without a descriptor: quiet is enough


err = PipeSafeConsole(stderr=True, highlight=False)
out = PipeSafeConsole(highlight=False)


def error(message: str) -> None:
    err.print(f"[bold red]Error:[/] [red]{escape(message)}[/]", soft_wrap=True)


def stopped(message: str) -> None:
    """The user stopped the command (Ctrl-C, SIGTERM): said plainly, not as an error."""
    err.print(f"[bold yellow]{escape(message)}[/]", soft_wrap=True)


def warning(message: str) -> None:
    err.print(f"[yellow]Warning:[/] {escape(message)}", soft_wrap=True)


def info(message: str) -> None:
    err.print(escape(message), soft_wrap=True)


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(str(text))


def format_logs(logs: dict[str, float]) -> str:
    parts = [f"loss {logs['loss']:.4f}", f"acc {logs['accuracy']:.4f}"]
    if "val_loss" in logs:
        parts += [f"val_loss {logs['val_loss']:.4f}", f"val_acc {logs['val_accuracy']:.4f}"]
    if logs.get("images_per_second"):
        parts.append(f"{logs['images_per_second']:,.0f} img/s")
    return "  ".join(parts)


class RichReporter:
    """reporting.Reporter on the terminal: a bar per epoch, then a one-line summary; a bar
    while evaluating. Quiet: warnings only."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.progress: Progress | None = None
        self.task: Any = None
        self.epoch_label = ""

    def info(self, message: str) -> None:
        if not self.quiet:
            info(message)

    def warning(self, message: str) -> None:
        warning(message)

    def epoch_start(self, epoch: int, epochs: int, steps: int | None) -> None:
        self.epoch_label = f"Epoch {epoch}/{epochs}"
        if self.quiet or not err.is_terminal:  # logs and pipes get the epoch lines only
            return
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[logs]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task(self.epoch_label, total=steps, logs="")

    def step(self, step: int, logs: dict[str, float]) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=step, logs=format_logs(logs))

    def batches(self, done: int, total: int | None) -> None:
        """A transient bar (on a terminal) while evaluating; gone once done reaches total."""
        if self.quiet or not err.is_terminal:
            return
        if self.progress is None:
            self.progress = Progress(
                BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err, transient=True
            )
            self.progress.start()
            self.task = self.progress.add_task("", total=total)
        self.progress.update(self.task, completed=done, total=total)
        if total is not None and done >= total:
            self.stop_progress()

    def stop_progress(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def epoch_end(self, logs: dict[str, float]) -> None:
        self.stop_progress()
        if not self.quiet:
            line = f"{self.epoch_label}  {format_logs(logs)}  {logs.get('seconds', 0):.1f}s"
            err.print(line, soft_wrap=True)


def metrics_table(metrics: dict[str, Any]) -> Table:
    """The held-out scores (val, test); when nothing was held out, the saved model's
    scores on its sample of training images (nothing_held_out says what they are)."""
    from imgcls_cli.report.metrics import held_out_splits

    table = Table(title="Final metrics")
    table.add_column("split")
    table.add_column("loss", justify="right")
    table.add_column("accuracy", justify="right")
    table.add_column("images", justify="right")
    shown = held_out_splits(metrics) or [s for s in ("train_sample",) if s in metrics]
    for split in shown:
        m = metrics[split]
        name = "train (sample)" if split == "train_sample" else split
        table.add_row(name, f"{m['loss']:.4f}", f"{m['accuracy']:.2%}", str(m["examples"]))
    return table


def write_line(text: str) -> None:
    """A plain line on stdout for scripts: no markup, no wrapping."""
    import sys

    sys.stdout.write(text + "\n")


def percent(value: float) -> str:
    return f"{value:.2%}"


def evaluation_summary_table(report: dict[str, Any]) -> Table:
    table = Table(title=f"Evaluation on {report['data'].get('split', '?')} data")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("images", f"{report['examples']:,}")
    table.add_row("loss", f"{report['loss']:.4f}")
    table.add_row("accuracy", percent(report["accuracy"]))
    if "top_k" in report:
        table.add_row(f"top-{report['top_k']['k']} accuracy", percent(report["top_k"]["accuracy"]))
    table.add_row("expected calibration error", f"{report['expected_calibration_error']:.4f}")
    return table


def per_class_table(report: dict[str, Any]) -> Table:
    table = Table(title="Per class")
    for name in ("class", "precision", "recall", "F1", "support"):
        table.add_column(name, justify="left" if name == "class" else "right")

    def add(name: str, row: dict[str, Any], style: str | None = None) -> None:
        if row["recall"] is None:  # a class without images: no recall to measure
            precision = "" if row["precision"] is None else f"{row['precision']:.3f}"
            table.add_row(escape(name), precision, "no images", "", "0", style="dim")
            return
        scores = [f"{row[key]:.3f}" for key in ("precision", "recall", "f1")]
        table.add_row(escape(name), *scores, f"{row['support']:,}", style=style)

    for row in report["per_class"]:
        add(row["class"], row)
    table.add_section()
    add("macro average", report["macro_avg"], "bold")
    add("weighted average", report["weighted_avg"], "bold")
    return table


def confusion_table(report: dict[str, Any]) -> Table:
    names = report["confusion_matrix"]["labels"]
    table = Table(title="Confusion matrix (rows: true class, columns: predicted)")
    table.add_column("")
    for name in names:
        table.add_column(escape(name), justify="right")
    for row, (name, counts) in enumerate(zip(names, report["confusion_matrix"]["matrix"])):
        colour = ["green" if col == row else "red" for col in range(len(counts))]
        cells = [f"[{c}]{n}[/]" if n else "·" for c, n in zip(colour, counts)]
        table.add_row(escape(name), *cells)
    return table


def common_folder(paths: list[str]) -> tuple[str, list[str]]:
    """(the folder all paths share, each path below it): the part that tells images
    apart, whole, instead of a long shared prefix cut short by the terminal."""
    import os.path

    folders = [os.path.dirname(path) for path in paths]
    try:
        common = os.path.commonpath(folders) if folders else ""
    except ValueError:  # relative and absolute paths mixed
        return "", list(paths)
    return common, [os.path.relpath(path, common) if common else path for path in paths]


def add_path_column(table: Table, paths: list[str]) -> list[str]:
    """A "path" column of each path below the folder all share, which the table's caption
    names: at 80 columns a long shared prefix would fold the part that tells images apart
    (`img_1646.pn` / `g`). Returns the names to show, in order."""
    folder, names = common_folder(paths)
    if folder:
        table.caption = f"in {escape(folder)}"
    table.add_column("path", overflow="fold")
    return names


def mistakes_table(mistakes: list[dict[str, Any]], listed: int = 0, wrong: int = 0) -> Table:
    """The first of the `listed` mistakes mistakes.csv holds, out of `wrong` in all."""
    shown = ""
    if wrong > listed:  # --mistakes kept the most confident only
        shown = f"{len(mistakes)} of {wrong}; the {listed} most confident in mistakes.csv"
    elif listed > len(mistakes):
        shown = f"{len(mistakes)} of {listed}; all in mistakes.csv"
    title = "Most confident mistakes" + (f" ({shown})" if shown else "")
    table = Table(title=title)
    names = add_path_column(table, [mistake["path"] for mistake in mistakes])
    for name in ("true", "predicted", "confidence"):
        table.add_column(name, justify="right" if name == "confidence" else "left")
    for mistake, name in zip(mistakes, names):
        table.add_row(
            escape(name),
            escape(mistake["true"]),
            escape(mistake["predicted"]),
            percent(mistake["confidence"]),
        )
    return table


def print_evaluation(report: dict[str, Any], table_limit: int = 50, matrix_limit: int = 12) -> None:
    """The summary always; per-class scores and the matrix when they fit on a screen."""
    out.print(evaluation_summary_table(report))
    classes = len(report["per_class"])
    if classes <= table_limit:
        out.print(per_class_table(report))
    if classes <= matrix_limit:
        out.print(confusion_table(report))
    if report.get("mistakes"):
        wrong = report["examples"] - round(report["accuracy"] * report["examples"])
        out.print(mistakes_table(report["mistakes"][:10], len(report["mistakes"]), wrong))


def predictions_table(predictions: list[Any], top_k: int) -> Table:
    table = Table(title="Predictions")
    names = add_path_column(table, [prediction.path for prediction in predictions])
    table.add_column("label")
    table.add_column("confidence", justify="right")
    if top_k > 1:
        table.add_column(f"top {top_k}")
    for prediction, name in zip(predictions, names):
        if prediction.error is not None:
            cells = [escape(name), f"[red]{escape(prediction.error)}[/]", ""]
            table.add_row(*cells, *([""] if top_k > 1 else []))
            continue
        cells = [escape(name), escape(prediction.label), percent(prediction.confidence)]
        if top_k > 1:
            cells.append(", ".join(f"{escape(name)} {p:.1%}" for name, p in prediction.top_k))
        table.add_row(*cells)
    return table


def explain_table(document: dict[str, Any]) -> Table:
    """One row per input: its prediction, the class explained and the overlay file (or
    why the input could not be read); the title names the method and layer."""
    from imgcls_cli.report.gradcam import METHOD_NAMES

    method = METHOD_NAMES.get(document["method"], document["method"])
    table = Table(title=f"{method} ({escape(document['layer'])})")
    names = add_path_column(table, [item["path"] for item in document["images"]])
    table.add_column("label")
    table.add_column("confidence", justify="right")
    table.add_column("heatmap for")
    table.add_column("file", overflow="fold")  # the overlay's name in the explain folder
    for item, name in zip(document["images"], names):
        if item["error"] is not None:
            table.add_row(escape(name), f"[red]{escape(item['error'])}[/]", "", "", "")
            continue
        table.add_row(
            escape(name),
            escape(item["label"]),
            percent(item["confidence"]),
            escape(item["explained_class"]),
            escape(item["file"]),
        )
    return table


def write_json_lines(predictions: Iterator[Any]) -> int:
    """One JSON object per prediction, flushed as it comes; returns how many failed."""
    import json
    import sys

    failed = 0
    with closed_stdout_ends_quietly():
        for prediction in predictions:
            failed += prediction.error is not None
            sys.stdout.write(json.dumps(prediction.to_dict()) + "\n")
            sys.stdout.flush()
    return failed


def write_csv_rows(predictions: Iterator[Any], top_k: int) -> int:
    """CSV with a header, one row per prediction, flushed as it comes; returns how many
    failed."""
    import csv
    import sys

    failed = 0
    writer = None
    with closed_stdout_ends_quietly():
        for prediction in predictions:
            failed += prediction.error is not None
            row = prediction.to_row(top_k)
            if writer is None:
                writer = csv.DictWriter(sys.stdout, fieldnames=list(row), lineterminator="\n")
                writer.writeheader()
            writer.writerow(row)
            sys.stdout.flush()  # here, not at exit, where a closed pipe could not be handled
    return failed


def print_result(renderable: Any) -> None:
    """A table or text on stdout, ending quietly when the reader has gone (`| head`)."""
    import sys

    # Rendered first, then written here: a reader gone ends the command (exit 0), where
    # the consoles themselves carry on (PipeSafeConsole).
    with out.capture() as captured:
        out.print(renderable)
    with closed_stdout_ends_quietly():
        sys.stdout.write(captured.get())
        sys.stdout.flush()


@contextlib.contextmanager
def closed_stdout_ends_quietly() -> Iterator[None]:
    """A reader that stops early (`imgcls predict --json … | head -1`) closes the pipe:
    the normal end of a pipeline, so exit 0 with nothing on stderr, as ripgrep does.

    Stdout is pointed at os.devnull (the recipe in Python's signal docs), so the
    interpreter's final flush of what is still buffered cannot fail again.
    """
    import io
    import os
    import sys

    import typer

    try:
        yield
    except BrokenPipeError:
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (AttributeError, io.UnsupportedOperation):  # a stdout without a descriptor
            sys.stdout = open(os.devnull, "w")  # kept open until exit
        raise typer.Exit(0) from None


def print_data_report(report: dict[str, Any], shown: int = 10) -> None:
    """`imgcls inspect` in the terminal: classes, what the images are, problems found."""
    splits = list(report["split_sizes"])
    table = Table(
        title=f"Classes of {escape(report['data'].get('path') or report['data'].get('name', ''))}"
    )
    table.add_column("class")
    for split in splits:
        table.add_column(split, justify="right")
    for name, counts in report["class_counts"].items():
        table.add_row(escape(name), *(f"{counts.get(split, 0):,}" for split in splits))
    table.add_section()
    table.add_row("all", *(f"{report['split_sizes'][split]:,}" for split in splits), style="bold")
    out.print(table)
    ratio = report["imbalance_ratio"]
    lines = [
        f"Imbalance (largest / smallest class in train): {ratio:.2f}" if ratio else "",
        "Sizes (WxH): "
        + ", ".join(f"{row['size']} ({row['images']:,})" for row in report["sizes"]),
        "Modes: " + ", ".join(f"{k} ({v:,})" for k, v in report["modes"].items()),
        "Formats: " + ", ".join(f"{k} ({v:,})" for k, v in report["formats"].items()),
    ]
    for line in filter(None, lines):
        out.print(escape(line), soft_wrap=True)
    for message in report.get("warnings", []):  # skipped rows, empty split folders, …
        warning(message)
    for item in report["unreadable"][:shown]:
        warning(f"Unreadable: {item['path']} ({item['reason']})")
    duplicates = report["duplicates"]
    for item in duplicates["across_splits"][:shown]:
        warning(f"{item['split']} image {item['file']} is also in train: {item['train_file']}")
    for item in duplicates["within_splits"][:shown]:
        info(f"Duplicate in {item['split']}: {item['file']} = {item['same_as']}")
    for item in duplicates["different_classes"][:shown]:
        warning(
            f"The same image in two classes: {item['file']} ({item['class']}) = "
            f"{item['same_as']} ({item['same_as_class']})"
        )
    counts = [len(duplicates[kind]) for kind in ("within_splits", "across_splits")]
    relabelled = len(duplicates["different_classes"])
    out.print(
        f"Exact duplicates: {counts[0]:,} within splits, {counts[1]:,} across splits"
        + (f"; {relabelled:,} filed under two classes" if relabelled else "")
    )
    if "throughput" in report:
        t = report["throughput"]
        out.print(
            f"Throughput: {t['images_per_second']:,.0f} images/s ({t['images']:,} images at "
            f"{t['image_size'][0]}x{t['image_size'][1]}, {t['cache']}); "
            f"scan {t['scan_seconds']:.2f} s"
        )


def export_table(document: dict[str, Any]) -> Table:
    """What an export wrote and how well it agrees with model.keras."""
    quantized = f" ({document['quantize']})" if document["quantize"] != "none" else ""
    table = Table(title=f"Export {document['format']}{quantized}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    table.add_row("artifact", escape(document["artifact"]))
    size, original = document["file_bytes"], document["keras_model_bytes"]
    table.add_row("size", f"{size / 1e6:.2f} MB ({size / original:.2f}x model.keras)")
    shape = "x".join("N" if side is None else str(side) for side in document["input"]["shape"])
    table.add_row("input", f"{document['input']['name']}: {shape} {document['input']['dtype']}")
    parity = document.get("parity")
    if parity is None:
        table.add_row("parity", "not checked (--no-check)")
        return table
    verdict = "[green]passed[/]" if parity["passed"] else "[red]FAILED[/]"
    table.add_row(
        "top-1 agreement",
        f"{percent(parity['agreement'])} of {parity['examples']} (needs "
        f"{percent(parity['min_agreement'])}): {verdict}",
    )
    table.add_row("largest probability difference", f"{parity['max_abs_difference']:.2e}")
    table.add_row(
        "accuracy",
        f"{percent(parity['export_accuracy'])} (model.keras {percent(parity['keras_accuracy'])})",
    )
    return table


def files_read(end_to_end: dict) -> str:
    """'64 files', or '64 reads of 8 files' when a small split was read round again."""
    files, distinct = end_to_end["files"], end_to_end.get("distinct_files", end_to_end["files"])
    return f"{files} files" if distinct == files else f"{files} reads of {distinct} files"


def benchmark_table(report: dict[str, Any]) -> Table:
    hardware = report["hardware"]
    where = f"{hardware['cpu']}, {hardware['cpu_cores']} cores"
    if hardware["gpus"]:
        where += ", " + ", ".join(hardware["gpus"])
    flops = report["flops_per_image"]
    caption = f"{report['parameters']:,} parameters"
    if flops is not None:
        caption += f", {flops / 1e6:,.1f} MFLOPs per image"
    caption += ". The rows time the model alone, on ready tensors."
    whole = report.get("end_to_end")
    if whole:
        caption += (
            f" End to end, from image files as predict reads them (decode, resize, "
            f"model.keras, batch {whole['batch_size']}): {whole['images_per_second']:,.0f} "
            f"images/s over {files_read(whole)}."
        )
    table = Table(title=f"Benchmark on {escape(where)}", caption=caption)
    for name in ("model", "size", "accuracy", "batch", "p50 ms", "p95 ms", "images/s"):
        table.add_column(name, justify="left" if name == "model" else "right")
    for model in report["models"]:
        accuracy = "?" if model["accuracy"] is None else percent(model["accuracy"])
        first = [escape(model["name"]), f"{model['file_bytes'] / 1e6:.2f} MB", accuracy]
        for size in report["batch_sizes"]:
            timing = model["latency"][str(size)]
            table.add_row(
                *first,
                str(size),
                milliseconds(timing["p50_ms"]),
                milliseconds(timing["p95_ms"]),
                f"{timing['images_per_second']:,.0f}",
            )
            first = ["", "", ""]
        table.add_section()
    return table


def milliseconds(value: float) -> str:
    """Three significant digits, trailing zeros kept so a column reads alike (0.0870,
    0.0913, 1.50); whole milliseconds from 100 up (1,234, not 1.23e+03)."""
    return f"{value:,.0f}" if value >= 100 else f"{value:#.3g}"


def lr_find_table(document: dict[str, Any]) -> Table:
    """lr-find's suggestions: each method's rate and the smoothed loss there."""
    lrs, smoothed = document["lrs"], document["smoothed_losses"]
    ending = "; stopped when the loss diverged" if document["stopped_early"] else ""
    table = Table(
        title="Learning-rate suggestions",
        caption=f"{document['steps']} steps from {lrs[0]:.1e} to {lrs[-1]:.1e}{ending}",
    )
    for name in ("method", "learning rate", "smoothed loss"):
        table.add_column(name, justify="left" if name == "method" else "right")
    for method, rate in document["suggestions"].items():
        if rate is None:
            table.add_row(method, "none", "")
            continue
        loss = smoothed[lrs.index(rate)]
        suggested = method == document["method"]
        table.add_row(
            method + (" (suggested)" if suggested else ""),
            f"{rate:.2e}",
            "" if loss is None else f"{loss:.4f}",
            style="bold" if suggested else None,
        )
    return table
