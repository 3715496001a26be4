"""`imgcls export` and `imgcls benchmark`: every format round-trips through its own runtime
and answers like model.keras; evaluate and predict take exports; a wrong export fails the
parity check; folders are refused, replaced only with --force; a missing extra is one line."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import make_class_folder

from imgcls_cli import api, rundir
from imgcls_cli.commands import export as export_command
from imgcls_cli.errors import ImgclsError, UsageError
from imgcls_cli.export import writers

FORMATS = [
    ("savedmodel", "none"),
    ("onnx", "none"),
    ("tflite", "none"),
    ("tflite", "fp16"),
    ("tflite", "dynamic"),
    ("tflite", "int8"),
]


@pytest.fixture(scope="module")
def check_folder(tmp_path_factory):
    """New images of the shapes run's classes: 90 to check parity on (its own test split
    holds 6)."""
    root = tmp_path_factory.mktemp("check")
    return make_class_folder(
        root / "shapes", classes=("circle", "square", "tri"), per_class=30, seed=7
    )


@pytest.fixture(scope="module")
def exports(shapes_run, check_folder, tmp_path_factory):
    """Every format of the shapes run, exported once for the module's tests."""
    root = tmp_path_factory.mktemp("exports")
    found = {}
    for format, quantize in FORMATS:
        name = format if quantize == "none" else f"{format}-{quantize}"
        found[name] = api.export(
            shapes_run,
            output=root / name,
            format=format,
            quantize=quantize,
            data=check_folder,
            calibration=30,
        )
    return found


@pytest.mark.parametrize("name", ["savedmodel", "onnx", "tflite", "tflite-fp16", "tflite-dynamic"])
def test_float_exports_agree_with_the_keras_model(exports, name):
    document = exports[name]
    parity = document["parity"]
    assert parity["examples"] == 90 and parity["passed"]
    assert parity["agreement"] == 1.0
    assert parity["max_abs_difference"] < (1e-2 if name != "tflite-dynamic" else 5e-2)
    assert parity["export_accuracy"] == parity["keras_accuracy"]
    card = document["input"]
    assert (card["name"], card["shape"], card["dtype"]) == ("images", [None, 16, 16, 3], "float32")
    assert (card["channels"], card["value_range"], card["layout"]) == ("RGB", [0, 255], "NHWC")
    assert "quantization" not in card and document["output"]["dtype"] == "float32"
    folder = document["folder"]
    assert json.loads(open(f"{folder}/export.json").read())["parity"] == parity


def test_int8_export_takes_uint8_pixels_and_is_smaller(exports):
    document, float_tflite = exports["tflite-int8"], exports["tflite"]
    assert document["input"]["dtype"] == "uint8"
    assert document["parity"]["agreement"] >= document["parity"]["min_agreement"] == 0.97
    assert document["file_bytes"] < float_tflite["file_bytes"] / 2


@pytest.mark.parametrize("name", ["savedmodel", "onnx", "tflite-int8"])
def test_evaluate_and_predict_run_the_export_in_its_runtime(exports, check_folder, name, tmp_path):
    document = exports[name]
    report = api.evaluate(document["folder"], data=check_folder, output=tmp_path / "report")
    assert report["examples"] == 90
    assert report["accuracy"] == pytest.approx(document["parity"]["export_accuracy"])
    files = sorted(str(p) for p in (check_folder / "tri").iterdir())[:5]
    artifact = f"{document['folder']}/{document['artifact']}"
    records = api.predict(artifact, files)  # the artifact itself works as --model too
    assert [r["label"] for r in records] == [
        r["label"] for r in api.predict(document["source_run"], files)
    ]


def test_a_wrong_export_fails_the_parity_check_and_keeps_its_files(
    shapes_run, check_folder, runner, cli_app, monkeypatch, tmp_path
):
    import keras

    def scrambled(run):  # the same architecture, the last layer's classes swapped
        model = keras.models.clone_model(run.model)
        weights = run.model.get_weights()
        weights[-2], weights[-1] = weights[-2][:, ::-1], weights[-1][::-1]
        model.set_weights(weights)
        return model

    monkeypatch.setattr(export_command, "model_to_export", scrambled)
    folder = tmp_path / "wrong"
    result = runner.invoke(
        cli_app,
        [
            "export",
            str(shapes_run),
            "--format",
            "onnx",
            "--data",
            str(check_folder),
            "--output",
            str(folder),
        ],
    )
    assert result.exit_code == 1
    assert "below --min-agreement 99.00%" in result.output and "files are kept" in result.output
    assert "Traceback" not in result.output
    parity = json.loads((folder / "export.json").read_text())["parity"]
    assert parity["passed"] is False and parity["agreement"] < 0.5
    assert (folder / "model.onnx").stat().st_size > 0
    # From Python: the same document, and a warning in place of the exit code.
    from imgcls_cli.reporting import ImgclsWarning

    with pytest.warns(ImgclsWarning, match=r"below min_agreement 99.00%; the files are kept"):
        document = api.export(shapes_run, format="onnx", data=check_folder, output=tmp_path / "api")
    assert document["parity"]["passed"] is False


