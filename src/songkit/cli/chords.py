"""`songkit chords`, `songkit train chords`, `songkit eval chords`, `songkit data chords`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from songkit.cli.options import Checkpoint, Device, Json, TrainRun, start_training, train_options
from songkit.tasks.chords.constants import DEFAULT_MODEL, MODEL_NAMES, TrainOptions

SelfProb = Annotated[float | None, typer.Option(
    "--self-prob", min=0.0, max=0.999, metavar="P",
    help="HMM smoothing: chance of staying on a chord per frame (0: frame-wise argmax; default: the checkpoint's).")]
Split = Annotated[str, typer.Option("--split", metavar="SPLIT",
                                    help="train | valid | test | all (song-level split by id).")]
Folds = Annotated[int, typer.Option("--folds", min=0, metavar="K",
                                    help="Cross-validation: K song-level folds (0: the fixed 70/10/20 split).")]
Fold = Annotated[int, typer.Option("--fold", min=0, metavar="I", help="With --folds: the fold held out as test.")]
Limit = Annotated[int, typer.Option("--limit", min=0, metavar="N", help="Use only the first N songs (0: all).")]
Rotations = Annotated[int, typer.Option(
    "--rotations", min=1, max=12, metavar="N",
    help="Test-time transposition: average the model over the song moved to N keys (12: all; N times the cost).")]


def chords(
    inputs: Annotated[list[Path], typer.Argument(
        metavar="INPUT...", help="Audio files (WAV/FLAC/OGG, any rate), Chordino bothchroma.csv files, or - (stdin).")],
    checkpoint: Checkpoint = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", metavar="PATH",
        help="One input: the .lab file to write ('-' or unset: stdout). Several inputs: a folder.")] = None,
    self_prob: SelfProb = None,
    window: Annotated[int, typer.Option(
        "--window", min=0, metavar="FRAMES",
        help="Frames per batched window (0: each song whole at batch 1, the slow reference).")] = 1024,
    rotations: Rotations = 1,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing output files.")] = False,
    beats: Annotated[bool, typer.Option(
        "--beats", help="Beat-synchronous: one chord per beat, beat times from INPUT.beats beside it, else "
        "tracked from the audio.")] = False,
    json_out: Json = False,
    device: Device = "auto",
) -> None:
    """Recognise chords: a .lab (start, end, majmin label) per input."""
    import contextlib
    import json

    from songkit.cli.output import print_json
    from songkit.core.device import resolve_device
    from songkit.core.io import atomic_write_text, input_file, open_output
    from songkit.tasks.chords.infer import recognise
    from songkit.tasks.chords.labels import format_lab

    targets = _outputs(inputs, out, ".json" if json_out else ".lab", force)
    beat_times = None
    if beats:
        from songkit.tasks.chords.data import read_beats

        # None: no INPUT.beats beside it (or stdin), so the beats are tracked from the audio
        beat_times = [read_beats(p.with_suffix(".beats")) if str(p) != "-" and p.with_suffix(".beats").is_file()
                      else None for p in inputs]
    with contextlib.ExitStack() as stack:  # every input checked (and stdin copied) before the model loads
        paths = [stack.enter_context(input_file(p)) for p in inputs]
        results = recognise(paths, checkpoint, resolve_device(device), self_prob, window=window, beats=beat_times,
                            rotations=rotations)
    for p, target, seg in zip(inputs, targets, results):
        if json_out:
            record = {"input": str(p), "segments": [
                {"start": float(s), "end": float(e), "label": lab} for (s, e), lab in zip(seg.intervals, seg.labels)]}
            if target == "-":
                print_json(record)
                continue
            text = json.dumps(record) + "\n"
        else:
            text = format_lab(seg.intervals, seg.labels)
        if target == "-":
            with open_output("-") as f:
                f.write(text)
        else:
            atomic_write_text(target, text)


def _outputs(inputs: list[Path], out: Path | None, suffix: str, force: bool) -> list:
    """core.io.output_for's rule (stdout, the one file -o names, or a folder; never over an input, an existing
    file only with --force), with Billboard's NNNN/bothchroma.csv named after its song folder."""
    from songkit.core.io import check_outputs, output_for

    targets = output_for(inputs, out, suffix, force=True)
    renamed = [t.with_name(f"{p.parent.name}{suffix}") if p.name == "bothchroma.csv" and out is not None
               and t != out else t for p, t in zip(inputs, targets)]
    check_outputs(inputs, renamed, force)
    return renamed


