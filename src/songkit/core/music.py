"""Pitch names and Harte chord labels: the music vocabulary chords and tokenize share (no numpy, no torch).

A Harte label (Harte et al., 2005, in mir_eval's reading) is ``N``, ``X``, or
``root[:quality][(degree,...)][/bass]``. ``parse_chord`` reads it with a hand-written scanner
that looks at each character once, so hostile input cannot make it backtrack (a regular
expression over the degree list took minutes on ``C:maj(1,1,1,...,1x``). A parsed chord
carries mir_eval's encoding: root semitone, a 12-bit interval bitmap (bass included) and the bass
interval. The MIREX ``majmin`` reduction keeps a chord when the first 8 bits of its bitmap (root to
fifth) are exactly a major or minor triad, or it is ``N``; everything else is left out of the score.
"""

from __future__ import annotations

from dataclasses import dataclass

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")  # semitone from C
NATURALS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}

# Interval degree -> semitones above the root (9, 11, 13 fall outside the 12-bit map)
DEGREE_SEMITONES = {"1": 0, "2": 2, "3": 4, "4": 5, "5": 7, "6": 9, "7": 11, "8": 12, "9": 14, "10": 16,
                    "11": 17, "12": 19, "13": 21}
# Shorthand -> semitones in the 12-bit map (extensions above the octave dropped, as mir_eval does)
QUALITY_SEMITONES = {
    "maj": (0, 4, 7), "min": (0, 3, 7), "aug": (0, 4, 8), "dim": (0, 3, 6), "sus4": (0, 5, 7),
    "sus2": (0, 2, 7), "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11), "min7": (0, 3, 7, 10),
    "minmaj7": (0, 3, 7, 11), "maj6": (0, 4, 7, 9), "min6": (0, 3, 7, 9), "dim7": (0, 3, 6, 9),
    "hdim7": (0, 3, 6, 10), "maj9": (0, 4, 7, 11), "min9": (0, 3, 7, 10), "9": (0, 4, 7, 10),
    "min11": (0, 3, 7, 10), "11": (0, 4, 7, 10), "maj13": (0, 4, 7, 11), "min13": (0, 3, 7, 10),
    "13": (0, 4, 7, 10), "1": (0,), "5": (0, 7), "": (),
}
# Shorthands the grammar allows; aug7 and maj11 parse but have no bitmap (as before: an error)
GRAMMAR_QUALITIES = frozenset(QUALITY_SEMITONES) - {""} | {"aug7", "maj11"}

# The MIREX majmin vocabulary: 25 classes
NO_CHORD = 0
MAJMIN_VOCAB: tuple[str, ...] = ("N", *(f"{p}:maj" for p in PITCH_CLASSES), *(f"{p}:min" for p in PITCH_CLASSES))
MAJ8 = (1, 0, 0, 0, 1, 0, 0, 1)  # root, major third, fifth: the first 8 bits of the bitmap
MIN8 = (1, 0, 0, 1, 0, 0, 0, 1)


class ChordError(ValueError):
    """A label that is not valid Harte syntax (or a quality songkit cannot encode)."""


@dataclass(frozen=True)
class Chord:
    """A parsed label: root semitone from C (-1 for N/X), 12-bit bitmap (None for X), bass semitone
    above the root (-1 for N/X); ``quality`` the shorthand as written ("" when none)."""

    root: int
    bitmap: tuple | None
    bass: int
    quality: str = ""


def pitch_class(name: str) -> int:
    """``'C'``, ``'Bb'``, ``'F##'`` -> semitone above C (0-11). Raises ChordError on anything else."""
    if not name or name[0] not in NATURALS or not _accidentals_ok(name[1:]):
        raise ChordError(f"not a pitch name: {name[:40]!r}")
    return (NATURALS[name[0]] + name.count("#") - name.count("b")) % 12


def _accidentals_ok(acc: str) -> bool:
    """Only sharps or only flats (``b*|#*``)."""
    return acc == "#" * len(acc) or acc == "b" * len(acc)


