"""The prepared GPU check (issue 17): what a lent GPU machine should measure, in one run
that ends within 8 minutes on one large NVIDIA GPU, printing one table and one JSON line.

1. `--strategy auto`: which strategy and devices imgcls picks.
2. resnet8 on CIFAR-sized images (32x32 RGB, generated), float32 against
   `--mixed-precision` (images/s of the last epoch, the images cached in memory).
3. MobileNetV2 fine-tuning at 224 px: frozen backbone and whole backbone unfrozen
   (images/s of each phase's last epoch; random weights: no download needed).
4. The folder input pipeline (`--cache none`) against the Keras loader, on this
   machine's cores (benchmarks/bench_folder.py's passes).
5. XLA for the training step (benchmarks/bench_xla.py).
6. Peak GPU memory over all of it.

    bash benchmarks/gpu_check.sh            # on the GPU machine
    bash benchmarks/gpu_check.sh --dry-run  # the same steps, tiny, on the CPU (a test runs it)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

SIZES = {  # full run / --dry-run
    "cifar_images": (10_000, 64),
    "cifar_epochs": (3, 1),
    "finetune_images": (1_000, 16),
    "finetune_size": (224, 32),
    "folder_files": (8_000, 32),
    "xla_archs": (["convnet", "resnet8"], ["simplecnn"]),
    "xla_batches": (40, 4),
    "xla_repeats": (2, 1),
}


def last_rate(run_dir: Path, phase: str | None = None) -> float:
    """images/s of the last epoch (of `phase`) in history.csv."""
    with (run_dir / "history.csv").open() as handle:
        rows = [row for row in csv.DictReader(handle) if phase is None or row["phase"] == phase]
    return float(rows[-1]["images_per_second"])


def cifar_folder(root: Path, count: int) -> Path:
    """`count` 32x32 RGB PNGs in 10 classes: noise with a class-dependent colour cast."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(count):
        label = i % 10
        image = rng.integers(0, 200, (32, 32, 3), dtype=np.uint8)
        image[..., label % 3] += np.uint8(40 + 5 * label)
        path = root / f"class_{label}" / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny, on the CPU")
    args = parser.parse_args()
    pick = 1 if args.dry_run else 0
    size = {name: values[pick] for name, values in SIZES.items()}
    if args.dry_run:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the CPU, as the real run's stand-in
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_folder import imgcls_pass, keras_pass, make_folder
    from bench_xla import images_per_second

    from imgcls_cli import api
    from imgcls_cli.backend import import_tensorflow
    from imgcls_cli.engine.devices import create_strategy, strategy_name

    tf = import_tensorflow()
    started = time.perf_counter()
    figures: dict = {"dry_run": args.dry_run, "finetune_size": size["finetune_size"]}
    gpus = tf.config.list_physical_devices("GPU")
    strategy = create_strategy("auto")
    figures["strategy"] = {
        "auto": strategy_name(strategy),
        "replicas": strategy.num_replicas_in_sync,
        "gpus": [
            tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus
        ],
    }
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        os.environ.setdefault("IMGCLS_CACHE_DIR", str(work / "cache"))
        cifar = cifar_folder(work / "cifar", size["cifar_images"])
        for name, extra in (("float32", {}), ("mixed_precision", {"mixed_precision": True})):
            run = api.train(
                output=work / f"resnet8-{name}",
                data=str(cifar),
                arch="resnet8",
                epochs=size["cifar_epochs"],
                batch_size=128,
                augment="none",
                **extra,
            )
            figures.setdefault("resnet8_cifar_images_per_second", {})[name] = last_rate(run.path)
        import keras

        keras.mixed_precision.set_global_policy("float32")

        photos = make_folder(work / "photos", size["finetune_images"], (256, 256), 0)
        run = api.finetune(
            output=work / "mobilenetv2",
            data=str(photos),
            backbone="mobilenetv2",
            weights="none",
            image_size=size["finetune_size"],
            head_epochs=1,
            epochs=1,
            unfreeze="all",
            augment="standard",
            batch_size=64,
        )
        figures["mobilenetv2_finetune_images_per_second"] = {
            "frozen": last_rate(run.path, "head"),
            "unfrozen": last_rate(run.path, "finetune"),
        }

        folder = make_folder(work / "folder", size["folder_files"], (256, 256), 1)
        imgcls_pass(folder, 160, graph=True)  # the first start writes the scan index
        figures["folder_pipeline_images_per_second"] = {
            "imgcls": imgcls_pass(folder, 160, graph=True)[0],
            "keras_loader": keras_pass(folder, 160)[0],
        }
    figures["xla_images_per_second"] = {
        arch: {
            "plain": images_per_second(
                arch, 32, 3, jit=False, repeats=size["xla_repeats"], batches=size["xla_batches"]
            ),
            "xla": images_per_second(
                arch, 32, 3, jit=True, repeats=size["xla_repeats"], batches=size["xla_batches"]
            ),
        }
        for arch in size["xla_archs"]
    }
    figures["peak_gpu_memory_bytes"] = (
        tf.config.experimental.get_memory_info("GPU:0")["peak"] if gpus else None
    )
    figures["seconds"] = time.perf_counter() - started
    print_summary(figures)
    print(json.dumps(figures))


def print_summary(figures: dict) -> None:
    rows = [
        (
            "strategy (auto)",
            f"{figures['strategy']['auto']}, {figures['strategy']['replicas']} "
            f"replica(s), GPUs: {', '.join(figures['strategy']['gpus']) or 'none'}",
        ),
    ]
    rates = figures["resnet8_cifar_images_per_second"]
    rows.append(
        (
            "resnet8 32x32, images/s",
            f"float32 {rates['float32']:,.0f}, mixed precision {rates['mixed_precision']:,.0f}",
        )
    )
    rates = figures["mobilenetv2_finetune_images_per_second"]
    rows.append(
        (
            "mobilenetv2 finetune, images/s",
            f"frozen {rates['frozen']:,.0f}, unfrozen {rates['unfrozen']:,.0f}",
        )
    )
    rates = figures["folder_pipeline_images_per_second"]
    rows.append(
        (
            "folder pipeline, images/s",
            f"imgcls {rates['imgcls']:,.0f}, Keras loader {rates['keras_loader']:,.0f}",
        )
    )
    for arch, rates in figures["xla_images_per_second"].items():
        rows.append(
            (
                f"{arch} training step, images/s",
                f"plain {rates['plain']:,.0f}, XLA {rates['xla']:,.0f}",
            )
        )
    peak = figures["peak_gpu_memory_bytes"]
    rows.append(("peak GPU memory", "no GPU" if peak is None else f"{peak / 2**30:.2f} GiB"))
    rows.append(("took", f"{figures['seconds']:.0f} s"))
    width = max(len(label) for label, _ in rows)
    title = "GPU check" + (" (dry run, CPU)" if figures["dry_run"] else "")
    print(f"\n{title}")
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")


if __name__ == "__main__":
    main()
