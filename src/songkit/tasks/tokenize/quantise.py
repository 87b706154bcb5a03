"""Quantisation shared by the three encodings (cp.py, nb.py, remi.py), and what their decoders share.

"On the grid" (see docs/tokenize.md): an onset is rounded to the nearest grid step
(``tpq / grid`` ticks), a duration to the nearest multiple of ``tpq / duration_res``
ticks, clipped to [1, duration_res * max_duration] steps; a velocity to the nearest bin
value; a tempo to the nearest tempo bin; a time signature change to the grid, then to the
first bar line at or after it. :func:`quantise` does exactly this, and the round trip
promise is ``quantise(read(decode(encode(x)))) == quantise(x)`` for every file.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from songkit.core.errors import UserError
from songkit.tasks.tokenize.constants import (
    IGN,
    Vocabulary,
    bar_steps,
    tempo_values,
    time_signatures,
    velocity_values,
)
from songkit.tasks.tokenize.readers import Music


@dataclass
class QScore:
    """A quantised piece: every time in grid steps, every value a vocabulary value."""

    notes: np.ndarray  # (N, 5) int64: position, duration steps, pitch, velocity, track; sorted
    tempos: list[tuple[int, int]]  # (position, bpm), the first at 0, no repeats
    timesigs: list[tuple[int, int, int]]  # (position of a bar line, num, den), the first at 0
    chords: list[tuple[int, str]] = field(default_factory=list)  # (position, label), no repeats
    tracks: list[dict] = field(default_factory=list)
    tpq: int = 480  # the source's ticks per quarter, used again when decoding to MIDI

    def bars(self, grid: int, end: int | None = None) -> tuple[np.ndarray, list]:
        """Bar line positions up to ``end`` (default: the last event) and each bar's (num, den)."""
        if end is None:
            end = last_event(self)
        starts, sigs = [], []
        for i, (pos, num, den) in enumerate(self.timesigs):
            stop = self.timesigs[i + 1][0] if i + 1 < len(self.timesigs) else end + 1
            length = bar_steps(num, den, grid)
            s = np.arange(pos, max(stop, pos + 1), length)
            if i + 1 == len(self.timesigs):
                s = s[s <= end]
            starts.append(s)
            sigs += [(num, den)] * len(s)
        return np.concatenate(starts).astype(np.int64), sigs


def last_event(q: QScore) -> int:
    """The last position that holds a note onset, a tempo change or a chord change."""
    end = int(q.notes[:, 0].max()) if len(q.notes) else 0
    if q.tempos:
        end = max(end, q.tempos[-1][0])
    if q.chords:
        end = max(end, q.chords[-1][0])
    return end


