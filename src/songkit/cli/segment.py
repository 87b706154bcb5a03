"""`songkit segment`, `songkit train segment`, `songkit eval segment`, `songkit data segment`:
semantic segmentation on PASCAL-VOC-format data. Parses, resolves paths, calls one library function,
formats what it returns; torch is imported only inside the commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from songkit.cli.options import Checkpoint, Device, Json, TrainRun, start_training, train_options
from songkit.tasks.segment.constants import (
    CLASS_WEIGHTS_HELP,
    DEFAULT_MODEL,
    DEFAULT_SIZE,
    IMAGE_SUFFIXES,
    INITS,
    MODEL_NAMES,
    TrainOptions,
)

DataFolder = Annotated[
    Path | None,
    typer.Option("--data", "-d", metavar="DIR",
                 help="VOC year folder (VOCdevkit/VOC2007) or VOCdevkit (default: the embedded generated set, "
                      "built once into $SONGKIT_HOME in a few seconds)."),
]
Amp = Annotated[bool, typer.Option("--amp/--no-amp", help="bf16 autocast where the hardware has it (CUDA, CPUs with "
                                                          "AMX/AVX512-BF16); --no-amp: plain fp32.")]
Size = Annotated[int | None, typer.Option(
    "--size", min=32, metavar="PIXELS", help="Shorter side fed to the model (default: the one it was trained at).")]


def segment(
    images: Annotated[list[Path], typer.Argument(
        metavar="IMAGE", show_default=False, help="Pictures or folders of pictures ('-': one picture from stdin).")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", metavar="PATH", help="One picture: the mask file (NAME.png) or a folder; several: a folder "
                                            "of <name>.png masks; '-': the PNG to stdout.")],
    checkpoint: Checkpoint = None,
    overlay: Annotated[bool, typer.Option(
        "--overlay", help="Also write <mask name>.overlay.jpg: the mask over the picture.")] = False,
    size: Size = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing masks (never one of the inputs).")] = False,
    json_out: Json = False,
    device: Device = "auto",
    amp: Amp = True,
) -> None:
    """Segment pictures: a VOC palette PNG mask per picture, at the picture's own size."""
    from songkit.cli.output import print_json, print_table
    from songkit.core.device import resolve_device
    from songkit.core.errors import UserError
    from songkit.core.io import (
        check_outputs,
        expand_inputs,
        output_for,
        read_input_bytes,
    )
    from songkit.tasks.segment.infer import overlay_path, segment_files

    # inputs and outputs are checked before the model loads
    if any(str(p) == "-" for p in images):
        if len(images) > 1:
            raise UserError("-: stdin holds one picture; give it alone")
        files = [Path("-")]
    else:
        files = expand_inputs(images, IMAGE_SUFFIXES)
    if str(out) == "-" and (len(files) != 1 or overlay):
        raise UserError("--out -: writes one mask PNG to stdout, so give exactly one picture and no --overlay")
    if len(files) == 1 and out.suffix and not out.is_dir() and out.suffix.lower() != ".png":
        raise UserError(f"{out}: masks are PNG files; give NAME.png or a folder")
    outputs = [None if str(o) == "-" else Path(o) for o in output_for(files, out, ".png", force)]
    if overlay:
        check_outputs(files, [overlay_path(o) for o in outputs], force)
    stdin = read_input_bytes("-") if files == [Path("-")] else None
    rows = segment_files(files, outputs, checkpoint, resolve_device(device), amp=amp, size=size, overlay=overlay,
                         stdin=stdin)
    table = []
    for row in rows:
        if "png" in row:
            png = row.pop("png")
            sys.stdout.buffer.write(png)
            sys.stdout.buffer.flush()
        elif json_out:
            print_json(row)
        else:
            shown = ", ".join(f"{k} {v:.0%}" for k, v in row["classes"].items() if k != "background" and v >= 0.005)
            table.append([row["image"], row["mask"], shown or "background only"])
    if table:
        print_table(None, ["picture", "mask", "classes"], table)


