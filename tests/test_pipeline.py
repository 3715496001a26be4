"""The shared tf.data pipeline: cache or stream, and shuffling that holds few images."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write_image

from imgcls_cli.config import CacheMode, DataConfig
from imgcls_cli.data import pipeline
from imgcls_cli.data.folder import load_folder


def numbered_folder(root, count=24):
    """Images whose pixels all equal their number (1..count), in two classes."""
    for number in range(1, count + 1):
        image = np.full((4, 4), number, np.uint8)
        write_image(root / ("odd" if number % 2 else "even") / f"{number:03d}.png", image, "L")
    return root


def record_decoded(monkeypatch) -> list[str]:
    """The paths of every file handed to either decoder from now on, in order."""
    from imgcls_cli.data import folder

    decoded = []
    real_started = folder.FileDecoder.started

    def started(self, paths, routes):
        decoded.extend(path.decode() for path in paths)
        return real_started(self, paths, routes)

    monkeypatch.setattr(folder.FileDecoder, "started", started)
    return decoded


def epoch_orders(split, epochs, seed, cache):
    batches = pipeline.create_batches(split, (4, 4), 1, 2, 5, shuffle_seed=seed, cache=cache)
    return [
        [int(image[0, 0, 0]) for images, _ in batches for image in images.numpy()]
        for _ in range(epochs)
    ]


@pytest.mark.parametrize("cache", [False, True, "disk"])
def test_each_epoch_sees_every_image_once_in_a_new_seeded_order(tmp_path, cache):
    root = numbered_folder(tmp_path / "numbers")
    split = load_folder(root, DataConfig(data=str(root), val_split=0, test_split=0), 0).splits[
        "train"
    ]
    first, second = epoch_orders(split, 2, seed=3, cache=cache)
    assert sorted(first) == sorted(second) == list(range(1, 25))
    assert first != second
    assert epoch_orders(split, 2, seed=3, cache=cache) == [first, second]
    assert epoch_orders(split, 1, seed=4, cache=cache)[0] != first


@pytest.mark.parametrize("cache", [False, True, "disk"])
@pytest.mark.parametrize("seed", [0, None])  # training's batches, and evaluation's
def test_a_batch_larger_than_the_data_is_the_data(tmp_path, cache, seed):
    """--batch-size 100000000 on 24 images: one batch of 24, as asked, without tf.data
    setting aside room for a hundred million (evaluation's batches ran out of memory)."""
    root = numbered_folder(tmp_path / "numbers")
    config = DataConfig(data=str(root), val_split=0, test_split=0)
    split = load_folder(root, config, 0).splits["train"]
    batches = pipeline.create_batches(split, (64, 64), 1, 2, 10**8, shuffle_seed=seed, cache=cache)
    assert [len(images) for images, _ in batches] == [24]


@pytest.mark.parametrize("cache", [False, True])
def test_streaming_a_folder_shuffles_paths_before_decoding(tmp_path, monkeypatch, cache):
    """The first batch of a streamed folder decodes a few images, not a buffer of them."""

    root = numbered_folder(tmp_path / "numbers", count=200)
    split = load_folder(root, DataConfig(data=str(root), val_split=0, test_split=0), 0).splits[
        "train"
    ]
    decoded = record_decoded(monkeypatch)
    batches = pipeline.create_batches(split, (4, 4), 1, 2, 5, shuffle_seed=0, cache=cache)
    next(iter(batches))
    if cache:  # decoded once, all of them, into the cache that the shuffle draws from
        assert len(decoded) == 200
    else:
        assert len(decoded) < 100


def test_streaming_shuffle_buffer_is_bounded_in_bytes():
    small = pipeline.shuffle_buffer_size(2_000, (32, 32), 3, cached=False)
    large = pipeline.shuffle_buffer_size(2_000_000, (224, 224), 3, cached=False)
    assert small == 2_000
    assert large * 224 * 224 * 3 <= pipeline.SHUFFLE_BUFFER_BYTES
    assert pipeline.shuffle_buffer_size(2_000_000, (224, 224), 3, cached=True) == 10_000


def test_cache_modes(monkeypatch):
    from imgcls_cli.data import disk_cache

    place = pipeline.cache_placement
    monkeypatch.setattr(pipeline, "memory_cache_budget", lambda: 1000)
    assert place(CacheMode.auto, 10, (10, 10), 1) == "memory"  # 1,000 bytes
    assert place(CacheMode.auto, 11, (10, 10), 1) == "disk"
    assert place(CacheMode.memory, 10**6, (10, 10), 1) == "memory"
    assert place(CacheMode.disk, 1, (10, 10), 1) == "disk"
    assert place(CacheMode.none, 1, (10, 10), 1) == "stream"
    monkeypatch.setattr(disk_cache, "has_room", lambda size: False)
    assert place(CacheMode.auto, 11, (10, 10), 1) == "stream"
    assert place(CacheMode.disk, 1, (10, 10), 1) == "stream"
    monkeypatch.undo()
    assert 0 < pipeline.memory_cache_budget() <= pipeline.MEMORY_CACHE_LIMIT


def test_train_caches_on_disk_or_streams_when_data_exceeds_the_memory_budget(
    runner, cli_app, tmp_path, monkeypatch
):
    root = numbered_folder(tmp_path / "numbers")
    common = ["train", "--data", str(root), "--epochs", "1", "--batch-size", "8"]
    result = runner.invoke(cli_app, [*common, "--cache", "none", "--output", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "a" / "config.json").read_text())
    assert saved["options"]["data"]["cache"] == "none"
    assert saved["resolved"]["cache"] == "stream"
    assert "Streaming" not in result.output  # asked for: no need to explain

    result = runner.invoke(cli_app, [*common, "--output", str(tmp_path / "b")])
    assert json.loads((tmp_path / "b" / "config.json").read_text())["resolved"]["cache"] == (
        "memory"
    )
    monkeypatch.setattr(pipeline, "memory_cache_budget", lambda: 100)
    result = runner.invoke(cli_app, [*common, "--output", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert "Keeping the resized images in a file of the cache folder" in result.output
    assert json.loads((tmp_path / "c" / "config.json").read_text())["resolved"]["cache"] == ("disk")
    from imgcls_cli.data import disk_cache

    monkeypatch.setattr(disk_cache, "has_room", lambda size: False)
    result = runner.invoke(cli_app, [*common, "--output", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert "Streaming images" in result.output
    assert json.loads((tmp_path / "d" / "config.json").read_text())["resolved"]["cache"] == (
        "stream"
    )


def test_bad_cache_mode_is_a_usage_error(runner, cli_app):
    result = runner.invoke(cli_app, ["train", "--cache", "tape"])
    assert result.exit_code == 2
    assert "disk" in result.output


def test_the_disk_cache_decodes_once_keeps_labels_with_images_and_cleans_up(tmp_path, monkeypatch):
    from imgcls_cli.data import disk_cache

    monkeypatch.setenv("IMGCLS_CACHE_DIR", str(tmp_path / "cache"))
    stale = disk_cache.images_dir() / "imgcls-999999999-0.npy"  # a process that is gone
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left by a killed run")
    root = numbered_folder(tmp_path / "numbers", count=30)
    split = load_folder(root, DataConfig(data=str(root), val_split=0, test_split=0), 0).splits[
        "train"
    ]
    fetched = record_decoded(monkeypatch)
    batches = pipeline.create_batches(split, (4, 4), 1, 2, 4, shuffle_seed=0, cache="disk")
    assert len(fetched) == 30 and not stale.exists()
    for _ in range(3):
        numbers, labels = [], []
        for images, one_hot in batches:
            numbers += [int(image[0, 0, 0]) for image in images.numpy()]
            labels += list(np.argmax(one_hot.numpy(), axis=1))
        assert sorted(numbers) == list(range(1, 31))
        # class folders sort as even, odd: label 1 for the odd numbers
        assert [n % 2 for n in numbers] == [int(label) for label in labels]
    assert len(fetched) == 30  # epochs read the cache file, never the images
    assert len(list(disk_cache.images_dir().glob("imgcls-*.npy"))) == 1  # this run's only


def worker_epochs(split, shards, epochs, cache, augmentation=None):
    """Per worker: the image numbers of each epoch it reads, in per-worker batches."""
    result = []
    for index in range(shards):
        batches = pipeline.create_batches(
            split, (4, 4), 1, 2, 3, shuffle_seed=5, cache=cache, shard=(shards, index)
        )
        result.append(
            [
                [int(image[0, 0, 0]) for images, _ in batches for image in images.numpy()]
                for _ in range(epochs)
            ]
        )
    return result


@pytest.mark.parametrize("cache", [False, True, "disk"])
def test_workers_decode_disjoint_parts_that_cover_every_image_each_epoch(
    tmp_path, monkeypatch, cache
):
    """Sharded before decoding: each of 2 workers decodes half of the files, together all
    of them, none twice in an epoch; streaming reshuffles which worker gets which."""

    root = numbered_folder(tmp_path / "numbers", count=25)
    split = load_folder(root, DataConfig(data=str(root), val_split=0, test_split=0), 0).splits[
        "train"
    ]
    decoded = record_decoded(monkeypatch)
    (first_0, second_0), (first_1, second_1) = worker_epochs(split, 2, 2, cache)
    for one, other in ((first_0, first_1), (second_0, second_1)):
        assert sorted(one + other) == list(range(1, 26))
        assert {len(one), len(other)} == {12, 13}
    if cache is False:  # the epoch's shuffle comes before the split into parts
        assert set(first_0) != set(second_0)
        assert len(decoded) == 2 * 25  # two epochs, each file decoded once
    else:  # each worker decodes its part once, into its own cache
        assert sorted(int(Path(p).stem) for p in decoded) == list(range(1, 26))
    assert worker_epochs(split, 2, 2, cache) == [[first_0, second_0], [first_1, second_1]]


def test_array_sources_shard_too():
    from imgcls_cli.data.embedded import load_digits

    split = load_digits(DataConfig(dataset="digits"), 0).splits["test"]
    counts = [
        sum(
            int(images.shape[0])
            for images, _ in pipeline.create_batches(split, (8, 8), 1, 10, 64, shard=(3, index))
        )
        for index in range(3)
    ]
    assert counts == [150, 150, 150]


def test_tfds_sources_shard_by_record_files_or_by_records(tmp_path, monkeypatch):
    """A TFDS split written in 2 record files: 2 workers read one file each (TFDS's
    input_context); 3 workers, more than the files, read every record and keep their
    third. Either way the parts are disjoint and cover the split."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets import testing

    from imgcls_cli.data import tfds_source
    from imgcls_cli.reporting import SilentReporter

    builder = testing.DummyMnist(data_dir=str(tmp_path))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(num_shards=2))
    assert builder.info.splits["test"].num_shards == 2
    monkeypatch.setattr(tfds_source, "check_dataset_name", lambda name: None)  # a test builder
    config = DataConfig(dataset="dummy_mnist", data_dir=str(tmp_path))
    split = tfds_source.load_tfds(config, 0, SilentReporter()).splits["test"]
    whole = sorted(int(np.sum(image)) for image, _ in split.dataset)
    for shards, sizes in ((2, [10, 10]), (3, [7, 7, 6])):
        parts = [[int(np.sum(image)) for image, _ in split.shard(shards, i)] for i in range(shards)]
        assert [len(part) for part in parts] == sizes
        assert sorted(sum(parts, [])) == whole


def test_the_embedded_digits_are_scikit_learns_and_load_without_importing_it():
    import subprocess
    import sys

    from sklearn.datasets import load_digits

    from imgcls_cli.data.embedded import digits_arrays

    images, labels = digits_arrays()
    reference = load_digits()
    assert (images == reference.images).all() and (labels == reference.target).all()
    assert images.shape == (1797, 8, 8) and labels.dtype == np.int64
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys; from imgcls_cli.data.embedded import "
         "digits_arrays; digits_arrays(); print('sklearn' in sys.modules)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert loaded.stdout.strip() == "False", loaded.stderr
