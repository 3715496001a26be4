"""Data that changes or misleads under a running command: files that vanish or break while
streaming, and --dataset names that are not dataset names."""

import pytest
from conftest import make_class_folder

from imgcls_cli.config import DataConfig
from imgcls_cli.data.factory import load_source
from imgcls_cli.errors import UsageError


def damage(path, how):
    if how == "deleted":
        path.unlink()
    else:
        path.write_bytes(b"no longer an image")


@pytest.mark.parametrize("how", ["deleted", "corrupted"])
@pytest.mark.parametrize("shuffle_seed", [0, None])  # streamed training, and val/evaluation
def test_image_that_breaks_while_streaming_is_dropped_and_named(tmp_path, how, shuffle_seed):
    from imgcls_cli.data.pipeline import create_batches

    root = make_class_folder(tmp_path / "d", per_class=5, size=8)
    source = load_source(DataConfig(data=str(root), val_split=0.0, test_split=0.0), seed=0)
    batches = create_batches(
        source.splits["train"], (8, 8), 3, 2, 4, cache=False, shuffle_seed=shuffle_seed
    )
    broken = root / "square" / "square_3.png"
    damage(broken, how)
    for _ in range(2):  # every epoch: the example is dropped, and named again
        epoch = list(batches)
        assert sum(len(labels) for _, labels in epoch) == 9
        assert {tuple(images.shape[1:]) for images, _ in epoch} == {(8, 8, 3)}
        [(path, reason)] = source.take_stream_failures()
        assert path == str(broken)
        assert reason == (
            "no such file" if how == "deleted" else "not an image (format not recognised)"
        )
    assert source.take_stream_failures() == []


@pytest.mark.parametrize(
    "name, message",
    [
        ("mnsit", "Unknown dataset 'mnsit'. Did you mean 'mnist'?"),
        ("", "--dataset '' is not a dataset name"),
        ("../../etc", "--dataset '../../etc' is not a dataset name"),
        ("MNIST", "Did you mean 'mnist'?"),
        ("mnist/foo", "Dataset 'mnist' has no configs: drop '/foo'."),
        ("cifar10_corrupted/brightnes_1", "Did you mean 'brightness_1'?"),
        ("mnist:9.9.9", "cannot be loaded at version 9.9.9, only: 3.0.1"),
    ],
)
def test_bad_dataset_names_are_usage_errors_with_one_line(name, message):
    with pytest.raises(UsageError) as raised:
        load_source(DataConfig(dataset=name), seed=0)
    assert message in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize("name", ["mnsit", "", "../../etc"])
def test_bad_dataset_name_exits_2_with_one_line(runner, cli_app, tmp_path, name):
    result = runner.invoke(cli_app, ["train", "--dataset", name, "--output", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Unexpected" not in lines[0]


def test_training_goes_on_when_an_image_vanishes_and_names_it_once(tmp_path):
    from imgcls_cli.commands.train import run_train
    from imgcls_cli.config import CacheMode, TrainConfig
    from imgcls_cli.reporting import SilentReporter

    root = make_class_folder(tmp_path / "d", per_class=8, size=8)
    vanishing = root / "circle" / "circle_5.png"

    class Recorder(SilentReporter):
        warnings: list[str] = []

        def epoch_start(self, epoch, epochs, steps):
            if epoch == 2:  # after the scan and one full epoch: gone mid-training
                vanishing.unlink()

        def warning(self, message):
            self.warnings.append(message)

    data = DataConfig(data=str(root), cache=CacheMode.none, val_split=0.0, test_split=0.0)
    config = TrainConfig(data=data, epochs=3, batch_size=4)
    result = run_train(config, tmp_path / "run", Recorder())
    assert len(result.history) == 3
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    unreadable = [w for w in Recorder.warnings if "could not be decoded this epoch" in w]
    assert len(unreadable) == 1 and str(vanishing) in unreadable[0]