@train_options(epochs=8, batch_size=8, lr=2e-3, out=Path("runs/segment"))
def train_segment(
    run: TrainRun,
    model: Annotated[str, typer.Option(
        "--model", "-m", metavar="NAME",
        help=f"One of: {', '.join(MODEL_NAMES)} (default: the shipped one).")] = DEFAULT_MODEL,
    size: Annotated[int, typer.Option(
        "--size", min=32, metavar="PIXELS",
        help="Training crop side (a multiple of 32); the shorter side at prediction.",
    )] = DEFAULT_SIZE,
    width: Annotated[int | None, typer.Option(
        "--width", min=1, metavar="N", help="U-Net's first layer width (default 32; the paper's 64).")] = None,
    init: Annotated[str | None, typer.Option(
        "--init", metavar="NAME",
        help=f"Weight initialisation: {' | '.join(INITS)} (default: the model's own).")] = None,
    class_weights: Annotated[str, typer.Option(
        "--class-weights", metavar="SPEC", help=CLASS_WEIGHTS_HELP + ".")] = "none",
    encoder_weights: Annotated[Path | None, typer.Option(
        "--encoder-weights", metavar="FILE",
        help="torchvision resnet34 weights (resnet34-b627a593.pth) for --model resnet34_unet.",
    )] = None,
    train_split: Annotated[str, typer.Option(
        "--train-split", metavar="SPLIT",
        help="Split to train on: train | valid | trainval | a list name in ImageSets/Segmentation.",
    )] = "train",
    valid_split: Annotated[str, typer.Option(
        "--valid-split", metavar="SPLIT", help="Split to validate on after every epoch.")] = "valid",
    augment: Annotated[bool, typer.Option(
        "--augment/--no-augment", help="Flips, rotation, shear and colour jitter (--no-augment: only scale and crop).",
    )] = True,
    rotate: Annotated[float, typer.Option(
        "--rotate", min=0.0, metavar="DEGREES", help="Random rotation, +- degrees (0: off).")] = 10.0,
    shear: Annotated[float, typer.Option(
        "--shear", min=0.0, metavar="DEGREES", help="Random affine shear, +- degrees (0: off).")] = 5.0,
    vflip: Annotated[bool, typer.Option("--vflip/--no-vflip", help="Random vertical flips too.")] = False,
) -> None:
    """Train a segmentation model on VOC-format data (default: the embedded generated set)."""
    start_training("segment", run, TrainOptions(
        model=model, size=size, width=width, init=init, class_weights=class_weights,
        encoder_weights=str(encoder_weights) if encoder_weights else None, train_split=train_split,
        valid_split=valid_split, augment=augment, rotate=rotate, shear=shear, vflip=vflip))


def eval_segment(
    checkpoint: Checkpoint = None,
    data: DataFolder = None,
    split: Annotated[str, typer.Option(
        "--split", metavar="SPLIT", help="train | valid | trainval | test (VOC's lists).")] = "valid",
    size: Size = None,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", "-b", min=1, metavar="N", help="Pictures per model call.")] = 8,
    confusion: Annotated[Path | None, typer.Option(
        "--confusion", metavar="PNG", help="Also draw the confusion matrix to this PNG.")] = None,
    workers: Annotated[int, typer.Option(
        "--workers", min=0, metavar="N", help="Processes decoding pictures (0: this one).")] = 0,
    json_out: Json = False,
    device: Device = "auto",
    amp: Amp = True,
) -> None:
    """Pixel accuracy, mean accuracy, per-class IoU and mean IoU over a whole split (void ignored).
    Without --data: the embedded generated set's valid split (50 pictures; built once, a few seconds)."""
    from songkit.cli.output import print_json, print_table
    from songkit.tasks.segment.evaluate import evaluate

    result = evaluate(checkpoint, data, split, device, size, batch_size, amp=amp, workers=workers)
    matrix = result.pop("matrix")
    if confusion is not None:
        import torch

        from songkit.core.plots import confusion_png

        present = [i for i, row in enumerate(matrix) if sum(row) or sum(r[i] for r in matrix)]
        m = torch.tensor(matrix)[present][:, present]
        confusion_png(m, [list(result["per_class"])[i] for i in present], confusion, title="segment: pixels")
    if json_out:
        print_json(result)
        return
    rows = [[name, 100 * r["iou"], 100 * r["accuracy"], 100 * r["precision"], r["support"]]
            for name, r in result["per_class"].items() if name not in result["absent_classes"]]
    rows.append(["mean IoU", 100 * result["mean_iou"], 100 * result["mean_accuracy"], None, result["pixels"]])
    rows.append(["pixel accuracy", None, 100 * result["accuracy"], None, None])
    title = f"songkit eval segment: {result['model']} on {result['split']} ({result['images']} pictures)"
    print_table(title, ["class", "IoU %", "accuracy %", "precision %", "pixels"], rows)
    if result["absent_classes"]:
        print(f"left out of the means (in neither truth nor prediction): {', '.join(result['absent_classes'])}",
              flush=True)


def data_segment(
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Folder to write VOCdevkit/VOC2007 into.")],
    train: Annotated[int, typer.Option("--train", min=1, metavar="N", help="Training pictures.")] = 200,
    valid: Annotated[int, typer.Option("--valid", min=1, metavar="N", help="Validation pictures.")] = 50,
    seed: Annotated[int, typer.Option("--seed", metavar="N", help="Generator seed (0: the embedded default).")] = 0,
) -> None:
    """Write the embedded dataset (generated shapes and textures) in the real VOC layout."""
    from songkit.tasks.segment.synthetic import SynthSpec, write_synthetic

    root = write_synthetic(out, SynthSpec(train=train, val=valid, seed=seed))
    print(root, flush=True)


def register(app: typer.Typer, train_app: typer.Typer, eval_app: typer.Typer, data_app: typer.Typer) -> None:
    app.command("segment")(segment)
    train_app.command("segment")(train_segment)
    eval_app.command("segment")(eval_segment)
    data_app.command("segment")(data_segment)
