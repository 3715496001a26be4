"""One factory for every source the options can name: a folder of images, CSV label
files, a Hugging Face dataset, the embedded digits or a TensorFlow Datasets name.
Each reader is imported only when chosen."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgcls_cli.config import DataConfig, is_hf_folder, is_hub_dataset, label_files
from imgcls_cli.reporting import Reporter, SilentReporter

if TYPE_CHECKING:  # numpy comes with it: refusals (check_data) must stay as fast as --help
    from imgcls_cli.data.sources import Source


def load_source(
    config: DataConfig, seed: int, reporter: Reporter | None = None, min_classes: int = 2
) -> Source:
    """Open the source the options name, saying what takes time (a TFDS download). A
    folder for training needs images of 2 classes; one to score a model on, of 1."""
    if config.data is not None and label_files(Path(config.data)) is not None:
        from imgcls_cli.data.label_table import load_label_source

        return load_label_source(config, seed, min_classes)
    if is_hugging_face(config):
        from imgcls_cli.data.hf_source import load_hf_source

        return load_hf_source(config, seed, reporter or SilentReporter(), min_classes)
    if config.data is not None:
        from imgcls_cli.data.folder import load_folder

        return load_folder(Path(config.data), config, seed, min_classes)
    from imgcls_cli.backend import import_tensorflow

    import_tensorflow()  # quietly, before anything below imports it
    from imgcls_cli.data.sources import EMBEDDED_DATASETS

    if config.dataset in EMBEDDED_DATASETS:
        from imgcls_cli.data.embedded import load_digits

        return load_digits(config, seed)
    from imgcls_cli.data.tfds_source import load_tfds

    return load_tfds(config, seed, reporter or SilentReporter())


def is_hugging_face(config: DataConfig) -> bool:
    """--dataset hf:NAME, or --data DIR holding a saved dataset or Parquet files."""
    if config.dataset is not None:
        return is_hub_dataset(config.dataset)
    return label_files(Path(config.data or "")) is None and is_hf_folder(Path(config.data or ""))


def check_data(config: DataConfig) -> None:
    """A --data folder or label file that cannot be read as one, or whose training split
    holds no readable image or images of only one class, refused in one line before any
    work or TensorFlow (the scan it makes is kept in the folder's scan index)."""
    if is_hugging_face(config):
        from imgcls_cli.data.hf_source import check_hub_name, require_datasets

        if config.dataset is not None:
            check_hub_name(config.dataset)  # offline and not in the caches: refused now
        else:
            from imgcls_cli.data.hf_source import open_dataset

            require_datasets()
            open_dataset(config, SilentReporter())  # its columns and splits, offline
        return
    if config.data is None:
        return
    check_readable(listed_files(config), Path(config.data))


def check_readable(listed: Any, data: Path, min_classes: int = 2) -> Any:
    """data.folder.readable_files of the listed files (its scan and readable files), its
    refusals of a folder ending with label_file_hint's pointer to a CSV there."""
    from imgcls_cli.data.folder import label_file_hint_on_error, readable_files

    folder = listed.description["kind"] == "folder"
    with label_file_hint_on_error(data) if folder else contextlib.nullcontext():
        return readable_files(listed, min_classes)


def carved_fingerprints(config: DataConfig, seed: int) -> tuple[list[str], dict[str, Any]] | None:
    """(class names, the file-list fingerprint of each split) of a --data folder or label
    file, its splits drawn as training with `seed` would draw them, before TensorFlow
    (data.folder.split_fingerprint); None for other sources. Unreadable data is refused
    as check_data refuses it."""
    listed = listed_files(config)
    if listed is None:
        return None
    from imgcls_cli.data.folder import carve_file_lists, drop_empty_splits, split_fingerprint

    _, files = check_readable(listed, Path(config.data or ""))  # refused with their hints
    drop_empty_splits(files, listed.where, config)
    fingerprints = {
        name: split_fingerprint(
            listed.root, [str(path) for path, _ in entries], [label for _, label in entries]
        )
        for name, entries in carve_file_lists(files, config, seed).items()
    }
    return listed.class_names, fingerprints


def listed_files(config: DataConfig):
    """The labelled files of a --data folder or label file(s) (data.folder.ListedFiles),
    listed without reading any; None for other sources. No TensorFlow."""
    if config.data is None or is_hugging_face(config):
        return None
    if label_files(Path(config.data)) is not None:
        from imgcls_cli.data.label_table import listed_label_files

        return listed_label_files(config)
    from imgcls_cli.data.folder import listed_folder

    return listed_folder(Path(config.data))
