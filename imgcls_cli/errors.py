"""The one exception family the library raises; cli/app.py turns it into a red line and an
exit code. Messages name options as the command line spells them (`--force`); from Python
they are spelt as keywords (`force=True`), in one place: python_spelling."""

import contextvars
import re

# Set while a CLI command runs (cli.invoke.user_errors): its messages keep their flags.
CLI_SPELLING: contextvars.ContextVar[bool] = contextvars.ContextVar("cli_spelling", default=False)

# Flags that take no value: from Python they are keywords set to True.
SWITCHES = frozenset(
    {"force", "deterministic", "mixed-precision", "scale-lr", "tta", "explain", "throughput"}
)


class ImgclsError(Exception):
    """A problem the user can fix. The message says what is wrong and what to do."""

    exit_code = 1


class UsageError(ImgclsError):
    """A bad option value or combination (exit code 2, like Typer's own usage errors)."""

    exit_code = 2


class DataError(ImgclsError):
    """Data that cannot be found, read or used."""


class DataLayoutError(DataError):
    """Data whose layout imgcls cannot read (a CSV without a label column, a dataset
    without an image feature): the file or the flags must change, so it is a usage error
    (exit code 2)."""

    exit_code = 2


class UnconvertibleModel(ImgclsError):
    """A model the chosen export format cannot take (its ops are named): the run is fine,
    the format is not, so nothing is written (exit code 1: the work failed)."""


class RunDirError(ImgclsError):
    """A run directory that is missing, incomplete or would be overwritten."""


class OutputRefused(UsageError, RunDirError):
    """An output that holds what imgcls will not replace: an earlier result without
    --force, or anything imgcls did not write. Refused before any work, nothing touched;
    the command line must change, so it is a usage error (exit code 2) in every command."""


def unknown_name_message(kind: str, name: str, valid: list[str]) -> str:
    """'Unknown arch 'simplcnn'. Did you mean 'simplecnn'? Valid: ...' for any registry."""
    import difflib

    message = f"Unknown {kind} '{name}'."
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    if close:
        message += f" Did you mean '{close[0]}'?"
    shown = ", ".join(valid) + "." if len(valid) <= 12 else ", ".join(valid[:12]) + ", …"
    return message + f" Valid: {shown}"


def python_spelling(message: str) -> str:
    """A message's command-line flags as the API's keywords: --no-check → check=False,
    --force → force=True, --batch-size → batch_size."""

    def keyword(match: re.Match) -> str:
        negated, name = match.group(1), match.group(2)
        python = name.replace("-", "_")
        if negated:
            return f"{python}=False"
        return f"{python}=True" if name in SWITCHES else python

    # A command quoted in backticks (`imgcls train --dataset digits`) stays as it is.
    parts = message.split("`")
    for index in range(0, len(parts), 2):
        parts[index] = re.sub(r"(?<![\w-])--(no-)?([a-z][a-z0-9-]*)", keyword, parts[index])
    return "`".join(parts)


def plural(count: int, noun: str) -> str:
    """'1 epoch', '2 epochs'."""
    return f"{count} {noun}" + ("" if count == 1 else "s")
