"""Chord annotations: ``.lab`` files, frame labels and segments (numpy only).

A ``.lab`` line is ``start end label`` (seconds, Harte label). Labels are parsed and reduced to the
25 majmin classes by ``core.music``; frames whose chord the MIREX reduction leaves out get ``IGNORE``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from songkit.core import music
from songkit.core.errors import UserError
from songkit.tasks.chords import constants as C


@dataclass
class Annotation:
    """Labelled segments: ``intervals`` (n, 2) float64 seconds, ``labels`` list of Harte strings."""

    intervals: object
    labels: list


def majmin_class(label: str) -> int:
    """The MIREX majmin class of a label: 0 N, 1-12 major, 13-24 minor, ``IGNORE`` otherwise."""
    k = music.majmin_index(label)
    return C.IGNORE if k is None else k


def read_lab(path: str | Path, text: str | None = None, drop_backward: bool = False) -> Annotation:
    """Read a ``.lab`` file: ``start end label`` per line (tabs or spaces), blank and ``#`` lines skipped.

    Every label is parsed; a garbage line, or a segment that ends before it starts, is a UserError naming
    the file and line. ``drop_backward`` drops such segments instead (the Billboard loader: the release
    has a few at the ends of songs, e.g. 0974). Overlaps of rounding size (~3e-13 s there) are kept.
    """
    import numpy as np

    p = Path(path)
    if text is None:
        if not p.exists():
            raise UserError(f"{p}: no such file")
        try:
            text = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError) as e:
            raise UserError(f"{p}: not a readable .lab text file ({type(e).__name__})") from None
    rows, labels = [], []
    dropped = 0
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split(None, 2)
        if len(parts) != 3:
            raise UserError(f"{p}:{n}: expected 'start end label', got {line.strip()[:60]!r}")
        try:
            start, end = float(parts[0]), float(parts[1])
        except ValueError:
            raise UserError(f"{p}:{n}: times are not numbers: {line.strip()[:60]!r}") from None
        label = parts[2].strip()
        if not (math.isfinite(start) and math.isfinite(end)) or start < 0:
            raise UserError(f"{p}:{n}: bad segment times {start} {end}")
        try:
            music.parse_chord(label)
        except music.ChordError as e:
            raise UserError(f"{p}:{n}: {e}") from None
        if end < start:
            if not drop_backward:
                raise UserError(f"{p}:{n}: segment ends before it starts ({start:g} > {end:g})")
            dropped += 1
            continue
        rows.append((start, end))
        labels.append(label)
    if not rows:
        raise UserError(f"{p}: no chord segments in the file")
    if dropped:
        from songkit.core.progress import log

        log(f"{p}: dropped {dropped} segment(s) that end before they start (a known quirk of the release)")
    return Annotation(np.asarray(rows, dtype=np.float64), labels)


def format_lab(intervals, labels) -> str:
    """``start\\tend\\tlabel`` lines (6 decimals: microseconds, below any frame grid)."""
    return "".join(f"{s:.6f}\t{e:.6f}\t{lab}\n" for (s, e), lab in zip(intervals, labels))


def frames_to_segments(classes, frame_seconds: float = C.FRAME_SECONDS, duration: float | None = None) -> Annotation:
    """Frame classes ``(T,)`` -> merged segments on the frame grid, contiguous, no overlaps.

    Frame t is centred at ``t * frame_seconds``; boundaries fall halfway between frames,
    the first segment starts at 0 and the last ends at ``duration`` (default: after the last frame).
    """
    import numpy as np

    classes = np.asarray(classes)
    T = len(classes)
    if T == 0:
        return Annotation(np.zeros((0, 2)), [])
    end_time = duration if duration is not None else T * frame_seconds
    change = np.nonzero(np.diff(classes))[0] + 1  # first frame of each new segment
    starts = np.concatenate([[0], change])
    bounds = np.concatenate([[0.0], (change - 0.5) * frame_seconds, [end_time]])
    bounds = np.clip(bounds, 0.0, end_time)
    intervals = np.stack([bounds[:-1], bounds[1:]], 1)
    labels = [C.VOCAB[int(classes[s])] for s in starts]
    keep = intervals[:, 1] > intervals[:, 0]
    return Annotation(intervals[keep], [lab for lab, k in zip(labels, keep) if k])


def last_start_at(intervals, times):
    """Index of the last segment whose start is <= each time (mir_eval's rule: at an overlap the later wins)."""
    import numpy as np

    suffix_min = np.minimum.accumulate(intervals[::-1, 0])[::-1]
    return np.searchsorted(suffix_min, times, side="right") - 1


def frame_labels(ann: Annotation, times) -> object:
    """Majmin class of the segment holding each time (``IGNORE`` where none does)."""
    import numpy as np

    cls = np.array([majmin_class(lab) for lab in ann.labels], dtype=np.int64)
    idx = last_start_at(ann.intervals, times)
    out = np.full(len(times), C.IGNORE, dtype=np.int64)
    ok = (idx >= 0) & (times < ann.intervals[np.clip(idx, 0, None), 1])
    out[ok] = cls[idx[ok]]
    return out
