"""`imgcls benchmark RUN_DIR`: model.keras and each of its exports side by side, as a user
choosing a format reads them: latency per batch size (p50/p95), images/s, file size,
parameters, FLOPs per image and held-out accuracy, on this machine (named in the report).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from imgcls_cli import rundir
from imgcls_cli.errors import ImgclsError, UsageError
from imgcls_cli.export.writers import artifact_bytes
from imgcls_cli.reporting import Reporter
from imgcls_cli.rundir.load import LoadedRun, load_run, refuse_export, require_run_dir
from imgcls_cli.rundir.record import ExportRecord, MetricsRecord

WARMUP_CALLS = 3


def hardware() -> dict[str, Any]:
    """What the figures were measured on."""
    import tensorflow as tf

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            names = [
                line.split(":", 1)[1].strip() for line in info if line.startswith("model name")
            ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    gpus = [
        tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
        for gpu in tf.config.list_physical_devices("GPU")
    ]
    return {"cpu": cpu, "cpu_cores": os.cpu_count(), "gpus": gpus, "system": platform.system()}


def flops_per_image(model: Any, image_size: tuple[int, int], channels: int) -> int | None:
    """Floating-point operations of one image through the model (TensorFlow's profiler on
    the frozen graph: multiply and add counted apart), or None when it cannot tell."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    try:
        spec = tf.TensorSpec((1, *image_size, channels), tf.float32)
        function = tf.function(lambda x: model(x, training=False), autograph=False)
        function = function.get_concrete_function(spec)
        graph = convert_variables_to_constants_v2(function).graph
        options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        options["output"] = "none"
        return int(tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops)
    except Exception:  # noqa: BLE001 - an estimate, never a reason to fail
        return None


def time_calls(predict: Any, batch: np.ndarray, runs_per_size: int) -> dict[str, float]:
    """p50/p95 milliseconds per call and images/s, after WARMUP_CALLS untimed calls."""
    import tensorflow as tf

    try:
        for _ in range(WARMUP_CALLS):
            predict(batch)
    except tf.errors.ResourceExhaustedError:
        raise ImgclsError(
            f"Out of memory at --batch-size {len(batch)}; give a smaller --batch-size."
        ) from None
    seconds = []
    for _ in range(runs_per_size):
        started = time.perf_counter()
        predict(batch)
        seconds.append(time.perf_counter() - started)
    p50, p95 = np.percentile(seconds, [50, 95])
    return {
        "p50_ms": float(p50 * 1000),
        "p95_ms": float(p95 * 1000),
        "images_per_second": float(len(batch) / p50),
    }


def leaf_layers(model: Any) -> Iterator[Any]:
    """Every layer of a model, those of nested models (a fine-tuned backbone) included."""
    for layer in model.layers:
        if getattr(layer, "layers", None):
            yield from leaf_layers(layer)
        else:
            yield layer


def bytes_per_image(model: Any, image_size: tuple[int, int], channels: int) -> int | None:
    """About what one image costs in a forward pass, a little over what was measured
    (peak memory over batch sizes): its float32 input twice (the batch and TensorFlow's
    copy), and three times the largest activation (a layer's input and output are alive
    together, with a working copy; TensorFlow frees the others). None when the layers'
    shapes cannot be read."""
    try:
        sizes = [int(np.prod(layer.output.shape[1:])) for layer in leaf_layers(model)]
    except (AttributeError, TypeError, ValueError):  # a layer without one output shape
        return None
    pixels = image_size[0] * image_size[1] * channels
    return 4 * (2 * pixels + 3 * max(sizes, default=pixels))


def available_memory() -> int | None:
    """Bytes this process may still take: the kernel's MemAvailable, or what is left
    under a container's memory limit (cgroup v2) when that is less; None off Linux."""
    try:
        with open("/proc/meminfo") as info:
            fields = dict(line.split(":", 1) for line in info)
        free = int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            free = min(free, int(limit) - used)
    except (OSError, ValueError):
        pass
    return free


def check_batch_memory(run: LoadedRun, batch_sizes: list[int]) -> None:
    """A batch whose forward pass cannot fit in the free memory is refused before the
    first call: past it, the kernel kills the process without a word, or TensorFlow
    crashes. GPUs are left to their own out-of-memory error (time_calls says it)."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return
    per_image = bytes_per_image(run.model, run.image_size, run.channels)
    free = available_memory()
    largest = max(batch_sizes)
    if per_image is None or free is None or largest * per_image <= free:
        return
    raise UsageError(
        f"--batch-size {largest} needs about {largest * per_image / 2**30:.1f} GiB for one "
        f"pass of this model ({per_image / 2**20:.2f} MiB an image), more than the "
        f"{free / 2**30:.1f} GiB of memory free; give --batch-size {max(1, free // per_image)} "
        "or less."
    )


def candidates(run_dir: Path) -> list[tuple[str, Path]]:
    """(name, folder) of model.keras and every export of the run."""
    return [("keras", run_dir), *((f.name, f) for f in rundir.iter_exports(run_dir))]


def accuracy_of(run: LoadedRun, folder: Path) -> float | None:
    """Held-out accuracy as recorded: metrics.json's test split for model.keras, the
    parity check's for an export."""
    if run.exported is None:
        metrics = MetricsRecord.from_dict(rundir.config_document_named(folder, rundir.METRICS_FILE))
        return metrics.accuracy("test")
    path = folder / rundir.EXPORT_FILE
    return ExportRecord.from_dict(
        rundir.config_document_named(folder, rundir.EXPORT_FILE), path
    ).export_accuracy


