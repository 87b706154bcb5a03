"""`songkit tokenize`, `songkit train tokenize`, `songkit eval tokenize`, `songkit data tokenize`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from songkit.cli.options import Device, Json, TrainRun, train_options

ENCODING_HELP = "cp (compound word) | nb (note-based, new_bar_started flag) | remi (flat)."


def tokenize(
    files: Annotated[Optional[list[Path]], typer.Argument(
        help="MIDI, MusicXML or ABC files, or folders of them.", show_default=False)] = None,
    encoding: Annotated[str, typer.Option("--encoding", "-e", help=ENCODING_HELP)] = "cp",
    ids: Annotated[bool, typer.Option("--ids", help="Write integer ids instead of token strings.")] = False,
    vocab: Annotated[Optional[Path], typer.Option(
        "--vocab", help="Vocabulary JSON: read when it exists (its options win), else written.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output JSONL file ('-': stdout); with --decode, a folder.")] = Path("-"),
    track: Annotated[Optional[list[int]], typer.Option("--track", help="Only this track (0-based; repeat for more).")] = None,
    decode: Annotated[Optional[Path], typer.Option(
        "--decode", help="Decode a tokens JSONL file ('-': stdin) back to MIDI files in --out.")] = None,
    grid: Annotated[int, typer.Option("--grid", min=1, help="Onset positions per quarter note (4: 16th notes).")] = 4,
    duration_res: Annotated[int, typer.Option("--duration-res", min=1, help="Duration steps per quarter note.")] = 8,
    max_duration: Annotated[int, typer.Option("--max-duration", min=1, help="Longest duration, in quarters.")] = 8,
    velocity_bins: Annotated[int, typer.Option("--velocity-bins", min=1, max=127, help="Velocity bins.")] = 64,
    tempo_bins: Annotated[int, typer.Option("--tempo-bins", min=1, help="Tempo bins between 32 and 224 bpm.")] = 64,
) -> None:
    """Encode symbolic music as CP, NB or REMI tokens (JSON lines), or decode tokens back to MIDI."""
    import json

    from songkit.core.errors import UserError
    from songkit.core.io import expand_inputs, open_output
    from songkit.core.progress import log
    from songkit.core.progress import track as progress
    from songkit.tasks.tokenize.data import SUFFIXES
    from songkit.tasks.tokenize.spec import ENCODINGS, TokenizerConfig
    from songkit.tasks.tokenize.task import decode_records, resolve_vocab, tokenize_file

    cfg = TokenizerConfig(grid=grid, duration_res=duration_res, max_duration=max_duration,
                          velocity_bins=velocity_bins, tempo_bins=tempo_bins)
    if decode is not None:
        if files:
            raise UserError("--decode takes no input files (the tokens file names them)")
        if str(out) == "-":
            raise UserError("--decode needs --out DIR (one MIDI file per tokens line)")
        v = resolve_vocab(vocab) if vocab is not None else None
        written = decode_records(decode, out, v)
        log(f"wrote {len(written)} MIDI file(s) to {out}")
        return
    if not files:
        raise UserError("no input files (or use --decode TOKENS.jsonl)")
    if encoding not in ENCODINGS:
        raise UserError(f"--encoding {encoding}: expected one of {', '.join(ENCODINGS)}")
    paths = [Path("-")] if [str(f) for f in files] == ["-"] else expand_inputs(files, SUFFIXES)  # -: MIDI on stdin
    v = resolve_vocab(vocab, cfg)
    if v.config != cfg:
        log(f"{vocab}: using the vocabulary file's options ({v.config}), not the command line's")
    with open_output(out) as f:
        for p in progress(paths, total=len(paths), description=f"tokenizing ({encoding})"):
            f.write(json.dumps(tokenize_file(p, v, encoding, ids, track), separators=(",", ":")) + "\n")


@train_options(epochs=10, batch_size=32, lr=2e-3, warmup_steps=100, out=Path("runs/tokenize"))
def train_tokenize(
    run: TrainRun,
    encoding: Annotated[str, typer.Option("--encoding", "-e", help="cp | nb.")] = "nb",
    model: Annotated[str, typer.Option("--model", "-m", help="gru | linear (ReLU Elman RNN).")] = "gru",
    loss: Annotated[str, typer.Option("--loss", help="ce | focal.")] = "ce",
    gamma: Annotated[float, typer.Option("--gamma", min=0.0, help="Focal loss focusing parameter.")] = 2.0,
    seq_len: Annotated[int, typer.Option("--seq-len", min=2, help="Token groups per teacher-forced window.")] = 128,
    d_model: Annotated[int, typer.Option("--d-model", min=8)] = 256,
    num_layers: Annotated[int, typer.Option("--num-layers", min=1)] = 2,
    embed_dim: Annotated[int, typer.Option("--embed-dim", min=2, help="Embedding size per family.")] = 64,
    dropout: Annotated[float, typer.Option("--dropout", min=0.0, max=0.9)] = 0.1,
    vocab: Annotated[Optional[Path], typer.Option("--vocab", help="Vocabulary JSON (default: the CP paper's options).")] = None,
) -> None:
    """Train a next-token model (linear or GRU RNN) on CP or NB tokens (default data: Bach chorales)."""
    import dataclasses

    from songkit.core.errors import UserError
    from songkit.core.progress import log
    from songkit.core.train import fit
    from songkit.tasks.tokenize.model import MODELS
    from songkit.tasks.tokenize.task import TokenTrainTask, dataset_files, encode_songs, resolve_vocab, split_files

    if encoding not in ("cp", "nb"):
        raise UserError(f"--encoding {encoding}: the models read cp or nb token groups")
    if model not in MODELS:
        raise UserError(f"--model {model}: expected one of {', '.join(MODELS)}")
    if loss not in ("ce", "focal"):
        raise UserError(f"--loss {loss}: expected ce or focal")
    v = resolve_vocab(vocab)
    train_files, val_files = split_files(dataset_files(run.data))
    log(f"{len(train_files)} training and {len(val_files)} validation songs ({encoding})")
    train_songs, val_songs = encode_songs(train_files, v, encoding), encode_songs(val_files, v, encoding)
    cfg_cls, cls = MODELS[model]
    cfg = cfg_cls(encoding=encoding, cell=model, vocab_sizes=v.sizes(encoding), embed_dim=embed_dim,
                  d_model=d_model, num_layers=num_layers, dropout=dropout)
    net = cls(cfg)
    task = TokenTrainTask(train_songs, val_songs, encoding, seq_len, run.batch_size, run.seed, loss, gamma)
    meta = dict(task="tokenize", model=model, config=dataclasses.asdict(cfg), vocab={**v.to_dict(), "hash": v.hash},
                extra={"loss": loss, "gamma": gamma, "seq_len": seq_len,
                       "train_songs": [f.stem for f in train_files], "val_songs": [f.stem for f in val_files]})
    fit(net, task, run.train_config(monitor="val_acc", monitor_mode="max"), run.out, meta,
        device=run.device, resume=run.resume)


def eval_tokenize(
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", "-c", help="A tokenize checkpoint (default: the shipped NB GRU).")] = None,
    data: Annotated[Optional[list[Path]], typer.Option("--data", "-d", help="Files/folders (default: the chorales).")] = None,
    split: Annotated[str, typer.Option("--split", help="val (the song-level validation split) | all.")] = "val",
    json_out: Json = False,
    device: Device = "auto",
) -> None:
    """Next-token accuracy per family and overall (ignore, CONTI and padding left out, as in the seed)."""
    import json

    from songkit.core.errors import UserError
    from songkit.tasks.tokenize.task import evaluate_checkpoint

    if split not in ("val", "all"):
        raise UserError(f"--split {split}: expected val or all")
    res = evaluate_checkpoint(checkpoint, data, device, split)
    if json_out:
        print(json.dumps(res))
        return
    print(f"{res['model']} on {res['encoding']}: {res['songs']} songs, {res['groups']} token groups")
    print(f"{'family':<10} accuracy")
    for k, val in res.items():
        if k.startswith("acc_"):
            print(f"{k[4:]:<10} {val:.4f}")
    print(f"{'overall':<10} {res['val_acc']:.4f}")
    print(f"{'loss':<10} {res['val_loss']:.4f}")


def data_tokenize(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the MIDI files.")] = Path("data/bach-chorales"),
    limit: Annotated[int, typer.Option("--limit", min=0, help="Only the first N chorales (0: all).")] = 0,
) -> None:
    """Write music21's Bach chorales (the embedded default) as MIDI files, ready for --data."""
    from songkit.core.progress import log
    from songkit.tasks.tokenize.task import write_chorales

    out.mkdir(parents=True, exist_ok=True)
    written = write_chorales(out, limit or None)
    log(f"wrote {len(written)} chorales to {out}")


def register(app: typer.Typer, train_app: typer.Typer, eval_app: typer.Typer, data_app: typer.Typer) -> None:
    """Add the tokenize commands."""
    app.command("tokenize")(tokenize)
    train_app.command("tokenize")(train_tokenize)
    eval_app.command("tokenize")(eval_tokenize)
    data_app.command("tokenize")(data_tokenize)
