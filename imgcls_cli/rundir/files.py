"""Writing without half-written files: every file goes to a temporary name beside it and
is renamed into place, and a finished folder replaces an old one only once it is
complete (swap_folder). Readers of JSON get one clear error for a missing or broken file."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imgcls_cli.errors import RunDirError


def swap_folder(
    new: Path, target: Path, check: Callable[[Path], None], ready: Callable[[], None] | None = None
) -> None:
    """Move the complete folder `new` to `target`. What is there already is checked
    (`check` raises to refuse) and moved aside only now, then deleted once `new` is in
    place; `ready` runs between the two moves."""
    trash = None
    if target.exists():
        check(target)
        trash = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
        os.rename(target, trash)  # onto an empty directory: allowed, and atomic
    if ready is not None:
        ready()
    os.rename(new, target)
    if trash is not None:
        shutil.rmtree(trash)


def staging_dir(parent: Path, prefix: str) -> Path:
    """An empty folder in `parent` to build a folder in before it is renamed into place,
    with the mode a plain mkdir gives under the user's umask (not mkdtemp's 0700)."""
    staging = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    os.chmod(staging, 0o777 & ~_umask())
    return staging


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


def config_document_named(folder: Path | None, name: str) -> dict[str, Any]:
    """folder/name read as a JSON object, or {} when absent, unreadable or not an object."""
    if folder is None:
        return {}
    try:
        document = json.loads((Path(folder) / name).read_text())
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}
