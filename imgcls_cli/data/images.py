"""The one image decoder (files → uint8 arrays) and the one resize every command uses."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

# TIFF (scanners, microscopes) decodes through PIL, as every format but plain JPEG/PNG/BMP.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
EXTENSIONS_LISTED = ".jpg .jpeg .png .bmp .gif .webp .tif .tiff"  # for messages
GRAYSCALE_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
# 2**28 pixels (16384x16384, 268 megapixels). Decoded as RGB that is 768 MiB, and tf.data
# decodes several files at once, so anything larger would risk the memory of a laptop; such
# files are almost always scans or panoramas to downscale, or decompression bombs.
MAX_IMAGE_PIXELS = 2**28


class ImageTooLargeError(ValueError):
    """An image above MAX_IMAGE_PIXELS; refused after reading its header, before decoding."""


def is_image_file(path: Path) -> bool:
    """An image by extension (any case), not hidden."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def load_image(
    path: str | Path, channels: int | None = None, target: tuple[int, int] | None = None
) -> np.ndarray:
    """Decode any image file to a uint8 HxWxC array (C = 1 or 3).

    Handles EXIF rotation, palette and alpha images, CMYK JPEGs and 16-bit PNGs. With
    channels=None, grayscale files stay single-channel and everything else becomes RGB.
    With `target` (height, width), the size the image is then resized to, a JPEG decodes
    at the reduced scale TensorFlow's decoder would use (jpeg_scale; PIL's draft), so
    both decoders give the same pixels. Raises OSError (or ValueError) for files that are
    not readable images.
    """
    from PIL import ImageOps

    with open_image(path) as image:
        if target is not None and image.format in JPEG_FORMATS:
            height, width = target
            if image.getexif().get(EXIF_ORIENTATION, 1) in QUARTER_TURNS:
                height, width = width, height  # the target is upright, the file is not
            # libjpeg's DCT scaling, the largest of 1/2, 1/4, 1/8 that keeps the size at
            # least this: the same choice as jpeg_scale.
            image.draft(image.mode, (width, height))
        image = ImageOps.exif_transpose(image)
        return image_to_array(image, channels)


def open_image(path: Any) -> Any:
    """PIL's Image.open of a path or file object (header only), refusing images above
    MAX_IMAGE_PIXELS."""
    from PIL import Image

    # PIL's own limit warns above 89 megapixels and refuses above 179, naming no size.
    # Ours replaces it at the same point (header read, nothing decoded yet), so one
    # documented number decides and the reason names the image's size.
    Image.MAX_IMAGE_PIXELS = None
    image = Image.open(path)
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        image.close()
        raise ImageTooLargeError(
            f"{width}x{height} is {width * height / 1e6:.0f} megapixels, above imgcls' limit "
            f"of {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels: downscale it"
        )
    return image


class UnreadableImage(OSError):
    """A file that failed to decode, with the reason in a few words (unreadable_reason)."""


def unreadable_reason(path: str | Path, error: Exception) -> str:
    """Why a file could not be decoded, in a few words a user can act on."""
    from PIL import UnidentifiedImageError

    if isinstance(error, UnreadableImage):
        return str(error)
    path = Path(path)
    if isinstance(error, FileNotFoundError):
        return (
            f"broken symbolic link to {os.readlink(path)}" if path.is_symlink() else "no such file"
        )
    if isinstance(error, IsADirectoryError):
        return "is a folder, not an image file"
    if isinstance(error, PermissionError):
        return "permission denied"
    if isinstance(error, ImageTooLargeError):
        return str(error)
    if path.is_file() and path.stat().st_size == 0:
        return "empty file (0 bytes)"
    if isinstance(error, UnidentifiedImageError):
        return "not an image (format not recognised)"
    if "truncated" in str(error):
        return "truncated image (the file ends early)"
    if "broken data stream" in str(error) or "cannot load this image" in str(error):
        return "damaged image (its compressed data is corrupt)"
    return f"unreadable image ({type(error).__name__}: {error})"


