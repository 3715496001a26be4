"""The run directory: naming, claiming, layout, atomic writes and resume planning. Its
records' keys live in record.py, the check that a folder is imgcls' own in owned.py, and
loading a run's model in load.py.

Layout (the contract every command shares):
    model.keras   the trained model; input is raw 0-255 pixels at its input size
    labels.json   class names in index order
    config.json   resolved options, data source, versions
    history.csv   one row per epoch
    metrics.json  final validation and test metrics
    checkpoints/  model + optimizer + progress after every epoch, for --resume
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import itertools
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from imgcls_cli.errors import DataError, OutputRefused, RunDirError, UsageError
from imgcls_cli.rundir.files import (
    config_document_named,
    read_json,
    save_model_atomic,
    staging_dir,
    swap_folder,
    write_json_atomic,
)
from imgcls_cli.rundir.owned import FolderMark, check_owned
from imgcls_cli.rundir.record import Resolved, RunRecord, same_fingerprints

RUNS_ROOT = Path("runs")
MODEL_FILE = "model.keras"
LABELS_FILE = "labels.json"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
CHECKPOINTS_DIR = "checkpoints"
EXPORT_DIR = "export"  # imgcls export's folders: export/<format>[-<quantize>]/
EXPORT_FILE = "export.json"  # the mark of an export folder
LOGS_DIR = "logs"  # TensorBoard event files (engine/summaries.py)
TRAINING_PNG = "training.png"  # the training curves
EXPLAIN_DIR = "explain"  # imgcls explain's default output folder
EXPLAIN_FILE = "explain.json"  # the mark of an explain folder


# evaluate's report files (written into the run directory by default).
EVALUATION_FILE = "evaluation.json"
CONFUSION_CSV = "confusion_matrix.csv"
CONFUSION_PNG = "confusion_matrix.png"
MISTAKES_CSV = "mistakes.csv"
MISTAKES_PNG = "mistakes.png"
TOP_LOSSES_PNG = "top_losses.png"
REPORT_FILES = (EVALUATION_FILE, CONFUSION_CSV, CONFUSION_PNG)  # written by every evaluation
EVALUATION_FILES = (*REPORT_FILES, MISTAKES_CSV, MISTAKES_PNG, TOP_LOSSES_PNG)
# What imgcls writes into a run directory: --force replaces a folder only when it holds
# nothing else, so a user's own files are never deleted with it.
RUN_ENTRIES = frozenset(
    {MODEL_FILE, LABELS_FILE, CONFIG_FILE, HISTORY_FILE, METRICS_FILE, CHECKPOINTS_DIR, EXPORT_DIR}
    | {LOGS_DIR, TRAINING_PNG, EXPLAIN_DIR}
    | set(EVALUATION_FILES)
)
RUN_COMMANDS = ("train", "finetune")


def default_run_dir(command: str, name: str, root: Path = RUNS_ROOT) -> Path:
    """runs/<command>-<name>: the first choice; claim_run_dir adds -2, -3, … when taken."""
    return root / f"{command}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}"


def plan_run_dir(config: Any, output: Path | None, force: bool) -> tuple[Path, bool]:
    """(run directory, resuming) for a new run of `config` (a TrainConfig or
    FinetuneConfig): claimed at once, so no other run can take it. A restarted
    multi-worker job, which reruns the same command, resumes instead; its non-chief
    workers claim nothing (only the chief writes the run)."""
    from imgcls_cli.backend import is_chief_task
    from imgcls_cli.config import Strategy

    data_paths = config.data.protected_paths
    if output is not None:
        check_apart_from_data(output, data_paths)
    if config.strategy == Strategy.multi_worker:
        # As tf.keras' BackupAndRestore does: continue from the last checkpoint; a
        # finished run is left as it is, as on one machine (every worker that sees the
        # shared disk refuses alike, so none waits for a peer that stopped).
        if is_same_run(output, config.command, config.to_dict()):
            if not is_finished(Path(output)):
                return Path(output), True
            if not force:
                raise OutputRefused(
                    f"Run directory {output} holds this run, finished: rerunning it trains "
                    "nothing new. Pass --force to train it again, --resume --epochs N "
                    "to train it longer, or choose another --output."
                )
        if not is_chief_task():
            return Path(output) if output else default_run_dir(
                config.command, config.run_name
            ), False
    run_dir = claim_run_dir(output, config.command, config.run_name, force)
    try:
        check_apart_from_data(run_dir, data_paths)  # the default runs/ may lie in the data
    except UsageError:
        release_claim(run_dir)
        raise
    return run_dir, False


def claim_run_dir(
    output: Path | None, command: str, name: str, force: bool, root: Path = RUNS_ROOT
) -> Path:
    """Create the directory this run writes, atomically, so two runs started together
    never share one. Returns it: `output` itself, a new runs/<command>-<name>[-N], or,
    when --force replaces an earlier run in `output`, a staging folder beside it that is
    swapped in by finish_run_dir (a failed forced run leaves the earlier one intact).

    The claim is a config.json naming the command (the mark of an imgcls run);
    release_claim undoes it when the run stops before it starts training.
    """
    if output is None:
        stem = default_run_dir(command, name, root)
        parents = missing_parents(stem)
        for suffix in itertools.count(1):
            candidate = stem if suffix == 1 else stem.with_name(f"{stem.name}-{suffix}")
            if _make_dir(candidate):
                return _write_claim(candidate, command, created=True, parents=parents)
    output = Path(output)
    check_output(output)
    parents = missing_parents(output)
    if _make_dir(output):
        return _write_claim(output, command, created=True, parents=parents)
    if not any(output.iterdir()):
        return _write_claim(output, command, created=False)
    check_replaceable(output)  # says why when it is not an imgcls run at all
    if not force:
        raise OutputRefused(
            f"Run directory {output} already exists; pass --force to replace it "
            "or choose another --output."
        )
    real = output.resolve()
    staging = staging_dir(real.parent, f"{real.name}.new-")
    return _write_claim(staging, command, created=True, replaces=real)


def check_output(output: Path) -> None:
    """An --output that is a file, or a link that leads nowhere, is refused."""
    if output.is_symlink() and not output.exists():
        raise OutputRefused(f"--output {output} is a broken symbolic link; give a directory path.")
    if output.exists() and not output.is_dir():
        raise OutputRefused(f"--output {output} is a file; give a directory path.")


def check_apart_from_data(
    run_dir: Path, data_paths: list[Path], what: str = "the data folder {}"
) -> None:
    """An output may not be a data folder, lie inside one, or contain one: a --force
    would delete the data, and the scan would read the output's files as images."""
    run = Path(run_dir).resolve()
    for data in data_paths:
        real = Path(data).resolve()
        if run == real or real in run.parents or run in real.parents:
            raise UsageError(
                f"--output {run_dir} overlaps {what.format(as_given(Path(data)))}; choose "
                "an --output outside it (not containing it either)."
            )


