"""Class weights for imbalanced training data, and the warning that suggests them."""

from __future__ import annotations

from typing import Any

import numpy as np

from imgcls_cli.config import ClassWeight
from imgcls_cli.data.prepare import PreparedData

# Largest over smallest class in the training split above which a run without class
# weights is warned.
IMBALANCE_WARNING_RATIO = 3.0


def choose_class_weights(
    class_weight: ClassWeight, data: PreparedData, reporter: Any
) -> list[float] | None:
    """Each class's loss weight for --class-weight (None: unweighted), after a warning
    when the training split lacks a class or, unweighted, is imbalanced."""
    counts = known_class_counts(data)
    balanced = class_weight is ClassWeight.balanced
    if counts is not None:
        warning = imbalance_warning(counts, data.source.class_names, balanced)
        if warning:
            reporter.warning(warning)
    if not balanced:
        return None
    weights = balanced_class_weights(counts if counts is not None else count_labels(data.train))
    shown = ", ".join(f"{name} {w:.2f}" for name, w in zip(data.source.class_names, weights))
    reporter.info(f"Class weights (balanced): {shown}")
    return weights


def known_class_counts(data: PreparedData) -> np.ndarray | None:
    """Training images per class when the source knows its labels without reading images
    (folders, the embedded digits); None for TFDS streams, which would take a full pass."""
    labels = data.source.splits["train"].labels
    if labels is None:
        return None
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=data.source.num_classes)


def count_labels(dataset: Any) -> np.ndarray:
    """Examples per class in batches of one-hot labels (one pass; it also fills the
    pipeline's image cache, so the first epoch does not decode again). Labels mixed by
    mixup or cutmix add up to about the true counts, hence the rounding."""
    counts = None
    for _, labels in dataset:
        batch = labels.numpy().sum(axis=0)
        counts = batch if counts is None else counts + batch
    return np.rint(np.asarray(counts)).astype(np.int64)


def balanced_class_weights(counts: np.ndarray) -> list[float]:
    """n_examples / (n_classes * n_in_class), as scikit-learn's 'balanced': every class
    then contributes the same total loss. A class with no examples gets weight 0."""
    counts = np.asarray(counts, dtype=np.float64)
    total, classes = counts.sum(), len(counts)
    return [float(total / (classes * n)) if n else 0.0 for n in counts]


def imbalance_warning(counts: np.ndarray, class_names: list[str], weighted: bool) -> str | None:
    """One line when a class has no training images (no weight can help: the model never
    sees it), or, without class weights, when the largest class has more than
    IMBALANCE_WARNING_RATIO times the images of the smallest; else None."""
    counts = np.asarray(counts)
    largest = int(np.argmax(counts))
    most = f"'{class_names[largest]}' ({counts[largest]:,} images)"
    missing = [f"'{name}'" for name, n in zip(class_names, counts) if n == 0]
    if missing:
        return (
            f"No training images of class {', '.join(missing)} (largest class {most}): the "
            "model cannot learn it; add images of it to the training data."
        )
    smallest = int(np.argmin(counts))
    ratio = counts[largest] / counts[smallest]
    if weighted or ratio <= IMBALANCE_WARNING_RATIO:
        return None
    return (
        f"Imbalanced training split: {ratio:.1f}:1 between the largest class, {most}, and "
        f"the smallest, '{class_names[smallest]}' ({counts[smallest]:,}); "
        "--class-weight balanced weighs each class's loss by how rare it is."
    )
