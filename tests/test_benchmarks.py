"""Prepared benchmark scripts that must not rot before a machine runs them."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def run_script(monkeypatch, capsys, script: str, *args: str) -> str:
    """A benchmark script run as `python SCRIPT ARGS` would run it, in this process (its
    TensorFlow is started already: a fresh one would add 6 s per script), with the op
    determinism an earlier --deterministic test may have left on switched off, as in a
    fresh process (XLA refuses some deterministic ops). Returns stdout."""
    import runpy

    from tensorflow.python.framework import config

    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    monkeypatch.setattr(sys, "argv", [script, *args])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # restored after, whatever the script sets
    deterministic = config.is_op_determinism_enabled()
    config.disable_op_determinism()
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        if deterministic:
            config.enable_op_determinism()
    return capsys.readouterr().out


def test_the_gpu_check_wrapper_runs_the_script_with_its_arguments():
    outcome = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PYTHON": "echo", "PATH": "/usr/bin:/bin"},
    )
    assert (outcome.returncode, outcome.stdout) == (0, "benchmarks/gpu_check.py --dry-run\n")


@pytest.mark.slow  # about 30 s: trains three tiny runs
def test_gpu_check_dry_run_runs_every_step_on_the_cpu(monkeypatch, capsys):
    stdout = run_script(monkeypatch, capsys, "benchmarks/gpu_check.py", "--dry-run")
    figures = json.loads(stdout.strip().splitlines()[-1])
    assert figures["dry_run"] and figures["strategy"]["gpus"] == []
    rates = [
        *figures["resnet8_cifar_images_per_second"].values(),
        *figures["mobilenetv2_finetune_images_per_second"].values(),
        *figures["folder_pipeline_images_per_second"].values(),
        *(rate for arch in figures["xla_images_per_second"].values() for rate in arch.values()),
    ]
    assert len(rates) == 8 and all(rate > 0 for rate in rates)
    assert "GPU check (dry run, CPU)" in stdout


@pytest.mark.slow  # about 15 s: a sweep and three one-epoch runs on the digits
def test_lr_find_benchmark_dry_run_trains_the_grid_and_both_suggestions(monkeypatch, capsys):
    stdout = run_script(
        monkeypatch, capsys, "benchmarks/bench_lr_find.py", "--dry-run", "--datasets", "digits8"
    )
    figures = json.loads(stdout.strip().splitlines()[-1])
    digits = figures["results"]["digits8"]
    assert figures["dry_run"] and set(digits["rates"]) == {"0.001", "auto", "steepest"}
    [suggested] = digits["suggested_lrs"]
    assert 1e-7 < suggested < 10
