"""Which learning rate to train with, found the way fastai's lr_find finds it: for
`imgcls lr-find` and `train --lr auto`.

A sweep trains the model from its initial weights for a few hundred steps while the rate
grows exponentially, and records the loss of each step; the loss, smoothed, falls, bottoms
out and climbs once the rate is too high. The suggestion is a rate on the longest descent
("valley", fastai's default), beside the rate of the steepest descent ("steepest").

The sweep runs train's own step (training.Trainer, under the run's strategy) on train's
data, augmentation and batch size. Every variable of the model is put back afterwards and
the sweep reads a pipeline of its own, so the training that follows starts exactly as it
would have without it. The suggestion functions are plain NumPy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from imgcls_cli import rundir
from imgcls_cli.config import LrFindConfig, TrainConfig
from imgcls_cli.errors import ImgclsError

if TYPE_CHECKING:  # the session module imports TensorFlow's side of the package
    from imgcls_cli.engine.session import Session

SMOOTHING = 0.98  # the loss's moving average keeps this much of its past at each step
DIVERGENCE = 4.0  # the sweep stops once the smoothed loss exceeds this multiple of its low
SUGGESTED = "valley"  # the method that suggested_lr follows
# A smoothed loss that falls by less than this share of its level suggests nothing: in a
# sweep too short for the model to learn (30 steps on the digits fell 1.5%, 100 steps
# 22%) each method would name a rate that noise chose.
MIN_FALL = 0.05

# --- The sweep's numbers (no TensorFlow) ---------------------------------------------------


def sweep_rates(sweep: LrFindConfig) -> np.ndarray:
    """The rate of each step: from start_lr to end_lr, by the same factor every step."""
    return np.geomspace(sweep.start_lr, sweep.end_lr, sweep.steps)


class SmoothedLoss:
    """An exponential moving average of the loss, divided by (1 - beta^n) so the first
    steps are not pulled towards the average's starting value of 0."""

    def __init__(self, beta: float = SMOOTHING):
        self.beta, self.average, self.count = beta, 0.0, 0

    def add(self, loss: float) -> float:
        """The smoothed loss after this step's `loss`."""
        self.count += 1
        self.average = self.beta * self.average + (1 - self.beta) * loss
        return self.average / (1 - self.beta**self.count)


def smooth(losses: list[float], beta: float = SMOOTHING) -> list[float]:
    average = SmoothedLoss(beta)
    return [average.add(loss) for loss in losses]


def has_diverged(smoothed: float, lowest: float) -> bool:
    """The loss is lost: not a number, or DIVERGENCE times its lowest smoothed value."""
    return not math.isfinite(smoothed) or smoothed > DIVERGENCE * lowest


def steepest(lrs: np.ndarray, losses: np.ndarray) -> float | None:
    """The rate where the loss falls fastest: the most negative slope of the loss
    against log(rate), at the start of that step."""
    if len(lrs) < 2:
        return None
    slopes = np.diff(losses) / np.diff(np.log(lrs))
    if not np.isfinite(slopes).any():
        return None
    return float(lrs[int(np.nanargmin(np.where(np.isfinite(slopes), slopes, np.nan)))])


