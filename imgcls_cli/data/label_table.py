"""CSV label files: a table of (image path, label) rows, the way Kaggle and many labs ship
labelled images, read as a folder of class sub-folders is. Parsing, column finding and
path resolution need no TensorFlow, so every refusal comes before it; the files then go
through the folder's scan and decoder (data.folder.source_from_files).

Structural problems (the file is not UTF-8, has no path or label column, a row has another
number of fields than the header, no row is usable) refuse with one line naming the file
and line. Row problems skip the row and are named with the unreadable images: the file is
missing or outside the images folder, the label is empty, the same file is listed with
different labels.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
from pathlib import Path

from imgcls_cli.config import DataConfig, label_files
from imgcls_cli.data.images import is_image_file
from imgcls_cli.errors import DataLayoutError
from imgcls_cli.reporting import files_and_reasons

PATH_COLUMNS = ("path", "file", "filename", "image", "image_name", "image_id", "id")
LABEL_COLUMNS = ("label", "labels", "class", "category", "tags", "target")
PROBE_ROWS = 20  # rows whose paths decide between the CSV's folder and its images/


@dataclasses.dataclass
class LabelTable:
    """One CSV file's usable rows: (image file, label), in file order."""

    csv: Path
    images: Path  # the folder its paths are relative to
    rows: list[tuple[Path, str]]
    skipped: list[tuple[str, str]]  # ("line N", reason)
    header: list[str]
    label_column: str  # its name in the header


def read_label_tables(config: DataConfig) -> dict[str, LabelTable]:
    """{split: table} of --data (a CSV file, or a folder of train.csv, val.csv, test.csv),
    refused in one line on a structural problem. No TensorFlow."""
    data = Path(config.data or "")
    if not data.exists():
        raise DataLayoutError(f"--data {data} does not exist; give a CSV label file or a folder.")
    tables = label_files(data)
    if tables is None:
        raise DataLayoutError(f"--data {data} is not a CSV label file.")
    images = Path(config.images) if config.images else None
    if images is not None and not images.is_dir():
        raise DataLayoutError(
            f"--images {images} is not a folder; give the folder the CSV's paths are in."
        )
    read = {
        split: read_label_table(path, images, config.path_column, config.label_column)
        for split, path in tables.items()
    }
    train = read["train"]
    if not train.rows:
        raise DataLayoutError(no_usable_row(train))
    known = {label for _, label in train.rows}
    for split, table in read.items():
        extra = sorted({label for _, label in table.rows} - known)
        if split != "train" and extra:
            raise DataLayoutError(
                f"{table.csv} has labels not in {train.csv}: {', '.join(extra[:10])}"
                f"{' …' if len(extra) > 10 else ''}."
            )
    return read


def load_label_source(config: DataConfig, seed: int, min_classes: int = 2):
    """The label files as a Source (data.sources): class names are the labels, sorted
    as folder names are; the files are scanned and decoded as a folder's."""
    from imgcls_cli.backend import import_tensorflow
    from imgcls_cli.data.folder import source_from_files

    listed = listed_label_files(config)
    import_tensorflow()  # quietly: the splits are tf.data datasets
    return source_from_files(listed, config, seed, min_classes)


def listed_label_files(config: DataConfig):
    """The labelled files the label tables list (data.folder.ListedFiles), refused in one
    line on a structural problem (read_label_tables). No TensorFlow."""
    from imgcls_cli.data.folder import ListedFiles, sort_class_names

    tables = read_label_tables(config)
    class_names = sort_class_names(sorted({label for _, label in tables["train"].rows}))
    index = {name: i for i, name in enumerate(class_names)}
    root = Path(os.path.commonpath([str(table.images) for table in tables.values()]))
    data = Path(config.data or "")
    description = {
        "kind": "csv",
        "path": str(data.resolve()),
        "images": str(root),
        "label_files": {split: str(table.csv.resolve()) for split, table in tables.items()},
        "layout": "label files" if len(tables) > 1 else "label file",
    }
    return ListedFiles(
        root=root,
        files={
            split: [(file, index[label]) for file, label in table.rows]
            for split, table in tables.items()
        },
        class_names=class_names,
        where={split: table.csv for split, table in tables.items()},
        broken=[],
        warnings=[
            f"Skipped {len(table.skipped)} row(s) of {table.csv}: "
            + files_and_reasons(table.skipped)
            for table in tables.values()
            if table.skipped
        ],
        description=description,
        label_column=tables["train"].label_column,
        columns=tables["train"].header,
    )


