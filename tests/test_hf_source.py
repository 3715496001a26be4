"""Hugging Face datasets: a saved dataset and a Hub-layout Parquet folder train as a
folder does (same decoder, same pixels); every refusal is one line; the Hub path is
tested offline for its message."""

import io
import json
import socket
from pathlib import Path

import datasets  # noqa: E402 - the hf extra, which `make install` installs
import numpy as np
import pytest
from conftest import make_class_folder

from imgcls_cli.config import DataConfig
from imgcls_cli.errors import DataError, UsageError

CLASSES = ("golden retriever", "tabby cat", "red fox")


def png_bytes(path: Path) -> bytes:
    return path.read_bytes()


def make_dataset(root: Path, per_class: int = 6, seed: int = 0, size: int = 16):
    """A DatasetDict (train, test) of generated PNGs with a ClassLabel, from a class
    folder kept beside it (the same files, for comparing pixels)."""
    folder = make_class_folder(
        root / "folder", classes=CLASSES, per_class=per_class, size=size, seed=seed
    )
    files = sorted(folder.rglob("*.png"))
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=list(CLASSES)),
            "caption": datasets.Value("string"),
        }
    )
    table = datasets.Dataset.from_dict(
        {
            "image": [{"bytes": png_bytes(p), "path": None} for p in files],
            "label": [CLASSES.index(p.parent.name) for p in files],
            "caption": [p.parent.name for p in files],
        },
        features=features,
    )
    return folder, table.train_test_split(test_size=0.25, seed=0, stratify_by_column="label")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    folder, splits = make_dataset(root)
    splits.save_to_disk(str(root / "saved"))
    for name, split in splits.items():
        split.to_parquet(str(root / "parquet" / "data" / f"{name}-00000-of-00001.parquet"))
    return root, folder, splits


def test_names_and_options_are_checked_before_anything_is_read(tmp_path):
    from imgcls_cli.data.hf_source import parse_hub_name

    assert parse_hub_name("hf:beans") == ("beans", None)
    assert parse_hub_name("hf:user/food-101:small") == ("user/food-101", "small")
    for bad in ("hf:", "hf:a/b/c", "hf:x:y:z", "hf:../etc"):
        with pytest.raises(UsageError, match="expected hf:NAME"):
            parse_hub_name(bad)
    folder = make_class_folder(tmp_path / "shapes", per_class=1)
    with pytest.raises(UsageError, match="--image-column is for Hugging Face datasets"):
        DataConfig(data=str(folder), image_column="img")
    with pytest.raises(UsageError, match="--revision is for Hugging Face datasets"):
        DataConfig(dataset="mnist", revision="main")
    DataConfig(dataset="hf:beans", revision="main", label_column="labels")  # fine


