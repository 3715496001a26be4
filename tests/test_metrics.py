"""Metrics against a hand count, and the report against scikit-learn on random data."""

import math

import numpy as np
import pytest

from imgcls_cli.report import metrics

# 9 examples, 3 classes. Rows = true class, columns = predicted, counted by hand:
#   true 0: predicted 0, 0, 1        -> [2, 1, 0]
#   true 1: predicted 1, 2           -> [0, 1, 1]
#   true 2: predicted 2, 2, 1, 2     -> [0, 1, 3]
LABELS = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
PREDICTED = np.array([0, 0, 1, 1, 2, 2, 2, 1, 2])


def one_hot_probabilities(predicted, num_classes, confidence):
    """Probabilities whose argmax is `predicted`, with the rest spread evenly."""
    rest = (1 - confidence) / (num_classes - 1)
    probabilities = np.full((len(predicted), num_classes), rest)
    probabilities[np.arange(len(predicted)), predicted] = confidence
    return probabilities


def test_confusion_matrix_matches_hand_count():
    matrix = metrics.confusion_matrix(LABELS, PREDICTED, 3)
    assert matrix.tolist() == [[2, 1, 0], [0, 1, 1], [0, 1, 3]]


def test_per_class_scores_match_hand_count():
    scores = metrics.per_class_scores(LABELS, PREDICTED, 3)
    # precision = hits / column sum (2, 3, 4); recall = hits / row sum (3, 2, 4)
    assert scores["precision"].tolist() == pytest.approx([1.0, 1 / 3, 3 / 4])
    assert scores["recall"].tolist() == pytest.approx([2 / 3, 1 / 2, 3 / 4])
    assert scores["f1"].tolist() == pytest.approx([0.8, 0.4, 0.75])
    assert scores["support"].tolist() == [3, 2, 4]


def test_report_matches_hand_count():
    probabilities = one_hot_probabilities(PREDICTED, 3, 0.8)
    report = metrics.classification_report(LABELS, probabilities, ["a", "b", "c"], top_k=None)
    assert report["examples"] == 9
    assert report["accuracy"] == pytest.approx(6 / 9)
    assert report["macro_avg"]["precision"] == pytest.approx((1 + 1 / 3 + 3 / 4) / 3)
    assert report["weighted_avg"]["precision"] == pytest.approx((3 * 1 + 2 / 3 + 4 * 3 / 4) / 9)
    assert report["weighted_avg"]["recall"] == pytest.approx(6 / 9)  # = accuracy, always
    assert report["macro_avg"]["f1"] == pytest.approx((0.8 + 0.4 + 0.75) / 3)
    # 6 right at p=0.8 and 3 wrong, where the true class got (1 - 0.8) / 2 = 0.1.
    assert report["loss"] == pytest.approx(-(6 * math.log(0.8) + 3 * math.log(0.1)) / 9)
    # All 9 share confidence 0.8, so ECE = |accuracy - 0.8|.
    assert report["expected_calibration_error"] == pytest.approx(abs(6 / 9 - 0.8))
    assert "top_k" not in report
    assert report["per_class"][1] == {
        "class": "b",
        "precision": pytest.approx(1 / 3),
        "recall": pytest.approx(0.5),
        "f1": pytest.approx(0.4),
        "support": 2,
    }


def test_expected_calibration_error_over_two_bins():
    labels = np.array([0, 1, 0, 1])
    # Two correct at 0.9; at 0.6 one right (label 0) and one wrong (label 1).
    probabilities = np.array([[0.9, 0.1], [0.1, 0.9], [0.6, 0.4], [0.6, 0.4]])
    bins = metrics.calibration_bins(labels, probabilities)
    assert sum(row["count"] for row in bins) == 4
    assert metrics.expected_calibration_error(bins) == pytest.approx(
        0.5 * abs(1.0 - 0.9) + 0.5 * abs(0.5 - 0.6)
    )


def test_top_k_counts_the_true_class_among_the_k_most_probable():
    labels = np.array([0, 1, 2])
    probabilities = np.array(
        [
            [0.6, 0.3, 0.1],  # rank 1
            [0.5, 0.3, 0.2],  # rank 2
            [0.5, 0.4, 0.1],  # rank 3
        ]
    )
    assert metrics.top_k_accuracy(labels, probabilities, 1) == pytest.approx(1 / 3)
    assert metrics.top_k_accuracy(labels, probabilities, 2) == pytest.approx(2 / 3)
    assert metrics.top_k_accuracy(labels, probabilities, 5) == 1.0


def test_classes_absent_from_data_and_predictions_are_left_out_of_macro_average():
    labels, predicted = np.array([0, 0, 1]), np.array([0, 1, 1])
    probabilities = one_hot_probabilities(predicted, 4, 0.7)
    report = metrics.classification_report(labels, probabilities, list("abcd"), top_k=None)
    # Classes c and d never occur: the macro average is over a and b only, and their rows
    # say "no images" (null scores), not zeros.
    assert report["macro_avg"]["recall"] == pytest.approx((0.5 + 1.0) / 2)
    assert report["per_class"][3] == {
        "class": "d",
        "precision": None,
        "recall": None,
        "f1": None,
        "support": 0,
    }


