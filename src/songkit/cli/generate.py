"""`songkit generate`, `songkit train generate`, `songkit eval generate`: SongRNN over ABC."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from songkit.cli.options import Checkpoint, Device, Json, TrainRun, train_options


def generate(
    checkpoint: Checkpoint = None,
    num: Annotated[int, typer.Option("--num", "-n", min=1, help="Number of tunes (sampled as one batch).")] = 1,
    temperature: Annotated[float, typer.Option("--temperature", "-t", min=0.01, help="Sampling temperature.")] = 1.0,
    max_chars: Annotated[int, typer.Option("--max-chars", min=1, help="Longest tune, in characters.")] = 2000,
    top_k: Annotated[int, typer.Option("--top-k", min=0, help="Sample from the k likeliest characters (0: all).")] = 0,
    top_p: Annotated[float, typer.Option("--top-p", min=0.0, max=1.0, help="Nucleus sampling mass (1: off).")] = 1.0,
    prime: Annotated[str, typer.Option("--prime", help="Start of every tune, e.g. 'T:Jig\\nM:6/8\\nK:D\\n'.")] = "",
    seed: Annotated[Optional[int], typer.Option("--seed", help="Random seed (default: a new one each run).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file ('-': stdout). A .mid for a tokenize checkpoint.")] = Path("-"),
    device: Device = "auto",
) -> None:
    """Sample ABC tunes from SongRNN (or MIDI from a tokenize checkpoint). Writes one multi-tune ABC file."""
    import codecs

    import torch

    from songkit.core.checkpoint import load_checkpoint
    from songkit.core.device import resolve_device
    from songkit.core.io import open_output
    from songkit.core.progress import make_progress
    from songkit.tasks.generate.task import format_tunes, load_generator, sample_tunes

    prime = codecs.decode(prime, "unicode_escape") if "\\" in prime else prime
    dev = resolve_device(device)
    ck = None
    if checkpoint is not None:  # read once: a tokenize checkpoint samples MIDI instead
        ck = load_checkpoint(checkpoint)
        if ck.task == "tokenize":
            from songkit.tasks.tokenize.task import sample_midi

            sample_midi(checkpoint, out, temperature=temperature, seed=seed, device=dev)
            return
        if ck.task != "generate":
            from songkit.core.errors import UserError

            raise UserError(f"{checkpoint}: a '{ck.task}' checkpoint; generate needs a 'generate' or 'tokenize' one")
    if seed is None:
        seed = int(torch.seed() % 2**31)
    torch.manual_seed(seed)
    model, ck = load_generator(ck, dev)
    with make_progress() as bar:
        task = bar.add_task(f"sampling {num} tune(s)", total=max_chars, rate="", info="")
        tunes = sample_tunes(model, ck.vocab, num=num, temperature=temperature, max_chars=max_chars, top_k=top_k,
                             top_p=top_p, prime=prime, seed=seed, device=dev,
                             on_step=lambda t: bar.update(task, completed=t + 1))
    with open_output(out) as f:
        f.write(format_tunes(tunes))


@train_options(epochs=20, batch_size=64, lr=3e-3, warmup_steps=200, out=Path("runs/generate"), patience=4)
def train_generate(
    run: TrainRun,
    seq_len: Annotated[int, typer.Option("--seq-len", min=2, help="Characters per truncated-BPTT chunk.")] = 128,
    embed_dim: Annotated[int, typer.Option("--embed-dim", min=1)] = 64,
    hidden_size: Annotated[int, typer.Option("--hidden-size", min=1)] = 256,
    num_layers: Annotated[int, typer.Option("--num-layers", min=1)] = 2,
    dropout: Annotated[float, typer.Option("--dropout", min=0.0, max=0.9)] = 0.2,
    max_tunes: Annotated[int, typer.Option("--max-tunes", min=0, help="Use only the first N tunes (0: all).")] = 0,
) -> None:
    """Train SongRNN on ABC files (default: the ~13,000 tunes in music21's corpus)."""
    from songkit.core.progress import log
    from songkit.core.train import fit
    from songkit.tasks.generate.data import build_vocab, embedded_corpus_files, read_tunes, split_train_val
    from songkit.tasks.generate.model import CharLSTMConfig, CharLSTM
    from songkit.tasks.generate.task import GenerateTrainTask

    files = run.data or embedded_corpus_files()
    tunes = read_tunes(files)
    if max_tunes:
        tunes = tunes[:max_tunes]
    train, val = split_train_val(tunes)
    if not val:
        from songkit.core.errors import UserError

        raise UserError("need at least 2 tunes to hold one out for validation")
    vocab = build_vocab(train)
    log(f"{len(tunes)} tunes ({len(train)} train, {len(val)} validation), {len(vocab)} characters")
    cfg = CharLSTMConfig(vocab_size=len(vocab), embed_dim=embed_dim, hidden_size=hidden_size,
                         num_layers=num_layers, dropout=dropout)
    model = CharLSTM(cfg)
    task = GenerateTrainTask(train, val, vocab, run.batch_size, seq_len, run.seed)
    meta = {"task": "generate", "model": "lstm", "config": cfg, "vocab": vocab,
            "extra": {"seq_len": seq_len, "train_tunes": len(train), "val_tunes": len(val),
                      "data": [str(p) for p in run.data] if run.data else "music21-corpus-abc"}}
    fit(model, task, run.train_config(monitor="val_loss"), run.out, meta, device=run.device, resume=run.resume)


def eval_generate(
    checkpoint: Checkpoint = None,
    data: Annotated[Optional[list[Path]], typer.Option("--data", "-d", help="Held-out .abc files/folders (default: the embedded validation split).")] = None,
    samples: Annotated[int, typer.Option("--samples", min=0, help="Tunes to sample for the parse rate.")] = 100,
    temperature: Annotated[float, typer.Option("--temperature", "-t", min=0.01)] = 0.8,
    max_chars: Annotated[int, typer.Option("--max-chars", min=1)] = 2000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    json_out: Json = False,
    device: Device = "auto",
) -> None:
    """Bits per character on held-out ABC, and the share of sampled tunes music21 parses into notes."""
    import json
    import math

    import torch

    from songkit.core.device import resolve_device
    from songkit.core.progress import track
    from songkit.tasks.generate.data import corpus_ids, embedded_corpus_files, read_tunes, split_train_val
    from songkit.tasks.generate.task import load_generator, parses_with_notes, sample_tunes, stream_nats_per_char

    dev = resolve_device(device)
    model, ck = load_generator(checkpoint, dev)
    held_out = read_tunes(data) if data else split_train_val(read_tunes(embedded_corpus_files()))[1]
    ids = torch.tensor(corpus_ids(held_out, ck.vocab), dtype=torch.long)
    nats = stream_nats_per_char(model, ids, dev)
    result = {"checkpoint": str(ck.path), "tunes": len(held_out), "characters": len(ids),
              "bits_per_char": nats / math.log(2)}
    if samples:
        torch.manual_seed(seed)
        tunes = []
        for start in range(0, samples, 64):  # batches of 64 tunes
            tunes += sample_tunes(model, ck.vocab, num=min(64, samples - start), temperature=temperature,
                                  max_chars=max_chars, seed=seed + start, device=dev)
        ok = sum(parses_with_notes(t) for t in track(tunes, description="parsing samples", unit="tunes"))
        result.update({"samples": samples, "temperature": temperature, "parse_rate": ok / samples})
    if json_out:
        print(json.dumps(result))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="songkit eval generate")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    Console().print(table)


def register(app: typer.Typer, train_app: typer.Typer, eval_app: typer.Typer, data_app: typer.Typer) -> None:
    app.command("generate")(generate)
    train_app.command("generate")(train_generate)
    eval_app.command("generate")(eval_generate)