def test_export_folders_are_refused_unless_they_are_exports_and_force_is_given(
    shapes_run, exports, tmp_path
):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("keep me")
    with pytest.raises(ImgclsError, match="not an imgcls export folder"):
        api.export(shapes_run, output=theirs, format="tflite", check=False)
    assert [p.name for p in theirs.iterdir()] == ["notes.txt"]

    earlier = exports["tflite"]["folder"]
    with pytest.raises(ImgclsError, match="already exists; pass force=True"):
        api.export(shapes_run, output=earlier, format="tflite", check=False)
    # A run's model.keras names its run, as --model does elsewhere.
    replaced = api.export(
        shapes_run / "model.keras", output=earlier, format="tflite", check=False, force=True
    )
    assert replaced["parity"] is None
    assert json.loads(open(f"{earlier}/export.json").read())["parity"] is None
    with pytest.raises(ImgclsError, match="is an export; exports are made from the Keras model"):
        api.export(exports["onnx"]["folder"], format="tflite")


def test_bad_export_options_are_one_line(runner, cli_app, shapes_run):
    result = runner.invoke(
        cli_app, ["export", str(shapes_run), "--format", "onnx", "--quantize", "int8"]
    )
    assert result.exit_code == 2
    assert "--quantize int8 applies to --format tflite" in result.output
    assert "Traceback" not in result.output


def test_a_missing_export_extra_names_what_to_install(shapes_run, monkeypatch, tmp_path):
    real = writers.importlib.util.find_spec
    monkeypatch.setattr(
        writers.importlib.util, "find_spec", lambda name: None if name == "tf2onnx" else real(name)
    )
    with pytest.raises(UsageError, match=r"needs tf2onnx: pip install 'imgcls\[export\]'"):
        api.export(shapes_run, output=tmp_path / "out", format="onnx")
    assert not (tmp_path / "out").exists()


def test_converter_failures_name_the_ops():
    error = Exception(
        "Some ops are not supported by the native TFLite runtime, you can enable TF kernels "
        "fallback using TF Select. Flex ops: FlexMatrixInverse Details: tf.MatrixInverse(...)"
    )
    line = writers.conversion_failure("TFLite", error)
    assert line.startswith("The model has ops that TFLite cannot take: MatrixInverse")
    assert "\n" not in line


def test_benchmark_times_the_model_and_each_export(shapes_run, exports, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(shapes_run, run)
    shutil.copytree(exports["onnx"]["folder"], run / rundir.EXPORT_DIR / "onnx")
    report = api.benchmark(run, batch_sizes=[1, 4], runs_per_size=3)
    assert [m["name"] for m in report["models"]] == ["keras", "onnx"]
    keras_entry, onnx_entry = report["models"]
    assert keras_entry["file_bytes"] == (run / rundir.MODEL_FILE).stat().st_size
    assert onnx_entry["accuracy"] == exports["onnx"]["parity"]["export_accuracy"]
    assert report["flops_per_image"] > report["parameters"] > 0
    for entry in report["models"]:
        assert set(entry["latency"]) == {"1", "4"}
        assert all(t["p95_ms"] >= t["p50_ms"] > 0 for t in entry["latency"].values())
    assert report["hardware"]["cpu_cores"] >= 1
    # From files as predict reads them: the run's test images, at the largest batch.
    whole = report["end_to_end"]
    examples = json.loads((run / "metrics.json").read_text())["test"]["examples"]
    assert whole["files"] == 64 and whole["distinct_files"] == min(64, examples) > 0
    assert whole["batch_size"] == 4 and whole["images_per_second"] > 0


def test_a_forward_pass_costs_its_input_and_the_largest_activation():
    import keras

    from imgcls_cli.commands.benchmark import bytes_per_image

    inner = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(16, 3, padding="same")])
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(inner(inputs)))
    model = keras.Model(inputs, outputs)  # the backbone's activations count, not its output
    assert bytes_per_image(model, (8, 8), 3) == 4 * (2 * 8 * 8 * 3 + 3 * 8 * 8 * 16)


