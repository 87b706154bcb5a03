"""Readers for symbolic music: MIDI (symusic), MusicXML and ABC (music21), POP909 chords.

Everything is read into a :class:`Music`: notes in ticks of the file's own resolution,
tempos, time signatures, track metadata and (when the file has them) chord annotations.
Quantisation and tokens live in ``encoding.py``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from songkit.core.errors import UserError
from songkit.tasks.tokenize.spec import PITCH_CLASSES

MIDI_SUFFIXES = (".mid", ".midi")
MUSIC21_SUFFIXES = (".xml", ".musicxml", ".mxl", ".abc", ".krn")
SUFFIXES = MIDI_SUFFIXES + MUSIC21_SUFFIXES
CHORD_MARKER = "chord:"  # markers written by the decoder, read back as chord annotations


@dataclass
class Music:
    """A piece in ticks: ``notes`` is (N, 5) int64 of onset, duration, pitch, velocity, track."""

    source: str
    tpq: int
    notes: np.ndarray
    tracks: list[dict]  # name, program, is_drum (only tracks with notes, renumbered 0..)
    tempos: list[tuple[int, float]] = field(default_factory=list)  # (tick, quarter notes per minute)
    timesigs: list[tuple[int, int, int]] = field(default_factory=list)  # (tick, numerator, denominator)
    chords: list[tuple[int, str]] | None = None  # (tick, label in the chord vocabulary); None: recognise


# ---------------------------------------------------------------------------- MIDI


def read_midi(path: str | Path, tracks: list[int] | None = None) -> Music:
    """Read a MIDI file with symusic; POP909's ``chord_midi.txt`` beside it gives the chords."""
    import symusic

    stdin = str(path) == "-"
    path = Path(path)
    if not stdin and not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        score = symusic.Score.from_midi(sys.stdin.buffer.read()) if stdin else symusic.Score(str(path))
    except Exception as e:  # symusic raises RuntimeError/ValueError for truncated or non-MIDI bytes
        raise UserError(f"{path}: not a readable MIDI file ({str(e).splitlines()[0][:120]})") from None
    if tracks:
        bad = [t for t in tracks if not 0 <= t < len(score.tracks)]
        if bad:
            raise UserError(f"{path}: no track {bad[0]} (the file has {len(score.tracks)} tracks)")
    chosen = tracks or list(range(len(score.tracks)))
    parts, meta = [], []
    for i in chosen:
        tr = score.tracks[i]
        if tr.note_num() == 0:
            continue
        a = tr.notes.numpy()
        k = len(meta)
        parts.append(np.stack([a["time"].astype(np.int64), a["duration"].astype(np.int64),
                               a["pitch"].astype(np.int64), a["velocity"].astype(np.int64),
                               np.full(len(a["time"]), k, np.int64)], axis=1))
        meta.append({"name": tr.name, "program": int(tr.program), "is_drum": bool(tr.is_drum), "index": i})
    if not parts:
        raise UserError(f"{path}: no notes" + (f" in track(s) {tracks}" if tracks else ""))
    tempos = [(int(t.time), float(t.qpm)) for t in score.tempos]
    timesigs = [(int(t.time), int(t.numerator), int(t.denominator)) for t in score.time_signatures]
    music = Music(str(path), int(score.ticks_per_quarter), np.concatenate(parts), meta, tempos, timesigs)
    if music.tpq <= 0:
        raise UserError(f"{path}: SMPTE time division is not supported (ticks per quarter {music.tpq})")
    ann = path.parent / "chord_midi.txt"
    if not stdin and ann.is_file():
        music.chords = read_pop909_chords(ann, music.tempos, music.tpq)
    else:
        marked = [(int(m.time), m.text[len(CHORD_MARKER):]) for m in score.markers
                  if m.text.startswith(CHORD_MARKER)]
        if marked:
            music.chords = [(t, lab) for t, lab in marked if lab in _CHORD_SET]
    return music


def seconds_to_ticks(seconds: np.ndarray, tempos: list[tuple[int, float]], tpq: int) -> np.ndarray:
    """Map times in seconds to ticks through a tempo map (120 bpm before the first tempo)."""
    tempos = sorted(tempos) or [(0, 120.0)]
    if tempos[0][0] != 0:
        tempos = [(0, 120.0)] + tempos
    ticks = np.array([t for t, _ in tempos], dtype=np.float64)
    qpm = np.array([q for _, q in tempos], dtype=np.float64)
    sec_per_tick = 60.0 / (qpm * tpq)
    starts = np.concatenate([[0.0], np.cumsum(np.diff(ticks) * sec_per_tick[:-1])])  # seconds at each change
    idx = np.clip(np.searchsorted(starts, seconds, side="right") - 1, 0, len(starts) - 1)
    return np.rint(ticks[idx] + (seconds - starts[idx]) / sec_per_tick[idx]).astype(np.int64)


