"""The Typer app: one thin function per subcommand. Heavy modules are imported lazily."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import typer

from . import __version__
from .config import AugmentPreset, FillMode, Flip, Optimizer, Schedule
from .errors import ImgclsError, UsageError

app = typer.Typer(
    name="imgcls",
    help="Image classification with TensorFlow and Keras: train, fine-tune, evaluate, predict.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="rich",
)

DATA_PANEL = "Data"
TRAIN_PANEL = "Training"
OUTPUT_PANEL = "Output"
AUGMENT_PANEL = "Augmentation"
DATA_KEYS = ("dataset", "data", "data_dir", "manual_dir", "image_size", "val_split", "test_split")


def augment_option(help: str, metavar: str | None = None, default: Any = None) -> Any:
    return typer.Option(default, metavar=metavar, help=help, rich_help_panel=AUGMENT_PANEL)


# Augmentation options, defined once and used by `train` and `augment-preview` alike, so
# the preview shows exactly what training does. None: from the preset.
AUGMENT_OPTIONS = {
    "augment": augment_option(
        "Preset. Default: none for the embedded 8x8 digits, light (shifts, no flip) for "
        "mnist and other character datasets, standard otherwise. strong adds colour jitter "
        "and random erasing."
    ),
    "flip": augment_option("Random mirroring (digit datasets: none)."),
    "rotate": augment_option("Rotate by up to DEGREES either way.", "DEGREES"),
    "crop": augment_option(
        "Crop a random window FRACTION smaller in height and width, resize it back.", "FRACTION"
    ),
    "zoom": augment_option("Zoom in or out by up to FRACTION.", "FRACTION"),
    "translate": augment_option("Shift by up to FRACTION of the height and width.", "FRACTION"),
    "contrast": augment_option("Change contrast by up to FRACTION.", "FRACTION"),
    "brightness": augment_option("Shift brightness by up to FRACTION of 255.", "FRACTION"),
    "color_jitter": augment_option(
        "Jitter saturation and hue by up to FRACTION (colour images).", "FRACTION"
    ),
    "erase": augment_option("Blank a random rectangle with this PROBABILITY.", "PROBABILITY"),
    "fill": augment_option(
        "Fill for corners uncovered by crop/rotate/zoom/translate. Default: constant (black) "
        "for digit datasets, reflect otherwise."
    ),
    "mixup": augment_option(
        "Mix pairs of images and their labels, weights from Beta(ALPHA, ALPHA); 0: off.",
        "ALPHA",
        0.0,
    ),
    "cutmix": augment_option(
        "Paste a patch of another image; labels mixed by area (ALPHA <= 1); 0: off.",
        "ALPHA",
        0.0,
    ),
}

_state = {"debug": False}


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"imgcls {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(
        False,
        "--version",
        callback=version_callback,
        is_eager=True,
        help="Show the version and exit.",
    ),
    debug: bool = typer.Option(
        False, "--debug", help="Show tracebacks and TensorFlow's own log messages."
    ),
) -> None:
    """Image classification with TensorFlow and Keras."""
    _state["debug"] = debug
    from .runtime import set_debug

    set_debug(debug)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn library errors into one red line and an exit code (no traceback unless --debug)."""
    from . import console

    try:
        yield
    except ImgclsError as error:
        if _state["debug"]:
            raise
        console.error(str(error))
        raise typer.Exit(error.exit_code) from None
    except KeyboardInterrupt:
        console.error("Interrupted.")
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as error:
        if _state["debug"]:
            raise
        console.error(
            f"Unexpected {type(error).__name__}: {error}. Run again with --debug for the traceback."
        )
        raise typer.Exit(1) from None


def apply_config_file(
    ctx: typer.Context, config_file: Path, values: dict[str, Any]
) -> dict[str, Any]:
    """Options from a run's config.json, for every flag not given on the command line."""
    from .config import TrainConfig, read_config_options

    def given(name: str) -> bool:
        # By name: Typer releases differ in where ParameterSource lives.
        source = ctx.get_parameter_source(name)
        return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")

    saved = TrainConfig.from_dict(read_config_options(config_file)).to_dict()
    augment = {"augment" if k == "preset" else k: v for k, v in saved["augment"].items()}
    flat = {
        **{k: v for k, v in saved.items() if k not in ("data", "augment")},
        **saved["data"],
        **augment,
    }
    source_given = given("dataset") or given("data")
    merged = dict(values)
    for name, value in flat.items():
        if source_given and name in ("dataset", "data"):
            continue
        if name in merged and not given(name):
            merged[name] = value
    return merged


def arch_help() -> str:
    from .models import ARCHITECTURES

    return "Architecture: " + "; ".join(
        f"[bold]{n}[/]: {d}" for n, (_, _, d) in ARCHITECTURES.items()
    )