def test_a_batch_too_large_for_the_free_memory_is_refused_in_one_line(
    runner, cli_app, shapes_run, monkeypatch
):
    """Past the free memory the kernel kills the benchmark without a word: refused first,
    with the largest batch that fits."""
    from imgcls_cli.commands import benchmark

    assert benchmark.available_memory() > 0  # this machine's, read from /proc/meminfo
    per_image = 3 * 2**20
    monkeypatch.setattr(benchmark, "bytes_per_image", lambda *_: per_image)
    monkeypatch.setattr(benchmark, "available_memory", lambda: 10 * per_image)
    result = runner.invoke(cli_app, ["benchmark", str(shapes_run), "-b", "1", "-b", "11"])
    assert result.exit_code == 2, result.output
    assert "--batch-size 11 needs about" in result.output
    assert "give --batch-size 10 or less" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_the_benchmark_caption_counts_reads_and_files_apart():
    from imgcls_cli.cli.console import files_read

    assert files_read({"files": 64, "distinct_files": 64}) == "64 files"
    assert files_read({"files": 64, "distinct_files": 8}) == "64 reads of 8 files"


def test_benchmark_milliseconds_read_alike_in_a_column():
    from imgcls_cli.cli.console import milliseconds

    shown = [milliseconds(value) for value in (0.087, 0.0913, 1.5, 12.04, 123.4, 1234.5)]
    assert shown == ["0.0870", "0.0913", "1.50", "12.0", "123", "1,234"]


def test_benchmark_times_files_of_a_run_without_files(digits_run):
    """The embedded digits have no files: their test images are written as PNGs to time."""
    whole = api.benchmark(digits_run, batch_sizes=[8], runs_per_size=1)["end_to_end"]
    assert whole["files"] == 64 and whole["batch_size"] == 8 and whole["images_per_second"] > 0


def test_onnx_failures_name_the_ops_too():
    error = Exception("tf2onnx: Unsupported ops: Counter({'MatrixInverse': 1, 'Svd': 2})")
    line = writers.conversion_failure("ONNX", error)
    assert line.startswith("The model has ops that ONNX cannot take: MatrixInverse, Svd;")


def test_onnx_refuses_an_op_it_has_no_rule_for_before_converting(tmp_path, monkeypatch):
    """A matrix inverse has no ONNX rule in tf2onnx: found in its op table, the export is
    refused with the op named before tf2onnx converts anything, and no file is written."""
    import keras
    import tf2onnx.convert

    from imgcls_cli.errors import UnconvertibleModel

    class Invert(keras.layers.Layer):
        def call(self, images):
            return keras.ops.linalg.inv(images[..., 0] + 4.0 * keras.ops.eye(4))

    inputs = keras.Input((4, 4, 1))
    flat = keras.layers.Flatten()(Invert()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(flat))

    def converted(*args, **kwargs):
        raise AssertionError("tf2onnx was asked to convert")

    monkeypatch.setattr(tf2onnx.convert, "from_graph_def", converted)
    with pytest.raises(UnconvertibleModel, match=r"ONNX cannot take: MatrixInverse; export"):
        writers.write_onnx(model, tmp_path / "model.onnx", (4, 4), 1)
    assert UnconvertibleModel.exit_code == 1 and not any(tmp_path.iterdir())


def test_finetune_runs_export_through_the_nested_backbone(tmp_path):
    """MobileNetV2 (locally saved weights: no download) through the nested backbone to
    ONNX, checked on its held-out images. ResNet50 and EfficientNetB0 take 30-60 s each
    to convert here: benchmarks/bench_export.py exports all three."""
    backbone = "mobilenetv2"
    from test_weights import save_backbone_weights

    from imgcls_cli.commands.finetune import run_finetune
    from imgcls_cli.config import DataConfig, FinetuneConfig
    from imgcls_cli.reporting import SilentReporter

    weights = tmp_path / f"{backbone}.weights.h5"
    save_backbone_weights(backbone, weights, 32)
    data = make_class_folder(tmp_path / "shapes", classes=("a", "b"), per_class=10, size=40)
    config = FinetuneConfig(
        data=DataConfig(data=str(data), test_split=0.5, image_size=32),
        backbone=backbone,
        weights=str(weights),
        head_epochs=1,
        epochs=0,
        batch_size=8,
    )
    run_dir = tmp_path / "run"
    run_finetune(config, run_dir, SilentReporter())
    document = api.export(run_dir, format="onnx")
    assert document["folder"] == str(run_dir / rundir.EXPORT_DIR / "onnx")
    assert document["parity"]["passed"] and document["parity"]["examples"] == 10
    assert document["parity"]["max_abs_difference"] < 1e-3


