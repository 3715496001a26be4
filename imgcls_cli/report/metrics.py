"""Classification metrics from true labels and predicted probabilities: the confusion
matrix, precision, recall, F1, top-k, the loss, the calibration (expected calibration error
over equal-width bins) and the rankings of mistakes. NumPy only: scikit-learn's import (about
1.3 s, with SciPy) would be paid by every training and evaluation for a few sums; the
scores are scikit-learn's, tie-breaking included (tests/test_metrics.py checks).
"""

from __future__ import annotations

from typing import Any

import numpy as np

CALIBRATION_BINS = 15  # equal-width confidence bins for the expected calibration error
EPSILON = 1e-7  # probabilities are clipped here before log, as Keras' crossentropy does


# A score whose 95% interval spans more than this (20 points: 80% cannot be told from
# 100%) rests on too few images to compare runs by; few_images_warning says so.
ROUGH_INTERVAL_WIDTH = 0.20


def accuracy_interval(accuracy: float, examples: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of an accuracy measured on `examples` images: unlike
    accuracy ± z·sd, it stays within 0-100% and is not empty at 0% or 100% (2 right of 2
    gives 34-100%)."""
    if examples <= 0:
        return 0.0, 1.0
    spread = z * z / examples
    centre = (accuracy + spread / 2) / (1 + spread)
    half = z * np.sqrt(accuracy * (1 - accuracy) / examples + spread / (4 * examples))
    half /= 1 + spread
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


def few_images_warning(what: str, accuracy: float, examples: int, remedy: str) -> str | None:
    """One line when `what` (e.g. "The test accuracy") rests on so few images that its
    95% interval is wider than ROUGH_INTERVAL_WIDTH, ending with `remedy`; else None."""
    if examples <= 0:
        return None
    low, high = accuracy_interval(accuracy, examples)
    if high - low <= ROUGH_INTERVAL_WIDTH:
        return None
    images = "1 image" if examples == 1 else f"{examples} images"
    return (
        f"{what}, {accuracy:.0%} on {images}, could be anything from {low:.0%} to {high:.0%} "
        "on new images (95% confidence interval): too few images to judge the model or "
        f"compare runs by. {remedy}"
    )


def held_out_splits(metrics: dict[str, Any]) -> list[str]:
    """The splits of a run's metrics.json scored on held-out images (val, test)."""
    return [split for split in ("val", "test") if metrics.get(split, {}).get("examples")]


def nothing_held_out(val_split: float, test_split: float, scores: str) -> str:
    """Why a run's only `scores` are on training images, and what to do about it."""
    said = (
        f"No validation or test images were held out, so {scores} on training images and "
        "say little about new ones: "
    )
    if not (val_split or test_split):
        return said + "keep some with --val-split and --test-split."
    return said + (
        f"each class has too few images for --val-split {val_split:g} and --test-split "
        f"{test_split:g} to hold one out. Add images, or raise them (e.g. --test-split 0.2)."
    )


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts with rows = true class and columns = predicted class."""
    pairs = np.asarray(labels, np.int64) * num_classes + np.asarray(predicted, np.int64)
    return np.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_scores(
    labels: np.ndarray, predicted: np.ndarray, num_classes: int
) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support of each class (0 where a class is never
    predicted or never occurs), as scikit-learn's precision_recall_fscore_support with
    zero_division=0 gives them (tests/test_metrics.py compares the two)."""
    counts = confusion_matrix(labels, predicted, num_classes)
    right = np.diag(counts).astype(np.float64)
    support, guessed = counts.sum(axis=1), counts.sum(axis=0)
    return {
        "precision": share(right, guessed),
        "recall": share(right, support),
        "f1": share(2 * right, support + guessed),  # 2TP / (2TP + FP + FN)
        "support": support,
    }


def share(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """part / whole, 0 where whole is 0."""
    return np.divide(part, whole, out=np.zeros(len(part)), where=whole > 0)


def averaged_scores(labels: np.ndarray, predicted: np.ndarray) -> dict[str, dict]:
    """Macro and support-weighted averages of precision, recall and F1 over the classes
    the data has images of: evaluating on a subset of the classes is neither dragged down
    nor lifted by classes that were never asked about (a prediction of one of them still
    costs its true class' recall).
    """
    labels, predicted = np.asarray(labels, np.int64), np.asarray(predicted, np.int64)
    present = np.unique(labels)
    classes = int(max(labels.max(initial=-1), predicted.max(initial=-1))) + 1
    scores = per_class_scores(labels, predicted, classes)
    weights = {"macro_avg": np.ones(len(present)), "weighted_avg": scores["support"][present]}
    averages: dict[str, dict] = {}
    for name, weight in weights.items():
        averages[name] = {
            metric: float(np.average(scores[metric][present], weights=weight))
            if len(present)
            else 0.0
            for metric in ("precision", "recall", "f1")
        }
        averages[name]["support"] = int(len(labels))
    return averages


def top_k_accuracy(labels: np.ndarray, probabilities: np.ndarray, k: int) -> float:
    """The fraction of examples whose true class is among the k most probable ones (ties
    broken as scikit-learn's top_k_accuracy_score breaks them)."""
    classes = probabilities.shape[1]
    if len(labels) == 0:
        return 0.0
    if k >= classes:
        return 1.0
    if classes == 2:  # k is 1; scikit-learn takes class 1 above 0.5 only
        return float(np.mean((probabilities[:, 1] > 0.5).astype(np.int64) == labels))
    ranked = np.argsort(probabilities, axis=1, kind="mergesort")[:, ::-1][:, :k]
    return float(np.mean((ranked == np.asarray(labels)[:, None]).any(axis=1)))


def cross_entropy(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean negative log-probability of the true class."""
    if len(labels) == 0:
        return float("nan")
    chosen = probabilities[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(chosen, EPSILON, 1.0)).mean())


def calibration_bins(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = CALIBRATION_BINS
) -> list[dict[str, float]]:
    """Examples grouped by confidence into equal-width bins (lower, upper]: each bin's
    count, mean confidence and accuracy. Bin 0 also takes a confidence of exactly 0."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        members = index == b
        count = int(members.sum())
        rows.append(
            {
                "lower": b / bins,
                "upper": (b + 1) / bins,
                "count": count,
                "confidence": float(confidence[members].mean()) if count else 0.0,
                "accuracy": float(correct[members].mean()) if count else 0.0,
            }
        )
    return rows


def expected_calibration_error(bins: list[dict[str, float]]) -> float:
    """Sum over bins of (bin share of examples) x |accuracy - confidence|."""
    total = sum(row["count"] for row in bins)
    if not total:
        return 0.0
    return float(
        sum(row["count"] / total * abs(row["accuracy"] - row["confidence"]) for row in bins)
    )


def most_confident_mistakes(labels: np.ndarray, probabilities: np.ndarray, count: int) -> list[int]:
    """Indices of wrong predictions, most confident first."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    confidence = probabilities[wrong, predicted[wrong]]
    order = np.argsort(-confidence, kind="stable")
    return [int(i) for i in wrong[order][:count]]


def top_losses(labels: np.ndarray, probabilities: np.ndarray, count: int) -> list[int]:
    """Indices of the examples with the highest loss (-log of the true class's
    probability), highest first: the worst answers, which a confidence ranking of the
    mistakes misses when the wrong class wins by a little but the true one is far off."""
    true = np.clip(probabilities[np.arange(len(labels)), labels], 1e-12, 1.0)
    order = np.argsort(np.log(true), kind="stable")  # lowest log-probability first
    return [int(i) for i in order[:count]]


def classification_report(
    labels: np.ndarray,
    probabilities: np.ndarray,
    class_names: list[str],
    top_k: int | None,
) -> dict:
    """Every metric `imgcls evaluate` reports, as JSON-ready plain data."""
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    predicted = probabilities.argmax(axis=1)
    matrix = confusion_matrix(labels, predicted, len(class_names))
    scores = per_class_scores(labels, predicted, len(class_names))
    bins = calibration_bins(labels, probabilities)
    report = {
        "examples": int(len(labels)),
        "loss": cross_entropy(labels, probabilities),
        "accuracy": float((predicted == labels).mean()) if len(labels) else 0.0,
    }
    if top_k is not None:
        report["top_k"] = {"k": top_k, "accuracy": top_k_accuracy(labels, probabilities, top_k)}
    report["expected_calibration_error"] = expected_calibration_error(bins)
    # A class without images has no recall to measure: its recall and F1 are null ("no
    # images"), not zeros, and it is left out of the averages; its precision is null too
    # unless the model predicted it (then 0: every such prediction was wrong).
    predicted_counts = np.bincount(predicted, minlength=len(class_names))
    report["per_class"] = [
        {
            "class": name,
            "precision": float(scores["precision"][i])
            if scores["support"][i] or predicted_counts[i]
            else None,
            **{
                key: float(scores[key][i]) if scores["support"][i] else None
                for key in ("recall", "f1")
            },
            "support": int(scores["support"][i]),
        }
        for i, name in enumerate(class_names)
    ]
    report.update(averaged_scores(labels, predicted))
    report["confusion_matrix"] = {"labels": list(class_names), "matrix": matrix.tolist()}
    report["calibration_bins"] = bins
    return report
