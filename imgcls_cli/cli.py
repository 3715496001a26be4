"""The Typer app: one thin function per subcommand. Heavy modules are imported lazily."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from . import __version__
from .config import (
    AugmentPreset,
    CacheMode,
    ClassWeight,
    EvalSplit,
    FillMode,
    FinetuneConfig,
    Flip,
    Optimizer,
    Schedule,
    Strategy,
    TrainConfig,
)
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
SCALE_PANEL = "Devices and checkpoints"
OUTPUT_PANEL = "Output"
MODEL_PANEL = "Model"
AUGMENT_PANEL = "Augmentation"
DATA_KEYS = (
    "dataset",
    "data",
    "data_dir",
    "manual_dir",
    "image_size",
    "val_split",
    "test_split",
    "cache",
)


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

DatasetOption = Annotated[
    Optional[str],
    typer.Option(
        help="TFDS name (mnist, fashion_mnist, cifar10, tf_flowers, …) or 'digits' "
        "(embedded, no network). Default: digits.",
        rich_help_panel=DATA_PANEL,
    ),
]
DataOption = Annotated[
    Optional[Path],
    typer.Option(
        help="Folder with one sub-folder per class (optionally inside train/ val/ test/).",
        rich_help_panel=DATA_PANEL,
    ),
]
DataDirOption = Annotated[
    Optional[Path],
    typer.Option(help="TFDS data_dir (default ~/tensorflow_datasets).", rich_help_panel=DATA_PANEL),
]
ManualDirOption = Annotated[
    Optional[Path],
    typer.Option(
        help="TFDS manual_dir, for datasets TFDS cannot download itself (imagenet2012).",
        rich_help_panel=DATA_PANEL,
    ),
]
ValSplitOption = Annotated[
    float,
    typer.Option(
        help="Fraction of the training data held out for validation (seeded).",
        rich_help_panel=DATA_PANEL,
    ),
]
CacheOption = Annotated[
    CacheMode,
    typer.Option(
        help="Keep resized images in memory between epochs (memory), or decode them from "
        "their source every epoch with flat memory use (none). auto: memory when they fit "
        "in min(2 GiB, a quarter of RAM).",
        rich_help_panel=DATA_PANEL,
    ),
]
TestSplitOption = Annotated[
    float,
    typer.Option(
        help="Fraction held out for the final test, when the data has no test split.",
        rich_help_panel=DATA_PANEL,
    ),
]
StrategyOption = Annotated[
    Strategy,
    typer.Option(
        help="tf.distribute strategy. auto: all GPUs (mirrored), one GPU, or the CPU. "
        "multi-worker reads TF_CONFIG.",
        rich_help_panel=SCALE_PANEL,
    ),
]
ScaleLrOption = Annotated[
    bool,
    typer.Option(
        "--scale-lr", help="Multiply --lr by the number of replicas.", rich_help_panel=SCALE_PANEL
    ),
]
MixedPrecisionOption = Annotated[
    bool,
    typer.Option(
        "--mixed-precision",
        help="mixed_float16 on GPU, mixed_bfloat16 on CPU/TPU; the classifier stays float32.",
        rich_help_panel=SCALE_PANEL,
    ),
]
DeterministicOption = Annotated[
    bool,
    typer.Option(
        "--deterministic",
        help="Deterministic kernels (with --seed: bit-identical runs).",
        rich_help_panel=SCALE_PANEL,
    ),
]
SaveEveryOption = Annotated[
    Optional[int],
    typer.Option(
        help="Also checkpoint every N steps (a checkpoint follows every epoch anyway).",
        rich_help_panel=SCALE_PANEL,
    ),
]
ResumeOption = Annotated[
    Optional[Path],
    typer.Option(
        help="Continue RUN_DIR from its last checkpoint with its saved options "
        "(--epochs, --strategy and --save-every may change).",
        rich_help_panel=SCALE_PANEL,
    ),
]
OptimizerOption = Annotated[Optimizer, typer.Option(rich_help_panel=TRAIN_PANEL)]
WeightDecayOption = Annotated[
    float, typer.Option(help="Weight decay (adamw only).", rich_help_panel=TRAIN_PANEL)
]
LabelSmoothingOption = Annotated[
    float, typer.Option(help="Label smoothing.", rich_help_panel=TRAIN_PANEL)
]
ForceOption = Annotated[
    bool,
    typer.Option(
        "--force", help="Replace an existing --output directory.", rich_help_panel=OUTPUT_PANEL
    ),
]
QuietOption = Annotated[
    bool,
    typer.Option(
        "--quiet", "-q", help="No progress output (for CI logs).", rich_help_panel=OUTPUT_PANEL
    ),
]


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
    except OSError as error:  # unwritable output, full disk, vanished files
        if _state["debug"]:
            raise
        where = f": {error.filename}" if error.filename else ""
        console.error(f"{error.strerror or error}{where}. Check the path and free space.")
        raise typer.Exit(1) from None
    except Exception as error:
        if _state["debug"]:
            raise
        console.error(
            f"Unexpected {type(error).__name__}: {error}. Run again with --debug for the traceback."
        )
        raise typer.Exit(1) from None


def apply_config_file(
    ctx: typer.Context, config_file: Path, values: dict[str, Any], config_class: type
) -> dict[str, Any]:
    """Options from a run's config.json (a TrainConfig or FinetuneConfig run), for every
    flag not given on the command line."""
    from .config import read_config_options

    def given(name: str) -> bool:
        # By name: Typer releases differ in where ParameterSource lives.
        source = ctx.get_parameter_source(name)
        return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")

    saved = config_class.from_dict(read_config_options(config_file, ctx.info_name)).to_dict()
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
    cache: CacheOption = CacheMode.auto,
    arch: str = typer.Option("simplecnn", help=arch_help(), rich_help_panel=TRAIN_PANEL),
    epochs: int = typer.Option(10, help="Training epochs.", rich_help_panel=TRAIN_PANEL),
    batch_size: int = typer.Option(
        64, help="Global batch size, split across all replicas.", rich_help_panel=TRAIN_PANEL
    ),
    lr: float = typer.Option(
        1e-3,
        help="Learning rate, used as given whatever the replica count (see --scale-lr).",
        rich_help_panel=TRAIN_PANEL,
    ),
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
    strategy: StrategyOption = Strategy.auto,
    scale_lr: ScaleLrOption = False,
    mixed_precision: MixedPrecisionOption = False,
    deterministic: DeterministicOption = False,
    save_every: SaveEveryOption = None,
    resume: ResumeOption = None,
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
    with user_errors():
        options = {k: v for k, v in locals().items() if k in TRAIN_OPTION_NAMES}
        config, run_dir, resuming = choose_run(
            ctx, options, TRAIN_OPTION_NAMES, resume, config_file, output, force
        )
        from .train import run_train

        run_and_report(
            lambda reporter: run_train(config, run_dir, reporter, resume=resuming),
            ctx.info_name,
            run_dir,
            quiet,
        )


def choose_run(
    ctx: typer.Context,
    options: dict[str, Any],
    option_names: tuple[str, ...],
    resume: Path | None,
    config_file: Path | None,
    output: Path | None,
    force: bool,
):
    """(config, run directory, resuming) for train or finetune: a run to --resume, or a
    new one from the flags (and --config)."""
    command = ctx.info_name or "train"
    if resume is not None:
        if output is not None or config_file is not None:
            raise UsageError("--resume continues RUN_DIR itself; drop --output and --config.")
        return resumed_config(ctx, resume, options, option_names), resume, True
    if config_file is not None:
        options = apply_config_file(ctx, config_file, options, RUN_CONFIGS[command])
    build = build_train_config if command == "train" else build_finetune_config
    config = build(options)
    from .runs import (
        check_apart_from_data,
        claim_run_dir,
        default_run_dir,
        is_same_run,
        release_claim,
    )
    from .runtime import is_chief_task

    data_paths = [Path(p) for p in (config.data.data, config.data.data_dir) if p]
    if output is not None:
        check_apart_from_data(output, data_paths)
    if config.strategy == Strategy.multi_worker:
        # A restarted multi-worker job reruns the same command: continue from the last
        # checkpoint, as tf.keras' BackupAndRestore does, instead of refusing.
        if is_same_run(output, command, config.to_dict()):
            return config, output, True
        if not is_chief_task():  # only the chief writes (and claims) the run directory
            return config, output or default_run_dir(command, config.run_name), False
    run_dir = claim_run_dir(output, command, config.run_name, force)
    try:
        check_apart_from_data(run_dir, data_paths)
    except ImgclsError:
        release_claim(run_dir)
        raise
    return config, run_dir, False


def run_and_report(run: Any, command: str | None, run_dir: Path, quiet: bool) -> None:
    """Run `run(reporter)`, then print the result; an interruption says how to resume.
    A run that stops before training starts gives its claimed directory back."""
    import shlex

    from . import console
    from .runs import release_claim
    from .training import TrainingInterrupted

    try:
        result = run(console.RichReporter(quiet))
    except TrainingInterrupted as stop:
        console.error(
            f"Interrupted at epoch {stop.epoch}, step {stop.step}; checkpoint saved. "
            f"Resume with: imgcls {command} --resume {shlex.quote(str(run_dir))}"
        )
        raise typer.Exit(stop.exit_code) from None
    except BaseException:
        release_claim(run_dir)
        raise
    if not result.is_chief:
        fingerprint = result.metrics["weights_fingerprint"]
        console.out.print(
            f"Worker done (weights {fingerprint}); the chief writes {console.escape(run_dir)}",
            soft_wrap=True,
        )
        return
    print_run_result(result.metrics, result.run_dir, quiet)


TRAIN_OPTION_NAMES = (
    *DATA_KEYS,
    *AUGMENT_OPTIONS,
    "arch",
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "weight_decay",
    "schedule",
    "warmup_epochs",
    "label_smoothing",
    "patience",
    "seed",
    "strategy",
    "scale_lr",
    "mixed_precision",
    "deterministic",
    "save_every",
)
RESUME_OVERRIDES = ("epochs", "strategy", "save_every")
RUN_CONFIGS = {"train": TrainConfig, "finetune": FinetuneConfig}  # commands that write runs


def resumed_config(
    ctx: typer.Context, run_dir: Path, options: dict[str, Any], option_names: tuple[str, ...]
):
    """The saved options of the `ctx.info_name` run in run_dir, with the few that may
    change between sessions."""
    from .runs import CONFIG_FILE, epochs_trained, read_json

    command = ctx.info_name or "train"

    def given(name: str) -> bool:
        source = ctx.get_parameter_source(name)
        return source is not None and source.name == "COMMANDLINE"

    refused = [n for n in option_names if given(n) and n not in RESUME_OVERRIDES]
    if refused:
        flags = ", ".join("--" + n.replace("_", "-") for n in refused)
        raise UsageError(
            f"--resume continues a run with its saved options; drop {flags} "
            "(only --epochs, --strategy and --save-every may change)."
        )
    document = read_json(run_dir / CONFIG_FILE, f"--resume needs a run directory made by {command}")
    if document.get("command") != command:
        raise UsageError(f"{run_dir} was not made by `imgcls {command}`; cannot resume it here.")
    saved = RUN_CONFIGS[command].from_dict(document.get("options", {}))
    changes = {n: options[n] for n in RESUME_OVERRIDES if given(n)}
    if "epochs" in changes:
        # config.json would claim fewer epochs than metrics.json and the model have.
        done = epochs_trained(run_dir, phase=None if command == "train" else "finetune")
        if changes["epochs"] < done:
            raise UsageError(
                f"{run_dir} has trained {done} epoch(s) already; give --epochs {done} or more."
            )
    import dataclasses

    return dataclasses.replace(saved, **changes)


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
    """Flat option values (from flags and maybe a config file) → a validated TrainConfig."""
    from .config import to_jsonable
    from .models import check_architecture

    values = dict(values)
    data = build_data_config({key: values.pop(key) for key in DATA_KEYS if key in values})
    augment = build_augment_config({key: values.pop(key) for key in AUGMENT_OPTIONS})
    check_architecture(values["arch"])
    return TrainConfig.from_dict(
        {**values, "data": to_jsonable(data), "augment": to_jsonable(augment)}
    )


def build_data_config(values: dict[str, Any]):
    """DataConfig from the data flags; paths as strings, digits when no source is given."""
    from .config import DataConfig
    from .data.sources import EMBEDDED_DATASETS

    values = dict(values)
    for key in ("data", "data_dir", "manual_dir"):
        if values.get(key) is not None:
            values[key] = str(values[key])
    if values["dataset"] is None and values["data"] is None:
        values["dataset"] = "digits"
    config = DataConfig(**values)
    if config.dataset is not None and config.dataset not in EMBEDDED_DATASETS:
        from .data.tfds_source import check_dataset_name

        check_dataset_name(config.dataset)  # before any run directory or TensorFlow
    return config


def build_augment_config(values: dict[str, Any]):
    """AugmentConfig from the augmentation flags (--augment is its preset)."""
    from .config import AugmentConfig, from_dict

    values = dict(values)
    # Through from_dict, so strings from a --config file become enums again.
    return from_dict(AugmentConfig, {"preset": values.pop("augment"), **values}, "augment")


def model_option() -> Any:
    return typer.Option(
        None,
        "--model",
        "-m",
        help="A run directory or its model.keras. Default: the latest run under ./runs.",
        rich_help_panel=MODEL_PANEL,
    )


@app.command()
def evaluate(
    model: Optional[Path] = model_option(),
    dataset: Optional[str] = typer.Option(
        None,
        help="Evaluate on this TFDS dataset (or 'digits') instead of the run's own data.",
        rich_help_panel=DATA_PANEL,
    ),
    data: Optional[Path] = typer.Option(
        None,
        help="Evaluate on a folder with one sub-folder per class (class names as in the run).",
        rich_help_panel=DATA_PANEL,
    ),
    data_dir: Optional[Path] = typer.Option(
        None, help="TFDS data_dir (default: the run's).", rich_help_panel=DATA_PANEL
    ),
    split: Optional[EvalSplit] = typer.Option(
        None,
        help="Which part of the data. Default: test (carved the same way as in training); "
        "'all' for a --data folder without a test/ folder.",
        rich_help_panel=DATA_PANEL,
    ),
    top_k: Optional[int] = typer.Option(
        None, help="Also report top-K accuracy. Default: 5 when there are more than 5 classes."
    ),
    batch_size: int = typer.Option(64, help="Images per batch."),
    mistakes: int = typer.Option(
        16, help="How many of the most confident mistakes to list (folder data)."
    ),
    min_accuracy: Optional[float] = typer.Option(
        None,
        help="CI gate: exit with code 1 when accuracy is below this fraction (e.g. 0.9).",
    ),
    output: Optional[Path] = typer.Option(
        None,
        help="Where to write the report files. Default: the run directory.",
        rich_help_panel=OUTPUT_PANEL,
    ),
    json_output: bool = typer.Option(
        False,
        "--json",
        help="Print the JSON report on stdout and nothing else.",
        rich_help_panel=OUTPUT_PANEL,
    ),
) -> None:
    """Score a trained model: loss, accuracy, per-class precision/recall/F1, confusion matrix,
    calibration; writes evaluation.json, confusion_matrix.csv/.png (and mistakes for folders)."""
    import json

    from . import console
    from .config import EvaluateConfig

    with user_errors():
        options = EvaluateConfig(
            dataset=dataset,
            data=str(data) if data is not None else None,
            data_dir=str(data_dir) if data_dir is not None else None,
            split=split,
            top_k=top_k,
            batch_size=batch_size,
            mistakes=mistakes,
            min_accuracy=min_accuracy,
        )
        from .evaluate import accuracy_shortfall, evaluate, open_data, write_evaluation
        from .model_io import open_run

        run = open_run(model, console.info)
        evaluation_data = open_data(run, options, console.info)
        with console.batch_progress("Evaluating") as progress:
            evaluation = evaluate(run, evaluation_data, options, progress)
        output_dir = output if output is not None else run.run_dir
        written = write_evaluation(evaluation, output_dir, run.channels)
        if json_output:
            console.write_line(json.dumps(evaluation.report, indent=2))
        else:
            console.print_evaluation(evaluation.report)
            console.info(f"Wrote {', '.join(p.name for p in written)} to {output_dir}")
        shortfall = accuracy_shortfall(evaluation.report, options.min_accuracy)
        if shortfall:
            raise ImgclsError(shortfall)


@app.command()
def predict(
    inputs: list[str] = typer.Argument(
        ...,
        help="Image files, folders (searched recursively), glob patterns in quotes, "
        "or - to read paths from stdin.",
        show_default=False,
    ),
    model: Optional[Path] = model_option(),
    top_k: int = typer.Option(3, help="How many classes to show per image."),
    tta: bool = typer.Option(
        False,
        "--tta",
        help="Average over each image and its horizontal flip "
        "(skipped for models trained without horizontal flips).",
    ),
    batch_size: int = typer.Option(64, help="Images per batch."),
    json_output: bool = typer.Option(
        False,
        "--json",
        help="One JSON object per line: path, label, confidence, top_k, error.",
        rich_help_panel=OUTPUT_PANEL,
    ),
    csv_output: bool = typer.Option(
        False, "--csv", help="CSV with a header row.", rich_help_panel=OUTPUT_PANEL
    ),
) -> None:
    """Classify images with a trained model. Exit code 1 when any input could not be read."""
    import dataclasses
    import sys

    from . import console
    from .config import PredictConfig
    from .errors import UsageError

    with user_errors():
        if json_output and csv_output:
            raise UsageError("Give at most one of --json and --csv.")
        options = PredictConfig(top_k=top_k, batch_size=batch_size, tta=tta)
        from .model_io import open_run
        from .predict import expand_inputs, predict_inputs, tta_skip_reason

        items = expand_inputs(inputs, sys.stdin.read)
        run = open_run(model, console.info)
        skip = tta_skip_reason(run.config) if tta else None
        if skip:
            console.warning(f"--tta skipped: {skip}.")
            options = dataclasses.replace(options, tta=False)
        predictions = predict_inputs(items, run, options)
        k = min(options.top_k, run.num_classes)
        if json_output:
            failed = console.write_json_lines(predictions)
        elif csv_output:
            failed = console.write_csv_rows(predictions, k)
        else:
            shown = list(predictions)
            console.out.print(console.predictions_table(shown, k))
            failed = sum(p.error is not None for p in shown)
        if failed:
            raise ImgclsError(f"{failed} of {len(items)} input(s) could not be read; see above.")


def print_run_result(metrics: dict[str, Any], run_dir: Path, quiet: bool) -> None:
    """The final table (unless quiet) and where the run went, for train and finetune."""
    from . import console

    if not quiet:
        console.out.print(console.metrics_table(metrics))
    fingerprint = metrics["weights_fingerprint"]
    console.out.print(
        f"Run saved to [bold]{console.escape(run_dir)}[/] (weights {fingerprint})", soft_wrap=True
    )


def split_data_options(values: dict[str, Any]):
    """(the command's own options, DataConfig) from a command's flat option values."""
    values = dict(values)
    return values, build_data_config({key: values.pop(key) for key in DATA_KEYS if key in values})


def backbone_help() -> str:
    from .models.backbones import BACKBONES

    return "Pretrained backbone: " + "; ".join(
        f"[bold]{name}[/]: {spec.description}" for name, spec in BACKBONES.items()
    )


@app.command()
def finetune(
    ctx: typer.Context,
    dataset: DatasetOption = None,
    data: DataOption = None,
    data_dir: DataDirOption = None,
    manual_dir: ManualDirOption = None,
    image_size: Optional[int] = typer.Option(
        None,
        help="Resize images to SIZE x SIZE (at least 32). Default: 224, the ImageNet size.",
        rich_help_panel=DATA_PANEL,
    ),
    val_split: ValSplitOption = 0.1,
    test_split: TestSplitOption = 0.1,
    cache: CacheOption = CacheMode.auto,
    backbone: str = typer.Option("mobilenetv2", help=backbone_help(), rich_help_panel=TRAIN_PANEL),
    weights: str = typer.Option(
        "imagenet",
        help="imagenet (Keras' cache ~/.keras/models, downloaded when missing), none "
        "(random), or a weights file saved from the backbone (include_top=False).",
        rich_help_panel=TRAIN_PANEL,
    ),
    head_epochs: int = typer.Option(
        10,
        help="Phase 1: epochs training the new head on the frozen backbone.",
        rich_help_panel=TRAIN_PANEL,
    ),
    epochs: int = typer.Option(
        10, help="Phase 2: epochs fine-tuning the unfrozen layers.", rich_help_panel=TRAIN_PANEL
    ),
    unfreeze: str = typer.Option(
        "20",
        help="Phase 2 trains the top N backbone layers, or 'all'; 0 skips phase 2.",
        rich_help_panel=TRAIN_PANEL,
    ),
    lr: float = typer.Option(1e-3, help="Phase 1 learning rate.", rich_help_panel=TRAIN_PANEL),
    finetune_lr: Optional[float] = typer.Option(
        None, help="Phase 2 learning rate. Default: --lr / 10.", rich_help_panel=TRAIN_PANEL
    ),
    batch_size: int = typer.Option(
        32, help="Global batch size, split across all replicas.", rich_help_panel=TRAIN_PANEL
    ),
    optimizer: OptimizerOption = Optimizer.adam,
    weight_decay: WeightDecayOption = 1e-4,
    label_smoothing: LabelSmoothingOption = 0.0,
    dropout: float = typer.Option(
        0.2, help="Dropout before the new classifier.", rich_help_panel=TRAIN_PANEL
    ),
    class_weight: ClassWeight = typer.Option(
        ClassWeight.none,
        help="balanced: weigh each class's loss by how rare it is, for imbalanced folders.",
        rich_help_panel=TRAIN_PANEL,
    ),
    patience: Optional[int] = typer.Option(
        None,
        help="Within each phase, stop when validation loss has not improved for N epochs "
        "and keep the best weights.",
        rich_help_panel=TRAIN_PANEL,
    ),
    seed: int = typer.Option(42, help="Random seed.", rich_help_panel=TRAIN_PANEL),
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
    strategy: StrategyOption = Strategy.auto,
    scale_lr: ScaleLrOption = False,
    mixed_precision: MixedPrecisionOption = False,
    deterministic: DeterministicOption = False,
    save_every: SaveEveryOption = None,
    resume: ResumeOption = None,
    config_file: Optional[Path] = typer.Option(
        None,
        "--config",
        help="Read options from a finetune run's config.json; flags given here override it.",
        rich_help_panel=TRAIN_PANEL,
    ),
    output: Optional[Path] = typer.Option(
        None,
        help="Run directory. Default: runs/finetune-<data>-<backbone>[-N].",
        rich_help_panel=OUTPUT_PANEL,
    ),
    force: ForceOption = False,
    quiet: QuietOption = False,
) -> None:
    """Fine-tune an ImageNet backbone (MobileNetV2, EfficientNetB0, ResNet50): train a new
    head on the frozen backbone, then unfreeze its top layers at a lower learning rate."""
    with user_errors():
        options = {k: v for k, v in locals().items() if k in FINETUNE_OPTION_NAMES}
        config, run_dir, resuming = choose_run(
            ctx, options, FINETUNE_OPTION_NAMES, resume, config_file, output, force
        )
        from .finetune import run_finetune

        run_and_report(
            lambda reporter: run_finetune(config, run_dir, reporter, resume=resuming),
            ctx.info_name,
            run_dir,
            quiet,
        )


FINETUNE_OPTION_NAMES = (
    *DATA_KEYS,
    *AUGMENT_OPTIONS,
    "backbone",
    "weights",
    "head_epochs",
    "epochs",
    "unfreeze",
    "lr",
    "finetune_lr",
    "batch_size",
    "optimizer",
    "weight_decay",
    "label_smoothing",
    "dropout",
    "class_weight",
    "patience",
    "seed",
    "strategy",
    "scale_lr",
    "mixed_precision",
    "deterministic",
    "save_every",
)


def build_finetune_config(values: dict[str, Any]):
    from .config import parse_unfreeze, to_jsonable
    from .models.backbones import check_image_size, get_backbone

    values, data = split_data_options(values)
    augment = build_augment_config({key: values.pop(key) for key in AUGMENT_OPTIONS})
    get_backbone(values["backbone"])
    if data.image_size is not None:
        check_image_size(values["backbone"], data.image_size)
    unfreeze = parse_unfreeze(str(values.pop("unfreeze")))
    # Through from_dict, so strings from a --config file become enums again.
    return FinetuneConfig.from_dict(
        {**values, "data": to_jsonable(data), "augment": to_jsonable(augment), "unfreeze": unfreeze}
    )


def main() -> None:
    app()
