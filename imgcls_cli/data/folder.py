"""A folder of images with one sub-folder per class (optionally inside train/ val/ test/)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..config import DataConfig
from ..errors import DataError
from .images import is_image_file, load_image, read_image_header, unreadable_reason
from .sources import Source, Split, StreamFailures, split_arrays

SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}


def sort_class_names(names: list[str]) -> list[str]:
    """Sorted folder names; numerically when all are integers, so '2' comes before '10'."""
    if names and all(name.isdigit() for name in names):
        return sorted(names, key=int)
    return sorted(names)


def class_folders(root: Path) -> list[str]:
    return sort_class_names(
        [p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    )


def list_images(folder: Path) -> tuple[list[Path], list[Path]]:
    """Image files below a class folder (recursively), hidden files and folders skipped,
    and the other broken symbolic links there (a linked folder that is gone, say).

    A broken link named like an image is listed as an image, so that the check skips it
    and names it with the unreadable files.
    """
    found, broken = [], []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).parts
        if any(part.startswith(".") for part in relative):
            continue
        if is_image_file(path) and (path.is_file() or is_broken_link(path)):
            found.append(path)
        elif is_broken_link(path):
            broken.append(path)
    return found, broken


def is_broken_link(path: Path) -> bool:
    return path.is_symlink() and not path.exists()


@dataclasses.dataclass
class ScanResult:
    good: list[Path]
    grayscale: list[bool]  # per good file
    skipped: list[tuple[str, str]]  # (path, reason)
    sizes: set[tuple[int, int]]  # (height, width) seen
    hashes: dict[str, str]  # path → sha256 of its bytes, to find copies across splits


def check_images(paths: list[Path]) -> ScanResult:
    """Decode every file once (in parallel) and hash its bytes."""

    def check(path: Path):
        try:
            header = read_image_header(path)
            return header, hashlib.sha256(path.read_bytes()).hexdigest()
        except Exception as error:  # PIL raises many types for bad files
            return unreadable_reason(path, error)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(check, paths))
    scan = ScanResult([], [], [], set(), {})
    for path, result in zip(paths, results):
        if isinstance(result, str):
            scan.skipped.append((str(path), result))
        else:
            (width, height, is_gray), digest = result
            scan.good.append(path)
            scan.grayscale.append(is_gray)
            scan.sizes.add((height, width))
            scan.hashes[str(path)] = digest
    return scan


def find_split_folders(root: Path) -> dict[str, Path] | None:
    """{'train': root/train, ...} when root uses split folders, else None."""
    if not (root / "train").is_dir():
        return None
    found = {"train": root / "train"}
    for split, names in SPLIT_FOLDERS.items():
        for name in names:
            if split != "train" and (root / name).is_dir():
                found[split] = root / name
                break
    return found


def load_folder(root: Path, config: DataConfig, seed: int) -> Source:
    if not root.exists():
        raise DataError(
            f"--data {root} does not exist; give a folder with one sub-folder per class."
        )
    if not root.is_dir():
        raise DataError(f"--data {root} is a file; give a folder with one sub-folder per class.")
    split_roots = find_split_folders(root) or {"train": root}
    class_names = class_folders(split_roots["train"])
    if not class_names:
        raise DataError(
            f"No class sub-folders in {split_roots['train']}: expected one folder per class, "
            f"e.g. {root}/cats/1.jpg and {root}/dogs/2.jpg."
        )

    from ..runtime import import_tensorflow

    import_tensorflow()  # quietly: the splits are tf.data datasets
    files, broken = list_split_files(root, split_roots, class_names)
    all_paths = [path for entries in files.values() for path, _ in entries]
    scan = check_images(all_paths)
    good_set, skipped, sizes = set(scan.good), scan.skipped, scan.sizes
    files = {
        split: [(p, i) for p, i in entries if p in good_set] for split, entries in files.items()
    }
    warnings = [broken_links_warning(broken)] if broken else []
    for split in ("val", "test"):
        if split in files and not files[split]:
            # An empty split folder is most likely not meant as "no validation": treat it as
            # absent, so the split is carved from train as without the folder, and say so.
            del files[split]
            warnings.append(empty_split_warning(split, split_roots[split], config))

    train_labels = {label for _, label in files["train"]}
    if not files["train"]:
        raise DataError(
            f"No readable images in {split_roots['train']} "
            f"(looked for .jpg .jpeg .png .bmp .gif .webp in {len(class_names)} class folders)."
        )
    if len(train_labels) < 2:
        only = ", ".join(class_names[i] for i in sorted(train_labels))
        raise DataError(
            f"Found images of only 1 class ({only}) in {split_roots['train']}: "
            "classification needs at least 2 class sub-folders with images."
        )

    channels = 1 if all(scan.grayscale) else 3
    native = next(iter(sizes)) if len(sizes) == 1 else None
    failures = StreamFailures()
    splits = carve_folder_splits(files, config, seed, channels, failures)
    leak = leak_warning(root, splits, scan.hashes)
    if leak:
        warnings.append(leak)
    return Source(
        name=root.name,
        class_names=class_names,
        channels=channels,
        native_size=native,
        splits=splits,
        description={
            "kind": "folder",
            "path": str(root.resolve()),
            "layout": "split folders" if len(split_roots) > 1 else "class folders",
            # Lets `evaluate` notice that the folder changed since training.
            "fingerprints": {
                name: split_fingerprint(root, split.paths or []) for name, split in splits.items()
            },
        },
        skipped=skipped,
        warnings=warnings,
        stream_failures=failures,
    )


def list_split_files(
    root: Path, split_roots: dict[str, Path], class_names: list[str]
) -> tuple[dict[str, list[tuple[Path, int]]], list[Path]]:
    """(path, class index) of the image files of each split, and the broken symbolic links
    seen on the way (where a split or class folder would be, or inside class folders)."""
    files: dict[str, list[tuple[Path, int]]] = {}
    broken = [
        path
        for folder in sorted({root, *split_roots.values()})
        for path in sorted(folder.iterdir())
        if not path.name.startswith(".") and is_broken_link(path)
    ]
    for split, split_root in split_roots.items():
        extra = sorted(set(class_folders(split_root)) - set(class_names))
        if extra:
            raise DataError(
                f"{split_root} has class folders not in {split_roots['train']}: {', '.join(extra)}."
            )
        files[split] = []
        for index, name in enumerate(class_names):
            if (split_root / name).is_dir():
                images, links = list_images(split_root / name)
                files[split] += [(path, index) for path in images]
                broken += links
    return files, broken


def leak_warning(root: Path, splits: dict[str, Split], hashes: dict[str, str]) -> str | None:
    """One line when val/test images are byte-for-byte copies of training images: a model
    that memorised them scores higher than it would on new data."""
    train = {hashes[p]: p for p in splits["train"].paths or [] if p in hashes}
    copies = [
        (path, train[hashes[path]])
        for name in ("val", "test")
        if name in splits
        for path in splits[name].paths or []
        if hashes.get(path) in train
    ]
    if not copies:
        return None
    path, original = copies[0]
    return (
        f"{len(copies)} val/test image(s) are exact copies of training images, which "
        f"inflates the scores (e.g. {path} = {original}); `imgcls inspect --data {root}` "
        "lists them all."
    )


def broken_links_warning(broken: list[Path]) -> str:
    shown = "; ".join(f"{path} → {os.readlink(path)}" for path in broken[:5])
    more = f"; and {len(broken) - 5} more" if len(broken) > 5 else ""
    return (
        f"Ignored {len(broken)} broken symbolic link(s), whose targets do not exist: {shown}{more}."
    )


def empty_split_warning(split: str, folder: Path, config: DataConfig) -> str:
    """What happens instead of a val/ or test/ folder without images."""
    if split == "val":
        flag, fraction, verb = "--val-split", config.val_split, "validating"
    else:
        flag, fraction, verb = "--test-split", config.test_split, "testing"
    instead = f"no {split} split ({flag} is 0)"
    if fraction > 0:
        instead = f"{verb} on {fraction:.0%} of the training images instead ({flag})"
    return f"{folder} has no readable images in class sub-folders: {instead}."


def split_fingerprint(root: Path, paths: list[str]) -> dict[str, Any]:
    """The number of files and a sha256 (16 hex digits) of their sorted paths relative
    to root and their sizes: it changes when files are added, removed, renamed or edited."""
    digest = hashlib.sha256()
    for relative, path in sorted((Path(p).relative_to(root).as_posix(), p) for p in paths):
        try:
            size = os.stat(path).st_size
        except OSError:  # gone since the scan: still a change
            size = -1
        digest.update(f"{relative}\t{size}\n".encode("utf-8", "surrogateescape"))
    return {"images": len(paths), "sha256": digest.hexdigest()[:16]}


def carve_folder_splits(
    files: dict[str, list[tuple[Path, int]]],
    config: DataConfig,
    seed: int,
    channels: int,
    failures: StreamFailures,
) -> dict[str, Split]:
    """Use the split folders that exist; carve the missing test/val parts out of train."""
    has_test, has_val = "test" in files, "val" in files
    if has_val:
        config = dataclasses.replace(config, val_split=0.0)
    paths = np.array([str(p) for p, _ in files["train"]], dtype=object)
    labels = np.array([label for _, label in files["train"]], dtype=np.int64)
    parts = split_arrays(paths, labels, config, seed, has_test=has_test)
    result = {
        name: files_to_split(list(zip(*arrays)), channels, failures)
        for name, arrays in parts.items()
    }
    for name in ("val", "test"):
        if name in files:
            result[name] = files_to_split(files[name], channels, failures)
    return result


def files_to_split(
    entries: list[tuple[Path, int]], channels: int, failures: StreamFailures
) -> Split:
    """A tf.data stream decoding the files with the shared decoder, in parallel.

    A file that vanishes or stops decoding after the scan is dropped from the stream and
    recorded in `failures`, so a long training run does not die on it.
    """
    import tensorflow as tf

    paths = [str(p) for p, _ in entries]
    labels = np.array([int(label) for _, label in entries], dtype=np.int64)
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels))

    def read(path: bytes) -> tuple[np.ndarray, bool]:
        try:
            return load_image(path.decode(), channels), True
        except Exception as error:  # PIL raises many types for bad files
            failures.add(path.decode(), unreadable_reason(path.decode(), error))
            return np.zeros((1, 1, channels), np.uint8), False

    def decode_flagged(path, label):
        image, ok = tf.numpy_function(read, [path], [tf.uint8, tf.bool], stateful=False)
        image.set_shape([None, None, channels])
        ok.set_shape([])
        return image, label, ok

    def decode_files(files):
        flagged = files.map(decode_flagged, num_parallel_calls=tf.data.AUTOTUNE)
        kept = flagged.filter(lambda image, label, ok: ok)
        return kept.map(lambda image, label, ok: (image, label))

    return Split(
        decode_files(dataset),
        len(paths),
        paths,
        labels,
        files=dataset,
        decode_files=decode_files,
    )
