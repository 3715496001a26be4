"""`imgcls train`: data → model → training loop → run directory."""

from __future__ import annotations

import dataclasses
import math
import platform
from pathlib import Path
from typing import Any

from . import __version__, runs
from .config import TrainConfig
from .errors import DataError
from .runtime import create_strategy, import_tensorflow, seed_everything


@dataclasses.dataclass
class TrainResult:
    run_dir: Path
    history: list[dict[str, float]]
    metrics: dict[str, Any]
    model: Any


def versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    return {
        "imgcls": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
    }


def warn_skipped(skipped: list[tuple[str, str]], reporter: Any) -> None:
    if not skipped:
        return
    shown = "; ".join(f"{path} ({reason})" for path, reason in skipped[:10])
    more = f"; and {len(skipped) - 10} more" if len(skipped) > 10 else ""
    reporter.warning(f"Skipped {len(skipped)} unreadable image(s): {shown}{more}")


def run_train(config: TrainConfig, run_dir: Path, reporter: Any) -> TrainResult:
    import_tensorflow()
    from .data.pipeline import create_batches, resolve_image_size
    from .data.sources import load_source
    from .models import create_model
    from .training import Trainer, create_learning_rate, create_optimizer, fit

    seed_everything(config.seed)
    source = load_source(config.data, config.seed, reporter.info)
    warn_skipped(source.skipped, reporter)
    image_size = resolve_image_size(config.data.image_size, source.native_size)
    splits = {name: split for name, split in source.splits.items() if split.num_examples > 0}
    if "train" not in splits:
        raise DataError(
            "The training split is empty; lower --val-split / --test-split or add images."
        )
    sizes = ", ".join(f"{name} {split.num_examples}" for name, split in splits.items())
    reporter.info(
        f"Data: {source.name}, {source.num_classes} classes, {sizes} images, "
        f"{image_size[0]}x{image_size[1]}x{source.channels}"
    )

    def batches(name: str, shuffle: bool):
        if name not in splits:
            return None
        return create_batches(
            splits[name],
            image_size,
            source.channels,
            source.num_classes,
            config.batch_size,
            shuffle_seed=config.seed if shuffle else None,
        )

    train_ds, val_ds, test_ds = (
        batches("train", True),
        batches("val", False),
        batches("test", False),
    )
    steps_per_epoch = math.ceil(splits["train"].num_examples / config.batch_size)
    strategy = create_strategy("auto")
    with strategy.scope():
        model = create_model(config.arch, (*image_size, source.channels), source.num_classes)
        learning_rate = create_learning_rate(
            config.lr,
            config.schedule,
            steps_per_epoch * config.epochs,
            steps_per_epoch * config.warmup_epochs,
        )
        optimizer = create_optimizer(config.optimizer, learning_rate, config.weight_decay)
    trainer = Trainer(model, optimizer, strategy, config.label_smoothing)
    reporter.info(
        f"Model: {config.arch}, {model.count_params():,} parameters; "
        f"strategy {type(strategy).__name__} with {strategy.num_replicas_in_sync} replica(s)"
    )

    runs.start_run_dir(run_dir)
    runs.write_json_atomic(run_dir / runs.LABELS_FILE, source.class_names)
    runs.write_json_atomic(
        run_dir / runs.CONFIG_FILE,
        {
            "command": "train",
            "options": config.to_dict(),
            "resolved": {
                "image_size": list(image_size),
                "channels": source.channels,
                "num_classes": source.num_classes,
                "split_sizes": {name: split.num_examples for name, split in splits.items()},
                "source": source.description,
                "strategy": type(strategy).__name__,
                "replicas": strategy.num_replicas_in_sync,
            },
            "versions": versions(),
        },
    )

    history = fit(
        trainer,
        train_ds,
        val_ds,
        epochs=config.epochs,
        steps_per_epoch=steps_per_epoch,
        patience=config.patience,
        reporter=reporter,
        on_epoch_end=lambda rows: runs.write_csv_atomic(run_dir / runs.HISTORY_FILE, rows),
    )
    runs.save_model_atomic(model, run_dir / runs.MODEL_FILE)
    metrics: dict[str, Any] = {"epochs_trained": len(history)}
    for name, dataset in (("val", val_ds), ("test", test_ds)):
        if dataset is not None:
            metrics[name] = trainer.evaluate(dataset)
    runs.write_json_atomic(run_dir / runs.METRICS_FILE, metrics)
    return TrainResult(run_dir, history, metrics, model)
