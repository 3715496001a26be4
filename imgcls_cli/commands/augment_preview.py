"""`imgcls augment-preview`: a PNG grid of images and their augmented variants.

The variants come out of the training pipeline itself (create_batches with the same
build_augmentation), so the picture shows exactly what training feeds the model.
"""

from __future__ import annotations

import dataclasses
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from imgcls_cli.augment.policy import resolve_augment_with_reason
from imgcls_cli.config import AugmentConfig, DataConfig
from imgcls_cli.errors import DataError, OutputRefused, UsageError
from imgcls_cli.reporting import Reporter
from imgcls_cli.rundir.files import write_bytes_atomic

POOL_SIZE = 500  # streamed datasets: samples are picked among this many first examples
MIN_TILE = 96  # smaller images are enlarged (nearest neighbour) to at least this size
MAX_TILE = 256  # larger ones are shrunk to at most this size
PAD = 6
CAPTION_LINE = 14  # pixels a line of the 12-pixel font takes
CAPTION_HEIGHT = 2 * CAPTION_LINE + 4  # two lines: a mix's two classes, one on each
HEADER_HEIGHT = 20
# Bounds on the picture: 100,000 variants took 91 s and drew a PNG 10 million pixels tall.
MAX_COUNT = 64  # --samples and --variants each
MAX_SIDE = 16_384  # pixels, either side of the PNG


@dataclasses.dataclass
class PreviewImages:
    """The source images of the preview, resized as training resizes them."""

    images: np.ndarray  # N x H x W x C uint8
    labels: list[int]
    class_names: list[str]
    dataset: str | None  # the TFDS/embedded name, for the data's default augmentation
    # What --augment auto looks at: the images' own size and channels, and the check of
    # whether a mirror keeps their classes (None for image files: no classes to check).
    native_size: tuple[int, int] | None = None
    channels: int | None = None
    mirror_check: Any = None


@dataclasses.dataclass(frozen=True)
class GridLayout:
    """Where each tile sits in the PNG: rows of samples, columns original + variants."""

    rows: int
    columns: int
    tile_height: int
    tile_width: int

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the whole picture."""
        width = PAD + self.columns * (self.tile_width + PAD)
        height = HEADER_HEIGHT + self.rows * (self.tile_height + CAPTION_HEIGHT + PAD) + PAD
        return width, height

    def tile_origin(self, row: int, column: int) -> tuple[int, int]:
        """(x, y) of the tile's top-left pixel."""
        x = PAD + column * (self.tile_width + PAD)
        y = HEADER_HEIGHT + row * (self.tile_height + CAPTION_HEIGHT + PAD)
        return x, y


def tile_size(image_size: tuple[int, int]) -> tuple[int, int]:
    """Readable tile (height, width): small images enlarged by a whole factor, so each
    pixel stays a crisp square; large ones shrunk to fit MAX_TILE."""
    height, width = image_size
    longest = max(height, width)
    if longest < MIN_TILE:
        factor = math.ceil(MIN_TILE / longest)
        return height * factor, width * factor
    if longest > MAX_TILE:
        return max(1, round(height * MAX_TILE / longest)), max(1, round(width * MAX_TILE / longest))
    return height, width


def check_counts(samples: int, variants: int) -> None:
    for option, count in (("--samples", samples), ("--variants", variants)):
        if count < 1:
            raise UsageError(f"{option} must be at least 1; got {count}.")
        if count > MAX_COUNT:
            raise UsageError(f"{option} must be at most {MAX_COUNT}; got {count}.")


def check_picture_size(layout: GridLayout) -> None:
    """Refuse a grid too large to view (checked once the tile size is known, before any
    augmentation runs)."""
    width, height = layout.size
    if max(width, height) > MAX_SIDE:
        raise UsageError(
            f"The preview would be {width} x {height} pixels, over the limit of {MAX_SIDE} "
            "a side: use fewer --samples or --variants, or a smaller --image-size."
        )


