"""Harte chord labels, `.lab` files and the MIREX chord metrics (numpy only).

Parsing and reduction follow the Harte et al. (2005) grammar and mir_eval's encoding:
a label becomes (root semitone, 12-bit interval bitmap including the bass, bass semitone).
The MIREX ``majmin`` rule then keeps a reference chord only if the first 8 bits of its
bitmap (root to fifth) are exactly a major or minor triad, or it is ``N``; everything else
(``X``, dim, aug, sus, power chords, a second in the bass...) is ignored in the score.
``root`` compares roots and ignores only ``X``. WCSR is duration-weighted over the
union of reference and estimate boundaries, as ``mir_eval.chord.evaluate`` computes it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from songkit.core.errors import UserError
from songkit.tasks.chords import spec

_PITCH = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_DEGREE = {"1": 0, "2": 2, "3": 4, "4": 5, "5": 7, "6": 9, "7": 11, "8": 12, "9": 14, "10": 16, "11": 17,
           "12": 19, "13": 21}
_Q = {
    "maj": (0, 4, 7), "min": (0, 3, 7), "aug": (0, 4, 8), "dim": (0, 3, 6), "sus4": (0, 5, 7),
    "sus2": (0, 2, 7), "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11), "min7": (0, 3, 7, 10),
    "minmaj7": (0, 3, 7, 11), "maj6": (0, 4, 7, 9), "min6": (0, 3, 7, 9), "dim7": (0, 3, 6, 9),
    "hdim7": (0, 3, 6, 10), "maj9": (0, 4, 7, 11), "min9": (0, 3, 7, 10), "9": (0, 4, 7, 10),
    "min11": (0, 3, 7, 10), "11": (0, 4, 7, 10), "maj13": (0, 4, 7, 11), "min13": (0, 3, 7, 10),
    "13": (0, 4, 7, 10), "1": (0,), "5": (0, 7), "": (),
}
# The Harte grammar (mir_eval's CHORD_RE): root[:quality][(degrees)][/bass], N, X
_DEG = r"\*?(?:b*|#*)(?:1[0-3]?|[1-9])"
_CHORD_RE = re.compile(
    r"^(?:(N|X)|([A-G](?:b*|#*))(?::(maj|min|dim|aug|1|5|sus2|sus4|maj6|min6|7|maj7|min7|dim7|hdim7|minmaj7"
    r"|aug7|9|maj9|min9|11|maj11|min11|13|maj13|min13)?(?:\((" + _DEG + r"(?:," + _DEG + r")*)\))?)?"
    r"(?:/((?:b*|#*)(?:1[0-3]?|[1-9])))?)$"
)


class ChordError(ValueError):
    """A label that is not valid Harte syntax."""


@dataclass(frozen=True)
class Chord:
    """A parsed label: root semitone from C (-1 for N/X), 12-bit bitmap (None for X), bass semitone."""

    root: int
    bitmap: tuple | None
    bass: int


def _degree_semitone(degree: str) -> int:
    d = degree.lstrip("#b")
    offset = degree.count("#") - degree.count("b")
    return _DEGREE[d] + offset


def parse(label: str) -> Chord:
    """Parse a Harte label (``C:maj7``, ``Bb:7/3``, ``E:min(9)``, ``A:(1,3)``, ``N``, ``X``).

    Like mir_eval: the bass interval is added to the bitmap; extensions above the octave
    (9, 11, 13) are dropped from the 12-bit map; ``*d`` removes a degree.
    """
    m = _CHORD_RE.match(label)
    if not m:
        raise ChordError(f"not a Harte chord label: {label!r}")
    nx, root, quality, degrees, bass = m.groups()
    if nx == "N":
        return Chord(-1, (0,) * 12, -1)
    if nx == "X":
        return Chord(-1, None, -1)
    has_colon = ":" in label
    if degrees and "*" in degrees and not has_colon:
        raise ChordError(f"not a Harte chord label: {label!r} (omissions need a quality)")
    if quality is None:
        quality = "" if degrees else "maj"
    if quality not in _Q:
        raise ChordError(f"unsupported chord quality in {label!r}")
    r = (_PITCH[root[0]] + root.count("#") - root.count("b")) % 12
    bits = [0] * 12
    for i in _Q[quality]:
        bits[i] = 1
    bits[0] = 1
    if degrees:
        for d in degrees.split(","):
            d = d.strip()
            sign = -1 if d.startswith("*") else 1
            s = _degree_semitone(d.lstrip("*"))
            if 0 <= s < 12:
                bits[s] += sign
    bits = [1 if b > 0 else 0 for b in bits]
    b = _degree_semitone(bass) % 12 if bass else 0
    bits[b] = 1
    return Chord(r, tuple(bits), b)


_MAJ8 = (1, 0, 0, 0, 1, 0, 0, 1)
_MIN8 = (1, 0, 0, 1, 0, 0, 0, 1)


def majmin_class(label: str) -> int:
    """The MIREX majmin class of a label: 0 N, 1-12 major, 13-24 minor, ``spec.IGNORE`` otherwise."""
    c = parse(label)
    if c.bitmap is None:
        return spec.IGNORE
    if c.root < 0:
        return spec.NO_CHORD
    head = c.bitmap[:8]
    if head == _MAJ8:
        return spec.class_index(c.root, minor=False)
    if head == _MIN8:
        return spec.class_index(c.root, minor=True)
    return spec.IGNORE


# ----------------------------------------------------------------------------- .lab files
@dataclass
class Annotation:
    """Labelled segments: ``intervals`` (n, 2) float64 seconds, ``labels`` list of Harte strings."""

    intervals: object
    labels: list


def read_lab(path: str | Path, text: str | None = None) -> Annotation:
    """Read a ``.lab`` file: ``start end label`` per line (tabs or spaces), blank lines skipped.

    Every label is parsed; a garbage line is a UserError naming the file and line.
    Overlaps of rounding size (the Billboard release has ~3e-13 s) are kept as they are.
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
            parse(label)
        except ChordError as e:
            raise UserError(f"{p}:{n}: {e}") from None
        if end < start:
            # the real release has a few of these at the ends of songs (e.g. Billboard 0974):
            # well-formed lines with backward times; they cover no time, so they are dropped
            dropped += 1
            continue
        rows.append((start, end))
        labels.append(label)
    if not rows:
        raise UserError(f"{p}: no chord segments in the file")
    if dropped:
        from songkit.core.progress import log

        log(f"{p}: dropped {dropped} segment(s) that end before they start")
    return Annotation(np.asarray(rows, dtype=np.float64), labels)


