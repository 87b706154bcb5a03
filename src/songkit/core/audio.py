"""Audio in, features out: one front end shared by the audio tasks (chords, instrument).

``read_audio`` reads any file soundfile reads (WAV, FLAC, OGG...), any channel count
and sample rate, and returns mono float32 at the rate asked for (windowed-sinc
polyphase resampling in torch, the kaiser/hann-windowed design torchaudio uses).

The feature functions are torch, batched ``(B, N) -> (B, F, T)``, and run on the
device of their input. Filterbanks are cached per (parameters, device).

Signal constants live here once and are derived from each other (whisper-style);
a task may pick other values but should derive them the same way.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path

from songkit.core.errors import UserError

# --- signal constants (defaults; a task passes its own where it needs to) ---
SAMPLE_RATE = 22050  # Hz
N_FFT = 4096  # samples: 186 ms window, 5.4 Hz bins (enough for chroma above ~80 Hz)
HOP_LENGTH = 1024  # samples: 46.4 ms, the Chordino/Billboard hop (2048 at 44.1 kHz)
FRAMES_PER_SECOND = SAMPLE_RATE / HOP_LENGTH  # 21.533 frames/s
N_MELS = 128
A4_HZ = 440.0
# Chroma bins start at pitch class A (index 0 = A, 3 = C), as Chordino and the Billboard
# chroma files do; librosa starts at C: roll by -3 to compare.
CHROMA_START = "A"


def read_audio(path: str | os.PathLike, sample_rate: int | None = SAMPLE_RATE, mono: bool = True):
    """Read an audio file as float32 at ``sample_rate`` (None keeps the file's rate).

    Returns ``(samples, sr)``: ``samples`` is ``(N,)`` when ``mono`` else ``(C, N)``.
    An empty, truncated or non-audio file is a ``UserError`` naming the file.
    """
    import numpy as np
    import soundfile as sf

    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: no such file")
    if p.is_dir():
        raise UserError(f"{p}: is a folder, not an audio file")
    if p.stat().st_size == 0:
        raise UserError(f"{p}: empty file, not audio")
    _check_wav_complete(p)
    try:
        with sf.SoundFile(str(p)) as f:
            sr_in = f.samplerate
            frames = f.frames
            data = f.read(dtype="float32", always_2d=True)  # (N, C)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        msg = str(e).split("\n")[0]
        raise UserError(f"{p}: not a readable audio file ({msg})") from None
    if data.shape[0] == 0:
        raise UserError(f"{p}: no audio samples (empty or truncated file)")
    if frames > 0 and data.shape[0] < frames:
        raise UserError(f"{p}: truncated audio file ({data.shape[0]} of {frames} frames)")
    if not np.isfinite(data).all():
        raise UserError(f"{p}: audio contains NaN or infinite samples")
    data = data.T  # (C, N)
    if mono:
        data = data.mean(axis=0, keepdims=True)
    if sample_rate is not None and sr_in != sample_rate:
        data = resample(data, sr_in, sample_rate)
    else:
        sample_rate = sr_in
    data = np.ascontiguousarray(data, dtype=np.float32)
    return (data[0] if mono else data), int(sample_rate)


def _check_wav_complete(p: Path) -> None:
    """A RIFF/WAVE file whose data chunk claims more bytes than the file holds was cut short
    (libsndfile silently reads what is there). Streamed WAVs (size 0 or 0xFFFFFFFF) pass."""
    import struct

    with open(p, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        size = p.stat().st_size
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            cid, clen = struct.unpack("<4sI", f.read(8))
            if cid == b"data":
                if clen not in (0, 0xFFFFFFFF) and pos + 8 + clen > size:
                    raise UserError(f"{p}: truncated WAV file (data chunk of {clen} bytes, {size - pos - 8} present)")
                return
            pos += 8 + clen + (clen & 1)
        raise UserError(f"{p}: truncated WAV file (no data chunk)")


@functools.lru_cache(maxsize=16)
def _sinc_kernel(orig: int, new: int, width_zc: int, rolloff: float):
    """Polyphase windowed-sinc kernels ``(new, 1, K)`` for resampling orig -> new (reduced)."""
    import torch

    base = min(orig, new) * rolloff
    width = math.ceil(width_zc * orig / base)
    idx = torch.arange(-width, width + orig, dtype=torch.float64)[None, None] / orig
    t = torch.arange(0, -new, -1, dtype=torch.float64)[:, None, None] / new + idx
    t = (t * base).clamp(-width_zc, width_zc)
    window = torch.cos(t * math.pi / width_zc / 2) ** 2  # Hann
    t = t * math.pi
    kernel = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / torch.where(t == 0, torch.ones_like(t), t))
    kernel = kernel * window * (base / orig)
    return kernel.float(), width


def resample(x, orig_sr: int, new_sr: int, width_zc: int = 16, rolloff: float = 0.945):
    """Band-limited resampling of ``x`` (numpy or torch, ``(..., N)``) from orig_sr to new_sr.

    Windowed-sinc polyphase filtering (Hann window, ``width_zc`` zero crossings, cut-off at
    ``rolloff`` of the lower Nyquist). Output length is ``ceil(N * new_sr / orig_sr)``.
    """
    import numpy as np
    import torch

    is_np = isinstance(x, np.ndarray)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) if is_np else x
    if orig_sr == new_sr:
        return x
    g = math.gcd(int(orig_sr), int(new_sr))
    orig, new = int(orig_sr) // g, int(new_sr) // g
    shape = xt.shape
    flat = xt.reshape(-1, shape[-1])
    n = flat.shape[-1]
    target = math.ceil(new * n / orig)
    if orig > 2000 or new > 2000:
        # co-prime odd rates: the exact polyphase bank would be huge; fall back to FFT resampling
        from scipy.signal import resample as fft_resample

        out = torch.from_numpy(fft_resample(flat.cpu().numpy(), target, axis=-1).astype(np.float32))
    else:
        kernel, width = _sinc_kernel(orig, new, width_zc, rolloff)
        kernel = kernel.to(flat.device, flat.dtype)
        padded = torch.nn.functional.pad(flat[:, None], (width, width + orig))
        out = torch.nn.functional.conv1d(padded, kernel, stride=orig)  # (B, new, frames)
        out = out.transpose(1, 2).reshape(flat.shape[0], -1)[:, :target]
    out = out.reshape(*shape[:-1], out.shape[-1])
    return out.numpy() if is_np else out


# ----------------------------------------------------------------------------- features
def _as_batch(samples):
    """numpy/torch ``(N,)`` or ``(B, N)`` -> float32 torch ``(B, N)`` (device kept)."""
    import numpy as np
    import torch

    if isinstance(samples, np.ndarray):
        samples = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    if samples.dim() == 1:
        samples = samples[None]
    return samples.float()


@functools.lru_cache(maxsize=8)
def _window(n_fft: int, device: str):
    import torch

    return torch.hann_window(n_fft, device=device)


def stft(samples, n_fft: int = N_FFT, hop: int = HOP_LENGTH, max_bin: int | None = None):
    """Complex STFT ``(B, N) -> (B, F, T)``, Hann window, centred frames (zero padding, so frame t
    is centred at ``t * hop`` samples), T = 1 + N // hop; only bins below ``max_bin`` when given.

    Framing + ``rfft`` rather than ``torch.stft``: the same numbers, about twice as fast on CPU.
    """
    import torch

    x = _as_batch(samples)
    x = torch.nn.functional.pad(x, (n_fft // 2, n_fft // 2))
    if x.shape[-1] < n_fft:
        x = torch.nn.functional.pad(x, (0, n_fft - x.shape[-1]))
    frames = x.unfold(-1, n_fft, hop) * _window(n_fft, str(x.device))  # (B, T, n_fft)
    spec = torch.fft.rfft(frames, dim=-1)  # (B, T, F)
    if max_bin is not None:
        spec = spec[..., :max_bin]
    return spec.transpose(1, 2)


def stft_magnitude(samples, n_fft: int = N_FFT, hop: int = HOP_LENGTH, power: float = 1.0, max_bin: int | None = None):
    """|STFT| ** power of ``(B, N)`` audio -> ``(B, n_fft//2 + 1, T)`` (see :func:`stft`)."""
    import torch

    spec = torch.view_as_real(stft(samples, n_fft, hop, max_bin))
    pw = spec[..., 0] ** 2 + spec[..., 1] ** 2  # |z|^2 without a square root
    if power == 2.0:
        return pw
    return pw.sqrt() if power == 1.0 else pw ** (power / 2)


def hz_to_mel(f, htk: bool = False):
    """Hz -> mel. Slaney (default, linear below 1 kHz, log above) or HTK (2595 log10(1 + f/700))."""
    import numpy as np

    f = np.asarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mels)


def mel_to_hz(m, htk: bool = False):
    """Inverse of :func:`hz_to_mel`."""
    import numpy as np

    m = np.asarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@functools.lru_cache(maxsize=16)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None, htk: bool = False):
    """Triangular mel filterbank ``(n_mels, n_fft//2 + 1)`` as float32 numpy.

    Slaney mel scale and Slaney area normalisation by default (librosa's defaults, so
    ``librosa.filters.mel`` matches); ``htk=True`` uses the HTK scale, same normalisation.
    """
    import numpy as np

    fmax = sample_rate / 2 if fmax is None else fmax
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    mel_pts = mel_to_hz(np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels + 2), htk)
    fdiff = np.diff(mel_pts)
    ramps = mel_pts[:, None] - freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    fb = np.maximum(0, np.minimum(lower, upper))
    fb *= (2.0 / (mel_pts[2 : n_mels + 2] - mel_pts[:n_mels]))[:, None]  # Slaney: constant area
    return fb.astype(np.float32)


