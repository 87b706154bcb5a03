"""`songkit generate`, `songkit train generate`, `songkit eval generate`: SongRNN over ABC."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from songkit.cli.options import Checkpoint, Device, Json, TrainRun, start_training, train_options
from songkit.tasks.generate.constants import (
    ABC_SUFFIXES,
    DEFAULT_MODEL,
    MIDI_SUFFIXES,
    VOCABS,
    TrainOptions,
)

# sampling options a tokenize checkpoint (MIDI) does not take, with their defaults
_ABC_ONLY = {"--num": 1, "--max-chars": 2000, "--top-k": 0, "--top-p": 1.0, "--prime": ""}


# the sampling options generate and eval generate share (their defaults differ)
Temperature = Annotated[float, typer.Option("--temperature", "-t", metavar="T", min=0.01, help="Sampling temperature.")]
MaxChars = Annotated[int, typer.Option("--max-chars", metavar="N", min=1, help="Longest tune, in characters.")]


def generate(
    checkpoint: Checkpoint = None,
    num: Annotated[
        int, typer.Option("--num", "-n", metavar="N", min=1, help="Number of tunes (sampled as one batch).")
    ] = 1,
    temperature: Temperature = 1.0,
    max_chars: MaxChars = 2000,
    top_k: Annotated[
        int, typer.Option("--top-k", metavar="K", min=0, help="Sample from the k likeliest characters (0: all).")
    ] = 0,
    top_p: Annotated[
        float, typer.Option("--top-p", metavar="P", max=1.0, help="Nucleus sampling mass, in (0, 1] (1: off).")
    ] = 1.0,
    prime: Annotated[
        str, typer.Option("--prime", metavar="ABC", help="Start of every tune, e.g. 'T:Jig\\nM:6/8\\nK:D\\n'.")
    ] = "",
    seed: Annotated[
        int | None, typer.Option("--seed", metavar="N", help="Random seed (default: a new one each run).")
    ] = None,
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", metavar="FILE", help="Output file ('-': stdout): .abc, or .mid for a tokenize checkpoint."
        ),
    ] = Path("-"),
    force: Annotated[bool, typer.Option("--force", help="Write over an existing output file.")] = False,
    device: Device = "auto",
) -> None:
    """Sample ABC tunes from SongRNN (or MIDI from a tokenize checkpoint). Writes one multi-tune ABC file."""
    import codecs

    from songkit.core.checkpoint import load_checkpoint
    from songkit.core.device import resolve_device
    from songkit.core.errors import UserError
    from songkit.core.io import check_outputs, open_output
    from songkit.core.progress import make_progress

    prime = codecs.decode(prime, "unicode_escape") if "\\" in prime else prime
    task = load_checkpoint(checkpoint).task if checkpoint is not None else "generate"  # a tokenize one samples MIDI
    if task not in ("generate", "tokenize"):
        raise UserError(f"{checkpoint}: a '{task}' checkpoint; generate needs a 'generate' or 'tokenize' one")
    wants, refuses = (MIDI_SUFFIXES, ABC_SUFFIXES) if task == "tokenize" else (ABC_SUFFIXES, MIDI_SUFFIXES)
    if str(out) != "-" and out.suffix.lower() in refuses:
        raise UserError(
            f"{out}: a '{task}' checkpoint writes {'MIDI' if task == 'tokenize' else 'ABC'}, "
            f"not {out.suffix}; name the output {wants[0]}"
        )
    inputs = [checkpoint, checkpoint / "best.ckpt"] if checkpoint is not None and checkpoint.is_dir() else [checkpoint]
    check_outputs([p for p in inputs if p is not None], [out], force)  # never the checkpoint; existing: --force
    dev = resolve_device(device)
    if task == "tokenize":
        given = {"--num": num, "--max-chars": max_chars, "--top-k": top_k, "--top-p": top_p, "--prime": prime}
        typed = [name for name, value in given.items() if value != _ABC_ONLY[name]]
        if typed:
            raise UserError(
                f"{checkpoint}: {', '.join(typed)}: not available with a tokenize checkpoint "
                "(it samples one MIDI piece; --temperature and --seed apply)"
            )
        midi = _tokenize_sampler()(checkpoint, temperature=temperature, seed=seed, device=dev)
        with open_output(out, "wb") as f:
            f.write(midi)
        return
    from songkit.tasks.generate.infer import generate as sample

    if seed is None:
        import random

        seed = random.SystemRandom().randrange(2**31)
    with make_progress() as bar:
        bar_task = bar.add_task(f"sampling {num} tune(s)", total=max_chars, rate="", info="")
        text = sample(
            checkpoint,
            num=num,
            temperature=temperature,
            max_chars=max_chars,
            top_k=top_k,
            top_p=top_p,
            prime=prime,
            seed=seed,
            device=dev,
            on_step=lambda t: bar.update(bar_task, completed=t + 1),
        )
    with open_output(out) as f:
        f.write(text)


def _tokenize_sampler():
    """tokenize's MIDI sampler (the CLI may join tasks; task packages never import each other)."""
    import importlib

    for module in ("songkit.tasks.tokenize.infer", "songkit.tasks.tokenize.task"):
        try:
            return importlib.import_module(module).sample_midi
        except (ImportError, AttributeError):
            continue
    raise ImportError("songkit.tasks.tokenize has no sample_midi")


