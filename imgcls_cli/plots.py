"""PNG figures for evaluation: the confusion matrix and a gallery of mistakes.

Figures are drawn on matplotlib's Agg canvas without pyplot, so nothing needs a display
and no global figure state is left behind; each function returns PNG bytes.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

ANNOTATE_LIMIT = 30  # classes up to which each cell shows its count


def figure_png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def confusion_matrix_png(matrix: np.ndarray, class_names: list[str]) -> bytes:
    """Rows = true class, columns = predicted; colour = share of the true class (recall),
    so rare classes are as visible as common ones. Readable up to 100 classes."""
    from matplotlib.figure import Figure

    n = len(class_names)
    side = min(max(4.0, 0.28 * n + 2.0), 32.0)  # inches: ~0.28 in per class
    font = 9 if n <= 30 else 6
    figure = Figure(figsize=(side + 1.0, side))
    axes = figure.add_subplot()
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape, float), where=totals > 0)
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of true class")
    axes.set_xticks(range(n), class_names, rotation=90, fontsize=font)
    axes.set_yticks(range(n), class_names, fontsize=font)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(f"Confusion matrix ({int(matrix.sum())} images)")
    if n <= ANNOTATE_LIMIT:
        for row in range(n):
            for col in range(n):
                if matrix[row, col]:
                    dark = shares[row, col] > 0.5
                    axes.text(
                        col,
                        row,
                        str(matrix[row, col]),
                        ha="center",
                        va="center",
                        fontsize=font,
                        color="white" if dark else "black",
                    )
    return figure_png(figure)


def mistakes_png(mistakes: list[dict[str, Any]], channels: int) -> bytes:
    """A grid of the mistaken images, each titled with true and predicted class."""
    from matplotlib.figure import Figure

    from .data.images import load_image

    columns = min(4, len(mistakes))
    rows = math.ceil(len(mistakes) / columns)
    figure = Figure(figsize=(3.0 * columns, 3.3 * rows))
    for index, mistake in enumerate(mistakes, 1):
        axes = figure.add_subplot(rows, columns, index)
        axes.axis("off")
        try:
            image = load_image(mistake["path"], channels)
        except Exception:  # the file changed since it was scored; keep the slot
            axes.set_title("(no longer readable)", fontsize=8)
            continue
        if channels == 1:
            axes.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255)
        else:
            axes.imshow(image)
        axes.set_title(
            f"true: {mistake['true']}\npredicted: {mistake['predicted']} "
            f"({mistake['confidence']:.0%})",
            fontsize=8,
        )
    return figure_png(figure)


def training_curves_png(rows: list[dict[str, Any]]) -> bytes:
    """training.png: loss and accuracy, train against validation, and the learning rate,
    per epoch; the best epoch (lowest validation loss) marked, and where fine-tuning's
    second phase begins."""
    from matplotlib.figure import Figure

    epochs = [int(row["epoch"]) for row in rows]
    figure = Figure(figsize=(12.0, 3.6))
    panels = [("loss", "loss"), ("accuracy", "accuracy"), ("lr", "learning rate")]
    has_val = any(_number(row.get("val_loss")) is not None for row in rows)
    best = None
    if has_val:
        scored = [
            (row["val_loss"], int(row["epoch"]))
            for row in rows
            if _number(row.get("val_loss")) is not None
        ]
        best = min(scored)[1]
    phases = [
        int(row["epoch"]) for a, row in zip(rows, rows[1:]) if a.get("phase") != row.get("phase")
    ]
    for index, (key, title) in enumerate(panels, 1):
        axes = figure.add_subplot(1, 3, index)
        axes.plot(
            epochs,
            [_number(row.get(key)) for row in rows],
            marker="o",
            markersize=3,
            label="train" if key != "lr" else None,
        )
        if key != "lr" and has_val:
            axes.plot(
                epochs,
                [_number(row.get(f"val_{key}")) for row in rows],
                marker="o",
                markersize=3,
                label="validation",
            )
        if best is not None:
            axes.axvline(
                best,
                color="green",
                linestyle=":",
                linewidth=1,
                label=f"best epoch ({best})" if index == 1 else None,
            )
        for start in phases:
            axes.axvline(start - 0.5, color="gray", linestyle="--", linewidth=1)
            axes.text(
                start - 0.5,
                1.0,
                " fine-tuning",
                transform=axes.get_xaxis_transform(),
                fontsize=7,
                va="top",
                color="gray",
            )
        axes.set_title(title)
        axes.set_xlabel("epoch")
        if key == "lr":
            axes.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        elif axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=7)
    return figure_png(figure)


def _number(value: Any) -> float | None:
    """history.csv cells as floats; empty or non-finite cells as gaps."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
