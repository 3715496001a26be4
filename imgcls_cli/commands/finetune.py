"""`imgcls finetune`: transfer learning in the two phases of the Keras guide.

Phase 1 freezes the pretrained backbone and trains a new head; without augmentation the
frozen backbone's features are computed once and the head trains on them (bottleneck
caching). Phase 2 unfreezes the backbone's top layers and trains on at a lower learning
rate. BatchNormalization stays in inference mode throughout.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from imgcls_cli.config import CacheMode, FinetuneConfig
from imgcls_cli.data.pipeline import memory_cache_budget
from imgcls_cli.data.prepare import PreparedData
from imgcls_cli.engine.devices import cluster_errors
from imgcls_cli.engine.session import RunRecorder, Session, open_session
from imgcls_cli.errors import plural
from imgcls_cli.models import create_model
from imgcls_cli.models.backbones import DEFAULT_IMAGE_SIZE, check_image_size, get_backbone
from imgcls_cli.models.weights import resolve_weights
from imgcls_cli.rundir import TrainResult


@dataclasses.dataclass
class Phase:
    """One phase's settings, as recorded in config.json and history.csv."""

    name: str  # "head" or "finetune"
    epochs: int
    lr: float
    unfrozen_layers: int  # backbone layers trained (0 in phase 1)
    cached_features: bool = False


# Enlarging beyond this invents pixels the backbone then has to look at: say so.
ENLARGE_NOTE_FACTOR = 2


def enlargement_note(
    native: tuple[int, int] | None,
    channels: int,
    image_size: tuple[int, int],
    minimum: int = 0,
) -> str | None:
    """One line when the backbone's input is made from much smaller images (more than
    ENLARGE_NOTE_FACTOR a side) or from grayscale ones (the channel repeated), and what
    changes it; None otherwise. `minimum`: the backbone's smallest --image-size, below
    which a smaller one is no advice."""
    factor = 0.0 if native is None else min(a / b for a, b in zip(image_size, native))
    enlarged = factor > ENLARGE_NOTE_FACTOR
    parts = []
    if enlarged:
        parts.append(
            f"enlarged {factor:.3g}x from {native[0]}x{native[1]} to "
            f"{image_size[0]}x{image_size[1]}"
        )
    if channels == 1:
        parts.append("their gray channel repeated to RGB (ImageNet backbones take colour)")
    if not parts:
        return None
    if not enlarged:
        advice = ""
    elif min(image_size) > minimum:
        advice = (
            "; a smaller --image-size trains faster on small images (or train a CNN from "
            "scratch with `imgcls train`)"
        )
    else:  # already the backbone's smallest input
        advice = (
            f"; {minimum} is the backbone's smallest --image-size (a CNN trained from "
            "scratch with `imgcls train` fits images this small)"
        )

    return f"Images are {' and '.join(parts)}{advice}."


def run_finetune(
    config: FinetuneConfig, run_dir: Path, reporter: Any, resume: bool = False
) -> TrainResult:
    """Fine-tune into run_dir; with resume, skip the phases already done and continue
    the interrupted one from its last checkpoint."""
    image_size = config.data.image_size or DEFAULT_IMAGE_SIZE
    check_image_size(config.backbone, image_size)
    # Before TensorFlow starts and before any data is read: offline, this fails in seconds.
    weights = resolve_weights(config.weights, config.backbone, image_size)
    warning = random_frozen_layers_warning(config)
    if warning:
        reporter.warning(warning)
    session = open_session(
        config,
        reporter,
        lambda data: create_model(
            config.backbone,
            data.input_shape,
            data.source.num_classes,
            weights=weights,
            dropout=config.dropout,
        ),
        channels=3,  # ImageNet backbones want RGB: grayscale data is repeated to 3 channels
        default_image_size=DEFAULT_IMAGE_SIZE,
    )
    transfer, data = session.model, session.data
    backbone = transfer.backbone
    note = enlargement_note(
        data.source.native_size,
        data.source.channels,
        data.image_size,
        get_backbone(config.backbone).min_image_size,
    )
    if note:
        reporter.info(note)
    phases = plan_phases(config, transfer, data, session.replicas)
    reporter.info(
        f"Model: {config.backbone} with {weights.label}, "
        f"{transfer.model.count_params():,} parameters, {len(backbone.layers)} backbone "
        f"layers; {session.describe_devices()}{session.precision_note}"
    )
    recorder = RunRecorder(session, run_dir, resume)
    saved_history = recorder.begin(
        session.resolved(
            backbone=config.backbone,
            weights=weights.describe(),
            phases=[dataclasses.asdict(phase) for phase in phases],
        )
    )
    history: list[dict[str, Any]] = []
    for number, phase in enumerate(phases, 1):
        reporter.info(describe_phase(phase, number, len(phases), len(backbone.layers)))
        done_before = [row for row in saved_history if row.get("phase") == phase.name]
        history += train_phase(phase, transfer, session, recorder, history, done_before)

    from imgcls_cli.engine.training import Evaluator

    evaluator = Evaluator(transfer.model, session.strategy)  # scores the served model
    return recorder.finish(
        evaluator,
        transfer.model,
        history,
        remedy="try more epochs, --augment none, or pretrained --weights",
    )


