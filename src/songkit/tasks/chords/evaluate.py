"""Scores: the MIREX root and majmin WCSR (as mir_eval computes them), and a checkpoint on a dataset.

``score_song`` follows ``mir_eval.chord.evaluate``: the estimate is cropped/padded with ``N`` to the
reference's span, both are cut at the union of their boundaries, each piece is weighted by its
duration and pieces the reduction ignores are left out; ``wcsr`` weights each song by its scored
duration. ``evaluate`` runs a checkpoint (or the chroma-template baseline) over a dataset split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from songkit.core import music
from songkit.tasks.chords import constants as C
from songkit.tasks.chords.labels import Annotation, last_start_at


def _adjust(intervals, labels, t_min, t_max, fill="N"):
    """mir_eval.util.adjust_intervals: crop/pad the estimate to span [t_min, t_max]."""
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


def _encode_many(labels):
    cache: dict[str, music.Chord] = {}
    roots = np.empty(len(labels), dtype=np.int64)
    bits = np.empty((len(labels), 12), dtype=np.int64)
    for i, lab in enumerate(labels):
        c = cache.get(lab) or cache.setdefault(lab, music.parse_chord(lab))
        roots[i] = c.root
        bits[i] = c.bitmap if c.bitmap is not None else (-1,) * 12
    return roots, bits


def compare(ref_labels, est_labels) -> dict:
    """Per-segment comparison scores (1, 0, or -1 for ignored) for ``root`` and ``majmin``."""
    rr, rb = _encode_many(ref_labels)
    er, eb = _encode_many(est_labels)
    root = (rr == er).astype(np.float64)
    root[np.any(rb < 0, axis=1)] = -1
    maj = np.all(rb[:, :8] == np.array(music.MAJ8), axis=1)
    mnr = np.all(rb[:, :8] == np.array(music.MIN8), axis=1)
    none = (rr < 0) & np.all(rb == 0, axis=1)
    majmin = ((rr == er) & np.all(rb[:, :8] == eb[:, :8], axis=1)).astype(np.float64)
    majmin[~(maj | mnr | none)] = -1
    return {"root": root, "majmin": majmin}


def score_song(ref: Annotation, est: Annotation) -> dict:
    """Duration-weighted scores of one song, as ``mir_eval.chord.evaluate`` computes them.

    Returns ``{"root": r, "majmin": m, "root_seconds": w_r, "majmin_seconds": w_m}`` where
    ``*_seconds`` is the scored (non-ignored) duration, the weight for a dataset-level WCSR.
    """
    t_min, t_max = ref.intervals.min(), ref.intervals.max()
    est_iv, est_lab = _adjust(est.intervals, est.labels, t_min, t_max)
    bounds = np.unique(np.concatenate([ref.intervals.ravel(), est_iv.ravel()]))
    t0 = bounds[:-1]
    dur = np.diff(bounds)
    r_idx = last_start_at(ref.intervals, t0)
    e_idx = last_start_at(est_iv, t0)
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


def score_songs(songs, classes_of, cfg=None) -> dict:
    """Score decoded classes ``classes_of(songs) -> [(T,) per song]`` against the songs' references."""
    from songkit.core.metrics import ConfusionMatrix
    from songkit.tasks.chords.labels import frames_to_segments

    frame_seconds = cfg.hop_length / cfg.sample_rate if cfg is not None else C.FRAME_SECONDS
    cm = ConfusionMatrix(C.NUM_CLASSES, ignore_index=None)
    per_song = []
    for s, pred in zip(songs, classes_of(songs)):
        keep = s.labels != C.IGNORE
        cm.update(s.labels[keep], pred[keep])
        sc = score_song(s.ref, frames_to_segments(pred, frame_seconds, s.duration))
        sc["name"] = s.name
        sc["frame_accuracy"] = float((pred[keep] == s.labels[keep]).mean()) if keep.any() else float("nan")
        per_song.append(sc)
    return {
        "songs": len(songs),
        "majmin_wcsr": wcsr(per_song, "majmin"),
        "root_wcsr": wcsr(per_song, "root"),
        "frame_accuracy": cm.accuracy(),
        "per_song": per_song,
        "confusion": cm,
    }