def check_apart_from_run_data(
    output: Path, run_dir: Path, data_paths: list[Path], what: str = "the data folder {}"
) -> None:
    """An output made from a run (a report, an export, heatmaps) keeps apart from the
    data the command reads (`data_paths`, named by `what`) and from the folder the run
    trained on: its files there would join that data (a new class, or more images of one)."""
    check_apart_from_data(output, data_paths, what)
    check_apart_from_data(output, training_data(run_dir), "the folder the run trained on ({})")


def as_given(path: Path) -> Path:
    """An absolute path inside the current folder, as a relative one (as users type it)."""
    if path.is_absolute():
        with contextlib.suppress(ValueError):
            return path.relative_to(Path.cwd())
    return path


def training_data(run_dir: Path) -> list[Path]:
    """What a run trained on, as its output must keep apart from it: the image folder or
    label files its config.json records (nothing for TFDS and embedded data, or an
    unreadable record)."""
    from imgcls_cli.config import protected_paths

    try:
        source = read_run_record(run_dir).resolved.source
    except RunDirError:
        return []
    if source.kind in ("folder", "csv") and source.path:
        return protected_paths(source.path)
    return []


def config_document(run_dir: Path | None) -> dict[str, Any]:
    """run_dir's config.json as a dict, or {} when there is none or it is unreadable
    (for questions about a folder; read_run_record reports such problems instead)."""
    return config_document_named(run_dir, CONFIG_FILE)


