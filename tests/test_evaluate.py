"""`imgcls evaluate` on real runs: separable data, deliberately wrong labels, the CI gate."""

import csv
import json
import shutil

import numpy as np
import pytest
from conftest import make_class_folder, write_image

from imgcls_cli import rundir
from imgcls_cli.reporting import SilentReporter


class Recorder(SilentReporter):
    def __init__(self):
        self.warnings = []

    def warning(self, message):
        self.warnings.append(message)


def evaluate(runner, app, *args):
    return runner.invoke(app, ["evaluate", *args])


def test_separable_run_scores_perfectly_on_its_own_test_split(runner, cli_app, shapes_run):
    result = evaluate(runner, cli_app, "--model", str(shapes_run))
    assert result.exit_code == 0, result.output
    report = json.loads((shapes_run / "evaluation.json").read_text())
    assert report["data"]["split"] == "test" and report["data"]["kind"] == "folder"
    # The run's config carved 10% of 60 images, stratified: 2 per class.
    assert report["examples"] == 6
    assert report["accuracy"] == 1.0
    assert report["confusion_matrix"]["matrix"] == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]
    assert "top_k" not in report  # 3 classes: top-5 would say nothing
    for name in ("confusion_matrix.csv", "confusion_matrix.png"):
        assert (shapes_run / name).stat().st_size > 0
    assert "accuracy" in result.stdout and "100.00%" in result.stdout


def write_mislabelled_folder(root):
    """13 images whose folder (the true label) is wrong for 3 of them, counted by hand:
    circle/ 4 circles; square/ 3 squares + 2 circles; tri/ 3 tris + 1 square."""
    source = make_class_folder(root / "fresh", classes=("circle", "square", "tri"), seed=7)
    placements = {
        "circle": [("circle", i) for i in range(4)],
        "square": [("square", i) for i in range(3)] + [("circle", 10), ("circle", 11)],
        "tri": [("tri", i) for i in range(3)] + [("square", 10)],
    }
    target = root / "eval"
    for folder, images in placements.items():
        (target / folder).mkdir(parents=True)
        for actual, index in images:
            name = f"{actual}_{index}.png"
            shutil.copy(source / actual / name, target / folder / name)
    return target


def test_deliberately_wrong_labels_match_a_hand_count(runner, cli_app, shapes_run, tmp_path):
    data = write_mislabelled_folder(tmp_path)
    output = tmp_path / "report"
    result = evaluate(
        runner,
        cli_app,
        "--model",
        str(shapes_run / rundir.MODEL_FILE),
        "--data",
        str(data),
        "--output",
        str(output),
    )
    assert result.exit_code == 0, result.output
    report = json.loads((output / "evaluation.json").read_text())
    assert report["data"]["split"] == "all" and report["examples"] == 13
    assert report["confusion_matrix"]["matrix"] == [[4, 0, 0], [2, 3, 0], [0, 1, 3]]
    assert report["accuracy"] == pytest.approx(10 / 13)
    assert "The accuracy, 77% on 13 images, could be anything from 50% to 92% on new " in (
        " ".join(result.output.split())
    )
    per_class = {row["class"]: row for row in report["per_class"]}
    assert per_class["circle"]["precision"] == pytest.approx(4 / 6)
    assert per_class["square"]["recall"] == pytest.approx(3 / 5)
    assert per_class["tri"]["precision"] == 1.0 and per_class["tri"]["recall"] == 0.75
    assert [row["support"] for row in report["per_class"]] == [4, 5, 4]

    with open(output / "mistakes.csv", newline="") as handle:
        mistakes = list(csv.DictReader(handle))
    assert sorted((row["true"], row["predicted"]) for row in mistakes) == [
        ("square", "circle"),
        ("square", "circle"),
        ("tri", "square"),
    ]
    assert {row["path"].split("/")[-1] for row in mistakes} == {
        "circle_10.png",
        "circle_11.png",
        "square_10.png",
    }
    assert (output / "mistakes.png").stat().st_size > 0
    assert report["mistakes_files"] == ["mistakes.csv", "mistakes.png", "top_losses.png"]
    assert (output / "top_losses.png").stat().st_size > 0
    # The worst answers by loss, highest first: the three mistakes lead.
    losses = [row["loss"] for row in report["top_losses"]]
    assert len(losses) == 13 and losses == sorted(losses, reverse=True)
    assert {row["path"].split("/")[-1] for row in report["top_losses"][:3]} == {
        "circle_10.png",
        "circle_11.png",
        "square_10.png",
    }
    assert not (shapes_run / "mistakes.csv").exists()  # --output: the run dir is untouched


