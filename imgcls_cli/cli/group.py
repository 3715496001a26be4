"""The Typer group imgcls runs as: help screens that read at 80 columns, and Click's own
usage errors (an unknown option, a value of the wrong type) as one red line with an exit
code, like every other refusal.

Typer renders types as `<int>`, `<list[str]>` and `{run_dir}`; people know the metavars
of Click and argparse (`INTEGER`, `PATH`, `[adam|sgd]`, `IMAGES...`), so each parameter
gets one when the app is built.
"""

from __future__ import annotations

import sys
import typing
from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

# The metavars of Click and argparse, by the annotation's type.
TYPE_METAVARS = {int: "INTEGER", float: "FLOAT", str: "TEXT", bool: "BOOLEAN"}
CHOICES_WIDTH = 16


def click_exception_class() -> type[Exception]:
    """Click's ClickException, wherever this Typer release keeps Click."""
    for cls in typer.BadParameter.__mro__:
        if cls.__name__ == "ClickException":
            return cls
    return typer.BadParameter  # pragma: no cover - every Click has the class


ClickException = click_exception_class()


def option_metavar(param: Any) -> str:
    """What an option's value column shows: nothing for a flag, the choices of an enum,
    else the type's name (a list option shows its element's: it is repeated)."""
    kind = param.type_descriptor
    if getattr(param, "is_flag", False) or kind.annotation is bool:
        return ""
    if kind.is_choice:
        choices = "[" + "|".join(str(getattr(c, "value", c)) for c in kind.choices) + "]"
        # A long list would squeeze the help column: the help names the choices instead.
        return choices if len(choices) <= CHOICES_WIDTH else param.name.upper()
    if kind.is_path:
        return "PATH"
    annotation = kind.annotation
    if kind.is_list:
        (annotation,) = typing.get_args(annotation)
    return TYPE_METAVARS.get(annotation, getattr(annotation, "__name__", "VALUE").upper())


class NamedArgument(TyperArgument):
    """An argument shown by its metavar (`IMAGES...`, `RUN_DIR`), in the usage line and in
    the arguments panel, without a second type column."""

    def get_usage_pieces(self, ctx: Any) -> list[str]:
        name = self.metavar or self.name.upper()
        return [name if self.required else f"[{name}]"]

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


def name_parameters(params: list[Any]) -> None:
    for param in params:
        if isinstance(param, TyperArgument):
            if param.metavar is None:
                dots = "..." if param.nargs != 1 else ""
                param.metavar = param.name.upper() + dots
            param.__class__ = NamedArgument
        elif param.metavar is None:
            param.metavar = option_metavar(param)


class NamedParameters:
    """Names every parameter a command shows, --help included (Click adds it late)."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)  # type: ignore[misc]
        name_parameters(params)
        return params


class ImgclsCommand(NamedParameters, TyperCommand):
    pass


class ImgclsGroup(NamedParameters, TyperGroup):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        name_parameters(self.params)

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except ClickException as error:
            # NoArgsIsHelpError: the help is already printed.
            if type(error).__name__ != "NoArgsIsHelpError":
                report_usage_error(error)
            sys.exit(error.exit_code)
        except typer.Abort:
            from imgcls_cli.cli import console

            console.error("Aborted.")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


# Typer reads values with pydantic: its phrases, as imgcls' own messages put them.
PYDANTIC_PHRASES = [
    (r"Value error, ", ""),
    (r"Input should be a valid integer, unable to parse string as an integer", "a whole number"),
    (r"Input should be a valid number, unable to parse string as a number", "a number"),
    (r"Input should be greater than or equal to (\S+)", r"at least \1"),
    (r"Input should be less than or equal to (\S+)", r"at most \1"),
]


def usage_message(text: str) -> str:
    """Click's "Invalid value for '--epochs': <pydantic's phrase>" as "--epochs must be a
    whole number"; other usage errors (an unknown option, a missing argument) as they are."""
    import re

    message = " ".join(text.split())
    for pattern, replacement in PYDANTIC_PHRASES:
        message = re.sub(pattern, replacement, message)
    invalid = re.fullmatch(r"Invalid value for '(--[\w-]+)'(?: / '-\w')?: (.*)", message)
    if invalid:
        flag, reason = invalid.groups()
        if reason.startswith(("a whole number", "a number", "at least", "at most")):
            return f"{flag} must be {reason.rstrip('.')}."
        return f"{flag}: {reason}"
    return message


# The options by which the other commands name a run: `export` and `benchmark` take it as
# their argument instead.
RUN_OPTIONS = ("--model", "-m", "--run")


def run_argument_message(error: Any) -> str | None:
    """'No such option: --model; imgcls benchmark takes the run as its argument: imgcls
    benchmark RUN_DIR' for a command whose first argument is the run; else None (Click's
    close matches would offer --help for --model)."""
    ctx = getattr(error, "ctx", None)
    if type(error).__name__ != "NoSuchOption" or ctx is None:
        return None
    if getattr(error, "option_name", None) not in RUN_OPTIONS:
        return None
    arguments = [p for p in ctx.command.params if isinstance(p, TyperArgument)]
    if not arguments or arguments[0].metavar != "RUN_DIR":
        return None
    command = ctx.command_path
    return (
        f"No such option: {error.option_name}; {command} takes the run as its argument: "
        f"{command} RUN_DIR"
    )


def run_given_as_argument_message(error: Any) -> str | None:
    """'runs/x is a run: give it as --model runs/x' when a command that names its run by
    --model (evaluate) got a run folder as an extra argument, as `export RUN_DIR` takes
    it; else None."""
    import re
    from pathlib import Path

    from imgcls_cli.rundir import holds_model

    ctx = getattr(error, "ctx", None)
    found = re.match(r"Got unexpected extra argument(?:s|\(s\))? \((.+)\)$", error.format_message())
    if ctx is None or found is None:
        return None
    if not any("--model" in getattr(p, "opts", ()) for p in ctx.command.params):
        return None
    first = Path(found[1].split()[0])
    if not holds_model(first):
        return None
    return f"{first} is a run, which {ctx.command_path} takes as --model: --model {first}"


def report_usage_error(error: Any) -> None:
    from imgcls_cli.cli import console

    message = (
        run_argument_message(error)
        or run_given_as_argument_message(error)
        or usage_message(error.format_message()).rstrip(".")
    )
    ctx = getattr(error, "ctx", None)
    where = f" See '{ctx.command_path} --help'." if ctx is not None else ""
    end = "" if message.endswith(("?", "!")) else "."  # click's "Did you mean 'train'?"
    console.error(f"{message}{end}{where}")
