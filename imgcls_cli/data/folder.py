"""A folder of images with one sub-folder per class (optionally inside train/ val/ test/)."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..config import DataConfig
from ..errors import DataError
from .images import is_image_file, load_image, read_image_header
from .sources import Source, Split, split_arrays

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


def list_images(folder: Path) -> list[Path]:
    """Image files below a class folder (recursively), hidden files and folders skipped."""
    found = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).parts
        if any(part.startswith(".") for part in relative):
            continue
        if path.is_file() and is_image_file(path):
            found.append(path)
    return found


def check_images(paths: list[Path]) -> tuple[list[Path], list[bool], list[tuple[str, str]], set]:
    """Decode every file once; return the good ones, their grayscale flags, the skipped
    ones with reasons, and the set of sizes seen."""

    def check(path: Path):
        try:
            return read_image_header(path)
        except Exception as error:  # PIL raises many types for bad files
            return f"{type(error).__name__}: {error}".strip()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(check, paths))
    good, grayscale, skipped, sizes = [], [], [], set()
    for path, result in zip(paths, results):
        if isinstance(result, str):
            skipped.append((str(path), result))
        else:
            width, height, is_gray = result
            good.append(path)
            grayscale.append(is_gray)
            sizes.add((height, width))
    return good, grayscale, skipped, sizes


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

    files: dict[str, list[tuple[Path, int]]] = {}
    for split, split_root in split_roots.items():
        extra = sorted(set(class_folders(split_root)) - set(class_names))
        if extra:
            raise DataError(
                f"{split_root} has class folders not in {split_roots['train']}: {', '.join(extra)}."
            )
        files[split] = [
            (path, index)
            for index, name in enumerate(class_names)
            if (split_root / name).is_dir()
            for path in list_images(split_root / name)
        ]

    all_paths = [path for entries in files.values() for path, _ in entries]
    good, grayscale, skipped, sizes = check_images(all_paths)
    good_set = set(good)
    files = {
        split: [(p, i) for p, i in entries if p in good_set] for split, entries in files.items()
    }

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

    channels = 1 if all(grayscale) else 3
    native = next(iter(sizes)) if len(sizes) == 1 else None
    splits = carve_folder_splits(files, config, seed, channels)
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
        },
        skipped=skipped,
    )


def carve_folder_splits(
    files: dict[str, list[tuple[Path, int]]], config: DataConfig, seed: int, channels: int
) -> dict[str, Split]:
    """Use the split folders that exist; carve the missing test/val parts out of train."""
    has_test, has_val = "test" in files, "val" in files
    if has_val:
        config = dataclasses.replace(config, val_split=0.0)
    paths = np.array([str(p) for p, _ in files["train"]], dtype=object)
    labels = np.array([label for _, label in files["train"]], dtype=np.int64)
    parts = split_arrays(paths, labels, config, seed, has_test=has_test)
    result = {name: files_to_split(list(zip(*arrays)), channels) for name, arrays in parts.items()}
    for name in ("val", "test"):
        if name in files:
            result[name] = files_to_split(files[name], channels)
    return result


def files_to_split(entries: list[tuple[Path, int]], channels: int) -> Split:
    """A tf.data stream decoding the files with the shared decoder, in parallel."""
    import tensorflow as tf

    paths = [str(p) for p, _ in entries]
    labels = np.array([int(label) for _, label in entries], dtype=np.int64)
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels))

    def decode(path, label):
        image = tf.numpy_function(
            lambda p: load_image(p.decode(), channels), [path], tf.uint8, stateful=False
        )
        image.set_shape([None, None, channels])
        return image, label

    decoded = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    return Split(decoded, len(paths), paths, labels, files=dataset, decode=decode)
