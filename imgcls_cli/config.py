"""Options of each command as frozen dataclasses: the schema of config.json's "options".

Each field's type and bounds are declared once, in its annotation (annotated-types'
Ge, Gt, Interval); rules between fields live in the class' checks. Values from users
(flags, --config files, Python keywords) enter through `from_dict`, which validates them
with pydantic against these annotations (unknown keys refused, strict types, bounds,
finite numbers) and turns pydantic's errors into one line naming the flag
(`usage_error`). pydantic is imported there only, so `imgcls --help` never loads it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
import types
import typing
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, ClassVar

from annotated_types import Ge, Gt, Interval

from imgcls_cli.errors import UsageError

# How pydantic reads every config dataclass: no unknown keys (a typo is not silently
# ignored), no coercion ("false" for a flag, 2.5 epochs), no inf or nan.
STRICT_SCHEMA = {"extra": "forbid", "strict": True, "allow_inf_nan": False}


class Optimizer(str, Enum):
    adam = "adam"
    adamw = "adamw"
    sgd = "sgd"


class Schedule(str, Enum):
    constant = "constant"
    cosine = "cosine"


class Strategy(str, Enum):
    auto = "auto"
    cpu = "cpu"
    gpu = "gpu"
    mirrored = "mirrored"
    multi_worker = "multi-worker"
    tpu = "tpu"


class AugmentPreset(str, Enum):
    auto = "auto"  # chosen from the data (augment/policy.py); the default
    none = "none"
    light = "light"
    standard = "standard"
    strong = "strong"


class Flip(str, Enum):
    none = "none"
    horizontal = "horizontal"
    vertical = "vertical"
    both = "both"  # horizontal and vertical, each on its own coin


class FillMode(str, Enum):
    """What fills the corners that rotation, zoom-out and translation uncover."""

    constant = "constant"  # black: right for digits on a dark background
    reflect = "reflect"
    nearest = "nearest"


class CacheMode(str, Enum):
    """Where resized training images are kept between epochs."""

    auto = "auto"  # memory when train + val fit the memory budget, else disk, else stream
    memory = "memory"  # always in memory (decode once)
    none = "none"  # stream: decode every epoch, memory bounded whatever the data size
    disk = "disk"  # resized once into a file of the user's cache folder, read every epoch


class ClassWeight(str, Enum):
    none = "none"
    balanced = "balanced"  # each class weighs n_examples / (n_classes * n_in_class)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where images come from and how they are split; shared by every command."""

    __pydantic_config__: ClassVar[dict] = STRICT_SCHEMA
    dataset: str | None = None  # a TFDS name, or "digits" (embedded)
    # a folder with one sub-folder per class, a CSV label file, or a folder of CSV splits
    data: str | None = None
    data_dir: str | None = None  # TFDS data_dir
    manual_dir: str | None = None  # TFDS manual_dir (datasets TFDS cannot download itself)
    # None: the source's own size (or 64 for mixed sizes)
    image_size: Annotated[int, Interval(ge=4, le=1024)] | None = None
    val_split: Annotated[float, Interval(ge=0, lt=0.9)] = 0.1
    # only used when the source has no test split
    test_split: Annotated[float, Interval(ge=0, lt=0.9)] = 0.1
    cache: CacheMode = CacheMode.auto
    # CSV label files: the folder their paths are relative to (None: the CSV's own folder,
    # or its images/ sub-folder), and their path and label columns (None: found by name)
    images: str | None = None
    path_column: str | None = None
    label_column: str | None = None  # also Hugging Face datasets' (None: the ClassLabel)
    # Hugging Face datasets: the image column (None: the Image feature) and the Hub revision
    image_column: str | None = None
    revision: str | None = None

    def __post_init__(self) -> None:
        if (self.dataset is None) == (self.data is None):
            raise UsageError("Give exactly one of --dataset NAME or --data DIR.")
        is_table = self.data is not None and label_files(Path(self.data)) is not None
        is_hf = is_hub_dataset(self.dataset) or (
            self.data is not None and not is_table and is_hf_folder(Path(self.data))
        )
        for name, fits, needs in (
            ("images", is_table, "CSV label files: give --data FILE.csv with it"),
            ("path_column", is_table, "CSV label files: give --data FILE.csv with it"),
            (
                "label_column",
                is_table or is_hf,
                "CSV label files and Hugging Face datasets: give --data FILE.csv or "
                "--dataset hf:NAME with it",
            ),
            ("image_column", is_hf, "Hugging Face datasets: give --dataset hf:NAME with it"),
            ("revision", is_hf, "Hugging Face datasets: give --dataset hf:NAME with it"),
        ):
            if getattr(self, name) is not None and not fits:
                raise UsageError(f"--{name.replace('_', '-')} is for {needs}.")

    @property
    def protected_paths(self) -> list[Path]:
        """What a run directory must keep apart from (see protected_paths)."""
        return protected_paths(self.data, self.data_dir)

    @property
    def source_name(self) -> str:
        """A short name for run directories: the dataset name, the folder's name, or a
        label file's (its folder's, for a generic one like train.csv or labels.csv)."""
        if self.dataset:
            return self.dataset
        path = Path(self.data or "data").resolve()
        if path.suffix.lower() == ".csv" and not path.is_dir():
            generic = path.stem.lower() in ("train", "labels", "label", "data", "metadata")
            return (path.parent.name if generic else path.stem) or "data"
        return path.name or "data"