def format_lab(intervals, labels) -> str:
    """``start\\tend\\tlabel`` lines (6 decimals: microseconds, below any frame grid)."""
    return "".join(f"{s:.6f}\t{e:.6f}\t{lab}\n" for (s, e), lab in zip(intervals, labels))


def frames_to_segments(classes, frame_seconds: float, duration: float | None = None):
    """Frame classes ``(T,)`` -> merged segments on the frame grid, contiguous, no overlaps.

    Frame t is centred at ``t * frame_seconds``; boundaries fall halfway between frames,
    the first segment starts at 0 and the last ends at ``duration`` (default: after the last frame).
    """
    import numpy as np

    classes = np.asarray(classes)
    T = len(classes)
    if T == 0:
        return np.zeros((0, 2)), []
    end_time = duration if duration is not None else T * frame_seconds
    change = np.nonzero(np.diff(classes))[0] + 1  # first frame of each new segment
    starts = np.concatenate([[0], change])
    bounds = np.concatenate([[0.0], (change - 0.5) * frame_seconds, [end_time]])
    bounds = np.clip(bounds, 0.0, end_time)
    intervals = np.stack([bounds[:-1], bounds[1:]], 1)
    labels = [spec.VOCAB[int(classes[s])] for s in starts]
    keep = intervals[:, 1] > intervals[:, 0]
    return intervals[keep], [lab for lab, k in zip(labels, keep) if k]


def frame_labels(ann: Annotation, times) -> object:
    """Majmin class of the segment holding each time (``spec.IGNORE`` where none does).

    With overlapping segments the later one wins (the start of the next chord).
    """
    import numpy as np

    cls = np.array([majmin_class(lab) for lab in ann.labels], dtype=np.int64)
    starts = ann.intervals[:, 0]
    ends = ann.intervals[:, 1]
    suffix_min = np.minimum.accumulate(starts[::-1])[::-1]
    idx = np.searchsorted(suffix_min, times, side="right") - 1
    out = np.full(len(times), spec.IGNORE, dtype=np.int64)
    ok = (idx >= 0) & (times < ends[np.clip(idx, 0, None)])
    out[ok] = cls[idx[ok]]
    return out


