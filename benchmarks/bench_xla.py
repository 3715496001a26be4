"""XLA for the training step (issue 17): images/s of the same Keras model trained with and
without `jit_compile` on its forward and backward pass, interleaved, on whatever device
TensorFlow picks (CPU here; the GPU in gpu_check.sh). imgcls has no --xla option: it is
added only if this shows a gain.

    python benchmarks/bench_xla.py [--arch convnet] [--size 28] [--channels 1] [--rounds 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import print_table, save

BATCH = 64
BATCHES = 40


def images_per_second(
    arch: str, size: int, channels: int, jit: bool, repeats: int = 3, batches: int = BATCHES
) -> float:
    """The best of `repeats` passes over `batches` cached batches, after 3 warm-up steps."""
    import keras
    import tensorflow as tf

    from imgcls_cli.models import create_model

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (BATCH * batches, size, size, channels)).astype("float32")
    labels = keras.utils.to_categorical(rng.integers(0, 10, BATCH * batches), 10)
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(BATCH).cache()
    keras.utils.set_random_seed(0)
    model = create_model(arch, (size, size, channels), 10)
    optimizer = keras.optimizers.Adam()
    loss_fn = keras.losses.CategoricalCrossentropy()

    def gradients(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        return tape.gradient(loss, model.trainable_variables)

    compiled = tf.function(gradients, jit_compile=jit)

    @tf.function
    def step(x, y):
        optimizer.apply_gradients(zip(compiled(x, y), model.trainable_variables))

    for batch in data.take(3):
        step(*batch)
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for batch in data:
            step(*batch)
        rates.append(BATCH * batches / (time.perf_counter() - started))
    return max(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=["convnet", "resnet8"])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    import tensorflow as tf

    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    figures, rows = {"device": device}, []
    for arch in args.arch:
        runs = {"plain": [], "xla": []}
        for _ in range(args.rounds):  # interleaved, so machine noise hits both
            for name in runs:
                runs[name].append(images_per_second(arch, args.size, args.channels, name == "xla"))
        plain, xla = max(runs["plain"]), max(runs["xla"])
        figures[arch] = {**runs, "ratio": xla / plain}
        rows.append(
            (
                f"{arch} {args.size}x{args.size}x{args.channels} on {device}",
                f"plain {plain:,.0f} img/s, XLA {xla:,.0f} img/s: {xla / plain:.2f}x",
            )
        )
    print_table("Training step with and without XLA (best pass)", rows)
    save("xla", figures)


if __name__ == "__main__":
    main()
