"""Start-up costs: `imgcls --help` vs `python -c "import tensorflow"`, how fast an
offline `--dataset mnist` fails with its message (TFDS alone retries for minutes), and a
command that needs TensorFlow from a cold start (`imgcls predict` of one image) as the
console script runs it (TensorFlow imported without Keras' optional extras:
backend.KERAS_EXTRAS) against the same command with Keras whole (the command line's app
called directly, as before), alternated.

    python benchmarks/bench_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from common import print_table, save, summary, time_command

IMGCLS = str(Path(sys.executable).parent / "imgcls")
# The command line without backend.claim_process(): TensorFlow imports Keras whole.
WHOLE_KERAS = "import sys; from imgcls_cli.cli.app import app; sys.argv[0] = 'imgcls'; app()"


def predict_cold(runs: int) -> dict[str, dict]:
    """`imgcls predict ONE.png --model RUN` (a simplecnn of 28x28 digits), lean and whole,
    alternated so that both see the same machine."""
    import subprocess
    import time

    import numpy as np
    from PIL import Image

    from imgcls_cli import api

    with tempfile.TemporaryDirectory() as scratch:
        run = api.train(dataset="digits", arch="simplecnn", epochs=1, output=Path(scratch) / "r")
        image = Path(scratch) / "one.png"
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(image)
        arguments = ["predict", str(image), "--model", str(run.path)]
        commands = {
            "lean": [IMGCLS, *arguments],
            "whole": [sys.executable, "-c", WHOLE_KERAS, *arguments],
        }
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, command in commands.items():
                started = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True)
                samples[name].append(time.perf_counter() - started)
    return {name: summary(times) for name, times in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    help_time = time_command([IMGCLS, "--help"], args.runs)
    tf_import = time_command([sys.executable, "-c", "import tensorflow"], args.runs)
    with tempfile.TemporaryDirectory() as data_dir:
        offline = time_command(
            [IMGCLS, "train", "--dataset", "mnist", "--data-dir", data_dir], max(1, args.runs // 2)
        )
    predict = predict_cold(args.runs)

    def fmt(t):
        return f"{t['median']:.3f} s (min {t['min']:.3f}, max {t['max']:.3f}, {t['runs']} runs)"

    print_table(
        "Start-up",
        [
            ("imgcls --help", fmt(help_time) + "  target < 0.5 s"),
            ('python -c "import tensorflow"', fmt(tf_import)),
            ("offline --dataset mnist fails", fmt(offline) + "  target < 15 s"),
            ("imgcls predict, one image, cold", fmt(predict["lean"])),
            ("the same, Keras imported whole", fmt(predict["whole"])),
            ("ratio (medians)", f"{predict['lean']['median'] / predict['whole']['median']:.2f}x"),
        ],
    )
    save(
        "startup",
        {
            "help_seconds": help_time,
            "import_tensorflow_seconds": tf_import,
            "offline_mnist_failure_seconds": offline,
            "predict_cold_seconds": predict,
        },
    )


if __name__ == "__main__":
    main()
