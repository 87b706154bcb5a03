"""`songkit segment`, `songkit train segment`, `songkit eval segment`, `songkit data segment`:
semantic segmentation on PASCAL-VOC-format data. Parses, resolves paths, calls one library function,
formats what it returns; torch is imported only inside the commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from songkit.cli.options import (
    Checkpoint,
    Device,
    Json,
    TrainRun,
    start_training,
    train_options,
)
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
    typer.Option("--data", "-d", help="VOC year folder (VOCdevkit/VOC2007) or VOCdevkit (default: the embedded "
                                      "generated set, built once into $SONGKIT_HOME in a few seconds)."),
]
Amp = Annotated[bool, typer.Option("--amp/--no-amp", help="bf16 autocast where the hardware has it (CUDA, CPUs with "
                                                          "AMX/AVX512-BF16); --no-amp: plain fp32.")]
Size = Annotated[int | None, typer.Option("--size", min=32, metavar="PIXELS",
                                             help="Shorter side fed to the model (default: the one it was trained at).")]


def segment(
    images: Annotated[list[Path], typer.Argument(metavar="IMAGE...", show_default=False,
                                                 help="Pictures or folders of pictures ('-': one picture from stdin).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="One picture: the mask file (NAME.png) or a folder; several: "
                                                          "a folder of <name>.png masks; '-': the PNG to stdout.")],
    checkpoint: Checkpoint = None,
    overlay: Annotated[bool, typer.Option("--overlay", help="Also write <mask name>.overlay.jpg: the mask over the picture.")] = False,
    size: Size = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing masks (never one of the inputs).")] = False,
    json_out: Json = False,
    device: Device = "auto",
    amp: Amp = True,
) -> None:
    """Segment pictures: a VOC palette PNG mask per picture, at the picture's own size."""
    import json

    from songkit.core.device import resolve_device
    from songkit.tasks.segment.infer import segment_files

    files = _inputs(images)  # inputs and outputs checked before the model loads
    outputs = _outputs(files, out, force, overlay)
    stdin = sys.stdin.buffer.read() if files == [Path("-")] else None
    rows = segment_files(files, outputs, checkpoint, resolve_device(device), amp=amp, size=size, overlay=overlay,
                         stdin=stdin)
    for row in rows:
        if "png" in row:
            _emit(row.pop("png"))
        elif json_out:
            _emit(json.dumps(row))
        else:
            shown = ", ".join(f"{k} {v:.0%}" for k, v in row["classes"].items() if k != "background" and v >= 0.005)
            _emit(f"{row['image']} -> {row['mask']}  ({shown or 'background only'})")


def _inputs(images: list[Path]) -> list[Path]:
    """Files of the arguments (folders expanded); '-' (stdin) only alone."""
    from songkit.core.errors import UserError
    from songkit.core.io import expand_inputs

    if any(str(p) == "-" for p in images):
        if len(images) > 1:
            raise UserError("-: stdin holds one picture; give it alone")
        return [Path("-")]
    return expand_inputs(images, IMAGE_SUFFIXES)


def _outputs(files: list[Path], out: Path, force: bool, overlay: bool) -> list[Path | None]:
    """The mask path of each input (None: stdout). One input and ``-o NAME.png`` writes that file;
    otherwise ``-o`` is a folder of <stem>.png. Never over an input; over another existing file only
    with --force. (core.io.output_for, once it exists, is this rule for every task.)"""
    from songkit.core.errors import UserError
    from songkit.tasks.segment.infer import overlay_path

    if str(out) == "-":
        if len(files) != 1 or overlay:
            raise UserError("--out -: writes one mask PNG to stdout, so give exactly one picture and no --overlay")
        return [None]
    if len(files) == 1 and not out.is_dir() and out.suffix:
        if out.suffix.lower() != ".png":
            raise UserError(f"{out}: masks are PNG files; give NAME.png or a folder")
        outputs = [out]
    else:
        if out.exists() and not out.is_dir():
            raise UserError(f"{out}: is a file; with several pictures --out is a folder")
        outputs, taken = [], set()
        for f in files:
            stem = "stdin" if str(f) == "-" else f.stem
            name, n = f"{stem}.png", 1
            while name in taken:  # a/x.jpg and b/x.jpg: x.png and x-2.png
                n += 1
                name = f"{stem}-{n}.png"
            taken.add(name)
            outputs.append(out / name)
    inputs = {f.resolve() for f in files if str(f) != "-"}
    for dest in outputs:
        for path in [dest, overlay_path(dest)] if overlay else [dest]:
            if path.resolve() in inputs:
                raise UserError(f"{path}: is one of the inputs; choose another --out (masks never replace pictures)")
            if path.exists() and not force:
                raise UserError(f"{path}: exists (--force overwrites it)")
            if path.is_dir():
                raise UserError(f"{path}: is a folder")
    return outputs


