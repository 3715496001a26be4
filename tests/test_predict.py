"""`imgcls predict`: inputs of every kind, output schemas, and equality with the model."""

import csv
import functools
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import damaged_jpeg, damaged_png, make_class_folder, write_image

from imgcls_cli import rundir
from imgcls_cli.commands.predict import DIRECT_LIMIT


def predict(runner, app, *args, **kwargs):
    return runner.invoke(app, ["predict", *args], **kwargs)


def json_records(result):
    return [json.loads(line) for line in result.stdout.splitlines()]


def preprocessed(paths, image_size, channels):
    """The batch the model should see: the shared decoder and resize, stacked."""
    from imgcls_cli.data.images import load_image, prepare_images

    return np.stack(
        [
            prepare_images(load_image(p, channels, image_size), image_size, channels).numpy()
            for p in paths
        ]
    ).astype("float32")


@functools.lru_cache
def load_model(model_path):
    import keras

    return keras.saving.load_model(model_path, safe_mode=True)


def model_probabilities(run_dir, paths, flip=False):
    """The model called directly on the preprocessed batch (optionally flipped)."""
    model = load_model(str(run_dir / rundir.MODEL_FILE))
    _, height, width, channels = model.inputs[0].shape
    batch = preprocessed(paths, (height, width), channels)
    if flip:
        batch = batch[:, :, ::-1, :]
    return model(batch, training=False).numpy()


