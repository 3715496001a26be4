"""What train, finetune and lr-find each start from, built once: the devices (strategy,
precision, seeds), the prepared data, the class weights and the model under the
strategy's scope; and the run recorder that train and finetune end through (config.json
and labels.json before training, history.csv after each epoch, then the final metrics,
the logs, the model and metrics.json, and the finished directory)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imgcls_cli import rundir
from imgcls_cli.backend import versions
from imgcls_cli.config import RunConfig
from imgcls_cli.data.prepare import PreparedData, prepare_run_data
from imgcls_cli.engine.class_weights import choose_class_weights
from imgcls_cli.engine.devices import set_up_runtime, strategy_name, worker_dir
from imgcls_cli.engine.summaries import finish_log, start_log
from imgcls_cli.errors import plural
from imgcls_cli.rundir import TrainResult
from imgcls_cli.rundir.files import write_csv_atomic
from imgcls_cli.rundir.record import Resolved


@dataclasses.dataclass
class Session:
    """A training command's devices, data, class weights and model."""

    config: RunConfig
    strategy: Any
    policy: str  # the precision policy: float32, mixed_float16 or mixed_bfloat16
    data: PreparedData
    class_weights: list[float] | None
    model: Any  # what build_model returned (finetune: a TransferModel)
    reporter: Any

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync

    def resolved(self, **command_fields: Any) -> Resolved:
        """config.json's `resolved`: the data and the devices, and the command's own."""
        return Resolved(
            **self.data.describe(),
            strategy=strategy_name(self.strategy),
            replicas=self.replicas,
            global_batch_size=self.data.batch_size,
            precision_policy=self.policy,
            class_weights=self.class_weights,
            **command_fields,
        )

    def describe_devices(self) -> str:
        """The end of the "Model: …" line: strategy, replicas, global batch, precision."""
        return (
            f"strategy {strategy_name(self.strategy)} with {plural(self.replicas, 'replica')}, "
            f"global batch {self.data.batch_size}"
        )

    @property
    def precision_note(self) -> str:
        return f", {self.policy}" if self.config.mixed_precision else ""

    def create_trainer(self, model: Any, learning_rate: Any, train_sample: Any) -> Any:
        """An optimizer with the run's options (--optimizer, --weight-decay, --ema) and a
        training.Trainer for `model`; call it under the strategy's scope. `train_sample`:
        the images batch-normalization statistics are measured on (None: no pass)."""
        from imgcls_cli.engine.training import Trainer, create_optimizer

        config = self.config
        optimizer = create_optimizer(
            config.optimizer,
            learning_rate,
            config.weight_decay,
            self.policy == "mixed_float16",
            ema=config.ema,
        )
        return Trainer(
            model,
            optimizer,
            self.strategy,
            config.label_smoothing,
            self.class_weights,
            train_sample=train_sample,
        )


def open_session(
    config: RunConfig,
    reporter: Any,
    build_model: Callable[[PreparedData], Any],
    **data_options: Any,
) -> Session:
    """Devices first (the strategy may split the CPU into devices, which must precede any
    op), then the data (prepare_run_data's options), the class weights, and the model
    that build_model makes for the data, under the strategy's scope."""
    strategy, policy, warning = set_up_runtime(config)
    if warning:
        reporter.warning(warning)
    data = prepare_run_data(config, reporter, **data_options)
    if config.patience is not None and data.val is None:
        reporter.warning("--patience has no effect without validation data (--val-split 0).")
    class_weights = choose_class_weights(config.class_weight, data, reporter)
    with strategy.scope():
        model = build_model(data)
    return Session(config, strategy, policy, data, class_weights, model, reporter)


class RunRecorder:
    """The run directory's side of a train or finetune run. The chief writes run_dir;
    other workers write a scratch copy (work_dir) that is dropped at the end."""

    def __init__(self, session: Session, run_dir: Path, resume: bool) -> None:
        self.session = session
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.work_dir = worker_dir(self.run_dir, session.strategy)
        self.log: Any = None  # summaries.TrainingLog, from begin on

    @property
    def is_chief(self) -> bool:
        return self.work_dir == self.run_dir

    def checkpoints(self, trainer: Any, *parts: str) -> Any:
        """training.Checkpoints of `trainer` in checkpoints/<parts…>: written to work_dir,
        restored from run_dir."""
        from imgcls_cli.engine.training import Checkpoints

        return Checkpoints(
            self.work_dir.joinpath(rundir.CHECKPOINTS_DIR, *parts),
            trainer,
            self.session.config.save_every,
            restore_from=self.run_dir.joinpath(rundir.CHECKPOINTS_DIR, *parts),
        )

    def begin(self, resolved: Resolved) -> list[dict[str, Any]]:
        """config.json and labels.json (or, resuming, the options that changed), the
        TensorBoard log; returns the history so far (empty for a new run)."""
        session = self.session
        history = rundir.begin_run(
            self.run_dir,
            self.work_dir,
            session.config,
            resolved,
            versions(),
            session.data.source.class_names,
            self.resume,
        )
        self.log = start_log(self.run_dir, self.work_dir, session.data, history)
        return history

    def write_history(self, rows: list[dict[str, Any]]) -> None:
        """After each epoch: history.csv, and any image that could not be read."""
        self.session.data.report_unreadable(self.session.reporter)
        write_csv_atomic(self.work_dir / rundir.HISTORY_FILE, rows)

    def finish(
        self, evaluator: Any, model: Any, history: list[dict[str, Any]], remedy: str
    ) -> TrainResult:
        """Final metrics (with the inference check), the logs, model.keras then
        metrics.json, and the finished directory."""
        from imgcls_cli.engine.training import (
            ending_interrupts,
            final_metrics,
            rough_score_warning,
        )

        session = self.session
        data, reporter = session.data, session.reporter
        with ending_interrupts(len(history)):  # the last epoch's checkpoint is saved
            metrics, test_confusion = final_metrics(
                evaluator,
                data,
                history,
                reporter,
                session.config.patience,
                remedy=remedy,
                run_dir=self.run_dir,
            )
            rough = rough_score_warning(metrics, self.run_dir)
            if rough:
                reporter.warning(rough)
            finish_log(self.log, self.work_dir, test_confusion, data.source.class_names, history)
            data.report_unreadable(reporter)
            # What training left out, kept with the run (a notebook may not show warnings).
            skipped = [*data.source.skipped, *data.unreadable.items()]
            metrics["skipped_images"] = [{"path": str(p), "reason": r} for p, r in skipped]
            rundir.save_result(self.work_dir, model, metrics)
        final_dir = rundir.close_run(self.run_dir, self.work_dir)  # the run is whole now
        return TrainResult(final_dir, history, metrics, model, is_chief=self.is_chief)