# The label files of a --data folder that holds its splits as tables (data.label_table).
LABEL_FILES = {
    "train": ("train.csv",),
    "val": ("val.csv", "valid.csv", "validation.csv"),
    "test": ("test.csv",),
}


def protected_paths(data: str | None, data_dir: str | None = None) -> list[Path]:
    """What an output must keep apart from (rundir.check_apart_from_data), for --data and
    --data-dir: the image folder, or the label files of a table (whose images are listed
    by it, not found by walking folders), and the TFDS data_dir."""
    paths = [Path(p) for p in (data, data_dir) if p]
    tables = label_files(Path(data)) if data else None
    if tables:
        paths = [*tables.values(), *paths[1:]]
    return paths


def label_files(data: Path) -> dict[str, Path] | None:
    """{split: CSV file} when --data names label files: a .csv file (its one split,
    'train', is carved as a flat folder is), or a folder holding train.csv (and maybe
    val.csv, test.csv) whose train/ is not a folder of class sub-folders; else None."""
    if data.suffix.lower() == ".csv" and not data.is_dir():
        return {"train": data}
    if not (data / "train.csv").is_file():
        return None
    train = data / "train"
    if train.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in train.iterdir()):
        return None  # split folders of class folders, as before
    found = {"train": data / "train.csv"}
    for split in ("val", "test"):
        for name in LABEL_FILES[split]:
            if (data / name).is_file():
                found[split] = data / name
                break
    return found


HUB_PREFIX = "hf:"  # --dataset hf:NAME[:CONFIG]: a Hugging Face Hub dataset


def is_hub_dataset(dataset: str | None) -> bool:
    return bool(dataset) and str(dataset).startswith(HUB_PREFIX)


