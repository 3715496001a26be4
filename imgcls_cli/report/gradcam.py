"""Grad-CAM heatmaps: where in an image the model found the evidence for a class
(Selvaraju et al., 2017, arXiv:1610.02391), for `imgcls explain` and `evaluate --explain`.

The gradient of the class score with respect to the last convolutional feature map,
averaged over the map, weighs its channels; their weighted sum, negative parts cut, is the
heatmap. It is computed on exactly what the model sees (the image decoded and resized as
`predict` does) and works through nested models (a fine-tuned backbone inside the served
model): the feature map is caught as the chosen layer produces it, not rebuilt.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
from collections.abc import Iterator
from typing import Any

import numpy as np

from imgcls_cli.config import ExplainMethod
from imgcls_cli.errors import RunDirError, UsageError, unknown_name_message
from imgcls_cli.rundir.load import LoadedRun

DISPLAY_SIDE = 512  # pixels: the longest side of a picture in the overlays
BATCH = 16  # images per gradient pass
# Layers whose 4-D output is not a learned feature map: the input, pixel scaling and
# preprocessing; and by part of the name, pooling (a coarser copy of the map before it),
# dropout and padding.
NOT_FEATURES = ("InputLayer", "Rescaling", "Normalization")
NOT_FEATURES_PART = ("Pooling", "Dropout", "Padding")


def holds_no_feature_map(kind: str) -> bool:
    """A layer class whose output, even where it is 4-D, is no learned feature map."""
    return kind in NOT_FEATURES or any(part in kind for part in NOT_FEATURES_PART)


@dataclasses.dataclass
class TargetLayer:
    layer: Any
    path: str  # "features/mobilenetv2_1.00_96/out_relu": nested models' names, then its own
    shape: tuple[int, ...]  # (height, width, channels) of its feature map
    pooled: bool = False  # the next layer averages it globally (GlobalAveragePooling2D)


def leaf_layers(model: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(path, layer) of every layer that is not itself a model, in graph order, looking
    inside nested models (a backbone inside `features` inside the served model)."""
    import keras

    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        if isinstance(layer, keras.Model):
            yield from leaf_layers(layer, f"{path}/")
        else:
            yield path, layer


def output_shape(layer: Any) -> tuple | None:
    try:  # a layer called more than once has no single output
        return tuple(layer.output.shape)
    except (AttributeError, ValueError, RuntimeError):
        return None


def feature_maps(model: Any) -> list[TargetLayer]:
    """The layers whose output is a (batch, height, width, channels) feature map."""
    found = []
    leaves = list(leaf_layers(model))
    for index, (path, layer) in enumerate(leaves):
        shape = output_shape(layer)
        kind = type(layer).__name__
        if shape is None or len(shape) != 4 or holds_no_feature_map(kind):
            continue
        following = type(leaves[index + 1][1]).__name__ if index + 1 < len(leaves) else ""
        pooled = following == "GlobalAveragePooling2D"
        found.append(TargetLayer(layer, path, tuple(shape[1:]), pooled))
    return found


LAYERS_SHOWN = 12  # the last feature maps a refused --layer lists (the classifier's end)


def names_layer(name: str, path: str) -> bool:
    """--layer `name` names the layer at `path`: its whole path, its own name, or the end
    of its path ("mobilenetv2_1.00_32/out_relu")."""
    return path == name or path.endswith(f"/{name}")


def layer_refused(name: str, maps: list[str], kind: str | None = None) -> UsageError:
    """--layer's one line. `maps`: the feature maps' names, in the model's order; `kind`:
    the class of the layer `name` names when it holds no feature map, None when no layer
    has that name. Did-you-mean looks among every feature map, not only those listed."""
    shown = ", ".join(maps[-LAYERS_SHOWN:])
    if len(maps) > LAYERS_SHOWN:
        shown = f"…, {shown} (the last {LAYERS_SHOWN} of {len(maps)})"
    if kind is not None:
        return UsageError(
            f"Layer '{name}' ({kind}) holds no feature map for Grad-CAM to read; "
            f"feature maps: {shown}."
        )
    message = f"Unknown layer '{name}'."
    close = difflib.get_close_matches(name.rsplit("/", 1)[-1], maps, n=1, cutoff=0.6)
    if close:
        message += f" Did you mean '{close[0]}'?"
    return UsageError(f"{message} Feature maps: {shown}.")


