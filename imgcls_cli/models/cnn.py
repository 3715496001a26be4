"""CNNs trained from scratch. Pixel scaling lives inside the model: inputs are 0-255."""

from __future__ import annotations

from ..runtime import import_tensorflow

import_tensorflow()  # first, so TensorFlow's start-up log stays quiet
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


def conv_bn_relu(x, filters: int, strides: int = 1):
    x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    return keras.layers.ReLU()(x)


def residual_block(x, filters: int, strides: int):
    shortcut = x
    x = conv_bn_relu(x, filters, strides)
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    if strides != 1 or shortcut.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=strides, use_bias=False)(shortcut)
        shortcut = keras.layers.BatchNormalization()(shortcut)
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
