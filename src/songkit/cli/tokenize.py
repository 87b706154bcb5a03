"""`songkit tokenize`, `songkit train tokenize`, `songkit eval tokenize`, `songkit data tokenize`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from songkit.cli.options import Device, Json, TrainRun, start_training, train_options
from songkit.tasks.tokenize.constants import (
    DEFAULT_ENCODING,
    DEFAULT_MODEL,
    TrainOptions,
)

ENCODING_HELP = "cp (compound word) | nb (note-based, new_bar_started flag) | remi (flat)."


def _report_skipped(skipped: list[str]) -> None:
    """The count of skipped files is a result: printed on stderr even under -q, with each reason logged."""
    import sys

    from songkit.core.progress import log

    for line in skipped:
        log(f"skipped {line}")
    if skipped:
        print(f"songkit: skipped {len(skipped)} file(s) that failed (--skip-bad)", file=sys.stderr)


def tokenize(
    inputs: Annotated[list[Path] | None, typer.Argument(
        metavar="INPUT...", help="MIDI, MusicXML or ABC files, folders of them, or - (stdin).",
        show_default=False)] = None,
    encoding: Annotated[str, typer.Option("--encoding", "-e", help=ENCODING_HELP)] = "cp",
    ids: Annotated[bool, typer.Option("--ids", help="Write integer ids instead of token strings.")] = False,
    vocab: Annotated[Path | None, typer.Option(
        "--vocab", help="Vocabulary JSON: read when it exists (its options win), else written.")] = None,
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Output JSONL file ('-': stdout); with --decode, a folder.")] = Path("-"),
    dataset: Annotated[Path | None, typer.Option(
        "--dataset", help="Write a token dataset folder (.npy shards + index + vocabulary) for "
        "`train tokenize --data DIR`, instead of JSON lines.")] = None,
    jobs: Annotated[int | None, typer.Option(
        "--jobs", "-j", min=1, metavar="N", help="Processes for --dataset (default: the machine's cores); "
        "the bytes written do not depend on it.")] = None,
    skip_bad: Annotated[bool, typer.Option(
        "--skip-bad", help="Leave out files that fail to read (counted on stderr) instead of stopping.")] = False,
    from_format: Annotated[str | None, typer.Option(
        "--from", metavar="FORMAT", help="Format of stdin (-): midi | abc | musicxml (default: guessed).")] = None,
    track: Annotated[list[int] | None, typer.Option(
        "--track", help="Only this track (0-based; repeat for more).")] = None,
    decode: Annotated[Path | None, typer.Option(
        "--decode", help="Decode a tokens JSONL file ('-': stdin) back to MIDI files in --out.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace existing output files (never an input) or a --dataset folder.")] = False,
    grid: Annotated[int, typer.Option(
        "--grid", min=1, max=48, help="Onset positions per quarter note (4: 16th notes).")] = 4,
    duration_res: Annotated[int, typer.Option(
        "--duration-res", min=1, max=96, help="Duration steps per quarter note.")] = 8,
    max_duration: Annotated[int, typer.Option(
        "--max-duration", min=1, max=64, help="Longest duration, in quarters.")] = 8,
    velocity_bins: Annotated[int, typer.Option("--velocity-bins", min=1, max=127, help="Velocity bins.")] = 64,
    tempo_bins: Annotated[int, typer.Option(
        "--tempo-bins", min=1, max=512, help="Tempo bins between 32 and 224 bpm.")] = 64,
) -> None:
    """Encode symbolic music as CP, NB or REMI tokens (JSON lines or a dataset folder), or decode tokens to MIDI."""
    import json

    from songkit.core.errors import UserError
    from songkit.core.io import expand_inputs, open_output, read_input_bytes
    from songkit.core.progress import log
    from songkit.core.progress import track as progress
    from songkit.tasks.tokenize.constants import ENCODINGS, TokenizerConfig, Vocabulary
    from songkit.tasks.tokenize.infer import decode_records, tokenize_pieces
    from songkit.tasks.tokenize.readers import SUFFIXES, read_bytes, read_pieces

    if decode is not None:
        if inputs:
            raise UserError("--decode takes no input files (the tokens file names them)")
        if str(out) == "-":
            raise UserError("--decode needs --out DIR (one MIDI file per tokens line)")
        text = _read_text(decode)
        v = Vocabulary.load(vocab) if vocab is not None else None
        written = decode_records(text, str(decode), out, v, force=force, inputs=[] if str(decode) == "-" else [decode])
        log(f"wrote {len(written)} MIDI file(s) to {out}")
        return
    if not inputs:
        raise UserError("no input files (or use --decode TOKENS.jsonl)")
    if encoding not in ENCODINGS:
        raise UserError(f"--encoding {encoding}: expected one of {', '.join(ENCODINGS)}")
    cfg = TokenizerConfig(grid=grid, duration_res=duration_res, max_duration=max_duration,
                          velocity_bins=velocity_bins, tempo_bins=tempo_bins)
    v = _vocabulary(vocab, cfg)
    stdin = [str(f) for f in inputs] == ["-"]
    if dataset is not None:
        if stdin:
            raise UserError("--dataset reads files and folders, not stdin")
        _write_dataset(expand_inputs(inputs, SUFFIXES), dataset, v, encoding, jobs, track, skip_bad, force)
        return
    paths = [Path("-")] if stdin else expand_inputs(inputs, SUFFIXES)
    skipped: list[str] = []
    with open_output(out) as f:
        for p in progress(paths, total=len(paths), description=f"tokenizing ({encoding})"):
            try:
                if stdin:
                    pieces = read_bytes(read_input_bytes("-"), "-", from_format, track)
                else:
                    pieces = read_pieces(p, track)
                records = list(tokenize_pieces(pieces, v, encoding, ids))
            except UserError as e:
                if not skip_bad:
                    raise
                skipped.append(e.format_message())
                continue
            for rec in records:
                f.write(json.dumps(rec, separators=(",", ":")) + "\n")
    _report_skipped(skipped)


def _read_text(path: Path) -> str:
    """A tokens JSONL file (or stdin for ``-``) as text."""
    from songkit.core.errors import UserError
    from songkit.core.io import read_input_bytes

    try:
        return read_input_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a tokens JSONL file (not UTF-8 text)") from None


def _vocabulary(path: Path | None, cfg):
    """The vocabulary file when it exists (its options win), else one from the options (saved to it)."""
    from songkit.core.errors import UserError
    from songkit.core.progress import log
    from songkit.tasks.tokenize.constants import Vocabulary

    if path is not None and path.exists():
        v = Vocabulary.load(path)
        if v.config != cfg:
            log(f"{path}: using the vocabulary file's options, not the command line's")
        return v
    try:
        cfg.check()
    except ValueError as e:
        raise UserError(f"tokenizer options: {e}") from None
    v = Vocabulary(cfg)
    if path is not None:
        v.save(path)
    return v


def _write_dataset(files, dataset, v, encoding, jobs, track, skip_bad, force) -> None:
    import time

    from songkit.core.progress import log, make_progress
    from songkit.tasks.tokenize.shards import default_jobs, write_dataset

    t0 = time.perf_counter()
    with make_progress() as bar:
        task = bar.add_task(f"tokenizing ({encoding}) -> {dataset}", total=len(files), rate="", info="")
        head = write_dataset(files, dataset, v, encoding, jobs=jobs or default_jobs(), tracks=track,
                             skip_bad=skip_bad, force=force, on_shard=lambda n: bar.advance(task, n))
    _report_skipped(head["skipped"])
    log(f"{dataset}: {head['sequences']} sequences, {head['tokens']} {'tokens' if encoding == 'remi' else 'groups'} "
        f"from {head['files']} file(s) in {time.perf_counter() - t0:.1f} s")


@train_options(epochs=10, batch_size=32, lr=2e-3, warmup_steps=100, out=Path("runs/tokenize"))
def train_tokenize(
    run: TrainRun,
    encoding: Annotated[str, typer.Option(
        "--encoding", "-e", help="cp | nb (a --data dataset folder's own by default).")] = DEFAULT_ENCODING,
    model: Annotated[str, typer.Option("--model", "-m", help="gru | linear (ReLU Elman RNN).")] = DEFAULT_MODEL,
    loss: Annotated[str, typer.Option("--loss", help="ce | focal.")] = "ce",
    gamma: Annotated[float, typer.Option("--gamma", min=0.0, help="Focal loss focusing parameter.")] = 2.0,
    seq_len: Annotated[int, typer.Option("--seq-len", min=2, help="Token groups per teacher-forced window.")] = 128,
    d_model: Annotated[int, typer.Option("--d-model", min=8, help="Width of the recurrent layers.")] = 256,
    num_layers: Annotated[int, typer.Option("--num-layers", min=1, help="Recurrent layers.")] = 2,
    embed_dim: Annotated[int, typer.Option("--embed-dim", min=2, help="Embedding size per family.")] = 64,
    dropout: Annotated[float, typer.Option("--dropout", min=0.0, max=0.9, help="Dropout probability.")] = 0.1,
    vocab: Annotated[Path | None, typer.Option(
        "--vocab", help="Vocabulary JSON (default: the CP paper's options).")] = None,
) -> None:
    """Train a next-token model on CP or NB groups (--data: MIDI folders or a `tokenize --dataset` folder;
    default: the Bach chorales)."""
    start_training("tokenize", run, TrainOptions(
        encoding=encoding, model=model, loss=loss, gamma=gamma, seq_len=seq_len, d_model=d_model,
        num_layers=num_layers, embed_dim=embed_dim, dropout=dropout, vocab=str(vocab) if vocab else None))


def eval_tokenize(
    checkpoint: Annotated[Path | None, typer.Option(
        "--checkpoint", "-c", help="A tokenize checkpoint or run folder (default: the shipped NB GRU).")] = None,
    data: Annotated[list[Path] | None, typer.Option(
        "--data", "-d", help="MIDI files/folders or a token dataset folder (default: music21's Bach chorales, "
        "converted to MIDI once into $SONGKIT_HOME: several minutes the first time).")] = None,
    split: Annotated[str, typer.Option(
        "--split", help="valid (the song-level validation split) | train | all.")] = "valid",
    limit: Annotated[int, typer.Option("--limit", min=0, help="Only the first N songs of the split (0: all).")] = 0,
    json_out: Json = False,
    device: Device = "auto",
) -> None:
    """Next-token accuracy per family and overall (ignore, CONTI and padding left out, as in the seed)."""
    from songkit.cli.output import print_json, print_table
    from songkit.core.errors import UserError
    from songkit.tasks.tokenize.evaluate import evaluate

    if split == "val":
        raise UserError("--split val: the split is spelled valid")
    res = evaluate(checkpoint, data, device, split, limit=limit)
    if json_out:
        print_json(res)
        return
    rows = [[k[4:], v] for k, v in res.items() if k.startswith("acc_")]
    rows += [["overall", res["val_acc"]], ["loss (cross-entropy)", res["val_loss"]]]
    print_table(f"{res['model']} on {res['encoding']}: {res['songs']} songs ({split}), {res['groups']} token "
                "groups", ["family", "accuracy"], rows)


def data_tokenize(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the MIDI files.")] = Path("data/bach-chorales"),
    limit: Annotated[int, typer.Option("--limit", min=0, help="Only the first N chorales (0: all).")] = 0,
) -> None:
    """Write music21's Bach chorales (the embedded default) as MIDI files, ready for --data."""
    from songkit.core.progress import log
    from songkit.tasks.tokenize.data import write_chorales

    written = write_chorales(out, limit or None)
    log(f"wrote {len(written)} chorales to {out}")


def register(app: typer.Typer, train_app: typer.Typer, eval_app: typer.Typer, data_app: typer.Typer) -> None:
    """Add the tokenize commands."""
    app.command("tokenize")(tokenize)
    train_app.command("tokenize")(train_tokenize)
    eval_app.command("tokenize")(eval_tokenize)
    data_app.command("tokenize")(data_tokenize)