def find_target_layer(model: Any, name: str | None = None) -> TargetLayer:
    """The layer Grad-CAM reads: `name` (a layer name or path), else the last feature map
    at least 2x2 in size (the last convolutional block: the most class-specific features
    that still have a where; a 1x1 map would give the same heat everywhere)."""
    maps = feature_maps(model)
    if not maps:
        raise RunDirError("The model has no convolutional feature map for Grad-CAM to explain.")
    if name is not None:
        for target in maps:
            if names_layer(name, target.path):
                return target
        kind = next(
            (type(layer).__name__ for path, layer in leaf_layers(model) if names_layer(name, path)),
            None,
        )
        raise layer_refused(name, [target.layer.name for target in maps], kind)
    spatial = [target for target in maps if min(target.shape[:2]) >= 2]
    return (spatial or maps)[-1]


@contextlib.contextmanager
def capturing(layer: Any, store: dict[str, Any], key: str) -> Iterator[None]:
    """Within: every call of `layer` records its input and output in store[key]. Keras
    layers have no forward hooks; an instance attribute shadows the class's `call` and is
    removed afterwards, leaving the model as it was."""
    original = layer.call

    def call(*args: Any, **kwargs: Any) -> Any:
        outputs = original(*args, **kwargs)
        store[key] = (args[0] if args else None, outputs)
        return outputs

    layer.call = call
    try:
        yield
    finally:
        del layer.call


def softmax_head(model: Any) -> Any:
    """The final Dense layer when it applies softmax itself (every imgcls model), so the
    class score can be the logit before it, as Grad-CAM prescribes; else None."""
    import keras

    paths_layers = list(leaf_layers(model))
    if not paths_layers:
        return None
    last = paths_layers[-1][1]
    activation = getattr(last, "activation", None)
    if isinstance(last, keras.layers.Dense) and activation is keras.activations.softmax:
        return last
    return None


METHODS = tuple(method.value for method in ExplainMethod)
METHOD_NAMES = {"gradcam": "Grad-CAM", "hirescam": "HiResCAM"}


class GradCam:
    """Grad-CAM for one model: call it on float32 images (raw 0-255 pixels at the model's
    size) to get class probabilities and heatmaps at the input's size, each in [0, 1].

    method "hirescam" (Draelos & Carin, 2020, arXiv:2011.08891) multiplies gradients and
    feature map position by position instead of averaging the gradients first. Where the
    map feeds global average pooling (resnet8, every backbone) the two are the same; where
    it is flattened into the classifier (simplecnn, convnet) Grad-CAM's average lends a
    channel's weight to places the classifier ignores, and can cancel out altogether
    (benchmarks/bench_explain.py: on a simplecnn right on all 40 images, 10 Grad-CAM maps
    were empty, none of HiResCAM's). "auto": Grad-CAM where the map is globally pooled,
    else HiResCAM.
    """

    def __init__(self, model: Any, layer: str | None = None, method: str = "auto"):
        if method not in METHODS:
            raise UsageError(unknown_name_message("method", method, list(METHODS)))
        self.model = model
        self.target = find_target_layer(model, layer)
        if method == "auto":
            method = "gradcam" if self.target.pooled else "hirescam"
        self.method = method
        self.head = softmax_head(model)

    def __call__(
        self, images: np.ndarray, classes: list[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities (N, classes), heatmaps (N, height, width)). classes: the class to
        explain per image; None: each image's predicted class."""
        probabilities, heatmaps = [], []
        for start in range(0, len(images), BATCH):
            chosen = None if classes is None else classes[start : start + BATCH]
            p, h = self._batch(np.asarray(images[start : start + BATCH], np.float32), chosen)
            probabilities.append(p)
            heatmaps.append(h)
        return np.concatenate(probabilities), np.concatenate(heatmaps)

    def _batch(self, images: np.ndarray, classes: list[int] | None) -> tuple[Any, Any]:
        import tensorflow as tf

        store: dict[str, Any] = {}
        inputs = tf.constant(images)
        with contextlib.ExitStack() as stack:
            tape = stack.enter_context(tf.GradientTape())
            tape.watch(inputs)  # every later tensor is recorded, frozen layers included
            stack.enter_context(capturing(self.target.layer, store, "map"))
            if self.head is not None:
                stack.enter_context(capturing(self.head, store, "head"))
            probabilities = self.model(inputs, training=False)
            if classes is None:
                classes = tf.argmax(probabilities, axis=-1)
            picked = tf.one_hot(classes, probabilities.shape[-1], dtype=tf.float32)
            if self.head is not None:
                features = tf.cast(store["head"][0], tf.float32)
                kernel = tf.cast(self.head.kernel, tf.float32)
                scores = tf.matmul(features, kernel)
                if self.head.bias is not None:
                    scores += tf.cast(self.head.bias, tf.float32)
            else:
                scores = tf.cast(probabilities, tf.float32)
            score = tf.reduce_sum(scores * picked, axis=-1)
        feature_map = store["map"][1]
        gradients = tf.cast(tape.gradient(score, feature_map), tf.float32)
        feature_map = tf.cast(feature_map, tf.float32)
        if self.method == "gradcam":
            gradients = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(gradients * feature_map, axis=-1))
        peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
        cam = tf.math.divide_no_nan(cam, peak)  # no evidence at all: zeros, not NaN
        size = images.shape[1:3]
        cam = tf.image.resize(cam[..., None], size, method="bilinear")[..., 0]
        return np.asarray(probabilities, np.float32), np.clip(cam.numpy(), 0.0, 1.0)


