"""The defaults measured (issue 14): augmentation and training recipe, side by side, on
every real dataset available offline plus synthetic sets that punish a wrong choice
(benchmarks/real_data.py), several seeds each. Test accuracy of `imgcls train` (in this
process, through imgcls_cli.api) for each variant; mean ± standard deviation over seeds.

    python benchmarks/bench_defaults.py                  # the "final" study: about 30 min
    python benchmarks/bench_defaults.py --study augment-small --seeds 0 1 2
    python benchmarks/bench_defaults.py --study arch-augment --datasets mnist5k \
        --extra '{"schedule": "cosine"}'

Variants are option sets of `imgcls train`; "default" passes nothing but the data and the
epochs, so it measures whatever the defaults are when the script runs.
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

# Option sets, by study. Augmentation options follow the CLI (flip/fill override the preset).
STUDIES: dict[str, dict[str, dict]] = {
    # Single-channel and small images: no flips, black fill; how much shifting helps.
    "augment-small": {
        "none": {"augment": "none"},
        "shift": {"augment": "light", "flip": "none", "fill": "constant"},
        "standard-no-flip": {"augment": "standard", "flip": "none", "fill": "constant"},
        "standard": {"augment": "standard"},
        "default": {},
    },
    # Colour photos: flips, and what they do to classes that a mirror swaps.
    "augment-colour": {
        "none": {"augment": "none"},
        "standard": {"augment": "standard"},
        "standard-no-flip": {"augment": "standard", "flip": "none"},
        "default": {},
    },
    # Architecture and augmentation together: augmentation pays off with models that
    # have the capacity (and batch normalization) to use it.
    "arch-augment": {
        "simplecnn/none": {"arch": "simplecnn", "augment": "none"},
        "simplecnn/auto": {"arch": "simplecnn", "augment": "auto"},
        "resnet8/none": {"arch": "resnet8", "augment": "none"},
        "resnet8/auto": {"arch": "resnet8", "augment": "auto"},
        "resnet8/standard": {"arch": "resnet8", "augment": "standard"},
        "convnet/none": {"arch": "convnet", "augment": "none"},
        "convnet/auto": {"arch": "convnet", "augment": "auto"},
        "convnet/shift": {
            "arch": "convnet",
            "augment": "light",
            "flip": "none",
            "fill": "constant",
        },
        "convnet/standard": {"arch": "convnet", "augment": "standard"},
    },
    # The defaults as they are, against the same without augmentation, and the classic
    # simplecnn with the other defaults and with its old recipe.
    "final": {
        "default": {},
        "no-augment": {"augment": "none"},
        "simplecnn": {"arch": "simplecnn"},
        "simplecnn-classic": {"arch": "simplecnn", "schedule": "constant", "augment": "none"},
    },
    # Single-channel images under the default convnet: how far to shift, or rotate instead.
    "gray-shift": {
        "default": {},
        "none": {"augment": "none"},
        "shift-0.05": {"translate": 0.05},
        "rotate-10": {"translate": 0.0, "rotate": 10.0},
        "shift-0.1-rotate-10": {"rotate": 10.0},
        "shift-0.05-rotate-10": {"translate": 0.05, "rotate": 10.0},
    },
    # A moving average of the weights (--ema) and label smoothing, on top of the defaults.
    "ema": {"default": {}, "ema-0.99": {"ema": 0.99}, "smoothing-0.1": {"label_smoothing": 0.1}},
    # The training recipe, on top of the default augmentation.
    "recipe": {
        "default": {},
        "simplecnn": {"arch": "simplecnn"},
        "resnet8": {"arch": "resnet8"},
        "cosine": {"schedule": "cosine", "warmup_epochs": 1},
        "smoothing": {"label_smoothing": 0.1},
        "ema": {"ema": 0.99},
        "batch-128": {"batch_size": 128},
        "adamw": {"optimizer": "adamw", "weight_decay": 0.05},
    },
}
DATASETS = {
    "augment-small": ["mnist5k", "digits28", "faces", "digits8"],
    "augment-colour": ["photos", "arrows"],
    "arch-augment": ["mnist5k", "photos", "arrows", "digits28", "faces"],
    "recipe": ["mnist5k", "digits28", "faces", "photos", "arrows"],
    "final": ["mnist5k", "digits28", "faces", "digits8", "arrows", "photos"],
    "ema": ["mnist5k", "digits28", "faces", "arrows"],
    "gray-shift": ["mnist5k", "digits28", "faces"],
}


def data_options(name: str, cache: Path) -> dict:
    if name == "digits8":  # the embedded 8x8 digits: imgcls' own split
        return {"dataset": "digits"}
    return {"data": str(build(name, cache))}


def test_accuracy(options: dict, work: Path) -> tuple[float, float]:
    """(test accuracy, seconds) of one run."""
    from imgcls_cli import api

    started = time.perf_counter()
    run = api.train(output=work, **options)
    return run.metrics["test"]["accuracy"], time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", choices=list(STUDIES), nargs="+", default=["final"])
    parser.add_argument("--datasets", nargs="+", help="default: the study's datasets")
    parser.add_argument("--variants", nargs="+", help="default: all of the study's")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--extra", type=json.loads, default={}, help="options for every variant, as JSON"
    )
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument(
        "--data-cache", default=os.environ.get("BENCH_DATA", "/tmp/imgcls-bench-data")
    )
    args = parser.parse_args()

    os.environ.setdefault("IMGCLS_CACHE_DIR", str(Path(args.data_cache) / "imgcls-cache"))
    for study in args.study:
        run_study(study, args)


def run_study(study: str, args: argparse.Namespace) -> None:
    variants = {
        name: options
        for name, options in STUDIES[study].items()
        if not args.variants or name in args.variants
    }
    datasets = args.datasets or DATASETS[study]
    results: dict[str, dict[str, dict]] = {}
    RESULTS_DIR.mkdir(exist_ok=True)
    partial = RESULTS_DIR / f"defaults_{study}.partial.jsonl"
    with tempfile.TemporaryDirectory() as scratch:
        for dataset in datasets:
            base = {
                **data_options(dataset, Path(args.data_cache)),
                "epochs": args.epochs,
                **args.extra,
            }
            for variant, options in variants.items():
                accuracies, seconds = [], []
                for seed in args.seeds:
                    work = Path(scratch) / f"{dataset}-{variant}-{seed}"
                    accuracy, took = test_accuracy({**base, **options, "seed": seed}, work)
                    accuracies.append(accuracy)
                    seconds.append(took)
                    with partial.open("a") as handle:  # survives an interrupted study
                        record = {"dataset": dataset, "variant": variant, "seed": seed}
                        handle.write(json.dumps({**record, "accuracy": accuracy}) + "\n")
                figures = {
                    "options": options,
                    "seeds": args.seeds,
                    "accuracy": accuracies,
                    "mean": statistics.mean(accuracies),
                    "stdev": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
                    "seconds_per_run": statistics.mean(seconds),
                }
                results.setdefault(dataset, {})[variant] = figures
                print(
                    f"{dataset:9s} {variant:17s} "
                    + " ".join(f"{a:.2%}" for a in accuracies)
                    + f"  mean {figures['mean']:.2%} ± {figures['stdev']:.2%}",
                    flush=True,
                )
    rows = [
        (
            f"{dataset} / {variant}",
            f"{figures['mean']:.2%} ± {figures['stdev']:.2%} "
            f"({len(figures['accuracy'])} seeds, {figures['seconds_per_run']:.0f} s/run)",
        )
        for dataset, by_variant in results.items()
        for variant, figures in by_variant.items()
    ]
    print_table(f"Test accuracy, {args.epochs} epochs ({study}, {args.extra or 'defaults'})", rows)
    suffix = "".join(f"_{key}-{value}" for key, value in sorted(args.extra.items()))
    save(
        f"defaults_{study}{suffix}",
        {"epochs": args.epochs, "extra": args.extra, "results": results},
    )


if __name__ == "__main__":
    main()