def test_without_the_library_one_line_says_how_to_install_it(monkeypatch, runner, cli_app):
    import sys

    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets → ImportError
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "datasets" else real(name)
    )
    result = runner.invoke(cli_app, ["train", "--dataset", "hf:beans"])
    assert result.exit_code == 1
    assert "pip install 'imgcls[hf]'" in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_offline_a_hub_name_is_one_line_at_once_and_writes_nothing(
    runner, cli_app, tmp_path, monkeypatch, no_network
):
    """The Hub is unreachable and the name is not cached: refused before the datasets
    library is asked (or TensorFlow started)."""
    import time

    from imgcls_cli.data import hf_source

    def never(*args, **kwargs):
        raise AssertionError("the datasets library was asked")

    monkeypatch.setattr(hf_source, "require_datasets", never)
    monkeypatch.setattr(hf_source, "open_dataset", never)
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # an empty cache
    monkeypatch.chdir(tmp_path)
    started = time.monotonic()
    result = runner.invoke(cli_app, ["train", "--dataset", "hf:beans", "--epochs", "1"])
    assert time.monotonic() - started < 15
    assert result.exit_code == 1, result.output
    assert "hf:beans is not in the datasets cache and the Hub (huggingface.co) cannot be " in (
        result.output
    )
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize(
    "entry, cached",
    [
        (None, False),  # empty caches
        ("hub/datasets--AI-Lab-Makerere--beans", True),  # downloaded files
        ("datasets/ai-lab-makerere___beans", True),  # a prepared dataset
        ("hub/datasets--someone--beans_extra", False),  # another dataset
    ],
)
def test_offline_a_hub_name_not_in_the_caches_is_refused_before_loading(
    tmp_path, monkeypatch, no_network, entry, cached
):
    """check_hub_name runs before TensorFlow: offline, it looks in the libraries' caches
    under $HF_HOME without importing them, and refuses only where nothing is there."""
    from imgcls_cli.data.hf_source import check_hub_name

    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    if entry:
        (tmp_path / entry).mkdir(parents=True)
    if cached:
        check_hub_name("hf:AI-Lab-Makerere/beans")
        check_hub_name("hf:beans")  # the short name finds it too
        return
    with pytest.raises(DataError) as raised:
        check_hub_name("hf:AI-Lab-Makerere/beans")
    assert str(raised.value).startswith(
        "hf:AI-Lab-Makerere/beans is not in the datasets cache and the Hub (huggingface.co) "
        "cannot be reached"
    )


@pytest.mark.parametrize("command", ["train", "inspect", "augment-preview", "evaluate", "lr-find"])
def test_every_command_with_a_dataset_refuses_an_uncached_hub_name_offline(
    runner, cli_app, tmp_path, monkeypatch, no_network, command
):
    from imgcls_cli.data import hf_source

    def never(*args, **kwargs):
        raise AssertionError("the datasets library was asked")

    monkeypatch.setattr(hf_source, "require_datasets", never)
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli_app, [command, "--dataset", "hf:beans"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: hf:beans is not in the datasets cache"), result.output
    assert not any(tmp_path.iterdir())  # no run, report or picture begun


def test_hub_problems_read_as_one_line():
    from imgcls_cli.data.hf_source import hub_problem

    class GatedRepoError(Exception):
        pass

    class DatasetNotFoundError(Exception):
        pass

    gated = hub_problem("org/private", GatedRepoError("Access to dataset is restricted"), False)
    assert "is gated" in gated and "huggingface-cli login" in gated and "HF_TOKEN" in gated
    missing = hub_problem("nope", DatasetNotFoundError("Dataset 'nope' doesn't exist\nmore"), False)
    assert missing == "No dataset hf:nope on the Hugging Face Hub (Dataset 'nope' doesn't exist)."


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["saved", "parquet"])
def test_columns_splits_and_the_same_pixels_as_the_folder(saved, layout):
    from imgcls_cli.data.factory import load_source
    from imgcls_cli.data.folder import model_input

    root, folder, splits = saved
    source = load_source(DataConfig(data=str(root / layout), val_split=0.0), seed=0)
    assert source.class_names == list(CLASSES)
    assert source.description["kind"] == "hf"
    assert {name: s.num_examples for name, s in source.splits.items()} == {
        "train": len(splits["train"]),
        "val": 0,
        "test": len(splits["test"]),
    }
    by_bytes = {p.read_bytes(): p for p in folder.rglob("*.png")}
    test = splits["test"].cast_column("image", datasets.Image(decode=False))
    images = list(source.splits["test"].dataset.as_numpy_iterator())
    for (image, label), row in zip(images, test, strict=True):
        path = by_bytes[row["image"]["bytes"]]
        assert CLASSES[label] == path.parent.name
        np.testing.assert_array_equal(image, model_input(str(path), source.channels, (16, 16)))


