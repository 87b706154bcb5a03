"""`songkit segment`, `songkit train segment`, `songkit eval segment`, `songkit data segment`:
semantic segmentation on PASCAL-VOC-format data."""


from pathlib import Path
from typing import Annotated, Optional

import typer

from songkit.cli.options import Checkpoint, Device, Json, TrainRun, train_options
from songkit.tasks.segment.spec import (
    DEFAULT_MODEL,
    DEFAULT_SIZE,
    IMAGE_SUFFIXES,
    INITS,
    MODEL_NAMES,
)

DataFolder = Annotated[
    Optional[Path],
    typer.Option("--data", "-d", help="VOC year folder (VOCdevkit/VOC2007) or VOCdevkit (default: the embedded dataset)."),
]


def segment(
    images: Annotated[list[Path], typer.Argument(help="Image files or folders of images.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for <name>.png masks ('-': one PNG to stdout).")],
    checkpoint: Checkpoint = None,
    overlay: Annotated[bool, typer.Option("--overlay", help="Also write <name>.overlay.jpg: the mask blended over the image.")] = False,
    size: Annotated[Optional[int], typer.Option("--size", min=32, help="Shorter side fed to the model (default: the training size).")] = None,
    json_out: Json = False,
    device: Device = "auto",
) -> None:
    """Segment images: a VOC palette PNG mask per image, at the image's own size."""
    import json

    from songkit.core.device import resolve_device
    from songkit.core.errors import UserError
    from songkit.core.io import expand_inputs
    from songkit.tasks.segment.task import segment_files

    files = expand_inputs(images, IMAGE_SUFFIXES)  # inputs checked before the model loads
    if str(out) == "-" and (len(files) != 1 or overlay):
        raise UserError("--out -: writes one mask PNG to stdout, so give exactly one image and no --overlay")
    if str(out) != "-" and out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    for row in segment_files(files, out, checkpoint, resolve_device(device), size=size, overlay=overlay):
        if str(out) == "-":
            continue
        if json_out:
            print(json.dumps(row), flush=True)
        else:
            shown = ", ".join(f"{k} {v:.0%}" for k, v in row["classes"].items() if k != "background" and v >= 0.005) or "background only"
            print(f"{row['image']} -> {row['mask']}  ({shown})", flush=True)


@train_options(epochs=8, batch_size=8, lr=2e-3, out=Path("runs/segment"))
def train_segment(
    run: TrainRun,
    model: Annotated[str, typer.Option("--model", "-m", help=f"One of: {', '.join(MODEL_NAMES)}.")] = DEFAULT_MODEL,
    size: Annotated[int, typer.Option("--size", min=32, help="Training crop side (a multiple of 32); also the shorter side at evaluation.")] = DEFAULT_SIZE,
    class_weights: Annotated[str, typer.Option("--class-weights", help="none | auto (median-frequency balancing) | 21 comma-separated numbers.")] = "none",
    init: Annotated[Optional[str], typer.Option("--init", help=f"Weight initialisation: {' | '.join(INITS)} (default: the model's own).")] = None,
    width: Annotated[Optional[int], typer.Option("--width", min=1, help="U-Net's first layer width (default 32; the paper's 64).")] = None,
    encoder_weights: Annotated[Optional[Path], typer.Option("--encoder-weights", help="torchvision resnet34 weights (resnet34-b627a593.pth) for --model resnet34_unet.")] = None,
    train_split: Annotated[str, typer.Option("--train-split", help="ImageSets/Segmentation list to train on.")] = "train",
    val_split: Annotated[str, typer.Option("--val-split", help="ImageSets/Segmentation list to validate on.")] = "val",
    rotate: Annotated[float, typer.Option("--rotate", min=0.0, help="Random rotation, +- degrees (0: off).")] = 10.0,
    shear: Annotated[float, typer.Option("--shear", min=0.0, help="Random affine shear, +- degrees (0: off).")] = 5.0,
    vflip: Annotated[bool, typer.Option("--vflip/--no-vflip", help="Random vertical flips too.")] = False,
    no_augment: Annotated[bool, typer.Option("--no-augment", help="Only scale and crop (no flips, rotation, shear, colour).")] = False,
    channels_last: Annotated[bool, typer.Option("--channels-last/--channels-first", help="channels-last memory format.")] = False,
) -> None:
    """Train a segmentation model on VOC-format data (default: the embedded dataset)."""
    from songkit.core.errors import UserError
    from songkit.tasks.segment.task import SegmentSettings, train

    if run.data and len(run.data) > 1:
        raise UserError("--data: give one VOC folder")
    augment = {"rotate": rotate, "shear": shear, "vflip": vflip}
    if no_augment:
        augment = {"rotate": 0.0, "shear": 0.0, "vflip": False, "hflip": False, "jitter": 0.0}
    settings = SegmentSettings(model=model, size=size, batch_size=run.batch_size, class_weights=class_weights,
                               init=init, width=width, encoder_weights=str(encoder_weights) if encoder_weights else None,
                               train_split=train_split, val_split=val_split, channels_last=channels_last,
                               augment=augment)
    cfg = run.train_config(monitor="val_miou", monitor_mode="max")
    train(run.data[0] if run.data else None, settings, cfg, run.out, device=run.device, resume=run.resume)


