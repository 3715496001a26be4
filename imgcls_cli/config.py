"""Options of each command as frozen dataclasses: pure Python, validated, JSON round-trip."""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from enum import Enum
from pathlib import Path
from types import UnionType
from typing import Any, ClassVar

from imgcls_cli.errors import UsageError


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

    dataset: str | None = None  # a TFDS name, or "digits" (embedded)
    data: str | None = None  # a folder with one sub-folder per class
    data_dir: str | None = None  # TFDS data_dir
    manual_dir: str | None = None  # TFDS manual_dir (datasets TFDS cannot download itself)
    image_size: int | None = None  # None: the source's own size (or 64 for mixed sizes)
    val_split: float = 0.1
    test_split: float = 0.1  # only used when the source has no test split
    cache: CacheMode = CacheMode.auto

    def __post_init__(self) -> None:
        if (self.dataset is None) == (self.data is None):
            raise UsageError("Give exactly one of --dataset NAME or --data DIR.")
        for name in ("val_split", "test_split"):
            value = getattr(self, name)
            if not 0.0 <= value < 0.9:
                flag = "--" + name.replace("_", "-")
                raise UsageError(f"{flag} must be in [0, 0.9); got {value}.")
        if self.image_size is not None and not 4 <= self.image_size <= 1024:
            raise UsageError(f"--image-size must be between 4 and 1024; got {self.image_size}.")

    @property
    def source_name(self) -> str:
        """A short name for run directories: the dataset name or the folder's name."""
        if self.dataset:
            return self.dataset
        return Path(self.data or "data").resolve().name or "data"


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Random changes to training images, shared by train, finetune and augment-preview.

    As options, None means "from the preset" (and the preset itself None means "the
    data's default"); augment.policy.resolve_augment fills every part in for one dataset.
    """

    preset: AugmentPreset | None = None
    flip: Flip | None = None
    rotate: float | None = None  # degrees, either way
    crop: float | None = None  # cut this fraction off the height and width, then resize back
    zoom: float | None = None  # zoom in or out by up to this fraction
    translate: float | None = None  # shift by up to this fraction of the height and width
    contrast: float | None = None  # change contrast by up to this fraction
    brightness: float | None = None  # shift brightness by up to this fraction of 255
    color_jitter: float | None = None  # saturation and hue (colour images only)
    erase: float | None = None  # probability of blanking a random rectangle (cutout)
    fill: FillMode | None = None
    mixup: float = 0.0  # Beta(alpha, alpha) mixing of image pairs and labels; 0: off
    cutmix: float = 0.0  # paste a patch of another image, labels by area; 0: off

    def __post_init__(self) -> None:
        ranges = {
            "rotate": (0.0, 180.0),
            "crop": (0.0, 0.5),
            "zoom": (0.0, 0.9),
            "translate": (0.0, 0.5),
            "contrast": (0.0, 1.0),
            "brightness": (0.0, 1.0),
            "color_jitter": (0.0, 1.0),
            "erase": (0.0, 1.0),
            "mixup": (0.0, 10.0),
            "cutmix": (0.0, 1.0),
        }
        for name, (low, high) in ranges.items():
            value = getattr(self, name)
            if value is not None and not low <= value <= high:
                flag = "--" + name.replace("_", "-")
                raise UsageError(f"{flag} must be between {low:g} and {high:g}; got {value}.")
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
AUTO_LR = "auto"  # train --lr auto: an lr-find sweep before training picks the rate


def is_positive_number(value: Any) -> bool:
    """A finite number above 0 (not a bool): inf or nan would train to NaN weights."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return number and math.isfinite(value) and value > 0


def parse_lr(value: Any) -> float | str:
    """--lr as typed: a number, or 'auto' (left for the config's checks to judge)."""
    text = str(value).strip().lower()
    if text == AUTO_LR:
        return AUTO_LR
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"--lr must be a positive number or 'auto'; got {value!r}.") from None


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """The options of every command that trains and writes a run directory; saved in
    its config.json so the run can be reproduced."""

    command: ClassVar[str]  # the imgcls command that reads these options
    sweeps_lr: ClassVar[bool] = False  # takes --lr auto (an lr-find sweep picks the rate)
    data: DataConfig
    epochs: int = 10
    batch_size: int = 64
    lr: float | str = 1e-3  # a positive number; train also takes AUTO_LR (commands/lr_find.py)
    optimizer: Optimizer = Optimizer.adam
    weight_decay: float = 1e-4  # used by adamw only
    label_smoothing: float = 0.0
    patience: int | None = None  # early stopping on validation loss; None: off
    seed: int = 42
    strategy: Strategy = Strategy.auto
    scale_lr: bool = False  # multiply the learning rate(s) by the number of replicas
    mixed_precision: bool = False
    deterministic: bool = False
    save_every: int | None = None  # steps between mid-epoch checkpoints
    class_weight: ClassWeight = ClassWeight.none
    ema: float | None = None  # decay of the weights' moving average; None: off
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        for ok, message in self.checks():
            if not ok:
                raise UsageError(message)

    def checks(self) -> list[tuple[bool, str]]:
        """(ok, message) pairs; isfinite: --lr inf or nan would train to NaN weights
        without a word."""
        return [
            (
                self.batch_size is None or self.batch_size >= 1,
                f"--batch-size must be at least 1; got {self.batch_size}.",
            ),
            (
                (self.lr == AUTO_LR and self.sweeps_lr) or is_positive_number(self.lr),
                f"--lr must be a positive number{self.lr_auto_hint}; got {self.lr!r}.",
            ),
            (
                math.isfinite(self.weight_decay) and self.weight_decay >= 0,
                f"--weight-decay must be a number >= 0; got {self.weight_decay}.",
            ),
            (
                0.0 <= self.label_smoothing < 1.0,
                f"--label-smoothing must be in [0, 1); got {self.label_smoothing}.",
            ),
            (
                0 <= self.seed <= MAX_SEED,
                f"--seed must be between 0 and {MAX_SEED}; got {self.seed}.",
            ),
            (
                self.patience is None or self.patience >= 1,
                f"--patience must be at least 1; got {self.patience}.",
            ),
            (
                self.save_every is None or self.save_every >= 1,
                f"--save-every must be at least 1; got {self.save_every}.",
            ),
            (
                self.ema is None or 0.0 < self.ema < 1.0,
                f"--ema must be a decay between 0 and 1 (exclusive), such as 0.999; "
                f"got {self.ema}.",
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
    def from_dict(cls, values: dict[str, Any]) -> Any:
        """From config.json's "options": the data and augment sections, then the rest."""
        values = dict(values)
        values["data"] = from_dict(DataConfig, values.pop("data", {}), where="data")
        # Runs saved before augmentation existed have no 'augment' section.
        values["augment"] = from_dict(AugmentConfig, values.pop("augment", {}), where="augment")
        return from_dict(cls, values, where="options")


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
    epochs: int | None = None
    batch_size: int | None = None
    schedule: Schedule | None = None  # None: the arch's recipe, else DEFAULT_SCHEDULE
    warmup_epochs: int | None = None  # None: DEFAULT_WARMUP_EPOCHS when epochs allow

    def checks(self) -> list[tuple[bool, str]]:
        warmup = self.warmup_epochs
        return super().checks() + [
            (
                self.epochs is None or self.epochs >= 1,
                f"--epochs must be at least 1; got {self.epochs}.",
            ),
            (
                not (self.lr == AUTO_LR and self.scale_lr),
                "--scale-lr does not apply to --lr auto: the sweep runs on every replica "
                "already; drop --scale-lr.",
            ),
            # Without --epochs the data decides, DEFAULT_EPOCHS or more: below that is safe.
            (
                warmup is None or 0 <= warmup < self.least_epochs or warmup == 0,
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
    batch_size: int = 32
    backbone: str = "mobilenetv2"
    weights: str = "imagenet"  # "imagenet", "none" or a weights file for the backbone
    head_epochs: int = 10  # phase 1
    unfreeze: int | str = 20  # phase 2 trains the top N backbone layers, or "all"
    finetune_lr: float | None = None  # phase 2; None: lr / 10
    dropout: float = 0.2  # before the new classifier

    def __post_init__(self) -> None:
        if isinstance(self.unfreeze, str):
            object.__setattr__(self, "unfreeze", parse_unfreeze(self.unfreeze))
        super().__post_init__()

    def checks(self) -> list[tuple[bool, str]]:
        return super().checks() + [
            (self.head_epochs >= 0, f"--head-epochs must be 0 or more; got {self.head_epochs}."),
            (self.epochs >= 0, f"--epochs must be 0 or more; got {self.epochs}."),
            (
                self.unfreeze == "all" or (isinstance(self.unfreeze, int) and self.unfreeze >= 0),
                f"--unfreeze must be a number of layers (0 or more) or 'all'; got {self.unfreeze}.",
            ),
            (
                self.head_epochs + self.finetune_epochs > 0,
                "Nothing to train: give --head-epochs, or --epochs with --unfreeze above 0.",
            ),
            (
                self.finetune_lr is None
                or (math.isfinite(self.finetune_lr) and self.finetune_lr > 0),
                f"--finetune-lr must be a positive number; got {self.finetune_lr}.",
            ),
            (0.0 <= self.dropout < 1.0, f"--dropout must be in [0, 1); got {self.dropout}."),
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

    start_lr: float = 1e-7
    end_lr: float = 10.0
    steps: int = 100

    def __post_init__(self) -> None:
        for flag, value in (("--start-lr", self.start_lr), ("--end-lr", self.end_lr)):
            if not is_positive_number(value):
                raise UsageError(f"{flag} must be a positive number; got {value}.")
        if self.end_lr <= self.start_lr:
            raise UsageError(
                f"--end-lr must be above --start-lr ({self.start_lr:g}); got {self.end_lr:g}."
            )
        low, high = SWEEP_STEPS
        if not low <= self.steps <= high:
            raise UsageError(f"--steps must be between {low} and {high}; got {self.steps}.")

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
    """asdict with Enums as their values, so json.dumps works and reads back."""

    def convert(value: Any) -> Any:
        if isinstance(value, Enum):
            return value.value
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        return value

    return convert(dataclasses.asdict(config))


def from_dict(cls: type, values: dict[str, Any], where: str) -> Any:
    """Build a config dataclass from JSON values, refusing unknown keys (typos are not
    silently ignored) and values of the wrong type ("false" for a flag, 2.5 epochs)."""
    if not isinstance(values, dict):
        raise UsageError(f"Config section '{where}' must be a JSON object; got {values!r}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise UsageError(
            f"Unknown key(s) {', '.join(unknown)} in config section '{where}'. "
            f"Valid: {', '.join(fields)}."
        )
    hints = typing.get_type_hints(cls)
    converted = {name: convert_value(name, value, hints[name]) for name, value in values.items()}
    try:
        return cls(**converted)
    except TypeError as error:
        raise UsageError(f"Bad config section '{where}': {error}.") from None


def convert_value(name: str, value: Any, hint: Any) -> Any:
    """`value` as the annotated type: enums from their strings, ints accepted as floats;
    anything else of the wrong type is refused with one line."""
    allowed = (
        typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, UnionType) else (hint,)
    )
    if value is None and type(None) in allowed:
        return None
    for kind in allowed:
        if isinstance(kind, type) and issubclass(kind, Enum) and isinstance(value, str):
            try:
                return kind(value)
            except ValueError:
                valid = ", ".join(e.value for e in kind)
                raise UsageError(f"Bad {name} '{value}' in config. Valid: {valid}.") from None
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if kind is str and isinstance(value, str):
            return value
        if dataclasses.is_dataclass(kind) and isinstance(value, kind):
            return value
    expected = " or ".join(
        "null" if kind is type(None) else getattr(kind, "__name__", str(kind)) for kind in allowed
    )
    raise UsageError(f"Bad {name} {json.dumps(value)} in config: expected {expected}.")


class EvalSplit(str, Enum):
    train = "train"
    val = "val"
    test = "test"
    all = "all"


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    """What `imgcls evaluate` scores and how; recorded in evaluation.json."""

    dataset: str | None = None  # None with data None: the run's own data
    data: str | None = None
    data_dir: str | None = None
    split: EvalSplit | None = None  # None: test, or all of a folder without a test split
    top_k: int | None = None  # None: 5 when there are more than 5 classes
    batch_size: int = 64
    mistakes: int = 16  # most confident mistakes listed for folder data
    min_accuracy: float | None = None  # CI gate
    explain: bool = False  # draw Grad-CAM on the galleries of mistakes and top losses

    def __post_init__(self) -> None:
        if self.dataset is not None and self.data is not None:
            raise UsageError("Give at most one of --dataset NAME or --data DIR.")
        check_positive("--top-k", self.top_k)
        check_positive("--batch-size", self.batch_size)
        if self.mistakes < 0:
            raise UsageError(f"--mistakes must be 0 or more; got {self.mistakes}.")
        if self.min_accuracy is not None and not 0.0 <= self.min_accuracy <= 1.0:
            raise UsageError(
                f"--min-accuracy is a fraction in [0, 1] (0.9 for 90%); got {self.min_accuracy}."
            )

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


@dataclasses.dataclass(frozen=True)
class PredictConfig:
    """How `imgcls predict` runs the model."""

    top_k: int = 3
    batch_size: int = 64
    tta: bool = False

    def __post_init__(self) -> None:
        check_positive("--top-k", self.top_k)
        check_positive("--batch-size", self.batch_size)


def check_positive(flag: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise UsageError(f"{flag} must be at least 1; got {value}.")


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

    format: ExportFormat = ExportFormat.savedmodel
    quantize: Quantize = Quantize.none
    calibration: int = 200  # training images that calibrate int8 quantization
    min_agreement: float | None = None  # None: DEFAULT_MIN_AGREEMENT / FLOAT_MIN_AGREEMENT
    check: bool = True  # the parity check on held-out data
    dataset: str | None = None  # parity data; None with data None: the run's test split
    data: str | None = None
    data_dir: str | None = None
    batch_size: int = 64
    seed: int = 0  # which training images calibrate

    def __post_init__(self) -> None:
        if self.dataset is not None and self.data is not None:
            raise UsageError("Give at most one of --dataset NAME or --data DIR.")
        if self.quantize is not Quantize.none and self.format is not ExportFormat.tflite:
            raise UsageError(
                f"--quantize {self.quantize.value} applies to --format tflite; "
                f"{self.format.value} exports keep float32 weights (--quantize none)."
            )
        check_positive("--calibration", self.calibration)
        check_positive("--batch-size", self.batch_size)
        if self.min_agreement is not None and not 0.0 <= self.min_agreement <= 1.0:
            raise UsageError(
                f"--min-agreement is a fraction in [0, 1] (0.99 for 99%); got {self.min_agreement}."
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
