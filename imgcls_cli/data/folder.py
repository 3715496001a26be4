"""A folder of images with one sub-folder per class (optionally inside train/ val/ test/)."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from imgcls_cli.backend import traced_as_written
from imgcls_cli.config import DataConfig
from imgcls_cli.data import scan_index
from imgcls_cli.data.images import (
    EXTENSIONS_LISTED,
    PLAIN_DECODERS,
    RESIZE_METHODS,
    ImageFacts,
    UnreadableImage,
    check_image,
    decode_plain,
    gray_to_rgb,
    is_image_file,
    load_image,
    plain_decoder,
    plain_route,
    prepare_images,
    resize_by,
    resize_method,
    rgb_to_gray,
    unreadable_reason,
)
from imgcls_cli.data.sources import Source, Split, StreamFailures, split_arrays
from imgcls_cli.errors import DataError, DataLayoutError
from imgcls_cli.reporting import files_and_reasons

SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}


def sort_class_names(names: list[str]) -> list[str]:
    """Sorted folder names; numerically when all are integers, so '2' comes before '10'."""
    if names and all(name.isdigit() for name in names):
        return sorted(names, key=int)
    return sorted(names)


def class_folders(root: Path) -> list[str]:
    return sort_class_names(
        [p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    )


def list_images(folder: Path) -> tuple[list[Path], list[Path]]:
    """Image files below a class folder (recursively), hidden files and folders skipped,
    and the other broken symbolic links there (a linked folder that is gone, say).

    A broken link named like an image is listed as an image, so that the check skips it
    and names it with the unreadable files.
    """
    found, broken = [], []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).parts
        if any(part.startswith(".") for part in relative):
            continue
        if is_image_file(path) and (path.is_file() or is_broken_link(path)):
            found.append(path)
        elif is_broken_link(path):
            broken.append(path)
    return found, broken


def is_broken_link(path: Path) -> bool:
    return path.is_symlink() and not path.exists()


@dataclasses.dataclass(frozen=True)
class KnownFile:
    """A file as the scan checked it: its facts (plain files are decoded by TensorFlow in
    the graph, the rest by PIL) and the signature the scan index keys it by."""

    facts: ImageFacts
    signature: tuple[int, int]  # (size, mtime in ns)


@dataclasses.dataclass
class ScanResult:
    good: list[Path]
    grayscale: list[bool]  # per good file
    skipped: list[tuple[str, str]]  # (path, reason)
    sizes: set[tuple[int, int]]  # (height, width) seen
    hashes: dict[str, str]  # path → sha256 of its bytes, to find copies across splits
    known: dict[str, KnownFile]  # path → what the scan saw, for the decoder
    index_warning: str | None = None  # the scan index could not be saved


def check_images(root: Path, paths: list[Path]) -> ScanResult:
    """Check every file once, in parallel: read its header, check that it is whole and
    hash its bytes (images.check_image), unless the index of the last scan of root holds
    it unchanged (same size and mtime)."""
    index = scan_index.load_index(root)

    def relative(path: Path) -> str:  # the index's key: the same from any working folder
        return path.relative_to(root).as_posix()

    def reuse(path: Path):
        """What the index knows of an unchanged file, else None (check it)."""
        try:
            stat = path.stat()
        except OSError:
            return None  # check() names the reason
        signature = (stat.st_size, stat.st_mtime_ns)
        reused = scan_index.reuse(index, relative(path), signature)
        return None if reused is None else (KnownFile(reused[0], signature), reused[1])

    def check(path: Path):
        try:
            stat = path.stat()
            content = path.read_bytes()
            known = KnownFile(check_image(path, content), (stat.st_size, stat.st_mtime_ns))
            return known, hashlib.sha256(content).hexdigest()
        except Exception as error:  # PIL raises many types for bad files
            return unreadable_reason(path, error)

    # Unchanged files cost a stat each: cheaper in this thread than through the pool.
    results = [reuse(path) for path in paths] if index else [None] * len(paths)
    unknown = [i for i, result in enumerate(results) if result is None]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for i, result in zip(unknown, pool.map(check, [paths[i] for i in unknown])):
            results[i] = result
    scan = ScanResult([], [], [], set(), {}, {})
    for path, result in zip(paths, results):
        if isinstance(result, str):
            scan.skipped.append((str(path), result))
        else:
            known, digest = result
            scan.good.append(path)
            scan.grayscale.append(known.facts.grayscale)
            scan.sizes.add((known.facts.height, known.facts.width))
            scan.hashes[str(path)] = digest
            scan.known[str(path)] = known
    entries = {
        relative(Path(path)): scan_index.entry(known.signature, known.facts, scan.hashes[path])
        for path, known in scan.known.items()
    }
    if entries != index:
        scan.index_warning = scan_index.save_index(root, entries)
    return scan


def find_split_folders(root: Path) -> dict[str, Path] | None:
    """{'train': root/train, ...} when root uses split folders, else None."""
    if not (root / "train").is_dir():
        return None
    found = {"train": root / "train"}
    for split, names in SPLIT_FOLDERS.items():
        for name in names:
            if split != "train" and (root / name).is_dir():
                found[split] = root / name
                break
    return found


def check_folder(root: Path) -> tuple[dict[str, Path], list[str]]:
    """(split folders, class names) of a --data folder, refused in one line when it is
    missing, a file, or has no class sub-folders. No TensorFlow: this runs before it."""
    if not root.exists():
        raise DataError(
            f"--data {root} does not exist; give a folder with one sub-folder per class."
        )
    if not root.is_dir():
        raise DataError(
            f"--data {root} is a file; give a folder with one sub-folder per class, or a CSV "
            "label file (.csv)."
        )
    split_roots = find_split_folders(root) or {"train": root}
    class_names = class_folders(split_roots["train"])
    if not class_names:
        raise DataError(
            f"No class sub-folders in {split_roots['train']}: expected one folder per class, "
            f"e.g. {root}/cats/1.jpg and {root}/dogs/2.jpg{label_file_hint(root)}."
        )
    return split_roots, class_names


def label_file_hint(root: Path) -> str:
    """'; or give its label file: --data DIR/labels.csv' when the folder holds a CSV."""
    known = ("train.csv", "labels.csv")  # Kaggle's names first
    tables = sorted((p.name for p in root.glob("*.csv")), key=lambda n: (n not in known, n))
    tables = tables if root.is_dir() else []
    return f"; or give its label file: --data {root / tables[0]}" if tables else ""


def load_folder(root: Path, config: DataConfig, seed: int, min_classes: int = 2) -> Source:
    """The folder as a Source. Training needs images of `min_classes` classes (2);
    scoring a model needs only images whose labels it knows (1)."""
    listed = listed_folder(root)

    from imgcls_cli.backend import import_tensorflow

    import_tensorflow()  # quietly: the splits are tf.data datasets
    with label_file_hint_on_error(root):
        return source_from_files(listed, config, seed, min_classes)


def listed_folder(root: Path) -> ListedFiles:
    """The labelled files of a --data folder, refused in one line (check_folder) when it
    has none to list. No TensorFlow."""
    split_roots, class_names = check_folder(root)
    files, broken = list_split_files(root, split_roots, class_names)
    description = {
        "kind": "folder",
        "path": str(root.resolve()),
        "layout": "split folders" if len(split_roots) > 1 else "class folders",
    }
    return ListedFiles(root, files, class_names, split_roots, broken, [], description)


@contextlib.contextmanager
def label_file_hint_on_error(root: Path) -> Iterator[None]:
    """A DataError about the folder's images ends with label_file_hint's pointer."""
    try:
        yield
    except DataError as error:
        raise DataError(str(error).rstrip(".") + label_file_hint(root) + ".") from None


@dataclasses.dataclass
class ListedFiles:
    """The labelled image files of a source, before any is read: a folder's, or a label
    table's (data.label_table)."""

    root: Path  # where the files lie: the scan index's folder, fingerprints' base
    files: dict[str, list[tuple[Path, int]]]  # split → (path, class index)
    class_names: list[str]
    where: dict[str, Path]  # split → what lists its files (a folder, a CSV), for messages
    broken: list[Path]  # broken symbolic links seen while listing
    warnings: list[str]  # what the listing left out (a label file's unusable rows)
    description: dict[str, Any]  # what config.json records about the data
    label_column: str | None = None  # a label table's, as its header names it
    columns: list[str] = dataclasses.field(default_factory=list)  # a label table's header


