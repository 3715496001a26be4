"""`imgcls train`: data → model → training loop → run directory.

The data and run-directory steps are public so that `finetune` follows the same story.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import platform
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import __version__, runs
from .config import (
    AugmentConfig,
    AugmentPreset,
    CacheMode,
    DataConfig,
    TrainConfig,
    to_jsonable,
)
from .errors import DataError, ImgclsError
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
    cached: bool  # train and val images kept in memory (else streamed every epoch)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (*self.image_size, self.channels)


@dataclasses.dataclass
class TrainResult:
    run_dir: Path
    history: list[dict[str, float]]
    metrics: dict[str, Any]
    model: Any
    is_chief: bool = True


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
    from .data.pipeline import create_batches, resolve_image_size, should_cache
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

    # Train and val are read every epoch: cached together when they fit. Test is read
    # once, at the end, so caching it would only hold memory.
    epoch_examples = sum(splits[name].num_examples for name in ("train", "val") if name in splits)
    cache = should_cache(config.cache, epoch_examples, image_size, channels)
    if not cache and config.cache is CacheMode.auto:
        reporter.info(
            "Streaming images from their source every epoch: resized, they exceed the "
            "memory cache budget (--cache memory keeps them in memory anyway)."
        )

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
            cache=cache and name != "test",
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
        cached=cache,
    )


def start_run(
    run_dir: Path, command: str, options: dict[str, Any], data: PreparedData, extra: dict[str, Any]
) -> None:
    """Create the run directory with labels.json and config.json (before training starts,
    so a run in progress already says what it is)."""
    resolved = {
        "image_size": list(data.image_size),
        "channels": data.channels,
        "num_classes": data.source.num_classes,
        "split_sizes": data.split_sizes,
        "source": data.source.description,
        "augment": to_jsonable(data.augment),
        "cache": "memory" if data.cached else "stream",
        **extra,
    }
    document = {"command": command, "options": options, "resolved": resolved}
    runs.write_run_config(run_dir, {**document, "versions": versions()})
    runs.write_json_atomic(run_dir / runs.LABELS_FILE, data.source.class_names)


def weights_fingerprint(model: Any) -> str:
    """A short hash of all weights: equal runs (or workers) have equal fingerprints."""
    import hashlib

    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(weight.tobytes())
    return digest.hexdigest()[:16]


def finish_run(run_dir: Path, trainer: Any, data: PreparedData, epochs: int) -> dict[str, Any]:
    """Save the model, then score it on validation and test data into metrics.json."""
    runs.save_model_atomic(trainer.model, run_dir / runs.MODEL_FILE)
    metrics: dict[str, Any] = {
        "epochs_trained": epochs,
        "weights_fingerprint": weights_fingerprint(trainer.model),
    }
    for name, dataset in (("val", data.val), ("test", data.test)):
        if dataset is not None:
            metrics[name] = trainer.evaluate(dataset)
    runs.write_json_atomic(run_dir / runs.METRICS_FILE, metrics)
    return metrics


def set_up_runtime(config: TrainConfig | Any) -> tuple[Any, str]:
    """Strategy first (it may split the CPU into devices, which must precede any op),
    then determinism, precision policy and seeds."""
    from .runtime import set_determinism, set_mixed_precision

    import_tensorflow()
    strategy = create_strategy(config.strategy.value)
    set_determinism(config.deterministic)
    policy = set_mixed_precision(config.mixed_precision)
    seed_everything(config.seed)
    return strategy, policy


def worker_dir(run_dir: Path, strategy: Any) -> Path:
    """The chief writes the run directory; other workers a throw-away one (they must
    still save, because saving a distributed model is a collective operation)."""
    import tempfile

    from .runtime import is_chief

    return run_dir if is_chief(strategy) else Path(tempfile.mkdtemp(prefix="imgcls-worker-"))


def run_train(
    config: TrainConfig, run_dir: Path, reporter: Any, resume: bool = False
) -> TrainResult:
    """Train `config` into run_dir; with resume, continue run_dir's last checkpoint."""
    strategy, policy = set_up_runtime(config)
    from .models import create_model
    from .training import Checkpoints, Trainer, create_learning_rate, create_optimizer, fit

    data = prepare_data(
        config.data,
        seed=config.seed,
        batch_size=config.batch_size,
        reporter=reporter,
        augment=config.augment,
    )
    if config.patience is not None and data.val is None:
        reporter.warning("--patience has no effect without validation data (--val-split 0).")
    replicas = strategy.num_replicas_in_sync
    lr = config.lr * replicas if config.scale_lr else config.lr
    work_dir = worker_dir(run_dir, strategy)
    with strategy.scope():
        model = create_model(config.arch, data.input_shape, data.source.num_classes)
        learning_rate = create_learning_rate(
            lr,
            config.schedule,
            total_steps=data.steps_per_epoch * config.epochs,
            warmup_steps=data.steps_per_epoch * config.warmup_epochs,
        )
        optimizer = create_optimizer(
            config.optimizer, learning_rate, config.weight_decay, policy == "mixed_float16"
        )
        trainer = Trainer(model, optimizer, strategy, config.label_smoothing)
        checkpoints = Checkpoints(
            work_dir / runs.CHECKPOINTS_DIR,
            trainer,
            config.save_every,
            restore_from=run_dir / runs.CHECKPOINTS_DIR,
        )
    runtime_info = {
        "strategy": strategy_name(strategy),
        "replicas": replicas,
        "global_batch_size": config.batch_size,
        "learning_rate": lr,
        "precision_policy": policy,
    }
    reporter.info(
        f"Model: {config.arch}, {model.count_params():,} parameters; strategy "
        f"{runtime_info['strategy']} with {replicas} replica(s), global batch "
        f"{config.batch_size}" + (f", {policy}" if config.mixed_precision else "")
    )

    history = runs.read_history(run_dir) if resume else []
    open_run(run_dir, work_dir, "train", config.to_dict(), data, runtime_info, resume)
    with cluster_errors():
        history = fit(
            trainer,
            data.train,
            data.val,
            epochs=config.epochs,
            steps_per_epoch=data.steps_per_epoch,
            patience=config.patience,
            reporter=reporter,
            on_epoch_end=lambda rows: runs.write_csv_atomic(work_dir / runs.HISTORY_FILE, rows),
            checkpoints=checkpoints,
            history=history,
        )
    metrics = finish_run(work_dir, trainer, data, len(history))
    final_dir = close_run(run_dir, work_dir)
    return TrainResult(final_dir, history, metrics, model, is_chief=work_dir == run_dir)