def is_export_dir(path: Path) -> bool:
    """Whether path is a folder written by `imgcls export`."""
    return isinstance(config_document_named(path, EXPORT_FILE).get("artifact"), str)


def epochs_after_ending(run_dir: Path) -> int | None:
    """Epochs history.csv holds beyond those the run's metrics.json was written after: 0
    for a run as its ending left it, more for one stopped while --resume --epochs trained
    it longer (its model.keras and metrics.json are still the earlier ending's); None
    without a readable metrics.json (a run stopped before or during its first ending)."""
    try:
        metrics = json.loads((Path(run_dir) / METRICS_FILE).read_text())
        ended_after = metrics.get("epochs_trained")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(ended_after, int):  # older records: taken as they were written
        return 0
    return max(0, len(read_history(run_dir)) - ended_after)


def is_finished(run_dir: Path) -> bool:
    """Whether a run directory's training ended: its model and then its metrics were
    written after its last epoch."""
    return (Path(run_dir) / MODEL_FILE).is_file() and epochs_after_ending(run_dir) == 0


def holds_model(path: Path) -> bool:
    """Whether path is a finished run directory (with its model.keras) or an export."""
    return (path / MODEL_FILE).is_file() or is_export_dir(path)


def iter_exports(run_dir: Path) -> Iterator[Path]:
    """The export folders of a run, by name."""
    root = Path(run_dir) / EXPORT_DIR
    if root.is_dir():
        yield from sorted(p for p in root.iterdir() if p.is_dir() and is_export_dir(p))


def run_command(run_dir: Path) -> str | None:
    """The command that made the run in run_dir (config.json's `command`), or None when
    run_dir is not an imgcls run directory."""
    command = config_document(run_dir).get("command")
    return command if command in RUN_COMMANDS else None


# A run directory is ours when its config.json names a training command.
RUN_MARK = FolderMark(
    CONFIG_FILE,
    lambda document: document.get("command") in RUN_COMMANDS,
    lambda document: set(RUN_ENTRIES),
    unmarked="is not an imgcls run directory, and imgcls replaces nothing else; "
    "choose another --output.",
)


def check_replaceable(run_dir: Path) -> None:
    """Refuse unless run_dir is an imgcls run holding only what imgcls writes there."""
    check_owned(run_dir, RUN_MARK, empty_ok=False)


def claim_of(run_dir: Path) -> dict[str, Any] | None:
    """The claim this process's claim_run_dir wrote in run_dir (read it before the run
    replaces config.json); None for another process's (a multi-worker chief's)."""
    claim = config_document(run_dir).get("claim")
    return claim if isinstance(claim, dict) and claim.get("pid") == os.getpid() else None


def release_claim(run_dir: Path, claim: dict[str, Any] | None = None) -> None:
    """Undo claim_run_dir when the run stopped before it saved a checkpoint: nothing in
    it can be resumed, so what the run wrote goes (the whole directory when the claim
    created it, else imgcls' own entries of the empty folder it was given), and the
    folders the claim made. A run with a checkpoint is left for --resume. `claim`: as
    claim_of read it when the run began; by default, config.json's, if it still holds one."""
    run_dir = Path(run_dir)
    claim = claim if claim is not None else claim_of(run_dir)
    if not claim or has_checkpoint(run_dir):
        return
    if not claim.get("created"):  # the user's empty folder: only what the run wrote goes
        for entry in (run_dir / name for name in RUN_ENTRIES):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        return
    shutil.rmtree(run_dir, ignore_errors=True)  # made by this run, moments ago
    # The folders the claim made (runs/ on a first run) go too, innermost first.
    for folder in map(Path, claim.get("parents", [])):
        with contextlib.suppress(OSError):  # not empty: keep whatever is there
            folder.rmdir()


def has_checkpoint(run_dir: Path) -> bool:
    """Whether a training saved a checkpoint in run_dir (any phase's): what --resume needs."""
    return any((Path(run_dir) / CHECKPOINTS_DIR).rglob("checkpoint"))


