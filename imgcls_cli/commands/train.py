"""`imgcls train`: data → model → training loop → run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imgcls_cli import rundir
from imgcls_cli.backend import versions
from imgcls_cli.config import AUTO_LR, TrainConfig
from imgcls_cli.data.prepare import default_epochs, prepare_run_data
from imgcls_cli.engine.class_weights import choose_class_weights
from imgcls_cli.engine.devices import cluster_errors, set_up_runtime, strategy_name, worker_dir
from imgcls_cli.engine.summaries import finish_log, start_log
from imgcls_cli.rundir import TrainResult
from imgcls_cli.rundir.record import Resolved


def run_train(
    config: TrainConfig, run_dir: Path, reporter: Any, resume: bool = False
) -> TrainResult:
    """Train `config` into run_dir; with resume, continue run_dir's last checkpoint."""
    strategy, policy = set_up_runtime(config)
    from imgcls_cli.engine.training import (
        Checkpoints,
        Trainer,
        create_learning_rate,
        create_optimizer,
        final_metrics,
        fit,
    )
    from imgcls_cli.models import create_model

    data = prepare_run_data(config, reporter, default_augment=config.default_augment)
    epochs = config.epochs or default_epochs(data.split_sizes["train"])
    if config.patience is not None and data.val is None:
        reporter.warning("--patience has no effect without validation data (--val-split 0).")
    class_weights = choose_class_weights(config.class_weight, data, reporter)
    replicas = strategy.num_replicas_in_sync
    work_dir = worker_dir(run_dir, strategy)
    with strategy.scope():
        model = create_model(config.arch, data.input_shape, data.source.num_classes)
    lr_found = None  # what config.json records of --lr auto's sweep
    if config.lr == AUTO_LR:
        from imgcls_cli.commands.lr_find import auto_learning_rate

        lr, lr_found = auto_learning_rate(
            config, run_dir, resume, model, data, strategy, policy, class_weights, reporter
        )
    else:
        lr = config.lr * replicas if config.scale_lr else config.lr
    with strategy.scope():
        learning_rate = create_learning_rate(
            lr,
            config.resolved_schedule,
            total_steps=data.steps_per_epoch * epochs,
            warmup_steps=data.steps_per_epoch * config.warmup,
        )
        optimizer = create_optimizer(
            config.optimizer,
            learning_rate,
            config.weight_decay,
            policy == "mixed_float16",
            ema=config.ema,
        )
        trainer = Trainer(
            model,
            optimizer,
            strategy,
            config.label_smoothing,
            class_weights,
            train_sample=data.train_sample,
        )
        checkpoints = Checkpoints(
            work_dir / rundir.CHECKPOINTS_DIR,
            trainer,
            config.save_every,
            restore_from=run_dir / rundir.CHECKPOINTS_DIR,
        )
    resolved = Resolved(
        **data.describe(),
        strategy=strategy_name(strategy),
        replicas=replicas,
        global_batch_size=data.batch_size,
        precision_policy=policy,
        class_weights=class_weights,
        epochs=epochs,
        learning_rate=lr,
        schedule=config.resolved_schedule.value,
        warmup_epochs=config.warmup,
        lr_find=lr_found,
    )
    reporter.info(
        f"Model: {config.arch}, {model.count_params():,} parameters; strategy "
        f"{resolved.strategy} with {replicas} replica(s), global batch "
        f"{data.batch_size}, {epochs} epochs" + (f", {policy}" if config.mixed_precision else "")
    )

    def on_epoch_end(rows: list[dict[str, Any]]) -> None:
        data.report_unreadable(reporter)  # images deleted or changed while streaming
        rundir.write_csv_atomic(work_dir / rundir.HISTORY_FILE, rows)

    classes = data.source.class_names
    history = rundir.begin_run(run_dir, work_dir, config, resolved, versions(), classes, resume)
    log = start_log(run_dir, work_dir, data, history)
    with cluster_errors():
        history = fit(
            trainer,
            data.inputs("train"),
            data.inputs("val"),
            epochs=epochs,
            steps_per_epoch=data.steps_per_epoch,
            patience=config.patience,
            reporter=reporter,
            on_epoch_end=on_epoch_end,
            checkpoints=checkpoints,
            history=history,
            log=log,
        )
    metrics = final_metrics(
        trainer,
        data,
        history,
        reporter,
        config.patience,
        remedy="try more epochs, or --arch simplecnn (no batch normalization)",
    )
    finish_log(log, work_dir, model, data, history)
    data.report_unreadable(reporter)
    rundir.save_result(work_dir, model, metrics)
    final_dir = rundir.close_run(run_dir, work_dir)
    return TrainResult(final_dir, history, metrics, model, is_chief=work_dir == run_dir)
