"""Data for training: a source opened, reported, and turned into batched splits."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from imgcls_cli.augment.policy import resolve_augment_with_reason
from imgcls_cli.config import (
    DEFAULT_EPOCHS,
    AugmentConfig,
    AugmentPreset,
    CacheMode,
    DataConfig,
    to_jsonable,
)
from imgcls_cli.data.factory import load_source
from imgcls_cli.data.flip_check import mirror_accuracy_drop
from imgcls_cli.data.pipeline import (
    ShardedInput,
    cache_placement,
    create_batches,
    resolve_image_size,
    sharded_batches,
)
from imgcls_cli.data.sources import SPLITS
from imgcls_cli.errors import DataError
from imgcls_cli.reporting import files_and_reasons

# The fixed sample of training images that batch-normalization statistics are measured
# on (engine/batch_norm.py) and the saved model is checked against: at most this many. Moments
# of a few hundred images estimate a channel's mean and variance to a few percent, and a
# forward pass over them costs 4.8% of an epoch on 4,000 images (BENCHMARKS.md).
TRAIN_SAMPLE_IMAGES = 512

# Measured (BENCHMARKS.md, "Small folders"): on 15 folders of 10-50 images a class a batch
# of 32 (twice the steps of 64) scored higher on 9, the same on 2 and within noise lower
# on 4, 1.5 points higher on average; 64 stays for larger data. A split that fills fewer
# than 8 batches of 64 trains at 32.
DEFAULT_BATCH_SIZE = 64
SMALL_SPLIT_BATCH_SIZE = 32
SMALL_SPLIT_IMAGES = 8 * DEFAULT_BATCH_SIZE


def default_batch_size(train_images: int) -> int:
    """The global batch size when none is given: 64, or 32 below 512 training images."""
    return SMALL_SPLIT_BATCH_SIZE if train_images < SMALL_SPLIT_IMAGES else DEFAULT_BATCH_SIZE


# Measured (BENCHMARKS.md, "Small folders"): an epoch of a small split is a few steps, so
# ten of them leave the model undertrained; twice the passes cost seconds there. The same
# 512-image line as the batch size.
SMALL_SPLIT_EPOCHS = 2 * DEFAULT_EPOCHS


def default_epochs(train_images: int) -> int:
    """train's epochs when none are given: 10, or 20 below 512 training images."""
    return SMALL_SPLIT_EPOCHS if train_images < SMALL_SPLIT_IMAGES else DEFAULT_EPOCHS


@dataclasses.dataclass
class PreparedData:
    """A source resolved to batched train/val/test datasets at one image size."""

    source: Any  # data.sources.Source
    image_size: tuple[int, int]
    channels: int
    # Each split's batches (train, and val and test when they exist) as a ShardedInput:
    # one pipeline's global batches, or, for multi-worker training, each worker's part
    # (see Trainer.distribute).
    sharded: dict[str, ShardedInput]
    split_sizes: dict[str, int]
    batch_size: int  # global: as given, or default_batch_size of the training split
    steps_per_epoch: int
    augment: AugmentConfig  # resolved; applied to the training split only
    augment_reason: str  # why: the preset given, or what --augment auto saw
    cache: str  # where train and val images live between epochs: memory, disk or stream
    unreadable: dict[str, str] = dataclasses.field(default_factory=dict)  # path → reason, reported
    # A split's batches from a new pipeline (see fresh_inputs).
    rebuild: Callable[[str], ShardedInput] | None = None
    # A fixed sample of the training images without augmentation, in batches: what
    # batch-normalization statistics are measured on, and the end-of-training check that
    # the saved model scores its own training images as training did.
    train_sample: Any = None

    def inputs(self, name: str) -> ShardedInput | None:
        """What training reads of split `name` (None when there is no such split)."""
        return self.sharded.get(name)

    def fresh_inputs(self, name: str) -> ShardedInput | None:
        """Split `name`'s batches as inputs(name) gives them, from a pipeline of their own:
        every pass over a pipeline draws its next shuffle and augmentation, so reading
        this one (lr-find's sweep before training) leaves training's epochs, and what
        --resume replays of them, as they would have been. Kept in memory when the
        training pipeline is, else streamed (never a second disk cache)."""
        if name not in self.sharded or self.rebuild is None:
            return None
        return self.rebuild(name)

    def batches(self, name: str) -> Any | None:
        """Split `name`'s global batches from one pipeline, or None."""
        sharded = self.sharded.get(name)
        return sharded.dataset if sharded is not None else None

    @property
    def train(self) -> Any:
        return self.batches("train")

    @property
    def val(self) -> Any | None:
        return self.batches("val")

    @property
    def test(self) -> Any | None:
        return self.batches("test")

    def report_unreadable(self, reporter: Any) -> None:
        """Warn about images that could not be decoded since the last call (damaged
        inside, or deleted or changed while streaming): they were skipped, and training
        went on. Each file is
        named once, though it fails again every epoch."""
        new = {}
        for path, reason in self.source.take_stream_failures():
            if path not in self.unreadable:
                new.setdefault(path, reason)
        if new:
            self.unreadable.update(new)
            reporter.warning(
                f"Skipped {len(new)} image(s) that could not be decoded this epoch: "
                f"{files_and_reasons(list(new.items()))}"
            )

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (*self.image_size, self.channels)

    def describe(self) -> dict[str, Any]:
        """What config.json records under `resolved` about the data."""
        return {
            "image_size": list(self.image_size),
            "channels": self.channels,
            "num_classes": self.source.num_classes,
            "split_sizes": self.split_sizes,
            "source": self.source.description,
            "augment": to_jsonable(self.augment),
            "augment_choice": self.augment_reason,
            "cache": self.cache,
        }


