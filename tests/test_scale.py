"""Strategies, checkpoints and resume, run as real `imgcls train` processes."""

import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

# Slow enough per epoch (about 1-2 s) that a test can kill the run between checkpoints.
# simplecnn: the fastest model, and without batch normalization, whose statistics are each
# worker's own under MultiWorkerMirroredStrategy: every worker must end with the same weights.
SLOW_RUN = ["--arch", "simplecnn", "--image-size", "32", "--batch-size", "4", "--deterministic"]


def imgcls(*args, env=None, cwd=None, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "imgcls_cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        **kwargs,
    )


def finish(process, timeout=240):
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out + err


def history(run_dir: Path) -> list[dict]:
    with (run_dir / "history.csv").open() as handle:
        return list(csv.DictReader(handle))


def weights(run_dir: Path) -> list[np.ndarray]:
    import keras

    return keras.saving.load_model(run_dir / "model.keras", safe_mode=True).get_weights()


def wait_for(predicate, process, timeout=120):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, finish(process)[1]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def checkpoint_epochs(run_dir: Path) -> int:
    return (
        len(history(run_dir)) if (run_dir / "checkpoints" / "latest" / "checkpoint").exists() else 0
    )


@pytest.mark.slow  # starts imgcls
def test_killed_run_resumes_to_the_same_weights_as_an_uninterrupted_one(runner, cli_app, tmp_path):
    """With augmentation and mixup on: their random draws must replay too. The kill
    reaches a real process; the uninterrupted run and the resume run here."""
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    augmented = [*SLOW_RUN, "--augment", "standard", "--mixup", "0.2", "--epochs", "2"]
    process = imgcls("train", *augmented, "--output", str(killed))
    wait_for(lambda: checkpoint_epochs(killed) >= 1, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert len(history(killed)) < 2  # really killed before the end
    assert not (killed / "model.keras").exists()

    result = runner.invoke(cli_app, ["train", *augmented, "--output", str(whole)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli_app, ["train", "--resume", str(killed), "--quiet"])
    assert result.exit_code == 0, result.output
    drop_timing = lambda rows: [  # noqa: E731
        {k: v for k, v in row.items() if k not in ("seconds", "images_per_second")} for row in rows
    ]
    assert drop_timing(history(killed)) == drop_timing(history(whole))
    for a, b in zip(weights(killed), weights(whole), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow  # starts imgcls
def test_sigint_saves_a_checkpoint_and_exits_130(runner, cli_app, tmp_path):
    """The signal reaches a real process; the resume that follows runs here."""
    run_dir = tmp_path / "run"
    process = imgcls("train", *SLOW_RUN, "--epochs", "3", "--output", str(run_dir))
    wait_for(lambda: checkpoint_epochs(run_dir) >= 1, process)
    process.send_signal(signal.SIGINT)
    code, output = finish(process)
    assert code == 130, output
    assert f"imgcls train --resume {run_dir}" in output
    assert "Traceback" not in output
    stopped = re.search(r"Interrupted (after epoch \d+|at epoch \d+, after step \d+);", output)
    assert stopped, output
    result = runner.invoke(cli_app, ["train", "--resume", str(run_dir), "--epochs", "3"])
    assert result.exit_code == 0, result.output
    # The resume names the place the interruption named: one numbering.
    assert f"Resuming {stopped.group(1)}" in result.output
    assert len(history(run_dir)) == 3 and (run_dir / "model.keras").exists()


# The README's command for two replicas on one CPU (tests/test_readme.py leaves it to this test).
README_MIRRORED = "IMGCLS_CPU_REPLICAS=2 imgcls train --strategy mirrored"


@pytest.mark.slow  # starts imgcls
def test_mirrored_over_two_cpu_devices_matches_one_device_to_the_last_batch(
    runner, cli_app, tmp_path
):
    """The README's command, in a process of its own (the CPU is split before TensorFlow
    starts), against the same training on one device, run here. The digits' 1,211
    training images in batches of 55 over 2 replicas: the last batch holds one image, so
    one replica's part is empty (it once crashed oneDNN's convolution); the default
    convnet's batch normalization is synchronized across the replicas. Every image
    counts."""
    assert README_MIRRORED in (Path(__file__).parent.parent / "README.md").read_text()
    environment, _, *command = README_MIRRORED.split()
    name, value = environment.split("=")
    options = ["--epochs", "2", "--batch-size", "55"]
    mirrored, one = tmp_path / "mirrored", tmp_path / "one"
    code, output = finish(imgcls(*command, *options, "--output", str(mirrored), env={name: value}))
    assert code == 0, output
    assert "MirroredStrategy with 2 replicas" in output
    result = runner.invoke(cli_app, ["train", *options, "--output", str(one)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((mirrored / "metrics.json").read_text())
    assert (metrics["val"]["examples"], metrics["test"]["examples"]) == (136, 450)
    assert metrics["test"]["accuracy"] > 0.5
    losses = [[float(row["val_loss"]) for row in history(run)] for run in (mirrored, one)]
    # Dropout masks differ per replica, so the curves agree closely, not bit for bit.
    np.testing.assert_allclose(*losses, rtol=0.15, atol=0.025)
    # The log shows the first replica's part of the first batch: the same first images.
    from test_summaries import logged_images

    shown = [logged_images(run) for run in (mirrored, one)]
    assert len(shown[0]) == 8 and all(map(np.array_equal, *shown))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_multi_worker_without_tf_config_is_a_usage_error(runner, cli_app, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    result = runner.invoke(cli_app, ["train", "--strategy", "multi-worker", "-q"])
    assert result.exit_code == 2 and "TF_CONFIG" in result.output


@pytest.mark.parametrize("flag", ["--lr", "--arch"])
def test_resume_refuses_option_changes(runner, cli_app, tmp_path, flag):
    value = "0.1" if flag == "--lr" else "resnet8"
    result = runner.invoke(cli_app, ["train", "--resume", str(tmp_path), flag, value])
    assert result.exit_code == 2 and f"drop {flag}" in result.output


def test_mixed_precision_trains_on_cpu_with_bfloat16(runner, cli_app, tmp_path):
    result = runner.invoke(
        cli_app, ["train", "--mixed-precision", "--epochs", "1", "--output", str(tmp_path / "r")]
    )
    import keras

    keras.mixed_precision.set_global_policy("float32")  # leave the process as we found it
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["resolved"]["precision_policy"] == "mixed_bfloat16"
    model = keras.saving.load_model(tmp_path / "r" / "model.keras")
    assert model.get_layer("predictions").dtype_policy.compute_dtype == "float32"


SLURM_TASK = {
    "SLURM_JOB_ID": "42",
    "SLURM_STEP_NUM_TASKS": "2",
    "SLURM_STEP_NODELIST": "node[07-08]",
    "SLURM_STEP_TASKS_PER_NODE": "1(x2)",
}


COUNTING_WORKER = """
import json, sys
out = sys.argv.pop(1)
from imgcls_cli.data import folder
seen = []
real = folder.FileDecoder.started
def started(self, paths, routes):
    seen.extend(p.decode() for p in paths)
    return real(self, paths, routes)
folder.FileDecoder.started = started
try:
    from imgcls_cli.cli.app import main
    main()
finally:
    with open(out, "w") as handle:
        json.dump(seen, handle)
"""


def start_workers(data, run_dir, port, temp, counted_in=None):
    """Two tasks of a Slurm step on this node, as `srun --ntasks 2` starts them: no
    TF_CONFIG, the cluster comes from SlurmClusterResolver (ports `port` and the next).
    With `counted_in`, each worker runs COUNTING_WORKER and writes the files it decoded
    to decoded-INDEX.json there."""
    args = ["train", "--strategy", "multi-worker", "--data", str(data), "--cache", "none"]
    args += ["--val-split", "0", "--test-split", "0", *SLOW_RUN, "--arch", "convnet"]
    args += ["--epochs", "2", "--output", str(run_dir)]
    processes = []
    for index in range(2):
        slurm = {
            **SLURM_TASK,
            "SLURM_STEP_NODELIST": "localhost",
            "SLURM_STEP_TASKS_PER_NODE": "2",
            "SLURM_PROCID": str(index),
            "IMGCLS_SLURM_PORT": str(port),
            "CUDA_VISIBLE_DEVICES": "",
            "TMPDIR": str(temp),  # worker 1's scratch copy goes there
        }
        command = [sys.executable, "-m", "imgcls_cli"]
        if counted_in is not None:
            script = counted_in / "counting_worker.py"
            script.write_text(COUNTING_WORKER)
            command = [sys.executable, str(script), str(counted_in / f"decoded-{index}.json")]
        processes.append(
            subprocess.Popen(
                [*command, *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**{k: v for k, v in os.environ.items() if k != "TF_CONFIG"}, **slurm},
            )
        )
    return processes


@pytest.mark.slow  # starts imgcls
def test_a_restarted_cluster_resumes_and_each_worker_decodes_half_of_a_folder(tmp_path):
    """Two local Slurm tasks (the resolver path) train the default convnet on a folder;
    worker 1 is killed in epoch 2, the chief stops by itself saying what to do, and the
    restarted cluster resumes from the last checkpoint. In the resumed epoch each worker
    decodes its half of the files, counted in the workers: sharded before decoding, the
    worker with fewer files steps on (an empty batch), and both end with the same weights,
    batch-normalization statistics included (each worker normalizes its own batches in
    training; the statistics measured after each epoch are reduced across workers). Only
    rank 0 writes the run."""
    from conftest import make_class_folder

    run_dir = tmp_path / "shared" / "run"  # a folder every worker sees, as on a shared disk
    # 161 files in batches of 4: 40 steps an epoch over both workers, time enough to kill
    # a worker in epoch 2; an odd count, so one worker's last batch is empty.
    data = make_class_folder(tmp_path / "shared" / "data", classes="abcd", per_class=40)
    shutil.copy(data / "a" / "a_0.png", data / "a" / "a_extra.png")
    port = free_port()  # and the next one: Slurm's tasks on a node take consecutive ports
    temp = tmp_path / "temp"
    temp.mkdir()
    chief, worker = start_workers(data, run_dir, port, temp)
    wait_for(lambda: checkpoint_epochs(run_dir) >= 1, chief)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    # The chief notices the lost peer and stops by itself, with one line saying what to do.
    code, output = finish(chief, timeout=60)
    assert code == 1 and "Restart every worker" in output, output
    assert f"Worker 1 (localhost:{port + 1}) stopped answering" in output, output
    assert "function_node" not in output.splitlines()[-1]
    done_before = checkpoint_epochs(run_dir)
    assert done_before == 1  # the chief cannot finish epoch 2 without its peer
    scratch = lambda: [p.name.split("-")[2] for p in temp.glob("imgcls-worker-*")]  # noqa: E731
    assert scratch() == [str(worker.pid)]  # killed: left behind (TensorFlow's files aside)

    outputs = [finish(p) for p in start_workers(data, run_dir, port, temp, counted_in=tmp_path)]
    for code, output in outputs:
        assert code == 0, output
        assert f"Resuming after epoch {done_before}" in output
    assert [int(row["epoch"]) for row in history(run_dir)] == [1, 2]
    fingerprints = {re.search(r"weights ([0-9a-f]{16})", out).group(1) for _, out in outputs}
    assert len(fingerprints) == 1
    assert "Run saved to" in outputs[0][1] and "Worker done" in outputs[1][1]
    # The restarted worker removed the killed one's scratch folder, and its own at the end.
    assert scratch() == []

    # Worker 1 decodes its part of the resumed epoch: 80 or 81 files, not 161 (which part
    # moves with each epoch's shuffle), and once the fixed sample of training images that
    # batch-normalization statistics are measured on (at most 512: here all 161). The
    # chief, worker 0, decodes the other part and the same sample; the check allows it a
    # group of files more (none was seen on 2026-12-07: a resumed run logs no images, and
    # a new one logs those of the first batch it trains on).
    files = sorted(str(p) for p in data.rglob("*.png"))
    chief, other = [json.loads((tmp_path / f"decoded-{i}.json").read_text()) for i in range(2)]
    sample = len(files)
    assert len(other) - sample in (80, 81) and all(other.count(path) <= 2 for path in set(other))
    assert len(chief) - sample - (161 - (len(other) - sample)) in range(0, 65)
    assert sorted(set(chief) | set(other)) == files and not set(other) - set(files)
    assert all((chief + other).count(path) >= 2 for path in files)


NON_CHIEF = """
import sys, types
from pathlib import Path
from imgcls_cli.engine.devices import worker_dir

resolver = types.SimpleNamespace(
    task_type="worker",
    task_id=1,
    cluster_spec=lambda: types.SimpleNamespace(as_dict=lambda: {"worker": ["a:1", "b:2"]}),
)
scratch = worker_dir(Path(sys.argv[1]), types.SimpleNamespace(cluster_resolver=resolver))
(scratch / "checkpoints").mkdir()
(scratch / "checkpoints" / "ckpt-6.index").write_bytes(b"weights")
print(scratch, flush=True)
if sys.argv[2] == "error":
    raise RuntimeError("the chief stopped answering")
"""


@pytest.mark.parametrize("ending", ["error", "done"])
def test_a_non_chief_workers_scratch_folder_goes_on_every_exit(tmp_path, ending):
    """A worker that ends on an error (its peer lost) leaves no checkpoints behind, nor
    one that ends normally; one killed outright is removed by the next to start."""
    temp = tmp_path / "temp"
    temp.mkdir()
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    killed = temp / f"imgcls-worker-{gone.stdout.strip()}-abc"  # by a process that is gone
    (killed / "checkpoints").mkdir(parents=True)
    running = temp / f"imgcls-worker-{os.getpid()}-def"  # this process's: kept
    running.mkdir()
    other = temp / "imgcls-worker-xyz"  # not named by a process id: not judged
    other.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", NON_CHIEF, str(tmp_path / "run"), ending],
        capture_output=True,
        text=True,
        env={**os.environ, "TMPDIR": str(temp)},
    )
    assert done.returncode == (1 if ending == "error" else 0), done.stderr
    scratch = Path(done.stdout.strip())
    assert scratch.parent == temp and scratch.name.startswith("imgcls-worker-")
    assert sorted(p.name for p in temp.iterdir()) == sorted([running.name, other.name])


@pytest.mark.parametrize("rank", [0, 1])
def test_slurm_tasks_become_workers_without_tf_config(monkeypatch, rank):
    """Under srun (Slurm's variables, no TF_CONFIG) each task is a worker on its node at
    IMGCLS_SLURM_PORT, rank 0 the chief; on CPU-only nodes no GPU is assigned."""
    from imgcls_cli import backend
    from imgcls_cli.engine import devices

    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")  # no nvidia-smi: a CPU node
    for name, value in {**SLURM_TASK, "SLURM_PROCID": str(rank)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(devices.SLURM_PORT_ENV, "23456")
    resolver = devices.slurm_resolver()
    assert resolver.cluster_spec().as_dict() == {"worker": ["node07:23456", "node08:23456"]}
    assert (resolver.task_type, resolver.task_id) == ("worker", rank)
    assert backend.is_chief_task() is (rank == 0)
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_without_tf_config_or_slurm_multi_worker_says_what_to_set(monkeypatch):
    from imgcls_cli.engine import devices
    from imgcls_cli.errors import UsageError

    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setenv("SLURM_PROCID", "0")
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "1")  # a one-task step: nothing to join
    with pytest.raises(UsageError, match="TF_CONFIG .* or a Slurm step"):
        devices.create_strategy("multi-worker")


LOST = (
    "{{function_node __wrapped__CollectiveReduceV2_device_/job:worker/replica:0/task:0/"
    "device:CPU:0}} Collective ops is aborted by: Error reported from /job:worker/task:2: "
    "The following tasks are unhealthy (stopped sending heartbeats):\n"
    "/job:worker/replica:0/task:2\nThe tasks have crashed."
)


def test_a_lost_worker_is_named_by_index_and_address():
    from imgcls_cli.engine.devices import lost_peer_message

    def tf_config(workers, index):  # as cluster_of gives it, from TF_CONFIG or Slurm
        hosts = [f"10.0.0.{i}:2222" for i in range(workers)]
        return {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}

    line = lost_peer_message(LOST, tf_config(3, 0))
    assert line.startswith("Worker 2 (10.0.0.2:2222) stopped answering: it crashed, was ")
    assert "function_node" not in line and "\n" not in line
    assert line.endswith("training continues from the last checkpoint.")
    # No task in the error: with one peer, it is that one; with several, not guessed.
    reset = "recvmsg:Connection reset by peer"
    assert lost_peer_message(reset, tf_config(2, 1)).startswith("Worker 0 (10.0.0.0:2222) ")
    assert lost_peer_message(reset, tf_config(3, 1)).startswith("A worker of the cluster ")
    assert lost_peer_message(reset, {}).startswith("A worker of the cluster ")
