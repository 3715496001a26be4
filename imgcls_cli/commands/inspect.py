"""`imgcls inspect`: what a dataset holds before training on it. Classes and their counts
per split, image sizes, modes and formats, unreadable files, exact duplicates (within a
split, and val/test images that are also in train: a leak that inflates test accuracy),
and optionally one timed pass of the real training input pipeline."""

from __future__ import annotations

import collections
import hashlib
import io
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from imgcls_cli.config import DataConfig
from imgcls_cli.data.factory import load_source
from imgcls_cli.data.folder import relabelled_copies
from imgcls_cli.data.images import check_image, open_image, unreadable_reason
from imgcls_cli.data.sources import SPLITS, Source
from imgcls_cli.reporting import Reporter

MOST_SIZES = 10  # the size histogram lists the most common sizes, then "other"


def inspect_data(
    config: DataConfig,
    reporter: Reporter,
    *,
    seed: int = 42,
    throughput: bool = False,
    batch_size: int = 64,
) -> dict[str, Any]:
    """The data report (what `inspect --json` prints), splits carved as `train` carves
    them with `seed`."""
    if throughput:  # so that scan_seconds times the scan, not TensorFlow's start-up
        from imgcls_cli.backend import import_tensorflow

        import_tensorflow()
    else:  # a folder of one class or no readable image, refused before TensorFlow
        from imgcls_cli.data.factory import check_data

        check_data(config)
    started = time.perf_counter()
    source = load_source(config, seed, reporter)
    scan_seconds = time.perf_counter() - started
    splits = {
        name: source.splits[name]
        for name in SPLITS
        if name in source.splits and source.splits[name].num_examples > 0
    }
    images = {name: describe_split(split) for name, split in splits.items()}
    readable = {
        name: [image for image in described if not image.get("unreadable")]
        for name, described in images.items()
    }
    counts = class_counts(source, splits, readable)
    train_counts = [c["train"] for c in counts.values() if c.get("train")]
    report = {
        "data": source.description,
        "classes": list(source.class_names),
        "split_sizes": {name: len(described) for name, described in readable.items()},
        "class_counts": counts,
        "imbalance_ratio": max(train_counts) / min(train_counts) if train_counts else None,
        # Of the images training reads: a file whose header reads but whose pixels do
        # not (a damaged PNG) is listed under unreadable only, as training skips it.
        "sizes": size_histogram(readable),
        "modes": dict(collections.Counter(i["mode"] for s in readable.values() for i in s)),
        "formats": dict(collections.Counter(i["format"] for s in readable.values() for i in s)),
        "unreadable": [{"path": path, "reason": reason} for path, reason in source.skipped]
        + [
            {"path": image["name"], "reason": image["unreadable"]}
            for split in images.values()
            for image in split
            if image.get("unreadable")
        ],
        "warnings": list(source.warnings),
        "duplicates": find_duplicates(readable, source.class_names),
    }
    if throughput:
        report["throughput"] = {
            "scan_seconds": scan_seconds,
            **measure_throughput(source, config, seed, batch_size),
        }
    return report


def describe_split(split: Any) -> list[dict[str, Any]]:
    """Per image: its name (path, or index for sources without files), size, mode,
    format, a hash of its content (the file's bytes, or the decoded pixels) and its
    class index (`label`)."""
    if split.paths is not None or split.read_stored is not None:
        if split.paths is not None:
            names, describe = split.paths, describe_file
        else:  # encoded images in a dataset: described as files
            read = split.read_stored
            names = [os.fsdecode(name) for name, _ in split.files.as_numpy_iterator()]
            describe = lambda name: describe_file(name, read)  # noqa: E731
        labels = split.labels
        if labels is None:
            labels = [int(label) for _, label in split.files.as_numpy_iterator()]
        with ThreadPoolExecutor(max_workers=8) as pool:
            described = list(pool.map(describe, names))
        return [
            {**image, "label": int(label)} for image, label in zip(described, labels, strict=True)
        ]
    described = []
    for index, (image, label) in enumerate(split.dataset.as_numpy_iterator()):
        height, width, channels = image.shape
        described.append(
            {
                "name": f"#{index}",
                "size": (width, height),
                "mode": "L" if channels == 1 else "RGB",
                "format": "array",
                "hash": hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest(),
                "label": int(label),
            }
        )
    return described


