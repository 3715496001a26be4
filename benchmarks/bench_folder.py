"""Folder streaming throughput: imgcls' input pipeline (TensorFlow decoding plain files in
the graph, at reduced JPEG scale when the target allows) against the PIL-only decoder it
replaced, against keras.utils.image_dataset_from_directory, and against the bound: a bare
read → decode → resize → batch pipeline with no imgcls code, with imgcls' alias-free
resize and with Keras' bilinear one; on the same folders, in one run. Plus what the
resizes cost in quality, against a Lanczos reference.

The folders are crops of the real photos scikit-learn ships (china.jpg, flower.jpg): 256 px
squares read at 160 px, and 1024x768 photos (the crops enlarged) read at 224 px.

    python benchmarks/bench_folder.py [--small N] [--large N] [--rounds R]
    python benchmarks/bench_folder.py --accuracy [--seeds S] [--epochs E]

--accuracy trains short runs on a folder of 192 px JPEG photo crops read at 48 px
(decoded at 1/4 scale) with imgcls' decoder and with full-size PIL decoding, and compares
their test accuracy.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from common import print_table, save, summary

BATCH = 64


def make_folder(
    root: Path, count: int, size: tuple[int, int], seed: int, noise: float = 0.0
) -> Path:
    """`count` JPEGs of `size` (width, height) in two class folders, cut from real photos;
    with Gaussian `noise` (standard deviation, grey levels) added after enlarging, like a
    camera sensor's grain, so that enlarged crops compress like photos."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(seed)
    photos = load_sample_images().images  # two 427x640 RGB photos
    for i in range(count):
        photo = photos[i % 2]
        top, left = rng.integers(0, 427 - 192), rng.integers(0, 640 - 256)
        crop = Image.fromarray(photo[top : top + 192, left : left + 256])
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        path = root / f"class_{i % 2}" / f"{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        image = crop.resize(size, Image.Resampling.BICUBIC)
        if noise:
            grain = rng.normal(0, noise, (size[1], size[0], 1))
            pixels = np.clip(np.asarray(image) + grain, 0, 255).astype(np.uint8)
            image = Image.fromarray(pixels)
        image.save(path, quality=90)
    return root


def imgcls_pass(
    root: Path, image_size: int, graph: bool
) -> tuple[float, float, float, float, float]:
    """(images/s of one streamed pass, the `--cache none` path of train, counting the
    scan; seconds the scan took before the first batch could be read; images per CPU
    second of the pass; images/s and images per CPU second of the pass after the scan,
    what later epochs see)."""
    from imgcls_cli.config import CacheMode, DataConfig
    from imgcls_cli.data import folder
    from imgcls_cli.data.pipeline import create_batches

    real_routes = folder.FileDecoder.routes
    if not graph:  # the PIL-only decoder: no file has a TensorFlow route, all take load_image
        folder.FileDecoder.routes = lambda self, target: {}
    try:
        config = DataConfig(data=str(root), val_split=0, test_split=0, cache=CacheMode.none)
        started, cpu_started = time.perf_counter(), time.process_time()
        source = folder.load_folder(root, config, seed=0)
        scanned, scan_cpu = time.perf_counter() - started, time.process_time() - cpu_started
        batches = create_batches(
            source.splits["train"], (image_size, image_size), 3, 2, BATCH, shuffle_seed=0
        )
        seen = sum(int(x.shape[0]) for x, _ in batches)
        cpu, wall = time.process_time() - cpu_started, time.perf_counter() - started
        streaming = (seen / (wall - scanned), seen / (cpu - scan_cpu))
        return seen / wall, scanned, seen / cpu, *streaming
    finally:
        folder.FileDecoder.routes = real_routes


def keras_pass(root: Path, image_size: int) -> tuple[float, float, float]:
    """(images/s of one pass, counting the listing; seconds the listing took; images per
    CPU second)."""
    import keras
    import tensorflow as tf

    started, cpu_started = time.perf_counter(), time.process_time()
    dataset = keras.utils.image_dataset_from_directory(
        root, image_size=(image_size, image_size), batch_size=BATCH, seed=0, verbose=False
    ).prefetch(tf.data.AUTOTUNE)
    listed = time.perf_counter() - started
    seen = sum(int(x.shape[0]) for x, _ in dataset)
    cpu = time.process_time() - cpu_started
    return seen / (time.perf_counter() - started), listed, seen / cpu


