"""Transposing ABC tunes as text (issue 16's key augmentation), the way abc2abc does it.

Every key field (``K:`` lines and inline ``[K:...]``) moves to the new key, spelled with the fewest
accidentals; every note moves by the same number of letter steps (so a note without an accidental
stays on the new key signature, and the bar's accidental carry still holds), and a note written with
an explicit accidental gets the accidental that makes its pitch exactly ``semitones`` higher. Chord
symbols (``"Am7"``, ``"D/F#"``) move with the notes; text annotations (``"^..."``), decorations
(``!trill!``, ``+fermata+``), comments and lyrics are left alone. One pass over the text: linear time.

A tune this cannot move exactly (a key it does not know, such as the bagpipe ``K:HP``, explicit key
accidentals ``K:D exp ^g``, or a note that would need a triple accidental) gives ``None``; the caller
keeps the original.
"""

from __future__ import annotations

import re

LETTERS = "CDEFGAB"
NATURAL = (0, 2, 4, 5, 7, 9, 11)  # semitone of each letter above C
# sharps of each tonic in major (C=0) and the mode's offset on the circle of fifths
MAJOR_FIFTHS = {"C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5, "F": -1}
MODES = {"": 0, "maj": 0, "ion": 0, "m": -3, "min": -3, "aeo": -3, "mix": -1, "dor": -2, "phr": -4, "lyd": 1,
         "loc": -5}
ACC_TEXT = {-2: "__", -1: "_", 0: "=", 1: "^", 2: "^^"}
ACC_VALUE = {"__": -2, "_": -1, "=": 0, "^": 1, "^^": 2}
ACCIDENTAL_SIGN = {"#": 1, "b": -1, "": 0}  # in key names and chord symbols

# body tokens: chord symbol / annotation in quotes, !decoration!, +decoration+, inline field, a note
_TOKEN = re.compile(r'"[^"\n]*"|![^!\n]*!|\+[^+\n]*\+|\[[A-Za-z]:[^\]\n]*\]|(\^\^|\^|__|_|=)?([A-Ga-g])([,\']*)')
_KEY = re.compile(r"^\s*([A-G])([#b]?)(\s*)([A-Za-z]*)(.*)$")
_CHORD_ROOT = re.compile(r"([A-G])([#b]?)")


def _fifths(letter: int, acc: int) -> int:
    """Sharps (negative: flats) of the major key on this tonic spelling."""
    return MAJOR_FIFTHS[LETTERS[letter]] + 7 * acc


def _spell(letter: int, acc: int) -> str:
    return LETTERS[letter] + ("#" * acc if acc > 0 else "b" * -acc)


def plan(key_value: str, semitones: int):
    """``(letter steps, new K: value)`` for moving a ``K:`` value by ``semitones``; None if not movable."""
    m = _KEY.match(key_value)
    if not m:
        return None
    tonic, acc_s, space, mode, rest = m.groups()
    if rest.startswith("="):  # "K:G clef=bass": no mode, "clef" starts a key=value
        mode, rest = "", space + mode + rest
    else:
        rest = rest if not space or mode else space + rest
        mode = space + mode if mode else mode
    mode_key = mode.strip().lower()
    mode_key = mode_key if mode_key in ("m", "") else mode_key[:3]
    if mode_key not in MODES or "exp" in rest or re.search(r"(^|\s)[_^=]", rest):
        return None  # unknown mode, or explicit key-signature accidentals
    letter = LETTERS.index(tonic)
    acc = ACCIDENTAL_SIGN[acc_s]
    target = (NATURAL[letter] + acc + semitones) % 12
    best = None
    for new_letter in range(7):
        new_acc = (target - NATURAL[new_letter] + 6) % 12 - 6
        if abs(new_acc) > 1:
            continue
        sharps = _fifths(new_letter, new_acc) + MODES[mode_key]
        if best is None or abs(sharps) < best[0]:
            best = (abs(sharps), new_letter, new_acc)
    if best is None or best[0] > 7:
        return None
    _, new_letter, new_acc = best
    steps = (new_letter - letter) % 7
    if semitones < 0 and steps:
        steps -= 7
    return steps, f"{_spell(new_letter, new_acc)}{mode}{rest}"


def _move_note(acc: str | None, letter: str, octave: str, steps: int, semitones: int) -> str | None:
    """One note moved ``steps`` letters; its explicit accidental (if any) re-spelled for the exact pitch."""
    low = letter.lower()
    idx = LETTERS.index(low.upper())
    octv = (1 if letter == low else 0) + octave.count("'") - octave.count(",")  # C = 0, c = 1
    diatonic = octv * 7 + idx + steps
    new_oct, new_idx = divmod(diatonic, 7)
    out_acc = ""
    if acc is not None:
        pitch = octv * 12 + NATURAL[idx] + ACC_VALUE[acc] + semitones
        value = pitch - (new_oct * 12 + NATURAL[new_idx])
        if value not in ACC_TEXT:
            return None
        out_acc = ACC_TEXT[value]
    name = LETTERS[new_idx]
    if new_oct >= 1:
        return out_acc + name.lower() + "'" * (new_oct - 1)
    return out_acc + name + "," * (-new_oct)


def _move_chord_symbol(text: str, steps: int, semitones: int) -> str | None:
    """``"Am7/G"``-style symbols: root and bass move; anything else in quotes is text and stays."""
    inner = text[1:-1]
    if not inner or inner[0] in "^_<>@":
        return text

    def move(m):
        idx = LETTERS.index(m.group(1))
        acc = ACCIDENTAL_SIGN[m.group(2)]
        new_idx = (idx + steps) % 7
        value = (NATURAL[idx] + acc + semitones - NATURAL[new_idx] + 6) % 12 - 6
        if abs(value) > 2:
            raise ValueError
        return LETTERS[new_idx] + ("#" * value if value > 0 else "b" * -value)

    head = _CHORD_ROOT.match(inner)
    if head is None:
        return text  # not a chord symbol ("Fine", "D.C.")
    try:
        slash = inner.find("/")
        moved = _CHORD_ROOT.sub(move, inner[:slash] if slash >= 0 else inner, count=1)
        if slash >= 0:
            moved += "/" + _CHORD_ROOT.sub(move, inner[slash + 1:], count=1)
    except ValueError:
        return None
    return f'"{moved}"'


def transpose_tune(text: str, semitones: int) -> str | None:
    """One tune's ABC text ``semitones`` higher (negative: lower); None when it cannot be moved exactly."""
    if semitones == 0:
        return text
    if not -12 < semitones < 12:
        raise ValueError(f"transpose by -11..11 semitones, not {semitones}")
    steps = None
    out = []
    for line in text.split("\n"):
        if len(line) >= 2 and line[1] == ":" and line[0].isalpha() and not line.startswith("|:"):
            if line[0] == "K":
                p = plan(line[2:], semitones)
                if p is None:
                    return None
                steps = p[0]
                line = "K:" + p[1]
            out.append(line)  # other header fields, lyrics (w:), and the like stay
            continue
        if steps is None:
            return None  # music before any key
        body = line.split("%", 1)
        moved = _move_body(body[0], steps, semitones)
        if moved is None:
            return None
        text, steps = moved  # an inline [K:] changes the steps for the rest of the tune
        out.append(text + ("%" + body[1] if len(body) > 1 else ""))
    return "\n".join(out)


def _move_body(line: str, steps: int, semitones: int) -> tuple[str, int] | None:
    """One music line moved, and the letter steps in force at its end (an inline key changes them)."""
    pieces, pos = [], 0
    for m in _TOKEN.finditer(line):
        pieces.append(line[pos:m.start()])
        token = m.group(0)
        if m.group(2):  # a note
            moved = _move_note(m.group(1), m.group(2), m.group(3), steps, semitones)
        elif token.startswith('"'):
            moved = _move_chord_symbol(token, steps, semitones)
        elif token.startswith("[K:"):
            p = plan(token[3:-1], semitones)
            moved = None if p is None else f"[K:{p[1]}]"
            if p is not None:
                steps = p[0]
        else:
            moved = token  # decorations and other inline fields
        if moved is None:
            return None
        pieces.append(moved)
        pos = m.end()
    pieces.append(line[pos:])
    return "".join(pieces), steps