# Training images that each have a class of their own, this many or more, are refused: a
# label column of ids or captions taken for the classes (a few may be a toy table).
OWN_CLASS_IMAGES = 5


def readable_files(
    listed: ListedFiles, min_classes: int = 2
) -> tuple[ScanResult, dict[str, list[tuple[Path, int]]]]:
    """(the scan, each split's readable files) of the listed files, refused in one line
    when the training split has no readable image or images of fewer than `min_classes`
    classes. No TensorFlow: training commands call it before TensorFlow starts (the scan
    index then spares the second call the reading)."""
    all_paths = [path for entries in listed.files.values() for path, _ in entries]
    scan = check_images(listed.root, all_paths)
    good_set = set(scan.good)
    files = {
        split: [(p, i) for p, i in entries if p in good_set]
        for split, entries in listed.files.items()
    }
    train_labels = {label for _, label in files["train"]}
    where = listed.where["train"]
    if not files["train"]:
        listed_train = {str(path) for path, _ in listed.files["train"]}
        unread = [(path, why) for path, why in scan.skipped if path in listed_train]
        if unread:  # image files there, none readable: say why, not where it looked
            raise DataError(
                f"No readable images in {where}: none of its {len(unread)} image file(s) "
                f"could be read ({files_and_reasons(unread, limit=3)})."
            )
        raise DataError(
            f"No readable images in {where} "
            f"(looked for {EXTENSIONS_LISTED} in {len(listed.class_names)} classes)."
        )
    if len(train_labels) < min_classes:
        only = ", ".join(listed.class_names[i] for i in sorted(train_labels))
        # Classes whose files are all unreadable: name them and why, not just the one left.
        label_of = {str(path): label for path, label in listed.files["train"]}
        unread = [
            (path, reason)
            for path, reason in scan.skipped
            if path in label_of and label_of[path] not in train_labels
        ]
        why = ""
        if unread:
            emptied = sorted({listed.class_names[label_of[path]] for path, _ in unread})
            why = f" No file of {', '.join(emptied)} could be read: "
            why += f"{files_and_reasons(unread, limit=3)}."
        raise DataError(
            f"Found images of only 1 class ({only}) in {where}: "
            f"classification needs images of at least 2 classes.{why}"
        )
    count = len(files["train"])
    if min_classes > 1 and listed.label_column and count >= OWN_CLASS_IMAGES:
        if len(train_labels) == count:
            raise DataLayoutError(
                f"{where}'s label column {listed.label_column!r} gives each of its {count} "
                "readable images a class of its own: a classifier needs several images of "
                "each class. If another column holds the classes, name it with --label-column "
                f"NAME (columns: {', '.join(listed.columns)}); if this one does, add images."
            )
    return scan, files


