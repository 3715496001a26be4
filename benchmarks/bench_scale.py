"""Two workers against one on a photo folder (issue 17): total CPU time of the worker
processes for the same epochs with `--cache none`, where decoding dominates. Before the
input was sharded, every worker decoded every image, so two workers cost about twice the
CPU of one; now each decodes its half.

    python benchmarks/bench_scale.py [--files 1000] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_folder import make_folder
from common import print_table, save


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_workers(count: int, data: Path, output: Path, epochs: int) -> tuple[float, float, str]:
    """(CPU seconds of all workers, wall seconds, the chief's weights line)."""
    ports = [free_port() for _ in range(count)]
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    command = [
        sys.executable,
        "-m",
        "imgcls_cli",
        "train",
        "--strategy",
        "multi-worker",
        "--data",
        str(data),
        "--cache",
        "none",
        "--arch",
        "simplecnn",
        "--image-size",
        "64",
        "--epochs",
        str(epochs),
        "--val-split",
        "0",
        "--test-split",
        "0.2",
        "--output",
        str(output),
        "--quiet",
    ]
    cpu_before, started = children_cpu(), time.perf_counter()
    processes = [
        subprocess.Popen(
            command,
            env={
                **os.environ,
                "TF_CONFIG": json.dumps(
                    {"cluster": cluster, "task": {"type": "worker", "index": index}}
                ),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for index in range(count)
    ]
    outputs = [process.communicate()[0] for process in processes]
    if any(process.returncode for process in processes):
        raise SystemExit("a worker failed:\n" + "\n".join(out[-2000:] for out in outputs))
    return children_cpu() - cpu_before, time.perf_counter() - started, outputs[0][-200:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000, help="1024x768 JPEGs")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["IMGCLS_CACHE_DIR"] = str(Path(scratch) / "cache")
        data = make_folder(Path(scratch) / "photos", args.files, (1024, 768), 0)
        figures = {}
        for count in (1, 2):
            run_dir = Path(scratch) / f"run-{count}"
            cpu, wall, _ = run_workers(count, data, run_dir, args.epochs)
            metrics = json.loads((run_dir / "metrics.json").read_text())
            figures[f"{count}_workers"] = {
                "cpu_seconds": cpu,
                "wall_seconds": wall,
                "test_accuracy": metrics["test"]["accuracy"],
            }
    ratio = figures["2_workers"]["cpu_seconds"] / figures["1_workers"]["cpu_seconds"]
    figures["cpu_ratio"] = ratio
    rows = [
        (
            f"{count} worker(s)",
            f"CPU {figures[f'{count}_workers']['cpu_seconds']:.1f} s, wall "
            f"{figures[f'{count}_workers']['wall_seconds']:.1f} s",
        )
        for count in (1, 2)
    ]
    rows.append(("CPU time, 2 workers / 1", f"{ratio:.2f}x (goal ≤ 1.4x)"))
    print_table(
        f"{args.files} photos 1024x768 read at 64 px, --cache none, {args.epochs} epochs", rows
    )
    save("scale", figures)


if __name__ == "__main__":
    main()
