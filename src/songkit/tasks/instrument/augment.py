"""Waveform augmentation of NSynth notes: per note in the DataLoader workers, mixup per batch.

Every draw comes from a numpy Generator the caller seeds with ``core.data.item_rng(seed, epoch,
index)``, so a note's augmentation is the same whichever worker decodes it. Level augmentation (gain,
onset shift, noise) stops a model keying on a SoundFont's level and noise floor; timbre augmentation
(a random EQ curve, speed changes by resampling, synthetic reverb) moves the spectral envelope a
model would otherwise memorise per sample set; mixup (Zhang et al. 2018) smooths the boundaries
between families.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from songkit.tasks.instrument.constants import SAMPLE_RATE


@dataclass
class AugmentConfig:
    """Which augmentations run, and how strongly (0 or empty disables one)."""

    enabled: bool = True
    gain_db: float = 6.0  # uniform in +-gain_db
    max_shift_ms: float = 30.0  # onset delayed by up to this
    noise_snr_db: tuple[float, float] = (25.0, 50.0)  # white noise at a uniform SNR, on half the notes
    max_semitones: float = 0.5  # speed change of +- this many semitones (pitch and duration together)
    eq_db: float = 0.0  # random EQ: a smooth gain curve over log frequency within +-eq_db
    reverb: float = 0.0  # probability of a synthetic room (exponentially decaying noise, RT60 0.2-1.2 s)
    mixup_alpha: float = 0.2  # Beta(alpha, alpha) weights of batch mixing; 0 disables


def augment_note(wave: np.ndarray, clip_samples: int, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """One note ``(N,)`` float32 -> its augmented first ``clip_samples`` ``(clip_samples,)``."""
    n = clip_samples
    x = np.zeros(n, np.float32)
    if cfg.max_semitones > 0:  # read faster (higher, shorter) or slower
        rate = 2.0 ** (rng.uniform(-cfg.max_semitones, cfg.max_semitones) / 12.0)
        pos = np.arange(n, dtype=np.float64) * rate
        x[:] = np.interp(pos, np.arange(len(wave)), wave, right=0.0)
    else:
        x[: min(n, len(wave))] = wave[:n]
    if cfg.eq_db > 0:
        x = random_eq(x, cfg.eq_db, rng)
    if cfg.reverb > 0 and rng.random() < cfg.reverb:
        x = synthetic_reverb(x, rng)
    if cfg.max_shift_ms > 0:
        s = int(rng.integers(0, int(cfg.max_shift_ms * SAMPLE_RATE / 1000) + 1))
        if s:
            x = np.concatenate([np.zeros(s, np.float32), x[:-s]])
    if cfg.gain_db > 0:
        x = x * np.float32(10.0 ** (rng.uniform(-cfg.gain_db, cfg.gain_db) / 20.0))
    if cfg.noise_snr_db and rng.random() < 0.5:
        lo, hi = cfg.noise_snr_db
        rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) + 1e-8
        x = x + np.float32(rms * 10.0 ** (-rng.uniform(lo, hi) / 20.0)) * rng.standard_normal(n).astype(np.float32)
    return x.astype(np.float32)


def random_eq(x: np.ndarray, max_db: float, rng: np.random.Generator, knots: int = 6) -> np.ndarray:
    """Filter ``x`` by a random smooth gain curve: ``knots`` gains in +-max_db spread over log frequency
    (30 Hz .. Nyquist), interpolated; zero phase (a gain on the spectrum)."""
    spec = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(len(x), 1.0 / SAMPLE_RATE)
    at = np.log(np.geomspace(30.0, SAMPLE_RATE / 2, knots))
    gains_db = rng.uniform(-max_db, max_db, knots)
    curve = np.interp(np.log(np.maximum(freqs, 30.0)), at, gains_db)
    return np.fft.irfft(spec * 10.0 ** (curve / 20.0), n=len(x)).astype(np.float32)


def synthetic_reverb(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Convolve ``x`` with a synthesized room: exponentially decaying noise (RT60 0.2-1.2 s) mixed at a
    direct-to-reverberant ratio of 0-12 dB; the level of the dry note is kept."""
    rt60 = rng.uniform(0.2, 1.2)
    n_ir = int(rt60 * SAMPLE_RATE)
    t = np.arange(n_ir) / SAMPLE_RATE
    ir = rng.standard_normal(n_ir) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    ir /= np.sqrt(np.sum(ir**2)) + 1e-12
    size = 1 << int(np.ceil(np.log2(len(x) + n_ir)))
    wet = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(ir, size), size)[: len(x)]
    drr = 10.0 ** (rng.uniform(0.0, 12.0) / 20.0)
    y = drr * x + wet
    peak_x, peak_y = np.abs(x).max(), np.abs(y).max()
    return (y * (peak_x / peak_y if peak_y > 0 else 1.0)).astype(np.float32)


def mixup(waves: np.ndarray, targets: np.ndarray, alpha: float, rng: np.random.Generator):
    """Mix each example with another of the batch: ``waves (B, N)``, soft ``targets (B, C)``; the first
    example always dominates (weight >= 0.5)."""
    b = waves.shape[0]
    lam = rng.beta(alpha, alpha, size=(b, 1)).astype(np.float32)
    lam = np.maximum(lam, 1 - lam)
    perm = rng.permutation(b)
    return (lam * waves + (1 - lam) * waves[perm]).astype(np.float32), (lam * targets + (1 - lam) * targets[perm])
