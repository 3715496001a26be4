"""`make demo`'s training (embedded digits, simplecnn, 30 epochs) and its test accuracy,
for three seeds. Target: at least 97%.

    python benchmarks/bench_demo_accuracy.py [--seeds 42 1 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import print_table, save, summary

IMGCLS = str(Path(sys.executable).parent / "imgcls")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    args = parser.parse_args()
    accuracies = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            run_dir = Path(tmp) / f"seed{seed}"
            command = [
                IMGCLS,
                "train",
                "--dataset",
                "digits",
                "--arch",
                "simplecnn",
                "--epochs",
                "30",
                "--seed",
                str(seed),
                "--output",
                str(run_dir),
                "-q",
            ]
            subprocess.run(command, check=True, capture_output=True)
            metrics = json.loads((run_dir / "metrics.json").read_text())
            accuracies[seed] = metrics["test"]["accuracy"]
    stats = summary(list(accuracies.values()))
    print_table(
        "make demo: digits, simplecnn, 30 epochs, test accuracy (450 images)",
        [(f"seed {seed}", f"{acc:.2%}") for seed, acc in accuracies.items()]
        + [("median", f"{stats['median']:.2%}  target >= 97%")],
    )
    save("demo_accuracy", {"test_accuracy_by_seed": accuracies, "summary": stats})


if __name__ == "__main__":
    main()