def describe_file(path: str, read: Callable[[str], bytes] | None = None) -> dict[str, Any]:
    """Header facts and a content hash of one file (or of a stored image, whose bytes
    `read` returns), decoded in full to check it (the training scan reads headers only):
    a file that fails here is described as unreadable, with its reason, rather than
    stopping the report."""
    content, size, mode, kind, reason = b"", (0, 0), "?", "?", None
    try:
        content = read(path) if read is not None else Path(path).read_bytes()
        with open_image(io.BytesIO(content)) as image:
            size, mode, kind = image.size, image.mode, image.format or "?"
        check_image(Path(path), content, decode=True)
    except Exception as error:  # PIL raises many types for bad files
        reason = unreadable_reason(path, error)
    return {
        "name": path,
        "size": size,
        "mode": mode,
        "format": kind if reason is None else "?",
        "hash": hashlib.sha256(content).hexdigest(),
        "unreadable": reason,
    }


def class_counts(
    source: Source, splits: dict[str, Any], images: dict[str, list[dict[str, Any]]]
) -> dict[str, dict[str, int]]:
    """{class: {split: images}} of the images described in each split."""
    counts = {name: {split: 0 for split in splits} for name in source.class_names}
    for split_name, described in images.items():
        for index, count in collections.Counter(image["label"] for image in described).items():
            counts[source.class_names[index]][split_name] = count
    return counts


def size_histogram(images: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """[{"size": "WxH", "images": n}, …]: the most common sizes, then the rest together."""
    sizes = collections.Counter(
        f"{i['size'][0]}x{i['size'][1]}" for split in images.values() for i in split
    )
    histogram = [{"size": size, "images": n} for size, n in sizes.most_common(MOST_SIZES)]
    rest = sum(sizes.values()) - sum(row["images"] for row in histogram)
    if rest:
        histogram.append({"size": "other", "images": rest})
    return histogram


def find_duplicates(
    images: dict[str, list[dict[str, Any]]], class_names: list[str]
) -> dict[str, list[dict[str, str]]]:
    """Exact duplicates by content among readable images. within_splits: images that
    repeat an earlier one of the same split; across_splits: val/test images whose content
    is also in train; different_classes: images whose copy, in any split, is filed under
    another class (one of the two labels is wrong)."""
    within, across = [], []
    train = {}
    for image in images.get("train", []):
        train.setdefault(image["hash"], image["name"])
    for split, described in images.items():
        first: dict[str, str] = {}
        for image in described:
            earlier = first.setdefault(image["hash"], image["name"])
            if earlier != image["name"]:
                within.append({"split": split, "file": image["name"], "same_as": earlier})
            if split != "train" and image["hash"] in train:
                across.append(
                    {"split": split, "file": image["name"], "train_file": train[image["hash"]]}
                )
    pairs = relabelled_copies(
        (image["name"], image["label"], image["hash"])
        for described in images.values()
        for image in described
    )
    relabelled = [
        {
            "file": name,
            "class": class_names[label],
            "same_as": earlier,
            "same_as_class": class_names[earlier_label],
        }
        for name, label, earlier, earlier_label in pairs
    ]
    return {"within_splits": within, "across_splits": across, "different_classes": relabelled}


def measure_throughput(
    source: Source, config: DataConfig, seed: int, batch_size: int
) -> dict[str, Any]:
    """One pass over the training split through the training input pipeline (decode,
    resize, cache as --cache says, shuffle, batch), as `train` reads it."""
    from imgcls_cli.data.pipeline import cache_placement, create_batches, resolve_image_size

    image_size = resolve_image_size(config.image_size, source.native_size)
    split = source.splits["train"]
    cache = cache_placement(config.cache, split.num_examples, image_size, source.channels)
    batches = create_batches(
        split,
        image_size,
        source.channels,
        source.num_classes,
        batch_size,
        shuffle_seed=seed,
        cache=cache,
    )
    started, seen = time.perf_counter(), 0
    for images, _ in batches:
        seen += int(images.shape[0])
    seconds = time.perf_counter() - started
    return {
        "images": seen,
        "seconds": seconds,
        "images_per_second": seen / seconds if seconds else 0.0,
        "image_size": list(image_size),
        "cache": cache,
    }
