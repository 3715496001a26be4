"""`imgcls predict`: expand the inputs, decode and resize as training did, run the model,
and yield one result per input, unreadable ones included with their reason."""

from __future__ import annotations

import dataclasses
import glob
import os
import re
from collections.abc import Callable, Iterator
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import numpy as np

from imgcls_cli.config import PredictConfig
from imgcls_cli.data.folder import array_model_input, check_file, model_input, model_inputs
from imgcls_cli.data.images import (
    EXTENSIONS_LISTED,
    is_image_file,
    printable,
    unreadable_reason,
)
from imgcls_cli.errors import UsageError
from imgcls_cli.rundir import holds_model
from imgcls_cli.rundir.load import LoadedRun
from imgcls_cli.rundir.record import RunRecord

# Up to this many images are decoded and predicted directly, without a tf.data pipeline
# (whose set-up would dominate the run time for a handful of files).
DIRECT_LIMIT = 8


@dataclasses.dataclass
class Prediction:
    """One input: its top-k classes with probabilities, or why it could not be read."""

    path: str | None  # as given, made printable (see printable); None for an array
    top_k: list[tuple[str, float]] = dataclasses.field(default_factory=list)
    error: str | None = None
    index: int | None = None  # an in-memory image's position among the inputs given

    def __post_init__(self) -> None:
        self.path = None if self.path is None else printable(self.path)
        self.error = None if self.error is None else printable(self.error)

    @property
    def label(self) -> str | None:
        return self.top_k[0][0] if self.top_k else None

    @property
    def confidence(self) -> float | None:
        return self.top_k[0][1] if self.top_k else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON record: the same keys whether the input succeeded or failed (an
        in-memory image's record has its `index` where a file's has its `path`)."""
        where = {"path": self.path} if self.index is None else {"index": self.index}
        return {
            **where,
            "label": self.label,
            "confidence": self.confidence,
            "top_k": [{"label": name, "probability": p} for name, p in self.top_k],
            "error": self.error,
        }

    def to_row(self, k: int) -> dict[str, Any]:
        """The CSV row: path, label, confidence, then label_2, confidence_2, …, error."""
        row: dict[str, Any] = {"path": self.path, "label": self.label, "confidence": None}
        row["confidence"] = format_probability(self.confidence)
        for rank in range(2, k + 1):
            name, p = self.top_k[rank - 1] if rank <= len(self.top_k) else (None, None)
            row[f"label_{rank}"] = name
            row[f"confidence_{rank}"] = format_probability(p)
        row["error"] = self.error
        return row


def format_probability(value: float | None) -> str | None:
    return None if value is None else f"{value:.6f}"


# --- Inputs -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Input:
    path: str
    error: str | None = None  # set when the input names nothing readable


@dataclasses.dataclass(frozen=True)
class ArrayInput:
    """An image given in memory (a numpy array or a PIL image), uint8 HxWxC."""

    index: int  # its position among the inputs given, each image of a batch counted
    pixels: np.ndarray


ACCEPTED = (
    "a path (str or Path) to an image or a folder, a PIL image, a uint8 numpy array "
    "(HxWxC, or NxHxWxC for several), or a list of these"
)


def python_inputs(source: Any, read_stdin: Callable[[], str] | None = None) -> list[Any]:
    """What api.predict takes, as Input (files, folders and globs expanded as on the
    command line) and ArrayInput items, in the order given. A single path is one input,
    not a sequence of characters."""
    given = list(source) if isinstance(source, (list, tuple)) else [source]
    if not given:
        raise UsageError(f"No inputs: give {ACCEPTED}.")
    items: list[Any] = []
    paths: list[str] = []

    def flush() -> None:
        if paths:
            items.extend(expand_inputs(paths, read_stdin or (lambda: "")))
            paths.clear()

    position = 0  # a path counts one, a batch of N images N
    for number, item in enumerate(given):
        if isinstance(item, (str, os.PathLike)):
            paths.append(os.fspath(item))
            position += 1
            continue
        flush()
        for pixels in image_arrays(item, number):
            items.append(ArrayInput(position, pixels))
            position += 1
    flush()
    return items


def image_arrays(item: Any, position: int) -> list[np.ndarray]:
    """A PIL image or a numpy array as uint8 HxWxC arrays (a batch NxHxWxC gives N)."""
    from imgcls_cli.data.images import image_to_array

    if hasattr(item, "mode") and hasattr(item, "convert"):  # a PIL image
        return [image_to_array(item)]
    if not isinstance(item, np.ndarray):
        kind = type(item).__name__
        article = "an" if kind[0] in "aeiou" else "a"
        raise UsageError(f"Input {position} is {article} {kind}; give {ACCEPTED}.")
    if item.dtype != np.uint8:
        raise UsageError(
            f"Input {position} is an array of {item.dtype}; give uint8 pixels 0-255 "
            "(np.asarray(image, dtype=np.uint8) or (x * 255).round().astype(np.uint8))."
        )
    if item.ndim == 2:  # one grayscale image
        return [item[..., None]]
    if item.ndim in (3, 4) and item.shape[-1] in (1, 3, 4) and min(item.shape[-3:-1]) > 0:
        return [item] if item.ndim == 3 else list(item)
    raise UsageError(
        f"Input {position} has shape {item.shape}; give HxWxC or NxHxWxC with C 1, 3 or 4."
    )


def expand_inputs(arguments: list[str], read_stdin: Callable[[], str]) -> list[Input]:
    """Files as given; folders → their image files, recursively; glob patterns → matches;
    '-' → one path per line of stdin. Each path once, in the order given."""
    names: list[str] = []
    for argument in arguments:
        if argument == "-":
            names += [line.strip() for line in read_stdin().splitlines() if line.strip()]
        else:
            names.append(argument)
    if not names:
        raise UsageError("No inputs: stdin held no paths (give one image path per line).")
    expanded = [item for name in names for item in expand_one(name)]
    # Keyed by the real path: a file reached through a symlink, or spelt another way,
    # is one file; the spelling of its first occurrence is kept.
    seen: set[str] = set()
    unique = []
    for item in expanded:
        real = os.path.realpath(item.path)
        if real not in seen:
            seen.add(real)
            unique.append(item)
    return unique


def expand_one(name: str) -> list[Input]:
    from imgcls_cli.data.folder import list_images

    path = Path(name)
    if path.is_dir() and holds_model(path):
        # A run given where images go (as `export RUN_DIR` takes it): not its PNGs.
        raise UsageError(
            f"{name} is a run, not a folder of images: give it as the model (--model {name})."
        )
    if path.is_dir():
        images, _ = list_images(path)  # broken links named like images are among images
        if not images:
            return [Input(name, f"folder holds no image files ({EXTENSIONS_LISTED})")]
        return [Input(str(p)) for p in sorted(images, key=natural_order)]
    if path.exists() or not glob.has_magic(name):
        return [Input(name)]  # a missing file is reported when it is read
    found = []
    for match in glob_paths(name):
        if Path(match).is_dir():
            found += [item for item in expand_one(match) if item.error is None]
        elif is_image_file(Path(match)):
            found.append(Input(match))
    return found or [Input(name, "no image files match this pattern")]


def glob_paths(pattern: str) -> list[str]:
    """Sorted matches of a glob pattern, spelt as the pattern spells its folders.

    pathlib rather than glob.glob: its '**' does not enter symlinked folders (as bash's
    globstar and the folder walk), where glob.glob follows a link to '.' or '..' round
    and round, repeating every file up to the system's symlink depth. Hidden files and
    folders match only where the pattern spells the dot, as with glob.glob.
    """
    parts = pattern.split("/")
    first = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    root = "/".join(parts[:first]) + "/" if first else ""
    # pathlib accepts '**' only as a whole component; glob.glob reads 'a**b' as 'a*b'.
    rest = [part if part == "**" else re.sub(r"\*\*+", "*", part) for part in parts[first:]]
    dotted = [part for part in rest if part.startswith(".")]
    found = []
    for match in Path(root or ".").glob("/".join(rest)):
        relative = match.relative_to(root or ".")
        hidden = [part for part in relative.parts if part.startswith(".")]
        if all(any(fnmatch(part, p) for p in dotted) for part in hidden):
            found.append(root + str(relative) if relative.parts else root or ".")
    return sorted(found, key=natural_order)


def natural_order(path: str | Path) -> list:
    """Sort key: numbers in names compare as numbers, so img_2 comes before img_10 (as
    a file browser lists them). Text and numbers alternate from the start, so keys of
    any two paths compare."""
    return [int(part) if i % 2 else part for i, part in enumerate(re.split(r"(\d+)", str(path)))]


# --- Decoding and prediction ------------------------------------------------------------


def read_for_model(path: str, run: LoadedRun) -> np.ndarray:
    """One file as float32 HxWxC at the model's input size (raises for unreadable files),
    decoded and resized as training did (data.folder.model_input)."""
    return model_input(path, run.channels, run.image_size)


def top_classes(probabilities: np.ndarray, class_names: list[str], k: int) -> list[list]:
    """[(class name, probability), …] of the k most probable classes, for each row."""
    k = min(k, len(class_names))
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    chosen = np.take_along_axis(probabilities, order, axis=1).tolist()
    return [
        [(class_names[i], p) for i, p in zip(indices, values)]
        for indices, values in zip(order.tolist(), chosen)
    ]


def predict_direct(paths: list[str], run: LoadedRun, options: PredictConfig) -> Iterator:
    """A few files: decode each, then one eager model call on the stacked batch."""
    images, errors = [], {}
    for path in paths:
        try:
            images.append(read_for_model(path, run))
        except Exception as error:
            errors[path] = unreadable_reason(path, error)
    good = [path for path in paths if path not in errors]
    results = {}
    if good:
        probabilities = run.predict_batch(np.stack(images), options.tta, compiled=False)
        results = dict(zip(good, top_classes(probabilities, run.class_names, options.top_k)))
    for path in paths:
        if path in errors:
            yield Prediction(path, error=errors[path])
        else:
            yield Prediction(path, results[path])


def predict_batched(paths: list[str], run: LoadedRun, options: PredictConfig) -> Iterator:
    """Many files: training's own input pipeline (data.folder.model_inputs), in parallel,
    and a compiled model call per batch. A file that fails to decode is missing from its
    batch: its record says why."""
    import tensorflow as tf

    batches, unreadable, decoder = model_inputs(
        paths, run.channels, run.image_size, options.batch_size
    )

    def failed(position: int) -> Prediction:
        path = paths[position]
        reason = unreadable.get(path) or decoder.verify(path) or "could not be decoded"
        return Prediction(path, error=reason)

    position = 0
    for images, indices in batches.prefetch(tf.data.AUTOTUNE):
        probabilities = run.predict_batch(tf.cast(images, tf.float32), options.tta)
        top = top_classes(probabilities, run.class_names, options.top_k)
        for index, classes in zip(indices.numpy().tolist(), top):
            while position < index:
                yield failed(position)
                position += 1
            yield Prediction(paths[index], classes)
            position = index + 1
    for rest in range(position, len(paths)):
        yield failed(rest)


def predict_arrays(arrays: list[ArrayInput], run: LoadedRun, options: PredictConfig) -> Iterator:
    """Images in memory: each through the channel conversion and resize a file of the
    same pixels gets (data.folder.array_model_input), then a model call per batch."""
    for start in range(0, len(arrays), options.batch_size):
        chunk = arrays[start : start + options.batch_size]
        images = np.stack(
            [array_model_input(item.pixels, run.channels, run.image_size) for item in chunk]
        )
        probabilities = run.predict_batch(images, options.tta, compiled=False)
        for item, classes in zip(chunk, top_classes(probabilities, run.class_names, options.top_k)):
            yield Prediction(None, classes, index=item.index)


def unreadable_records(inputs: list[Any]) -> list[Prediction] | None:
    """Every input's record when none can be read (no image in memory; each file missing,
    not an image, or refused by the check both predict paths run before decoding,
    data.folder.check_file, which needs no TensorFlow), so the model need not load to say
    so. None at the first input that may be read: usually one file's header."""
    records = []
    for item in inputs:
        if not isinstance(item, Input):
            return None
        reason = item.error or check_file(item.path)
        if not isinstance(reason, str):
            return None
        records.append(Prediction(item.path, error=reason))
    return records


def predict_inputs(inputs: list[Any], run: LoadedRun, options: PredictConfig) -> Iterator:
    """One Prediction per input, in input order, as soon as its batch is done."""
    readable = [item.path for item in inputs if isinstance(item, Input) and item.error is None]
    predict = predict_direct if len(readable) <= DIRECT_LIMIT else predict_batched
    results = predict(readable, run, options)
    in_memory = predict_arrays([i for i in inputs if isinstance(i, ArrayInput)], run, options)
    for item in inputs:
        if isinstance(item, ArrayInput):
            yield next(in_memory)
        elif item.error is not None:
            yield Prediction(item.path, error=item.error)
        else:
            yield next(results)


def tta_skip_reason(record: RunRecord) -> str | None:
    """Why --tta (horizontal flips) does not suit this model, or None when it does.

    Runs record their augmentation under resolved.augment.flip; a model trained without
    horizontal flips may rely on left/right (digits, text), so flipping would mislead.
    Runs that record nothing are assumed to allow it.
    """
    flip = record.resolved.augment_flip
    if flip is None or flip in ("horizontal", "both"):
        return None
    return f"the model was trained without horizontal flips (augment flip: {flip})"