@functools.lru_cache(maxsize=32)
def _on_device(fn_name: str, key: tuple, device: str):
    import torch

    return torch.from_numpy(globals()[fn_name](*key)).to(device)


def log_mel(
    samples,
    sample_rate: int = SAMPLE_RATE,
    n_fft: int = 2048,
    hop: int = 512,
    n_mels: int = N_MELS,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    eps: float = 1e-6,
):
    """Log mel power spectrogram ``log(mel @ |STFT|^2 + eps)``: ``(B, N) -> (B, n_mels, T)``."""
    import torch

    x = _as_batch(samples)
    power = stft_magnitude(x, n_fft, hop, power=2.0)  # (B, F, T)
    fb = _on_device("mel_filterbank", (sample_rate, n_fft, n_mels, float(fmin), fmax, htk), str(x.device))
    return torch.log(torch.einsum("mf,bft->bmt", fb, power) + eps)


def midi_to_hz(m):
    """MIDI note number (float ok) -> Hz, A4 = 69 = 440 Hz."""
    return A4_HZ * 2.0 ** ((m - 69.0) / 12.0)


@functools.lru_cache(maxsize=16)
def semitone_filterbank(sample_rate: int, n_fft: int, midi_lo: int, midi_hi: int):
    """``(midi_hi - midi_lo + 1, n_fft//2 + 1)`` triangular filters, one per semitone (a log-frequency,
    constant-Q-like spectrum): each filter peaks at the note's frequency and falls to zero at the
    neighbouring semitones, widened to at least 1.5 FFT bins so low notes still see a bin."""
    import numpy as np

    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    bin_hz = freqs[1]
    notes = np.arange(midi_lo, midi_hi + 1, dtype=np.float64)
    centre = midi_to_hz(notes)
    half = np.maximum(centre * (2 ** (1 / 12) - 1), 1.5 * bin_hz)  # half-width, Hz
    fb = np.maximum(0.0, 1.0 - np.abs(freqs[None, :] - centre[:, None]) / half[:, None])
    fb /= np.maximum(fb.sum(axis=1, keepdims=True), 1e-9)
    return fb.astype(np.float32)


