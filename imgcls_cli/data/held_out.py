"""The labelled data a trained run is scored on: by default the split of the source it
was trained on, re-opened with the run's options and seed so it holds the very images
`train` held out; or other data, its labels mapped to the run's classes. evaluate scores
it; export checks its parity and draws its calibration images from it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from imgcls_cli import rundir
from imgcls_cli.backend import traced_as_written
from imgcls_cli.config import (
    RUN_CONFIGS,
    DataConfig,
    EvalSplit,
    EvaluateConfig,
    RunConfig,
    is_hf_folder,
    is_hub_dataset,
    label_files,
)
from imgcls_cli.data.sources import SPLITS
from imgcls_cli.errors import DataError, RunDirError, UsageError
from imgcls_cli.reporting import Reporter
from imgcls_cli.rundir.load import LoadedRun
from imgcls_cli.rundir.record import SourceRecord


@dataclasses.dataclass
class EvaluationData:
    """The labelled images to score, labels already in the model's class order."""

    split: Any  # data.sources.Split
    description: dict[str, Any]  # what evaluation.json records about the data
    # (path, reason) of files that failed to decode while scored, since the last call;
    # their examples were left out (data.sources.Source.take_stream_failures).
    take_stream_failures: Callable[[], list[tuple[str, str]]] = list
    # Images of classes the model does not know, scored apart: their split (labels: the
    # index in unknown_classes) and the data's names of those classes.
    unknown: Any = None
    unknown_classes: list[str] = dataclasses.field(default_factory=list)


FILE_SOURCES = ("folder", "csv")  # sources of image files, with paths and fingerprints


def trained_on(run: LoadedRun) -> tuple[DataConfig | None, int]:
    """The run's data options (folder paths made absolute) and seed, from config.json."""
    run_config = RUN_CONFIGS.get(run.record.command)
    if run_config is None or not run.record.options:
        return None, RunConfig.seed
    saved = run_config.from_dict(run.record.options)
    data = saved.data
    source = run.record.resolved.source
    if data.data is not None and source.kind in (*FILE_SOURCES, "hf") and source.path:
        data = dataclasses.replace(data, data=source.path)  # train may have run elsewhere
        if data.images is not None and source.details.get("images"):
            data = dataclasses.replace(data, images=source.details["images"])
    return data, saved.seed


def choose_data(run: LoadedRun, options: EvaluateConfig) -> tuple[DataConfig, int, EvalSplit]:
    """The data options, seed and split to evaluate on."""
    saved, seed = trained_on(run)
    if options.dataset is None and options.data is None:
        if saved is None:
            raise RunDirError(
                f"{run.run_dir / rundir.CONFIG_FILE} does not say what the model was trained on: "
                "pass --dataset NAME or --data DIR."
            )
        return saved, seed, options.split or EvalSplit.test
    base = saved or DataConfig(dataset="digits")
    same_dataset = options.dataset is not None and options.dataset == base.dataset
    # Other data of the run's own kind is read with the run's columns, unless any column
    # is named: then the options describe the new data's layout.
    names = ("path_column", "label_column", "image_column")
    same_kind = data_kind(options.dataset, options.data) == data_kind(base.dataset, base.data)
    inherit = same_kind and all(getattr(options, name) is None for name in names)
    columns = {name: getattr(base if inherit else options, name) for name in names}
    config = DataConfig(
        dataset=options.dataset,
        data=options.data,
        data_dir=options.data_dir or (base.data_dir if same_dataset else None),
        manual_dir=base.manual_dir if same_dataset else None,
        val_split=base.val_split,
        test_split=base.test_split,
        images=options.images,
        revision=options.revision,
        **columns,
    )
    return config, seed, options.split or default_split(config, saved)


def data_kind(dataset: str | None, data: str | None) -> str:
    """'csv', 'hf', 'folder' or 'tfds' (the embedded digits too)."""
    if data is not None:
        if label_files(Path(data)) is not None:
            return "csv"
        return "hf" if is_hf_folder(Path(data)) else "folder"
    return "hf" if is_hub_dataset(dataset) else "tfds"


