"""build_augmentation: one resolved AugmentConfig → Keras preprocessing layers.

The layers run inside the tf.data pipeline, on the CPU, on batches of float32 0-255 images
and one-hot labels, for the training split only. Each layer owns a Keras SeedGenerator
seeded from --seed. The pipeline hands every batch a random key (drawn anew each epoch,
see create_batches) that restarts those generators, so a batch's random changes depend on
(seed, epoch, batch) alone: a resumed run augments exactly as an uninterrupted one.
"""

from __future__ import annotations

import math
import random
from typing import Any

from imgcls_cli.backend import import_tensorflow
from imgcls_cli.config import AugmentConfig, Flip

tf = import_tensorflow()  # first, so TensorFlow's start-up log stays quiet
import keras  # noqa: E402

VALUE_RANGE = (0, 255)  # pixels stay raw until the model's own Rescaling layer


class RandomAffine(keras.layers.RandomRotation):
    """Random crop, rotation, zoom and shift, drawn per image and applied in one resampling.

    Separate RandomCrop, RandomRotation, RandomZoom and RandomTranslation layers would
    resample every image up to four times: the costliest step of the pipeline (measured
    here: about 2 ms per batch of 64 28x28 images, each time), with a round of
    interpolation blur each time; RandomCrop also picks one window per batch.
    Inherits RandomRotation's fill and interpolation handling.
    """

    def __init__(
        self,
        rotate: float = 0.0,
        zoom: float = 0.0,
        translate: float = 0.0,
        crop: float = 0.0,
        fill_mode: str = "reflect",
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(factor=rotate / 360.0, fill_mode=fill_mode, seed=seed, **kwargs)
        self.rotate, self.zoom, self.translate, self.crop = rotate, zoom, translate, crop

    def get_random_transformation(self, data, training=True, seed=None):
        if not training:
            return None
        ops = self.backend
        images = data["images"] if isinstance(data, dict) else data
        shape = ops.core.shape(images)
        count = shape[0] if len(shape) == 4 else 1
        height = ops.cast(shape[-3], "float32")
        width = ops.cast(shape[-2], "float32")
        if seed is None:
            seed = self._get_seed_generator(ops._backend)

        def draw(limit: float) -> Any:
            return ops.random.uniform((count,), -limit, limit, seed=seed)

        angle = draw(self.rotate * math.pi / 180.0)
        # A crop samples a window (1 - crop) the size of the image, anywhere inside it.
        scale = (1.0 + draw(self.zoom)) * (1.0 - self.crop)
        shift_x = (draw(self.translate) + draw(self.crop / 2)) * width
        shift_y = (draw(self.translate) + draw(self.crop / 2)) * height
        # Output pixel (x, y) samples the input at centre + scale * R(angle) (p - centre) + shift.
        cos, sin = ops.numpy.cos(angle) * scale, ops.numpy.sin(angle) * scale
        center_x, center_y = (width - 1) / 2, (height - 1) / 2
        matrix = ops.numpy.stack(
            [
                cos,
                -sin,
                center_x - cos * center_x + sin * center_y + shift_x,
                sin,
                cos,
                center_y - sin * center_x - cos * center_y + shift_y,
                ops.numpy.zeros_like(angle),
                ops.numpy.zeros_like(angle),
            ],
            axis=1,
        )
        return {"matrix": matrix}

    def transform_images(self, images, transformation, training=True):
        images = self.backend.cast(images, self.compute_dtype)
        if not training or transformation is None:
            return images
        return self.backend.image.affine_transform(
            images,
            transformation["matrix"] if len(images.shape) == 4 else transformation["matrix"][0],
            interpolation=self.interpolation,
            fill_mode=self.fill_mode,
            fill_value=self.fill_value,
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("factor", None)
        parts = {"rotate": self.rotate, "zoom": self.zoom, "translate": self.translate}
        return {**config, **parts, "crop": self.crop}


class Augmentation:
    """(images, one-hot labels) → (augmented images, labels), for `dataset.map`.

    Image layers change pixels only, so labels pass through them untouched; the mixing
    layer (MixUp or CutMix) blends pairs of images and their labels with the same weight.
    """

    def __init__(
        self, config: AugmentConfig, seed: int, image_layers: list[Any], mix_layer: Any = None
    ):
        self.config = config
        self.seed = seed
        self.image_layers = image_layers
        self.mix_layer = mix_layer

    @property
    def layers(self) -> list[Any]:
        return self.image_layers + ([self.mix_layer] if self.mix_layer is not None else [])

    def __call__(self, images: Any, labels: Any, key: Any = None) -> tuple[Any, Any]:
        """Augment one batch. `key` (an int64 scalar), when given, restarts every layer's
        seed generator at (its own seed, key): this batch's draws then depend on the key
        alone, not on how many batches came before (which a resumed run cannot replay)."""
        if key is not None:
            for layer in self.layers:
                state = layer.generator.state
                state.assign(
                    tf.stack([tf.constant(layer.seed, state.dtype), tf.cast(key, state.dtype)])
                )
        for layer in self.image_layers:
            images = layer(images, training=True)
        if self.mix_layer is not None:
            mixed = self.mix_layer({"images": images, "labels": labels}, training=True)
            images, labels = mixed["images"], mixed["labels"]
        return images, labels


def build_augmentation(
    config: AugmentConfig,
    channels: int,
    seed: int,
) -> Augmentation:
    """The Keras layers a resolved config turns on, each seeded from `seed`."""
    if not config.is_resolved:
        raise ValueError("build_augmentation needs a resolved AugmentConfig (call .resolve)")
    # The seed generators' state variables must live on the CPU with tf.data, even on a
    # machine whose default device is a GPU.
    with tf.device("/cpu:0"):
        return create_layers(config, channels, seed)


def create_layers(
    config: AugmentConfig,
    channels: int,
    seed: int,
) -> Augmentation:
    """In a fixed order: flips, geometry (crop, rotation, zoom, shift), contrast,
    brightness, colour, erasing, then mixing."""
    seeds = random.Random(seed)

    def next_seed() -> int:
        return seeds.randrange(2**31 - 1)

    fill = config.fill.value
    layers: list[Any] = []
    # Two layers for 'both': Keras' own horizontal_and_vertical mode flips both ways on
    # one coin (a 180° turn), never just one way.
    flip_modes = {
        Flip.none: [],
        Flip.horizontal: ["horizontal"],
        Flip.vertical: ["vertical"],
        Flip.both: ["horizontal", "vertical"],
    }[config.flip]
    for mode in flip_modes:
        layers.append(keras.layers.RandomFlip(mode, seed=next_seed()))
    if config.crop or config.rotate or config.zoom or config.translate:
        layers.append(
            RandomAffine(
                rotate=config.rotate,
                zoom=config.zoom,
                translate=config.translate,
                crop=config.crop,
                fill_mode=fill,
                seed=next_seed(),
            )
        )
    if config.contrast:
        layers.append(
            keras.layers.RandomContrast(config.contrast, value_range=VALUE_RANGE, seed=next_seed())
        )
    if config.brightness:
        layers.append(
            keras.layers.RandomBrightness(
                config.brightness, value_range=VALUE_RANGE, seed=next_seed()
            )
        )
    if config.color_jitter and channels == 3:
        jitter = config.color_jitter
        # RandomSaturation: 0.5 is no change; RandomHue: shifts up to factor/2 of the circle.
        saturation = (0.5 - jitter / 2, 0.5 + jitter / 2)
        layers.append(
            keras.layers.RandomSaturation(saturation, value_range=VALUE_RANGE, seed=next_seed())
        )
        layers.append(keras.layers.RandomHue(jitter / 4, value_range=VALUE_RANGE, seed=next_seed()))
    if config.erase:
        layers.append(
            keras.layers.RandomErasing(
                # (p, p): erase with probability p exactly (a bare p draws it from [0, p]).
                factor=(config.erase, config.erase),
                fill_value=0.0 if fill == "constant" else None,
                value_range=VALUE_RANGE,
                seed=next_seed(),
            )
        )
    return Augmentation(config, seed, layers, create_mix_layer(config, next_seed()))


def create_mix_layer(config: AugmentConfig, seed: int) -> Any:
    if config.mixup:
        return keras.layers.MixUp(alpha=config.mixup, seed=seed)
    if config.cutmix:
        # (a, a): mix weights from Beta(a, a) exactly (a bare a draws a itself from [0, a]).
        return keras.layers.CutMix(factor=(config.cutmix, config.cutmix), seed=seed)
    return None
