"""What imgcls must never do to a user's files, and bad input that must stay a usage error."""

import json
import os
import re
import subprocess
import sys

import pytest
from conftest import make_class_folder

from imgcls_cli import rundir


def train(runner, app, *args):
    return runner.invoke(app, ["train", "--quiet", *args])


def tree(root):
    """Every path below root with its content, to compare before and after."""
    return {
        str(path.relative_to(root)): path.read_bytes() if path.is_file() else None
        for path in sorted(root.rglob("*"))
    }


def test_force_never_empties_a_folder_that_is_not_a_run(runner, cli_app, tmp_path):
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("secret")
    (home / "thesis.tex").write_text("years of work")
    before = tree(home)
    result = train(runner, cli_app, "--epochs", "1", "--output", str(home), "--force")
    assert result.exit_code == 2  # refused: an output imgcls will not replace
    assert "not an imgcls run directory" in result.output
    assert tree(home) == before


def test_force_never_deletes_the_training_data(runner, cli_app, tmp_path):
    images = make_class_folder(tmp_path / "sc", per_class=4)
    before = tree(images)
    for output in (images, images / "circle", tmp_path):  # the data, inside it, around it
        result = train(runner, cli_app, "--data", str(images), "--output", str(output), "--force")
        assert result.exit_code == 2, result.output
        assert "overlaps the data folder" in result.output
    assert tree(images) == before


def test_a_forced_run_that_fails_leaves_the_earlier_run_intact(runner, cli_app, tmp_path):
    old = tmp_path / "run"
    old.mkdir()
    (old / "config.json").write_text(json.dumps({"command": "train", "options": {}}))
    (old / "model.keras").write_text("the earlier model")
    before = tree(tmp_path)
    empty = tmp_path / "no-classes"
    empty.mkdir()
    result = train(runner, cli_app, "--data", str(empty), "--output", str(old), "--force")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert tree(tmp_path) == {**before, "no-classes": None}  # no staging folder left either


def test_force_replaces_an_earlier_run_and_paths_print_as_given(runner, cli_app, tmp_path):
    output = tmp_path / "out[red]y" / "run[/]x"  # Rich markup: a style, a closing tag
    first = train(runner, cli_app, "--epochs", "1", "--output", str(output))
    assert first.exit_code == 0, first.output
    assert str(output) in first.stdout  # printed as it is, not applied or refused
    second = train(runner, cli_app, "--epochs", "2", "--seed", "3", "--output", str(output))
    assert second.exit_code == 2 and "--force" in second.output
    third = train(
        runner, cli_app, "--epochs", "2", "--seed", "3", "--output", str(output), "--force"
    )
    assert third.exit_code == 0, third.output
    assert json.loads((output / "config.json").read_text())["options"]["seed"] == 3
    assert rundir.epochs_trained(output) == 2
    assert sorted(p.name for p in output.parent.iterdir()) == ["]x"]  # no staging left
    # Resuming the finished run with fewer epochs than were trained would leave
    # config.json and the model disagreeing: refused, saying how to train it longer.
    fewer = runner.invoke(cli_app, ["train", "--resume", str(output), "--epochs", "1"])
    assert fewer.exit_code == 2 and "has finished (2 epoch(s) trained)" in fewer.output
    assert "with N above 2" in fewer.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seed", "-1"], "--seed must be between 0"),
        (["--lr", "inf"], "--lr must be a positive number"),
        (["--lr", "nan"], "--lr must be a positive number"),
        (["--weight-decay", "inf"], "--weight-decay must be a number"),
        (["--epochs", "99999999999999999999"], "--epochs must be between 1 and 100000"),
    ],
)
def test_bad_numbers_are_usage_errors(runner, cli_app, tmp_path, args, message):
    result = train(runner, cli_app, *args, "--output", str(tmp_path / "run"))
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "options, message",
    [
        ({"batch_size": 2.5}, "Bad batch_size 2.5 in config: expected int"),
        ({"scale_lr": "false"}, 'Bad scale_lr "false" in config: expected bool'),
        ({"seed": "x"}, 'Bad seed "x" in config: expected int'),
        ({"epochs": True}, "Bad epochs true in config: expected int"),
    ],
)
def test_config_files_with_wrong_types_are_refused(runner, cli_app, tmp_path, options, message):
    config = tmp_path / "config.json"
    options = {"data": {"dataset": "digits"}, **options}
    config.write_text(json.dumps({"command": "train", "options": options}))
    result = train(runner, cli_app, "--config", str(config), "--output", str(tmp_path / "run"))
    assert result.exit_code == 2 and message in result.output, result.output


@pytest.mark.slow  # starts imgcls
def test_two_runs_started_together_get_their_own_directories(tmp_path):
    command = [sys.executable, "-m", "imgcls_cli", "train", "--epochs", "1", "--quiet"]
    command += ["--arch", "simplecnn"]  # the quickest: the race is for the directory
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    workers = [
        subprocess.Popen(
            [*command, "--seed", str(seed)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    outputs = [worker.communicate(timeout=240) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    names = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert names == ["train-digits-simplecnn", "train-digits-simplecnn-2"]
    saved = set()
    for seed, (stdout, _) in zip((1, 2), outputs):
        # "Run saved to runs/NAME (weights FINGERPRINT)": that directory holds this run only.
        run_dir, fingerprint = re.search(r"Run saved to (\S+) \(weights (\w+)\)", stdout).groups()
        config = json.loads((tmp_path / run_dir / "config.json").read_text())
        metrics = json.loads((tmp_path / run_dir / "metrics.json").read_text())
        assert config["options"]["seed"] == seed
        assert metrics["weights_fingerprint"] == fingerprint
        saved.add(run_dir)
    assert len(saved) == 2
