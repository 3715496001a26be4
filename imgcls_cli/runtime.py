"""TensorFlow start-up: quiet import, seeds, and the one place tf.distribute is set up."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import ImgclsError, UsageError

_debug = False


def set_debug(debug: bool) -> None:
    """--debug: tracebacks instead of one-line errors, and TensorFlow's own log."""
    global _debug
    _debug = debug


def debugging() -> bool:
    return _debug


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
    # 3 hides C++ ERROR lines too (tf.data prints one for deterministic maps): failures
    # that matter reach Python as exceptions, which imgcls reports; --debug shows all.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _stderr_silenced():
        import absl.logging
        import keras  # noqa: F401
        import tensorflow as tf

        absl.logging.set_verbosity(absl.logging.ERROR)
        tf.get_logger().setLevel("ERROR")
        # The first device query prints CUDA-driver lines on machines without a GPU.
        tf.config.list_physical_devices()
    return tf


def set_up_runtime(config: Any) -> tuple[Any, str]:
    """(strategy, precision policy) for a train or finetune config. The strategy comes
    first (it may split the CPU into devices, which must precede any op), then
    determinism, the precision policy and the seeds."""
    import_tensorflow()
    strategy = create_strategy(config.strategy.value)
    set_determinism(config.deterministic)
    policy = set_mixed_precision(config.mixed_precision)
    seed_everything(config.seed)
    return strategy, policy


def strategy_name(strategy: Any) -> str:
    """'MirroredStrategy', 'MultiWorkerMirroredStrategy', … as config.json records it."""
    return type(strategy).__name__.lstrip("_").replace("DistributionStrategy", "Strategy")


def versions() -> dict[str, str]:
    """What config.json records of the software that made a run."""
    import platform

    import keras
    import tensorflow as tf

    from . import __version__

    return {
        "imgcls": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
    }


@contextlib.contextmanager
def cluster_errors() -> Iterator[None]:
    """A peer that died mid-step surfaces as a gRPC error: say what to do instead."""
    tf = import_tensorflow()
    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as error:
        first_line = str(error).strip().splitlines()[0][:200]
        raise ImgclsError(
            f"A worker of the cluster stopped answering ({first_line}). Restart every worker "
            "with the same command: training continues from the last checkpoint."
        ) from None


def worker_dir(run_dir: Path, strategy: Any) -> Path:
    """The chief writes the run directory; other workers a throw-away one (they must
    still save, because saving a distributed model is a collective operation)."""
    import tempfile

    return run_dir if is_chief(strategy) else Path(tempfile.mkdtemp(prefix="imgcls-worker-"))


def seed_everything(seed: int) -> None:
    """Python, NumPy and TensorFlow seeds: the same seed gives the same run on CPU."""
    import_tensorflow()
    import keras

    keras.utils.set_random_seed(seed)


CPU_REPLICAS_ENV = "IMGCLS_CPU_REPLICAS"  # split the CPU into N devices, to try mirrored


def split_cpu(replicas: int) -> None:
    """Present the CPU as `replicas` logical devices (before TensorFlow initializes)."""
    tf = import_tensorflow()
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(replicas)]
        )
    except RuntimeError:
        pass  # already initialized (a second run in the same process): keep what exists


def create_strategy(name: str = "auto") -> Any:
    """The tf.distribute strategy for --strategy. `auto`: MirroredStrategy over all GPUs
    when there are several, the one GPU when there is one, the CPU otherwise."""
    tf = import_tensorflow()
    if name == "multi-worker":  # first: Slurm's resolver assigns GPUs before TF sees them
        return multi_worker_strategy()
    if os.environ.get(CPU_REPLICAS_ENV):
        split_cpu(int(os.environ[CPU_REPLICAS_ENV]))
    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "gpu" if gpus else "cpu"
    if name == "cpu":
        return tf.distribute.OneDeviceStrategy("/cpu:0") if gpus else tf.distribute.get_strategy()
    if name == "gpu":
        if not gpus:
            raise ImgclsError(
                "--strategy gpu: TensorFlow sees no GPU. Install the GPU extra "
                "(pip install 'imgcls[gpu]') and check nvidia-smi, or use --strategy cpu."
            )
        return tf.distribute.OneDeviceStrategy("/gpu:0")
    if name == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy()
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(cpus)
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as error:
            raise ImgclsError(f"--strategy tpu: no TPU found ({error}).") from None
        return tf.distribute.TPUStrategy(resolver)
    raise UsageError(f"Unknown strategy '{name}'.")


SLURM_PORT_ENV = "IMGCLS_SLURM_PORT"  # first port of a node's tasks (default 8888)


def in_slurm_step() -> bool:
    """Started by srun in a step of several tasks (Slurm sets these per task)."""
    return "SLURM_PROCID" in os.environ and int(os.environ.get("SLURM_STEP_NUM_TASKS", 1)) > 1


def multi_worker_strategy() -> Any:
    """MultiWorkerMirroredStrategy from TF_CONFIG when it is set (Kubernetes, a script),
    else from Slurm's variables under srun (SlurmClusterResolver)."""
    tf = import_tensorflow()
    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if in_slurm_step():
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=slurm_resolver())
    raise UsageError(
        "--strategy multi-worker needs the TF_CONFIG environment variable on every worker "
        "(cluster addresses and this worker's task), or a Slurm step (srun) with several "
        "tasks; see the README."
    )


def slurm_resolver() -> Any:
    """TensorFlow's SlurmClusterResolver: one worker per task, on ports from
    IMGCLS_SLURM_PORT (8888) up on each node. With GPUs, each task gets its share of its
    node's (CUDA_VISIBLE_DEVICES). On CPU-only nodes the resolver would find no GPU to
    share and no task to place, so it is told one 'slot' per task, and sets no GPUs."""
    import shutil

    tf = import_tensorflow()
    resolver_class = tf.distribute.cluster_resolver.SlurmClusterResolver
    port = int(os.environ.get(SLURM_PORT_ENV, 8888))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    has_gpus = bool(visible) if visible is not None else shutil.which("nvidia-smi") is not None
    if has_gpus:
        resolver = resolver_class(port_base=port)
    else:
        per_node = max(
            int(n.split("(")[0]) for n in os.environ["SLURM_STEP_TASKS_PER_NODE"].split(",")
        )
        resolver = resolver_class(
            port_base=port, gpus_per_node=per_node, gpus_per_task=1, auto_set_gpu=False
        )
    resolver.cluster_spec()  # places the tasks (and their GPUs) now, before TF starts
    return resolver


def is_multi_worker(strategy: Any) -> bool:
    return isinstance(strategy, import_tensorflow().distribute.MultiWorkerMirroredStrategy)


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


def is_chief(strategy: Any) -> bool:
    """Only the chief writes the run directory; other workers write to a temporary one.
    The chief is task 'chief', or worker 0 when the cluster has no chief."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def set_mixed_precision(enabled: bool) -> str:
    """mixed_float16 on GPU, mixed_bfloat16 on CPU and TPU (float16 is slow there)."""
    tf = import_tensorflow()
    import keras

    if not enabled:
        policy = "float32"
    else:
        policy = "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
    keras.mixed_precision.set_global_policy(policy)
    return policy


def set_determinism(enabled: bool) -> None:
    """Deterministic kernels: identical results for identical inputs, a little slower."""
    tf = import_tensorflow()
    if enabled:
        tf.config.experimental.enable_op_determinism()
