"""Seeded train/validation/test carving, the same way for every source.

The test carve uses a fixed seed so every run of a dataset is scored on the same images,
whatever --seed says; the validation carve follows --seed.
"""

from __future__ import annotations

import numpy as np

from imgcls_cli.backend import traced_as_written

TEST_CARVE_SEED = 20_240_601


def stratified_carve(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (kept, carved) with `fraction` of each class carved, seeded.

    Each class keeps at least one example, so tiny classes are never emptied.
    """
    rng = np.random.default_rng(seed)
    kept, carved = [], []
    for label in np.unique(labels):
        indices = np.flatnonzero(labels == label)
        rng.shuffle(indices)
        count = int(round(len(indices) * fraction))
        count = min(count, len(indices) - 1)
        carved.append(indices[:count])
        kept.append(indices[count:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(carved))


def stream_carve(dataset, part: str, seed: int, test_fraction: float, val_fraction: float):
    """Keep one part of a streamed dataset, chosen by a stateless hash of (seed, index).

    Works on datasets too large to list; the same seed always picks the same examples.
    `test_fraction` is 0 when the source has its own test split.
    """
    import tensorflow as tf

    def keep(index, example):
        # Test membership depends on the fixed seed, validation on --seed.
        u_test = tf.random.stateless_uniform(
            [], seed=tf.stack([tf.constant(TEST_CARVE_SEED, tf.int64), index])
        )
        if part == "test":
            return u_test < test_fraction
        u_val = tf.random.stateless_uniform([], seed=tf.stack([tf.cast(seed, tf.int64), index]))
        in_val = u_val < val_fraction
        not_test = u_test >= test_fraction
        return tf.logical_and(not_test, in_val if part == "val" else tf.logical_not(in_val))

    return (
        dataset.enumerate()
        .filter(traced_as_written(keep))
        .map(traced_as_written(lambda index, example: example))
    )
