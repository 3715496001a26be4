"""Write examples/images/digit-N.png: five handwritten digits from the embedded dataset's
test split (images `make demo` never trained on), upscaled to 32x32 so they are visible.

    .venv/bin/python examples/make_sample_images.py
"""

from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

from imgcls_cli.data.splits import TEST_CARVE_SEED, stratified_carve

OUT = Path(__file__).parent / "images"


def main() -> None:
    digits = load_digits()
    _, test_indices = stratified_carve(digits.target, 0.25, TEST_CARVE_SEED)
    wanted = {0, 3, 5, 7, 9}
    OUT.mkdir(exist_ok=True)
    for index in test_indices:
        label = int(digits.target[index])
        if label in wanted:
            wanted.discard(label)
            pixels = np.round(digits.images[index] * 255 / 16).astype(np.uint8)
            image = Image.fromarray(pixels, "L").resize((32, 32), Image.NEAREST)
            image.save(OUT / f"digit-{label}.png")


if __name__ == "__main__":
    main()
