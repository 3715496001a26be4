"""CSV label files (--data FILE.csv, or a folder holding train.csv): every refusal and
every skipped-row reason, read without TensorFlow; then a run on a CSV, evaluated,
inspected and previewed as a folder's run is."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import make_class_folder

from imgcls_cli.config import DataConfig, label_files
from imgcls_cli.data.label_table import read_label_table, read_label_tables
from imgcls_cli.errors import DataError, UsageError


def write_csv(path: Path, rows, header=("path", "label")) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        if header:
            writer.writerow(header)
        writer.writerows(rows)
    return path


def flat_images(root: Path, names) -> Path:
    """Empty files are enough for the listing: the scan reads them later."""
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        (root / name).write_bytes(b"")
    return root


def tables(csv_path, **options):
    return read_label_tables(DataConfig(data=str(csv_path), **options))


# --- Columns and structure -------------------------------------------------------------


def test_columns_are_found_by_name_in_any_case_and_extra_columns_are_ignored(tmp_path):
    flat_images(tmp_path, ["a.png", "b.png"])
    path = write_csv(
        tmp_path / "labels.csv",
        [["x", "a.png", "cat"], ["y", "b.png", "dog"]],
        header=("Width", "Image_Name", "Class"),
    )
    table = tables(path)["train"]
    assert table.rows == [(tmp_path / "a.png", "cat"), (tmp_path / "b.png", "dog")]
    assert table.skipped == []


def test_named_columns_win_and_a_missing_one_lists_the_columns(tmp_path):
    flat_images(tmp_path, ["a.png", "b.png"])
    path = write_csv(
        tmp_path / "t.csv", [["a.png", "b.png", "cat"]], header=("path", "other", "breed")
    )
    table = tables(path, path_column="OTHER", label_column="breed")["train"]
    assert table.rows == [(tmp_path / "b.png", "cat")]
    with pytest.raises(DataError, match=r"no column 'kind' \(--label-column\); its columns: path"):
        tables(path, label_column="kind")


def test_a_label_column_with_a_class_for_each_image_is_refused_for_training(tmp_path):
    """An id or caption column taken for the labels: every class of one image. Training
    refuses it before TensorFlow; evaluate scores such a table (one image a class)."""
    from imgcls_cli.data.factory import check_data, check_readable, listed_files

    folder = make_class_folder(tmp_path / "shapes", per_class=3, size=8)
    images = sorted(folder.rglob("*.png"))
    rows = [
        [path.relative_to(folder).as_posix(), f"photo {i}", path.parent.name, f"id{i}"]
        for i, path in enumerate(images)
    ]
    rows.append([rows[0][0], "photo 0", rows[0][2], "id0"])  # listed twice: skipped
    path = write_csv(folder / "labels.csv", rows, header=("file", "caption", "kind", "id"))
    with pytest.raises(DataError) as refused:
        check_data(DataConfig(data=str(path), label_column="caption"))
    assert refused.value.exit_code == 2
    assert str(refused.value) == (
        f"{path}'s label column 'caption' gives each of its 6 readable images a class of its "
        "own: a classifier needs several images of each class. If another column holds the "
        "classes, name it with --label-column NAME (columns: file, caption, kind, id); if "
        "this one does, add images."
    )
    check_data(DataConfig(data=str(path), label_column="kind"))  # 3 images a class
    # What evaluate checks (data.held_out): a test table of one image a class is scored.
    caption = DataConfig(data=str(path), label_column="caption")
    _, files = check_readable(listed_files(caption), path, min_classes=1)
    assert len(files["train"]) == 6
    # Four images: a toy table, taken as it is.
    four = write_csv(folder / "four.csv", rows[:4], header=("file", "caption", "kind", "id"))
    check_data(DataConfig(data=str(four), label_column="caption"))


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", r"is empty: expected a header row such as 'path,label'"),
        (b"a.png,cat\nb.png,dog\n", r"has no path column .* header row: a\.png, cat\); name it "),
        (b"file,size\na.png,3\n", r"has no label column .*--label-column NAME"),
        (b"path,label\na.png,cat\nb.png,dog,extra\n", r"line 3: 3 field\(s\) where the header"),
        (b"path,label\na.png,cat\nb.png,caf\xe9\n", r"line 3 is not UTF-8 text"),
        (b'path,label\n"a.png,cat\n', r"line 2: a quote opened here is not closed"),
        (b"path,label\n", r"has a header but no rows"),
        (b"path,label\ngone.png,cat\n", r"No usable row .* line 2: gone\.png: no such file"),
    ],
)
def test_structural_problems_refuse_in_one_line_naming_file_and_line(tmp_path, content, message):
    flat_images(tmp_path, ["a.png", "b.png"])
    path = tmp_path / "labels.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as error:
        tables(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)
    assert error.value.exit_code == 2


def test_a_byte_order_mark_and_blank_lines_are_fine(tmp_path):
    flat_images(tmp_path, ["a.png", "b.png"])
    path = tmp_path / "labels.csv"
    path.write_bytes("\ufeffpath,label\n\na.png,café\n\nb.png,dog\n".encode())
    assert [label for _, label in tables(path)["train"].rows] == ["café", "dog"]


def test_other_separators_and_windows_paths(tmp_path):
    images = flat_images(tmp_path / "images", ["a.png"])
    path = tmp_path / "semi.csv"
    path.write_text("path;label\nimages/a.png;cat\n")
    with pytest.raises(DataError, match=r"seems separated by ';', not commas"):
        tables(path)
    table = read_label_table(
        write_csv(tmp_path / "w.csv", [["images\\a.png", "cat"]]), tmp_path, None, None
    )
    assert table.rows == [(images / "a.png", "cat")]


def test_validation_labels_must_be_training_labels(tmp_path):
    flat_images(tmp_path, ["a.png", "b.png", "c.png"])
    write_csv(tmp_path / "train.csv", [["a.png", "cat"], ["b.png", "dog"]])
    write_csv(tmp_path / "val.csv", [["c.png", "bird"]])
    with pytest.raises(DataError, match=r"val\.csv has labels not in .*train\.csv: bird"):
        tables(tmp_path)


def test_table_options_without_a_label_file_and_an_images_folder_that_is_not_one(tmp_path):
    folder = make_class_folder(tmp_path / "shapes", per_class=1)
    with pytest.raises(UsageError, match="--label-column is for CSV label files"):
        DataConfig(data=str(folder), label_column="breed")
    path = write_csv(tmp_path / "labels.csv", [["a.png", "cat"]])
    with pytest.raises(DataError, match=r"--images .*nowhere is not a folder"):
        tables(path, images=str(tmp_path / "nowhere"))


# --- Rows that are skipped, each with its reason ------------------------------------------


def test_every_row_problem_skips_the_row_and_names_it(tmp_path):
    images = flat_images(tmp_path / "images", ["a.png", "b.png", "c.png", "d.png"])
    (tmp_path / "secret.png").write_bytes(b"")
    rows = [
        ["a.png", "cat"],
        ["b.png", "dog"],
        ["gone.png", "cat"],  # missing
        ["../secret.png", "cat"],  # leaves the images folder
        [str(tmp_path / "secret.png"), "cat"],  # absolute, elsewhere
        [str(images / "d.png"), "dog"],  # absolute, inside: fine
        ["c.png", ""],  # empty label
        ["", "cat"],  # empty path
        ["a.png", "cat"],  # the same again: listed twice
        ["b.png", "cat"],  # another label: both rows of b.png go
    ]
    table = read_label_table(write_csv(tmp_path / "t.csv", rows), images, None, None)
    assert table.rows == [(images / "a.png", "cat"), (images / "d.png", "dog")]
    reasons = dict(table.skipped)
    assert reasons["line 4"] == f"gone.png: no such file in {images}"
    assert reasons["line 5"] == f"../secret.png is outside the images folder {images}"
    assert reasons["line 6"].endswith(f"is outside the images folder {images}")
    assert reasons["line 8"] == "c.png: empty label"
    assert reasons["line 9"] == "empty path"
    assert reasons["line 10"] == "a.png is listed twice (line 2)"
    assert reasons["line 11"].startswith("b.png is labelled 'cat' here and 'dog' on line 3")
    assert reasons["line 3"] == "b.png: labelled again on line 11"  # skipped, so counted
    assert len(table.skipped) == 8 == len(rows) - len(table.rows)
    assert [line for line, _ in table.skipped] == [f"line {n}" for n in (3, 4, 5, 6, 8, 9, 10, 11)]


def test_a_name_without_extension_is_the_one_image_with_that_stem(tmp_path):
    """Planet's CSVs list train_0 for train_0.jpg; two images of one stem are ambiguous."""
    images = flat_images(tmp_path / "images", ["train_0.jpg", "train_1.png", "train_1.jpg"])
    (images / "train_2.txt").write_text("notes")
    rows = [["train_0", "haze"], ["train_1", "clear"], ["train_2", "clear"]]
    table = read_label_table(write_csv(tmp_path / "t.csv", rows), images, None, None)
    assert table.rows == [(images / "train_0.jpg", "haze")]
    reasons = dict(table.skipped)
    assert reasons["line 3"] == "train_1 matches 2 files: train_1.jpg, train_1.png"
    assert reasons["line 4"] == f"train_2: no such file in {images}"


