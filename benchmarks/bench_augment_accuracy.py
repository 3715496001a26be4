"""Test accuracy on the embedded digits with the default augmentation vs `--augment none`.

Augmentation must earn its place: with the default epochs, the default augmentation must
not lower the test accuracy. Runs `imgcls train --dataset digits` for each seed and each
setting ('default' passes no --augment flag).

    python benchmarks/bench_augment_accuracy.py [--epochs 10] [--seeds 42 1 2]
        [--settings default none light standard]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import print_table, save

IMGCLS = str(Path(sys.executable).parent / "imgcls")


def test_accuracy(setting: str, seed: int, epochs: int, run_dir: Path) -> float:
    command = [IMGCLS, "train", "--dataset", "digits", "--epochs", str(epochs)]
    command += ["--seed", str(seed), "--output", str(run_dir), "-q"]
    if setting != "default":
        command += ["--augment", setting]
    subprocess.run(command, check=True, capture_output=True)
    return json.loads((run_dir / "metrics.json").read_text())["test"]["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    parser.add_argument("--settings", nargs="+", default=["default", "none"])
    args = parser.parse_args()
    accuracies: dict[str, dict[int, float]] = {setting: {} for setting in args.settings}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for setting in args.settings:
                run_dir = Path(tmp) / f"{setting}-{seed}"
                accuracies[setting][seed] = test_accuracy(setting, seed, args.epochs, run_dir)
    means = {setting: statistics.mean(by_seed.values()) for setting, by_seed in accuracies.items()}
    print_table(
        f"digits, simplecnn, {args.epochs} epochs: test accuracy (450 images), seeds "
        + " ".join(map(str, args.seeds)),
        [
            (
                f"--augment {setting}",
                "  ".join(f"{acc:.2%}" for acc in accuracies[setting].values())
                + f"  mean {means[setting]:.2%}",
            )
            for setting in args.settings
        ],
    )
    save(
        f"augment_accuracy_{args.epochs}_epochs",
        {"epochs": args.epochs, "test_accuracy_by_seed": accuracies, "mean": means},
    )


if __name__ == "__main__":
    main()
