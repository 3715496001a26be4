"""Write a Keras model as a SavedModel, a TFLite flatbuffer or an ONNX graph.

Every artifact takes what model.keras takes: a batch of raw 0-255 pixels (float32,
NHWC; uint8 for full-integer TFLite) with the preprocessing inside, and returns class
probabilities. The exports need packages beyond TensorFlow (tf2onnx, onnxruntime,
ai-edge-litert): `export_extra` names the missing one in one line.
"""

from __future__ import annotations

import importlib.util
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from imgcls_cli.backend import native_output_silenced, quiet_logger
from imgcls_cli.config import ExportFormat, Quantize
from imgcls_cli.errors import UnconvertibleModel, UsageError

ARTIFACTS = {
    ExportFormat.savedmodel: "saved_model",
    ExportFormat.tflite: "model.tflite",
    ExportFormat.onnx: "model.onnx",
}
INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"
SIGNATURE = "serving_default"  # what TF Serving calls by default
ONNX_OPSET = 17

# What writing (and checking) each format needs that TensorFlow does not bring, as
# module → pip name; running needs less (RUNTIME_MODULES). TFLite needs nothing more:
# LiteRT's interpreter (ai-edge-litert, in the extra) is used when installed, else
# TensorFlow's own.
EXPORT_MODULES = {
    ExportFormat.onnx: {"tf2onnx": "tf2onnx", "onnx": "onnx", "onnxruntime": "onnxruntime"},
}
RUNTIME_MODULES = {ExportFormat.onnx: {"onnxruntime": "onnxruntime"}}


def export_extra(format: ExportFormat, needs: dict = EXPORT_MODULES) -> None:
    """One line naming what to install when a format's packages are missing."""
    missing = [
        package
        for module, package in needs.get(format, {}).items()
        if importlib.util.find_spec(module) is None
    ]
    if missing:
        raise UsageError(
            f"{format.value} export needs {', '.join(missing)}: pip install 'imgcls[export]' "
            "(`make install` installs it)."
        )


def input_signature(image_size: tuple[int, int], channels: int) -> Any:
    import tensorflow as tf

    return tf.TensorSpec((None, *image_size, channels), tf.float32, name=INPUT_NAME)


def write_savedmodel(model: Any, path: Path, image_size: tuple[int, int], channels: int) -> None:
    """A SavedModel whose `serving_default` signature maps `images` to `probabilities`."""
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        SIGNATURE,
        lambda images: {OUTPUT_NAME: model(images, training=False)},
        input_signature=[input_signature(image_size, channels)],
    )
    archive.write_out(str(path), verbose=False)


