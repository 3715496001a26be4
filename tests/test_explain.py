"""imgcls explain: Grad-CAM finds the evidence where it is, for from-scratch CNNs and a
fine-tuned backbone, and the command treats files and folders as the others do."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import damaged_png, train_run, write_image

# The images are the benchmark's (benchmarks/bench_explain.py), built by its datasets module.
sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
from real_data import MARKS  # noqa: E402
from real_data import marks as mark_folder  # noqa: E402


def corner_share(heatmaps: np.ndarray) -> np.ndarray:
    """The share of each heatmap's total heat that lies in the bottom-right quadrant."""
    half = heatmaps.shape[1] // 2, heatmaps.shape[2] // 2
    corner = heatmaps[:, half[0] :, half[1] :].sum(axis=(1, 2))
    return corner / np.maximum(heatmaps.sum(axis=(1, 2)), 1e-9)


def image_paths(folder: Path) -> list[str]:
    return sorted(str(path) for path in folder.rglob("*.png"))


@pytest.fixture(scope="module")
def marks(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("marks")
    return {
        "train": mark_folder(root / "train", per_class=50, size=32, seed=0),
        "held": mark_folder(root / "held", per_class=6, size=32, seed=1),
    }


@pytest.fixture(scope="module")
def cnn_runs(marks, tmp_path_factory) -> dict[str, Path]:
    from imgcls_cli.config import AugmentConfig, AugmentPreset

    root = tmp_path_factory.mktemp("explain-runs")
    return {
        arch: train_run(
            root / arch,
            {"data": str(marks["train"])},
            arch=arch,
            epochs=6,
            batch_size=16,
            augment=AugmentConfig(preset=AugmentPreset.none),
        )
        for arch in ("simplecnn", "resnet8")
    }


def heatmaps_of(run_dir: Path, paths: list[str], method: str = "auto"):
    from imgcls_cli.commands.predict import read_for_model
    from imgcls_cli.report.gradcam import GradCam
    from imgcls_cli.rundir.load import load_run

    run = load_run(run_dir)
    cam = GradCam(run.model, method=method)
    images = np.stack([read_for_model(path, run) for path in paths])
    probabilities, heatmaps = cam(images)
    return cam, probabilities, heatmaps


@pytest.mark.parametrize("arch", ["simplecnn", "resnet8"])
def test_the_heat_lies_on_the_corner_that_holds_the_class(arch, cnn_runs, marks):
    cam, probabilities, heatmaps = heatmaps_of(cnn_runs[arch], image_paths(marks["held"]))
    labels = np.repeat(np.arange(len(MARKS)), 6)  # sorted paths: bar, cross, plus, ring
    names = sorted(MARKS)
    assert [names[i] for i in probabilities.argmax(1)] == [names[i] for i in labels]
    assert heatmaps.shape == (24, 32, 32) and heatmaps.min() >= 0 and heatmaps.max() <= 1
    share = corner_share(heatmaps)
    # A quarter of the image: chance is 0.25.
    assert share.mean() >= 0.5, share
    assert (heatmaps.sum(axis=(1, 2)) > 0).all()  # no image left without an answer


def test_auto_uses_gradcam_on_pooled_maps_and_hirescam_on_flattened_ones(cnn_runs, marks):
    paths = image_paths(marks["held"])[:4]
    pooled, _, auto = heatmaps_of(cnn_runs["resnet8"], paths)
    _, _, classic = heatmaps_of(cnn_runs["resnet8"], paths, "gradcam")
    _, _, hires = heatmaps_of(cnn_runs["resnet8"], paths, "hirescam")
    assert pooled.method == "gradcam" and pooled.target.pooled
    # Right before global average pooling the gradient is the same at every position,
    # so both methods give the same map.
    np.testing.assert_allclose(classic, hires, atol=1e-5)
    np.testing.assert_allclose(auto, classic, atol=1e-5)
    flattened, _, _ = heatmaps_of(cnn_runs["simplecnn"], paths)
    assert flattened.method == "hirescam" and not flattened.target.pooled
    assert flattened.target.layer.__class__.__name__ == "Conv2D"  # not the pooling after it


def test_the_command_writes_overlays_a_grid_and_a_record(
    cnn_runs, marks, tmp_path, runner, cli_app, monkeypatch
):
    from imgcls_cli.report import plots

    drawn = plots.gradcam_grid_png
    grid_captions = []
    monkeypatch.setattr(
        plots,
        "gradcam_grid_png",
        lambda tiles: grid_captions.append([t[2] for t in tiles]) or drawn(tiles),
    )
    run_dir = cnn_runs["resnet8"]
    good = image_paths(marks["held"])[-2:]  # two rings
    broken = write_image(tmp_path / "in" / "fine.png", np.zeros((4, 4, 3), np.uint8))
    broken.write_bytes(b"not an image")
    missing = tmp_path / "in" / "missing.png"
    output = tmp_path / "explained"
    args = [
        "explain",
        *good,
        str(broken),
        str(missing),
        "-m",
        str(run_dir),
        "--output",
        str(output),
    ]
    result = runner.invoke(cli_app, [*args, "--json"])
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    # resnet8's last ReLU (Keras numbers layer names per process: re_lu_6, re_lu_70, …)
    assert document["method"] == "gradcam" and document["layer"].startswith("re_lu")
    records = document["images"]
    assert [record["path"] for record in records] == [*good, str(broken), str(missing)]
    assert [record["error"] is None for record in records] == [True, True, False, False]
    assert {record["label"] for record in records[:2]} == {"ring"}
    for record in records[:2]:
        assert record["peak"][0] > 0.5 and record["peak"][1] > 0.5  # bottom right
        assert (output / record["file"]).is_file()
    assert sorted(p.name for p in output.iterdir()) == sorted(
        ["explain.json", "grid.png", records[0]["file"], records[1]["file"]]
    )
    assert "1 of 4" not in result.stderr and "2 of 4 input(s) could not be read" in result.stderr
    # The grid names each tile's file above its prediction.
    names = [Path(path).name for path in good]
    assert [caption.split("\n")[0] for caption in grid_captions[-1]] == names
    assert all(caption.split("\n")[1].startswith("ring (") for caption in grid_captions[-1])

    # Again, for another class: the earlier explanation is replaced, not mixed in.
    result = runner.invoke(
        cli_app,
        ["explain", good[0], "-m", str(run_dir), "--output", str(output), "--class", "plus"],
    )
    assert result.exit_code == 0, result.output
    document = json.loads((output / "explain.json").read_text())
    assert document["images"][0]["explained_class"] == "plus"
    assert document["images"][0]["label"] == "ring"
    assert sorted(p.name for p in output.iterdir()) == ["explain.json", "grid.png", "ring_4.png"]

    # Every input fails only as it decodes (damaged inside): one line, and the earlier
    # explanation stays as it was (it was replaced by a record of failures before).
    before = {p.name: p.read_bytes() for p in output.iterdir()}
    (tmp_path / "damaged").mkdir()  # apart from the output: its folder is kept clear of it
    damaged = damaged_png(Path(good[0]), tmp_path / "damaged" / "damaged.png")
    result = runner.invoke(
        cli_app, ["explain", str(damaged), "-m", str(run_dir), "--output", str(output)]
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: No input could be read, so nothing was explained: {damaged} (damaged image "
        "(its compressed data is corrupt))."
    ]
    assert {p.name: p.read_bytes() for p in output.iterdir()} == before


def test_the_default_folder_is_in_the_run(cnn_runs, marks, runner, cli_app):
    """A folder is searched; 24 images go through in two batches, each with its overlay,
    named by its stem; the records keep the input order."""
    run_dir = cnn_runs["simplecnn"]
    result = runner.invoke(cli_app, ["explain", str(marks["held"]), "-m", str(run_dir)])
    assert result.exit_code == 0, result.output
    folder = run_dir / "explain"
    document = json.loads((folder / "explain.json").read_text())
    records = document["images"]
    assert [record["path"] for record in records] == image_paths(marks["held"])
    assert [record["file"] for record in records] == [
        Path(path).stem + ".png" for path in image_paths(marks["held"])
    ]
    assert sorted(document["files"]) == sorted(
        p.name for p in folder.iterdir() if p.suffix == ".png"
    )
    assert len(document["files"]) == 25 and document["method"] == "hirescam"
    assert "HiResCAM (" in result.stdout  # the table's title names the method
    assert f"Wrote 24 overlays, grid.png and explain.json to {folder}" in result.output
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~mask  # not mkdtemp's 0700


def test_refusals_are_one_line_and_touch_nothing(cnn_runs, marks, tmp_path, runner, cli_app):
    run_dir = cnn_runs["resnet8"]
    image = image_paths(marks["held"])[0]
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    cases = [
        (["--output", str(theirs)], "was not written by imgcls explain"),
        (["--class", "circle"], "Unknown class 'circle'"),
        (["--layer", "nope"], "Unknown layer 'nope'"),
        (["--method", "cam"], "'cam' is not one of 'auto', 'gradcam', 'hirescam'"),
    ]
    for extra, message in cases:
        result = runner.invoke(cli_app, ["explain", image, "-m", str(run_dir), *extra])
        assert result.exit_code != 0 and message in result.output, (extra, result.output)
        assert "Traceback" not in result.output
    assert [p.name for p in theirs.iterdir()] == ["notes.txt"]

    # A folder an earlier explanation wrote, with a file of the user's added: kept.
    own = tmp_path / "own"
    assert (
        runner.invoke(
            cli_app, ["explain", image, "-m", str(run_dir), "--output", str(own)]
        ).exit_code
        == 0
    )
    (own / "keep.txt").write_text("mine")
    result = runner.invoke(cli_app, ["explain", image, "-m", str(run_dir), "--output", str(own)])
    assert result.exit_code != 0 and "keep.txt" in result.output
    assert (own / "keep.txt").read_text() == "mine"


def test_a_refused_layer_is_refused_from_the_file_as_after_loading(cnn_runs):
    """--layer is checked in model.keras' saved architecture before TensorFlow loads the
    model (test_first_run times it): the same line as the check on the loaded model, for
    a name no layer has and for a layer that holds no feature map; every feature map's
    name and path pass it. The names listed are the last 12 feature maps, marked as
    such; did-you-mean looks among all of them."""
    from imgcls_cli.commands.explain import check_layer_name
    from imgcls_cli.errors import UsageError
    from imgcls_cli.report.gradcam import feature_maps, find_target_layer
    from imgcls_cli.rundir.load import load_run

    # Layer names carry Keras' counters of the process (re_lu_65): taken from each model.
    for run_dir in cnn_runs.values():
        model, path = load_run(run_dir).model, run_dir / "model.keras"
        maps = feature_maps(model)
        names = [target.layer.name for target in maps]
        pool = next(layer.name for layer in model.layers if "Pooling" in type(layer).__name__)
        first_misspelt = f"{names[0]}x"  # the first feature map, listed only when few
        messages = {}
        for name in ("conv2d_9x", first_misspelt, "predictions", pool, "image"):
            with pytest.raises(UsageError) as early:
                check_layer_name(path, name)
            with pytest.raises(UsageError) as late:
                find_target_layer(model, name)
            assert str(early.value) == str(late.value), name
            messages[name] = str(early.value)
        for target in maps:
            check_layer_name(path, target.path)
            check_layer_name(path, target.layer.name)
        listed = messages["conv2d_9x"].split("Feature maps: ")[1].rstrip(".")
        if len(names) > 12:
            assert listed == f"…, {', '.join(names[-12:])} (the last 12 of {len(names)})"
        else:
            assert listed == ", ".join(names)
        assert f"Did you mean '{names[0]}'?" in messages[first_misspelt]
        assert messages["predictions"].startswith(
            "Layer 'predictions' (Dense) holds no feature map for Grad-CAM to read; feature maps: "
        )
        assert (
            f"Layer '{pool}' ({type(model.get_layer(pool)).__name__}) holds no" in (messages[pool])
        )
    assert len(feature_maps(load_run(cnn_runs["resnet8"]).model)) > 12  # a list cut short


def test_a_refused_layer_of_the_latest_run_names_the_run(cnn_runs, tmp_path, monkeypatch):
    """Without --model the refusal says whose layers it lists, as a run found this way is
    named when it is used."""
    import shutil

    from imgcls_cli.api import check_explain_target
    from imgcls_cli.errors import UsageError

    shutil.copytree(cnn_runs["simplecnn"], tmp_path / "runs" / "simplecnn")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError) as refused:
        check_explain_target(None, None, None, "nope")
    assert str(refused.value).startswith("Unknown layer 'nope'.")
    assert str(refused.value).endswith(
        f"(Run: {Path('runs') / 'simplecnn'}, the latest; --model names another.)"
    )
    with pytest.raises(UsageError, match=r"Unknown class 'bird'.*\(Run: runs/simplecnn"):
        check_explain_target(None, None, "bird")
    with pytest.raises(UsageError) as refused:
        check_explain_target(str(tmp_path / "runs" / "simplecnn"), None, None, "nope")
    assert "(Run:" not in str(refused.value)


def test_a_named_layer_is_used(cnn_runs, marks, tmp_path):
    from imgcls_cli import api
    from imgcls_cli.report.gradcam import feature_maps
    from imgcls_cli.rundir.load import load_run

    first = feature_maps(load_run(cnn_runs["simplecnn"]).model)[0].layer.name  # conv2d_N
    image = image_paths(marks["held"])[0]
    document = api.explain(cnn_runs["simplecnn"], [image], layer=first, output=tmp_path / "x")
    assert document["layer"] == first and document["feature_map"] == [32, 32, 32]


def test_where_names_the_peak_and_the_centre_of_heat():
    from imgcls_cli.report.gradcam import where

    heatmap = np.zeros((10, 20))
    heatmap[8, 15] = 1.0
    heatmap[8, 16] = 1.0
    assert where(heatmap) == {"peak": [0.85, 0.775], "centre": [0.85, 0.8]}
    assert where(np.zeros((4, 4)))["centre"] == [0.5, 0.5]


def test_evaluate_explain_draws_heatmaps_on_the_galleries(
    cnn_runs, marks, tmp_path, runner, cli_app
):
    run_dir = cnn_runs["resnet8"]
    args = ["evaluate", "-m", str(run_dir), "--data", str(marks["held"]), "--mistakes", "4"]
    plain, explained = tmp_path / "plain", tmp_path / "explained"
    assert runner.invoke(cli_app, [*args, "--output", str(plain)]).exit_code == 0
    result = runner.invoke(cli_app, [*args, "--output", str(explained), "--explain"])
    assert result.exit_code == 0, result.output
    report = json.loads((explained / "evaluation.json").read_text())
    assert report["explain"]["method"] == "gradcam"
    assert len(report["top_losses"]) == 4 and "top_losses.png" in report["mistakes_files"]
    assert "explain" not in json.loads((plain / "evaluation.json").read_text())
    # The same gallery, drawn once from the files and once as overlays.
    assert (plain / "top_losses.png").read_bytes() != (explained / "top_losses.png").read_bytes()


def test_a_finetuned_backbone_is_explained_through_its_nested_model(
    marks, tmp_path, runner, cli_app
):
    """The served model nests `features`, which nests the backbone: the layer is found
    inside it. At 32 px MobileNetV2's last map is 1x1, so the last one of at least 2x2 is
    read; `--layer out_relu` reads the 1x1 map, whose heat is the same everywhere."""
    from imgcls_cli.models.backbones import create_backbone

    weights = tmp_path / "mobilenetv2.weights.h5"
    create_backbone("mobilenetv2", 32, imagenet=False).save_weights(weights)
    run_dir = tmp_path / "run"
    result = runner.invoke(
        cli_app,
        [
            "finetune",
            *("--data", str(marks["train"]), "--weights", str(weights), "--image-size", "32"),
            *("--head-epochs", "1", "--unfreeze", "0", "--batch-size", "32"),
            *("--output", str(run_dir)),
        ],
    )
    assert result.exit_code == 0, result.output
    images = image_paths(marks["held"])[:3]
    result = runner.invoke(cli_app, ["explain", *images, "-m", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["layer"].startswith("features/mobilenetv2_1.00_32/")
    assert min(document["feature_map"][:2]) >= 2 and document["method"] == "hirescam"
    assert all(record["error"] is None for record in document["images"])
    assert len(document["files"]) == 4  # three overlays and the grid

    output = tmp_path / "last"
    args = [
        "explain",
        images[0],
        "-m",
        str(run_dir),
        "--layer",
        "out_relu",
        "--output",
        str(output),
    ]
    result = runner.invoke(cli_app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["layer"].endswith("/out_relu") and document["feature_map"][:2] == [1, 1]
    # Inside the nested backbone, the file's architecture knows the layers by path too.
    from imgcls_cli.commands.explain import check_layer_name
    from imgcls_cli.errors import UsageError

    check_layer_name(run_dir / "model.keras", document["layer"])
    with pytest.raises(UsageError, match="Did you mean 'out_relu'"):
        check_layer_name(run_dir / "model.keras", "out_relus")
    # The end of a path names a layer too.
    from imgcls_cli.report.gradcam import find_target_layer
    from imgcls_cli.rundir.load import load_run

    partial = document["layer"].split("/", 1)[1]  # mobilenetv2_1.00_32/out_relu
    check_layer_name(run_dir / "model.keras", partial)
    assert find_target_layer(load_run(run_dir).model, partial).path == document["layer"]
    assert document["method"] == "gradcam"  # right before global average pooling
    assert document["images"][0]["centre"] == [0.5, 0.5]


def test_overlays_keep_the_picture_and_stretch_the_heatmap_over_it():
    from imgcls_cli.report.gradcam import for_display
    from imgcls_cli.report.plots import heat_overlay

    photo = np.zeros((1000, 2000, 3), np.uint8)
    photo[:, 1000:] = 255  # right half white
    shown = for_display(photo)
    assert (
        shown.shape == (256, 512, 3) and shown[:, :255].max() == 0 and shown[:, 257:].min() == 255
    )
    assert for_display(photo[:100, :80]).shape == (100, 80, 3)  # small ones stay as they are
    heatmap = np.zeros((4, 4), np.float32)
    heatmap[:, 2:] = 1.0  # hot on the right
    overlay = heat_overlay(shown, heatmap)
    assert overlay.shape == (256, 512, 3)
    # jet: cold is blue, hot is red
    assert overlay[:, :100, 2].mean() > overlay[:, :100, 0].mean()
    assert overlay[:, -100:, 0].mean() > overlay[:, -100:, 2].mean()


@pytest.mark.parametrize(
    "backbone, last_block",
    [
        ("mobilenetv2", "out_relu"),
        ("resnet50", "conv5_block3_out"),
        ("efficientnetb0", "top_activation"),
    ],
)
def test_every_backbones_last_block_is_found_inside_the_served_model(backbone, last_block):
    """The backbone sits two models deep (served model → features → backbone); its last
    block feeds global average pooling, so auto means Grad-CAM, and the heat is a map."""
    from imgcls_cli.models import create_model
    from imgcls_cli.models.weights import WeightsChoice
    from imgcls_cli.report.gradcam import GradCam

    transfer = create_model(backbone, (64, 64, 3), 3, weights=WeightsChoice("none"))
    cam = GradCam(transfer.model)
    assert cam.target.path.split("/")[0] == "features"
    assert cam.target.layer.name == last_block and cam.target.shape[:2] == (2, 2)
    assert cam.method == "gradcam" and cam.head.name == "predictions"
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    probabilities, heatmaps = cam(images)
    assert probabilities.shape == (2, 3) and heatmaps.shape == (2, 64, 64)
    assert np.isfinite(heatmaps).all() and heatmaps.min() >= 0 and heatmaps.max() <= 1


def test_two_files_of_one_name_are_told_apart_in_the_grid():
    """Their overlays are img.png and img-2.png; the grid titles them so, not both img.png."""
    from imgcls_cli.commands.explain import tile_name
    from imgcls_cli.report.gradcam import Explained

    first, second, photo = Explained("a/0/img.png"), Explained("b/0/img.png"), Explained("p.jpg")
    first.file, second.file, photo.file = "img.png", "img-2.png", "p.png"
    assert [tile_name(first), tile_name(second), tile_name(photo)] == [
        "img.png",
        "img-2.png",
        "p.jpg",
    ]