def image_to_array(image: Any, channels: int | None = None) -> np.ndarray:
    """A PIL image as uint8 HxWxC, converted to the requested channel count."""
    if channels is None:
        channels = 1 if image.mode in GRAYSCALE_MODES else 3
    if image.mode.startswith("I") or image.mode == "F":
        # 16/32-bit grayscale: PIL's convert('L') clips at 255 instead of scaling.
        values = np.asarray(image, dtype=np.float64)
        scale = 257.0 if values.max(initial=0) > 255 else 1.0
        gray = np.clip(np.round(values / scale), 0, 255).astype(np.uint8)
        array = gray[..., None] if channels == 1 else np.repeat(gray[..., None], 3, axis=-1)
        return array
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA")
    image = image.convert("L" if channels == 1 else "RGB")
    array = np.asarray(image, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


def read_image_header(path: Path) -> tuple[int, int, bool]:
    """Fully decode a file once to check it; returns (width, height, is_grayscale)."""
    facts = check_image(path, decode=True)
    return facts.width, facts.height, facts.grayscale


@dataclasses.dataclass(frozen=True)
class ImageFacts:
    width: int
    height: int
    grayscale: bool
    # TensorFlow's own decoders read it as PIL does: an 8-bit grayscale or RGB JPEG, PNG
    # or BMP that no EXIF tag rotates. Everything else takes load_image (PIL).
    plain: bool
    jpeg: bool = False  # decodable at a reduced scale


# MPO: a camera's JPEG holding more pictures after the first (stereo, depth); both
# decoders read the first.
JPEG_FORMATS = frozenset({"JPEG", "MPO"})
PLAIN_FORMATS = JPEG_FORMATS | {"PNG", "BMP"}
EXIF_ORIENTATION = 0x0112
QUARTER_TURNS = frozenset({5, 6, 7, 8})  # orientations that swap width and height
# How the two common formats end. A download cut short misses its end marker: looking for
# it costs nothing, where decoding the pixels costs a large part of an epoch. JPEG's EOI
# cannot occur inside the compressed data (0xFF is stuffed there).
END_MARKERS = {"JPEG": b"\xff\xd9", "MPO": b"\xff\xd9", "PNG": b"IEND"}
END_SEARCH_BYTES = 1024


def check_image(path: Path, content: bytes | None = None, decode: bool = False) -> ImageFacts:
    """Read a file's header, check that it is whole, and say how it can be decoded.

    Only the header is parsed, and JPEG/PNG files are checked for their end marker
    (decoded when it is missing): a file damaged inside its compressed data passes, and
    the decoder names it when it streams (data.folder.FileDecoder). `decode=True` decodes
    every file (JPEGs at reduced scale, which still reads every byte): a thorough check.
    """
    import io

    if content is None:
        content = Path(path).read_bytes()
    if not content:
        raise OSError("empty file")
    with open_image(io.BytesIO(content)) as image:
        width, height = image.size
        plain = (
            image.format in PLAIN_FORMATS
            and image.mode in ("L", "RGB")
            and not may_be_rotated(image)
        )
        grayscale = image.mode in GRAYSCALE_MODES
        facts = ImageFacts(width, height, grayscale, plain, image.format in JPEG_FORMATS)
        marker = END_MARKERS.get(image.format or "")
        # No marker near the end: cut short, or followed by other data (phones append a
        # video to "motion photos"). Decoding tells which.
        if decode or (marker and marker not in content[-END_SEARCH_BYTES:]):
            if image.format in JPEG_FORMATS:
                image.draft(image.mode, (max(1, width // 8), max(1, height // 8)))
            image.load()
    return facts


def may_be_rotated(image: Any) -> bool:
    """Whether an EXIF tag may rotate the image, known from its header alone: a JPEG's
    orientation tag; for other formats, any EXIF block (PIL's getexif would decode a
    PNG in full to find a late one), which then takes load_image, which applies it."""
    if image.format in JPEG_FORMATS:
        return image.getexif().get(EXIF_ORIENTATION, 1) != 1
    return "exif" in image.info


JPEG_SCALES = (1, 2, 4, 8)  # libjpeg decodes at 1/1, 1/2, 1/4 or 1/8 of the stored size
# How TensorFlow decodes a plain file, by index: a JPEG at each of JPEG_SCALES, then any
# other plain format. FileDecoder adds one more index, for the files PIL decodes.
PLAIN_DECODERS = len(JPEG_SCALES) + 1


def jpeg_scale(stored: tuple[int, int], target: tuple[int, int]) -> int:
    """The largest of JPEG_SCALES at which a JPEG of `stored` (height, width) decodes to
    at least `target` on both sides: the decode then costs a fraction, and the shared
    resize that follows does the rest."""
    fits = [
        scale
        for scale in JPEG_SCALES
        if stored[0] // scale >= target[0] and stored[1] // scale >= target[1]
    ]
    return max(fits, default=1)  # 1 also for images smaller than the target


def plain_route(facts: ImageFacts, target: tuple[int, int] | None) -> tuple[int, int]:
    """(decoder, resize) for a plain file read at `target`: its index for plain_decoder
    and in RESIZE_METHODS, known from the header alone, so the graph takes one branch of
    each instead of testing the file's bytes and shape."""
    stored = (facts.height, facts.width)
    scale = jpeg_scale(stored, target) if facts.jpeg and target else 1
    decoder = JPEG_SCALES.index(scale) if facts.jpeg else len(JPEG_SCALES)
    if target is None:
        return decoder, RESIZE_METHODS.index("none")
    decoded = (-(-stored[0] // scale), -(-stored[1] // scale))  # libjpeg rounds up
    return decoder, RESIZE_METHODS.index(resize_method(decoded, target))


def plain_decoder(content: Any, decoder: int, channels: int = 0) -> Any:
    """A plain file's bytes decoded by TensorFlow's decoder number `decoder` (below
    PLAIN_DECODERS: a JPEG at 1/JPEG_SCALES[decoder], then any other plain format): uint8
    HxWx`channels` (0: as stored). INTEGER_ACCURATE is libjpeg's ISLOW DCT, which PIL
    uses, so both decoders give the same pixels."""
    import tensorflow as tf

    if decoder < len(JPEG_SCALES):
        scale = JPEG_SCALES[decoder]
        return tf.io.decode_jpeg(
            content, channels=channels, ratio=scale, dct_method="INTEGER_ACCURATE"
        )
    return tf.io.decode_image(content, channels=channels, expand_animations=False)


def decode_plain(content: Any, facts: ImageFacts, channels: int, target: Any) -> Any:
    """A plain file's bytes (see ImageFacts) decoded by TensorFlow: uint8 HxWxC with
    `channels`, the pixels load_image gives; JPEGs at a reduced scale when `target`
    (height, width) allows. Files decode in their own channels, then convert as PIL
    converts."""
    image = plain_decoder(content, plain_route(facts, target)[0])
    stored_channels = 1 if facts.grayscale else 3
    if stored_channels != channels:
        image = gray_to_rgb(image) if channels == 3 else rgb_to_gray(image)
    image.set_shape([None, None, channels])
    return image


def gray_to_rgb(image: Any) -> Any:
    import tensorflow as tf

    return tf.repeat(image[..., :1], 3, axis=-1)


def rgb_to_gray(image: Any) -> Any:
    """PIL's convert('L') exactly: ITU-R 601-2 luma in 16-bit fixed point, rounded."""
    import tensorflow as tf

    rgb = tf.cast(image[..., :3], tf.int32)
    weighted = rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000
    luma = tf.bitwise.right_shift(weighted, 16)
    return tf.cast(luma, tf.uint8)[..., None]


def prepare_images(images: Any, image_size: tuple[int, int], channels: int) -> Any:
    """Resize to image_size and convert channels: the one resize that training, evaluation
    and prediction share, so there is no training/serving skew.

    Takes a uint8 tensor HxWxC or NxHxWxC; returns uint8 of the same rank.
    """
    import tensorflow as tf

    images = tf.convert_to_tensor(images)
    have = images.shape[-1]
    if have == 1 and channels == 3:
        images = tf.image.grayscale_to_rgb(images)
    elif have == 3 and channels == 1:
        images = tf.image.rgb_to_grayscale(images)
    elif have not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got {have}")
    height, width = images.shape[-3], images.shape[-2]
    if (height, width) == tuple(image_size):
        return tf.cast(images, tf.uint8)
    return resize(images, image_size)


# How an image reaches the target size without aliasing, by direction (resize_method):
# - shrinking on both sides: area averaging, each output pixel the exact mean of the input
#   area it covers (OpenCV's INTER_AREA, the usual choice for shrinking; 2-3x faster here
#   than the antialiased bilinear filter, which was the input pipeline's bottleneck on
#   photo folders);
# - growing on both sides: bilinear (nothing to antialias);
# - shrinking on one side only: antialiased bilinear.
RESIZE_METHODS = ("none", "area", "bilinear", "antialiased")


def resize_method(size: tuple[int, int], target: tuple[int, int]) -> str:
    """The RESIZE_METHODS entry that takes `size` (height, width) to `target`."""
    if tuple(size) == tuple(target):
        return "none"
    if size[0] >= target[0] and size[1] >= target[1]:
        return "area"
    if size[0] <= target[0] and size[1] <= target[1]:
        return "bilinear"
    return "antialiased"


def resize_by(images: Any, size: tuple[int, int], method: str) -> Any:
    """uint8 images resized to `size` by `method` (one of RESIZE_METHODS), rounded."""
    import tensorflow as tf

    if method == "none":
        return images
    antialias = method == "antialiased"
    kind = "area" if method == "area" else "bilinear"
    resized = tf.image.resize(images, size, method=kind, antialias=antialias)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def resize(images: Any, size: tuple[int, int]) -> Any:
    """uint8 images at `size`, by the method resize_method picks from their shape in the
    graph (for images whose size is not known beforehand)."""
    import tensorflow as tf

    def by(method: str) -> Any:
        return lambda: resize_by(images, size, method)

    shape = tf.shape(images)
    height, width = shape[-3], shape[-2]
    shrinks = tf.logical_and(height >= size[0], width >= size[1])
    grows = tf.logical_and(height <= size[0], width <= size[1])
    return tf.cond(shrinks, by("area"), lambda: tf.cond(grows, by("bilinear"), by("antialiased")))


def printable(text: str) -> str:
    """Text that encodes as UTF-8: a file name's undecodable bytes (b'\\xff', which Python
    keeps as lone surrogates) are shown escaped ('\\xff'), the same in every format."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
