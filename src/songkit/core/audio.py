"""Audio in, features out: one front end shared by the audio tasks (chords, instrument).

``read_audio`` reads any file soundfile reads (WAV, FLAC, OGG...), any channel count
and sample rate, and returns mono float32 at the rate asked for (windowed-sinc
resampling in torch, the Hann-windowed design torchaudio uses, for any pair of rates).
The header is checked before anything is read, and the file is read in blocks.

The feature functions are torch, batched ``(B, N) -> (B, F, T)``, and run on the
device of their input. Filterbanks are cached per (parameters, device).

Signal constants live here once and are derived from each other (whisper-style);
a task may pick other values but should derive them the same way. (About 490 lines, kept as
one module on purpose: the reader, the resampler and the features share those constants and
their checks, and a reader of one needs the others in view.)
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
from collections.abc import Iterator
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


MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1_000, 384_000  # Hz: what audio files hold; beyond is a damaged header
MAX_CHANNELS = 64
MAX_SECONDS = 20 * 60.0  # default longest input read_audio reads (a caller passes its own limit)
_BLOCK_FRAMES = 1 << 18  # read in blocks: memory follows what decodes, not what a header claims


def audio_info(path: str | os.PathLike, max_seconds: float | None = MAX_SECONDS):
    """``(sample_rate, frames, channels)`` of an audio file from its header alone, checked: a sample rate
    within 1,000..384,000 Hz, 1..64 channels, at most ``max_seconds`` (None: no limit). Anything else is
    one UserError line naming the file, before a sample is read."""
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
        with _quiet_native_stderr():
            info = sf.info(str(p))
    except Exception as e:  # libsndfile's errors, and ValueError/TypeError from damaged headers
        raise UserError(f"{p}: not a readable audio file ({_first_line(e)})") from None
    sr, frames, channels = int(info.samplerate), int(info.frames), int(info.channels)
    if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
        raise UserError(f"{p}: sample rate {sr:,} Hz outside {MIN_SAMPLE_RATE:,}..{MAX_SAMPLE_RATE:,} Hz "
                        "(damaged header?)")
    if not 1 <= channels <= MAX_CHANNELS:
        raise UserError(f"{p}: {channels} channels, expected 1..{MAX_CHANNELS} (damaged header?)")
    if max_seconds is not None and frames > max_seconds * sr:
        raise UserError(f"{p}: {_clock(frames / sr)} of audio, longer than the {_clock(max_seconds)} this reads")
    return sr, frames, channels


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence file descriptor 2 while libsndfile runs: its MP3 decoder (mpg123) prints lines such as
    "Note: Illegal Audio-MPEG-Header" for damaged files that libsndfile takes for MP3, and a user error
    must be one line. Python's own sys.stderr is untouched (it is flushed first)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError, AttributeError):
        yield
        return
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:120] if text else type(e).__name__


def _clock(seconds: float) -> str:
    """1:02:03 / 4:05 / 0:07 for messages (the header may claim centuries)."""
    if seconds > 1e7:
        return f"{seconds:.3g} s"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def read_audio(path: str | os.PathLike, sample_rate: int | None = SAMPLE_RATE, mono: bool = True,
               max_seconds: float | None = MAX_SECONDS):
    """Read an audio file as float32 at ``sample_rate`` (None keeps the file's rate).

    Returns ``(samples, sr)``: ``samples`` is ``(N,)`` when ``mono`` else ``(C, N)``. The header is checked
    first (:func:`audio_info`: rate, channels, at most ``max_seconds``), then the file is read in blocks, so
    a damaged header cannot make a small file allocate gigabytes. An empty, truncated, non-finite or
    non-audio file is a ``UserError`` naming the file.
    """
    import numpy as np
    import soundfile as sf

    p = Path(path)
    sr_in, frames, channels = audio_info(p, max_seconds)
    limit = frames if frames > 0 else int((max_seconds or 1e9) * sr_in)  # streamed files claim 0 frames
    blocks, total = [], 0
    try:
        with _quiet_native_stderr(), sf.SoundFile(str(p)) as f:
            while total < limit:
                block = f.read(min(_BLOCK_FRAMES, limit - total), dtype="float32", always_2d=True)  # (n, C)
                if block.shape[0] == 0:
                    break
                total += block.shape[0]
                if not np.isfinite(block).all():
                    raise UserError(f"{p}: audio contains NaN or infinite samples")
                blocks.append(block.mean(axis=1, keepdims=True) if mono else block)
    except UserError:
        raise
    except Exception as e:  # libsndfile's errors, and ValueError/TypeError from damaged data
        raise UserError(f"{p}: not a readable audio file ({_first_line(e)})") from None
    if total == 0:
        raise UserError(f"{p}: no audio samples (empty or truncated file)")
    if frames > 0 and total < frames:
        raise UserError(f"{p}: truncated audio file ({total} of {frames} frames)")
    data = np.concatenate(blocks).T  # (C, N)
    del blocks
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


# ----------------------------------------------------------------------------- resampling
_ONE_BANK_MAX = 1 << 21  # elements of a one-convolution polyphase bank (8 MB); larger pairs go in groups


def _sinc(d, scale: float, width_zc: int):
    """The Hann-windowed sinc low-pass at offsets ``d`` (input samples, float64 torch), cut-off ``scale``
    of the input's Nyquist, ``width_zc`` zero crossings each side (torchaudio's ``sinc_interp_hann``)."""
    import torch

    t = (d * scale).clamp(-width_zc, width_zc)
    window = torch.cos(t * math.pi / width_zc / 2) ** 2
    t = t * math.pi
    safe = torch.where(t == 0, torch.ones_like(t), t)
    return torch.where(t == 0, torch.ones_like(t), torch.sin(safe) / safe) * window * scale


@functools.lru_cache(maxsize=16)
def _sinc_kernel(orig: int, new: int, width_zc: int, rolloff: float):
    """Exact polyphase bank ``(new, 1, K)`` for resampling orig -> new (co-prime), and its half width."""
    import torch

    scale = min(orig, new) * rolloff / orig
    width = math.ceil(width_zc / scale)
    idx = torch.arange(-width, width + orig, dtype=torch.float64)[None, None]
    d = idx - torch.arange(0, new, dtype=torch.float64)[:, None, None] * orig / new  # (new, 1, K)
    return _sinc(d, scale, width_zc).float(), width


def _phase_groups(orig: int, new: int, width_zc: int, rolloff: float) -> Iterator[tuple]:
    """The exact polyphase filters of orig -> new (co-prime) in groups of neighbouring phases:
    ``(j0, j1, s0, kernel (j1 - j0, K))``. Output ``n = j + m * new`` (phase j) sits at input position
    ``c = n * orig / new = s_j + m * orig + frac_j``; phase j's taps start ``s_j - s0`` into its group's
    kernel, so one group is one strided product over the input with a kernel of about 4 W taps."""
    import torch

    scale = min(orig, new) * rolloff / orig
    width = math.ceil(width_zc / scale)
    per = max(1, 2 * width * new // orig)  # phases per group: their starts spread over about 2 W inputs
    for j0 in range(0, new, per):
        j = torch.arange(j0, min(new, j0 + per), dtype=torch.int64)
        start = j * orig // new  # s_j
        frac = (j * orig - start * new).double() / new
        rel = start - start[0]
        taps = torch.arange(2 * width + int(rel[-1]), dtype=torch.float64)
        d = taps[None] - rel[:, None].double() - (width - 1) - frac[:, None]  # input minus output position
        kernel = torch.where((d * scale).abs() < width_zc, _sinc(d, scale, width_zc), torch.zeros_like(d))
        yield int(j0), int(j[-1]) + 1, int(start[0]), kernel.float()


@functools.lru_cache(maxsize=4)
def _cached_groups(orig: int, new: int, width_zc: int, rolloff: float) -> tuple:
    return tuple(_phase_groups(orig, new, width_zc, rolloff))


def _resample_grouped(flat, orig: int, new: int, width_zc: int, rolloff: float, target: int):
    """Exact windowed-sinc resampling for rate pairs whose one-convolution bank would be huge (44,056 ->
    22,050: 11,025 phases x 22,096 taps): each group of phases is a strided view of the input times its
    small kernel, in chunks of outputs. ``(B, N) -> (B, target)``."""
    import torch

    width = math.ceil(width_zc / (min(orig, new) * rolloff / orig))
    steps = math.ceil(target / new)  # outputs per phase
    n = flat.shape[-1]
    right = max(width + 1, (steps + 1) * orig + 4 * width + orig - n)
    padded = torch.nn.functional.pad(flat, (width, right)).contiguous()  # input i sits at i + width
    rows, length = padded.shape
    out = flat.new_zeros(rows, new, steps)
    small = new * 4 * width <= 1 << 23  # the groups of usual odd rates are kept (at most 32 MB)
    groups = _cached_groups(orig, new, width_zc, rolloff) if small else _phase_groups(orig, new, width_zc, rolloff)
    for j0, j1, s0, kernel in groups:
        kernel = kernel.to(flat.device, flat.dtype).T  # (K, phases)
        chunk = max(1, (1 << 22) // (kernel.shape[0] * rows))
        for m0 in range(0, steps, chunk):
            m1 = min(steps, m0 + chunk)
            frames = padded.as_strided((rows, m1 - m0, kernel.shape[0]), (length, orig, 1),
                                       padded.storage_offset() + s0 + 1 + m0 * orig)  # (B, m, K), a view
            out[:, j0:j1, m0:m1] = (frames @ kernel).transpose(1, 2)
    return out.transpose(1, 2).reshape(rows, -1)[:, :target]


def resample(x, orig_sr: int, new_sr: int, width_zc: int = 16, rolloff: float = 0.945,
             one_bank: bool | None = None):
    """Band-limited resampling of ``x`` (numpy or torch, ``(..., N)``) from orig_sr to new_sr, any pair of
    rates (44,056 -> 22,050 too), in torch alone.

    Windowed-sinc filtering (Hann window, ``width_zc`` zero crossings, cut-off at ``rolloff`` of the lower
    Nyquist); output sample n sits at input position ``n * orig_sr / new_sr``. Rate pairs whose polyphase
    bank is small run as one strided convolution; others in groups of neighbouring phases (the same
    numbers; ``one_bank`` forces either). Output length is ``ceil(N * new_sr / orig_sr)``.
    """
    import numpy as np
    import torch

    if orig_sr == new_sr:
        return x
    if min(orig_sr, new_sr) <= 0:
        raise ValueError(f"sample rates must be positive, not {orig_sr} -> {new_sr}")
    is_np = isinstance(x, np.ndarray)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) if is_np else x
    g = math.gcd(int(orig_sr), int(new_sr))
    orig, new = int(orig_sr) // g, int(new_sr) // g
    shape = xt.shape
    flat = xt.reshape(-1, shape[-1])
    target = math.ceil(new * flat.shape[-1] / orig)
    width = math.ceil(width_zc / (min(orig, new) * rolloff / orig))
    if one_bank if one_bank is not None else new * (2 * width + orig) <= _ONE_BANK_MAX:
        kernel, width = _sinc_kernel(orig, new, width_zc, rolloff)
        kernel = kernel.to(flat.device, flat.dtype)
        padded = torch.nn.functional.pad(flat[:, None], (width, width + orig))
        out = torch.nn.functional.conv1d(padded, kernel, stride=orig)  # (B, new, frames)
        out = out.transpose(1, 2).reshape(flat.shape[0], -1)[:, :target]
    else:
        out = _resample_grouped(flat, orig, new, width_zc, rolloff, target)
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
