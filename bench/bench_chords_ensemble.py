"""Cross-validated WCSR of an ensemble of chord models: their frame probabilities averaged, then one HMM.

    OMP_NUM_THREADS=1 python bench/bench_chords_ensemble.py --data ../shared/datasets/billboard \
        --runs 'cv/pop-*/cnn_blstm_2k_pop/fold{fold}' 'cv/att-*/attention_2k/fold{fold}'

Each ``--runs`` pattern names one member's run folder per fold (``{fold}`` filled in, then globbed: the
folds of bench_chords_cv.py runs split over several --out folders). Every member of fold K was trained
without fold K's songs, so the ensemble is scored on songs none of its members saw. Prints the scores of
each member alone and of the ensemble, per fold and as the mean over folds, as JSON lines.
"""

from __future__ import annotations

import argparse
import glob
import json
import statistics

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--runs", nargs="+", required=True, help="run folder patterns with {fold}")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--only-folds", type=int, nargs="*", default=None)
    ap.add_argument("--self-prob", type=float, default=0.9)
    ap.add_argument("--rotations", type=int, default=1)
    ap.add_argument("--out", default=None, help="also append the JSON lines to this file (kept with the runs)")
    args = ap.parse_args()

    def emit(row: dict) -> None:
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")

    from songkit.tasks.chords.data import load
    from songkit.tasks.chords.evaluate import score_songs
    from songkit.tasks.chords.hmm import viterbi
    from songkit.tasks.chords.infer import load as load_model
    from songkit.tasks.chords.infer import song_log_probs

    rows = []
    for fold in args.only_folds if args.only_folds is not None else range(args.folds):
        paths = []
        for pattern in args.runs:
            found = sorted(glob.glob(pattern.format(fold=fold) + "/best.ckpt"))
            if len(found) != 1:
                raise SystemExit(f"{pattern}: {len(found)} checkpoints for fold {fold}")
            paths.append(found[0])
        models = [load_model(p)[0] for p in paths]
        songs = load(args.data, models[0].cfg, ("test",), args.folds, fold)
        chromas = [s.chroma for s in songs]
        member_lps = [song_log_probs(m, chromas, rotations=args.rotations) for m in models]  # [M][song] (T, 25)
        probs = [np.mean([np.exp(lps[i]) for lps in member_lps], axis=0) for i in range(len(songs))]
        cands = {f"member{k}": lps for k, lps in enumerate(member_lps)}
        cands["ensemble"] = [np.log(np.maximum(p, 1e-12)) for p in probs]
        for name, lps in cands.items():
            by_name = {s.name: lp for s, lp in zip(songs, lps)}
            res = score_songs(songs, lambda ss, by=by_name: [viterbi(by[s.name], args.self_prob) for s in ss])
            rows.append({"fold": fold, "who": name, "songs": res["songs"], "majmin_wcsr": res["majmin_wcsr"],
                         "root_wcsr": res["root_wcsr"]})
            emit(rows[-1])
    for name in dict.fromkeys(r["who"] for r in rows):
        rs = [r for r in rows if r["who"] == name]
        emit({"who": name, "folds": len(rs), "majmin_mean": statistics.fmean(r["majmin_wcsr"] for r in rs),
              "root_mean": statistics.fmean(r["root_wcsr"] for r in rs)})


if __name__ == "__main__":
    main()
