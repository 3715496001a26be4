"""The two decoders of folder images agree: TensorFlow's, in the graph, for plain files, and
PIL's (load_image) for everything else; and which files count as plain."""

import numpy as np
import pytest
from PIL import Image

from imgcls_cli.data.images import check_image, decode_plain, load_image


def photo(mode: str) -> Image.Image:
    """A crop of a real photo that ships with scikit-learn (china.jpg)."""
    from sklearn.datasets import load_sample_image

    return Image.fromarray(load_sample_image("china.jpg")[100:228, 200:360]).convert(mode)


def graph_decode(path, channels, target=None):
    import tensorflow as tf

    facts = check_image(path)
    content = tf.io.read_file(str(path))
    return decode_plain(content, (facts.height, facts.width), channels, target).numpy()


@pytest.mark.parametrize("kind", ["PNG", "JPEG", "BMP"])
@pytest.mark.parametrize("mode", ["L", "RGB"])
@pytest.mark.parametrize("channels", [1, 3])
def test_graph_and_pil_decoders_agree_on_plain_files(tmp_path, kind, mode, channels):
    path = tmp_path / f"photo.{kind.lower()}"
    photo(mode).save(path, format=kind)
    assert check_image(path).plain
    by_pil = load_image(path, channels).astype(int)
    by_graph = graph_decode(path, channels).astype(int)
    assert by_graph.shape == by_pil.shape == (128, 160, channels)
    assert np.abs(by_graph - by_pil).max() <= 1  # the same pixels, to a grey level


def test_jpegs_decode_at_the_largest_scale_that_keeps_the_target_size(tmp_path):
    path = tmp_path / "photo.jpg"
    photo("RGB").save(path, quality=95)  # 160 wide, 128 high
    for target, expected in [((128, 160), (128, 160)), ((60, 70), (64, 80)), ((16, 20), (16, 20))]:
        assert graph_decode(path, 3, target).shape[:2] == expected
    full = graph_decode(path, 3)
    quarter = graph_decode(path, 3, (32, 40)).astype(float)
    # A 1/4-scale decode is close to the full image averaged over 4x4 blocks.
    blocks = full.reshape(32, 4, 40, 4, 3).mean(axis=(1, 3))
    assert np.abs(quarter - blocks).mean() < 3


@pytest.mark.parametrize(
    "make, why",
    [
        (lambda p: photo("CMYK").save(p, format="JPEG"), "CMYK"),
        (lambda p: photo("RGBA").save(p, format="PNG"), "alpha"),
        (lambda p: photo("P").save(p, format="PNG"), "palette"),
        (lambda p: photo("I;16").save(p, format="PNG"), "16-bit"),
        (lambda p: photo("RGB").save(p, format="GIF"), "GIF"),
    ],
)
def test_files_that_need_more_than_tensorflow_take_pil(tmp_path, make, why):
    path = tmp_path / "image.png"
    make(path)
    assert not check_image(path).plain, why


def test_an_exif_rotated_jpeg_takes_pil(tmp_path):
    image = photo("RGB")
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° when shown
    image.save(tmp_path / "rotated.jpg", exif=exif)
    image.save(tmp_path / "upright.jpg")
    assert not check_image(tmp_path / "rotated.jpg").plain
    assert check_image(tmp_path / "upright.jpg").plain
    assert load_image(tmp_path / "rotated.jpg").shape == (160, 128, 3)  # turned by PIL