def finish_run_dir(run_dir: Path) -> Path:
    """Where the finished run lives: run_dir, or the run it replaces (--force), which is
    swapped out for it only now, after checking that it still holds only imgcls files."""
    path = Path(run_dir) / CONFIG_FILE
    document = read_json(path, "the run's options")
    target = document.pop("replaces", None)
    if target is None:
        return Path(run_dir)
    target = Path(target)
    swap_folder(Path(run_dir), target, check_replaceable, lambda: write_json_atomic(path, document))
    return target


@dataclasses.dataclass
class TrainResult:
    """What train and finetune return: the finished run and its trained model."""

    run_dir: Path
    history: list[dict[str, Any]]
    metrics: dict[str, Any]
    model: Any
    is_chief: bool = True


def begin_run(
    run_dir: Path,
    work_dir: Path,
    config: Any,
    resolved: Resolved,
    versions: dict[str, str],
    class_names: list[str],
    resume: bool,
) -> list[dict[str, Any]]:
    """The history so far (empty for a new run). The chief writes config.json and
    labels.json before training starts (so a run in progress says what it is), or on
    resume records the options that changed; other workers, whose work_dir is scratch,
    write nothing here."""
    if resume:
        check_same_classes(run_dir, class_names)
        check_same_data(run_dir, resolved.source.fingerprints, resolved.split_sizes)
    if work_dir != run_dir:
        return read_history(run_dir) if resume else []
    if resume:
        record_resume(run_dir, config.to_dict(), resolved)
        return read_history(run_dir)
    record = RunRecord(config.command, config.to_dict(), resolved, versions)
    write_run_config(run_dir, record.to_dict())
    write_json_atomic(Path(run_dir) / LABELS_FILE, class_names)
    return []