def test_paths_resolve_beside_the_csv_or_in_its_images_folder(tmp_path):
    beside = tmp_path / "beside"
    flat_images(beside, ["a.png"])
    write_csv(beside / "labels.csv", [["a.png", "cat"]])
    assert tables(beside / "labels.csv")["train"].images == beside
    kaggle = tmp_path / "kaggle"
    flat_images(kaggle / "images", ["a.png"])
    write_csv(kaggle / "labels.csv", [["a.png", "cat"]])
    assert tables(kaggle / "labels.csv")["train"].rows == [(kaggle / "images" / "a.png", "cat")]


def test_a_folder_of_label_files_and_what_a_run_keeps_apart_from(tmp_path):
    write_csv(tmp_path / "train.csv", [["a.png", "cat"]])
    write_csv(tmp_path / "valid.csv", [["b.png", "cat"]])
    assert label_files(tmp_path) == {"train": tmp_path / "train.csv", "val": tmp_path / "valid.csv"}
    config = DataConfig(data=str(tmp_path))
    assert config.protected_paths == [tmp_path / "train.csv", tmp_path / "valid.csv"]
    assert DataConfig(data=str(tmp_path / "train.csv")).source_name == tmp_path.name
    make_class_folder(tmp_path / "train", per_class=1)  # split folders of classes win
    assert label_files(tmp_path) is None


