"""The records a run directory keeps, as types: config.json (RunRecord: the options a run
was given, what it resolved from its data and machine, the software that made it),
export.json (ExportRecord) and metrics.json (MetricsRecord). This is the one module that
knows their sections and keys: writers build the dataclasses, so a misspelt field fails
where it is written; readers take typed fields, and records written by older versions
still load (absent fields are None, unknown ones are kept as they are).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from imgcls_cli.errors import RunDirError

# config.json's layout version: 1 is the first that records it. Records without one were
# written before it existed and read the same way.
RECORD_VERSION = 1


def split_fields(cls: type, values: dict[str, Any], rest: str) -> tuple[dict, dict]:
    """(the values of cls's fields, the other keys) of a JSON object; `rest` is the field
    that keeps the other keys."""
    known = {f.name for f in dataclasses.fields(cls)} - {rest}
    typed = {key: value for key, value in values.items() if key in known}
    return typed, {key: value for key, value in values.items() if key not in known}


@dataclasses.dataclass(frozen=True)
class SourceRecord:
    """What a run's data was, as its source described itself."""

    kind: str | None = None  # "folder", "tfds" or "embedded"
    name: str | None = None  # TFDS and embedded datasets
    path: str | None = None  # folders: the absolute path trained on
    # folders: per split, a fingerprint of its file list (evaluate notices changes)
    fingerprints: dict[str, dict[str, Any]] | None = None
    details: dict[str, Any] = dataclasses.field(default_factory=dict)  # the rest, as written

    @classmethod
    def from_dict(cls, values: Any) -> SourceRecord:
        if not isinstance(values, dict):
            return cls()
        typed, details = split_fields(cls, values, rest="details")
        if not isinstance(typed.get("fingerprints"), (dict, type(None))):
            typed["fingerprints"] = None
        return cls(**typed, details=details)

    def to_dict(self) -> dict[str, Any]:
        named = {key: getattr(self, key) for key in ("kind", "name", "path")}
        document = {key: value for key, value in named.items() if value is not None}
        document.update(self.details)
        if self.fingerprints is not None:
            document["fingerprints"] = self.fingerprints
        return document


@dataclasses.dataclass(frozen=True)
class Resolved:
    """What a run settled from its data and machine (config.json's `resolved`)."""

    # the data (data.prepare.PreparedData.describe)
    image_size: tuple[int, int] | None = None
    channels: int | None = None
    num_classes: int | None = None
    split_sizes: dict[str, int] | None = None
    source: SourceRecord = dataclasses.field(default_factory=SourceRecord)
    augment: dict[str, Any] | None = None  # the resolved AugmentConfig, as JSON
    augment_choice: str | None = None  # why that augmentation
    cache: str | None = None
    # the machine and the recipe
    strategy: str | None = None
    replicas: int | None = None
    global_batch_size: int | None = None
    precision_policy: str | None = None
    class_weights: list[float] | None = None  # None: every class weighs 1
    # train
    epochs: int | None = None
    learning_rate: float | None = None
    schedule: str | None = None
    warmup_epochs: int | None = None
    lr_find: dict[str, Any] | None = None  # --lr auto's sweep
    # finetune
    backbone: str | None = None
    weights: dict[str, Any] | None = None
    phases: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # unknown keys, kept

    # Written even when None: "no class weights" is an answer, not a gap.
    ALWAYS_WRITTEN = frozenset({"class_weights"})

    def __post_init__(self) -> None:
        if isinstance(self.source, dict):
            object.__setattr__(self, "source", SourceRecord.from_dict(self.source))
        if self.image_size is not None:
            object.__setattr__(self, "image_size", tuple(self.image_size))

    @property
    def augment_flip(self) -> str | None:
        """The flips the model trained with ("none", "horizontal", …); None: unrecorded."""
        flip = (self.augment or {}).get("flip")
        return flip if isinstance(flip, str) else None

    @classmethod
    def from_dict(cls, values: Any) -> Resolved:
        if not isinstance(values, dict):
            return cls()
        typed, extra = split_fields(cls, values, rest="extra")
        size = typed.get("image_size")
        if size is not None and not (
            isinstance(size, (list, tuple))
            and len(size) == 2
            and all(isinstance(side, int) and side > 0 for side in size)
        ):
            raise RunDirError(f"resolved.image_size must be [height, width]; got {size!r}.")
        rate = typed.get("learning_rate")
        if isinstance(rate, bool) or not isinstance(rate, (int, float, type(None))):
            typed["learning_rate"] = None
        if not isinstance(typed.get("augment"), (dict, type(None))):
            typed["augment"] = None
        return cls(**typed, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "extra":
                document.update(value)
            elif field.name == "source":
                document["source"] = value.to_dict()
            elif value is not None or field.name in self.ALWAYS_WRITTEN:
                document[field.name] = list(value) if field.name == "image_size" else value
        return document


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """config.json: the command, its options (as RunConfig.to_dict writes them), what was
    resolved, and the versions of the software that made the run."""

    command: str | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    resolved: Resolved = dataclasses.field(default_factory=Resolved)
    versions: dict[str, str] = dataclasses.field(default_factory=dict)
    record_version: int | None = RECORD_VERSION  # None: written before versions existed

    @classmethod
    def from_dict(cls, document: Any) -> RunRecord:
        if not isinstance(document, dict):
            return cls(record_version=None)
        command = document.get("command")
        options = document.get("options")
        versions = document.get("versions")
        version = document.get("record_version")
        return cls(
            command=command if isinstance(command, str) else None,
            options=options if isinstance(options, dict) else {},
            resolved=Resolved.from_dict(document.get("resolved")),
            versions=versions if isinstance(versions, dict) else {},
            record_version=version if isinstance(version, int) else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "options": self.options,
            "resolved": self.resolved.to_dict(),
            "versions": self.versions,
            "record_version": self.record_version,
        }


@dataclasses.dataclass(frozen=True)
class ExportRecord:
    """export.json, the parts that loading an export and the benchmark read; the writer
    (commands/export.py) records more for people to read."""

    format: str
    artifact: str
    image_size: tuple[int, int]  # from the input's shape, (None, height, width, channels)
    channels: int
    parity: dict[str, Any]
    run: RunRecord  # the exported run's config.json, to find its data again

    @property
    def export_accuracy(self) -> float | None:
        accuracy = self.parity.get("export_accuracy")
        return accuracy if isinstance(accuracy, (int, float)) else None

    @classmethod
    def from_dict(cls, document: Any, path: Path) -> ExportRecord:
        try:
            _, height, width, channels = document["input"]["shape"]
            record = cls(
                format=str(document["format"]),
                artifact=str(document["artifact"]),
                image_size=(int(height), int(width)),
                channels=int(channels),
                parity=document.get("parity") or {},
                run=RunRecord.from_dict(document.get("run_config")),
            )
        except (KeyError, ValueError, TypeError, AttributeError):
            raise RunDirError(
                f"{path} is not as `imgcls export` writes it; export the run again."
            ) from None
        return record


@dataclasses.dataclass(frozen=True)
class MetricsRecord:
    """metrics.json, the parts other commands read: each split's scores."""

    splits: dict[str, dict[str, Any]]  # "val", "test", "train_sample": loss, accuracy, …

    def accuracy(self, split: str) -> float | None:
        accuracy = (self.splits.get(split) or {}).get("accuracy")
        return accuracy if isinstance(accuracy, (int, float)) else None

    @classmethod
    def from_dict(cls, document: Any) -> MetricsRecord:
        if not isinstance(document, dict):
            return cls({})
        return cls({key: value for key, value in document.items() if isinstance(value, dict)})


def same_fingerprints(recorded: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether two split fingerprints (data.folder.split_fingerprint) agree on what the
    recorded one holds: a run recorded before `labels` was fingerprinted is compared on
    its files alone."""
    return all(current.get(key) == value for key, value in recorded.items())
