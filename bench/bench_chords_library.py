"""`songkit chords *.wav --out labs/` over a folder of songs: today's path against the previous release's, one run.

    python bench/bench_chords_library.py [--songs 20] [--minutes 4.2] [--old-rev 2161fa9] [--json]

The songs are made here (deterministic): random major/minor triad progressions, one chord every
1-3 s, bass + piano-like additive voices, 44.1 kHz mono 16-bit WAV, so their true chords are known.
Both paths run as a user runs them: a new `python -m songkit chords ... --out DIR` process each,
process start included. The old path is the source tree of ``--old-rev`` (git archive into a
temporary folder; the song-by-song BLSTM at batch 1 over 22,050 Hz / 8192-point features), the new one
this checkout (features at 11,025 Hz, windows of every song in batches, batched Viterbi).
Reported: wall seconds and times real time of each (and CPU seconds: on a shared machine the wall
clock mostly measures the other processes), their ratio, how far the new labels are from the old
(majmin WCSR of new against old as reference: 1.0 = the same labels everywhere) and each path's majmin
WCSR against the true chords.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from songkit.tasks.chords.evaluate import score_song, wcsr
from songkit.tasks.chords.labels import format_lab, read_lab

SR = 44100
REPO = Path(__file__).resolve().parent.parent
NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]


def make_song(seed: int, seconds: float) -> tuple[np.ndarray, str]:
    """A random triad progression: (audio float32 at 44.1 kHz, its .lab text)."""
    rng = np.random.default_rng(seed)
    audio = np.zeros(int(seconds * SR) + SR, dtype=np.float32)
    t, rows = 0.0, []
    while t < seconds:
        dur = min(float(rng.uniform(1.0, 3.0)), seconds - t)
        root, minor = int(rng.integers(12)), bool(rng.integers(2))
        notes = [48 + root, 60 + root, 60 + root + (3 if minor else 4), 60 + root + 7, 36 + root]
        n = int(dur * SR)
        tt = np.arange(n) / SR
        env = np.minimum(1, tt / 0.01) * np.exp(-tt * 1.2)
        for m in notes:
            f = 440.0 * 2 ** ((m - 69) / 12)
            voice = sum(np.sin(2 * np.pi * f * h * tt) / h for h in range(1, 6) if f * h < SR / 2 - 1000)
            i = int(t * SR)
            audio[i:i + n] += (0.05 * voice * env).astype(np.float32)
        rows.append((t, t + dur, f"{NAMES[root]}:{'min' if minor else 'maj'}"))
        t += dur
    audio = audio[: int(seconds * SR)]
    return audio / max(1e-6, float(np.abs(audio).max()) * 1.1), format_lab([r[:2] for r in rows], [r[2] for r in rows])


def run_cli(src: Path, wavs: list[Path], out: Path) -> dict:
    """Wall seconds and CPU seconds (user + system) of one `songkit chords` process."""
    import resource

    env = {**os.environ, "PYTHONPATH": str(src)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "songkit", "-q", "chords", *map(str, wavs), "--out", str(out)],
                       check=False, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"{src}: songkit chords failed: {r.stderr.strip()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": seconds, "cpu_seconds": cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--songs", type=int, default=20)
    ap.add_argument("--minutes", type=float, default=4.2)
    ap.add_argument("--old-rev", default="2161fa9", help="The release to compare with (a git revision).")
    ap.add_argument("--git", type=Path, default=REPO, help="The git checkout that holds --old-rev.")
    ap.add_argument("--new-src", type=Path, default=REPO / "src", help="The source tree of the new path.")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        songs = tmp / "songs"
        songs.mkdir()
        for i in range(a.songs):
            audio, lab = make_song(i, a.minutes * 60)
            sf.write(songs / f"song{i:02d}.wav", audio, SR, subtype="PCM_16")
            (songs / f"song{i:02d}.truth").write_text(lab)
        wavs = sorted(songs.glob("*.wav"))
        old_src = tmp / "old"
        old_src.mkdir()
        archive = subprocess.run(["git", "-C", str(a.git), "archive", a.old_rev, "src"], capture_output=True,
                                 check=True)
        subprocess.run(["tar", "-x", "-C", str(old_src)], input=archive.stdout, check=True)
        results = {}
        for name, src in (("old", old_src / "src"), ("new", a.new_src)):
            results[name] = run_cli(src, wavs, tmp / name)
        audio_seconds = a.songs * a.minutes * 60
        for name in ("old", "new"):
            scores = [score_song(read_lab(w.with_suffix(".truth")), read_lab(tmp / name / f"{w.stem}.lab"))
                      for w in wavs]
            results[name]["x_real_time"] = audio_seconds / results[name]["seconds"]
            results[name]["x_real_time_cpu"] = audio_seconds / results[name]["cpu_seconds"]
            results[name]["majmin_vs_truth"] = wcsr(scores, "majmin")
        same = [score_song(read_lab(tmp / "old" / f"{w.stem}.lab"), read_lab(tmp / "new" / f"{w.stem}.lab"))
                for w in wavs]
        summary = {"songs": a.songs, "audio_minutes": audio_seconds / 60, "old_rev": a.old_rev,
                   "torch_threads": int(os.environ.get("OMP_NUM_THREADS", "0")) or None, **results,
                   "speedup": results["old"]["seconds"] / results["new"]["seconds"],
                   "new_vs_old_majmin": wcsr(same, "majmin")}
    if a.json:
        print(json.dumps(summary))
        return
    print(f"{a.songs} songs, {summary['audio_minutes']:.1f} minutes of audio")
    for name in ("old", "new"):
        r = results[name]
        print(f"{name}: {r['seconds']:.1f} s end to end = {r['x_real_time']:.0f}x real time "
              f"({r['cpu_seconds']:.1f} CPU-seconds = {r['x_real_time_cpu']:.0f}x per CPU); "
              f"majmin vs truth {r['majmin_vs_truth']:.4f}")
    print(f"speed-up {summary['speedup']:.2f}x; new labels vs old: majmin agreement {summary['new_vs_old_majmin']:.4f}")


if __name__ == "__main__":
    main()
