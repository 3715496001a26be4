"""Every example script runs, in a quick mode (few epochs, embedded or generated data)."""

import csv
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_class_folder

EXAMPLES = Path(__file__).parent.parent / "examples"
IMGCLS = str(Path(sys.executable).parent / "imgcls")


def run(script, cwd, *args, **env):
    result = subprocess.run(
        ["bash", str(EXAMPLES / script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "IMGCLS": IMGCLS, "PYTHON": sys.executable, **env},
        timeout=300,
    )
    return result.returncode, result.stdout + result.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


pytestmark = pytest.mark.slow


def test_train_examples_and_predicting_a_folder_to_csv(tmp_path):
    code, output = run("train_mnist.sh", tmp_path, DATASET="digits", EPOCHS="1")
    assert code == 0, output
    assert (tmp_path / "runs" / "example-digits-simplecnn" / "evaluation.json").exists()
    code, output = run("train_cifar10.sh", tmp_path, DATASET="digits", EPOCHS="1", WARMUP="0")
    assert code == 0, output
    code, output = run(
        "predict_folder_to_csv.sh",
        tmp_path,
        str(EXAMPLES / "images"),
        "out.csv",
        MODEL=str(tmp_path / "runs" / "example-digits-simplecnn"),
    )
    assert code == 0, output
    with (tmp_path / "out.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(Path(row["path"]).name for row in rows) == sorted(
        p.name for p in (EXAMPLES / "images").iterdir()
    )


def test_ci_gate_passes_a_good_model_and_fails_an_impossible_bar(tmp_path):
    code, output = run("ci_gate.sh", tmp_path, EPOCHS="15", MIN_ACCURACY="0.9")
    assert code == 0, output
    report = json.loads((tmp_path / "runs" / "ci-gate.report.json").read_text())
    assert report["accuracy"] >= 0.9
    code, output = run("ci_gate.sh", tmp_path, EPOCHS="1", MIN_ACCURACY="1.01")
    assert code == 1 and "bar 1.01" in output


def test_finetune_example_offline(tmp_path):
    folder = make_class_folder(tmp_path / "flowers", classes=("daisy", "roses"), per_class=6)
    code, output = run(
        "finetune_flowers.sh",
        tmp_path,
        str(folder),
        WEIGHTS="none",
        IMAGE_SIZE="32",
        HEAD_EPOCHS="1",
        EPOCHS="0",
    )
    assert code == 0, output
    assert (tmp_path / "runs" / "example-finetune-mobilenetv2" / "model.keras").exists()


def test_multi_worker_example(tmp_path):
    code, output = run(
        "multi_worker_local.sh",
        tmp_path,
        EPOCHS="1",
        PORT0=str(free_port()),
        PORT1=str(free_port()),
    )
    assert code == 0, output
    run_dir = tmp_path / "runs" / "multi-worker-digits"
    assert (run_dir / "model.keras").exists()
    # Both workers end with the same weights; only the chief wrote (worker 1's scratch
    # folder is gone, and nothing else appeared).
    chief = re.search(r"Run saved to \S+ \(weights ([0-9a-f]{16})\)", output)
    worker = re.search(r"Worker done \(weights ([0-9a-f]{16})\)", output)
    assert chief and worker, output
    assert chief.group(1) == worker.group(1)
    assert json.loads((run_dir / "metrics.json").read_text())["weights_fingerprint"] == (
        chief.group(1)
    )
    assert [p.name for p in tmp_path.iterdir()] == ["runs"]
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["multi-worker-digits"]