def test_a_class_predicted_but_without_images_is_left_out_of_the_averages():
    labels, predicted = np.array([0, 0, 1]), np.array([0, 2, 1])  # c predicted, never true
    probabilities = one_hot_probabilities(predicted, 3, 0.7)
    report = metrics.classification_report(labels, probabilities, list("abc"), top_k=None)
    assert report["macro_avg"]["precision"] == pytest.approx((1 + 1) / 2)
    assert report["macro_avg"]["recall"] == pytest.approx((0.5 + 1.0) / 2)
    # c has no images, but the model called one image c: that false positive shows.
    assert report["per_class"][2]["precision"] == 0.0 and report["per_class"][2]["recall"] is None


def test_most_confident_mistakes_come_first():
    labels = np.array([0, 0, 1, 1])
    probabilities = np.array([[0.2, 0.8], [0.9, 0.1], [0.95, 0.05], [0.6, 0.4]])
    assert metrics.most_confident_mistakes(labels, probabilities, 5) == [2, 0, 3]
    assert metrics.most_confident_mistakes(labels, probabilities, 1) == [2]


def test_top_losses_rank_by_the_true_class_probability_not_the_winner():
    """Example 1 is wrong with the winner at 0.5 but its true class at 0.05 (loss 3.0);
    example 0 is wrong more confidently (0.8) with its true class at 0.2 (loss 1.6):
    confidence ranks 0 first, loss ranks 1 first. Right answers rank too (example 2)."""
    labels = np.array([0, 0, 1, 1])
    probabilities = np.array(
        [[0.2, 0.8, 0.0], [0.05, 0.45, 0.5], [0.1, 0.9, 0.0], [0.5, 0.45, 0.05]]
    )
    assert metrics.most_confident_mistakes(labels, probabilities, 5) == [0, 1, 3]
    assert metrics.top_losses(labels, probabilities, 4) == [1, 0, 3, 2]
    assert metrics.top_losses(labels, probabilities, 1) == [1]


def test_agrees_with_scikit_learn_on_random_data():
    from sklearn.metrics import precision_recall_fscore_support

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 6, 500)
    probabilities = rng.dirichlet(np.ones(6), 500)
    predicted = probabilities.argmax(axis=1)
    report = metrics.classification_report(labels, probabilities, list("abcdef"), top_k=3)
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            labels, predicted, average=average, zero_division=0
        )
        ours = report[f"{average}_avg"]
        assert (ours["precision"], ours["recall"], ours["f1"]) == pytest.approx((p, r, f))


@pytest.mark.parametrize("classes", [2, 3, 7])
def test_every_score_is_scikit_learns_with_ties_and_missing_classes(classes):
    """The NumPy scores against scikit-learn's: classes without images or predictions,
    probabilities quantized so that ties are common (top-k breaks them as it does)."""
    from sklearn import metrics as reference

    rng = np.random.default_rng(classes)
    for trial in range(20):
        size = int(rng.integers(1, 60))
        probabilities = np.round(rng.dirichlet(np.ones(classes), size) * 4) / 4
        used = rng.choice(classes, size=max(1, classes - trial % 3), replace=False)
        labels = rng.choice(used, size)
        predicted = probabilities.argmax(axis=1)
        everyone = np.arange(classes)
        assert (
            metrics.confusion_matrix(labels, predicted, classes)
            == reference.confusion_matrix(labels, predicted, labels=everyone)
        ).all()
        ours = metrics.per_class_scores(labels, predicted, classes)
        theirs = reference.precision_recall_fscore_support(
            labels, predicted, labels=everyone, zero_division=0
        )
        for name, values in zip(("precision", "recall", "f1", "support"), theirs, strict=True):
            assert ours[name] == pytest.approx(values), (name, trial)
        averages = metrics.averaged_scores(labels, predicted)
        for name, average in (("macro_avg", "macro"), ("weighted_avg", "weighted")):
            p, r, f, _ = reference.precision_recall_fscore_support(
                labels, predicted, labels=np.unique(labels), average=average, zero_division=0
            )
            got = averages[name]
            assert (got["precision"], got["recall"], got["f1"]) == pytest.approx((p, r, f))
        for k in range(1, classes):
            scores = probabilities[:, 1] if classes == 2 else probabilities
            expected = reference.top_k_accuracy_score(labels, scores, k=k, labels=everyone)
            assert metrics.top_k_accuracy(labels, probabilities, k) == pytest.approx(expected)


@pytest.mark.parametrize(
    "right, examples, low, high",
    [
        (2, 2, 0.3424, 1.0),
        (50, 100, 0.4038, 0.5962),
        (0, 10, 0.0, 0.2775),
        (10, 13, 0.4974, 0.9182),
    ],
)
def test_accuracy_interval_is_wilsons(right, examples, low, high):
    # Wilson's 95% interval, by hand: (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n).
    found = metrics.accuracy_interval(right / examples, examples)
    assert found == pytest.approx((low, high), abs=1e-4)


def test_a_score_on_few_images_is_called_rough_and_one_on_enough_is_not():
    assert metrics.few_images_warning("The test accuracy", 10 / 13, 13, "Score more.") == (
        "The test accuracy, 77% on 13 images, could be anything from 50% to 92% on new images "
        "(95% confidence interval): too few images to judge the model or compare runs by. "
        "Score more."
    )
    # 100% on 15 images spans 80-100%; on 16, 81-100% (within the 20 points).
    assert metrics.few_images_warning("The accuracy", 1.0, 15, "") is not None
    assert metrics.few_images_warning("The accuracy", 1.0, 16, "") is None
    assert metrics.few_images_warning("The accuracy", 0.9, 40, "") is None
    assert metrics.few_images_warning("The accuracy", 0.5, 90, "") is not None
