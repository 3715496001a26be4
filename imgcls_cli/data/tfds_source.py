"""TensorFlow Datasets sources, failing fast (not after minutes of retries) when offline."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any

from imgcls_cli.backend import traced_as_written
from imgcls_cli.config import DataConfig
from imgcls_cli.data.sources import EMBEDDED_DATASETS, Source, Split
from imgcls_cli.data.splits import stream_carve
from imgcls_cli.errors import DataError, UsageError, unknown_name_message
from imgcls_cli.reporting import Reporter

# TFDS downloads prepared datasets from this bucket first; datasets it must build itself
# fetch from their own hosts. Reaching it is the cheapest signal that downloads can work.
DOWNLOAD_PROBE = ("storage.googleapis.com", 443)
# name[/config][:version], as TFDS spells them ("cifar10_corrupted/brightness_1:1.0.0"):
# anything else (paths, '', kwargs) is refused before TFDS parses it.
# What a refusal names first: the datasets most people start with.
EXAMPLES = ("mnist", "fashion_mnist", "cifar10", "cifar100", "tf_flowers", "beans", "digits")
DATASET_NAME = re.compile(
    r"(?P<name>[a-z][a-z0-9_]*)"
    r"(?:/(?P<config>[\w+.-]+))?"
    r"(?::(?P<version>[0-9*]+\.[0-9*]+\.[0-9*]+))?"
)


def network_available(timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection(DOWNLOAD_PROBE, timeout=timeout):
            return True
    except OSError:
        return False


def import_tfds() -> Any:
    from imgcls_cli.backend import import_tensorflow

    import_tensorflow()
    import tensorflow_datasets as tfds

    return tfds


def default_data_dir() -> str:
    """Where TFDS keeps prepared datasets when --data-dir is not given (as TFDS decides)."""
    return str(Path(os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")).expanduser())


def offline_message(name: str, data_dir: str) -> str:
    return (
        f"Dataset '{name}' is not in {data_dir} and the network is unreachable: run the "
        "same command once on a machine with internet and copy that folder here, then "
        "pass --data-dir."
    )


def check_download_possible(name: str, data_dir: str | None, manual_dir: str | None = None) -> None:
    """Before TensorFlow: a dataset with no folder of its own in the data directory must
    be downloaded, so with the network unreachable, refuse at once (TFDS would find out
    only after TensorFlow's start). A folder that is there, or archives placed by hand
    (--manual-dir, or the default manual folder holding files), are left to TFDS."""
    from imgcls_cli.data.tfds_catalog import catalog

    base = DATASET_NAME.fullmatch(name)
    data_dir = data_dir or default_data_dir()
    manual = Path(manual_dir or Path(data_dir) / "downloads" / "manual")
    if (
        base is None
        or (Path(data_dir) / base.group("name")).is_dir()
        or (manual.is_dir() and any(manual.iterdir()))
    ):
        return
    if base.group("name") in catalog().manual:  # no network would help
        raise DataError(manual_download_message(base.group("name"), manual, given=bool(manual_dir)))
    if not network_available():
        raise DataError(offline_message(base.group("name"), data_dir))


def manual_download_message(
    name: str, manual_dir: Path, instructions: str | None = None, given: bool = False
) -> str:
    """A dataset whose archives TFDS cannot download: where to place them (the
    --manual-dir given, else the default one), and which (its instructions, or, before
    TFDS is imported, its catalog page)."""
    which = (
        f"as its instructions say: {' '.join(instructions.split())}"
        if instructions
        else f"its page says which: https://www.tensorflow.org/datasets/catalog/{name}"
    )
    where = (
        f"{manual_dir}, the --manual-dir given"
        if given
        else (f"{manual_dir} (or pass --manual-dir DIR)")
    )
    return (
        f"Dataset '{name}' cannot be downloaded automatically: place its archives in "
        f"{where}; {which}"
    )


def check_dataset_name(name: str) -> None:
    """Refuse a --dataset that names no TFDS dataset (or config), or one without images
    and class labels, with one line, the closest image-classification name and a few
    others. Decided from the shipped catalog (tfds_catalog) without importing TFDS; a
    name it lacks, with another TFDS release installed, or a config, imports
    tensorflow_datasets but not TensorFlow. No network: cli calls it before anything slow."""
    import difflib

    from imgcls_cli.data.tfds_catalog import OTHER, catalog

    known = catalog()
    trainable = sorted(known.image_classification | set(EMBEDDED_DATASETS))
    match = DATASET_NAME.fullmatch(name)
    if match is None:
        close = difflib.get_close_matches(name.strip().lower(), trainable, n=1, cutoff=0.6)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise UsageError(
            f"--dataset '{name}' is not a dataset name (lowercase letters, digits and _, "
            f"optionally /config and :version).{hint} Examples: mnist, cifar10, tf_flowers, "
            "digits; for a folder of images use --data DIR."
        )
    base, config = match["name"], match["config"]
    if base in EMBEDDED_DATASETS:
        if name != base:
            raise UsageError(f"--dataset {base} has no configs or versions: pass just '{base}'.")
        return
    kind = known.kinds.get(base)
    if kind is None and not known.is_complete():
        import tensorflow_datasets as tfds

        if base in tfds.list_builders(with_community_datasets=False):
            kind = "unlisted"  # newer than the catalog: the loader checks its features
    if kind is None:
        # Suggest and list only what imgcls can train on, not TFDS' text and audio sets;
        # the well-known ones first.
        listed = [*EXAMPLES, *(n for n in trainable if n not in EXAMPLES)]
        raise UsageError(unknown_name_message("dataset", base, listed))
    if kind == OTHER:
        raise UsageError(
            f"TFDS dataset '{base}' has no image and class-label features to train on; "
            f"imgcls takes image classification datasets, such as {', '.join(EXAMPLES)}."
        )
    if config is not None:
        import tensorflow_datasets as tfds

        configs = sorted(getattr(tfds.builder_cls(base), "builder_configs", {}))
        if not configs:
            raise UsageError(f"Dataset '{base}' has no configs: drop '/{config}'.")
        if config not in configs:
            raise UsageError(unknown_name_message(f"{base} config", config, configs))


def create_builder(name: str, data_dir: str | None) -> Any:
    check_dataset_name(name)
    tfds = import_tfds()
    try:
        return tfds.builder(name, data_dir=data_dir)
    except (AssertionError, ValueError) as error:
        if ":" not in name:
            raise
        # "Failed to construct dataset …: Dataset mnist cannot be loaded at version 9.9.9,
        # only: 3.0.1." keeps its last part.
        reason = str(error).splitlines()[0].split('": ', 1)[-1]
        raise UsageError(f"--dataset {name}: {reason}") from None


def image_and_label_keys(builder: Any) -> tuple[str, str]:
    """The image and ClassLabel feature names, or a clear error for other kinds of data."""
    from imgcls_cli.data.tfds_catalog import classification_keys

    keys = classification_keys(builder.info.features, builder.info.supervised_keys)
    if keys is None:
        raise DataError(
            f"Dataset '{builder.name}' is not image classification (it needs an image and a "
            "class label feature); pick one such as mnist, cifar10 or tf_flowers."
        )
    return keys


def ensure_prepared(builder: Any, config: DataConfig, reporter: Reporter) -> None:
    """Download and prepare the dataset if needed, or say at once how to provide it."""
    if builder.is_prepared():
        return
    tfds = import_tfds()
    data_dir = config.data_dir or default_data_dir()
    manual_instructions = getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None)
    manual_dir = Path(config.manual_dir or Path(data_dir) / "downloads" / "manual")
    if manual_instructions and not (manual_dir.is_dir() and any(manual_dir.iterdir())):
        raise DataError(
            manual_download_message(
                builder.name, manual_dir, manual_instructions, given=bool(config.manual_dir)
            )
        )
    if not network_available():
        raise DataError(offline_message(builder.name, data_dir))
    reporter.info(f"Downloading and preparing '{builder.name}' into {data_dir} (first use only)…")
    download_config = tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    try:
        builder.download_and_prepare(download_config=download_config)
    except Exception as error:  # network and archive problems come in many types
        raise DataError(
            f"Could not download '{builder.name}': {type(error).__name__}: {error}. "
            "Check the network, or prepare it elsewhere and pass --data-dir."
        ) from None


def load_tfds(config: DataConfig, seed: int, reporter: Reporter) -> Source:
    name = config.dataset
    builder = create_builder(name, config.data_dir)
    image_key, label_key = image_and_label_keys(builder)
    ensure_prepared(builder, config, reporter)
    info = builder.info
    # info.splits is empty only for builders that were never generated, as under
    # tfds.testing.mock_data; the conventional train/test pair is then assumed.
    available = dict(info.splits) or {"train": None, "test": None}
    if "train" not in available:
        raise DataError(f"Dataset '{name}' has no 'train' split (it has: {', '.join(available)}).")
    has_test = "test" in available
    val_name = next((s for s in ("validation", "val") if s in available), None)

    def read(split: str, shard: tuple[int, int] | None = None) -> Any:
        """The split's (image, label) examples; with shard (shards, index), only that
        part: each worker reads its own record files when there are enough of them
        (TFDS's input_context), else every record and keeps its 1/shards."""
        import tensorflow as tf

        read_config = None
        files = getattr(available.get(split), "num_shards", 0) or 0
        if shard is not None and files >= shard[0]:
            context = tf.distribute.InputContext(
                num_input_pipelines=shard[0], input_pipeline_id=shard[1]
            )
            read_config = import_tfds().ReadConfig(input_context=context)
        dataset = builder.as_dataset(split=split, shuffle_files=False, read_config=read_config)
        if shard is not None and read_config is None:
            dataset = dataset.shard(*shard)
        return dataset.map(traced_as_written(lambda ex: (ex[image_key], ex[label_key])))

    def sized(dataset: Any, split: str, fraction: float = 1.0, read_shard: Any = None) -> Split:
        split_info = available.get(split)
        if split_info is None:  # mocked builder: count by reading
            count = int(dataset.reduce(0, lambda n, _: n + 1))
            return Split(dataset, count, read_shard=read_shard)
        # Carved parts are drawn by hash, so their size is the expected one, not exact.
        return Split(dataset, int(round(split_info.num_examples * fraction)), read_shard=read_shard)

    test_fraction = 0.0 if has_test else config.test_split
    val_fraction = 0.0 if val_name else config.val_split
    train_stream = read("train")

    def carve(part: str, fraction: float) -> Split:
        # Carving by each example's hash keeps a part the same whichever worker reads it.
        def read_shard(shards: int, index: int) -> Any:
            stream = read("train", (shards, index))
            return stream_carve(stream, part, seed, test_fraction, val_fraction)

        dataset = stream_carve(train_stream, part, seed, test_fraction, val_fraction)
        return sized(dataset, "train", fraction, read_shard)

    def whole(split: str) -> Split:
        return sized(read(split), split, read_shard=lambda n, i: read(split, (n, i)))

    splits = {
        "train": carve("train", (1 - test_fraction) * (1 - val_fraction)),
        "val": whole(val_name) if val_name else carve("val", (1 - test_fraction) * val_fraction),
        "test": whole("test") if has_test else carve("test", test_fraction),
    }
    shape = info.features[image_key].shape
    native = (shape[0], shape[1]) if shape[0] and shape[1] else None
    return Source(
        name=name,
        class_names=list(info.features[label_key].names),
        channels=int(shape[2] or 3),
        native_size=native,
        splits=splits,
        description={
            "kind": "tfds",
            "name": name,
            "version": str(builder.version),
            "data_dir": config.data_dir,
        },
    )