# ----------------------------------------------------------------------------- metrics
def _adjust(intervals, labels, t_min, t_max, fill="N"):
    """mir_eval.util.adjust_intervals: crop/pad the estimate to span [t_min, t_max]."""
    import numpy as np

    labels = list(labels)
    first = np.argwhere(intervals[:, 1] >= t_min)
    if len(first):
        labels = labels[first[0, 0]:]
        intervals = intervals[first[0, 0]:]
    intervals = np.maximum(t_min, intervals)
    if intervals.min() > t_min:
        intervals = np.vstack(([t_min, intervals.min()], intervals))
        labels.insert(0, fill)
    last = np.argwhere(intervals[:, 0] > t_max)
    if len(last):
        labels = labels[: last[0, 0]]
        intervals = intervals[: last[0, 0]]
    intervals = np.minimum(t_max, intervals)
    if intervals.max() < t_max:
        intervals = np.vstack((intervals, [intervals.max(), t_max]))
        labels.append(fill)
    return intervals, labels


def _label_at(intervals, t0):
    """Index of the last segment whose start is <= t0 (mir_eval's merge rule)."""
    import numpy as np

    suffix_min = np.minimum.accumulate(intervals[::-1, 0])[::-1]
    return np.searchsorted(suffix_min, t0, side="right") - 1


def _encode_many(labels):
    import numpy as np

    cache: dict[str, Chord] = {}
    roots = np.empty(len(labels), dtype=np.int64)
    bits = np.empty((len(labels), 12), dtype=np.int64)
    for i, lab in enumerate(labels):
        c = cache.get(lab) or cache.setdefault(lab, parse(lab))
        roots[i] = c.root
        bits[i] = c.bitmap if c.bitmap is not None else (-1,) * 12
    return roots, bits


def compare(ref_labels, est_labels) -> dict:
    """Per-segment comparison scores (1, 0, or -1 for ignored) for ``root`` and ``majmin``."""
    import numpy as np

    rr, rb = _encode_many(ref_labels)
    er, eb = _encode_many(est_labels)
    root = (rr == er).astype(np.float64)
    root[np.any(rb < 0, axis=1)] = -1
    maj = np.all(rb[:, :8] == np.array(_MAJ8), axis=1)
    mnr = np.all(rb[:, :8] == np.array(_MIN8), axis=1)
    none = (rr < 0) & np.all(rb == 0, axis=1)
    majmin = ((rr == er) & np.all(rb[:, :8] == eb[:, :8], axis=1)).astype(np.float64)
    majmin[~(maj | mnr | none)] = -1
    return {"root": root, "majmin": majmin}


def score_song(ref: Annotation, est: Annotation) -> dict:
    """Duration-weighted scores of one song, as ``mir_eval.chord.evaluate`` computes them.

    Returns ``{"root": r, "majmin": m, "root_seconds": w_r, "majmin_seconds": w_m}`` where
    ``*_seconds`` is the scored (non-ignored) duration, the weight for a dataset-level WCSR.
    """
    import numpy as np

    t_min, t_max = ref.intervals.min(), ref.intervals.max()
    est_iv, est_lab = _adjust(est.intervals, est.labels, t_min, t_max)
    bounds = np.unique(np.concatenate([ref.intervals.ravel(), est_iv.ravel()]))
    t0 = bounds[:-1]
    dur = np.diff(bounds)
    r_idx = _label_at(ref.intervals, t0)
    e_idx = _label_at(est_iv, t0)
    ref_l = [ref.labels[i] for i in r_idx]
    est_l = [est_lab[i] for i in e_idx]
    out = {}
    for name, comp in compare(ref_l, est_l).items():
        valid = comp >= 0
        w = float(dur[valid].sum())
        out[name] = float((comp[valid] * dur[valid]).sum() / w) if w > 0 else 0.0
        out[f"{name}_seconds"] = w
    return out


def wcsr(song_scores: list[dict], metric: str) -> float:
    """Weighted chord symbol recall over songs: each song weighted by its scored duration."""
    num = sum(s[metric] * s[f"{metric}_seconds"] for s in song_scores)
    den = sum(s[f"{metric}_seconds"] for s in song_scores)
    return num / den if den > 0 else float("nan")
