"""Folder sources: class discovery, ignored and skipped files, split folders, errors."""

import numpy as np
import pytest
from conftest import make_class_folder, write_image

from imgcls_cli.config import DataConfig
from imgcls_cli.data.folder import load_folder, sort_class_names
from imgcls_cli.errors import DataError


def config(root, **kwargs):
    return DataConfig(data=str(root), **kwargs)


def test_numeric_class_names_sort_numerically():
    assert sort_class_names(["10", "2", "1"]) == ["1", "2", "10"]
    assert sort_class_names(["b", "a", "10"]) == ["10", "a", "b"]


def test_messy_folder_skips_bad_files_and_names_them(tmp_path):
    root = make_class_folder(tmp_path / "d", per_class=5)
    (root / "circle" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (root / "circle" / "empty.png").write_bytes(b"")
    (root / "circle" / "notes.txt").write_text("not an image")
    (root / "square" / ".hidden.png").write_bytes(b"")
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 3] = 255
    write_image(root / "square" / "alpha.PNG", rgba, "RGBA")
    source = load_folder(root, config(root, val_split=0.0, test_split=0.0), seed=0)
    skipped = {path.split("/")[-1] for path, _ in source.skipped}
    assert skipped == {"broken.jpg", "empty.png"}
    assert source.class_names == ["circle", "square"]
    assert source.splits["train"].num_examples == 11  # 5 + 5 + the RGBA png
    assert source.channels == 3 and source.native_size == (16, 16)
    images = list(source.splits["train"].dataset.as_numpy_iterator())
    assert all(image.shape == (16, 16, 3) for image, _ in images)


def test_mixed_grayscale_and_colour_become_colour(tmp_path):
    root = tmp_path / "mixed"
    write_image(root / "a" / "1.png", np.zeros((8, 8), np.uint8), "L")
    write_image(root / "b" / "2.png", np.zeros((8, 8, 3), np.uint8))
    source = load_folder(root, config(root, val_split=0.0, test_split=0.0), seed=0)
    assert source.channels == 3
    shapes = {image.shape for image, _ in source.splits["train"].dataset.as_numpy_iterator()}
    assert shapes == {(8, 8, 3)}


def test_carved_splits_are_seeded_and_disjoint(tmp_path):
    root = make_class_folder(tmp_path / "d", per_class=20)
    a = load_folder(root, config(root), seed=1)
    b = load_folder(root, config(root), seed=1)
    c = load_folder(root, config(root), seed=2)
    assert a.splits["val"].paths == b.splits["val"].paths
    assert a.splits["val"].paths != c.splits["val"].paths
    assert a.splits["test"].paths == c.splits["test"].paths  # test carve ignores --seed
    parts = [set(a.splits[name].paths) for name in ("train", "val", "test")]
    assert sum(map(len, parts)) == 40 and len(set.union(*parts)) == 40


def test_split_folders_are_used_as_given(tmp_path):
    root = tmp_path / "d"
    make_class_folder(root / "train", per_class=6)
    make_class_folder(root / "val", per_class=2, seed=1)
    make_class_folder(root / "test", per_class=3, seed=2)
    source = load_folder(root, config(root), seed=0)
    sizes = {name: split.num_examples for name, split in source.splits.items()}
    assert sizes == {"train": 12, "val": 4, "test": 6}


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda root: None, "does not exist"),
        (lambda root: root.mkdir(), "No class sub-folders"),
        (lambda root: (root / "a").mkdir(parents=True), "No readable images"),
        (lambda root: make_class_folder(root, classes=("only",)), "only 1 class"),
    ],
)
def test_bad_folders_explain_themselves(tmp_path, setup, message):
    root = tmp_path / "d"
    setup(root)
    with pytest.raises(DataError, match=message):
        load_folder(root, config(root), seed=0)