@pytest.mark.parametrize("command", ["export", "benchmark"])
def test_a_missing_or_unfinished_run_is_one_line(runner, cli_app, tmp_path, command):
    result = runner.invoke(cli_app, [command, str(tmp_path / "nope")])
    assert result.exit_code == 1 and "does not exist; give a run directory" in result.output
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text('{"command": "train"}')
    result = runner.invoke(cli_app, [command, str(tmp_path / "half")])
    assert result.exit_code == 1 and "has no model.keras" in result.output
    assert "Traceback" not in result.output and [p.name for p in (tmp_path / "half").iterdir()] == [
        "config.json"
    ]


def umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_export_folders_take_the_users_umask(exports):
    import os
    import stat

    for document in exports.values():
        mode = stat.S_IMODE(os.stat(document["folder"]).st_mode)
        assert mode == 0o777 & ~umask(), (document["folder"], oct(mode))


def test_an_exports_evaluation_is_written_beside_it_where_export_force_leaves_it(
    shapes_run, exports, check_folder, tmp_path
):
    """Not into the export folder, which `export --force` replaces whole (and refused to,
    with the reports inside)."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(shapes_run, run)
    folder = run / rundir.EXPORT_DIR / "onnx"
    shutil.copytree(exports["onnx"]["folder"], folder)
    api.evaluate(folder, data=check_folder)
    reports = run / rundir.EXPORT_DIR / "onnx-evaluation"
    assert (reports / "evaluation.json").is_file()
    assert not (folder / "evaluation.json").exists()
    api.export(run, format="onnx", force=True, check=False)
    assert (reports / "evaluation.json").is_file()
    assert [path.name for path in rundir.iter_exports(run)] == ["onnx"]


def test_calibration_says_how_many_images_it_used(shapes_run, tmp_path):
    """--calibration 500 on a run whose training split holds fewer: the line gives the
    number used."""
    from imgcls_cli.reporting import SilentReporter

    class Lines(SilentReporter):
        def __init__(self):
            self.lines = []

        def info(self, message):
            self.lines.append(message)

    reporter = Lines()
    api.export(
        shapes_run,
        output=tmp_path / "int8",
        format="tflite",
        quantize="int8",
        calibration=500,
        check=False,
        reporter=reporter,
    )
    metrics = json.loads((shapes_run / "metrics.json").read_text())
    training = 60 - metrics["val"]["examples"] - metrics["test"]["examples"]  # 3 x 20 images
    assert f"Calibrating int8 quantization on {training} training images" in reporter.lines
    card = json.loads((tmp_path / "int8" / "export.json").read_text())
    assert card["calibration_images"] == training and card["options"]["calibration"] == 500


# What TensorFlow, LiteRT, the TFLite converter, tf2onnx and onnxruntime print themselves.
RUNTIME_NOISE = re.compile(
    r"absl::InitializeLog|^[IWEF]\d{4} |XNNPACK|fully_quantize|cpu_feature_guard|"
    r"To enable the following instructions|cuInit|oneDNN|tf2onnx| - (INFO|WARNING) - "
)


def run_quietly(script: str) -> str:
    """stderr of a fresh process running `script`, with the environment a user has."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    return result.stderr


CALLS = """
from imgcls_cli.cli.app import app
for args in {calls!r}:
    code = app(args, standalone_mode=False)
    assert not code, (args, code)
"""