def probabilities_by_class(record, class_names):
    found = {entry["label"]: entry["probability"] for entry in record["top_k"]}
    return [found[name] for name in class_names]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Fresh images of the shapes classes, in nested folders."""
    root = tmp_path_factory.mktemp("photos")
    return make_class_folder(root / "photos", classes=("circle", "square", "tri"), seed=11)


def test_json_records_have_one_schema_and_probabilities_sum_to_one(
    runner, cli_app, shapes_run, photos
):
    paths = [str(photos / "circle" / "circle_0.png"), str(photos / "tri" / "tri_1.png")]
    result = predict(runner, cli_app, *paths, "--model", str(shapes_run), "--json")
    assert result.exit_code == 0, result.output
    records = json_records(result)
    assert [r["path"] for r in records] == paths
    assert [r["label"] for r in records] == ["circle", "tri"]
    for record in records:
        assert set(record) == {"path", "label", "confidence", "top_k", "error"}
        assert record["error"] is None and len(record["top_k"]) == 3
        assert sum(entry["probability"] for entry in record["top_k"]) == pytest.approx(1.0)
        assert record["top_k"][0] == {"label": record["label"], "probability": record["confidence"]}
        probabilities = [entry["probability"] for entry in record["top_k"]]
        assert probabilities == sorted(probabilities, reverse=True)


@pytest.mark.parametrize("count", [2, DIRECT_LIMIT + 5], ids=["direct", "batched"])
def test_results_equal_the_model_called_directly(runner, cli_app, shapes_run, photos, count):
    paths = sorted(str(p) for p in photos.rglob("*.png"))[:count]
    result = predict(
        runner, cli_app, *paths, "--model", str(shapes_run), "--json", "--batch-size", "4"
    )
    assert result.exit_code == 0, result.output
    expected = model_probabilities(shapes_run, paths)
    got = [probabilities_by_class(r, ["circle", "square", "tri"]) for r in json_records(result)]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def broken_inputs(folder):
    good = [str(folder / "circle" / "circle_2.png"), str(folder / "square" / "square_2.png")]
    bad = folder.parent / "bad"
    bad.mkdir(exist_ok=True)
    (bad / "zero.png").write_bytes(b"")
    (bad / "text.jpg").write_text("not an image")
    data = (folder / "tri" / "tri_2.png").read_bytes()
    (bad / "truncated.png").write_bytes(data[: len(data) // 2])
    damaged_png(folder / "tri" / "tri_2.png", bad / "damaged.png")
    reasons = {
        str(bad / "zero.png"): "empty file",
        str(bad / "text.jpg"): "not an image",
        str(bad / "truncated.png"): "truncated",
        str(bad / "missing.png"): "no such file",
        # TensorFlow's decoder refuses it: the reason in words, not TensorFlow's op text
        str(bad / "damaged.png"): "damaged image (its compressed data is corrupt)",
    }
    return good, reasons


@pytest.mark.parametrize("many", [False, True], ids=["direct", "batched"])
def test_broken_inputs_are_reported_and_the_rest_predicted(
    runner, cli_app, shapes_run, photos, many
):
    good, reasons = broken_inputs(photos)
    if many:  # enough inputs for the tf.data path
        good += sorted(str(p) for p in (photos / "tri").glob("*.png"))[:DIRECT_LIMIT]
    inputs = [good[0], *reasons, *good[1:]]
    result = predict(runner, cli_app, *inputs, "--model", str(shapes_run), "--json")
    assert result.exit_code == 1, result.output
    records = {r["path"]: r for r in json_records(result)}
    assert list(records) == inputs  # one record per input, in order
    for path, reason in reasons.items():
        assert records[path]["label"] is None and reason in records[path]["error"]
    for path in good:
        assert records[path]["error"] is None and records[path]["label"] in path
    assert f"5 of {len(inputs)} input(s) could not be read" in result.stderr


def test_all_good_exits_zero_and_table_lists_errors(runner, cli_app, shapes_run, photos):
    good, reasons = broken_inputs(photos)
    result = predict(runner, cli_app, *good, "--model", str(shapes_run))
    assert result.exit_code == 0, result.output
    assert "circle" in result.stdout and "square" in result.stdout
    missing = next(path for path, reason in reasons.items() if reason == "no such file")
    result = predict(runner, cli_app, good[0], missing, "--model", str(shapes_run))
    assert result.exit_code == 1 and "no such file" in result.stdout


def test_grayscale_into_rgb_model_and_rgb_into_grayscale_model(
    runner, cli_app, shapes_run, digits_run, tmp_path
):
    rng = np.random.default_rng(0)
    gray = write_image(tmp_path / "gray.png", rng.integers(0, 255, (30, 40), np.uint8), "L")
    wide = np.zeros((1, 3), np.uint16) + np.array([0, 30000, 65535], np.uint16)
    sixteen = write_image(tmp_path / "sixteen.png", np.repeat(wide, 5, axis=0))
    rgb = write_image(tmp_path / "rgb.png", rng.integers(0, 255, (20, 24, 3), np.uint8))
    for run_dir, paths in ((shapes_run, [gray, sixteen]), (digits_run, [rgb, sixteen])):
        paths = [str(p) for p in paths]
        result = predict(
            runner, cli_app, *paths, "--model", str(run_dir), "--json", "--top-k", "99"
        )
        assert result.exit_code == 0, result.output
        names = json.loads((run_dir / rundir.LABELS_FILE).read_text())
        got = [probabilities_by_class(r, names) for r in json_records(result)]
        np.testing.assert_allclose(got, model_probabilities(run_dir, paths), atol=1e-5)


def test_folders_are_searched_recursively_and_globs_expanded(
    runner, cli_app, shapes_run, photos, tmp_path
):
    nested = tmp_path / "album"
    shutil.copytree(photos / "circle", nested / "2024" / "circles")
    (nested / "notes.txt").write_text("skipped: not an image")
    (nested / ".hidden.png").write_bytes(b"")
    pattern = str(photos / "*" / "square_1*.png")
    result = predict(runner, cli_app, str(nested), pattern, "--model", str(shapes_run), "--json")
    assert result.exit_code == 0, result.output
    paths = [r["path"] for r in json_records(result)]
    natural = lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(p))]  # noqa: E731
    circles = sorted((str(p) for p in (nested / "2024" / "circles").glob("*.png")), key=natural)
    squares = sorted((str(p) for p in (photos / "square").glob("square_1*.png")), key=natural)
    assert paths == circles + squares and len(squares) == 3  # square_1, _10, _11


def test_a_folder_is_listed_in_natural_order(tmp_path):
    """img_2 before img_10, as a file browser lists them (and class folders are sorted)."""
    from imgcls_cli.commands.predict import expand_inputs

    for name in ("img_10.png", "img_2.png", "img_1.png", "b/img_3.png", "a10/x.png", "a9/x.png"):
        write_image(tmp_path / name, np.zeros((4, 4, 3), np.uint8))
    paths = [Path(item.path).relative_to(tmp_path) for item in expand_inputs([str(tmp_path)], str)]
    assert [str(p) for p in paths] == [
        "a9/x.png",
        "a10/x.png",
        "b/img_3.png",
        "img_1.png",
        "img_2.png",
        "img_10.png",
    ]
    globbed = expand_inputs([str(tmp_path / "img_*.png")], str)
    assert [Path(item.path).name for item in globbed] == ["img_1.png", "img_2.png", "img_10.png"]


def test_pattern_without_matches_is_reported(runner, cli_app, shapes_run, photos):
    result = predict(
        runner, cli_app, str(photos / "nothing*.png"), "--model", str(shapes_run), "--json"
    )
    assert result.exit_code == 1
    assert "no image files match" in json_records(result)[0]["error"]


def test_stdin_lists_paths(runner, cli_app, shapes_run, photos):
    paths = [str(photos / "tri" / "tri_4.png"), str(photos / "square" / "square_4.png")]
    stdin = "\n".join(paths) + "\n\n"
    result = predict(runner, cli_app, "-", "--model", str(shapes_run), "--json", input=stdin)
    assert result.exit_code == 0, result.output
    assert [(r["path"], r["label"]) for r in json_records(result)] == [
        (paths[0], "tri"),
        (paths[1], "square"),
    ]


def test_empty_stdin_is_a_usage_error(runner, cli_app, shapes_run):
    result = predict(runner, cli_app, "-", "--model", str(shapes_run), input="")
    assert result.exit_code == 2 and "stdin held no paths" in result.output


def test_csv_has_a_header_and_one_row_per_input(runner, cli_app, shapes_run, photos):
    paths = [str(photos / "circle" / "circle_5.png"), str(photos / "missing.png")]
    result = predict(runner, cli_app, *paths, "--model", str(shapes_run), "--csv")
    assert result.exit_code == 1
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == [
        "path",
        "label",
        "confidence",
        "label_2",
        "confidence_2",
        "label_3",
        "confidence_3",
        "error",
    ]
    assert rows[0]["label"] == "circle" and rows[0]["error"] == ""
    assert rows[1]["label"] == "" and rows[1]["error"] == "no such file"
    total = sum(float(rows[0][key]) for key in ("confidence", "confidence_2", "confidence_3"))
    assert total == pytest.approx(1.0, abs=1e-5)


def test_tta_averages_image_and_horizontal_flip(runner, cli_app, shapes_run, photos, tmp_path):
    run_dir = shutil.copytree(shapes_run, tmp_path / "run")  # as if trained with flips
    config = json.loads((run_dir / rundir.CONFIG_FILE).read_text())
    config["resolved"]["augment"]["flip"] = "horizontal"
    (run_dir / rundir.CONFIG_FILE).write_text(json.dumps(config))
    paths = [str(photos / "circle" / "circle_6.png"), str(photos / "square" / "square_6.png")]
    result = predict(runner, cli_app, *paths, "--model", str(run_dir), "--json", "--tta")
    assert result.exit_code == 0, result.output
    expected = model_probabilities(run_dir, paths) + model_probabilities(run_dir, paths, True)
    got = [probabilities_by_class(r, ["circle", "square", "tri"]) for r in json_records(result)]
    np.testing.assert_allclose(got, expected / 2, atol=1e-5)


def test_tta_is_skipped_for_runs_trained_without_horizontal_flips(
    runner, cli_app, shapes_run, photos, tmp_path
):
    run_dir = shutil.copytree(shapes_run, tmp_path / "run")
    config = json.loads((run_dir / rundir.CONFIG_FILE).read_text())
    config["resolved"]["augment"] = {"flip": "vertical"}
    (run_dir / rundir.CONFIG_FILE).write_text(json.dumps(config))
    path = str(photos / "circle" / "circle_7.png")
    result = predict(runner, cli_app, path, "--model", str(run_dir), "--json", "--tta")
    assert result.exit_code == 0, result.output
    assert "--tta skipped" in result.stderr and "vertical" in result.stderr
    got = probabilities_by_class(json_records(result)[0], ["circle", "square", "tri"])
    np.testing.assert_allclose(got, model_probabilities(run_dir, [path])[0], atol=1e-5)
    from imgcls_cli import api
    from imgcls_cli.reporting import ImgclsWarning

    with pytest.warns(ImgclsWarning, match=r"^tta=True skipped: .*vertical"):
        [record] = api.predict(run_dir, path, tta=True)
    assert record["label"] == json_records(result)[0]["label"]


def test_json_and_csv_together_is_a_usage_error(runner, cli_app, shapes_run, photos):
    result = predict(runner, cli_app, str(photos), "--json", "--csv")
    assert result.exit_code == 2 and "at most one of --json and --csv" in result.output


def test_symlink_loops_and_aliases_give_each_real_file_once(photos, tmp_path):
    from imgcls_cli.commands.predict import expand_inputs

    album = shutil.copytree(photos, tmp_path / "album")
    (album / "square" / "loop").symlink_to(".")  # the issue's `ln -s . square/loop`
    (album / "circle" / "up").symlink_to("..")
    (album / "alias.png").symlink_to(album / "tri" / "tri_3.png")
    first = str(album / "tri" / "tri_3.png")
    pattern = str(album / "**" / "*_3.png")
    for arguments in ([first, pattern], [first, str(album)], [first, str(album / "alias.png")]):
        paths = [item.path for item in expand_inputs(arguments, lambda: "")]
        real = [os.path.realpath(path) for path in paths]
        assert len(real) == len(set(real)), arguments
        assert paths[0] == first  # the first spelling is kept
    paths = [item.path for item in expand_inputs([pattern], lambda: "")]
    assert sorted(os.path.basename(path) for path in paths) == [
        "circle_3.png",
        "square_3.png",
        "tri_3.png",
    ]


def test_globs_keep_the_spelling_and_skip_hidden_files_like_glob(photos, monkeypatch):
    from imgcls_cli.commands.predict import glob_paths

    monkeypatch.chdir(photos.parent)
    assert glob_paths("./photos/*/tri_1?.png") == [
        "./photos/tri/tri_10.png",
        "./photos/tri/tri_11.png",
    ]
    hidden = photos / "tri" / ".tri_1x.png"
    shutil.copy(photos / "tri" / "tri_1.png", hidden)
    assert ".tri_1x.png" not in " ".join(glob_paths("photos/**/*1*.png"))
    assert glob_paths("photos/tri/.tri_1*.png") == ["photos/tri/.tri_1x.png"]
    assert glob_paths("pho**/tri/tri_1.png") == ["photos/tri/tri_1.png"]  # 'a**b' is 'a*b'


def test_undecodable_file_names_are_written_as_valid_utf8(
    runner, cli_app, shapes_run, photos, tmp_path
):
    name = tmp_path / os.fsdecode(b"\xff.png")  # a Latin-1 file name on a UTF-8 system
    shutil.copy(photos / "circle" / "circle_8.png", name)
    shown = str(tmp_path / "\\xff.png")
    for output in ("--json", "--csv", None):  # None: the table
        options = [output] if output else []
        result = predict(runner, cli_app, str(name), "--model", str(shapes_run), *options)
        assert result.exit_code == 0, result.output
        text = result.stdout_bytes.decode("utf-8")  # strict: raises on invalid bytes
        if output == "--json":
            assert json.loads(text)["path"] == shown
        elif output == "--csv":
            assert next(csv.DictReader(io.StringIO(text)))["path"] == shown
        else:  # the table folds a long path over lines: read the cells' text whole
            assert "\\xff.png" in re.sub(r"[\s│]", "", text)


@pytest.mark.parametrize("output", ["--json", "--csv"])
def test_closed_stdout_ends_quietly_with_exit_code_zero(shapes_run, photos, output):
    # The reader closes the pipe before any record is written, as `| head -1` does before
    # the rest (closing after one line would race the writer filling the pipe buffer).
    command = [sys.executable, "-m", "imgcls_cli", "predict", str(photos)]
    process = subprocess.Popen(
        [*command, "--model", str(shapes_run), output],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0, stderr
    assert stderr == ""


def test_what_libjpeg_prints_of_a_damaged_file_stays_off_the_terminal(shapes_run, tmp_path, capfd):
    """imgcls names the damaged file in its record; libjpeg's own lines, which its
    decoder writes to file descriptor 2 (seen here in this process), do not reach the
    terminal of the imgcls process."""
    import tensorflow as tf

    damaged = damaged_jpeg(tmp_path / "damaged.jpg")
    with pytest.raises(tf.errors.InvalidArgumentError):
        tf.io.decode_jpeg(tf.io.read_file(str(damaged)))
    assert "Corrupt JPEG data" in capfd.readouterr().err
    command = [sys.executable, "-m", "imgcls_cli", "predict", str(damaged)]
    quiet = subprocess.run(
        [*command, "--model", str(shapes_run), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert quiet.returncode == 1
    assert json.loads(quiet.stdout)["error"] == "damaged image (its compressed data is corrupt)"
    assert quiet.stderr.splitlines() == [
        "Error: 1 of 1 input(s) could not be read; their records say why."
    ]


def test_a_closed_stdout_ends_a_table_quietly():
    code = (
        "from rich.table import Table\n"
        "from imgcls_cli.cli import console\n"
        "table = Table('path')\n"
        "for i in range(5000):\n"
        "    table.add_row(f'image_{i}.png')\n"
        "console.print_result(table)\n"
    )
    # 5,000 rows overflow the pipe's buffer, so Python is still writing when head exits;
    # pipefail makes the pipeline's exit code Python's.
    process = subprocess.run(
        [
            "bash",
            "-o",
            "pipefail",
            "-c",
            f"{shlex.quote(sys.executable)} -c {shlex.quote(code)} | head -1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode == 0 and process.stderr == ""
    assert process.stdout.count("\n") == 1


def test_a_closed_pipe_does_not_end_the_work_that_writes_to_it(tmp_path):
    """`imgcls train … 2>&1 | head -1`: the reader goes after one line, and the training
    (here, lines on both consoles, then the work's last step) carries on to its end,
    exit code 0; Rich's own handler would exit 1 at the first write after."""
    finished = tmp_path / "finished"
    code = (
        "import sys\n"
        "from imgcls_cli.cli import console\n"
        "for i in range(3000):\n"
        "    console.err.print(f'Epoch {i}')\n"
        "    console.out.print(f'row {i}')\n"
        "open(sys.argv[1], 'w').write('saved')\n"
    )
    process = subprocess.run(
        [
            "bash",
            "-o",
            "pipefail",
            "-c",
            f"{shlex.quote(sys.executable)} -c {shlex.quote(code)} {finished} 2>&1 | head -1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode == 0, process.stderr
    assert finished.read_text() == "saved"


def test_the_table_keeps_names_whole_and_fits_80_columns():
    """Rich folded `img_1646.pn` / `g` at 80 columns: the table shows each path below
    the folder they share (named in its caption), and every column still fits."""
    from rich.console import Console

    from imgcls_cli.cli.console import predictions_table
    from imgcls_cli.commands.predict import Prediction

    folder = "/tmp/nu2-data/a-long-folder-name/digits"
    paths = [f"{folder}/0/img_0_0.png", f"{folder}/1/img_1_10.png", f"{folder}/9/img_1646.png"]
    top = [("sunflowers", 0.61), ("dandelion", 0.3), ("daisy", 0.094)]
    table = predictions_table([Prediction(path, top) for path in paths], top_k=3)
    console = Console(width=80, record=True, color_system=None)
    console.print(table)
    lines = console.export_text().splitlines()
    assert all(len(line) <= 80 for line in lines) and f"in {folder}" in lines[-1]
    rows = [line for line in lines if line.startswith("│ ")]
    shown = [row.split("│")[1].strip() for row in rows if row.split("│")[1].strip()]
    assert shown == ["0/img_0_0.png", "1/img_1_10.png", "9/img_1646.png"]
    assert all(row.rstrip().endswith("│") for row in rows)  # the last column is not cut
