"""The Python API as a notebook user meets it: any image input gives one record each, a
call leaves the process as it found it, warnings arrive through Python's `warnings`, a Run
is something to work with, and messages speak Python."""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import make_class_folder

from imgcls_cli import api
from imgcls_cli.errors import ImgclsError, UsageError

pytestmark = pytest.mark.slow  # loads models (TensorFlow)


@pytest.fixture(scope="module")
def one_file(shapes_run) -> Path:
    return sorted((shapes_run.parent / "shapes" / "tri").iterdir())[0]


def test_a_single_path_is_one_input_however_it_is_given(shapes_run, one_file):
    """Not one record per character of a string, nor an error for a Path."""
    expected = api.predict(shapes_run, [str(one_file)])
    assert len(expected) == 1 and expected[0]["path"] == str(one_file)
    for given in (str(one_file), one_file, [one_file], (one_file,)):
        assert api.predict(shapes_run, given) == expected, given


def test_images_in_memory_get_the_answer_of_their_file(shapes_run, one_file):
    """The same label for the file, its PIL image and its pixels as a numpy array; the
    records of images in memory carry their position among the inputs."""
    from PIL import Image

    [from_file] = api.predict(shapes_run, one_file)
    pil = Image.open(one_file)
    pixels = np.asarray(pil.convert("RGB"))
    for given in (pil, pixels):
        [record] = api.predict(shapes_run, given)
        assert record["index"] == 0 and "path" not in record
        assert record["label"] == from_file["label"] == "tri"
        assert record["confidence"] == pytest.approx(from_file["confidence"], abs=1e-5)
    batch = np.stack([pixels, pixels[:, ::-1]])
    records = api.predict(shapes_run, [str(one_file), batch, pil])
    assert [r.get("path") for r in records] == [str(one_file), None, None, None]
    assert [r.get("index") for r in records] == [None, 1, 2, 3]  # each image of a batch
    assert records[1]["label"] == records[3]["label"] == "tri"


@pytest.mark.parametrize(
    "given, message",
    [
        (3.5, "Input 0 is a float; give a path"),
        (np.zeros((8, 8, 3), dtype=np.float32), "is an array of float32; give uint8"),
        (np.zeros((2, 3, 8, 8, 3), dtype=np.uint8), "has shape"),
        ([], "No inputs"),
    ],
)
def test_anything_else_is_refused_naming_what_is_accepted(shapes_run, given, message):
    with pytest.raises(UsageError, match=message):
        api.predict(shapes_run, given)


def test_explain_takes_one_path_too_and_refuses_arrays(shapes_run, one_file, tmp_path):
    document = api.explain(shapes_run, one_file, output=tmp_path / "explain")
    assert [item["path"] for item in document["images"]] == [str(one_file)]
    with pytest.raises(UsageError, match="explain draws its overlays over image files"):
        api.explain(shapes_run, np.zeros((16, 16, 3), np.uint8), output=tmp_path / "x")


def test_a_run_is_something_to_work_with(shapes_run, one_file):
    run = api.open_run(shapes_run)
    assert run.class_names == ["circle", "square", "tri"]
    assert run.model_path == shapes_run / "model.keras"
    assert run.model.output_shape == (None, 3) and run.model is run.model  # loaded once
    assert run.metrics["test"]["accuracy"] == 1.0 and len(run.history) == 6
    report = api.evaluate(run, output=shapes_run.parent / "notebook-report")
    assert report["accuracy"] == run.metrics["test"]["accuracy"]
    assert api.predict(run, one_file)[0]["label"] == "tri"
    with pytest.raises(ImgclsError, match="does not exist"):
        api.open_run(shapes_run.parent / "nothing-here")


def test_an_interrupted_training_is_a_keyboard_interrupt():
    from imgcls_cli.engine.training import TrainingInterrupted

    assert issubclass(TrainingInterrupted, KeyboardInterrupt)


def test_messages_speak_python_and_the_cli_keeps_its_flags(tmp_path, runner, cli_app):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text('{"command": "train"}')  # an earlier run's
    with pytest.raises(UsageError) as refused:
        api.train(output=run_dir, epochs=1, force=False)
    assert "force=True" in str(refused.value) and "--force" not in str(refused.value)
    result = runner.invoke(cli_app, ["train", "--output", str(run_dir), "--epochs", "1"])
    assert result.exit_code == 2 and "--force" in result.output


