"""config.json, export.json and metrics.json as typed records (rundir/record.py): written
from dataclasses, read into them, and records of older runs still load."""

import json
import shutil
from pathlib import Path

import pytest

from imgcls_cli.errors import RunDirError
from imgcls_cli.rundir.record import (
    RECORD_VERSION,
    ExportRecord,
    MetricsRecord,
    Resolved,
    RunRecord,
    SourceRecord,
)

# A run directory as imgcls wrote it on 2026-12-06, before config.json had a
# record_version (simplecnn, one epoch on the embedded digits; checkpoints and logs left
# out). It must keep loading, predicting and evaluating.
OLD_RUN = Path(__file__).parent / "data" / "run-2026-12-06"

# An older config.json still: no augment section in the options, no epochs, a key
# this version does not know.
OLDER_DOCUMENT = {
    "command": "train",
    "options": {"data": {"dataset": "digits"}, "epochs": 3, "arch": "convnet"},
    "resolved": {
        "image_size": [8, 8],
        "channels": 1,
        "source": {"kind": "folder", "path": "/data/shapes", "layout": "class folders"},
        "learning_rate": 0.001,
        "cpu_threads": 4,
    },
    "versions": {"imgcls": "0.0.9"},
}


def test_an_older_record_loads_with_typed_fields_and_keeps_what_it_does_not_know():
    record = RunRecord.from_dict(OLDER_DOCUMENT)
    assert record.command == "train" and record.options["epochs"] == 3
    assert record.record_version is None
    resolved = record.resolved
    assert resolved.image_size == (8, 8) and resolved.channels == 1
    assert resolved.epochs is None and resolved.augment_flip is None
    assert resolved.source == SourceRecord(
        kind="folder", path="/data/shapes", details={"layout": "class folders"}
    )
    assert resolved.extra == {"cpu_threads": 4}
    written = record.to_dict()
    assert written["resolved"]["cpu_threads"] == 4
    assert written["resolved"]["source"] == OLDER_DOCUMENT["resolved"]["source"]
    assert RunRecord.from_dict(written) == record


def test_a_record_is_written_from_typed_fields_and_a_misspelt_one_fails_where_written():
    resolved = Resolved(
        image_size=(28, 28),
        source={"kind": "tfds", "name": "mnist", "version": "3.0.1"},
        global_batch_size=64,
        epochs=10,
        class_weights=None,
    )
    record = RunRecord("train", {"seed": 1}, resolved, {"imgcls": "0.1.0"})
    document = json.loads(json.dumps(record.to_dict()))
    assert document["record_version"] == RECORD_VERSION
    assert document["resolved"]["image_size"] == [28, 28]
    assert document["resolved"]["class_weights"] is None  # "no weights" is recorded
    assert "learning_rate" not in document["resolved"]  # unset fields are left out
    assert document["resolved"]["source"] == {"kind": "tfds", "name": "mnist", "version": "3.0.1"}
    assert RunRecord.from_dict(document) == record
    with pytest.raises(TypeError, match="global_batch"):
        Resolved(global_batch=64)


@pytest.mark.parametrize("size", [[8], "8x8", [8, -1], [8.5, 8]])
def test_a_record_with_an_unusable_image_size_is_refused_in_one_line(size):
    with pytest.raises(RunDirError, match="resolved.image_size must be"):
        RunRecord.from_dict({"command": "train", "resolved": {"image_size": size}})


def test_export_and_metrics_records_read_what_other_commands_use(tmp_path):
    export = ExportRecord.from_dict(
        {
            "format": "tflite",
            "artifact": "model.tflite",
            "input": {"shape": [None, 32, 24, 3]},
            "parity": {"export_accuracy": 0.75},
            "run_config": OLDER_DOCUMENT,
        },
        tmp_path / "export.json",
    )
    assert (export.image_size, export.channels, export.export_accuracy) == ((32, 24), 3, 0.75)
    assert export.run.resolved.source.path == "/data/shapes"
    with pytest.raises(RunDirError, match="is not as `imgcls export` writes it"):
        ExportRecord.from_dict({"format": "onnx", "input": {"shape": [1, 2]}}, tmp_path / "e")
    metrics = MetricsRecord.from_dict({"test": {"accuracy": 0.5}, "epochs_trained": 2})
    assert metrics.accuracy("test") == 0.5 and metrics.accuracy("val") is None


def test_a_run_directory_from_before_record_versions_still_loads_and_evaluates(tmp_path):
    from imgcls_cli import api
    from imgcls_cli.rundir.load import load_run

    run_dir = tmp_path / "old-run"
    shutil.copytree(OLD_RUN, run_dir)
    run = load_run(run_dir)
    assert run.record.record_version is None and run.record.command == "train"
    assert run.image_size == (8, 8) and run.channels == 1 and run.num_classes == 10
    report = api.evaluate(run_dir)  # finds its data (the embedded digits) from the record
    assert report["examples"] == 450
    recorded = json.loads((OLD_RUN / "metrics.json").read_text())["test"]["accuracy"]
    assert report["accuracy"] == pytest.approx(recorded, abs=1e-6)


def test_a_new_run_records_its_version_and_reads_back_typed(shapes_run):
    from imgcls_cli import rundir

    record = rundir.read_run_record(shapes_run)
    assert record.record_version == RECORD_VERSION
    assert record.command == "train" and record.resolved.source.kind == "folder"
    assert record.resolved.global_batch_size and record.resolved.epochs
    document = json.loads((shapes_run / rundir.CONFIG_FILE).read_text())
    assert RunRecord.from_dict(document).to_dict() == document
