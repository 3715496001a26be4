"""Rich output: messages and progress on stderr, results on stdout."""

from __future__ import annotations

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

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)


def error(message: str) -> None:
    err.print(f"[bold red]Error:[/] [red]{escape(message)}[/]", soft_wrap=True)


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
    """Training progress: a bar per epoch, then a one-line summary. Quiet: warnings only."""

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

    def epoch_end(self, logs: dict[str, float]) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        if not self.quiet:
            line = f"{self.epoch_label}  {format_logs(logs)}  {logs.get('seconds', 0):.1f}s"
            err.print(line, soft_wrap=True)


def metrics_table(metrics: dict[str, Any]) -> Table:
    table = Table(title="Final metrics")
    table.add_column("split")
    table.add_column("loss", justify="right")
    table.add_column("accuracy", justify="right")
    table.add_column("images", justify="right")
    for split in ("val", "test"):
        if split in metrics:
            m = metrics[split]
            table.add_row(split, f"{m['loss']:.4f}", f"{m['accuracy']:.2%}", str(m["examples"]))
    return table