def is_saved_dataset(path: Path) -> bool:
    """What the datasets library's save_to_disk wrote: a DatasetDict or a Dataset."""
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def is_hf_folder(path: Path) -> bool:
    """A folder the datasets library saved, or of Parquet files (flat, or the Hub's data/
    layout)."""
    if not path.is_dir():
        return False
    if is_saved_dataset(path):
        return True
    return any(path.glob("*.parquet")) or any((path / "data").glob("*.parquet"))


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Random changes to training images, shared by train, finetune and augment-preview.

    As options, None means "from the preset" (and the preset itself None means "the
    data's default"); augment.policy.resolve_augment fills every part in for one dataset.
    """

    __pydantic_config__: ClassVar[dict] = STRICT_SCHEMA
    preset: AugmentPreset | None = None
    flip: Flip | None = None
    rotate: Annotated[float, Interval(ge=0, le=180)] | None = None  # degrees, either way
    # cut this fraction off the height and width, then resize back
    crop: Annotated[float, Interval(ge=0, le=0.5)] | None = None
    zoom: Annotated[float, Interval(ge=0, le=0.9)] | None = None  # in or out by this fraction
    # shift by up to this fraction of the height and width
    translate: Annotated[float, Interval(ge=0, le=0.5)] | None = None
    contrast: Annotated[float, Interval(ge=0, le=1)] | None = None  # by up to this fraction
    # shift brightness by up to this fraction of 255
    brightness: Annotated[float, Interval(ge=0, le=1)] | None = None
    # saturation and hue (colour images only)
    color_jitter: Annotated[float, Interval(ge=0, le=1)] | None = None
    # probability of blanking a random rectangle (cutout)
    erase: Annotated[float, Interval(ge=0, le=1)] | None = None
    fill: FillMode | None = None
    # Beta(alpha, alpha) mixing of image pairs and labels; 0: off
    mixup: Annotated[float, Interval(ge=0, le=10)] = 0.0
    # paste a patch of another image, labels by area; 0: off
    cutmix: Annotated[float, Interval(ge=0, le=1)] = 0.0

    def __post_init__(self) -> None:
        if self.mixup and self.cutmix:
            raise UsageError("Give --mixup or --cutmix, not both.")

    @property
    def is_resolved(self) -> bool:
        return all(getattr(self, f.name) is not None for f in dataclasses.fields(self))

    @property
    def is_off(self) -> bool:
        """Nothing changes any image (a resolved config with every part at zero)."""
        return self.flip in (None, Flip.none) and not any(
            getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("preset", "flip", "fill")
        )

    def describe(self) -> str:
        """One line for the console: the preset and the parts that are on."""
        parts = [f"flip {self.flip.value}"] if self.flip not in (None, Flip.none) else []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("preset", "flip", "fill") or not value:
                continue
            parts.append(
                f"{f.name.replace('_', ' ')} {value:g}" + ("°" if f.name == "rotate" else "")
            )
        preset = self.preset.value if self.preset else "default"
        return f"{preset} ({', '.join(parts)})" if parts else f"{preset} (off)"


MAX_SEED = 2**32 - 1  # NumPy's and TensorFlow's seeds are unsigned 32-bit
# Epochs, each phase: more is a slip of the keyboard (at a second an epoch, over a day),
# and past 2**63 steps TensorFlow cannot count them.
MAX_EPOCHS = 100_000
AUTO_LR = "auto"  # train --lr auto: an lr-find sweep before training picks the rate


def is_positive_number(value: Any) -> bool:
    """A finite number above 0 (not a bool): inf or nan would train to NaN weights."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return number and math.isfinite(value) and value > 0


def parse_lr(value: Any) -> float | str:
    """--lr as typed: a number, 'auto', or the text itself, left for the config's checks
    to judge (they know whether the command takes 'auto')."""
    text = str(value).strip().lower()
    if text == AUTO_LR:
        return AUTO_LR
    try:
        return float(text)
    except ValueError:
        return str(value)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """The options of every command that trains and writes a run directory; saved in
    its config.json so the run can be reproduced."""

    __pydantic_config__: ClassVar[dict] = STRICT_SCHEMA
    command: ClassVar[str]  # the imgcls command that reads these options
    sweeps_lr: ClassVar[bool] = False  # takes --lr auto (an lr-find sweep picks the rate)
    data: DataConfig
    epochs: Annotated[int, Interval(ge=1, le=MAX_EPOCHS)] = 10
    batch_size: Annotated[int, Ge(1)] = 64
    lr: float | str = 1e-3  # a positive number; train also takes AUTO_LR (commands/lr_find.py)
    optimizer: Optimizer = Optimizer.adam
    weight_decay: Annotated[float, Ge(0)] = 1e-4  # used by adamw only
    label_smoothing: Annotated[float, Interval(ge=0, lt=1)] = 0.0
    # early stopping on validation loss; None: off
    patience: Annotated[int, Ge(1)] | None = None
    seed: Annotated[int, Interval(ge=0, le=MAX_SEED)] = 42
    strategy: Strategy = Strategy.auto
    scale_lr: bool = False  # multiply the learning rate(s) by the number of replicas
    mixed_precision: bool = False
    deterministic: bool = False
    save_every: Annotated[int, Ge(1)] | None = None  # steps between mid-epoch checkpoints
    class_weight: ClassWeight = ClassWeight.none
    # decay of the weights' moving average; None: off
    ema: Annotated[float, Interval(gt=0, lt=1)] | None = None
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        for ok, message in self.checks():
            if not ok:
                raise UsageError(message)

    def checks(self) -> list[tuple[bool, str]]:
        """(ok, message) pairs for rules the field annotations cannot state. --lr is a
        number or, for train, 'auto'; isfinite: inf or nan would train to NaN weights
        without a word."""
        return [
            (
                (self.lr == AUTO_LR and self.sweeps_lr) or is_positive_number(self.lr),
                f"--lr must be a positive number{self.lr_auto_hint}; got {self.lr!r}.",
            ),
        ]

    @property
    def lr_auto_hint(self) -> str:
        """What --lr's error adds about `auto`."""
        return " or 'auto'" if self.sweeps_lr else " ('auto' is for train only)"

    @property
    def model_name(self) -> str:
        raise NotImplementedError

    @property
    def run_name(self) -> str:
        """The default run directory's name after its command: <data>-<model>."""
        return f"{self.data.source_name}-{self.model_name}"

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "options") -> Any:
        """From config.json's "options" (or flat options gathered into its sections;
        `where` ending in " options" names them as a call's keywords, not a file's keys)."""
        if not isinstance(values, dict):
            raise UsageError(f"Config section 'options' must be a JSON object; got {values!r}.")
        # Runs saved before augmentation existed have no 'augment' section.
        values = {"data": {}, "augment": {}, **values}
        return from_dict(cls, values, where=where)


