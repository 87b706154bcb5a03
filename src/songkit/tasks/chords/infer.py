"""Chord recognition with a trained model: Python objects in and out (never stdin/stdout).

``song_log_probs`` runs a model over many songs at once: each song is cut into overlapping
windows of ``WINDOW_FRAMES`` frames, all windows go through the model in batches, and the middle
of each window is stitched back (``WINDOW_OVERLAP`` frames of context on each side), so a
recurrent model sees a batch instead of one 5,000-step sequence at batch 1. The frame posteriors
are then decoded by an HMM (``hmm.viterbi``) with the checkpoint's transitions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from songkit.core.errors import UserError
from songkit.tasks.chords import constants as C
from songkit.tasks.chords.features import normalize_chroma, rotate_chroma
from songkit.tasks.chords.hmm import viterbi_many
from songkit.tasks.chords.labels import Annotation, frames_to_segments


def load(checkpoint: Path | str | None = None, device="cpu"):
    """A chords model and its checkpoint (default: the shipped one; a run folder means its best.ckpt)."""
    from songkit.core.checkpoint import load_model
    from songkit.tasks.chords.model import MODELS

    return load_model(checkpoint, C.TASK, MODELS, device, check_vocab=_check_vocab)


def _check_vocab(vocab) -> None:
    if list(vocab) != C.VOCAB:
        raise ValueError("not songkit's 25 majmin chord classes")


def window_starts(T: int, window: int, overlap: int) -> list[tuple[int, int, int]]:
    """``(start, keep_from, keep_to)`` per window of a ``T``-frame song (song frame indices).

    Windows of ``window`` frames every ``window - 2 * overlap`` frames, the last one ending at the song's
    end; each keeps its middle, so every kept frame has at least ``overlap`` frames of context on both
    sides (or the song's edge). The kept parts tile ``[0, T)``.
    """
    if T <= window:
        return [(0, 0, T)]
    hop = window - 2 * overlap
    if hop <= 0:
        raise ValueError(f"window {window} must exceed twice the overlap {overlap}")
    starts = list(range(0, T - window, hop)) + [T - window]
    out = []
    for k, s in enumerate(starts):
        lo = 0 if k == 0 else out[-1][2]
        hi = T if k == len(starts) - 1 else s + window - overlap
        out.append((s, lo, hi))
    return out


@torch.inference_mode()
def song_log_probs(model, chromas, device="cpu", window: int = C.WINDOW_FRAMES, overlap: int = C.WINDOW_OVERLAP,
                   batch_size: int = 32, amp: bool = True, rotations: int = 1) -> list[np.ndarray]:
    """Raw chroma ``(T, 24)`` per song -> ``(T, 25)`` float32 log-probabilities per song.

    ``window=0`` runs each song whole at batch 1 (the reference the windows are checked against).
    ``rotations`` > 1: test-time transposition, the mean log-probability over the song moved by 0, +1, -1, +2,
    ... semitones (each rotated back to the song's key; 12 = every key), at ``rotations`` times the cost.
    """
    if rotations > 1:
        shifts = [0, 1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6][:min(rotations, 12)]
        total = None
        for r in shifts:
            moved = [rotate_chroma(np.asarray(c, dtype=np.float32), r) for c in chromas]
            back = np.array([C.transpose_class(k, r) for k in range(C.NUM_CLASSES)])  # class k of the song
            lps = song_log_probs(model, moved, device, window, overlap, batch_size, amp)
            lps = [lp[:, back] for lp in lps]
            total = lps if total is None else [t + lp for t, lp in zip(total, lps)]
        outs = []
        for t in total:
            mean = t / len(shifts)
            outs.append((mean - np.logaddexp.reduce(mean, axis=1, keepdims=True)).astype(np.float32))
        return outs
    from songkit.core.device import amp_dtype, autocast

    dev = torch.device(device)
    dtype = amp_dtype(dev, amp, model)
    was = model.training
    model.eval()
    inputs = [torch.as_tensor(normalize_chroma(np.asarray(c, dtype=np.float32))) for c in chromas]
    outs = [np.empty((len(x), C.NUM_CLASSES), dtype=np.float32) for x in inputs]
    # (song, start, keep_from, keep_to) per piece; pieces of one length share a batch
    pieces: dict[int, list[tuple[int, int, int, int]]] = {}
    for i, x in enumerate(inputs):
        layout = [(0, 0, len(x))] if window == 0 else window_starts(len(x), window, overlap)
        for s, lo, hi in layout:
            length = len(x) if window == 0 or len(x) <= window else window
            pieces.setdefault(length, []).append((i, s, lo, hi))
    for length, group in pieces.items():
        if length == 0:
            continue
        for b in range(0, len(group), batch_size):
            chunk = group[b:b + batch_size]
            x = torch.stack([inputs[i][s:s + length] for i, s, _, _ in chunk]).to(dev)  # (B, L, 24)
            with autocast(dev, dtype):
                logits = model(x)
            lp = torch.log_softmax(logits.float(), -1).cpu().numpy()  # (B, L, 25)
            for (i, s, lo, hi), song_lp in zip(chunk, lp):
                outs[i][lo:hi] = song_lp[lo - s:hi - s]
    model.train(was)
    return outs


def predict_classes(model, cfg, chromas, device="cpu", self_prob: float | None = None, **window) -> list[np.ndarray]:
    """Raw chroma per song -> decoded majmin classes ``(T,)`` per song (all songs decoded in one batch)."""
    log_probs = song_log_probs(model, chromas, device, **window)
    if self_prob is not None:
        return viterbi_many(log_probs, self_prob)
    return viterbi_many(log_probs, cfg.self_prob, model.decoding_transitions())


def segments(classes, cfg, duration: float | None = None) -> Annotation:
    """Decoded frame classes -> contiguous labelled segments on the model's frame grid."""
    return frames_to_segments(classes, cfg.hop_length / cfg.sample_rate, duration)


def input_chroma(path, cfg, device="cpu", track_beats: bool = False):
    """An input file -> (raw chroma (T, 24), duration s, beat times or None): a Chordino ``*.csv`` or an audio
    file; ``track_beats``: the beats tracked from the audio (a chroma file has no audio to track: refused)."""
    from songkit.tasks.chords.data import read_bothchroma
    from songkit.tasks.chords.features import samples_features, song_samples

    p = Path(path)
    if is_chroma_csv(p):
        if track_beats:
            raise UserError(f"{p}: --beats on a chroma file needs {p.with_suffix('.beats').name} beside it "
                            "(beats are tracked from audio only)")
        times, chroma = read_bothchroma(p)
        return chroma, float(times[-1] + cfg.hop_length / cfg.sample_rate), None
    samples, duration = song_samples(p, cfg)  # decoded once for the chroma and the beats
    if not track_beats:
        return samples_features(samples, cfg, device), duration, None
    from songkit.tasks.chords.beats import track_beats as track

    return samples_features(samples, cfg, device), duration, track(samples, cfg.sample_rate)


def is_chroma_csv(path: Path) -> bool:
    """A Chordino CSV (by suffix, or for a suffix-less file such as stdin's copy, by its first bytes)."""
    if path.suffix.lower() == ".csv":
        return True
    if path.suffix.lower() in C.AUDIO_SUFFIXES:
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError:
        return False
    return head[:1] in (b'"', b",")  # Chordino rows start with the quoted audio path, or an empty first column


def recognise(paths, checkpoint=None, device="cpu", self_prob: float | None = None, workers: int = 2,
              window: int = C.WINDOW_FRAMES, beats: list | None = None, rotations: int = 1) -> list[Annotation]:
    """Chord segments of every input file (audio or Chordino CSV), all songs in one batched pass.

    Inputs are read and turned into chroma in ``workers`` threads (decoding and the STFT release the GIL)
    before the model runs, so a bad file fails before any work is spent on the model. ``beats``: beat
    times per input for beat-synchronous decoding (``hmm.beat_sync_decode``); an input whose entry is None
    has its beats tracked from its audio (``beats.track_beats``).
    """
    from concurrent.futures import ThreadPoolExecutor

    from songkit.tasks.chords.model import MODELS

    model, ck = load(checkpoint, device)
    cfg = MODELS[ck.model][0](**ck.config) if not hasattr(model, "cfg") else model.cfg
    track = [b is None for b in beats] if beats is not None else [False] * len(paths)  # None: track from audio
    with ThreadPoolExecutor(max(1, workers)) as pool:
        feats = list(pool.map(lambda p, t: input_chroma(p, cfg, device, t), paths, track))
    if beats is not None:
        from songkit.tasks.chords.hmm import BEAT_SELF_PROB, beat_sync_decode

        log_probs = song_log_probs(model, [c for c, _, _ in feats], device, window=window, rotations=rotations)
        frame = cfg.hop_length / cfg.sample_rate
        classes = [beat_sync_decode(lp, b if b is not None else f[2], frame,
                                    BEAT_SELF_PROB if self_prob is None else self_prob)
                   for lp, b, f in zip(log_probs, beats, feats)]
    else:
        classes = predict_classes(model, cfg, [c for c, _, _ in feats], device, self_prob, window=window,
                                  rotations=rotations)
    return [segments(k, cfg, d) for k, (_, d, _) in zip(classes, feats)]
