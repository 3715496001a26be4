"""--weights: ImageNet from Keras' cache or a clear offline error, weights files, none."""

import time

import numpy as np
import pytest

from imgcls_cli.errors import DataError, UsageError
from imgcls_cli.models import weights
from imgcls_cli.models.weights_file import array_counts, stored_shapes


@pytest.fixture
def keras_cache():
    """Keras' weights cache: conftest points KERAS_HOME at a temporary folder before Keras
    is imported (Keras reads it once). Emptied after each test."""
    models = weights.keras_models_dir()
    models.mkdir(parents=True, exist_ok=True)
    yield models
    for path in models.iterdir():
        path.unlink()


def test_imagenet_offline_and_not_cached_fails_fast_naming_the_file(keras_cache, no_network):
    started = time.perf_counter()
    with pytest.raises(DataError) as raised:
        weights.resolve_weights("imagenet", "resnet50", 64)
    assert time.perf_counter() - started < 15
    message = str(raised.value)
    file_name = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert "network is unreachable" in message
    assert f"https://storage.googleapis.com/tensorflow/keras-applications/resnet/{file_name}" in (
        message
    )
    assert str(keras_cache / file_name) in message
    assert "--weights none" in message and "\n" not in message


def test_imagenet_file_in_the_cache_is_used_without_network(keras_cache, no_network):
    cached = keras_cache / "efficientnetb0_notop.h5"
    cached.write_bytes(b"stand-in")
    choice = weights.resolve_weights("imagenet", "efficientnetb0", 224)
    assert choice == weights.WeightsChoice("imagenet", str(cached))


@pytest.mark.slow
def test_failed_imagenet_download_is_one_clear_line(keras_cache, no_network, monkeypatch):
    """The probe can pass while the download itself fails (a proxy, a firewall)."""
    monkeypatch.setattr(weights, "network_available", lambda timeout=3.0: True)
    choice = weights.resolve_weights("imagenet", "mobilenetv2", 32)
    with pytest.raises(DataError, match="not cached and the download failed: download https"):
        weights.create_backbone_with_weights("mobilenetv2", 32, choice)


@pytest.mark.slow
def test_damaged_cached_imagenet_file_is_one_clear_line(keras_cache, no_network):
    file_name = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    (keras_cache / file_name).write_bytes(b"truncated download")
    choice = weights.resolve_weights("imagenet", "mobilenetv2", 32)
    with pytest.raises(DataError, match="damaged in Keras' cache and cannot be read"):
        weights.create_backbone_with_weights("mobilenetv2", 32, choice)


def test_none_and_missing_files(tmp_path):
    assert weights.resolve_weights("none", "resnet50", 64) == weights.WeightsChoice("none")
    with pytest.raises(DataError, match="no such file"):
        weights.resolve_weights(str(tmp_path / "missing.weights.h5"), "resnet50", 64)


def test_efficientnet_imagenet_file_given_as_a_path_points_to_the_cache(tmp_path, keras_cache):
    path = tmp_path / "efficientnetb0_notop.h5"
    path.write_bytes(b"stand-in")
    with pytest.raises(UsageError) as raised:
        weights.resolve_weights(str(path), "efficientnetb0", 224)
    assert str(keras_cache / "efficientnetb0_notop.h5") in str(raised.value)
    assert "--weights imagenet" in str(raised.value)


def save_backbone_weights(name, path, size=32):
    """A freshly built backbone's weights, BatchNorm statistics made distinctive."""
    import keras

    from imgcls_cli.models.backbones import create_backbone

    backbone = create_backbone(name, size, imagenet=False)
    rng = np.random.default_rng(1)
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(size=layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, size=layer.moving_variance.shape))
    backbone.save_weights(path)
    return backbone


@pytest.mark.slow
def test_weights_file_loads_exactly(tmp_path):
    path = tmp_path / "mobilenetv2.weights.h5"
    saved = save_backbone_weights("mobilenetv2", path)
    # The file holds the arrays the model does: what tells backbones apart before loading.
    assert array_counts(stored_shapes(path)) == array_counts([v.shape for v in saved.weights])
    choice = weights.resolve_weights(str(path), "mobilenetv2", 32)
    assert choice.source == "file"
    loaded = weights.create_backbone_with_weights("mobilenetv2", 32, choice)
    assert len(loaded.weights) == len(saved.weights)
    for want, got in zip(saved.weights, loaded.weights):
        np.testing.assert_array_equal(np.array(want), np.array(got), err_msg=want.path)


