"""`imgcls augment-preview`: the grid's layout and pixels, seeds, sources, bad input."""

import numpy as np
import pytest
from conftest import make_class_folder, write_image

from imgcls_cli.commands.augment_preview import (
    MAX_SIDE,
    GridLayout,
    caption,
    check_picture_size,
    spread_over_classes,
    tile_size,
)
from imgcls_cli.errors import UsageError


def preview(runner, app, *args):
    return runner.invoke(app, ["augment-preview", *args])


def read_png(path):
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def tile(picture, layout, row, column):
    x, y = layout.tile_origin(row, column)
    return picture[y : y + layout.tile_height, x : x + layout.tile_width]


@pytest.fixture
def two_images(tmp_path):
    """Two asymmetric 16x16 RGB files (enlarged 6x to 96 px tiles)."""
    rng = np.random.default_rng(1)
    return [
        write_image(tmp_path / f"{name}.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
        for name in ("left", "right")
    ]


def test_tiles_are_enlarged_by_whole_factors_or_shrunk_to_fit():
    assert tile_size((8, 8)) == (96, 96)
    assert tile_size((28, 28)) == (112, 112)
    assert tile_size((100, 120)) == (100, 120)
    assert tile_size((512, 1024)) == (128, 256)


def test_grid_has_samples_by_variants_plus_one_tiles_of_the_tile_size(runner, cli_app, tmp_path):
    output = tmp_path / "grid.png"
    result = preview(runner, cli_app, "--samples", "3", "--variants", "2", "--output", str(output))
    assert result.exit_code == 0, result.output
    assert str(output) in result.stdout
    picture = read_png(output)
    layout = GridLayout(rows=3, columns=3, tile_height=96, tile_width=96)  # digits are 8x8
    assert picture.shape[:2] == layout.size[::-1]
    for row in range(3):
        for column in range(3):
            part = tile(picture, layout, row, column)
            # An enlarged 8x8 digit: every 12x12 block is one flat grey level.
            blocks = part.reshape(8, 12, 8, 12, 3)
            assert (blocks == blocks[:, :1, :, :1]).all()
            assert part.max() > 0  # not an empty slot


def test_none_leaves_every_variant_identical_to_the_original(runner, cli_app, tmp_path, two_images):
    output = tmp_path / "none.png"
    files = [str(path) for path in two_images]
    result = preview(
        runner, cli_app, *files, "--augment", "none", "--variants", "3", "--output", str(output)
    )
    assert result.exit_code == 0, result.output
    picture = read_png(output)
    layout = GridLayout(rows=2, columns=4, tile_height=96, tile_width=96)
    for row, path in enumerate(two_images):
        original = read_png(path)
        enlarged = np.kron(original, np.ones((6, 6, 1), dtype=np.uint8))
        for column in range(4):
            np.testing.assert_array_equal(tile(picture, layout, row, column), enlarged)


def test_flip_variants_are_exact_mirrors_of_the_original(runner, cli_app, tmp_path, two_images):
    output = tmp_path / "flip.png"
    args = ["--augment", "none", "--flip", "horizontal", "--variants", "8", "--seed", "5"]
    result = preview(runner, cli_app, str(two_images[0]), *args, "--output", str(output))
    assert result.exit_code == 0, result.output
    picture = read_png(output)
    layout = GridLayout(rows=1, columns=9, tile_height=96, tile_width=96)
    original = tile(picture, layout, 0, 0)
    variants = [tile(picture, layout, 0, column) for column in range(1, 9)]
    mirrored = [np.array_equal(v, original[:, ::-1]) for v in variants]
    assert all(m or np.array_equal(v, original) for m, v in zip(mirrored, variants))
    assert any(mirrored)


def test_same_seed_same_grid_different_seed_different_grid(runner, cli_app, tmp_path):
    pictures = {}
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        output = tmp_path / f"{name}.png"
        args = ["--dataset", "digits", "--augment", "strong", "--seed", seed]
        result = preview(runner, cli_app, *args, "--output", str(output))
        assert result.exit_code == 0, result.output
        pictures[name] = read_png(output)
    np.testing.assert_array_equal(pictures["a"], pictures["b"])
    assert not np.array_equal(pictures["a"], pictures["c"])


def test_folder_preview_spreads_rows_over_the_classes(runner, cli_app, tmp_path):
    root = make_class_folder(tmp_path / "shapes", classes=("a", "b", "c", "d"), per_class=6)
    output = tmp_path / "folder.png"
    result = preview(
        runner, cli_app, "--data", str(root), "--samples", "4", "--output", str(output)
    )
    assert result.exit_code == 0, result.output
    picture = read_png(output)
    layout = GridLayout(rows=4, columns=6, tile_height=96, tile_width=96)  # 16 px, x6
    # Class k is bright in quadrant k: the four originals show four different quadrants.
    bright = set()
    for row in range(4):
        original = tile(picture, layout, row, 0)
        quadrants = [
            original[r * 48 : (r + 1) * 48, c * 48 : (c + 1) * 48].mean()
            for r, c in ((0, 0), (0, 1), (1, 0), (1, 1))
        ]
        bright.add(int(np.argmax(quadrants)))
    assert bright == {0, 1, 2, 3}


def test_spread_over_classes_takes_the_classes_in_turn():
    labels = np.array([0] * 10 + [1] * 3 + [2] * 1)
    chosen = spread_over_classes(labels, 5, seed=0)
    assert len(set(chosen)) == 5
    assert set(labels[chosen[:3]]) == {0, 1, 2}
    assert len(spread_over_classes(labels, 50, seed=0)) == 14


def test_captions_name_the_class_or_the_mix():
    names = ["cat", "dog", "fox"]
    assert caption(np.array([0.0, 1.0, 0.0]), names) == "dog"
    assert caption(np.array([0.62, 0.0, 0.38]), names) == "cat 62% + fox 38%"


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--samples", "0"], 2, "--samples must be at least 1"),
        (["--variants", "0"], 2, "--variants must be at least 1"),
        (["--variants", "100000"], 2, "--variants must be at most 64; got 100000"),
        (["--samples", "65"], 2, "--samples must be at most 64"),
        (["--rotate", "400"], 2, "--rotate must be between 0 and 180"),
        (["--output", "grid.jpg"], 2, "must name a .png file"),
        (["--mixup", "0.2", "--cutmix", "1"], 2, "--mixup or --cutmix"),
        (["--dataset", "digitz"], 2, "Did you mean 'digits'?"),
    ],
)
def test_bad_input_gives_one_line_and_exit_code(
    runner, cli_app, tmp_path, monkeypatch, args, code, message
):
    monkeypatch.chdir(tmp_path)  # where the default --output would go
    result = preview(runner, cli_app, *args)
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0]
    assert not (tmp_path / "augment-preview.png").exists()


