"""The backbone registry, each backbone's preprocessing inside the model, and the
training view that keeps BatchNormalization in inference mode."""

import json

import numpy as np
import pytest

from imgcls_cli.errors import UsageError
from imgcls_cli.models.backbones import BACKBONES, check_image_size, get_backbone
from imgcls_cli.models.weights_file import array_counts, backbone_arrays

SIZE = 32  # the smallest input keras.applications accepts: keeps these tests fast


def test_unknown_backbone_lists_the_valid_ones():
    with pytest.raises(UsageError) as raised:
        get_backbone("mobilenet")
    message = str(raised.value)
    assert "Unknown backbone 'mobilenet'" in message
    assert all(name in message for name in ("mobilenetv2", "efficientnetb0", "resnet50"))


def test_image_size_below_the_minimum_is_refused():
    check_image_size("resnet50", 32)
    with pytest.raises(UsageError, match="below resnet50's minimum of 32"):
        check_image_size("resnet50", 31)


@pytest.mark.parametrize(
    "name, size, file_name",
    [
        ("mobilenetv2", 160, "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160_no_top.h5"),
        ("mobilenetv2", 64, "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"),
        ("efficientnetb0", 64, "efficientnetb0_notop.h5"),
        ("resnet50", 64, "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ],
)
def test_imagenet_file_names_match_what_keras_caches(name, size, file_name):
    spec = BACKBONES[name]
    assert spec.imagenet_file(size) == file_name
    assert spec.imagenet_url(size).endswith("/" + file_name)
    assert spec.imagenet_url(size).startswith("https://storage.googleapis.com/")


def random_images(count=3, size=SIZE, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, size, size, 3)).astype("float32")


def build(name, num_classes=3, dropout=0.0):
    from imgcls_cli.models.backbones import create_backbone
    from imgcls_cli.models.transfer import build_transfer_model

    backbone = create_backbone(name, SIZE, imagenet=False)
    return build_transfer_model(name, backbone, num_classes, dropout)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BACKBONES))
def test_model_applies_the_backbones_own_preprocess_input(name):
    """With a stand-in backbone that passes pixels through, the pooled features are
    exactly the pooled preprocess_input(images); with the real one, they match too."""
    import keras

    from imgcls_cli.models.backbones import create_backbone
    from imgcls_cli.models.transfer import build_transfer_model

    module = getattr(keras.applications, BACKBONES[name].module)
    images = random_images()
    preprocessed = module.preprocess_input(images.copy())
    pass_through = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Identity()])
    probe = build_transfer_model(name, pass_through, 3, 0.0)
    np.testing.assert_allclose(probe.features(images), preprocessed.mean(axis=(1, 2)), rtol=1e-5)
    if name != "efficientnetb0":  # EfficientNet rescales inside the backbone itself
        assert not np.allclose(probe.features(images), images.mean(axis=(1, 2)), atol=1.0)

    transfer = build_transfer_model(name, create_backbone(name, SIZE, imagenet=False), 3, 0.0)
    by_hand = transfer.backbone(preprocessed, training=False)
    by_hand = keras.ops.convert_to_numpy(keras.ops.mean(by_hand, axis=(1, 2)))
    np.testing.assert_allclose(transfer.features(images), by_hand, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BACKBONES))
def test_each_backbone_trains_a_step_with_batchnorm_statistics_frozen(name):
    """The top layers unfrozen (BatchNormalization among them), one real training step:
    their weights move, BatchNorm statistics do not."""
    import keras
    import tensorflow as tf

    from imgcls_cli.engine.training import Trainer, create_optimizer
    from imgcls_cli.models.transfer import unfreeze_top_layers
    from imgcls_cli.reporting import SilentReporter

    transfer = build(name)
    # backbone_arrays.json holds this backbone's arrays (a --weights file is checked by it).
    counts = array_counts([tuple(v.shape) for v in transfer.backbone.weights])
    assert counts == backbone_arrays()[name], json.dumps(counts, sort_keys=True)
    unfreeze_top_layers(transfer.backbone, 12)
    unfrozen = transfer.backbone.layers[-12:]
    batchnorms = [layer for layer in unfrozen if isinstance(layer, keras.layers.BatchNormalization)]
    assert batchnorms and all(bn.trainable for bn in batchnorms)
    statistics = [np.array(v) for bn in batchnorms for v in (bn.moving_mean, bn.moving_variance)]
    trainable = [np.array(v) for v in transfer.backbone.trainable_weights]
    assert trainable and len(trainable) < len(transfer.backbone.weights)
    trainer = Trainer(
        transfer.training_model, create_optimizer("adam", 1e-3, 0.0), tf.distribute.get_strategy()
    )
    labels = tf.one_hot([0, 1, 2], 3)
    logs = trainer.train_epoch(
        tf.data.Dataset.from_tensors((random_images(), labels)), SilentReporter()
    )
    assert logs["examples"] == 3 and np.isfinite(logs["loss"])
    after = [np.array(v) for bn in batchnorms for v in (bn.moving_mean, bn.moving_variance)]
    for before, now in zip(statistics, after):
        np.testing.assert_array_equal(before, now)
    changed = [
        not np.array_equal(a, np.array(b))
        for a, b in zip(trainable, transfer.backbone.trainable_weights)
    ]
    assert sum(changed) > len(changed) // 2


@pytest.mark.slow
def test_training_view_runs_the_backbone_in_inference_mode():
    """Keras 3 would let training=True reach a nested backbone; our view must not."""
    import keras

    from imgcls_cli.models.transfer import unfreeze_top_layers

    transfer = build("mobilenetv2", dropout=0.0)
    unfreeze_top_layers(transfer.backbone, None)
    images = random_images()
    served = transfer.model(images, training=False)
    trained = transfer.training_model(images, training=True)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(trained), keras.ops.convert_to_numpy(served), atol=1e-6
    )
    # The pitfall the view exists for (keras-team/keras#20285): the functional model
    # itself lets training=True reach the backbone's BatchNorm layers. Should Keras fix
    # that, this fails, and the view could go.
    plain = transfer.model(images, training=True)
    assert not np.allclose(keras.ops.convert_to_numpy(plain), keras.ops.convert_to_numpy(served))


def test_unfreeze_top_layers_freezes_the_rest():
    import keras

    from imgcls_cli.models.transfer import unfreeze_top_layers

    model = keras.Sequential(
        [keras.Input((4,))] + [keras.layers.Dense(4, name=f"d{i}") for i in range(5)]
    )
    assert unfreeze_top_layers(model, 2) == 2
    assert [layer.trainable for layer in model.layers] == [False, False, False, True, True]
    assert unfreeze_top_layers(model, 99) == 5
    assert all(layer.trainable for layer in model.layers)
    assert unfreeze_top_layers(model, None) == 5


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BACKBONES))
def test_preprocessing_survives_saving_and_loading_safely(name, tmp_path):
    """Saved with a stand-in backbone, so only the preprocessing graph is at stake."""
    import keras

    from imgcls_cli.models.transfer import build_transfer_model

    pass_through = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Identity()])
    probe = build_transfer_model(name, pass_through, 3, 0.0)
    probe.model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    images = random_images()
    np.testing.assert_allclose(
        reloaded.predict(images, verbose=0), probe.model.predict(images, verbose=0), atol=1e-6
    )


def test_one_factory_knows_every_model_name():
    from imgcls_cli.errors import UsageError
    from imgcls_cli.models import create_model

    with pytest.raises(UsageError, match="simplecnn.*resnet8.*mobilenetv2.*efficientnetb0"):
        create_model("mobilenet", (32, 32, 3), 2)
