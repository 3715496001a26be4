"""The command-line options that several commands share, declared once, in groups.

Each group is a list of (name, Annotated type, default) that @with_options adds to a
command's own options. Defaults come from the config dataclasses; commands pass on only the
options given (cli.given), so the library applies the same defaults to Python callers.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from imgcls_cli.config import (
    LR_FIND_IGNORES,
    AugmentConfig,
    AugmentPreset,
    CacheMode,
    ClassWeight,
    DataConfig,
    FillMode,
    Flip,
    Optimizer,
    RunConfig,
    Strategy,
)

DATA, TRAINING, SCALE, OUTPUT, MODEL, AUGMENT = (
    "Data",
    "Training",
    "Devices and checkpoints",
    "Output",
    "Model",
    "Augmentation",
)


def option(help: str, *names: str, panel: str | None = None, **kwargs: Any) -> Any:
    return typer.Option(*names, help=help, rich_help_panel=panel, **kwargs)


# --- Options shared by several commands, declared once -----------------------------------
# Each group is a list of (name, Annotated type, default); @with_options appends groups to a
# command's own options. Defaults come from the config dataclasses, and commands pass on
# only the options given (see `given`), so the library applies the same defaults.
OptionGroup = list[tuple[str, Any, Any]]


def declare(name: str, kind: Any, default: Any, help: str, *flags: str, **kwargs: Any) -> tuple:
    """(name, Annotated type, default) of one option in a group."""
    return (name, Annotated[kind, option(help, *flags, **kwargs)], default)


DATA_OPTIONS: OptionGroup = [
    declare(
        "dataset",
        Optional[str],
        None,
        "TFDS name (mnist, fashion_mnist, cifar10, tf_flowers, …), a Hugging Face dataset "
        "(hf:NAME or hf:NAME:CONFIG, e.g. hf:beans), or 'digits' (embedded, no network). "
        "Default: digits.",
        panel=DATA,
    ),
    declare(
        "data",
        Optional[Path],
        None,
        "Folder with one sub-folder per class (optionally inside train/ val/ test/), a CSV "
        "label file (path and label columns), or a folder holding train.csv (val.csv, "
        "test.csv).",
        panel=DATA,
    ),
    declare(
        "data_dir",
        Optional[Path],
        None,
        "TFDS data_dir (default ~/tensorflow_datasets).",
        panel=DATA,
    ),
    declare(
        "manual_dir",
        Optional[Path],
        None,
        "TFDS manual_dir, for datasets TFDS cannot download itself (imagenet2012).",
        panel=DATA,
    ),
    declare(
        "image_size",
        Optional[int],
        None,
        "Resize images to SIZE x SIZE. Default: train, the data's own size (64 when sizes "
        "differ); finetune, 224 (the ImageNet size; at least 32).",
        panel=DATA,
    ),
    declare(
        "val_split",
        float,
        DataConfig.val_split,
        "Fraction of the training data held out for validation (seeded).",
        panel=DATA,
    ),
    declare(
        "test_split",
        float,
        DataConfig.test_split,
        "Fraction held out for the final test, when the data has no test split.",
        panel=DATA,
    ),
    declare(
        "cache",
        CacheMode,
        DataConfig.cache,
        "Keep resized images in memory between epochs (memory), in a file of the cache "
        "folder (disk: decoded once, for data larger than memory), or decode them every "
        "epoch with flat memory use (none). auto: memory when they fit in min(2 GiB, a "
        "quarter of RAM), else disk when it has room.",
        panel=DATA,
    ),
]

# CSV label files: where their paths lead and which columns hold path and label.
TABLE_OPTIONS: OptionGroup = [
    declare(
        "images",
        Optional[Path],
        None,
        "CSV label files: the folder their paths are relative to. Default: the CSV's own "
        "folder, or its images/ sub-folder when the paths are there.",
        panel=DATA,
    ),
    declare(
        "path_column",
        Optional[str],
        None,
        "CSV label files: the column of image paths. Default: the first of path, file, "
        "filename, image, image_name, image_id, id.",
        panel=DATA,
    ),
    declare(
        "label_column",
        Optional[str],
        None,
        "CSV label files: the column of labels. Default: the first of label, labels, "
        "class, category, tags, target. Hugging Face datasets: default, the ClassLabel.",
        panel=DATA,
    ),
    declare(
        "image_column",
        Optional[str],
        None,
        "Hugging Face datasets: the column of images. Default: the Image feature.",
        panel=DATA,
    ),
    declare(
        "revision",
        Optional[str],
        None,
        "Hugging Face datasets: the Hub revision (branch, tag or commit) of --dataset hf:NAME.",
        panel=DATA,
    ),
]
DATA_OPTIONS += TABLE_OPTIONS

# augment-preview samples images as train reads them, at train's size.
PREVIEW_DATA_OPTIONS = [
    o
    for o in DATA_OPTIONS
    if o[0] in ("dataset", "data", "data_dir", *(t[0] for t in TABLE_OPTIONS))
] + [
    declare(
        "image_size",
        Optional[int],
        None,
        "Resize images to SIZE x SIZE. Default: as train reads them, the data's own size "
        "(64 when sizes differ).",
        panel=DATA,
    )
]

TRAINING_OPTIONS: OptionGroup = [
    declare("optimizer", Optimizer, RunConfig.optimizer, "Optimizer.", panel=TRAINING),
    declare(
        "weight_decay", float, RunConfig.weight_decay, "Weight decay (adamw only).", panel=TRAINING
    ),
    declare(
        "label_smoothing", float, RunConfig.label_smoothing, "Label smoothing.", panel=TRAINING
    ),
    declare(
        "patience",
        Optional[int],
        None,
        "Stop when validation loss has not improved for N epochs (within each finetune "
        "phase); keep the best weights. Default: off.",
        panel=TRAINING,
    ),
    declare(
        "class_weight",
        ClassWeight,
        RunConfig.class_weight,
        "balanced: weigh each class's loss by how rare it is in the training split, for "
        "imbalanced data.",
        panel=TRAINING,
    ),
    declare(
        "ema",
        Optional[float],
        None,
        "Keep an exponential moving average of the weights with this DECAY (0.99-0.9999): "
        "validation, early stopping, the final metrics and model.keras use the average. "
        "Default: off.",
        metavar="DECAY",
        panel=TRAINING,
    ),
    declare(
        "seed",
        int,
        RunConfig.seed,
        "Random seed: the same data order, initial weights and augmentation "
        "(bit-identical runs with --deterministic).",
        panel=TRAINING,
    ),
]

# Shared by train, finetune and augment-preview, so the preview shows exactly what training
# does. None: from the preset.
AUGMENT_OPTIONS: OptionGroup = [
    declare(
        "augment",
        Optional[AugmentPreset],
        None,
        "Preset: none; light (flips, small shifts); standard (flips, small rotations, "
        "zoom, shifts, contrast); strong (standard, stronger, with colour jitter and random "
        "erasing); auto (default) chooses from the data: rotations up to 10° for "
        "single-channel, small (≤ 32 px) and character images, standard for colour "
        "photos, without flips when a mirror turns classes into others.",
        panel=AUGMENT,
    ),
    declare(
        "flip",
        Optional[Flip],
        None,
        "Random mirroring: none, horizontal, vertical or both (each on its own coin). "
        "Default: the preset's (digit datasets: none).",
        panel=AUGMENT,
    ),
    declare(
        "rotate",
        Optional[float],
        None,
        "Rotate by up to DEGREES either way. Default: the preset's.",
        metavar="DEGREES",
        panel=AUGMENT,
    ),
    declare(
        "crop",
        Optional[float],
        None,
        "Crop a random window FRACTION smaller in height and width, resize it back. "
        "Default: the preset's.",
        metavar="FRACTION",
        panel=AUGMENT,
    ),
    declare(
        "zoom",
        Optional[float],
        None,
        "Zoom in or out by up to FRACTION. Default: the preset's.",
        metavar="FRACTION",
        panel=AUGMENT,
    ),
    declare(
        "translate",
        Optional[float],
        None,
        "Shift by up to FRACTION of the height and width. Default: the preset's.",
        metavar="FRACTION",
        panel=AUGMENT,
    ),
    declare(
        "contrast",
        Optional[float],
        None,
        "Change contrast by up to FRACTION. Default: the preset's.",
        metavar="FRACTION",
        panel=AUGMENT,
    ),
    declare(
        "brightness",
        Optional[float],
        None,
        "Shift brightness by up to FRACTION of 255. Default: the preset's.",
        metavar="FRACTION",
        panel=AUGMENT,
    ),
    declare(
        "color_jitter",
        Optional[float],
        None,
        "Jitter saturation and hue by up to FRACTION (colour images). Default: the preset's.",
        metavar="FRACTION",
        panel=AUGMENT,
    ),
    declare(
        "erase",
        Optional[float],
        None,
        "Blank a random rectangle with this PROBABILITY. Default: the preset's.",
        metavar="PROBABILITY",
        panel=AUGMENT,
    ),
    declare(
        "fill",
        Optional[FillMode],
        None,
        "Fill for corners uncovered by crop/rotate/zoom/translate: constant (black), "
        "reflect or nearest. Default: constant for digit datasets, reflect otherwise.",
        panel=AUGMENT,
    ),
    declare(
        "mixup",
        float,
        AugmentConfig.mixup,
        "Mix pairs of images and their labels, weights from Beta(ALPHA, ALPHA); 0: off.",
        metavar="ALPHA",
        panel=AUGMENT,
    ),
    declare(
        "cutmix",
        float,
        AugmentConfig.cutmix,
        "Paste a patch of another image; labels mixed by area (ALPHA <= 1); 0: off.",
        metavar="ALPHA",
        panel=AUGMENT,
    ),
]

SCALE_OPTIONS: OptionGroup = [
    declare(
        "strategy",
        Strategy,
        RunConfig.strategy,
        "tf.distribute strategy: auto (all GPUs mirrored, one GPU, or the CPU), cpu, gpu "
        "(one), mirrored, multi-worker (reads TF_CONFIG) or tpu.",
        panel=SCALE,
    ),
    declare(
        "scale_lr",
        bool,
        False,
        "Multiply the learning rate by the number of replicas.",
        "--scale-lr",
        panel=SCALE,
    ),
    declare(
        "mixed_precision",
        bool,
        False,
        "mixed_float16 on GPU, mixed_bfloat16 on CPU/TPU; the classifier stays float32.",
        "--mixed-precision",
        panel=SCALE,
    ),
    declare(
        "deterministic",
        bool,
        False,
        "Deterministic kernels, ops in order (with --seed: bit-identical runs on one device).",
        "--deterministic",
        panel=SCALE,
    ),
    declare(
        "save_every",
        Optional[int],
        None,
        "Also checkpoint every N steps (a checkpoint follows every epoch anyway). Default: off.",
        panel=SCALE,
    ),
]

# Where a run goes and how it starts: not training options (run_and_report reads them).
RUN_OPTIONS: OptionGroup = [
    declare(
        "resume",
        Optional[Path],
        None,
        "Continue RUN_DIR from its last checkpoint with its saved options (--epochs, "
        "--strategy and --save-every may change).",
        panel=SCALE,
    ),
    declare(
        "config_file",
        Optional[Path],
        None,
        "Read options from a run's config.json (of the same command); flags given here "
        "override it.",
        "--config",
        panel=TRAINING,
    ),
    declare(
        "output",
        Optional[Path],
        None,
        "Run directory. Default: runs/<command>-<data>-<arch or backbone>[-N].",
        panel=OUTPUT,
    ),
    declare(
        "force",
        bool,
        False,
        "Replace an earlier imgcls run in --output (never a folder of anything else).",
        "--force",
        panel=OUTPUT,
    ),
    declare(
        "quiet", bool, False, "No progress output (for CI logs).", "--quiet", "-q", panel=OUTPUT
    ),
]
RUN_FLAGS = tuple(name for name, _, _ in RUN_OPTIONS)

# lr-find takes train's options that shape a training step, none about epochs or a run.
LR_FIND_OPTIONS = [
    [o for o in group if o[0] not in LR_FIND_IGNORES]
    for group in (TRAINING_OPTIONS, AUGMENT_OPTIONS, SCALE_OPTIONS)
]


def training_option(kind: Any, help: str) -> Any:
    """A command's own option in the Training panel of --help."""
    return Annotated[kind, option(help, panel=TRAINING)]