@pytest.mark.slow
def test_a_file_keras_cannot_read_or_without_the_backbones_arrays_is_refused_before_loading(
    tmp_path,
):
    """Each refused by resolve_weights, which runs before TensorFlow starts."""
    import h5py

    path = tmp_path / "mobilenetv2.weights.h5"
    save_backbone_weights("mobilenetv2", path)
    not_hdf5 = tmp_path / "notes.weights.h5"
    not_hdf5.write_text("not an HDF5 file")
    truncated = tmp_path / "truncated.weights.h5"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    not_a_zip = tmp_path / "model.keras"
    not_a_zip.write_text("not a zip")
    table = tmp_path / "labels.csv"
    table.write_text("file,label\n")
    short = tmp_path / "short.weights.h5"
    short.write_bytes(path.read_bytes())
    with h5py.File(short, "r+") as file:  # one kernel lost
        del file["layers/conv2d/vars/0"]
    refusals = {
        (path, "resnet50"): f"Weights file {path} holds the weights of the mobilenetv2 "
        "backbone, not of resnet50: pass --backbone mobilenetv2",
        (not_hdf5, "resnet50"): f"Weights file {not_hdf5} is not an HDF5 file",
        (truncated, "mobilenetv2"): f"Weights file {truncated} is damaged and cannot be read",
        (not_a_zip, "resnet50"): f"Weights file {not_a_zip} is not a Keras model file",
        (table, "resnet50"): f"Weights file {table}: Keras reads weights from .weights.h5, "
        ".keras, .h5, .hdf5, .weights.json files",
        (short, "mobilenetv2"): f"Weights file {short} does not hold mobilenetv2's weights "
        "(1 of its 260 arrays are missing or of other shapes)",
        (tmp_path, "resnet50"): f"--weights {tmp_path} is a folder",
    }
    for (bad, backbone), expected in refusals.items():
        with pytest.raises(DataError) as raised:
            weights.resolve_weights(str(bad), backbone, 32)
        assert expected in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.slow
def test_a_file_with_more_than_the_backbone_is_left_to_keras_and_refused_in_one_line(tmp_path):
    """A whole model around the backbone holds its arrays and more: Keras decides."""
    import keras

    from imgcls_cli.models.backbones import create_backbone

    whole = keras.Sequential(
        [keras.Input((32, 32, 3)), create_backbone("mobilenetv2", 32, imagenet=False)]
        + [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)]
    )
    path = tmp_path / "classifier.keras"
    whole.save(path)
    choice = weights.resolve_weights(str(path), "mobilenetv2", 32)
    with pytest.raises(DataError) as raised:
        weights.create_backbone_with_weights("mobilenetv2", 32, choice)
    message = str(raised.value)
    assert f"Weights file {path} does not fit the mobilenetv2 backbone" in message
    assert "\n" not in message


def test_every_backbone_has_its_arrays_on_record():
    from imgcls_cli.models.backbones import BACKBONES
    from imgcls_cli.models.weights_file import backbone_arrays

    assert set(backbone_arrays()) == set(BACKBONES)


@pytest.mark.slow
def test_imagenet_weights_come_from_the_keras_cache_without_network(keras_cache, no_network):
    """A stand-in file in the legacy H5 format of Keras' downloads, where Keras looks."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    stand_in = save_backbone_weights("mobilenetv2", keras_cache / "unused.weights.h5")
    file_name = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    with h5py.File(keras_cache / file_name, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, stand_in)
    choice = weights.resolve_weights("imagenet", "mobilenetv2", 32)
    loaded = weights.create_backbone_with_weights("mobilenetv2", 32, choice)
    for want, got in zip(stand_in.weights, loaded.weights):
        np.testing.assert_array_equal(np.array(want), np.array(got), err_msg=want.path)