# Harte shorthand -> the CP paper's 11 qualities (extensions reduce to their triad or seventh).
_HARTE = {
    "maj": "M", "min": "m", "dim": "o", "aug": "+", "7": "7", "maj7": "M7", "min7": "m7",
    "dim7": "o7", "hdim7": "/o7", "sus2": "sus2", "sus4": "sus4", "maj6": "M", "min6": "m",
    "9": "7", "11": "7", "13": "7", "maj9": "M7", "maj11": "M7", "maj13": "M7", "min9": "m7",
    "min11": "m7", "min13": "m7", "minmaj7": "m", "5": "M", "1": "M", "": "M",
}
_ROOTS = {n: i for i, n in enumerate(PITCH_CLASSES)}
_ROOTS.update({"Db": 1, "Eb": 3, "Fb": 4, "E#": 5, "Gb": 6, "Ab": 8, "Bb": 10, "Cb": 11, "B#": 0})
_CHORD_SET = None  # filled below


def harte_to_label(harte: str) -> str:
    """``'C#:min7/b3'`` -> ``'C#_m7'``; N, X and unknown qualities -> ``'N'``."""
    harte = harte.strip()
    if harte in ("N", "X", ""):
        return "N"
    root, _, qual = harte.partition(":")
    qual = qual.split("/")[0]
    base = qual.split("(")[0]
    if root not in _ROOTS:
        return "N"
    q = _HARTE.get(base)
    if q is None:
        if base.startswith("sus"):
            q = "sus4"
        elif base.startswith("maj"):
            q = "M"
        elif base.startswith("min"):
            q = "m"
        else:
            return "N"
    return f"{PITCH_CLASSES[_ROOTS[root]]}_{q}"


def read_pop909_chords(path: Path, tempos, tpq: int) -> list[tuple[int, str]]:
    """POP909 ``chord_midi.txt`` (start, end, Harte label in seconds of MIDI time) -> (tick, label)."""
    starts, labels = [], []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        cols = line.split()
        if not cols:
            continue
        if len(cols) < 3:
            raise UserError(f"{path}:{n}: expected 'start end label'")
        try:
            starts.append(float(cols[0]))
        except ValueError:
            raise UserError(f"{path}:{n}: bad start time {cols[0]!r}") from None
        labels.append(harte_to_label(cols[2]))
    ticks = seconds_to_ticks(np.asarray(starts, dtype=np.float64), tempos, tpq)
    return list(zip(ticks.tolist(), labels))


# ---------------------------------------------------------------------------- music21


def read_music21(path: str | Path, tracks: list[int] | None = None) -> Music:
    """Read MusicXML, ABC or Humdrum through music21."""
    import music21

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        score = music21.converter.parse(str(path))
    except Exception as e:
        raise UserError(f"{path}: music21 cannot read it ({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})") from None
    return music_from_music21(score, str(path), tracks)


