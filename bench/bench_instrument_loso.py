"""Leave-one-SoundFont-out (LOSO) evaluation of the instrument models: for each General MIDI SoundFont,
train on the others and test on every instrument of the held-out one (issue 11).

    python bench/bench_instrument_loso.py render [--cache DIR]           # once: every SoundFont, NSynth layout
    python bench/bench_instrument_loso.py run --model cnn2d --recipe base [--epochs 3] [--notes 1500]
    python bench/bench_instrument_loso.py table [--cache DIR]            # every result so far, markdown
    python bench/bench_instrument_loso.py rescore [--cache DIR]          # add the unseen-program score to old rows

``render`` writes one NSynth-layout folder per SoundFont under the cache (split by GM program with a fixed
seed: the same programs are train/valid/test in every SoundFont), pitch step 2 over each family's range,
velocities 75 and 127. A fold trains on the other SoundFonts' ``nsynth-train`` notes, selects its epoch on
their ``nsynth-valid`` notes (other programs: never the held-out SoundFont), and tests on all of the
held-out SoundFont's notes; its ``test`` programs alone (GM programs no SoundFont trained on) give the
stricter "unseen programs" score. Each (model, recipe, held-out SoundFont) result is one JSON line in
``CACHE/results.jsonl``; finished folds are not run again (delete the line to re-run one).
Run it in the background with OMP_NUM_THREADS=1 on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

SOUNDFONTS = {  # every distinct General MIDI SoundFont Debian packages (fluidr3mono and the small
    # MuseScore build are lossy copies of FluidR3 and MuseScore General: they would leak across folds)
    "TimGM6mb": "/usr/share/sounds/sf2/TimGM6mb.sf2",  # timgm6mb-soundfont
    "FluidR3_GM": "/usr/share/sounds/sf2/FluidR3_GM.sf2",  # fluid-soundfont-gm
    "MuseScore_General_HQ": "/usr/share/sounds/sf3/MuseScore_General_Full.sf3",  # musescore-general-soundfont
    "csound_GMbank": "/usr/share/sounds/sf2/sf_GMbank.sf2",  # csound-soundfont
    "OPL3_FM": "/usr/share/sounds/sf2/OPL-3_FM_128M.sf2",  # opl3-soundfont
}
DEFAULT_CACHE = Path(os.environ.get("LOSO_CACHE", "/tmp/songkit-loso"))

# Recipes: what the training set holds and how it is augmented. "base" is the shipped recipe before
# issue 11 (8 sampled notes per instrument, no augmentation); the others change one thing at a time.
RECIPES = {
    "base": {"notes_per_instrument": 8, "augment": None},
    "all_notes": {"notes_per_instrument": 0, "augment": None},
    "aug_level": {"notes_per_instrument": 0, "augment": {}},  # gain, shift, speed, noise, mixup
    "aug_timbre": {"notes_per_instrument": 0, "augment": {"eq_db": 8.0, "reverb": 0.3}},
    "pcen": {"notes_per_instrument": 0, "augment": None, "frontend": "pcen"},
    # all_notes in plain fp32 (--no-amp) for training and scoring: the reference of the bf16 default path
    "all_notes_fp32": {"notes_per_instrument": 0, "augment": None, "amp": False},
}


def recipe_amp(recipe: str) -> bool:
    """Whether a recipe trains and scores on the default path (bf16 where it pays) or in plain fp32."""
    return RECIPES[recipe].get("amp", True)


def render(cache: Path) -> None:
    from songkit.tasks.instrument.render import build_dataset

    for name, path in SOUNDFONTS.items():
        out = cache / name
        if (out / "nsynth-train" / "examples.json").is_file():
            continue
        if not Path(path).is_file():
            print(f"{path}: missing (apt-get install it); skipped", file=sys.stderr)
            continue
        t0 = time.time()
        tmp = cache / f".{name}.building"
        counts = build_dataset([Path(path)], tmp, split_by="program", pitch_step=2, velocities=[75, 127], seed=0)
        tmp.rename(out)
        print(f"{name}: {counts} in {time.time() - t0:.0f} s", file=sys.stderr)


def examples_of(folder: Path, split: str):
    from songkit.tasks.instrument.nsynth import read_examples

    d = folder / f"nsynth-{split}"
    return read_examples(d)[0] if (d / "examples.json").is_file() else []


def per_instrument(examples, n: int, seed: int):
    """At most ``n`` seeded random notes of each instrument (0: all)."""
    import random

    if not n:
        return examples
    by: dict[str, list] = {}
    for e in examples:
        by.setdefault(e.instrument_str, []).append(e)
    rng = random.Random(seed)
    return [e for k in sorted(by) for e in (by[k] if len(by[k]) <= n else sorted(rng.sample(by[k], n),
                                                                              key=lambda x: x.note_str))]


def run_fold(cache: Path, held: str, model: str, recipe: str, epochs: int, notes: int, seed: int, workers: int,
             test_notes: int = 1000, valid_notes: int = 300):
    import random

    from songkit.core.train import TrainRun
    from songkit.tasks.instrument.augment import AugmentConfig
    from songkit.tasks.instrument.infer import load
    from songkit.tasks.instrument.model import MODELS
    from songkit.tasks.instrument.train import train_examples

    spec = RECIPES[recipe]
    folders = [cache / n for n in SOUNDFONTS if (cache / n).is_dir()]
    train_ex, valid_ex = [], []
    for f in folders:
        if f.name != held:
            train_ex += per_instrument(examples_of(f, "train"), spec["notes_per_instrument"], seed)
            valid_ex += per_instrument(examples_of(f, "valid"), 4, seed)
    rng = random.Random(seed)
    if notes and len(train_ex) > notes:  # the same budget for every recipe: a fixed number of notes
        train_ex = rng.sample(train_ex, notes)
    valid_ex = rng.sample(valid_ex, min(len(valid_ex), valid_notes))
    test_ex = [e for s in ("train", "valid", "test") for e in examples_of(cache / held, s)]
    if test_notes and len(test_ex) > test_notes:  # a seeded random sample of all its instruments' notes
        test_ex = random.Random(seed + 1).sample(test_ex, test_notes)
    cfg = MODELS[model][0]()
    if "frontend" in spec:
        cfg = replace(cfg, frontend=spec["frontend"])
    aug = AugmentConfig(**spec["augment"]) if spec["augment"] is not None else None
    out = run_folder(cache, model, recipe, notes, epochs, held, seed)
    run = TrainRun(out=out, epochs=epochs, batch_size=32, lr=8e-4, optimizer="adam", weight_decay=0.0,
                   schedule="none", device="cpu", seed=seed, workers=workers, force=True,
                   amp=recipe_amp(recipe))
    t0 = time.time()
    history = train_examples(train_ex, valid_ex, run, model, cfg, aug)
    ckpt_model, _ = load(out / "best.ckpt", "cpu")
    scores, m = score(ckpt_model, test_ex, workers, run.amp)
    unseen = unseen_programs(cache, held, ckpt_model, workers, run.amp)
    return {"model": model, "recipe": recipe, "held_out": held, "budget": budget_of(notes, epochs, seed), "seed": seed,
            "accuracy": m["accuracy"], "macro_f1": m["macro_f1"], **unseen,
            "test_notes": scores.notes, "train_notes": len(train_ex), "epochs": epochs,
            "best_val_acc": max(h["val_acc"] for h in history), "seconds": round(time.time() - t0),
            "per_family_f1": {k: v["f1"] for k, v in m["per_family"].items()}}


def run_folder(cache: Path, model: str, recipe: str, notes: int, epochs: int, held: str, seed: int = 0) -> Path:
    return cache / "runs" / f"{model}-{recipe}-{notes or 'all'}x{epochs}-{held}{f'-seed{seed}' if seed else ''}"


def score(model, examples, workers: int = 0, amp: bool = True):
    """(Scores, metrics) of ``model`` on ``examples``."""
    from songkit.tasks.instrument.evaluate import metrics_of, score_notes
    from songkit.tasks.instrument.model import input_samples
    from songkit.tasks.instrument.nsynth import NSynthNotes

    scores = score_notes(model, NSynthNotes(examples, input_samples(model)), workers=workers, amp=amp)
    return scores, metrics_of(scores.confusion)


def unseen_programs(cache: Path, held: str, model, workers: int = 0, amp: bool = True) -> dict:
    """Accuracy on the held-out SoundFont's ``test`` programs only: GM programs that no SoundFont trained on
    (the program split is the same in every SoundFont), so both the samples and the instrument are new."""
    test = examples_of(cache / held, "test")
    accuracy = score(model, test, workers, amp)[1]["accuracy"]
    return {"unseen_program_accuracy": accuracy, "unseen_program_notes": len(test)}


def rescore(cache: Path) -> None:
    """Add ``unseen_program_accuracy`` to finished folds whose checkpoint is still in CACHE/runs."""
    from songkit.core.io import atomic_write_text
    from songkit.tasks.instrument.infer import load

    path = cache / "results.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for r in rows:
        notes = 0 if row_budget(r).startswith("all") else int(row_budget(r).split()[0].replace(",", ""))
        ckpt = run_folder(cache, r["model"], r["recipe"], notes, r["epochs"], r["held_out"], r.get("seed", 0))
        ckpt = ckpt / "best.ckpt"
        if "unseen_program_accuracy" in r or not ckpt.is_file():
            continue
        r.update(unseen_programs(cache, r["held_out"], load(ckpt, "cpu")[0], amp=recipe_amp(r["recipe"])))
        print(f"{r['model']} {r['recipe']} {r['held_out']}: unseen programs {r['unseen_program_accuracy']:.3f}",
              file=sys.stderr, flush=True)
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def budget_of(notes: int, epochs: int, seed: int = 0) -> str:
    """The requested budget, the key that tells runs of one recipe apart (0 notes: every training note);
    a seed other than 0 is part of it (a second seed of a recipe is its own row: the seed spread)."""
    budget = f"{notes:,} notes x {epochs} epochs" if notes else f"all notes x {epochs} epochs"
    return budget + (f", seed {seed}" if seed else "")


def row_budget(r: dict) -> str:
    return r.get("budget") or budget_of(r["train_notes"], r["epochs"])


def table(cache: Path) -> str:
    import math

    rows = [json.loads(line) for line in (cache / "results.jsonl").read_text().splitlines() if line.strip()]
    held = [n for n in SOUNDFONTS if any(r["held_out"] == n for r in rows)]
    lines = ["| model | recipe | " + " | ".join(held) + " | mean | worst | mean, unseen programs |",
             "|---" * (len(held) + 5) + "|"]
    # one row per recipe and budget: the same recipe at another --notes/--epochs is another row
    for key in dict.fromkeys((r["model"], r["recipe"], row_budget(r)) for r in rows):
        mine = [r for r in rows if (r["model"], r["recipe"], row_budget(r)) == key]
        acc = {r["held_out"]: r["accuracy"] for r in mine}
        unseen = [r["unseen_program_accuracy"] for r in mine if "unseen_program_accuracy" in r]
        vals = [acc.get(h, math.nan) for h in held]
        done = [v for v in vals if not math.isnan(v)]
        cells = " | ".join("-" if math.isnan(v) else f"{v:.3f}" for v in vals)
        partial = "" if len(done) == len(held) else f" ({len(done)} of {len(held)} folds)"
        mean, worst = f"{sum(done) / len(done):.3f}{partial}", f"{min(done):.3f}{partial}"
        strict = f"{sum(unseen) / len(unseen):.3f}" if len(unseen) == len(held) else "-"
        lines.append(f"| {key[0]} | {key[1]}, {key[2]} | {cells} | {mean} | {worst} | {strict} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("step", choices=["render", "run", "table", "rescore"])
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--model", default="cnn2d")
    ap.add_argument("--recipe", default="base", choices=list(RECIPES))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--notes", type=int, default=1500, help="training notes per fold (0: all)")
    ap.add_argument("--test-notes", type=int, default=1000, help="held-out notes tested per fold (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--held-out", action="append", help="only these folds (default: every SoundFont)")
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.step == "render":
        render(args.cache)
        return
    if args.step == "rescore":
        rescore(args.cache)
        return
    if args.step == "table":
        print(table(args.cache))
        return
    results = args.cache / "results.jsonl"
    done = set()
    if results.is_file():
        done = {(r["model"], r["recipe"], row_budget(r), r["held_out"])
                for r in map(json.loads, results.read_text().splitlines())}
    for held in args.held_out or list(SOUNDFONTS):
        key = (args.model, args.recipe, budget_of(args.notes, args.epochs, args.seed), held)
        if key in done or not (args.cache / held).is_dir():
            continue
        row = run_fold(args.cache, held, args.model, args.recipe, args.epochs, args.notes, args.seed, args.workers,
                       args.test_notes)
        with open(results, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{args.model} {args.recipe} held out {held}: accuracy {row['accuracy']:.3f} "
              f"macro-F1 {row['macro_f1']:.3f} ({row['seconds']} s)", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
