"""Beat-synchronous chord decoding on held-out rendered songs (issue 12, docs/chords.md).

For a folder of audio with ``.lab`` and ``.beats`` beside each file (``songkit data chords --pop909 ... --split
test``): frame-level decoding; beat-synchronous decoding with the ``.beats`` files and with beats tracked from
the audio (a twin folder of symlinks without the ``.beats`` files), each over a grid of per-beat stay
probabilities. The stay probability is chosen by nested 2-fold cross-validation over the songs (halves by song
id parity: chosen on one half, scored on the other, the two scored halves pooled), so the reported number does
not come from the set it was chosen on. Also the tracker's beat F-measure against the ``.beats`` files.

    OMP_NUM_THREADS=1 python bench/bench_chords_beats.py runs/pop/test51 [--checkpoint CKPT] [--rotations 12]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

GRID = [0.04, 0.1, 0.2, 0.4, 0.6]


def run(data: Path, *extra: str) -> dict:
    """Per-song scores of ``songkit eval chords`` on every song of ``data``."""
    out = subprocess.run(["songkit", "eval", "chords", "--data", str(data), "--split", "all", "--json", *extra],
                         capture_output=True, text=True, check=True).stdout
    return {s["name"]: s for s in json.loads(out)["per_song"]}


def wcsr(per: dict, names: list, key: str = "majmin") -> float:
    """Duration-weighted WCSR over ``names`` (as eval chords pools songs)."""
    return sum(per[n][key] * per[n][key + "_seconds"] for n in names) / sum(per[n][key + "_seconds"] for n in names)


def nested(per: dict, halves: list) -> tuple[list, float, float]:
    """Choose the stay probability on one half, score the other; both scored halves pooled."""
    num, den, chosen = {"majmin": 0.0, "root": 0.0}, {"majmin": 0.0, "root": 0.0}, []
    for h in (0, 1):
        pick = max(GRID, key=lambda p: wcsr(per[p], halves[h]))
        chosen.append(pick)
        for n in halves[1 - h]:
            for k in num:
                num[k] += per[pick][n][k] * per[pick][n][k + "_seconds"]
                den[k] += per[pick][n][k + "_seconds"]
    return chosen, num["majmin"] / den["majmin"], num["root"] / den["root"]


def tracker_f_measure(data: Path) -> None:
    import numpy as np

    from songkit.core.audio import read_audio
    from songkit.tasks.chords.beats import SAMPLE_RATE, beat_f_measure, track_beats
    from songkit.tasks.chords.data import read_beats

    f, ratio = [], []
    for a in sorted(data.glob("*.flac")) + sorted(data.glob("*.wav")):
        if a.with_suffix(".beats").is_file():
            ref, est = read_beats(a.with_suffix(".beats")), track_beats(read_audio(a, SAMPLE_RATE)[0])
            f.append(beat_f_measure(ref, est))
            ratio.append(np.median(np.diff(ref)) / np.median(np.diff(est)) if len(est) > 1 else 0.0)
    r = np.array(ratio)
    same, double = np.abs(r - 1) < 0.04, np.abs(r - 2) < 0.08
    other = len(f) - same.sum() - double.sum()
    print(f"tracker: beat F-measure {np.mean(f):.3f} over {len(f)} songs; tempo as annotated on {same.sum()} "
          f"(F {np.mean(np.array(f)[same]):.3f}), twice the annotated on {double.sum()}, other {other}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="audio with .lab and .beats beside each file")
    ap.add_argument("--checkpoint", "-c", default=None)
    ap.add_argument("--rotations", type=int, default=1)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    extra = [*(["-c", args.checkpoint] if args.checkpoint else []), "--rotations", str(args.rotations)]
    with tempfile.TemporaryDirectory(prefix="songkit-beats-") as tmp:
        track = Path(tmp)  # the same audio and labels, no .beats: the beats are tracked
        for p in args.data.iterdir():
            if p.suffix != ".beats":
                (track / p.name).symlink_to(p.resolve())
        frame = run(args.data, *extra)
        names = sorted(frame)
        halves = [[n for n in names if int("".join(c for c in n if c.isdigit()) or 0) % 2 == h] for h in (0, 1)]
        print(f"{len(names)} songs; frame-level majmin {wcsr(frame, names):.4f} root {wcsr(frame, names, 'root'):.4f}")
        for label, data in (("file beats", args.data), ("tracked beats", track)):
            per = {p: run(data, "--beats", "--self-prob", str(p), *extra) for p in GRID}
            print(label, " ".join(f"{p}: {wcsr(per[p], names):.4f}/{wcsr(per[p], names, 'root'):.4f}" for p in GRID))
            chosen, mm, root = nested(per, halves)
            print(f"{label}: nested 2-fold, chosen {chosen}: majmin {mm:.4f} root {root:.4f}")
    tracker_f_measure(args.data)


if __name__ == "__main__":
    main()
