"""Leave-one-collection-out evaluation of SongRNN recipes inside music21's ABC corpus (issue 16).

For each held-out collection, train on every other collection of the corpus and report bits/char on
the held-out one (a fixed random subset of its tunes); next to it, the random held-out number: a run on
the whole corpus scored on the standard validation split (649 tunes). One JSON line per run in
OUT/results.jsonl (a finished run is not trained again), then a markdown table on stdout.

    OMP_NUM_THREADS=1 python bench/bench_generate_loco.py --out runs/loco --recipe old --recipe ascii
    make loco-generate          # the same, at the budget docs/generate.md reports

A reduced budget (--epochs x --steps steps of --batch-size x 128 characters) keeps it within CPU
minutes per run; the docs say which budget each number had.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from songkit.core.train import TrainRun
from songkit.tasks.generate.constants import TrainOptions

COLLECTIONS = ("oneills1850", "airdsAirs", "ryansMammoth", "essenFolksong")
RANDOM = "random"  # the whole corpus, scored on the standard validation split

# name -> (shared training options, task options): each differs from "old" in what its name says
RECIPES = {
    "old": ({}, {"vocab": "corpus"}),  # the shipped recipe's model and vocabulary
    "ascii": ({}, {"vocab": "ascii"}),  # every printable ASCII character in the vocabulary
    "ascii-reg": ({"weight_decay": 0.1}, {"vocab": "ascii", "dropout": 0.3}),
    "ascii-wide": ({}, {"vocab": "ascii", "hidden_size": 384}),
    "wide": ({}, {"vocab": "corpus", "hidden_size": 512}),  # 2 x 512: 3.4 M parameters, about 3x the CPU a step
    "transpose": ({}, {"vocab": "corpus", "transpose": True}),  # every tune in a random key each epoch
}


def held_out_tunes(collection: str, limit: int) -> list[str]:
    """The tunes scored for ``collection`` (a fixed random subset of at most ``limit``)."""
    from songkit.tasks.generate.data import (
        embedded_corpus_files,
        read_tunes,
        split_train_val,
    )

    if collection == RANDOM:
        return split_train_val(read_tunes(embedded_corpus_files()))[1]
    tunes = read_tunes(embedded_corpus_files([collection]))
    if len(tunes) > limit:
        tunes = sorted(random.Random(0).sample(tunes, limit))
    return tunes


def run_one(recipe: str, collection: str, out: Path, args) -> dict:
    """Train ``recipe`` without ``collection`` (or on everything for RANDOM) and score the held-out tunes."""
    from songkit.core.checkpoint import load_checkpoint
    from songkit.tasks.generate.data import embedded_corpus_files
    from songkit.tasks.generate.evaluate import score_files
    from songkit.tasks.generate.infer import load
    from songkit.tasks.generate.train import train

    shared, own = RECIPES[recipe]
    data = None if collection == RANDOM else embedded_corpus_files(exclude=[collection])
    run = TrainRun(**{"out": out, "epochs": args.epochs, "max_steps_per_epoch": args.steps,
                      "batch_size": args.batch_size, "lr": 3e-3, "warmup_steps": args.warmup_steps,
                      "device": "cpu", "seed": args.seed, "workers": 0, "force": True, **shared})
    last = out / "last.ckpt"
    if last.exists() and len(load_checkpoint(last).history) == args.epochs:  # trained; scoring had failed
        history = load_checkpoint(last).history
    else:
        history = train(data, run, TrainOptions(**own))
    seconds = sum(row["seconds"] for row in history)
    model, ck = load(out / "best.ckpt", "cpu")
    scored = score_files(model, ck.vocab, [(collection, held_out_tunes(collection, args.eval_tunes))], "cpu")
    return {"recipe": recipe, "held_out": collection, "bits_per_char": round(scored["bits_per_char"], 4),
            "oov_share": round(scored["oov_share"], 5), "tunes": scored["tunes"],
            "characters": scored["characters"], "val_bpc": round(history[-1]["val_bpc"], 4),
            "steps": args.epochs * args.steps, "batch_size": args.batch_size, "warmup_steps": args.warmup_steps,
            "seed": args.seed, "train_seconds": round(seconds)}


def table(rows: list[dict]) -> str:
    """A markdown table: one row per recipe, one column per held-out collection, their mean, random."""
    def name(r: dict) -> str:
        return r["recipe"] + (f" (seed {r['seed']})" if r.get("seed") else "")

    recipes = list(dict.fromkeys(name(r) for r in rows))
    by = {(name(r), r["held_out"]): r["bits_per_char"] for r in rows}
    recipes = [r for r in recipes if any((r, c) in by for c in COLLECTIONS)]
    lines = ["| recipe | " + " | ".join(COLLECTIONS) + " | LOCO mean | random held-out |",
             "|---" * (len(COLLECTIONS) + 3) + "|"]
    for recipe in recipes:
        vals = [by.get((recipe, c)) for c in COLLECTIONS]
        mean = sum(vals) / len(vals) if all(v is not None for v in vals) else None
        cells = [f"{v:.3f}" if v is not None else "-" for v in vals + [mean, by.get((recipe, RANDOM))]]
        lines.append(f"| {recipe} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/loco"))
    ap.add_argument("--recipe", action="append", choices=sorted(RECIPES), help="repeatable (default: old)")
    ap.add_argument("--held-out", action="append", choices=[*COLLECTIONS, RANDOM], help="repeatable (default: all)")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--steps", type=int, default=150, help="steps per epoch")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--warmup-steps", type=int, default=50,
                    help="linear warm-up (the shipped recipe, 14 x 150 steps of 64: 100)")
    ap.add_argument("--eval-tunes", type=int, default=500, help="held-out tunes scored per collection")
    ap.add_argument("--seed", type=int, default=0, help="training seed (runs of other seeds go to OUT/seedN)")
    args = ap.parse_args()
    results = args.out / "results.jsonl"
    done = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    for recipe in args.recipe or ["old"]:
        for collection in args.held_out or [*COLLECTIONS, RANDOM]:
            same = [r for r in done if (r["recipe"], r["held_out"], r["steps"], r["batch_size"], r.get("seed", 0)) ==
                    (recipe, collection, args.epochs * args.steps, args.batch_size, args.seed)]
            if same:
                continue
            folder = args.out / (f"seed{args.seed}" if args.seed else "") / recipe / collection
            row = run_one(recipe, collection, folder, args)
            done.append(row)
            args.out.mkdir(parents=True, exist_ok=True)
            with results.open("a") as f:
                f.write(json.dumps(row) + "\n")
    print(table(done))


if __name__ == "__main__":
    main()