def read_run_record(run_dir: Path) -> RunRecord:
    """config.json, or an empty record for a run directory without one (predict does not
    need it)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        return RunRecord(record_version=None)
    document = read_json(path, "it records how the run was trained")
    if not isinstance(document, dict):
        raise RunDirError(f"{path} must hold a JSON object.")
    return RunRecord.from_dict(document)


def read_options_file(path: Path, command: str | None = None) -> dict[str, Any]:
    """The options a --config file holds: a run's config.json (its 'options' section), or
    a hand-written file of options by name (`{"epochs": 5, "data": "./photos"}`), JSON
    or, named *.yaml / *.yml, YAML. `command`: refuse a config.json another command wrote."""
    try:
        text = Path(path).read_text()
        document = parse_options_text(text, Path(path))
    except FileNotFoundError:
        raise UsageError(f"Config file {path} does not exist.") from None
    except (OSError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError(
            f"Cannot read config file {path}: {first}. Give a run's config.json or a file of "
            "options by name."
        ) from None
    if not isinstance(document, dict):
        raise UsageError(f"Config file {path} must hold a mapping of option names to values.")
    written_by = document.get("command")
    if command and written_by and written_by != command:
        raise UsageError(
            f"{path} is the config of an `imgcls {written_by}` run; `imgcls {command} "
            f"--config` needs one written by `imgcls {command}`."
        )
    options = document.get("options", document)
    if not isinstance(options, dict):
        raise UsageError(f"Config file {path}: 'options' must be a JSON object.")
    return options


def parse_options_text(text: str, path: Path) -> Any:
    """JSON, or YAML for a *.yaml / *.yml file (PyYAML, imported only then). Raises
    ValueError for text that does not parse."""
    if path.suffix.lower() not in (".yaml", ".yml"):
        return json.loads(text)
    try:
        import yaml
    except ImportError:
        raise UsageError(
            f"Config file {path} is YAML, which needs PyYAML: pip install pyyaml "
            "(or write it as JSON)."
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(str(error)) from None


def recorded_data_folder(config_file: Path, data: str | None) -> str | None:
    """The absolute folder a run's config.json says it trained on, for its options'
    `data` when that relative path does not lead there from here (--config from another
    folder); `data` itself otherwise."""
    if data is None or Path(data).is_absolute() or Path(data).exists():
        return data
    try:
        source = RunRecord.from_dict(json.loads(Path(config_file).read_text())).resolved.source
    except Exception:  # noqa: BLE001 - a hand-edited file: keep the path as written
        return data
    if source.kind in ("folder", "csv") and source.path and Path(source.path).exists():
        return source.path
    return data


def is_flat_options(options: dict[str, Any]) -> bool:
    """Options by name (data, epochs, augment, flip, …) rather than config.json's
    sections, whose 'data' is an object."""
    return not isinstance(options.get("data"), dict)


def read_run_options(run_dir: Path, command: str) -> dict[str, Any]:
    """The saved options of the `command` run in run_dir (for --resume)."""
    if Path(run_dir).is_file():
        raise RunDirError(
            f"{run_dir} is a file: --resume takes the run directory that {command} printed "
            f"when it stopped ({Path(run_dir).parent}?)."
        )
    if not Path(run_dir).is_dir():
        raise RunDirError(
            f"{run_dir} does not exist: --resume takes the run directory that {command} "
            "printed when it stopped."
        )
    if not (Path(run_dir) / CONFIG_FILE).is_file():
        raise RunDirError(
            f"{Path(run_dir) / CONFIG_FILE} is missing: --resume needs a run directory made "
            f"by {command}."
        )
    record = read_run_record(run_dir)
    if record.command != command:
        raise UsageError(f"{run_dir} was not made by `imgcls {command}`; cannot resume it here.")
    return record.options


def recorded_learning_rate(run_dir: Path) -> float:
    """The learning rate config.json records under `resolved` (the number `train --lr
    auto` found), for --resume, which must not sweep again."""
    rate = read_run_record(run_dir).resolved.learning_rate
    if rate is None or not rate > 0:
        raise RunDirError(
            f"{Path(run_dir) / CONFIG_FILE} records no learning rate "
            "(resolved.learning_rate) to resume --lr auto with; start a new run."
        )
    return float(rate)


def check_same_data(
    run_dir: Path, fingerprints: dict[str, Any] | None, split_sizes: dict[str, int] | None
) -> None:
    """A resumed run must find the images it started on: a folder or label file whose
    file lists (the fingerprints recorded per split) changed would redraw the splits, so
    the resumed epochs would train on images validated or tested before. Refused, with
    the counts; runs recorded without fingerprints (TFDS, older runs) are not checked.
    --resume checks a folder or label file before TensorFlow starts (api.prepare_run), and
    every source once it is read (begin_run)."""
    then = read_run_record(run_dir).resolved
    recorded, current = then.source.fingerprints, fingerprints or {}
    if not recorded or (
        recorded.keys() == current.keys()
        and all(same_fingerprints(recorded[name], current[name]) for name in recorded)
    ):
        return
    splits = [name for name in ("train", "val", "test") if name in (then.split_sizes or {})]

    def counts(sizes: dict[str, int] | None) -> str:
        return "/".join(str((sizes or {}).get(name, 0)) for name in splits)

    changed = (
        f"{'/'.join(splits)} images {counts(then.split_sizes)} then, {counts(split_sizes)} now"
        if then.split_sizes != split_sizes
        else "as many images, but files renamed, edited or relabelled, or listed in another order"
    )
    raise DataError(
        f"The data of {run_dir} changed since the run started ({changed}): resumed, it "
        "would draw its splits again and could train on images it validated or tested "
        "before. Put the data back as it was to resume, or start a new run."
    )


def check_same_classes(run_dir: Path, class_names: list[str]) -> None:
    """A resumed run's model has one output for each class it started with: data whose
    classes changed (a class folder added, even empty, or removed) is refused."""
    then = read_labels(run_dir)
    if then == list(class_names):
        return
    added = [name for name in class_names if name not in then]
    removed = [name for name in then if name not in class_names]
    changes = [
        f"{verb} {', '.join(names[:5])}{' …' if len(names) > 5 else ''}"
        for verb, names in (("added", added), ("removed", removed))
        if names
    ] or ["in another order"]
    raise DataError(
        f"The classes of {run_dir} changed since the run started ({len(then)} then, "
        f"{len(class_names)} now: {'; '.join(changes)}): its model has one output for each "
        "class it started with. Put the data back as it was to resume, or start a new run."
    )


# What a --resume may settle anew (--epochs, --strategy); the rest stays as first recorded
# (the data as the run started on it, --lr auto's sweep).
RESUMED_FIELDS = ("epochs", "phases", "strategy", "replicas", "global_batch_size")


def record_resume(run_dir: Path, options: dict[str, Any], resolved: Resolved) -> None:
    """Record in config.json the options of a --resume (more epochs, another strategy)
    and what they resolved to."""
    path = Path(run_dir) / CONFIG_FILE
    document = read_json(path, "the run's options")
    settled = {k: v for k, v in resolved.to_dict().items() if k in RESUMED_FIELDS}
    recorded = document.get("resolved") if isinstance(document.get("resolved"), dict) else {}
    write_json_atomic(path, {**document, "options": options, "resolved": {**recorded, **settled}})


def save_result(run_dir: Path, model: Any, metrics: dict[str, Any]) -> None:
    """The trained model, then metrics.json: a run with metrics always has its model."""
    save_model_atomic(model, Path(run_dir) / MODEL_FILE)
    write_json_atomic(Path(run_dir) / METRICS_FILE, metrics)


def close_run(run_dir: Path, work_dir: Path) -> Path:
    """Where the finished run lives. A non-chief worker's scratch copy (see
    engine.devices.worker_dir) is not kept; the chief's run takes the place of the run it was
    forced over (finish_run_dir)."""
    if work_dir != run_dir:
        shutil.rmtree(work_dir, ignore_errors=True)
        return run_dir
    return finish_run_dir(run_dir)


def write_run_config(run_dir: Path, document: dict[str, Any]) -> None:
    """config.json of a run that starts training, in place of its claim (keeping the
    run it replaces). Multi-worker chiefs claim nothing: the directory may be new."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    claim = config_document(run_dir)
    if "replaces" in claim:
        document = {**document, "replaces": claim["replaces"]}
    write_json_atomic(Path(run_dir) / CONFIG_FILE, document)