def _emit(data: str | bytes) -> None:
    """Write one result to stdout; a reader that closed the pipe (`| head`) ends the command with exit 0."""
    import os

    try:
        if isinstance(data, bytes):
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            print(data, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the final flush cannot fail
        raise typer.Exit(0) from None


@train_options(epochs=8, batch_size=8, lr=2e-3, out=Path("runs/segment"))
def train_segment(
    run: TrainRun,
    model: Annotated[str, typer.Option("--model", "-m", help=f"One of: {', '.join(MODEL_NAMES)} (default: the shipped one).")] = DEFAULT_MODEL,
    size: Annotated[int, typer.Option("--size", min=32, help="Training crop side (a multiple of 32); also the shorter side at prediction.")] = DEFAULT_SIZE,
    width: Annotated[int | None, typer.Option("--width", min=1, help="U-Net's first layer width (default 32; the paper's 64).")] = None,
    init: Annotated[str | None, typer.Option("--init", help=f"Weight initialisation: {' | '.join(INITS)} (default: the model's own).")] = None,
    class_weights: Annotated[str, typer.Option("--class-weights", help=CLASS_WEIGHTS_HELP + ".")] = "none",
    encoder_weights: Annotated[Path | None, typer.Option("--encoder-weights", help="torchvision resnet34 weights (resnet34-b627a593.pth) for --model resnet34_unet.")] = None,
    train_split: Annotated[str, typer.Option("--train-split", help="Split to train on: train | valid | trainval | a list name in ImageSets/Segmentation.")] = "train",
    valid_split: Annotated[str, typer.Option("--valid-split", help="Split to validate on after every epoch.")] = "valid",
    augment: Annotated[bool, typer.Option("--augment/--no-augment", help="Flips, rotation, shear and colour jitter (--no-augment: only scale and crop).")] = True,
    rotate: Annotated[float, typer.Option("--rotate", min=0.0, help="Random rotation, +- degrees (0: off).")] = 10.0,
    shear: Annotated[float, typer.Option("--shear", min=0.0, help="Random affine shear, +- degrees (0: off).")] = 5.0,
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
    split: Annotated[str, typer.Option("--split", help="train | valid | trainval | test (VOC's lists).")] = "valid",
    size: Size = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Pictures per model call.")] = 8,
    confusion: Annotated[Path | None, typer.Option("--confusion", metavar="PNG", help="Also draw the confusion matrix to this PNG.")] = None,
    workers: Annotated[int, typer.Option("--workers", min=0, metavar="N", help="Processes decoding pictures (0: this one).")] = 0,
    json_out: Json = False,
    device: Device = "auto",
    amp: Amp = True,
) -> None:
    """Pixel accuracy, mean accuracy, per-class IoU and mean IoU over a whole split (void ignored).
    Without --data: the embedded generated set's valid split (50 pictures; built once, a few seconds)."""
    import json
    import math

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
        _emit(json.dumps(_nan_to_none(result)))
        return

    def pct(v) -> str:
        return "-" if v is None or math.isnan(v) else f"{100 * v:.1f}"

    rows = [[name, pct(r["iou"]), pct(r["accuracy"]), pct(r["precision"]), f"{r['support']:,}"]
            for name, r in result["per_class"].items() if name not in result["absent_classes"]]
    rows.append(["mean IoU", pct(result["mean_iou"]), pct(result["mean_accuracy"]), "", f"{result['pixels']:,}"])
    rows.append(["pixel accuracy", "", pct(result["accuracy"]), "", ""])
    lines = _table(f"songkit eval segment: {result['model']} on {result['split']} ({result['images']} pictures)",
                   ["class", "IoU %", "accuracy %", "precision %", "pixels"], rows)
    if result["absent_classes"]:
        lines.append(f"left out of the means (in neither truth nor prediction): {', '.join(result['absent_classes'])}")
    _emit("\n".join(lines))


def _table(title: str, columns: list[str], rows: list[list[str]]) -> list[str]:
    """Plain aligned columns that never wrap (cli.output.print_table's style, until it exists)."""
    widths = [max(len(str(r[i])) for r in [columns, *rows]) for i in range(len(columns))]

    def line(r):
        return "  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in enumerate(zip(r, widths))).rstrip()

    return [title, line(columns), *[line(r) for r in rows]]


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
    train: Annotated[int, typer.Option("--train", min=1, help="Training pictures.")] = 200,
    valid: Annotated[int, typer.Option("--valid", min=1, help="Validation pictures.")] = 50,
    seed: Annotated[int, typer.Option("--seed", help="Generator seed (0: the embedded default).")] = 0,
) -> None:
    """Write the embedded dataset (generated shapes and textures) in the real VOC layout."""
    from songkit.tasks.segment.synthetic import SynthSpec, write_synthetic

    _emit(str(write_synthetic(out, SynthSpec(train=train, val=valid, seed=seed))))


def register(app: typer.Typer, train_app: typer.Typer, eval_app: typer.Typer, data_app: typer.Typer) -> None:
    app.command("segment")(segment)
    train_app.command("segment")(train_segment)
    eval_app.command("segment")(eval_segment)
    data_app.command("segment")(data_segment)
