"""What every layer may ask before any strategy exists: TensorFlow imported quietly,
--debug, the seeds, the library versions a run records, and which task of a cluster this
process is (read from the environment, without TensorFlow)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

_debug = False
_own_process = False  # the `imgcls` command's process, not the API in someone else's

# What Keras imports only if it is installed, for features no imgcls command uses: its
# scikit-learn wrappers, pandas frames in fit(), pyplot galleries. Neither Keras nor
# TensorFlow requires them, so both must work without them; importing them cost about a
# third of TensorFlow's import here (1.1-1.4 of 4.3 s: scikit-learn 0.7 s, pandas and
# pyplot 0.35 s each), paid at every start whether the command needs them or not.
KERAS_EXTRAS = ("sklearn", "pandas", "matplotlib.pyplot")


def set_debug(debug: bool) -> None:
    """--debug: tracebacks instead of one-line errors, and TensorFlow's own log."""
    global _debug
    _debug = debug


def debugging() -> bool:
    return _debug


def claim_process() -> None:
    """For the `imgcls` process, which owns its interpreter and its file descriptors:
    TensorFlow imports without KERAS_EXTRAS, and (without --debug) native output is kept
    off the terminal (hide_native_output). Not for the Python API: a notebook's own Keras
    keeps everything it has (Keras decides once, at import, whether they exist), and its
    descriptors are its own."""
    global _own_process
    _own_process = True


def owns_process() -> bool:
    return _own_process


