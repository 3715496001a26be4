"""lr-find's suggestion against a grid of learning rates (issue 16): test accuracy of
`imgcls train` at each rate of a grid and with `--lr auto` (which sweeps as `imgcls
lr-find` does, then trains at its valley suggestion), same epochs and seeds, on the
embedded digits and on a colour set (benchmarks/real_data.py's photos at 32 px). Also
"steepest": trained at the sweep's other suggestion (`imgcls lr-find`'s steepest, from
the same sweep as auto's). Mean ± standard deviation over the seeds; runs in this
process, through imgcls_cli.api.

    python benchmarks/bench_lr_find.py                  # both sets: about 15 min on 2 cores
    python benchmarks/bench_lr_find.py --datasets digits8 --seeds 0 1
    python benchmarks/bench_lr_find.py --dry-run        # 1 epoch, 1 seed: the script works

Every run keeps the other defaults (convnet, cosine schedule with a one-epoch warmup,
--augment auto), so the rate is the only thing that changes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from common import RESULTS_DIR, print_table, save
from real_data import build

GRID = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]
SUGGESTED = ("auto", "steepest")  # train --lr auto; lr-find's steepest rate
# name → (data options, epochs): small enough for both sets, three seeds and six rates in
# about 20 minutes on 2 cores.
DATASETS = {
    "digits8": ({"dataset": "digits"}, 15),
    "photos32": ({"data": "photos", "image_size": 32}, 10),
}


def data_options(name: str, cache: Path) -> dict:
    options = dict(DATASETS[name][0])
    if "data" in options:
        options["data"] = str(build(options["data"], cache))
    return options


def train_once(options: dict, work: Path) -> dict:
    """Test accuracy, seconds, and (with --lr auto) the rate the sweep suggested."""
    from imgcls_cli import api

    started = time.perf_counter()
    run = api.train(output=work, **options)
    seconds = time.perf_counter() - started
    resolved = json.loads((run.path / "config.json").read_text())["resolved"]
    return {
        "accuracy": run.metrics["test"]["accuracy"],
        "seconds": seconds,
        "learning_rate": resolved["learning_rate"],
    }


def label(lr: float | str) -> str:
    return lr if isinstance(lr, str) else f"{lr:g}"


def steepest_rate(options: dict, seed: int) -> float:
    """lr-find's steepest suggestion for these options: the sweep --lr auto runs too."""
    from imgcls_cli import api

    return api.lr_find(seed=seed, **options)["suggestions"]["steepest"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--grid", type=float, nargs="+", default=GRID)
    parser.add_argument("--epochs", type=int, help="default: the dataset's (15 or 10)")
    parser.add_argument(
        "--dry-run", action="store_true", help="1 epoch, 1 seed, one rate of the grid"
    )
    parser.add_argument(
        "--data-cache", default=os.environ.get("BENCH_DATA", "/tmp/imgcls-bench-data")
    )
    args = parser.parse_args()
    if args.dry_run:
        args.seeds, args.grid, args.epochs = args.seeds[:1], [1e-3], 1

    os.environ.setdefault("IMGCLS_CACHE_DIR", str(Path(args.data_cache) / "imgcls-cache"))
    results = {name: run_dataset(name, args) for name in args.datasets}
    rows = []
    for name, figures in results.items():
        for rate, row in figures["rates"].items():
            rows.append(
                (
                    f"{name} / lr {rate}",
                    f"{row['mean']:.2%} ± {row['stdev']:.2%} ({row['seconds_per_run']:.0f} s/run)",
                )
            )
        for key, title in (("suggested_lrs", "auto (valley)"), ("steepest_lrs", "steepest")):
            rates = ", ".join(f"{lr:.2e}" for lr in figures[key])
            rows.append((f"{name} / {title} rates", rates))
        best = figures["best_grid_rate"]
        for key in ("auto", "steepest"):
            gap = figures[f"{key}_minus_best"]
            rows.append((f"{name} / {key} - best ({best})", f"{gap:+.2%}"))
    print_table("Test accuracy by learning rate (mean ± stdev over seeds)", rows)
    print(json.dumps({"dry_run": args.dry_run, "results": results}))
    if not args.dry_run:  # results/ holds measurements only (run_all.py merges them)
        suffix = "" if args.datasets == list(DATASETS) else "_" + "-".join(args.datasets)
        save(f"lr_find{suffix}", {"seeds": args.seeds, "results": results})


def run_dataset(name: str, args: argparse.Namespace) -> dict:
    base = data_options(name, Path(args.data_cache))
    epochs = args.epochs or DATASETS[name][1]
    rates: list[float | str] = [*args.grid, *SUGGESTED]
    runs: dict[str, list[dict]] = {label(lr): [] for lr in rates}
    RESULTS_DIR.mkdir(exist_ok=True)
    partial = RESULTS_DIR / "lr_find.partial.jsonl"
    with tempfile.TemporaryDirectory() as scratch:
        for seed in args.seeds:
            for lr in rates:
                work = Path(scratch) / f"{name}-{label(lr)}-{seed}"
                rate = steepest_rate(base, seed) if lr == "steepest" else lr
                run = train_once({**base, "epochs": epochs, "seed": seed, "lr": rate}, work)
                runs[label(lr)].append(run)
                record = {"dataset": name, "lr": label(lr), "seed": seed, **run}
                if not args.dry_run:
                    with partial.open("a") as handle:  # survives an interrupted benchmark
                        handle.write(json.dumps(record) + "\n")
                print(
                    f"{name:8s} seed {seed} lr {label(lr):6s} {run['accuracy']:.2%} "
                    f"(trained at {run['learning_rate']:.2e}, {run['seconds']:.0f} s)",
                    flush=True,
                )
    figures = {}
    for rate, done in runs.items():
        accuracies = [run["accuracy"] for run in done]
        figures[rate] = {
            "accuracy": accuracies,
            "mean": statistics.mean(accuracies),
            "stdev": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
            "seconds_per_run": statistics.mean(run["seconds"] for run in done),
        }
    best = max((r for r in figures if r not in SUGGESTED), key=lambda r: figures[r]["mean"])
    return {
        "epochs": epochs,
        "options": base,
        "rates": figures,
        "suggested_lrs": [run["learning_rate"] for run in runs["auto"]],
        "steepest_lrs": [run["learning_rate"] for run in runs["steepest"]],
        "best_grid_rate": best,
        "auto_minus_best": figures["auto"]["mean"] - figures[best]["mean"],
        "steepest_minus_best": figures["steepest"]["mean"] - figures[best]["mean"],
    }


if __name__ == "__main__":
    main()
