"""TensorFlow start-up: quiet import, seeds, and the one place tf.distribute is set up."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

_debug = False


def set_debug(debug: bool) -> None:
    """With --debug, TensorFlow's own start-up log is left alone."""
    global _debug
    _debug = debug


@contextlib.contextmanager
def _stderr_silenced():
    """Point file descriptor 2 at /dev/null: TF's C++ start-up lines bypass Python logging."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow() -> Any:
    """Import TensorFlow (and Keras) once, without the wall of start-up log lines."""
    if "tensorflow" in sys.modules and "keras" in sys.modules:
        return sys.modules["tensorflow"]
    if _debug:
        import keras  # noqa: F401
        import tensorflow as tf

        return tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _stderr_silenced():
        import absl.logging
        import keras  # noqa: F401
        import tensorflow as tf

        absl.logging.set_verbosity(absl.logging.ERROR)
        tf.get_logger().setLevel("ERROR")
        # The first device query prints CUDA-driver lines on machines without a GPU.
        tf.config.list_physical_devices()
    return tf


def seed_everything(seed: int) -> None:
    """Python, NumPy and TensorFlow seeds: the same seed gives the same run on CPU."""
    import_tensorflow()
    import keras

    keras.utils.set_random_seed(seed)


def create_strategy(name: str = "auto") -> Any:
    """A tf.distribute strategy; 'auto' picks all GPUs, one GPU, or the CPU."""
    tf = import_tensorflow()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        if len(gpus) > 1:
            return tf.distribute.MirroredStrategy()
        if gpus:
            return tf.distribute.OneDeviceStrategy("/gpu:0")
        return tf.distribute.get_strategy()  # the default strategy: plain CPU execution
    raise ValueError(f"unknown strategy {name!r}")
