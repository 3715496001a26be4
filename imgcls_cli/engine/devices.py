"""The one place tf.distribute is set up: strategies (one device, mirrored, multi-worker
on TF_CONFIG or Slurm), the chief, mixed precision and determinism."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from imgcls_cli.backend import import_tensorflow, in_slurm_step, seed_everything
from imgcls_cli.errors import ImgclsError, UsageError


def set_up_runtime(config: Any) -> tuple[Any, str, str | None]:
    """(strategy, precision policy, a warning or None) for a train or finetune config.
    Ops in order and the strategy come first (both must precede any op: the strategy may
    split the CPU into devices), then determinism, the precision policy and the seeds."""
    import_tensorflow()
    warning = run_ops_in_order(config.strategy.value) if config.deterministic else None
    strategy = create_strategy(config.strategy.value)
    set_determinism(config.deterministic)
    if config.deterministic and strategy.num_replicas_in_sync > 1 and warning is None:
        warning = DETERMINISM_WARNINGS["replicas"]
    policy = set_mixed_precision(config.mixed_precision)
    seed_everything(config.seed)
    return strategy, policy, warning


DETERMINISM_WARNINGS = {
    "replicas": "--deterministic: the replicas' ops run in parallel (their all-reduce needs "
    "it), so two runs may differ in the last bits of the weights; on one device they do not.",
    "started": "--deterministic: TensorFlow already ran ops in this process, so they keep "
    "running in parallel and two runs may differ in the last bits of the weights; start a "
    "new process for bit-identical runs.",
}


def run_ops_in_order(strategy: str) -> str | None:
    """One op at a time (each still uses every core), as --deterministic needs on one
    device: with ops in parallel, the default convnet's weights at 96x96 differed in the
    7th digit between two runs of the same command (kernels deterministic, the order of
    independent ops not); one at a time they were identical, at the same speed
    (BENCHMARKS.md). Not with several replicas, whose collective ops run side by side.
    Returns a warning when TensorFlow already started in this process (the API)."""
    tf = import_tensorflow()
    gpus = tf.config.list_physical_devices("GPU")
    if strategy in ("mirrored", "multi-worker") or (strategy == "auto" and len(gpus) > 1):
        return None  # set_up_runtime warns once the replicas are known
    if tf.config.threading.get_inter_op_parallelism_threads() == 1:
        return None
    try:
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # the context exists: its thread pools are fixed
        return DETERMINISM_WARNINGS["started"]
    return None


def strategy_name(strategy: Any) -> str:
    """'MirroredStrategy', 'MultiWorkerMirroredStrategy', … as config.json records it."""
    return type(strategy).__name__.lstrip("_").replace("DistributionStrategy", "Strategy")


@contextlib.contextmanager
def cluster_errors(strategy: Any) -> Iterator[None]:
    """A peer that died mid-step surfaces as a gRPC error: say what to do instead."""
    tf = import_tensorflow()
    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as error:
        raise ImgclsError(lost_peer_message(str(error), cluster_of(strategy))) from None


def cluster_of(strategy: Any) -> dict[str, Any]:
    """The cluster as TF_CONFIG spells it ({"cluster": {job: [address, ...]}, "task":
    {"type", "index"}}), from the strategy's resolver: TF_CONFIG's or Slurm's variables
    alike. {} on one machine."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return {}
    cluster = resolver.cluster_spec().as_dict()
    return {"cluster": cluster, "task": {"type": resolver.task_type, "index": resolver.task_id}}


def lost_peer_message(text: str, config: dict[str, Any]) -> str:
    """One line naming the worker that stopped answering (its index and address, from
    TensorFlow's error and the cluster, see cluster_of) and what to do, without
    TensorFlow's function names."""
    import re

    try:
        cluster, task = config.get("cluster", {}), config.get("task", {})
        own = (task.get("type"), int(task.get("index", -1)))
    except (ValueError, TypeError, AttributeError):
        cluster, own = {}, (None, -1)
    unhealthy = re.search(r"unhealthy[^:]*:\s*((?:/job:\w+/replica:\d+/task:\d+\s*)+)", text)
    named = re.findall(
        r"/job:(\w+)/(?:replica:\d+/)?task:(\d+)", unhealthy[1] if unhealthy else text
    )
    peers = sorted({(job, int(index)) for job, index in named} - {own})
    if not peers and isinstance(cluster, dict):  # two workers: the other one
        others = [(job, i) for job, hosts in cluster.items() for i in range(len(hosts))]
        others = [peer for peer in others if peer != own]
        peers = others if len(others) == 1 else []

    def name(job: str, index: int) -> str:
        hosts = cluster.get(job, []) if isinstance(cluster, dict) else []
        address = f" ({hosts[index]})" if index < len(hosts) else ""
        return f"{'Worker' if job == 'worker' else job.capitalize()} {index}{address}"

    who = ", ".join(name(*peer) for peer in peers) or "A worker of the cluster"
    cause = re.sub(r"\{\{[^}]*\}\}\s*", "", text.strip().splitlines()[0] if text.strip() else "")
    return (
        f"{who} stopped answering: it crashed, was stopped or lost the network "
        f"(TensorFlow: {cause[:160]}). Restart every worker with the same command: "
        "training continues from the last checkpoint."
    )


WORKER_PREFIX = "imgcls-worker-"  # + the process id + "-": a non-chief's scratch folder


def worker_dir(run_dir: Path, strategy: Any) -> Path:
    """The chief writes the run directory; other workers a throw-away one (they must
    still save, because saving a distributed model is a collective operation). It is
    removed when the process ends, whichever way (done, an error, SIGINT or SIGTERM in
    training, which end through the interpreter's exit); one left by a killed process
    is removed by the next worker that starts on this machine."""
    import atexit
    import shutil
    import tempfile

    if is_chief(strategy):
        return run_dir
    remove_stale_worker_dirs(Path(tempfile.gettempdir()))
    scratch = Path(tempfile.mkdtemp(prefix=f"{WORKER_PREFIX}{os.getpid()}-"))
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return scratch


def remove_stale_worker_dirs(folder: Path) -> list[Path]:
    """The scratch folders of worker processes that no longer run; returns them."""
    import shutil

    removed = []
    for path in folder.glob(f"{WORKER_PREFIX}*-*"):
        try:
            os.kill(int(path.name[len(WORKER_PREFIX) :].split("-")[0]), 0)
        except ProcessLookupError:  # no such process: killed before it could clean up
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        except (ValueError, OSError):  # not ours, or another user's process
            continue
    return removed


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


def check_cluster_described(strategy: str) -> None:
    """--strategy multi-worker needs a cluster to join: refused before TensorFlow starts
    when neither TF_CONFIG nor a Slurm step of several tasks describes one."""
    if strategy == "multi-worker" and not (os.environ.get("TF_CONFIG") or in_slurm_step()):
        raise UsageError(
            "--strategy multi-worker needs the TF_CONFIG environment variable on every "
            "worker (cluster addresses and this worker's task), or a Slurm step (srun) with "
            "several tasks; see the README."
        )


def multi_worker_strategy() -> Any:
    """MultiWorkerMirroredStrategy from TF_CONFIG when it is set (Kubernetes, a script),
    else from Slurm's variables under srun (SlurmClusterResolver)."""
    check_cluster_described("multi-worker")
    tf = import_tensorflow()
    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=slurm_resolver())


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
