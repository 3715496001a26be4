"""How the library reports to the user: one interface for every command. cli/app.py passes a
Rich implementation (console.RichReporter); the Python API defaults to PythonReporter
(warnings through Python's `warnings`), and the commands' own defaults are silent."""

from __future__ import annotations

from typing import Any, Protocol


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


def files_and_reasons(pairs: list[tuple[str, str]], limit: int = 10) -> str:
    """'a.png (reason); b.png (reason); and 3 more': the first few of a warning's files."""
    shown = "; ".join(f"{path} ({reason})" for path, reason in pairs[:limit])
    return shown + (f"; and {len(pairs) - limit} more" if len(pairs) > limit else "")


def nothing_read(failed: list[tuple[str, str]], outcome: str) -> str:
    """The one line of a command (predict, explain) that could read none of its inputs:
    'No input could be read, so nothing was <outcome>: a.png (reason); …'."""
    return f"No input could be read, so nothing was {outcome}: {files_and_reasons(failed, 5)}."


class ImgclsWarning(UserWarning):
    """What imgcls warns about from Python (skipped images, a choice it made for you)."""


class PythonReporter(SilentReporter):
    """The API's reporter unless one is given: warnings through Python's `warnings` (a
    notebook shows them under the cell), other messages to the `imgcls` logger."""

    def info(self, message: str) -> None:
        import logging

        logging.getLogger("imgcls").info(message)

    def warning(self, message: str) -> None:
        import warnings

        from imgcls_cli.errors import CLI_SPELLING, python_spelling

        if not CLI_SPELLING.get():
            message = python_spelling(message)
        warnings.warn(message, ImgclsWarning, stacklevel=caller_level())


def caller_level() -> int:
    """The stacklevel of the first frame outside imgcls: a warning points at the line of
    the notebook or script that called the API, not inside the library."""
    import sys

    package = __name__.split(".")[0]
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] == package:
        frame, level = frame.f_back, level + 1
    return level


class CompletedReporter:
    """A reporter given to the API with only some of the methods (just `epoch_end`, say):
    the others come from PythonReporter."""

    def __init__(self, reporter: Any):
        self._reporter, self._fallback = reporter, PythonReporter()

    def __getattr__(self, name: str) -> Any:
        own = getattr(self._reporter, name, None)
        return own if callable(own) else getattr(self._fallback, name)


def api_reporter(reporter: Any | None) -> Any:
    """What the API reports through: the caller's reporter, completed, or PythonReporter."""
    if reporter is None:
        return PythonReporter()
    if all(callable(getattr(reporter, name, None)) for name in REPORTER_METHODS):
        return reporter
    return CompletedReporter(reporter)


REPORTER_METHODS = ("info", "warning", "epoch_start", "step", "epoch_end", "batches")