def default_split(config: DataConfig, saved: DataConfig | None) -> EvalSplit:
    """test for datasets and for the training folder or label file; all images of any
    other (unless it has its own test/ folder or test.csv)."""
    if config.data is None:
        return EvalSplit.test
    folder = Path(config.data).resolve()
    if saved is not None and saved.data and Path(saved.data).resolve() == folder:
        return EvalSplit.test
    tables = label_files(folder)
    if tables is not None:
        return EvalSplit.test if "test" in tables else EvalSplit.all
    if is_hf_folder(folder):
        from imgcls_cli.data.hf_source import SPLIT_NAMES, stored_split_names

        names = {SPLIT_NAMES.get(name.lower()) for name in stored_split_names(folder)}
        return EvalSplit.test if "test" in names else EvalSplit.all
    return EvalSplit.test if (folder / "test").is_dir() else EvalSplit.all


def class_index_map(data_classes: list[str], model_classes: list[str]) -> np.ndarray:
    """Index in the model's classes of each class of the data, by name; -1 for a class
    the model does not know."""
    known = {name: index for index, name in enumerate(model_classes)}
    return np.array([known.get(name, -1) for name in data_classes], dtype=np.int64)


def open_data(run: LoadedRun, options: EvaluateConfig, reporter: Reporter) -> EvaluationData:
    """Open the source and pick the split, with labels mapped to the model's classes."""
    from imgcls_cli.data.factory import load_source
    from imgcls_cli.data.prepare import report_source_problems

    config, seed, split_name = choose_data(run, options)
    source = load_source(config, seed, reporter, min_classes=1)
    report_source_problems(source, reporter)  # as training does: each skipped file named
    names = [name for name in SPLITS if name in source.splits]
    if split_name != EvalSplit.all:
        names = [split_name.value] if split_name.value in source.splits else []
    parts = [source.splits[name] for name in names if source.splits[name].num_examples > 0]
    if not parts:
        raise DataError(
            f"The {split_name.value} split of {source.name} is empty (see --val-split / "
            "--test-split of the run); choose another with --split, or pass --data DIR."
        )
    change = folder_change(run, source.description, names, split_name)
    if change:
        reporter.warning(change)
    index_map = class_index_map(source.class_names, run.class_names)
    split, unknown = relabel(concatenate(parts), index_map, source.class_names, run.class_names)
    unknown_classes = [name for name, index in zip(source.class_names, index_map) if index < 0]
    if unknown is not None and split.num_examples == 0:
        raise DataError(no_known_class(unknown_classes, run.class_names))
    description = {**source.description, "split": split_name.value}
    description["examples"] = split.num_examples
    return EvaluationData(split, description, source.take_stream_failures, unknown, unknown_classes)


def training_copies_warning(
    run: LoadedRun, options: EvaluateConfig, data: EvaluationData
) -> str | None:
    """One line when images scored from other data (--data) are byte-for-byte copies of
    the run's training images: the model has seen them, so its score there is inflated.
    The training split is drawn again from the folder or label file the run trained on,
    its hashes read from the scan index; None when that data is gone, of another kind, or
    unindexed here (trained on another machine: hashing it all could take minutes)."""
    from imgcls_cli.data import scan_index
    from imgcls_cli.data.factory import listed_files
    from imgcls_cli.data.folder import (
        carve_file_lists,
        check_images,
        drop_empty_splits,
        readable_files,
    )

    saved, seed = trained_on(run)
    if options.data is None or not data.split.paths or saved is None or saved.data is None:
        return None
    try:
        trained_listed = listed_files(saved) if Path(saved.data).exists() else None
        scored_listed = listed_files(choose_data(run, options)[0])
        if trained_listed is None or scored_listed is None:
            return None
        if not scan_index.load_index(trained_listed.root):
            return None
        scan, files = readable_files(trained_listed)
    except DataError:
        return None
    drop_empty_splits(files, trained_listed.where, saved)
    train = carve_file_lists(files, saved, seed)["train"]
    trained = {scan.hashes[str(path)]: str(path) for path, _ in train if str(path) in scan.hashes}
    scored = check_images(scored_listed.root, [Path(path) for path in data.split.paths]).hashes
    copies = [(path, trained[digest]) for path, digest in scored.items() if digest in trained]
    if not copies:
        return None
    path, original = copies[0]
    return (
        f"{len(copies)} of the {len(data.split.paths)} images scored are the run's training "
        f"images or copies of them (e.g. {path} = {original}): the model trained on them, so "
        "the accuracy overstates how it does on new images. Score images it has not seen."
    )