DEFAULT_WARMUP_EPOCHS = 1
# train's epochs when none are given, on a training split of 512 images or more; smaller
# splits train longer (data.prepare.default_epochs), never shorter.
DEFAULT_EPOCHS = 10
DEFAULT_SCHEDULE = Schedule.cosine
# Architectures whose own recipe differs from the defaults (--schedule and --augment when
# not given). simplecnn, the classic Keras MNIST convnet without batch normalization, learns
# slowly under its dropout: a decaying rate and augmentation cost it accuracy in 15 epochs
# on every grayscale set measured (BENCHMARKS.md, "Defaults"), so it keeps the classic
# recipe: a constant rate and no augmentation.
ARCH_RECIPES: dict[str, dict[str, Any]] = {
    "simplecnn": {"schedule": Schedule.constant, "augment": AugmentPreset.none},
}


@dataclasses.dataclass(frozen=True)
class TrainConfig(RunConfig):
    """Everything `imgcls train` needs."""

    command: ClassVar[str] = "train"
    sweeps_lr: ClassVar[bool] = True
    # Measured (BENCHMARKS.md, "Defaults"): a small CNN with batch normalization, trained
    # with a cosine schedule after a short warmup, beat the classic simplecnn on five of
    # six datasets (the sixth within noise).
    arch: str = "convnet"
    # None: chosen from the training split's size (data.prepare.default_epochs and
    # default_batch_size).
    epochs: Annotated[int, Interval(ge=1, le=MAX_EPOCHS)] | None = None
    batch_size: Annotated[int, Ge(1)] | None = None
    schedule: Schedule | None = None  # None: the arch's recipe, else DEFAULT_SCHEDULE
    # None: DEFAULT_WARMUP_EPOCHS when epochs allow
    warmup_epochs: Annotated[int, Interval(ge=0, le=MAX_EPOCHS)] | None = None

    def checks(self) -> list[tuple[bool, str]]:
        warmup = self.warmup_epochs
        return super().checks() + [
            (
                not (self.lr == AUTO_LR and self.scale_lr),
                "--scale-lr does not apply to --lr auto: the sweep runs on every replica "
                "already; drop --scale-lr.",
            ),
            # Without --epochs the data decides, DEFAULT_EPOCHS or more: below that is safe.
            (
                warmup is None or warmup < self.least_epochs or warmup == 0,
                f"--warmup-epochs must be below --epochs ({self.least_epochs}); got {warmup}."
                if self.epochs is not None
                else f"--warmup-epochs {warmup} needs --epochs above it: without --epochs "
                f"the data sets them ({DEFAULT_EPOCHS}, or more below 512 training images), "
                "which may be too few; give --epochs too.",
            ),
        ]

    @property
    def recipe(self) -> dict[str, Any]:
        return ARCH_RECIPES.get(self.arch, {})

    @property
    def resolved_schedule(self) -> Schedule:
        return self.schedule or self.recipe.get("schedule", DEFAULT_SCHEDULE)

    @property
    def default_augment(self) -> tuple[AugmentPreset, str] | None:
        """The preset (and why) when --augment is not given, if the arch has its own."""
        preset = self.recipe.get("augment")
        return None if preset is None else (preset, f"{self.arch}'s classic recipe")

    @property
    def warmup(self) -> int:
        """Warmup epochs: as given, else one for the cosine schedule when there are at
        least 3 epochs (a short warmup steadies the first steps of batch-normalized
        models at the full rate)."""
        if self.warmup_epochs is not None:
            return self.warmup_epochs
        cosine = self.resolved_schedule is Schedule.cosine
        return DEFAULT_WARMUP_EPOCHS if cosine and self.least_epochs >= 3 else 0

    @property
    def least_epochs(self) -> int:
        """The epochs given, else the fewest the data can resolve them to."""
        return DEFAULT_EPOCHS if self.epochs is None else self.epochs

    @property
    def model_name(self) -> str:
        return self.arch


