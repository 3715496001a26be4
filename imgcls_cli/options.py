"""Options as the CLI and the Python API spell them, flat (dataset, epochs, augment, flip,
…), turned into a command's config dataclasses and back: the data and augmentation
sections' fields sit beside the command's own, and --augment is the augmentation preset.
Unknown names and wrong types are refused here, with the valid names."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from imgcls_cli.config import AugmentConfig, DataConfig, RunConfig, parse_lr, parse_unfreeze
from imgcls_cli.errors import UsageError

# The flat name of an AugmentConfig field, where it differs.
AUGMENT_OPTION = {"preset": "augment"}


def option_names(cls: type[RunConfig]) -> list[str]:
    """The flat option names a command takes (dataset, epochs, augment, flip, …)."""
    own = [f.name for f in dataclasses.fields(cls) if f.name not in ("data", "augment")]
    data = [f.name for f in dataclasses.fields(DataConfig)]
    augment = [AUGMENT_OPTION.get(f.name, f.name) for f in dataclasses.fields(AugmentConfig)]
    return data + own + augment


def config_from_options(
    cls: type[RunConfig], options: dict[str, Any], from_file: bool = False
) -> Any:
    """A command's config from flat option values (flags, Python keywords, or a --config
    file's when from_file): missing options take their defaults; unknown names and wrong
    types are refused, named as the file's keys or as options."""
    unknown = sorted(set(options) - set(option_names(cls)))
    if unknown:
        raise UsageError(
            f"Unknown option(s) {', '.join(unknown)} for {cls.command}.{suggestion(unknown, cls)}"
            f" Valid: {', '.join(option_names(cls))}."
        )
    options, augment = split_augment_options(paths_as_text(options))
    data_names = {f.name for f in dataclasses.fields(DataConfig)}
    data = with_default_source({k: v for k, v in options.items() if k in data_names})
    own = {k: v for k, v in options.items() if k not in data_names}
    if isinstance(own.get("unfreeze"), str):
        own["unfreeze"] = parse_unfreeze(own["unfreeze"])
    if isinstance(own.get("lr"), str):  # --lr is text: a number, or train's 'auto'
        own["lr"] = parse_lr(own["lr"])
    where = "options" if from_file else f"{cls.command} options"
    return cls.from_dict({**own, "data": data, "augment": augment}, where=where)


def suggestion(unknown: list[str], cls: type[RunConfig]) -> str:
    """' Did you mean epochs?' for a misspelt option (a flag's spelling, image-size, too)."""
    import difflib

    names = option_names(cls)
    for name in unknown:
        close = difflib.get_close_matches(name.replace("-", "_").lower(), names, n=1)
        if close:
            return f" Did you mean {close[0]}?"
    return ""


def paths_as_text(options: dict[str, Any]) -> dict[str, Any]:
    """Path values as strings, as configs hold them (and JSON writes them)."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in options.items()}


def with_default_source(options: dict[str, Any]) -> dict[str, Any]:
    """Data options with the embedded digits when neither --dataset nor --data is given
    (no network, no files)."""
    if options.get("dataset") is None and options.get("data") is None:
        return {**options, "dataset": "digits"}
    return options


def split_augment_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the other options, AugmentConfig's fields) from flat option values."""
    names = {AUGMENT_OPTION.get(f.name, f.name): f.name for f in dataclasses.fields(AugmentConfig)}
    other = {k: v for k, v in options.items() if k not in names}
    return other, {names[k]: v for k, v in options.items() if k in names}


def options_of(config: RunConfig) -> dict[str, Any]:
    """The flat option values of a config (what --config turns into defaults)."""
    values = config.to_dict()
    data, augment = values.pop("data"), values.pop("augment")
    return {**data, **values, **{AUGMENT_OPTION.get(k, k): v for k, v in augment.items()}}
