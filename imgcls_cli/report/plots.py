"""PNG figures: the confusion matrix, galleries of mistakes, Grad-CAM overlays, curves.

Figures are drawn on matplotlib's Agg canvas without pyplot, so nothing needs a display
and no global figure state is left behind; each function returns PNG bytes.
"""

from __future__ import annotations

import io
import math
import os
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


def mistakes_png(
    mistakes: list[dict[str, Any]],
    channels: int,
    explained: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> bytes:
    """A grid of the mistaken images, each titled with true and predicted class (and its
    loss when the record has one). explained: path → (the image, its Grad-CAM heatmap
    for the predicted class), drawn as an overlay instead of the file."""
    from matplotlib.figure import Figure

    from imgcls_cli.data.images import load_image

    columns = min(4, len(mistakes))
    rows = math.ceil(len(mistakes) / columns)
    figure = Figure(figsize=(3.0 * columns, 3.5 * rows))  # three title lines
    for index, mistake in enumerate(mistakes, 1):
        axes = figure.add_subplot(rows, columns, index)
        axes.axis("off")
        title = mistake_title(mistake)
        if explained and mistake["path"] in explained:
            image, heatmap = explained[mistake["path"]]
            axes.imshow(heat_overlay(image, heatmap), interpolation="nearest")
            axes.set_title(title, fontsize=8)
            continue
        try:
            image = load_image(mistake["path"], channels)
        except Exception:  # the file changed since it was scored; keep the slot
            axes.set_title(f"{short_name(mistake['path'])}\n(no longer readable)", fontsize=8)
            continue
        show_image(axes, image)
        axes.set_title(title, fontsize=8)
    return figure_png(figure)


def mistake_title(mistake: dict[str, Any]) -> str:
    """A gallery tile's title: the file's name (to find it: mistakes.csv has the path),
    then true and predicted class, and the loss when the record has one."""
    title = (
        f"{short_name(mistake['path'])}\ntrue: {mistake['true']}\n"
        f"predicted: {mistake['predicted']} ({mistake['confidence']:.0%})"
    )
    if "loss" in mistake:
        title += f", loss {mistake['loss']:.2f}"
    return title


TILE_NAME_CHARACTERS = 28  # about a 3-inch tile's width at the titles' 8 points


def short_name(path: str) -> str:
    """A file's name, its middle elided when it would not fit a tile: the start and the
    end (numbers, extension) tell files apart."""
    name = os.path.basename(path)
    if len(name) <= TILE_NAME_CHARACTERS:
        return name
    keep = TILE_NAME_CHARACTERS - 1
    return name[: keep // 2] + "…" + name[-(keep - keep // 2) :]


def show_image(axes: Any, image: np.ndarray) -> None:
    """An HxWx1 or HxWx3 uint8 image, pixels kept sharp."""
    if image.shape[-1] == 1:
        axes.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        axes.imshow(image, interpolation="nearest")


def heat_overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """RGB in [0, 1]: the image (grey images as grey) under the heatmap in jet colours,
    the heatmap stretched over the image when their sizes differ."""
    from matplotlib import colormaps

    heatmap = stretched(heatmap, image.shape[:2])
    rgb = image.astype(np.float32) / 255.0
    if rgb.shape[-1] == 1:
        rgb = np.repeat(rgb, 3, axis=-1)
    heat = colormaps["jet"](np.clip(heatmap, 0.0, 1.0))[..., :3]
    return np.clip((1.0 - alpha) * rgb + alpha * heat, 0.0, 1.0)


def stretched(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A heatmap resized (bilinear) to size (height, width)."""
    from PIL import Image

    if heatmap.shape == tuple(size):
        return heatmap
    picture = Image.fromarray(heatmap.astype(np.float32))  # mode F: 32-bit floats
    return np.asarray(picture.resize((size[1], size[0]), Image.Resampling.BILINEAR))


def gradcam_png(
    image: np.ndarray, heatmap: np.ndarray, caption: str, title: str, method: str = "Grad-CAM"
) -> bytes:
    """One explained image: the picture, the heatmap (at the model's input size, as the
    model saw it), and the two overlaid."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9.0, 3.6))
    panels = figure.subplots(1, 3)
    show_image(panels[0], image)
    panels[0].set_title("image", fontsize=8)
    shown = panels[1].imshow(heatmap, cmap="jet", vmin=0.0, vmax=1.0)
    panels[1].set_title(method, fontsize=8)
    figure.colorbar(shown, ax=panels[1], fraction=0.046, pad=0.04)
    panels[2].imshow(heat_overlay(image, heatmap), interpolation="nearest")
    panels[2].set_title("overlay", fontsize=8)
    for axes in panels:
        axes.axis("off")
    figure.suptitle(f"{title}\n{caption}", fontsize=9)
    return figure_png(figure)


def gradcam_grid_png(tiles: list[tuple[np.ndarray, np.ndarray, str]]) -> bytes:
    """Every overlay in one picture, captioned with its file's name and prediction."""
    from matplotlib.figure import Figure

    columns = min(6, len(tiles))
    rows = math.ceil(len(tiles) / columns)
    figure = Figure(figsize=(2.4 * columns, 2.8 * rows))
    for index, (image, heatmap, caption) in enumerate(tiles, 1):
        axes = figure.add_subplot(rows, columns, index)
        axes.axis("off")
        axes.imshow(heat_overlay(image, heatmap), interpolation="nearest")
        axes.set_title(caption, fontsize=7)
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