@app.command()
def train(
    ctx: typer.Context,
    dataset: Optional[str] = typer.Option(
        None,
        help="TFDS name (mnist, fashion_mnist, cifar10, tf_flowers, …) or 'digits' "
        "(embedded, no network). Default: digits.",
        rich_help_panel=DATA_PANEL,
    ),
    data: Optional[Path] = typer.Option(
        None,
        help="Folder with one sub-folder per class (optionally inside train/ val/ test/).",
        rich_help_panel=DATA_PANEL,
    ),
    data_dir: Optional[Path] = typer.Option(
        None, help="TFDS data_dir (default ~/tensorflow_datasets).", rich_help_panel=DATA_PANEL
    ),
    manual_dir: Optional[Path] = typer.Option(
        None,
        help="TFDS manual_dir, for datasets TFDS cannot download itself (imagenet2012).",
        rich_help_panel=DATA_PANEL,
    ),
    image_size: Optional[int] = typer.Option(
        None,
        help="Resize images to SIZE x SIZE. Default: the data's own size, or 64.",
        rich_help_panel=DATA_PANEL,
    ),
    val_split: float = typer.Option(
        0.1,
        help="Fraction of the training data held out for validation (seeded).",
        rich_help_panel=DATA_PANEL,
    ),
    test_split: float = typer.Option(
        0.1,
        help="Fraction held out for the final test, when the data has no test split.",
        rich_help_panel=DATA_PANEL,
    ),
    arch: str = typer.Option("simplecnn", help=arch_help(), rich_help_panel=TRAIN_PANEL),
    epochs: int = typer.Option(10, help="Training epochs.", rich_help_panel=TRAIN_PANEL),
    batch_size: int = typer.Option(64, help="Batch size.", rich_help_panel=TRAIN_PANEL),
    lr: float = typer.Option(1e-3, help="Learning rate.", rich_help_panel=TRAIN_PANEL),
    optimizer: Optimizer = typer.Option(Optimizer.adam, rich_help_panel=TRAIN_PANEL),
    weight_decay: float = typer.Option(
        1e-4, help="Weight decay (adamw only).", rich_help_panel=TRAIN_PANEL
    ),
    schedule: Schedule = typer.Option(
        Schedule.constant, help="Learning-rate schedule.", rich_help_panel=TRAIN_PANEL
    ),
    warmup_epochs: int = typer.Option(
        0, help="Epochs of linear learning-rate warmup from 0.", rich_help_panel=TRAIN_PANEL
    ),
    label_smoothing: float = typer.Option(
        0.0, help="Label smoothing.", rich_help_panel=TRAIN_PANEL
    ),
    patience: Optional[int] = typer.Option(
        None,
        help="Stop when validation loss has not improved for N epochs; keep the best weights.",
        rich_help_panel=TRAIN_PANEL,
    ),
    seed: int = typer.Option(
        42,
        help="Random seed: the same seed gives the same run on CPU.",
        rich_help_panel=TRAIN_PANEL,
    ),
    augment: Optional[AugmentPreset] = AUGMENT_OPTIONS["augment"],
    flip: Optional[Flip] = AUGMENT_OPTIONS["flip"],
    rotate: Optional[float] = AUGMENT_OPTIONS["rotate"],
    crop: Optional[float] = AUGMENT_OPTIONS["crop"],
    zoom: Optional[float] = AUGMENT_OPTIONS["zoom"],
    translate: Optional[float] = AUGMENT_OPTIONS["translate"],
    contrast: Optional[float] = AUGMENT_OPTIONS["contrast"],
    brightness: Optional[float] = AUGMENT_OPTIONS["brightness"],
    color_jitter: Optional[float] = AUGMENT_OPTIONS["color_jitter"],
    erase: Optional[float] = AUGMENT_OPTIONS["erase"],
    fill: Optional[FillMode] = AUGMENT_OPTIONS["fill"],
    mixup: float = AUGMENT_OPTIONS["mixup"],
    cutmix: float = AUGMENT_OPTIONS["cutmix"],
    config_file: Optional[Path] = typer.Option(
        None,
        "--config",
        help="Read options from a run's config.json; flags given here override it.",
        rich_help_panel=TRAIN_PANEL,
    ),
    output: Optional[Path] = typer.Option(
        None,
        help="Run directory. Default: runs/train-<data>-<arch>[-N].",
        rich_help_panel=OUTPUT_PANEL,
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Replace an existing --output directory.",
        rich_help_panel=OUTPUT_PANEL,
    ),
    quiet: bool = typer.Option(
        False,
        "--quiet",
        "-q",
        help="No progress output (for CI logs).",
        rich_help_panel=OUTPUT_PANEL,
    ),
) -> None:
    """Train a CNN from scratch on a TFDS dataset, a folder of images, or the embedded digits."""
    from . import console

    with user_errors():
        values = {
            k: v
            for k, v in locals().items()
            if k not in ("ctx", "config_file", "output", "force", "quiet", "console")
        }
        if config_file is not None:
            values = apply_config_file(ctx, config_file, values)
        config = build_train_config(values)
        from .runs import prepare_run_dir

        run_dir = prepare_run_dir(
            output, "train", f"{config.data.source_name}-{config.arch}", force
        )
        from .train import run_train

        reporter = console.RichReporter(quiet)
        result = run_train(config, run_dir, reporter)
        if not quiet:
            console.out.print(console.metrics_table(result.metrics))
        console.out.print(f"Run saved to [bold]{run_dir}[/]")


