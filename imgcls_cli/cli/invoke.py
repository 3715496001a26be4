"""How a command calls the library: only the options given on its command line, errors
turned into one red line and an exit code, a training run's result printed."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import typer

from imgcls_cli import backend
from imgcls_cli.cli.options import (
    RUN_FLAGS,
)
from imgcls_cli.errors import CLI_SPELLING, ImgclsError


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn library errors into one red line and an exit code (no traceback unless --debug)."""
    from imgcls_cli.cli import console

    spelling = CLI_SPELLING.set(True)  # the library's messages keep their --flags
    try:
        yield
    except ImgclsError as error:
        if backend.debugging():  # the traceback, and the exit code the error has without it
            import traceback

            traceback.print_exc()
        else:
            console.error(str(error))
        raise typer.Exit(error.exit_code) from None
    except KeyboardInterrupt:
        console.stopped("Interrupted.")
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort):
        raise
    except BrokenPipeError:  # stdout's reader stopped early (`| head`): a normal end
        with console.closed_stdout_ends_quietly():
            raise
    except OSError as error:  # unwritable output, full disk, vanished files
        if backend.debugging():
            raise
        where = f": {error.filename}" if error.filename else ""
        console.error(f"{error.strerror or error}{where}. Check the path and free space.")
        raise typer.Exit(1) from None
    except Exception as error:
        if backend.debugging():
            raise
        console.error(
            f"Unexpected {type(error).__name__}: {error}. Run again with --debug for the traceback."
        )
        raise typer.Exit(1) from None
    finally:
        CLI_SPELLING.reset(spelling)


def given(ctx: typer.Context, *leave_out: str) -> dict[str, Any]:
    """The options given on the command line: the library fills in the rest."""
    values = {}
    for name, value in ctx.params.items():
        source = ctx.get_parameter_source(name)
        # By name: Typer releases differ in where ParameterSource lives.
        if name not in leave_out and source is not None and source.name == "COMMANDLINE":
            values[name] = value
    return values


def run_and_report(ctx: typer.Context) -> None:
    """Train or finetune with the options given, then print the result; an interruption
    says how to resume."""
    import shlex

    from imgcls_cli.cli import console

    command, flags = ctx.info_name or "train", ctx.params
    with user_errors():
        from imgcls_cli.api import execute_run, prepare_run
        from imgcls_cli.report.metrics import held_out_splits, nothing_held_out

        config, run_dir, resuming = prepare_run(
            command,
            given(ctx, *RUN_FLAGS),
            flags["output"],
            flags["force"],
            flags["resume"],
            flags["config_file"],
        )
        # execute_run imports TensorFlow (a refused option came back before it, as fast
        # as --help); a Ctrl-C during that import gives the claimed directory back too.
        try:
            run = execute_run(config, run_dir, resuming, console.RichReporter(flags["quiet"]))
        except KeyboardInterrupt as stop:
            training = sys.modules.get("imgcls_cli.engine.training")
            if training is None or not isinstance(stop, training.TrainingInterrupted):
                raise  # before training started: "Interrupted.", nothing left behind
            where = training.where_in_training(stop.epoch, stop.step)
            console.stopped(
                f"Interrupted {where}; checkpoint saved. "
                f"Resume with: imgcls {command} --resume {shlex.quote(str(run_dir))}"
            )
            raise typer.Exit(stop.exit_code) from None
        fingerprint = run.metrics["weights_fingerprint"]
        if not run.is_chief:
            console.out.print(
                f"Worker done (weights {fingerprint}); the chief writes {console.escape(run.path)}",
                soft_wrap=True,
            )
            return
        if not flags["quiet"]:
            console.out.print(console.metrics_table(run.metrics))
            if not held_out_splits(run.metrics):
                splits = config.data.val_split, config.data.test_split
                said = nothing_held_out(*splits, scores="the scores above are")
                console.out.print(said, soft_wrap=True)
        console.out.print(
            f"Run saved to [bold]{console.escape(run.path)}[/] (weights {fingerprint})",
            soft_wrap=True,
        )
