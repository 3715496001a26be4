"""What the folder scan learnt about each file, kept between runs: checking a file reads
all its bytes (to hash them) and its header, so a second start on the same folder checks
only the files whose size or modification time changed. The index lives in the user's
cache folder (the data folder may be read-only): $IMGCLS_CACHE_DIR, else
$XDG_CACHE_HOME/imgcls, else ~/.cache/imgcls."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from imgcls_cli.data.images import ImageFacts

VERSION = 2  # of the entry layout below; other versions are ignored and rewritten


def cache_dir() -> Path:
    if os.environ.get("IMGCLS_CACHE_DIR"):
        return Path(os.environ["IMGCLS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "imgcls"


def index_path(root: Path) -> Path:
    """One index file per data folder, named after its resolved path."""
    key = hashlib.sha256(str(Path(root).resolve()).encode("utf-8", "surrogateescape"))
    return cache_dir() / "scan" / f"{key.hexdigest()[:24]}.json"


def load_index(root: Path) -> dict[str, Any]:
    """{path: entry} from the last scan of root, or {} (none yet, unreadable, old)."""
    try:
        document = json.loads(index_path(root).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(document, dict) or document.get("version") != VERSION:
        return {}
    entries = document.get("files")
    return entries if isinstance(entries, dict) else {}


def save_index(root: Path, entries: dict[str, Any]) -> str | None:
    """Write the index atomically; a warning (one line) when the cache is not writable."""
    from imgcls_cli.rundir.files import write_json_atomic

    path = index_path(root)
    try:
        write_json_atomic(path, {"version": VERSION, "root": str(root), "files": entries})
    except OSError as error:
        return (
            f"Cannot write the scan index to {path.parent} ({error.strerror or error}); the "
            "next start will check every image again (set IMGCLS_CACHE_DIR to a writable "
            "folder)."
        )
    return None


def entry(signature: tuple[int, int], facts: ImageFacts, digest: str) -> list[Any]:
    return [*signature, facts.width, facts.height, facts.grayscale, facts.plain, facts.jpeg, digest]


def reuse(
    entries: dict[str, Any], path: str, signature: tuple[int, int]
) -> tuple[ImageFacts, str] | None:
    """(facts, content hash) of an unchanged file, as the last scan found them."""
    found = entries.get(path)
    if not isinstance(found, list) or len(found) != 8 or tuple(found[:2]) != signature:
        return None
    width, height, grayscale, plain, jpeg, digest = found[2:]
    facts = ImageFacts(int(width), int(height), bool(grayscale), bool(plain), bool(jpeg))
    return facts, str(digest)
