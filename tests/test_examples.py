"""Every example script runs, in a quick mode (few epochs, embedded or generated data)."""

import csv
import json
import os
import re
import shlex
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
    # 2 epochs of the default convnet reach about 97% on the digits' test split.
    code, output = run("ci_gate.sh", tmp_path, EPOCHS="2", MIN_ACCURACY="0.9")
    assert code == 0, output
    report = json.loads((tmp_path / "runs" / "ci-gate.report.json").read_text())
    assert report["accuracy"] >= 0.9
    # The same run against a bar no model reaches: the script's gate is under test, so a
    # stand-in for imgcls answers as the real one just did (train: that run is there;
    # evaluate --json: the report it printed above).
    stand_in = tmp_path / "imgcls-as-before"
    report_file = tmp_path / "runs" / "ci-gate.report.json"
    stand_in.write_text(
        f'#!/bin/sh\n[ "$1" = train ] && exit 0\n[ "$1" = evaluate ] && cat {report_file}.before\n'
    )
    stand_in.chmod(0o755)
    report_file.rename(f"{report_file}.before")
    code, output = run("ci_gate.sh", tmp_path, MIN_ACCURACY="1.01", IMGCLS=str(stand_in))
    assert code == 1 and f"test accuracy {report['accuracy']:.4f} (bar 1.01)" in output, output


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
    chief = re.search(r"^\[worker 0\] Run saved to \S+ \(weights ([0-9a-f]{16})\)", output, re.M)
    worker = re.search(r"^\[worker 1\] Worker done \(weights ([0-9a-f]{16})\)", output, re.M)
    assert chief and worker, output
    assert chief.group(1) == worker.group(1)
    assert json.loads((run_dir / "metrics.json").read_text())["weights_fingerprint"] == (
        chief.group(1)
    )
    assert [p.name for p in tmp_path.iterdir()] == ["runs"]
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["multi-worker-digits"]


def parse_train_command(arguments: list[str]):
    """The options `imgcls train` would run with (parsing only: a typo would raise)."""
    from typer.main import get_command

    from imgcls_cli.cli.app import app

    assert arguments[0] == "train", arguments
    return get_command(app).commands["train"].make_context("train", arguments[1:]).params


def test_slurm_script_runs_imgcls_under_srun_as_multi_worker():
    script = EXAMPLES / "slurm" / "train.sbatch"
    subprocess.run(["bash", "-n", str(script)], check=True)  # valid bash
    text = script.read_text()
    directives = dict(
        (*line[len("#SBATCH --") :].split("=", 1), "")[:2]  # --requeue has no value
        for line in text.splitlines()
        if line.startswith("#SBATCH --")
    )
    assert int(directives["nodes"]) >= 2 and directives["ntasks-per-node"] == "1"
    srun = " ".join(text.split("srun ", 1)[1].replace("\\\n", " ").split("\n", 1)[0].split())
    words = shlex.split(srun)
    assert words[0] == "$IMGCLS"
    params = parse_train_command(words[1:])
    assert params["strategy"].value == "multi-worker"
    assert str(params["output"]) == "$RUN_DIR"


