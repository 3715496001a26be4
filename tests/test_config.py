import dataclasses
import json
import typing

import pytest

from imgcls_cli.augment.policy import resolve_augment_with_reason
from imgcls_cli.config import ClassWeight, DataConfig, Optimizer, TrainConfig, from_dict
from imgcls_cli.errors import UsageError
from imgcls_cli.rundir import read_options_file


def make(**overrides):
    data = overrides.pop("data", DataConfig(dataset="digits"))
    return TrainConfig(data=data, **overrides)


def test_json_round_trip_preserves_every_option():
    config = make(
        epochs=3,
        optimizer=Optimizer.sgd,
        patience=2,
        label_smoothing=0.1,
        class_weight=ClassWeight.balanced,
        ema=0.99,
    )
    text = json.dumps(config.to_dict())
    assert TrainConfig.from_dict(json.loads(text)) == config


@pytest.mark.parametrize(
    "overrides, flag",
    [
        ({"epochs": 0}, "--epochs"),
        ({"batch_size": -1}, "--batch-size"),
        ({"lr": 0}, "--lr"),
        ({"label_smoothing": 1.0}, "--label-smoothing"),
        ({"patience": 0}, "--patience"),
        ({"epochs": 2, "warmup_epochs": 2}, "--warmup-epochs"),
        ({"ema": 1.5}, "--ema"),
        ({"ema": 1.0}, "--ema"),
        ({"ema": 0.0}, "--ema"),
        ({"ema": float("nan")}, "--ema"),
    ],
)
def test_bad_values_name_the_flag(overrides, flag):
    with pytest.raises(UsageError, match=flag):
        TrainConfig.from_dict({"data": {"dataset": "digits"}, **overrides})


def test_config_json_of_earlier_versions_loads_with_the_newer_options_at_their_defaults():
    from imgcls_cli.config import FinetuneConfig

    for cls in (TrainConfig, FinetuneConfig):
        values = cls(data=DataConfig(dataset="digits")).to_dict()
        assert values["class_weight"] == "none" and values["ema"] is None
        del values["class_weight"], values["ema"]
        config = cls.from_dict(json.loads(json.dumps(values)))
        assert config.class_weight is ClassWeight.none and config.ema is None


def test_data_needs_exactly_one_source():
    with pytest.raises(UsageError, match="exactly one"):
        DataConfig()
    with pytest.raises(UsageError, match="exactly one"):
        DataConfig(dataset="mnist", data="folder")


def test_bad_split_fraction_is_refused():
    with pytest.raises(UsageError, match="--val-split"):
        from_dict(DataConfig, {"dataset": "digits", "val_split": 0.95}, where="data")


def test_unknown_keys_are_refused():
    values = make().to_dict()
    values["epochz"] = 3
    with pytest.raises(UsageError, match="epochz"):
        TrainConfig.from_dict(values)


def test_bad_enum_value_lists_valid_ones():
    values = make().to_dict()
    values["optimizer"] = "adagrad"
    with pytest.raises(UsageError, match="adam, adamw, sgd"):
        TrainConfig.from_dict(values)


def test_read_config_options_takes_the_options_section(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"command": "train", "options": {"epochs": 7}, "versions": {}}))
    assert read_options_file(path) == {"epochs": 7}


