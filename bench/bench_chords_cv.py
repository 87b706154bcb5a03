"""5-fold song-level cross-validation of the chord models on a Billboard release (issue 12).

    OMP_NUM_THREADS=1 python bench/bench_chords_cv.py --data ../shared/datasets/billboard \
        --models cnn_blstm blstm --folds 5 --epochs 8 --steps 150 --out runs/chords-cv

Each song lands in one fold by a hash of its id (``data.split_of(name, folds, fold)``); for each fold a
model is trained on the other folds (one in ten of them held out for model selection) with
``songkit train chords --folds K --fold I`` 's code path, then scored on the held-out fold with two HMM
decoders: one self-transition probability (0.9) and the transitions learned from the training labels
(with ``--crf``: the CRF's own transitions).
The chroma-template baseline is scored on the same folds. One JSON line per (model, fold, decoder) goes
to OUT/cv.jsonl (folds already there are skipped, so a killed run continues); the summary (mean and
standard deviation over folds, and the WCSR over all songs) is printed and written to OUT/summary.json.

``--train-share F`` (a learning curve) trains each fold on a fixed share F of its training songs (chosen by a
hash of the song id), picks the epoch on the same validation songs and scores the whole held-out fold as usual:
a Billboard folder of symbolic links under OUT/subset-F-foldK holds the fold's test and validation songs and the
chosen training songs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import zlib
from pathlib import Path

from songkit.core.train import TrainRun
from songkit.tasks.chords.constants import TrainOptions
from songkit.tasks.chords.evaluate import evaluate
from songkit.tasks.chords.train import train

LR = {"cnn_blstm": 2e-3, "attention": 1e-3, "blstm": 5e-3, "frame": 2e-3, "crnn1": 1e-3, "crnn2": 1e-3}


def score_row(model: str, fold: int, decoder: str, res: dict, seconds: float) -> dict:
    per_song = res["per_song"]
    return {"model": model, "fold": fold, "decoder": decoder, "songs": res["songs"],
            "majmin_wcsr": res["majmin_wcsr"], "root_wcsr": res["root_wcsr"], "frame_accuracy": res["frame_accuracy"],
            "majmin_seconds": sum(s["majmin_seconds"] for s in per_song),
            "root_seconds": sum(s["root_seconds"] for s in per_song), "seconds": round(seconds, 1)}


def summarise(rows: list[dict]) -> dict:
    out = {}
    for key in sorted({(r["model"], r["decoder"]) for r in rows}):
        rs = [r for r in rows if (r["model"], r["decoder"]) == key]
        entry = {"folds": len(rs), "songs": sum(r["songs"] for r in rs)}
        for m in ("majmin", "root"):
            vals = [r[f"{m}_wcsr"] for r in rs]
            entry[f"{m}_mean"] = statistics.fmean(vals)
            entry[f"{m}_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
            w = sum(r[f"{m}_seconds"] for r in rs)
            entry[f"{m}_all_songs"] = sum(r[f"{m}_wcsr"] * r[f"{m}_seconds"] for r in rs) / w
        out[f"{key[0]}/{key[1]}"] = entry
    return out


def subset_root(root: Path, out: Path, folds: int, fold: int, share: float) -> Path:
    """A Billboard release of symbolic links: fold ``fold``'s test and validation songs, ``share`` of its
    training songs."""
    from songkit.tasks.chords.data import CHORDINO_DIR, MIREX_DIR, billboard_ids, split_of

    sub = out / f"subset-{share:g}-fold{fold}"  # by share: a folder of another share is never reused
    for sid in billboard_ids(root):
        # the test and model-selection songs stay; a training song by a hash of its id, the same at every fold
        if split_of(sid, folds, fold) == "train" and zlib.crc32(f"share:{sid}".encode()) / 2**32 >= share:
            continue
        for part in (CHORDINO_DIR, MIREX_DIR):
            link = sub / part / sid
            if not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to((root / part / sid).resolve(), target_is_directory=True)
    return sub


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--extra-data", type=Path, nargs="*", default=[], help="More training folders (never scored).")
    ap.add_argument("--models", nargs="+", default=["cnn_blstm", "blstm"])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--only-folds", type=int, nargs="*", default=None)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--steps", type=int, default=150, help="Steps per epoch (0: full passes).")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--label-smoothing", type=float, default=0.0)
    ap.add_argument("--warmup-steps", type=int, default=0, help="linear warm-up (the attention model: 100)")
    ap.add_argument("--class-balance", type=float, default=0.0, help="quality loss weights ~ share ** -A")
    ap.add_argument("--crf", action="store_true", help="a CRF layer (its transitions are the 'learned' decoder)")
    ap.add_argument("--crf-frame-loss", type=float, default=0.0, help="with --crf: + W x frame cross-entropy")
    ap.add_argument("--hidden-size", type=int, default=0, help="LSTM units per direction (0: the model's default)")
    ap.add_argument("--ema", type=float, default=0.0, help="moving average of the weights (decay; 0: off)")
    ap.add_argument("--no-amp", action="store_true", help="plain fp32 (the default: bf16 where it pays)")
    ap.add_argument("--train-share", type=float, default=1.0,
                    help="train each fold on this share of its training songs (a learning curve)")
    ap.add_argument("--tag", default="", help="Suffix of the model name in the results (variants).")
    ap.add_argument("--out", type=Path, default=Path("runs/chords-cv"))
    ap.add_argument("--merge", type=Path, nargs="*", default=[],
                    help="Only summarise: the cv.jsonl files of runs split by --only-folds.")
    args = ap.parse_args()
    if not 0 < args.train_share <= 1:
        ap.error(f"--train-share {args.train_share}: expected a share in (0, 1]")
    if args.merge:
        rows = [json.loads(line) for p in args.merge for line in p.read_text().splitlines()]
        rows = list({(r["model"], r["fold"], r["decoder"]): r for r in rows}.values())
        print(json.dumps(summarise(rows), indent=1))
        return

    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / "cv.jsonl"
    rows = [json.loads(line) for line in log_path.read_text().splitlines()] if log_path.exists() else []
    done = {(r["model"], r["fold"]) for r in rows}
    folds = args.only_folds if args.only_folds is not None else range(args.folds)
    for fold in folds:
        data = args.data if args.train_share >= 1 else subset_root(args.data, args.out, args.folds, fold,
                                                                   args.train_share)
        if ("template", fold) not in done:
            t0 = time.time()
            res = evaluate(None, data, "test", "cpu", 0.9, template=True, folds=args.folds, fold=fold)
            rows.append(score_row("template", fold, "uniform", res, time.time() - t0))
            with log_path.open("a") as f:
                f.write(json.dumps(rows[-1]) + "\n")
        for model in args.models:
            name = model + args.tag
            if (name, fold) in done:
                continue
            run_dir = args.out / name / f"fold{fold}"
            run = TrainRun(data=[data, *args.extra_data], out=run_dir, epochs=args.epochs,
                           batch_size=args.batch_size, lr=LR.get(model, 1e-3), max_steps_per_epoch=args.steps,
                           device="cpu", seed=0, workers=0, force=True, amp=not args.no_amp,
                           warmup_steps=args.warmup_steps, ema=args.ema)
            t0 = time.time()
            options = TrainOptions(model=model, seq_len=args.seq_len, learn_transitions=not args.crf, crf=args.crf,
                                   crf_frame_loss=args.crf_frame_loss,
                                   hidden_size=args.hidden_size, label_smoothing=args.label_smoothing,
                                   class_balance=args.class_balance,
                                   folds=args.folds, fold=fold)
            train(run.data, run, options)
            seconds = time.time() - t0
            for decoder, self_prob in (("uniform", 0.9), ("learned", None)):
                res = evaluate(run_dir / "best.ckpt", data, "test", "cpu", self_prob, folds=args.folds, fold=fold)
                rows.append(score_row(name, fold, decoder, res, seconds))
                with log_path.open("a") as f:
                    f.write(json.dumps(rows[-1]) + "\n")
            print(json.dumps(rows[-2]), json.dumps(rows[-1]), flush=True)
    summary = summarise(rows)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    for key, e in summary.items():
        print(f"{key:28s} folds {e['folds']}  songs {e['songs']}  "
              f"majmin {e['majmin_mean']:.4f} +- {e['majmin_std']:.4f}  "
              f"root {e['root_mean']:.4f} +- {e['root_std']:.4f}  (all songs: {e['majmin_all_songs']:.4f} / "
              f"{e['root_all_songs']:.4f})")


if __name__ == "__main__":
    main()