@train_options(epochs=30, batch_size=32, lr=1e-3, out=Path("runs/chords"), patience=6)
def train_chords(
    run: TrainRun,
    model: Annotated[str, typer.Option("--model", "-m", metavar="NAME", help=" | ".join(MODEL_NAMES))] = DEFAULT_MODEL,
    seq_len: Annotated[int, typer.Option("--seq-len", min=1, metavar="FRAMES",
                                         help="Frames per training window (the seed: 1 or 128).")] = 128,
    hidden_size: Annotated[int, typer.Option("--hidden-size", min=0, metavar="N",
                                             help="LSTM units per direction (0: the model's default).")] = 0,
    augment: Annotated[bool, typer.Option("--augment/--no-augment",
                                          help="Transpose every window by a random -5..+6 semitones.")] = True,
    learn_transitions: Annotated[bool, typer.Option(
        "--learn-transitions/--no-learn-transitions",
        help="HMM transitions counted from the training labels (key-invariant) instead of one --self-prob.")] = False,
    crf: Annotated[bool, typer.Option(
        "--crf", help="A CRF layer trained with the network; decoding uses its key-invariant transitions.")] = False,
    crf_frame_loss: Annotated[float, typer.Option(
        "--crf-frame-loss", min=0.0, metavar="W",
        help="With --crf: add W x the frame cross-entropy to the path loss (0: the path loss alone).")] = 0.0,
    label_smoothing: Annotated[float, typer.Option(
        "--label-smoothing", min=0.0, max=0.5, metavar="E",
        help="Cross-entropy against (1 - E) one-hot + E uniform (0: off; see docs/chords.md).")] = 0.0,
    class_balance: Annotated[float, typer.Option(
        "--class-balance", min=0.0, max=1.0, metavar="A",
        help="Weight the loss of N, major and minor frames by their share ** -A (0: off; see docs/chords.md).")] = 0.0,
    limit: Limit = 0,
    folds: Folds = 0,
    fold: Fold = 0,
    every_song: Annotated[bool, typer.Option(
        "--every-song", help="Train on the test split too (a model to ship: its test scores then mean nothing); "
        "the best epoch is still picked on the valid split.")] = False,
) -> None:
    """Train a chord model on Billboard chroma and/or audio+.lab folders (default: the embedded Bach chorales)."""
    options = TrainOptions(model=model, seq_len=seq_len, hidden_size=hidden_size, augment=augment,
                           learn_transitions=learn_transitions, crf=crf, crf_frame_loss=crf_frame_loss,
                           label_smoothing=label_smoothing, class_balance=class_balance, limit=limit,
                           folds=folds, fold=fold, every_song=every_song)
    start_training("chords", run, options)


