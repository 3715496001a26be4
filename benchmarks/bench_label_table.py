"""CSV label files against class folders, side by side in one run:

1. accuracy: scikit-learn's real digits (1,797 8x8 images) written as class folders, as
   a flat images/ folder with train.csv and test.csv whose labels are words (in file
   order, and in the folders' order), and as a saved Hugging Face dataset; `imgcls train`
   with the defaults on each, over several seeds. Aim: the same accuracy within noise
   (all hold the same files in the same split; in the folders' order, the very runs).
2. start: the time from `imgcls train` being called to its data being listed and scanned
   (data.factory.load_source), for 8,000 JPEGs as class folders and as a CSV of 8,000
   rows, on a cold scan index and a warm one. Aim: the CSV within 1.2x of the folder.
3. memory: peak RSS of one `--cache none` epoch on a Hub-layout Parquet folder of 20,000
   images against 2,000. Aim: within 1.3x (streamed, never all in memory).

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


def write_digits(root: Path) -> dict[str, Path]:
    """The same PNGs, split the same way (every fifth image to test), in four layouts:
    class folders with train/ and test/; images/ with train.csv and test.csv in file
    order, and in the folders' order (class, then name); a saved Hugging Face dataset
    (ClassLabel of the words) in file order."""
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
    sorted_table = root / "table-sorted"
    sorted_table.mkdir(parents=True)
    (sorted_table / "images").symlink_to(table / "images")
    for split, entries in rows.items():
        with (table / f"{split}.csv").open("w", newline="") as handle:
            csv.writer(handle).writerows([["image", "label"], *entries])
        in_folder_order = sorted(entries, key=lambda row: (row[1], row[0]))
        with (sorted_table / f"{split}.csv").open("w", newline="") as handle:
            csv.writer(handle).writerows([["image", "label"], *in_folder_order])
    import datasets

    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=WORDS)}
    )
    saved = datasets.DatasetDict(
        {
            split: datasets.Dataset.from_dict(
                {
                    "image": [
                        {"bytes": (table / "images" / name).read_bytes(), "path": None}
                        for name, _ in entries
                    ],
                    "label": [WORDS.index(word) for _, word in entries],
                },
                features=features,
            )
            for split, entries in rows.items()
        }
    )
    saved.save_to_disk(str(root / "hf"))
    return {
        "class folders": folders,
        "csv": table,
        "csv, folder order": sorted_table,
        "hf saved": root / "hf",
    }


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


def parquet_peak_rss(root: Path, count: int) -> float:
    """Peak RSS (MiB) of one --cache none epoch on a Hub-layout Parquet folder of `count`
    64x48 JPEGs cut from photos (simplecnn at 32 px)."""
    import datasets
    from bench_folder import make_folder

    photos = make_folder(root / "photos", count, (64, 48), 2)
    files = sorted(photos.rglob("*.jpg"))
    table = datasets.Dataset.from_dict(
        {
            "image": [{"bytes": p.read_bytes(), "path": None} for p in files],
            "label": [int(p.parent.name[-1]) for p in files],
        },
        features=datasets.Features(
            {"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])}
        ),
    )
    for shard in range(4):  # the Hub's layout: data/train-0000N-of-00004.parquet
        part = table.shard(4, shard, contiguous=True)
        part.to_parquet(str(root / "hub" / "data" / f"train-{shard:05d}-of-00004.parquet"))
    del table
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "imgcls_cli", "train"]
        + ["--data", str(root / "hub"), "--cache", "none", "--epochs", "1", "--quiet"]
        + ["--arch", "simplecnn", "--image-size", "32", "--output", str(root / "run")],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HOME": str(root / "hf-home")},
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return int(done.stderr.strip().splitlines()[-1]) / 1024


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
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--files", type=int, default=8000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_folder import make_folder

    figures: dict = {"accuracy": {}, "files": args.files}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        layouts = write_digits(work / "digits")
        for seed in range(args.seeds):  # alternated, so drift hits all alike
            for name, data in layouts.items():
                accuracy = train_accuracy(data, seed, work / name.replace(" ", "_"))
                figures["accuracy"].setdefault(name, []).append(accuracy)
        figures["parquet_peak_rss_mib"] = {
            count: parquet_peak_rss(work / f"parquet-{count}", count) for count in (2000, 20000)
        }

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
    rows = [
        (
            f"digits test accuracy, defaults, per seed: {name}",
            ", ".join(f"{a:.4f}" for a in values) + f" (mean {statistics.mean(values):.4f})",
        )
        for name, values in figures["accuracy"].items()
    ]
    rss = figures["parquet_peak_rss_mib"]
    figures["parquet_rss_ratio"] = rss[20000] / rss[2000]
    rows.append(
        (
            "Parquet folder, --cache none, peak RSS: 2,000 vs 20,000 images",
            f"{rss[2000]:,.0f} vs {rss[20000]:,.0f} MiB ({figures['parquet_rss_ratio']:.2f}x)",
        )
    )
    for kind in ("cold", "warm"):
        rows.append(
            (
                f"start on {args.files:,} files, {kind} scan index (median s): folder vs CSV",
                f"{folder[kind]:.2f} vs {table_start[kind]:.2f} "
                f"({figures['start_ratio'][kind]:.2f}x)",
            )
        )
    print_table("CSV label files vs class folders", rows)
    save("label_table", figures)


if __name__ == "__main__":
    main()