def no_known_class(unknown_classes: list[str], model_classes: list[str]) -> str:
    return (
        f"None of the data's classes is one the model knows ({', '.join(unknown_classes[:10])}"
        f"); the model's classes: {', '.join(model_classes[:20])}."
    )


def check_held_out_data(run_dir: Path, options: EvaluateConfig) -> None:
    """A --data folder or label file to score a run on, refused in one line before the
    model loads TensorFlow when it holds no readable image or none of a class the model
    knows. Other sources are checked as they load."""
    if options.data is None:
        return
    from imgcls_cli.data.factory import check_readable, listed_files
    from imgcls_cli.rundir.load import recorded_run

    run = recorded_run(run_dir)
    config, _, _ = choose_data(run, options)
    listed = listed_files(config)
    if listed is None:
        return
    _, files = check_readable(listed, Path(config.data or ""), min_classes=1)
    known = set(run.class_names)
    labels = {label for entries in files.values() for _, label in entries}
    if not any(listed.class_names[label] in known for label in labels):
        unknown = [name for name in listed.class_names if name not in known]
        raise DataError(no_known_class(unknown, run.class_names))


def check_explained_files(run_dir: Path, options: EvaluateConfig) -> None:
    """--explain draws over the galleries of mistakes, which list image files: data
    without files (TFDS, the embedded digits, Hugging Face) is refused before the model
    loads, rather than scored with nothing drawn."""
    if not options.explain:
        return
    from imgcls_cli.rundir.load import recorded_run

    config, _, _ = choose_data(recorded_run(run_dir), options)
    if data_kind(config.dataset, config.data) in ("folder", "csv"):
        return
    name = config.dataset or config.data
    raise UsageError(
        f"--explain draws Grad-CAM over the mistakes' image files, and {name} "
        "has none: evaluate a folder of images (--data DIR) with it, or run `imgcls "
        "explain` on image files."
    )


def folder_change(
    run: LoadedRun, description: dict[str, Any], names: list[str], split_name: EvalSplit
) -> str | None:
    """A warning when the run's own folder no longer holds the images it was trained with
    in the evaluated split(s), by the file-list fingerprints recorded at training; None
    when unchanged, for other data, and for runs recorded without fingerprints."""
    from imgcls_cli.rundir.record import same_fingerprints

    then, now = run.record.resolved.source, SourceRecord.from_dict(description)
    if not (then.kind == now.kind and then.kind in FILE_SOURCES and then.path == now.path):
        return None
    recorded, current = then.fingerprints or {}, now.fingerprints or {}
    names = [name for name in names if name in recorded and name in current]
    if all(same_fingerprints(recorded[name], current[name]) for name in names):
        return None
    count_then = sum(recorded[name].get("images", 0) for name in names)
    count_now = sum(current[name]["images"] for name in names)
    return (
        f"The {split_name.value} images of {now.path} changed since the run was trained "
        f"({count_then} then, {count_now} now; files added, removed, edited or relabelled): "
        "the scores are not comparable with the run's own."
    )


