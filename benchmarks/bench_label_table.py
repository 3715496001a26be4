"""CSV label files against class folders, side by side in one run:

1. accuracy: scikit-learn's real digits (1,797 8x8 images) written once as class folders
   and once as a flat images/ folder with train.csv and test.csv whose labels are words;
   `imgcls train` with the defaults on each, over several seeds. Aim: the same accuracy
   within noise (the two hold the same files in the same split).
2. start: the time from `imgcls train` being called to its data being listed and scanned
   (data.factory.load_source), for 8,000 JPEGs as class folders and as a CSV of 8,000
   rows, on a cold scan index and a warm one. Aim: the CSV within 1.2x of the folder.

    python benchmarks/bench_label_table.py [--seeds 3] [--files 8000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import print_table, save

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def write_digits(root: Path) -> tuple[Path, Path]:
    """(class folder with train/ and test/, folder with images/ train.csv test.csv): the
    same PNGs, split the same way (every fifth image to test)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    folders, table = root / "folders", root / "table"
    rows: dict[str, list[list[str]]] = {"train": [], "test": []}
    for index, (pixels, target) in enumerate(zip(digits.images, digits.target)):
        image = Image.fromarray((pixels * 255 / 16).astype(np.uint8))
        split = "test" if index % 5 == 0 else "train"
        path = folders / split / WORDS[target] / f"{index:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
        flat = table / "images" / f"{index:04d}.png"
        flat.parent.mkdir(parents=True, exist_ok=True)
        image.save(flat)
        rows[split].append([f"{index:04d}.png", WORDS[target]])
    for split, entries in rows.items():
        with (table / f"{split}.csv").open("w", newline="") as handle:
            csv.writer(handle).writerows([["image", "label"], *entries])
    return folders, table


def train_accuracy(data: Path, seed: int, work: Path) -> float:
    output = work / f"run-{data.name}-{seed}"
    done = subprocess.run(
        [sys.executable, "-m", "imgcls_cli", "train", "--data", str(data), "--seed", str(seed)]
        + ["--output", str(output), "--quiet"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(done.stdout[-2000:] + done.stderr[-2000:])
    return json.loads((output / "metrics.json").read_text())["test"]["accuracy"]


START = """
import json, sys, time
from imgcls_cli.config import DataConfig
from imgcls_cli.backend import import_tensorflow
import_tensorflow()  # both sides pay it; timed apart from the listing and scan
started = time.perf_counter()
from imgcls_cli.data.factory import load_source
source = load_source(DataConfig(data=sys.argv[1]), seed=0)
print(json.dumps([time.perf_counter() - started, source.splits["train"].num_examples]))
"""


def start_seconds(data: Path, cache: Path) -> tuple[float, int]:
    done = subprocess.run(
        [sys.executable, "-c", START, str(data)],
        capture_output=True,
        text=True,
        env={**os.environ, "IMGCLS_CACHE_DIR": str(cache)},
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    seconds, images = json.loads(done.stdout.strip().splitlines()[-1])
    return seconds, images


def write_table(folder: Path) -> Path:
    """labels.csv inside a class folder, listing its files (paths relative to it): the
    same images, found through the table instead of the folders."""
    rows = [["path", "label"]]
    for path in sorted(folder.rglob("*.jpg")):
        rows.append([path.relative_to(folder).as_posix(), path.parent.name])
    with (folder / "labels.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return folder / "labels.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--files", type=int, default=8000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_folder import make_folder

    figures: dict = {"accuracy": {"class folders": [], "csv": []}, "files": args.files}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        folders, table = write_digits(work / "digits")
        for seed in range(args.seeds):  # alternated, so drift hits both alike
            figures["accuracy"]["class folders"].append(train_accuracy(folders, seed, work))
            figures["accuracy"]["csv"].append(train_accuracy(table, seed, work))

        photos = make_folder(work / "photos", args.files, (256, 192), 0)
        sources = {"class folders": photos, "csv": write_table(photos)}
        samples: dict = {name: {"cold": [], "warm": []} for name in sources}
        for repeat in range(args.repeats):
            for name, data in sources.items():
                cache = work / f"cache-{repeat}-{name.replace(' ', '-')}"  # cold: empty
                cold, images = start_seconds(data, cache)
                warm, _ = start_seconds(data, cache)
                samples[name]["cold"].append(cold)
                samples[name]["warm"].append(warm)
                figures.setdefault("train_images", {})[name] = images
    figures["start_seconds"] = {
        name: {kind: statistics.median(values) for kind, values in runs.items()}
        for name, runs in samples.items()
    }
    figures["start_samples"] = samples
    folder, table_start = figures["start_seconds"]["class folders"], figures["start_seconds"]["csv"]
    figures["start_ratio"] = {kind: table_start[kind] / folder[kind] for kind in ("cold", "warm")}
    accuracy = figures["accuracy"]
    rows = [
        (
            "digits test accuracy, defaults, per seed: class folders",
            ", ".join(f"{a:.4f}" for a in accuracy["class folders"]),
        ),
        (
            "digits test accuracy, defaults, per seed: CSV",
            ", ".join(f"{a:.4f}" for a in accuracy["csv"]),
        ),
    ]
    for kind in ("cold", "warm"):
        rows.append(
            (
                f"start on {args.files:,} files, {kind} scan index (median s): folder vs CSV",
                f"{folder[kind]:.2f} vs {table_start[kind]:.2f} "
                f"({figures['start_ratio'][kind]:.2f}x)",
            )
        )
    print_table("CSV label files vs class folders", rows)
    save("label_table", {"label_table": figures})


if __name__ == "__main__":
    main()
