"""Every command shown in README.md runs, in a quick mode, in a temporary working directory.

COMMANDS below says how each README command is run and what is checked. A README command
missing from it, or an entry no longer in the README, fails `test_table_matches_the_readme`,
so nobody can add an untested command to the README.

All commands run once, in README order, in one working directory (as a reader following the
README top to bottom would run them), in-process through Typer's CliRunner so TensorFlow is
imported once; each command's outcome is then checked by its own test.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import make_class_folder, write_image

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
IMGCLS_WORDS = ("imgcls", ".venv/bin/imgcls")
SHELL_LANGUAGES = ("bash", "sh", "shell", "console")
PLACEHOLDERS = ("…", "...", "RUN_DIR", "COMMAND")
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")

# --- Reading the README ---------------------------------------------------------------------

FENCE = re.compile(r"^```(\w*)[ \t]*\n(.*?)^```", re.M | re.S)
INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")


def split_comment(text: str) -> tuple[str, str | None]:
    """(text without a trailing shell comment, the quote left open at its end or None)."""
    quote = None
    for index, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or text[index - 1].isspace()):
            return text[:index].rstrip(), None
    return text.rstrip(), quote


def block_commands(language: str, body: str) -> list[str]:
    """Command lines of a fenced block: `$ ` prompts in console blocks (other lines there are
    output), every line in shell blocks; comments dropped, continuations joined (a trailing
    backslash, or a quote still open at the end of the line)."""
    commands, pending = [], ""
    for raw in body.splitlines():
        line = raw.strip()
        if not pending:
            if language == "console":
                if not line.startswith("$ "):
                    continue
                line = line[2:]
        joined = f"{pending} {line}" if pending else line
        code, open_quote = split_comment(joined)
        if open_quote:
            pending = joined
        elif code.endswith("\\"):
            pending = code[:-1]
        else:
            pending = ""
            if code:
                commands.append(" ".join(code.split()))
    return commands


def inline_command(span: str) -> str | None:
    """A code span that is a complete imgcls command, else None. Skipped: placeholders
    (`imgcls COMMAND --help`), bare command names (`imgcls train` in a heading names the
    command), and anything not starting with imgcls (option-only spans such as `--tta`)."""
    if any(mark in span for mark in PLACEHOLDERS):
        return None
    try:
        words = shlex.split(span)
    except ValueError:
        return None
    while words and ENV_ASSIGNMENT.match(words[0]):
        words = words[1:]
    if not words or words[0] not in IMGCLS_WORDS:
        return None
    arguments = words[1:]
    if not arguments or (len(arguments) == 1 and not arguments[0].startswith("-")):
        return None
    return " ".join(span.split())


def readme_commands(text: str) -> list[str]:
    """Every command the README shows, in order of first appearance, without duplicates."""
    commands = []
    for match in FENCE.finditer(text):
        if match.group(1) in SHELL_LANGUAGES:
            commands += block_commands(match.group(1), match.group(2))
    prose = FENCE.sub("", text)
    commands += [c for c in map(inline_command, INLINE.findall(prose)) if c]
    return list(dict.fromkeys(commands))


def demo_output_in_readme(text: str) -> list[str]:
    """The sample output README shows for `make demo` (the plain block starting `Data:`)."""
    for match in FENCE.finditer(text):
        if match.group(1) == "" and match.group(2).startswith("Data: "):
            return match.group(2).splitlines()
    raise AssertionError("README.md no longer shows the output of `make demo`")


def makefile_recipe(target: str) -> str:
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    return lines[start + 1].strip()


# --- The table: README command -> how it is run and checked --------------------------------


@dataclasses.dataclass
class Outcome:
    exit_code: int
    stdout: str
    stderr: str
    output: str  # stdout and stderr, interleaved as a terminal shows them


@dataclasses.dataclass(frozen=True)
class How:
    check: Callable[[Path, Outcome | None], None]  # (working directory, outcome)
    quick: tuple[str, ...] = ()  # appended to the command: click keeps an option's last value
    why: str = ""  # why those options, or why the command is not run here
    run: str = "cli"  # cli: CliRunner; process: a subprocess; make: a Makefile recipe; not-run
    tfds: bool = False  # under tfds.testing.mock_data (no network here)
    offline: bool = False  # with the network probe answering "unreachable"


def saved_run(outcome: Outcome) -> Path:
    match = re.search(r"Run saved to (\S+) \(weights [0-9a-f]+\)", outcome.stdout)
    assert outcome.exit_code == 0 and match, outcome.output
    return Path(match.group(1))


def assert_is_count_fraction(accuracy: float, examples: int) -> None:
    """An accuracy must be (images right) / examples: a whole number of them."""
    assert examples > 0
    right = accuracy * examples
    assert right == pytest.approx(round(right), abs=1e-6), (accuracy, examples)


def read_json(path: Path):
    return json.loads(path.read_text())


def history_rows(run_dir: Path) -> list[dict]:
    with (run_dir / "history.csv").open() as handle:
        return list(csv.DictReader(handle))


RUN_FILES = {"model.keras", "labels.json", "config.json", "history.csv", "metrics.json"}


def trained(labels=None, epochs=None, source_kind=None, **resolved) -> Callable:
    """Check a train/finetune run: exit 0, the run directory's files, and what config.json
    records (`resolved` keys compared with config['resolved'])."""

    def check(ws: Path, outcome: Outcome) -> None:
        run_dir = ws / saved_run(outcome)
        assert RUN_FILES <= {p.name for p in run_dir.iterdir()}
        metrics = read_json(run_dir / "metrics.json")
        assert metrics["weights_fingerprint"] in outcome.stdout  # the run printed is this one
        assert metrics["epochs_trained"] == len(history_rows(run_dir))
        assert_is_count_fraction(metrics["test"]["accuracy"], metrics["test"]["examples"])
        if labels is not None:
            assert read_json(run_dir / "labels.json") == labels
        if epochs is not None:
            assert len(history_rows(run_dir)) == epochs
        config = read_json(run_dir / "config.json")
        if source_kind is not None:
            assert config["resolved"]["source"]["kind"] == source_kind
        for key, value in resolved.items():
            assert config["resolved"][key] == value, key

    return check


def finetuned(weights: str, phases: list[str], **options) -> Callable:
    def check(ws: Path, outcome: Outcome) -> None:
        trained()(ws, outcome)
        run_dir = ws / saved_run(outcome)
        config = read_json(run_dir / "config.json")
        assert config["command"] == "finetune"
        assert config["resolved"]["weights"]["source"] == weights
        for key, value in options.items():
            assert config["options"][key] == value, key
        assert [row["phase"] for row in history_rows(run_dir)] == phases

    return check


def check_xrays(ws: Path, outcome: Outcome) -> None:
    finetuned("imagenet", ["head"], backbone="resnet50", class_weight="balanced", unfreeze="all")(
        ws, outcome
    )
    resolved = read_json(ws / saved_run(outcome) / "config.json")["resolved"]
    normal, pneumonia = resolved["class_weights"]  # 8 and 3 images: the rare class weighs more
    assert pneumonia > 1.0 > normal


def check_cifar10(ws: Path, outcome: Outcome) -> None:
    trained(epochs=3, image_size=[32, 32], channels=3)(ws, outcome)
    options = read_json(ws / saved_run(outcome) / "config.json")["options"]
    assert (options["arch"], options["schedule"], options["warmup_epochs"]) == (
        "resnet8",
        "cosine",
        2,
    )


def check_cutmix(ws: Path, outcome: Outcome) -> None:
    trained(labels=["circle", "square"])(ws, outcome)
    augment = read_json(ws / saved_run(outcome) / "config.json")["resolved"]["augment"]
    assert augment["preset"] == "standard" and augment["cutmix"] == 1.0


def check_lr_find(ws: Path, outcome: Outcome) -> None:
    """lr-find prints its suggestions and writes only its plot and document."""
    assert outcome.exit_code == 0, outcome.output
    assert sorted(p.name for p in (ws / "lr-digits").iterdir()) == ["lr_find.json", "lr_find.png"]
    document = read_json(ws / "lr-digits" / "lr_find.json")
    assert document["suggested_lr"] == document["suggestions"]["valley"]
    assert "valley (suggested)" in outcome.stdout
    assert f"{document['suggested_lr']:.2e}" in outcome.stdout


def check_lr_auto(ws: Path, outcome: Outcome) -> None:
    trained(labels=DIGITS)(ws, outcome)
    config = read_json(ws / saved_run(outcome) / "config.json")
    assert config["options"]["lr"] == "auto"
    assert config["resolved"]["learning_rate"] == config["resolved"]["lr_find"]["suggested_lr"]
    assert "lr-find's valley suggestion" in outcome.output


def check_run_by_test_scale(ws: Path, outcome: None) -> None:
    from test_scale import README_MIRRORED

    assert README_MIRRORED in README.read_text()


def check_inspect(ws: Path, outcome: Outcome) -> None:
    assert outcome.exit_code == 0, outcome.output
    assert "Exact duplicates: 0 within splits, 0 across splits" in outcome.stdout
    for name in SHAPES:
        assert name in outcome.stdout


def check_inspect_json(ws: Path, outcome: Outcome) -> None:
    assert outcome.exit_code == 0, outcome.output
    report = json.loads(outcome.stdout)  # stdout holds only the JSON report
    assert report["classes"] == SHAPES
    assert report["throughput"]["images"] == report["split_sizes"]["train"]


def check_help(ws: Path, outcome: Outcome) -> None:
    assert outcome.exit_code == 0, outcome.output
    for command in ("train", "finetune", "evaluate", "predict", "augment-preview"):
        assert command in outcome.stdout


def evaluated(run_dir: str | None, mistakes: bool, split: str) -> Callable:
    """Check evaluate: exit 0, the files it writes into the run directory, the split used."""

    def check(ws: Path, outcome: Outcome) -> None:
        assert outcome.exit_code == 0, outcome.output
        directory = ws / (run_dir or latest_run_named(outcome))
        files = {"evaluation.json", "confusion_matrix.csv", "confusion_matrix.png"}
        if mistakes:
            files |= {"mistakes.csv", "mistakes.png"}
        assert files <= {p.name for p in directory.iterdir()}
        evaluation = read_json(directory / "evaluation.json")
        matrix = evaluation["confusion_matrix"]["matrix"]
        correct = sum(row[i] for i, row in enumerate(matrix))
        assert sum(map(sum, matrix)) == evaluation["examples"] > 0
        assert evaluation["accuracy"] == pytest.approx(correct / evaluation["examples"])
        assert evaluation["data"]["split"] == split

    return check


def latest_run_named(outcome: Outcome) -> Path:
    """evaluate/predict without --model name the run they picked on stderr."""
    match = re.search(r"Using the latest run: (\S+)", outcome.stderr)
    assert match, outcome.output
    return Path(match.group(1))


def check_offline_failure(ws: Path, outcome: Outcome) -> None:
    """The benchmark table's offline figure: one line naming the problem and what to do,
    exit code 1, and nothing downloaded."""
    assert outcome.exit_code == 1, outcome.output
    assert "network is unreachable" in outcome.stderr
    assert "--data-dir" in outcome.stderr and "Traceback" not in outcome.output
    assert not (ws / "tfds-offline" / "downloads").exists()


def check_ci_gate(ws: Path, outcome: Outcome) -> None:
    report = read_json(ws / "report.json")  # stdout held only the JSON report
    assert (
        report["accuracy"]
        == read_json(ws / "runs/train-digits-convnet/evaluation.json")["accuracy"]
    )
    # 10 seeded epochs on the digits score well above the README's bar of 90%.
    assert report["accuracy"] >= 0.9 and outcome.exit_code == 0, outcome.output


def table_rows(stdout: str) -> list[tuple[str, str]]:
    """(path, label) of each row of predict's table; Rich folds long paths over lines."""
    rows: list[tuple[str, str]] = []
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if len(cells) < 3:
            continue
        if cells[2]:  # a confidence: a new row
            rows.append((cells[0], cells[1]))
        elif rows:
            rows[-1] = (rows[-1][0] + cells[0], rows[-1][1])
    return rows