def where(heatmap: np.ndarray) -> dict[str, list[float]]:
    """The heatmap's peak and centre of mass as (row, column) fractions of the image, so a
    script can check where the model looked without reading pictures."""
    height, width = heatmap.shape
    row, column = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    total = float(heatmap.sum())
    if total > 0:
        rows, columns = np.mgrid[0:height, 0:width]
        centre = [
            float((heatmap * (rows + 0.5)).sum() / total / height),
            float((heatmap * (columns + 0.5)).sum() / total / width),
        ]
    else:
        centre = [0.5, 0.5]
    peak = [(row + 0.5) / height, (column + 0.5) / width]
    return {"peak": [round(v, 4) for v in peak], "centre": [round(v, 4) for v in centre]}


@dataclasses.dataclass
class Explained:
    """One input: its prediction and heatmap, or why it could not be read."""

    path: str
    label: str | None = None  # the predicted class
    confidence: float | None = None
    explained: str | None = None  # the class the heatmap is for
    probability: float | None = None  # of the explained class
    image: np.ndarray | None = None  # the file as decoded, shrunk for display, uint8
    heatmap: np.ndarray | None = None
    file: str | None = None  # the overlay's file name in the output folder
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        record = {
            "path": self.path,
            "label": self.label,
            "confidence": self.confidence,
            "explained_class": self.explained,
            "explained_probability": self.probability,
            "file": self.file,
            "error": self.error,
        }
        if self.heatmap is not None:
            record.update(where(self.heatmap))
        return record


def class_index(run: LoadedRun, name: str | None) -> int | None:
    if name is None:
        return None
    if name not in run.class_names:
        raise UsageError(unknown_name_message("class", name, run.class_names))
    return run.class_names.index(name)


def require_keras_model(run: LoadedRun) -> None:
    if run.model is None:
        raise UsageError(
            f"{run.run_dir} is an export; Grad-CAM needs the Keras model: give the run "
            "directory it was exported from."
        )


def explain_paths(
    paths: list[str], run: LoadedRun, cam: GradCam, class_name: str | None = None
) -> list[Explained]:
    """Decode and resize each file as predict does, then one Grad-CAM pass over the
    readable ones. Each result keeps the decoded file (at most DISPLAY_SIDE pixels a
    side) for the overlay: the heatmap is stretched back over the picture as it is."""
    from imgcls_cli.data.folder import decode_for_model
    from imgcls_cli.data.images import printable, unreadable_reason

    results, images, originals = [], [], []
    for path in paths:
        try:
            original, model_input = decode_for_model(path, run)
            images.append(model_input)
            originals.append(for_display(original))
            results.append(Explained(printable(path)))
        except Exception as error:  # PIL raises many types for bad files
            results.append(Explained(printable(path), error=unreadable_reason(path, error)))
    readable = [item for item in results if item.error is None]
    if not readable:
        return results
    wanted = class_index(run, class_name)
    classes = None if wanted is None else [wanted] * len(readable)
    probabilities, heatmaps = cam(np.stack(images), classes)
    for item, image, p, heatmap in zip(readable, originals, probabilities, heatmaps):
        predicted = int(np.argmax(p))
        shown = predicted if wanted is None else wanted
        item.label, item.confidence = run.class_names[predicted], float(p[predicted])
        item.explained, item.probability = run.class_names[shown], float(p[shown])
        item.image, item.heatmap = image, heatmap
    return results


def for_display(image: np.ndarray) -> np.ndarray:
    """The image with its longer side at most DISPLAY_SIDE pixels (a photo's 4,000 would
    make every overlay tens of megabytes), aspect ratio kept."""
    from PIL import Image

    height, width = image.shape[:2]
    scale = DISPLAY_SIDE / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    shrunk = np.asarray(picture.resize(size, Image.Resampling.BOX))
    return shrunk[..., None] if shrunk.ndim == 2 else shrunk
