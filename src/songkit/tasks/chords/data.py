"""Chord datasets in their real layouts, and the song-level split.

- The McGill Billboard release as downloaded: ``billboard-2.0-chordino/NNNN/bothchroma.csv``
  beside ``billboard-2.0.1-mirex/NNNN/majmin.lab`` (point ``--data`` at their parent).
- Any folder of audio files with a ``.lab`` beside each (Isophonics style); chroma computed
  from the audio (``features.bothchroma``), cached under the songkit cache folder.
- The embedded default (Bach chorales from music21, rendered to audio): ``bach.py``.

A song is ``Song(name, chroma (T, 24) raw float32, labels (T,) int64 class ids, ref, duration)``
with ``ref`` the full reference annotation for the MIREX scores.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

from songkit.core.errors import UserError
from songkit.tasks.chords import harte, spec

AUDIO_EXTS = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3")
CHORDINO_DIR = "billboard-2.0-chordino"
MIREX_DIR = "billboard-2.0.1-mirex"


@dataclass
class Song:
    name: str
    chroma: object  # (T, 24) float32, raw (normalise with features.normalize_chroma)
    labels: object  # (T,) int64 majmin classes, spec.IGNORE where unscored
    ref: harte.Annotation
    duration: float


def _cached_arrays(kind: str, name: str, source: Path, compute, salt: str = "") -> dict:
    """Arrays computed from ``source`` (``compute() -> dict``), cached as .npz in the songkit cache
    (``chords/<kind>/``), keyed by the source's path, size and mtime; a read-only cache is not an error."""
    import numpy as np

    from songkit.core.io import cache_dir

    st = source.stat()
    key = hashlib.sha1(f"{source.resolve()}|{st.st_size}|{st.st_mtime_ns}{salt}".encode()).hexdigest()[:16]
    try:
        cached = cache_dir("chords", kind) / f"{name}-{key}.npz"
    except OSError:
        return compute()
    if cached.exists():
        with np.load(cached) as z:
            return {k: z[k] for k in z.files}
    arrays = compute()
    try:
        tmp = cached.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, cached)
    except OSError:
        pass
    return arrays


def split_of(name: str) -> str:
    """Deterministic song-level split from the song id alone: 70% train, 10% valid, 20% test.

    A hash of the name (not the position in a listing), so a song keeps its split when the
    folder holds more or fewer songs (the 297-song subset vs the full 890 release).
    """
    h = zlib.crc32(name.encode()) % 10
    return "test" if h < 2 else "valid" if h == 2 else "train"


def read_bothchroma(path: str | Path):
    """Read a Chordino ``bothchroma.csv``: ``(times (T,), chroma (T, 24))`` float.

    Columns: audio path (first row only), time, 12 bass then 12 treble bins from A. The path
    column may hold commas, so each row is split from the right. Wrong column counts or
    non-numbers are a UserError naming the file and line.
    """
    import numpy as np

    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: no such file")
    try:
        text = p.read_text(encoding="utf-8", errors="strict")
    except (UnicodeDecodeError, OSError) as e:
        raise UserError(f"{p}: not a chroma CSV text file ({type(e).__name__})") from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.rsplit(",", spec.CHROMA_DIM + 1)
        if len(parts) != spec.CHROMA_DIM + 2:
            raise UserError(
                f"{p}:{n}: expected {spec.CHROMA_DIM + 2} columns (path, time, 12 bass + 12 treble chroma), "
                f"got {len(line.split(','))}"
            )
        rows.append(parts[1:])
    if not rows:
        raise UserError(f"{p}: no chroma frames in the file")
    try:
        arr = np.array(rows, dtype=np.float64)
    except ValueError:
        raise UserError(f"{p}: chroma values are not all numbers") from None
    if not np.isfinite(arr).all():
        raise UserError(f"{p}: chroma contains NaN or infinite values")
    return arr[:, 0], arr[:, 1:].astype(np.float32)


def _song_from_frames(name, times, chroma, ref: harte.Annotation, duration=None) -> Song:
    labels = harte.frame_labels(ref, times)
    dur = float(duration if duration is not None else max(ref.intervals.max(), times[-1] + spec.FRAME_SECONDS))
    return Song(name, chroma, labels, ref, dur)


