"""--cache disk: the resized uint8 images written once to a file in the user's cache folder
and read back every epoch, for data larger than memory, so that only the first pass
decodes. The file is a NumPy array mapped into memory (the OS pages it in and out); it is
removed when the process ends, and files of processes that died are removed on the next
start (they are imgcls' own, named after the process)."""

from __future__ import annotations

import os
import shutil
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from imgcls_cli.backend import traced_as_written
from imgcls_cli.data.scan_index import cache_dir

ROOM_MARGIN = 1.2  # free disk space wanted, as a multiple of the cache file's size


def images_dir() -> Path:
    return cache_dir() / "images"


def has_room(num_bytes: int) -> bool:
    """Whether the cache folder's disk has room for num_bytes (and a margin)."""
    folder = images_dir()
    probe = next((p for p in (folder, *folder.parents) if p.exists()), Path("/"))
    return shutil.disk_usage(probe).free >= num_bytes * ROOM_MARGIN


def remove_stale_files() -> None:
    """Cache files of imgcls processes that no longer run (killed before cleaning up)."""
    for path in images_dir().glob("imgcls-*.npy"):
        try:
            pid = int(path.name.split("-")[1])
            os.kill(pid, 0)  # raises if no such process
        except ProcessLookupError:
            path.unlink(missing_ok=True)
        except (ValueError, IndexError, PermissionError, OSError):
            continue


def write_images(dataset: Any, count: int, image_shape: tuple[int, int, int]) -> Any:
    """Decode `dataset` of (resized uint8 image, label) once into a cache file; returns
    (images memory-mapped read-only, labels). Fewer than `count` when files failed."""
    remove_stale_files()
    folder = images_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"imgcls-{os.getpid()}-{id(dataset):x}.npy"
    shape = (max(count, 1), *image_shape)
    writer = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
    labels = np.zeros(max(count, 1), np.int64)
    written = 0
    try:
        for image, label in dataset.as_numpy_iterator():
            writer[written], labels[written] = image, label
            written += 1
        writer.flush()
        del writer
        images = np.load(path, mmap_mode="r")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    weakref.finalize(images, _remove, str(path))  # at garbage collection, or at exit
    return images[:written], labels[:written]


def _remove(path: str) -> None:
    Path(path).unlink(missing_ok=True)


def read_batches(images: Any, labels: np.ndarray, batch_size: int, shuffle_seed: int | None):
    """Batches of (uint8 images, labels) read from the cache file, in a seeded order that
    changes every epoch (like the other pipelines'), a whole batch per read."""
    import tensorflow as tf

    indices = tf.data.Dataset.range(len(labels))
    if shuffle_seed is not None:
        indices = indices.shuffle(
            max(1, len(labels)), seed=shuffle_seed, reshuffle_each_iteration=True
        )

    def read(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = np.sort(batch)  # sequential reads; the batch's own order is restored below
        rows = images[order]
        restore = np.argsort(np.argsort(batch))
        return rows[restore], labels[batch]

    def load(batch: Any) -> tuple[Any, Any]:
        rows, batch_labels = tf.numpy_function(read, [batch], [tf.uint8, tf.int64])
        rows.set_shape([None, *images.shape[1:]])
        batch_labels.set_shape([None])
        return rows, batch_labels

    return indices.batch(batch_size).map(
        traced_as_written(load), num_parallel_calls=tf.data.AUTOTUNE
    )
