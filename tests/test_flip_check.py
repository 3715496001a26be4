"""The mirror check behind --augment auto: does a mirror keep an image's class?"""

import numpy as np

from imgcls_cli.data.flip_check import accuracy_drop


def bars(count, seed, where):
    """Noisy 16x16 images, each with a bright bar placed by where(rng) → (rows, columns)."""
    rng = np.random.default_rng(seed)
    images = rng.normal(0, 20, (count, 16, 16)) + 100
    for image in images:
        rows, columns = where(rng)
        image[rows, columns] += 120
    return images


def test_classes_that_a_mirror_swaps_lose_accuracy_when_mirrored_copies_join():
    def left(rng):
        top = int(rng.integers(2, 10))
        return slice(top, top + 4), slice(1, 6)

    def right(rng):
        top = int(rng.integers(2, 10))
        return slice(top, top + 4), slice(10, 15)

    images = np.concatenate([bars(100, 0, left), bars(100, 1, right)])
    labels = np.repeat([0, 1], 100)
    assert accuracy_drop(images, labels, seed=0) > 0.3


def test_classes_that_a_mirror_keeps_lose_nothing():
    def horizontal(rng):
        top = int(rng.integers(2, 12))
        return slice(top, top + 2), slice(3, 13)

    def vertical(rng):
        left = int(rng.integers(2, 12))
        return slice(3, 13), slice(left, left + 2)

    images = np.concatenate([bars(100, 0, horizontal), bars(100, 1, vertical)])
    labels = np.repeat([0, 1], 100)
    assert abs(accuracy_drop(images, labels, seed=0)) < 0.1


def test_too_few_images_to_tell_count_as_no_drop():
    assert accuracy_drop(np.zeros((10, 16, 16)), np.zeros(10, np.int64), seed=0) == 0.0