def read_label_table(
    csv_path: Path, images: Path | None, path_column: str | None, label_column: str | None
) -> LabelTable:
    """The rows of one CSV file; `images` None: its folder, or its images/ sub-folder when
    the first paths are found there and not beside it."""
    rows, header_line = parse_rows(csv_path)
    header = rows[0][1] if rows else []
    if not header:
        raise DataLayoutError(f"{csv_path} is empty: expected a header row such as 'path,label'.")
    path_index = find_column(csv_path, header, path_column, PATH_COLUMNS, "path")
    label_index = find_column(csv_path, header, label_column, LABEL_COLUMNS, "label")
    body = rows[1:]
    for line, fields in body:
        if len(fields) != len(header) and any("\n" in field for field in fields):
            raise DataLayoutError(
                f"{csv_path} line {line}: a quote opened here is not closed on its line."
            )
        if len(fields) != len(header):
            raise DataLayoutError(
                f"{csv_path} line {line}: {len(fields)} field(s) where the header (line "
                f"{header_line}) has {len(header)}; quote a value that holds a comma."
            )
    values = [(line, f[path_index].strip(), f[label_index].strip()) for line, f in body]
    root = images or choose_images_folder(csv_path, [path for _, path, _ in values])
    finder = FileFinder(root)
    skipped: list[tuple[int, str]] = []  # (line, why)
    found: dict[Path, tuple[int, str]] = {}  # file → (line, label) of its first row
    conflicting: set[Path] = set()
    for line, value, label in values:
        if not value:
            skipped.append((line, "empty path"))
            continue
        file, problem = finder.find(value)
        if file is None:
            skipped.append((line, problem))
        elif not label:
            skipped.append((line, f"{value}: empty label"))
        elif file in found and found[file][1] != label:
            first_line, first_label = found[file]
            if file not in conflicting:  # its first row is skipped too, and counted
                conflicting.add(file)
                skipped.append((first_line, f"{value}: labelled again on line {line}"))
            skipped.append(
                (
                    line,
                    f"{value} is labelled {label!r} here and {first_label!r} on line "
                    f"{first_line}: both rows skipped",
                )
            )
        elif file in found:
            skipped.append((line, f"{value} is listed twice (line {found[file][0]})"))
        else:
            found[file] = (line, label)
    kept = [(file, label) for file, (_, label) in found.items() if file not in conflicting]
    # In file order; the warning names the file, each row its line.
    skipped = [(f"line {line}", why) for line, why in sorted(skipped, key=lambda row: row[0])]
    return LabelTable(csv_path, finder.root, kept, skipped, header, header[label_index].strip())


def parse_rows(csv_path: Path) -> tuple[list[tuple[int, list[str]]], int]:
    """(line number, fields) of each non-blank row, and the header's line number."""
    try:
        raw = csv_path.read_bytes()
    except OSError as error:
        raise DataLayoutError(f"Cannot read {csv_path}: {error.strerror or error}.") from None
    try:
        text = raw.decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a BOM
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise DataLayoutError(
            f"{csv_path} line {line} is not UTF-8 text; save the file as UTF-8 "
            "(Excel: 'CSV UTF-8')."
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, list[str]]] = []
    start = 1
    try:
        for fields in reader:
            if any(field.strip() for field in fields):
                rows.append((start, fields))
            start = reader.line_num + 1
    except csv.Error as error:
        raise DataLayoutError(
            f"{csv_path} line {reader.line_num}: not valid CSV ({error})."
        ) from None
    return rows, rows[0][0] if rows else 1


