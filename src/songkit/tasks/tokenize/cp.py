"""CP (compound word, Hsiao et al. 2021): a Metrical group per bar and per position, a Note group per note.

A group holds one id per family (``GROUP_FAMILIES["cp"]``): type, beat, tempo, timesig, chord,
track, pitch, duration, velocity; a family the group does not use holds 0 (<ign>).
"""

from __future__ import annotations

import numpy as np

from songkit.tasks.tokenize.constants import Vocabulary
from songkit.tasks.tokenize.quantise import (
    DecodeError,
    Events,
    QScore,
    decode_groups,
    note_ids,
    ts_id,
)


def encode(q: QScore, vocab: Vocabulary) -> np.ndarray:
    """(G, 9) int64 CP groups of a quantised piece."""
    ev, idx = Events(q, vocab), vocab.index
    notes = note_ids(q, vocab)
    out = np.zeros((len(ev.starts) + len(ev.positions) + len(notes), 9), np.int64)
    METRICAL, NOTE, BAR = idx["type"]["Metrical"], idx["type"]["Note"], idx["beat"]["Bar"]
    g, e, n_pos = 0, 0, len(ev.P)
    for b, s in enumerate(ev.starts.tolist()):
        out[g, 0], out[g, 1], out[g, 3] = METRICAL, BAR, ts_id(vocab, ev.ts_at_bar.get(b))
        g += 1
        while e < n_pos and ev.B[e] == b:
            p = ev.P[e]
            t, c = ev.tempo_at.get(p), ev.chord_at.get(p)
            out[g, :5] = (METRICAL, 2 + p - s, idx["tempo"][f"Tempo_{t}"] if t is not None else 1, 0,
                          idx["chord"][f"Chord_{c}"] if c is not None else 1)
            g += 1
            lo, hi = ev.LO[e], ev.HI[e]
            out[g:g + hi - lo, 0] = NOTE
            out[g:g + hi - lo, 5:] = notes[lo:hi]
            g += hi - lo
            e += 1
    return out[:g]



def _place(lead, g, ts, tl, cur):
    """A Metrical group moves to a bar (beat 1) or a position; a Note group sounds at the current one."""
    if lead != "Metrical":
        return cur, False, True
    beat = g[1]
    if beat == 1:  # Bar
        tl.advance(1, ts)
        return None, False, False
    if beat == 0:
        raise DecodeError("a metrical group with no bar or position")
    if ts is not None:
        raise DecodeError("a time signature on a position (only on a bar)")
    return tl.position(beat - 2), True, False


def decode(tokens: np.ndarray, vocab: Vocabulary) -> QScore:
    """(G, 9) CP groups (ids checked against the vocabulary) back to a QScore."""
    return decode_groups(tokens, vocab, "type", _place)