@pytest.mark.slow  # starts imgcls twice
def test_no_runtime_writes_to_the_terminal_without_debug(exports, shapes_run, tmp_path):
    """Each export kind through predict and evaluate in a process that has not started
    TensorFlow yet; then export (int8 TFLite, ONNX) and benchmark."""
    import shutil

    image = str(next(iter(sorted((shapes_run.parent / "shapes" / "tri").iterdir()))))
    kinds = ["tflite-int8", "tflite", "onnx", "savedmodel"]
    calls = [["predict", "--model", exports[kind]["folder"], image] for kind in kinds]
    calls += [
        ["evaluate", "--model", exports[kind]["folder"], "--output", str(tmp_path / kind)]
        for kind in kinds
    ]
    stderr = run_quietly(CALLS.format(calls=calls))
    run = tmp_path / "run"
    shutil.copytree(shapes_run, run)
    calls = [
        ["export", str(run), "--format", "tflite", "--quantize", "int8", "--min-agreement", "0"],
        ["export", str(run), "--format", "onnx", "--min-agreement", "0"],
        ["benchmark", str(run), "-b", "1", "--runs", "1"],
    ]
    stderr += run_quietly(CALLS.format(calls=calls))
    noise = [line for line in stderr.splitlines() if RUNTIME_NOISE.search(line)]
    assert not noise, noise
    assert "Timing tflite-int8" in stderr  # the commands did run, and reported on stderr


@pytest.mark.slow
def test_a_mixed_precision_run_exports_to_every_format_at_float_parity(check_folder, tmp_path):
    """The run computes in bfloat16 (mixed precision on the CPU), which TFLite's builtin
    ops and ONNX's typed graphs do not take: the artifacts are made from a float32 copy of
    the same weights, and checked against the run's own model on 90 new images."""
    classes = ("circle", "square", "tri")
    data = make_class_folder(tmp_path / "shapes", classes=classes, per_class=16)
    run = api.train(
        data=str(data),
        arch="convnet",
        epochs=2,
        batch_size=8,
        mixed_precision=True,
        output=tmp_path / "run",
    )
    assert any(layer.dtype_policy.name == "mixed_bfloat16" for layer in run.model.layers)
    for format, quantize, bar in (
        ("savedmodel", "none", 0.999),
        ("tflite", "none", 0.999),
        ("tflite", "fp16", 0.999),
        ("tflite", "dynamic", 0.999),
        ("tflite", "int8", 0.98),
        ("onnx", "none", 0.999),
    ):
        document = api.export(
            run.path,
            format=format,
            quantize=quantize,
            data=str(check_folder),
            output=tmp_path / f"{format}-{quantize}",
        )
        assert document["parity"]["examples"] == 90
        assert document["parity"]["agreement"] >= bar, (format, quantize, document["parity"])


def app_probabilities(folder: Path, files: list[Path]) -> np.ndarray:
    """What an app does with an export folder, reading only export.json and labels.json:
    decode each image (PIL), feed the artifact in its own runtime with the card's dtype
    and quantization, read the output the card's way. The files are at the input size,
    so no resize is needed."""
    from PIL import Image

    card = json.loads((folder / "export.json").read_text())
    source, target = card["input"], card["output"]
    mode = "RGB" if source["channels"] == "RGB" else "L"
    pixels = np.stack([np.asarray(Image.open(f).convert(mode)) for f in files])
    pixels = pixels.reshape(len(files), *source["shape"][1:]).astype(np.float32)
    if "quantization" in source:
        q = source["quantization"]
        pixels = np.round(pixels / q["scale"] + q["zero_point"])
    pixels = pixels.astype(source["dtype"])
    path = str(folder / card["artifact"])
    if card["format"] == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        stored = session.run([target["name"]], {source["name"]: pixels})[0]
    else:
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=path)
        given, answer = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        interpreter.resize_tensor_input(given["index"], pixels.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(given["index"], pixels)
        interpreter.invoke()
        stored = interpreter.get_tensor(answer["index"])
    if "quantization" in target:
        q = target["quantization"]
        return q["scale"] * (stored.astype(np.float32) - q["zero_point"])
    return stored.astype(np.float32)


@pytest.mark.parametrize("name", ["onnx", "tflite", "tflite-fp16", "tflite-int8"])
def test_an_app_reading_only_export_json_reproduces_predict(exports, check_folder, name):
    folder = Path(exports[name]["folder"])
    files = sorted(check_folder.rglob("*.png"))[::9]  # 10 images of the three classes
    labels = json.loads((folder / "labels.json").read_text())
    probabilities = app_probabilities(folder, files)
    records = api.predict(folder, [str(f) for f in files], top_k=len(labels))
    step = exports[name]["output"].get("quantization", {}).get("scale", 1e-6)
    for row, record in zip(probabilities, records, strict=True):
        assert labels[int(np.argmax(row))] == record["label"]
        by_label = {entry["label"]: entry["probability"] for entry in record["top_k"]}
        expected = np.array([by_label[label] for label in labels])
        np.testing.assert_allclose(row, expected, atol=step * 1.01)
