"""Data sources behind one interface: TFDS datasets, image folders, and embedded digits.

Every source returns a `Source`: class names, channel count, native image size, and
train/val/test splits of (uint8 image HxWxC, int label) pairs, not yet resized.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from imgcls_cli.config import DataConfig
from imgcls_cli.data import splits as carving

EMBEDDED_DATASETS = ("digits",)


@dataclasses.dataclass
class Split:
    # tf.data.Dataset of (uint8 image HxWxC, int64 label), read through `dataset`; None
    # for a file list's split until then (see `dataset`).
    stored: Any
    num_examples: int
    paths: list[str] | None = None  # file paths, in dataset order, for folder sources
    labels: np.ndarray | None = None  # labels in dataset order, when known without reading
    # Folder sources: `dataset` is `decode_files(files)`, kept apart so a streaming
    # pipeline can shuffle the (path, label) pairs before decoding. `decode_files` drops
    # the files that fail to decode and records them on the Source: one file that vanishes
    # mid-training must not end the run.
    files: Any = None
    decode_files: Callable[..., Any] | None = None  # (files, target size or None) → dataset
    # (shards, index) → that part of `dataset`, read without reading the rest where the
    # source can (TFDS shards its record files); None: Dataset.shard.
    read_shard: Callable[[int, int], Any] | None = None
    # Images stored encoded in a dataset (Hugging Face): name in `files` → its bytes, so
    # inspect can tell their format and hash them as it does files.
    read_stored: Callable[[str], bytes] | None = None

    @property
    def dataset(self) -> Any:
        """The split's (uint8 image, label) examples as stored. A file list's is built on
        first use: training and evaluation build their own pipelines from the file list
        (decoding at the model's size), and building this one traces the decoder, which
        cost a run a fraction of a second for each split it never read."""
        if self.stored is None and self.files is not None:
            self.stored = self.decode_files(self.files)
        return self.stored

    @classmethod
    def of_file_list(
        cls,
        files: Any,
        count: int,
        decode_files: Callable[..., Any],
        paths: list[str] | None = None,
        labels: np.ndarray | None = None,
        read_stored: Callable[[str], bytes] | None = None,
    ) -> Split:
        """A split read from a (name, label) file list by decode_files."""
        return cls(
            None,
            count,
            paths,
            labels,
            files=files,
            decode_files=decode_files,
            read_stored=read_stored,
        )

    @classmethod
    def of_files(
        cls, paths: list[str], labels: np.ndarray, decode_files: Callable[..., Any]
    ) -> Split:
        """A folder's split: its (path, label) file list, decoded by decode_files as a
        stream (data.folder.FileDecoder)."""
        import tensorflow as tf

        files = tf.data.Dataset.from_tensor_slices((tf.constant(paths, tf.string), labels))
        return cls.of_file_list(files, len(paths), decode_files, paths, labels)

    def shard(self, shards: int, index: int) -> Any:
        """Part `index` of `shards` of the dataset (folders shard `files` instead)."""
        if self.read_shard is not None:
            return self.read_shard(shards, index)
        return self.dataset.shard(shards, index)

    def sample(self, count: int, seed: int) -> Split:
        """A fixed, seeded sample of at most `count` examples, the same at every pass;
        the whole split when it holds no more. A folder samples its file list, so only
        the sampled files are ever decoded."""
        if count >= self.num_examples:
            return self
        if self.files is not None:
            files = self.files.shuffle(self.num_examples, seed, reshuffle_each_iteration=False)
            files = files.take(count)
            return Split.of_file_list(files, count, self.decode_files)
        # Drawn from a window ten times the sample, so a large TFDS split is not read whole.
        window = min(self.num_examples, 10 * count)
        dataset = self.dataset.shuffle(window, seed, reshuffle_each_iteration=False).take(count)
        return Split(dataset, count)


class StreamFailures:
    """Files that failed to decode while streaming. tf.data decodes in several threads,
    and the training loop collects the failures at the end of each epoch.

    Failures that Python sees are added as they happen. A file that TensorFlow fails to
    decode in the graph is dropped by tf.data without a name, so the decoder marks each
    such file pending before decoding and done after; `take` then checks the files still
    pending with `verify` ((path) → reason, or None when it decodes): those are the ones
    that failed (the rest were in flight, or in an iterator dropped early)."""

    def __init__(self, verify: Callable[[str], str | None] | None = None) -> None:
        self._lock = threading.Lock()
        self._failures: list[tuple[str, str]] = []
        self._pending: set[str] = set()
        self.verify = verify

    def add(self, path: str, reason: str) -> None:
        with self._lock:
            self._failures.append((path, reason))

    def begin(self, path: str) -> None:
        with self._lock:
            self._pending.add(path)

    def end(self, path: str) -> None:
        with self._lock:
            self._pending.discard(path)

    def take(self) -> list[tuple[str, str]]:
        with self._lock:
            taken, self._failures = self._failures, []
            pending, self._pending = sorted(self._pending), set()
        for path in pending:
            reason = self.verify(path) if self.verify else None
            if reason:
                taken.append((path, reason))
        return taken


# Every source's splits, in the order they are listed (the Data: line, inspect, evaluate).
SPLITS = ("train", "val", "test")


@dataclasses.dataclass
class Source:
    name: str
    class_names: list[str]
    channels: int
    native_size: tuple[int, int] | None  # None when images differ in size
    splits: dict[str, Split]  # "train", "val" (may be empty), "test" (may be empty)
    description: dict[str, Any]  # what config.json records about the data
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (path, reason)
    warnings: list[str] = dataclasses.field(default_factory=list)  # one line each, for the user
    stream_failures: StreamFailures = dataclasses.field(default_factory=StreamFailures)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def take_stream_failures(self) -> list[tuple[str, str]]:
        """(path, reason) of the files that failed to decode since the last call; their
        examples were dropped from the batches."""
        return self.stream_failures.take()


def split_arrays(
    images: np.ndarray, labels: np.ndarray, config: DataConfig, seed: int, has_test: bool
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Carve test (fixed seed) and validation (--seed) parts out of in-memory arrays.

    --test-split is a fraction of all examples (only when the source has no test split);
    --val-split a fraction of what remains for training.
    """
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    rest = np.arange(len(labels))
    if not has_test and config.test_split > 0:
        kept, carved = carving.stratified_carve(labels, config.test_split, carving.TEST_CARVE_SEED)
        parts["test"] = (images[carved], labels[carved])
        rest = kept
    kept, carved = carving.stratified_carve(labels[rest], config.val_split, seed)
    parts["val"] = (images[rest[carved]], labels[rest[carved]])
    parts["train"] = (images[rest[kept]], labels[rest[kept]])
    return parts


def arrays_to_split(images: np.ndarray, labels: np.ndarray) -> Split:
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int64)))
    return Split(dataset, int(len(labels)), labels=labels)
