"""A simple chord recogniser for pieces without chord annotations: pitch-class templates of the CP paper's
133 chords on every quarter note, with hysteresis."""

from __future__ import annotations

import numpy as np

from songkit.core.music import PITCH_CLASSES
from songkit.tasks.tokenize.constants import CHORD_QUALITIES, QUALITY_INTERVALS


def _templates() -> tuple[np.ndarray, list[str]]:
    rows, labels = [], []
    for r, root in enumerate(PITCH_CLASSES):
        for qual in CHORD_QUALITIES:
            t = np.zeros(12)
            t[[(r + i) % 12 for i in QUALITY_INTERVALS[qual]]] = 1
            rows.append(t)
            labels.append(f"{root}_{qual}")
    return np.array(rows), labels


_TEMPLATES, _TEMPLATE_LABELS = _templates()
_TEMPLATE_ROOTS = np.repeat(np.arange(12), len(CHORD_QUALITIES))  # (132,) root pitch class of each template


def recognise_chords(q, grid: int, duration_res: int) -> list[tuple[int, str]]:
    """A simple recogniser: pitch-class templates on each quarter note, with hysteresis.

    Each non-drum note counts once in every quarter-note window it sounds in. A window's
    score for a chord is the weight on chord tones minus half the weight elsewhere, less
    0.1 per chord tone (plain triads win ties), plus 0.2 of the root's weight; a chord changes only when the current one
    scores below the best. Silent windows keep the current chord.
    """
    notes = q.notes
    drum = np.array([bool(t.get("is_drum")) for t in q.tracks] or [False], dtype=bool)
    if len(notes):
        notes = notes[~drum[np.minimum(notes[:, 4], len(drum) - 1)]]
    if not len(notes):
        return []
    start = notes[:, 0] // grid
    stop = np.maximum(start, (notes[:, 0] * duration_res + notes[:, 1] * grid - 1) // (grid * duration_res))
    stop = np.minimum(stop, start + 7)  # (N,) last window, at most 8 windows per note
    n_win = int(stop.max()) + 1
    counts = stop - start + 1
    win = np.repeat(start, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
    pcs = np.repeat(notes[:, 2] % 12, counts)
    chroma = np.zeros((n_win, 12))
    np.add.at(chroma, (win, pcs), 1.0)
    scores = chroma @ _TEMPLATES.T - 0.5 * chroma @ (1 - _TEMPLATES).T - 0.1 * _TEMPLATES.sum(1)  # (W, 132)
    scores += 0.2 * chroma[:, _TEMPLATE_ROOTS]  # a sounding root breaks ties (a lone A is A_M, not C#_+)
    best = scores.argmax(1)
    sounding = chroma.sum(1) > 0
    out: list[tuple[int, str]] = []
    cur = -1
    for w in range(n_win):
        if not sounding[w]:
            continue
        if cur < 0 or scores[w, cur] < scores[w, best[w]]:
            cur = int(best[w])
            label = _TEMPLATE_LABELS[cur]
            if not out or out[-1][1] != label:
                out.append((w * grid, label))
    return out