def test_copies_of_the_training_images_in_other_data_are_named(
    runner, cli_app, shapes_run, tmp_path
):
    """The run's own folder copied whole: its training images are copies the model has
    seen (its val and test images are not counted); fresh images are not flagged."""
    record = json.loads((shapes_run / rundir.CONFIG_FILE).read_text())["resolved"]
    copied = shutil.copytree(record["source"]["path"], tmp_path / "copied")
    result = evaluate(runner, cli_app, "--model", str(shapes_run), "--data", str(copied))
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert (
        f"{record['split_sizes']['train']} of the 60 images scored are the run's training "
        "images or copies of them (e.g. "
    ) in said
    assert "the model trained on them, so the accuracy overstates how it does on new" in said
    fresh = write_mislabelled_folder(tmp_path / "fresh")
    result = evaluate(runner, cli_app, "--model", str(shapes_run), "--data", str(fresh))
    assert result.exit_code == 0, result.output
    assert "the run's training images or copies" not in result.output


@pytest.mark.parametrize("threshold, code", [("0.9", 1), ("0.75", 0)])
def test_min_accuracy_gate(runner, cli_app, shapes_run, tmp_path, threshold, code):
    data = write_mislabelled_folder(tmp_path)  # accuracy 10/13 = 0.769
    result = evaluate(
        runner,
        cli_app,
        "--model",
        str(shapes_run),
        "--data",
        str(data),
        "--output",
        str(tmp_path / "out"),
        "--min-accuracy",
        threshold,
        "--json",
    )
    assert result.exit_code == code, result.output
    report = json.loads(result.stdout)
    assert report["accuracy"] == pytest.approx(10 / 13)  # JSON only
    gate = {"required": float(threshold), "passed": code == 0}
    assert report["min_accuracy"] == gate
    assert json.loads((tmp_path / "out" / "evaluation.json").read_text())["min_accuracy"] == gate
    # The gate's line, after the one that says how little 13 images tell.
    said = result.stderr.strip().splitlines()
    assert said[0].startswith("Warning: The accuracy, 77% on 13 images, could be anything")
    if code:
        assert said[1:] == [
            "Error: Accuracy 0.7692 is below --min-accuracy 0.9000 by 0.1308 (13.08 percentage "
            "points)."
        ]
    else:
        assert len(said) == 1


def test_digits_evaluation_reproduces_the_test_metrics_of_training(runner, cli_app, digits_run):
    result = evaluate(runner, cli_app, "--model", str(digits_run), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    trained = json.loads((digits_run / rundir.METRICS_FILE).read_text())["test"]
    # The same 450 held-out images, so the same numbers as training's own test pass.
    assert report["examples"] == trained["examples"] == 450
    assert report["accuracy"] == pytest.approx(trained["accuracy"], abs=1e-6)
    assert report["loss"] == pytest.approx(trained["loss"], rel=1e-4)
    assert report["top_k"]["k"] == 5 and report["top_k"]["accuracy"] >= report["accuracy"]
    assert sum(row["support"] for row in report["per_class"]) == 450
    assert "confidence interval" not in result.output  # 450 images: a score to go by
    assert report["mistakes"] == []  # embedded data has no file paths


def test_data_without_paths_leaves_earlier_mistake_files_alone(
    runner, cli_app, digits_run, tmp_path
):
    earlier = {"mistakes.csv": b"path,true,predicted\n", "mistakes.png": b"earlier"}
    for name, content in earlier.items():  # from an earlier evaluation on folder data
        (tmp_path / name).write_bytes(content)
    (tmp_path / "evaluation.json").write_text(json.dumps({"model": "x", "confusion_matrix": {}}))
    result = evaluate(runner, cli_app, "--model", str(digits_run), "--output", str(tmp_path))
    assert result.exit_code == 0, result.output
    for name, content in earlier.items():  # not written by this invocation: kept as they were
        assert (tmp_path / name).read_bytes() == content
    report = json.loads((tmp_path / "evaluation.json").read_text())
    assert report["mistakes"] == [] and report["mistakes_files"] == []  # none listed this time


def test_evaluate_other_split_and_top_k(runner, cli_app, digits_run, tmp_path):
    result = evaluate(
        runner,
        cli_app,
        "--model",
        str(digits_run),
        "--split",
        "val",
        "--top-k",
        "2",
        "--output",
        str(tmp_path),
        "--json",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    config = json.loads((digits_run / rundir.CONFIG_FILE).read_text())
    assert report["examples"] == config["resolved"]["split_sizes"]["val"]
    assert report["top_k"]["k"] == 2


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--min-accuracy", "90"], 2, "--min-accuracy is a fraction"),
        (["--top-k", "0"], 2, "--top-k must be at least 1"),
        (["--top-k", "3"], 2, "--top-k must be below the model's 3 classes"),  # always 100%
        (["--dataset", "digits", "--data", "x"], 2, "at most one"),
        (["--data", "/no/such/folder"], 1, "does not exist"),
    ],
)
def test_bad_options_give_one_line(runner, cli_app, shapes_run, args, code, message):
    result = evaluate(runner, cli_app, "--model", str(shapes_run), *args)
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0]


