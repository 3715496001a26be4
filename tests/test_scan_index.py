"""The folder scan's index: a second start checks only files that changed."""

import json

import numpy as np
from conftest import make_class_folder, write_image

from imgcls_cli.config import DataConfig
from imgcls_cli.data import folder, scan_index
from imgcls_cli.data.factory import load_source


def count_checks(monkeypatch) -> list:
    checked = []
    real = folder.check_image
    monkeypatch.setattr(
        folder, "check_image", lambda path, *args: checked.append(path) or real(path, *args)
    )
    return checked


def test_a_second_scan_checks_only_new_or_changed_files(tmp_path, monkeypatch):
    monkeypatch.setenv("IMGCLS_CACHE_DIR", str(tmp_path / "cache"))
    root = make_class_folder(tmp_path / "shapes", per_class=5)
    checked = count_checks(monkeypatch)
    first = load_source(DataConfig(data=str(root)), seed=0)
    assert len(checked) == 10
    checked.clear()
    again = load_source(DataConfig(data=str(root)), seed=0)
    assert checked == []  # nothing decoded: every file unchanged
    assert again.splits["train"].paths == first.splits["train"].paths
    write_image(root / "circle" / "new.png", np.zeros((16, 16, 3), np.uint8))
    changed = root / "square" / "square_0.png"
    write_image(changed, np.full((16, 16, 3), 255, np.uint8))
    load_source(DataConfig(data=str(root)), seed=0)
    assert sorted(p.name for p in checked) == ["new.png", "square_0.png"]


def test_a_file_broken_since_the_last_scan_is_still_caught(tmp_path, monkeypatch):
    monkeypatch.setenv("IMGCLS_CACHE_DIR", str(tmp_path / "cache"))
    root = make_class_folder(tmp_path / "shapes", per_class=5)
    load_source(DataConfig(data=str(root)), seed=0)
    (root / "circle" / "circle_1.png").write_bytes(b"broken now")
    source = load_source(DataConfig(data=str(root)), seed=0)
    assert [path for path, _ in source.skipped] == [str(root / "circle" / "circle_1.png")]


def test_an_unwritable_cache_warns_once_and_the_scan_goes_on(tmp_path, monkeypatch):
    blocked = tmp_path / "cache-is-a-file"
    blocked.write_text("")
    monkeypatch.setenv("IMGCLS_CACHE_DIR", str(blocked))
    root = make_class_folder(tmp_path / "shapes", per_class=5)
    source = load_source(DataConfig(data=str(root)), seed=0)
    [warning] = [w for w in source.warnings if "scan index" in w]
    assert "IMGCLS_CACHE_DIR" in warning and source.splits["train"].num_examples > 0


def test_the_index_lives_in_the_cache_folder_not_in_the_data(tmp_path, monkeypatch):
    monkeypatch.setenv("IMGCLS_CACHE_DIR", str(tmp_path / "cache"))
    root = make_class_folder(tmp_path / "shapes", per_class=5)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    load_source(DataConfig(data=str(root)), seed=0)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    document = json.loads(scan_index.index_path(root).read_text())
    assert len(document["files"]) == 10 and "circle/circle_0.png" in document["files"]
