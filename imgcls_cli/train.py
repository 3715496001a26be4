"""`imgcls train`: data → model → training loop → run directory.

The data and run-directory steps are public so that `finetune` follows the same story.
"""

from __future__ import annotations

import dataclasses
import math
import platform
from pathlib import Path
from typing import Any

from . import __version__, runs
from .config import AugmentConfig, AugmentPreset, DataConfig, TrainConfig, to_jsonable
from .errors import DataError
from .runtime import create_strategy, import_tensorflow, seed_everything


@dataclasses.dataclass
class PreparedData:
    """A source resolved to batched train/val/test datasets at one image size."""

    source: Any  # data.sources.Source
    image_size: tuple[int, int]
    channels: int
    train: Any
    val: Any | None
    test: Any | None
    split_sizes: dict[str, int]
    steps_per_epoch: int
    augment: AugmentConfig  # resolved; applied to the training split only

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (*self.image_size, self.channels)


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


def prepare_data(
    config: DataConfig,
    *,
    seed: int,
    batch_size: int,
    reporter: Any,
    channels: int | None = None,
    default_image_size: int | None = None,
    augment: AugmentConfig | None = None,
) -> PreparedData:
    """Open the source, report what it holds, and build the batched splits.

    `channels` forces a channel count (3 for ImageNet backbones); `default_image_size`
    replaces the source's own size when --image-size is not given. `augment` (None: off)
    is resolved for this data and applied to the training batches only.
    """
    from .data.pipeline import create_batches, resolve_image_size
    from .data.sources import load_source

    source = load_source(config, seed, reporter.info)
    warn_skipped(source.skipped, reporter)
    image_size = resolve_image_size(config.image_size or default_image_size, source.native_size)
    channels = channels or source.channels
    splits = {name: split for name, split in source.splits.items() if split.num_examples > 0}
    if "train" not in splits:
        raise DataError(
            "The training split is empty; lower --val-split / --test-split or add images."
        )
    sizes = ", ".join(f"{name} {split.num_examples}" for name, split in splits.items())
    reporter.info(
        f"Data: {source.name}, {source.num_classes} classes, {sizes} images, "
        f"{image_size[0]}x{image_size[1]}x{channels}"
    )
    augment = (augment or AugmentConfig(preset=AugmentPreset.none)).resolve(
        config.dataset, channels
    )
    reporter.info(f"Augmentation: {augment.describe()}")
    augmentation = None
    if not augment.is_off:
        from .augment import build_augmentation

        augmentation = build_augmentation(augment, channels, seed)

    def batches(name: str, training: bool) -> Any:
        if name not in splits:
            return None
        return create_batches(
            splits[name],
            image_size,
            channels,
            source.num_classes,
            batch_size,
            shuffle_seed=seed if training else None,
            augmentation=augmentation if training else None,
        )

    return PreparedData(
        source=source,
        image_size=image_size,
        channels=channels,
        train=batches("train", True),
        val=batches("val", False),
        test=batches("test", False),
        split_sizes={name: split.num_examples for name, split in splits.items()},
        steps_per_epoch=math.ceil(splits["train"].num_examples / batch_size),
        augment=augment,
    )


def start_run(
    run_dir: Path, command: str, options: dict[str, Any], data: PreparedData, extra: dict[str, Any]
) -> None:
    """Create the run directory with labels.json and config.json (before training starts,
    so a run in progress already says what it is)."""
    runs.start_run_dir(run_dir)
    runs.write_json_atomic(run_dir / runs.LABELS_FILE, data.source.class_names)
    resolved = {
        "image_size": list(data.image_size),
        "channels": data.channels,
        "num_classes": data.source.num_classes,
        "split_sizes": data.split_sizes,
        "source": data.source.description,
        "augment": to_jsonable(data.augment),
        **extra,
    }
    document = {"command": command, "options": options, "resolved": resolved}
    runs.write_json_atomic(run_dir / runs.CONFIG_FILE, {**document, "versions": versions()})


def finish_run(run_dir: Path, trainer: Any, data: PreparedData, epochs: int) -> dict[str, Any]:
    """Save the model, then score it on validation and test data into metrics.json."""
    runs.save_model_atomic(trainer.model, run_dir / runs.MODEL_FILE)
    metrics: dict[str, Any] = {"epochs_trained": epochs}
    for name, dataset in (("val", data.val), ("test", data.test)):
        if dataset is not None:
            metrics[name] = trainer.evaluate(dataset)
    runs.write_json_atomic(run_dir / runs.METRICS_FILE, metrics)
    return metrics


def run_train(config: TrainConfig, run_dir: Path, reporter: Any) -> TrainResult:
    import_tensorflow()
    from .models import create_model
    from .training import Trainer, create_learning_rate, create_optimizer, fit

    seed_everything(config.seed)
    data = prepare_data(
        config.data,
        seed=config.seed,
        batch_size=config.batch_size,
        reporter=reporter,
        augment=config.augment,
    )
    strategy = create_strategy("auto")
    with strategy.scope():
        model = create_model(config.arch, data.input_shape, data.source.num_classes)
        learning_rate = create_learning_rate(
            config.lr,
            config.schedule,
            total_steps=data.steps_per_epoch * config.epochs,
            warmup_steps=data.steps_per_epoch * config.warmup_epochs,
        )
        optimizer = create_optimizer(config.optimizer, learning_rate, config.weight_decay)
    trainer = Trainer(model, optimizer, strategy, config.label_smoothing)
    strategy_info = {
        "strategy": type(strategy).__name__,
        "replicas": strategy.num_replicas_in_sync,
    }
    reporter.info(
        f"Model: {config.arch}, {model.count_params():,} parameters; strategy "
        f"{strategy_info['strategy']} with {strategy_info['replicas']} replica(s)"
    )

    start_run(run_dir, "train", config.to_dict(), data, strategy_info)
    history = fit(
        trainer,
        data.train,
        data.val,
        epochs=config.epochs,
        steps_per_epoch=data.steps_per_epoch,
        patience=config.patience,
        reporter=reporter,
        on_epoch_end=lambda rows: runs.write_csv_atomic(run_dir / runs.HISTORY_FILE, rows),
    )
    metrics = finish_run(run_dir, trainer, data, len(history))
    return TrainResult(run_dir, history, metrics, model)