def concatenate(parts: list[Any]) -> Any:
    """One split of several. A folder's parts stay a file list with its decoder, so the
    images are decoded (a JPEG at its reduced scale) and resized exactly as training's
    pipeline did: one file, one answer (data.pipeline.create_batches)."""
    from imgcls_cli.data.sources import Split

    if len(parts) == 1:
        return parts[0]
    paths = labels = None
    if all(part.paths is not None for part in parts):
        paths = [path for part in parts for path in part.paths]
    if all(part.labels is not None for part in parts):
        labels = np.concatenate([part.labels for part in parts])
    decoder = parts[0].decode_files
    folder = all(part.files is not None and part.decode_files == decoder for part in parts)
    if folder and decoder is not None and paths is not None and labels is not None:
        return Split.of_files(paths, labels, decoder)
    count = sum(part.num_examples for part in parts)
    if folder and decoder is not None and labels is not None:  # stored images (no paths)
        files = parts[0].files
        for part in parts[1:]:
            files = files.concatenate(part.files)
        return Split.of_file_list(files, count, decoder, labels=labels)
    dataset = parts[0].dataset
    for part in parts[1:]:
        dataset = dataset.concatenate(part.dataset)
    return Split(dataset, count, paths, labels)


def relabel(
    split: Any,
    index_map: np.ndarray,
    data_classes: list[str] | None = None,
    model_classes: list[str] | None = None,
) -> tuple[Any, Any]:
    """(the split's images of classes the model knows, labels in the model's class order;
    its images of other classes, labelled by their index among those, or None). A
    folder's file list is what is mapped and filtered, since that is what the pipeline
    decodes. Other sources are refused when they hold classes the model does not know."""
    if np.array_equal(index_map, np.arange(len(index_map))):
        return split, None
    import tensorflow as tf

    unknown_names = np.flatnonzero(index_map < 0)
    data_classes = data_classes or [str(i) for i in range(len(index_map))]
    model_classes = model_classes or []
    if split.files is None or split.labels is None:
        if len(unknown_names):
            raise DataError(
                f"The data has {len(unknown_names)} class(es) the model does not know "
                f"({', '.join(data_classes[i] for i in unknown_names[:10])}; the model's: "
                f"{', '.join(model_classes[:10])}); score it on data labelled with the "
                "model's class names."
            )
        table = tf.constant(index_map)
        dataset = split.dataset.map(
            traced_as_written(lambda image, label: (image, tf.gather(table, label)))
        )
        return dataclasses.replace(split, stored=dataset), None
    known_rows = index_map[split.labels] >= 0
    # Unknown classes are numbered among themselves: their names are unknown_classes.
    unknown_index = np.full(len(index_map), -1, np.int64)
    unknown_index[unknown_names] = np.arange(len(unknown_names))
    return (
        file_subset(split, known_rows, index_map),
        file_subset(split, ~known_rows, unknown_index) if len(unknown_names) else None,
    )


def file_subset(split: Any, rows: np.ndarray, label_map: np.ndarray) -> Any:
    """The files of a split at `rows` (a mask), labels mapped by label_map: a folder's
    paths, or a dataset's stored images (their (name, label) list, filtered in tf.data)."""
    from imgcls_cli.data.sources import Split

    labels = label_map[split.labels[rows]]
    if split.paths is None:  # stored images: filter the (name, label) list by label
        import tensorflow as tf

        # relabel's rows are those whose class label_map keeps: a filter by label
        assert np.array_equal(rows, label_map[split.labels] >= 0)
        keep, relabelled = tf.constant(label_map >= 0), tf.constant(label_map)
        files = split.files.filter(
            traced_as_written(lambda name, label: tf.gather(keep, label))
        ).map(traced_as_written(lambda name, label: (name, tf.gather(relabelled, label))))
        return Split.of_file_list(files, int(rows.sum()), split.decode_files, labels=labels)
    paths = [path for path, keep in zip(split.paths, rows) if keep]
    return Split.of_files(paths, labels, split.decode_files)
