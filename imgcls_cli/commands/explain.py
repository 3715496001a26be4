"""`imgcls explain`: Grad-CAM heatmaps of a run's model on image files, as overlays and a
grid in an explain folder (the heatmaps themselves: report/gradcam.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imgcls_cli import rundir
from imgcls_cli.errors import ImgclsError, OutputRefused
from imgcls_cli.report.gradcam import (
    BATCH,
    METHOD_NAMES,
    Explained,
    GradCam,
    class_index,
    explain_paths,
    require_keras_model,
)
from imgcls_cli.reporting import nothing_read
from imgcls_cli.rundir.files import (
    staging_dir,
    swap_folder,
    write_bytes_atomic,
    write_json_atomic,
)
from imgcls_cli.rundir.load import LoadedRun
from imgcls_cli.rundir.owned import FolderMark, check_owned

GRID_PNG = "grid.png"
GRID_LIMIT = 60  # overlays in grid.png (each image has its own file as well)


def default_output(run: LoadedRun) -> Path:
    return Path(run.run_dir) / rundir.EXPLAIN_DIR


def check_output(output: Path) -> None:
    """An --output folder may be replaced only when an earlier `imgcls explain` wrote it
    and it holds nothing but what that run listed; anything else is refused, untouched."""
    if not output.exists():
        return
    if not output.is_dir():
        raise OutputRefused(f"--output {output} is a file; give a folder for the heatmaps.")
    check_owned(output, EXPLAIN_MARK)


# An explain folder is ours when its explain.json lists the files it wrote.
EXPLAIN_MARK = FolderMark(
    rundir.EXPLAIN_FILE,
    lambda document: (
        document.get("command") == "explain" and isinstance(document.get("files"), list)
    ),
    lambda document: {rundir.EXPLAIN_FILE, *map(str, document["files"])},
    unmarked="exists and was not written by imgcls explain; imgcls does not overwrite it: "
    "choose another --output.",
)


class OverlayNames:
    """A file name per explained image: its stem, made unique (a.png, a-2.png, …)."""

    def __init__(self) -> None:
        self.taken = {rundir.EXPLAIN_FILE, GRID_PNG}

    def __call__(self, path: str) -> str:
        stem = Path(path).stem or "image"
        name, count = f"{stem}.png", 1
        while name in self.taken:
            count += 1
            name = f"{stem}-{count}.png"
        self.taken.add(name)
        return name


def tile_name(item: Explained) -> str:
    """The file's name over its tile in grid.png; for a second file of the same name,
    its overlay's (a-2.png), which tells the two apart as the folder does."""
    from imgcls_cli.report import plots  # matplotlib: loaded when drawing

    if Path(item.file or "").stem != Path(item.path).stem:
        return str(item.file)
    return plots.short_name(item.path)


def caption(item: Explained) -> str:
    text = f"{item.label} ({item.confidence:.0%})"
    if item.explained != item.label:
        text += f"\nheatmap for {item.explained} ({item.probability:.0%})"
    return text


def check_layer_name(model_path: Path, name: str) -> None:
    """--layer names a layer of the saved model that may hold a feature map, checked in
    the file before the model loads: no such layer, or one that cannot (the input, pixel
    scaling, pooling, dropout, padding, the classifier), is refused here. Which layer
    holds a 4-D map is known for sure once the model has loaded
    (report.gradcam.find_target_layer); files whose layers cannot all be read are left to
    that check."""
    from imgcls_cli.report.gradcam import holds_no_feature_map, layer_refused, names_layer
    from imgcls_cli.rundir.load import saved_layers

    layers = saved_layers(model_path)
    if layers is None:
        return

    def may_be_a_map(kind: str) -> bool:  # without shapes: the classifier's layers are 2-D
        return kind not in ("Dense", "Flatten") and not holds_no_feature_map(kind)

    maps = [path.rsplit("/", 1)[-1] for path, kind in layers if may_be_a_map(kind)]
    named = [kind for path, kind in layers if names_layer(name, path)]
    if any(may_be_a_map(kind) for kind in named):
        return
    raise layer_refused(name, maps, named[0] if named else None)


def nothing_explained(failed: list[tuple[str, str]]) -> ImgclsError:
    """The one line for a call in which no input could be read: nothing is written."""
    return ImgclsError(nothing_read(failed, "explained"))


def run_explain(
    run: LoadedRun,
    inputs: list[Any],
    output: Path | None,
    class_name: str | None = None,
    layer: str | None = None,
    method: str = "auto",
) -> dict[str, Any]:
    """Explain each input (predict.Input: a path, or why it names nothing) and write an
    overlay per image, the grid and explain.json; returns explain.json's content with
    `folder`. Inputs go BATCH at a time, each overlay written as it is drawn, so a large
    folder needs no more memory than a small one. The folder is built beside `output` and
    moved into place complete (an earlier explanation there is replaced only then)."""
    import shutil

    from imgcls_cli.report import plots

    require_keras_model(run)
    output = Path(output) if output is not None else default_output(run)
    check_output(output)  # before any work: it may be a folder of the user's
    class_index(run, class_name)
    cam = GradCam(run.model, layer, method)
    output.parent.mkdir(parents=True, exist_ok=True)
    building = staging_dir(output.parent, f".{output.name}.new-")
    records, tiles, name_of = [], [], OverlayNames()
    try:
        for start in range(0, len(inputs), BATCH):
            chunk = inputs[start : start + BATCH]
            readable = [item.path for item in chunk if item.error is None]
            explained = iter(explain_paths(readable, run, cam, class_name))
            for given in chunk:
                if given.error is not None:
                    records.append(Explained(given.path, error=given.error).to_dict())
                    continue
                item = next(explained)
                if item.error is None:
                    item.file = name_of(item.path)
                    png = plots.gradcam_png(
                        item.image, item.heatmap, caption(item), item.path, METHOD_NAMES[cam.method]
                    )
                    write_bytes_atomic(building / item.file, png)
                    if len(tiles) < GRID_LIMIT:
                        named = f"{tile_name(item)}\n{caption(item)}"
                        tiles.append((item.image, item.heatmap, named))
                records.append(item.to_dict())
        files = [record["file"] for record in records if record["file"]]
        if not files:  # every input failed as it decoded: the folder keeps what it held
            raise nothing_explained([(record["path"], record["error"]) for record in records])
        if tiles:
            write_bytes_atomic(building / GRID_PNG, plots.gradcam_grid_png(tiles))
            files.append(GRID_PNG)
        document = {
            "command": "explain",
            "model": str(run.run_dir),
            "method": cam.method,
            "layer": cam.target.path,
            "feature_map": list(cam.target.shape),
            "files": files,
            "images": records,
        }
        write_json_atomic(building / rundir.EXPLAIN_FILE, document)
        swap_folder(building, output, check_output)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return {"folder": str(output), **document}
