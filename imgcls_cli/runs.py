"""The run directory: naming, layout, atomic writes, and loading with clear errors.

Layout (the contract every command shares):
    model.keras   the trained model; input is raw 0-255 pixels at its input size
    labels.json   class names in index order
    config.json   resolved options, data source, versions
    history.csv   one row per epoch
    metrics.json  final validation and test metrics
    checkpoints/  model + optimizer + progress after every epoch, for --resume
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .errors import RunDirError

RUNS_ROOT = Path("runs")
MODEL_FILE = "model.keras"
LABELS_FILE = "labels.json"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
CHECKPOINTS_DIR = "checkpoints"


def default_run_dir(task: str, name: str, root: Path = RUNS_ROOT) -> Path:
    """runs/<task>-<name>, then -2, -3, … so runs never overwrite each other."""
    stem = f"{task}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}"
    candidate = root / stem
    suffix = 2
    while candidate.exists():
        candidate = root / f"{stem}-{suffix}"
        suffix += 1
    return candidate


def prepare_run_dir(output: Path | None, task: str, name: str, force: bool) -> Path:
    """Choose the run directory; an explicit existing one is refused unless force.

    Nothing is created here: the directory appears only once training starts, so a run
    that fails on bad input leaves no empty folder behind.
    """
    if output is None:
        return default_run_dir(task, name)
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise RunDirError(f"--output {output} is a file; give a directory path.")
    if output.exists() and any(output.iterdir()) and not force:
        raise RunDirError(
            f"Run directory {output} already exists; pass --force to replace it "
            "or choose another --output."
        )
    return output


def is_same_run(run_dir: Path | None, command: str, options: dict[str, Any]) -> bool:
    """Whether run_dir holds a `command` run started with exactly these options."""
    path = Path(run_dir) / CONFIG_FILE if run_dir is not None else None
    if path is None or not path.is_file():
        return False
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return document.get("command") == command and document.get("options") == options


def start_run_dir(run_dir: Path) -> None:
    """Create the directory, emptying it when it held an earlier run (the --force case)."""
    if run_dir.exists():
        for child in run_dir.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside path, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomic(path: Path, value: Any) -> None:
    write_text_atomic(path, json.dumps(value, indent=2, sort_keys=False) + "\n")


def write_csv_atomic(path: Path, rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    if rows:
        fieldnames = list(rows[0])
        for row in rows[1:]:
            fieldnames += [k for k in row if k not in fieldnames]
        writer = csv.DictWriter(buffer, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def save_model_atomic(model: Any, path: Path) -> None:
    """model.save to a temporary .keras file, then rename over path."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.keras")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RunDirError(f"{path} is missing: {what}.") from None
    except (OSError, ValueError) as error:
        raise RunDirError(f"Cannot read {path} ({error}): {what}.") from None


def read_labels(run_dir: Path) -> list[str]:
    labels = read_json(Path(run_dir) / LABELS_FILE, "the run directory needs the class names")
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise RunDirError(f"{Path(run_dir) / LABELS_FILE} must be a JSON list of class names.")
    return labels