BatchSize = Annotated[int, option("Global batch size, split across all replicas.", panel=TRAINING)]
TrainBatchSize = Annotated[
    Optional[int],
    option(
        "Global batch size, split across all replicas. Default: 64, or 32 when the training "
        "split has fewer than 512 images (more steps for few images).",
        panel=TRAINING,
    ),
]
JsonReport = Annotated[
    bool, option("Print the JSON report on stdout and nothing else.", "--json", panel=OUTPUT)
]
ModelOption = Annotated[
    Optional[Path],
    option(
        "A run directory, its model.keras, or an export folder (RUN_DIR/export/onnx, …). "
        "Default: the latest run under ./runs.",
        "--model",
        "-m",
        panel=MODEL,
    ),
]
# Grad-CAM reads the Keras model's layers: an export folder is refused.
KerasModelOption = Annotated[
    Optional[Path],
    option(
        "A run directory or its model.keras (not an export: Grad-CAM needs the Keras "
        "model's layers). Default: the latest run under ./runs.",
        "--model",
        "-m",
        panel=MODEL,
    ),
]


def with_options(
    before: list[OptionGroup] = (), after: list[OptionGroup] = ()
) -> Callable[[Callable], Callable]:
    """Give a command the option groups (before and after its own options, which fixes
    their order in --help). Typer reads a function's signature, so the groups are added to
    it; the command takes them as `**shared` and reads them from ctx.params."""

    def parameters(groups: list[OptionGroup]) -> list[inspect.Parameter]:
        kind = inspect.Parameter.KEYWORD_ONLY
        return [
            inspect.Parameter(name, kind, annotation=annotation, default=default)
            for group in groups
            for name, annotation, default in group
        ]

    def decorate(command: Callable) -> Callable:
        own = [
            p
            for p in inspect.signature(command, eval_str=True).parameters.values()
            if p.kind is not inspect.Parameter.VAR_KEYWORD  # `**shared` receives the groups
        ]
        context, own = own[:1], [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own[1:]]
        every = [*context, *parameters(before), *own, *parameters(after)]
        command.__signature__ = inspect.Signature(every)
        command.__annotations__ = {p.name: p.annotation for p in every}
        return command

    return decorate