def test_a_call_leaves_the_process_as_it_found_it(tmp_path):
    """Seeds, Keras' policy (one the user set), op determinism, loggers, os.environ."""
    import keras
    from tensorflow.python.framework import config

    keras.config.set_dtype_policy("float32")
    # Off, as in a notebook: an earlier test's in-process CLI run with --deterministic may
    # have left it on (the CLI's process ends after one command).
    config.disable_op_determinism()
    random.seed(1234)
    np.random.seed(1234)
    before = {
        "python": random.getstate(),
        "numpy": np.random.get_state()[1].tolist(),
        "environ": dict(os.environ),
        "loggers": {n: logging.getLogger(n).level for n in ("tensorflow", "absl")},
        "handlers": list(logging.root.handlers),
    }
    data = make_class_folder(tmp_path / "data", per_class=6, size=12)
    with warnings.catch_warnings():  # --deterministic in a process that already ran ops
        warnings.simplefilter("ignore")
        api.train(
            data=data,
            arch="simplecnn",
            epochs=1,
            deterministic=True,
            mixed_precision=True,
            seed=7,
            output=tmp_path / "run",
        )
    assert keras.config.dtype_policy().name == "float32"
    assert not config.is_op_determinism_enabled()
    assert random.getstate() == before["python"]
    assert np.random.get_state()[1].tolist() == before["numpy"]
    assert dict(os.environ) == before["environ"]
    assert {n: logging.getLogger(n).level for n in ("tensorflow", "absl")} == before["loggers"]
    assert logging.root.handlers == before["handlers"]  # a notebook's basicConfig still works


def test_skipped_images_reach_python_warnings_and_the_run(tmp_path):
    from imgcls_cli.reporting import ImgclsWarning

    data = make_class_folder(tmp_path / "data", per_class=8, size=12)
    (data / "circle" / "broken.png").write_bytes(b"not an image")
    with pytest.warns(ImgclsWarning, match="Skipped 1 unreadable image") as caught:
        run = api.train(data=data, arch="simplecnn", epochs=1, output=tmp_path / "run")
    # Pointing at the caller's line, not inside the library; spelt for Python.
    ours = [w for w in caught if issubclass(w.category, ImgclsWarning)]
    assert {Path(w.filename).name for w in ours} == {Path(__file__).name}
    with pytest.warns(
        ImgclsWarning, match="patience has no effect without validation data"
    ) as caught:
        api.train(
            data=data,
            arch="simplecnn",
            epochs=1,
            val_split=0,
            test_split=0,
            patience=2,
            output=tmp_path / "p",
        )
    # Nothing held out: the CLI says so under its table, the API in a warning.
    [unscored] = [str(w.message) for w in caught if "were held out" in str(w.message)]
    assert unscored == (
        "No validation or test images were held out, so the run's only scores "
        "(metrics['train_sample']) are on training images and say little about new ones: "
        "keep some with val_split and test_split."
    )
    # 2 test images: the rough-score line's advice is the API call, not the command.
    [rough] = [str(w.message) for w in ours if "confidence interval" in str(w.message)]
    assert f"`api.evaluate(model={str(run.path)!r}, data=DIR)`" in rough, rough
    assert "imgcls evaluate" not in rough and "--data" not in rough
    [skipped] = run.metrics["skipped_images"]
    assert skipped["path"].endswith("broken.png") and skipped["reason"]
    assert json.loads((run.path / "metrics.json").read_text())["skipped_images"] == [skipped]


def test_a_reporter_with_only_epoch_end_works(tmp_path):
    class Curves:
        def __init__(self):
            self.rows = []

        def epoch_end(self, logs):
            self.rows.append(dict(logs))

    curves = Curves()
    data = make_class_folder(tmp_path / "data", per_class=6, size=12)
    api.train(data=data, arch="simplecnn", epochs=2, output=tmp_path / "run", reporter=curves)
    assert len(curves.rows) == 2 and "loss" in curves.rows[0]