def predicted(*paths: str) -> Callable:
    """Check predict's table: exit 0 and a row for exactly these files."""

    def check(ws: Path, outcome: Outcome) -> None:
        assert outcome.exit_code == 0, outcome.output
        assert sorted(path for path, _ in table_rows(outcome.stdout)) == sorted(paths)

    return check


def check_explained(ws: Path, outcome: Outcome) -> None:
    """explain: exit 0, an overlay for photo.jpg, the grid and the record in RUN_DIR/explain."""
    assert outcome.exit_code == 0, outcome.output
    folder = ws / "runs/train-shapes-simplecnn/explain"
    document = read_json(folder / "explain.json")
    [image] = document["images"]
    assert image["path"] == "photo.jpg" and image["error"] is None
    assert image["label"] in SHAPES and 0 < image["confidence"] <= 1
    assert sorted(p.name for p in folder.iterdir()) == ["explain.json", "grid.png", "photo.png"]
    assert document["method"] == "hirescam"  # simplecnn flattens its map
    assert "HiResCAM (" in outcome.stdout  # the table's title names the method


def check_evaluate_explained(ws: Path, outcome: Outcome) -> None:
    """evaluate --explain: the evaluation's files, with the heatmap method recorded and
    the top-losses gallery written."""
    evaluated("runs/train-shapes-simplecnn", mistakes=False, split="all")(ws, outcome)
    evaluation = read_json(ws / "runs/train-shapes-simplecnn/evaluation.json")
    assert evaluation["explain"]["method"] == "hirescam"
    assert "top_losses.png" in evaluation["mistakes_files"]
    assert (ws / "runs/train-shapes-simplecnn/top_losses.png").stat().st_size > 0


