"""The Python API: the CLI's commands as functions, with the CLI's option names, defaults,
errors and results."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from imgcls_cli import api, rundir
from imgcls_cli.config import FinetuneConfig, TrainConfig
from imgcls_cli.errors import RunDirError, UsageError
from imgcls_cli.options import option_names

EXAMPLE_IMAGES = Path(__file__).parent.parent / "examples" / "images"


def test_importing_the_api_imports_no_tensorflow():
    code = (
        "import sys, imgcls_cli.api; print(any(m in sys.modules for m in ('tensorflow', 'keras')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


@pytest.mark.parametrize("command, cls", [("train", TrainConfig), ("finetune", FinetuneConfig)])
def test_the_cli_declares_exactly_the_library_options(cli_app, command, cls):
    """One list of options: the config dataclasses. A flag the library does not know,
    or an option the CLI forgot, fails here."""
    import typer.main

    click_command = typer.main.get_command(cli_app).commands[command]
    flags = {param.name for param in click_command.params}
    assert flags - {"resume", "config_file", "output", "force", "quiet"} == set(option_names(cls))


def test_train_evaluate_and_predict_give_what_the_cli_prints(runner, cli_app, tmp_path):
    run = api.train(dataset="digits", epochs=2, batch_size=32, output=tmp_path / "run")
    assert run.path == tmp_path / "run" and run.model_path.is_file()
    assert run.metrics == json.loads((run.path / rundir.METRICS_FILE).read_text())
    assert [row["epoch"] for row in run.history] == [1, 2]
    saved = json.loads((run.path / rundir.CONFIG_FILE).read_text())["options"]
    assert saved["batch_size"] == 32 and saved["lr"] == TrainConfig.lr  # the CLI's default

    report = api.evaluate(run.path, output=tmp_path / "api-report")
    printed = runner.invoke(cli_app, ["evaluate", "--model", str(run.path), "--json"])
    assert printed.exit_code == 0, printed.output
    cli_report = json.loads(printed.stdout)
    assert report["accuracy"] == cli_report["accuracy"] == run.metrics["test"]["accuracy"]
    assert report["confusion_matrix"] == cli_report["confusion_matrix"]

    records = api.predict(run.path, [str(EXAMPLE_IMAGES)], top_k=2)
    printed = runner.invoke(
        cli_app,
        ["predict", str(EXAMPLE_IMAGES), "--model", str(run.path), "--json", "--top-k", "2"],
    )
    assert printed.exit_code == 0, printed.output
    assert records == [json.loads(line) for line in printed.stdout.splitlines()]
    assert len(records) == len(list(EXAMPLE_IMAGES.iterdir()))

    with pytest.raises(UsageError, match="drop lr "):  # Python's spelling: no flags
        api.train(resume=run.path, lr=0.5)
    with pytest.raises(RunDirError, match="already exists"):
        api.train(output=run.path, epochs=1)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"epoch": 3}, "Unknown option\\(s\\) epoch for train"),
        ({"lr": float("inf")}, "^lr must be a positive number"),
        ({"optimizer": "adamm"}, "Bad optimizer 'adamm'"),
        ({"dataset": "mnsit"}, "Did you mean 'mnist'"),
    ],
)
def test_bad_options_raise_the_cli_errors_spelt_for_python(tmp_path, options, message):
    with pytest.raises(UsageError, match=message):
        api.train(output=tmp_path / "run", **options)
    assert not (tmp_path / "run").exists()


def test_the_readme_python_example_runs(tmp_path, monkeypatch):
    """The README's Python block, as written, from a folder holding examples/images."""
    import re
    import shutil

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    [block] = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    shutil.copytree(EXAMPLE_IMAGES, tmp_path / "examples" / "images")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["run"].path == Path("runs/api-demo")
    assert namespace["report"]["accuracy"] == namespace["run"].metrics["test"]["accuracy"]
    assert len(namespace["records"]) == len(list(EXAMPLE_IMAGES.iterdir()))