@app.command("augment-preview")
def augment_preview(
    files: Optional[list[Path]] = typer.Argument(
        None,
        metavar="IMAGE...",
        help="Image files to preview, instead of --dataset or --data.",
        show_default=False,
    ),
    dataset: Optional[str] = typer.Option(
        None,
        help="TFDS name or 'digits' (embedded). Default: digits.",
        rich_help_panel=DATA_PANEL,
    ),
    data: Optional[Path] = typer.Option(
        None,
        help="Folder with one sub-folder per class; samples come from its training part.",
        rich_help_panel=DATA_PANEL,
    ),
    data_dir: Optional[Path] = typer.Option(
        None, help="TFDS data_dir (default ~/tensorflow_datasets).", rich_help_panel=DATA_PANEL
    ),
    image_size: Optional[int] = typer.Option(
        None,
        help="Resize images to SIZE x SIZE, as train does. Default: the data's own size, or 64.",
        rich_help_panel=DATA_PANEL,
    ),
    samples: int = typer.Option(
        4, help="Source images (rows), from --dataset or --data.", rich_help_panel=OUTPUT_PANEL
    ),
    variants: int = typer.Option(
        5, help="Augmented versions of each image (columns).", rich_help_panel=OUTPUT_PANEL
    ),
    seed: int = typer.Option(
        42,
        help="Random seed: picks the samples and drives the augmentation.",
        rich_help_panel=OUTPUT_PANEL,
    ),
    augment: Optional[AugmentPreset] = AUGMENT_OPTIONS["augment"],
    flip: Optional[Flip] = AUGMENT_OPTIONS["flip"],
    rotate: Optional[float] = AUGMENT_OPTIONS["rotate"],
    crop: Optional[float] = AUGMENT_OPTIONS["crop"],
    zoom: Optional[float] = AUGMENT_OPTIONS["zoom"],
    translate: Optional[float] = AUGMENT_OPTIONS["translate"],
    contrast: Optional[float] = AUGMENT_OPTIONS["contrast"],
    brightness: Optional[float] = AUGMENT_OPTIONS["brightness"],
    color_jitter: Optional[float] = AUGMENT_OPTIONS["color_jitter"],
    erase: Optional[float] = AUGMENT_OPTIONS["erase"],
    fill: Optional[FillMode] = AUGMENT_OPTIONS["fill"],
    mixup: float = AUGMENT_OPTIONS["mixup"],
    cutmix: float = AUGMENT_OPTIONS["cutmix"],
    output: Path = typer.Option(
        Path("augment-preview.png"), help="The PNG to write.", rich_help_panel=OUTPUT_PANEL
    ),
) -> None:
    """Draw a PNG grid of images and augmented versions of them, to check an augmentation
    before training with it: one row per image, the original first."""
    from . import console

    with user_errors():
        augment_config = build_augment_config(
            {key: value for key, value in locals().items() if key in AUGMENT_OPTIONS}
        )
        if files and (dataset is not None or data is not None):
            raise UsageError("Give image files or --dataset/--data, not both.")
        source = files or build_data_config(
            {"dataset": dataset, "data": data, "data_dir": data_dir, "image_size": image_size}
        )
        from .augment_preview import run_augment_preview

        path = run_augment_preview(
            source,
            image_size=image_size,
            augment=augment_config,
            samples=samples,
            variants=variants,
            seed=seed,
            output=output,
            report=console.info,
        )
        console.out.print(str(path), soft_wrap=True, markup=False)


def build_train_config(values: dict[str, Any]):
    from .config import TrainConfig
    from .models import check_architecture

    values = dict(values)
    data = build_data_config({key: values.pop(key) for key in DATA_KEYS})
    augment = build_augment_config({key: values.pop(key) for key in AUGMENT_OPTIONS})
    check_architecture(values["arch"])
    return TrainConfig(data=data, augment=augment, **values)


def build_data_config(values: dict[str, Any]):
    """DataConfig from the data flags; paths as strings, digits when no source is given."""
    from .config import DataConfig

    values = dict(values)
    for key in ("data", "data_dir", "manual_dir"):
        if values.get(key) is not None:
            values[key] = str(values[key])
    if values["dataset"] is None and values["data"] is None:
        values["dataset"] = "digits"
    return DataConfig(**values)


def build_augment_config(values: dict[str, Any]):
    """AugmentConfig from the augmentation flags (--augment is its preset)."""
    from .config import AugmentConfig, from_dict

    values = dict(values)
    # Through from_dict, so strings from a --config file become enums again.
    return from_dict(AugmentConfig, {"preset": values.pop("augment"), **values}, "augment")


def main() -> None:
    app()
