"""The two decoders of folder images agree: TensorFlow's, in the graph, for plain files, and
PIL's (load_image) for everything else; and which files count as plain."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from imgcls_cli.data.folder import decode_for_model
from imgcls_cli.data.images import check_image, decode_plain, load_image


def photo(mode: str) -> Image.Image:
    """A crop of a real photo that ships with scikit-learn (china.jpg)."""
    from sklearn.datasets import load_sample_image

    return Image.fromarray(load_sample_image("china.jpg")[100:228, 200:360]).convert(mode)


def graph_decode(path, channels, target=None):
    import tensorflow as tf

    facts = check_image(path)
    content = tf.io.read_file(str(path))
    return decode_plain(content, facts, channels, target).numpy()


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


@pytest.mark.parametrize(
    "stored, jpeg, target, route",
    [
        ((768, 1024), True, (224, 224), (1, "area")),  # 1/2: 384x512, at least 224
        ((768, 1024), True, (96, 96), (3, "area")),  # 1/8: 96x128
        ((768, 1024), False, (224, 224), (4, "area")),  # PNGs decode at full size
        ((100, 120), True, (100, 120), (0, "none")),
        ((100, 120), True, (160, 160), (0, "bilinear")),
        ((100, 300), True, (160, 160), (0, "antialiased")),  # shrinks on one side only
        ((768, 1024), True, None, (0, "none")),  # kept as stored
        ((767, 1023), True, (191, 255), (2, "area")),  # 1/4 rounds up to 192x256
    ],
)
def test_routes_come_from_the_header(stored, jpeg, target, route):
    from imgcls_cli.data.images import RESIZE_METHODS, ImageFacts, plain_route

    facts = ImageFacts(stored[1], stored[0], False, True, jpeg)
    assert plain_route(facts, target) == (route[0], RESIZE_METHODS.index(route[1]))


def test_a_mixed_folder_streams_the_pixels_each_file_decodes_to_alone(tmp_path):
    """Every route of the folder stream (JPEG scales, other formats, each resize, PIL
    files) gives what decoding the file by itself gives, where nothing is known of it."""
    import tensorflow as tf

    from imgcls_cli.config import CacheMode, DataConfig
    from imgcls_cli.data.folder import load_folder
    from imgcls_cli.data.images import prepare_images
    from imgcls_cli.data.pipeline import create_batches

    big = photo("RGB").resize((320, 256))
    rotated = photo("RGB")
    exif = rotated.getexif()
    exif[0x0112] = 6
    files = {
        "a/big.jpg": lambda p: big.save(p, quality=90),  # 1/4 scale, then area
        "a/small.jpg": lambda p: photo("RGB").resize((40, 30)).save(p),  # bilinear
        "a/wide.png": lambda p: photo("RGB").resize((200, 20)).save(p),  # antialiased
        "b/gray.png": lambda p: photo("L").resize((64, 48)).save(p),  # gray in RGB, area
        "b/exact.bmp": lambda p: photo("RGB").resize((48, 40)).save(p),  # no resize
        "b/cmyk.jpg": lambda p: photo("CMYK").save(p),  # PIL
        "b/rotated.jpg": lambda p: rotated.save(p, exif=exif),  # PIL, turned
    }
    for name, write in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        write(tmp_path / name)
    config = DataConfig(data=str(tmp_path), val_split=0, test_split=0, cache=CacheMode.none)
    split = load_folder(tmp_path, config, seed=0).splits["train"]
    target = (40, 48)
    streamed = np.concatenate(
        [images.numpy() for images, _ in create_batches(split, target, 3, 2, 3)]
    )
    for image, path in zip(streamed, split.paths):
        facts = check_image(Path(path))
        alone = graph_decode(path, 3, target) if facts.plain else load_image(path, 3, target)
        expected = prepare_images(tf.constant(alone), target, 3).numpy()
        assert np.array_equal(image, expected), path
        # predict, explain and serve decode by the same body: the very same pixels.
        _, served = decode_for_model(path, SimpleNamespace(channels=3, image_size=target))
        assert np.array_equal(served, image), path
    assert len(streamed) == len(files)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_pil_decodes_jpegs_at_the_scale_tensorflow_uses(tmp_path, mode):
    path = tmp_path / "photo.jpg"
    photo(mode).save(path, quality=95)  # 160 wide, 128 high
    channels = 1 if mode == "L" else 3
    for target, shape in [((32, 40), (32, 40)), ((60, 70), (64, 80)), ((100, 100), (128, 160))]:
        by_pil = load_image(path, channels, target).astype(int)
        by_graph = graph_decode(path, channels, target).astype(int)
        assert by_pil.shape == by_graph.shape == (*shape, channels)
        assert np.abs(by_pil - by_graph).max() <= 1


def test_a_rotated_jpeg_reduces_by_its_upright_size(tmp_path):
    image = photo("RGB")  # stored 160 wide, 128 high; shown 128 wide, 160 high
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(tmp_path / "rotated.jpg", exif=exif)
    path = tmp_path / "rotated.jpg"
    assert load_image(path, 3, (60, 40)).shape == (80, 64, 3)  # 1/2, upright
    # 70 wide upright is 70 high as stored: 1/2 would leave it 64 wide, so no reduction.
    assert load_image(path, 3, (36, 70)).shape == (160, 128, 3)


def test_a_camera_mpo_is_a_plain_jpeg_read_by_its_first_picture(tmp_path):
    path = tmp_path / "stereo.jpg"
    first, second = photo("RGB"), photo("L").convert("RGB")
    first.save(path, format="MPO", save_all=True, append_images=[second], quality=95)
    facts = check_image(path)
    assert facts.plain and facts.jpeg
    for target in (None, (32, 40)):  # full size, and 1/4 scale
        by_graph = graph_decode(path, 3, target).astype(int)
        by_pil = load_image(path, 3, target).astype(int)
        assert by_graph.shape == by_pil.shape
        assert np.abs(by_graph - by_pil).max() <= 1
    decoded = load_image(path, 3).astype(int)
    to_first, to_second = (np.abs(decoded - np.asarray(p)).mean() for p in (first, second))
    assert to_first < to_second / 2  # the first picture, not the second