def semitone_spectrum(samples, sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, hop: int = HOP_LENGTH,
                      midi_lo: int = 24, midi_hi: int = 107):
    """Log-frequency magnitude spectrum, one bin per semitone from ``midi_lo`` (C1) to ``midi_hi``
    (B7): ``(B, N) -> (B, midi_hi - midi_lo + 1, T)`` (linear magnitude)."""
    import torch

    x = _as_batch(samples)
    fb = _on_device("semitone_filterbank", (sample_rate, n_fft, midi_lo, midi_hi), str(x.device))
    top = min(int(midi_to_hz(midi_hi + 1) * n_fft / sample_rate) + 2, fb.shape[1])
    mag = stft_magnitude(x, n_fft, hop, max_bin=top)
    return torch.einsum("pf,bft->bpt", fb[:, :top], mag)


@functools.lru_cache(maxsize=16)
def chroma_filterbank(sample_rate: int, n_fft: int, fmin: float, fmax: float, start_midi: int = 57):
    """``(12, n_fft//2 + 1)``: each FFT bin between fmin and fmax adds to the pitch class of its
    fractional MIDI pitch, split between the two nearest classes (triangular, 1 semitone wide).
    Bin 0 is the pitch class of ``start_midi`` (57 = A)."""
    import numpy as np

    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    fb = np.zeros((12, freqs.size))
    ok = (freqs >= fmin) & (freqs <= fmax)
    pitch = 69.0 + 12.0 * np.log2(freqs[ok] / A4_HZ) - start_midi  # semitones above the start class
    lo = np.floor(pitch)
    frac = pitch - lo
    cols = np.nonzero(ok)[0]
    np.add.at(fb, ((lo.astype(int)) % 12, cols), 1.0 - frac)
    np.add.at(fb, ((lo.astype(int) + 1) % 12, cols), frac)
    return fb.astype(np.float32)


def chroma(samples, sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, hop: int = HOP_LENGTH,
           fmin: float = 55.0, fmax: float = 5000.0, norm: bool = True, start: str = CHROMA_START):
    """Chroma from the power spectrum: ``(B, N) -> (B, 12, T)``, bin 0 = ``start`` ("A" or "C").

    With ``norm`` each frame is divided by its maximum (librosa's ``norm=inf``); silent frames stay 0.
    """
    import torch

    x = _as_batch(samples)
    start_midi = {"A": 57, "C": 60}[start]
    fb = _on_device("chroma_filterbank", (sample_rate, n_fft, float(fmin), float(fmax), start_midi), str(x.device))
    top = min(int(fmax * n_fft / sample_rate) + 2, fb.shape[1])  # bins above fmax have no weight
    power = stft_magnitude(x, n_fft, hop, power=2.0, max_bin=top)
    c = torch.einsum("cf,bft->bct", fb[:, :top], power)
    if norm:
        c = c / c.amax(dim=1, keepdim=True).clamp_min(1e-10)
    return c


def num_frames(num_samples: int, hop: int = HOP_LENGTH) -> int:
    """Frames a centred STFT gives for ``num_samples`` samples."""
    return 1 + num_samples // hop
