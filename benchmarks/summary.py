"""The headline table of `make bench`, from the merged results: one row per figure the
issues ask for, median (min-max), and its target. Printed as Markdown, for BENCHMARKS.md
and the README.

    python benchmarks/summary.py   # from benchmarks/results.json
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).parent / "results.json"


def spread(figure: dict, unit: str = "", scale: float = 1.0, digits: int = 0) -> str:
    values = [figure[key] * scale for key in ("median", "min", "max")]
    median, low, high = (f"{value:,.{digits}f}" for value in values)
    runs = f", {figure['runs']} runs" if "runs" in figure else ""
    return f"{median}{unit} ({low}-{high}{unit}{runs})"


def row_train(r: dict) -> tuple[str, str, str]:
    speed = r["train_throughput"]["images_per_second"]
    return (
        "training throughput, `imgcls train` loop vs `model.fit` (simplecnn, 28x28x1)",
        f"**{r['train_throughput']['ratio']:.2f}x**: {spread(speed['imgcls'], ' img/s')} vs "
        f"{spread(speed['keras_fit'], ' img/s')}",
        "≥ 0.95x",
    )


def row_help(r: dict) -> tuple[str, str, str]:
    startup = r["startup"]
    return (
        '`imgcls --help` vs `python -c "import tensorflow"`',
        f"{spread(startup['help_seconds'], ' s', digits=2)} vs "
        f"{spread(startup['import_tensorflow_seconds'], ' s', digits=1)}",
        "< 0.5 s",
    )


def row_offline(r: dict) -> tuple[str, str, str]:
    return (
        "offline `imgcls train --dataset mnist` fails with its message",
        spread(r["startup"]["offline_mnist_failure_seconds"], " s", digits=1),
        "< 15 s",
    )


def row_cold_predict(r: dict) -> tuple[str, str, str]:
    cold = r["predict"]["cold_start_s"]
    return (
        "cold `imgcls predict one.png` vs a minimal Keras script",
        f"**{cold['ratio']:.2f}x**: {spread(cold['imgcls'], ' s', digits=2)} vs "
        f"{spread(cold['minimal'], ' s', digits=2)}",
        "≤ 1.3x",
    )


def row_folder_predict(r: dict) -> tuple[str, str, str]:
    folder = r["predict"]["folder_images_per_s"]
    return (
        f"`imgcls predict` over {r['predict']['setup']['images']:,} PNGs vs `model.predict` "
        "on the same pipeline",
        f"**{folder['ratio']:.2f}x**: {spread(folder['imgcls'], ' img/s')} vs "
        f"{spread(folder['model.predict'], ' img/s')}",
        "≥ 0.9x",
    )


def row_folder_stream(r: dict) -> tuple[str, str, str]:
    def ratio(case: str) -> str:
        figures = r["folder"][case]
        return (
            f"{case.replace('_at_', ' at ')}: **{figures['cpu_ratio_vs_keras']:.2f}x** "
            f"(bound {figures['bound_cpu_ratio_vs_keras']['area']:.2f}x)"
        )

    cases = ("256px_at_160", "1024x768_at_224", "4032x3024_at_224")
    return (
        "folder streaming per CPU second vs the Keras loader, one pass with the scan "
        "(bound: a bare TensorFlow pipeline with the same resize)",
        "; ".join(ratio(case) for case in cases),
        "≥ 1.0x at 256 px, ≥ 1.5x at 1024x768 (not reachable: see BENCHMARKS.md)",
    )


def row_caching(r: dict) -> tuple[str, str, str]:
    caching = r["finetune"]["caching"]
    return (
        f"finetune head epoch, bottleneck caching (MobileNetV2, 224 px, {caching['images']} "
        "images)",
        f"**{caching['speedup']:,.0f}x**: {spread(caching['cached_epoch_seconds'], ' ms', 1000)} "
        f"vs {spread(caching['uncached_epoch_seconds'], ' ms', 1000)} uncached",
        "≥ 10x",
    )


def row_augment(r: dict) -> tuple[str, str, str]:
    speed = r["augment_throughput"]["images_per_second"]
    return (
        "training with `--augment standard` vs `none` (28x28x1)",
        f"**{r['augment_throughput']['ratio']:.2f}x**: {spread(speed['standard'], ' img/s')} "
        f"vs {spread(speed['none'], ' img/s')}",
        "≥ 0.75x",
    )


def row_memory(r: dict) -> tuple[str, str, str]:
    memory = r["memory"]
    small, large = sorted(memory["cache_none"]["peak_rss_mib"], key=int)

    def peaks(mode: str) -> str:
        rss = memory[f"cache_{mode}"]["peak_rss_mib"]
        return f"{spread(rss[small], ' MiB')} vs {spread(rss[large], ' MiB')}"

    return (
        f"peak RSS, `imgcls train` on {int(large):,} vs {int(small):,} "
        f"{memory['image_size']}x{memory['image_size']} PNGs",
        f"`--cache none` **{memory['cache_none']['ratio']:.2f}x** ({peaks('none')}); "
        f"default `auto` {memory['cache_auto']['ratio']:.2f}x ({peaks('auto')})",
        "streaming < 1.3x",
    )


def row_demo(r: dict) -> tuple[str, str, str]:
    return (
        "`make demo` test accuracy (digits, simplecnn, 30 epochs, 3 seeds)",
        spread(r["demo_accuracy"]["summary"], "%", 100, 2),
        "≥ 97%",
    )


def row_statistics(r: dict) -> tuple[str, str, str]:
    figures = r["train_statistics"]
    rates = figures["images_per_cpu_second"]
    share = figures["pass_cpu_seconds"]["median"] / figures["epoch_cpu_seconds_without"]
    return (
        "an epoch with batch-normalization statistics measured vs without (convnet, 4,000 "
        "28x28x1 images, per CPU second)",
        f"**{figures['ratio']:.2f}x**: {spread(rates['with_statistics'], ' img/s')} vs "
        f"{spread(rates['without'], ' img/s')}; the pass alone {share:.1%} of an epoch",
        "≥ 0.91x (at most 10% more time)",
    )


def row_small(r: dict) -> tuple[str, str, str]:
    results = r["small_folders"]["results"]
    twenty = {key: v for key, v in results.items() if key.endswith("/20")}
    worst = min(twenty.items(), key=lambda item: item[1]["default"]["mean"])
    margin = min(v["default"]["mean"] - v["simplecnn"]["mean"] for v in twenty.values())
    own = min(v["default"]["train_sample_min"] for v in twenty.values())
    return (
        f"small folders, 20 images a class ({len(twenty)} real sources, 3 seeds): default "
        "test accuracy, its lead over `--arch simplecnn`, own training images",
        f"lowest {worst[1]['default']['mean']:.1%} ({worst[0]}); lead ≥ {margin:.1%} points; "
        f"own training images ≥ {own:.0%}",
        "≥ 85%, ≥ 5 points, ≥ 90%",
    )


def row_api_memory(r: dict) -> tuple[str, str, str]:
    figures = r["api_memory"]

    def growth(name: str) -> str:
        rss = figures[name]["rss_mib"]
        return f"{figures[name]['growth']:+.1%} ({rss[0]:,.0f} → {rss[-1]:,.0f} MiB)"

    runs = len(figures["api.train"]["rss_mib"])
    return (
        f"RSS after {runs} `api.train` runs in one process vs after the first (anchor: "
        "the same loop with `keras.backend.clear_session()`)",
        f"**{growth('api.train')}** vs {growth('api.train + clear_session')}",
        "within 10%",
    )


def row_label_table(r: dict) -> tuple[str, str, str]:
    figures = r["label_table"]
    accuracy = figures["accuracy"]

    def mean(name: str) -> str:
        values = accuracy[name]
        return f"{sum(values) / len(values):.2%}"

    seeds = len(accuracy["class folders"])
    start, rss = figures["start_ratio"], figures["parquet_peak_rss_mib"]
    return (
        f"the same digits as class folders, a CSV and a saved Hugging Face dataset: test "
        f"accuracy with the defaults ({seeds} seeds, mean); start on "
        f"{figures['files']:,} files as a CSV vs as folders; peak RSS, `--cache none` on a "
        "Parquet folder of 20,000 vs 2,000 images",
        f"folders {mean('class folders')}, CSV {mean('csv')} (in the folders' row order "
        f"{mean('csv, folder order')}), HF {mean('hf saved')}; start **{start['cold']:.2f}x** "
        f"(cold index), {start['warm']:.2f}x (warm); RSS **{figures['parquet_rss_ratio']:.2f}x** "
        f"({rss['2000']:,.0f} vs {rss['20000']:,.0f} MiB)",
        "same within noise; ≤ 1.2x; ≤ 1.3x",
    )


ROWS: list[Callable[[dict], tuple[str, str, str]]] = [
    row_train,
    row_statistics,
    row_help,
    row_offline,
    row_cold_predict,
    row_folder_predict,
    row_folder_stream,
    row_caching,
    row_augment,
    row_memory,
    row_api_memory,
    row_demo,
    row_small,
    row_label_table,
]


def markdown_table(results: dict) -> str:
    lines = ["| figure | measured: median (min-max) | target |", "| --- | --- | --- |"]
    for row in ROWS:
        try:
            lines.append("| {} | {} | {} |".format(*row(results)))
        except KeyError as missing:
            lines.append(f"| {row.__name__} | not measured (no {missing} in the results) | |")
    return "\n".join(lines)


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS
    print(markdown_table(json.loads(path.read_text())))


if __name__ == "__main__":
    main()