def check_output(output: Path) -> None:
    """Refuse an --output that cannot be a PNG file, before any work is done."""
    if output.suffix.lower() != ".png":
        raise UsageError(f"--output must name a .png file; got {output}.")
    if output.is_dir():
        raise UsageError(f"--output {output} is a folder; give a file name such as {output}/x.png.")
    if output.exists() and not written_by_preview(output):
        raise OutputRefused(
            f"--output {output} exists and was not drawn by augment-preview; imgcls does not "
            "overwrite it: choose another file name."
        )


PNG_MARK = ("Software", "imgcls augment-preview")  # a text chunk in every preview we write


def written_by_preview(path: Path) -> bool:
    """Whether an existing file is an earlier preview (which may be replaced)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.info.get(PNG_MARK[0]) == PNG_MARK[1]
    except Exception:  # not an image at all
        return False


def spread_over_classes(labels: np.ndarray, samples: int, seed: int) -> list[int]:
    """Indices of `samples` examples taking the classes in turn (seeded), so a preview
    of a few images still shows several classes."""
    rng = np.random.default_rng(seed)
    classes = rng.permutation(np.unique(labels))
    groups = [list(rng.permutation(np.flatnonzero(labels == label))) for label in classes]
    chosen: list[int] = []
    while len(chosen) < min(samples, len(labels)):
        for group in groups:
            if group and len(chosen) < samples:
                chosen.append(int(group.pop()))
    return chosen


def pick_examples(split: Any, channels: int, samples: int, seed: int) -> list[tuple[Any, int]]:
    """(uint8 image, label) pairs from a split, decoding no more than needed."""
    from imgcls_cli.data.images import load_image

    if split.labels is None:  # a stream: choose among its first examples
        pool = list(split.dataset.take(POOL_SIZE).as_numpy_iterator())
        chosen = spread_over_classes(np.array([label for _, label in pool]), samples, seed)
        return [(pool[i][0], int(pool[i][1])) for i in chosen]
    chosen = spread_over_classes(split.labels, samples, seed)
    if split.paths is not None:  # a folder: decode only the chosen files
        return [(load_image(split.paths[i], channels), int(split.labels[i])) for i in chosen]
    wanted = set(chosen)
    found = {}
    for index, (image, label) in enumerate(split.dataset.as_numpy_iterator()):
        if index in wanted:
            found[index] = (image, int(label))
        if len(found) == len(wanted):
            break
    return [found[i] for i in chosen]


def load_from_source(
    config: DataConfig, samples: int, seed: int, reporter: Reporter
) -> PreviewImages:
    """Samples from the training split of a dataset or folder, as `train` would read it."""
    from imgcls_cli.data.factory import load_source
    from imgcls_cli.data.pipeline import resolve_image_size

    source = load_source(config, seed, reporter)
    image_size = resolve_image_size(config.image_size, source.native_size)
    split = source.splits["train"]
    if split.num_examples == 0:
        raise DataError("The training split is empty; nothing to preview.")
    examples = pick_examples(split, source.channels, samples, seed)
    images = resize_all([image for image, _ in examples], image_size, source.channels)
    labels = [label for _, label in examples]

    def mirror_check() -> float:
        from imgcls_cli.data.flip_check import mirror_accuracy_drop

        return mirror_accuracy_drop(split, seed)

    return PreviewImages(
        images,
        labels,
        source.class_names,
        config.dataset,
        native_size=source.native_size or image_size,
        channels=source.channels,
        mirror_check=mirror_check,
    )


def unreadable_file_error(path: Path, error: Exception) -> DataError:
    """One line for an image file given to augment-preview that cannot be read."""
    from imgcls_cli.data.images import unreadable_reason

    if isinstance(error, FileNotFoundError) and not path.is_symlink():
        return DataError(f"Image file {path} does not exist.")
    reason = unreadable_reason(path, error)
    hint = (
        "; give PNG, JPEG, BMP, GIF, WebP or TIFF files"
        if reason.startswith("not an image")
        else ""
    )
    return DataError(f"Cannot read image {path}: {reason}{hint}.")


def check_files(paths: list[Path]) -> None:
    """The image files' headers, before TensorFlow starts: a missing file, one that is not
    an image or one too large is refused at once (the check predict makes)."""
    from imgcls_cli.data.images import check_image

    for path in paths:
        try:
            check_image(path)
        except Exception as error:  # PIL raises many types for bad files
            raise unreadable_file_error(path, error) from None


def load_from_files(paths: list[Path], image_size: int | None) -> PreviewImages:
    """Image files given on the command line; each is captioned with its file name."""
    from imgcls_cli.data.images import load_image
    from imgcls_cli.data.pipeline import resolve_image_size

    arrays = []
    for path in paths:
        try:
            arrays.append(load_image(path))
        except Exception as error:  # PIL raises many types for bad files
            raise unreadable_file_error(path, error) from None
    channels = 1 if all(array.shape[-1] == 1 for array in arrays) else 3
    sizes = {array.shape[:2] for array in arrays}
    native = next(iter(sizes)) if len(sizes) == 1 else None
    size = resolve_image_size(image_size, native)
    names = [path.name for path in paths]
    return PreviewImages(resize_all(arrays, size, channels), list(range(len(paths))), names, None)


def resize_all(images: list[Any], image_size: tuple[int, int], channels: int) -> np.ndarray:
    from imgcls_cli.data.images import prepare_images

    return np.stack([np.asarray(prepare_images(image, image_size, channels)) for image in images])


def augmented_variants(
    preview: PreviewImages, augment: AugmentConfig, variants: int, seed: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """K augmented copies of the N images (each N x H x W x C, 0-255) and their labels
    (N x classes, soft when mixed), produced by the training pipeline."""
    from imgcls_cli.augment.layers import build_augmentation
    from imgcls_cli.data.pipeline import create_batches
    from imgcls_cli.data.sources import arrays_to_split

    count, height, width, channels = preview.images.shape
    augmentation = build_augmentation(augment, channels, seed)
    # K copies of the N images, batched N at a time: each batch is one column of variants.
    split = arrays_to_split(
        np.tile(preview.images, (variants, 1, 1, 1)), np.tile(np.array(preview.labels), variants)
    )
    batches = create_batches(
        split,
        (height, width),
        channels,
        len(preview.class_names),
        count,
        augmentation=augmentation,
    )
    columns = [(np.asarray(images), np.asarray(labels)) for images, labels in batches]
    return [images for images, _ in columns], [labels for _, labels in columns]


def caption(label: np.ndarray, class_names: list[str]) -> str:
    """The class name, or the mix ('3 62% + 5 38%') when mixup/cutmix blended labels."""
    order = np.argsort(label)[::-1]
    if label[order[0]] >= 0.995:
        return class_names[order[0]]
    parts = [f"{class_names[i]} {label[i]:.0%}" for i in order[:2] if label[i] >= 0.005]
    return " + ".join(parts)


def to_tile(image: np.ndarray, size: tuple[int, int]) -> Any:
    from PIL import Image

    pixels = np.clip(np.round(image), 0, 255).astype(np.uint8)
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    picture = Image.fromarray(pixels, mode="RGB")
    if picture.size == (size[1], size[0]):
        return picture
    enlarge = size[0] > pixels.shape[0]
    return picture.resize((size[1], size[0]), Image.NEAREST if enlarge else Image.LANCZOS)


def load_font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a fixed-size bitmap font
        return ImageFont.load_default()


def render_grid(
    originals: np.ndarray,
    variants: list[np.ndarray],
    captions: list[list[str]],
) -> tuple[Any, GridLayout]:
    """A white picture: a header row, then per sample the original and its variants,
    each with its caption underneath."""
    from PIL import Image, ImageDraw

    height, width = tile_size(originals.shape[1:3])
    layout = GridLayout(len(originals), len(variants) + 1, height, width)
    picture = Image.new("RGB", layout.size, "white")
    draw = ImageDraw.Draw(picture)
    font = load_font(12)
    titles = ["original"] + [f"variant {k}" for k in range(1, len(variants) + 1)]
    for column, title in enumerate(titles):
        x, _ = layout.tile_origin(0, column)
        draw.text((x, 3), title, fill="black", font=font)
    for row in range(layout.rows):
        images = [originals[row]] + [column[row] for column in variants]
        for column, image in enumerate(images):
            x, y = layout.tile_origin(row, column)
            picture.paste(to_tile(image, (height, width)), (x, y))
            for line, text in enumerate(caption_lines(draw, captions[row][column], font, width)):
                draw.text((x, y + height + 2 + line * CAPTION_LINE), text, fill="black", font=font)
    return picture, layout


def caption_lines(draw: Any, text: str, font: Any, width: int) -> list[str]:
    """A caption as it fits under its tile: one line, or a mix ('circle 72% + square 28%')
    on two, a class on each; cut with '…' only when a line alone is too long."""
    if draw.textlength(text, font=font) <= width:
        return [text]
    first, plus, rest = text.partition(" + ")
    if not plus:
        return [fit_text(draw, text, font, width)]
    # Each line a class and its share: a long name is cut, its share kept.
    lines = [first, f"+ {rest}"]
    return [fit_text(draw, line, font, width, keep=" " + line.rsplit(" ", 1)[1]) for line in lines]


def fit_text(draw: Any, text: str, font: Any, width: int, keep: str = "") -> str:
    """Cut a caption with '…' so it stays under its own tile, its ending `keep` kept."""
    if draw.textlength(text, font=font) <= width:
        return text
    text = text.removesuffix(keep)
    while text and draw.textlength(text + "…" + keep, font=font) > width:
        text = text[:-1]
    return text + "…" + keep


def write_png(picture: Any, output: Path) -> None:
    from PIL import PngImagePlugin

    buffer = io.BytesIO()
    mark = PngImagePlugin.PngInfo()
    mark.add_text(*PNG_MARK)
    picture.save(buffer, format="PNG", pnginfo=mark)
    try:
        write_bytes_atomic(output, buffer.getvalue())
    except OSError as error:
        raise DataError(f"Cannot write {output}: {error.strerror or error}.") from None


def run_augment_preview(
    source: DataConfig | list[Path],
    *,
    image_size: int | None,
    augment: AugmentConfig,
    samples: int,
    variants: int,
    seed: int,
    output: Path,
    reporter: Reporter,
) -> Path:
    """Load samples from a dataset or folder (or the image files given), augment them
    `variants` times, and write the grid to `output`."""
    check_counts(samples, variants)
    check_output(output)
    if not isinstance(source, DataConfig):  # before TensorFlow starts
        missing = [str(path) for path in source if not Path(path).is_file()]
        if missing:
            raise DataError(
                f"Image file {missing[0]} does not exist; give image files that exist, or "
                "--data DIR / --dataset NAME for samples of a dataset."
            )
    else:
        from imgcls_cli.data.factory import check_data

        check_data(source)  # a folder of one class or no readable image, before TensorFlow
    from imgcls_cli.backend import import_tensorflow, seed_everything

    import_tensorflow()
    seed_everything(seed)
    if isinstance(source, DataConfig):
        preview = load_from_source(source, samples, seed, reporter)
    else:
        preview = load_from_files(source, image_size)
    rows, height, width, channels = preview.images.shape
    check_picture_size(GridLayout(rows, variants + 1, *tile_size((height, width))))
    resolved, reason = resolve_augment_with_reason(
        augment,
        preview.dataset,
        preview.channels or channels,
        preview.native_size or (height, width),
        preview.mirror_check,
    )
    reporter.info(f"Augmentation: {resolved.describe()}; {reason}")
    variant_images, variant_labels = augmented_variants(preview, resolved, variants, seed)
    captions = [
        [preview.class_names[label]]
        + [caption(column[row], preview.class_names) for column in variant_labels]
        for row, label in enumerate(preview.labels)
    ]
    picture, _ = render_grid(preview.images, variant_images, captions)
    write_png(picture, output)
    return output
