"""The shared decoder and resize: every image mode ends up as uint8 HxWxC."""

import numpy as np
import pytest
from PIL import Image

from imgcls_cli.data.images import is_image_file, load_image, read_image_header


def save(tmp_path, name, image, **kwargs):
    path = tmp_path / name
    image.save(path, **kwargs)
    return path


def test_rgba_png_becomes_rgb(tmp_path):
    rgba = np.zeros((5, 6, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 255
    array = load_image(save(tmp_path, "a.png", Image.fromarray(rgba, "RGBA")))
    assert array.shape == (5, 6, 3) and array.dtype == np.uint8
    assert (array[..., 0] == 200).all()


def test_grayscale_stays_single_channel_unless_asked(tmp_path):
    path = save(tmp_path, "g.png", Image.fromarray(np.full((4, 4), 77, np.uint8), "L"))
    assert load_image(path).shape == (4, 4, 1)
    rgb = load_image(path, channels=3)
    assert rgb.shape == (4, 4, 3) and (rgb == 77).all()


def test_rgb_to_one_channel(tmp_path):
    path = save(tmp_path, "c.jpg", Image.new("RGB", (8, 8), (255, 255, 255)))
    gray = load_image(path, channels=1)
    assert gray.shape == (8, 8, 1) and gray.min() > 250


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 32896, 65535]], dtype=np.uint16)
    path = save(tmp_path, "d.png", Image.fromarray(values))
    array = load_image(path)
    assert array[..., 0].tolist() == [[0, 128, 255]]


def test_palette_and_cmyk_images_decode_to_rgb(tmp_path):
    palette = Image.new("P", (3, 3), 1)
    palette.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    assert load_image(save(tmp_path, "p.gif", palette))[0, 0].tolist() == [10, 20, 30]
    cmyk = save(tmp_path, "k.jpg", Image.new("CMYK", (4, 4), (0, 0, 0, 0)))
    array = load_image(cmyk)
    assert array.shape == (4, 4, 3) and array.min() > 240


def test_exif_rotation_is_applied(tmp_path):
    image = Image.new("RGB", (6, 3))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    path = save(tmp_path, "r.jpg", image, exif=exif.tobytes())
    assert load_image(path).shape == (6, 3, 3)


def test_webp_bmp_and_tiff_decode(tmp_path):
    for name in ("w.webp", "b.bmp", "t.tif", "T.TIFF"):
        path = save(tmp_path, name, Image.new("RGB", (5, 5), (10, 200, 30)))
        assert is_image_file(path) and load_image(path).shape == (5, 5, 3)
        if path.suffix != ".webp":  # WebP is lossy
            assert load_image(path)[0, 0].tolist() == [10, 200, 30]
    # A 16-bit grayscale scan (microscopes, X-rays) is scaled to 8 bits, not clipped.
    deep = Image.fromarray(np.full((4, 4), 65535, np.uint16))
    path = save(tmp_path, "deep.tif", deep)
    assert load_image(path).max() == 255 and load_image(path).min() == 255


@pytest.mark.parametrize(
    "content, reason",
    [(b"", "empty"), (b"this is not an image", "cannot identify")],
)
def test_unreadable_files_raise(tmp_path, content, reason):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(Exception, match=reason):
        read_image_header(path)


def test_truncated_jpeg_is_caught(tmp_path):
    rng = np.random.default_rng(0)
    path = save(tmp_path, "t.jpg", Image.fromarray(rng.integers(0, 255, (64, 64, 3), np.uint8)))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(OSError):
        read_image_header(path)


def test_is_image_file_by_extension_any_case(tmp_path):
    from pathlib import Path

    assert is_image_file(Path("a/B.JPG")) and is_image_file(Path("x.WebP"))
    assert not is_image_file(Path("notes.txt")) and not is_image_file(Path(".hidden.png"))


def test_prepare_images_resizes_and_converts_channels():
    import tensorflow as tf

    from imgcls_cli.data.images import prepare_images

    gray = tf.fill([10, 20, 1], tf.constant(100, tf.uint8))
    out = prepare_images(gray, (5, 5), 3)
    assert out.shape == (5, 5, 3) and out.dtype == tf.uint8
    assert int(tf.reduce_min(out)) == 100 and int(tf.reduce_max(out)) == 100
    same = prepare_images(tf.constant(np.arange(48, dtype=np.uint8).reshape(4, 4, 3)), (4, 4), 3)
    assert same.numpy().tolist() == np.arange(48).reshape(4, 4, 3).tolist()