def random_frozen_layers_warning(config: FinetuneConfig) -> str | None:
    """With --weights none, layers left frozen keep their random weights and statistics
    (mean 0, variance 1): they pass almost no signal, and the model stays at chance (a
    new user's --unfreeze 10 on 3 classes: loss ln 3 in every epoch)."""
    if config.weights.lower() != "none" or (config.unfreeze == "all" and config.finetune_epochs):
        return None
    return (
        "With --weights none the backbone's frozen layers keep random weights, which pass "
        "almost no signal: expect chance accuracy. Use --unfreeze all (or pretrained "
        "--weights), or train a CNN from scratch with `imgcls train`."
    )


def plan_phases(
    config: FinetuneConfig, transfer: Any, data: PreparedData, replicas: int = 1
) -> list[Phase]:
    scale = replicas if config.scale_lr else 1
    phases = []
    if config.head_epochs:
        feature_bytes = data.split_sizes["train"] * transfer.features.output_shape[-1] * 4
        # Augmented images differ every epoch, so their features cannot be computed once;
        # --cache none asks for bounded memory, so features are not held either.
        fits = feature_bytes <= memory_cache_budget() or config.data.cache is CacheMode.memory
        cached = fits and data.augment.is_off and config.data.cache is not CacheMode.none
        phases.append(Phase("head", config.head_epochs, config.lr * scale, 0, cached))
    if config.finetune_epochs:
        total = len(transfer.backbone.layers)
        unfrozen = total if config.unfreeze == "all" else min(int(config.unfreeze), total)
        lr = config.resolved_finetune_lr * scale
        phases.append(Phase("finetune", config.epochs, lr, unfrozen))
    return phases


def describe_phase(phase: Phase, number: int, count: int, backbone_layers: int) -> str:
    if phase.name == "head":
        what = "training the new head, backbone frozen"
    else:
        what = f"fine-tuning the top {phase.unfrozen_layers} of {backbone_layers} backbone layers"
    return f"Phase {number}/{count}: {what}; {plural(phase.epochs, 'epoch')} at lr {phase.lr:g}"


