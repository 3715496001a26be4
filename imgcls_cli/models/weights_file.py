"""What a `--weights` file holds, read with h5py before TensorFlow starts: a file Keras
cannot read, or one that lacks the backbone's weights, is refused in a second, not after
the backbone is built (6-8 s) with Keras' cut-off message.

A file is compared with a backbone by the shapes of its arrays, counted: the architecture
alone fixes them (Keras names the stored arrays by layer class and count, and those names
may change with its version). backbone_arrays.json holds each backbone's counts
(include_top=False), checked against Keras' own models by the tests. A file may hold more
than the backbone (an include_top=True file loads too); whether the extra fits is Keras'
to judge when it loads."""

from __future__ import annotations

import functools
import io
import json
import zipfile
from collections import Counter
from pathlib import Path

from imgcls_cli.errors import DataError

# What keras.Model.load_weights reads (keras.saving.load_weights): the native formats, the
# legacy HDF5 one, and sharded weights (an index naming .h5 shards, left to Keras).
WEIGHTS_SUFFIXES = (".weights.h5", ".keras", ".h5", ".hdf5", ".weights.json")
ARRAYS_FILE = Path(__file__).with_name("backbone_arrays.json")


def shape_key(shape: tuple[int, ...]) -> str:
    """'3x3x32x64' for a kernel, '' for a scalar."""
    return "x".join(str(size) for size in shape)


def array_counts(shapes: list[tuple[int, ...]]) -> Counter[str]:
    """How many arrays of each shape."""
    return Counter(shape_key(tuple(shape)) for shape in shapes)


@functools.cache
def backbone_arrays() -> dict[str, dict[str, int]]:
    return json.loads(ARRAYS_FILE.read_text())


def stored_shapes(path: Path) -> list[tuple[int, ...]]:
    """The shapes of the arrays a weights file holds; DataError when it is not a file
    Keras can read weights from."""
    import h5py

    def unreadable(why: str) -> DataError:
        return DataError(
            f"Weights file {path} {why}. Give a file saved from the backbone "
            "(e.g. backbone.save_weights('x.weights.h5')), or --weights imagenet / none."
        )

    if path.name.endswith(".keras"):
        try:
            with zipfile.ZipFile(path) as archive:
                content = archive.read("model.weights.h5")
        except (zipfile.BadZipFile, KeyError, OSError):
            raise unreadable(
                "is not a Keras model file (.keras: a zip archive holding model.weights.h5)"
            ) from None
        source: object = io.BytesIO(content)
    elif not h5py.is_hdf5(path):
        raise unreadable(f"is not an HDF5 file, which Keras' {path.suffix} weights files are")
    else:
        source = path
    shapes: list[tuple[int, ...]] = []
    try:
        with h5py.File(source, "r") as file:
            # A whole model saved in the legacy format keeps its weights under
            # model_weights; a .keras archive keeps the optimizer's next to the layers'.
            root = file["model_weights"] if "model_weights" in file else file
            root = root["layers"] if "layers" in root and "optimizer" in root else root

            def visit(name: str, item: object) -> None:
                if isinstance(item, h5py.Dataset):
                    shapes.append(tuple(item.shape))

            root.visititems(visit)
    except (OSError, KeyError, ValueError) as error:  # h5py's damaged or truncated file
        reason = str(error).strip().splitlines()[0] if str(error).strip() else "unreadable"
        raise unreadable(f"is damaged and cannot be read ({reason})") from None
    return shapes


def check_weights_file(path: Path, backbone: str) -> None:
    """Refuse a file Keras cannot read as weights, or one that lacks the backbone's
    arrays (naming the backbone it belongs to, when it is another's), before TensorFlow
    starts."""
    advice = (
        f"give a file saved from {backbone} with include_top=False "
        "(backbone.save_weights('x.weights.h5')), or --weights imagenet / none"
    )
    if path.name.endswith(".weights.json"):
        return
    if not path.name.endswith(WEIGHTS_SUFFIXES):
        raise DataError(
            f"Weights file {path}: Keras reads weights from {', '.join(WEIGHTS_SUFFIXES)} "
            f"files; {advice}."
        )
    held = array_counts(stored_shapes(path))
    known = backbone_arrays()
    needed = Counter(known.get(backbone, {}))  # every registered backbone has its counts
    missing = sum((needed - held).values())
    if not missing:
        return
    owner = next((name for name, counts in known.items() if counts == held), None)
    if owner is not None:
        raise DataError(
            f"Weights file {path} holds the weights of the {owner} backbone, not of "
            f"{backbone}: pass --backbone {owner}, or {advice}."
        )
    raise DataError(
        f"Weights file {path} does not hold {backbone}'s weights ({missing} of its "
        f"{sum(needed.values())} arrays are missing or of other shapes): {advice}."
    )
