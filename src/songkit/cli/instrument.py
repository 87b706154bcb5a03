"""`songkit instrument`, `songkit train instrument`, `songkit eval instrument`, `songkit data instrument`:
instrument-family classification on NSynth-format data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from songkit.cli.options import Checkpoint, Device, Json, TrainRun, train_options
from songkit.tasks.instrument.constants import DEFAULT_MODEL, MODEL_NAMES, SPLITS

SkipBad = Annotated[bool, typer.Option("--skip-bad", help="Leave out unreadable, silent or missing notes/files "
                                                           "(counted on stderr) instead of stopping.")]


def instrument(
    audio: Annotated[list[Path], typer.Argument(metavar="AUDIO...", help="Audio files or folders (any rate, "
                                                "channels, length); - reads one file from stdin.")],
    checkpoint: Checkpoint = None,
    top: Annotated[int, typer.Option("--top", "-k", min=1, max=11, help="Show the K likeliest families.")] = 1,
    windows: Annotated[bool, typer.Option("--windows", help="Average over every non-silent window of the "
                                                            "file instead of using its first second.")] = False,
    json_out: Json = False,
    skip_bad: SkipBad = False,
    device: Device = "auto",
) -> None:
    """Name the instrument family of each audio file (NSynth's 11 families), with its probability."""
    import contextlib

    from songkit.cli.output import print_json, print_table
    from songkit.core.io import expand_inputs, input_file
    from songkit.tasks.instrument.infer import predict

    suffixes = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3")
    with contextlib.ExitStack() as stack:
        files, names = [], {}
        for p in audio:
            if str(p) == "-":
                files.append(stack.enter_context(input_file("-", suffix=".audio")))
                names[files[-1]] = "-"
            else:
                files += expand_inputs([p], suffixes)
        results, skipped = predict(files, checkpoint, top=top, windows=windows, device=device, skip_bad=skip_bad,
                                   names=names)
    if skip_bad:  # a result, not progress: shown even under -q
        typer.echo(f"skipped {skipped} of {len(files)} file(s)", err=True)
    if json_out:
        for r in results:
            print_json(r)
    elif top == 1:
        print_table(None, ["file", "family", "probability"],
                    [[r["file"], r["family"], f"{r['probability']:.3f}"] for r in results])
    else:
        print_table(None, ["file"] + [f"#{k + 1}" for k in range(top)],
                    [[r["file"], *[f"{f} {p:.3f}" for f, p in r["top"]]] for r in results])


@train_options(epochs=20, batch_size=32, lr=8e-4, optimizer="adam", weight_decay=0.0, schedule="none",
               out=Path("runs/instrument"))
def train_instrument(
    run: TrainRun,
    model: Annotated[str, typer.Option("--model", "-m", help=f"{' | '.join(MODEL_NAMES)}.")] = DEFAULT_MODEL,
    augment: Annotated[bool, typer.Option("--augment/--no-augment", help="Gain, onset shift, speed, noise and "
                                          "mixup augmentation (off by default: see docs/instrument.md).")] = False,
    mixup: Annotated[float, typer.Option("--mixup", min=0.0, help="Mixup Beta(alpha, alpha) with --augment; "
                                                                  "0: off.")] = 0.2,
    timbre: Annotated[bool, typer.Option("--timbre/--no-timbre", help="With --augment: also a random EQ "
                                         "(+-8 dB) and synthetic reverb on 30 % of the notes.")] = False,
    frontend: Annotated[str, typer.Option("--frontend", help="Log-mel models: logmel | pcen (per-channel "
                                                             "energy normalisation).")] = "logmel",
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Leave out unreadable, silent or missing notes "
                                                              "(counted on stderr) instead of stopping.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=0, help="Train on a seeded random N notes (validation: "
                                       "N/4); 0: all. Notes stream from disk whatever the split size.")] = 0,
) -> None:
    """Train a family classifier on NSynth-format data (default: the embedded set). The defaults are
    the seed's: Adam at 8e-4, batch 32, 20 epochs; the best epoch by validation accuracy is best.ckpt."""
    from songkit.cli.options import start_training
    from songkit.tasks.instrument.constants import TrainOptions

    start_training("instrument", run, TrainOptions(model=model, augment=augment, mixup=mixup, timbre=timbre,
                                                   frontend=frontend, skip_bad=skip_bad, limit=limit))


def eval_instrument(
    checkpoint: Checkpoint = None,
    data: Annotated[list[Path] | None, typer.Option(
        "--data", "-d", help="NSynth folder (holding nsynth-*), a split folder, or its examples.json "
                             "(default: the embedded set, unpacked once in a second).")] = None,
    split: Annotated[str, typer.Option("--split", help="train | valid | test.")] = "test",
    confusion: Annotated[Path | None, typer.Option("--confusion", metavar="PNG",
                                                      help="Write the confusion matrix as a PNG here.")] = None,
    png: Annotated[Path | None, typer.Option("--png", hidden=True)] = None,
    json_out: Json = False,
    skip_bad: SkipBad = False,
    limit: Annotated[int, typer.Option("--limit", min=0, help="Measure a seeded random N notes (0: all).")] = 0,
    workers: Annotated[int, typer.Option("--workers", min=0, metavar="N",
                                         help="DataLoader worker processes decoding notes (0: in-process).")] = 0,
    device: Device = "auto",
) -> None:
    """Accuracy, per-family precision/recall/F1 and the confusion matrix of a checkpoint on an NSynth
    split (notes stream from disk)."""
    from songkit.cli.output import print_json, print_table
    from songkit.core.errors import UserError
    from songkit.tasks.instrument.evaluate import evaluate

    if png is not None:
        raise UserError("--png: renamed; use --confusion PNG")
    if split not in SPLITS:
        raise UserError(f"--split {split}: expected {', '.join(SPLITS)}")
    result = evaluate(checkpoint, data, split=split, device=device, skip_bad=skip_bad, confusion_png=confusion,
                      limit=limit, workers=workers)
    if skip_bad:  # a result, not progress: shown even under -q
        typer.echo(f"skipped {result['skipped']} bad note(s)", err=True)
    if json_out:
        print_json(result)
        return

    title = (f"{result['model']} on {split} ({result['notes']} notes): accuracy {result['accuracy']:.4f}, "
             f"macro F1 {result['macro_f1']:.4f}")
    print_table(title, ["family", "precision", "recall", "f1", "support"],
                [[fam, m["precision"], m["recall"], m["f1"], m["support"]] for fam, m in result["per_family"].items()])
    if confusion is not None:
        print(f"confusion matrix: {confusion}")


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
    velocity: Annotated[list[int] | None, typer.Option(
        "--velocity", help="MIDI velocities, repeatable (NSynth: 25 50 75 100 127). Default 75 and 127.")] = None,
    family: Annotated[list[str] | None, typer.Option("--family", help="Only these families (repeatable).")] = None,
    max_notes: Annotated[int, typer.Option("--max-notes-per-instrument", min=0,
                                           help="Sample at most N notes per instrument (0: all).")] = 0,
    max_held_out: Annotated[int, typer.Option("--max-held-out-notes", min=0,
                                              help="Cap for valid/test instruments (0: as for training).")] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the note sampling and the program split.")] = 0,
    pack: Annotated[Path | None, typer.Option("--pack", help="Also pack the set as an Ogg tar (the "
                                                                "embedded-default format).")] = None,
) -> None:
    """Render an NSynth-format dataset from General MIDI SoundFonts with FluidSynth."""
    from songkit.tasks.instrument.data import pack_archive
    from songkit.tasks.instrument.render import build_dataset

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