def eval_segment(
    checkpoint: Checkpoint = None,
    data: DataFolder = None,
    split: Annotated[str, typer.Option("--split", help="ImageSets/Segmentation list to measure on.")] = "val",
    size: Annotated[Optional[int], typer.Option("--size", min=32, help="Shorter side fed to the model (default: the training size).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1)] = 8,
    confusion: Annotated[Optional[Path], typer.Option("--confusion", help="Also draw the confusion matrix to this PNG.")] = None,
    json_out: Json = False,
    device: Device = "auto",
) -> None:
    """Pixel accuracy, mean accuracy, per-class IoU and mean IoU over a whole split (void ignored)."""
    import json
    import math

    from songkit.core.checkpoint import default_checkpoint
    from songkit.tasks.segment.task import evaluate_checkpoint

    result = evaluate_checkpoint(checkpoint or default_checkpoint("segment"), data, split, device, size, batch_size)
    matrix = result.pop("_matrix")
    if confusion is not None:
        import torch

        from songkit.core.plots import confusion_png

        present = [i for i, row in enumerate(matrix) if sum(row) or sum(r[i] for r in matrix)]
        m = torch.tensor(matrix)[present][:, present]
        confusion_png(m, [list(result["per_class"])[i] for i in present], confusion, title="segment: pixels")
    if json_out:
        print(json.dumps(_nan_to_none(result)))
        return
    from rich.console import Console
    from rich.table import Table

    def pct(v: float) -> str:
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"

    table = Table(title=f"songkit eval segment: {result['model']} on {result['split']} ({result['images']} images)")
    for col in ("class", "IoU %", "accuracy %", "precision %", "pixels"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for name, row in result["per_class"].items():
        if name in result["absent_classes"]:
            continue
        table.add_row(name, pct(row["iou"]), pct(row["accuracy"]), pct(row["precision"]), f"{row['support']:,}")
    table.add_section()
    table.add_row("mean IoU", pct(result["mean_iou"]), pct(result["mean_accuracy"]), "", f"{result['pixels']:,}")
    table.add_row("pixel accuracy", "", pct(result["accuracy"]), "", "")
    console = Console()
    console.print(table)
    if result["absent_classes"]:
        console.print(f"left out of the means (in neither truth nor prediction): {', '.join(result['absent_classes'])}")


def _nan_to_none(obj):
    """JSON has no NaN: a rate of an absent class is null."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    return obj


def data_segment(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write VOCdevkit/VOC2007 into.")],
    train: Annotated[int, typer.Option("--train", min=1, help="Training images.")] = 200,
    val: Annotated[int, typer.Option("--val", min=1, help="Validation images.")] = 50,
    seed: Annotated[int, typer.Option("--seed", help="Generator seed (0: the embedded default).")] = 0,
) -> None:
    """Write the embedded dataset (generated shapes and textures) in the real VOC layout."""
    from songkit.tasks.segment.data import SynthSpec, write_synthetic

    root = write_synthetic(out, SynthSpec(train=train, val=val, seed=seed))
    print(root)


def register(app: typer.Typer, train_app: typer.Typer, eval_app: typer.Typer, data_app: typer.Typer) -> None:
    app.command("segment")(segment)
    train_app.command("segment")(train_segment)
    eval_app.command("segment")(eval_segment)
    data_app.command("segment")(data_segment)
