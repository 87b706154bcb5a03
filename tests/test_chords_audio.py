"""The shared audio front end (songkit.core.audio): reading, resampling, features."""

import numpy as np
import pytest
import soundfile as sf
import torch

from songkit.core import audio
from songkit.core.errors import UserError


def _tone(freq, sr, seconds=1.0, amp=0.5):
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_read_audio_stereo_44k_to_mono_22k(tmp_path):
    sr = 44100
    stereo = np.stack([_tone(440, sr), _tone(440, sr)], 1)
    sf.write(tmp_path / "a.flac", stereo, sr)
    y, r = audio.read_audio(tmp_path / "a.flac", 22050)
    assert r == 22050 and y.dtype == np.float32 and y.shape == (22050,)
    ref = _tone(440, 22050)
    assert np.abs(y[500:-500] - ref[500:-500]).max() < 2e-3  # flac is 16-bit


@pytest.mark.parametrize("sr_in", [48000, 16000, 8000, 44100])
def test_resample_keeps_a_tone(sr_in):
    y = audio.resample(_tone(1000, sr_in), sr_in, 22050)
    assert y.shape == (int(np.ceil(sr_in * 22050 / sr_in)),)
    ref = _tone(1000, 22050)
    assert np.abs(y[300:-300] - ref[300:-300]).max() < 1e-3


def test_resample_removes_content_above_new_nyquist():
    y = audio.resample(_tone(15000, 44100), 44100, 22050)  # 15 kHz > 11.025 kHz
    assert np.abs(y[300:-300]).max() < 1e-3


def test_bad_audio_files_name_the_file(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all\n" * 10)
    good = tmp_path / "good.wav"
    sf.write(good, _tone(440, 22050), 22050)
    trunc = tmp_path / "trunc.wav"
    trunc.write_bytes(good.read_bytes()[:1000])
    for p in (empty, text, trunc, tmp_path / "missing.wav"):
        with pytest.raises(UserError, match=p.name):
            audio.read_audio(p)


def test_chroma_of_a_major_triad_peaks_on_its_notes():
    sr = 22050
    y = _tone(220.0, sr) + _tone(277.18, sr) + _tone(329.63, sr)  # A C# E
    c = audio.chroma(torch.from_numpy(np.stack([y, y])), sr)  # (2, 12, T)
    assert c.shape[:2] == (2, 12)
    mean = c[0, :, 5:-5].mean(-1)
    assert set(torch.topk(mean, 3).indices.tolist()) == {0, 4, 7}  # A, C#, E from A
    c_from_c = audio.chroma(y, sr, start="C")[0, :, 5:-5].mean(-1)
    assert torch.allclose(c_from_c, torch.roll(mean, -3), atol=1e-6)


def test_log_mel_shape_and_peak():
    y = _tone(1000, 22050)
    m = audio.log_mel(torch.from_numpy(y)[None], 22050, n_fft=2048, hop=512, n_mels=64)
    assert m.shape == (1, 64, 1 + len(y) // 512)
    peak = int(m[0, :, 10].argmax())
    fb = audio.mel_filterbank(22050, 2048, 64, 0.0, None)
    assert abs(fb[peak].argmax() * 22050 / 2048 - 1000) < 60


def test_semitone_spectrum_finds_the_note():
    s = audio.semitone_spectrum(_tone(110.0, 22050), midi_lo=24, midi_hi=107)  # A2 = MIDI 45
    assert int(s[0, :, 10].argmax()) + 24 == 45


@pytest.mark.parametrize("sr_in", [44100, 48000])
def test_chord_chain_short_resampler_matches_the_general_one(tmp_path, sr_in):
    """The chords chain's short anti-alias filter (constants.RESAMPLE_*) gives the chroma of the general
    resampler within 1e-3, on a triad with partials up to 10 kHz plus noise (content that would alias)."""
    from songkit.tasks.chords.features import audio_features, normalize_chroma, samples_features
    from songkit.tasks.chords.model import CNNBLSTMConfig

    cfg = CNNBLSTMConfig()
    rng = np.random.default_rng(0)
    t = np.arange(4 * sr_in) / sr_in
    x = sum(np.sin(2 * np.pi * 261.63 * r * h * t) / h for r in (1, 1.26, 1.5) for h in range(1, 40)
            if 261.63 * r * h < 10000)
    x = (0.05 * x + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    sf.write(tmp_path / "a.wav", x / np.abs(x).max(), sr_in, subtype="FLOAT")
    fast, duration = audio_features(tmp_path / "a.wav", cfg)
    general = samples_features(audio.read_audio(tmp_path / "a.wav", cfg.sample_rate)[0], cfg)
    assert duration == pytest.approx(4.0)
    assert fast.shape == general.shape
    assert np.abs(normalize_chroma(fast) - normalize_chroma(general)).max() < 1e-3