def source_from_files(
    listed: ListedFiles, config: DataConfig, seed: int, min_classes: int = 2
) -> Source:
    """Scan the listed files once (header, wholeness, hash), keep the readable ones, carve
    the missing splits and decode them as streams."""
    root, class_names = listed.root, listed.class_names
    scan, files = readable_files(listed, min_classes)
    skipped = scan.skipped
    warnings = [*listed.warnings]
    if listed.broken:
        warnings.append(broken_links_warning(listed.broken))
    if scan.index_warning:
        warnings.append(scan.index_warning)
    warnings += drop_empty_splits(files, listed.where, config)

    channels = 1 if all(scan.grayscale) else 3
    native = next(iter(scan.sizes)) if len(scan.sizes) == 1 else None
    failures = StreamFailures()
    decoder = FileDecoder(channels, failures, scan.known)
    failures.verify = decoder.verify
    splits = carve_folder_splits(files, config, seed, decoder)
    where = listed.description.get("path", root)
    leak = leak_warning(where, splits, scan.hashes)
    if leak:
        warnings.append(leak)
    relabelled = relabelled_copies_warning(where, files, scan.hashes, class_names)
    if relabelled:
        warnings.append(relabelled)
    return Source(
        name=Path(listed.description.get("path", root)).name,
        class_names=class_names,
        channels=channels,
        native_size=native,
        splits=splits,
        description={
            **listed.description,
            # Lets `evaluate` notice that the files changed since training.
            "fingerprints": {
                name: split_fingerprint(root, split.paths or [], split.labels)
                for name, split in splits.items()
            },
        },
        skipped=skipped,
        warnings=warnings,
        stream_failures=failures,
    )


