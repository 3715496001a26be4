"""The Typer app: its global options (--version, --debug) and the commands, registered in
the order --help lists them. Each command lives in training_commands.py or
model_commands.py: its own options and a call into `api`, nothing else. Options that
several commands share are declared once, in options.py; a command passes on only the
options given on its command line (invoke.given), so the library fills in the same
defaults for the CLI and for Python callers. Heavy modules are imported lazily.
"""

from __future__ import annotations

from typing import Annotated

import typer

from imgcls_cli import __version__, backend
from imgcls_cli.cli import model_commands, training_commands

app = typer.Typer(
    name="imgcls",
    help="Image classification with TensorFlow and Keras: train, fine-tune, evaluate, predict.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="rich",
)


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"imgcls {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=version_callback, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks and TensorFlow's own log messages.")
    ] = False,
) -> None:
    """Image classification with TensorFlow and Keras."""
    backend.set_debug(debug)


# Registered in --help's order; None: the function's name.
COMMANDS = [
    (training_commands.train, None),
    (training_commands.finetune, None),
    (training_commands.lr_find, "lr-find"),
    (training_commands.augment_preview, "augment-preview"),
    (model_commands.evaluate, None),
    (model_commands.predict, None),
    (model_commands.explain, None),
    (model_commands.inspect, None),
    (model_commands.export, None),
    (model_commands.benchmark, None),
]
for function, name in COMMANDS:
    app.command(name)(function)


def main() -> None:
    app()