@dataclasses.dataclass(frozen=True)
class FinetuneConfig(RunConfig):
    """Everything `imgcls finetune` needs: phase 1 trains a new head on the frozen
    backbone for `head_epochs`, phase 2 unfreezes the backbone's top layers for `epochs`
    at a lower learning rate."""

    command: ClassVar[str] = "finetune"
    epochs: Annotated[int, Interval(ge=0, le=MAX_EPOCHS)] = 10  # phase 2
    batch_size: Annotated[int, Ge(1)] = 32
    backbone: str = "mobilenetv2"
    weights: str = "imagenet"  # "imagenet", "none" or a weights file for the backbone
    head_epochs: Annotated[int, Interval(ge=0, le=MAX_EPOCHS)] = 10  # phase 1
    # phase 2 trains the top N backbone layers, or "all"
    unfreeze: Annotated[int, Ge(0)] | str = 20
    finetune_lr: Annotated[float, Gt(0)] | None = None  # phase 2; None: lr / 10
    dropout: Annotated[float, Interval(ge=0, lt=1)] = 0.2  # before the new classifier

    def __post_init__(self) -> None:
        if isinstance(self.unfreeze, str):
            object.__setattr__(self, "unfreeze", parse_unfreeze(self.unfreeze))
        super().__post_init__()

    def checks(self) -> list[tuple[bool, str]]:
        return super().checks() + [
            (
                self.head_epochs + self.finetune_epochs > 0,
                "Nothing to train: give --head-epochs, or --epochs with --unfreeze above 0.",
            ),
        ]

    @property
    def model_name(self) -> str:
        return self.backbone

    @property
    def finetune_epochs(self) -> int:
        """Phase 2's epochs: none when nothing is unfrozen."""
        return 0 if self.unfreeze == 0 else self.epochs

    @property
    def resolved_finetune_lr(self) -> float:
        return self.finetune_lr if self.finetune_lr is not None else self.lr / 10


RUN_CONFIGS: dict[str, type[RunConfig]] = {c.command: c for c in (TrainConfig, FinetuneConfig)}

SWEEP_STEPS = (20, 1000)  # fewer leave too few points to suggest from


@dataclasses.dataclass(frozen=True)
class LrFindConfig:
    """How `imgcls lr-find` (and `train --lr auto`) sweeps: the learning rate grows
    exponentially from start_lr to end_lr over `steps` training steps (fastai's
    lr_find defaults)."""

    __pydantic_config__: ClassVar[dict] = STRICT_SCHEMA
    start_lr: Annotated[float, Gt(0)] = 1e-7
    end_lr: Annotated[float, Gt(0)] = 10.0
    # fewer leave too few points to suggest from
    steps: Annotated[int, Interval(ge=SWEEP_STEPS[0], le=SWEEP_STEPS[1])] = 100

    def __post_init__(self) -> None:
        if self.end_lr <= self.start_lr:
            raise UsageError(
                f"--end-lr must be above --start-lr ({self.start_lr:g}); got {self.end_lr:g}."
            )

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


# train's options that lr-find has no use for: it trains a few hundred steps at rates it
# sets itself, and keeps nothing.
LR_FIND_IGNORES = (
    "epochs",
    "lr",
    "schedule",
    "warmup_epochs",
    "patience",
    "ema",
    "save_every",
    "scale_lr",
)