# --- A run on a CSV ------------------------------------------------------------------------


def csv_dataset(root: Path, per_class: int, seed: int) -> Path:
    """A generated class folder turned into a Kaggle layout: images/ flat, train.csv with
    word labels, the files named without their class."""
    classes = ("golden retriever", "tabby cat", "red fox")
    folder = make_class_folder(root / "made", classes=classes, per_class=per_class, seed=seed)
    rows = []
    for index, path in enumerate(sorted(folder.rglob("*.png"))):
        target = root / "images" / f"img{index:03d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, target)
        rows.append([target.stem, path.parent.name])  # Planet-style: no extension
    shutil.rmtree(folder)
    write_csv(root / "labels.csv", rows, header=("image_id", "breed"))
    return root / "labels.csv"


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory):
    from typer.testing import CliRunner

    from imgcls_cli.cli.app import app

    root = tmp_path_factory.mktemp("csv")
    labels = csv_dataset(root / "kaggle", per_class=10, seed=0)
    run_dir = root / "runs" / "csv"
    options = ["--data", str(labels), "--label-column", "breed", "--image-size", "16"]
    result = CliRunner().invoke(
        app, ["train", *options, "--epochs", "3", "--batch-size", "8", "--output", str(run_dir)]
    )
    assert result.exit_code == 0, result.output
    return root, labels, run_dir


@pytest.mark.slow
def test_a_csv_trains_with_its_labels_as_class_names_and_records_the_source(csv_run):
    root, labels, run_dir = csv_run
    assert json.loads((run_dir / "labels.json").read_text()) == [
        "golden retriever",
        "red fox",
        "tabby cat",
    ]
    source = json.loads((run_dir / "config.json").read_text())["resolved"]["source"]
    assert source["kind"] == "csv" and source["path"] == str(labels)
    assert source["images"] == str(root / "kaggle" / "images")
    assert sum(part["images"] for part in source["fingerprints"].values()) == 30


