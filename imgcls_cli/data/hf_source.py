"""Hugging Face datasets: a Hub name (`--dataset hf:NAME[:CONFIG]`, `--revision`), or a
folder holding a `save_to_disk` output or Parquet files (`--data DIR`, offline).

The `datasets` library opens the data (memory-mapped Arrow in its own cache); the image
column is the dataset's Image feature (or --image-column), the label its ClassLabel (or
--label-column). Images keep their stored bytes: the scan reads each one's header, and
training streams them through the folder's decoder (data.folder.FileDecoder, given the
bytes instead of a file), so the pixels are those a folder of the same files gives.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from imgcls_cli.config import HUB_PREFIX, DataConfig, is_saved_dataset
from imgcls_cli.errors import DataError, DataLayoutError, UsageError
from imgcls_cli.reporting import Reporter

HUB_HOST = ("huggingface.co", 443)
# The dataset's split names → imgcls' (others are left out, and said so).
SPLIT_NAMES = {
    "train": "train",
    "validation": "val",
    "valid": "val",
    "val": "val",
    "dev": "val",
    "test": "test",
}
INSTALL = (
    "Hugging Face datasets need the `datasets` package: pip install 'imgcls[hf]' "
    "(`make install` installs it)."
)
SCAN_BATCH = 256  # rows read at a time by the header scan


def parse_hub_name(dataset: str) -> tuple[str, str | None]:
    """'hf:beans' → ('beans', None); 'hf:user/name:config' → ('user/name', 'config')."""
    rest = dataset[len(HUB_PREFIX) :]
    name, _, config = rest.partition(":")
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", name) or (
        config and not re.fullmatch(r"[\w.-]+", config)
    ):
        raise UsageError(
            f"--dataset '{dataset}': expected hf:NAME, hf:OWNER/NAME or hf:NAME:CONFIG "
            "(e.g. hf:beans)."
        )
    return name, config or None


def stored_split_names(folder: Path) -> list[str]:
    """The split names of a saved dataset or Parquet folder, read without opening it."""
    import json

    listing = folder / "dataset_dict.json"
    if listing.is_file():
        try:
            return list(json.loads(listing.read_text()).get("splits", []))
        except (OSError, ValueError):
            return []
    if is_saved_dataset(folder):  # a Dataset: one split
        return ["train"]
    return list(parquet_splits(parquet_files(folder)))


def parquet_files(path: Path) -> list[Path]:
    found = sorted(path.glob("*.parquet")) or sorted((path / "data").glob("*.parquet"))
    return [p for p in found if p.is_file()]


def parquet_splits(files: list[Path]) -> dict[str, list[str]]:
    """{split: files} by the Hub's file names (train-00000-of-00002.parquet, test.parquet);
    one 'train' split when the names do not tell."""
    splits: dict[str, list[str]] = {}
    for file in files:
        head = re.split(r"[-_.]", file.name, maxsplit=1)[0].lower()
        splits.setdefault(head if head in SPLIT_NAMES else "", []).append(str(file))
    if "" in splits or "train" not in splits:
        return {"train": [str(f) for f in files]}
    return splits


def require_datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise DataError(INSTALL) from None
    datasets.disable_progress_bars()  # imgcls says what takes time, in one line
    datasets.logging.set_verbosity_error()
    return datasets


def check_hub_name(dataset: str) -> None:
    """Before TensorFlow: the name's syntax, the library being installed, and, offline,
    the dataset being in the libraries' caches."""
    name, _ = parse_hub_name(dataset)
    import importlib.util

    if importlib.util.find_spec("datasets") is None:
        raise DataError(INSTALL)
    if not may_be_cached(name) and not hub_reachable():
        raise DataError(offline_message(name))


def may_be_cached(name: str) -> bool:
    """Whether the Hub's download cache (datasets--ORG--NAME) or the prepared datasets'
    (ORG___NAME) has an entry for the name, looked up without importing the libraries.
    Loose on purpose (any organisation, case and punctuation ignored): an entry found is
    left to the library, which knows its layout exactly; none found offline is refused
    before TensorFlow starts."""
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface"
    )
    hub = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    prepared = os.environ.get("HF_DATASETS_CACHE")
    folders = {
        Path(hub or os.path.join(home, "hub")).expanduser(): "--",
        Path(prepared or os.path.join(home, "datasets")).expanduser(): "___",
    }
    wanted = comparable(name.rsplit("/", 1)[-1])
    for folder, separator in folders.items():
        with contextlib.suppress(OSError):
            for entry in os.listdir(folder):
                if comparable(entry.rsplit(separator, 1)[-1]) == wanted:
                    return True
    return False