def valley(lrs: np.ndarray, losses: np.ndarray) -> float | None:
    """fastai's valley: the rate half the longest descent's length back from its bottom,
    past the flat start where little is learnt, short of the bottom where the loss
    turns. The descent is the longest strictly decreasing subsequence of the losses, so
    noise does not cut it short; its length counts only the steps that descend, so a
    noisy, barely sloping start moves the rate less than a steady fall does."""
    count = len(losses)
    length = np.ones(count, int)  # of the longest descent ending at each step
    for i in range(count):
        for j in range(i):
            if losses[j] > losses[i]:
                length[i] = max(length[i], length[j] + 1)
    if count < 3 or length.max() < 3:
        return None
    bottom = int(np.argmax(length))  # the first step that ends a longest descent
    return float(lrs[bottom - length[bottom] // 2])


def no_suggestion(steps: int) -> str:
    """Why a sweep suggests nothing, and what to do."""
    return (
        f"the smoothed loss fell by less than {MIN_FALL:.0%} over {steps} steps; sweep "
        "more --steps, so that the model has time to learn (or from a lower --start-lr, "
        "when the loss climbed from the first step)."
    )


def descent(losses: np.ndarray) -> int | None:
    """The number of steps up to and including the lowest loss, when the loss fell to it
    by MIN_FALL of its highest value before it; None when it did not fall that much."""
    finite = np.where(np.isfinite(losses), losses, np.nan)
    if np.isnan(finite).all():
        return None
    bottom = int(np.nanargmin(finite))
    high = float(np.nanmax(finite[: bottom + 1]))
    return bottom + 1 if high - float(finite[bottom]) >= MIN_FALL * abs(high) else None


def suggest(lrs: list[float], smoothed: list[float]) -> dict[str, float | None]:
    """Each method's rate, from the smoothed losses without the first tenth of the steps
    (the average is still settling) and the last twentieth (the climb after the bottom),
    up to the lowest loss (a fall after a climb, as the model recovers from too high a
    rate, is no rate to train at); none when the loss did not fall there."""
    count = len(lrs)
    start = count // 10
    window = np.asarray(smoothed, float)[start : count - count // 20]
    end = descent(window)
    if end is None:
        return {"valley": None, "steepest": None}
    rates = np.asarray(lrs)[start : start + end]
    return {"valley": valley(rates, window[:end]), "steepest": steepest(rates, window[:end])}


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A finished sweep: the rate and loss of each step, and what they suggest."""

    settings: LrFindConfig
    lrs: list[float]
    losses: list[float]
    stopped_early: bool  # the loss diverged before the last planned step

    @functools.cached_property
    def smoothed(self) -> list[float]:
        return smooth(self.losses)

    @functools.cached_property
    def suggestions(self) -> dict[str, float | None]:
        return suggest(self.lrs, self.smoothed)

    @property
    def suggested_lr(self) -> float | None:
        return self.suggestions[SUGGESTED]

    def summary(self) -> dict[str, Any]:
        """What train --lr auto records in config.json (resolved.lr_find)."""
        return {
            "suggested_lr": self.suggested_lr,
            "method": SUGGESTED,
            "steps": len(self.lrs),
            "start_lr": self.settings.start_lr,
            "end_lr": self.settings.end_lr,
            "stopped_early": self.stopped_early,
        }

    def to_dict(self) -> dict[str, Any]:
        """The sweep as lr-find --json prints it (non-finite losses as null)."""
        return {
            "suggested_lr": self.suggested_lr,
            "method": SUGGESTED,
            "suggestions": self.suggestions,
            "steps": len(self.lrs),
            "stopped_early": self.stopped_early,
            "lrs": self.lrs,
            "losses": finite_or_none(self.losses),
            "smoothed_losses": finite_or_none(self.smoothed),
        }


def finite_or_none(values: list[float]) -> list[float | None]:
    return [value if math.isfinite(value) else None for value in values]


# --- The sweep itself ---------------------------------------------------------------------


def run_sweep(trainer: Any, batches: Iterator[Any], sweep: LrFindConfig, reporter: Any) -> Sweep:
    """Train one step per planned rate (trainer's optimizer set to it first), until the
    last rate or until the loss diverges."""
    rates = sweep_rates(sweep)
    losses: list[float] = []
    average, lowest = SmoothedLoss(), math.inf
    for step, rate in enumerate(rates, 1):
        trainer.optimizer.learning_rate = float(rate)
        losses.append(trainer.train_step(next(batches))["loss"])
        smoothed = average.add(losses[-1])
        lowest = min(lowest, smoothed)
        reporter.batches(step, len(rates))
        if has_diverged(smoothed, lowest):
            reporter.batches(len(rates), len(rates))  # the progress bar ends here
            break
    return Sweep(sweep, [float(r) for r in rates[: len(losses)]], losses, len(losses) < len(rates))


def endless(batches: Any) -> Iterator[Any]:
    """Batch after batch, epoch after epoch (each pass reshuffles)."""
    while True:
        yield from batches


@contextlib.contextmanager
def model_kept(model: Any) -> Iterator[None]:
    """Within: the model may train. After: each of its variables (weights, batch-norm
    statistics, the random state of dropout) holds its value from before, bit for bit."""
    variables = list(model.variables)
    saved = [variable.numpy() for variable in variables]
    try:
        yield
    finally:
        for variable, value in zip(variables, saved):
            variable.assign(value)


def sweep_learning_rate(
    config: TrainConfig,
    sweep: LrFindConfig,
    model: Any,
    data: Any,
    strategy: Any,
    policy: str,
    class_weights: Any,
    reporter: Any,
) -> Sweep:
    """Sweep `model` (built under `strategy`) on data.fresh_inputs('train') with a
    fresh optimizer of config's kind, then put the model back as it was."""
    from imgcls_cli.engine.devices import cluster_errors
    from imgcls_cli.engine.training import Trainer, create_optimizer

    reporter.info(
        f"Sweeping the learning rate from {sweep.start_lr:g} to {sweep.end_lr:g} over "
        f"{sweep.steps} steps (lr-find)"
    )
    with model_kept(model):
        with strategy.scope():
            optimizer = create_optimizer(
                config.optimizer, sweep.start_lr, config.weight_decay, policy == "mixed_float16"
            )
            optimizer.build(model.trainable_variables)
            trainer = Trainer(model, optimizer, strategy, config.label_smoothing, class_weights)
        batches = trainer.distribute(data.fresh_inputs("train"))
        with cluster_errors(strategy):
            return run_sweep(trainer, endless(batches), sweep, reporter)


def sweep_session(session: Session, options: LrFindConfig) -> Sweep:
    """sweep_learning_rate on a session's model, data and devices."""
    return sweep_learning_rate(
        session.config,
        options,
        session.model,
        session.data,
        session.strategy,
        session.policy,
        session.class_weights,
        session.reporter,
    )


def auto_learning_rate(
    session: Session, run_dir: Path, resume: bool
) -> tuple[float, dict[str, Any] | None]:
    """train --lr auto: (the rate, what config.json records of the sweep). A new run
    sweeps and takes the suggestion; a resumed one takes the rate its config.json
    recorded (None: nothing new to record)."""
    if resume:
        return rundir.recorded_learning_rate(run_dir), None
    found = sweep_session(session, LrFindConfig())
    if found.suggested_lr is None:
        raise ImgclsError(
            f"--lr auto: the loss did not fall enough during the {len(found.lrs)}-step "
            "sweep, so there is no rate to suggest; give --lr a number (`imgcls lr-find "
            "--output DIR` draws the sweep)."
        )
    session.reporter.info(
        f"Learning rate {found.suggested_lr:.3g}: lr-find's {SUGGESTED} suggestion "
        f"(steepest descent at {found.suggestions['steepest'] or math.nan:.3g})"
    )
    return found.suggested_lr, found.summary()