def train_phase(
    phase: Phase,
    transfer: Any,
    session: Session,
    recorder: RunRecorder,
    earlier: list[dict[str, Any]],
    done_before: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Set which layers train, then run one phase with a new optimizer and a new Trainer
    (whose step function is traced afresh, so it sees the newly trainable variables).

    Each phase checkpoints into checkpoints/<phase>/; a finished phase also saves its
    final weights there, so a resumed run restores it instead of training it again.
    `done_before`: this phase's history.csv rows from an earlier session.
    """
    from imgcls_cli.engine.training import fit
    from imgcls_cli.models.transfer import unfreeze_top_layers

    config, data, reporter = session.config, session.data, session.reporter

    if phase.name == "head":
        transfer.backbone.trainable = False
    else:
        unfreeze_top_layers(transfer.backbone, phase.unfrozen_layers)
    model = transfer.classifier if phase.cached_features else transfer.training_model
    with session.strategy.scope():
        # The head on cached features has no batch normalization to measure.
        train_sample = None if phase.cached_features else data.train_sample
        trainer = session.create_trainer(model, phase.lr, train_sample)
        checkpoints = recorder.checkpoints(trainer, phase.name)
    rows_done = [{**row, "epoch": row["epoch"] - len(earlier)} for row in done_before]

    def label(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # Epochs count on across phases, so history.csv plots as one curve.
        return [
            {"epoch": len(earlier) + row["epoch"], "phase": phase.name}
            | {key: value for key, value in row.items() if key not in ("epoch", "phase")}
            for row in rows
        ]

    if checkpoints.restore_finished():
        reporter.info(f"  Phase already finished ({len(rows_done)} epoch(s)): restored")
        # The phase drew reshuffles of the training images (one pass to cache features,
        # or one per epoch); draw them again, without reading data, so the next phase
        # sees the images in the same order as in an uninterrupted run.
        if phase.cached_features:
            iter(data.train)
        else:
            distributed = trainer.distribute(data.inputs("train"))
            for _ in rows_done:
                iter(distributed)
        return label(rows_done)

    train_ds, val_ds = data.inputs("train"), data.inputs("val")
    if phase.cached_features:
        log = recorder.log
        first_batch = log.first_batch(session.strategy) if log is not None else None
        train_ds, val_ds = cache_features(transfer.features, data, config, reporter, first_batch)
    elif phase.name == "head":
        why = (
            "augmentation changes the images every epoch"
            if not data.augment.is_off
            else ("--cache none" if config.data.cache is CacheMode.none else "too many images")
        )
        reporter.info(f"  No bottleneck caching ({why}): every head epoch runs the frozen backbone")
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    reporter.info(f"  {trainable:,} trainable parameters")

    def on_epoch_end(rows: list[dict[str, Any]]) -> None:
        recorder.write_history(earlier + label(rows))

    if recorder.log is not None:
        recorder.log.epoch_offset = len(earlier)  # epochs count on across phases
    with cluster_errors(trainer.strategy):
        rows = fit(
            trainer,
            train_ds,
            val_ds,
            epochs=phase.epochs,
            steps_per_epoch=data.steps_per_epoch,
            patience=config.patience,
            reporter=reporter,
            on_epoch_end=on_epoch_end,
            checkpoints=checkpoints,
            history=rows_done,
            log=recorder.log,
        )
    checkpoints.save_finished()
    return label(rows)


def cache_features(
    features: Any,
    data: PreparedData,
    config: FinetuneConfig,
    reporter: Any,
    first_batch: Any = None,
) -> tuple[Any, Any]:
    """Run the frozen backbone once over the training and validation images; return
    batches of (pooled features, labels) for the head to train on. `first_batch` (the
    TensorBoard log's hook, or None) sees the first batch of training images."""
    import tensorflow as tf

    from imgcls_cli.engine.batches import traced_for_any_batch_size

    images = sum(data.split_sizes.get(name, 0) for name in ("train", "val"))
    reporter.info(
        f"  Bottleneck caching: computing the frozen backbone's features once for {images} "
        "images; head epochs then train on the cached features"
    )
    started = time.perf_counter()
    extract = tf.function(
        lambda batch: features(batch, training=False), reduce_retracing=True, autograph=False
    )

    def batches(dataset: Any, shuffle: bool, first_batch: Any = None) -> Any:
        if dataset is None:
            return None
        pooled, labels = [], []
        traced_for_any_batch_size(extract, dataset.element_spec[0])  # the images
        for image_batch, label_batch in dataset:
            if first_batch is not None:
                first_batch((image_batch, label_batch))
                first_batch = None
            pooled.append(extract(image_batch).numpy())
            labels.append(label_batch.numpy())
        pooled, labels = np.concatenate(pooled), np.concatenate(labels)
        cached = tf.data.Dataset.from_tensor_slices((pooled, labels))
        if shuffle:
            cached = cached.shuffle(len(labels), seed=config.seed, reshuffle_each_iteration=True)
        return cached.batch(data.batch_size).prefetch(tf.data.AUTOTUNE)

    train, val = batches(data.train, True, first_batch), batches(data.val, False)
    seconds = time.perf_counter() - started
    reporter.info(f"  Features cached in {seconds:.1f} s ({images / seconds:,.0f} images/s)")
    return train, val