def is_billboard(root: Path) -> bool:
    return (root / CHORDINO_DIR).is_dir() and (root / MIREX_DIR).is_dir()


def billboard_ids(root: Path) -> list[str]:
    """Song ids with both a bothchroma.csv and a majmin.lab."""
    chroma = {d.name for d in (root / CHORDINO_DIR).iterdir() if (d / "bothchroma.csv").is_file()}
    labs = {d.name for d in (root / MIREX_DIR).iterdir() if (d / "majmin.lab").is_file()}
    return sorted(chroma & labs)


def load_billboard(root: str | Path, splits=("train", "valid", "test"), progress: bool = True) -> list[Song]:
    """Load the Billboard songs of the given splits (parsed files cached as .npz)."""
    from songkit.core.progress import track

    root = Path(root)
    ids = [i for i in billboard_ids(root) if split_of(i) in splits]
    if not ids:
        raise UserError(f"{root}: no Billboard songs (need {CHORDINO_DIR}/NNNN/bothchroma.csv and {MIREX_DIR}/NNNN/majmin.lab)")
    songs = []
    for sid in track(ids, total=len(ids), description="billboard") if progress else ids:
        csv = root / CHORDINO_DIR / sid / "bothchroma.csv"
        lab = root / MIREX_DIR / sid / "majmin.lab"
        z = _cached_arrays("billboard", sid, csv, lambda csv=csv: dict(zip(("times", "chroma"), read_bothchroma(csv))))
        times, chroma = z["times"], z["chroma"]
        songs.append(_song_from_frames(sid, times, chroma, harte.read_lab(lab)))
    return songs


def audio_lab_pairs(root: Path) -> list[tuple[Path, Path]]:
    """(audio, lab) pairs in a folder tree: ``x.wav`` with ``x.lab`` beside it."""
    pairs = []
    for a in sorted(root.rglob("*")):
        if a.suffix.lower() in AUDIO_EXTS and a.with_suffix(".lab").is_file():
            pairs.append((a, a.with_suffix(".lab")))
    return pairs


def load_audio_folder(root: str | Path, splits=("train", "valid", "test"), progress: bool = True,
                      all_splits_if_tiny: bool = True) -> list[Song]:
    """Songs from audio files with ``.lab`` beside them; chroma cached per file as .npz."""
    import numpy as np

    from songkit.core.progress import track
    from songkit.tasks.chords.features import audio_features

    root = Path(root)
    pairs = audio_lab_pairs(root)
    if not pairs:
        raise UserError(f"{root}: no audio files with a .lab beside them")
    chosen = [(a, lab) for a, lab in pairs if split_of(a.stem) in splits]
    if not chosen and all_splits_if_tiny:
        chosen = pairs
    songs = []
    for a, lab in track(chosen, total=len(chosen), description="audio") if progress else chosen:
        ref = harte.read_lab(lab)
        z = _cached_arrays("audio", a.stem, a, lambda a=a: dict(zip(("chroma", "duration"), audio_features(a))),
                           salt=f"|{spec.N_FFT}")
        chroma, duration = z["chroma"], float(z["duration"])
        times = np.arange(len(chroma)) * spec.FRAME_SECONDS
        songs.append(_song_from_frames(a.stem, times, chroma, ref, duration))
    return songs


def load(path: str | Path, splits=("train", "valid", "test"), progress: bool = True) -> list[Song]:
    """Load songs from a Billboard release folder or an audio+lab folder."""
    root = Path(path)
    if not root.exists():
        raise UserError(f"{root}: no such folder")
    if not root.is_dir():
        raise UserError(f"{root}: expected a folder (Billboard release or audio files with .lab beside them)")
    if is_billboard(root):
        return load_billboard(root, splits, progress)
    if root.name in (CHORDINO_DIR, MIREX_DIR) and is_billboard(root.parent):
        return load_billboard(root.parent, splits, progress)
    return load_audio_folder(root, splits, progress)