def comparable(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


@dataclasses.dataclass
class OpenedDataset:
    name: str
    splits: dict[str, Any]  # imgcls split → datasets.Dataset
    image_column: str
    label_column: str
    class_names: list[str]
    labels: dict[str, np.ndarray]  # imgcls split → class index per row
    description: dict[str, Any]
    warnings: list[str]


def open_dataset(config: DataConfig, reporter: Reporter) -> OpenedDataset:
    """The dataset's splits and columns, refused in one line when it cannot be used."""
    if config.data is not None:
        folder = Path(config.data)
        loaded, description = open_folder(folder), {"kind": "hf", "path": str(folder.resolve())}
        name = folder.resolve().name
    else:
        hub_name, hub_config = parse_hub_name(config.dataset or "")
        loaded = open_hub(hub_name, hub_config, config.revision, reporter)
        description = {"kind": "hf", "name": hub_name, "config": hub_config}
        description["revision"] = config.revision
        name = hub_name
    splits, warnings = map_splits(loaded)
    first = splits["train"]
    image_column = find_image_column(first, config.image_column, name)
    label_column, class_names = find_label_column(first, config.label_column, name)
    labels = {
        split: label_indices(dataset, label_column, class_names)
        for split, dataset in splits.items()
    }
    description["splits"] = {split: len(dataset) for split, dataset in splits.items()}
    description["fingerprints"] = {
        split: {"rows": len(dataset), "fingerprint": getattr(dataset, "_fingerprint", None)}
        for split, dataset in splits.items()
    }
    return OpenedDataset(
        name, splits, image_column, label_column, class_names, labels, description, warnings
    )


def open_folder(folder: Path) -> dict[str, Any]:
    datasets = require_datasets()
    try:
        if is_saved_dataset(folder):
            loaded = datasets.load_from_disk(str(folder))
        else:
            loaded = datasets.load_dataset(
                "parquet", data_files=parquet_splits(parquet_files(folder))
            )
    except Exception as error:  # noqa: BLE001 - the library's many errors, in one line
        raise DataError(
            f"Cannot read {folder} as a Hugging Face dataset: {first_line(error)}"
        ) from None
    return dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}


def open_hub(name: str, config: str | None, revision: str | None, reporter: Reporter) -> dict:
    """load_dataset into the library's cache. Offline, the cache alone is used (the Hub
    is not waited for); a name that is not there, or gated, is one line."""
    offline = not hub_reachable()
    datasets = require_datasets()
    reporter.info(f"Loading hf:{name} with the datasets library (cached after the first time)")
    try:
        with offline_mode(offline):
            loaded = datasets.load_dataset(name, config, revision=revision)
    except Exception as error:  # noqa: BLE001 - the library's many errors, in one line
        raise DataError(hub_problem(name, error, offline)) from None
    if not isinstance(loaded, datasets.DatasetDict):
        loaded = datasets.DatasetDict({"train": loaded})
    return dict(loaded)


