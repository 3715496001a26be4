"""Shared fixtures: an isolated Keras home, generated image folders, a CLI runner."""

from __future__ import annotations

import atexit
import importlib.abc
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

# Before anything imports Keras or matplotlib: keep their caches out of the user's home,
# one home per test process. `make test`'s processes (pytest-xdist) inherit the first
# process' environment: a shared Keras cache let one process find the ImageNet stand-in
# another wrote, under a hash it had not patched.
_HOME = tempfile.mkdtemp(prefix="imgcls-tests-")
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
_PARENT_HOME = os.environ.get("IMGCLS_TESTS_HOME")  # set by the process that started this one
for _name, _folder in (
    ("KERAS_HOME", "keras"),
    ("MPLCONFIGDIR", "mpl"),
    ("IMGCLS_CACHE_DIR", "cache"),  # the scan index
    ("HF_HOME", "huggingface"),  # datasets' cache
):
    _given = os.environ.get(_name)
    if _given is None or (_PARENT_HOME and _given.startswith(_PARENT_HOME)):
        os.environ[_name] = os.path.join(_HOME, _folder)
os.environ["IMGCLS_TESTS_HOME"] = _HOME
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# `make test`'s processes share the cores: each TensorFlow (and each imgcls a test starts)
# takes its share of them for one op's threads, rather than all of them each. Two
# processes on 2 cores ran test_finetune.py and test_export.py in 80-82 s instead of
# 87-92 s (2026-12-08).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(max(1, (os.cpu_count() or 1) // _WORKERS)))

# `make test-fast` (IMGCLS_FAST_TESTS=1): the unit tests only, in seconds. A test that
# reaches TensorFlow (in this process, or by starting imgcls, marked `slow`) is skipped
# there; `make test` runs every test.
FAST = os.environ.get("IMGCLS_FAST_TESTS") == "1"
HEAVY_MODULES = ("tensorflow", "keras", "tensorflow_datasets")


class SkipWhereTensorFlowIsNeeded(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HEAVY_MODULES:
            raise pytest.skip.Exception(
                "needs TensorFlow: `make test` runs it", allow_module_level=True
            )
        return None


if FAST:
    sys.meta_path.insert(0, SkipWhereTensorFlowIsNeeded())


# The files that take longest (25 s and more of a `make test`, 2026-12-07), longest first:
# `make test` hands whole files to its two processes in collection order (xdist's own
# reordering is off), and one of these started last would leave the other process idle
# for up to a minute at the end.
LONGEST_FILES = (
    "test_scale.py",
    "test_readme.py",
    "test_finetune.py",
    "test_examples.py",
    "test_export.py",
    "test_benchmarks.py",
    "test_train.py",
    "test_explain.py",
    "test_notebook_api.py",
    "test_determinism.py",
    "test_batch_norm.py",
    "test_augment.py",
    "test_pipeline.py",
    "test_backbones.py",
    "test_safety.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: index for index, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: files stay whole
    if FAST:
        marker = pytest.mark.skip(reason="starts imgcls: `make test` runs it")
        for item in items:
            if item.get_closest_marker("slow"):
                item.add_marker(marker)


def write_image(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)
    return path


def make_class_folder(root: Path, classes=("circle", "square"), per_class=12, size=16, seed=0):
    """A folder of easily separable generated images: class k is bright in quadrant k."""
    rng = np.random.default_rng(seed)
    for index, name in enumerate(classes):
        for i in range(per_class):
            image = rng.integers(0, 40, size=(size, size, 3), dtype=np.uint8)
            half = size // 2
            row, col = divmod(index % 4, 2)
            image[row * half : (row + 1) * half, col * half : (col + 1) * half] = 220
            write_image(root / name / f"{name}_{i}.png", image)
    return root


def damaged_png(source: Path, target: Path) -> Path:
    """A copy of a PNG with its compressed pixels scrambled: the header and the end
    marker stay intact, so only decoding finds out."""
    content = bytearray(source.read_bytes())
    content[45:-20] = bytes(byte ^ 0x5A for byte in content[45:-20])  # inside IDAT
    target.write_bytes(bytes(content))
    return target


def damaged_jpeg(target: Path, size: int = 32) -> Path:
    """A JPEG with a marker libjpeg does not know planted in its compressed data: the
    header and end marker pass imgcls' check; decoding fails, and libjpeg prints its
    warnings ("Corrupt JPEG data: …") to file descriptor 2."""
    import io

    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    content = bytearray(buffer.getvalue())
    scan = content.index(b"\xff\xda")
    start = scan + 2 + int.from_bytes(content[scan + 2 : scan + 4], "big") + 40
    content[start : start + 2] = b"\xff\xb8"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(bytes(content))
    return target


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return make_class_folder(tmp_path / "shapes")


@pytest.fixture
def runner():
    from typer.testing import CliRunner

    return CliRunner()


@pytest.fixture
def cli_app():
    from imgcls_cli.cli.app import app

    return app


def train_run(run_dir: Path, data, **options) -> Path:
    """Train a small run through the library (as `imgcls train` does) into run_dir."""
    from imgcls_cli.commands.train import run_train
    from imgcls_cli.config import DataConfig, TrainConfig
    from imgcls_cli.reporting import SilentReporter

    config = TrainConfig(data=DataConfig(**data), **options)
    run_train(config, run_dir, SilentReporter())
    return run_dir


@pytest.fixture(scope="session")
def shapes_run(tmp_path_factory) -> Path:
    """A simplecnn run on three easily separable classes of 16x16 RGB images."""
    from imgcls_cli.config import AugmentConfig, AugmentPreset

    root = tmp_path_factory.mktemp("shapes-run")
    folder = make_class_folder(root / "shapes", classes=("circle", "square", "tri"), per_class=20)
    # No augmentation: circle and square are mirror images of each other, which flips
    # would make indistinguishable.
    augment = AugmentConfig(preset=AugmentPreset.none)
    return train_run(
        root / "run",
        {"data": str(folder)},
        arch="simplecnn",
        epochs=6,
        batch_size=8,
        augment=augment,
    )


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> Path:
    """A resnet8 run on the embedded digits (8x8 grayscale, 10 classes)."""
    root = tmp_path_factory.mktemp("digits-run")
    return train_run(root / "run", {"dataset": "digits"}, arch="resnet8", epochs=1)


@pytest.fixture
def no_network(monkeypatch):
    """Every connection attempt fails at once, as on a machine without network."""
    import errno
    import socket

    def unreachable(*args, **kwargs):
        raise OSError(errno.ENETUNREACH, "Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    monkeypatch.setattr(socket.socket, "connect", unreachable)