def drop_empty_splits(
    files: dict[str, list[tuple[Path, int]]], where: dict[str, Path], config: DataConfig
) -> list[str]:
    """Drop from `files` a val or test split without readable images, most likely not meant
    as "no validation": it is carved from train as without the folder. Returns the
    warnings that say so. No TensorFlow."""
    warnings = []
    for split in ("val", "test"):
        if split in files and not files[split]:
            del files[split]
            warnings.append(empty_split_warning(split, where[split], config))
    return warnings


def list_split_files(
    root: Path, split_roots: dict[str, Path], class_names: list[str]
) -> tuple[dict[str, list[tuple[Path, int]]], list[Path]]:
    """(path, class index) of the image files of each split, and the broken symbolic links
    seen on the way (where a split or class folder would be, or inside class folders)."""
    files: dict[str, list[tuple[Path, int]]] = {}
    broken = [
        path
        for folder in sorted({root, *split_roots.values()})
        for path in sorted(folder.iterdir())
        if not path.name.startswith(".") and is_broken_link(path)
    ]
    for split, split_root in split_roots.items():
        extra = sorted(set(class_folders(split_root)) - set(class_names))
        if extra:
            raise DataError(
                f"{split_root} has class folders not in {split_roots['train']}: {', '.join(extra)}."
            )
        files[split] = []
        for index, name in enumerate(class_names):
            if (split_root / name).is_dir():
                images, links = list_images(split_root / name)
                files[split] += [(path, index) for path in images]
                broken += links
    return files, broken


def leak_warning(root: Path, splits: dict[str, Split], hashes: dict[str, str]) -> str | None:
    """One line when val/test images are byte-for-byte copies of training images: a model
    that memorised them scores higher than it would on new data."""
    train = {hashes[p]: p for p in splits["train"].paths or [] if p in hashes}
    copies = [
        (path, train[hashes[path]])
        for name in ("val", "test")
        if name in splits
        for path in splits[name].paths or []
        if hashes.get(path) in train
    ]
    if not copies:
        return None
    path, original = copies[0]
    return (
        f"{len(copies)} val/test image(s) are exact copies of training images, which "
        f"inflates the scores (e.g. {path} = {original}); `imgcls inspect --data {root}` "
        "lists them all."
    )


def relabelled_copies(items: Iterable[tuple[str, int, str]]) -> list[tuple[str, int, str, int]]:
    """(file, its class, the earlier file of the same content, that one's class) for
    every image whose exact copy is filed under another class, from (name, class index,
    content hash) of every image in any split: one of the two labels is wrong."""
    first: dict[str, tuple[str, int]] = {}
    pairs = []
    for name, label, digest in items:
        earlier, earlier_label = first.setdefault(digest, (name, label))
        if earlier_label != label:
            pairs.append((name, label, earlier, earlier_label))
    return pairs


def relabelled_copies_warning(
    root: Path, files: dict[str, list[tuple[Path, int]]], hashes: dict[str, str], classes: list[str]
) -> str | None:
    """One line when the same image is filed under two classes."""
    pairs = relabelled_copies(
        (str(path), label, hashes[str(path)])
        for entries in files.values()
        for path, label in entries
        if str(path) in hashes
    )
    if not pairs:
        return None
    path, label, earlier, earlier_label = pairs[0]
    return (
        f"{len(pairs)} image(s) are exact copies of an image of another class (e.g. {path}, "
        f"{classes[label]} = {earlier}, {classes[earlier_label]}): at most one of the two "
        f"labels is right; `imgcls inspect --data {root}` lists them all."
    )


def broken_links_warning(broken: list[Path]) -> str:
    shown = "; ".join(f"{path} → {os.readlink(path)}" for path in broken[:5])
    more = f"; and {len(broken) - 5} more" if len(broken) > 5 else ""
    return (
        f"Ignored {len(broken)} broken symbolic link(s), whose targets do not exist: {shown}{more}."
    )


def empty_split_warning(split: str, folder: Path, config: DataConfig) -> str:
    """What happens instead of a val/ or test/ folder without images."""
    if split == "val":
        flag, fraction, verb = "--val-split", config.val_split, "validating"
    else:
        flag, fraction, verb = "--test-split", config.test_split, "testing"
    instead = f"no {split} split ({flag} is 0)"
    if fraction > 0:
        instead = f"{verb} on {fraction:.0%} of the training images instead ({flag})"
    inside = " in class sub-folders" if folder.is_dir() else ""
    return f"{folder} has no readable images{inside}: {instead}."


