"""`imgcls evaluate`: score a run's model on labelled data and write the report files.

Default data: the test split of the source the run was trained on, re-opened with the
run's options and seed, so it holds the very images `train` held out (data/held_out.py).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from imgcls_cli.config import EvaluateConfig
from imgcls_cli.data.held_out import EvaluationData
from imgcls_cli.errors import DataError, OutputRefused
from imgcls_cli.report import metrics
from imgcls_cli.reporting import Reporter, SilentReporter
from imgcls_cli.rundir import (
    EVALUATION_FILE,
    MISTAKES_CSV,
    MISTAKES_PNG,
    REPORT_FILES,
    TOP_LOSSES_PNG,
    is_export_dir,
)
from imgcls_cli.rundir.files import write_bytes_atomic, write_csv_atomic, write_json_atomic
from imgcls_cli.rundir.load import LoadedRun


@dataclasses.dataclass
class Evaluation:
    report: dict[str, Any]  # everything evaluation.json holds
    labels: np.ndarray
    probabilities: np.ndarray
    paths: list[str] | None  # file paths in example order, for folder data
    # With --explain: path → (the image, its heatmap for the predicted class)
    explained: dict[str, tuple[np.ndarray, np.ndarray]] = dataclasses.field(default_factory=dict)


# --- Scoring ----------------------------------------------------------------------------


def resolve_top_k(requested: int | None, num_classes: int) -> int | None:
    """--top-k as given; by default 5, and only when there are more than 5 classes."""
    if requested is not None:
        return requested
    return 5 if num_classes > 5 else None


def predict_split(
    run: LoadedRun,
    data: EvaluationData,
    batch_size: int,
    reporter: Reporter,
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities for every example, through the training pipeline."""
    from imgcls_cli.data.pipeline import create_batches

    batches = create_batches(data.split, run.image_size, run.channels, run.num_classes, batch_size)
    labels, probabilities, done = [], [], 0
    for images, one_hot in batches:
        probabilities.append(run.predict_batch(images))
        labels.append(np.argmax(one_hot.numpy(), axis=1))
        done += len(labels[-1])
        reporter.batches(done, data.split.num_examples)
    if not labels:
        raise DataError("The evaluation data yielded no images.")
    return np.concatenate(labels), np.concatenate(probabilities)


def evaluate(
    run: LoadedRun,
    data: EvaluationData,
    options: EvaluateConfig,
    reporter: Reporter | None = None,
) -> Evaluation:
    reporter = reporter or SilentReporter()
    labels, probabilities = predict_split(run, data, options.batch_size, reporter)
    top_k = resolve_top_k(options.top_k, run.num_classes)
    report = metrics.classification_report(labels, probabilities, run.class_names, top_k)
    paths = data.split.paths
    # Files that could not be read while scored were left out of the predictions: leave
    # them out of the paths too, or every later mistake would name the wrong file.
    unreadable = data.take_stream_failures()
    if unreadable and paths is not None:
        gone = {path for path, _ in unreadable}
        paths = [path for path in paths if path not in gone]
    report["unreadable"] = [{"path": path, "reason": reason} for path, reason in unreadable]
    report["mistakes"] = []
    if paths is not None:
        for index in metrics.most_confident_mistakes(labels, probabilities, options.mistakes):
            predicted = int(probabilities[index].argmax())
            report["mistakes"].append(
                {
                    "path": paths[index],
                    "true": run.class_names[labels[index]],
                    "predicted": run.class_names[predicted],
                    "confidence": float(probabilities[index, predicted]),
                }
            )
    report["top_losses"] = []
    if paths is not None:
        for index in metrics.top_losses(labels, probabilities, options.mistakes):
            true, predicted = int(labels[index]), int(probabilities[index].argmax())
            report["top_losses"].append(
                {
                    "path": paths[index],
                    "true": run.class_names[true],
                    "predicted": run.class_names[predicted],
                    "confidence": float(probabilities[index, predicted]),
                    "loss": float(-np.log(max(float(probabilities[index, true]), 1e-12))),
                }
            )
    report["unknown_classes"] = score_unknown(run, data, options.batch_size)
    warnings = coverage_warnings(report, run.num_classes)
    if data.description.get("split") != "train":  # training images are no held-out score
        rough = metrics.few_images_warning(
            "The accuracy",
            report["accuracy"],
            report["examples"],
            "Score more images to narrow it.",
        )
        warnings += [rough] if rough else []
    for warning in warnings:
        reporter.warning(warning)
    header = {"model": str(run.run_dir), "data": data.description, "options": options.to_dict()}
    evaluation = Evaluation({**header, **report}, labels, probabilities, paths)
    if options.explain:
        evaluation.explained, evaluation.report["explain"] = explain_mistakes(run, report)
    return evaluation