def missing_parents(path: Path) -> list[str]:
    """The folders above `path` that do not exist yet, innermost first: what a claim
    creates and a released claim removes."""
    missing = []
    for parent in Path(path).absolute().parents:
        if parent.exists():
            break
        missing.append(str(parent))
    return missing


def _make_dir(path: Path) -> bool:
    """mkdir that reports whether this call created it (False: it existed already)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir()
    except FileExistsError:
        return False
    return True


def _write_claim(
    run_dir: Path,
    command: str,
    created: bool,
    replaces: Path | None = None,
    parents: list[str] | None = None,
) -> Path:
    """config.json, created exclusively: of two runs claiming one folder, one fails here."""
    document: dict[str, Any] = {
        "command": command,
        "claim": {"pid": os.getpid(), "created": created, "parents": parents or []},
    }
    if replaces is not None:
        document["replaces"] = str(replaces)
    try:
        fd = os.open(run_dir / CONFIG_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        raise OutputRefused(
            f"Run directory {run_dir} was just taken by another run; choose another --output."
        ) from None
    with os.fdopen(fd, "w") as handle:
        json.dump(document, handle)
    return run_dir


def is_same_run(run_dir: Path | None, command: str, options: dict[str, Any]) -> bool:
    """Whether run_dir holds a `command` run started with exactly these options."""
    record = RunRecord.from_dict(config_document(run_dir))
    return record.command == command and record.options == options


def read_history(run_dir: Path) -> list[dict[str, float]]:
    """history.csv rows as numbers (for resuming); an absent file is an empty history."""
    path = Path(run_dir) / HISTORY_FILE
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return [
            {key: parse_cell(key, v) for key, v in row.items() if v != ""}
            for row in csv.DictReader(handle)
        ]


def parse_cell(key: str, value: str) -> Any:
    """A history.csv value: the epoch as int, the phase name as text, the rest as float."""
    if key == "epoch":
        return int(value)
    try:
        return float(value)
    except ValueError:
        return value


def epochs_trained(run_dir: Path, phase: str | None = None) -> int:
    """Epochs history.csv records (of one finetune `phase`, when given)."""
    rows = read_history(run_dir)
    return sum(1 for row in rows if phase is None or row.get("phase") == phase)


def read_labels(run_dir: Path) -> list[str]:
    labels = read_json(Path(run_dir) / LABELS_FILE, "the run directory needs the class names")
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise RunDirError(f"{Path(run_dir) / LABELS_FILE} must be a JSON list of class names.")
    return labels
