"""The CLI as a new user first meets it: a refusal comes back as fast as --help with one
line and the documented exit code, help screens read at 80 columns, a misspelt dataset
is answered with image-classification names only, and what imgcls creates follows the
user's umask and is gone again when the command is refused or fails."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import write_image

COMMANDS = [
    "train",
    "finetune",
    "lr-find",
    "augment-preview",
    "evaluate",
    "predict",
    "explain",
    "inspect",
    "export",
    "benchmark",
    "serve",
]


def imgcls(*args: str, cwd: Path | None = None) -> tuple[subprocess.CompletedProcess, float]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "imgcls_cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "80"},
    )
    return result, time.perf_counter() - started


# What Keras writes in model.keras' config.json, for a model of one convolution.
SAVED_ARCHITECTURE = {
    "module": "keras.src.models.functional",
    "class_name": "Functional",
    "config": {
        "name": "simplecnn",
        "layers": [
            {"module": "keras.layers", "class_name": "InputLayer", "config": {"name": "image"}},
            {"module": "keras.layers", "class_name": "Conv2D", "config": {"name": "conv2d"}},
            {"module": "keras.layers", "class_name": "Dense", "config": {"name": "predictions"}},
        ],
    },
}


@pytest.fixture(scope="module")
def fake_places(tmp_path_factory) -> Path:
    """A folder of things a user might point imgcls at by mistake."""
    root = tmp_path_factory.mktemp("places")
    (root / "occupied").mkdir()
    (root / "occupied" / "notes.txt").write_text("mine")
    (root / "notarun").mkdir()
    (root / "notarun" / "config.json").write_text("{}")
    (root / "picture.png").write_bytes(b"not really a png")
    (root / "notes.weights.h5").write_text("not weights")
    fake = root / "fakerun"  # looks finished: the refusals below come before any loading
    fake.mkdir()
    (fake / "config.json").write_text('{"command": "train"}')
    (fake / "model.keras").write_bytes(b"")
    (fake / "labels.json").write_text('["cat", "dog"]')
    layered = root / "layeredrun"  # a model.keras that holds only its architecture
    layered.mkdir()
    for name in ("config.json", "labels.json"):
        (layered / name).write_text((fake / name).read_text())
    with zipfile.ZipFile(layered / "model.keras", "w") as archive:
        archive.writestr("config.json", json.dumps(SAVED_ARCHITECTURE))
    export = root / "fakeexport"  # an export of fakerun: refused where the run is needed
    export.mkdir()
    (export / "export.json").write_text(
        json.dumps({"artifact": "model.onnx", "source_run": str(fake.resolve())})
    )
    (export / "labels.json").write_text('["cat", "dog"]')
    (export / "model.onnx").write_bytes(b"")
    pixels = np.zeros((8, 8), np.uint8)
    write_image(root / "oneclass" / "cat" / "a.png", pixels)  # images, but of one class
    write_image(root / "strangers" / "bird" / "a.png", pixels)  # no class fakerun knows
    for name in ("cat", "dog"):  # class folders of files that are not images
        (root / "notimages" / name).mkdir(parents=True)
        (root / "notimages" / name / "a.png").write_text("text")
    return root


def within(limit: float, args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    """imgcls run up to three times until one run takes at most `limit` seconds (a busy
    machine slows a run now and then): the last result and the fastest time."""
    times = []
    for _ in range(3):
        result, seconds = imgcls(*args, cwd=cwd)
        times.append(seconds)
        if seconds <= limit:
            break
    return result, min(times)


# (arguments, exit code): each command refused for its options, its paths or its output.
REFUSALS = [
    (["train", "--epochs", "-1"], 2),
    (["train", "--optimizer", "bogus"], 2),
    (["train", "--epochs", "2.5"], 2),
    (["train", "--epoch", "3"], 2),
    (["train", "--dataset", "mnsit"], 2),
    (["train", "--data", "missing-folder"], 1),
    (["train", "--data", "oneclass"], 1),
    (["train", "--data", "notimages"], 1),
    (["train", "--output", "occupied"], 2),
    (["finetune", "--weights", "missing.weights.h5"], 1),
    (["finetune", "--weights", "occupied/notes.txt"], 1),  # not a format Keras reads
    (["finetune", "--weights", "notes.weights.h5"], 1),  # not HDF5
    (["finetune", "--backbone", "resnet"], 2),
    (["lr-find", "--steps", "1"], 2),
    (["augment-preview", "--output", "occupied/notes.txt"], 2),
    (["evaluate", "--model", "notarun"], 1),
    (["evaluate", "--split", "bogus"], 2),
    (["evaluate", "--model", "fakerun", "--data", "strangers"], 1),
    (["evaluate", "--model", "fakerun", "--data", "notimages"], 1),
    (["evaluate", "--model", "fakeexport", "--explain"], 2),
    (["predict"], 2),
    (["predict", "--top-k", "0", "picture.png"], 2),
    (["explain", "--method", "bogus", "picture.png"], 2),
    (["explain", "picture.png", "--model", "fakerun", "--output", "occupied"], 2),
    (["explain", "picture.png", "--model", "fakerun", "--class", "bird"], 2),
    (["explain", "picture.png", "missing.png", "--model", "fakerun"], 1),  # nothing readable
    (["explain", "picture.png", "--model", "layeredrun", "--layer", "conv2"], 2),
    (["export", "fakerun", "--output", "occupied"], 2),
    (["augment-preview", "missing.png"], 1),
    (["augment-preview", "--data", "oneclass"], 1),
    (["augment-preview", "--dataset", "mnsit"], 2),
    (["inspect", "--data", "missing-folder"], 1),
    (["inspect", "--data", "notimages"], 1),
    (["export", "notarun", "--format", "bogus"], 2),
    (["export", "notarun", "--format", "onnx", "--quantize", "int8"], 2),
    (["benchmark", "notarun", "-b", "0"], 2),
    (["benchmark", "fakeexport"], 2),
    (["benchmark", "fakeexport/model.onnx"], 2),  # the artifact names its export
    (["explain", "picture.png", "--model", "fakeexport"], 2),
    (["export", "fakeexport", "--format", "onnx"], 2),
    (["serve", "notarun"], 1),
    (["serve", "fakerun", "--port", "-1"], 2),
    (["serve"], 1),  # no run given and none under runs/
    (["train", "--resume", "missing-run"], 1),
    (["augment-preview", "picture.png"], 1),  # not an image
    (["train", "--strategy", "multi-worker"], 2),  # no TF_CONFIG, no Slurm step
    (["train", "--dataset", "imagenet2012", "--data-dir", "notarun"], 1),  # archives by hand
]


def test_every_command_refuses_in_one_line_as_fast_as_help(fake_places):
    """No TensorFlow start for a refusal: at most 3x `imgcls --help`, measured side by
    side (the best of three runs of each, so a busy machine slows both alike)."""
    help_time = min(imgcls("--help")[1] for _ in range(3))
    slow = []
    for args, code in REFUSALS:
        result, seconds = within(3 * help_time, args, fake_places)
        assert result.returncode == code, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), (args, result.stderr)
        assert "Traceback" not in result.stderr and result.stdout == ""
        if seconds > 3 * help_time:  # or the machine slowed since: --help again, beside it
            help_now = min(imgcls("--help")[1] for _ in range(3))
            if seconds > 3 * help_now:
                slow.append((args, round(seconds, 2), round(help_now, 2)))
    assert not slow, f"--help took {help_time:.2f} s; these refusals took 3x longer: {slow}"
    assert sorted(os.listdir(fake_places)) == [
        "fakeexport",
        "fakerun",
        "layeredrun",
        "notarun",
        "notes.weights.h5",
        "notimages",
        "occupied",
        "oneclass",
        "picture.png",
        "strangers",
    ]
    assert sorted(os.listdir(fake_places / "fakerun")) == [
        "config.json",
        "labels.json",
        "model.keras",
    ]


def test_predict_answers_unreadable_inputs_without_loading_the_model(fake_places):
    """When no input can be read, predict says why for each and fails in one line as
    fast as a refusal: the model is not loaded (fakerun's empty model.keras would fail)."""

    help_time = min(imgcls("--help")[1] for _ in range(3))
    args = ["predict", "picture.png", "missing.png", "--model", "fakerun", "--json"]
    result, seconds = within(3 * help_time, args, fake_places)
    assert result.returncode == 1, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["path"], r["error"]) for r in records] == [
        ("picture.png", "not an image (format not recognised)"),
        ("missing.png", "no such file"),
    ]
    assert result.stderr.strip().splitlines() == [
        "Error: 2 of 2 input(s) could not be read; their records say why."
    ]
    assert seconds <= 3 * help_time, (help_time, seconds)
    # For people (a table), the reasons in one line rather than a table of them.
    result, seconds = within(3 * help_time, args[:-1], fake_places)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.strip().splitlines() == [
        "Error: No input could be read, so nothing was predicted: picture.png (not an image "
        "(format not recognised)); missing.png (no such file)."
    ]


