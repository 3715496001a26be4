"""Classification metrics in plain NumPy, from true labels and predicted probabilities.

No scikit-learn at runtime: every number here is a few lines of counting that a test can
check against a hand count.
"""

from __future__ import annotations

import numpy as np

CALIBRATION_BINS = 15  # equal-width confidence bins for the expected calibration error
EPSILON = 1e-7  # probabilities are clipped here before log, as Keras' crossentropy does


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts with rows = true class and columns = predicted class."""
    labels = np.asarray(labels, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    flat = np.bincount(labels * num_classes + predicted, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, with 0 where the denominator is 0 (as scikit-learn reports)."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    result = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=result, where=denominator != 0)
    return result


def per_class_scores(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support of each class, from a confusion matrix."""
    hits = np.diag(matrix)
    support = matrix.sum(axis=1)
    precision = safe_divide(hits, matrix.sum(axis=0))
    recall = safe_divide(hits, support)
    f1 = safe_divide(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def averaged_scores(scores: dict[str, np.ndarray], matrix: np.ndarray) -> dict[str, dict]:
    """Macro and support-weighted averages of precision, recall and F1.

    Classes that never occur in the data nor in the predictions are left out of the macro
    average (as scikit-learn does), so evaluating on a subset of the classes is not
    dragged down by classes that were never asked about.
    """
    present = (matrix.sum(axis=0) + matrix.sum(axis=1)) > 0
    support = scores["support"]
    total = int(support.sum())
    averages: dict[str, dict] = {"macro_avg": {}, "weighted_avg": {}}
    for name in ("precision", "recall", "f1"):
        values = scores[name]
        macro = float(values[present].mean()) if present.any() else 0.0
        weighted = float((values * support).sum() / total) if total else 0.0
        averages["macro_avg"][name] = macro
        averages["weighted_avg"][name] = weighted
    for average in averages.values():
        average["support"] = total
    return averages


def top_k_accuracy(labels: np.ndarray, probabilities: np.ndarray, k: int) -> float:
    """The fraction of examples whose true class is among the k most probable ones."""
    if len(labels) == 0:
        return 0.0
    k = min(k, probabilities.shape[1])
    top = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return float((top == np.asarray(labels)[:, None]).any(axis=1).mean())


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
    scores = per_class_scores(matrix)
    bins = calibration_bins(labels, probabilities)
    report = {
        "examples": int(len(labels)),
        "loss": cross_entropy(labels, probabilities),
        "accuracy": float((predicted == labels).mean()) if len(labels) else 0.0,
    }
    if top_k is not None:
        report["top_k"] = {"k": top_k, "accuracy": top_k_accuracy(labels, probabilities, top_k)}
    report["expected_calibration_error"] = expected_calibration_error(bins)
    report["per_class"] = [
        {
            "class": name,
            "precision": float(scores["precision"][i]),
            "recall": float(scores["recall"][i]),
            "f1": float(scores["f1"][i]),
            "support": int(scores["support"][i]),
        }
        for i, name in enumerate(class_names)
    ]
    report.update(averaged_scores(scores, matrix))
    report["confusion_matrix"] = {"labels": list(class_names), "matrix": matrix.tolist()}
    report["calibration_bins"] = bins
    return report