def _nearest(values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The nearest entry of sorted ``values`` for each ``x`` (ties go to the lower value)."""
    i = np.clip(np.searchsorted(values, x), 1, len(values) - 1)
    lo, hi = values[i - 1], values[i]
    return np.where(x - lo <= hi - x, lo, hi)


def _round_div(a: np.ndarray, num: int, den: int) -> np.ndarray:
    """round(a * num / den) in integers, halves up."""
    return (a * num * 2 + den) // (2 * den)


def quantise(music: Music, vocab: Vocabulary) -> QScore:
    """Put a piece on the grid and into the vocabulary (see the module docstring)."""
    cfg, src, tpq = vocab.config, music.source, music.tpq
    notes = music.notes
    if len(notes) and notes[:, 0].min() < 0:
        raise UserError(f"{src}: a note starts before time 0")
    if len(notes) and notes[:, 4].max() >= cfg.max_tracks:
        raise UserError(f"{src}: {int(notes[:, 4].max()) + 1} tracks with notes; the vocabulary allows "
                        f"{cfg.max_tracks} (choose some with --track)")
    pos = _round_div(notes[:, 0], cfg.grid, tpq)
    # zero-length (and very short) notes get the shortest duration: documented repair
    dur = np.clip(_round_div(notes[:, 1], cfg.duration_res, tpq), 1, cfg.duration_res * cfg.max_duration)
    vels = np.array(velocity_values(cfg), dtype=np.int64)
    vel = _nearest(vels, notes[:, 3])
    q = np.stack([pos, dur, notes[:, 2], vel, notes[:, 4]], axis=1).astype(np.int64)
    q = q[np.lexsort((q[:, 3], q[:, 1], q[:, 2], q[:, 4], q[:, 0]))]
    q = _cut_nested(q, cfg)

    # tempos: MIDI's 120 bpm holds until the first tempo event
    tvals = np.array(tempo_values(cfg), dtype=np.int64)
    raw = sorted(music.tempos)
    if not raw or raw[0][0] > 0:
        raw = [(0, 120.0)] + raw
    tempos: list[tuple[int, int]] = []
    tpos = _round_div(np.array([t for t, _ in raw], dtype=np.int64), cfg.grid, tpq)
    tbpm = _nearest(tvals.astype(np.float64), np.array([b for _, b in raw], dtype=np.float64)).astype(np.int64)
    for p, b in zip(tpos.tolist(), tbpm.tolist()):
        if tempos and tempos[-1][0] == p:
            tempos.pop()  # several changes on one grid step: the last one holds
        if not tempos or tempos[-1][1] != b:
            tempos.append((p, b))

    # time signatures: on bar lines only; MIDI's 4/4 holds until the first one
    allowed = _allowed_ts(cfg)
    raw_ts = sorted(music.timesigs)
    if not raw_ts or raw_ts[0][0] > 0:
        raw_ts = [(0, 4, 4)] + raw_ts
    sigs: list[tuple[int, int, int]] = []
    for tick, num, den in raw_ts:
        if (num, den) not in allowed:
            raise UserError(f"{src}: time signature {num}/{den} does not fit the grid "
                            f"(grid {cfg.grid} per quarter, bars up to {cfg.max_bar_quarters} quarters)")
        p = int(_round_div(np.int64(tick), cfg.grid, tpq))
        if sigs:
            p0, n0, d0 = sigs[-1]
            length = bar_steps(n0, d0, cfg.grid)
            p = p0 + -(-(p - p0) // length) * length  # first bar line at or after p
            if p == p0:
                sigs.pop()
        if not sigs or sigs[-1][1:] != (num, den):
            sigs.append((p, num, den))
    qs = QScore(q, tempos, sigs, [], list(music.tracks), tpq)
    end = last_event(qs)
    qs.timesigs = [s for s in sigs if s[0] <= end] or sigs[:1]

    note_end = int(q[:, 0].max()) if len(q) else 0
    if music.chords is None:
        from songkit.tasks.tokenize.recognise import recognise_chords

        qs.chords = [(p, c) for p, c in recognise_chords(qs, cfg.grid, cfg.duration_res) if p <= note_end]
    else:
        chords: list[tuple[int, str]] = []
        cpos = _round_div(np.array([t for t, _ in music.chords], dtype=np.int64), cfg.grid, tpq)
        for p, lab in zip(cpos.tolist(), [c for _, c in music.chords]):
            if p > note_end or p < 0:
                continue
            if chords and chords[-1][0] == p:
                chords.pop()
            if not chords or chords[-1][1] != lab:
                chords.append((p, lab))
        qs.chords = chords
    return qs


def _cut_nested(q: np.ndarray, cfg) -> np.ndarray:
    """Cut a note that would outlast a later note of the same pitch and track (documented repair).

    MIDI pairs note-offs with note-ons first in, first out, so nested notes of one pitch
    cannot survive a MIDI file; the earlier note is cut to end with the later one.
    """
    if len(q) < 2:
        return q
    ratio = cfg.grid  # duration steps per grid step = duration_res / grid
    key = q[:, 4] * 128 + q[:, 2]
    order = np.lexsort((q[:, 0], key))
    k, p, d = key[order], q[order, 0], q[order, 1]
    end = p * cfg.duration_res + d * ratio  # in units of 1/(grid*duration_res) quarter
    same = k[1:] == k[:-1]
    nested = same & (end[1:] < end[:-1]) & (p[1:] > p[:-1])
    if not nested.any():
        return q
    q = q.copy()
    for i in np.nonzero(nested)[0]:  # rare: loop is fine
        a, b = order[i], order[i + 1]
        # new duration: end exactly where the later one ends (in duration steps)
        new = (q[b, 0] - q[a, 0]) * cfg.duration_res // cfg.grid + q[b, 1]
        q[a, 1] = max(1, min(int(new), q[a, 1]))
    return q


@functools.lru_cache(maxsize=8)
def _allowed_ts(cfg) -> frozenset:
    """The (num, den) pairs of the vocabulary's time signatures."""
    return frozenset(time_signatures(cfg))


# ---------------------------------------------------------------------------- shared by the encoders


class Events:
    """Positions that hold something, with the notes and changes at each (shared by the encoders)."""

    def __init__(self, q: QScore, vocab: Vocabulary):
        cfg = vocab.config
        self.starts, self.sigs = q.bars(cfg.grid)
        self.ts_at_bar = {}
        bar_of_pos = {int(s): i for i, s in enumerate(self.starts.tolist())}
        for p, n, d in q.timesigs:
            self.ts_at_bar[bar_of_pos[p]] = (n, d)
        self.tempo_at = dict(q.tempos)
        self.chord_at = dict(q.chords)
        pos = q.notes[:, 0]
        self.positions = np.unique(np.concatenate([pos, np.array(list(self.tempo_at) + list(self.chord_at),
                                                                  dtype=np.int64)]))
        self.bar_of = np.searchsorted(self.starts, self.positions, side="right") - 1  # (P,)
        # note index range at each position
        self.lo = np.searchsorted(pos, self.positions, side="left")
        self.hi = np.searchsorted(pos, self.positions, side="right")
        # plain lists for the per-position loops (numpy scalar indexing is slow)
        self.P, self.B = self.positions.tolist(), self.bar_of.tolist()
        self.LO, self.HI = self.lo.tolist(), self.hi.tolist()


def note_ids(q: QScore, vocab: Vocabulary) -> np.ndarray:
    """(N, 4) ids of track, pitch, duration, velocity for every note."""
    idx = vocab.index
    vel_ids = {int(t[4:]): i for t, i in idx["velocity"].items() if t.startswith("Vel_")}
    vel_lut = np.zeros(128, np.int64)
    for v, i in vel_ids.items():
        vel_lut[v] = i
    n = q.notes
    # family lists are laid out [<ign>, value 0 or 1, ...]: ids are value offsets
    return np.stack([n[:, 4] + 1, n[:, 2] + 1, n[:, 1], vel_lut[n[:, 3]]], axis=1)


def ts_id(vocab, ts):
    return vocab.index["timesig"][f"TS_{ts[0]}/{ts[1]}"] if ts else 1  # 1 = CONTI


# ---------------------------------------------------------------------------- shared by the decoders


class DecodeError(ValueError):
    """Tokens that describe an impossible event; the message says which token and why."""


class Timeline:
    """Bar state shared by the decoders."""

    def __init__(self, vocab: Vocabulary):
        self.grid = vocab.config.grid
        self.bar, self.start, self.length = -1, 0, None
        self.timesigs: list[tuple[int, int, int]] = []

    def advance(self, n: int, ts: tuple[int, int] | None):
        for _ in range(n):
            if self.bar < 0:
                self.bar, self.start = 0, 0
            else:
                if self.length is None:
                    self.set_ts((4, 4))
                self.bar += 1
                self.start += self.length
        if ts is not None:
            self.set_ts(ts)
        elif self.length is None:
            self.set_ts((4, 4))

    def set_ts(self, ts):
        if self.timesigs and self.timesigs[-1][0] == self.start:
            self.timesigs.pop()
        self.timesigs.append((self.start, ts[0], ts[1]))
        self.length = bar_steps(ts[0], ts[1], self.grid)

    def position(self, p: int) -> int:
        if self.bar < 0:
            raise DecodeError("a position before the first bar")
        if p >= self.length:
            raise DecodeError(f"position {p} in a bar of {self.length} steps")
        return self.start + p


def token_value(tok: str) -> str:
    return tok.split("_", 1)[1]


def decode_groups(tokens: np.ndarray, vocab: Vocabulary, head_family: str, place) -> QScore:
    """The loop the CP and NB decoders share: BOS/EOS, tempo and chord changes, notes.

    ``place(lead, group, ts, timeline, cur) -> (cur, has_changes, is_note)`` is the encoding's own
    part: it moves the timeline and says where the group sits; ``ts`` is the group's time signature
    (num, den) or None.
    """
    fam = vocab.families
    tl = Timeline(vocab)
    notes, tempos, chords = [], [], []
    cur = None
    vel = [0] + velocity_values(vocab.config)
    for i, g in enumerate(tokens.tolist()):
        try:
            lead = fam[head_family][g[0]]
            if lead in ("BOS", IGN):
                continue
            if lead == "EOS":
                break
            ts = None if g[3] < 2 else tuple(int(x) for x in token_value(fam["timesig"][g[3]]).split("/"))
            cur, has_changes, is_note = place(lead, g, ts, tl, cur)
            if has_changes:
                if g[2] >= 2:
                    tempos.append((cur, int(token_value(fam["tempo"][g[2]]))))
                if g[4] >= 2:
                    chords.append((cur, token_value(fam["chord"][g[4]])))
            if is_note:
                track, pitch, dur, velo = g[5:]
                if cur is None:
                    raise DecodeError("a note before any position")
                if min(track, pitch, dur, velo) == 0:
                    raise DecodeError("a note without track, pitch, duration and velocity")
                notes.append((cur, dur, pitch - 1, vel[velo], track - 1))
        except DecodeError as e:
            raise DecodeError(f"group {i}: {e}") from None
    return QScore(np.array(notes, dtype=np.int64).reshape(-1, 5), tempos, tl.timesigs, chords)


def collapse(changes):
    """Sorted (position, value) changes with one per position (the last) and no repeated value."""
    out = []
    for p, v in changes:
        if out and out[-1][0] == p:
            out.pop()
        if not out or out[-1][1] != v:
            out.append((p, v))
    return out



# ---------------------------------------------------------------------------- back to ticks


def to_music(q: QScore, vocab: Vocabulary, source: str = "") -> Music:
    """A QScore back to ticks (at the source's resolution when the grid divides it, else 480 or finer)."""
    cfg = vocab.config
    step = np.lcm(cfg.grid, cfg.duration_res)
    tpq = q.tpq if q.tpq % step == 0 else (480 if 480 % step == 0 else int(step) * 120)
    n = q.notes
    ticks = np.stack([n[:, 0] * tpq // cfg.grid, n[:, 1] * tpq // cfg.duration_res, n[:, 2], n[:, 3], n[:, 4]],
                     axis=1)
    tempos = [(p * tpq // cfg.grid, float(b)) for p, b in q.tempos]
    sigs = [(p * tpq // cfg.grid, a, b) for p, a, b in q.timesigs]
    chords = [(p * tpq // cfg.grid, c) for p, c in q.chords]
    return Music(source, int(tpq), ticks, q.tracks, tempos, sigs, chords)


def differences(a: QScore, b: QScore, chords: bool = True) -> list[str]:
    """What differs between two quantised pieces (empty when they are equal)."""
    out = []
    if a.notes.shape != b.notes.shape or not np.array_equal(a.notes, b.notes):
        sa = {tuple(r) for r in a.notes.tolist()}
        sb = {tuple(r) for r in b.notes.tolist()}
        out.append(f"notes: {len(a.notes)} vs {len(b.notes)}; e.g. {sorted(sa - sb)[:2]} / {sorted(sb - sa)[:2]}")
    if a.tempos != b.tempos:
        out.append(f"tempos: {a.tempos[:4]} vs {b.tempos[:4]}")
    if a.timesigs != b.timesigs:
        out.append(f"time signatures: {a.timesigs[:4]} vs {b.timesigs[:4]}")
    if chords and a.chords != b.chords:
        out.append(f"chords: {a.chords[:4]} vs {b.chords[:4]}")
    return out

