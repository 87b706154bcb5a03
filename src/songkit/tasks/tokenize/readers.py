"""Readers and writers of symbolic music: MIDI (symusic), MusicXML and ABC (music21), POP909 chords.

Everything is read into a :class:`Music`: notes in ticks of the file's own resolution, tempos,
time signatures, track metadata and (when the file has them) chord annotations. A file may hold
several pieces (a multi-tune ABC file): :func:`read_pieces` gives one Music per piece. Readers take
paths or bytes, never stdin: the CLI reads ``-`` and hands the bytes over.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from songkit.core.errors import UserError
from songkit.core.music import PITCH_CLASSES, ChordError, parse_chord

MIDI_SUFFIXES = (".mid", ".midi")
MUSIC21_SUFFIXES = (".xml", ".musicxml", ".mxl", ".abc", ".krn")
SUFFIXES = MIDI_SUFFIXES + MUSIC21_SUFFIXES
FORMATS = ("midi", "abc", "musicxml")  # --from, for bytes without a file name
CHORD_MARKER = "chord:"  # markers written by the decoder, read back as chord annotations
MAX_TICKS = 2**31 - 1  # symusic (and most MIDI software) keeps times in int32


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


def read_midi(path: str | Path, tracks: list[int] | None = None, data: bytes | None = None) -> Music:
    """Read a MIDI file (or its ``data`` bytes, named ``path``); POP909's ``chord_midi.txt`` beside a
    file gives the chords."""
    import symusic

    path = Path(path)
    if data is None and not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        score = symusic.Score.from_midi(data) if data is not None else symusic.Score(str(path))
    except Exception as e:  # noqa: BLE001 - symusic raises RuntimeError/ValueError/... for damaged bytes
        raise UserError(f"{path}: not a readable MIDI file ({str(e).splitlines()[0][:120] if str(e) else e})") from None
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
    check_music(music)
    ann = path.parent / "chord_midi.txt"
    if data is None and ann.is_file():
        music.chords = read_pop909_chords(ann, music.tempos, music.tpq)
    else:
        marked = [(int(m.time), m.text[len(CHORD_MARKER):]) for m in score.markers
                  if m.text.startswith(CHORD_MARKER)]
        if marked:
            music.chords = [(t, lab) for t, lab in marked if lab in _CHORD_SET]
    return music


def check_music(music: Music) -> None:
    """Refuse what no grid can hold, with one line naming the file: SMPTE time division, a tempo of
    0 microseconds per quarter (infinite), a time signature with numerator or denominator 0 (a
    denominator byte over 7 wraps to 0 in the reader)."""
    src = music.source
    if music.tpq <= 0:
        raise UserError(f"{src}: SMPTE time division is not supported (ticks per quarter {music.tpq})")
    for tick, qpm in music.tempos:
        if not (math.isfinite(qpm) and qpm > 0):
            raise UserError(f"{src}: tempo {qpm} quarters per minute at tick {tick} (a tempo event of 0 µs)")
    for tick, num, den in music.timesigs:
        if num <= 0 or den <= 0:
            raise UserError(f"{src}: time signature {num}/{den} at tick {tick} is not a time signature")
    n = music.notes
    if len(n) and (n[:, 2].min() < 0 or n[:, 2].max() > 127):
        raise UserError(f"{src}: a pitch outside MIDI's 0..127")
    if len(n) and (n[:, 0].min() < 0 or n[:, 1].min() < 0):
        raise UserError(f"{src}: a note starts before time 0 or has a negative duration")


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
_CHORD_SET: set[str] = set()  # filled below


@functools.lru_cache(maxsize=4096)  # a song repeats its few labels hundreds of times
def harte_to_label(harte: str) -> str:
    """``'C#:min7/b3'`` -> ``'C#_m7'``; N, X, unparsable labels and unknown qualities -> ``'N'``."""
    try:
        chord = parse_chord(harte.strip())  # core.music's scanner: linear time on hostile labels
    except ChordError:
        return "N"
    quality = _HARTE.get(chord.quality)
    if chord.root < 0 or quality is None:
        return "N"
    return f"{PITCH_CLASSES[chord.root]}_{quality}"


def read_pop909_chords(path: Path, tempos, tpq: int) -> list[tuple[int, str]]:
    """POP909 ``chord_midi.txt`` (start, end, Harte label in seconds of MIDI time) -> (tick, label)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start}); the chord annotation beside a MIDI file "
                        "must be text") from None
    starts, labels = [], []
    for n, line in enumerate(text.splitlines(), 1):
        cols = line.split()
        if not cols:
            continue
        if len(cols) < 3:
            raise UserError(f"{path}:{n}: expected 'start end label'")
        try:
            start = float(cols[0])
        except ValueError:
            start = math.nan
        if not (math.isfinite(start) and 0 <= start < 1e6):
            raise UserError(f"{path}:{n}: bad start time {cols[0][:40]!r}")
        starts.append(start)
        labels.append(harte_to_label(cols[2]))
    ticks = seconds_to_ticks(np.asarray(starts, dtype=np.float64), tempos, tpq)
    return list(zip(ticks.tolist(), labels))


