"""NB (note-based): one group per note, its bar flag (Same, Bar+k) and position in the same group.

Groups with no note carry tempo or chord changes at a position without onsets, and bar jumps
longer than ``max_bar_skip`` or to a bar with a new time signature.
"""

from __future__ import annotations

import numpy as np

from songkit.tasks.tokenize import quantise as qz
from songkit.tasks.tokenize.constants import Vocabulary


def encode(q: qz.QScore, vocab: Vocabulary) -> np.ndarray:
    """(G, 9) int64 NB groups of a quantised piece."""
    ev, idx, cfg = qz.Events(q, vocab), vocab.index, vocab.config
    notes = qz.note_ids(q, vocab)
    SAME = idx["bar"]["Same"]
    rows: list = []
    ts_bars = sorted(ev.ts_at_bar)
    prev = -1
    starts = ev.starts.tolist()
    note_rows = notes.tolist()
    for e, p in enumerate(ev.P):
        b = ev.B[e]
        # stops before bar b: a bar with a new time signature, or a gap longer than max_bar_skip
        while True:
            nxt = next((k for k in ts_bars if prev < k < b), None)
            if nxt is None and b - prev > cfg.max_bar_skip or nxt is not None and nxt - prev > cfg.max_bar_skip:
                nxt = prev + cfg.max_bar_skip
            if nxt is None:
                break
            rows.append((SAME + nxt - prev, 2, 1, qz.ts_id(vocab, ev.ts_at_bar.get(nxt)), 1, 0, 0, 0, 0))
            prev = nxt
        flag = SAME if b == prev else SAME + b - prev
        ts = qz.ts_id(vocab, ev.ts_at_bar.get(b)) if b != prev else 1
        beat = 2 + p - starts[b]
        t, c = ev.tempo_at.get(p), ev.chord_at.get(p)
        tid = idx["tempo"][f"Tempo_{t}"] if t is not None else 1
        cid = idx["chord"][f"Chord_{c}"] if c is not None else 1
        lo, hi = ev.LO[e], ev.HI[e]
        if hi == lo:
            rows.append((flag, beat, tid, ts, cid, 0, 0, 0, 0))
        else:
            rows.append((flag, beat, tid, ts, cid, *note_rows[lo]))
            for k in range(lo + 1, hi):
                rows.append((SAME, beat, 1, 1, 1, *note_rows[k]))
        prev = b
    return np.array(rows, dtype=np.int64).reshape(-1, 9)



def _place(lead, g, ts, tl, cur):
    """The bar flag moves the timeline (Same: this bar; Bar+k: k bars on), then the position."""
    if lead == "Same":
        if ts is not None:
            raise qz.DecodeError("a time signature change inside a bar")
    else:
        tl.advance(int(lead[4:]), ts)
    if g[1] < 2:
        raise qz.DecodeError("a group with no position")
    is_note = g[6] != 0
    if not is_note and max(g[5], g[7], g[8]) > 0:
        raise qz.DecodeError("note values in a group with no pitch")
    return tl.position(g[1] - 2), True, is_note


def decode(tokens: np.ndarray, vocab: Vocabulary) -> qz.QScore:
    """(G, 9) NB groups (ids checked against the vocabulary) back to a QScore."""
    return qz.decode_groups(tokens, vocab, "bar", _place)