def split_fingerprint(root: Path, paths: list[str], labels: Any = None) -> dict[str, Any]:
    """The number of files, a sha256 (16 hex digits) of their sorted paths relative to
    root and their sizes (it changes when files are added, removed, renamed or edited),
    and one of their class indices in that order (`labels`: when a label file relabels
    the same files)."""
    digest, classes = hashlib.sha256(), hashlib.sha256()
    order = sorted(
        (Path(p).relative_to(root).as_posix(), p, i) for i, p in enumerate(map(str, paths))
    )
    for relative, path, index in order:
        try:
            size = os.stat(path).st_size
        except OSError:  # gone since the scan: still a change
            size = -1
        digest.update(f"{relative}\t{size}\n".encode("utf-8", "surrogateescape"))
        if labels is not None:
            classes.update(f"{int(labels[index])}\n".encode())
    fingerprint = {"images": len(order), "sha256": digest.hexdigest()[:16]}
    if labels is not None:
        fingerprint["labels"] = classes.hexdigest()[:16]
    return fingerprint


def carve_folder_splits(
    files: dict[str, list[tuple[Path, int]]],
    config: DataConfig,
    seed: int,
    decoder: FileDecoder,
) -> dict[str, Split]:
    """Each split of carve_file_lists as a stream that decoder decodes."""
    return {
        name: files_to_split(entries, decoder)
        for name, entries in carve_file_lists(files, config, seed).items()
    }


def carve_file_lists(
    files: dict[str, list[tuple[Path, int]]], config: DataConfig, seed: int
) -> dict[str, list[tuple[Any, int]]]:
    """Use the split folders that exist; carve the missing test/val parts out of train.
    Pure Python: --resume draws them before TensorFlow to check the data."""
    has_test, has_val = "test" in files, "val" in files
    if has_val:
        config = dataclasses.replace(config, val_split=0.0)
    paths = np.array([str(p) for p, _ in files["train"]], dtype=object)
    labels = np.array([label for _, label in files["train"]], dtype=np.int64)
    parts = split_arrays(paths, labels, config, seed, has_test=has_test)
    carved = {name: list(zip(*arrays)) for name, arrays in parts.items()}
    for name in ("val", "test"):
        if name in files:
            carved[name] = files[name]
    return carved


MARK_EVERY = 16  # files per call of FileDecoder.started
PIL_DECODER = PLAIN_DECODERS  # the decoder index of the files load_image decodes
RESIZE_IN_GRAPH = len(RESIZE_METHODS)  # the resize index of images whose size is not known


