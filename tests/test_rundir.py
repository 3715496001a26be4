import json
import os

import pytest

from imgcls_cli import rundir
from imgcls_cli.errors import RunDirError, UsageError
from imgcls_cli.rundir.files import write_csv_atomic, write_json_atomic


def fake_run(path, command="train", **files):
    """A finished-looking run directory: imgcls' config.json plus the named files."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"command": command, "options": {}}))
    for name, text in files.items():
        (path / name.replace("_", ".")).write_text(text)
    return path


def test_default_run_dirs_are_claimed_and_never_shared(tmp_path):
    first = rundir.claim_run_dir(None, "train", "digits-simplecnn", False, root=tmp_path)
    second = rundir.claim_run_dir(None, "train", "digits-simplecnn", False, root=tmp_path)
    third = rundir.claim_run_dir(None, "train", "digits-simplecnn", False, root=tmp_path)
    assert first == tmp_path / "train-digits-simplecnn"
    assert (second.name, third.name) == ("train-digits-simplecnn-2", "train-digits-simplecnn-3")
    assert rundir.run_command(first) == "train"  # claimed at once, before training starts


def test_the_same_explicit_output_is_claimed_once(tmp_path):
    assert rundir.claim_run_dir(tmp_path / "run", "train", "x", False) == tmp_path / "run"
    with pytest.raises(RunDirError, match="already exists"):
        rundir.claim_run_dir(tmp_path / "run", "train", "x", False)


def test_an_empty_existing_folder_is_claimed_and_given_back_as_it_was(tmp_path):
    (tmp_path / "empty").mkdir()
    run_dir = rundir.claim_run_dir(tmp_path / "empty", "train", "x", False)
    rundir.release_claim(run_dir)
    assert (tmp_path / "empty").is_dir() and not any((tmp_path / "empty").iterdir())
    new_dir = rundir.claim_run_dir(tmp_path / "new", "train", "x", False)
    rundir.release_claim(new_dir)
    assert not new_dir.exists()


def test_release_keeps_a_run_that_started(tmp_path):
    run_dir = rundir.claim_run_dir(tmp_path / "run", "train", "x", False)
    rundir.write_run_config(run_dir, {"command": "train", "options": {}})
    rundir.release_claim(run_dir)
    assert rundir.run_command(run_dir) == "train"


@pytest.mark.parametrize("created", [True, False])
def test_a_run_stopped_before_its_first_checkpoint_is_given_back(tmp_path, created):
    """Its config.json and logs written, no checkpoint: nothing could be resumed, so what
    it wrote goes (the folder too when the claim made it); with a checkpoint, it stays."""
    if not created:
        (tmp_path / "empty").mkdir()
    output = tmp_path / ("empty" if not created else "new")
    run_dir = rundir.claim_run_dir(output, "train", "x", False)
    claim = rundir.claim_of(run_dir)
    rundir.write_run_config(run_dir, {"command": "train", "options": {}})
    (run_dir / "logs" / "train").mkdir(parents=True)
    (run_dir / "logs" / "train" / "events").write_text("started")
    rundir.release_claim(run_dir, claim)
    assert run_dir.is_dir() != created and not (run_dir.exists() and any(run_dir.iterdir()))
    kept = rundir.claim_run_dir(tmp_path / "kept", "train", "x", False)
    claim = rundir.claim_of(kept)
    (kept / "checkpoints" / "latest").mkdir(parents=True)
    (kept / "checkpoints" / "latest" / "checkpoint").write_text("epoch 1")
    rundir.release_claim(kept, claim)
    assert (kept / "checkpoints" / "latest" / "checkpoint").exists()


def test_another_processs_claim_is_not_ours_to_give_back(tmp_path):
    """A multi-worker run's other workers share the chief's folder: a worker that fails
    must not take the chief's claim for its own."""
    run_dir = rundir.claim_run_dir(tmp_path / "run", "train", "x", False)
    document = json.loads((run_dir / "config.json").read_text())
    document["claim"]["pid"] += 1
    (run_dir / "config.json").write_text(json.dumps(document))
    assert rundir.claim_of(run_dir) is None


@pytest.mark.parametrize("force", [False, True])
def test_a_folder_that_is_not_a_run_is_never_replaced(tmp_path, force):
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("key")
    (home / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="not an imgcls run directory"):
        rundir.claim_run_dir(home, "train", "x", force)
    assert (home / ".ssh" / "id_rsa").read_text() == "key"
    assert sorted(p.name for p in home.iterdir()) == [".ssh", "notes.txt"]