def score_unknown(run: LoadedRun, data: EvaluationData, batch_size: int) -> list[dict]:
    """For each class of the data that the model does not know: its images and what the
    model called them (most often first). They are kept out of every score."""
    if data.unknown is None:
        return []
    from imgcls_cli.data.pipeline import create_batches

    depth = len(data.unknown_classes)
    batches = create_batches(data.unknown, run.image_size, run.channels, depth, batch_size)
    called: dict[int, list[int]] = {index: [] for index in range(depth)}
    for images, one_hot in batches:
        predicted = run.predict_batch(images).argmax(axis=1)
        for label, guess in zip(np.argmax(one_hot.numpy(), axis=1), predicted):
            called[int(label)].append(int(guess))
    rows = []
    for index, name in enumerate(data.unknown_classes):
        counts = np.bincount(called[index], minlength=run.num_classes)
        order = np.argsort(-counts, kind="stable")
        predicted = {run.class_names[i]: int(counts[i]) for i in order if counts[i]}
        rows.append({"class": name, "images": len(called[index]), "predicted": predicted})
    return rows


def most_called(predicted: dict[str, int]) -> str:
    """', mostly called 8' for {8: 3, 9: 1}; ', called 8 and 9 alike' for a tie."""
    if not predicted:
        return ""
    top = max(predicted.values())
    tied = [name for name, count in predicted.items() if count == top]
    if len(tied) == 1:
        return f", mostly called {tied[0]}"
    return f", called {', '.join(tied[:-1])} and {tied[-1]} alike"


def coverage_warnings(report: dict[str, Any], num_classes: int) -> list[str]:
    """One line each: images of classes the model does not know (scored apart), and the
    model's classes the data has no images of (left out of the averages)."""
    warnings = []
    unknown = report["unknown_classes"]
    if unknown:
        shown = "; ".join(
            f"{row['class']}: {row['images']}{most_called(row['predicted'])}" for row in unknown[:3]
        ) + ("; …" if len(unknown) > 3 else "")
        images = sum(row["images"] for row in unknown)
        warnings.append(
            f"{images} image(s) of {len(unknown)} class(es) the model does not know were "
            f"left out of the scores ({shown}); evaluation.json lists what it called them."
        )
    empty = [row["class"] for row in report["per_class"] if row["support"] == 0]
    if empty:
        shown = ", ".join(empty[:5]) + (", …" if len(empty) > 5 else "")
        warnings.append(
            f"The data has no images of {len(empty)} of the model's {num_classes} classes "
            f"({shown}): they show as 'no images' and are left out of the averages."
        )
    return warnings


def explain_mistakes(run: LoadedRun, report: dict[str, Any]) -> tuple[dict[str, Any], dict]:
    """Grad-CAM for the predicted class of every image in the galleries: path → (image,
    heatmap), and what evaluation.json records of it (method and layer)."""
    from imgcls_cli.report.gradcam import GradCam, explain_paths, require_keras_model

    require_keras_model(run)
    listed = [item["path"] for key in ("mistakes", "top_losses") for item in report[key]]
    cam = GradCam(run.model)
    explained = {
        item.path: (item.image, item.heatmap)
        for item in explain_paths(list(dict.fromkeys(listed)), run, cam)
        if item.error is None
    }
    return explained, {"method": cam.method, "layer": cam.target.path}