def test_read_config_options_reports_bad_json(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(UsageError, match="Cannot read config file"):
        read_options_file(path)


def test_finetune_config_round_trips_and_resolves_phase_two():
    from imgcls_cli.config import FinetuneConfig

    config = FinetuneConfig(
        data=DataConfig(data="flowers"),
        backbone="resnet50",
        unfreeze="ALL",
        class_weight=ClassWeight.balanced,
        lr=0.01,
    )
    assert config.unfreeze == "all" and config.resolved_finetune_lr == pytest.approx(0.001)
    again = FinetuneConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.class_weight is ClassWeight.balanced
    assert FinetuneConfig(data=DataConfig(data="x"), unfreeze=0).finetune_epochs == 0
    with pytest.raises(UsageError, match="--unfreeze must be a number of layers"):
        FinetuneConfig.from_dict({"data": {"data": "x"}, "unfreeze": -1})
    with pytest.raises(UsageError, match="Unknown key"):
        FinetuneConfig.from_dict({"data": {"data": "x"}, "backbone_name": "resnet50"})


def test_the_default_recipe_and_simplecnns_own():
    from imgcls_cli.config import AugmentConfig, AugmentPreset, Schedule

    data = DataConfig(dataset="digits")
    default = TrainConfig(data=data)
    assert default.arch == "convnet" and default.resolved_schedule is Schedule.cosine
    assert default.warmup == 1 and default.default_augment is None
    assert TrainConfig(data=data, epochs=2).warmup == 0  # too short to warm up
    classic = TrainConfig(data=data, arch="simplecnn")
    assert classic.resolved_schedule is Schedule.constant and classic.warmup == 0
    assert classic.default_augment == (AugmentPreset.none, "simplecnn's classic recipe")
    given = TrainConfig(data=data, arch="simplecnn", schedule=Schedule.cosine, warmup_epochs=2)
    assert given.resolved_schedule is Schedule.cosine and given.warmup == 2
    resolved, reason = resolve_augment_with_reason(
        AugmentConfig(), None, 3, (64, 64), default=classic.default_augment
    )
    assert resolved.is_off and reason == "simplecnn's classic recipe"
    flipped = resolve_augment_with_reason(
        AugmentConfig(preset=AugmentPreset.standard),
        None,
        3,
        (64, 64),
        default=classic.default_augment,
    )
    assert flipped[0].flip.value == "horizontal"  # a preset given wins over the recipe


def test_train_batch_size_defaults_to_32_below_512_training_images_else_64():
    """Measured on small folders (BENCHMARKS.md, "Small folders"): twice the steps of a
    batch of 64 scored as well or better; large splits keep 64. A given size is kept."""
    from imgcls_cli.config import DataConfig, FinetuneConfig, TrainConfig
    from imgcls_cli.data.prepare import default_batch_size

    assert [default_batch_size(n) for n in (1, 180, 511, 512, 4000)] == [32, 32, 32, 64, 64]
    digits = DataConfig(dataset="digits")
    assert TrainConfig(data=digits).batch_size is None  # chosen from the data
    assert TrainConfig(data=digits, batch_size=8).batch_size == 8
    assert FinetuneConfig(data=digits).batch_size == 32


def test_train_epochs_default_to_20_below_512_training_images_else_10():
    """Measured on small folders (BENCHMARKS.md, "Small folders"): ten epochs of a few
    steps each left the model short of what twenty reached. Given epochs are kept, and a
    given warmup is checked against the fewest epochs the default can resolve to."""
    from imgcls_cli.config import DataConfig, TrainConfig
    from imgcls_cli.data.prepare import default_epochs
    from imgcls_cli.errors import UsageError

    assert [default_epochs(n) for n in (1, 180, 511, 512, 4000)] == [20, 20, 20, 10, 10]
    digits = DataConfig(dataset="digits")
    assert TrainConfig(data=digits).epochs is None  # chosen from the data
    assert TrainConfig(data=digits).warmup == 1
    assert TrainConfig(data=digits, epochs=2).warmup == 0
    assert TrainConfig(data=digits, warmup_epochs=9).warmup == 9
    with pytest.raises(
        UsageError, match="--warmup-epochs 10 needs --epochs above it: without --epochs"
    ):
        TrainConfig(data=digits, warmup_epochs=10)
    assert TrainConfig(data=digits, warmup_epochs=10, epochs=12).warmup == 10


def schema_classes():
    from imgcls_cli import config

    return [
        config.DataConfig,
        config.AugmentConfig,
        config.TrainConfig,
        config.FinetuneConfig,
        config.LrFindConfig,
        config.EvaluateConfig,
        config.PredictConfig,
        config.ExportConfig,
    ]


def minimal(cls) -> dict:
    """The fewest values that make a valid config of cls."""
    if cls is DataConfig:
        return {"dataset": "digits"}
    fields = dataclasses.fields(cls)
    required = any(f.name == "data" and f.default is dataclasses.MISSING for f in fields)
    return {"data": {"dataset": "digits"}} if required else {}


def lower_bounds():
    """(class, field, a value just outside its lower bound) for every bounded field."""
    for cls in schema_classes():
        hints = typing.get_type_hints(cls, include_extras=True)
        for field in dataclasses.fields(cls):
            for arg in (hints[field.name], *typing.get_args(hints[field.name])):
                if typing.get_origin(arg) is not typing.Annotated:
                    continue
                kind = typing.get_args(arg)[0]
                for bound in arg.__metadata__:
                    if getattr(bound, "gt", None) is not None:
                        yield cls, field.name, kind(bound.gt)
                    elif getattr(bound, "ge", None) is not None:
                        yield cls, field.name, kind(bound.ge - (1 if kind is int else 0.5))


@pytest.mark.parametrize(
    "cls, name, value", list(lower_bounds()), ids=lambda v: getattr(v, "__name__", str(v))
)
def test_every_bounded_field_refuses_a_value_below_it_naming_its_flag(cls, name, value):
    from imgcls_cli.config import flag_of

    with pytest.raises(UsageError, match=f"^{flag_of(name)} .*; got {value}\\.$"):
        from_dict(cls, {**minimal(cls), name: value}, where="options")


@pytest.mark.parametrize("cls", schema_classes(), ids=lambda c: c.__name__)
def test_every_config_round_trips_through_json_and_refuses_unknown_keys(cls):
    from imgcls_cli.config import to_jsonable

    config = from_dict(cls, minimal(cls), where="options")
    assert from_dict(cls, json.loads(json.dumps(to_jsonable(config))), where="options") == config
    with pytest.raises(UsageError, match="Unknown key.*colour"):
        from_dict(cls, {**minimal(cls), "colour": 1}, where="options")


@pytest.mark.parametrize("kind", ["json", "yaml"])
def test_a_hand_written_flat_config_file_is_read_as_options_by_name(tmp_path, kind):
    from conftest import make_class_folder

    from imgcls_cli.api import prepare_run

    folder = make_class_folder(tmp_path / "photos", per_class=2, size=8)
    values = {"epochs": 5, "data": str(folder), "augment": "light", "flip": "none"}
    path = tmp_path / f"options.{kind}"
    if kind == "json":
        path.write_text(json.dumps(values))
    else:
        path.write_text("".join(f"{key}: {value}\n" for key, value in values.items()))
    config, _, _ = prepare_run("train", {"lr": 0.01}, tmp_path / "run", False, None, path)
    assert (config.epochs, config.data.data, config.lr) == (5, str(folder), 0.01)
    assert config.augment.preset.value == "light" and config.augment.flip.value == "none"
    path.write_text(json.dumps({"epochz": 5}) if kind == "json" else "epochz: 5\n")
    with pytest.raises(UsageError, match="Unknown option.*epochz") as refused:
        prepare_run("train", {}, tmp_path / "run2", False, None, path)
    assert str(refused.value).startswith(f"Config file {path}: Unknown option(s) epochz")


def test_a_runs_config_with_a_relative_folder_works_from_another_folder(
    shapes_run, tmp_path, monkeypatch
):
    """config.json keeps --data as typed ('shapes'); from elsewhere, --config finds the
    folder the run recorded it trained on."""
    from imgcls_cli.api import prepare_run

    document = json.loads((shapes_run / "config.json").read_text())
    trained_on = document["resolved"]["source"]["path"]
    document["options"]["data"]["data"] = "shapes"  # as typed in the folder above it
    copy = tmp_path / "config.json"
    copy.write_text(json.dumps(document))
    monkeypatch.chdir(tmp_path)
    config, _, _ = prepare_run("train", {"epochs": 1}, tmp_path / "again", False, None, copy)
    assert config.data.data == trained_on and config.epochs == 1


def test_a_misspelt_option_name_gets_a_suggestion():
    from imgcls_cli.options import config_from_options

    for name, meant in (("epoch", "epochs"), ("image-size", "image_size")):
        with pytest.raises(UsageError, match=f"Unknown option.*{name}.*Did you mean {meant}\\?"):
            config_from_options(TrainConfig, {name: 2})
    with pytest.raises(UsageError, match=r"^Bad augment 'lite'\. Valid: auto"):
        config_from_options(TrainConfig, {"augment": "lite"})  # an option, as a flag names it
    with pytest.raises(UsageError, match="Bad augment 'lite' in config"):
        config_from_options(TrainConfig, {"augment": "lite"}, from_file=True)