def bare_pass(root: Path, image_size: int, method: str) -> tuple[float, float]:
    """(images/s, images per CPU second) of one pass of the least a pipeline must do:
    list, shuffle, read, decode (at imgcls' JPEG scale), resize by `method` (area: imgcls';
    bilinear: Keras'), batch; no check, no failure bookkeeping, no fallback decoder."""
    import tensorflow as tf

    from imgcls_cli.data.images import check_image, jpeg_scale, resize_by

    paths = sorted(root.rglob("*.jpg"))
    facts = check_image(paths[0])  # the folders' files share one size
    target = (image_size, image_size)
    scale = jpeg_scale((facts.height, facts.width), target)

    def load(path, label):
        content = tf.io.read_file(path)
        image = tf.io.decode_jpeg(content, 3, ratio=scale, dct_method="INTEGER_ACCURATE")
        return resize_by(image, target, method), label

    started, cpu_started = time.perf_counter(), time.process_time()
    labels = [int(path.parent.name[-1]) for path in paths]
    dataset = (
        tf.data.Dataset.from_tensor_slices(([str(path) for path in paths], labels))
        .shuffle(len(paths), seed=0)
        .map(load, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(BATCH)
        .map(lambda images, labels: (tf.cast(images, tf.float32), tf.one_hot(labels, 2)))
        .prefetch(tf.data.AUTOTUNE)
    )
    seen = sum(int(x.shape[0]) for x, _ in dataset)
    cpu, wall = time.process_time() - cpu_started, time.perf_counter() - started
    return seen / wall, seen / cpu


def resize_quality(root: Path, image_size: int, files: int = 200) -> dict[str, float]:
    """How far each way of reading a file at `image_size` lands from a reference (the
    full decode resized by PIL's Lanczos filter, antialiased), over `files` files: PSNR
    in dB (higher is closer) of imgcls' route (reduced-scale decode, area resize), of a
    full decode with the same area resize, and of Keras' full decode with a bilinear
    resize; and the mean difference (grey levels) between imgcls' route and the full
    decode with area."""
    import tensorflow as tf
    from PIL import Image

    from imgcls_cli.data.images import check_image, decode_plain, prepare_images

    target = (image_size, image_size)
    errors: dict[str, list[float]] = {"imgcls": [], "full_decode_area": [], "keras": []}
    differences = []
    for path in sorted(root.rglob("*.jpg"))[:files]:
        facts = check_image(path)
        content = tf.io.read_file(str(path))
        with Image.open(path) as image:
            reference = np.asarray(image.convert("RGB").resize(target, Image.Resampling.LANCZOS))
        reduced = prepare_images(decode_plain(content, facts, 3, target), target, 3).numpy()
        full = prepare_images(decode_plain(content, facts, 3, None), target, 3).numpy()
        bilinear = tf.image.resize(tf.io.decode_image(content, 3), target, method="bilinear")
        keras = tf.cast(tf.clip_by_value(tf.round(bilinear), 0, 255), tf.uint8).numpy()
        for name, image in (("imgcls", reduced), ("full_decode_area", full), ("keras", keras)):
            errors[name].append(float(((image.astype(float) - reference) ** 2).mean()))
        differences.append(float(np.abs(reduced.astype(float) - full).mean()))
    psnr = {
        f"psnr_db_{name}": float(10 * np.log10(255**2 / np.mean(squared)))
        for name, squared in errors.items()
    }
    return {**psnr, "mean_abs_difference_reduced_vs_full": float(np.mean(differences))}


def accuracy_study(seeds: int, epochs: int) -> None:
    """Test accuracy of `imgcls train` on the same folder with imgcls' decoder (in the
    graph, at reduced JPEG scale) and with the PIL-only decoder at full size, per seed."""
    import statistics

    from real_data import photos

    from imgcls_cli import api
    from imgcls_cli.data import folder

    def full_size_pil(self, path, target):  # the decoder imgcls replaced
        return real_load(self, path, None)

    real_routes, real_load = folder.FileDecoder.routes, folder.FileDecoder.load
    accuracy: dict[str, list[float]] = {"imgcls": [], "pil_full_size": []}
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["IMGCLS_CACHE_DIR"] = str(Path(scratch) / "cache")
        data = photos(Path(scratch) / "photos", size=192, suffix=".jpg")
        for seed in range(seeds):
            for name in accuracy:
                if name == "pil_full_size":
                    folder.FileDecoder.routes = lambda self, target: {}
                    folder.FileDecoder.load = full_size_pil
                try:
                    run = api.train(
                        output=Path(scratch) / f"{name}-{seed}",
                        data=str(data),
                        image_size=48,
                        epochs=epochs,
                        seed=seed,
                    )
                finally:
                    folder.FileDecoder.routes, folder.FileDecoder.load = real_routes, real_load
                accuracy[name].append(run.metrics["test"]["accuracy"])
    stats = {
        name: {"mean": statistics.mean(values), "stdev": statistics.stdev(values), "runs": values}
        for name, values in accuracy.items()
    }
    difference = stats["imgcls"]["mean"] - stats["pil_full_size"]["mean"]
    spread = ((stats["imgcls"]["stdev"] ** 2 + stats["pil_full_size"]["stdev"] ** 2) / seeds) ** 0.5
    welch_t = difference / spread if spread else float("inf")
    rows = [
        (name, f"{value['mean']:.2%} ± {value['stdev']:.2%} ({seeds} seeds)")
        for name, value in stats.items()
    ]
    rows.append(("difference", f"{difference:+.2%} (Welch t {welch_t:.2f})"))
    print_table(f"Test accuracy, photos as 192 px JPEGs read at 48 px, {epochs} epochs", rows)
    save(
        "folder_accuracy", {"epochs": epochs, **stats, "difference": difference, "welch_t": welch_t}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=8000, help="256 px JPEGs")
    parser.add_argument("--large", type=int, default=1000, help="1024x768 JPEGs")
    parser.add_argument("--phone", type=int, default=150, help="4032x3024 JPEGs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--accuracy", action="store_true", help="the decoder accuracy study")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    if args.accuracy:
        accuracy_study(args.seeds, args.epochs)
        return

    from imgcls_cli.backend import import_tensorflow

    import_tensorflow()
    figures, rows = {}, []
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["IMGCLS_CACHE_DIR"] = str(Path(scratch) / "cache")  # the scan index
        cases = {
            "256px_at_160": (
                make_folder(Path(scratch) / "small", args.small, (256, 256), 0),
                160,
            ),
            "1024x768_at_224": (
                make_folder(Path(scratch) / "large", args.large, (1024, 768), 1),
                224,
            ),
            # A phone's 12 megapixels (about 2 MB a file, as phones write them), decoded
            # at 1/8.
            "4032x3024_at_224": (
                make_folder(Path(scratch) / "phone", args.phone, (4032, 3024), 2, noise=3.0),
                224,
            ),
        }
        for name, (root, size) in cases.items():
            # The first start checks every file (header, end marker, hash) and writes the
            # scan index; later starts reuse it for unchanged files.
            first_start, first_scan, *_ = imgcls_pass(root, size, graph=True)
            runs = {"imgcls": [], "pil_only": [], "keras": [], "imgcls_after_scan": []}
            per_cpu = {
                key: []
                for key in (
                    "imgcls",
                    "imgcls_after_scan",
                    "pil_only",
                    "keras",
                    "bound_area",
                    "bound_bilinear",
                )
            }
            scans = {"imgcls": [], "keras": []}
            for _ in range(args.rounds):  # interleaved, so machine noise hits them all
                rate, scanned, cpu_rate, streaming, streaming_cpu = imgcls_pass(
                    root, size, graph=True
                )
                runs["imgcls"].append(rate)
                runs["imgcls_after_scan"].append(streaming)
                scans["imgcls"].append(scanned)
                per_cpu["imgcls"].append(cpu_rate)
                per_cpu["imgcls_after_scan"].append(streaming_cpu)
                rate, _, cpu_rate, *_ = imgcls_pass(root, size, graph=False)
                runs["pil_only"].append(rate)
                per_cpu["pil_only"].append(cpu_rate)
                rate, listed, cpu_rate = keras_pass(root, size)
                runs["keras"].append(rate)
                scans["keras"].append(listed)
                per_cpu["keras"].append(cpu_rate)
                for method in ("area", "bilinear"):
                    per_cpu[f"bound_{method}"].append(bare_pass(root, size, method)[1])
            stats = {key: summary(values) for key, values in runs.items()}
            ratio = stats["imgcls"]["median"] / stats["keras"]["median"]
            cpu_stats = {key: summary(values) for key, values in per_cpu.items()}
            # Images per CPU second: what a pass costs, steady where wall time is not
            # (on a small shared VM, a pass can run at half speed when a core is taken).
            cpu_ratio = cpu_stats["imgcls"]["median"] / cpu_stats["keras"]["median"]
            scan_stats = {key: summary(values) for key, values in scans.items()}
            # What no pipeline with this decoder can beat, per CPU second against Keras:
            # the bare pipeline with imgcls' resize, and with Keras' own.
            bounds = {
                method: cpu_stats[f"bound_{method}"]["median"] / cpu_stats["keras"]["median"]
                for method in ("area", "bilinear")
            }
            figures[name] = {
                **stats,
                "ratio_vs_keras": ratio,
                "images_per_cpu_second": cpu_stats,
                "cpu_ratio_vs_keras": cpu_ratio,
                "bound_cpu_ratio_vs_keras": bounds,
                # The pass after the scan against the bare one, which scans nothing.
                "share_of_bound": cpu_stats["imgcls_after_scan"]["median"]
                / cpu_stats["bound_area"]["median"],
                "imgcls_first_start": first_start,
                "imgcls_first_scan_seconds": first_scan,
                "imgcls_scan_seconds": scan_stats["imgcls"],
                "keras_listing_seconds": scan_stats["keras"],
            }
            rows.append(
                (
                    name,
                    f"imgcls {stats['imgcls']['median']:,.0f} img/s (first start "
                    f"{first_start:,.0f}), PIL-only decoder {stats['pil_only']['median']:,.0f}, "
                    f"Keras loader {stats['keras']['median']:,.0f}: {ratio:.2f}x; per CPU "
                    f"second {cpu_stats['imgcls']['median']:,.0f} vs "
                    f"{cpu_stats['keras']['median']:,.0f}: {cpu_ratio:.2f}x (PIL-only "
                    f"{cpu_stats['pil_only']['median']:,.0f}); after the scan "
                    f"{stats['imgcls_after_scan']['median']:,.0f} img/s: "
                    f"{stats['imgcls_after_scan']['median'] / stats['keras']['median']:.2f}x",
                )
            )
            rows.append(
                (
                    f"{name}: bound per CPU second",
                    f"bare pipeline, area resize {cpu_stats['bound_area']['median']:,.0f} "
                    f"({bounds['area']:.2f}x Keras; imgcls reaches "
                    f"{figures[name]['share_of_bound']:.0%} of it), bilinear resize "
                    f"{cpu_stats['bound_bilinear']['median']:,.0f} ({bounds['bilinear']:.2f}x)",
                )
            )
            rows.append(
                (
                    f"{name}: time before the first batch",
                    f"imgcls first start {first_scan:.2f} s, later starts "
                    f"{scan_stats['imgcls']['median']:.2f} s; Keras listing "
                    f"{scan_stats['keras']['median']:.2f} s",
                )
            )
        for name, (root, size) in cases.items():
            quality = resize_quality(root, size)
            figures[name]["resize_quality"] = quality
            rows.append(
                (
                    f"{name}: PSNR against Lanczos",
                    f"imgcls {quality['psnr_db_imgcls']:.1f} dB, full decode + area "
                    f"{quality['psnr_db_full_decode_area']:.1f} dB, Keras (bilinear) "
                    f"{quality['psnr_db_keras']:.1f} dB; reduced vs full decode "
                    f"{quality['mean_abs_difference_reduced_vs_full']:.2f} grey levels",
                )
            )
    print_table("Folder streaming, one pass, batch 64 (median of rounds)", rows)
    save("folder", figures)


if __name__ == "__main__":
    main()
