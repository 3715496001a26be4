"""ImageNet backbones from keras.applications: names, their ImageNet weights files, and
builders. The registry is pure Python, so --help and errors list names without Keras."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

from imgcls_cli.errors import UsageError, unknown_name_message

DEFAULT_IMAGE_SIZE = 224  # what the ImageNet weights were trained at
MOBILENET_V2_SIZES = (96, 128, 160, 192, 224)  # sizes Keras publishes MobileNetV2 weights for


@dataclasses.dataclass(frozen=True)
class Backbone:
    application: str  # the keras.applications constructor
    module: str  # the keras.applications module whose preprocess_input matches it
    description: str
    weights_url: str  # where Keras downloads the ImageNet weights (include_top=False) from
    min_image_size: int = 32  # keras.applications refuses smaller inputs
    # Keras adds layers only when it loads weights="imagenet" itself (EfficientNet's extra
    # input scaling), so its ImageNet file loaded like any other file would mis-scale inputs.
    imagenet_adds_layers: bool = False

    def imagenet_file(self, image_size: int) -> str:
        """The file name Keras caches the ImageNet weights under, for this input size."""
        name = self.weights_url.rsplit("/", 1)[-1]
        if "{rows}" in name:
            # MobileNetV2 has weights per input size; other sizes get the 224 ones.
            name = name.format(rows=image_size if image_size in MOBILENET_V2_SIZES else 224)
        return name

    def imagenet_url(self, image_size: int) -> str:
        return self.weights_url.rsplit("/", 1)[0] + "/" + self.imagenet_file(image_size)


KERAS_WEIGHTS = "https://storage.googleapis.com/tensorflow/keras-applications"

BACKBONES: dict[str, Backbone] = {
    "mobilenetv2": Backbone(
        "MobileNetV2",
        "mobilenet_v2",
        "3.5 M parameters, fastest; scales pixels to [-1, 1]",
        f"{KERAS_WEIGHTS}/mobilenet_v2/"
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5",
    ),
    "efficientnetb0": Backbone(
        "EfficientNetB0",
        "efficientnet",
        "5.3 M parameters, most accurate per FLOP; rescales 0-255 pixels itself",
        "https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5",
        imagenet_adds_layers=True,
    ),
    "resnet50": Backbone(
        "ResNet50",
        "resnet50",
        "25.6 M parameters, the classic; BGR with ImageNet mean subtracted (caffe style)",
        f"{KERAS_WEIGHTS}/resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    ),
}


def backbone_names() -> list[str]:
    return list(BACKBONES)


def get_backbone(name: str) -> Backbone:
    if name not in BACKBONES:
        raise UsageError(unknown_name_message("backbone", name, backbone_names()))
    return BACKBONES[name]


def check_image_size(name: str, image_size: int) -> None:
    minimum = get_backbone(name).min_image_size
    if image_size < minimum:
        raise UsageError(
            f"--image-size {image_size} is below {name}'s minimum of {minimum}; "
            f"use {minimum} or more (224 matches its ImageNet training)."
        )


def preprocess_input(name: str) -> Any:
    """The backbone's own keras.applications preprocess_input function."""
    import keras

    return getattr(keras.applications, get_backbone(name).module).preprocess_input


def create_backbone(name: str, image_size: int, imagenet: bool) -> Any:
    """The backbone without its classifier (include_top=False), on 0-255 RGB input of
    image_size, preprocessing excluded. `imagenet` loads Keras' ImageNet weights (from
    its cache, or downloaded); otherwise the weights are freshly initialized."""
    import keras

    constructor = getattr(keras.applications, get_backbone(name).application)
    with warnings.catch_warnings():
        # MobileNetV2 warns when the size has no weights of its own and uses the 224 ones:
        # convolution weights do not depend on the input size, so that is what we want.
        warnings.simplefilter("ignore", UserWarning)
        return constructor(
            include_top=False,
            weights="imagenet" if imagenet else None,
            input_shape=(image_size, image_size, 3),
        )
