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


def test_a_class_whose_files_are_all_unreadable_is_named_with_why(tmp_path):
    root = make_class_folder(tmp_path / "d", classes=("cat", "dog", "owl"), per_class=3)
    for path in (root / "dog").iterdir():
        path.unlink()
    for name in ("a.png", "b.png"):
        (root / "dog" / name).write_text("not an image")
    for path in (root / "owl").iterdir():
        path.write_text("not an image")
    with pytest.raises(DataError) as refused:
        load_folder(root, config(root), seed=0)
    said = str(refused.value)
    assert said.startswith(f"Found images of only 1 class (cat) in {root}: classification ")
    assert "No file of dog, owl could be read: " in said and "dog/a.png (not an image" in said


def test_broken_symbolic_links_are_named(tmp_path):
    root = make_class_folder(tmp_path / "d", per_class=3)
    (root / "circle" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    (root / "square" / "more").symlink_to(tmp_path / "moved-folder")
    (root / "triangle").symlink_to(tmp_path / "moved-class")
    source = load_folder(root, config(root, val_split=0.0, test_split=0.0), seed=0)
    assert [(path.split("/")[-1], reason) for path, reason in source.skipped] == [
        ("gone.png", f"broken symbolic link to {tmp_path / 'nowhere.png'}")
    ]
    [warning] = source.warnings
    assert warning.startswith("Ignored 2 broken symbolic link(s)")
    assert f"{root / 'triangle'} → {tmp_path / 'moved-class'}" in warning
    assert f"{root / 'square' / 'more'} → {tmp_path / 'moved-folder'}" in warning


@pytest.mark.parametrize("val_split, instead", [(0.25, "validating on 25%"), (0.0, "no val")])
def test_empty_val_folder_warns_and_val_is_carved_from_train(tmp_path, val_split, instead):
    root = tmp_path / "d"
    make_class_folder(root / "train", per_class=8)
    (root / "val" / "circle").mkdir(parents=True)
    source = load_folder(root, config(root, val_split=val_split), seed=0)
    [warning] = source.warnings
    assert warning.startswith(f"{root / 'val'} has no readable images") and instead in warning
    expected_val = 4 if val_split else 0
    assert source.splits["val"].num_examples == expected_val
    assert source.splits["train"].num_examples == 16 - expected_val - 2  # 2 carved for test


def test_too_large_image_is_skipped_with_the_limit_as_reason(tmp_path):
    from test_images import png_header_only

    root = make_class_folder(tmp_path / "d", per_class=3)
    png_header_only(root / "circle" / "huge.png", 20_000, 20_000)
    source = load_folder(root, config(root, val_split=0.0, test_split=0.0), seed=0)
    [(path, reason)] = source.skipped
    assert path.endswith("huge.png") and "above imgcls' limit of 268 megapixels" in reason


def test_fingerprints_change_with_the_files_of_a_split(tmp_path):
    root = tmp_path / "d"
    make_class_folder(root / "train", per_class=4)
    make_class_folder(root / "test", per_class=2, seed=1)

    def fingerprints():
        return load_folder(root, config(root), seed=0).description["fingerprints"]

    before = fingerprints()
    assert before == fingerprints()  # stable: sorted relative paths and sizes
    assert before["test"]["images"] == 4 and len(before["test"]["sha256"]) == 16
    write_image(root / "test" / "circle" / "new.png", np.zeros((16, 16, 3), np.uint8))
    after = fingerprints()
    assert after["test"]["images"] == 5 and after["test"]["sha256"] != before["test"]["sha256"]
    assert after["train"] == before["train"]
    noise = np.random.default_rng(0).integers(0, 255, (16, 16, 3), np.uint8)
    write_image(root / "train" / "square" / "square_0.png", noise)  # edited: another size
    assert fingerprints()["train"]["sha256"] != before["train"]["sha256"]


def damage_inside(path):
    """Zero the start-of-scan header of a JPEG: the header and end marker stay intact, so
    only decoding finds out."""
    content = path.read_bytes()
    start = content.find(b"\xff\xda")
    path.write_bytes(content[: start + 2] + bytes(8) + content[start + 10 :])


def jpeg_folder(root, per_class):
    """Classes a and b of plain 16x16 JPEGs, i.jpg of grey level 40 * i."""
    for name in ("a", "b"):
        for i in range(per_class):
            write_image(root / name / f"{i}.jpg", np.full((16, 16, 3), 40 * i, np.uint8), "RGB")
    return root


def test_a_file_damaged_inside_is_skipped_while_streaming_and_named(tmp_path):
    from imgcls_cli.data.pipeline import create_batches

    root = jpeg_folder(tmp_path / "d", per_class=4)
    damage_inside(root / "a" / "0.jpg")
    source = load_folder(root, config(root, val_split=0.0, test_split=0.0), seed=0)
    assert source.skipped == [] and source.splits["train"].num_examples == 8
    for _ in range(2):  # every epoch drops it, and names it
        batches = create_batches(source.splits["train"], (8, 8), 3, 2, 3, shuffle_seed=0)
        assert sum(int(images.shape[0]) for images, _ in batches) == 7
        assert source.take_stream_failures() == [
            (str(root / "a" / "0.jpg"), "damaged image (its compressed data is corrupt)")
        ]


def test_files_in_flight_when_an_iterator_is_dropped_are_not_reported(tmp_path):
    from imgcls_cli.data.pipeline import create_batches

    root = make_class_folder(tmp_path / "d", per_class=20)
    source = load_folder(root, config(root, val_split=0.0, test_split=0.0), seed=0)
    batches = create_batches(source.splits["train"], (8, 8), 3, 2, 2, shuffle_seed=0)
    next(iter(batches))  # prefetching has started on more files than this batch
    assert source.take_stream_failures() == []


def test_files_checked_in_chunks_keep_their_order_and_reasons(tmp_path):
    """predict's header check runs chunks of files on threads: every file's answer comes
    back in input order, an unreadable file's reason beside it, across chunk borders."""
    from imgcls_cli.data.folder import CHECK_CHUNK, check_file, check_files

    folder = make_class_folder(tmp_path / "data", classes="ab", per_class=CHECK_CHUNK + 3)
    paths = sorted(str(path) for path in folder.rglob("*.png"))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    paths.insert(CHECK_CHUNK, str(broken))  # the first file of the second chunk
    paths.append(str(tmp_path / "missing.png"))
    results = check_files(paths)
    assert results == [check_file(path) for path in paths]
    assert [i for i, result in enumerate(results) if isinstance(result, str)] == [
        CHECK_CHUNK,
        len(paths) - 1,
    ]
