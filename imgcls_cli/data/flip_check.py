"""Does a mirror keep an image's class? The check behind `--augment auto`'s flips.

A nearest-neighbour classifier of training thumbnails (16x16 grayscale, each scaled to
zero mean and unit variance) is scored on held-out training images twice: with the
other half of the images as its memory, then with their mirrored copies added under the
same labels. Where a mirror keeps the class (photos, faces), the copies are harmless; where
it turns one class into another (left/right arrows, b/d), they vote for the wrong class
and that class's accuracy falls. The largest drop of a class, averaged over a few random
halves, is the answer: a second or two on a thousand images, long before a training run
would show it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from imgcls_cli.backend import traced_as_written
from imgcls_cli.data.images import prepare_images
from imgcls_cli.data.sources import Split

THUMBNAIL = (16, 16)
SAMPLES = 1000  # training images looked at, at most
ROUNDS = 3  # random halves averaged
MIN_PER_CLASS = 10  # held-out images a class needs to count


def mirror_accuracy_drop(split: Split, seed: int) -> float:
    """The accuracy (a fraction) that mirrored copies cost the check on the class of this
    split that loses most."""
    images, labels = sample_thumbnails(split, SAMPLES, seed)
    return accuracy_drop(images, labels, seed)


def sample_thumbnails(split: Split, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to `count` training images as THUMBNAIL grayscale float arrays, and labels."""
    import tensorflow as tf

    if split.files is not None:  # a folder: a seeded sample of its files
        files = split.files.shuffle(max(1, split.num_examples), seed=seed).take(count)
        dataset = split.decode_files(files, THUMBNAIL)
    else:
        dataset = split.dataset.take(count)
    dataset = dataset.map(
        traced_as_written(lambda image, label: (prepare_images(image, THUMBNAIL, 1), label)),
        num_parallel_calls=tf.data.AUTOTUNE,
    ).batch(256)
    images, labels = [], []
    for batch_images, batch_labels in dataset.as_numpy_iterator():
        images.append(batch_images[..., 0].astype(np.float32))
        labels.append(batch_labels)
    if not images:
        return np.zeros((0, *THUMBNAIL), np.float32), np.zeros(0, np.int64)
    return np.concatenate(images), np.concatenate(labels).astype(np.int64)


def accuracy_drop(images: np.ndarray, labels: np.ndarray, seed: int) -> float:
    """The largest drop in one class's accuracy (a fraction), averaged over ROUNDS random
    halves, when a 1-NN classifier with one half as memory labels the other half and its
    memory's mirrored copies are then added. By class, because a mirror usually swaps a
    few classes (left/right among up/down too): over all classes the drop is diluted.
    Classes with fewer than MIN_PER_CLASS held-out images do not count; 0 when none do."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    drops = np.zeros((ROUNDS, len(classes)))
    counted = np.ones(len(classes), bool)
    for round_ in range(ROUNDS):
        order = rng.permutation(len(labels))
        half = len(order) // 2
        memory, held_out = order[:half], order[half:]
        truth = labels[held_out]
        plain = nearest_labels(images[memory], labels[memory], images[held_out])
        mirrored = np.concatenate([images[memory], images[memory][:, :, ::-1]])
        both = nearest_labels(mirrored, np.concatenate([labels[memory]] * 2), images[held_out])
        for index, label in enumerate(classes):
            mine = truth == label
            counted[index] &= mine.sum() >= MIN_PER_CLASS
            if mine.any():
                drops[round_, index] = np.mean(plain[mine] == label) - np.mean(both[mine] == label)
    mean = drops.mean(axis=0)[counted]
    return float(mean.max()) if len(mean) else 0.0


def nearest_labels(memory: np.ndarray, memory_labels: np.ndarray, queries: np.ndarray) -> Any:
    """Each query labelled with its most similar memory image's label."""
    similarity = standardise(queries) @ standardise(memory).T
    return memory_labels[np.argmax(similarity, axis=1)]


def standardise(images: Any) -> np.ndarray:
    """Flattened, each image with zero mean and unit norm (brightness and contrast do not
    count, shapes do)."""
    flat = np.asarray(images, np.float64).reshape(len(images), -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    return flat / (np.linalg.norm(flat, axis=1, keepdims=True) + 1e-9)
