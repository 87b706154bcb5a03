"""core.audio: headers checked before reading (issue 14), and a resampler for any pair of rates in torch
alone (issue 15), tested against sines and a direct float64 evaluation of the filter."""

from __future__ import annotations

import io
import struct
import sys

import numpy as np
import pytest
import soundfile as sf
from fuzz import SLOW_EXAMPLES, as_file, fuzz, memory_limit, peak_rss_mb, time_limit

from songkit.core.audio import MAX_SAMPLE_RATE, audio_info, read_audio, resample
from songkit.core.errors import UserError

# rate pairs: one-convolution banks (44,100 / 48,000 / 8,000 / 384,000) and grouped phases (the odd rates)
PAIRS = [(44100, 22050), (48000, 22050), (8000, 22050), (384000, 22050), (44056, 22050), (22254, 44100),
         (22050, 44056), (11025, 16000)]


def sine_error(orig: int, new: int, freq: float, seconds: float = 1.0, **kw) -> float:
    """Largest error of a resampled sine against the sine itself, 5 % away from either end."""
    x = np.sin(2 * np.pi * freq * np.arange(int(orig * seconds)) / orig).astype(np.float32)
    y = resample(x, orig, new, **kw)
    assert len(y) == -(-len(x) * new // orig)
    ref = np.sin(2 * np.pi * freq * np.arange(len(y)) / new)
    edge = int(0.05 * new)
    return float(np.abs(y[edge:-edge] - ref[edge:-edge]).max())


@pytest.mark.parametrize(("orig", "new"), PAIRS)
def test_resampled_sine_is_the_sine(orig, new):
    assert sine_error(orig, new, 440.0) < 5e-5  # measured 1.4e-5 .. 4.0e-5
    # 80 % of the lower Nyquist: the Hann-windowed filter's pass band still holds (measured 1.7e-3 .. 2.2e-3)
    assert sine_error(orig, new, 0.4 * min(orig, new)) < 3e-3


def test_above_the_lower_nyquist_is_removed():
    x = np.sin(2 * np.pi * 15000 * np.arange(44056) / 44056).astype(np.float32)  # above 11,025 Hz
    y = resample(x, 44056, 22050)
    assert np.abs(y[1000:-1000]).max() < 2e-3  # no alias at 7,050 Hz


def direct(x: np.ndarray, orig: int, new: int, n: int, width_zc: int = 16, rolloff: float = 0.945) -> float:
    """Output sample n evaluated from the filter's formula in float64 (no polyphase bookkeeping)."""
    scale = min(orig, new) * rolloff / orig
    c = n * orig / new
    i = np.arange(int(c) - 2000, int(c) + 2000)
    t = np.clip((i - c) * scale, -width_zc, width_zc)
    h = np.sinc(t) * np.cos(t * np.pi / width_zc / 2) ** 2 * scale * (np.abs((i - c) * scale) < width_zc)
    inside = (i >= 0) & (i < len(x))
    return float((h * np.where(inside, x[np.clip(i, 0, len(x) - 1)], 0)).sum())


@pytest.mark.parametrize(("orig", "new"), [(48000, 22050), (44056, 22050), (22050, 44056), (383999, 22050)])
def test_every_path_matches_the_filter_formula(orig, new):
    x = np.random.default_rng(0).standard_normal(orig // 4).astype(np.float32)
    y = resample(x, orig, new)
    for n in [0, 1, 2, 777, len(y) // 2, len(y) - 2, len(y) - 1]:
        assert y[n] == pytest.approx(direct(x, orig, new, n), abs=1e-5)


def test_both_paths_agree_and_keep_channels():
    x = np.random.default_rng(1).standard_normal((2, 24000)).astype(np.float32)  # (C, N)
    one = resample(x, 48000, 22050, one_bank=True)
    grouped = resample(x, 48000, 22050, one_bank=False)
    assert one.shape == grouped.shape == (2, 11025)
    np.testing.assert_allclose(one, grouped, atol=1e-6)
    np.testing.assert_allclose(one[1], resample(x[1], 48000, 22050), atol=1e-6)


def test_resampling_needs_no_scipy(monkeypatch, tmp_path):
    """`pip install .` brings no scipy: the odd rates that used to import it must not."""
    for name in [m for m in list(sys.modules) if m == "scipy" or m.startswith("scipy.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "scipy", None)  # any import of scipy now fails
    path = tmp_path / "odd.wav"
    sf.write(path, np.zeros(44056, np.float32), 44056)
    samples, sr = read_audio(path, 22050)
    assert sr == 22050 and samples.shape == (22050,)


# ----------------------------------------------------------------------------- reading
def wav_bytes(seconds: float = 0.25, sr: int = 8000, channels: int = 1, fmt: str = "WAV") -> bytes:
    t = np.arange(int(sr * seconds)) / sr
    x = np.stack([0.5 * np.sin(2 * np.pi * 440 * (c + 1) * t) for c in range(channels)], axis=1).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt, subtype={"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS"}[fmt])
    return buf.getvalue()


def test_read_in_blocks_equals_soundfile(tmp_path):
    path = tmp_path / "st.wav"
    path.write_bytes(wav_bytes(seconds=3.0, sr=48000, channels=2))
    ref, _ = sf.read(path, dtype="float32", always_2d=True)  # (N, 2)
    stereo, sr = read_audio(path, None, mono=False)
    assert sr == 48000 and stereo.shape == (2, 144000)
    np.testing.assert_array_equal(stereo, ref.T)
    mono, _ = read_audio(path, None)
    np.testing.assert_allclose(mono, ref.mean(axis=1), atol=1e-7)


def wav_with(sample_rate: int | None = None, data_size: int | None = None, channels: int | None = None) -> bytes:
    """A valid little WAV with its header fields replaced (the canonical 44-byte header soundfile writes)."""
    data = bytearray(wav_bytes())
    assert data[36:40] == b"data"
    if sample_rate is not None:
        data[24:28] = struct.pack("<I", sample_rate)
    if channels is not None:
        data[22:24] = struct.pack("<H", channels)
    if data_size is not None:
        data[40:44] = struct.pack("<I", data_size)
    return bytes(data)


def flac_with(sample_rate: int | None = None, total: int | None = None) -> bytes:
    """A little FLAC whose STREAMINFO claims another rate (20 bits) or length (36 bits)."""
    data = bytearray(wav_bytes(fmt="FLAC"))
    assert data[:4] == b"fLaC"
    bits = int.from_bytes(data[18:26], "big")  # rate(20) channels(3) bits(5) total samples(36)
    if sample_rate is not None:
        bits = (bits & ((1 << 44) - 1)) | (sample_rate << 44)
    if total is not None:
        bits = (bits & ~((1 << 36) - 1)) | total
    data[18:26] = bits.to_bytes(8, "big")
    return bytes(data)


HOSTILE = {
    # name: (file bytes, suffix, what the one line says)
    "absurd WAV rate": (wav_with(sample_rate=2_000_000_000), ".wav", r"sample rate 2,000,000,000 Hz outside"),
    "WAV rate just over": (wav_with(sample_rate=MAX_SAMPLE_RATE + 1), ".wav", r"sample rate 384,001 Hz outside"),
    "WAV rate too low": (wav_with(sample_rate=10), ".wav", r"sample rate 10 Hz outside"),
    "absurd WAV data size": (wav_with(data_size=0xFFFFFFF0), ".wav", r"truncated WAV file"),
    "WAV zero channels": (wav_with(channels=0), ".wav", r"not a readable audio file|channels"),
    "FLAC claiming 2^36 samples": (flac_with(total=(1 << 36) - 1), ".flac", r"longer than the 20:00 this reads"),
    "FLAC absurd rate": (flac_with(sample_rate=1_000_000), ".flac", r"sample rate 1,000,000 Hz outside"),
    "FLAC cut short": (wav_bytes(fmt="FLAC")[:200], ".flac", r"."),
    "not audio": (b"hello, I am text\n" * 10, ".wav", r"not a readable audio file"),
    "empty": (b"", ".wav", r"empty file"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_headers_are_one_line_before_reading(tmp_path, name):
    data, suffix, message = HOSTILE[name]
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(data)
    before = peak_rss_mb()
    with pytest.raises(UserError, match=message) as err, memory_limit(512), time_limit(5):
        read_audio(path, 22050)
    line = err.value.format_message()
    assert "\n" not in line and line.startswith(f"{path}: "), line
    assert peak_rss_mb() - before < 200  # the 128 kB files that took gigabytes (issue 14)


def test_longer_than_the_callers_limit(tmp_path):
    path = tmp_path / "long.wav"
    path.write_bytes(wav_bytes(seconds=3.0))
    with pytest.raises(UserError, match=r"long\.wav: 0:03 of audio, longer than the 0:02 this reads"):
        read_audio(path, 22050, max_seconds=2)
    assert audio_info(path, max_seconds=None) == (8000, 24000, 1)


def test_ogg_round_trip(tmp_path):
    path = tmp_path / "a.ogg"
    path.write_bytes(wav_bytes(seconds=1.0, fmt="OGG"))
    samples, sr = read_audio(path, 16000)
    assert sr == 16000 and abs(len(samples) - 16000) <= 1 and 0.3 < np.abs(samples).max() < 0.7


SEEDS = {"wav": (lambda: wav_bytes(sr=22050), ".wav"), "flac": (lambda: wav_bytes(fmt="FLAC"), ".flac"),
         "ogg": (lambda: wav_bytes(fmt="OGG"), ".ogg")}


@pytest.mark.parametrize("kind", list(SEEDS))
def test_fuzz_audio_headers(kind):
    make, suffix = SEEDS[kind]
    resample(np.zeros(64, np.float32), 8000, 22050)  # torch's first call takes seconds here: not a case's time
    before = peak_rss_mb()
    fuzz(as_file(lambda p: read_audio(p, 22050), suffix), make(), examples=30, memory_mb=512)
    assert peak_rss_mb() - before < 300  # MB over the whole run


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(SEEDS))
def test_fuzz_audio_headers_many(kind):
    make, suffix = SEEDS[kind]
    resample(np.zeros(64, np.float32), 8000, 22050)
    fuzz(as_file(lambda p: read_audio(p, 22050), suffix), make(), examples=SLOW_EXAMPLES, memory_mb=512)


def test_damaged_file_taken_for_mp3_prints_nothing_but_the_line(tmp_path):
    """A mutated FLAC that libsndfile decodes as MP3: mpg123's "Note: Illegal Audio-MPEG-Header" lines on
    file descriptor 2 stay out of the user's terminal (a subprocess sees the real descriptor)."""
    import subprocess

    data = bytearray(wav_bytes(fmt="FLAC"))
    data[:4] = b"\xff\xfb\x90\x00"  # an MPEG audio frame header where "fLaC" was
    path = tmp_path / "odd.flac"
    path.write_bytes(bytes(data))
    code = ("import sys\nfrom songkit.core.audio import read_audio\nfrom songkit.core.errors import UserError\n"
            f"try:\n    read_audio({str(path)!r}, None)\nexcept UserError as e:\n    print(e.format_message())\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr[-500:]
