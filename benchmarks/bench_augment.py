"""Training throughput with `--augment standard` vs `--augment none` on MNIST-sized data.

The augmentation runs in the tf.data pipeline on the same 2 CPU cores as training, so it
must not starve the model. Target: standard at least 0.75x of none. Data: scikit-learn's
digits resized to 28x28x1 with imgcls' own resize and tiled to 10,782 images (no download),
resolved as mnist would be (no flip, black fill). Each epoch after the first (tracing,
cache filling) one is timed; the two settings alternate, round after round.

    python benchmarks/bench_augment.py [--epochs 4] [--rounds 5] [--batch-size 64]
"""

from __future__ import annotations

import argparse

import numpy as np
from common import print_table, save, summary

from imgcls_cli.augment.policy import resolve_augment

IMAGE_SIZE = (28, 28)


def mnist_sized_split():
    from sklearn.datasets import load_digits

    from imgcls_cli.data.images import prepare_images
    from imgcls_cli.data.sources import arrays_to_split

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)[..., None]
    images = np.asarray(prepare_images(images, IMAGE_SIZE, 1))
    return arrays_to_split(np.tile(images, (6, 1, 1, 1)), np.tile(digits.target, 6))


def epoch_rates(split, preset: str, batch_size: int, epochs: int, seed: int) -> list[float]:
    """Images per second of each epoch after the first, training simplecnn from scratch."""
    import tensorflow as tf

    from imgcls_cli.augment.layers import build_augmentation
    from imgcls_cli.config import AugmentConfig, AugmentPreset
    from imgcls_cli.data.pipeline import create_batches
    from imgcls_cli.engine.training import Trainer, create_optimizer, fit
    from imgcls_cli.models import create_model
    from imgcls_cli.reporting import SilentReporter

    augment = resolve_augment(AugmentConfig(preset=AugmentPreset(preset)), "mnist", 1)
    augmentation = None if augment.is_off else build_augmentation(augment, 1, seed)
    data = create_batches(
        split,
        IMAGE_SIZE,
        1,
        10,
        batch_size,
        shuffle_seed=seed,
        augmentation=augmentation,
        cache=True,  # as `imgcls train` does for data this small (--cache auto)
    )
    model = create_model("simplecnn", (*IMAGE_SIZE, 1), 10)
    trainer = Trainer(model, create_optimizer("adam", 1e-3, 0.0), tf.distribute.get_strategy())
    history = fit(
        trainer,
        data,
        None,
        epochs=epochs,
        steps_per_epoch=None,
        patience=None,
        reporter=SilentReporter(),
    )
    return [row["images_per_second"] for row in history[1:]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    from imgcls_cli.backend import import_tensorflow, seed_everything

    import_tensorflow()
    seed_everything(0)
    split = mnist_sized_split()
    samples: dict[str, list[float]] = {"none": [], "standard": []}
    for round_ in range(args.rounds):
        for preset in samples:
            samples[preset] += epoch_rates(split, preset, args.batch_size, args.epochs, round_)
    rates = {preset: summary(values) for preset, values in samples.items()}
    ratio = rates["standard"]["median"] / rates["none"]["median"]
    print_table(
        f"Training throughput with augmentation, simplecnn 28x28x1, batch {args.batch_size}, "
        f"{split.num_examples} images",
        [
            (
                f"--augment {name}",
                f"{r['median']:,.0f} img/s (min {r['min']:,.0f}, max {r['max']:,.0f})",
            )
            for name, r in rates.items()
        ]
        + [("standard / none", f"{ratio:.3f}x (target >= 0.75x)")],
    )
    save(
        "augment_throughput",
        {"images_per_second": rates, "ratio": ratio, "target": 0.75, "batch_size": args.batch_size},
    )


if __name__ == "__main__":
    main()
