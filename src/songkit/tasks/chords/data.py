"""Chord datasets in their real layouts, and the song-level split.

- The McGill Billboard release as downloaded: ``billboard-2.0-chordino/NNNN/bothchroma.csv``
  beside ``billboard-2.0.1-mirex/NNNN/majmin.lab`` (point ``--data`` at their parent).
- Any folder of audio files with a ``.lab`` beside each (Isophonics style); chroma computed
  from the audio (``features.bothchroma``), cached under the songkit cache folder.
- The embedded default (Bach chorales from music21, rendered to audio): ``bach.py``.

A song is ``Song(name, chroma (T, 24) raw float32, labels (T,) int64 class ids, ref, duration)``
with ``ref`` the full reference annotation for the MIREX scores. ``ChromaWindows`` is the training
``Dataset``: the songs stay in memory (Billboard's 297 songs: 1.5 M frames, ~140 MB of float32), windows are items.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

from songkit.core.errors import UserError
from songkit.tasks.chords import constants as C
from songkit.tasks.chords.labels import Annotation, frame_labels, read_lab

CHORDINO_DIR = "billboard-2.0-chordino"
MIREX_DIR = "billboard-2.0.1-mirex"


@dataclass
class Song:
    name: str
    chroma: object  # (T, 24) float32, raw (normalise with features.normalize_chroma)
    labels: object  # (T,) int64 majmin classes, IGNORE where unscored
    ref: Annotation
    duration: float
    beats: object = None  # beat times (s) from a ``.beats`` file beside the audio, or None


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


def split_of(name: str, folds: int = 0, fold: int = 0) -> str:
    """Deterministic song-level split from the song id alone: 70% train, 10% valid, 20% test.

    A hash of the name (not the position in a listing), so a song keeps its split when the
    folder holds more or fewer songs (the 297-song subset vs the full 890 release).
    With ``folds`` (cross-validation): the songs of fold ``fold`` are the test split, and of the
    rest one in ten (by the same hash as above) is the validation split.
    """
    h = zlib.crc32(name.encode()) % 10
    if folds:
        if zlib.crc32(f"fold:{name}".encode()) % folds == fold:
            return "test"
        return "valid" if h == 2 else "train"
    return "test" if h < 2 else "valid" if h == 2 else "train"


def read_bothchroma(path: str | Path):
    """Read a Chordino ``bothchroma.csv``: ``(times (T,), chroma (T, 24))`` float.

    Columns: audio path (first row only), time, 12 bass then 12 treble bins from A. The path
    column may hold commas, so each row is split from the right. Wrong column counts,
    non-numbers and non-finite values (``inf``, ``nan``, ``1e400``) are a UserError naming the file and line.
    """
    import numpy as np

    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: no such file")
    try:
        text = p.read_text(encoding="utf-8", errors="strict")
    except (UnicodeDecodeError, OSError) as e:
        raise UserError(f"{p}: not a chroma CSV text file ({type(e).__name__})") from None
    rows, line_numbers = [], []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.rsplit(",", C.CHROMA_DIM + 1)
        if len(parts) != C.CHROMA_DIM + 2:
            raise UserError(
                f"{p}:{n}: expected {C.CHROMA_DIM + 2} columns (path, time, 12 bass + 12 treble chroma), "
                f"got {len(line.split(','))}"
            )
        rows.append(parts[1:])
        line_numbers.append(n)
    if not rows:
        raise UserError(f"{p}: no chroma frames in the file")
    try:
        arr = np.array(rows, dtype=np.float64)
    except ValueError:
        for n, row in zip(line_numbers, rows):  # the slow path only to name the line
            try:
                [float(v) for v in row]
            except ValueError:
                raise UserError(f"{p}:{n}: chroma values are not all numbers") from None
        raise UserError(f"{p}: chroma values are not all numbers") from None
    finite = np.isfinite(arr).all(1) & (np.abs(arr) < 3e38).all(1)  # float32 must hold them too
    if not finite.all():
        n = line_numbers[int(np.argmin(finite))]
        raise UserError(f"{p}:{n}: chroma contains NaN, infinite or out-of-range values")
    return arr[:, 0], arr[:, 1:].astype(np.float32)


def read_beats(path: str | Path):
    """Beat times (s) from a text file: the first number of each line (POP909's ``beat_midi.txt`` or the
    ``.beats`` files ``data chords --pop909`` writes); a bad line is an error naming it."""
    import math

    import numpy as np

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as e:
        raise UserError(f"{p}: not a readable beats file ({type(e).__name__})") from None
    times = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            t = float(line.split()[0])
        except ValueError:
            raise UserError(f"{p}:{n}: not a beat time: {line.strip()[:40]!r}") from None
        if not math.isfinite(t) or t < 0:
            raise UserError(f"{p}:{n}: bad beat time {t}")
        times.append(t)
    return np.asarray(times, dtype=np.float64)


def _song_from_frames(name, times, chroma, ref: Annotation, duration=None) -> Song:
    labels = frame_labels(ref, times)
    dur = float(duration if duration is not None else max(ref.intervals.max(), times[-1] + C.FRAME_SECONDS))
    return Song(name, chroma, labels, ref, dur)


def is_billboard(root: Path) -> bool:
    return (root / CHORDINO_DIR).is_dir() and (root / MIREX_DIR).is_dir()


def billboard_ids(root: Path) -> list[str]:
    """Song ids with both a bothchroma.csv and a majmin.lab."""
    chroma = {d.name for d in (root / CHORDINO_DIR).iterdir() if (d / "bothchroma.csv").is_file()}
    labs = {d.name for d in (root / MIREX_DIR).iterdir() if (d / "majmin.lab").is_file()}
    return sorted(chroma & labs)


def _chosen(names: list[str], splits, folds: int, fold: int, limit: int) -> list[str]:
    """The names whose split is in ``splits``, after keeping the first ``limit`` (0: all)."""
    names = names[:limit] if limit else names
    return [n for n in names if split_of(n, folds, fold) in splits]


def load_billboard(root: str | Path, splits=C.SPLITS, folds: int = 0, fold: int = 0, limit: int = 0,
                   progress: bool = True) -> list[Song]:
    """Load the Billboard songs of the given splits (parsed files cached as .npz)."""
    from songkit.core.progress import track

    root = Path(root)
    ids = _chosen(billboard_ids(root), splits, folds, fold, limit)
    if not ids:
        raise UserError(f"{root}: no Billboard songs in the split(s) {', '.join(splits)} "
                        f"(need {CHORDINO_DIR}/NNNN/bothchroma.csv and {MIREX_DIR}/NNNN/majmin.lab)")
    songs = []
    for sid in track(ids, total=len(ids), description="billboard") if progress else ids:
        csv = root / CHORDINO_DIR / sid / "bothchroma.csv"
        lab = root / MIREX_DIR / sid / "majmin.lab"
        z = _cached_arrays("billboard", sid, csv, lambda csv=csv: dict(zip(("times", "chroma"), read_bothchroma(csv))))
        songs.append(_song_from_frames(sid, z["times"], z["chroma"], read_lab(lab, drop_backward=True)))
    return songs


def audio_lab_pairs(root: Path) -> list[tuple[Path, Path]]:
    """(audio, lab) pairs in a folder tree: ``x.wav`` with ``x.lab`` beside it."""
    pairs = []
    for a in sorted(root.rglob("*")):
        if a.suffix.lower() in C.AUDIO_SUFFIXES and a.with_suffix(".lab").is_file():
            pairs.append((a, a.with_suffix(".lab")))
    return pairs


def load_audio_folder(root: str | Path, cfg, splits=C.SPLITS, folds: int = 0, fold: int = 0, limit: int = 0,
                      progress: bool = True, track_beats: bool = False) -> list[Song]:
    """Songs from audio files with ``.lab`` beside them, chroma by ``cfg``'s signal chain (cached as .npz);
    ``track_beats``: a song with no ``.beats`` file gets beats tracked from its audio (cached too).

    A folder too small to have songs in every split (a handful of files) gives all of them to each split.
    """
    import numpy as np

    from songkit.core.progress import track
    from songkit.tasks.chords.features import audio_features

    root = Path(root)
    pairs = audio_lab_pairs(root)[: limit or None]
    if not pairs:
        raise UserError(f"{root}: no audio files with a .lab beside them")
    chosen = [(a, lab) for a, lab in pairs if split_of(a.stem, folds, fold) in splits] or pairs
    songs = []
    for a, lab in track(chosen, total=len(chosen), description="audio") if progress else chosen:
        ref = read_lab(lab)
        z = _cached_arrays("audio", a.stem, a, lambda a=a: dict(zip(("chroma", "duration"), audio_features(a, cfg))),
                           salt=f"|{cfg.sample_rate}|{cfg.n_fft}|{cfg.hop_length}|v{C.FEATURES_VERSION}")
        chroma, duration = z["chroma"], float(z["duration"])
        times = np.arange(len(chroma)) * (cfg.hop_length / cfg.sample_rate)
        songs.append(_song_from_frames(a.stem, times, chroma, ref, duration))
        songs[-1].beats = read_beats(a.with_suffix(".beats")) if a.with_suffix(".beats").is_file() else None
        if songs[-1].beats is None and track_beats:
            songs[-1].beats = _cached_arrays("beats", a.stem, a, lambda a=a: {"beats": tracked_beats(a, cfg)},
                                             salt=f"|{cfg.sample_rate}|beats-v1")["beats"]
    return songs


def tracked_beats(path: Path, cfg):
    """Beat times (s) tracked from an audio file (``beats.track_beats`` at ``cfg.sample_rate``)."""
    from songkit.tasks.chords.beats import track_beats
    from songkit.tasks.chords.features import song_samples

    return track_beats(song_samples(path, cfg)[0], cfg.sample_rate)


def load(path: str | Path, cfg, splits=C.SPLITS, folds: int = 0, fold: int = 0, limit: int = 0,
         progress: bool = True, track_beats: bool = False) -> list[Song]:
    """Load songs from a Billboard release folder or an audio+lab folder (``cfg``: the model config,
    whose signal chain computes chroma from audio; ``track_beats``: see ``load_audio_folder``)."""
    root = Path(path)
    if not root.exists():
        raise UserError(f"{root}: no such folder")
    if not root.is_dir():
        raise UserError(f"{root}: expected a folder (Billboard release or audio files with .lab beside them)")
    if root.name in (CHORDINO_DIR, MIREX_DIR) and is_billboard(root.parent):
        root = root.parent
    if is_billboard(root):
        return load_billboard(root, splits, folds, fold, limit, progress)
    return load_audio_folder(root, cfg, splits, folds, fold, limit, progress, track_beats)


class ChromaWindows:
    """The training Dataset: ``seq_len``-frame windows of normalised chroma, each transposed at random.

    The songs stay in memory as one ``(N, 24)`` tensor. An epoch's windows tile every song from a random
    offset (from ``(seed, epoch)``), so each frame is seen exactly once per epoch (windows at a song's
    head and tail are shorter, padded with ``IGNORE``); a window's transposition
    (-5..+6 semitones, chroma halves rolled and labels moved with them) comes from ``item_rng``.
    Items: ``x (L, 24)`` float32, ``y (L,)`` int64 with ``IGNORE`` past a song's end.
    """

    def __init__(self, songs: list[Song], seq_len: int, seed: int, augment: bool = True):
        import numpy as np
        import torch

        from songkit.tasks.chords.features import normalize_chroma

        if not songs:
            raise UserError("no training songs in the data")
        self.seq_len, self.seed, self.augment = seq_len, seed, augment
        self.lengths = np.array([len(s.labels) for s in songs], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)
        self.chroma = torch.cat([torch.as_tensor(normalize_chroma(np.asarray(s.chroma, np.float32))) for s in songs])
        self.labels = torch.cat([torch.as_tensor(s.labels) for s in songs])
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Lay out the windows of ``epoch`` (a function of (seed, epoch) only)."""
        import numpy as np

        self.epoch = epoch
        rng = np.random.default_rng([self.seed, epoch])
        L = self.seq_len
        songs, starts, lengths = [], [], []
        for i, T in enumerate(self.lengths):
            off = int(rng.integers(0, L)) if T > L else 0
            st = np.arange(off, T, L)
            ln = np.minimum(L, T - st)
            if off > 0:  # the head before the offset is a short window of its own
                st, ln = np.concatenate([[0], st]), np.concatenate([[off], ln])
            songs.append(np.full(len(st), i))
            starts.append(st)
            lengths.append(ln)
        self.window_song, self.window_start = np.concatenate(songs), np.concatenate(starts)
        self.window_length = np.concatenate(lengths)

    def __len__(self) -> int:
        return len(self.window_song)

    def shift(self, index: int) -> int:
        """The transposition of window ``index`` in this epoch (semitones up)."""
        from songkit.core.data import item_rng

        return int(item_rng(self.seed, self.epoch, index).integers(-5, 7)) if self.augment else 0

    def __getitem__(self, index: int):
        import torch

        song, start = int(self.window_song[index]), int(self.window_start[index])
        length = int(self.window_length[index])
        row = int(self.offsets[song]) + start
        x = torch.zeros(self.seq_len, C.CHROMA_DIM)
        y = torch.full((self.seq_len,), C.IGNORE, dtype=torch.int64)
        shift = self.shift(index)
        # transpose up `shift`: each 12-bin half rolled, labels moved with it (N and IGNORE stay)
        x[:length] = self.chroma[row:row + length].reshape(length, 2, 12).roll(shift, -1).reshape(length, -1)
        y[:length] = C.transpose_class(self.labels[row:row + length], shift)
        return x, y
