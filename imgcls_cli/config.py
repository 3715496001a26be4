"""Options of each command as frozen dataclasses: pure Python, validated, JSON round-trip."""

from __future__ import annotations

import dataclasses
import json
from enum import Enum
from pathlib import Path
from typing import Any

from .errors import UsageError


class Optimizer(str, Enum):
    adam = "adam"
    adamw = "adamw"
    sgd = "sgd"


class Schedule(str, Enum):
    constant = "constant"
    cosine = "cosine"


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
class TrainConfig:
    """Everything `imgcls train` needs; saved as config.json so a run can be reproduced."""

    data: DataConfig
    arch: str = "simplecnn"
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: Optimizer = Optimizer.adam
    weight_decay: float = 1e-4  # used by adamw only
    schedule: Schedule = Schedule.constant
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    patience: int | None = None  # early stopping on validation loss; None: off
    seed: int = 42

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, f"--epochs must be at least 1; got {self.epochs}."),
            (self.batch_size >= 1, f"--batch-size must be at least 1; got {self.batch_size}."),
            (self.lr > 0, f"--lr must be positive; got {self.lr}."),
            (self.weight_decay >= 0, f"--weight-decay must be >= 0; got {self.weight_decay}."),
            (
                0 <= self.warmup_epochs < self.epochs or self.warmup_epochs == 0,
                f"--warmup-epochs must be below --epochs ({self.epochs}); "
                f"got {self.warmup_epochs}.",
            ),
            (
                0.0 <= self.label_smoothing < 1.0,
                f"--label-smoothing must be in [0, 1); got {self.label_smoothing}.",
            ),
            (
                self.patience is None or self.patience >= 1,
                f"--patience must be at least 1; got {self.patience}.",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        return command_config_from_dict(cls, values)


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """Everything `imgcls finetune` needs: phase 1 trains a new head on the frozen
    backbone, phase 2 unfreezes the backbone's top layers at a lower learning rate."""

    data: DataConfig
    backbone: str = "mobilenetv2"
    weights: str = "imagenet"  # "imagenet", "none" or a weights file for the backbone
    head_epochs: int = 10  # phase 1
    epochs: int = 10  # phase 2
    unfreeze: int | str = 20  # phase 2 trains the top N backbone layers, or "all"
    lr: float = 1e-3  # phase 1
    finetune_lr: float | None = None  # phase 2; None: lr / 10
    batch_size: int = 32
    optimizer: Optimizer = Optimizer.adam
    weight_decay: float = 1e-4  # used by adamw only
    label_smoothing: float = 0.0
    dropout: float = 0.2  # before the new classifier
    class_weight: ClassWeight = ClassWeight.none
    patience: int | None = None  # early stopping within each phase; None: off
    seed: int = 42

    def __post_init__(self) -> None:
        if isinstance(self.unfreeze, str):
            object.__setattr__(self, "unfreeze", parse_unfreeze(self.unfreeze))
        checks = [
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
            (self.batch_size >= 1, f"--batch-size must be at least 1; got {self.batch_size}."),
            (self.lr > 0, f"--lr must be positive; got {self.lr}."),
            (
                self.finetune_lr is None or self.finetune_lr > 0,
                f"--finetune-lr must be positive; got {self.finetune_lr}.",
            ),
            (self.weight_decay >= 0, f"--weight-decay must be >= 0; got {self.weight_decay}."),
            (
                0.0 <= self.label_smoothing < 1.0,
                f"--label-smoothing must be in [0, 1); got {self.label_smoothing}.",
            ),
            (0.0 <= self.dropout < 1.0, f"--dropout must be in [0, 1); got {self.dropout}."),
            (
                self.patience is None or self.patience >= 1,
                f"--patience must be at least 1; got {self.patience}.",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)

    @property
    def finetune_epochs(self) -> int:
        """Phase 2's epochs: none when nothing is unfrozen."""
        return 0 if self.unfreeze == 0 else self.epochs

    @property
    def resolved_finetune_lr(self) -> float:
        return self.finetune_lr if self.finetune_lr is not None else self.lr / 10

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FinetuneConfig:
        return command_config_from_dict(cls, values)


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


def command_config_from_dict(cls: type, values: dict[str, Any]) -> Any:
    """A command's config from its JSON "options": the data section, then the rest."""
    values = dict(values)
    data = from_dict(DataConfig, values.pop("data", {}), where="data")
    return from_dict(cls, {**values, "data": data}, where="options")


def from_dict(cls: type, values: dict[str, Any], where: str) -> Any:
    """Build a config dataclass, refusing unknown keys so typos are not silently ignored."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise UsageError(
            f"Unknown key(s) {', '.join(unknown)} in config section '{where}'. "
            f"Valid: {', '.join(fields)}."
        )
    converted = {}
    for name, value in values.items():
        field_type = fields[name].type
        enum_type = {"Optimizer": Optimizer, "Schedule": Schedule, "ClassWeight": ClassWeight}.get(
            str(field_type)
        )
        if enum_type is not None and value is not None:
            try:
                value = enum_type(value)
            except ValueError:
                valid = ", ".join(e.value for e in enum_type)
                raise UsageError(f"Bad {name} '{value}' in config. Valid: {valid}.") from None
        converted[name] = value
    try:
        return cls(**converted)
    except TypeError as error:
        raise UsageError(f"Bad config section '{where}': {error}.") from None


def read_config_options(path: Path) -> dict[str, Any]:
    """The 'options' section of a run's config.json (or a file holding only options)."""
    try:
        document = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UsageError(f"Config file {path} does not exist.") from None
    except (OSError, ValueError) as error:
        raise UsageError(
            f"Cannot read config file {path}: {error}. Give a run's config.json."
        ) from None
    if not isinstance(document, dict):
        raise UsageError(f"Config file {path} must hold a JSON object.")
    options = document.get("options", document)
    if not isinstance(options, dict):
        raise UsageError(f"Config file {path}: 'options' must be a JSON object.")
    return options