def exported(folder: str, dtype: str) -> Callable:
    """Check an export: exit 0, its files, and parity figures that are counts."""

    def check(ws: Path, outcome: Outcome) -> None:
        assert outcome.exit_code == 0, outcome.output
        document = read_json(ws / folder / "export.json")
        assert (ws / folder / document["artifact"]).exists()
        assert (ws / folder / "labels.json").read_text() == (
            ws / "runs/train-shapes-simplecnn/labels.json"
        ).read_text()
        assert document["input"]["dtype"] == dtype
        parity = document["parity"]
        assert_is_count_fraction(parity["agreement"], parity["examples"])
        assert_is_count_fraction(parity["export_accuracy"], parity["examples"])
        assert "top-1 agreement" in outcome.stdout

    return check


def check_export_evaluated(ws: Path, outcome: Outcome) -> None:
    """evaluate on the int8 export: its reports beside the export folder (which a later
    `export --force` replaces), and the accuracy the export's parity check measured on the
    same test split."""
    reports = "runs/train-shapes-simplecnn/export/tflite-int8-evaluation"
    evaluated(reports, mistakes=False, split="test")(ws, outcome)
    folder = ws / "runs/train-shapes-simplecnn/export/tflite-int8"
    assert not (folder / "evaluation.json").exists()
    parity = read_json(folder / "export.json")["parity"]
    assert read_json(ws / reports / "evaluation.json")["accuracy"] == pytest.approx(
        parity["export_accuracy"]
    )


def check_benchmark(ws: Path, outcome: Outcome) -> None:
    assert outcome.exit_code == 0, outcome.output
    for name in ("keras", "onnx", "tflite-int8", "p50 ms", "images/s"):
        assert name in outcome.stdout
    # A row per model and --batch-size given (the batch cell, then p50, p95, images/s).
    row = re.compile(r"│\s*(\d+)\s*│\s*[\d.]+\s*│\s*[\d.]+\s*│\s*[\d,]+\s*│")
    assert sorted(set(row.findall(outcome.stdout))) == ["1", "8"], outcome.stdout


