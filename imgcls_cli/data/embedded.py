"""The embedded dataset: scikit-learn's handwritten digits, real data without a network."""

from __future__ import annotations

import numpy as np

from imgcls_cli.config import DataConfig
from imgcls_cli.data import splits as carving
from imgcls_cli.data.sources import Source, arrays_to_split, split_arrays


def load_digits(config: DataConfig, seed: int) -> Source:
    """scikit-learn's bundled handwritten digits (1,797 8x8 images): real data, no network.

    The canonical test split is a fixed, stratified 25% (450 images), so every run is
    scored on the same images.
    """
    pixels, labels = digits_arrays()
    # Pixel values are 0..16; scale to the 0..255 range every model expects as input.
    images = np.round(pixels * (255.0 / 16.0)).astype(np.uint8)[..., None]
    train_idx, test_idx = carving.stratified_carve(labels, 0.25, carving.TEST_CARVE_SEED)
    parts = split_arrays(images[train_idx], labels[train_idx], config, seed, has_test=True)
    parts["test"] = (images[test_idx], labels[test_idx])
    return Source(
        name="digits",
        class_names=[str(i) for i in range(10)],
        channels=1,
        native_size=(8, 8),
        splits={name: arrays_to_split(*arrays) for name, arrays in parts.items()},
        description={"kind": "embedded", "name": "digits", "origin": "scikit-learn load_digits"},
    )


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(1,797 8x8 images of 0..16, their digits), read from the file scikit-learn ships,
    as its load_digits reads it, without importing scikit-learn: its import (about 1.3 s,
    with SciPy and pandas) would double the start of a short run. Through load_digits
    where the file is not where scikit-learn keeps it."""
    import gzip
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("sklearn")
    folders = spec.submodule_search_locations if spec else None
    path = Path(next(iter(folders or [""]))) / "datasets" / "data" / "digits.csv.gz"
    if not path.is_file():
        from sklearn.datasets import load_digits as sklearn_digits

        digits = sklearn_digits()
        return digits.images, digits.target.astype(np.int64)
    with gzip.open(path, "rt") as rows:
        table = np.loadtxt(rows, delimiter=",")
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
