"""How the library reports to the user: one interface for every command. cli/app.py passes a
Rich implementation (console.RichReporter); the Python API and tests default to silence."""

from __future__ import annotations

from typing import Protocol


class Reporter(Protocol):
    def info(self, message: str) -> None: ...
    def warning(self, message: str) -> None: ...
    def epoch_start(self, epoch: int, epochs: int, steps: int | None) -> None: ...
    def step(self, step: int, logs: dict[str, float]) -> None: ...
    def epoch_end(self, logs: dict[str, float]) -> None: ...
    def batches(self, done: int, total: int | None) -> None:
        """Progress through work other than training (evaluating, predicting)."""


class SilentReporter:
    def info(self, message: str) -> None:
        pass

    def warning(self, message: str) -> None:
        pass

    def epoch_start(self, epoch: int, epochs: int, steps: int | None) -> None:
        pass

    def step(self, step: int, logs: dict[str, float]) -> None:
        pass

    def epoch_end(self, logs: dict[str, float]) -> None:
        pass

    def batches(self, done: int, total: int | None) -> None:
        pass