def png_header_only(path, width, height):
    """A 1-bit PNG whose header claims width x height: opening it costs nothing."""
    import struct
    import zlib

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    ihdr, idat = chunk(b"IHDR", header), chunk(b"IDAT", zlib.compress(b"\0" * 8))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + ihdr + idat + chunk(b"IEND", b""))
    return path


def test_large_image_below_the_pixel_limit_decodes_without_warnings(tmp_path, recwarn):
    # 100 megapixels: above PIL's default limit (89), below imgcls' (268).
    path = save(tmp_path, "big.png", Image.new("1", (10_000, 10_000)))
    assert read_image_header(path) == (10_000, 10_000, True)
    assert not [w for w in recwarn if "DecompressionBomb" in w.category.__name__]


def test_image_above_the_pixel_limit_is_refused_naming_its_size(tmp_path):
    from imgcls_cli.data.images import ImageTooLargeError, unreadable_reason

    path = png_header_only(tmp_path / "huge.png", 20_000, 20_000)
    message = "20000x20000 is 400 megapixels, above imgcls' limit of 268 megapixels"
    for read in (read_image_header, load_image):
        with pytest.raises(ImageTooLargeError, match=message) as raised:
            read(path)
        assert unreadable_reason(path, raised.value).startswith(message)


def test_shrinking_averages_the_area_each_pixel_covers_and_growing_is_bilinear():
    import tensorflow as tf

    from imgcls_cli.data.images import prepare_images

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (12, 18, 3)).astype(np.uint8)
    shrunk = prepare_images(image, (4, 6), 3).numpy().astype(float)
    blocks = image.astype(float).reshape(4, 3, 6, 3, 3).mean(axis=(1, 3))
    assert np.abs(shrunk - blocks).max() <= 0.5  # the exact block means, rounded
    # 12 → 5 rows: each output row covers 2.4 input rows, weighted by overlap.
    column = np.arange(12, dtype=np.uint8).reshape(12, 1, 1) * 20
    five = prepare_images(np.repeat(column, 4, axis=1), (5, 4), 1).numpy()[:, 0, 0]
    rows = np.arange(12) * 20.0
    expected = [
        (rows[0] + rows[1] + 0.4 * rows[2]) / 2.4,
        (0.6 * rows[2] + rows[3] + 0.8 * rows[4]) / 2.4,
    ]
    assert np.abs(five[:2] - np.round(expected)).max() <= 1
    grown = prepare_images(image, (24, 36), 3).numpy()
    plain = tf.image.resize(image, (24, 36), method="bilinear").numpy()
    assert np.abs(grown.astype(float) - np.round(plain)).max() <= 1


@pytest.mark.parametrize("kind", ["JPEG", "PNG"])
def test_the_scan_reads_headers_without_decoding_pixels(tmp_path, monkeypatch, kind):
    from PIL import ImageFile

    from imgcls_cli.data.images import check_image

    rng = np.random.default_rng(0)
    path = save(
        tmp_path, f"p.{kind.lower()}", Image.fromarray(rng.integers(0, 255, (40, 30, 3), np.uint8))
    )

    def no_decoding(self):
        raise AssertionError("decoded the pixels")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    facts = check_image(path)
    assert (facts.width, facts.height, facts.grayscale, facts.plain) == (30, 40, False, True)
    with pytest.raises(AssertionError, match="decoded the pixels"):
        check_image(path, decode=True)


@pytest.mark.parametrize("kind", ["JPEG", "PNG"])
def test_the_header_scan_catches_truncated_files_and_keeps_files_with_trailing_data(tmp_path, kind):
    from imgcls_cli.data.images import check_image, unreadable_reason

    rng = np.random.default_rng(0)
    path = save(
        tmp_path, f"p.{kind.lower()}", Image.fromarray(rng.integers(0, 255, (64, 64, 3), np.uint8))
    )
    whole = path.read_bytes()
    path.write_bytes(whole + bytes(5000))  # e.g. the video a phone appends to a photo
    assert check_image(path).plain
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(OSError) as raised:
        check_image(path)
    assert unreadable_reason(path, raised.value) == "truncated image (the file ends early)"