def template_log_probs(chroma, n_threshold: float = 0.05) -> np.ndarray:
    """The classic baseline: cosine similarity of (bass + treble) chroma with binary major/minor
    triad templates; ``N`` where the frame's energy is below ``n_threshold`` of the song's
    95th percentile. Returns pseudo log-probabilities ``(T, 25)`` for the same HMM decoding."""
    c = np.asarray(chroma, dtype=np.float64)
    c = c[:, :12] + c[:, 12:]  # (T, 12) from A
    energy = c.sum(1)
    templ = np.zeros((C.NUM_CLASSES, 12))
    for root in range(12):
        a_root = (root - C.A_OFFSET) % 12  # chroma bins start at A
        for minor in (0, 1):
            k = C.class_index(root, bool(minor))
            for iv in (0, 3 if minor else 4, 7):
                templ[k, (a_root + iv) % 12] = 1
    templ[1:] /= np.linalg.norm(templ[1:], axis=1, keepdims=True)
    cn = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-9)
    sim = cn @ templ.T  # (T, 25)
    is_n = energy < n_threshold * max(np.percentile(energy, 95), 1e-9)
    sim[:, 0] = np.where(is_n, 2.0, -1.0)
    return 20.0 * sim  # a soft-max temperature for the HMM


def evaluate(checkpoint: Path | None, data: Path | None, split: str = "test", device="cpu",
             self_prob: float | None = None, template: bool = False, folds: int = 0, fold: int = 0,
             limit: int = 0, beats: bool = False, rotations: int = 1) -> dict:
    """Root/majmin WCSR and frame accuracy of a checkpoint (or the template baseline) on a split.

    ``beats``: beat-synchronous decoding with each song's ``.beats`` file, or beats tracked from its audio where
    it has none (scored at frame resolution).
    ``data`` None: the embedded Bach chorales (built once into $SONGKIT_HOME). ``split`` is
    train | valid | test | all. Returns the summary, ``per_song`` and ``confusion`` (a ConfusionMatrix).
    """
    from songkit.core.errors import UserError
    from songkit.tasks.chords.bach import ensure_embedded
    from songkit.tasks.chords.data import load
    from songkit.tasks.chords.hmm import viterbi
    from songkit.tasks.chords.infer import load as load_model
    from songkit.tasks.chords.infer import predict_classes
    from songkit.tasks.chords.model import make_config

    if split not in (*C.SPLITS, "all"):
        raise UserError(f"--split {split}: expected train, valid, test or all")
    splits = C.SPLITS if split == "all" else (split,)
    data = Path(data) if data is not None else ensure_embedded()
    if template:
        name, cfg = "template", make_config(C.DEFAULT_MODEL)
        sp = C.SELF_PROB if self_prob is None else self_prob
        classes_of = lambda songs: [viterbi(template_log_probs(s.chroma), sp) for s in songs]
    else:
        model, ck = load_model(checkpoint, device)
        name, cfg = str(ck.path), model.cfg
        classes_of = lambda songs: predict_classes(model, cfg, [s.chroma for s in songs], device, self_prob,
                                                   rotations=rotations)
    if beats and not template:
        from songkit.tasks.chords.hmm import BEAT_SELF_PROB, beat_sync_decode
        from songkit.tasks.chords.infer import song_log_probs

        def classes_of(songs):
            missing = [s.name for s in songs if s.beats is None]  # Billboard chroma: no audio to track
            if missing:
                raise UserError(f"{data}: --beats needs a .beats file beside each chroma file ({missing[0]} has none)")
            frame = cfg.hop_length / cfg.sample_rate
            return [beat_sync_decode(lp, s.beats, frame, BEAT_SELF_PROB if self_prob is None else self_prob)
                    for lp, s in zip(song_log_probs(model, [s.chroma for s in songs], device, rotations=rotations),
                                     songs)]
    songs = load(data, cfg, splits, folds, fold, limit, track_beats=beats and not template)
    res = score_songs(songs, classes_of, cfg)
    return {"model": name, "data": str(data), "split": split, **res}
