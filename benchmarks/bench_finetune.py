"""Fine-tuning speed on this machine, at 224x224 with random weights (same cost as ImageNet's).

1. Bottleneck caching (MobileNetV2, a few hundred generated images through the real folder
   pipeline): head epoch 1 (computing the features once, then one head epoch) against head
   epochs 2..N on the cached features, and against a head epoch without caching.
2. Training throughput at batch 32 of each backbone, frozen (phase 1 without caching) and
   fully unfrozen (phase 2 with --unfreeze all), after one warm-up (tracing) step.

Run under the shared lock:
    flock /tmp/imgcls-tf.lock .venv/bin/python benchmarks/bench_finetune.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from common import save, summary  # noqa: E402
from conftest import make_class_folder  # noqa: E402

from imgcls_cli.backend import import_tensorflow

SIZE = 224


def bench_caching(images: int, head_epochs: int, batch_size: int) -> dict:
    from imgcls_cli.commands.finetune import cache_features
    from imgcls_cli.config import DataConfig, FinetuneConfig
    from imgcls_cli.data.prepare import prepare_data
    from imgcls_cli.engine.training import Trainer, create_optimizer, fit
    from imgcls_cli.models.backbones import create_backbone
    from imgcls_cli.models.transfer import build_transfer_model
    from imgcls_cli.reporting import SilentReporter

    tf = import_tensorflow()
    with tempfile.TemporaryDirectory() as folder:
        classes = ("a", "b", "c")
        make_class_folder(Path(folder), classes, per_class=images // len(classes), size=SIZE)
        config = FinetuneConfig(
            data=DataConfig(data=folder, image_size=SIZE, val_split=0.0, test_split=0.0),
            weights="none",
            batch_size=batch_size,
        )
        data = prepare_data(
            config.data, seed=0, batch_size=batch_size, reporter=SilentReporter(), channels=3
        )
        for _ in data.train:  # decode and resize once, as any first epoch would
            pass
        backbone = create_backbone("mobilenetv2", SIZE, imagenet=False)
        backbone.trainable = False
        transfer = build_transfer_model("mobilenetv2", backbone, len(classes), 0.2)
        strategy = tf.distribute.get_strategy()

        def epochs(model, train, val, count):
            trainer = Trainer(model, create_optimizer("adam", 1e-3, 0.0), strategy)
            rows = fit(
                trainer,
                train,
                val,
                epochs=count,
                steps_per_epoch=data.steps_per_epoch,
                patience=None,
                reporter=SilentReporter(),
            )
            return [row["seconds"] for row in rows]

        uncached = epochs(transfer.training_model, data.train, None, 4)
        started = time.perf_counter()
        train, _ = cache_features(transfer.features, data, config, SilentReporter())
        extraction = time.perf_counter() - started
        cached = epochs(transfer.classifier, train, None, head_epochs)

    n = data.split_sizes["train"]
    first = extraction + cached[0]
    # Epoch 1 of each traces its step function: the speed-up compares the epochs after it.
    uncached_later, cached_later = summary(uncached[1:]), summary(cached[1:])
    speedup = uncached_later["median"] / cached_later["median"]
    print(f"Bottleneck caching, MobileNetV2 {SIZE}x{SIZE}, {n} training images, batch {batch_size}")
    print(
        f"  without caching: head epoch 1 {uncached[0]:.2f} s (tracing), then {fmt(uncached_later)}"
    )
    print(f"  with caching: feature pass {extraction:.2f} s ({n / extraction:.0f} images/s)")
    print(f"  with caching: head epoch 1 {first:.2f} s (feature pass + {cached[0]:.3f} s)")
    print(f"  with caching: head epochs 2..{head_epochs} {fmt(cached_later)}")
    print(f"  head epoch speed-up from caching (medians): {speedup:,.0f}x")
    return {
        "images": n,
        "batch_size": batch_size,
        "uncached_epoch_seconds": uncached_later,
        "cached_epoch_seconds": cached_later,
        "feature_pass_seconds": extraction,
        "speedup": speedup,
    }


def fmt(seconds: dict) -> str:
    return (
        f"{seconds['median'] * 1000:,.1f} ms per epoch (median; min {seconds['min'] * 1000:,.1f}, "
        f"max {seconds['max'] * 1000:,.1f}, {seconds['runs']} epochs)"
    )


def bench_throughput(name: str, steps: int, batch_size: int) -> dict:
    from imgcls_cli.engine.training import Trainer, create_optimizer
    from imgcls_cli.models.backbones import create_backbone
    from imgcls_cli.models.transfer import build_transfer_model, unfreeze_top_layers

    tf = import_tensorflow()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch_size, SIZE, SIZE, 3)).astype("float32")
    labels = tf.one_hot(rng.integers(0, 5, batch_size), 5)
    batch = (tf.constant(images), labels)
    transfer = build_transfer_model(name, create_backbone(name, SIZE, imagenet=False), 5, 0.2)
    results, figures = [], {}
    for mode in ("frozen", "unfrozen"):
        if mode == "frozen":
            transfer.backbone.trainable = False
        else:
            unfreeze_top_layers(transfer.backbone, None)
        trainer = Trainer(
            transfer.training_model,
            create_optimizer("adam", 1e-4, 0.0),
            tf.distribute.get_strategy(),
        )
        started = time.perf_counter()
        trainer._train_step(batch)[0].numpy()  # the first call traces
        trace = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(steps):
            result = trainer._train_step(batch)
        result[0].numpy()
        seconds = time.perf_counter() - started
        speed = steps * batch_size / seconds
        results.append(f"{mode} {speed:6.1f} images/s (first step {trace:.1f} s)")
        figures[mode] = {"images_per_second": speed, "first_step_seconds": trace}
    print(f"  {name:15s} " + "; ".join(results))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--head-epochs", type=int, default=6)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per backbone and mode")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--skip-caching", action="store_true")
    parser.add_argument("--backbones", default="mobilenetv2,efficientnetb0,resnet50")
    args = parser.parse_args()
    import_tensorflow()
    figures: dict = {"image_size": SIZE}
    if not args.skip_caching:
        figures["caching"] = bench_caching(args.images, args.head_epochs, args.batch_size)
    print(f"Training throughput, {SIZE}x{SIZE}, batch {args.batch_size}, {args.steps} timed steps")
    figures["throughput"] = {
        name: bench_throughput(name, args.steps, args.batch_size)
        for name in args.backbones.split(",")
    }
    save("finetune", figures)


if __name__ == "__main__":
    main()
