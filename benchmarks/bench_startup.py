"""Start-up costs: `imgcls --help` vs `python -c "import tensorflow"`, and how fast an
offline `--dataset mnist` fails with its message (TFDS alone retries for minutes).

    python benchmarks/bench_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from common import print_table, save, time_command

IMGCLS = str(Path(sys.executable).parent / "imgcls")


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

    def fmt(t):
        return f"{t['median']:.3f} s (min {t['min']:.3f}, max {t['max']:.3f}, {t['runs']} runs)"

    print_table(
        "Start-up",
        [
            ("imgcls --help", fmt(help_time) + "  target < 0.5 s"),
            ('python -c "import tensorflow"', fmt(tf_import)),
            ("offline --dataset mnist fails", fmt(offline) + "  target < 15 s"),
        ],
    )
    save(
        "startup",
        {
            "help_seconds": help_time,
            "import_tensorflow_seconds": tf_import,
            "offline_mnist_failure_seconds": offline,
        },
    )


if __name__ == "__main__":
    main()