def check_jsonl(ws: Path, outcome: Outcome) -> None:
    assert outcome.exit_code == 0, outcome.output
    records = [json.loads(line) for line in (ws / "predictions.jsonl").read_text().splitlines()]
    found = subprocess.run(
        ["find", ".", "-name", "*.jpg"], cwd=ws, capture_output=True, text=True, check=True
    ).stdout.split()
    assert sorted(r["path"] for r in records) == sorted(found) and len(found) >= 3
    for record in records:
        assert record["error"] is None and 0.0 <= record["confidence"] <= 1.0
        assert record["label"] == record["top_k"][0]["label"]


def check_examples_images(ws: Path, outcome: Outcome) -> None:
    """The sample images are digits from the embedded test split, named digit-N.png;
    the table shows them below their folder, which its caption names."""
    assert outcome.exit_code == 0, outcome.output
    rows = table_rows(outcome.stdout)
    assert len(rows) == 5
    for path, label in rows:
        assert path == f"digit-{label}.png"
    assert "in examples/images" in outcome.stdout


def preview_written(name: str, rows: int, columns: int) -> Callable:
    """Check augment-preview: it prints the PNG's path; the grid has a row per source image
    and a column for the original plus one per variant."""

    def check(ws: Path, outcome: Outcome) -> None:
        from PIL import Image

        from imgcls_cli.commands.augment_preview import CAPTION_HEIGHT, HEADER_HEIGHT, PAD

        assert outcome.exit_code == 0, outcome.output
        assert outcome.stdout.strip() == name
        with Image.open(ws / name) as image:
            assert image.format == "PNG"
            width, height = image.size
        tile_width, spare = divmod(width - PAD, columns)
        assert spare == 0 and tile_width > PAD
        tile_height, spare = divmod(height - HEADER_HEIGHT - PAD, rows)
        assert spare == 0 and tile_height > CAPTION_HEIGHT + PAD

    return check


def check_demo(ws: Path, outcome: Outcome) -> None:
    """`make demo`'s real output has the lines README shows; numbers that depend on
    training (losses, accuracies, speed, the weights fingerprint) are left out."""
    shown = [line for line in demo_output_in_readme(README.read_text()) if line.strip() != "…"]
    printed = [line for line in outcome.output.splitlines() if line.strip()]
    assert outcome.exit_code == 0, outcome.output

    def is_epoch(line: str) -> bool:
        return line.startswith("Epoch ")

    assert [masked(line) for line in shown if not is_epoch(line)] == [
        masked(line) for line in printed if not is_epoch(line)
    ]
    epoch_shapes = {masked(line) for line in shown + printed if is_epoch(line)}
    assert len(epoch_shapes) == 1, epoch_shapes
    assert len([line for line in printed if is_epoch(line)]) == DEMO_EPOCHS


def masked(line: str) -> str:
    """A line with its training-dependent numbers replaced by #."""
    if line.startswith("Epoch "):
        line = re.sub(r"\d[\d,.]*", "#", line)
    line = re.sub(r"\(weights [0-9a-f]+\)", "(weights #)", line)
    line = re.sub(r", \d+ epochs$", ", # epochs", line)  # the test runs DEMO_EPOCHS
    line = re.sub(r"\d+\.\d+%?", "#", line)  # the table's loss and accuracy
    return " ".join(line.split())


def check_hub_offline(ws: Path, outcome: Outcome) -> None:
    assert outcome.exit_code == 1, outcome.output
    assert "hf:beans is not in the datasets cache and the Hub (huggingface.co) cannot be " in (
        outcome.output
    )
    assert "Traceback" not in outcome.output


def check_image_tag(ws: Path, outcome: None) -> None:
    """The README's image is imgcls' version, the one the cluster examples run."""
    import yaml

    from imgcls_cli import __version__

    tag = f"imgcls:{__version__}"
    assert f"docker build -t {tag} ." in README.read_text()
    for name in ("train-job.yaml", "prepare-data.yaml"):
        text = (ROOT / "examples" / "kubernetes" / name).read_text()
        images = {
            container["image"]
            for document in yaml.safe_load_all(text)
            if document["kind"] == "Job"
            for container in document["spec"]["template"]["spec"]["containers"]
        }
        assert images == {tag}, (name, images)