def parse_unfreeze(value: str) -> int | str:
    """--unfreeze: a number of layers (0 or more) or 'all'."""
    text = str(value).strip().lower()
    if text == "all":
        return "all"
    if text.isdigit():
        return int(text)
    raise UsageError(f"--unfreeze must be a number of layers (0 or more) or 'all'; got {value!r}.")


def to_jsonable(config: Any) -> dict[str, Any]:
    """A config as JSON values (Enums as their values), as pydantic writes the schema."""
    return schema_of(type(config)).dump_python(config, mode="json")


def from_dict(cls: type, values: Any, where: str) -> Any:
    """A config dataclass from user values (JSON, flags, Python keywords), validated
    against its annotations; any problem is one UsageError line naming the flag."""
    if not isinstance(values, dict):
        raise UsageError(f"Config section '{where}' must be a JSON object; got {values!r}.")
    try:
        text = json.dumps(values, default=plain_value, allow_nan=True)
    except (TypeError, ValueError) as error:
        raise UsageError(f"Bad value in {where}: {error}.") from None
    from pydantic import ValidationError

    try:
        return schema_of(cls).validate_json(text)
    except ValidationError as error:
        raise usage_error(cls, error.errors(), where) from None


@functools.cache
def schema_of(cls: type) -> Any:
    """pydantic's validator and serializer for a config dataclass (built once)."""
    try:
        from pydantic import TypeAdapter
    except ImportError:  # typer requires pydantic 2; only a broken environment lacks it
        raise UsageError(
            "imgcls validates options with pydantic 2, which is not installed: "
            "pip install 'pydantic>=2.5'."
        ) from None
    return TypeAdapter(cls)


def plain_value(value: Any) -> Any:
    """JSON for what json.dumps cannot write: paths as text, NumPy scalars as numbers."""
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(value)
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    raise TypeError(f"{value!r} is not a JSON value")


# What a field's bounds do not say well enough, in place of "must be in (0, 1)".
FIELD_HINTS = {
    "ema": "must be a decay between 0 and 1 (exclusive), such as 0.999",
    "unfreeze": "must be a number of layers (0 or more) or 'all'",
    "min_accuracy": "is a fraction in [0, 1] (0.9 for 90%)",
    "min_agreement": "is a fraction in [0, 1] (0.99 for 99%)",
    "lr": "must be a positive number",
}
# The flag of a field where it is not --<field-name>.
FIELD_FLAGS = {"preset": "--augment"}
BOUND_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def flag_of(name: str) -> str:
    return FIELD_FLAGS.get(name, "--" + name.replace("_", "-"))


def usage_error(cls: type, errors: list[dict[str, Any]], where: str) -> UsageError:
    """pydantic's errors as one line: the first problem, named by its flag (or, for a
    config file's key, by the key), with what is allowed. The one place where pydantic's
    error locations become flag names."""
    # Keywords of an API call (where: "evaluate options") are not a config file's keys.
    keywords = where.endswith(" options")
    place = "" if keywords else " in config"
    unknown = [e for e in errors if e["type"] in ("unexpected_keyword_argument", "extra_forbidden")]
    if unknown:
        owner, section = field_owner(cls, unknown[0]["loc"][:-1], where)
        keys = sorted(
            {str(e["loc"][-1]) for e in unknown if e["loc"][:-1] == unknown[0]["loc"][:-1]}
        )
        valid = ", ".join(f.name for f in dataclasses.fields(owner))
        if keywords:
            return UsageError(f"Unknown option(s) {', '.join(keys)} ({where}). Valid: {valid}.")
        return UsageError(
            f"Unknown key(s) {', '.join(keys)} in config section '{section}'. Valid: {valid}."
        )
    error = errors[0]
    names = [part for part in error["loc"] if isinstance(part, str)]
    owner, _ = field_owner(cls, tuple(names[:-1]), where)
    field_names = {f.name for f in dataclasses.fields(owner)}
    name = next((part for part in reversed(names) if part in field_names), names[-1])
    hint = typing.get_type_hints(owner, include_extras=True).get(name)
    value = error.get("input")
    if error["type"] == "missing":
        return UsageError(f"Missing {name} in config section '{where}'.")
    if error["type"] in ("dataclass_type", "dataclass_exact_type", "model_type"):
        return UsageError(f"Config section '{name}' must be a JSON object; got {value!r}.")
    if error["type"] == "enum":
        kind = next(k for k in allowed_types(hint) if isinstance(k, type) and issubclass(k, Enum))
        valid = ", ".join(e.value for e in kind)
        return UsageError(f"Bad {flag_of(name)[2:]} {value!r}{place}. Valid: {valid}.")
    if error["type"] in BOUND_ERRORS or error["type"] == "finite_number":
        allowed = FIELD_HINTS.get(name) or f"must be {bounds_phrase(hint)}"
        if error["type"] == "finite_number":
            allowed += ", not infinite or NaN"
        return UsageError(f"{flag_of(name)} {allowed}; got {value}.")
    expected = " or ".join(
        ("None" if keywords else "null")
        if kind is type(None)
        else getattr(kind, "__name__", str(kind))
        for kind in allowed_types(hint)
    )
    return UsageError(f"Bad {name} {json.dumps(value)}{place}: expected {expected}.")


