"""`songkit instrument`, `songkit train instrument`, `songkit eval instrument`, `songkit data instrument`:
instrument-family classification on NSynth-format data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from songkit.cli.options import Checkpoint, Device, Json, TrainRun, train_options

SkipBad = Annotated[bool, typer.Option("--skip-bad", help="Leave out unreadable, silent or missing notes/files "
                                                           "(counted on stderr) instead of stopping.")]


def instrument(
    audio: Annotated[list[Path], typer.Argument(help="Audio files or folders (any rate, channels, length); - reads one file from stdin.")],
    checkpoint: Checkpoint = None,
    top: Annotated[int, typer.Option("--top", "-k", min=1, max=11, help="Show the K likeliest families.")] = 1,
    windows: Annotated[bool, typer.Option("--windows", help="Average over every non-silent window of the "
                                                            "file instead of using its first second.")] = False,
    json_out: Json = False,
    skip_bad: SkipBad = False,
    device: Device = "auto",
) -> None:
    """Name the instrument family of each audio file (NSynth's 11 families), with its probability."""
    import json

    from songkit.core.io import expand_inputs
    from songkit.tasks.instrument.task import predict

    suffixes = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3")
    files = [f for p in audio for f in ([p] if str(p) == "-" else expand_inputs([p], suffixes))]
    results = predict(files, checkpoint, top=top, windows=windows, device=device, skip_bad=skip_bad)
    if json_out:
        for r in results:
            print(json.dumps(r))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=None, box=None)
    table.add_column("file", overflow="fold")
    if top == 1:
        table.add_column("family")
        table.add_column("probability", justify="right")
        for r in results:
            table.add_row(r["file"], r["family"], f"{r['probability']:.3f}")
    else:
        for k in range(top):
            table.add_column(f"#{k + 1}")
        for r in results:
            table.add_row(r["file"], *[f"{f} {p:.3f}" for f, p in r["top"]])
    Console(soft_wrap=True).print(table)


@train_options(epochs=20, batch_size=32, lr=8e-4, optimizer="adam", weight_decay=0.0, schedule="none",
               out=Path("runs/instrument"))
def train_instrument(
    run: TrainRun,
    # literal annotations: train_options evaluates them in songkit.cli.options' namespace
    model: Annotated[str, typer.Option("--model", "-m", help="lstm | blstm | cnn1d | cnn2d | samplecnn | linear")] = "cnn2d",
    augment: Annotated[bool, typer.Option("--augment/--no-augment", help="Gain, onset shift, speed, noise and "
                                          "mixup augmentation (off by default: it lowered cross-SoundFont accuracy "
                                          "in short runs, see docs/instrument.md).")] = False,
    mixup: Annotated[float, typer.Option("--mixup", min=0.0, help="Mixup Beta(alpha, alpha); 0: off.")] = 0.2,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Leave out unreadable, silent or missing notes "
                                                              "(counted on stderr) instead of stopping.")] = False,
    max_notes: Annotated[int, typer.Option("--max-notes", min=0, help="Train on a seeded random N notes (valid: "
                                           "N/4); the clips are held in memory (0: all).")] = 0,
) -> None:
    """Train a family classifier on NSynth-format data (default: the embedded set). The defaults are
    the seed's: Adam at 8e-4, batch 32, 20 epochs; the best epoch by validation accuracy is best.ckpt."""
    from songkit.tasks.instrument.task import AugmentConfig, train

    aug = AugmentConfig(enabled=augment, mixup_alpha=mixup)
    train(run.data, model, run, skip_bad=skip_bad, aug=aug, max_notes=max_notes)


