"""The embedded default: Bach chorales from music21's corpus, rendered to audio, with chord labels.

Labels come from the harmony itself: ``chordify`` merges the voices into one chord per
onset; its root (music21's stacked-thirds rule) and the intervals above it give the MIREX
majmin class: a major third without minor third, diminished or augmented fifth is ``maj``
(dominant sevenths included, as MIREX reduces them), the minor counterpart is ``min``,
a rest everywhere is ``N``, and anything else (diminished, bare fifths, passing clusters) is
``X``: ignored in training and scoring. Audio is an additive synthesiser in numpy (8 harmonics
falling as 1/h, a short attack and exponential decay), so no SoundFont or synthesiser is needed.
Each chorale gets its own tempo (66-100 quarter notes a minute) from a fixed seed.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from songkit.tasks.chords import constants as C

VERSION = 1  # bump when the rendering changes: the cache folder is keyed on it
SAMPLE_RATE = 22050  # rendering rate (features resample to the model's own)


def chorale_paths(num: int) -> list:
    """The first ``num`` chorales of music21's Bach corpus, in a fixed (sorted) order."""
    from music21 import corpus

    paths = sorted(corpus.getComposer("bach"), key=lambda p: str(p))
    return [p for p in paths if str(p).endswith((".mxl", ".xml", ".krn"))][: max(num * 2, num + 20)]


def chord_label(pitch_classes: set[int], root: int) -> str:
    """Majmin label of a set of pitch classes over a root (semitones from C)."""
    rel = {(p - root) % 12 for p in pitch_classes}
    name = C.PITCH_NAMES[root]
    if 4 in rel and 3 not in rel and 6 not in rel and 8 not in rel:
        return f"{name}:maj"
    if 3 in rel and 4 not in rel and 6 not in rel and 7 in rel:
        return f"{name}:min"
    return "X"


def _synth_note(freq: float, dur: float, sr: int, amp: float):
    import numpy as np

    n = int((dur + 0.08) * sr)  # a short release past the note end
    t = np.arange(n) / sr
    wave = np.zeros(n)
    for h in range(1, 9):
        if freq * h < sr / 2 - 500:
            wave += np.sin(2 * np.pi * freq * h * t + h) / h
    env = np.minimum(1.0, t / 0.01) * np.exp(-t * 1.5)
    env[t > dur] *= np.exp(-(t[t > dur] - dur) / 0.03)
    return (amp * wave * env).astype(np.float32)


def render(path) -> tuple | None:
    """Parse, label and render one chorale -> (audio float32, segments [(start, end, label)]) or None."""
    import numpy as np
    from music21 import converter

    try:
        score = converter.parse(str(path)).stripTies()
    except Exception:  # noqa: BLE001 - a corpus file music21 cannot read is skipped
        return None
    parts = list(score.parts)
    if not 3 <= len(parts) <= 5 or score.highestTime > 240:
        return None
    rng = np.random.default_rng(zlib.crc32(Path(path).name.encode()))
    sec_per_q = 60.0 / float(rng.integers(66, 101))
    duration = float(score.highestTime) * sec_per_q + 0.5
    audio = np.zeros(int(duration * SAMPLE_RATE) + SAMPLE_RATE, dtype=np.float32)
    for part in parts:
        for n in part.flatten().notes:
            start = float(n.offset) * sec_per_q
            dur = max(float(n.quarterLength) * sec_per_q, 0.05)
            for p in n.pitches:
                wave = _synth_note(p.frequency, dur, SAMPLE_RATE, 0.15)
                i = int(start * SAMPLE_RATE)
                audio[i:i + len(wave)] += wave[: len(audio) - i]
    audio = audio[: int(duration * SAMPLE_RATE)]
    audio /= max(float(np.abs(audio).max()), 1e-6) * 1.1
    segs = []
    for ch in score.chordify().flatten().getElementsByClass(("Chord", "Rest")):
        start, end = float(ch.offset) * sec_per_q, float(ch.offset + ch.quarterLength) * sec_per_q
        if end <= start:
            continue
        if ch.isRest or not ch.pitches:
            lab = "N"
        else:
            lab = chord_label({p.pitchClass for p in ch.pitches}, ch.root().pitchClass)
        if segs and segs[-1][2] == lab and abs(segs[-1][1] - start) < 1e-9:
            segs[-1] = (segs[-1][0], end, lab)
        else:
            segs.append((start, end, lab))
    if segs and segs[0][0] > 0:
        segs.insert(0, (0.0, segs[0][0], "N"))
    if segs and segs[-1][1] < duration:
        segs.append((segs[-1][1], duration, "N"))
    return audio, segs


def build_dataset(out, num: int = 60, fmt: str = "flac") -> Path:
    """Write ``num`` chorales as ``<name>.<fmt>`` with ``<name>.lab`` beside each (Isophonics style)."""
    import soundfile as sf

    from songkit.core.io import atomic_write_text
    from songkit.core.progress import track
    from songkit.tasks.chords.labels import format_lab

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    done = 0
    paths = chorale_paths(num)
    for p in track(paths, total=len(paths), description="rendering chorales"):
        if done >= num:
            break
        r = render(p)
        if r is None:
            continue
        audio, segs = r
        name = Path(p).name.split(".mxl")[0].replace(".", "_")
        sf.write(str(out / f"{name}.{fmt}"), audio, SAMPLE_RATE)
        atomic_write_text(out / f"{name}.lab", format_lab([(s, e) for s, e, _ in segs], [lab for *_, lab in segs]))
        done += 1
    return out


def ensure_embedded(num: int = 60) -> Path:
    """The embedded dataset, built once into ``$SONGKIT_HOME/chords-bach<num>-v<VERSION>`` (about 3 minutes
    on one core the first time; a killed build leaves nothing that reads as complete)."""
    from songkit.core.data import build_once, home_dir
    from songkit.core.progress import log

    if not (home_dir() / f"chords-bach{num}-v{VERSION}").is_dir():
        log(f"building the embedded Bach chorale dataset ({num} chorales, once; about 3 minutes)")
    return build_once(f"chords-bach{num}", lambda tmp: build_dataset(tmp, num=num), version=str(VERSION))