@pytest.mark.slow
def test_refusals_name_the_columns(saved, tmp_path):
    from imgcls_cli.data.factory import load_source

    root, _, splits = saved
    data = str(root / "saved")
    cases = [
        ({"image_column": "caption"}, r"column 'caption' is string, not images; its columns: "),
        ({"label_column": "image"}, r"column 'image' is Image, not a class label"),
        (
            {"label_column": "nope"},
            r"no column 'nope' \(--label-column\); its columns: image \(Image\), label",
        ),
        ({"image_column": "nope"}, r"no column 'nope' \(--image-column\); its columns: "),
    ]
    for options, message in cases:
        with pytest.raises(DataError, match=message) as error:
            load_source(DataConfig(data=data, **options), seed=0)
        assert error.value.exit_code == 2  # the flags or the data must change
    no_images = tmp_path / "no-images"
    splits["train"].remove_columns(["image"]).save_to_disk(str(no_images))
    with pytest.raises(DataError, match=r"no image column; its columns: label \(ClassLabel\)"):
        load_source(DataConfig(data=str(no_images)), seed=0)
    no_labels = tmp_path / "no-labels"
    splits["train"].remove_columns(["label", "caption"]).save_to_disk(str(no_labels))
    with pytest.raises(DataError, match=r"no class label column; its columns: image \(Image\)"):
        load_source(DataConfig(data=str(no_labels)), seed=0)
    # A column of strings is a class when named: its values, sorted, are the classes.
    source = load_source(DataConfig(data=data, label_column="caption"), seed=0)
    assert source.class_names == sorted(CLASSES)


@pytest.mark.slow
def test_a_saved_dataset_trains_evaluates_and_records_its_source(saved, runner, cli_app):
    root, _, _ = saved
    run_dir = root / "run"
    result = runner.invoke(
        cli_app,
        ["train", "--data", str(root / "saved"), "--epochs", "3", "--batch-size", "8"]
        + ["--cache", "none", "--output", str(run_dir)],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((run_dir / "labels.json").read_text()) == list(CLASSES)
    source = json.loads((run_dir / "config.json").read_text())["resolved"]["source"]
    assert source["kind"] == "hf" and source["path"] == str(root / "saved")
    result = runner.invoke(cli_app, ["evaluate", "--model", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert report["examples"] == 5 and report["data"]["kind"] == "hf"
    # Other stored data: its own test split, as a folder's test/ would be.
    result = runner.invoke(
        cli_app,
        ["evaluate", "--model", str(run_dir), "--data", str(root / "parquet"), "--json"]
        + ["--output", str(root / "parquet-report")],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert (report["data"]["split"], report["examples"]) == ("test", 5)


def test_inspect_describes_stored_images_as_files(saved):
    """A saved dataset's images are encoded files kept in its table: inspect names their
    format and finds a copy by its bytes, as it does for a folder."""
    from imgcls_cli import api

    root, folder, _ = saved
    report = api.inspect(data=root / "saved", test_split=0.0)
    files = sorted(folder.rglob("*.png"))
    assert report["formats"] == {"PNG": len(files)} and report["unreadable"] == []
    assert report["modes"] == {"RGB": len(files)}
    assert report["duplicates"] == {
        "within_splits": [],
        "across_splits": [],
        "different_classes": [],
    }


def test_the_hub_probe_answers_offline_at_once():
    from imgcls_cli.data.hf_source import hub_reachable

    try:  # this machine has no route to huggingface.co; elsewhere the probe may succeed
        socket.create_connection(("huggingface.co", 443), timeout=1).close()
        online = True
    except OSError:
        online = False
    assert hub_reachable(timeout=1) is online


def test_a_row_without_an_image_is_skipped_and_named(tmp_path):
    from imgcls_cli.data.hf_source import StoredImages

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(2)})
    buffer = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (4, 4)).save(buffer, format="PNG")
    table = datasets.Dataset.from_dict(
        {"image": [{"bytes": buffer.getvalue(), "path": None}, None], "label": [0, 1]},
        features=features,
    )
    rows = list(StoredImages({"train": table}, "image").rows("train"))
    assert rows[0] == ("train/0", buffer.getvalue())
    assert rows[1] == ("train/1", "no image in this row")