FINGERPRINTS = textwrap.dedent(
    """
    import json, sys
    from imgcls_cli import api
    data, root = sys.argv[1], sys.argv[2]
    plain = dict(data=data, arch="convnet", epochs=1, seed=42, force=True)
    fresh = api.train(output=f"{root}/fresh", **plain)  # the first run of this process
    api.train(output=f"{root}/d", **{**plain, "deterministic": True})
    api.train(output=f"{root}/m", **{**plain, "mixed_precision": True})
    after = api.train(output=f"{root}/after", **plain)
    print(json.dumps([run.metrics["weights_fingerprint"] for run in (fresh, after)]))
    """
)


def test_a_run_after_others_in_one_process_is_the_run_of_a_fresh_process(tmp_path):
    """After a deterministic and a mixed-precision run, the same call gives the weights
    it gave as the first run of a fresh process: nothing of the earlier runs stayed
    behind."""
    data = make_class_folder(tmp_path / "data", per_class=8, size=16)
    done = subprocess.run(
        [sys.executable, "-c", FINGERPRINTS, str(data), str(tmp_path / "runs")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    fresh, after = json.loads(done.stdout.strip().splitlines()[-1])
    assert after == fresh


def test_a_training_leaves_no_graph_behind(tmp_path):
    """A notebook's trainings do not pile up: after a run, none of its traced graphs and
    none of its folder decoders' Python functions stay in TensorFlow's global state
    (they used to, 3-5 MiB a run; benchmarks/bench_api_memory.py measures the RSS)."""
    import gc

    from tensorflow.python.framework import ops
    from tensorflow.python.framework.func_graph import FuncGraph

    def kept() -> tuple[int, int]:
        gc.collect()
        graphs = sum(isinstance(o, FuncGraph) for o in gc.get_objects())
        return graphs, len(getattr(ops.get_default_graph(), "_py_funcs_used_in_graph", ()))

    data = make_class_folder(tmp_path / "data", per_class=6, size=12)
    api.train(data=data, arch="simplecnn", epochs=1, output=tmp_path / "first")
    before = kept()
    api.train(data=data, arch="convnet", epochs=1, output=tmp_path / "second")
    assert kept() == before


def test_keywords_of_a_training_are_checked_as_keywords(shapes_run, tmp_path):
    """Found by the fresh-clone check: a wrongly typed keyword was reported as a config
    file's key ("in config", "null"), and force="false" replaced a run."""
    with pytest.raises(UsageError, match=r'^Bad epochs "abc": expected int or None\.$'):
        api.train(epochs="abc")
    with pytest.raises(UsageError, match=r"^force must be True or False; got 'false'\.$"):
        api.train(output=tmp_path / "run", force="false")
    with pytest.raises(UsageError, match=r"^Input 0 is an int; give "):
        api.predict(shapes_run, 42)


def test_unreadable_inputs_get_their_record_and_a_warning(shapes_run, one_file, tmp_path):
    from imgcls_cli.reporting import ImgclsWarning

    with pytest.warns(ImgclsWarning, match="1 of 2 input"):
        records = api.predict(shapes_run, [one_file, tmp_path / "missing.png"])
    assert records[1]["error"] == "no such file" and records[0]["error"] is None


def test_an_interrupted_training_says_how_to_resume(tmp_path, monkeypatch):
    from test_finetune import interrupt_epoch

    interrupt_epoch(monkeypatch, 2)
    data = make_class_folder(tmp_path / "data", per_class=6, size=12)
    with pytest.raises(KeyboardInterrupt) as stopped:
        api.train(data=data, arch="simplecnn", epochs=3, output=tmp_path / "run")
    assert f"api.train(resume={str(tmp_path / 'run')!r})" in str(stopped.value)
    assert stopped.value.run_dir == tmp_path / "run"
    monkeypatch.undo()
    resumed = api.train(resume=tmp_path / "run")
    assert len(resumed.history) == 3


def test_the_api_shows_its_functions_not_its_internals():
    assert "predict" in api.__all__ and "process_state_kept" not in api.__all__
    assert "epochs=None" in api.train.__doc__ and "arch='convnet'" in api.train.__doc__


def test_bad_keywords_are_named_as_keywords_not_config_keys(shapes_run):
    with pytest.raises(UsageError, match=r"^Bad format 'bogus'\. Valid: savedmodel"):
        api.export(shapes_run, format="bogus")
    with pytest.raises(UsageError, match=r"^Unknown option\(s\) bogus \(evaluate options\)"):
        api.evaluate(shapes_run, bogus=1)
