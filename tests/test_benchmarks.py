"""Prepared benchmark scripts that must not rot before a machine runs them."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.slow  # about 30 s: trains three tiny runs
def test_gpu_check_dry_run_runs_every_step_on_the_cpu():
    outcome = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
    )
    assert outcome.returncode == 0, outcome.stderr[-3000:]
    figures = json.loads(outcome.stdout.strip().splitlines()[-1])
    assert figures["dry_run"] and figures["strategy"]["gpus"] == []
    rates = [
        *figures["resnet8_cifar_images_per_second"].values(),
        *figures["mobilenetv2_finetune_images_per_second"].values(),
        *figures["folder_pipeline_images_per_second"].values(),
        *(rate for arch in figures["xla_images_per_second"].values() for rate in arch.values()),
    ]
    assert len(rates) == 8 and all(rate > 0 for rate in rates)
    assert "GPU check (dry run, CPU)" in outcome.stdout


@pytest.mark.slow  # about 15 s: a sweep and three one-epoch runs on the digits
def test_lr_find_benchmark_dry_run_trains_the_grid_and_both_suggestions():
    outcome = subprocess.run(
        [sys.executable, "benchmarks/bench_lr_find.py", "--dry-run", "--datasets", "digits8"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert outcome.returncode == 0, outcome.stderr[-3000:]
    figures = json.loads(outcome.stdout.strip().splitlines()[-1])
    digits = figures["results"]["digits8"]
    assert figures["dry_run"] and set(digits["rates"]) == {"0.001", "auto", "steepest"}
    [suggested] = digits["suggested_lrs"]
    assert 1e-7 < suggested < 10
