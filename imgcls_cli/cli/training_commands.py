"""The commands that train or look at training: train, finetune, lr-find, augment-preview.
Each declares its own options and calls into `api`, nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from imgcls_cli.cli.invoke import given, run_and_report, user_errors
from imgcls_cli.cli.options import (
    AUGMENT_OPTIONS,
    DATA_OPTIONS,
    LR_FIND_OPTIONS,
    OUTPUT,
    PREVIEW_DATA_OPTIONS,
    RUN_OPTIONS,
    SCALE_OPTIONS,
    TRAINING_OPTIONS,
    BatchSize,
    JsonReport,
    TrainBatchSize,
    option,
    training_option,
    with_options,
)
from imgcls_cli.config import (
    FinetuneConfig,
    LrFindConfig,
    Schedule,
    TrainConfig,
)
from imgcls_cli.errors import ImgclsError


def arch_help() -> str:
    from imgcls_cli.models import ARCHITECTURES

    return "Architecture: " + "; ".join(
        f"[bold]{n}[/]: {d}" for n, (_, _, d) in ARCHITECTURES.items()
    )


def backbone_help() -> str:
    from imgcls_cli.models.backbones import BACKBONES

    return "Pretrained backbone: " + "; ".join(
        f"[bold]{name}[/]: {spec.description}" for name, spec in BACKBONES.items()
    )


# train and finetune: data options first in --help, then each command's own, then the rest.
with_run_options = with_options(
    before=[DATA_OPTIONS], after=[TRAINING_OPTIONS, AUGMENT_OPTIONS, SCALE_OPTIONS, RUN_OPTIONS]
)


@with_run_options
def train(
    ctx: typer.Context,
    arch: training_option(str, arch_help()) = TrainConfig.arch,
    epochs: training_option(
        Optional[int],
        "Training epochs. Default: 10, or 20 when the training split has fewer than 512 "
        "images (an epoch of few images is a few steps).",
    ) = TrainConfig.epochs,
    batch_size: TrainBatchSize = TrainConfig.batch_size,
    lr: training_option(
        str,
        "Learning rate, used as given whatever the replica count (see --scale-lr); or auto: "
        "sweep as imgcls lr-find does, on this model and data, then train at its "
        "suggestion (config.json records both).",
    ) = str(TrainConfig.lr),
    schedule: training_option(
        Optional[Schedule],
        "Learning-rate schedule: constant or cosine. Default: cosine (constant for "
        "simplecnn, its classic recipe).",
    ) = TrainConfig.schedule,
    warmup_epochs: training_option(
        Optional[int],
        "Epochs of linear learning-rate warmup from 0. Default: 1 when there are 3 epochs "
        "or more, else 0.",
    ) = TrainConfig.warmup_epochs,
    **shared: Any,
) -> None:
    """Train a CNN from scratch on a TFDS dataset, a folder of images, or the embedded digits."""
    run_and_report(ctx)


@with_run_options
def finetune(
    ctx: typer.Context,
    backbone: training_option(str, backbone_help()) = FinetuneConfig.backbone,
    weights: training_option(
        str,
        "imagenet (Keras' cache ~/.keras/models, downloaded when missing), none (random), "
        "or a weights file saved from the backbone (include_top=False).",
    ) = FinetuneConfig.weights,
    head_epochs: training_option(
        int, "Phase 1: epochs training the new head on the frozen backbone."
    ) = FinetuneConfig.head_epochs,
    epochs: training_option(
        int, "Phase 2: epochs fine-tuning the unfrozen layers."
    ) = FinetuneConfig.epochs,
    unfreeze: training_option(
        str, "Phase 2 trains the top N backbone layers, or 'all'; 0 skips phase 2."
    ) = str(FinetuneConfig.unfreeze),
    lr: training_option(str, "Phase 1 learning rate.") = str(FinetuneConfig.lr),
    finetune_lr: training_option(
        Optional[float], "Phase 2 learning rate. Default: --lr / 10."
    ) = None,
    batch_size: BatchSize = FinetuneConfig.batch_size,
    dropout: training_option(float, "Dropout before the new classifier.") = FinetuneConfig.dropout,
    **shared: Any,
) -> None:
    """Fine-tune an ImageNet backbone (MobileNetV2, EfficientNetB0, ResNet50): train a new
    head on the frozen backbone, then unfreeze its top layers at a lower learning rate."""
    run_and_report(ctx)


@with_options(before=[DATA_OPTIONS], after=LR_FIND_OPTIONS)
def lr_find(
    ctx: typer.Context,
    arch: training_option(str, arch_help()) = TrainConfig.arch,
    batch_size: TrainBatchSize = TrainConfig.batch_size,
    start_lr: training_option(float, "The sweep's first learning rate.") = LrFindConfig.start_lr,
    end_lr: training_option(
        float, "The sweep's last learning rate (unless the loss diverges first)."
    ) = LrFindConfig.end_lr,
    steps: training_option(
        int,
        "Training steps of the sweep (20 to 1000), the rate growing by the same factor each step.",
    ) = LrFindConfig.steps,
    output: Annotated[
        Optional[Path],
        option(
            "Write lr_find.png (the loss against the rate) and lr_find.json into this "
            "folder. Default: write nothing.",
            panel=OUTPUT,
        ),
    ] = None,
    quiet: Annotated[bool, option("No progress output.", "--quiet", "-q", panel=OUTPUT)] = False,
    json_output: JsonReport = False,
    **shared: Any,
) -> None:
    """Find a learning rate for train: from the model's initial weights, train --steps
    steps (100) as train would while the rate grows exponentially, and suggest a rate on
    the loss's longest descent (fastai's valley; the steepest descent too). Nothing of the
    model is kept: imgcls train --lr auto runs the same sweep itself."""
    import json

    from imgcls_cli.cli import console

    with user_errors():
        from imgcls_cli.api import lr_find as sweep

        options = given(ctx, "output", "quiet", "json_output")
        document = sweep(output=output, reporter=console.RichReporter(quiet), **options)
        if json_output:
            console.write_line(json.dumps(document, indent=2, allow_nan=False))
            return
        console.print_result(console.lr_find_table(document))
        if document["suggested_lr"] is None:
            from imgcls_cli.engine.lr_sweep import no_suggestion

            raise ImgclsError(f"No learning rate to suggest: {no_suggestion(document['steps'])}")
        if output is not None:
            console.info(f"Wrote lr_find.png, lr_find.json to {output}")
        elif not quiet and console.err.is_terminal:
            console.info("Pass --output DIR for the plot (lr_find.png) and every step's loss.")


@with_options(before=[PREVIEW_DATA_OPTIONS], after=[AUGMENT_OPTIONS])
def augment_preview(
    ctx: typer.Context,
    files: Annotated[
        Optional[list[Path]],
        typer.Argument(
            metavar="IMAGE...",
            help="Image files to preview, instead of --dataset or --data.",
            show_default=False,
        ),
    ] = None,
    samples: Annotated[
        int, option("Source images (rows), from --dataset or --data; at most 64.", panel=OUTPUT)
    ] = 4,
    variants: Annotated[
        int, option("Augmented versions of each image (columns); at most 64.", panel=OUTPUT)
    ] = 5,
    seed: Annotated[
        int, option("Random seed: picks the samples and drives the augmentation.", panel=OUTPUT)
    ] = 42,
    output: Annotated[Path, option("The PNG to write.", panel=OUTPUT)] = Path(
        "augment-preview.png"
    ),
    **shared: Any,
) -> None:
    """Draw a PNG grid of images and augmented versions of them, to check an augmentation
    before training with it: one row per image, the original first."""
    from imgcls_cli.cli import console

    with user_errors():
        from imgcls_cli.api import augment_preview as preview

        options = given(ctx, "files", "samples", "variants", "seed", "output")
        path = preview(
            files,
            output=output,
            samples=samples,
            variants=variants,
            seed=seed,
            reporter=console.RichReporter(),
            **options,
        )
        console.out.print(str(path), soft_wrap=True, markup=False)