def benchmark_run(
    run_dir: Path, batch_sizes: list[int], runs_per_size: int, reporter: Reporter
) -> dict[str, Any]:
    run_dir = require_run_dir(Path(run_dir))  # a run's model.keras names its run
    refuse_export(run_dir, "the benchmark times its model.keras and exports")
    source = load_run(run_dir)
    check_batch_memory(source, batch_sizes)
    parameters = int(source.model.count_params())
    flops = flops_per_image(source.model, source.image_size, source.channels)
    rng = np.random.default_rng(0)
    results = []
    for name, folder in candidates(run_dir):
        reporter.info(f"Timing {name}")
        run = source if folder == run_dir else load_run(folder)
        path = folder / rundir.MODEL_FILE if run.exported is None else run.exported.path
        timings = {}
        for size in batch_sizes:
            batch = rng.random((size, *run.image_size, run.channels), dtype=np.float32)
            batch *= 255  # in place: a large batch is made once, in float32
            timings[str(size)] = time_calls(run.predict_batch, batch, runs_per_size)
        results.append(
            {
                "name": name,
                "path": str(path),
                "file_bytes": artifact_bytes(path),
                "accuracy": accuracy_of(run, folder),
                "latency": timings,
            }
        )
    reporter.info("Timing files → decode → model.keras (predict's path)")
    return {
        "run": str(run_dir),
        "hardware": hardware(),
        "end_to_end": end_to_end(source, max(batch_sizes)),
        "parameters": parameters,
        "flops_per_image": flops,
        "batch_sizes": batch_sizes,
        "runs_per_size": runs_per_size,
        "models": results,
    }


END_TO_END_FILES = 64  # the run's held-out images timed as files, at most
END_TO_END_ROUNDS = 3


def end_to_end(run: LoadedRun, batch_size: int) -> dict[str, Any] | None:
    """Images/s of model.keras fed from image files as `imgcls predict` feeds it (read,
    decode, resize in training's pipeline, then the model), on END_TO_END_FILES of the
    run's held-out images (a small split's read round again; written as PNG files when
    its data is not a folder): the
    figure to compare with a predict run, where the latency rows time the model alone on
    ready tensors. The median of END_TO_END_ROUNDS passes; None when the run's data
    cannot be opened (moved, or a TFDS dataset offline)."""
    import tempfile

    from imgcls_cli.config import EvaluateConfig
    from imgcls_cli.reporting import SilentReporter

    try:
        from imgcls_cli.data.held_out import open_data

        split = open_data(run, EvaluateConfig(), SilentReporter()).split
    except ImgclsError:
        return None
    with tempfile.TemporaryDirectory(prefix="imgcls-benchmark-") as scratch:
        paths = (split.paths or [])[:END_TO_END_FILES] or write_files(split, Path(scratch))
        if not paths:
            return None
        # A small split is read round again: a pass of a few files would time mostly the
        # pipeline's set-up, which a predict run of any size pays once.
        distinct = len(paths)
        paths = (paths * -(-END_TO_END_FILES // distinct))[:END_TO_END_FILES]
        seconds = sorted(time_files(run, paths, batch_size) for _ in range(END_TO_END_ROUNDS))
    median = seconds[len(seconds) // 2]
    return {
        "files": len(paths),
        "distinct_files": distinct,
        "batch_size": batch_size,
        "images_per_second": len(paths) / median if median else 0.0,
    }


def write_files(split: Any, folder: Path) -> list[str]:
    """Up to END_TO_END_FILES images of a split without files, written as PNG files."""
    from PIL import Image

    paths = []
    for image, _ in split.dataset.take(END_TO_END_FILES):
        array = image.numpy()
        path = folder / f"{len(paths)}.png"
        Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(path)
        paths.append(str(path))
    return paths


def time_files(run: LoadedRun, paths: list[str], batch_size: int) -> float:
    """Seconds for one pass: files → model_inputs → the model, every batch."""
    import tensorflow as tf

    from imgcls_cli.data.folder import model_inputs

    started = time.perf_counter()
    batches, _, _ = model_inputs(paths, run.channels, run.image_size, batch_size)
    for images, _ in batches:
        run.predict_batch(tf.cast(images, tf.float32))
    return time.perf_counter() - started
