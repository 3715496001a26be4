"""AugmentConfig: presets, per-data defaults, overrides, validation, JSON round-trip. No TF."""

import json

import pytest

from imgcls_cli.augment.policy import resolve_augment, resolve_augment_with_reason
from imgcls_cli.config import (
    AugmentConfig,
    AugmentPreset,
    DataConfig,
    FillMode,
    Flip,
    TrainConfig,
    from_dict,
)
from imgcls_cli.errors import UsageError


def test_photos_default_to_standard_with_horizontal_flip():
    resolved = resolve_augment(AugmentConfig(), None, 3)
    assert resolved.is_resolved
    assert resolved.preset == AugmentPreset.standard
    assert resolved.flip == Flip.horizontal and resolved.fill == FillMode.reflect
    assert resolved.rotate > 0 and resolved.translate > 0


@pytest.mark.parametrize("dataset", ["digits", "mnist"])
def test_digit_datasets_never_flip_by_default_even_with_a_preset(dataset):
    for preset in (None, AugmentPreset.standard, AugmentPreset.strong):
        resolved = resolve_augment(AugmentConfig(preset=preset), dataset, 1)
        assert resolved.flip == Flip.none
        assert resolved.fill == FillMode.constant


def test_tiny_images_such_as_the_embedded_digits_default_to_no_augmentation():
    assert resolve_augment(AugmentConfig(), "digits", 1, (8, 8)).is_off
    assert resolve_augment(AugmentConfig(), None, 3, (16, 12)).is_off
    assert not resolve_augment(AugmentConfig(), "mnist", 1, (28, 28)).is_off


def test_flags_override_single_parts_of_the_preset():
    options = AugmentConfig(preset=AugmentPreset.standard, flip=Flip.horizontal, rotate=0.0)
    resolved = resolve_augment(options, "mnist", 1)
    assert resolved.flip == Flip.horizontal  # asked for explicitly: the user wins
    assert resolved.rotate == 0.0
    assert (
        resolved.zoom
        == resolve_augment(AugmentConfig(preset=AugmentPreset.standard), "mnist", 1).zoom
    )


def test_none_preset_with_one_flag_turns_on_only_that_part():
    resolved = resolve_augment(AugmentConfig(preset=AugmentPreset.none, brightness=0.2), None, 3)
    assert resolved.brightness == 0.2 and resolved.flip == Flip.none
    assert not resolved.is_off
    assert resolved.describe() == "none (brightness 0.2)"


def test_strong_adds_colour_jitter_and_erasing_but_not_for_grayscale():
    standard = resolve_augment(AugmentConfig(preset=AugmentPreset.standard), None, 3)
    strong = resolve_augment(AugmentConfig(preset=AugmentPreset.strong), None, 3)
    assert standard.color_jitter == 0 and standard.erase == 0
    assert strong.color_jitter > 0 and strong.erase > 0
    assert resolve_augment(AugmentConfig(preset=AugmentPreset.strong), None, 1).color_jitter == 0


def test_colour_jitter_asked_for_on_grayscale_is_refused():
    with pytest.raises(UsageError, match="--color-jitter needs colour"):
        resolve_augment(AugmentConfig(color_jitter=0.3), "mnist", 1)


@pytest.mark.parametrize(
    "values, flag",
    [
        ({"rotate": -5}, "--rotate"),
        ({"crop": 0.8}, "--crop"),
        ({"translate": 2}, "--translate"),
        ({"erase": 1.5}, "--erase"),
        ({"cutmix": 2.0}, "--cutmix"),
        ({"color_jitter": -0.1}, "--color-jitter"),
    ],
)
def test_out_of_range_values_name_the_flag(values, flag):
    with pytest.raises(UsageError, match=flag):
        from_dict(AugmentConfig, values, where="augment")


def test_mixup_and_cutmix_together_are_refused():
    with pytest.raises(UsageError, match="--mixup or --cutmix"):
        AugmentConfig(mixup=0.2, cutmix=1.0)


def test_train_config_round_trips_augmentation_through_json():
    augment = AugmentConfig(preset=AugmentPreset.strong, flip=Flip.both, mixup=0.4)
    config = TrainConfig(data=DataConfig(dataset="digits"), augment=augment)
    restored = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config and restored.augment.flip is Flip.both


def test_unknown_augment_keys_and_values_are_refused():
    values = TrainConfig(data=DataConfig(dataset="digits")).to_dict()
    with pytest.raises(UsageError, match="rotation"):
        TrainConfig.from_dict({**values, "augment": {"rotation": 10}})
    with pytest.raises(UsageError, match="none, horizontal, vertical, both"):
        TrainConfig.from_dict({**values, "augment": {"flip": "sideways"}})


def test_configs_saved_before_augmentation_existed_still_load():
    values = TrainConfig(data=DataConfig(dataset="digits")).to_dict()
    del values["augment"]
    assert TrainConfig.from_dict(values).augment == AugmentConfig()


def test_auto_gives_single_channel_and_small_images_rotations_without_flips():
    from imgcls_cli.augment.policy import SMALL_PRESET

    for channels, size in [(1, (64, 64)), (3, (32, 32))]:
        resolved, reason = resolve_augment_with_reason(AugmentConfig(), None, channels, size)
        assert resolved.preset == SMALL_PRESET and resolved.flip == Flip.none
        assert resolved.fill == FillMode.constant
        assert (resolved.rotate, resolved.translate, resolved.zoom) == (10.0, 0.0, 0.0)
        assert reason.startswith("auto: ") and "no flips" in reason
    assert "single-channel" in resolve_augment_with_reason(AugmentConfig(), None, 1, (64, 64))[1]
    assert (
        "small images (32x32)" in resolve_augment_with_reason(AugmentConfig(), None, 3, (32, 32))[1]
    )


@pytest.mark.parametrize("drop, flips", [(None, True), (0.1, True), (0.4, False)])
def test_auto_flips_colour_photos_unless_a_mirror_changes_their_classes(drop, flips):
    check = None if drop is None else (lambda: drop)
    resolved, reason = resolve_augment_with_reason(AugmentConfig(), None, 3, (64, 64), check)
    assert resolved.preset == AugmentPreset.standard
    assert resolved.flip == (Flip.horizontal if flips else Flip.none), reason
    assert resolved.rotate > 0 and resolved.fill == FillMode.reflect


def test_auto_runs_the_mirror_check_only_for_colour_photos():
    def check():
        raise AssertionError("checked")

    resolve_augment(AugmentConfig(), None, 1, (64, 64), check)
    resolve_augment(AugmentConfig(), None, 3, (28, 28), check)
    resolve_augment(AugmentConfig(preset=AugmentPreset.standard), None, 3, (64, 64), check)
    with pytest.raises(AssertionError, match="checked"):
        resolve_augment(AugmentConfig(preset=AugmentPreset.auto), None, 3, (64, 64), check)


def test_a_named_preset_or_a_flag_wins_over_auto():
    given = resolve_augment_with_reason(
        AugmentConfig(preset=AugmentPreset.standard), None, 1, (28, 28)
    )
    assert given[0].flip == Flip.horizontal and given[1] == "--augment standard"
    flipped, reason = resolve_augment_with_reason(
        AugmentConfig(flip=Flip.horizontal), None, 1, (28, 28)
    )
    assert flipped.flip == Flip.horizontal and reason.endswith("; given: --flip")
    assert (
        resolve_augment(AugmentConfig(flip=Flip.none), None, 3, (64, 64), lambda: 0.0).flip
        == Flip.none
    )
