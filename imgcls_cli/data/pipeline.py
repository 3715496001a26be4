"""The tf.data pipeline every command shares: resize, cache or stream, shuffle, batch."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

from imgcls_cli.backend import traced_as_written
from imgcls_cli.config import CacheMode
from imgcls_cli.data.images import prepare_images
from imgcls_cli.data.sources import Split

DEFAULT_IMAGE_SIZE = 64  # for folders whose images differ in size
LARGEST_NATIVE_SIZE = 256  # larger uniform images are still resized to the default
MEMORY_CACHE_LIMIT = 2 * 1024**3  # bytes of resized uint8 images kept in memory, at most
SHUFFLE_BUFFER_BYTES = 128 * 1024**2  # decoded images held for shuffling while streaming
MAX_SHUFFLE_BUFFER = 10_000


def resolve_image_size(requested: int | None, native: tuple[int, int] | None) -> tuple[int, int]:
    """--image-size when given, else the source's own size when all images share a
    moderate one, else DEFAULT_IMAGE_SIZE."""
    if requested:
        return (requested, requested)
    if native and max(native) <= LARGEST_NATIVE_SIZE:
        return (int(native[0]), int(native[1]))
    return (DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE)


def memory_cache_budget() -> int:
    """MEMORY_CACHE_LIMIT, or a quarter of the machine's memory when that is smaller, so
    a laptop keeps room for TensorFlow and everything else."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not on every platform
        return MEMORY_CACHE_LIMIT
    return min(MEMORY_CACHE_LIMIT, physical // 4)


def image_bytes(image_size: tuple[int, int], channels: int) -> int:
    return image_size[0] * image_size[1] * channels


def cache_placement(
    mode: CacheMode, num_examples: int, image_size: tuple[int, int], channels: int
) -> str:
    """Where resized images live between epochs under --cache `mode`: "memory" when asked
    or when they fit the memory budget (auto); "disk" when asked or, under auto, when they
    do not fit memory but fit the disk; else "stream" (decoded every epoch)."""
    from imgcls_cli.data import disk_cache

    size = num_examples * image_bytes(image_size, channels)
    if mode is CacheMode.memory or (mode is CacheMode.auto and size <= memory_cache_budget()):
        return "memory"
    if mode in (CacheMode.disk, CacheMode.auto) and disk_cache.has_room(size):
        return "disk"
    return "stream"


def shard_size(count: int, shard: tuple[int, int] | None) -> int:
    """Examples in shard (shards, index) of `count`, as Dataset.shard deals them."""
    if shard is None:
        return count
    shards, index = shard
    return max(0, (count - index + shards - 1) // shards)


def create_batches(
    split: Split,
    image_size: tuple[int, int],
    channels: int,
    num_classes: int,
    batch_size: int,
    *,
    shuffle_seed: int | None = None,
    augmentation: Any = None,
    cache: bool | str = False,
    shard: tuple[int, int] | None = None,
) -> Any:
    """Batches of (float32 0-255 images, one-hot labels); shuffled when a seed is given.

    `shard` (shards, index): only this input pipeline's part of the split, taken before
    any image is read (a folder's file list, after the epoch's shuffle when streaming;
    see Split.shard for the other sources), for one worker of a multi-worker run.

    `cache`: True or "memory" keeps the resized images in memory, "disk" in a file of
    the user's cache folder, so decoding happens once. Otherwise they are streamed: a
    folder's file list is shuffled before decoding, and other sources shuffle within a
    buffer of SHUFFLE_BUFFER_BYTES, so memory stays flat as data grows. `augmentation`
    (training only) runs on each batch after the cache, so every epoch sees new random
    changes.
    """
    import tensorflow as tf

    if split.num_examples > 0:  # the same batches, but tf.data allocates what it is asked
        batch_size = min(batch_size, split.num_examples)
    shuffle = shuffle_seed is not None
    in_memory = cache is True or cache == "memory"  # "stream" and False: neither
    folder = split.files is not None

    def part(files: Any) -> Any:
        return files if shard is None else files.shard(*shard)

    def resized(files: Any = None, batch: int | None = None) -> Any:
        """The split's images (this shard's) at image_size (in batches of `batch` if
        given, for folders): a folder's decoder resizes as it decodes (large JPEGs decode
        at a reduced scale); other sources are resized here."""
        if folder:  # never split.dataset: that would decode (and trace) at native size
            files = part(split.files) if files is None else files
            dataset = split.decode_files(files, image_size, batch)
            if dataset.element_spec[0].shape[-1] == channels:
                return dataset
        else:
            dataset = split.dataset if shard is None else split.shard(*shard)
        return dataset.map(
            traced_as_written(
                lambda image, label: (prepare_images(image, image_size, channels), label)
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    if cache == "disk" and split.num_examples > 0:
        from imgcls_cli.data import disk_cache

        images, labels = disk_cache.write_images(
            resized(), shard_size(split.num_examples, shard), (*image_size, channels)
        )
        dataset = disk_cache.read_batches(images, labels, batch_size, shuffle_seed)
    elif not in_memory and shuffle and folder:
        # Shuffling paths costs nothing, and gives a full shuffle without holding images.
        # Every worker draws the same order (same seed) and takes its own part of it, so
        # an epoch reads each file once across the cluster.
        files = split.files.shuffle(
            max(1, split.num_examples), seed=shuffle_seed, reshuffle_each_iteration=True
        )
        dataset = resized(part(files), batch_size)
    else:
        dataset = resized()
        if in_memory:
            dataset = dataset.cache()
        if shuffle:
            dataset = dataset.shuffle(
                shuffle_buffer_size(split.num_examples, image_size, channels, in_memory),
                seed=shuffle_seed,
                reshuffle_each_iteration=True,
            )
        dataset = dataset.batch(batch_size)
    dataset = dataset.map(
        traced_as_written(
            lambda images, labels: (tf.cast(images, tf.float32), tf.one_hot(labels, num_classes))
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if augmentation is not None:
        # A key per batch, drawn anew each epoch: like the shuffle order, the keys of
        # epoch e depend on the seed and e only, so a resumed run (which replays epochs
        # by creating iterators, see training.fit) augments as an uninterrupted one.
        # Sequential on purpose: the layers' seed generators are shared state.
        # Each worker (shard) draws its own keys, or they would change their images alike.
        seed = augmentation.seed + (0 if shard is None else shard[1])
        keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        dataset = tf.data.Dataset.zip(dataset, keys).map(
            traced_as_written(lambda batch, key: augmentation(*batch, key=key))
        )
    return dataset.prefetch(tf.data.AUTOTUNE)


@dataclasses.dataclass
class ShardedInput:
    """A split's batches for training, two ways: `dataset`, global batches from one input
    pipeline; `for_worker(input_context)`, the part of the split one worker reads, in
    per-replica batches (tf.distribute's distribute_datasets_from_function): on several
    workers, each reads and decodes only its own part."""

    dataset: Any
    for_worker: Callable[[Any], Any]


def sharded_batches(split: Split, batch_size: int, **options: Any) -> ShardedInput:
    """create_batches(split, …, batch_size, **options) as a ShardedInput."""

    def for_worker(context: Any) -> Any:
        return create_batches(
            split,
            batch_size=context.get_per_replica_batch_size(batch_size),
            shard=(context.num_input_pipelines, context.input_pipeline_id),
            **options,
        )

    return ShardedInput(create_batches(split, batch_size=batch_size, **options), for_worker)


def shuffle_buffer_size(
    num_examples: int, image_size: tuple[int, int], channels: int, cached: bool
) -> int:
    """All examples when cached (they are in memory anyway), up to MAX_SHUFFLE_BUFFER;
    when streaming, no more than SHUFFLE_BUFFER_BYTES of images."""
    limit = MAX_SHUFFLE_BUFFER
    if not cached:
        limit = min(limit, SHUFFLE_BUFFER_BYTES // image_bytes(image_size, channels))
    return max(1, min(num_examples, limit))