@dataclasses.dataclass
class FileDecoder:
    """Decodes a folder's files inside tf.data. Files the scan found plain are read and
    decoded by TensorFlow in the graph, in parallel and at a reduced JPEG scale when the
    target size allows; the others go through load_image (PIL). A file that vanishes or
    stops decoding after the scan is dropped from the stream and named through
    `failures` (see StreamFailures), so a long run does not die."""

    channels: int
    failures: StreamFailures
    known: dict[str, KnownFile]
    # Images stored in a dataset rather than as files (data.hf_source): name → the encoded
    # bytes. None: names are file paths, read as files.
    read_bytes: Callable[[str], bytes] | None = None

    def content(self, path: Any) -> Any:
        """The encoded image of `path` (a string tensor), in the graph."""
        import tensorflow as tf

        if self.read_bytes is None:
            return tf.io.read_file(path)
        read = self.read_bytes
        content = tf.numpy_function(
            lambda name: read(os.fsdecode(name.item() if isinstance(name, np.ndarray) else name)),
            [path],
            tf.string,
            stateful=False,
        )
        return tf.reshape(content, [])

    def opened(self, name: str) -> Any:
        """What PIL opens for `name`: the file, or its bytes."""
        if self.read_bytes is None:
            return name
        import io

        return io.BytesIO(self.read_bytes(name))

    @classmethod
    def for_files(cls, paths: list[str], channels: int) -> tuple[FileDecoder, dict[str, str]]:
        """A decoder for any files (not a scanned folder's), and (path → reason) of those
        that are not readable images: what predict and explain decode with."""
        known, unreadable = {}, {}
        for path, result in zip(paths, check_files(paths)):
            if isinstance(result, str):
                unreadable[path] = result
            else:
                known[path] = KnownFile(result, (0, 0))
        failures = StreamFailures()
        decoder = cls(channels, failures, known)
        failures.verify = decoder.verify
        return decoder, unreadable

    def routes(self, target: tuple[int, int] | None) -> dict[str, tuple[int, int]]:
        """Each plain file's (decoder, resize) at `target` (images.plain_route)."""
        return {
            name: plain_route(known.facts, target)
            for name, known in self.known.items()
            if known.facts.plain
        }

    def started(self, paths: np.ndarray, routes: dict[str, tuple[int, int]]) -> np.ndarray:
        """Marks the files pending; returns each one's (decoder, resize) from `routes`,
        looked up here, in the call this costs anyway (PIL_DECODER for the others)."""
        found = np.empty((len(paths), 2), np.int64)
        for i, path in enumerate(paths):
            name = os.fsdecode(path)
            self.failures.begin(name)
            found[i] = routes.get(name, (PIL_DECODER, RESIZE_IN_GRAPH))
        return found

    def finished(self, paths: np.ndarray) -> bool:
        for path in paths:
            self.failures.end(os.fsdecode(path))
        return True

    def load(self, path: Any, target: tuple[int, int] | None) -> tuple[np.ndarray, bool]:
        # bytes in tf.data's graph; a 0-d array when eager (model_input).
        name = os.fsdecode(path.item() if isinstance(path, np.ndarray) else path)
        try:
            return load_image(self.opened(name), self.channels, target), True
        except Exception as error:  # PIL raises many types for bad files
            self.failures.add(name, unreadable_reason(name, error))
            return np.zeros((1, 1, self.channels), np.uint8), False

    def verify(self, name: str) -> str | None:
        """Why a file that went in and never came out failed, or None when it decodes
        now (it was in flight, or in an iterator dropped early)."""
        import tensorflow as tf

        known = self.known.get(name)
        graph_error = None
        if known is not None and known.facts.plain:
            try:
                content = self.content(tf.constant(os.fsencode(name)))
                decode_plain(content, known.facts, self.channels, None)
                return None
            except Exception as error:  # noqa: BLE001 - any failure is the answer
                graph_error = error
        try:  # PIL: the decoder of the other files, and the clearer reason
            load_image(self.opened(name), self.channels)
        except Exception as pil_error:  # PIL raises many types for bad files
            return unreadable_reason(name, pil_error)
        if graph_error is None:
            return None
        message = str(getattr(graph_error, "message", graph_error)).strip()
        return f"TensorFlow cannot decode it ({type(graph_error).__name__}: {message})"

    def decode_files(
        self, files: Any, target: tuple[int, int] | None = None, batch_size: int | None = None
    ) -> Any:
        """(path, label) → (uint8 image, label), without the files that failed. Images
        come out resized to `target` (height, width) when it is given, else as stored;
        in batches of `batch_size` (with a target) when it is given, which saves a step
        per image (a batch that lost a failed file is one image shorter)."""
        import tensorflow as tf

        channels = self.channels
        routes = self.routes(target)
        # Which branches ever run: a folder of one kind of file (most are) needs no switch.
        decoders_used = {decoder for decoder, _ in routes.values()}
        resizes_used = {resize for _, resize in routes.values()}
        if len(routes) < len(self.known):  # files for PIL, whose size the graph finds
            decoders_used.add(PIL_DECODER)
            resizes_used.add(RESIZE_IN_GRAPH)

        def decode(path: Any, label: Any, route: Any) -> tuple[Any, Any, Any, Any]:
            image, ok = self.decode_one(path, route, target, (decoders_used, resizes_used))
            return image, label, ok, path

        def start(paths: Any, labels: Any) -> tuple[Any, Any, Any]:
            found = tf.numpy_function(
                lambda paths: self.started(paths, routes), [paths], tf.int64, stateful=True
            )
            with tf.control_dependencies([found]):  # before any of them is read
                return tf.identity(paths), labels, tf.reshape(tf.cast(found, tf.int32), [-1, 2])

        def finish(images: Any, labels: Any, ok: Any, paths: Any) -> tuple[Any, Any]:
            done = tf.numpy_function(self.finished, [paths], tf.bool, stateful=False)
            keep = tf.reshape(tf.logical_and(ok, done), [-1])  # done: one flag for all
            return tf.boolean_mask(images, keep), tf.boolean_mask(labels, keep)

        # A file TensorFlow cannot decode (gone, or damaged inside its compressed data,
        # which the header scan does not see) raises in the graph: ignore_errors drops it,
        # and it stays "started" but never "finished", which is how failures.take finds
        # and names it. Both marks are Python calls, so they are made once per group of
        # MARK_EVERY files (a call per file cost ~10% of throughput); `started` is
        # stateful, so the graph keeps it before the reads.
        files = files.batch(MARK_EVERY).map(traced_as_written(start)).unbatch()
        flagged = files.map(
            traced_as_written(decode), num_parallel_calls=tf.data.AUTOTUNE
        ).ignore_errors()
        if target is not None:  # one shape: finish a group at a time
            group = batch_size or MARK_EVERY
            kept = flagged.batch(group).map(
                traced_as_written(finish), num_parallel_calls=tf.data.AUTOTUNE
            )
            shape = (*target, channels)
            if batch_size:
                return kept.map(
                    traced_as_written(
                        lambda images, labels: (tf.ensure_shape(images, (None, *shape)), labels)
                    )
                )
            return kept.unbatch().map(
                traced_as_written(lambda image, label: (tf.ensure_shape(image, shape), label))
            )
        kept = flagged.map(
            traced_as_written(
                lambda image, label, ok, path: (image[None], label[None], ok[None], path[None])
            )
        ).map(traced_as_written(finish), num_parallel_calls=tf.data.AUTOTUNE)
        return kept.unbatch()

    def decode_one(
        self, path: Any, route: Any, target: Any, used: tuple[set[int], set[int]] | None = None
    ) -> tuple[Any, Any]:
        """One file → (uint8 HxWxC image, resized to `target` when given; ok): the one body
        by which every command turns a file into the model's input, in training's
        pipeline (decode_files, in the graph) and for single files (model_input, eager).

        `route` (decoder, resize) comes from the file's header (images.plain_route; PIL and
        a resize that measures the image for the others), so no op tests the file's bytes
        or shape. `used`: the decoders and resizes any file of the stream takes; a branch
        that is the only one used is called directly, since a switch costs a function
        call per image (~4% of a pass each).
        """
        import tensorflow as tf

        channels = self.channels
        decoders_used, resizes_used = used or ({int(route[0])}, {int(route[1])})

        def take(index: Any, branches: list[Any], used: set[int]) -> Any:
            if len(used) == 1:
                return branches[next(iter(used))]()
            return tf.switch_case(index, branches)

        def with_pil() -> tuple[Any, Any]:
            image, ok = tf.numpy_function(
                lambda path: self.load(path, target), [path], [tf.uint8, tf.bool], stateful=False
            )
            image.set_shape([None, None, channels])
            return image, tf.reshape(ok, [])

        # A folder has 1 channel only when every file is grayscale, and the decoders' own
        # gray-to-colour conversion repeats the channel as PIL does. Colour files for a
        # grayscale model (another folder to evaluate, files to predict) decode in colour
        # and convert as PIL converts; a gray file in colour converts back exactly.
        colour_to_gray = channels == 1 and any(
            known.facts.plain and not known.facts.grayscale for known in self.known.values()
        )

        def in_graph(decoder: int) -> Any:  # reads the file in the branch: PIL reads its own
            if colour_to_gray:
                return lambda: (
                    rgb_to_gray(plain_decoder(self.content(path), decoder, 3)),
                    tf.constant(True),
                )
            return lambda: (
                plain_decoder(self.content(path), decoder, channels),
                tf.constant(True),
            )

        decoders = [in_graph(decoder) for decoder in range(PLAIN_DECODERS)]
        image, ok = take(route[0], [*decoders, with_pil], decoders_used)
        if target is not None:  # here, so that a batch of them has one shape
            resizes = [lambda m=method: resize_by(image, target, m) for method in RESIZE_METHODS]
            by_shape = lambda: prepare_images(image, target, channels)  # noqa: E731
            image = take(route[1], [*resizes, by_shape], resizes_used)
        image.set_shape([None, None, channels])
        return image, ok

    def route_of(self, path: str, target: tuple[int, int] | None) -> tuple[int, int]:
        """(decoder, resize) of one known file at `target`: as routes gives, or PIL's."""
        facts = self.known[path].facts
        return plain_route(facts, target) if facts.plain else (PIL_DECODER, RESIZE_IN_GRAPH)