def write_tflite(
    model: Any,
    path: Path,
    image_size: tuple[int, int],
    channels: int,
    quantize: Quantize,
    calibration: Callable[[], Iterator[np.ndarray]] | None = None,
) -> None:
    """Through a SavedModel (the converter's most reliable door for Keras 3 models).
    int8 is full-integer with uint8 input (raw pixels: scale near 1) and uint8 output,
    calibrated on `calibration`'s images (single-image float32 batches)."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="imgcls-export-") as scratch:
        saved = Path(scratch) / "saved_model"
        write_savedmodel(model, saved, image_size, channels)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        if quantize is Quantize.fp16:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif quantize is Quantize.dynamic:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        elif quantize is Quantize.int8:
            if calibration is None:
                raise ValueError("int8 quantization needs calibration images")
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([image] for image in calibration())
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.uint8
            converter.inference_output_type = tf.uint8
        try:
            with native_output_silenced():  # "fully_quantize: 0, inference_type: 6, ..."
                flatbuffer = converter.convert()
        except Exception as error:  # the converter raises ConverterError and others
            raise UnconvertibleModel(conversion_failure("TFLite", error)) from None
    path.write_bytes(flatbuffer)


def write_onnx(model: Any, path: Path, image_size: tuple[int, int], channels: int) -> None:
    """Through tf2onnx, from the model's traced graph with its variables and captured
    constants frozen (tf2onnx's own from_function, which Keras 3's ONNX export uses too,
    leaves a captured constant as a second input: ResNet50's preprocessing has one). The
    graph's input is `images` and its output `probabilities`."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    frozen = frozen_function(model, image_size, channels)
    refuse_unconvertible("ONNX", unmapped_onnx_ops(frozen))
    inputs = [tensor.name for tensor in frozen.inputs if tensor.dtype != tf.resource]
    outputs = [tensor.name for tensor in frozen.outputs]
    try:
        with native_output_silenced(), quiet_logger("tf2onnx"):
            proto, _ = tf2onnx.convert.from_graph_def(
                frozen.graph.as_graph_def(),
                input_names=inputs,
                output_names=outputs,
                opset=ONNX_OPSET,
            )
    except Exception as error:  # tf2onnx raises many types for ops it cannot take
        raise UnconvertibleModel(conversion_failure("ONNX", error)) from None
    rename(proto, proto.graph.input, INPUT_NAME)
    rename(proto, proto.graph.output, OUTPUT_NAME)
    onnx.save(proto, str(path))


def frozen_function(model: Any, image_size: tuple[int, int], channels: int) -> Any:
    """The model's inference function traced once, its variables frozen to constants."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    function = tf.function(lambda images: model(images, training=False), autograph=False)
    return convert_variables_to_constants_v2(
        function.get_concrete_function(input_signature(image_size, channels))
    )


# Ops tf2onnx rewrites into others before it maps them (loops, conditionals, their
# tensor lists): their absence from the op table says nothing, so the converter decides.
ONNX_REWRITTEN = re.compile(r"^(Stateless)?(While|If|Case)$|^TensorList")


def unmapped_onnx_ops(frozen: Any) -> list[str]:
    """The graph's op types that tf2onnx has no rule for at ONNX_OPSET: read from its op
    table, without converting (a conversion would fail on them after its whole work)."""
    from tf2onnx import tfonnx  # noqa: F401 - registers every op handler
    from tf2onnx.handler import tf_op

    known: set[str] = set()
    for version, rules in enumerate(tf_op.get_opsets().get("", [])):
        if version <= ONNX_OPSET:
            known.update(rules)
    used = {operation.type for operation in frozen.graph.get_operations()}
    return sorted(op for op in used - known if not ONNX_REWRITTEN.match(op))


def refuse_unconvertible(format_name: str, ops: list[str]) -> None:
    if ops:
        raise UnconvertibleModel(unconvertible_message(format_name, ops))


def unconvertible_message(format_name: str, ops: list[str]) -> str:
    return (
        f"The model has ops that {format_name} cannot take: {', '.join(ops[:8])}; "
        "export another format (savedmodel takes every op)."
    )


def rename(proto: Any, ends: Any, name: str) -> None:
    """Name the graph's only input or output `name` (tf2onnx keeps TensorFlow's tensor
    names, such as 'images:0' and 'Identity:0'), in every node that uses it."""
    old = ends[0].name
    for node in proto.graph.node:
        node.input[:] = [name if value == old else value for value in node.input]
        node.output[:] = [name if value == old else value for value in node.output]
    ends[0].name = name


def conversion_failure(format_name: str, error: Exception) -> str:
    """One line naming the ops a converter could not take, not its dump."""
    text = " ".join(str(error).split())
    # TFLite: "Flex ops: FlexMatrixInverse ... tf.MatrixInverse(...)"; tf2onnx:
    # "Unsupported ops: Counter({'MatrixInverse': 1})".
    found = re.findall(r"\btf\.([A-Z]\w+)|\bFlex([A-Z]\w+)|'([A-Z]\w+)': \d+", text)
    ops = sorted({name for names in found for name in names if name})
    if ops:
        return unconvertible_message(format_name, ops)
    first = text.split(". ")[0][:300]
    return f"{format_name} conversion failed: {first}"


def write_artifact(
    format: ExportFormat,
    model: Any,
    folder: Path,
    image_size: tuple[int, int],
    channels: int,
    quantize: Quantize = Quantize.none,
    calibration: Callable[[], Iterator[np.ndarray]] | None = None,
) -> Path:
    """The artifact of `format` in folder (see ARTIFACTS); its path."""
    path = folder / ARTIFACTS[format]
    if format is ExportFormat.savedmodel:
        write_savedmodel(model, path, image_size, channels)
    elif format is ExportFormat.tflite:
        write_tflite(float32_model(model), path, image_size, channels, quantize, calibration)
    else:
        write_onnx(float32_model(model), path, image_size, channels)
    return path


def float32_model(model: Any) -> Any:
    """The model computing in float32, with the same weights: a --mixed-precision run
    computes in bfloat16 or float16 (its variables are float32 already), which TFLite's
    builtin ops and ONNX's typed graphs do not take. Other models are returned as they
    are. The parity check compares the artifact with the run's own model, as for any."""
    import keras

    if all(policy_name(layer) in (None, "float32") for layer in walk_layers(model)):
        return model
    document = with_float32_policies(keras.saving.serialize_keras_object(model))
    copy = keras.saving.deserialize_keras_object(document)
    copy.set_weights(model.get_weights())
    return copy


def walk_layers(model: Any) -> Iterator[Any]:
    """Every layer, inside nested models too (finetune's backbone)."""
    for layer in getattr(model, "layers", []):
        yield layer
        yield from walk_layers(layer)


def policy_name(layer: Any) -> str | None:
    policy = getattr(layer, "dtype_policy", None)
    return getattr(policy, "name", None)


def with_float32_policies(document: Any) -> Any:
    """A serialized model with every mixed dtype policy replaced by float32."""
    if isinstance(document, list):
        return [with_float32_policies(item) for item in document]
    if not isinstance(document, dict):
        return document
    if str(document.get("class_name", "")).endswith("DTypePolicy"):
        name = str(document.get("config", {}).get("name", ""))
        if name.startswith("mixed_"):
            return {**document, "config": {**document["config"], "name": "float32"}}
    return {key: with_float32_policies(value) for key, value in document.items()}


def artifact_bytes(path: Path) -> int:
    """Size on disk of a file, or of everything in a folder (a SavedModel)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
