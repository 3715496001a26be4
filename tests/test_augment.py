"""build_augmentation and the training pipeline: exact flips, seeds, labels, mixing, and
augmentation on the training split only."""

import numpy as np
import pytest

from imgcls_cli.augment.policy import resolve_augment
from imgcls_cli.config import AugmentConfig, AugmentPreset, DataConfig, Flip
from imgcls_cli.reporting import SilentReporter


def resolved(channels=3, dataset=None, **options):
    options.setdefault("preset", AugmentPreset.none)
    return resolve_augment(AugmentConfig(**options), dataset, channels)


def asymmetric_images(count=4, size=12, channels=3, seed=0):
    """Random images: no row or column order is symmetric, so any flip shows."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, size, size, channels)).astype("float32")


def augment(config, images, labels=None, seed=0, **kwargs):
    from imgcls_cli.augment.layers import build_augmentation

    augmentation = build_augmentation(config, images.shape[-1], seed, **kwargs)
    if labels is None:
        labels = np.eye(len(images), dtype="float32")
    out_images, out_labels = augmentation(images, labels)
    return np.asarray(out_images), np.asarray(out_labels)


def test_none_leaves_pixels_unchanged_through_the_pipeline():
    from imgcls_cli.data.pipeline import create_batches
    from imgcls_cli.data.sources import arrays_to_split

    images = asymmetric_images(8).astype("uint8")
    config = resolved()
    assert config.is_off
    split = arrays_to_split(images, np.arange(8) % 2)
    (batch, _), *_ = create_batches(split, (12, 12), 3, 2, 8)
    np.testing.assert_array_equal(batch, images.astype("float32"))


@pytest.mark.parametrize(
    "flip, allowed",
    [
        (Flip.horizontal, [lambda x: x, lambda x: x[:, ::-1]]),
        (Flip.vertical, [lambda x: x, lambda x: x[::-1, :]]),
        # Each way on its own coin: a 180° turn, but also one way alone.
        (
            Flip.both,
            [lambda x: x, lambda x: x[:, ::-1], lambda x: x[::-1, :], lambda x: x[::-1, ::-1]],
        ),
    ],
)
def test_flips_give_exact_mirrors_and_every_one_happens(flip, allowed):
    image = asymmetric_images(1)[0]
    out, _ = augment(resolved(flip=flip), np.repeat(image[None], 64, axis=0))
    seen = [next(i for i, f in enumerate(allowed) if np.array_equal(o, f(image))) for o in out]
    assert set(seen) == set(range(len(allowed)))  # StopIteration: an image no flip explains


def test_crop_keeps_the_image_size_and_changes_pixels():
    images = asymmetric_images(channels=1)
    out, _ = augment(resolved(channels=1, crop=0.3), images)
    assert out.shape == images.shape
    assert not np.array_equal(out, images)


def train_batches(augment_config, seed, images, labels, num_classes):
    from imgcls_cli.augment.layers import build_augmentation
    from imgcls_cli.data.pipeline import create_batches
    from imgcls_cli.data.sources import arrays_to_split

    augmentation = build_augmentation(augment_config, images.shape[-1], seed)
    split = arrays_to_split(images, labels)
    dataset = create_batches(
        split, images.shape[1:3], images.shape[-1], num_classes, 8, augmentation=augmentation
    )
    # Two epochs: the second must differ from the first, and both repeat with the seed.
    return [np.asarray(x) for _ in range(2) for batch in dataset for x in batch]


def test_same_seed_same_augmented_images_different_seed_different():
    images = asymmetric_images(24).astype("uint8")
    labels = np.arange(24) % 3
    config = resolved(preset=AugmentPreset.strong, mixup=0.4)
    first = train_batches(config, 7, images, labels, 3)
    again = train_batches(config, 7, images, labels, 3)
    other = train_batches(config, 8, images, labels, 3)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], other[0])
    half = len(first) // 2
    assert not np.array_equal(first[0], first[half])  # a new draw every epoch


@pytest.mark.parametrize("preset", list(AugmentPreset))
def test_image_augmentations_preserve_labels(preset):
    images = asymmetric_images(16, size=16)
    labels = np.eye(4, dtype="float32")[np.arange(16) % 4]
    out, out_labels = augment(resolved(preset=preset, flip=Flip.both), images, labels)
    np.testing.assert_array_equal(out_labels, labels)
    assert out.shape == images.shape
    assert out.min() >= 0 and out.max() <= 255


def distinct_constant_images(count=8, size=16):
    """Image i is filled with the value 20 * (i + 1): each pixel says where it came from."""
    values = 20.0 * (np.arange(count) + 1)
    return np.broadcast_to(values[:, None, None, None], (count, size, size, 1)).copy(), values


def test_mixup_blends_each_image_and_its_label_with_the_same_weight():
    images, values = distinct_constant_images()
    labels = np.eye(8, dtype="float32")
    out, mixed = augment(resolved(channels=1, mixup=0.4), images, labels)
    np.testing.assert_allclose(mixed.sum(axis=1), 1.0, atol=1e-6)
    for i in range(8):
        # The mix of image i and its partner j, in the proportion the label says.
        np.testing.assert_allclose(out[i], mixed[i] @ values, rtol=1e-4)
        assert np.count_nonzero(mixed[i] > 1e-6) <= 2  # itself and one partner
    assert not np.allclose(mixed, labels)


def test_cutmix_pastes_a_patch_and_labels_follow_its_area():
    images, values = distinct_constant_images(size=32)
    labels = np.eye(8, dtype="float32")
    out, mixed = augment(resolved(channels=1, cutmix=1.0), images, labels, seed=3)
    np.testing.assert_allclose(mixed.sum(axis=1), 1.0, atol=1e-6)
    pasted = 0
    for i in range(8):
        partners = [j for j in range(8) if j != i and mixed[i][j] > 1e-6]
        assert len(partners) <= 1
        # Every pixel comes from image i or its partner, in the proportion the label says
        # (within a pixel row or column: the patch edges fall between pixels).
        assert set(np.unique(out[i])) <= {values[i], *(values[j] for j in partners)}
        assert abs(np.mean(out[i] == values[i]) - mixed[i][i]) < 0.1
        pasted += bool(partners)
    assert pasted >= 4


def test_augmentation_runs_on_the_training_split_only():
    from imgcls_cli.data.prepare import prepare_data

    def load(augment):
        return prepare_data(
            DataConfig(dataset="digits"),
            seed=0,
            batch_size=32,
            reporter=SilentReporter(),
            augment=augment,
        )

    plain = load(None)
    strong = load(AugmentConfig(preset=AugmentPreset.strong))
    assert plain.augment.is_off and strong.augment.preset == AugmentPreset.strong
    for name in ("val", "test"):
        for (a, _), (b, _) in zip(getattr(plain, name), getattr(strong, name)):
            np.testing.assert_array_equal(a, b)
    (plain_train, _), *_ = plain.train
    (strong_train, _), *_ = strong.train
    assert not np.array_equal(plain_train, strong_train)


def test_train_with_augmentation_is_reproducible_and_records_it(runner, cli_app, tmp_path):
    import json

    import keras

    histories = []
    for name in ("a", "b"):
        run_dir = tmp_path / name
        args = ["train", "-q", "--epochs", "2", "--augment", "standard", "--flip", "both"]
        result = runner.invoke(cli_app, [*args, "--mixup", "0.2", "--output", str(run_dir)])
        assert result.exit_code == 0, result.output
        histories.append([line.split(",")[:3] for line in (run_dir / "history.csv").open()])
    assert histories[0] == histories[1]
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["options"]["augment"]["preset"] == "standard"
    augment = config["resolved"]["augment"]
    assert augment["flip"] == "both" and augment["fill"] == "constant"
    assert augment["rotate"] > 0 and augment["mixup"] == 0.2
    # Augmentation lives in the data pipeline: the saved model has no random layers.
    model = keras.saving.load_model(tmp_path / "a" / "model.keras", safe_mode=True)
    assert not [layer for layer in model.layers if type(layer).__name__.startswith("Random")]


def test_config_file_keeps_the_augmentation_and_flags_override_parts(runner, cli_app, tmp_path):
    import json

    first, second = tmp_path / "first", tmp_path / "second"
    args = ["train", "-q", "--epochs", "1", "--augment", "strong", "--cutmix", "0.5"]
    result = runner.invoke(cli_app, [*args, "--output", str(first)])
    assert result.exit_code == 0, result.output
    config_file = str(first / "config.json")
    result = runner.invoke(
        cli_app,
        ["train", "-q", "--config", config_file, "--rotate", "5", "--output", str(second)],
    )
    assert result.exit_code == 0, result.output
    options = json.loads((second / "config.json").read_text())["options"]["augment"]
    assert options["preset"] == "strong" and options["cutmix"] == 0.5 and options["rotate"] == 5


@pytest.mark.parametrize("mixing", [{"mixup": 0.4}, {"cutmix": 1.0}])
def test_a_replayed_epoch_augments_as_the_uninterrupted_one(mixing):
    """Resume replays finished epochs by creating iterators without reading them
    (training.fit): the next epoch must then get the same random changes."""
    import tensorflow as tf

    from imgcls_cli.augment.layers import build_augmentation
    from imgcls_cli.data.pipeline import create_batches
    from imgcls_cli.data.sources import arrays_to_split

    images = asymmetric_images(16).astype("uint8")
    config = resolved(preset=AugmentPreset.strong, **mixing)
    strategy = tf.distribute.get_strategy()

    def epochs(replayed: int, read: int) -> list[np.ndarray]:
        tf.random.set_seed(7)
        augmentation = build_augmentation(config, 3, seed=7)
        split = arrays_to_split(images, np.arange(16) % 4)
        batches = create_batches(
            split, (12, 12), 3, 4, 4, shuffle_seed=7, augmentation=augmentation
        )
        distributed = strategy.experimental_distribute_dataset(batches)
        for _ in range(replayed):
            iter(distributed)
        return [np.concatenate([np.asarray(x) for x, _ in distributed]) for _ in range(read)]

    uninterrupted = epochs(replayed=0, read=3)
    resumed = epochs(replayed=2, read=1)
    assert not np.array_equal(uninterrupted[1], uninterrupted[2])  # epochs do differ
    np.testing.assert_array_equal(resumed[0], uninterrupted[2])