def accuracy_shortfall(report: dict[str, Any], min_accuracy: float | None) -> str | None:
    """The CI gate's message when accuracy is below --min-accuracy, else None."""
    if min_accuracy is None or report["accuracy"] >= min_accuracy:
        return None
    gap = min_accuracy - report["accuracy"]
    return (
        f"Accuracy {report['accuracy']:.4f} is below --min-accuracy {min_accuracy:.4f} "
        f"by {gap:.4f} ({gap * 100:.2f} percentage points)."
    )


# --- Files ------------------------------------------------------------------------------


def default_report_dir(model_dir: Path) -> Path:
    """Where evaluate writes without --output: the run directory; for an export folder, a
    folder beside it (`onnx` → `onnx-evaluation`), since `export --force` replaces the
    export folder whole and would take the reports with it."""
    if is_export_dir(model_dir):
        return model_dir.with_name(f"{model_dir.name}-evaluation")
    return model_dir


def check_report_dir(output_dir: Path) -> None:
    """evaluate --output DIR writes its report files into DIR: over an earlier
    evaluation's, never over files of the same names that something else wrote."""
    names = (*REPORT_FILES, MISTAKES_CSV, MISTAKES_PNG, TOP_LOSSES_PNG)
    existing = [name for name in names if (output_dir / name).exists()]
    if not existing:
        return
    try:
        earlier = json.loads((output_dir / EVALUATION_FILE).read_text())
    except (OSError, ValueError):
        earlier = None
    if not (isinstance(earlier, dict) and {"model", "confusion_matrix"} <= set(earlier)):
        raise OutputRefused(
            f"{output_dir} holds {', '.join(existing)}, not written by imgcls evaluate; "
            f"imgcls does not overwrite {'it' if len(existing) == 1 else 'them'}: choose "
            "another --output."
        )


def confusion_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One CSV row per true class: 'true \\ predicted', then a count per predicted class."""
    names = report["confusion_matrix"]["labels"]
    return [
        {"true \\ predicted": name, **dict(zip(names, counts))}
        for name, counts in zip(names, report["confusion_matrix"]["matrix"])
    ]


def write_evaluation(evaluation: Evaluation, output_dir: Path, channels: int) -> list[Path]:
    """evaluation.json, the confusion matrix as CSV and PNG, and for folder data the most
    confident mistakes as CSV and a PNG gallery, and a gallery of the top losses (Grad-CAM
    overlays with --explain). Returns the files written.

    Files this evaluation does not write are left alone, even stale mistakes from an
    earlier one: report["mistakes_files"] names the mistake files that belong to it.
    """
    from imgcls_cli.report import plots

    report = evaluation.report
    mistakes_files = (output_dir / MISTAKES_CSV, output_dir / MISTAKES_PNG)
    listed = evaluation.paths is not None and bool(report["mistakes"])
    losses_listed = evaluation.paths is not None and bool(report["top_losses"])
    report["mistakes_files"] = [path.name for path in mistakes_files] if listed else []
    if losses_listed:
        report["mistakes_files"].append(TOP_LOSSES_PNG)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = [output_dir / name for name in REPORT_FILES]
    write_json_atomic(written[0], report)
    write_csv_atomic(written[1], confusion_rows(report))
    matrix = np.array(report["confusion_matrix"]["matrix"])
    write_bytes_atomic(
        written[2], plots.confusion_matrix_png(matrix, report["confusion_matrix"]["labels"])
    )
    explained = evaluation.explained
    if listed:
        write_csv_atomic(mistakes_files[0], report["mistakes"])
        gallery = plots.mistakes_png(report["mistakes"], channels, explained)
        write_bytes_atomic(mistakes_files[1], gallery)
        written += list(mistakes_files)
    if losses_listed:
        gallery = plots.mistakes_png(report["top_losses"], channels, explained)
        write_bytes_atomic(output_dir / TOP_LOSSES_PNG, gallery)
        written.append(output_dir / TOP_LOSSES_PNG)
    return written