def check_make_test(ws: Path, outcome: None) -> None:
    """`make test` is what CI runs; it runs pytest over tests/, which holds this file."""
    assert makefile_recipe("test") == (
        "$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder"
    )
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'testpaths = ["tests"]' in pyproject and Path(__file__).parent.name == "tests"
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def make_dry_run(target: str, *expected: str) -> Callable:
    """Not run here: `make -n` shows the target exists and what it would run."""

    def check(ws: Path, outcome: None) -> None:
        shown = subprocess.run(
            ["make", "-n", target], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
        for part in expected:
            assert part in shown, shown

    return check


def check_tf_config(ws: Path, outcome: None) -> None:
    """The README's TF_CONFIG is valid JSON naming the cluster and this worker."""
    command = next(c for c in COMMANDS if c.startswith("export TF_CONFIG="))
    config = json.loads(shlex.split(command)[1].split("=", 1)[1])
    assert len(config["cluster"]["worker"]) == 2
    assert config["task"] == {"type": "worker", "index": 0}


def check_multi_worker(ws: Path, outcome: None) -> None:
    """10.0.0.x machines cannot be reached here. The command's options parse; the example
    script, run by tests/test_examples.py::test_multi_worker_example, runs the same command
    form on two local workers."""
    from typer.main import get_command

    from imgcls_cli.cli.app import app

    command = next(c for c in COMMANDS if "--strategy multi-worker" in c)
    arguments = shlex.split(command)[1:]
    train = get_command(app).commands["train"]  # parsing only: unknown options would raise
    context = train.make_context("train", arguments[1:])
    assert context.params["strategy"].value == "multi-worker"
    assert context.params["output"] == Path("/shared/runs/c10")


def check_serve(ws: Path, outcome: None) -> None:
    """A server runs until it is stopped: tests/test_serve.py starts real ones and talks
    HTTP to them. Here each README form parses, and names a run or export the walk-through
    made."""
    from typer.main import get_command

    from imgcls_cli.cli.app import app

    serve = get_command(app).commands["serve"]
    for command in (c for c in COMMANDS if " imgcls serve " in f" {c} "):
        words = shlex.split(command)
        while ENV_ASSIGNMENT.match(words[0]):
            words.pop(0)
        context = serve.make_context("serve", words[2:])  # unknown options would raise
        assert (ws / context.params["model"]).exists(), command


DEMO_EPOCHS = 10
QUICK_TRAIN = ("--epochs", "1", "--batch-size", "8")
WHY_TRAIN = "1 epoch, small batches: the command's path, not the accuracy, is under test"
QUICK_DIGITS = ("--epochs", "1")  # the digits' 1,211 training images make enough batches
WHY_DIGITS = "1 epoch: the command's path, not the accuracy, is under test"
TFDS_DIR = ("--data-dir", "tfds")
WHY_TFDS = "mocked TFDS (no network here); --data-dir keeps TFDS out of ~"
QUICK_FINETUNE = ("--image-size", "32", "--head-epochs", "1", "--epochs", "1", "--batch-size", "8")
WHY_FINETUNE = (
    "32 px (the backbones' minimum) and 1+1 epochs instead of 224 px and 10+10; "
    "--weights imagenet reads a random stand-in file in Keras' cache"
)
DIGITS = [str(i) for i in range(10)]
SHAPES = ["circle", "square"]
BREEDS = ("golden retriever", "tabby cat")
BEANS = ("angular_leaf_spot", "bean_rust", "healthy")

COMMANDS: dict[str, How] = {
    "make demo": How(
        check_demo,
        ("--epochs", str(DEMO_EPOCHS)),
        "the Makefile's own command with 10 epochs instead of 30 (95% test accuracy, enough "
        "for `predict examples/images` below)",
        run="make",
    ),
    "make test": How(check_make_test, why="this suite is `make test`", run="not-run"),
    "imgcls serve runs/train-shapes-simplecnn": How(
        check_serve,
        why="a server runs until stopped: tests/test_serve.py starts real ones; here it parses",
        run="not-run",
    ),
    "imgcls serve runs/train-shapes-simplecnn/export/onnx --port 9000": How(
        check_serve,
        why="a server runs until stopped: tests/test_serve.py starts real ones; here it parses",
        run="not-run",
    ),
    "IMGCLS_API_KEY=change-me imgcls serve runs/train-shapes-simplecnn --host 0.0.0.0": How(
        check_serve,
        why="a server runs until stopped: tests/test_serve.py starts real ones; here it parses",
        run="not-run",
    ),
    "docker build -t imgcls:0.1.0 .": How(
        check_image_tag,
        why="no Docker here: the tag is checked against imgcls' version and the cluster "
        "examples, the Dockerfile by hadolint (tests/test_examples.py)",
        run="not-run",
    ),
    'docker run --rm --user "$(id -u):$(id -g)" -v "$PWD:/runs" imgcls:0.1.0 train --epochs 5': How(
        check_image_tag, why="no Docker here: the image's name is checked", run="not-run"
    ),
    "docker tag imgcls:0.1.0 registry.example.com/imgcls:0.1.0 && docker push "
    "registry.example.com/imgcls:0.1.0": How(
        check_image_tag,
        why="no Docker or registry here: the image's name is checked",
        run="not-run",
    ),
    "imgcls --help": How(check_help),
    "imgcls train --dataset mnist --arch simplecnn --epochs 5": How(
        trained(labels=DIGITS, image_size=[28, 28], channels=1),
        QUICK_TRAIN + TFDS_DIR,
        f"{WHY_TRAIN}; {WHY_TFDS}",
        tfds=True,
    ),
    "imgcls train --dataset cifar10 --arch resnet8 --epochs 30 --schedule cosine "
    "--warmup-epochs 2": How(
        check_cifar10,
        ("--epochs", "3", "--batch-size", "8", *TFDS_DIR),
        f"3 epochs, the fewest that keep --warmup-epochs 2 valid; {WHY_TFDS}",
        tfds=True,
    ),
    "imgcls train --data ./shapes --arch simplecnn --image-size 64": How(
        trained(labels=SHAPES, image_size=[64, 64], channels=3), QUICK_TRAIN, WHY_TRAIN
    ),
    "imgcls train": How(trained(labels=DIGITS, image_size=[8, 8]), QUICK_DIGITS, WHY_DIGITS),
    "imgcls train --dataset hf:beans --revision main": How(
        check_hub_offline,
        why="the Hub cannot be reached from here (nor should a test download from it): "
        "the command is run offline for its one-line refusal",
        offline=True,
    ),
    "imgcls train --data ./saved-beans": How(
        trained(labels=list(BEANS), source_kind="hf"), QUICK_TRAIN, WHY_TRAIN
    ),
    "imgcls train --data kaggle/labels.csv --label-column breed": How(
        trained(labels=sorted(BREEDS), source_kind="csv"), QUICK_TRAIN, WHY_TRAIN
    ),
    "imgcls finetune --backbone mobilenetv2 --data ./flowers": How(
        finetuned("imagenet", ["head"], backbone="mobilenetv2"),
        (*QUICK_FINETUNE, "--epochs", "0"),
        WHY_FINETUNE + "; --epochs 0 skips the unfrozen phase (its first step traces for "
        "about 10 s), which tests/test_finetune.py runs",
    ),
    "imgcls finetune --backbone resnet50 --data ./xrays --class-weight balanced "
    "--unfreeze all": How(
        check_xrays,
        (*QUICK_FINETUNE, "--epochs", "0"),
        WHY_FINETUNE + ", and its hash patched to the stand-in's, since Keras checks it; "
        "--epochs 0 skips the unfrozen phase, whose first step alone took about 35 s",
    ),
    "imgcls finetune --dataset digits --weights none --image-size 32 --head-epochs 3 "
    "--unfreeze 0": How(
        finetuned("none", ["head"] * 3, backbone="mobilenetv2"),
        why="run as shown: README promises a few seconds",
    ),
    "imgcls train --dataset digits --epochs 10": How(
        trained(labels=DIGITS), ("--epochs", "2"), "2 epochs: only the run's existence matters"
    ),
    "imgcls evaluate": How(evaluated(None, mistakes=False, split="test")),
    "imgcls evaluate --split train": How(
        evaluated(None, mistakes=False, split="train"),
        why="the latest run here is the mocked MNIST one, so under the same mock",
        tfds=True,
    ),
    "imgcls evaluate --model runs/train-digits-convnet --min-accuracy 0.9 --json "
    "> report.json": How(check_ci_gate),
    "imgcls evaluate --model runs/train-shapes-simplecnn --data new_photos/": How(
        evaluated("runs/train-shapes-simplecnn", mistakes=False, split="all")
    ),
    "imgcls predict photo.jpg": How(predicted("photo.jpg")),
    "imgcls predict photos/ 'more/**/*.png' --model runs/train-shapes-simplecnn --top-k 2": How(
        predicted(
            *(f"photos/{name}/{name}_{i}.png" for name in SHAPES for i in (0, 1)),
            *(f"more/new/{name}/{name}_{i}.png" for name in SHAPES for i in (0, 1)),
        )
    ),
    "find . -name '*.jpg' | imgcls predict - --json > predictions.jsonl": How(check_jsonl),
    "imgcls predict one.png": How(predicted("one.png")),
    "imgcls explain photo.jpg --model runs/train-shapes-simplecnn": How(check_explained),
    "imgcls evaluate --model runs/train-shapes-simplecnn --data new_photos/ --explain": How(
        check_evaluate_explained
    ),
    "imgcls export runs/train-shapes-simplecnn --format onnx": How(
        exported("runs/train-shapes-simplecnn/export/onnx", "float32")
    ),
    "imgcls export runs/train-shapes-simplecnn --format tflite --quantize int8": How(
        exported("runs/train-shapes-simplecnn/export/tflite-int8", "uint8"),
        ("--min-agreement", "0", "--calibration", "20"),
        "a 1-epoch model's near-tied probabilities fall either side of the 97% gate: the "
        "figures, not the verdict, are under test; 20 calibration images for speed",
    ),
    "imgcls evaluate --model runs/train-shapes-simplecnn/export/tflite-int8": How(
        check_export_evaluated
    ),
    "imgcls predict photo.jpg --model runs/train-shapes-simplecnn/export/onnx/model.onnx": How(
        predicted("photo.jpg")
    ),
    "imgcls benchmark runs/train-shapes-simplecnn --batch-size 1 --batch-size 8": How(
        check_benchmark, ("--runs", "3"), "3 timed calls per batch size: the table, not the speed"
    ),
    "imgcls inspect --data ./shapes": How(check_inspect),
    "imgcls inspect --data ./shapes --throughput --json": How(check_inspect_json),
    "imgcls augment-preview --data ./shapes --augment strong --samples 4 --variants 6": How(
        preview_written("augment-preview.png", rows=4, columns=7)
    ),
    "imgcls augment-preview photo1.jpg photo2.jpg --rotate 30 --flip both --output check.png": (
        How(preview_written("check.png", rows=2, columns=6))
    ),
    "imgcls train --data ./shapes --augment standard --cutmix 1.0": How(
        check_cutmix, QUICK_TRAIN, WHY_TRAIN
    ),
    "imgcls lr-find --dataset digits --output lr-digits": How(check_lr_find),
    "imgcls train --dataset digits --lr auto": How(check_lr_auto, QUICK_DIGITS, WHY_DIGITS),
    "imgcls train --dataset mnist": How(
        check_offline_failure,
        ("--data-dir", "tfds-offline"),
        "offline, into an empty --data-dir: the failure the benchmark table times",
        offline=True,
    ),
    "imgcls train --dataset mnist --epochs 1": How(
        trained(labels=DIGITS), TFDS_DIR, WHY_TFDS, tfds=True
    ),
    "IMGCLS_CPU_REPLICAS=2 imgcls train --strategy mirrored": How(
        check_run_by_test_scale,
        why="tests/test_scale.py runs this very command (2 epochs, in a process of its own) "
        "and compares its curves with one device's",
        run="not-run",
    ),
    'export TF_CONFIG=\'{"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]}, '
    '"task": {"type": "worker", "index": 0}}\'': How(
        check_tf_config, why="two other machines; see the next entry", run="not-run"
    ),
    "imgcls train --strategy multi-worker --dataset cifar10 --arch resnet8 "
    "--output /shared/runs/c10": How(
        check_multi_worker,
        why="needs the machines 10.0.0.1-2: examples/multi_worker_local.sh runs the same "
        "command form on two local workers (tests/test_examples.py)",
        run="not-run",
    ),
    ".venv/bin/imgcls predict examples/images": How(
        check_examples_images,
        ("--model", "runs/train-digits-simplecnn"),
        "README runs it right after `make demo`, whose run is then the latest; here later "
        "README commands wrote newer runs, so the demo's run is named",
    ),
    "make test-fast": How(
        make_dry_run("test-fast", "IMGCLS_FAST_TESTS=1", "pytest"),
        why="a subset of this suite; `make -n` checks the target",
        run="not-run",
    ),
    "make lint": How(
        make_dry_run("lint", "ruff format --check", "ruff check"),
        why="CI runs it (.ci/run); `make -n` checks the target",
        run="not-run",
    ),
    "make bench": How(
        make_dry_run("bench", "benchmarks/run_all.py"),
        why="minutes of benchmarks; `make -n` checks the target",
        run="not-run",
    ),
}


# --- Running them ---------------------------------------------------------------------------


def make_workspace(ws: Path) -> None:
    """The files and folders README commands name, generated small."""
    make_class_folder(ws / "shapes", classes=SHAPES, per_class=12, size=16)
    make_class_folder(ws / "new_photos", classes=SHAPES, per_class=4, size=16, seed=1)
    make_class_folder(ws / "flowers", classes=("daisy", "roses"), per_class=6, size=16)
    xrays = make_class_folder(ws / "xrays", classes=("normal", "pneumonia"), per_class=8, size=16)
    for path in sorted((xrays / "pneumonia").iterdir())[:5]:  # imbalanced: 8 vs 3
        path.unlink()
    make_class_folder(ws / "photos", classes=SHAPES, per_class=2, size=16, seed=2)
    make_class_folder(ws / "more" / "new", classes=SHAPES, per_class=2, size=16, seed=3)
    rng = np.random.default_rng(4)
    for name in ("photo.jpg", "photo1.jpg", "photo2.jpg", "one.png"):
        write_image(ws / name, rng.integers(0, 256, (24, 20, 3), dtype=np.uint8))
    shutil.copytree(ROOT / "examples" / "images", ws / "examples" / "images")
    make_label_file(ws / "kaggle")
    make_saved_dataset(ws / "saved-beans")


def make_saved_dataset(target: Path) -> None:
    """What datasets' save_to_disk writes for a DatasetDict: train and test splits of
    generated PNGs with a ClassLabel (beans' own class names)."""
    import datasets

    made = make_class_folder(target.parent / "beans-made", classes=BEANS, per_class=6, size=16)
    files = sorted(made.rglob("*.png"))
    features = datasets.Features(
        {"image": datasets.Image(), "labels": datasets.ClassLabel(names=list(BEANS))}
    )
    rows = {
        "image": [{"bytes": path.read_bytes(), "path": None} for path in files],
        "labels": [BEANS.index(path.parent.name) for path in files],
    }
    table = datasets.Dataset.from_dict(rows, features=features)
    table.train_test_split(test_size=0.25, seed=0).save_to_disk(str(target))
    shutil.rmtree(made)


def make_label_file(root: Path) -> None:
    """Kaggle's layout: labels.csv (id,breed; ids without extension) beside images/."""
    made = make_class_folder(root / "made", classes=BREEDS, per_class=6, size=16, seed=5)
    rows = ["id,breed"]
    for index, path in enumerate(sorted(made.rglob("*.png"))):
        (root / "images").mkdir(exist_ok=True)
        path.rename(root / "images" / f"{index:04d}.png")
        rows.append(f"{index:04d},{path.parent.name}")
    shutil.rmtree(made)
    (root / "labels.csv").write_text("\n".join(rows) + "\n")


def cache_imagenet_stand_ins(monkeypatch) -> list[Path]:
    """Random `include_top=False` weights under the file names Keras looks for in its cache,
    in the legacy H5 format of its downloads. Returns the files written (to delete after)."""
    import h5py
    from keras.src.applications import resnet
    from keras.src.legacy.saving import legacy_h5_format
    from keras.src.utils.file_utils import hash_file

    from imgcls_cli.models import weights
    from imgcls_cli.models.backbones import create_backbone

    written = []
    for backbone in ("mobilenetv2", "resnet50"):
        path = weights.imagenet_path(backbone, 32)
        if path.exists():  # a real ImageNet file: use it, never replace it
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(path, "w") as handle:
            legacy_h5_format.save_weights_to_hdf5_group(
                handle, create_backbone(backbone, 32, imagenet=False)
            )
        written.append(path)
        if backbone == "resnet50":  # Keras re-downloads a cached file with another hash
            with_top, _ = resnet.WEIGHTS_HASHES["resnet50"]
            monkeypatch.setitem(resnet.WEIGHTS_HASHES, "resnet50", (with_top, hash_file(path)))
    return written


def imgcls_arguments(words: list[str]) -> list[str]:
    assert words[0] in IMGCLS_WORDS, words
    return words[1:]


def run_command(command: str, how: How, ws: Path, runner) -> Outcome:
    """Run one README command: shell stages before the imgcls stage by bash (their output
    piped in), `> FILE` written from imgcls' stdout, the imgcls stage through CliRunner."""
    from imgcls_cli.cli.app import app

    if how.run == "make":
        words = shlex.split(makefile_recipe(command.split()[1]).replace("$(BIN)/", ""))
        return invoke(runner, app, imgcls_arguments(words) + list(how.quick))
    stages = [stage.strip() for stage in command.split(" | ")]
    *before, last = stages
    last, _, redirect = last.partition(" > ")
    words = shlex.split(last)
    env = {}
    while ENV_ASSIGNMENT.match(words[0]):
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    arguments = imgcls_arguments(words) + list(how.quick)
    if how.run == "process":
        done = subprocess.run(
            [sys.executable, "-m", "imgcls_cli", *arguments],
            cwd=ws,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=300,
        )
        return Outcome(done.returncode, done.stdout, done.stderr, done.stdout + done.stderr)
    assert not env, "environment variables need run='process'"
    piped = None
    if before:
        piped = subprocess.run(
            ["bash", "-c", " | ".join(before)], cwd=ws, capture_output=True, text=True, check=True
        ).stdout
    if how.tfds:
        import tensorflow_datasets as tfds

        with tfds.testing.mock_data(num_examples=40):
            outcome = invoke(runner, app, arguments, piped)
    else:
        outcome = invoke(runner, app, arguments, piped)
    if redirect:
        (ws / redirect.strip()).write_text(outcome.stdout)
    return outcome


def invoke(runner, app, arguments: list[str], stdin: str | None = None) -> Outcome:
    result = runner.invoke(app, arguments, input=stdin)
    output = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        output += f"\n{type(result.exception).__name__}: {result.exception}"
    return Outcome(result.exit_code, result.stdout, result.stderr, output)


@pytest.fixture(scope="module")
def readme_runs(tmp_path_factory):
    """Every runnable README command, run once in README order in one working directory."""
    from typer.testing import CliRunner

    from imgcls_cli.data import hf_source, tfds_source

    ws = tmp_path_factory.mktemp("readme")
    make_workspace(ws)
    outcomes: dict[str, Outcome] = {}
    cached: list[Path] = []
    previous = Path.cwd()
    with pytest.MonkeyPatch.context() as monkeypatch:
        # Mocked TFDS never downloads, but the fail-fast offline check would still fire.
        monkeypatch.setattr(tfds_source, "network_available", lambda timeout=3.0: True)
        try:
            cached = cache_imagenet_stand_ins(monkeypatch)
            os.chdir(ws)
            for command in readme_commands(README.read_text()):
                how = COMMANDS.get(command)
                if how is not None and how.run != "not-run":
                    with pytest.MonkeyPatch.context() as network:
                        if how.offline:
                            network.setattr(
                                tfds_source, "network_available", lambda timeout=3.0: False
                            )
                            network.setattr(hf_source, "hub_reachable", lambda timeout=3.0: False)
                        outcomes[command] = run_command(command, how, ws, CliRunner())
        finally:
            os.chdir(previous)
            for path in cached:  # other tests expect an empty cache
                path.unlink(missing_ok=True)
    return ws, outcomes


# --- The tests ------------------------------------------------------------------------------


def test_table_matches_the_readme():
    shown = readme_commands(README.read_text())
    untested = [c for c in shown if c not in COMMANDS]
    assert not untested, f"README commands with no entry in COMMANDS: {untested}"
    stale = [c for c in COMMANDS if c not in shown]
    assert not stale, f"COMMANDS entries no longer in README.md: {stale}"
    for command, how in COMMANDS.items():
        assert how.why or not how.quick, f"say why {command!r} runs with {how.quick}"


@pytest.mark.slow
@pytest.mark.parametrize("command", list(COMMANDS))
def test_readme_command(readme_runs, command):
    ws, outcomes = readme_runs
    how = COMMANDS[command]
    if how.run == "not-run":
        how.check(ws, None)
        return
    assert command in outcomes, "the README no longer shows it (see the test above)"
    how.check(ws, outcomes[command])


SAMPLE = """
Intro `imgcls train` and `imgcls COMMAND --help`, `--tta`, `imgcls predict one.png`,
`IMGCLS_CPU_REPLICAS=2 imgcls train --strategy mirrored`, `imgcls --debug train …`.

```bash
make demo   # it's a comment with a quote
imgcls train --data ./x \\
    --epochs 2        # the comment
export A='{"a": [1,
            2]}'
```

```console
$ find . -name '*.jpg' | imgcls predict - --json > p.jsonl
printed output, not a command
```

```
Data: not a command
```
"""


def test_commands_are_found_in_blocks_and_spans():
    assert readme_commands(SAMPLE) == [
        "make demo",
        "imgcls train --data ./x --epochs 2",
        "export A='{\"a\": [1, 2]}'",
        "find . -name '*.jpg' | imgcls predict - --json > p.jsonl",
        "imgcls predict one.png",
        "IMGCLS_CPU_REPLICAS=2 imgcls train --strategy mirrored",
    ]


def test_demo_output_masks_only_training_dependent_numbers():
    assert masked("│ val   │ 0.0316 │  100.00% │    136 │") == "│ val │ # │ # │ 136 │"
    assert masked("Epoch 2/30  loss 2.0674  acc 0.4855  10,873 img/s  0.1s") == (
        "Epoch #/# loss # acc # # img/s #s"
    )
    assert masked("Data: digits, 10 classes, val 136, train 1211") == (
        "Data: digits, 10 classes, val 136, train 1211"
    )
