"""What a short run costs beyond its steps: the CPU time of tiny trainings (tracing, the
first step's graph optimisation, pipelines, files), where a user's quick experiment and
most of `make test` spend their time.

Each measurement is a fresh process that imports TensorFlow first (not counted), then
times two identical runs with `time.process_time()`: the first in the process, and a
second one (a notebook's next run). Runs: the default convnet and simplecnn, 2 epochs on
60 generated 16x16 images at batch 8, and a MobileNetV2 finetune (random weights, 32 px,
16 photo crops, a head epoch and an unfrozen one). Then the whole command a user types,
`imgcls train --dataset digits --arch simplecnn --epochs 1`, in a fresh process: wall and
CPU seconds, TensorFlow's import and everything else included (as imgcls' own process
imports it: without Keras' optional extras). `--against DIR` times another
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


COMMAND = ["train", "--dataset", "digits", "--arch", "simplecnn", "--epochs", "1"]


def timed_command(code: Path, out: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of `imgcls <COMMAND>` run with the imgcls_cli in `code`."""
    import resource
    import time

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "imgcls_cli", *COMMAND, "--output", str(out), "--force"],
        capture_output=True,
        check=True,
        cwd=out.parent,
        env={**os.environ, "PYTHONPATH": str(code)},
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", type=Path, help="another checkout, timed alongside")
    args = parser.parse_args()
    codes = {"this": HERE.parent}
    if args.against:
        codes["against"] = args.against.resolve()
    figures: dict = {name: {kind: [] for kind in (*KINDS, "command")} for name in codes}
    with tempfile.TemporaryDirectory() as scratch:
        shapes, photos = make_data(Path(scratch))
        for _ in range(args.rounds):  # alternated, so a busier minute hits both
            for kind in KINDS:
                for name, code in codes.items():
                    out = Path(scratch) / "runs"
                    figures[name][kind].append(timed_run(code, kind, shapes, photos, out))
            for name, code in codes.items():
                out = Path(scratch) / "runs" / "command"
                figures[name]["command"].append(timed_command(code, out))
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
    rows = []
    for name in codes:
        pairs = figures[name]["command"]
        wall = statistics.median(p[0] for p in pairs)
        cpu = statistics.median(p[1] for p in pairs)
        spread = ", ".join(f"{a:.2f}/{b:.2f}" for a, b in pairs)
        rows.append((name, f"wall {wall:.2f} s, CPU {cpu:.2f} s ({spread})"))
    print_table(f"imgcls {' '.join(COMMAND)} (median; each round wall/CPU)", rows)
    document = {"rounds": args.rounds, "against": str(args.against or ""), "cpu_s": figures}
    save("run_overhead", document)
    print(json.dumps(document))


if __name__ == "__main__":
    main()
