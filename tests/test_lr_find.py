"""`imgcls lr-find` and `train --lr auto`: the sweep's numbers on curves with known
answers, the options, and tiny real sweeps on the embedded digits."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from imgcls_cli import api
from imgcls_cli.config import FinetuneConfig, LrFindConfig, TrainConfig
from imgcls_cli.engine import lr_sweep
from imgcls_cli.errors import ImgclsError, UsageError
from imgcls_cli.options import config_from_options

# Tiny sweeps: simplecnn on the 8x8 digits, small batches, few steps.
TINY = ["--arch", "simplecnn", "--batch-size", "32"]

# --- The numbers, without TensorFlow ---------------------------------------------------------


def test_rates_grow_by_the_same_factor_from_start_to_end():
    rates = lr_sweep.sweep_rates(LrFindConfig(start_lr=1e-6, end_lr=1.0, steps=25))
    assert len(rates) == 25
    assert rates[0] == pytest.approx(1e-6) and rates[-1] == pytest.approx(1.0)
    factors = rates[1:] / rates[:-1]
    np.testing.assert_allclose(factors, 10 ** (6 / 24))  # one factor, above 1


def test_smoothing_is_corrected_for_its_start_at_zero():
    assert lr_sweep.smooth([2.0] * 5) == pytest.approx([2.0] * 5)  # no pull towards 0
    smoothed = lr_sweep.smooth([1.0] * 50 + [3.0] * 50)
    assert smoothed[49] == pytest.approx(1.0)
    assert 1.0 < smoothed[60] < smoothed[99] < 3.0  # follows the jump, lagging


def test_valley_is_half_the_longest_descent_back_from_its_bottom():
    lrs = np.geomspace(1e-6, 1.0, 61)
    losses = np.concatenate([np.linspace(3.0, 1.0, 41), np.linspace(1.1, 4.0, 20)])
    assert lr_sweep.valley(lrs, losses) == lrs[20]  # the descent is steps 0-40
    losses[10] = losses[9] + 0.01  # a blip of noise does not cut the descent short
    assert lr_sweep.valley(lrs, losses) == lrs[20]  # 40 steps descend, bottom at 40


def test_a_noisy_flat_start_counts_only_its_descending_steps():
    lrs = np.geomspace(1e-7, 1.0, 80)
    flat = [3.0 - 0.001 * i + (0.01 if i % 2 else 0.0) for i in range(30)]  # every other
    losses = np.concatenate([flat, np.linspace(2.9, 1.0, 31), np.linspace(1.2, 4.0, 19)])
    # 15 flat steps and 31 falling ones descend; the bottom is step 60.
    assert lr_sweep.valley(lrs, losses) == lrs[60 - 46 // 2]


def test_steepest_is_where_the_loss_falls_fastest_against_log_rate():
    lrs = np.geomspace(1e-5, 1e-1, 40)
    losses = np.linspace(2.5, 2.0, 40)
    losses[31:] -= 1.0  # the drop from step 30 to 31
    assert lr_sweep.steepest(lrs, losses) == lrs[30]


def test_a_loss_that_never_falls_suggests_no_valley():
    lrs = np.geomspace(1e-5, 1.0, 30)
    assert lr_sweep.valley(lrs, np.linspace(1.0, 3.0, 30)) is None


def test_suggestions_leave_out_the_settling_start_and_the_climb_at_the_end():
    lrs = list(np.geomspace(1e-7, 10, 100))
    smoothed = list(np.linspace(3.0, 1.0, 100))
    smoothed[2] = 0.0  # the first tenth: not a suggestion however steep
    smoothed[97] = -5.0  # the last twentieth: neither
    suggestions = lr_sweep.suggest(lrs, smoothed)
    assert lrs[10] <= suggestions["steepest"] <= lrs[94]
    assert suggestions["valley"] == lrs[10 + (94 - 10) // 2]


def test_a_loss_that_barely_falls_suggests_nothing():
    """A sweep too short for the model to learn: its smoothed loss wanders by a few
    hundredths (this one is a real 30-step sweep of simplecnn on the digits); each method
    would name a rate that noise chose."""
    lrs = list(np.geomspace(1e-7, 10, 28))
    smoothed = [2.307, 2.321, 2.318, 2.325, 2.319, 2.320, 2.322, 2.324, 2.325, 2.320]
    smoothed += [2.319, 2.317, 2.313, 2.312, 2.311, 2.311, 2.308, 2.306, 2.304, 2.302]
    smoothed += [2.295, 2.284, 2.295, 2.303, 2.304, 2.450, 2.944, 15.036]
    assert lr_sweep.suggest(lrs, smoothed) == {"valley": None, "steepest": None}
    smoothed[21] = 2.184  # the same sweep with a fall of 6% to its bottom suggests a rate
    assert lrs[3] <= lr_sweep.suggest(lrs, smoothed)["steepest"] <= lrs[20]


def test_suggestions_end_at_the_lowest_loss():
    """After too high a rate the loss climbs and may fall again as the model recovers:
    that fall is steeper than the real descent here, and is no rate to train at."""
    lrs = list(np.geomspace(1e-7, 10, 60))
    smoothed = list(np.linspace(2.3, 2.0, 40)) + list(np.linspace(3.0, 4.0, 10))
    smoothed += list(np.linspace(3.9, 2.5, 10))  # the recovery: steep, after the bottom
    suggestions = lr_sweep.suggest(lrs, smoothed)
    assert lrs[6] <= suggestions["steepest"] <= lrs[39]
    assert lrs[6] <= suggestions["valley"] <= lrs[39]


@pytest.mark.parametrize(
    "smoothed, lowest, diverged",
    [(3.9, 1.0, False), (4.1, 1.0, True), (math.nan, 1.0, True), (math.inf, 1.0, True)],
)
def test_the_sweep_stops_at_four_times_the_lowest_loss_or_nan(smoothed, lowest, diverged):
    assert lr_sweep.has_diverged(smoothed, lowest) is diverged


def test_a_sweep_writes_non_finite_losses_as_null():
    sweep = lr_sweep.Sweep(LrFindConfig(steps=20), [1e-3, 1e-2], [2.0, math.nan], True)
    document = sweep.to_dict()
    assert document["losses"] == [2.0, None]
    json.dumps(document, allow_nan=False)  # strict JSON


def test_the_plot_shows_every_step_below_the_smoothed_curve():
    from imgcls_cli.commands.lr_find import lr_find_figure

    rng = np.random.default_rng(0)
    lrs = list(np.geomspace(1e-6, 1.0, 100))
    curve = np.concatenate([np.linspace(2.3, 0.5, 70), np.linspace(0.5, 2.0, 30)])
    losses = list(curve + rng.normal(0, 0.4, 100))  # steps far below the smoothed curve
    smoothed = lr_sweep.smooth(losses)
    document = {
        "lrs": lrs,
        "losses": losses,
        "smoothed_losses": smoothed,
        "suggestions": lr_sweep.suggest(lrs, smoothed),
        "method": "valley",
        "steps": 100,
        "stopped_early": False,
    }
    bottom, top = lr_find_figure(document).axes[0].get_ylim()
    assert min(losses) < min(smoothed)  # the case the bottom is set for
    assert bottom < min(losses)
    assert top < max(losses)  # the climb's spikes may still leave through the top


# --- Options ---------------------------------------------------------------------------------


def test_train_lr_is_a_number_or_auto_and_auto_is_train_only():
    digits = {"dataset": "digits"}
    assert config_from_options(TrainConfig, {**digits, "lr": "auto"}).lr == "auto"
    assert config_from_options(TrainConfig, {**digits, "lr": "3e-3"}).lr == 3e-3
    auto = config_from_options(TrainConfig, {**digits, "lr": "auto"})
    assert TrainConfig.from_dict(json.loads(json.dumps(auto.to_dict()))).lr == "auto"
    with pytest.raises(UsageError, match="positive number or 'auto'; got 'fast'"):
        config_from_options(TrainConfig, {**digits, "lr": "fast"})
    with pytest.raises(UsageError, match="'auto' is for train only"):
        config_from_options(FinetuneConfig, {**digits, "lr": "auto"})
    with pytest.raises(UsageError, match="--scale-lr does not apply to --lr auto"):
        config_from_options(TrainConfig, {**digits, "lr": "auto", "scale_lr": True})


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--steps", "5"], "--steps must be between 20 and 1000"),
        (["--start-lr", "1", "--end-lr", "0.1"], "--end-lr must be above --start-lr"),
        (["--start-lr", "nan"], "--start-lr must be a positive number"),
        (["--arch", "simplcnn"], "Did you mean 'simplecnn'"),
    ],
)
def test_bad_sweep_options_are_one_line_before_any_work(runner, cli_app, arguments, message):
    result = runner.invoke(cli_app, ["lr-find", *arguments])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_train_lr_that_is_neither_number_nor_auto_is_refused(runner, cli_app, tmp_path):
    result = runner.invoke(cli_app, ["train", "--lr", "fast", "--output", str(tmp_path / "r")])
    assert result.exit_code == 2 and "--lr must be a positive number or 'auto'" in result.output
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("lr", ["auto", "fast"])
def test_finetune_lr_auto_is_said_to_be_for_train_only(runner, cli_app, tmp_path, lr):
    """finetune's --lr takes no sweep: 'auto' is named as train's, not called no number."""
    args = ["finetune", "--dataset", "digits", "--lr", lr, "--output", str(tmp_path / "r")]
    result = runner.invoke(cli_app, args)
    assert result.exit_code == 2, result.output
    assert f"--lr must be a positive number ('auto' is for train only); got '{lr}'" in result.output
    assert not (tmp_path / "r").exists()


def test_lr_find_refuses_train_options_it_has_no_use_for():
    with pytest.raises(UsageError, match="lr-find takes no epochs, patience"):
        api.lr_find(epochs=3, patience=2)


def test_an_output_folder_of_other_files_is_refused_and_left_alone(runner, cli_app, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    (folder / "lr_find.png").write_bytes(b"not ours either")
    result = runner.invoke(cli_app, ["lr-find", "--output", str(folder)])
    assert result.exit_code == 2, result.output  # refused: an output imgcls will not replace
    assert "holds files imgcls lr-find did not write (lr_find.png, notes.txt)" in result.output
    assert (folder / "notes.txt").read_text() == "keep me"
    assert (folder / "lr_find.png").read_bytes() == b"not ours either"


# --- Real sweeps (TensorFlow) ----------------------------------------------------------------


@pytest.mark.slow
def test_lr_find_json_records_every_step_and_leaves_nothing_behind(
    runner, cli_app, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli_app, ["lr-find", *TINY, "--steps", "60", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)  # stdout holds only the document
    assert document["steps"] == len(document["lrs"]) == len(document["losses"]) <= 60
    lrs = np.array(document["lrs"])
    assert lrs[0] == pytest.approx(1e-7)
    np.testing.assert_allclose(lrs[1:] / lrs[:-1], 1e8 ** (1 / 59))  # exponential, rising
    assert document["stopped_early"] == (document["steps"] < 60)
    suggestions = document["suggestions"]
    assert set(suggestions) == {"valley", "steepest"}
    assert document["suggested_lr"] == suggestions["valley"] in document["lrs"]
    lowest = lrs[int(np.argmin(document["smoothed_losses"]))]  # both on the way down to it
    assert suggestions["steepest"] in document["lrs"] and suggestions["steepest"] <= lowest
    assert document["options"]["arch"] == "simplecnn" and "epochs" not in document["options"]
    assert list(tmp_path.iterdir()) == []  # no run, no plot, no runs/ folder


@pytest.mark.slow
def test_a_diverging_sweep_stops_early_and_output_holds_its_plot(runner, cli_app, tmp_path):
    folder = tmp_path / "sweep"
    arguments = ["lr-find", *TINY, "--start-lr", "0.1", "--end-lr", "1e6", "--steps", "40"]
    result = runner.invoke(cli_app, [*arguments, "--output", str(folder)])
    assert result.exit_code in (0, 1), result.output  # 1: no suggestion, said in one line
    if result.exit_code == 1:
        assert "No learning rate to suggest: the smoothed loss fell by less than 5% over" in (
            result.output
        )
        assert "a lower --start-lr, when the loss climbed from the first step" in result.output
    document = json.loads((folder / "lr_find.json").read_text())
    assert document["stopped_early"] and document["steps"] < 40
    smoothed = [math.inf if v is None else v for v in document["smoothed_losses"]]
    assert not smoothed[-1] <= 4 * min(smoothed)  # it stopped because the loss diverged
    assert all(s <= 4 * min(smoothed[: i + 1]) for i, s in enumerate(smoothed[:-1]))
    assert (folder / "lr_find.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in folder.iterdir()) == ["lr_find.json", "lr_find.png"]
    # An earlier lr-find's folder is written over.
    again = runner.invoke(cli_app, [*arguments, "--output", str(folder), "--json"])
    assert again.exit_code == 0, again.output


def train_digits(output: Path, **options):
    return api.train(
        output=output, dataset="digits", arch="simplecnn", batch_size=32, epochs=1, **options
    )


@pytest.mark.slow
def test_train_lr_auto_records_the_sweep_and_trains_as_with_that_number(tmp_path, monkeypatch):
    auto = train_digits(tmp_path / "auto", lr="auto")
    config = json.loads((auto.path / "config.json").read_text())
    assert config["options"]["lr"] == "auto"  # so --config sweeps again
    found = config["resolved"]["lr_find"]
    assert found["method"] == "valley" and found["start_lr"] == 1e-7 and found["end_lr"] == 10
    assert 1e-7 < found["suggested_lr"] == config["resolved"]["learning_rate"] < 10
    # The sweep leaves no trace: same initial weights, same data order as without it.
    fixed = train_digits(tmp_path / "fixed", lr=found["suggested_lr"])
    assert auto.metrics["weights_fingerprint"] == fixed.metrics["weights_fingerprint"]

    # --resume takes the recorded rate and never sweeps again.
    def no_sweep(*args, **kwargs):
        raise AssertionError("--resume swept again")

    monkeypatch.setattr(lr_sweep, "sweep_learning_rate", no_sweep)
    resumed = api.train(resume=auto.path, epochs=2)
    assert resumed.metrics["epochs_trained"] == 2
    resolved = json.loads((auto.path / "config.json").read_text())["resolved"]
    assert resolved["learning_rate"] == found["suggested_lr"]


@pytest.mark.slow
def test_train_lr_auto_without_a_suggestion_stops_and_keeps_no_run(tmp_path, monkeypatch):
    def flat_sweep(config, sweep, *args):
        rates = list(lr_sweep.sweep_rates(sweep))
        return lr_sweep.Sweep(sweep, rates, list(np.linspace(1.0, 2.0, len(rates))), False)

    monkeypatch.setattr(lr_sweep, "sweep_learning_rate", flat_sweep)
    with pytest.raises(ImgclsError, match="the loss did not fall"):
        train_digits(tmp_path / "run", lr="auto")
    assert not (tmp_path / "run").exists()


def test_an_output_in_the_data_is_refused_as_such_before_whose_files_it_holds(
    runner, cli_app, tmp_path
):
    """A class folder holds files lr-find did not write; the reason to give is the data."""
    from conftest import make_class_folder

    images = make_class_folder(tmp_path / "shapes", per_class=2, size=8)
    args = ["lr-find", "--data", str(images), "--output", str(images / "circle")]
    result = runner.invoke(cli_app, args)
    assert result.exit_code == 2 and "overlaps the data folder" in result.output, result.output