@contextlib.contextmanager
def offline_mode(offline: bool) -> Iterator[None]:
    """The libraries' offline mode (the cache only, no retries for a minute) while the
    Hub is unreachable. HF_HUB_OFFLINE is read once, at import, and the library may be
    imported already (a notebook, the tests): set their constants for the call."""
    if not offline:
        yield
        return
    import datasets.config
    import huggingface_hub.constants

    modules = (datasets.config, huggingface_hub.constants)
    saved = [module.HF_HUB_OFFLINE for module in modules]
    for module in modules:
        module.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        for module, value in zip(modules, saved):
            module.HF_HUB_OFFLINE = value


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub answers at all: offline, the library would retry for minutes."""
    import socket

    try:
        with socket.create_connection(HUB_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def hub_problem(name: str, error: Exception, offline: bool) -> str:
    text = first_line(error)
    kind = type(error).__name__
    if offline:
        return offline_message(name)
    if "gated" in text.lower() or kind == "GatedRepoError":
        return (
            f"hf:{name} is gated: accept its terms on https://huggingface.co/datasets/{name} "
            "and log in (huggingface-cli login, or set HF_TOKEN)."
        )
    if kind in ("DatasetNotFoundError", "FileNotFoundError", "RepositoryNotFoundError"):
        return f"No dataset hf:{name} on the Hugging Face Hub ({text})."
    return f"Cannot load hf:{name}: {kind}: {text}"


def offline_message(name: str) -> str:
    return (
        f"hf:{name} is not in the datasets cache and the Hub (huggingface.co) cannot be "
        "reached: connect once to download it, or save it with save_to_disk and pass "
        "--data DIR."
    )


def first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def map_splits(loaded: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """imgcls' train/val/test from the dataset's split names; the only split is train."""
    splits: dict[str, Any] = {}
    left = []
    for split, dataset in loaded.items():
        ours = SPLIT_NAMES.get(split.lower())
        if ours and ours not in splits:
            splits[ours] = dataset
        else:
            left.append(split)
    if "train" not in splits and len(loaded) == 1:
        return {"train": next(iter(loaded.values()))}, []
    if "train" not in splits:
        raise DataLayoutError(
            f"The dataset has no train split (its splits: {', '.join(loaded)}); "
            "save the one to train on as 'train'."
        )
    warnings = [f"Left out the dataset's split(s) {', '.join(left)}."] if left else []
    return splits, warnings


def find_image_column(dataset: Any, named: str | None, name: str) -> str:
    datasets = require_datasets()
    features = dataset.features
    if named is not None:
        if named not in features:
            raise DataLayoutError(
                f"{name} has no column {named!r} (--image-column); its columns: {columns(dataset)}."
            )
        if not isinstance(features[named], datasets.Image):
            raise DataLayoutError(
                f"{name}'s column {named!r} is {describe(features[named])}, not images; "
                f"its columns: {columns(dataset)}."
            )
        return named
    for column, feature in features.items():
        if isinstance(feature, datasets.Image):
            return column
    raise DataLayoutError(
        f"{name} has no image column; its columns: {columns(dataset)} (pick one with "
        "--image-column NAME)."
    )


def find_label_column(dataset: Any, named: str | None, name: str) -> tuple[str, list[str]]:
    """(column, class names): a ClassLabel's names; with --label-column, also a column
    of strings or integers (class names its sorted values)."""
    datasets = require_datasets()
    features = dataset.features
    if named is None:
        for column, feature in features.items():
            if isinstance(feature, datasets.ClassLabel):
                return column, list(feature.names)
        raise DataLayoutError(
            f"{name} has no class label column; its columns: {columns(dataset)} (pick one "
            "with --label-column NAME)."
        )
    if named not in features:
        raise DataLayoutError(
            f"{name} has no column {named!r} (--label-column); its columns: {columns(dataset)}."
        )
    feature = features[named]
    if isinstance(feature, datasets.ClassLabel):
        return named, list(feature.names)
    if isinstance(feature, datasets.Value) and (
        feature.dtype in ("string", "large_string") or feature.dtype.startswith(("int", "uint"))
    ):
        from imgcls_cli.data.folder import sort_class_names

        values = {str(value) for value in dataset.unique(named) if value is not None}
        return named, sort_class_names(sorted(values))
    raise DataLayoutError(
        f"{name}'s column {named!r} is {describe(feature)}, not a class label; its "
        f"columns: {columns(dataset)}."
    )


def describe(feature: Any) -> str:
    """'string', 'int64' for plain values; 'Image', 'ClassLabel', 'List' for the rest."""
    datasets = require_datasets()
    if isinstance(feature, datasets.Value):
        return feature.dtype
    return type(feature).__name__


def columns(dataset: Any) -> str:
    return ", ".join(
        f"{column} ({describe(feature)})" for column, feature in dataset.features.items()
    )


def label_indices(dataset: Any, column: str, class_names: list[str]) -> np.ndarray:
    """The class index of each row (-1: no label, or one the train split lacks)."""
    datasets = require_datasets()
    values = dataset.with_format("arrow")[column].to_pylist()  # with its row selection
    if isinstance(dataset.features[column], datasets.ClassLabel):
        return np.array([-1 if v is None else int(v) for v in values], dtype=np.int64)
    index = {name: i for i, name in enumerate(class_names)}
    return np.array([index.get(str(v), -1) if v is not None else -1 for v in values], np.int64)


class StoredImages:
    """The encoded bytes of each row's image, by name ('split/row'), read from the
    memory-mapped dataset when the pipeline asks (an image stored as a path is read from
    its file)."""

    def __init__(self, splits: dict[str, Any], column: str) -> None:
        datasets = require_datasets()
        self.column = column
        self.raw = {
            split: dataset.select_columns([column]).cast_column(
                column, datasets.Image(decode=False)
            )
            for split, dataset in splits.items()
        }

    @staticmethod
    def name(split: str, row: int) -> str:
        return f"{split}/{row}"

    def read(self, name: str) -> bytes:
        split, _, row = name.rpartition("/")
        return self.content(self.raw[split][int(row)][self.column])

    @staticmethod
    def content(stored: dict[str, Any] | None) -> bytes:
        if not stored:
            raise OSError("no image in this row")
        if stored.get("bytes"):
            return stored["bytes"]
        if stored.get("path"):
            return Path(stored["path"]).read_bytes()
        raise OSError("no image in this row")

    def rows(self, split: str):
        """(name, bytes or the reason it has none) of every row of a split, in order."""
        offset = 0
        for batch in self.raw[split].iter(batch_size=SCAN_BATCH):
            for i, stored in enumerate(batch[self.column]):
                try:
                    yield self.name(split, offset + i), self.content(stored)
                except OSError as error:
                    yield self.name(split, offset + i), str(error)
            offset += len(batch[self.column])


def batched(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def load_hf_source(config: DataConfig, seed: int, reporter: Reporter, min_classes: int = 2):
    """The dataset as a Source (data.sources), decoded by the folder's decoder."""
    from imgcls_cli.backend import import_tensorflow
    from imgcls_cli.data.folder import FileDecoder, KnownFile
    from imgcls_cli.data.images import check_image, unreadable_reason
    from imgcls_cli.data.sources import Source, Split, StreamFailures, split_arrays

    opened = open_dataset(config, reporter)
    import_tensorflow()
    stored = StoredImages(opened.splits, opened.image_column)
    known: dict[str, KnownFile] = {}
    skipped: list[tuple[str, str]] = []

    def check(item: tuple[str, bytes | str]):
        name, content = item
        if isinstance(content, str):
            return name, content
        try:
            return name, KnownFile(check_image(Path(name), content), (0, 0))
        except Exception as error:  # PIL raises many types for bad images
            return name, unreadable_reason(name, error)

    names: dict[str, list[str]] = {}
    with ThreadPoolExecutor(max_workers=4) as pool:
        for split in opened.splits:
            names[split] = []
            # A batch of rows at a time: pool.map takes its whole input at once, and a
            # large dataset's images must never be in memory together.
            for batch in batched(stored.rows(split), SCAN_BATCH):
                for name, result in pool.map(check, batch):
                    if isinstance(result, str):
                        skipped.append((name, result))
                    else:
                        known[name] = result
                        names[split].append(name)
    if not known:
        raise DataError(f"No readable image in {opened.name}'s column {opened.image_column!r}.")
    failures = StreamFailures()
    decoder = FileDecoder(
        1 if all(k.facts.grayscale for k in known.values()) else 3,
        failures,
        known,
        read_bytes=stored.read,
    )
    failures.verify = decoder.verify

    def usable(split: str) -> tuple[np.ndarray, np.ndarray]:
        rows = np.array([int(n.rpartition("/")[2]) for n in names[split]], dtype=np.int64)
        labels = opened.labels[split][rows] if len(rows) else np.zeros(0, np.int64)
        keep = labels >= 0
        unlabelled = int((~keep).sum())
        if unlabelled:
            opened.warnings.append(f"Left out {unlabelled} {split} row(s) without a known label.")
        return np.array(names[split], dtype=object)[keep], labels[keep]

    parts = {split: usable(split) for split in opened.splits}
    train_names, train_labels = parts["train"]
    present = sorted(set(train_labels.tolist()))
    if len(present) < min_classes:
        only = ", ".join(opened.class_names[i] for i in present) or "none"
        raise DataError(
            f"{opened.name}'s train split has images of {len(present)} class(es) ({only}) in "
            f"column {opened.label_column!r}: classification needs at least {min_classes}."
        )
    has_val = "val" in parts
    carve_config = dataclasses.replace(config, val_split=0.0) if has_val else config
    carved = split_arrays(train_names, train_labels, carve_config, seed, "test" in parts)
    for split in ("val", "test"):
        if split in parts:
            carved[split] = parts[split]

    def to_split(names_and_labels: tuple[np.ndarray, np.ndarray]) -> Any:
        import tensorflow as tf

        keys, labels = names_and_labels
        files = tf.data.Dataset.from_tensor_slices(
            (tf.constant([k.encode() for k in keys], tf.string), labels.astype(np.int64))
        )
        return Split.of_file_list(
            files, len(keys), decoder.decode_files, labels=labels, read_stored=stored.read
        )

    sizes = {(k.facts.height, k.facts.width) for k in known.values()}
    return Source(
        name=opened.name,
        class_names=opened.class_names,
        channels=decoder.channels,
        native_size=next(iter(sizes)) if len(sizes) == 1 else None,
        splits={split: to_split(part) for split, part in carved.items()},
        description=opened.description,
        skipped=skipped,
        warnings=opened.warnings,
        stream_failures=failures,
    )