def report_source_problems(source: Any, reporter: Any) -> None:
    """Warn about files skipped while scanning, and anything else the source noticed."""
    for message in source.warnings:
        reporter.warning(message)
    if source.skipped:
        shown = files_and_reasons(source.skipped)
        reporter.warning(f"Skipped {len(source.skipped)} unreadable image(s): {shown}")


def prepare_run_data(config: Any, reporter: Any, **options: Any) -> PreparedData:
    """prepare_data with a run config's data, seed, batch size and augmentation: train,
    finetune and lr-find read their data alike."""
    return prepare_data(
        config.data,
        seed=config.seed,
        batch_size=config.batch_size,
        reporter=reporter,
        augment=config.augment,
        **options,
    )


def prepare_data(
    config: DataConfig,
    *,
    seed: int,
    batch_size: int | None,
    reporter: Any,
    channels: int | None = None,
    default_image_size: int | None = None,
    augment: AugmentConfig | None = None,
    default_augment: tuple[AugmentPreset, str] | None = None,
) -> PreparedData:
    """Open the source, report what it holds, and build the batched splits.

    `channels` forces a channel count (3 for ImageNet backbones); `default_image_size`
    replaces the source's own size when --image-size is not given. `augment` (None: off)
    is resolved for this data and applied to the training batches only; without a preset
    it is `default_augment` (preset, reason) when given, else auto. `batch_size` None:
    default_batch_size of the training split.
    """
    source = load_source(config, seed, reporter)
    report_source_problems(source, reporter)
    image_size = resolve_image_size(config.image_size or default_image_size, source.native_size)
    channels = channels or source.channels
    splits = {name: split for name, split in source.splits.items() if split.num_examples > 0}
    if "train" not in splits:
        raise DataError(
            "The training split is empty; lower --val-split / --test-split or add images."
        )
    batch_size = batch_size or default_batch_size(splits["train"].num_examples)
    # In SPLITS' order, whichever order the source made them in (folders carve test first).
    sizes = ", ".join(f"{name} {splits[name].num_examples}" for name in SPLITS if name in splits)
    reporter.info(
        f"Data: {source.name}, {source.num_classes} classes, {sizes} images, "
        f"{image_size[0]}x{image_size[1]}x{channels}"
    )
    augment, augment_reason = resolve_augment_with_reason(
        augment or AugmentConfig(preset=AugmentPreset.none),
        # What the data is decides, not the model's input (finetune enlarges and colours).
        config.dataset,
        source.channels,
        source.native_size or image_size,
        lambda: mirror_accuracy_drop(splits["train"], seed),
        default_augment,
    )
    reporter.info(f"Augmentation: {augment.describe()}; {augment_reason}")
    augmentation = None
    if not augment.is_off:
        from imgcls_cli.augment.layers import build_augmentation

        augmentation = build_augmentation(augment, channels, seed)

    # Train and val are read every epoch: cached together when they fit. Test is read
    # once, at the end, so caching it would only hold memory.
    epoch_examples = sum(splits[name].num_examples for name in ("train", "val") if name in splits)
    cache = cache_placement(config.cache, epoch_examples, image_size, channels)
    if cache != "memory" and config.cache is CacheMode.auto:
        how = {
            "disk": "Keeping the resized images in a file of the cache folder (decoded once)",
            "stream": "Streaming images from their source every epoch",
        }[cache]
        reporter.info(
            f"{how}: resized, they exceed the memory cache budget (--cache memory keeps them "
            "in memory anyway)."
        )
    elif cache == "stream" and config.cache is CacheMode.disk:
        reporter.warning("No room on the disk for --cache disk: streaming images instead.")

    def batches(name: str, training: bool, cache: str = cache) -> ShardedInput:
        return sharded_batches(
            splits[name],
            batch_size,
            image_size=image_size,
            channels=channels,
            num_classes=source.num_classes,
            shuffle_seed=seed if training else None,
            augmentation=augmentation if training else None,
            cache=cache if name != "test" else False,
        )

    def rebuild(name: str) -> ShardedInput:
        return batches(name, name == "train", cache if cache == "memory" else "stream")

    return PreparedData(
        source=source,
        image_size=image_size,
        channels=channels,
        sharded={name: batches(name, name == "train") for name in splits},
        split_sizes={name: split.num_examples for name, split in splits.items()},
        batch_size=batch_size,
        steps_per_epoch=math.ceil(splits["train"].num_examples / batch_size),
        augment=augment,
        augment_reason=augment_reason,
        cache=cache,
        rebuild=rebuild,
        train_sample=sample_batches(
            splits["train"], seed, batch_size, image_size, channels, source.num_classes
        ),
    )


def sample_batches(
    split: Any,
    seed: int,
    batch_size: int,
    image_size: tuple[int, int],
    channels: int,
    num_classes: int,
) -> Any:
    """Batches of a fixed sample of at most TRAIN_SAMPLE_IMAGES of `split`, without
    augmentation, kept in memory once read."""
    import tensorflow as tf

    sample = split.sample(TRAIN_SAMPLE_IMAGES, seed)
    batches = create_batches(sample, image_size, channels, num_classes, batch_size, cache="memory")
    # Every worker reads the whole (small) sample and takes its part of each batch.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return batches.with_options(options)
