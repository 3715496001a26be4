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
from imgcls_cli.cli.group import ImgclsCommand, ImgclsGroup

app = typer.Typer(
    name="imgcls",
    cls=ImgclsGroup,
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
    if not debug and backend.owns_process():
        backend.hide_native_output()


# Registered in --help's order: (function, name or None for the function's name, the
# one-line summary of the command list; the docstring is the command's own help).
COMMANDS = [
    (training_commands.train, None, "Train a CNN from scratch on a dataset or image folder."),
    (training_commands.finetune, None, "Fine-tune an ImageNet backbone on your images."),
    (training_commands.lr_find, "lr-find", "Sweep the learning rate; suggest one for train."),
    (training_commands.augment_preview, "augment-preview", "Draw what augmentation does."),
    (model_commands.evaluate, None, "Score a trained model on held-out data."),
    (model_commands.predict, None, "Classify images with a trained model."),
    (model_commands.explain, None, "Show where the model looks (Grad-CAM heatmaps)."),
    (model_commands.inspect, None, "Report what a dataset holds, before training."),
    (model_commands.export, None, "Export a run to SavedModel, TFLite or ONNX."),
    (model_commands.benchmark, None, "Time a run's model and exports on this machine."),
    (model_commands.serve, None, "Serve a model over HTTP, with a page to try it."),
]
for function, name, summary in COMMANDS:
    app.command(name, short_help=summary, cls=ImgclsCommand)(function)


def main() -> None:
    import sys

    backend.claim_process()  # this process is imgcls' own (not tests' or a notebook's)
    app(args=debug_first(sys.argv[1:]))


def debug_first(args: list[str]) -> list[str]:
    """--debug is imgcls' own option, but users append it where they typed the rest
    (`imgcls train … --debug`, as "Run again with --debug" invites): it is moved before
    the command. After `--` every word is an argument and stays."""
    end = args.index("--") if "--" in args else len(args)
    if "--debug" not in args[:end]:
        return args
    return ["--debug"] + [word for word in args[:end] if word != "--debug"] + args[end:]
