"""The model registry and its one factory, create_model: from-scratch CNNs (`train
--arch`) and pretrained backbones (`finetune --backbone`, listed in backbones.py). Pure
Python until a model is built, so --help and errors list names without importing Keras."""

from __future__ import annotations

import importlib
from typing import Any

from imgcls_cli.errors import UsageError, unknown_name_message

# name → (module, builder function, one-line description)
ARCHITECTURES: dict[str, tuple[str, str, str]] = {
    "simplecnn": (
        "imgcls_cli.models.cnn",
        "build_simplecnn",
        "convolution → ReLU → pooling (x2) → dropout → fully connected; the classic",
    ),
    "convnet": (
        "imgcls_cli.models.cnn",
        "build_convnet",
        "five convolutions with batch normalization in three pooled stages; the default",
    ),
    "resnet8": (
        "imgcls_cli.models.cnn",
        "build_resnet8",
        "small residual CNN with batch normalization, for CIFAR-sized colour images",
    ),
}


def architecture_names() -> list[str]:
    return list(ARCHITECTURES)


def check_architecture(name: str) -> str:
    if name not in ARCHITECTURES:
        raise UsageError(unknown_name_message("arch", name, architecture_names()))
    return name


def create_model(
    name: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    weights: Any = None,
    dropout: float = 0.2,
) -> Any:
    """Build any registered model for raw 0-255 pixels of input_shape.

    A from-scratch architecture comes back as a keras.Model. A backbone comes back as a
    models.transfer.TransferModel: the backbone with `weights` (a weights.WeightsChoice)
    and a new dropout + softmax head, the served model and its training view.
    """
    from imgcls_cli.models.backbones import BACKBONES, backbone_names

    if name in ARCHITECTURES:
        module_name, function_name, _ = ARCHITECTURES[name]
        builder = getattr(importlib.import_module(module_name), function_name)
        return builder(input_shape, num_classes)
    if name in BACKBONES:
        from imgcls_cli.models.transfer import build_transfer_model
        from imgcls_cli.models.weights import create_backbone_with_weights

        backbone = create_backbone_with_weights(name, input_shape[0], weights)
        # Random weights have no batch statistics worth keeping: learn them.
        learn_statistics = getattr(weights, "source", None) == "none"
        return build_transfer_model(name, backbone, num_classes, dropout, learn_statistics)
    raise UsageError(unknown_name_message("model", name, architecture_names() + backbone_names()))