def strategy_name(strategy: Any) -> str:
    """'MirroredStrategy', 'MultiWorkerMirroredStrategy', … as config.json records it."""
    return type(strategy).__name__.lstrip("_").replace("DistributionStrategy", "Strategy")


def open_run(
    run_dir: Path,
    work_dir: Path,
    command: str,
    options: dict[str, Any],
    data: PreparedData,
    extra: dict[str, Any],
    resume: bool,
) -> None:
    """The chief starts the run directory, or on resume records the changed options."""
    if work_dir != run_dir:
        return
    if resume:
        update_options(run_dir, options)
    else:
        start_run(run_dir, command, options, data, extra)


def close_run(run_dir: Path, work_dir: Path) -> Path:
    """Where the finished run lives. A non-chief worker's scratch copy (see worker_dir)
    is not kept; the chief's run takes the place of the run it was forced over."""
    if work_dir != run_dir:
        import shutil

        shutil.rmtree(work_dir, ignore_errors=True)
        return run_dir
    return runs.finish_run_dir(run_dir)


@contextlib.contextmanager
def cluster_errors() -> Iterator[None]:
    """A peer that died mid-step surfaces as a gRPC error: say what to do instead."""
    tf = import_tensorflow()
    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as error:
        first_line = str(error).strip().splitlines()[0][:200]
        raise ImgclsError(
            f"A worker of the cluster stopped answering ({first_line}). Restart every worker "
            "with the same command: training continues from the last checkpoint."
        ) from None


def update_options(run_dir: Path, options: dict[str, Any]) -> None:
    """Record options changed on --resume (more epochs, another strategy) in config.json."""
    path = run_dir / runs.CONFIG_FILE
    document = runs.read_json(path, "the run's options")
    runs.write_json_atomic(path, {**document, "options": options})
