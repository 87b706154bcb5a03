"""Chord features: Chordino-like bass + treble chroma (24-d, bins from A) from audio, in torch.

Chordino (NNLS Chroma) weights a semitone spectrum with a low "bass" profile and a
higher "treble" profile and folds each to 12 pitch classes. We do the same on our own
semitone spectrum (triangular filters on a 8192-point STFT, see ``core.audio``), without
NNLS note transcription. Both sources then go through ``normalize_chroma`` (each half
divided by its frame maximum), so a model trained on the Billboard chordino files sees
inputs on the same scale as chroma computed from audio. The remaining gap (NNLS removes
overtones, we do not) is why the shipped default is trained on both; see docs/chords.md.
"""

from __future__ import annotations

import functools

from songkit.tasks.chords import constants as C

MIDI_LO, MIDI_HI = 24, 107  # C1 .. B7


@functools.lru_cache(maxsize=4)
def bass_treble_weights():
    """``(24, MIDI_HI - MIDI_LO + 1)`` numpy: rows 0-11 bass, 12-23 treble, bin 0 = pitch class A.

    Bass: a Hann bump over MIDI 28-64 (E1-E4, centre ~E2-B2); treble: a Hann bump over
    MIDI 45-96 (A2-C7), Chordino's split of the range.
    """
    import numpy as np

    notes = np.arange(MIDI_LO, MIDI_HI + 1)

    def bump(lo, hi):
        x = (notes - lo) / (hi - lo)
        return np.where((x >= 0) & (x <= 1), np.sin(np.pi * np.clip(x, 0, 1)) ** 2, 0.0)

    w = np.zeros((24, notes.size))
    pc = (notes - 57) % 12  # 57 = A3: bin 0 is A
    for i, (lo, hi) in enumerate(((28, 64), (45, 96))):
        prof = bump(lo, hi)
        w[12 * i + pc, np.arange(notes.size)] = prof
    return w.astype(np.float32)


def bothchroma(samples, sample_rate: int = C.SAMPLE_RATE, n_fft: int = C.N_FFT, hop_length: int = C.HOP_LENGTH):
    """Audio ``(B, N)`` (or ``(N,)``) at ``sample_rate`` -> raw bass+treble chroma ``(B, T, 24)``."""
    import torch

    from songkit.core import audio

    semis = audio.semitone_spectrum(samples, sample_rate, n_fft, hop_length, MIDI_LO, MIDI_HI)  # (B, P, T)
    w = torch.from_numpy(bass_treble_weights()).to(semis.device)
    return torch.einsum("cp,bpt->btc", w, semis)


def normalize_chroma(x, eps: float = 1e-6):
    """Each 12-bin half of ``(..., 24)`` chroma divided by its own maximum (silence stays 0).

    Works on numpy arrays and torch tensors.
    """
    shape = x.shape
    halves = x.reshape(*shape[:-1], 2, 12)
    if hasattr(halves, "amax"):
        m = halves.amax(-1, keepdim=True).clamp_min(eps)
    else:
        import numpy as np

        m = np.maximum(halves.max(-1, keepdims=True), eps)
    return (halves / m).reshape(shape)


def rotate_chroma(x, shift: int):
    """Transpose ``(..., 24)`` chroma up ``shift`` semitones (each half rolled on its own)."""
    shape = x.shape
    halves = x.reshape(*shape[:-1], 2, 12)
    if hasattr(halves, "roll"):
        out = halves.roll(shift, dims=-1)
    else:
        import numpy as np

        out = np.roll(halves, shift, axis=-1)
    return out.reshape(shape)


def song_samples(path, cfg):
    """Read an audio file -> (mono float32 samples ``(N,)`` at ``cfg.sample_rate``, duration seconds)."""
    from songkit.core.audio import read_audio, resample

    samples, sr = read_audio(path, None)
    duration = len(samples) / sr
    if sr != cfg.sample_rate:
        samples = resample(samples, sr, cfg.sample_rate, C.RESAMPLE_ZERO_CROSSINGS, C.RESAMPLE_ROLLOFF)
    return samples, duration


def audio_features(path, cfg, device="cpu"):
    """Read an audio file and return ``(chroma (T, 24) float32 numpy, duration seconds)`` with the signal
    chain of ``cfg`` (a model config: ``sample_rate``, ``n_fft``, ``hop_length``)."""
    samples, duration = song_samples(path, cfg)
    return samples_features(samples, cfg, device), duration


def samples_features(samples, cfg, device="cpu"):
    """Mono float32 samples ``(N,)`` at ``cfg.sample_rate`` -> raw chroma ``(T, 24)`` float32 numpy."""
    import torch

    with torch.inference_mode():
        x = torch.from_numpy(samples).to(device)
        return bothchroma(x, cfg.sample_rate, cfg.n_fft, cfg.hop_length)[0].cpu().numpy()
