"""The Typer app: one thin function per subcommand. Heavy modules are imported lazily."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from . import __version__
from .config import ClassWeight, Optimizer, Schedule
from .errors import ImgclsError

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
DATA_KEYS = ("dataset", "data", "data_dir", "manual_dir", "image_size", "val_split", "test_split")

_state = {"debug": False}

# Options that several commands share, declared once.
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
TestSplitOption = Annotated[
    float,
    typer.Option(
        help="Fraction held out for the final test, when the data has no test split.",
        rich_help_panel=DATA_PANEL,
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
    flat = {**{k: v for k, v in saved.items() if k != "data"}, **saved["data"]}
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
    dataset: DatasetOption = None,
    data: DataOption = None,
    data_dir: DataDirOption = None,
    manual_dir: ManualDirOption = None,
    image_size: Optional[int] = typer.Option(
        None,
        help="Resize images to SIZE x SIZE. Default: the data's own size, or 64.",
        rich_help_panel=DATA_PANEL,
    ),
    val_split: ValSplitOption = 0.1,
    test_split: TestSplitOption = 0.1,
    arch: str = typer.Option("simplecnn", help=arch_help(), rich_help_panel=TRAIN_PANEL),
    epochs: int = typer.Option(10, help="Training epochs.", rich_help_panel=TRAIN_PANEL),
    batch_size: int = typer.Option(64, help="Batch size.", rich_help_panel=TRAIN_PANEL),
    lr: float = typer.Option(1e-3, help="Learning rate.", rich_help_panel=TRAIN_PANEL),
    optimizer: OptimizerOption = Optimizer.adam,
    weight_decay: WeightDecayOption = 1e-4,
    schedule: Schedule = typer.Option(
        Schedule.constant, help="Learning-rate schedule.", rich_help_panel=TRAIN_PANEL
    ),
    warmup_epochs: int = typer.Option(
        0, help="Epochs of linear learning-rate warmup from 0.", rich_help_panel=TRAIN_PANEL
    ),
    label_smoothing: LabelSmoothingOption = 0.0,
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
    force: ForceOption = False,
    quiet: QuietOption = False,
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

        result = run_train(config, run_dir, console.RichReporter(quiet))
        print_run_result(result.metrics, run_dir, quiet)


def print_run_result(metrics: dict[str, Any], run_dir: Path, quiet: bool) -> None:
    from . import console

    if not quiet:
        console.out.print(console.metrics_table(metrics))
    console.out.print(f"Run saved to [bold]{run_dir}[/]")


def build_train_config(values: dict[str, Any]):
    from .config import TrainConfig
    from .models import check_architecture

    values, data = split_data_options(values)
    check_architecture(values["arch"])
    return TrainConfig(data=data, **values)


def split_data_options(values: dict[str, Any]):
    """(the command's own options, DataConfig) from a command's flat option values."""
    from .config import DataConfig

    values = dict(values)
    data_values = {key: values.pop(key) for key in DATA_KEYS}
    for key in ("data", "data_dir", "manual_dir"):
        if data_values[key] is not None:
            data_values[key] = str(data_values[key])
    if data_values["dataset"] is None and data_values["data"] is None:
        data_values["dataset"] = "digits"
    return values, DataConfig(**data_values)


def backbone_help() -> str:
    from .models.backbones import BACKBONES

    return "Pretrained backbone: " + "; ".join(
        f"[bold]{name}[/]: {spec.description}" for name, spec in BACKBONES.items()
    )


@app.command()
def finetune(
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
    batch_size: int = typer.Option(32, help="Batch size.", rich_help_panel=TRAIN_PANEL),
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
    from . import console

    with user_errors():
        values = {
            k: v for k, v in locals().items() if k not in ("output", "force", "quiet", "console")
        }
        config = build_finetune_config(values)
        from .runs import prepare_run_dir

        run_dir = prepare_run_dir(
            output, "finetune", f"{config.data.source_name}-{config.backbone}", force
        )
        from .finetune import run_finetune

        result = run_finetune(config, run_dir, console.RichReporter(quiet))
        print_run_result(result.metrics, run_dir, quiet)


def build_finetune_config(values: dict[str, Any]):
    from .config import FinetuneConfig, parse_unfreeze
    from .models.backbones import check_image_size, get_backbone

    values, data = split_data_options(values)
    get_backbone(values["backbone"])
    if data.image_size is not None:
        check_image_size(values["backbone"], data.image_size)
    return FinetuneConfig(data=data, **{**values, "unfreeze": parse_unfreeze(values["unfreeze"])})


def main() -> None:
    app()