def eval_chords(
    checkpoint: Checkpoint = None,
    data: Annotated[Path | None, typer.Option(
        "--data", "-d", metavar="PATH", help="Billboard release folder or audio+.lab folder.")] = None,
    split: Split = "test",
    ref_lab: Annotated[Path | None, typer.Option(
        "--ref-lab", metavar="LAB", help="Score this reference .lab against --est-lab (no model).")] = None,
    est_lab: Annotated[Path | None, typer.Option("--est-lab", metavar="LAB", help="Estimated .lab to score.")] = None,
    template: Annotated[bool, typer.Option(
        "--template", help="Score the chroma-template baseline instead of a model.")] = False,
    self_prob: SelfProb = None,
    confusion: Annotated[Path | None, typer.Option("--confusion", metavar="PNG",
                                                      help="Write the confusion matrix picture here.")] = None,
    folds: Folds = 0,
    fold: Fold = 0,
    limit: Limit = 0,
    beats: Annotated[bool, typer.Option(
        "--beats", help="Beat-synchronous decoding: the .beats file beside each song, else beats tracked "
        "from its audio.")] = False,
    rotations: Rotations = 1,
    json_out: Json = False,
    device: Device = "auto",
) -> None:
    """MIREX root and majmin WCSR (duration-weighted, as mir_eval computes them) per song and over the set,
    and frame accuracy. Without --data: the embedded Bach chorales (60 rendered to audio, test split), built
    once into $SONGKIT_HOME the first time (about 3 minutes on one core), then read from there."""
    from songkit.cli.output import print_json, print_table
    from songkit.core.errors import UserError

    if ref_lab or est_lab:
        from songkit.tasks.chords.evaluate import score_song
        from songkit.tasks.chords.labels import read_lab

        if not (ref_lab and est_lab):
            raise UserError("--ref-lab and --est-lab go together")
        sc = score_song(read_lab(ref_lab), read_lab(est_lab))
        if json_out:
            print_json({"ref": str(ref_lab), "est": str(est_lab), **sc})
        else:
            print_table("chords: two .lab files", ["metric", "score"],
                        [["root", f"{sc['root']:.6f}"], ["majmin", f"{sc['majmin']:.6f}"]])
        return
    from songkit.core.device import resolve_device
    from songkit.tasks.chords.constants import VOCAB
    from songkit.tasks.chords.evaluate import evaluate

    res = evaluate(checkpoint, data, split, resolve_device(device), self_prob, template, folds, fold, limit, beats,
                   rotations)
    cm = res.pop("confusion")
    if confusion:
        from songkit.core.plots import confusion_png

        confusion_png(cm.mat.numpy(), VOCAB, confusion, title=f"chords {split}: {Path(res['model']).name}")
    if json_out:
        print_json(res)
        return
    rows = [[s["name"], f"{s['root']:.4f}", f"{s['majmin']:.4f}", f"{s['frame_accuracy']:.4f}"]
            for s in res["per_song"]]
    rows.append([f"ALL ({res['songs']} songs, duration-weighted)", f"{res['root_wcsr']:.4f}",
                 f"{res['majmin_wcsr']:.4f}", f"{res['frame_accuracy']:.4f}"])
    print_table(f"chords {split}: {res['model']}", ["song", "root", "majmin", "frame_acc"], rows)


def data_chords(
    out: Annotated[Path, typer.Option(
        "--out", "-o", metavar="DIR", help="Folder for the audio files and their .lab files.")],
    limit: Annotated[int, typer.Option("--limit", min=0, metavar="N",
                                       help="Songs to write (Bach: default 60; POP909: 0 = all).")] = 0,
    pop909: Annotated[Path | None, typer.Option(
        "--pop909", metavar="PATH",
        help="Render POP909 (the folder of NNN/NNN.mid + chord_midi.txt) instead of Bach.")] = None,
    soundfont: Annotated[list[Path] | None, typer.Option(
        "--soundfont", metavar="SF2", help="SoundFont(s) for --pop909 (repeat: each song uses one, in turn).")] = None,
    fmt: Annotated[str, typer.Option("--format", metavar="FMT", help="wav | flac")] = "flac",
    split: Annotated[list[str] | None, typer.Option(
        "--split", metavar="SPLIT", help="POP909: only songs of this song-level split (repeat; train | valid | "
        "test), e.g. the test songs with a SoundFont the training songs do not use.")] = None,
) -> None:
    """Render chord datasets to audio with .lab labels beside each file (Isophonics style): Bach chorales from
    music21's corpus (additive synth), or POP909 MIDI through SoundFonts (pip install songkit[soundfont])."""
    from songkit.core.errors import UserError

    if fmt not in ("wav", "flac"):
        raise UserError(f"--format {fmt}: expected wav or flac")
    if pop909 is not None:
        from songkit.tasks.chords.pop909 import render_dataset

        if not soundfont:
            raise UserError("--pop909 needs at least one --soundfont SF2")
        bad = sorted(set(split or ()) - {"train", "valid", "test"})
        if bad:
            raise UserError(f"--split {bad[0]}: expected train, valid or test")
        render_dataset(pop909, soundfont, out, limit=limit, fmt=fmt, splits=tuple(split or ("train", "valid", "test")))
        return
    if soundfont or split:
        raise UserError("--soundfont and --split go with --pop909")
    from songkit.tasks.chords.bach import build_dataset

    build_dataset(out, num=limit or 60, fmt=fmt)


def register(app: typer.Typer, train_app: typer.Typer, eval_app: typer.Typer, data_app: typer.Typer) -> None:
    app.command("chords")(chords)
    train_app.command("chords")(train_chords)
    eval_app.command("chords")(eval_chords)
    data_app.command("chords")(data_chords)
