"""Model registry: names → builders. Pure Python, so --help and errors can list names
without importing Keras."""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import UsageError, unknown_name_message

# name → (module, builder function, one-line description)
ARCHITECTURES: dict[str, tuple[str, str, str]] = {
    "simplecnn": (
        "imgcls_cli.models.cnn",
        "build_simplecnn",
        "convolution → ReLU → pooling (x2) → dropout → fully connected; the classic",
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


def create_model(arch: str, input_shape: tuple[int, int, int], num_classes: int) -> Any:
    """Build an architecture whose input is raw 0-255 pixels of input_shape."""
    module_name, function_name, _ = ARCHITECTURES[check_architecture(arch)]
    builder = getattr(importlib.import_module(module_name), function_name)
    return builder(input_shape, num_classes)
