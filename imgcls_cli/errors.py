"""The one exception family the library raises; cli/app.py turns it into a red line and an
exit code."""


class ImgclsError(Exception):
    """A problem the user can fix. The message says what is wrong and what to do."""

    exit_code = 1


class UsageError(ImgclsError):
    """A bad option value or combination (exit code 2, like Typer's own usage errors)."""

    exit_code = 2


class DataError(ImgclsError):
    """Data that cannot be found, read or used."""


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
    shown = valid if len(valid) <= 12 else valid[:12] + ["…"]
    return message + f" Valid: {', '.join(shown)}."
