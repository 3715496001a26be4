"""Run an exported artifact with its own runtime: TensorFlow for a SavedModel, the LiteRT
interpreter for TFLite, onnxruntime for ONNX. Each runner maps a float32 batch of raw
0-255 pixels to class probabilities, as model.keras does."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from imgcls_cli.backend import import_tensorflow, native_output_silenced
from imgcls_cli.config import ExportFormat
from imgcls_cli.export.writers import (
    INPUT_NAME,
    OUTPUT_NAME,
    RUNTIME_MODULES,
    SIGNATURE,
    export_extra,
)


class SavedModelRunner:
    def __init__(self, path: Path) -> None:
        import tensorflow as tf

        self._signature = tf.saved_model.load(str(path)).signatures[SIGNATURE]

    def __call__(self, images: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        return self._signature(**{INPUT_NAME: tf.constant(images)})[OUTPUT_NAME].numpy()


def tflite_interpreter(path: Path) -> Any:
    """LiteRT's interpreter (ai-edge-litert), TensorFlow's own when it is not installed
    (deprecated there, and to be removed)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import warnings

        import tensorflow as tf

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return tf.lite.Interpreter(model_path=str(path))
    return Interpreter(model_path=str(path))


class TFLiteRunner:
    """Quantized inputs and outputs (int8 exports) are converted with the scale and zero
    point the converter chose, so callers always pass float pixels."""

    def __init__(self, path: Path) -> None:
        self._interpreter = tflite_interpreter(path)
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._batch = None

    @property
    def input_dtype(self) -> Any:
        return self._input["dtype"]

    def tensor_facts(self) -> dict[str, dict[str, Any]]:
        """{'input'|'output': {dtype, and scale and zero_point when quantized}}: what an
        app must know to feed the interpreter and read its answer."""
        facts = {}
        for side, details in (("input", self._input), ("output", self._output)):
            entry: dict[str, Any] = {"dtype": np.dtype(details["dtype"]).name}
            scale, zero_point = details["quantization"]
            if details["dtype"] != np.float32 and scale:
                entry.update(scale=float(scale), zero_point=int(zero_point))
            facts[side] = entry
        return facts

    def __call__(self, images: np.ndarray) -> np.ndarray:
        interpreter = self._interpreter
        if self._batch != len(images):
            interpreter.resize_tensor_input(self._input["index"], list(images.shape))
            with native_output_silenced():  # "INFO: Created TensorFlow Lite XNNPACK delegate"
                interpreter.allocate_tensors()
            self._batch = len(images)
        interpreter.set_tensor(self._input["index"], quantized(images, self._input))
        interpreter.invoke()
        return dequantized(interpreter.get_tensor(self._output["index"]), self._output)


def quantized(values: np.ndarray, details: dict[str, Any]) -> np.ndarray:
    dtype = details["dtype"]
    if dtype == np.float32:
        return values.astype(np.float32)
    scale, zero_point = details["quantization"]
    limits = np.iinfo(dtype)
    stored = np.round(values / scale + zero_point)
    return np.clip(stored, limits.min, limits.max).astype(dtype)


def dequantized(values: np.ndarray, details: dict[str, Any]) -> np.ndarray:
    if details["dtype"] == np.float32:
        return values
    scale, zero_point = details["quantization"]
    return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)


class OnnxRunner:
    def __init__(self, path: Path) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: not its graph-optimisation notes
        with native_output_silenced():
            self._session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self._session.run([OUTPUT_NAME], {INPUT_NAME: images.astype(np.float32)})[0]


RUNNERS = {
    ExportFormat.savedmodel: SavedModelRunner,
    ExportFormat.tflite: TFLiteRunner,
    ExportFormat.onnx: OnnxRunner,
}


@dataclasses.dataclass
class ExportedModel:
    """An artifact and its runner: `predict` answers as LoadedRun.predict_batch does."""

    format: ExportFormat
    path: Path
    runner: Any

    def predict(self, images: Any, tta: bool = False) -> np.ndarray:
        images = np.asarray(images, dtype=np.float32)
        probabilities = self.runner(images)
        if tta:
            probabilities = (probabilities + self.runner(images[:, :, ::-1].copy())) / 2.0
        return np.asarray(probabilities, dtype=np.float32)


def open_artifact(format: ExportFormat, path: Path) -> ExportedModel:
    export_extra(format, RUNTIME_MODULES)
    # Quietly, before anything imports it plainly: SavedModels run on TensorFlow, and
    # every kind reads image files with TensorFlow's decoders (one file, one answer).
    import_tensorflow()
    return ExportedModel(format, path, RUNNERS[format](path))
