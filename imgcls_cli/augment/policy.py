"""The augmentation policy: the presets, and options resolved for one dataset, flags given
winning over the preset. `--augment auto`, the default, chooses from what the data is:

- Characters, digits and other single-channel or small (≤ 32 px) images: rotations of
  up to 10° and nothing else, which measured best on such data (BENCHMARKS.md,
  "Defaults"): no flips (a mirrored 2 is not a 2), no shifts (such datasets are mostly
  centred, and a rotation about the centre keeps them so), a black fill for the corners.
- Colour photos: the photo preset with horizontal flips, unless a quick check on the
  training images finds that mirroring turns some classes into others (left and right
  arrows, text): then the same preset without flips.

Pure Python: the check itself (data.flip_check) runs only when it is needed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from imgcls_cli.config import AugmentConfig, AugmentPreset, FillMode, Flip
from imgcls_cli.errors import UsageError

# Handwritten characters and digits, light on black: a mirrored 2 is not a 2, and
# uncovered corners are filled with black rather than mirrored strokes.
TEXT_DATASETS = frozenset({"digits", "mnist", "emnist", "kmnist"})

# The parts each preset turns on. Magnitudes: rotate in degrees (±), the rest as fractions
# of the image size or pixel range (±); color_jitter and erase as in AugmentConfig.
NOTHING: dict[str, Any] = {
    "flip": Flip.none,
    "rotate": 0.0,
    "crop": 0.0,
    "zoom": 0.0,
    "translate": 0.0,
    "contrast": 0.0,
    "brightness": 0.0,
    "color_jitter": 0.0,
    "erase": 0.0,
}
PRESETS: dict[AugmentPreset, dict[str, Any]] = {
    AugmentPreset.none: {},
    AugmentPreset.light: {"flip": Flip.horizontal, "translate": 0.1},
    AugmentPreset.standard: {
        "flip": Flip.horizontal,
        "rotate": 10.0,
        "zoom": 0.1,
        "translate": 0.1,
        "contrast": 0.1,
        "brightness": 0.1,
    },
    AugmentPreset.strong: {
        "flip": Flip.horizontal,
        "rotate": 20.0,
        "zoom": 0.2,
        "translate": 0.15,
        "contrast": 0.3,
        "brightness": 0.3,
        "color_jitter": 0.4,
        "erase": 0.25,
    },
}


SMALL_IMAGE = 32  # pixels, the larger side: at most this is "small"
SMALL_PRESET = AugmentPreset.light
# What auto changes in it: rotations instead of shifts. Measured with the default convnet,
# 15 epochs, 3 seeds (BENCHMARKS.md): on 5,000 MNIST digits shifts of 10% scored 98.20%,
# 5% 98.50%, rotations of 10° 98.63%, none 98.50%; on faces all beat none by 18-25 points.
SMALL_PARTS = {"flip": Flip.none, "fill": FillMode.constant, "translate": 0.0, "rotate": 10.0}
# At most this (the larger side), images get no augmentation: a shift of a tenth is under
# 2 pixels, and resampling blurs them more than it teaches (8x8 digits: BENCHMARKS.md).
TINY_IMAGE = 16
PHOTO_PRESET = AugmentPreset.standard
# Mirroring is refused when adding mirrored copies to a nearest-neighbour classifier of
# the training images costs one class this much of its accuracy (a fraction, see
# data.flip_check): measured 0.39-0.49 on arrows; at most 0.12 on photo crops, 0.11 on
# MNIST digits, 0.05 on scikit-learn's digits, 0.03 on faces (6 samples each).
FLIP_ACCURACY_DROP = 0.25


@dataclasses.dataclass(frozen=True)
class AutoChoice:
    preset: AugmentPreset
    parts: dict[str, Any]  # what changes in the preset (flip, fill, …)
    reason: str  # one line, for the console and config.json


def choose(
    dataset: str | None,
    channels: int,
    image_size: tuple[int, int] | None,
    mirror_check: Callable[[], float] | None = None,
) -> AutoChoice:
    """The preset for this data, and why. `mirror_check` returns the accuracy lost when
    mirrored copies join the training images (data.flip_check); None: not checked."""
    small = image_size is not None and max(image_size) <= SMALL_IMAGE
    if image_size is not None and max(image_size) <= TINY_IMAGE:
        return AutoChoice(
            AugmentPreset.none,
            {"fill": FillMode.constant},
            f"tiny images ({image_size[0]}x{image_size[1]}): no augmentation",
        )
    if dataset in TEXT_DATASETS or channels == 1 or small:
        what = (
            f"{dataset} holds characters"
            if dataset in TEXT_DATASETS
            else "single-channel images"
            if channels == 1
            else f"small images ({image_size[0]}x{image_size[1]})"
        )
        return AutoChoice(SMALL_PRESET, SMALL_PARTS, f"{what}: rotations up to 10°, no flips")
    drop = mirror_check() if mirror_check is not None else None
    if drop is not None and drop > FLIP_ACCURACY_DROP:
        return AutoChoice(
            PHOTO_PRESET,
            {"flip": Flip.none},
            f"colour images, but mirroring turns some classes into others (mirrored copies "
            f"cost a class {drop:.0%} of its accuracy in a quick nearest-neighbour check): "
            "no flips",
        )
    if drop is None:
        checked = ""
    elif drop <= 0:
        checked = " (mirroring cost no class any accuracy in a quick nearest-neighbour check)"
    else:
        checked = f" (mirrored copies cost a class at most {drop:.0%} of its accuracy)"
    return AutoChoice(PHOTO_PRESET, {}, f"colour images: the photo preset with flips{checked}")


def resolve_augment(
    options: AugmentConfig,
    dataset: str | None,
    channels: int,
    image_size: tuple[int, int] | None = None,
    mirror_check: Callable[[], float] | None = None,
) -> AugmentConfig:
    return resolve_augment_with_reason(options, dataset, channels, image_size, mirror_check)[0]


def resolve_augment_with_reason(
    options: AugmentConfig,
    dataset: str | None,
    channels: int,
    image_size: tuple[int, int] | None = None,
    mirror_check: Callable[[], float] | None = None,
    default: tuple[AugmentPreset, str] | None = None,
) -> tuple[AugmentConfig, str]:
    """Every part filled in, and why: flags given win, then the preset; `auto` (or
    no preset) lets `choose` pick from the data (`image_size`, and
    `mirror_check` for colour images: see choose). `default`: the
    (preset, reason) used instead of auto when no preset is given.

    Named character datasets never flip and fill with black, whatever the preset;
    colour jitter needs colour images.
    """
    text = dataset in TEXT_DATASETS
    if channels == 1 and options.color_jitter:
        raise UsageError("--color-jitter needs colour images; these are grayscale.")
    preset = options.preset or AugmentPreset.auto
    parts = {**NOTHING, "fill": FillMode.reflect}
    if options.preset is None and default is not None:
        preset, reason = default
        parts.update(PRESETS[preset])
    elif preset is AugmentPreset.auto:
        choice = choose(dataset, channels, image_size, mirror_check)
        preset, reason = choice.preset, f"auto: {choice.reason}"
        parts.update(PRESETS[preset])
        parts.update(choice.parts)
    else:
        reason = f"--augment {preset.value}"
        parts.update(PRESETS[preset])
    if text:
        parts.update(flip=Flip.none, fill=FillMode.constant)
    if channels == 1:
        parts["color_jitter"] = 0.0
    given = {
        f.name: getattr(options, f.name)
        for f in dataclasses.fields(options)
        if f.name != "preset" and getattr(options, f.name) is not None
    }
    flags = [name for name, value in given.items() if value != getattr(AugmentConfig, name)]
    if flags:
        # "; given: --flip": after a reason that may itself end "with flips".
        reason += "; given: " + ", ".join("--" + name.replace("_", "-") for name in flags)
    return AugmentConfig(**{**parts, **given, "preset": preset}), reason