def test_a_folder_of_only_unknown_classes_is_refused(runner, cli_app, shapes_run, tmp_path):
    data = make_class_folder(tmp_path / "other", classes=("cat", "dog"), per_class=2)
    result = evaluate(runner, cli_app, "--model", str(shapes_run), "--data", str(data))
    assert result.exit_code == 1
    assert "None of the data's classes is one the model knows (cat, dog)" in result.output


def test_images_of_unknown_classes_are_scored_apart(runner, cli_app, shapes_run, tmp_path):
    data = make_class_folder(tmp_path / "other", classes=("cat", "circle"), per_class=3)
    out = tmp_path / "out"
    args = ("--model", str(shapes_run), "--data", str(data), "--output", str(out), "--json")
    result = evaluate(runner, cli_app, *args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["examples"] == 3  # the circles: the only class the model knows
    [cat] = report["unknown_classes"]
    assert cat["class"] == "cat" and cat["images"] == 3
    assert sum(cat["predicted"].values()) == 3 and set(cat["predicted"]) <= {
        "circle",
        "square",
        "tri",
    }
    rows = {row["class"]: row for row in report["per_class"]}
    assert rows["circle"]["support"] == 3 and rows["circle"]["recall"] is not None
    assert rows["square"]["support"] == 0 and rows["square"]["f1"] is None
    assert report["macro_avg"]["recall"] == rows["circle"]["recall"]
    warnings = result.stderr
    assert "3 image(s) of 1 class(es) the model does not know were left out" in warnings
    assert "no images of 2 of the model's 3 classes (square, tri)" in warnings
    assert json.loads((out / "evaluation.json").read_text())["unknown_classes"] == [cat]


def test_a_folder_of_one_class_is_scored(runner, cli_app, shapes_run, tmp_path):
    data = make_class_folder(tmp_path / "new", classes=("square",), per_class=4)
    args = ("--model", str(shapes_run), "--data", str(data), "--output", str(tmp_path / "o"))
    result = evaluate(runner, cli_app, *args, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["examples"] == 4 and report["unknown_classes"] == []
    assert report["macro_avg"]["recall"] == pytest.approx(report["accuracy"])
    table = evaluate(runner, cli_app, *args).stdout  # the table marks the classes apart
    rows = [line for line in table.splitlines() if "no images" in line]
    assert len(rows) == 2 and "circle" in rows[0] and "tri" in rows[1]


def test_dataset_option_scores_another_source_resized_to_the_model(
    runner, cli_app, digits_run, tmp_path, monkeypatch
):
    import tensorflow_datasets as tfds

    from imgcls_cli.data import tfds_source

    # Mocked TFDS never downloads, but the fail-fast offline check would still fire.
    monkeypatch.setattr(tfds_source, "network_available", lambda timeout=3.0: True)
    with tfds.testing.mock_data(num_examples=20):
        result = evaluate(
            runner,
            cli_app,
            "--model",
            str(digits_run),
            "--dataset",
            "mnist",
            "--data-dir",
            str(tmp_path / "tfds"),
            "--output",
            str(tmp_path / "out"),
            "--json",
        )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    # 28x28 mnist mocks into an 8x8 digits model; class names '0'…'9' match by name.
    assert report["data"]["kind"] == "tfds" and report["data"]["split"] == "test"
    assert report["examples"] == 20
    assert sum(sum(row) for row in report["confusion_matrix"]["matrix"]) == 20


def folder_run(tmp_path, folder, with_fingerprints=True):
    """A run that trained on `folder`, as config.json records it (no model needed)."""
    from imgcls_cli.config import DataConfig
    from imgcls_cli.data.factory import load_source
    from imgcls_cli.rundir.load import LoadedRun
    from imgcls_cli.rundir.record import RunRecord

    source = load_source(DataConfig(data=str(folder)), seed=0)
    description = dict(source.description)
    if not with_fingerprints:  # a run from before fingerprints were recorded
        description.pop("fingerprints")
    config = {
        "command": "train",
        "options": {"data": {"data": str(folder)}, "seed": 0},
        "resolved": {"source": description},
    }
    record = RunRecord.from_dict(config)
    return LoadedRun(tmp_path / "run", None, source.class_names, record, (16, 16), 3)


@pytest.mark.parametrize("with_fingerprints", [True, False])
def test_evaluating_a_changed_training_folder_warns_in_one_line(tmp_path, with_fingerprints):
    from imgcls_cli.config import EvaluateConfig
    from imgcls_cli.data.held_out import open_data

    folder = tmp_path / "shapes"
    make_class_folder(folder / "train", per_class=6)
    make_class_folder(folder / "test", per_class=2, seed=1)
    run = folder_run(tmp_path, folder, with_fingerprints)
    messages = Recorder()
    open_data(run, EvaluateConfig(), messages)
    assert messages.warnings == []  # unchanged: evaluates as before
    for i in range(3):
        write_image(folder / "test" / "circle" / f"new_{i}.png", np.zeros((16, 16, 3), np.uint8))
    data = open_data(run, EvaluateConfig(), messages)
    assert data.split.num_examples == 7
    if not with_fingerprints:
        assert messages.warnings == []
        return
    [message] = messages.warnings
    assert message.startswith(f"The test images of {folder} changed since the run was trained")
    assert "(4 then, 7 now;" in message


def test_an_image_that_vanishes_while_scored_is_left_out_and_mistakes_name_the_right_files(
    shapes_run, tmp_path
):
    from imgcls_cli.commands.evaluate import evaluate as score
    from imgcls_cli.config import EvaluateConfig
    from imgcls_cli.data.held_out import open_data
    from imgcls_cli.rundir.load import open_run

    folder = write_mislabelled_folder(tmp_path)
    run = open_run(shapes_run, SilentReporter())
    data = open_data(run, EvaluateConfig(data=str(folder)), SilentReporter())
    vanished = folder / "circle" / "circle_0.png"  # listed before the mistakes below it
    vanished.unlink()
    report = score(run, data, EvaluateConfig(data=str(folder))).report
    assert report["examples"] == 12
    assert report["unreadable"] == [{"path": str(vanished), "reason": "no such file"}]
    assert {m["path"].split("/")[-1] for m in report["mistakes"]} == {
        "circle_10.png",
        "circle_11.png",
        "square_10.png",
    }


def test_output_files_of_the_same_names_that_evaluate_did_not_write_are_kept(
    runner, cli_app, shapes_run, tmp_path
):
    output = tmp_path / "thesis"
    output.mkdir()
    (output / "confusion_matrix.csv").write_text("my own table")
    result = evaluate(runner, cli_app, "--model", str(shapes_run), "--output", str(output))
    assert result.exit_code == 2 and "not written by imgcls evaluate" in result.output
    assert (output / "confusion_matrix.csv").read_text() == "my own table"
    report_dir = tmp_path / "reports"
    for _ in range(2):  # an earlier evaluation's files are replaced
        result = evaluate(runner, cli_app, "--model", str(shapes_run), "--output", str(report_dir))
        assert result.exit_code == 0, result.output


def test_each_gallery_tile_names_its_file():
    """mistakes.png and top_losses.png title each tile with the file's name (mistakes.csv
    has the whole path), a long name cut in its middle so that its end still shows."""
    from imgcls_cli.report.plots import TILE_NAME_CHARACTERS, mistake_title, short_name

    record = {"path": "/data/cats/IMG_0042.jpg", "true": "cat", "predicted": "dog"}
    title = mistake_title({**record, "confidence": 0.93, "loss": 2.5}).splitlines()
    assert title == ["IMG_0042.jpg", "true: cat", "predicted: dog (93%), loss 2.50"]
    long = "/data/" + "a_very_long_camera_export_name_" * 3 + "0042.jpg"
    short = short_name(long)
    assert len(short) == TILE_NAME_CHARACTERS and "…" in short
    assert short.startswith("a_very_long") and short.endswith("0042.jpg")


def test_the_api_gate_records_and_warns_instead_of_exiting(shapes_run, tmp_path):
    from imgcls_cli import api
    from imgcls_cli.reporting import ImgclsWarning

    data = write_mislabelled_folder(tmp_path)  # accuracy 10/13 = 0.769
    (data / "tri" / "broken.png").write_text("not an image")  # skipped and named
    with pytest.warns(ImgclsWarning) as caught:
        report = api.evaluate(shapes_run, data=data, output=tmp_path / "out", min_accuracy=0.9)
    assert report["min_accuracy"] == {"required": 0.9, "passed": False}
    said = [str(w.message) for w in caught]
    assert any(
        line.startswith(f"Skipped 1 unreadable image(s): {data / 'tri' / 'broken.png'} (not an")
        for line in said
    ), said
    assert "Accuracy 0.7692 is below min_accuracy=0.9000 by 0.1308 (13.08 percentage points)." in (
        said
    )
    report = api.evaluate(shapes_run, data=data, output=tmp_path / "out2", min_accuracy=0.75)
    assert report["min_accuracy"] == {"required": 0.75, "passed": True}


def test_what_unknown_classes_were_called_and_how_many_mistakes_there_were():
    from imgcls_cli.cli.console import mistakes_table
    from imgcls_cli.commands.evaluate import most_called

    assert most_called({"8": 3, "9": 1}) == ", mostly called 8"
    assert most_called({"8": 1, "9": 1}) == ", called 8 and 9 alike"
    assert most_called({"a": 2, "b": 2, "c": 2}) == ", called a, b and c alike"
    assert most_called({}) == ""

    def title(shown, listed, wrong):
        mistake = {"path": "x/a.png", "true": "a", "predicted": "b", "confidence": 0.9}
        return mistakes_table([mistake] * shown, listed, wrong).title

    assert title(10, 16, 20) == (
        "Most confident mistakes (10 of 20; the 16 most confident in mistakes.csv)"
    )
    assert title(10, 16, 16) == "Most confident mistakes (10 of 16; all in mistakes.csv)"
    assert title(3, 3, 3) == "Most confident mistakes"


def folder_contents(root):
    return {str(path.relative_to(root)): path.stat().st_mtime_ns for path in root.rglob("*")}


def test_reports_exports_and_heatmaps_keep_out_of_image_folders(
    runner, cli_app, shapes_run, tmp_path
):
    """Files written inside an image folder would be read as its images (a new class,
    or more images of one): evaluate, export and explain refuse such an --output at once,
    as train does, for the data they read and for the data the run trained on."""
    trained_on = shapes_run.parent / "shapes"
    classes = ("circle", "square", "tri")
    held_out = make_class_folder(tmp_path / "held-out", classes=classes, per_class=2)
    photo = str(held_out / "circle" / "circle_0.png")
    run = str(shapes_run)
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"a picture of mine")
    before = [folder_contents(folder) for folder in (trained_on, held_out, shapes_run)]
    data, training = "overlaps the data folder", "overlaps the folder the run trained on"
    images = "overlaps the folder of the images"
    for args, said in (
        (["evaluate", "-m", run, "--data", str(held_out), "--output", str(held_out / "r")], data),
        (["evaluate", "-m", run, "--data", str(held_out), "--output", str(trained_on)], training),
        (["evaluate", "-m", run, "--data", str(held_out), "--output", str(tmp_path)], data),
        (["evaluate", "-m", run, "--output", str(mine)], "is a file; give a directory path"),
        (["export", run, "--output", str(trained_on / "circle")], training),  # not "not ours"
        (["export", run, "--data", str(held_out), "--output", str(held_out / "circle")], data),
        (["explain", photo, "-m", run, "--output", str(trained_on / "heat")], training),
        (["explain", str(held_out), "-m", run, "--output", str(held_out / "heat")], images),
        (["explain", photo, "-m", run, "--output", str(held_out / "circle" / "heat")], images),
    ):
        result = runner.invoke(cli_app, args)
        assert result.exit_code == 2, (args, result.output)
        assert said in result.output, (args, result.output)
        assert len(result.output.strip().splitlines()) == 1, result.output
    assert [folder_contents(f) for f in (trained_on, held_out, shapes_run)] == before
    assert mine.read_bytes() == b"a picture of mine"


def test_explain_is_refused_on_data_without_image_files(runner, cli_app, digits_run):
    """The galleries that --explain draws on list image files; the embedded digits have
    none. Refused at once, rather than a report with nothing drawn."""
    before = folder_contents(digits_run)
    result = runner.invoke(cli_app, ["evaluate", "--model", str(digits_run), "--explain"])
    assert result.exit_code == 2, result.output
    assert "digits has none: evaluate a folder of images" in result.output
    assert folder_contents(digits_run) == before