def field_owner(cls: type, path: tuple, where: str) -> tuple[type, str]:
    """The dataclass that holds the field at `path` (names of nested sections) under cls,
    and the section's name as config.json spells it."""
    section = where
    for part in path:
        hints = typing.get_type_hints(cls)
        inner = next(
            (k for k in allowed_types(hints.get(part)) if dataclasses.is_dataclass(k)), None
        )
        if inner is None:
            break
        cls, section = inner, str(part)
    return cls, section


def allowed_types(hint: Any) -> list[Any]:
    """The types a hint allows: Optional and unions unpacked, Annotated's bounds dropped."""
    if typing.get_origin(hint) is Annotated:
        return allowed_types(typing.get_args(hint)[0])
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return [kind for arg in typing.get_args(hint) for kind in allowed_types(arg)]
    return [hint]


def bounds_phrase(hint: Any) -> str:
    """'at least 1', 'between 4 and 1024', 'in [0, 0.9)' … from a field's annotation."""
    low = high = None
    low_open = high_open = False
    integer = False
    for arg in typing.get_args(hint) if typing.get_origin(hint) is not Annotated else (hint,):
        if typing.get_origin(arg) is not Annotated:
            continue
        integer = typing.get_args(arg)[0] is int
        for bound in arg.__metadata__:
            for attr, is_low, is_open in BOUND_ATTRIBUTES:
                value = getattr(bound, attr, None)
                if value is not None and is_low:
                    low, low_open = value, is_open
                elif value is not None:
                    high, high_open = value, is_open
    text = {
        bound: f"{bound:g}" if isinstance(bound, float) else str(bound) for bound in (low, high)
    }
    if low is not None and high is not None:
        if not (low_open or high_open):
            return f"between {text[low]} and {text[high]}"
        return f"in {'(' if low_open else '['}{text[low]}, {text[high]}{')' if high_open else ']'}"
    if low is not None and low_open:
        return f"a positive {'integer' if integer else 'number'}" if low == 0 else f"above {low}"
    if low is not None:
        return (f"at least {low}" if low else "0 or more") if integer else f"a number >= {low}"
    if high is not None:
        return f"at most {text[high]}"
    return "a finite number"


# annotated-types' bound attributes: (name, a lower bound?, open?)
BOUND_ATTRIBUTES = (
    ("ge", True, False),
    ("gt", True, True),
    ("le", False, False),
    ("lt", False, True),
)


class EvalSplit(str, Enum):
    train = "train"
    val = "val"
    test = "test"
    all = "all"


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    """What `imgcls evaluate` scores and how; recorded in evaluation.json."""

    __pydantic_config__: ClassVar[dict] = STRICT_SCHEMA
    dataset: str | None = None  # None with data None: the run's own data
    data: str | None = None
    data_dir: str | None = None
    images: str | None = None  # CSV label files and Hugging Face datasets (DataConfig's)
    path_column: str | None = None
    label_column: str | None = None
    image_column: str | None = None
    revision: str | None = None
    split: EvalSplit | None = None  # None: test, or all of a folder without a test split
    # None: 5 when there are more than 5 classes
    top_k: Annotated[int, Ge(1)] | None = None
    batch_size: Annotated[int, Ge(1)] = 64
    mistakes: Annotated[int, Ge(0)] = 16  # most confident mistakes listed for folder data
    min_accuracy: Annotated[float, Interval(ge=0, le=1)] | None = None  # CI gate
    explain: bool = False  # draw Grad-CAM on the galleries of mistakes and top losses

    def __post_init__(self) -> None:
        if self.dataset is not None and self.data is not None:
            raise UsageError("Give at most one of --dataset NAME or --data DIR.")

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


