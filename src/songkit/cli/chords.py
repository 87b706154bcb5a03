"""`songkit chords`, `songkit train chords`, `songkit eval chords`, `songkit data chords`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from songkit.cli.options import Checkpoint, Device, Json, TrainRun, train_options

MODEL_NAMES = "frame | blstm | crnn1 | crnn2 | cnn_blstm"
SelfProb = Annotated[float, typer.Option(
    "--self-prob", min=0.0, max=0.999, help="HMM smoothing: chance of staying on a chord per frame (0: frame-wise argmax).")]


def chords(
    inputs: Annotated[list[Path], typer.Argument(help="Audio files (WAV/FLAC/OGG, any rate) or Chordino bothchroma.csv files.")],
    checkpoint: Checkpoint = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for one .lab per input ('-' or unset with one input: stdout).")] = None,
    self_prob: SelfProb = 0.9,
    json_out: Json = False,
    device: Device = "auto",
) -> None:
    """Recognise chords: writes a .lab (start, end, majmin label) per input."""
    import json

    from songkit.core.device import resolve_device
    from songkit.core.errors import UserError
    from songkit.core.io import atomic_write_text, open_output
    from songkit.core.progress import track
    from songkit.tasks.chords import harte
    from songkit.tasks.chords.task import (
        input_chroma,
        load_model,
        predict_classes,
        segments_for,
    )

    for p in inputs:  # check every input before the model loads
        if not p.exists():
            raise UserError(f"{p}: no such file")
    to_stdout = out is None or str(out) == "-"
    if to_stdout and len(inputs) > 1:
        raise UserError("several inputs need --out DIR (one .lab per input)")
    dev = resolve_device(device)
    # every input is read before the model loads: a bad file fails fast, naming itself
    feats = [input_chroma(p, dev) for p in track(inputs, total=len(inputs), description="features")]
    model, _ = load_model(checkpoint, dev)
    for p, (chroma, duration) in zip(inputs, feats):
        seg = segments_for(predict_classes(model, chroma, dev, self_prob), duration)
        if json_out:
            text = json.dumps({"input": str(p), "segments": [
                {"start": float(s), "end": float(e), "label": lab} for (s, e), lab in zip(seg.intervals, seg.labels)]}) + "\n"
        else:
            text = harte.format_lab(seg.intervals, seg.labels)
        if to_stdout:
            with open_output("-") as f:
                f.write(text)
        else:
            name = p.parent.name if p.name == "bothchroma.csv" else p.stem  # Billboard: NNNN/bothchroma.csv
            atomic_write_text(out / f"{name}.{'json' if json_out else 'lab'}", text)


@train_options(epochs=30, batch_size=32, lr=1e-3, out=Path("runs/chords"), patience=6)
def train_chords(
    run: TrainRun,
    model: Annotated[str, typer.Option("--model", "-m", help="frame | blstm | crnn1 | crnn2 | cnn_blstm")] = "blstm",
    seq_len: Annotated[int, typer.Option("--seq-len", min=1, help="Frames per training sequence (the seed: 1 or 128).")] = 128,
    hidden: Annotated[int, typer.Option("--hidden", min=0, help="LSTM units of frame/blstm (0: the model's default).")] = 0,
) -> None:
    """Train a chord model on Billboard chroma or audio+.lab (default: the embedded Bach chorales)."""
    from songkit.core.errors import UserError
    from songkit.tasks.chords.data import load, split_of
    from songkit.tasks.chords.model import MODELS

    if model not in MODELS:
        raise UserError(f"unknown chords model {model!r}: expected one of {MODEL_NAMES}")
    roots = list(run.data or [])
    if not roots:
        from songkit.tasks.chords.bach import ensure_embedded

        roots = [ensure_embedded()]
    # several --data folders train one model on all of them (e.g. Billboard chroma + audio with labs)
    songs = [s for r in roots for s in load(r, ("train", "valid"))]
    name = " + ".join(str(r) for r in run.data) if run.data else "embedded-bach-chorales"
    train = [s for s in songs if split_of(s.name) == "train"]
    valid = [s for s in songs if split_of(s.name) == "valid"]
    if not train:
        train, valid = songs, songs[:1]
    from songkit.tasks.chords.task import train as train_fn

    train_fn(run, model, seq_len, train, valid, name, hidden or None)


def eval_chords(
    checkpoint: Checkpoint = None,
    data: Annotated[Optional[Path], typer.Option("--data", "-d", help="Billboard release folder or audio+.lab folder.")] = None,
    split: Annotated[str, typer.Option("--split", help="test | valid | train | all (song-level split by id).")] = "test",
    ref_lab: Annotated[Optional[Path], typer.Option("--ref-lab", help="Score this reference .lab against --est-lab (no model).")] = None,
    est_lab: Annotated[Optional[Path], typer.Option("--est-lab", help="Estimated .lab to score against --ref-lab.")] = None,
    template: Annotated[bool, typer.Option("--template", help="Score the chroma-template baseline instead of a model.")] = False,
    self_prob: SelfProb = 0.9,
    confusion: Annotated[Optional[Path], typer.Option("--confusion", help="Write the confusion matrix PNG here.")] = None,
    json_out: Json = False,
    device: Device = "auto",
) -> None:
    """Root and majmin WCSR (MIREX, duration-weighted) per song and over the set, frame accuracy."""
    import json

    from songkit.core.errors import UserError
    from songkit.tasks.chords import harte

    if ref_lab or est_lab:
        if not (ref_lab and est_lab):
            raise UserError("--ref-lab and --est-lab go together")
        sc = harte.score_song(harte.read_lab(ref_lab), harte.read_lab(est_lab))
        if json_out:
            print(json.dumps({"ref": str(ref_lab), "est": str(est_lab), **sc}))
        else:
            print(f"root\t{sc['root']:.6f}\nmajmin\t{sc['majmin']:.6f}")
        return
    if split not in ("test", "valid", "train", "all"):
        raise UserError(f"--split {split}: expected test, valid, train or all")
    from songkit.core.device import resolve_device
    from songkit.tasks.chords import spec
    from songkit.tasks.chords.data import load
    from songkit.tasks.chords.task import (
        load_model,
        predict_classes,
        score_songs,
        template_log_probs,
        viterbi,
    )

    splits = ("train", "valid", "test") if split == "all" else (split,)
    if data is None:
        from songkit.tasks.chords.bach import ensure_embedded

        data = ensure_embedded()
    dev = resolve_device(device)
    if template:
        name = "template"
        predict = lambda s: viterbi(template_log_probs(s.chroma), self_prob)
    else:
        model, ck = load_model(checkpoint, dev)
        name = str(ck.path)
        predict = lambda s: predict_classes(model, s.chroma, dev, self_prob)
    songs = load(data, splits)
    res = score_songs(songs, predict)
    cm = res.pop("confusion")
    if confusion:
        from songkit.core.plots import confusion_png

        confusion_png(cm.mat.numpy(), spec.VOCAB, confusion, title=f"chords {split}: {Path(name).name}")
    summary = {"model": name, "data": str(data), "split": split, "songs": res["songs"],
               "majmin_wcsr": res["majmin_wcsr"], "root_wcsr": res["root_wcsr"], "frame_accuracy": res["frame_accuracy"]}
    if json_out:
        print(json.dumps({**summary, "per_song": res["per_song"]}))
        return
    print("song\troot\tmajmin\tframe_acc")
    for s in res["per_song"]:
        print(f"{s['name']}\t{s['root']:.4f}\t{s['majmin']:.4f}\t{s['frame_accuracy']:.4f}")
    print(f"ALL ({res['songs']} songs, duration-weighted)\t{res['root_wcsr']:.4f}\t{res['majmin_wcsr']:.4f}\t{res['frame_accuracy']:.4f}")


def data_chords(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the audio files and their .lab files.")],
    num: Annotated[int, typer.Option("--num", "-n", min=1, help="Number of Bach chorales to render.")] = 60,
    fmt: Annotated[str, typer.Option("--format", help="wav | flac")] = "flac",
) -> None:
    """Render Bach chorales from music21's corpus to audio with .lab chord labels beside them."""
    from songkit.core.errors import UserError
    from songkit.tasks.chords.bach import build_dataset

    if fmt not in ("wav", "flac"):
        raise UserError(f"--format {fmt}: expected wav or flac")
    build_dataset(out, num=num, fmt=fmt)


def register(app: typer.Typer, train_app: typer.Typer, eval_app: typer.Typer, data_app: typer.Typer) -> None:
    app.command("chords")(chords)
    train_app.command("chords")(train_chords)
    eval_app.command("chords")(eval_chords)
    data_app.command("chords")(data_chords)