@pytest.mark.slow
def test_a_csv_run_is_evaluated_on_its_own_split_and_on_another_csv(csv_run, runner, cli_app):
    root, labels, run_dir = csv_run
    result = runner.invoke(cli_app, ["evaluate", "--model", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert report["examples"] == 3 and report["data"]["kind"] == "csv"  # the carved test part

    other = csv_dataset(root / "other", per_class=4, seed=5)
    # Another CSV of the run's layout is read with the run's columns (--label-column breed).
    result = runner.invoke(
        cli_app,
        ["evaluate", "--model", str(run_dir), "--data", str(other), "--json"]
        + ["--output", str(root / "same-columns")],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output[result.output.index("{") :])["examples"] == 12
    renamed = root / "other" / "renamed.csv"  # a column that needs naming
    rows = list(csv.reader(other.open()))
    write_csv(renamed, rows[1:], header=("file_stem", "class"))
    result = runner.invoke(
        cli_app,
        ["evaluate", "--model", str(run_dir), "--data", str(renamed), "--json"]
        + ["--path-column", "file_stem", "--output", str(root / "other-report")],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert report["examples"] == 12 and report["accuracy"] > 0.6
    losses = [Path(item["path"]) for item in report["top_losses"]]  # by path, as folders
    assert losses and all(path.parent == root / "other" / "images" for path in losses)
    assert (root / "other-report" / "top_losses.png").exists()


@pytest.mark.slow
def test_inspect_and_augment_preview_read_a_csv_as_a_folder(csv_run, runner, cli_app, tmp_path):
    root, labels, _ = csv_run
    table = ["--data", str(labels), "--label-column", "breed"]
    result = runner.invoke(cli_app, ["inspect", *table, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    counts = report["class_counts"]
    assert report["classes"] == ["golden retriever", "red fox", "tabby cat"]
    assert sum(row["train"] + row["val"] + row["test"] for row in counts.values()) == 30
    messy = labels.parent / "messy.csv"
    messy.write_text(labels.read_text() + "gone,red fox\n")
    result = runner.invoke(cli_app, ["inspect", "--data", str(messy), "--label-column", "breed"])
    assert result.exit_code == 0, result.output
    assert "Skipped 1 row(s) of" in result.output and "gone: no such file" in result.output
    picture = tmp_path / "preview.png"
    result = runner.invoke(cli_app, ["augment-preview", *table, "--output", str(picture)])
    assert result.exit_code == 0, result.output
    assert picture.stat().st_size > 0


@pytest.mark.slow
def test_a_refused_csv_writes_nothing(runner, cli_app, tmp_path):
    (tmp_path / "labels.csv").write_bytes(b"path,label\na.png,cat,extra\n")
    result = runner.invoke(
        cli_app, ["train", "--data", str(tmp_path / "labels.csv"), "--output", str(tmp_path / "r")]
    )
    assert result.exit_code == 2, result.output
    assert "labels.csv line 2: 3 field(s)" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.csv"]


@pytest.mark.slow
def test_same_pixels_from_a_csv_row_and_from_the_file(tmp_path):
    """The CSV only lists files: the decoder is the folder's."""
    from imgcls_cli.data.factory import load_source

    labels = csv_dataset(tmp_path, per_class=2, seed=3)
    config = DataConfig(data=str(labels), label_column="breed", val_split=0.0, test_split=0.0)
    source = load_source(config, seed=0)
    split = source.splits["train"]
    from imgcls_cli.data.folder import model_input

    for (image, _), path in zip(split.dataset.as_numpy_iterator(), split.paths, strict=True):
        np.testing.assert_array_equal(image, model_input(path, source.channels, (16, 16)))


@pytest.mark.slow
def test_a_listed_file_that_is_not_an_image_is_skipped_by_the_scan(tmp_path):
    from imgcls_cli.data.factory import load_source

    labels = csv_dataset(tmp_path, per_class=2, seed=4)
    (tmp_path / "images" / "notes.png").write_text("not an image")
    with labels.open("a", newline="") as handle:
        csv.writer(handle).writerow(["notes", "red fox"])
    config = DataConfig(data=str(labels), label_column="breed", val_split=0.0, test_split=0.0)
    source = load_source(config, seed=0)
    assert source.splits["train"].num_examples == 6
    assert source.skipped == [
        (str(tmp_path / "images" / "notes.png"), "not an image (format not recognised)")
    ]


def test_relabelling_the_same_files_changes_the_fingerprints_a_resume_checks(tmp_path):
    """A CSV whose files stay and whose labels change would resume on other classes:
    the splits' fingerprints hold the labels; a run recorded before them is compared on
    its files alone."""
    from conftest import write_image

    from imgcls_cli.data.factory import carved_fingerprints
    from imgcls_cli.rundir.record import same_fingerprints

    images = tmp_path / "images"
    rows = []
    for i in range(20):
        write_image(images / f"{i}.png", np.full((8, 8, 3), 10 * i, np.uint8))
        rows.append([f"{i}.png", "cat" if i % 2 else "dog"])
    csv_path = write_csv(tmp_path / "train.csv", rows)
    config = DataConfig(data=str(csv_path), val_split=0.0, test_split=0.0)
    _, before = carved_fingerprints(config, 0)
    rows[0][1], rows[1][1] = rows[1][1], rows[0][1]  # the same files, two labels swapped
    write_csv(csv_path, rows)
    _, after = carved_fingerprints(config, 0)
    assert after["train"]["sha256"] == before["train"]["sha256"]  # the files are the same
    assert after["train"]["labels"] != before["train"]["labels"]
    assert not same_fingerprints(before["train"], after["train"])
    older = {key: before["train"][key] for key in ("images", "sha256")}
    assert same_fingerprints(older, after["train"])  # recorded without labels: files only
