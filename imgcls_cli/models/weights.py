"""Backbone weights: ImageNet (Keras' cache, or a download that fails fast offline), a
weights file, or none. Checked before any data is read, so a missing file costs seconds."""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Any

from imgcls_cli.data.tfds_source import network_available
from imgcls_cli.errors import DataError, UsageError
from imgcls_cli.models.backbones import create_backbone, get_backbone
from imgcls_cli.models.weights_file import check_weights_file


@dataclasses.dataclass(frozen=True)
class WeightsChoice:
    source: str  # "imagenet", "file" or "none"
    path: str | None = None  # the ImageNet file in Keras' cache, or the file given

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "file": self.path}

    @property
    def label(self) -> str:
        if self.source == "file":
            return f"weights from {self.path}"
        return "ImageNet weights" if self.source == "imagenet" else "random weights"


def keras_models_dir() -> Path:
    """Where Keras caches downloaded weights: $KERAS_HOME/models or ~/.keras/models, with
    Keras' own fallbacks to /tmp/.keras when those are not writable."""
    if "KERAS_HOME" in os.environ:
        home = Path(os.environ["KERAS_HOME"])
    else:
        user_home = Path("~").expanduser()
        home = (user_home if os.access(user_home, os.W_OK) else Path("/tmp")) / ".keras"
    if home.exists() and not os.access(home, os.W_OK):
        home = Path("/tmp/.keras")
    return home / "models"


def imagenet_path(backbone: str, image_size: int) -> Path:
    return keras_models_dir() / get_backbone(backbone).imagenet_file(image_size)


def imagenet_unavailable(backbone: str, image_size: int, why: str) -> DataError:
    path = imagenet_path(backbone, image_size)
    state = "damaged in Keras' cache" if path.is_file() else "not cached"
    return DataError(
        f"ImageNet weights for {backbone} are {state} and {why}: download "
        f"{get_backbone(backbone).imagenet_url(image_size)} and save it as {path} "
        "(or pass --weights PATH, or --weights none to start from random weights)."
    )


def resolve_weights(spec: str, backbone: str, image_size: int) -> WeightsChoice:
    """Check --weights: 'imagenet', 'none' or a weights file. Offline without the ImageNet
    file in Keras' cache, fail now (a few seconds) rather than inside Keras' download."""
    if spec.lower() == "none":
        return WeightsChoice("none")
    if spec.lower() == "imagenet":
        path = imagenet_path(backbone, image_size)
        if not path.is_file() and not network_available():
            raise imagenet_unavailable(backbone, image_size, "the network is unreachable")
        return WeightsChoice("imagenet", str(path))
    path = Path(spec).expanduser()
    if path.is_dir():
        raise DataError(
            f"--weights {spec} is a folder: give a weights file saved from a {backbone} "
            "backbone (a .weights.h5 file), or imagenet, or none."
        )
    if not path.is_file():  # a missing file, as --data's: exit code 1
        raise DataError(
            f"--weights {spec}: no such file. Give imagenet, none, or a weights file saved "
            f"from a {backbone} backbone."
        )
    if (
        get_backbone(backbone).imagenet_adds_layers
        and path.name == imagenet_path(backbone, image_size).name
    ):
        raise UsageError(
            f"{path} is Keras' ImageNet file for {backbone}, which needs layers Keras adds only "
            f"when it loads ImageNet weights itself: copy it to "
            f"{imagenet_path(backbone, image_size)} and pass --weights imagenet."
        )
    check_weights_file(path, backbone)
    return WeightsChoice("file", str(path.resolve()))


def create_backbone_with_weights(backbone: str, image_size: int, weights: WeightsChoice) -> Any:
    """Build the backbone and load the chosen weights, with one-line errors."""
    try:
        model = create_backbone(backbone, image_size, imagenet=weights.source == "imagenet")
    except Exception as error:
        if weights.source != "imagenet":
            raise
        # Keras raises a bare Exception("URL fetch failure on …") when a download fails,
        # and re-downloads a cached file that fails its checksum.
        if "URL fetch failure" in str(error):
            raise imagenet_unavailable(backbone, image_size, "the download failed") from None
        if isinstance(error, (OSError, ValueError)):  # a cached file Keras cannot read
            why = f"cannot be read ({first_line(error)})"
            raise imagenet_unavailable(backbone, image_size, why) from None
        raise
    if weights.source == "file":
        load_weights_file(model, backbone, Path(weights.path or ""))
    return model


def load_weights_file(model: Any, backbone: str, path: Path) -> None:
    with warnings.catch_warnings():
        # A mismatch also prints a UserWarning per layer; the error below says it once.
        warnings.simplefilter("ignore")
        try:
            model.load_weights(path)
        except (ValueError, OSError, KeyError, TypeError) as error:
            raise DataError(
                f"Weights file {path} does not fit the {backbone} backbone "
                f"({first_line(error)}). "
                f"Give a file saved from {backbone} with include_top=False "
                "(e.g. backbone.save_weights('x.weights.h5')), or --weights imagenet / none."
            ) from None


def first_line(error: Exception, limit: int = 160) -> str:
    """The gist of a Keras or h5py error, which can run to hundreds of lines."""
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:limit]