@train_options(epochs=40, batch_size=64, lr=3e-3, warmup_steps=200, out=Path("runs/generate"), patience=4, ema=0.995)
def train_generate(
    run: TrainRun,
    model: Annotated[str, typer.Option("--model", metavar="NAME", help="Model: lstm (the only one).")] = DEFAULT_MODEL,
    seq_len: Annotated[
        int, typer.Option("--seq-len", metavar="N", min=2, help="Characters per truncated-BPTT chunk.")
    ] = 128,
    embed_dim: Annotated[
        int, typer.Option("--embed-dim", metavar="N", min=1, help="Size of the character embedding.")
    ] = 64,
    hidden_size: Annotated[int, typer.Option("--hidden-size", metavar="N", min=1, help="LSTM units per layer.")] = 256,
    num_layers: Annotated[int, typer.Option("--num-layers", metavar="N", min=1, help="Stacked LSTM layers.")] = 2,
    dropout: Annotated[
        float,
        typer.Option(
            "--dropout", metavar="P", min=0.0, max=0.9, help="Dropout between LSTM layers and before the head."
        ),
    ] = 0.2,
    vocab: Annotated[
        str,
        typer.Option(
            "--vocab",
            metavar="ascii|corpus",
            help=f"{' | '.join(VOCABS)}: every printable ASCII character, or the characters of the training tunes.",
        ),
    ] = "corpus",
    limit: Annotated[int, typer.Option("--limit", metavar="N", min=0, help="Use only the first N tunes (0: all).")] = 0,
    init: Annotated[
        str | None,
        typer.Option(
            "--init", metavar="default|CKPT", help="Fine-tune a generate checkpoint (its architecture and vocabulary)."
        ),
    ] = None,
    transpose: Annotated[
        bool,
        typer.Option(
            "--transpose", help="Each epoch, every training tune in a random key (-5..+6 semitones), moved exactly."
        ),
    ] = False,
    max_tunes: Annotated[int | None, typer.Option("--max-tunes", hidden=True)] = None,
) -> None:
    """Train SongRNN on ABC files (default: the ~13,000 tunes in music21's corpus)."""
    if max_tunes is not None:
        from songkit.core.errors import UserError

        raise UserError("--max-tunes is now --limit")
    start_training(
        "generate",
        run,
        TrainOptions(
            model=model,
            seq_len=seq_len,
            embed_dim=embed_dim,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout,
            vocab=vocab,
            limit=limit,
            init=init,
            transpose=transpose,
        ),
    )


def eval_generate(
    checkpoint: Checkpoint = None,
    data: Annotated[
        list[Path] | None,
        typer.Option(
            "--data",
            "-d",
            metavar="ABC",
            help="Held-out .abc files/folders, scored per file (default: the 649 tunes "
            "of music21's corpus held out from training; read in a few seconds).",
        ),
    ] = None,
    samples: Annotated[
        int, typer.Option("--samples", metavar="N", min=0, help="Tunes to sample for the parse rate.")
    ] = 100,
    temperature: Temperature = 0.8,
    max_chars: MaxChars = 2000,
    seed: Annotated[int, typer.Option("--seed", metavar="N", help="Random seed of the sampled tunes.")] = 0,
    json_out: Json = False,
    device: Device = "auto",
) -> None:
    """Bits per character on held-out ABC (per file and overall), the share of characters outside the
    model's vocabulary, and the share of sampled tunes music21 parses into notes and abc2midi compiles."""
    from songkit.core.device import resolve_device
    from songkit.core.progress import make_progress
    from songkit.tasks.generate.evaluate import evaluate

    with make_progress() as bar:
        bar_task = bar.add_task("parsing samples", total=samples, rate="", info="")
        result = evaluate(
            checkpoint,
            data,
            samples=samples,
            temperature=temperature,
            max_chars=max_chars,
            seed=seed,
            device=resolve_device(device),
            on_sample=lambda k, n: bar.update(bar_task, completed=k),
        )
    from songkit.cli.output import print_json, print_table

    if json_out:
        print_json(result)
        return
    rows = [
        [f["file"], f["tunes"], f["characters"], f"{f['bits_per_char']:.4f}", f"{f['oov_share']:.4%}"]
        for f in result["files"]
    ]
    if len(rows) > 1:
        rows.append(
            [
                "overall",
                result["tunes"],
                result["characters"],
                f"{result['bits_per_char']:.4f}",
                f"{result['oov_share']:.4%}",
            ]
        )
    print_table("bits per character", ["file", "tunes", "characters", "bits/char", "out of vocabulary"], rows)
    if samples:
        print_table(
            "sampled tunes",
            ["samples", "temperature", "music21 parse rate", "abc2midi compile rate"],
            [[result["samples"], result["temperature"], result["parse_rate"], result["abc2midi_rate"]]],
        )


def data_generate(
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Folder for train.abc and valid.abc.")] = Path(
        "data/abc-corpus"),
    limit: Annotated[int, typer.Option("--limit", metavar="N", min=0, help="Only the first N tunes (0: all).")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Replace train.abc/valid.abc that already exist.")] = False,
) -> None:
    """Write the embedded ABC corpus (music21's ~13,000 tunes) as train.abc and valid.abc, ready for --data."""
    from songkit.core.progress import log
    from songkit.tasks.generate.data import write_corpus

    counts = write_corpus(out, limit or None, force)
    log(f"wrote {counts['train']} training and {counts['valid']} validation tunes to {out}")


def register(app: typer.Typer, train_app: typer.Typer, eval_app: typer.Typer, data_app: typer.Typer) -> None:
    app.command("generate")(generate)
    train_app.command("generate")(train_generate)
    eval_app.command("generate")(eval_generate)
    data_app.command("generate")(data_generate)