def find_column(
    csv_path: Path, header: list[str], named: str | None, candidates: tuple[str, ...], role: str
) -> int:
    """The index of the `role` column: the one named (--path-column, --label-column), or
    the first header that is one of the candidates, case-insensitively."""
    names = [name.strip().lower() for name in header]
    flag = f"--{role}-column"
    if named is not None:
        if named.strip().lower() in names:
            return names.index(named.strip().lower())
        raise DataLayoutError(
            f"{csv_path} has no column {named!r} ({flag}); its columns: {', '.join(header)}."
        )
    for candidate in candidates:
        if candidate in names:
            return names.index(candidate)
    separated = next((sep for sep in (";", "\t", "|") if any(sep in h for h in header)), None)
    if len(header) == 1 and separated:
        shown = "a tab" if separated == "\t" else f"'{separated}'"
        raise DataLayoutError(
            f"{csv_path} seems separated by {shown}, not commas: save it as comma-separated "
            "values (CSV)."
        )
    raise DataLayoutError(
        f"{csv_path} has no {role} column (looked for {', '.join(candidates)} in its header "
        f"row: {', '.join(header)}); name it with {flag} NAME, or add a header row."
    )


def choose_images_folder(csv_path: Path, paths: list[str]) -> Path:
    """The CSV's folder, or its images/ sub-folder when more of the first paths are
    found there."""
    beside = csv_path.parent
    inside = beside / "images"
    if not inside.is_dir():
        return beside
    probe = [path for path in paths if path][:PROBE_ROWS]
    score = lambda root: sum(FileFinder(root).find(p)[0] is not None for p in probe)  # noqa: E731
    return inside if score(inside) > score(beside) else beside


class FileFinder:
    """Resolves a CSV's path values inside one folder: relative to it, or absolute but in
    it; a name without an extension is the one image file with that stem (Planet's CSVs
    list `train_0`). A path that leaves the folder (`..`, another absolute path) is
    refused, so a CSV from elsewhere cannot make imgcls read other files."""

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.abspath(root))
        self._stems: dict[Path, dict[str, list[str]]] = {}

    def find(self, value: str) -> tuple[Path | None, str]:
        """(the file, "") or (None, why not). Windows' backslashes work as slashes."""
        if os.sep == "/" and "\\" in value and not (self.root / value).exists():
            value = value.replace("\\", "/")
        path = Path(os.path.normpath(self.root / value))  # an absolute value replaces root
        if path != self.root and self.root not in path.parents:
            return None, f"{value} is outside the images folder {self.root}"
        if path.is_file():
            return path, ""
        if path.exists():
            return None, f"{value} is not a file"
        if not path.suffix or not is_image_file(path):
            matches = self.with_stem(path.parent).get(path.name, [])
            if len(matches) == 1:
                return path.parent / matches[0], ""
            if matches:
                return None, f"{value} matches {len(matches)} files: {', '.join(matches[:3])}"
        if path.is_symlink():
            return path, ""  # broken: the scan names it with the unreadable files
        return None, f"{value}: no such file in {self.root}"

    def with_stem(self, folder: Path) -> dict[str, list[str]]:
        """stem → image file names of a folder, listed once."""
        if folder not in self._stems:
            stems: dict[str, list[str]] = {}
            try:
                names = sorted(os.listdir(folder))
            except OSError:
                names = []
            for name in names:
                if is_image_file(Path(name)):
                    stems.setdefault(Path(name).stem, []).append(name)
            self._stems[folder] = stems
        return self._stems[folder]


def no_usable_row(table: LabelTable) -> str:
    """Why a CSV gave no image to train on, in one line."""
    if not table.skipped:
        return f"{table.csv} has a header but no rows."
    where, reason = table.skipped[0]
    return (
        f"No usable row in {table.csv}: all {len(table.skipped)} skipped (e.g. {where}: "
        f"{reason}); give the folder its paths are relative to with --images DIR."
    )
