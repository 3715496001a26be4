"""`imgcls inspect`: the data report, checked against folders whose content is known."""

import json
import shutil

import pytest
from conftest import damaged_png, make_class_folder

from imgcls_cli import api


@pytest.fixture
def messy_folder(tmp_path):
    """train/ with 6 circles (one copied twice), a PNG damaged inside, 4 squares, a file
    that is no image and a circle filed as a square; test/ with 2 of each, one of them a
    copy of a training image (a leak)."""
    root = tmp_path / "shapes"
    make_class_folder(root / "train", per_class=6)
    make_class_folder(root / "test", per_class=2, seed=1)
    for i in (4, 5):
        (root / "train" / "square" / f"square_{i}.png").unlink()
    shutil.copy(root / "train/circle/circle_0.png", root / "train/circle/copy.png")
    shutil.copy(root / "train/circle/circle_2.png", root / "train/square/circle_as_square.png")
    damaged_png(root / "train/circle/circle_1.png", root / "train/circle/damaged.png")
    shutil.copy(root / "train/square/square_1.png", root / "test/square/leak.png")
    (root / "train" / "square" / "bad.png").write_bytes(b"not an image")
    return root


def test_report_counts_classes_finds_duplicates_leaks_and_unreadable_files(messy_folder):
    report = api.inspect(data=messy_folder, val_split=0.0)
    root = str(messy_folder)
    assert report["classes"] == ["circle", "square"]
    # Counted: the images training reads (the damaged PNG is only listed as unreadable).
    assert report["class_counts"] == {
        "circle": {"train": 7, "test": 2},
        "square": {"train": 5, "test": 3},
    }
    assert report["imbalance_ratio"] == pytest.approx(7 / 5)
    assert report["sizes"] == [{"size": "16x16", "images": 17}]
    assert report["modes"] == {"RGB": 17} and report["formats"] == {"PNG": 17}
    assert [item["path"] for item in report["unreadable"]] == [
        f"{root}/train/square/bad.png",
        f"{root}/train/circle/damaged.png",
    ]
    assert report["unreadable"][0]["reason"] == "not an image (format not recognised)"
    duplicates = report["duplicates"]
    assert sorted(duplicates["within_splits"], key=lambda item: item["file"]) == [
        {
            "split": "train",
            "file": f"{root}/train/circle/copy.png",
            "same_as": f"{root}/train/circle/circle_0.png",
        },
        {
            "split": "train",
            "file": f"{root}/train/square/circle_as_square.png",
            "same_as": f"{root}/train/circle/circle_2.png",
        },
    ]
    assert duplicates["across_splits"] == [
        {
            "split": "test",
            "file": f"{root}/test/square/leak.png",
            "train_file": f"{root}/train/square/square_1.png",
        }
    ]
    assert duplicates["different_classes"] == [
        {
            "file": f"{root}/train/square/circle_as_square.png",
            "class": "square",
            "same_as": f"{root}/train/circle/circle_2.png",
            "same_as_class": "circle",
        }
    ]
    assert "throughput" not in report


def test_json_output_and_throughput_through_the_cli(runner, cli_app, messy_folder):
    result = runner.invoke(
        cli_app, ["inspect", "--data", str(messy_folder), "--json", "--throughput"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    throughput = report["throughput"]
    assert (
        throughput["images"]
        == sum(report["split_sizes"].values())
        - report["split_sizes"].get("val", 0)
        - report["split_sizes"]["test"]
    )
    assert throughput["images_per_second"] > 0 and throughput["scan_seconds"] > 0
    assert throughput["image_size"] == [16, 16]


def test_the_terminal_report_warns_about_leaks(runner, cli_app, messy_folder):
    result = runner.invoke(cli_app, ["inspect", "--data", str(messy_folder)])
    assert result.exit_code == 0, result.output
    assert "leak.png is also in train" in result.stderr
    said = " ".join(result.stderr.split())
    assert "The same image in two classes: " in said and "circle_as_square.png (square) = " in said
    assert "Exact duplicates: 2 within splits, 1 across splits; 1 filed under two classes" in (
        result.stdout
    )


def test_embedded_digits_are_counted_without_files():
    report = api.inspect()
    assert sum(report["split_sizes"].values()) == 1797
    assert report["sizes"] == [{"size": "8x8", "images": 1797}] and report["modes"] == {"L": 1797}


@pytest.mark.parametrize("args", [["--data", "no/such/folder"], ["--dataset", "mnsit"]])
def test_missing_data_is_one_line(runner, cli_app, args):
    result = runner.invoke(cli_app, ["inspect", *args])
    assert result.exit_code in (1, 2) and len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_training_data_with_a_leak_says_so_in_one_line(messy_folder):
    """train and finetune print the source's warnings (data.prepare)."""
    from imgcls_cli.config import DataConfig
    from imgcls_cli.data.factory import load_source

    source = load_source(DataConfig(data=str(messy_folder), val_split=0.0), seed=0)
    [leak] = [w for w in source.warnings if "exact copies of training" in w]
    assert leak.startswith("1 val/test image(s) are exact copies of training images")
    assert "leak.png" in leak and "\n" not in leak
    [relabelled] = [w for w in source.warnings if "of another class" in w]
    assert relabelled == (
        "1 image(s) are exact copies of an image of another class (e.g. "
        f"{messy_folder}/train/square/circle_as_square.png, square = "
        f"{messy_folder}/train/circle/circle_2.png, circle): at most one of the two labels "
        f"is right; `imgcls inspect --data {messy_folder}` lists them all."
    )
    clean = messy_folder.parent / "clean"
    make_class_folder(clean / "train", per_class=4)
    make_class_folder(clean / "test", per_class=2, seed=1)
    assert load_source(DataConfig(data=str(clean)), seed=0).warnings == []


def test_inspect_decodes_every_file_and_names_those_damaged_inside(tmp_path):
    from test_folder import damage_inside, jpeg_folder

    root = jpeg_folder(tmp_path / "d", per_class=3)
    damage_inside(root / "b" / "2.jpg")
    report = api.inspect(data=root, val_split=0.0, test_split=0.0)
    assert report["unreadable"] == [
        {
            "path": str(root / "b" / "2.jpg"),
            "reason": "damaged image (its compressed data is corrupt)",
        }
    ]
