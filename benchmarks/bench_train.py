"""Training throughput of imgcls' loop vs plain Keras `model.fit` (same model, data, batch).

MNIST-sized data: scikit-learn's digits upscaled to 28x28x1 and tiled to 10,780 images, so
the figure needs no download. Each epoch after the first (tracing) one is timed.

    python benchmarks/bench_train.py [--epochs 6] [--batch-size 128]
    python benchmarks/bench_train.py --statistics-only   # batch-norm statistics' cost

--statistics-only: the default convnet on 4,000 of those images at the default batch
(64), epochs through training.fit with batch-normalization statistics measured after
each epoch (batch_norm.py, on the fixed sample of at most 512 training images) against
without; CPU seconds per epoch, alternated round after round.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import print_table, save, summary


def mnist_sized_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)
    images = np.kron(images, np.ones((4, 4), np.uint8))[:, 2:30, 2:30, None]  # 32 → 28 px
    return np.tile(images, (6, 1, 1, 1)), np.tile(digits.target, 6)


def dataset(images, labels, batch_size):
    from imgcls_cli.data.pipeline import create_batches
    from imgcls_cli.data.sources import arrays_to_split

    split = arrays_to_split(images, labels)
    # cache=True: what `imgcls train` does for data this small (--cache auto).
    return create_batches(split, (28, 28), 1, 10, batch_size, shuffle_seed=0, cache=True)


def imgcls_epochs(data, epochs: int) -> list[float]:
    import tensorflow as tf

    from imgcls_cli.engine.training import Trainer, create_optimizer
    from imgcls_cli.models import create_model
    from imgcls_cli.reporting import SilentReporter

    model = create_model("simplecnn", (28, 28, 1), 10)
    trainer = Trainer(model, create_optimizer("adam", 1e-3, 0.0), tf.distribute.get_strategy())
    batches = trainer.distribute(data)
    return [trainer.train_epoch(batches, SilentReporter())["seconds"] for _ in range(epochs)]


def imgcls_fit_epochs(
    data, epochs: int, logged: bool, arch: str = "simplecnn", train_sample=None, shape=(28, 28, 1)
) -> list[float]:
    """CPU seconds of each epoch through training.fit, end to end, with the run's
    TensorBoard log (summaries.TrainingLog) or without it. CPU time, not wall time: on
    this shared machine wall time jumps between two levels from run to run (a core taken
    away), which swamps a few percent."""
    import tempfile

    import tensorflow as tf

    from imgcls_cli.engine.summaries import TrainingLog
    from imgcls_cli.engine.training import Trainer, create_optimizer, fit
    from imgcls_cli.models import create_model
    from imgcls_cli.reporting import SilentReporter

    model = create_model(arch, shape, 10)
    trainer = Trainer(
        model,
        create_optimizer("adam", 1e-3, 0.0),
        tf.distribute.get_strategy(),
        train_sample=train_sample,
    )
    ends = [time.process_time()]
    with tempfile.TemporaryDirectory() as scratch:
        log = TrainingLog(scratch, int(data.cardinality())) if logged else None
        fit(
            trainer,
            data,
            None,
            epochs=epochs,
            steps_per_epoch=None,
            patience=None,
            reporter=SilentReporter(),
            on_epoch_end=lambda rows: ends.append(time.process_time()),
            log=log,
        )
        if log is not None:
            log.close()
    return [b - a for a, b in zip(ends, ends[1:])]


def keras_fit_epochs(data, epochs: int) -> list[float]:
    import keras

    from imgcls_cli.models import create_model

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.started)

    model = create_model("simplecnn", (28, 28, 1), 10)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    timer = EpochTimer()
    model.fit(data, epochs=epochs, verbose=0, callbacks=[timer])
    return timer.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--logging-only", action="store_true", help="only the TensorBoard log's cost"
    )
    parser.add_argument(
        "--statistics-only",
        action="store_true",
        help="only the cost of measuring batch-normalization statistics every epoch",
    )
    args = parser.parse_args()

    from imgcls_cli.backend import import_tensorflow, seed_everything

    import_tensorflow()
    seed_everything(0)
    images, labels = mnist_sized_arrays()
    if args.statistics_only:
        statistics_cost(images[:4000], labels[:4000], args.epochs, args.rounds)
        return
    data = dataset(images, labels, args.batch_size)
    samples: dict[str, list[float]] = {
        "keras_fit": [],
        "imgcls": [],
        "imgcls_fit_unlogged": [],
        "imgcls_fit_logged": [],
    }
    runners = (
        ("keras_fit", keras_fit_epochs),
        ("imgcls", imgcls_epochs),
        ("imgcls_fit_unlogged", lambda data, epochs: imgcls_fit_epochs(data, epochs, False)),
        ("imgcls_fit_logged", lambda data, epochs: imgcls_fit_epochs(data, epochs, True)),
    )
    if args.logging_only:
        runners = runners[2:]
    # Alternate them, round after round, so that machine noise hits all alike.
    for _ in range(args.rounds):
        for name, run in runners:
            seconds = run(data, args.epochs)[1:]  # the first epoch traces (and fills the cache)
            samples[name] += [len(images) / s for s in seconds]
    rates = {name: summary(values) for name, values in samples.items() if values}
    ratio = rates["imgcls"]["median"] / rates["keras_fit"]["median"] if "imgcls" in rates else None
    logging = rates["imgcls_fit_logged"]["median"] / rates["imgcls_fit_unlogged"]["median"]
    print_table(
        f"Training throughput, simplecnn 28x28x1, batch {args.batch_size}, {len(images)} images",
        [
            (name, f"{r['median']:,.0f} img/s (min {r['min']:,.0f}, max {r['max']:,.0f})")
            for name, r in rates.items()
        ]
        + ([("imgcls / keras fit", f"{ratio:.3f}x (target >= 0.95x)")] if ratio else [])
        + [
            (
                "fit with TensorBoard log / without, per CPU second",
                f"{logging:.3f}x (target >= 0.97x)",
            )
        ],
    )
    save(
        "train_logging" if args.logging_only else "train_throughput",
        {"images_per_second": rates, "ratio": ratio, "target": 0.95, "logging_ratio": logging},
    )


def statistics_cost(images, labels, epochs: int, rounds: int, batch_size: int = 64) -> None:
    from imgcls_cli.data.prepare import sample_batches
    from imgcls_cli.data.sources import arrays_to_split
    from imgcls_cli.engine.batch_norm import BatchNormStatistics

    data = dataset(images, labels, batch_size)
    sample = sample_batches(arrays_to_split(images, labels), 0, batch_size, (28, 28), 1, 10)
    samples: dict[str, list[float]] = {"without": [], "with_statistics": []}
    # The pass itself, timed where it runs (CPU seconds per call, after its first).
    update, passes = BatchNormStatistics.update, []

    def timed_update(self):
        started = time.process_time()
        update(self)
        if self.active:
            passes.append(time.process_time() - started)

    BatchNormStatistics.update = timed_update
    for _ in range(rounds):
        for name, train_sample in (("without", None), ("with_statistics", sample)):
            seconds = imgcls_fit_epochs(data, epochs, False, "convnet", train_sample)[1:]
            samples[name] += [len(images) / s for s in seconds]
    BatchNormStatistics.update = update
    rates = {name: summary(values) for name, values in samples.items()}
    ratio = rates["with_statistics"]["median"] / rates["without"]["median"]
    pass_seconds = summary([p for i, p in enumerate(passes) if i % epochs])  # traced first
    epoch_seconds = len(images) / rates["without"]["median"]
    print_table(
        f"convnet 28x28x1, batch {batch_size}, {len(images)} images: images per CPU second",
        [
            (
                name,
                f"{r['median']:,.0f} (min {r['min']:,.0f}, max {r['max']:,.0f}, "
                f"{r['runs']} epochs)",
            )
            for name, r in rates.items()
        ]
        + [
            ("with / without", f"{ratio:.3f}x (target >= 1/1.1 = 0.909x)"),
            (
                "the statistics pass alone",
                f"{pass_seconds['median']:.3f} CPU s per epoch (min {pass_seconds['min']:.3f}, "
                f"max {pass_seconds['max']:.3f}): {pass_seconds['median'] / epoch_seconds:.1%} "
                f"of an epoch without it ({epoch_seconds:.2f} CPU s)",
            ),
        ],
    )
    save(
        "train_statistics",
        {
            "images_per_cpu_second": rates,
            "ratio": ratio,
            "target": 1 / 1.1,
            "pass_cpu_seconds": pass_seconds,
            "epoch_cpu_seconds_without": epoch_seconds,
        },
    )


if __name__ == "__main__":
    main()
