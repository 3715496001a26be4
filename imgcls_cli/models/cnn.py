"""CNNs trained from scratch. Pixel scaling lives inside the model: inputs are 0-255."""

from __future__ import annotations

from imgcls_cli.backend import import_tensorflow

tf = import_tensorflow()  # first, so TensorFlow's start-up log stays quiet
import keras  # noqa: E402


def classifier_head(x, num_classes: int, dropout: float):
    """Dropout then a softmax Dense kept in float32, so mixed precision stays stable."""
    x = keras.layers.Dropout(dropout)(x)
    return keras.layers.Dense(
        num_classes, activation="softmax", dtype="float32", name="predictions"
    )(x)


def build_simplecnn(input_shape, num_classes: int) -> keras.Model:
    """Two convolution → ReLU → max-pooling stages and a fully connected classifier."""
    inputs = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    outputs = classifier_head(x, num_classes, dropout=0.5)
    return keras.Model(inputs, outputs, name="simplecnn")


# Batch normalization's moving statistics forget their start (variance 1) at this rate per
# step. Keras' default, 0.99, needs about 500 steps: a small folder trains for fewer (1,300
# 28x28 digits, 15 epochs: 315 steps left 4% of the start, 6x the real variance, and the
# model predicted one class at inference). 0.9 (PyTorch's default) needs about 50.
BN_MOMENTUM = 0.9


def batch_norm():
    """BatchNormalization for the from-scratch models. Under MirroredStrategy (several
    devices of one machine; built in its scope) batch statistics are computed over the
    global batch, so the replicas keep the same moving statistics, as one device would.
    Across machines (MultiWorkerMirroredStrategy) each worker keeps its own: Keras'
    synchronized statistics there failed intermittently here (collectives launched in a
    different order on each worker: "Shape mismatch in the collective instance"), and
    only the chief's model is saved."""
    strategy = tf.distribute.get_strategy()
    synchronized = isinstance(strategy, tf.distribute.MirroredStrategy) and (
        strategy.num_replicas_in_sync > 1
    )
    return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, synchronized=synchronized)


def conv_bn_relu(x, filters: int, strides: int = 1):
    x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
    x = batch_norm()(x)
    return keras.layers.ReLU()(x)


def residual_block(x, filters: int, strides: int):
    shortcut = x
    x = conv_bn_relu(x, filters, strides)
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    x = batch_norm()(x)
    if strides != 1 or shortcut.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=strides, use_bias=False)(shortcut)
        shortcut = batch_norm()(shortcut)
    return keras.layers.ReLU()(keras.layers.Add()([x, shortcut]))


def build_resnet8(input_shape, num_classes: int) -> keras.Model:
    """A stem and three residual stages (32, 64, 128 filters), global average pooling."""
    inputs = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    x = conv_bn_relu(x, 32)
    for filters, strides in ((32, 1), (64, 2), (128, 2)):
        x = residual_block(x, filters, strides)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = classifier_head(x, num_classes, dropout=0.2)
    return keras.Model(inputs, outputs, name="resnet8")


def build_convnet(input_shape, num_classes: int) -> keras.Model:
    """Five 3x3 convolutions with batch normalization in three stages (32, 64, 128
    filters), each stage ending in max pooling, then dropout and a softmax layer over the
    flattened map: a stronger small CNN that trains well in few epochs.

    Flattened, not globally averaged: the classifier sees where features are relative to
    each other, which tells a left arrow from a right one (with global average pooling
    this model scored 52% on 4 arrow directions, flattened 90%; BENCHMARKS.md).
    """
    inputs = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    for filters, convolutions in ((32, 2), (64, 2), (128, 1)):
        for _ in range(convolutions):
            x = conv_bn_relu(x, filters)
        x = keras.layers.MaxPooling2D(2, padding="same")(x)
    x = keras.layers.Flatten()(x)
    outputs = classifier_head(x, num_classes, dropout=0.5)
    return keras.Model(inputs, outputs, name="convnet")