@pytest.mark.slow
def test_weights_of_another_backbone_are_refused_as_fast_as_help(tmp_path):
    """A real weights file of MobileNetV2 given to ResNet50: recognised before TensorFlow
    starts, with the backbone it belongs to."""
    from test_weights import save_backbone_weights

    path = tmp_path / "mobilenetv2.weights.h5"
    save_backbone_weights("mobilenetv2", path)
    help_time = min(imgcls("--help")[1] for _ in range(3))
    args = ["finetune", "--backbone", "resnet50", "--weights", path.name, "--data", "."]
    result, seconds = within(3 * help_time, args, tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"Error: Weights file {path.name} holds the weights of the mobilenetv2 backbone, not "
        "of resnet50: pass --backbone mobilenetv2, or give a file saved from resnet50 with "
        "include_top=False (backbone.save_weights('x.weights.h5')), or --weights imagenet / "
        "none."
    ]
    assert seconds <= 3 * help_time, (help_time, seconds)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_usage_errors_name_the_option_and_the_help_to_read(runner, cli_app):
    result = runner.invoke(cli_app, ["train", "--optimizer", "bogus"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: --optimizer: 'bogus' is not one of 'adam', 'adamw', 'sgd'. See 'imgcls "
        "train --help'."
    ]
    result = runner.invoke(cli_app, ["predict"])
    assert result.exit_code == 2
    assert "Missing argument 'IMAGES...'" in result.output and "╭" not in result.output
    result = runner.invoke(cli_app, ["trian"])  # a question ends the sentence
    assert result.output.strip() == (
        "Error: No such command 'trian'. Did you mean 'train'? See 'imgcls --help'."
    )
    result = runner.invoke(cli_app, ["train", "--epochs", "2.5"])
    assert result.output.strip() == (
        "Error: --epochs must be a whole number. See 'imgcls train --help'."
    )
    # --model, as the other commands take the run, where the run is the argument (Click's
    # close matches offered --help).
    result = runner.invoke(cli_app, ["benchmark", "--model", "runs/x"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "Error: No such option: --model; imgcls benchmark takes the run as its argument: "
        "imgcls benchmark RUN_DIR. See 'imgcls benchmark --help'."
    )


def help_screens() -> dict[str, str]:
    from typer.testing import CliRunner

    from imgcls_cli.cli.app import app

    screens = {}
    for command in ["", *COMMANDS]:
        args = [command, "--help"] if command else ["--help"]
        result = CliRunner().invoke(app, args, env={"COLUMNS": "80"}, terminal_width=80)
        assert result.exit_code == 0, result.output
        screens[command or "imgcls"] = result.output
    return screens


def test_a_run_given_where_a_command_takes_images_or_arguments_is_pointed_to_model(
    runner, cli_app, tmp_path, monkeypatch
):
    """`export RUN_DIR` takes the run as its argument; evaluate and predict take --model.
    A run given to them positionally is answered with --model, not Click's "unexpected
    extra argument", nor predicted as a folder of its PNGs."""
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    (run / "model.keras").write_bytes(b"")
    (run / "config.json").write_text('{"command": "train"}')
    (run / "training.png").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli_app, ["evaluate", "runs/r"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "Error: runs/r is a run, which imgcls evaluate takes as --model: --model runs/r. "
        "See 'imgcls evaluate --help'."
    )
    result = runner.invoke(cli_app, ["predict", "runs/r"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "Error: runs/r is a run, not a folder of images: give it as the model (--model runs/r)."
    )
    result = runner.invoke(cli_app, ["evaluate", "elsewhere"])  # not a run: Click's words
    assert "Got unexpected extra argument(s) (elsewhere)" in result.output


def test_help_screens_read_at_80_columns():
    screens = help_screens()
    for name, text in screens.items():
        assert max(len(line) for line in text.splitlines()) <= 80, name
        for tag in re.findall(r"<(?:int|float|str|bool|path|text|list\[[^>]*\])>", text):
            raise AssertionError(f"{name} --help shows Typer's type tag {tag}")
        usage = next(line for line in text.splitlines() if "Usage:" in line)
        assert "{" not in usage, usage
    panel = screens["imgcls"].split("Commands")[1].splitlines()[1:]
    names = [line[2:].split()[0] for line in panel if line.startswith("│")]
    assert names == COMMANDS, "every command's summary fits on its own line"
    assert "Usage: imgcls predict [OPTIONS] IMAGES..." in screens["predict"]
    assert "Usage: imgcls export [OPTIONS] RUN_DIR" in screens["export"]


def test_an_option_of_many_choices_names_them_in_its_help():
    """Short choice lists are the metavar ([adam|adamw|sgd]); a longer one is named by
    the option (STRATEGY), so its help must list the choices."""
    import typer.main

    from imgcls_cli.cli.app import app
    from imgcls_cli.cli.group import CHOICES_WIDTH

    group = typer.main.get_command(app)
    checked = 0
    for command in group.commands.values():
        for param in command.get_params(typer.Context(command)):
            descriptor = getattr(param, "type_descriptor", None)
            if descriptor is None or not descriptor.is_choice:
                continue
            values = [str(getattr(choice, "value", choice)) for choice in descriptor.choices]
            if param.metavar.startswith("["):
                assert len(param.metavar) <= CHOICES_WIDTH
                continue
            checked += 1
            missing = [value for value in values if value not in (param.help or "")]
            assert not missing, f"{command.name} --{param.name}'s help lacks {missing}"
    assert checked >= 4


def test_a_misspelt_dataset_is_answered_with_image_classification_names():
    from imgcls_cli.data.tfds_source import check_dataset_name
    from imgcls_cli.errors import UsageError

    with pytest.raises(UsageError) as refused:
        check_dataset_name("mnsit")
    message = str(refused.value)
    assert "Did you mean 'mnist'?" in message
    for text_or_audio in ("abstract_reasoning", "ag_news_subset", "accentdb", "aeslc"):
        assert text_or_audio not in message


def test_a_known_image_dataset_passes_without_importing_tfds():
    code = (
        "import sys\n"
        "from imgcls_cli.data.tfds_source import check_dataset_name\n"
        "for name in ('mnist', 'cifar10', 'tf_flowers', 'beans', 'digits'):\n"
        "    check_dataset_name(name)\n"
        "print('tensorflow_datasets' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_the_catalog_holds_image_classification_datasets_only():
    from imgcls_cli.data.tfds_catalog import image_classification_names

    names = image_classification_names()
    assert {"mnist", "fashion_mnist", "cifar10", "cifar100", "tf_flowers", "beans"} <= names
    # text, audio, detection (labels inside boxes) and segmentation sets are not.
    assert not names & {"imdb_reviews", "librispeech", "coco", "voc", "cityscapes"}


@pytest.mark.slow  # reads TFDS' DatasetInfo (imports TensorFlow)
@pytest.mark.parametrize(
    "name, expected",
    [
        ("mnist", True),
        ("beans", True),
        ("imdb_reviews", False),
        ("coco", False),  # labels inside boxes
        ("imagenet2012_multilabel", False),  # labels as a sequence
    ],
)
def test_the_catalog_agrees_with_tfds_own_features(name, expected, tmp_path):
    from imgcls_cli.data.tfds_catalog import (
        builder_info,
        image_classification_names,
        is_image_classification,
    )

    assert is_image_classification(builder_info(name, str(tmp_path))) is expected
    assert (name in image_classification_names()) is expected


def test_the_catalog_marks_the_datasets_tfds_cannot_download():
    """Each image-classification dataset's `manual` mark is what its TFDS class says
    (imports tensorflow_datasets, not TensorFlow: about a second)."""
    from imgcls_cli.data.tfds_catalog import catalog, needs_manual_download

    known = catalog()
    marked = {name for name in known.image_classification if needs_manual_download(name)}
    assert known.manual & known.image_classification == marked
    assert {"imagenet2012", "resisc45"} <= marked and "mnist" not in marked


def test_a_refused_run_leaves_no_runs_folder(runner, cli_app, tmp_path, monkeypatch, no_network):
    """Offline without cached ImageNet weights, finetune refuses before it claims a run
    directory: no empty runs/ is left behind."""
    from conftest import make_class_folder

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    make_class_folder(tmp_path / "flowers")
    result = runner.invoke(cli_app, ["finetune", "--data", "flowers"])
    assert result.exit_code == 1
    assert "ImageNet weights for mobilenetv2 are not cached" in result.output
    assert sorted(os.listdir(tmp_path)) == ["flowers"]


def test_an_offline_tfds_dataset_is_refused_before_tensorflow(
    runner, cli_app, tmp_path, monkeypatch, no_network
):
    """A TFDS dataset that is not in the data directory needs a download: offline, train,
    lr-find, inspect and evaluate refuse in one line before TensorFlow's start (which the
    planted import would fail), and leave nothing behind; a dataset whose folder is there
    is left to TFDS, without a network probe."""
    from imgcls_cli import backend
    from imgcls_cli.data import tfds_source
    from imgcls_cli.errors import DataError

    def no_tensorflow():
        raise AssertionError("TensorFlow was imported")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(backend, "import_tensorflow", no_tensorflow)
    empty = tmp_path / "tfds"
    empty.mkdir()
    fake = tmp_path / "fakerun"
    fake.mkdir()
    (fake / "config.json").write_text('{"command": "train"}')
    for args in (
        ["train", "--dataset", "mnist", "--data-dir", "tfds"],
        ["lr-find", "--dataset", "cifar10:3.0.2", "--data-dir", "tfds"],
        ["inspect", "--dataset", "mnist", "--data-dir", "tfds"],
        ["evaluate", "--model", "fakerun", "--dataset", "mnist", "--data-dir", "tfds"],
    ):
        result = runner.invoke(cli_app, args)
        assert result.exit_code == 1, (args, result.output)
        name = args[args.index("--dataset") + 1].split(":")[0]
        assert result.output.strip().splitlines() == [
            f"Error: Dataset '{name}' is not in tfds and the network is unreachable: run the "
            "same command once on a machine with internet and copy that folder here, then "
            "pass --data-dir."
        ], args
    assert sorted(os.listdir(tmp_path)) == ["fakerun", "tfds"]
    probes = []
    monkeypatch.setattr(tfds_source, "network_available", lambda: probes.append(1))
    (empty / "mnist").mkdir()
    tfds_source.check_download_possible("mnist", str(empty))
    monkeypatch.setenv("TFDS_DATA_DIR", str(empty))  # where TFDS looks without --data-dir
    tfds_source.check_download_possible("mnist", None)
    # A dataset TFDS cannot download: where its archives go, whatever the network, and
    # before TensorFlow (the catalog knows which datasets these are).
    for manual_dir, where in (
        (None, f"{empty / 'downloads' / 'manual'} (or pass --manual-dir DIR)"),
        ("m", "m, the --manual-dir given"),
    ):
        with pytest.raises(DataError) as refused:
            tfds_source.check_download_possible("imagenet2012", str(empty), manual_dir)
        assert str(refused.value) == (
            f"Dataset 'imagenet2012' cannot be downloaded automatically: place its archives "
            f"in {where}; its page says which: "
            "https://www.tensorflow.org/datasets/catalog/imagenet2012"
        )
    # Archives placed by hand need no network either (TFDS prepares them offline).
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "ILSVRC2012_img_val.tar").write_text("archive")
    tfds_source.check_download_possible("imagenet2012", str(empty), str(tmp_path / "m"))
    (empty / "downloads" / "manual").mkdir(parents=True)
    (empty / "downloads" / "manual" / "ILSVRC2012_img_train.tar").write_text("archive")
    tfds_source.check_download_possible("imagenet2012", str(empty))
    assert probes == []


@pytest.mark.parametrize("command", ["train", "finetune"])
def test_ctrl_c_while_tensorflow_starts_leaves_no_run_folder(
    runner, cli_app, tmp_path, monkeypatch, command
):
    """Found by a new user: Ctrl-C in the seconds TensorFlow takes to start, after the
    run's folder was claimed, left a folder holding only the claim, which --resume could
    not read and the same --output then refused."""
    import importlib.abc

    from conftest import make_class_folder

    class CtrlCDuringImport(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "imgcls_cli.engine.training":  # where TensorFlow is imported
                raise KeyboardInterrupt
            return None

    for name in ("imgcls_cli.engine.training", f"imgcls_cli.commands.{command}"):
        monkeypatch.delitem(sys.modules, name, raising=False)  # put back afterwards
    monkeypatch.setattr(sys, "meta_path", [CtrlCDuringImport(), *sys.meta_path])
    monkeypatch.chdir(tmp_path)
    make_class_folder(tmp_path / "flowers")
    options = ["--weights", "none"] if command == "finetune" else []
    for output in ([], ["--output", "mine"]):
        result = runner.invoke(cli_app, [command, "--data", "flowers", *options, *output])
        assert result.exit_code == 130, result.output
        assert result.output.strip().splitlines()[-1] == "Interrupted."
        assert sorted(os.listdir(tmp_path)) == ["flowers"]


def test_a_released_claim_removes_the_folders_it_made(tmp_path):
    from imgcls_cli import rundir

    run_dir = rundir.claim_run_dir(tmp_path / "a" / "b" / "run", "train", "x", force=False)
    assert run_dir.is_dir()
    rundir.release_claim(run_dir)
    assert os.listdir(tmp_path) == []


def test_a_run_with_nothing_held_out_says_what_its_scores_are():
    """A folder trained with --val-split 0 --test-split 0 (or too small to carve) had an
    empty table: it now shows the saved model's scores on its training sample, and says
    that they are training images."""
    import io

    from rich.console import Console

    from imgcls_cli.cli import console
    from imgcls_cli.report.metrics import held_out_splits, nothing_held_out

    def shown(metrics):
        screen = Console(file=io.StringIO(), width=80)
        screen.print(console.metrics_table(metrics))
        return screen.file.getvalue(), held_out_splits(metrics)

    sample = {"loss": 0.1234, "accuracy": 0.95, "examples": 20}
    text, held_out = shown({"train_sample": sample})
    assert "train (sample)" in text and "95.00%" in text and held_out == []
    assert nothing_held_out(0.0, 0.0, "the scores above are") == (
        "No validation or test images were held out, so the scores above are on training "
        "images and say little about new ones: keep some with --val-split and --test-split."
    )
    # Splits asked for, but a class of 5 images rounds 10% of it to none.
    assert "too few images for --val-split 0.1 and --test-split 0.1" in (
        nothing_held_out(0.1, 0.1, "the scores above are")
    )
    text, held_out = shown({"val": {**sample, "accuracy": 0.5}, "train_sample": sample})
    assert "train (sample)" not in text and "50.00%" in text and held_out == ["val"]


def test_debug_shows_the_traceback_placed_before_or_after_the_command(tmp_path):
    """Users append --debug as "Run again with --debug" invites: both places work, and
    the exit code stays the one without it."""
    from imgcls_cli.cli.app import debug_first

    for args in (
        ["--debug", "inspect", "--data", "gone"],
        ["inspect", "--data", "gone", "--debug"],
    ):
        result, _ = imgcls(*args, cwd=tmp_path)
        assert result.returncode == 1, result.stderr
        assert "Traceback" in result.stderr and "DataError: --data gone does not exist" in (
            result.stderr
        )
    result, _ = imgcls("train", "--epochs", "-1", "--debug", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" in result.stderr, result.stderr  # bad option
    # After `--` every word is an argument (a file may be called --debug).
    assert debug_first(["predict", "--", "--debug"]) == ["predict", "--", "--debug"]
    assert debug_first(["predict", "a.png", "--debug", "--", "b"]) == [
        "--debug", "predict", "a.png", "--", "b"
    ]  # fmt: skip