def eval_instrument(
    checkpoint: Checkpoint = None,
    data: Annotated[Optional[list[Path]], typer.Option(
        "--data", "-d", help="NSynth folder (holding nsynth-*), a split folder, or its examples.json "
                             "(default: the embedded set).")] = None,
    split: Annotated[str, typer.Option("--split", help="train | valid | test.")] = "test",
    png: Annotated[Optional[Path], typer.Option("--png", help="Write the confusion matrix as a PNG here.")] = None,
    json_out: Json = False,
    skip_bad: SkipBad = False,
    max_notes: Annotated[int, typer.Option("--max-notes", min=0, help="Measure a seeded random N notes (0: all).")] = 0,
    device: Device = "auto",
) -> None:
    """Accuracy, per-family precision/recall/F1 and the confusion matrix of a checkpoint on a split."""
    import json
    import math

    from songkit.core.errors import UserError
    from songkit.tasks.instrument.task import evaluate

    if split not in ("train", "valid", "test"):
        raise UserError(f"--split {split}: expected train, valid or test")
    result = evaluate(checkpoint, data, split=split, device=device, skip_bad=skip_bad, png=png, max_notes=max_notes)
    if json_out:
        print(json.dumps(result))
        return
    from rich.console import Console
    from rich.table import Table

    def fmt(v: float) -> str:
        return "-" if math.isnan(v) else f"{v:.3f}"

    table = Table(title=f"{result['model']} on {split} ({result['notes']} notes): accuracy {result['accuracy']:.4f}, "
                        f"macro F1 {result['macro_f1']:.4f}")
    for col in ("family", "precision", "recall", "f1", "support"):
        table.add_column(col, justify="left" if col == "family" else "right")
    for fam, m in result["per_family"].items():
        table.add_row(fam, fmt(m["precision"]), fmt(m["recall"]), fmt(m["f1"]), str(m["support"]))
    Console(soft_wrap=True).print(table)
    if png is not None:
        print(f"confusion matrix: {png}")


def data_instrument(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write nsynth-{train,valid,test}/ into.")],
    soundfont: Annotated[list[Path], typer.Option(
        "--soundfont", "-s", help="General MIDI SoundFont (.sf2/.sf3), repeatable. Debian: "
                                  "/usr/share/sounds/sf2/FluidR3_GM.sf2, TimGM6mb.sf2.")],
    split_by: Annotated[str, typer.Option(
        "--split-by", help="soundfont: the last SoundFont is held out for valid/test; program: GM programs "
                           "are held out (same split in every SoundFont).")] = "soundfont",
    pitch_step: Annotated[int, typer.Option("--pitch-step", min=1, help="Semitones between rendered pitches "
                                                                        "(1: every pitch, as NSynth).")] = 4,
    velocity: Annotated[Optional[list[int]], typer.Option(
        "--velocity", help="MIDI velocities, repeatable (NSynth: 25 50 75 100 127). Default 75 and 127.")] = None,
    family: Annotated[Optional[list[str]], typer.Option("--family", help="Only these families (repeatable).")] = None,
    max_notes: Annotated[int, typer.Option("--max-notes-per-instrument", min=0,
                                           help="Sample at most N notes per instrument (0: all).")] = 0,
    max_held_out: Annotated[int, typer.Option("--max-held-out-notes", min=0,
                                              help="Cap for valid/test instruments (0: as for training).")] = 0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    pack: Annotated[Optional[Path], typer.Option("--pack", help="Also pack the set as an Ogg tar (the "
                                                                "embedded-default format).")] = None,
) -> None:
    """Render an NSynth-format dataset from General MIDI SoundFonts with FluidSynth."""
    from songkit.tasks.instrument.data import build_dataset, pack_archive

    counts = build_dataset(soundfont, out, split_by=split_by, pitch_step=pitch_step,
                           velocities=velocity or [75, 127], families=family, max_notes_per_instrument=max_notes,
                           max_held_out_notes=max_held_out,
                           seed=seed)
    for split, n in counts.items():
        if n:
            print(f"{out / ('nsynth-' + split)}\t{n} notes")
    if pack is not None:
        pack_archive(out, pack)
        print(f"{pack}\tpacked")


def register(app: typer.Typer, train_app: typer.Typer, eval_app: typer.Typer, data_app: typer.Typer) -> None:
    app.command("instrument")(instrument)
    train_app.command("instrument")(train_instrument)
    eval_app.command("instrument")(eval_instrument)
    data_app.command("instrument")(data_instrument)
