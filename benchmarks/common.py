"""Shared helpers for the benchmark scripts: timing statistics and result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS_DIR = Path(__file__).parent / "results"


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "runs": len(samples),
    }


def time_command(args: list[str], runs: int, env: dict | None = None) -> dict[str, float]:
    """Wall time of a whole command, `runs` times."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(args, check=False, capture_output=True, env={**os.environ, **(env or {})})
        samples.append(time.perf_counter() - started)
    return summary(samples)


def machine() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "cpu_count": str(os.cpu_count()),
        "platform": platform.platform(),
    }


def save(name: str, figures: dict) -> Path:
    """benchmarks/results/<name>.json, merged into results.json by run_all.py."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    document = {"benchmark": name, "machine": machine(), "command": " ".join(sys.argv), **figures}
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def print_table(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(label) for label, _ in rows)
    print(f"\n{title}")
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
