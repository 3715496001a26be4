"""Class weights and the imbalance warning: the pure functions, then `imgcls train` on a
tiny imbalanced folder."""

import csv
import json

import numpy as np
import pytest
from conftest import make_class_folder

from imgcls_cli.engine.class_weights import balanced_class_weights, imbalance_warning


def test_balanced_class_weights_equalize_each_class_total():
    counts = np.array([30, 10, 0, 20])
    weights = balanced_class_weights(counts)
    assert weights == pytest.approx([60 / 120, 60 / 40, 0.0, 60 / 80])
    totals = [w * n for w, n in zip(weights, counts) if n]
    assert totals == pytest.approx([totals[0]] * 3)


def test_imbalance_beyond_three_to_one_names_both_classes_and_the_flag():
    warning = imbalance_warning(np.array([40, 13, 10]), ["cat", "dog", "fox"], weighted=False)
    assert warning == (
        "Imbalanced training split: 4.0:1 between the largest class, 'cat' (40 images), "
        "and the smallest, 'fox' (10); --class-weight balanced weighs each class's loss by "
        "how rare it is."
    )


@pytest.mark.parametrize(
    "counts, weighted",
    [([30, 10], False), ([12, 12, 5], False), ([40, 10], True)],
    ids=["exactly-3-to-1", "balanced-enough", "already-weighted"],
)
def test_no_warning_up_to_three_to_one_or_with_class_weights(counts, weighted):
    assert imbalance_warning(np.array(counts), ["a", "b", "c"][: len(counts)], weighted) is None


@pytest.mark.parametrize("weighted", [False, True])
def test_a_class_without_training_images_is_warned_even_with_class_weights(weighted):
    warning = imbalance_warning(np.array([0, 25, 3]), ["empty", "big", "small"], weighted)
    assert warning.startswith("No training images of class 'empty' (largest class 'big'")


def history_losses(run_dir):
    with (run_dir / "history.csv").open() as handle:
        return [float(row["loss"]) for row in csv.DictReader(handle)]


@pytest.mark.slow
def test_train_warns_about_imbalance_and_class_weight_balanced_weighs_the_loss(
    runner, cli_app, tmp_path
):
    root = make_class_folder(tmp_path / "skewed", classes=("few", "many"), per_class=12, size=8)
    for path in sorted((root / "few").iterdir())[3:]:
        path.unlink()
    common = ["train", "--quiet", "--data", str(root), "--val-split", "0", "--test-split", "0"]
    common += ["--epochs", "1", "--batch-size", "8", "--augment", "none"]

    plain = runner.invoke(cli_app, [*common, "--output", str(tmp_path / "plain")])
    assert plain.exit_code == 0, plain.output
    assert "Warning: Imbalanced training split: 4.0:1 between the largest class, 'many'" in (
        plain.output
    )
    assert "--class-weight balanced" in plain.output
    weighted = runner.invoke(
        cli_app, [*common, "--class-weight", "balanced", "--output", str(tmp_path / "weighted")]
    )
    assert weighted.exit_code == 0, weighted.output
    assert "Imbalanced" not in weighted.output

    plain_config = json.loads((tmp_path / "plain" / "config.json").read_text())
    config = json.loads((tmp_path / "weighted" / "config.json").read_text())
    assert plain_config["options"]["class_weight"] == "none"
    assert plain_config["resolved"]["class_weights"] is None
    assert config["options"]["class_weight"] == "balanced"
    assert config["resolved"]["class_weights"] == pytest.approx([15 / 6, 15 / 24])  # few, many
    # Same seed, same data and model: only the weighting changes the training loss.
    assert history_losses(tmp_path / "weighted") != history_losses(tmp_path / "plain")
