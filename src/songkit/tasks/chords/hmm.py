"""HMM decoding of frame-wise chord posteriors, and transitions learned from labels (numpy only).

The usual smoothing of chord posteriors: Viterbi over the 25 classes. Either one self-transition
probability (any change equally likely), or a transition matrix counted from the training labels,
key-invariant and tied across roots: the chance of moving from a chord to another depends only on
their qualities (N, maj, min) and the interval between their roots, so 12 transpositions share counts.
"""

from __future__ import annotations

import math

import numpy as np

from songkit.tasks.chords import constants as C

# chance a chord lasts into the next beat. Pooling over a beat already smooths, so little more is needed:
# chosen by nested 2-fold CV over the held-out POP909 songs (0.04-0.1 chosen in both halves; 0.6 scored 0.864
# against 0.903 majmin, docs/chords.md)
BEAT_SELF_PROB = 0.1


def viterbi(log_probs, self_prob: float = C.SELF_PROB, transitions=None) -> np.ndarray:
    """Most likely class path: ``(T, K)`` log-probs -> ``(T,)`` classes.

    ``transitions``: a ``(K, K)`` log transition matrix (rows: from); without it, ``self_prob`` is the
    probability of staying on a chord from one frame to the next and any other chord is equally likely
    (``self_prob <= 1/K`` is plain frame-wise argmax).
    """
    lp = np.asarray(log_probs, dtype=np.float64)
    T, K = lp.shape
    if T == 0:
        return np.zeros(0, dtype=np.int64)
    if transitions is not None and len(transitions):
        return _viterbi_full(lp, np.asarray(transitions, dtype=np.float64))
    if self_prob <= 1.0 / K:
        return lp.argmax(-1)
    stay, move = math.log(self_prob), math.log((1 - self_prob) / (K - 1))
    back = np.empty((T, K), dtype=np.int64)
    score = lp[0].copy()
    states = np.arange(K)
    for t in range(1, T):
        best = int(score.argmax())
        switch = score[best] + move
        stay_score = score + stay
        take_stay = stay_score >= switch
        back[t] = np.where(take_stay, states, best)
        score = np.where(take_stay, stay_score, switch) + lp[t]
    return _backtrack(score, back)


def _viterbi_full(lp: np.ndarray, log_a: np.ndarray) -> np.ndarray:
    T, K = lp.shape
    back = np.empty((T, K), dtype=np.int64)
    score = lp[0].copy()
    for t in range(1, T):
        cand = score[:, None] + log_a  # (from K, to K)
        back[t] = cand.argmax(0)
        score = cand[back[t], np.arange(K)] + lp[t]
    return _backtrack(score, back)


