import json
import os

import pytest

from imgcls_cli import runs
from imgcls_cli.errors import RunDirError


def test_default_run_dirs_never_overwrite(tmp_path):
    first = runs.default_run_dir("train", "digits-simplecnn", root=tmp_path)
    assert first == tmp_path / "train-digits-simplecnn"
    first.mkdir()
    second = runs.default_run_dir("train", "digits-simplecnn", root=tmp_path)
    assert second == tmp_path / "train-digits-simplecnn-2"
    second.mkdir()
    assert runs.default_run_dir("train", "digits-simplecnn", root=tmp_path).name.endswith("-3")


def test_existing_explicit_output_is_refused_without_force(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model.keras").write_text("old")
    with pytest.raises(RunDirError, match="--force"):
        runs.prepare_run_dir(tmp_path / "run", "train", "x", force=False)
    assert runs.prepare_run_dir(tmp_path / "run", "train", "x", force=True) == tmp_path / "run"


def test_start_run_dir_empties_a_forced_directory(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "sub").mkdir(parents=True)
    (run_dir / "old.json").write_text("{}")
    runs.start_run_dir(run_dir)
    assert run_dir.is_dir() and list(run_dir.iterdir()) == []


def test_atomic_write_leaves_old_file_intact_when_writing_fails(tmp_path):
    path = tmp_path / "metrics.json"
    runs.write_json_atomic(path, {"accuracy": 0.5})

    class Unserializable:
        pass

    with pytest.raises(TypeError):
        runs.write_json_atomic(path, {"accuracy": Unserializable()})
    assert json.loads(path.read_text()) == {"accuracy": 0.5}
    assert os.listdir(tmp_path) == ["metrics.json"]  # no temporary file left behind


def test_atomic_write_uses_normal_file_mode(tmp_path):
    path = tmp_path / "labels.json"
    runs.write_json_atomic(path, ["a", "b"])
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_csv_rows_with_extra_keys_keep_every_column(tmp_path):
    path = tmp_path / "history.csv"
    runs.write_csv_atomic(
        path, [{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 0.5, "val_loss": 0.7}]
    )
    lines = path.read_text().splitlines()
    assert lines[0] == "epoch,loss,val_loss"
    assert lines[2] == "2,0.5,0.7"


def test_read_labels_explains_a_missing_file(tmp_path):
    with pytest.raises(RunDirError, match="labels.json is missing"):
        runs.read_labels(tmp_path)