def test_unknown_preset_lists_the_valid_ones(runner, cli_app):
    result = preview(runner, cli_app, "--augment", "heavy")
    assert result.exit_code == 2
    assert "heavy" in result.output and "standard" in result.output


def test_unreadable_image_and_unwritable_output_fail_cleanly(
    runner, cli_app, tmp_path, two_images, monkeypatch
):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    output = tmp_path / "out.png"
    result = preview(runner, cli_app, str(two_images[0]), str(broken), "--output", str(output))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip() == (
        f"Error: Cannot read image {broken}: not an image (format not recognised); give PNG, "
        "JPEG, BMP, GIF, WebP or TIFF files."
    )
    # Refused by the header check before TensorFlow, with the reason predict gives.
    from imgcls_cli.data import images

    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 10)
    result = preview(runner, cli_app, str(two_images[0]), "--output", str(output))
    assert result.exit_code == 1 and "above imgcls' limit" in result.output
    assert "give PNG" not in result.output and not output.exists()
    monkeypatch.undo()
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    result = preview(runner, cli_app, str(two_images[0]), "--output", str(blocker / "grid.png"))
    assert result.exit_code == 1 and "Cannot write" in result.output
    assert not output.exists()


def test_files_and_dataset_together_are_refused(runner, cli_app, two_images):
    result = preview(runner, cli_app, str(two_images[0]), "--dataset", "digits")
    assert result.exit_code == 2 and "not both" in result.output


