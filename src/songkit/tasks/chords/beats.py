"""Beat tracking for raw audio (``--beats`` on audio with no ``.beats`` file beside it).

Ellis's dynamic-programming tracker (2007, the one librosa's ``beat_track`` implements): an onset-strength
envelope (mean positive log-mel flux), one global tempo (the envelope's autocorrelation weighted by a
log-normal prior around 120 BPM), then the beat sequence that maximises onset strength at the beats minus a
penalty on each inter-beat interval's log-distance from the period. numpy and the torch STFT only: librosa
would bring numba and scipy for these few lines. Time and memory are linear in the audio's length.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 11025  # the chord features' rate: the audio is resampled once for both
HOP = 256  # 23.2 ms onset frames (43 a second)
N_FFT = 1024
N_MELS = 64
START_BPM, STD_OCTAVES = 120.0, 1.0  # tempo prior: log-normal around 120 BPM, one octave wide
MIN_BPM, MAX_BPM = 30.0, 300.0
AC_WINDOW, AC_HOP = 384, 16  # tempo: local autocorrelation over 8.9 s windows, one every 0.37 s
TIGHTNESS = 100.0  # weight of the interval penalty (librosa's default)


def onset_strength(samples, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono samples ``(N,)`` -> onset envelope ``(T,)`` at ``HOP``: mean over mel bands of the positive
    frame-to-frame rise of the log-mel spectrum, in dB."""
    import torch

    from songkit.core import audio

    with torch.inference_mode():
        x = torch.as_tensor(np.asarray(samples, dtype=np.float32))
        lm = audio.log_mel(x, sample_rate, N_FFT, HOP, N_MELS, eps=1e-10)[0]  # (n_mels, T) natural log
        db = lm * (10.0 / np.log(10.0))
        db = torch.maximum(db, db.max() - 80.0)  # librosa's top_db: a quiet floor does not flicker
        flux = torch.relu(db[:, 1:] - db[:, :-1]).mean(0)  # (T - 1,)
    return np.concatenate([[0.0], flux.numpy().astype(np.float64)])


def estimate_period(onset: np.ndarray, fps: float) -> float:
    """Frames per beat: the peak of the mean local autocorrelation of ``onset`` (8.9 s Hann windows, each
    normalised by its lag-0 value: librosa's tempogram) under the tempo prior."""
    n = len(onset)
    win = min(AC_WINDOW, n)
    lags = np.arange(max(1, int(60 * fps / MAX_BPM)), min(win, int(60 * fps / MIN_BPM) + 1))
    if len(lags) == 0:
        return 60 * fps / START_BPM
    padded = np.pad(onset, (win // 2, win - win // 2))
    starts = np.arange(0, n, AC_HOP)
    frames = padded[starts[:, None] + np.arange(win)[None, :]] * np.hanning(win)[None, :]  # (F, win)
    size = 1 << int(np.ceil(np.log2(2 * win)))
    ac = np.fft.irfft(np.abs(np.fft.rfft(frames, size, axis=1)) ** 2, size, axis=1)[:, :win]  # (F, win)
    ac = ac[ac[:, 0] > 0]
    if len(ac) == 0:
        return 60 * fps / START_BPM
    tg = (ac / ac[:, :1]).mean(0)  # (win,)
    bpm = 60 * fps / lags
    prior = -0.5 * ((np.log2(bpm) - np.log2(START_BPM)) / STD_OCTAVES) ** 2
    return float(lags[int(np.argmax(np.log1p(1e6 * np.maximum(tg[lags], 0)) + prior))])


def dp_beats(onset: np.ndarray, period: float, tightness: float = TIGHTNESS) -> np.ndarray:
    """Beat frames ``(B,)`` from an onset envelope and a period (frames), by dynamic programming.

    A beat at frame i follows one at i - 2P .. i - P/2; frames are filled in blocks of P/2 at once (every
    predecessor of a block lies before it), so the Python loop runs T / (P/2) times, not T.
    """
    n = len(onset)
    std = onset.std()
    if n == 0 or std <= 0:
        return np.zeros(0, dtype=np.int64)
    onset = onset / std
    half = max(1, int(round(period / 2)))
    k = np.arange(-int(period), int(period) + 1)
    local = np.convolve(onset, np.exp(-0.5 * (k * 32.0 / period) ** 2), "same")  # (T,)
    offsets = np.arange(-int(round(2 * period)), -half + 1)  # (W,) predecessor offsets
    penalty = -tightness * np.log(-offsets / period) ** 2  # (W,)
    cum = np.zeros(n)
    back = np.full(n, -1, dtype=np.int64)
    # before the first real onset a frame starts a new chain (librosa's first-beat rule)
    first = int(np.argmax(local >= 0.01 * local.max()))
    for start in range(0, n, half):
        rows = np.arange(start, min(n, start + half))  # (h,)
        prev = rows[:, None] + offsets[None, :]  # (h, W), all < start
        cand = penalty[None, :] + np.where(prev >= 0, cum[np.maximum(prev, 0)], 0.0)
        best = np.argmax(cand, axis=1)
        cum[rows] = local[rows] + cand[np.arange(len(rows)), best]
        back[rows] = np.where(rows < first, -1, prev[np.arange(len(rows)), best])
    back[back < 0] = -1  # a first beat (its best predecessor lay before the song's start)
    # the last beat: the last local maximum of the cumulative score above half their median
    peaks = np.flatnonzero((cum[1:-1] > cum[:-2]) & (cum[1:-1] >= cum[2:])) + 1
    if len(peaks) == 0:
        return np.zeros(0, dtype=np.int64)
    good = peaks[cum[peaks] >= 0.5 * np.median(cum[peaks])]
    beats = [int(good[-1])]
    while back[beats[-1]] >= 0:  # back[i] < i: the chain ends
        beats.append(int(back[beats[-1]]))
    beats = np.array(beats[::-1], dtype=np.int64)
    # trim weak beats at either end (silence before and after the music): librosa's rule
    strength = np.convolve(local[beats], np.hanning(5), "same")
    thresh = 0.5 * np.sqrt(np.mean(strength ** 2))
    strong = np.flatnonzero(strength >= thresh)
    return beats[strong[0]:strong[-1] + 1] if len(strong) else beats


def track_beats(samples, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Beat times in seconds ``(B,)`` of mono samples ``(N,)`` at ``sample_rate``."""
    onset = onset_strength(samples, sample_rate)
    fps = sample_rate / HOP
    if len(onset) < 4:
        return np.zeros(0)
    return dp_beats(onset, estimate_period(onset, fps)) / fps


def beat_f_measure(reference, estimated, window: float = 0.07) -> float:
    """The MIREX beat F-measure: a hit is an estimate within ``window`` s of a reference beat, each
    reference matched at most once (greedy in time order, as mir_eval's matching of sorted beats)."""
    ref, est = np.sort(np.asarray(reference, float)), np.sort(np.asarray(estimated, float))
    if len(ref) == 0 or len(est) == 0:
        return 0.0
    hits, j = 0, 0
    for t in est:
        while j < len(ref) and ref[j] < t - window:
            j += 1
        if j < len(ref) and abs(ref[j] - t) <= window:
            hits += 1
            j += 1
    p, r = hits / len(est), hits / len(ref)
    return 0.0 if hits == 0 else 2 * p * r / (p + r)