def check_file(path: str) -> ImageFacts | str:
    """A file's facts (images.check_image), or why it is not a readable image."""
    try:
        return check_image(Path(path))
    except Exception as error:  # PIL raises many types for bad files
        return unreadable_reason(path, error)


# Files a thread checks per task. The check of a small file in the page cache is mostly
# Python holding the interpreter lock: 8,000 32x32 PNGs took 0.27-0.38 s one after another,
# 0.64-0.80 s as one pool task each, 0.46 s in tasks of 64 (BENCHMARKS.md, *Folder
# prediction*). Threads stay for disks where a read waits; a call of a task or less (one
# file to predict or serve) needs no pool at all.
CHECK_CHUNK = 64


def check_files(paths: list[str]) -> list[ImageFacts | str]:
    """check_file of each path, in order: threads over chunks of CHECK_CHUNK files."""
    if len(paths) <= CHECK_CHUNK:
        return [check_file(path) for path in paths]
    chunks = [paths[start : start + CHECK_CHUNK] for start in range(0, len(paths), CHECK_CHUNK)]
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 2)) as pool:
        checked = pool.map(lambda chunk: [check_file(path) for path in chunk], chunks)
        return [result for results in checked for result in results]


def model_input(path: str, channels: int, image_size: tuple[int, int]) -> np.ndarray:
    """One file as the model's float32 input (HxWxC at image_size): decoded and resized by
    the body training's pipeline runs (FileDecoder.decode_one), so predict, explain and
    serve feed the model the very pixels train and evaluate do. Raises UnreadableImage."""
    import tensorflow as tf

    decoder, unreadable = FileDecoder.for_files([path], channels)
    if path in unreadable:
        raise UnreadableImage(unreadable[path])
    try:
        image, ok = decoder.decode_one(
            tf.constant(os.fsencode(path)), decoder.route_of(path, image_size), image_size
        )
    except tf.errors.OpError:  # eager: TensorFlow's decoder refused the data; say why in words
        raise UnreadableImage(decoder.verify(path) or "could not be decoded") from None
    if not bool(ok):
        raise UnreadableImage(decoder.failures.take()[0][1])
    return image.numpy().astype(np.float32)