def test_kubernetes_job_gives_each_pod_its_tf_config(tmp_path):
    """The manifests hold together (names, counts, volume), and the pod's script, run
    with a stand-in imgcls, builds a TF_CONFIG that names every pod and its own index."""
    import yaml

    documents = {
        d["kind"]: d
        for d in yaml.safe_load_all((EXAMPLES / "kubernetes" / "train-job.yaml").read_text())
    }
    service, job = documents["Service"], documents["Job"]
    # The claim comes with prepare-data.yaml, which is applied first.
    prepare = {
        d["kind"]: d
        for d in yaml.safe_load_all((EXAMPLES / "kubernetes" / "prepare-data.yaml").read_text())
    }
    claim = prepare["PersistentVolumeClaim"]
    for pod_spec in (job, prepare["Job"]):
        assert pod_spec["spec"]["template"]["spec"]["securityContext"]["fsGroup"] == 1000
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"]["job-name"] == job["metadata"]["name"]
    assert pod["subdomain"] == service["metadata"]["name"]
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == int(env["WORKERS"])
    assert pod["restartPolicy"] == "OnFailure"
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert "ReadWriteMany" in claim["spec"]["accessModes"]

    stand_in = tmp_path / "bin" / "imgcls"
    stand_in.parent.mkdir()
    stand_in.write_text('#!/bin/sh\nprintf "%s\\n" "$TF_CONFIG"\nprintf "%s\\n" "$@"\n')
    stand_in.chmod(0o755)
    outcome = subprocess.run(
        [*container["command"], container["args"][0]],
        env={
            **os.environ,
            **env,
            "JOB_COMPLETION_INDEX": "1",
            "PATH": f"{stand_in.parent}:{os.environ['PATH']}",
        },
        capture_output=True,
        text=True,
        check=True,
    )
    lines = outcome.stdout.splitlines()
    config = json.loads(lines[0])
    name, port = job["metadata"]["name"], env["PORT"]
    assert config == {
        "cluster": {
            "worker": [f"{name}-{i}.{service['metadata']['name']}:{port}" for i in range(2)]
        },
        "task": {"type": "worker", "index": 1},
    }
    params = parse_train_command(lines[1:])
    assert params["strategy"].value == "multi-worker"
    mount = container["volumeMounts"][0]["mountPath"]
    assert str(params["output"]).startswith(mount + "/")


def test_the_dockerfile_passes_hadolint_and_installs_what_make_install_installs_but_dev():
    root = EXAMPLES.parent
    outcome = subprocess.run(
        [str(Path(sys.executable).parent / "hadolint"), str(root / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert outcome.returncode == 0, outcome.stdout + outcome.stderr
    makefile = (root / "Makefile").read_text()
    installed = re.search(r'pip install --quiet -e "\.\[([\w,]+)\]"', makefile)
    dockerfile = (root / "Dockerfile").read_text()
    extras = re.search(r"^ARG EXTRAS=([\w,]+)$", dockerfile, re.M)
    assert installed and extras
    assert extras[1].split(",") == [name for name in installed[1].split(",") if name != "dev"]
    # Everything a run downloads or writes lands in the volume mounted at /runs.
    homes = dict(re.findall(r"(\w+)=(/\S+)", dockerfile.split("ENV", 1)[1]))
    assert set(homes) == {"IMGCLS_CACHE_DIR", "HF_HOME", "KERAS_HOME", "TFDS_DATA_DIR"}
    assert all(path.startswith("/runs/") for path in homes.values())


def test_the_cluster_examples_prepare_data_once_and_survive_preemption():
    import yaml

    from imgcls_cli import __version__

    folder = EXAMPLES / "kubernetes"
    prepare = next(
        d
        for d in yaml.safe_load_all((folder / "prepare-data.yaml").read_text())
        if d["kind"] == "Job"
    )
    train = {d["kind"]: d for d in yaml.safe_load_all((folder / "train-job.yaml").read_text())}
    for job in (prepare, train["Job"]):
        [container] = job["spec"]["template"]["spec"]["containers"]
        assert container["image"] == f"imgcls:{__version__}"
        assert container["imagePullPolicy"] == "IfNotPresent"
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    # The preparing Job reads the dataset the training command trains on, into its data_dir.
    [preparing] = prepare["spec"]["template"]["spec"]["containers"]
    command = train["Job"]["spec"]["template"]["spec"]["containers"][0]["args"][0]
    training_line = command.split("exec imgcls ", 1)[1].replace("\\\n", " ")
    training = parse_train_command(shlex.split(training_line))
    assert preparing["args"] == [
        "inspect",
        "--dataset",
        training["dataset"],
        "--data-dir",
        str(training["data_dir"]),
    ]

    script = (EXAMPLES / "slurm" / "train.sbatch").read_text()
    directives = [
        line[len("#SBATCH ") :] for line in script.splitlines() if line.startswith("#SBATCH ")
    ]
    assert "--requeue" in directives and "--signal=TERM@120" in directives
    body = [line for line in script.splitlines() if line and not line.startswith("#")]
    assert not any("inspect" in line for line in body)  # prepared before the job, on the login node
    assert any(line.startswith('source "$VENV/bin/activate"') for line in body)
    assert any("IMGCLS_SLURM_PORT=$((20000 + ${SLURM_JOB_ID:-0} % 20000))" in line for line in body)
