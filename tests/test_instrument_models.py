"""The instrument models (the seed's LSTM/BLSTM exactly, the CNNs), augmentation, and a model
that learns a tiny family task through the core training loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from songkit.tasks.instrument.augment import (
    AugmentConfig,
    augment_note,
    mixup,
    random_eq,
    synthetic_reverb,
)
from songkit.tasks.instrument.constants import CLIP_SAMPLES, FAMILIES, SAMPLE_RATE
from songkit.tasks.instrument.model import MODELS, build_model, input_samples


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_maps_audio_to_11_logits(name):
    torch.manual_seed(0)
    model = build_model(name).eval()
    x = 0.1 * torch.randn(3, input_samples(model))
    assert model(x).shape == (3, len(FAMILIES))
    # a longer input is cut to the model's clip: the same output
    longer = torch.cat([x, torch.randn(3, 5000)], dim=1)
    assert torch.allclose(model(longer), model(x), atol=1e-5)


def test_lstm_is_the_seed_network():
    m = build_model("lstm")
    assert (m.rnn.input_size, m.rnn.hidden_size, m.rnn.num_layers) == (160, 128, 3)
    assert not m.rnn.bidirectional and m.out.in_features == 128 and input_samples(m) == CLIP_SAMPLES == 16000
    # 100 steps of 160 samples: the output at step t depends only on samples before (t + 1) * 160
    x = torch.randn(1, 16000)
    y = x.clone()
    y[0, 15840:] = 0  # only the last step differs
    r1, _ = m.rnn(x.reshape(1, 100, 160))
    r2, _ = m.rnn(y.reshape(1, 100, 160))
    assert torch.allclose(r1[:, :99], r2[:, :99]) and not torch.allclose(r1[:, 99], r2[:, 99])
    # parameter count of nn.LSTM(160, 128, 3) + Linear(128, 11)
    lstm = 4 * 128 * (160 + 128 + 2) + 2 * 4 * 128 * (128 + 128 + 2)
    assert sum(p.numel() for p in m.parameters()) == lstm + 128 * 11 + 11


def test_blstm_is_the_seed_network():
    m = build_model("blstm")
    assert m.rnn.bidirectional and m.rnn.num_layers == 3 and m.out.in_features == 256


def test_log_mel_front_end_shape():
    m = build_model("cnn2d")
    mel = m.mel(torch.randn(2, 16000))
    assert mel.shape == (2, 64, 101)  # 64 mel bins x 101 frames of 10 ms


def test_config_round_trip_through_a_dict():
    from dataclasses import asdict

    m = build_model("cnn2d", {"channels": [8, 8, 8, 8]})
    again = build_model("cnn2d", asdict(m.cfg))
    assert again.cfg == m.cfg and again.body[0].out_channels == 8


def test_augment_is_seeded_and_gain_stays_in_range():
    rng = np.random.default_rng(0)
    wave = (rng.standard_normal(20000) * 0.1).astype(np.float32)
    cfg = AugmentConfig(eq_db=6.0, reverb=1.0)
    a1 = augment_note(wave, 16000, cfg, np.random.default_rng(5))
    a2 = augment_note(wave, 16000, cfg, np.random.default_rng(5))
    assert np.array_equal(a1, a2) and a1.shape == (16000,) and a1.dtype == np.float32
    assert not np.array_equal(a1, augment_note(wave, 16000, cfg, np.random.default_rng(6)))
    only_gain = AugmentConfig(max_shift_ms=0, noise_snr_db=(), max_semitones=0, mixup_alpha=0)
    ratios = [20 * np.log10(np.abs(augment_note(wave, 16000, only_gain, np.random.default_rng(k))).max()
                            / np.abs(wave[:16000]).max()) for k in range(20)]
    assert max(map(abs, ratios)) <= 6.0 + 1e-4 and max(map(abs, ratios)) > 0.5


def test_mixup_keeps_target_distributions():
    rng = np.random.default_rng(0)
    waves = rng.standard_normal((8, 100)).astype(np.float32)
    targets = np.eye(11, dtype=np.float32)[rng.integers(0, 11, 8)]
    w, t = mixup(waves, targets, 0.2, np.random.default_rng(1))
    assert w.shape == waves.shape and np.allclose(t.sum(1), 1.0) and (t.max(1) >= 0.5).all()


def test_random_eq_and_reverb_golden_properties():
    t = np.arange(16000) / SAMPLE_RATE
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    # a pure tone through the EQ stays a tone at 440 Hz within the +-6 dB of the curve
    y = random_eq(x, 6.0, np.random.default_rng(0))
    assert int(np.argmax(np.abs(np.fft.rfft(y)))) == 440
    assert 0.5 <= np.abs(y[2000:-2000]).max() / 0.5 <= 2.0
    # reverb: the same peak level, energy spread after the note's end
    z = x.copy()
    z[8000:] = 0
    r = synthetic_reverb(z, np.random.default_rng(0))
    assert abs(np.abs(r).max() - np.abs(z).max()) < 1e-5 and np.abs(r[8200:]).max() > 1e-3


def test_pcen_front_end_is_level_invariant():
    """PCEN divides each band by its smoothed energy: 20 dB louder gives nearly the same features."""
    from songkit.tasks.instrument.model import LogMel, MelConfig

    torch.manual_seed(0)
    front = LogMel(MelConfig(frontend="pcen")).eval()
    x = 0.01 * torch.randn(1, CLIP_SAMPLES)
    a, b = front(x), front(10 * x)
    assert a.shape == (1, 64, 101) and torch.isfinite(a).all()
    log_front = LogMel(MelConfig()).eval()
    pcen_change = (a - b)[..., 20:].abs().mean() / a.std()
    log_change = (log_front(x) - log_front(10 * x)).abs().mean() / log_front(x).std()
    assert pcen_change < 0.5 * log_change


def test_config_check_ranges():
    from songkit.tasks.instrument.model import MelConfig

    for bad, field in [({"n_mels": 0}, "n_mels"), ({"fmin": 9000.0}, "fmin"), ({"frontend": "x"}, "frontend")]:
        with pytest.raises(ValueError, match=field):
            MelConfig(**bad).check()
    MelConfig().check()


def test_precision_path_per_model(forced_bf16):
    """Where the CPU has bf16: conv nets run channels-last under bf16; the LSTMs stay fp32 (use_amp False)."""
    D = forced_bf16
    cnn, lstm = build_model("cnn2d"), build_model("lstm")
    assert D.amp_dtype("cpu", True, cnn) == torch.bfloat16 and D.amp_dtype("cpu", True, lstm) is None
    assert D.amp_dtype("cpu", False, cnn) is None  # --no-amp
    cnn = D.place_model(cnn, "cpu", amp=True)
    assert cnn.body[0].weight.is_contiguous(memory_format=torch.channels_last)
