"""--augment auto on real runs: the choice and its reason reach the console and config.json."""

import json

import numpy as np
from conftest import make_class_folder, write_image

from imgcls_cli import api
from imgcls_cli.reporting import SilentReporter


def arrow_folder(root, per_class=40, size=40):
    """Colour images of a triangle pointing left or right, at random heights and colours."""
    rng = np.random.default_rng(0)
    rows, columns = np.mgrid[0:size, 0:size]
    for name in ("left", "right"):
        for i in range(per_class):
            image = rng.integers(0, 256, 3) + rng.normal(0, 15, (size, size, 3))
            top = int(rng.integers(4, size - 20))
            span = np.abs(rows - (top + 8)) <= (columns - 8) * 8 // 24  # points left
            span &= (columns >= 8) & (columns < 32)
            if name == "right":
                span = span[:, ::-1]
            image[span] = rng.integers(0, 256, 3)
            write_image(root / name / f"{i}.png", np.clip(image, 0, 255).astype(np.uint8))
    return root


class Recorder(SilentReporter):
    def __init__(self):
        self.lines = []

    def info(self, message):
        self.lines.append(message)


def auto_choice(run):
    return json.loads((run.path / "config.json").read_text())["resolved"]["augment_choice"]


def test_auto_drops_flips_for_classes_a_mirror_swaps(tmp_path):
    reporter = Recorder()
    run = api.train(
        data=arrow_folder(tmp_path / "arrows"), epochs=1, output=tmp_path / "run", reporter=reporter
    )
    choice = auto_choice(run)
    assert choice.startswith("auto: ") and "no flips" in choice
    resolved = json.loads((run.path / "config.json").read_text())["resolved"]["augment"]
    assert resolved["flip"] == "none" and resolved["preset"] == "standard"
    assert any(choice in line for line in reporter.lines if line.startswith("Augmentation:"))


def test_auto_on_small_and_tiny_colour_folders(tmp_path):
    small = make_class_folder(tmp_path / "small", per_class=8, size=24)
    run = api.train(data=small, epochs=1, output=tmp_path / "r1")
    assert auto_choice(run) == "auto: small images (24x24): rotations up to 10°, no flips"
    tiny = make_class_folder(tmp_path / "tiny", per_class=8, size=16)
    run = api.train(data=tiny, epochs=1, output=tmp_path / "r2")
    assert auto_choice(run) == "auto: tiny images (16x16): no augmentation"


def test_the_flip_check_is_reported_as_it_came_out():
    from imgcls_cli.augment.policy import choose

    def reason(drop):
        return choose("photos", 3, (96, 96), lambda: drop).reason

    assert "mirroring cost no class any accuracy" in reason(0.0)
    assert "mirroring cost no class any accuracy" in reason(-0.02)  # mirrored copies helped
    assert "cost a class at most 3% of its accuracy" in reason(0.03)
