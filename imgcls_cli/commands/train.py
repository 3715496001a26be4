"""`imgcls train`: data → model → training loop → run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imgcls_cli.config import AUTO_LR, TrainConfig
from imgcls_cli.data.prepare import default_epochs
from imgcls_cli.engine.devices import cluster_errors
from imgcls_cli.engine.session import RunRecorder, open_session
from imgcls_cli.rundir import TrainResult


def run_train(
    config: TrainConfig, run_dir: Path, reporter: Any, resume: bool = False
) -> TrainResult:
    """Train `config` into run_dir; with resume, continue run_dir's last checkpoint."""
    from imgcls_cli.models import create_model

    session = open_session(
        config,
        reporter,
        lambda data: create_model(config.arch, data.input_shape, data.source.num_classes),
        default_augment=config.default_augment,
    )
    from imgcls_cli.engine.training import create_learning_rate, fit

    data, model, strategy = session.data, session.model, session.strategy
    epochs = config.epochs or default_epochs(data.split_sizes["train"])
    recorder = RunRecorder(session, run_dir, resume)
    lr_found = None  # what config.json records of --lr auto's sweep
    if config.lr == AUTO_LR:
        from imgcls_cli.engine.lr_sweep import auto_learning_rate

        lr, lr_found = auto_learning_rate(session, run_dir, resume)
    else:
        lr = config.lr * session.replicas if config.scale_lr else config.lr
    with strategy.scope():
        learning_rate = create_learning_rate(
            lr,
            config.resolved_schedule,
            total_steps=data.steps_per_epoch * epochs,
            warmup_steps=data.steps_per_epoch * config.warmup,
        )
        trainer = session.create_trainer(model, learning_rate, data.train_sample)
        checkpoints = recorder.checkpoints(trainer)
    resolved = session.resolved(
        epochs=epochs,
        learning_rate=lr,
        schedule=config.resolved_schedule.value,
        warmup_epochs=config.warmup,
        lr_find=lr_found,
    )
    reporter.info(
        f"Model: {config.arch}, {model.count_params():,} parameters; "
        f"{session.describe_devices()}, {epochs} epoch{'s' if epochs != 1 else ''}"
        f"{session.precision_note}"
    )
    history = recorder.begin(resolved)
    with cluster_errors(trainer.strategy):
        history = fit(
            trainer,
            data.inputs("train"),
            data.inputs("val"),
            epochs=epochs,
            steps_per_epoch=data.steps_per_epoch,
            patience=config.patience,
            reporter=reporter,
            on_epoch_end=recorder.write_history,
            checkpoints=checkpoints,
            history=history,
            log=recorder.log,
        )
    return recorder.finish(
        trainer,
        model,
        history,
        remedy="try more epochs, or --arch simplecnn (no batch normalization)",
    )
