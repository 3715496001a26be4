"""Which TFDS datasets there are, and which imgcls can train on: the builders whose
features hold an Image and a ClassLabel at the top level (mnist's `image` and `label`),
as TFDS' own DatasetInfo declares them. Reading that info means constructing every
builder (seconds, TensorFlow imported), so the catalog is generated once per TFDS release
and shipped beside this module:

    python -m imgcls_cli.data.tfds_catalog      # rewrites tfds_catalog.txt

A name check or a suggestion then reads a text file instead of importing TFDS (which
alone costs 3x `imgcls --help`); with another TFDS release installed than the catalog
describes, names the catalog lacks are looked up in TFDS itself.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

CATALOG = Path(__file__).with_name("tfds_catalog.txt")
IMAGE_CLASSIFICATION, OTHER, UNDESCRIBED = "image-classification", "other", "undescribed"


MANUAL = "manual"  # a line's third word: the builder's archives must be placed by hand


@dataclasses.dataclass(frozen=True)
class Catalog:
    tfds_version: str
    kinds: dict[str, str]  # builder name → IMAGE_CLASSIFICATION, OTHER or UNDESCRIBED
    # builders TFDS cannot download (MANUAL_DOWNLOAD_INSTRUCTIONS: imagenet2012, …)
    manual: frozenset[str] = frozenset()

    @property
    def image_classification(self) -> frozenset[str]:
        return frozenset(n for n, kind in self.kinds.items() if kind == IMAGE_CLASSIFICATION)

    def is_complete(self) -> bool:
        """Whether the installed TFDS is the release the catalog lists (read from its
        package metadata, without importing it)."""
        from importlib import metadata

        try:
            return metadata.version("tensorflow-datasets") == self.tfds_version
        except metadata.PackageNotFoundError:
            return False


@functools.cache
def catalog() -> Catalog:
    version, kinds, manual = "", {}, set()
    for line in CATALOG.read_text(encoding="utf-8").splitlines():
        if line.startswith("# tfds "):
            version = line.split()[2]
        elif line.strip() and not line.startswith("#"):
            name, kind, *flags = line.split()
            kinds[name] = kind
            if MANUAL in flags:
                manual.add(name)
    return Catalog(version, kinds, frozenset(manual))


def image_classification_names() -> frozenset[str]:
    return catalog().image_classification


def classification_keys(features: Any, supervised_keys: Any) -> tuple[str, str] | None:
    """(image, label) feature names as imgcls reads a TFDS dataset: its supervised keys,
    else the first Image and the first ClassLabel at the top level (a detection set's
    labels sit inside a Sequence of boxes and do not count); None when they are not an
    Image and a ClassLabel."""
    kinds = {key: type(feature).__name__ for key, feature in features.items()}
    keys = supervised_keys
    if not (isinstance(keys, tuple) and len(keys) == 2 and all(isinstance(k, str) for k in keys)):
        image = next((k for k, kind in kinds.items() if kind == "Image"), None)
        label = next((k for k, kind in kinds.items() if kind == "ClassLabel"), None)
        keys = (image, label)
    image, label = keys
    if kinds.get(image) == "Image" and kinds.get(label) == "ClassLabel":
        return image, label
    return None


def builder_info(name: str, data_dir: str) -> Any:
    import tensorflow_datasets as tfds

    return tfds.builder(name, data_dir=data_dir).info


def is_image_classification(info: Any) -> bool:
    return classification_keys(info.features, info.supervised_keys) is not None


def needs_manual_download(name: str) -> bool:
    """Whether TFDS says the builder's archives must be placed by hand (read from its
    class: nothing is constructed)."""
    import tensorflow_datasets as tfds

    return bool(getattr(tfds.builder_cls(name), "MANUAL_DOWNLOAD_INSTRUCTIONS", None))


def generate() -> Catalog:
    """Every TFDS builder's default config, read from its DatasetInfo (nothing loaded),
    and which must be downloaded by hand."""
    import tempfile

    import tensorflow_datasets as tfds

    from imgcls_cli.backend import import_tensorflow

    import_tensorflow()
    kinds = {}
    with tempfile.TemporaryDirectory() as data_dir:
        for name in sorted(tfds.list_builders(with_community_datasets=False)):
            try:
                info = builder_info(name, data_dir)
            except Exception:  # builders that need files or credentials to describe themselves
                kinds[name] = UNDESCRIBED
                continue
            kinds[name] = IMAGE_CLASSIFICATION if is_image_classification(info) else OTHER
    manual = frozenset(name for name in kinds if needs_manual_download(name))
    return Catalog(tfds.__version__, kinds, manual)


def main() -> None:
    made = generate()
    header = (
        f"# tfds {made.tfds_version}\n"
        "# Every TFDS builder and what its DatasetInfo's features are: image-classification\n"
        "# (an Image and a ClassLabel, as imgcls reads them: classification_keys), other, or\n"
        "# undescribed (the builder could not describe itself without its files); `manual`\n"
        "# after it: TFDS cannot download its archives, a user places them. Made by:\n"
        "#   python -m imgcls_cli.data.tfds_catalog\n"
    )
    lines = [
        f"{name} {kind}" + (f" {MANUAL}" if name in made.manual else "")
        for name, kind in made.kinds.items()
    ]
    CATALOG.write_text(header + "\n".join(lines) + "\n", encoding="utf-8")
    chosen = len(made.image_classification)
    print(f"{len(made.kinds)} TFDS builders, {chosen} for image classification: {CATALOG}")


if __name__ == "__main__":
    main()
