"""`imgcls --help` and `import imgcls_cli` must stay fast: no TensorFlow, Keras or TFDS."""

import json
import os
import subprocess
import sys

import pytest

HEAVY = ["tensorflow", "keras", "tensorflow_datasets", "matplotlib", "sklearn", "datasets"]


def loaded_heavy_modules(code: str) -> list[str]:
    probe = f"""
import sys, json
{code}
print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))
"""
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_does_not_load_tensorflow():
    assert loaded_heavy_modules("import imgcls_cli, imgcls_cli.cli.app") == []


def test_help_does_not_load_tensorflow():
    code = """
from imgcls_cli.cli.app import app
for args in (["--help"], ["train", "--help"], ["evaluate", "--help"], ["predict", "--help"],
             ["finetune", "--help"], ["augment-preview", "--help"], ["lr-find", "--help"]):
    try:
        app(args)
    except SystemExit as exit:
        assert exit.code == 0, exit.code
"""
    assert loaded_heavy_modules(code) == []


def test_refused_options_come_back_before_tensorflow_is_imported():
    """Options are checked before any heavy import: a refusal is as fast as --help."""
    code = """
from imgcls_cli.cli.app import app
for args in (["train", "--epochs", "-1"], ["train", "--arch", "nope"],
             ["finetune", "--backbone", "nope"], ["lr-find", "--steps", "1"],
             ["train", "--data", "/nonexistent/folder"]):
    try:
        app(args)
    except SystemExit as exit:
        assert exit.code != 0, (args, exit.code)
"""
    assert loaded_heavy_modules(code) == []


def test_version_flag_prints_version():
    from imgcls_cli import __version__

    result = subprocess.run(
        [sys.executable, "-m", "imgcls_cli", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"imgcls {__version__}"


def test_console_script_is_installed():
    import shutil

    path = shutil.which("imgcls") or str(
        __import__("pathlib").Path(sys.executable).parent / "imgcls"
    )
    result = subprocess.run([path, "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "train" in result.stdout


@pytest.mark.slow  # starts imgcls
def test_quiet_training_prints_nothing_of_tensorflow_on_stderr(tmp_path):
    """Not its start-up lines, nor the C++ E0000 line that deterministic augmentation
    triggered, with the environment a user has (no TF_CPP_MIN_LOG_LEVEL of our own)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "imgcls_cli",
            "train",
            "--epochs",
            "1",
            "-q",
            "--deterministic",
            "--augment",
            "standard",
            "--output",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.slow  # imports TensorFlow
def test_the_imgcls_process_imports_tensorflow_without_what_only_keras_would_use():
    """The `imgcls` entry point imports TensorFlow without Keras' optional extras
    (scikit-learn, pandas, pyplot: a third of the import), which import as usual after it.
    The Python API, imported into someone else's process, leaves Keras whole."""
    code = """
import json, sys
from imgcls_cli import backend
from imgcls_cli.cli import app as cli

def command(args=None):
    backend.import_tensorflow()
    seen = [name for name in backend.KERAS_EXTRAS if name in sys.modules]
    import matplotlib.pyplot, pandas, sklearn  # noqa: F401 (as usual, afterwards)
    print(json.dumps(seen))

cli.app = command
cli.main()
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []

    from imgcls_cli import backend

    backend.import_tensorflow()  # this test process: imgcls as a library
    from keras.src.trainers.data_adapters import array_slicing

    assert array_slicing.pandas is not None