@contextlib.contextmanager
def _keras_extras_hidden() -> Iterator[None]:
    """Within: importing a KERAS_EXTRAS module not yet imported raises ImportError, as if
    it were not installed (a None in sys.modules); after: they import as usual."""
    skipped = KERAS_EXTRAS if _own_process else ()
    hidden = [name for name in skipped if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


def hide_native_output() -> None:
    """For the `imgcls` process without --debug, for the whole command: Python's stderr
    (imgcls' messages, errors, logging) moves to a copy of file descriptor 2, and
    descriptor 2 itself, where native code writes, points at /dev/null. What native code
    prints at any time (TensorFlow's C++ log, libjpeg's warnings on a damaged JPEG, which
    imgcls reports by name) stays off the terminal, and a line Python prints from another
    thread while TensorFlow imports (serve's request log) is no longer lost with the
    import's noise. A crash still shows in the exit code; --debug shows everything. Not
    for the Python API: a notebook's descriptors are its own."""
    sys.stderr.flush()
    visible = os.dup(2)
    encoding, errors = sys.stderr.encoding, sys.stderr.errors
    sys.stderr = open(visible, "w", encoding=encoding, errors=errors, buffering=1)  # noqa: SIM115
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


@contextlib.contextmanager
def native_output_silenced() -> Iterator[None]:
    """Without --debug, hide what native code writes to file descriptor 2 while the block
    runs: TensorFlow's C++ start-up lines, LiteRT's delegate notice, the TFLite converter's
    settings. They bypass Python logging; what fails still reaches Python as an exception."""
    if _debug:
        yield
        return
    with _stderr_silenced():
        yield


@contextlib.contextmanager
def quiet_logger(name: str) -> Iterator[None]:
    """A Python logger at ERROR while the block runs (without --debug), then as it was."""
    import logging

    logger = logging.getLogger(name)
    level = logger.level
    if not _debug:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
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
        with _keras_extras_hidden():
            import keras  # noqa: F401
            import tensorflow as tf

        return tf
    # 3 hides C++ ERROR lines too (tf.data prints one for deterministic maps): failures
    # that matter reach Python as exceptions, which imgcls reports; --debug shows all.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _stderr_silenced(), _keras_extras_hidden():
        import absl.logging
        import keras  # noqa: F401
        import tensorflow as tf

        absl.logging.set_verbosity(absl.logging.ERROR)
        tf.get_logger().setLevel("ERROR")
        # The first device query prints CUDA-driver lines on machines without a GPU.
        tf.config.list_physical_devices()
    return tf


def traced_as_written(function: Any) -> Any:
    """`function`, for Dataset.map and filter, traced as the Python it is. AutoGraph
    would rewrite it, and everything it calls, anew for every pipeline a run builds:
    over a third of a small run's tracing. imgcls' graph functions branch on tensors
    only through tf.cond and tf.switch_case, which need no rewriting. (tf.functions
    take `autograph=False` for the same reason.)"""
    import tensorflow as tf

    return tf.autograph.experimental.do_not_convert(function)


def versions() -> dict[str, str]:
    """What config.json records of the software that made a run."""
    import platform

    import keras
    import tensorflow as tf

    from imgcls_cli import __version__

    return {
        "imgcls": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
    }


def seed_everything(seed: int) -> None:
    """Python, NumPy and TensorFlow seeds: the same seed gives the same run on CPU."""
    import_tensorflow()
    import keras

    keras.utils.set_random_seed(seed)


@contextlib.contextmanager
def process_state_kept() -> Iterator[None]:
    """What a library call leaves as it found it: os.environ, Python's and NumPy's global
    random generators, TensorFlow's global seed and op determinism, Keras' global dtype
    policy, and the levels of the tensorflow and absl loggers; and what its graphs left in
    TensorFlow's global state is dropped (_release_graph_leftovers). A run seeds, sets a
    policy and switches determinism for itself; a notebook's next cell should not
    inherit it, nor carry its memory.
    (One thing cannot be undone: once --deterministic ran TensorFlow's ops one at a time,
    the process keeps that thread pool; its results are the same, only its order.)"""
    import logging
    import random

    import numpy as np

    environ = dict(os.environ)
    python_random, numpy_random = random.getstate(), np.random.get_state()
    loggers = {name: logging.getLogger(name).level for name in ("tensorflow", "absl")}
    root_handlers = list(logging.root.handlers)  # absl's first message adds one otherwise
    tensorflow_state = _tensorflow_state()
    leftovers = _graph_leftovers()
    try:
        yield
    finally:
        _release_graph_leftovers(leftovers)
        for name in set(os.environ) - set(environ):
            del os.environ[name]
        os.environ.update(environ)
        random.setstate(python_random)
        np.random.set_state(numpy_random)
        _restore_tensorflow_state(tensorflow_state)  # absl's verbosity sets its logger's level
        for name, level in loggers.items():
            logging.getLogger(name).setLevel(level)
        logging.root.handlers[:] = root_handlers


CUSTOM_GRADIENT = "CustomGradient-"  # the names tf.custom_gradient registers in graphs
PY_FUNCS = "_py_funcs_used_in_graph"  # set on a graph by its first tf.numpy_function


def _graph_leftovers() -> tuple[set[str], int] | None:
    """What TensorFlow keeps for the process from the graphs traced so far: the names of
    graph-mode custom gradients in its global registry, and how many Python functions
    (tf.numpy_function's) its global graph holds. None before TensorFlow starts."""
    if "tensorflow" not in sys.modules:
        return None
    from tensorflow.python.framework import ops

    names = {name for name in ops._gradient_registry.list() if name.startswith(CUSTOM_GRADIENT)}
    return names, len(getattr(ops.get_default_graph(), PY_FUNCS, ()))


def _release_graph_leftovers(before: tuple[set[str], int] | None) -> None:
    """Drop what this call's graphs left in TensorFlow's global state, which would keep
    them, and all they reference, until the process ends (a notebook's every training
    kept 3-5 MiB): each trace of a step that all-reduces gradients (Keras' optimizers
    do, on one replica too) registers a custom gradient holding that step's graph, and
    each tf.numpy_function of a folder's decoder is held by the global graph, with the
    decoder and its file list. The call's graphs and pipelines are gone once it
    returns; nothing runs them or takes their gradients again."""
    now = _graph_leftovers()
    if now is None:
        return
    from tensorflow.python.framework import ops

    names, functions = before or (set(), 0)
    for name in now[0] - names:
        ops._gradient_registry._registry.pop(name, None)
    del getattr(ops.get_default_graph(), PY_FUNCS, [])[functions:]


def _tensorflow_state() -> dict[str, Any] | None:
    """Keras' policy, the global seed, op determinism and absl's verbosity, when the
    process has TensorFlow already (before it, they are the defaults)."""
    if "tensorflow" not in sys.modules or "keras" not in sys.modules:
        return None
    import absl.logging
    import keras
    from tensorflow.python.eager import context
    from tensorflow.python.framework import config  # determinism's state is not exported

    return {
        "policy": keras.config.dtype_policy(),
        "seed": context.global_seed(),
        "determinism": config.is_op_determinism_enabled(),
        "absl": absl.logging.get_verbosity(),
    }


def _restore_tensorflow_state(state: dict[str, Any] | None) -> None:
    if "tensorflow" not in sys.modules or "keras" not in sys.modules:
        return
    import absl.logging
    import keras
    import tensorflow as tf
    from tensorflow.python.framework import config  # disabling determinism is not exported

    if state is None:  # TensorFlow started in this call: back to its defaults
        state = {
            "policy": keras.DTypePolicy(keras.config.floatx()),
            "seed": None,
            "determinism": False,
            "absl": absl.logging.WARNING,
        }
    keras.config.set_dtype_policy(state["policy"])
    tf.random.set_seed(state["seed"])
    if config.is_op_determinism_enabled() and not state["determinism"]:
        config.disable_op_determinism()
    absl.logging.set_verbosity(state["absl"])


def in_slurm_step() -> bool:
    """Started by srun in a step of several tasks (Slurm sets these per task)."""
    return "SLURM_PROCID" in os.environ and int(os.environ.get("SLURM_STEP_NUM_TASKS", 1)) > 1


def is_chief_task() -> bool:
    """is_chief, decided from TF_CONFIG (or Slurm's task rank) before any strategy
    exists (and without TF)."""
    import json

    if not os.environ.get("TF_CONFIG") and in_slurm_step():
        return os.environ["SLURM_PROCID"] == "0"
    try:
        cluster_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
        task = cluster_config.get("task", {})
        kind, index = task.get("type"), int(task.get("index", 0))
        has_chief = "chief" in cluster_config.get("cluster", {})
    except (ValueError, TypeError, AttributeError):
        return True  # malformed: the strategy refuses it with TensorFlow's own message
    if not kind or kind == "chief":
        return True
    return kind == "worker" and index == 0 and not has_chief