def test_help_does_not_load_tensorflow():
    from test_startup import loaded_heavy_modules

    code = """
from imgcls_cli.cli.app import app
try:
    app(["augment-preview", "--help"])
except SystemExit as exit:
    assert exit.code == 0, exit.code
"""
    assert loaded_heavy_modules(code) == []


def test_grid_over_the_side_limit_is_refused_before_drawing():
    largest = GridLayout(rows=64, columns=65, tile_height=96, tile_width=96)  # 8x8 digits
    check_picture_size(largest)
    assert max(largest.size) <= MAX_SIDE
    with pytest.raises(UsageError, match=r"17036 x 18842 pixels, over the limit of 16384"):
        check_picture_size(GridLayout(rows=64, columns=65, tile_height=256, tile_width=256))


def test_large_images_with_many_variants_are_refused_in_one_line(runner, cli_app, tmp_path):
    image = write_image(tmp_path / "big.png", np.zeros((32, 32, 3), np.uint8))
    output = tmp_path / "grid.png"
    args = ["--image-size", "300", "--variants", "64", "--output", str(output)]  # 256 px tiles
    result = preview(runner, cli_app, str(image), *args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert "over the limit of 16384 a side" in lines[-1] and not output.exists()


def test_a_png_that_is_not_a_preview_is_never_overwritten(runner, cli_app, tmp_path):
    import numpy as np
    from conftest import write_image

    output = tmp_path / "holiday.png"
    write_image(output, np.zeros((4, 4, 3), np.uint8))
    before = output.read_bytes()
    result = runner.invoke(cli_app, ["augment-preview", "--output", str(output)])
    assert result.exit_code == 2 and "not drawn by augment-preview" in result.output
    assert output.read_bytes() == before
    preview = tmp_path / "preview.png"
    for _ in range(2):  # an earlier preview is ours to replace
        result = runner.invoke(cli_app, ["augment-preview", "--output", str(preview)])
        assert result.exit_code == 0, result.output


def test_the_picture_is_not_drawn_inside_the_image_folder(runner, cli_app, tmp_path, monkeypatch):
    """A PNG inside the folder would be read as one of its images; the default output
    (in the current folder) is refused too when that folder is the data."""
    folder = make_class_folder(tmp_path / "shapes", per_class=2, size=8)
    before = sorted(folder.rglob("*"))
    result = preview(
        runner, cli_app, "--data", str(folder), "--output", str(folder / "a" / "p.png")
    )
    assert result.exit_code == 2 and "overlaps the data folder" in result.output, result.output
    monkeypatch.chdir(folder)
    result = preview(runner, cli_app, "--data", ".")
    assert result.exit_code == 2 and "overlaps the data folder" in result.output, result.output
    assert sorted(folder.rglob("*")) == before


def test_a_mix_too_long_for_its_tile_goes_on_two_lines_uncut():
    from PIL import Image, ImageDraw

    from imgcls_cli.commands.augment_preview import caption_lines, load_font

    draw, font = ImageDraw.Draw(Image.new("RGB", (10, 10))), load_font(12)
    assert caption_lines(draw, "circle", font, 96) == ["circle"]
    mix = "circle 72% + square 28%"
    assert draw.textlength(mix, font=font) > 96  # too long for one line of a 96-pixel tile
    assert caption_lines(draw, mix, font, 96) == ["circle 72%", "+ square 28%"]
    assert caption_lines(draw, mix, font, 400) == [mix]
    [cut] = caption_lines(draw, "a_very_long_file_name_of_a_photo.jpg", font, 96)
    assert cut.endswith("…") and draw.textlength(cut, font=font) <= 96
    # Names too long for a line of their own are cut; their shares stay.
    long = "a_rather_long_class_name 63% + another_very_long_name 37%"
    first, second = caption_lines(draw, long, font, 96)
    assert first.startswith("a_rather") and first.endswith("… 63%")
    assert second.startswith("+ another") and second.endswith("… 37%")
    assert max(draw.textlength(line, font=font) for line in (first, second)) <= 96
