"""`imgcls lr-find`: sweep the learning rate on train's model and data, print the
suggestions, and with --output write lr_find.json and the plot lr_find.png. The sweep
itself, shared with `train --lr auto`, is engine/lr_sweep.py."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from imgcls_cli import rundir
from imgcls_cli.config import LR_FIND_IGNORES, LrFindConfig, TrainConfig
from imgcls_cli.engine.lr_sweep import sweep_session
from imgcls_cli.rundir.files import write_bytes_atomic, write_json_atomic
from imgcls_cli.rundir.owned import FolderMark, check_owned

LR_FIND_JSON = "lr_find.json"  # also the mark of an lr-find --output folder
LR_FIND_PNG = "lr_find.png"


def run_lr_find(
    config: TrainConfig, sweep_options: LrFindConfig, output: Path | None, reporter: Any
) -> dict[str, Any]:
    """`imgcls lr-find`: the data, model, strategy and training step of `train` with
    `config`, a sweep, and its document (what --json prints); with `output`,
    lr_find.json and lr_find.png written there."""
    from imgcls_cli.backend import versions
    from imgcls_cli.engine.devices import is_chief
    from imgcls_cli.engine.session import open_session
    from imgcls_cli.models import create_model

    session = open_session(
        config,
        reporter,
        lambda data: create_model(config.arch, data.input_shape, data.source.num_classes),
        default_augment=config.default_augment,
    )
    found = sweep_session(session, sweep_options)
    document = {
        "command": "lr-find",
        **found.to_dict(),
        "sweep": sweep_options.to_dict(),
        "options": {k: v for k, v in config.to_dict().items() if k not in LR_FIND_IGNORES},
        "resolved": session.resolved().to_dict(),
        "versions": versions(),
    }
    if output is not None and is_chief(session.strategy):
        write_output(output, document)
    return document


def check_output_dir(output: Path) -> None:
    """lr-find --output DIR: a new or empty folder, or an earlier lr-find's, which is
    overwritten; never a folder holding anything lr-find did not write."""
    rundir.check_output(output)
    check_owned(output, LR_FIND_MARK)


# An lr-find folder is ours when its lr_find.json says so; it holds that and the plot.
LR_FIND_MARK = FolderMark(
    LR_FIND_JSON,
    lambda document: document.get("command") == "lr-find",
    lambda document: {LR_FIND_JSON, LR_FIND_PNG},
    unmarked=None,
    writer="imgcls lr-find",
    remedy="choose a new or empty --output folder (or an earlier lr-find's)",
)


def write_output(output: Path, document: dict[str, Any]) -> None:
    """lr_find.png, then lr_find.json (the folder's mark)."""
    check_output_dir(output)  # again: the folder may have changed during the sweep
    write_bytes_atomic(output / LR_FIND_PNG, lr_find_png(document))
    write_json_atomic(output / LR_FIND_JSON, document)


def lr_find_png(document: dict[str, Any]) -> bytes:
    from imgcls_cli.report.plots import figure_png

    return figure_png(lr_find_figure(document))


def lr_find_figure(document: dict[str, Any]) -> Any:
    """The loss of each step and its smoothed curve against the rate (log scale), each
    suggestion marked on the curve."""
    from matplotlib.figure import Figure

    lrs = np.asarray(document["lrs"], float)
    losses = np.asarray([math.nan if v is None else v for v in document["losses"]], float)
    smoothed = np.asarray(
        [math.nan if v is None else v for v in document["smoothed_losses"]], float
    )
    figure = Figure(figsize=(7.0, 4.5))
    axes = figure.add_subplot()
    axes.plot(lrs, losses, color="lightgray", linewidth=1, label="loss of each step")
    axes.plot(lrs, smoothed, color="C0", linewidth=2, label="smoothed loss")
    shown = smoothed[np.isfinite(smoothed)]
    for (name, rate), colour in zip(document["suggestions"].items(), ("C3", "C2")):
        if rate is None:
            continue
        at = np.interp(np.log(rate), np.log(lrs), np.nan_to_num(smoothed, nan=shown.max()))
        note = " (suggested)" if name == document["method"] else ""
        axes.axvline(rate, color=colour, linestyle=":", linewidth=1)
        axes.plot([rate], [at], "o", color=colour, label=f"{name}: {rate:.2g}{note}")
    axes.set_xscale("log")
    # The range the suggestions come from (suggest's window): the climb after the bottom
    # may leave the plot through its top. The bottom holds every step's loss too, so no
    # step's point is cut off below the axis.
    cut = slice(len(smoothed) // 10, len(smoothed) - len(smoothed) // 20)
    window = smoothed[cut][np.isfinite(smoothed[cut])]
    steps = losses[np.isfinite(losses)]
    if window.size:
        bottom = min(shown.min(), window.min(), steps.min() if steps.size else np.inf)
        margin = 0.05 * max(window.max() - bottom, 1e-6)
        axes.set_ylim(bottom - margin, window.max() + margin)
    axes.set_xlabel("learning rate")
    axes.set_ylabel("training loss")
    ending = ", stopped when the loss diverged" if document["stopped_early"] else ""
    if document["suggestions"].get(document["method"]) is None:
        ending += "\nno rate suggested: the loss did not fall enough"
    axes.set_title(f"Learning-rate sweep: {document['steps']} steps{ending}")
    axes.legend(fontsize=8)
    return figure