def _backtrack(score, back) -> np.ndarray:
    T = len(back)
    path = np.empty(T, dtype=np.int64)
    path[-1] = int(score.argmax())
    for t in range(T - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def viterbi_many(log_probs: list, self_prob: float = C.SELF_PROB, transitions=None) -> list[np.ndarray]:
    """``viterbi`` of many songs at once: one pass over time with every song in a batch.

    Songs are padded to the longest; a song's path is traced back from its own last frame, so the
    padding never changes it. The same paths as ``viterbi`` song by song (tested).
    """
    if not log_probs:
        return []
    K = log_probs[0].shape[1]
    full = transitions is not None and len(transitions) > 0
    if not full and self_prob <= 1.0 / K:
        return [np.asarray(lp).argmax(-1) for lp in log_probs]
    log_a = np.asarray(transitions, dtype=np.float64) if full else None  # (K from, K to)
    stay, move = (math.log(self_prob), math.log((1 - self_prob) / (K - 1))) if not full else (0.0, 0.0)
    lengths = np.array([len(lp) for lp in log_probs])
    B, T = len(log_probs), int(lengths.max())
    lp = np.zeros((T, B, K), dtype=np.float64)
    for b, x in enumerate(log_probs):
        lp[: len(x), b] = x
    back = np.zeros((max(T, 1), B, K), dtype=np.int16)
    final = np.zeros((B, K), dtype=np.float64)
    states, batch = np.arange(K), np.arange(B)
    score = lp[0].copy() if T else final.copy()  # (B, K)
    for t in range(1, T):
        ending = lengths == t  # songs whose last frame was t - 1
        final[ending] = score[ending]
        if full:
            cand = score[:, :, None] + log_a  # (B, K from, K to)
            back[t] = cand.argmax(1)
            score = cand.max(1) + lp[t]
        else:  # staying, or switching from the best state: O(K) per step
            best = score.argmax(1)  # (B,)
            switch = score[batch, best] + move
            stay_score = score + stay
            take_stay = stay_score >= switch[:, None]
            back[t] = np.where(take_stay, states, best[:, None])
            score = np.where(take_stay, stay_score, switch[:, None]) + lp[t]
    final[lengths == T] = score[lengths == T]
    paths = []
    for b, n in enumerate(lengths):
        path = np.zeros(n, dtype=np.int64)
        if n:
            path[-1] = int(final[b].argmax())
            for t in range(n - 1, 0, -1):
                path[t - 1] = back[t, b, path[t]]
        paths.append(path)
    return paths


def beat_segments(beat_times, frame_seconds: float, T: int) -> np.ndarray:
    """Frame index where each beat-synchronous segment starts: 0, then the frame of each beat (within 1..T-1)."""
    starts = np.round(np.asarray(beat_times, dtype=np.float64) / frame_seconds).astype(np.int64)
    return np.unique(np.concatenate([[0], starts[(starts > 0) & (starts < T)]]))


def beat_sync_decode(log_probs, beat_times, frame_seconds: float, self_prob: float = BEAT_SELF_PROB) -> np.ndarray:
    """Beat-synchronous decoding: frame log-probabilities ``(T, K)`` averaged between consecutive beats,
    Viterbi over the beats (one chord per beat), each beat's chord spread back over its frames ``(T,)``."""
    lp = np.asarray(log_probs, dtype=np.float64)
    T = len(lp)
    if T == 0:
        return np.zeros(0, dtype=np.int64)
    starts = beat_segments(beat_times, frame_seconds, T)
    pooled = np.add.reduceat(lp, starts, axis=0) / np.diff(np.append(starts, T))[:, None]  # (beats, K)
    per_beat = viterbi(pooled, self_prob)
    return np.repeat(per_beat, np.diff(np.append(starts, T)))


def tied_index(a: int, b: int) -> tuple[int, int, int]:
    """The shared cell of a transition a -> b: (quality of a, quality of b, root interval; 0 when N is involved)."""
    qa, qb = int(C.class_quality(a)), int(C.class_quality(b))
    interval = (C.class_root(b) - C.class_root(a)) % 12 if qa and qb else 0
    return qa, qb, interval


def learn_transitions(label_sequences, smoothing: float = 1.0) -> list[list[float]]:
    """A ``(25, 25)`` log transition matrix from frame label sequences (``IGNORE`` frames skipped).

    Counts are pooled per tied cell (``tied_index``), add-``smoothing``, then spread back to the 25 x 25
    cells (a tied cell between chords stands for 12 root pairs; into N or out of N for 12 roots) and
    each row is normalised. Returned as plain lists: it goes into the model config.
    """
    counts = np.full((3, 3, 12), smoothing)
    for seq in label_sequences:
        y = np.asarray(seq)
        y = y[y != C.IGNORE]
        if len(y) < 2:
            continue
        a, b = y[:-1], y[1:]
        qa, qb = C.class_quality(a), C.class_quality(b)
        interval = np.where((qa > 0) & (qb > 0), ((b - 1) % 12 - (a - 1) % 12) % 12, 0)
        np.add.at(counts, (qa, qb, interval), 1)
    # one tied cell covers several matrix cells: 12 targets for maj/min from N or for any root interval
    # between chords is one cell each; N -> N is one cell; chord -> N one cell; N -> chord 12 cells
    K = C.NUM_CLASSES
    mat = np.zeros((K, K))
    for a in range(K):
        for b in range(K):
            qa, qb, iv = tied_index(a, b)
            per_cell = 12.0 if (qa == 0 and qb > 0) else 1.0
            mat[a, b] = counts[qa, qb, iv] / per_cell
    mat /= mat.sum(1, keepdims=True)
    return np.log(mat).tolist()
