"""The tf.data pipeline every command shares: resize, cache, shuffle, batch, prefetch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .images import prepare_images
from .sources import Split

DEFAULT_IMAGE_SIZE = 64  # for folders whose images differ in size
LARGEST_NATIVE_SIZE = 256  # larger uniform images are still resized to the default
MEMORY_CACHE_BUDGET = 2 * 1024**3  # bytes of resized uint8 images kept in memory


def resolve_image_size(requested: int | None, native: tuple[int, int] | None) -> tuple[int, int]:
    """--image-size when given, else the source's own size when all images share a
    moderate one, else DEFAULT_IMAGE_SIZE."""
    if requested:
        return (requested, requested)
    if native and max(native) <= LARGEST_NATIVE_SIZE:
        return (int(native[0]), int(native[1]))
    return (DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE)


def fits_in_memory(num_examples: int, image_size: tuple[int, int], channels: int) -> bool:
    return num_examples * image_size[0] * image_size[1] * channels <= MEMORY_CACHE_BUDGET


def create_batches(
    split: Split,
    image_size: tuple[int, int],
    channels: int,
    num_classes: int,
    batch_size: int,
    *,
    shuffle_seed: int | None = None,
    augmentation: Callable[[Any, Any], tuple[Any, Any]] | None = None,
) -> Any:
    """Batches of (float32 0-255 images, one-hot labels); shuffled when a seed is given.

    Resized images are cached in memory when they fit, so decoding happens once.
    `augmentation` (training only) runs on each batch after the cache, so every epoch
    sees new random changes.
    """
    import tensorflow as tf

    dataset = split.dataset.map(
        lambda image, label: (prepare_images(image, image_size, channels), label),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if fits_in_memory(split.num_examples, image_size, channels):
        dataset = dataset.cache()
    if shuffle_seed is not None:
        buffer = max(1, min(split.num_examples, 10_000))
        dataset = dataset.shuffle(buffer, seed=shuffle_seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    dataset = dataset.map(
        lambda images, labels: (tf.cast(images, tf.float32), tf.one_hot(labels, num_classes)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if augmentation is not None:
        # Sequential on purpose: the layers' seed generators advance once per batch, and
        # parallel calls would hand the random draws to batches in a racy order.
        dataset = dataset.map(augmentation)
    return dataset.prefetch(tf.data.AUTOTUNE)