@dataclasses.dataclass(frozen=True)
class PredictConfig:
    """How `imgcls predict` runs the model."""

    __pydantic_config__: ClassVar[dict] = STRICT_SCHEMA
    top_k: Annotated[int, Ge(1)] = 3
    batch_size: Annotated[int, Ge(1)] = 64
    tta: bool = False


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    """How `imgcls serve` listens, batches and limits requests (the API key is not an
    option of this record: it is never written anywhere)."""

    __pydantic_config__: ClassVar[dict] = STRICT_SCHEMA
    host: str = "127.0.0.1"
    port: Annotated[int, Interval(ge=0, le=65535)] = 8080  # 0: any free port
    name: str | None = None  # TF Serving's model name; None: the run folder's name
    top_k: Annotated[int, Ge(1)] = 3
    max_batch: Annotated[int, Ge(1)] = 32
    batch_timeout_ms: Annotated[float, Interval(ge=0, le=10_000)] = 5.0
    max_upload_mb: Annotated[float, Gt(0)] = 20.0
    max_megapixels: Annotated[float, Gt(0)] = 50.0
    decode_threads: Annotated[int, Ge(1)] = 4
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.name):
            raise UsageError(
                f"--name {self.name!r} must be letters, digits, '.', '_' or '-' (it is part "
                "of the URL /v1/models/NAME)."
            )


class ExplainMethod(str, Enum):
    """explain's heatmap: auto picks Grad-CAM where the map is globally pooled, else
    HiResCAM (report/gradcam.py says why)."""

    auto = "auto"
    gradcam = "gradcam"
    hirescam = "hirescam"


class ExportFormat(str, Enum):
    savedmodel = "savedmodel"
    tflite = "tflite"
    onnx = "onnx"


class Quantize(str, Enum):
    none = "none"
    fp16 = "fp16"  # weights stored as float16 (TFLite)
    dynamic = "dynamic"  # int8 weights, float activations (TFLite)
    int8 = "int8"  # weights and activations int8, calibrated on training images (TFLite)


# Top-1 agreement with model.keras below which `imgcls export` fails (exit 1): float
# formats should agree but for ties; full-integer quantization costs a little.
DEFAULT_MIN_AGREEMENT = {Quantize.int8: 0.97}
FLOAT_MIN_AGREEMENT = 0.99


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """What `imgcls export` writes and how it checks it; recorded in export.json."""

    __pydantic_config__: ClassVar[dict] = STRICT_SCHEMA
    format: ExportFormat = ExportFormat.savedmodel
    quantize: Quantize = Quantize.none
    # training images that calibrate int8 quantization
    calibration: Annotated[int, Ge(1)] = 200
    # None: DEFAULT_MIN_AGREEMENT / FLOAT_MIN_AGREEMENT
    min_agreement: Annotated[float, Interval(ge=0, le=1)] | None = None
    check: bool = True  # the parity check on held-out data
    dataset: str | None = None  # parity data; None with data None: the run's test split
    data: str | None = None
    data_dir: str | None = None
    batch_size: Annotated[int, Ge(1)] = 64
    seed: Annotated[int, Interval(ge=0, le=MAX_SEED)] = 0  # which training images calibrate

    def __post_init__(self) -> None:
        if self.dataset is not None and self.data is not None:
            raise UsageError("Give at most one of --dataset NAME or --data DIR.")
        if self.quantize is not Quantize.none and self.format is not ExportFormat.tflite:
            raise UsageError(
                f"--quantize {self.quantize.value} applies to --format tflite; "
                f"{self.format.value} exports keep float32 weights (--quantize none)."
            )

    @property
    def agreement_needed(self) -> float:
        if self.min_agreement is not None:
            return self.min_agreement
        return DEFAULT_MIN_AGREEMENT.get(self.quantize, FLOAT_MIN_AGREEMENT)

    @property
    def folder_name(self) -> str:
        """export/<format>[-<quantize>]: one folder per kind of export."""
        if self.quantize is Quantize.none:
            return self.format.value
        return f"{self.format.value}-{self.quantize.value}"

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)