# ---------------------------------------------------------------------------- music21


def read_music21(path: str | Path, tracks: list[int] | None = None, data: bytes | None = None,
                 fmt: str | None = None) -> list[Music]:
    """Read MusicXML, ABC or Humdrum through music21: one Music per piece (per tune of an ABC file)."""
    import music21

    path = Path(path)
    if data is None and not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        if data is not None:
            parsed = music21.converter.parse(data.decode("utf-8", errors="replace"), format=fmt)
        else:
            parsed = music21.converter.parse(str(path))
    except Exception as e:  # noqa: BLE001 - music21's parsers raise anything on damaged files
        why = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        kind = fmt or path.suffix.lstrip(".") or "music"
        raise UserError(f"{path}: music21 cannot read it as {kind} ({why})") from None
    scores = list(parsed.scores) if isinstance(parsed, music21.stream.Opus) else [parsed]
    if not scores:
        raise UserError(f"{path}: no tunes")
    if len(scores) == 1:
        return [music_from_music21(scores[0], str(path), tracks)]
    return [music_from_music21(s, f"{path}#{k}", tracks) for k, s in enumerate(scores, 1)]


def music_from_music21(score, source: str, tracks: list[int] | None = None, tpq: int = 480) -> Music:
    """Convert a music21 Score to ticks at ``tpq`` per quarter.

    A pickup bar is shifted right by its missing length so that bar lines fall on whole
    bars from tick 0, as in a MIDI file written by a notation program.
    """
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
    music = Music(source, tpq, np.array(rows, dtype=np.int64), meta, sorted(tempos.items()), timesigs)
    check_music(music)
    return music


# ---------------------------------------------------------------------------- any file


def guess_format(data: bytes) -> str | None:
    """midi | musicxml | abc from the first bytes, or None."""
    head = data[:4096].lstrip()
    if head.startswith((b"MThd", b"RIFF")):
        return "midi"
    if head.startswith((b"<?xml", b"<score-partwise", b"PK")):
        return "musicxml"
    text = head.decode("utf-8", errors="replace")
    if text.startswith(("X:", "%abc", "T:")) or "\nX:" in text or "\nK:" in text:
        return "abc"
    return None


def read_bytes(data: bytes, name: str = "-", fmt: str | None = None,
               tracks: list[int] | None = None) -> list[Music]:
    """Pieces from bytes (stdin): ``fmt`` midi | abc | musicxml, or guessed; a wrong or impossible guess
    names what was expected."""
    guess = guess_format(data)
    fmt = fmt or guess
    if fmt is None:
        raise UserError(f"{name}: neither MIDI, ABC nor MusicXML (say which with --from {'|'.join(FORMATS)})")
    if fmt not in FORMATS:
        raise UserError(f"--from {fmt}: expected one of {', '.join(FORMATS)}")
    if guess is not None and guess != fmt:
        raise UserError(f"{name}: expected {fmt.upper() if fmt != 'musicxml' else 'MusicXML'} (--from {fmt}), "
                        f"but the input looks like {guess}")
    if fmt == "midi":
        return [read_midi(name, tracks, data)]
    return read_music21(name, tracks, data, fmt)


def read_pieces(path: str | Path, tracks: list[int] | None = None) -> list[Music]:
    """The pieces of any supported file, by its suffix (several for a multi-tune ABC file)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in MIDI_SUFFIXES:
        return [read_midi(p, tracks)]
    if suffix in MUSIC21_SUFFIXES:
        return read_music21(p, tracks)
    raise UserError(f"{p}: unknown file type {suffix or '(none)'} (expected {', '.join(SUFFIXES)})")


def read_music(path: str | Path, tracks: list[int] | None = None) -> Music:
    """The first piece of a file (the only one, except in a multi-tune ABC file)."""
    return read_pieces(path, tracks)[0]


def midi_bytes(music: Music) -> bytes:
    """A Music as MIDI file bytes (chords as ``chord:LABEL`` markers)."""
    import symusic

    if len(music.notes) and int((music.notes[:, 0] + music.notes[:, 1]).max()) > MAX_TICKS:
        raise UserError(f"{music.source}: the piece is too long for a MIDI file (over 2^31 ticks)")
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
    return bytes(score.dumps_midi())


def write_midi(music: Music, path: str | Path) -> None:
    """Write a Music as a MIDI file, atomically."""
    from songkit.core.io import atomic_write_bytes

    atomic_write_bytes(path, midi_bytes(music))


def _init():
    from songkit.tasks.tokenize.constants import chord_labels

    _CHORD_SET.update(chord_labels())


_init()
