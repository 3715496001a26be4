"""What a `--weights` file holds, read with h5py before TensorFlow starts: a file Keras
cannot read, or one saved from another backbone, is refused in a second, not after the
backbone is built (6-8 s) with Keras' cut-off message.

The check is conservative: it refuses only what Keras would refuse too. A file is matched
to a backbone by the multiset of its arrays' shapes, which the architecture alone fixes
(Keras names the stored arrays by layer class and count, and those names may change with
its version); a file that matches no known backbone is left for Keras to judge."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

from imgcls_cli.errors import DataError

# What keras.Model.load_weights reads (keras.saving.load_weights): the native formats and
# the legacy HDF5 one.
WEIGHTS_SUFFIXES = (".weights.h5", ".keras", ".h5", ".hdf5")
SAVE_HINT = "(e.g. backbone.save_weights('x.weights.h5'))"


def weights_digest(shapes: list[tuple[int, ...]]) -> str:
    """A digest of the shapes of a model's arrays, in any order."""
    text = json.dumps(sorted(list(shape) for shape in shapes))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stored_shapes(path: Path) -> list[tuple[int, ...]]:
    """The shapes of the arrays a weights file holds; DataError when it is not a file
    Keras can read weights from."""
    import h5py

    if path.name.endswith(".keras"):
        try:
            with zipfile.ZipFile(path) as archive:
                content = archive.read("model.weights.h5")
        except (zipfile.BadZipFile, KeyError, OSError):
            raise DataError(
                f"Weights file {path} is not a Keras model file (.keras: a zip archive "
                "holding model.weights.h5). Give a file saved from the backbone "
                f"{SAVE_HINT}, or --weights imagenet / none."
            ) from None
        opened = h5py.File(io.BytesIO(content), "r")
    else:
        if not h5py.is_hdf5(path):
            raise DataError(
                f"Weights file {path} is not an HDF5 file, which Keras' {path.suffix} "
                f"weights files are. Give a file saved from the backbone {SAVE_HINT}, or "
                "--weights imagenet / none."
            )
        opened = h5py.File(path, "r")
    shapes: list[tuple[int, ...]] = []
    with opened as file:
        # A whole model saved in the legacy format keeps its weights under model_weights;
        # a .keras archive keeps the optimizer's next to the layers'.
        root = file["model_weights"] if "model_weights" in file else file
        root = root["layers"] if "layers" in root and "optimizer" in root else root

        def visit(name: str, item: object) -> None:
            if isinstance(item, h5py.Dataset):
                shapes.append(tuple(item.shape))

        root.visititems(visit)
    return shapes


def check_weights_file(path: Path, backbone: str) -> None:
    """Refuse a file Keras cannot read as weights, or one that holds another backbone's
    weights, before TensorFlow starts."""
    from imgcls_cli.models.backbones import BACKBONES

    if not path.name.endswith(WEIGHTS_SUFFIXES):
        raise DataError(
            f"Weights file {path}: Keras reads weights from {', '.join(WEIGHTS_SUFFIXES)} "
            f"files. Give a file saved from a {backbone} backbone {SAVE_HINT}, or "
            "--weights imagenet / none."
        )
    digest = weights_digest(stored_shapes(path))
    for name, other in BACKBONES.items():
        if name != backbone and digest == other.weights_digest:
            raise DataError(
                f"Weights file {path} holds the weights of a {name} backbone, not "
                f"{backbone}: pass --backbone {name}, or give a file saved from {backbone}."
            )
