"""One file, one answer: every path that feeds the model a file (training's pipeline,
evaluate, export's parity and calibration data, predict one file or many, explain) gives
it the very same input array, and training's final test metrics are evaluate's.

The folder holds what users' folders hold: large photos (which decode at a reduced JPEG
scale), a PNG, an EXIF-rotated JPEG, a CMYK JPEG and a grayscale JPEG."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgcls_cli import api
from imgcls_cli.config import EvalSplit, EvaluateConfig
from imgcls_cli.reporting import SilentReporter

pytestmark = pytest.mark.slow  # trains a tiny model

IMAGE_SIZE = 48


def photo(name: str, box: tuple[int, int, int, int], size=(1024, 768)) -> Image.Image:
    """A crop of one of scikit-learn's two photos, enlarged as a camera's file would be."""
    from sklearn.datasets import load_sample_image

    return Image.fromarray(load_sample_image(name)).crop(box).resize(size, Image.BICUBIC)


def write_kinds(folder: Path, source: str, seed: int) -> None:
    """One file of each kind users' folders hold, cut from `source`."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)

    def crop(size=(1024, 768)) -> Image.Image:
        left, top = int(rng.integers(0, 240)), int(rng.integers(0, 120))
        return photo(source, (left, top, left + 320, top + 240), size)

    crop().save(folder / "large.jpg", quality=90)
    crop((1600, 1200)).save(folder / "larger.JPG", quality=85)
    crop((300, 200)).save(folder / "small.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: show it rotated a quarter
    crop().save(folder / "rotated.jpg", exif=exif.tobytes())
    crop().convert("CMYK").save(folder / "cmyk.jpg")
    crop().convert("L").save(folder / "gray.jpg")
    crop((400, 300)).save(folder / "scan.tiff", compression="tiff_lzw")  # a scanner's


@pytest.fixture(scope="module")
def photo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("one-answer")
    data = root / "photos"
    for split, seeds in (("train", (1, 2)), ("test", (3,))):
        for name, source in (("china", "china.jpg"), ("flower", "flower.jpg")):
            for seed in seeds:
                write_kinds(data / split / name / f"set{seed}", source, seed)
    run_dir = root / "run"
    api.train(
        data=str(data),
        output=str(run_dir),
        arch="convnet",
        epochs=2,
        batch_size=4,
        image_size=IMAGE_SIZE,
        val_split=0.0,
        seed=3,
    )
    return run_dir, data


def batches_of(split, run) -> np.ndarray:
    from imgcls_cli.data.pipeline import create_batches

    batches = create_batches(split, run.image_size, run.channels, run.num_classes, 3)
    return np.concatenate([images.numpy() for images, _ in batches])


def training_split(run, name: str):
    """The split as training read it: the run's own data options and seed."""
    from imgcls_cli.data.factory import load_source
    from imgcls_cli.data.held_out import trained_on

    config, seed = trained_on(run)
    return load_source(config, seed, SilentReporter()).splits[name]


def test_every_path_feeds_the_model_the_same_pixels(photo_run):
    from imgcls_cli.commands.predict import read_for_model
    from imgcls_cli.data.folder import decode_for_model, model_inputs
    from imgcls_cli.data.held_out import open_data
    from imgcls_cli.rundir.load import load_run

    run_dir, _ = photo_run
    run = load_run(run_dir)
    for split_name in ("test", "train"):  # train: what export calibrates int8 on
        trained = training_split(run, split_name)
        by_training = batches_of(trained, run)
        held_out = open_data(run, EvaluateConfig(split=EvalSplit(split_name)), SilentReporter())
        assert held_out.split.paths == trained.paths
        assert np.array_equal(batches_of(held_out.split, run), by_training)
        paths = trained.paths
        assert {Path(p).name for p in paths} >= {"large.jpg", "cmyk.jpg", "rotated.jpg"}
        batched, unreadable, _ = model_inputs(paths, run.channels, run.image_size, 5)
        assert unreadable == {}
        assert np.array_equal(np.concatenate([b.numpy() for b, _ in batched]), by_training)
        for path, expected in zip(paths, by_training):
            assert np.array_equal(read_for_model(path, run), expected), path  # predict
            assert np.array_equal(decode_for_model(path, run)[1], expected), path  # explain


def test_training_test_metrics_are_evaluates(photo_run):
    run_dir, _ = photo_run
    metrics = json.loads((run_dir / "metrics.json").read_text())["test"]
    report = api.evaluate(str(run_dir), output=str(run_dir.parent / "evaluation"))
    assert report["examples"] == metrics["examples"] == 14  # 7 kinds of file, 2 classes
    assert report["accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-6)
    assert report["loss"] == pytest.approx(metrics["loss"], abs=1e-6)


def test_predict_one_file_or_many_gives_the_same_answer(photo_run):
    from imgcls_cli.commands import predict

    run_dir, data = photo_run
    files = sorted(str(p) for p in (data / "test").rglob("*.*"))
    one_by_one = [api.predict(str(run_dir), [path])[0] for path in files]
    at_once = api.predict(str(run_dir), files)  # more than predict's direct limit
    assert len(files) > predict.DIRECT_LIMIT
    # The same pixels; the model's arithmetic on a batch of one (eager) and of many
    # (compiled) may differ in the last float bits, never in the answer.
    assert [r["label"] for r in at_once] == [r["label"] for r in one_by_one]
    for batched, alone in zip(at_once, one_by_one):
        assert batched["path"] == alone["path"] and batched["error"] is None
        for a, b in zip(batched["top_k"], alone["top_k"]):
            assert a["label"] == b["label"] and a["probability"] == pytest.approx(
                b["probability"], abs=1e-5
            )


def test_a_grayscale_model_sees_colour_files_as_pil_converts_them(tmp_path):
    """Colour files for a 1-channel model: evaluate's pipeline, one file and many agree."""
    from imgcls_cli.data.folder import FileDecoder, model_input, model_inputs
    from imgcls_cli.data.images import load_image, prepare_images

    write_kinds(tmp_path / "kinds", "china.jpg", seed=5)
    paths = sorted(str(p) for p in (tmp_path / "kinds").iterdir())
    size = (IMAGE_SIZE, IMAGE_SIZE)
    batched = np.concatenate([b.numpy() for b, _ in model_inputs(paths, 1, size, 4)[0]])
    decoder, _ = FileDecoder.for_files(paths, 1)
    assert any(not known.facts.grayscale for known in decoder.known.values())
    for path, image in zip(paths, batched):
        assert np.array_equal(model_input(path, 1, size), image), path
        by_pil = prepare_images(load_image(path, 1, size), size, 1).numpy()
        assert np.abs(by_pil.astype(int) - image).max() <= 1, path  # the decoders, a level