def test_a_run_holding_the_users_files_is_not_replaced(tmp_path):
    run_dir = fake_run(tmp_path / "run", model_keras="old")
    (run_dir / "my-notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="my-notes.txt"):
        rundir.claim_run_dir(run_dir, "train", "x", True)
    assert (run_dir / "my-notes.txt").read_text() == "mine"


def test_force_builds_beside_the_old_run_and_swaps_it_in_at_the_end(tmp_path):
    old = fake_run(tmp_path / "run", model_keras="old")
    staging = rundir.claim_run_dir(old, "train", "x", True)
    assert staging.parent == tmp_path and staging != old
    assert (old / "model.keras").read_text() == "old"  # intact while the new run trains
    rundir.write_run_config(staging, {"command": "train", "options": {"new": 1}})
    (staging / "model.keras").write_text("new")
    assert rundir.finish_run_dir(staging) == old
    assert (old / "model.keras").read_text() == "new"
    assert "replaces" not in json.loads((old / "config.json").read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no staging, no trash


def test_a_forced_run_that_never_starts_leaves_the_old_run_alone(tmp_path):
    old = fake_run(tmp_path / "run", model_keras="old")
    staging = rundir.claim_run_dir(old, "train", "x", True)
    rundir.release_claim(staging)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert (old / "model.keras").read_text() == "old"


def test_force_through_a_symlink_replaces_the_run_it_points_to(tmp_path):
    real = fake_run(tmp_path / "real", model_keras="old")
    (tmp_path / "link").symlink_to(real)
    staging = rundir.claim_run_dir(tmp_path / "link", "train", "x", True)
    assert staging.parent == tmp_path and staging.name.startswith("real.new-")
    rundir.write_run_config(staging, {"command": "train", "options": {}})
    (staging / "model.keras").write_text("new")
    rundir.finish_run_dir(staging)
    assert (tmp_path / "link").is_symlink() and (
        tmp_path / "link" / "model.keras"
    ).read_text() == "new"


def test_a_symlink_to_a_plain_folder_is_refused_and_its_target_kept(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "thesis.tex").write_text("years of work")
    (tmp_path / "link").symlink_to(docs)
    with pytest.raises(RunDirError, match="not an imgcls run"):
        rundir.claim_run_dir(tmp_path / "link", "train", "x", True)
    assert (docs / "thesis.tex").read_text() == "years of work"


@pytest.mark.parametrize("output", ["data", "data/inside", "."])
def test_output_may_not_overlap_the_data(tmp_path, output):
    (tmp_path / "data").mkdir()
    with pytest.raises(UsageError, match="overlaps the data folder"):
        rundir.check_apart_from_data(tmp_path / output, [tmp_path / "data"])
    rundir.check_apart_from_data(tmp_path / "elsewhere", [tmp_path / "data"])


def test_atomic_write_leaves_old_file_intact_when_writing_fails(tmp_path):
    path = tmp_path / "metrics.json"
    write_json_atomic(path, {"accuracy": 0.5})

    class Unserializable:
        pass

    with pytest.raises(TypeError):
        write_json_atomic(path, {"accuracy": Unserializable()})
    assert json.loads(path.read_text()) == {"accuracy": 0.5}
    assert os.listdir(tmp_path) == ["metrics.json"]  # no temporary file left behind


def test_atomic_write_uses_normal_file_mode(tmp_path):
    path = tmp_path / "labels.json"
    write_json_atomic(path, ["a", "b"])
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_csv_rows_with_extra_keys_keep_every_column(tmp_path):
    path = tmp_path / "history.csv"
    write_csv_atomic(path, [{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 0.5, "val_loss": 0.7}])
    lines = path.read_text().splitlines()
    assert lines[0] == "epoch,loss,val_loss"
    assert lines[2] == "2,0.5,0.7"


def test_read_labels_explains_a_missing_file(tmp_path):
    with pytest.raises(RunDirError, match="labels.json is missing"):
        rundir.read_labels(tmp_path)


def test_a_restarted_cluster_resumes_its_run_but_leaves_a_finished_one_alone(tmp_path):
    """Every worker of a multi-worker job reruns the same command: it resumes the run
    it finds unfinished; on a finished one it trains nothing and rewrites nothing, as on
    one machine (every worker that sees the shared disk refuses alike)."""
    from imgcls_cli.config import DataConfig, Strategy, TrainConfig
    from imgcls_cli.errors import OutputRefused

    config = TrainConfig(data=DataConfig(dataset="digits"), strategy=Strategy.multi_worker)
    run = tmp_path / "run"
    run.mkdir()
    write_json_atomic(run / rundir.CONFIG_FILE, {"command": "train", "options": config.to_dict()})
    write_csv_atomic(run / rundir.HISTORY_FILE, [{"epoch": 1, "loss": 1.0}])
    assert rundir.plan_run_dir(config, run, force=False) == (run, True)  # stopped: resumed
    (run / rundir.MODEL_FILE).write_text("the model")
    write_json_atomic(run / rundir.METRICS_FILE, {"epochs_trained": 1})
    before = {path.name: path.read_bytes() for path in run.iterdir()}
    with pytest.raises(OutputRefused, match="holds this run, finished"):
        rundir.plan_run_dir(config, run, force=False)
    assert {path.name: path.read_bytes() for path in run.iterdir()} == before
