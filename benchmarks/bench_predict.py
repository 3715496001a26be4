"""How fast is `imgcls predict`, against what a user could write by hand?

1. Cold start: `imgcls predict one.png` as a fresh process, against a minimal script that
   imports Keras, loads the same model and predicts the same image (target: <= 1.3x).
2. Folder throughput: predicting 2,000 small generated images with imgcls' own code
   (expansion, tf.data decoding, inference, one JSON record per image), against
   `model.predict` on the same already-built tf.data pipeline (target: >= 0.9x).
   The whole `imgcls predict FOLDER --json` process is timed too, for reference.

Each figure is the median of several runs (min and max shown); runs alternate between
the two contenders so machine noise hits both alike. Prints a table and writes
benchmarks/results/predict.json (merged by run_all.py). Run it alone (it uses every core):

    flock /tmp/imgcls-tf.lock .venv/bin/python benchmarks/bench_predict.py
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import summary

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent

MINIMAL_SCRIPT = """\
import sys

import keras
import numpy as np
from PIL import Image

model = keras.saving.load_model(sys.argv[1])
height, width = model.input_shape[1:3]
image = Image.open(sys.argv[2]).convert("RGB").resize((width, height))
probabilities = model.predict(np.asarray(image, dtype="float32")[None], verbose=0)[0]
print(int(probabilities.argmax()), float(probabilities.max()))
"""


def make_images(root: Path, count: int, size: int) -> Path:
    """count PNGs in two class folders: bright top-left or bottom-right quadrant."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for index in range(count):
        label = index % 2
        image = rng.integers(0, 40, (size, size, 3), dtype=np.uint8)
        half = size // 2
        image[label * half : (label + 1) * half, label * half : (label + 1) * half] = 220
        folder = root / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{index:05d}.png")
    return root


def train_model(data: Path, run_dir: Path) -> None:
    command = [str(BIN / "imgcls"), "train", "--quiet", "--data", str(data)]
    command += ["--epochs", "1", "--output", str(run_dir), "--force"]
    subprocess.run(command, check=True, capture_output=True)


def wall_time(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def bench_cold_start(run_dir: Path, image: Path, work: Path, repeats: int) -> dict:
    script = work / "minimal_predict.py"
    script.write_text(MINIMAL_SCRIPT)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}  # same log level imgcls sets
    imgcls = [str(BIN / "imgcls"), "predict", str(image), "--model", str(run_dir)]
    minimal = [sys.executable, str(script), str(run_dir / "model.keras"), str(image)]
    wall_time(minimal, env)  # warm the OS file cache for both
    times: dict[str, list[float]] = {"imgcls": [], "minimal": []}
    for _ in range(repeats):
        times["imgcls"].append(wall_time(imgcls, env))
        times["minimal"].append(wall_time(minimal, env))
    result = {name: summary(values) for name, values in times.items()}
    result["ratio"] = result["imgcls"]["median"] / result["minimal"]["median"]
    return result


def bench_folder(run_dir: Path, folder: Path, repeats: int, batch_size: int) -> dict:
    import tensorflow as tf

    from imgcls_cli.commands.predict import expand_inputs, predict_inputs
    from imgcls_cli.config import PredictConfig
    from imgcls_cli.data.folder import model_inputs
    from imgcls_cli.rundir.load import load_run

    run = load_run(run_dir)
    options = PredictConfig(batch_size=batch_size)

    def imgcls_predict() -> int:
        out = io.StringIO()
        items = expand_inputs([str(folder)], lambda: "")
        for prediction in predict_inputs(items, run, options):
            out.write(json.dumps(prediction.to_dict()) + "\n")
        return len(items)

    paths = [item.path for item in expand_inputs([str(folder)], lambda: "")]
    batches = model_inputs(paths, run.channels, run.image_size, batch_size)[0]
    images_only = batches.map(lambda images, indices: tf.cast(images, tf.float32))

    def keras_predict() -> int:
        return len(run.model.predict(images_only, verbose=0))

    contenders = {"imgcls": imgcls_predict, "model.predict": keras_predict}
    for function in contenders.values():  # trace and warm up both
        function()
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, function in contenders.items():
            started = time.perf_counter()
            count = function()
            rates[name].append(count / (time.perf_counter() - started))
    result = {name: summary(values) for name, values in rates.items()}
    result["ratio"] = result["imgcls"]["median"] / result["model.predict"]["median"]
    result["images"] = len(paths)
    return result


def bench_folder_cli(run_dir: Path, folder: Path, repeats: int) -> dict:
    command = [str(BIN / "imgcls"), "predict", str(folder), "--model", str(run_dir), "--json"]
    return summary([wall_time(command, dict(os.environ)) for _ in range(repeats)])


def print_table(results: dict) -> None:
    cold, folder, cli = results["cold_start_s"], results["folder_images_per_s"], results["cli"]
    rows = [
        ("cold start, imgcls predict one.png (s)", cold["imgcls"]),
        ("cold start, minimal Keras script (s)", cold["minimal"]),
        (f"{folder['images']} images, imgcls predict (img/s)", folder["imgcls"]),
        (f"{folder['images']} images, model.predict (img/s)", folder["model.predict"]),
        (f"{folder['images']} images, whole CLI process (s)", cli),
    ]
    print(f"{'measure':<48}{'median':>10}{'min':>10}{'max':>10}")
    for name, values in rows:
        print(f"{name:<48}" + "".join(f"{values[k]:>10.2f}" for k in ("median", "min", "max")))
    print(f"cold start ratio imgcls / minimal: {cold['ratio']:.2f}x (target <= 1.3x)")
    print(
        f"folder throughput ratio imgcls / model.predict: {folder['ratio']:.2f}x (target >= 0.9x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=32, help="image side in pixels")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--output", type=Path, default=HERE / "results" / "predict.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        work = Path(tmp)
        folder = make_images(work / "images", args.images, args.size)
        run_dir = work / "run"
        train_model(folder, run_dir)
        one = next((folder / "class0").glob("*.png"))
        results = {
            "cold_start_s": bench_cold_start(run_dir, one, work, args.repeats),
            "folder_images_per_s": bench_folder(run_dir, folder, args.repeats, args.batch_size),
            "cli": bench_folder_cli(run_dir, folder, max(1, args.repeats // 2)),
        }
    results["setup"] = {
        "images": args.images,
        "image_size": args.size,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "model": "simplecnn, trained 1 epoch by `imgcls train`",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    print_table(results)
    args.output.parent.mkdir(exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
