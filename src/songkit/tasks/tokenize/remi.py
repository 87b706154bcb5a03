"""REMI (Huang and Yang 2020): a flat sequence of Bar, TimeSig, Position, Tempo, Chord, Track, Pitch,
Vel and Dur tokens (a Track token only when the track changes)."""

from __future__ import annotations

import numpy as np

from songkit.tasks.tokenize.constants import Vocabulary, velocity_values
from songkit.tasks.tokenize.quantise import DecodeError, Events, QScore, Timeline


def encode(q: QScore, vocab: Vocabulary) -> np.ndarray:
    """(T,) int64 REMI ids of a quantised piece."""
    ev, r = Events(q, vocab), vocab.remi_index
    n = q.notes
    out: list[int] = []
    BAR, pos0, trk0 = r["Bar"], r["Position_0"], r["Track_0"]
    vel_rank = np.zeros(128, np.int64)
    vel_rank[velocity_values(vocab.config)] = np.arange(len(velocity_values(vocab.config)))
    # Pitch Vel Dur of every note, flat (vectorised: the per-note loop was most of the encoding time)
    triples = np.stack([r["Pitch_0"] + n[:, 2], r[f"Vel_{velocity_values(vocab.config)[0]}"] + vel_rank[n[:, 3]],
                        r["Dur_1"] + n[:, 1] - 1], axis=1).ravel().tolist()  # (3N,)
    tracks = n[:, 4]
    # a Track token before a note whose track differs from the previous note's (the first: from track 0)
    changes = np.flatnonzero(tracks != np.concatenate([[0], tracks[:-1]])).tolist()
    track_list = tracks.tolist()
    c, n_changes = 0, len(changes)
    e, n_pos = 0, len(ev.P)
    for b, s in enumerate(ev.starts.tolist()):
        out.append(BAR)
        ts = ev.ts_at_bar.get(b)
        if ts:
            out.append(r[f"TimeSig_{ts[0]}/{ts[1]}"])
        while e < n_pos and ev.B[e] == b:
            p = ev.P[e]
            out.append(pos0 + p - s)
            if p in ev.tempo_at:
                out.append(r[f"Tempo_{ev.tempo_at[p]}"])
            if p in ev.chord_at:
                out.append(r[f"Chord_{ev.chord_at[p]}"])
            k, hi = ev.LO[e], ev.HI[e]
            while c < n_changes and changes[c] < hi:  # track changes inside this position's notes
                out += triples[3 * k:3 * changes[c]]
                k = changes[c]
                out.append(trk0 + track_list[k])
                c += 1
            out += triples[3 * k:3 * hi]
            e += 1
    return np.array(out, dtype=np.int64)


def decode(tokens: np.ndarray, vocab: Vocabulary) -> QScore:
    """(T,) REMI ids (checked against the vocabulary) back to a QScore."""
    remi = vocab.remi
    if len(tokens) and (tokens.min() < 0 or tokens.max() >= len(remi)):
        raise DecodeError(f"id out of range 0..{len(remi) - 1}")
    tl = Timeline(vocab)
    notes, tempos, chords = [], [], []
    cur, track, pending = None, 0, None  # pending: [pitch, velocity] waiting for its duration
    toks = [remi[t] for t in tokens.tolist()]
    for i, tok in enumerate(toks):
        try:
            kind = tok.split("_", 1)[0]
            if pending is not None and kind not in ("Vel", "Dur"):
                raise DecodeError(f"{tok} after a pitch without velocity and duration")
            if tok in ("<pad>", "BOS"):
                continue
            if tok == "EOS":
                break
            if tok == "Bar":
                nxt = toks[i + 1] if i + 1 < len(toks) else ""
                ts = tuple(int(x) for x in nxt[8:].split("/")) if nxt.startswith("TimeSig_") else None
                tl.advance(1, ts)
                cur = None
            elif kind == "TimeSig":
                if i == 0 or toks[i - 1] != "Bar":
                    raise DecodeError("a time signature not right after a bar")
            elif kind == "Position":
                cur = tl.position(int(tok[9:]))
            elif kind in ("Tempo", "Chord"):
                if cur is None:
                    raise DecodeError(f"{tok} before any position")
                (tempos if kind == "Tempo" else chords).append((cur, int(tok[6:]) if kind == "Tempo" else tok[6:]))
            elif kind == "Track":
                track = int(tok[6:])
            elif kind == "Pitch":
                if cur is None:
                    raise DecodeError("a pitch before any position")
                pending = [int(tok[6:])]
            elif kind == "Vel":
                if pending is None or len(pending) != 1:
                    raise DecodeError("a velocity not right after a pitch")
                pending.append(int(tok[4:]))
            elif kind == "Dur":
                if pending is None or len(pending) != 2:
                    raise DecodeError("a duration not right after pitch and velocity")
                notes.append((cur, int(tok[4:]), pending[0], pending[1], track))
                pending = None
            else:
                raise DecodeError(f"unexpected token {tok}")
        except DecodeError as e:
            raise DecodeError(f"token {i}: {e}") from None
    if pending is not None:
        raise DecodeError("the last pitch has no velocity and duration")
    return QScore(np.array(notes, dtype=np.int64).reshape(-1, 5), tempos, tl.timesigs, chords)

