"""Peak memory (RSS) of `imgcls train` on a generated folder of 2,000 vs 20,000 small
images. Streaming (`--cache none`) and the disk cache (`--cache disk`) must keep the ratio
under 1.3x; the default (`--cache auto`) keeps images this small in memory, which costs
their size once.

    python benchmarks/bench_memory.py [--runs 3] [--sizes 2000 20000] [--image-size 32]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import print_table, save, summary

IMGCLS = str(Path(sys.executable).parent / "imgcls")
CLASSES = 10

# Runs the command as its only child, then reports that child's peak RSS in KiB (Linux).
PEAK_RSS = (
    "import resource, subprocess, sys;"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode;"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
    "sys.exit(code)"
)


def generate_folder(root: Path, count: int, size: int) -> Path:
    """`count` random PNGs in CLASSES class folders."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for index in range(count):
        folder = root / f"class_{index % CLASSES}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index:06d}.png")
    return root


def peak_rss_mib(args: list[str]) -> float:
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr}")
    return int(done.stdout.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs=2, default=[2_000, 20_000])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    figures: dict = {"image_size": args.image_size, "epochs": args.epochs}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folders = {
            n: generate_folder(Path(tmp) / f"images-{n}", n, args.image_size) for n in args.sizes
        }
        os.environ["IMGCLS_CACHE_DIR"] = str(Path(tmp) / "cache")  # scan index, disk cache
        for cache in ("none", "disk", "auto"):
            peaks = {}
            for count, folder in folders.items():
                samples = []
                for run in range(args.runs):
                    output = Path(tmp) / f"run-{cache}-{count}-{run}"
                    command = [IMGCLS, "train", "--data", str(folder), "--cache", cache]
                    command += ["--epochs", str(args.epochs), "--output", str(output), "--quiet"]
                    samples.append(peak_rss_mib(command))
                peaks[count] = summary(samples)
                rows.append(
                    (
                        f"--cache {cache}, {count:,} images",
                        f"{peaks[count]['median']:.0f} MiB "
                        f"(min {peaks[count]['min']:.0f}, max {peaks[count]['max']:.0f})",
                    )
                )
            small, large = args.sizes
            ratio = peaks[large]["median"] / peaks[small]["median"]
            target = "  target < 1.3x" if cache in ("none", "disk") else ""
            rows.append((f"--cache {cache}, ratio {large:,} / {small:,}", f"{ratio:.2f}x{target}"))
            figures[f"cache_{cache}"] = {
                "peak_rss_mib": {str(n): s for n, s in peaks.items()},
                "ratio": ratio,
            }
    print_table(f"Peak RSS of imgcls train ({args.image_size}x{args.image_size} PNGs)", rows)
    save("memory", figures)


if __name__ == "__main__":
    main()
