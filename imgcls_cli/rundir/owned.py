"""Folders imgcls owns: a command may replace or add to a folder only when its own mark
file says an earlier run of it wrote the folder, and the folder holds nothing but what
that command writes (and the temporary files of a write that was killed). Anything else
is refused, untouched. Each command declares its mark once (FolderMark)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imgcls_cli.errors import OutputRefused
from imgcls_cli.rundir.files import config_document_named


@dataclasses.dataclass(frozen=True)
class FolderMark:
    """How a command recognises a folder it wrote, and how it refuses one it did not."""

    mark_file: str  # the JSON document the command writes into every folder of its own
    is_mark: Callable[[dict[str, Any]], bool]  # whether that document is the command's
    entries: Callable[[dict[str, Any]], set[str]]  # the names such a folder may hold
    # The refusal of a non-empty folder without the mark, after "{folder} "; None: its
    # files are refused as foreign, named.
    unmarked: str | None
    writer: str = "imgcls"  # "{folder} holds files {writer} did not write (…)"
    remedy: str = "move them out of it or choose another --output"


def is_own_temporary(name: str) -> bool:
    """A file that an atomic write of imgcls left behind when it was killed: the hidden
    temporary of write_bytes_atomic (.NAME.XXXX.tmp) or save_model_atomic (.tmp.keras)."""
    return name.startswith(".") and (name.endswith(".tmp") or name.endswith(".tmp.keras"))


def mark_document(folder: Path, mark: FolderMark) -> dict[str, Any] | None:
    """The folder's mark file when it is the command's, else None."""
    document = config_document_named(folder, mark.mark_file)
    return document if document and mark.is_mark(document) else None


def foreign_entries(folder: Path, allowed: set[str]) -> list[str]:
    return sorted(
        entry.name
        for entry in Path(folder).iterdir()
        if entry.name not in allowed and not is_own_temporary(entry.name)
    )


def names_shown(names: list[str], limit: int = 5) -> str:
    """'a, b, c, d, e, …': the first few names of a list, for a one-line message."""
    return ", ".join(names[:limit]) + (", …" if len(names) > limit else "")


def check_owned(folder: Path, mark: FolderMark, empty_ok: bool = True) -> dict[str, Any] | None:
    """Refuse, in one line, a folder that `mark`'s command may not write over: one
    without its mark (unless it is empty and empty_ok), or one holding files the command
    did not write. Returns the mark's document (None for an empty or absent folder)."""
    folder = Path(folder)
    if not folder.exists() or (empty_ok and not any(folder.iterdir())):
        return None
    document = mark_document(folder, mark)
    if document is None and mark.unmarked is not None:
        raise OutputRefused(f"{folder} {mark.unmarked}")
    foreign = foreign_entries(folder, mark.entries(document) if document is not None else set())
    if foreign:
        raise OutputRefused(
            f"{folder} holds files {mark.writer} did not write ({names_shown(foreign)}); "
            f"{mark.remedy}."
        )
    return document