def music_from_music21(score, source: str, tracks: list[int] | None = None, tpq: int = 480) -> Music:
    """Convert a music21 Score (or Opus: its first score) to ticks at ``tpq`` per quarter.

    A pickup bar is shifted right by its missing length so that bar lines fall on whole
    bars from tick 0, as in a MIDI file written by a notation program.
    """
    import music21

    if isinstance(score, music21.stream.Opus):
        score = score.scores[0]
    parts = list(score.parts) if hasattr(score, "parts") and len(score.parts) else [score]
    if tracks:
        bad = [t for t in tracks if not 0 <= t < len(parts)]
        if bad:
            raise UserError(f"{source}: no part {bad[0]} (the score has {len(parts)} parts)")
        parts = [parts[t] for t in tracks]
    shift = 0.0
    first = parts[0].getElementsByClass("Measure")
    if len(first):
        shift = float(first[0].paddingLeft or 0.0)
    rows, meta = [], []
    for pi, part in enumerate(parts):
        flat = part.stripTies().flatten()
        k = len(meta)
        n_before = len(rows)
        for el in flat.notes:
            onset = float(el.offset) + shift
            dur = float(el.quarterLength)
            pitches = [p.midi for p in el.pitches] if hasattr(el, "pitches") else []
            vel = el.volume.velocity if el.volume is not None and el.volume.velocity else 80
            for p in pitches:
                rows.append((round(onset * tpq), round(dur * tpq), p, int(vel), k))
        if len(rows) > n_before:
            inst = part.getInstrument(returnDefault=True)
            prog = inst.midiProgram if inst is not None and inst.midiProgram is not None else 0
            meta.append({"name": part.partName or f"part {pi}", "program": int(prog),
                         "is_drum": False, "index": (tracks or list(range(len(parts))))[pi]})
    if not rows:
        raise UserError(f"{source}: no notes")
    flat0 = parts[0].flatten()
    timesigs = [(round((float(ts.offset) + shift) * tpq), ts.numerator, ts.denominator)
                for ts in flat0.getElementsByClass("TimeSignature")]
    if timesigs and shift:
        timesigs[0] = (0,) + timesigs[0][1:]
    tempos = {}
    for mm in score.flatten().getElementsByClass("MetronomeMark"):
        qpm = mm.getQuarterBPM()
        if qpm:
            # a mark at the pickup's first note holds from the start of the (padded) first bar
            tick = round(float(mm.offset) * tpq) and round((float(mm.offset) + shift) * tpq)
            tempos[tick] = float(qpm)
    tempos = sorted(tempos.items())
    return Music(source, tpq, np.array(rows, dtype=np.int64), meta, tempos, timesigs)


# ---------------------------------------------------------------------------- any file


def read_music(path: str | Path, tracks: list[int] | None = None) -> Music:
    """Read any supported file by its suffix."""
    p = Path(path)
    suffix = p.suffix.lower()
    if str(path) == "-" or suffix in MIDI_SUFFIXES:  # stdin: MIDI bytes
        return read_midi(p, tracks)
    if suffix in MUSIC21_SUFFIXES:
        return read_music21(p, tracks)
    raise UserError(f"{p}: unknown file type {suffix or '(none)'} (expected {', '.join(SUFFIXES)})")


def write_midi(music: Music, path: str | Path) -> None:
    """Write a Music as a MIDI file (chords as ``chord:LABEL`` markers), atomically."""
    import symusic

    from songkit.core.io import atomic_write_bytes

    score = symusic.Score(int(music.tpq))
    for k, meta in enumerate(music.tracks):
        tr = symusic.Track(name=str(meta.get("name", f"track {k}")), program=int(meta.get("program", 0)),
                           is_drum=bool(meta.get("is_drum", False)))
        sel = music.notes[music.notes[:, 4] == k]
        arrays = {"time": sel[:, 0].astype(np.int32), "duration": sel[:, 1].astype(np.int32),
                  "pitch": sel[:, 2].astype(np.int8), "velocity": sel[:, 3].astype(np.int8)}
        tr.notes = symusic.Note.from_numpy(**arrays)
        score.tracks.append(tr)
    for tick, qpm in music.tempos:
        score.tempos.append(symusic.Tempo(int(tick), qpm=float(qpm)))
    for tick, num, den in music.timesigs:
        score.time_signatures.append(symusic.TimeSignature(int(tick), int(num), int(den)))
    for tick, label in music.chords or []:
        score.markers.append(symusic.TextMeta(int(tick), CHORD_MARKER + label))
    atomic_write_bytes(path, bytes(score.dumps_midi()))


# ---------------------------------------------------------------------------- datasets


def pop909_files(root: str | Path) -> list[Path]:
    """The POP909 MIDI files under ``root`` (``POP909/NNN/NNN.mid``, or any ``*.mid`` below)."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise UserError(f"{root}: no such folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file()
                   and "versions" not in p.parts)
    if not files:
        raise UserError(f"{root}: no MIDI/MusicXML/ABC files in this folder")
    return files


def chorale_paths(limit: int | None = None) -> list[str]:
    """Paths of the Bach chorales bundled with music21 (MusicXML), sorted."""
    from music21 import corpus

    paths = sorted(str(p) for p in corpus.getComposer("bach") if str(p).endswith((".mxl", ".xml", ".musicxml")))
    return paths[:limit] if limit else paths


def _init():
    from songkit.tasks.tokenize.spec import chord_labels

    global _CHORD_SET
    _CHORD_SET = set(chord_labels())


_init()
