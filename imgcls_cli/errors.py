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
    --force → force=True, --batch-size → batch_size, --epochs N → epochs=N, --lr auto →
    lr='auto'; "the same command" → "the same call"."""

    def keyword(match: re.Match) -> str:
        negated, name, value = match.group(1), match.group(2), match.group(3)
        python = name.replace("-", "_")
        if negated:
            return f"{python}=False"
        if name in SWITCHES:
            return f"{python}=True"
        return python if value is None else f"{python}={python_value(value)}"

    # A command quoted in backticks (`imgcls train --dataset digits`) becomes the API call
    # that does the same (`api.train(dataset='digits')`), or stays as it is.
    parts = message.split("`")
    for index in range(len(parts)):
        if index % 2 == 0:
            parts[index] = re.sub(FLAG, keyword, parts[index])
            parts[index] = parts[index].replace("the same command", "the same call")
        else:
            parts[index] = api_call(parts[index]) or parts[index]
    return "`".join(parts)


# A flag in a message, with the value that follows it where that is surely its value: a
# placeholder (DIR, N), a number (not a percentage) or `auto`; other words may be the
# sentence going on.
BARE_VALUE = r"[A-Z][A-Z_]*|-?\d+(?:\.\d+)?(?:e-?\d+)?"  # a placeholder or a number
FLAG = re.compile(
    rf"(?<![\w-])--(no-)?([a-z][a-z0-9-]*)(?: ((?:{BARE_VALUE})(?![\w%]|\.\d)|auto\b))?"
)


def api_call(command: str) -> str | None:
    """`imgcls evaluate --model runs/x --data DIR` as `api.evaluate(model='runs/x',
    data=DIR)`; None for what is not an imgcls command of flags alone (a positional
    argument has no keyword to map to). An upper-case word (DIR, RUN) stays a
    placeholder, a number stays a number."""
    import shlex

    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if len(words) < 2 or words[0] != "imgcls" or not re.fullmatch(r"[a-z][a-z-]*", words[1]):
        return None
    arguments, rest = [], words[2:]
    while rest:
        flag = re.fullmatch(r"--(no-)?([a-z][a-z0-9-]*)", rest.pop(0))
        if flag is None:
            return None
        name = flag.group(2).replace("-", "_")
        if flag.group(1) or flag.group(2) in SWITCHES:
            arguments.append(f"{name}={not flag.group(1)}")
        elif rest and not rest[0].startswith("--"):
            arguments.append(f"{name}={python_value(rest.pop(0))}")
        else:
            return None
    return f"api.{words[1].replace('-', '_')}({', '.join(arguments)})"


def python_value(word: str) -> str:
    """A flag's value as Python source: placeholders and numbers bare, the rest a string."""
    if re.fullmatch(BARE_VALUE, word):
        return word
    return repr(word)


def plural(count: int, noun: str) -> str:
    """'1 epoch', '2 epochs'."""
    return f"{count} {noun}" + ("" if count == 1 else "s")
