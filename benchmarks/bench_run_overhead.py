"""What a short run costs beyond its steps: the CPU time of tiny trainings (tracing, the
first step's graph optimisation, pipelines, files), where a user's quick experiment and
most of `make test` spend their time.

Each measurement is a fresh process that imports TensorFlow first (not counted), then
times two identical runs with `time.process_time()`: the first in the process, and a
second one (a notebook's next run). Runs: the default convnet and simplecnn, 2 epochs on
60 generated 16x16 images at batch 8, and a MobileNetV2 finetune (random weights, 32 px,
16 photo crops, a head epoch and an unfrozen one). `--against DIR` times another
checkout's imgcls_cli (for example `git worktree add /tmp/before <commit>`) in alternation
with this one's, so both see the same machine.

    python benchmarks/bench_run_overhead.py [--rounds 3] [--against /tmp/before]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from common import print_table, save

HERE = Path(__file__).resolve().parent
KINDS = ("convnet", "simplecnn", "finetune-mobilenetv2")

TIMED = textwrap.dedent(
    """
    import json, sys, time
    import keras, tensorflow  # imported before the clock starts
    import imgcls_cli
    from imgcls_cli import api
    from imgcls_cli.reporting import SilentReporter

    kind, shapes, photos, out = sys.argv[1:5]

    def run(name):
        quiet = dict(force=True, reporter=SilentReporter(), output=f"{out}/{name}")
        if kind == "finetune-mobilenetv2":
            return api.finetune(data=photos, backbone="mobilenetv2", weights="none",
                                image_size=32, head_epochs=1, epochs=1, unfreeze="all",
                                augment="standard", batch_size=64, **quiet)
        return api.train(data=shapes, arch=kind, epochs=2, batch_size=8, **quiet)

    seconds = []
    for name in ("first", "second"):
        started = time.process_time()
        run(name)
        seconds.append(time.process_time() - started)
    print(json.dumps({"code": imgcls_cli.__file__, "cpu_s": seconds}))
    """
)


def make_data(root: Path) -> tuple[Path, Path]:
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE.parent / "tests"))
    from bench_folder import make_folder
    from conftest import make_class_folder

    shapes = make_class_folder(root / "shapes", classes=("a", "b", "c"), per_class=20)
    photos = make_folder(root / "photos", 16, (256, 256), 0)
    return shapes, photos


def timed_run(code: Path, kind: str, shapes: Path, photos: Path, out: Path) -> list[float]:
    """[first, second] CPU seconds of `kind` with the imgcls_cli found in `code`."""
    done = subprocess.run(
        [sys.executable, "-c", TIMED, kind, str(shapes), str(photos), str(out)],
        capture_output=True,
        text=True,
        check=True,
        cwd=out.parent,  # not a checkout: `-c` puts the working directory first on sys.path
        env={**os.environ, "PYTHONPATH": str(code)},
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    if not Path(found["code"]).resolve().is_relative_to(code):
        raise SystemExit(f"timed {found['code']}, not the imgcls_cli of {code}")
    return found["cpu_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", type=Path, help="another checkout, timed alongside")
    args = parser.parse_args()
    codes = {"this": HERE.parent}
    if args.against:
        codes["against"] = args.against.resolve()
    figures: dict = {name: {kind: [] for kind in KINDS} for name in codes}
    with tempfile.TemporaryDirectory() as scratch:
        shapes, photos = make_data(Path(scratch))
        for _ in range(args.rounds):  # alternated, so a busier minute hits both
            for kind in KINDS:
                for name, code in codes.items():
                    out = Path(scratch) / "runs"
                    figures[name][kind].append(timed_run(code, kind, shapes, photos, out))
    rows = []
    for kind in KINDS:
        for name in codes:
            pairs = figures[name][kind]
            first = statistics.median(p[0] for p in pairs)
            second = statistics.median(p[1] for p in pairs)
            spread = ", ".join(f"{a:.2f}/{b:.2f}" for a, b in pairs)
            rows.append(
                (f"{kind} ({name})", f"first {first:.2f} s, second {second:.2f} s ({spread})")
            )
    print_table("CPU seconds of a short run (median over rounds; each round first/second)", rows)
    document = {"rounds": args.rounds, "against": str(args.against or ""), "cpu_s": figures}
    save("run_overhead", document)
    print(json.dumps(document))


if __name__ == "__main__":
    main()