def _degree(text: str, allow_omit: bool) -> tuple[int, int]:
    """A degree (``3``, ``b7``, ``#11``, ``*5``) -> (semitones above the root, +1 add / -1 omit)."""
    sign = 1
    if allow_omit and text.startswith("*"):
        sign, text = -1, text[1:]
    i = 0
    while i < len(text) and text[i] in "#b":
        i += 1
    acc, number = text[:i], text[i:]
    if not _accidentals_ok(acc) or number not in DEGREE_SEMITONES:
        raise ValueError(text)
    return DEGREE_SEMITONES[number] + acc.count("#") - acc.count("b"), sign


def parse_chord(label: str) -> Chord:
    """Parse a Harte label (``C:maj7``, ``Bb:7/3``, ``E:min(9)``, ``A:(1,3)``, ``N``, ``X``).

    Like mir_eval: the bass interval is added to the bitmap; extensions above the octave
    (9, 11, 13) are dropped from the 12-bit map; ``*d`` removes a degree. Time linear in the label.
    """
    if label == "N":
        return Chord(-1, (0,) * 12, -1)
    if label == "X":
        return Chord(-1, None, -1)

    def bad(why: str = "") -> ChordError:
        return ChordError(f"not a Harte chord label: {label[:60]!r}{why}")

    n = len(label)
    if n == 0 or label[0] not in NATURALS:
        raise bad()
    i = 1
    while i < n and label[i] in "#b":
        i += 1
    if not _accidentals_ok(label[1:i]):
        raise bad()
    root = pitch_class(label[:i])
    quality, degrees, bass = None, None, None
    if i < n and label[i] == ":":
        j = i + 1
        while j < n and label[j] not in "(/":
            j += 1
        if label[i + 1:j]:
            quality = label[i + 1:j]
            if quality not in GRAMMAR_QUALITIES:
                raise bad()
        i = j
        if i < n and label[i] == "(":
            close = label.find(")", i)
            if close < 0:
                raise bad()
            degrees = label[i + 1:close].split(",")
            i = close + 1
    if i < n and label[i] == "/":
        bass, i = label[i + 1:], n
    if i != n:
        raise bad()
    try:
        changes = [_degree(d, allow_omit=True) for d in degrees or ()]
        bass_semitones = _degree(bass, allow_omit=False)[0] % 12 if bass is not None else 0
    except ValueError:
        raise bad() from None
    if quality is None:
        quality = "" if degrees else "maj"
    if quality not in QUALITY_SEMITONES:
        raise ChordError(f"unsupported chord quality in {label[:60]!r}")
    bits = [0] * 12
    for s in QUALITY_SEMITONES[quality]:
        bits[s] = 1
    bits[0] = 1
    for s, sign in changes:
        if 0 <= s < 12:
            bits[s] += sign
    bits = [1 if b > 0 else 0 for b in bits]
    bits[bass_semitones] = 1
    return Chord(root, tuple(bits), bass_semitones, quality)


def majmin_index(label: str) -> int | None:
    """MIREX majmin class of a label: 0 for N, 1-12 major on C..B, 13-24 minor; None when the
    reduction leaves it out of the score (X, dim, aug, sus, power chords, a second in the bass...)."""
    return chord_majmin_index(parse_chord(label))


def chord_majmin_index(chord: Chord) -> int | None:
    """``majmin_index`` of an already parsed chord."""
    if chord.bitmap is None:
        return None
    if chord.root < 0:
        return NO_CHORD
    head = chord.bitmap[:8]
    if head == MAJ8:
        return 1 + chord.root
    if head == MIN8:
        return 13 + chord.root
    return None


def majmin_label(label: str) -> str | None:
    """The label reduced to the 25-class vocabulary (``'Db:7/3'`` -> ``'C#:maj'``), None when unscored."""
    k = majmin_index(label)
    return None if k is None else MAJMIN_VOCAB[k]


def root_name(label: str) -> str | None:
    """The root of a label as a pitch name (``'Bb:min7'`` -> ``'A#'``); None for N and X."""
    c = parse_chord(label)
    return None if c.root < 0 else PITCH_CLASSES[c.root]