def array_model_input(image: np.ndarray, channels: int, image_size: tuple[int, int]) -> np.ndarray:
    """An image already in memory (uint8 HxWxC, C 1, 3 or 4: alpha dropped as PIL's RGB
    conversion drops it) as the model's float32 input: the channel conversion and resize
    that decode_one gives a file of these pixels (PIL's luma for colour → gray, the
    resize method by direction), so a PNG and its array get the same input."""
    import tensorflow as tf

    have = image.shape[-1]
    pixels = tf.constant(image[..., :3] if have == 4 else image)
    if have != 1 and channels == 1:
        pixels = rgb_to_gray(pixels)
    elif have == 1 and channels == 3:
        pixels = gray_to_rgb(pixels)
    method = resize_method(tuple(image.shape[:2]), tuple(image_size))
    return resize_by(pixels, tuple(image_size), method).numpy().astype(np.float32)


def decode_for_model(path: str, run: Any) -> tuple[np.ndarray, np.ndarray]:
    """(the file decoded for display, uint8 near the model's size; the model's float32
    input from it, model_input's), for `run`'s channels and image_size (a LoadedRun)."""
    return load_image(path, run.channels, run.image_size), model_input(
        path, run.channels, run.image_size
    )


def model_inputs(
    paths: list[str], channels: int, image_size: tuple[int, int], batch_size: int
) -> tuple[Any, dict[str, str], FileDecoder]:
    """Many files as the model's input, through training's own pipeline: batches of
    (uint8 images at image_size, each one's index in `paths`), without the files that
    fail (their index is missing); the (path → reason) of those found unreadable before
    decoding; and the decoder, whose verify names the others."""
    import tensorflow as tf

    decoder, unreadable = FileDecoder.for_files(paths, channels)
    kept = [i for i, path in enumerate(paths) if path not in unreadable]
    files = tf.data.Dataset.from_tensor_slices(
        (tf.constant([os.fsencode(paths[i]) for i in kept]), np.array(kept, np.int64))
    )
    return decoder.decode_files(files, image_size, batch_size), unreadable, decoder


def files_to_split(entries: list[tuple[Path, int]], decoder: FileDecoder) -> Split:
    """A split of (path, label) files that decoder decodes as a tf.data stream."""
    paths = [str(p) for p, _ in entries]
    labels = np.array([int(label) for _, label in entries], dtype=np.int64)
    return Split.of_files(paths, labels, decoder.decode_files)
