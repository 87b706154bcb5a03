"""The instrument models (the seed's LSTM/BLSTM exactly, the CNNs), augmentation, and a model
that learns a tiny family task through the core training loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from songkit.tasks.instrument.model import MODELS, build_model, input_samples
from songkit.tasks.instrument.spec import CLIP_SAMPLES, FAMILIES
from songkit.tasks.instrument.task import (
    AugmentConfig,
    InstrumentTrainTask,
    augment,
)


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


def test_augment_is_seeded_and_keeps_targets_distributions():
    rng = np.random.default_rng(0)
    waves = rng.standard_normal((8, 16000)).astype(np.float32) * 0.1
    targets = np.eye(11, dtype=np.float32)[rng.integers(0, 11, 8)]
    a1, t1 = augment(waves, targets, AugmentConfig(), np.random.default_rng(5))
    a2, t2 = augment(waves, targets, AugmentConfig(), np.random.default_rng(5))
    assert np.array_equal(a1, a2) and np.array_equal(t1, t2)
    assert a1.shape == waves.shape and np.allclose(t1.sum(1), 1.0)
    assert (t1.max(1) >= 0.5).all()  # mixup: the first example dominates
    # gain alone stays within +-6 dB
    g, _ = augment(waves, targets, AugmentConfig(max_shift_ms=0, noise_snr_db=(), max_semitones=0,
                                                 mixup_alpha=0), np.random.default_rng(1))
    ratio = 20 * np.log10(np.abs(g).max(1) / np.abs(waves).max(1))
    assert (np.abs(ratio) <= 6.0 + 1e-4).all() and np.abs(ratio).max() > 0.5


def test_a_model_learns_a_tiny_family_task(tmp_path):
    """cnn1d separates three synthetic families (bass/mallet/organ) on notes it has not seen."""
    from test_instrument_data import make_nsynth

    from songkit.core.train import TrainConfig, fit
    from songkit.tasks.instrument.data import load_clips, read_examples

    root = make_nsynth(tmp_path / "ns", {"train": 12, "valid": 6})
    tw, tl, _ = load_clips(read_examples(root / "nsynth-train"), 16000)
    vw, vl, _ = load_clips(read_examples(root / "nsynth-valid"), 16000)
    model = build_model("cnn1d", {"channels": [32, 32], "hidden": 32})
    task = InstrumentTrainTask(tw, tl, vw, vl, batch_size=8, seed=0, aug=AugmentConfig(mixup_alpha=0))
    cfg = TrainConfig(epochs=8, lr=2e-3, optimizer="adam", weight_decay=0, schedule="none",
                      monitor="val_acc", monitor_mode="max")
    history = fit(model, task, cfg, tmp_path / "run", {"task": "instrument", "model": "cnn1d",
                                                       "config": model.cfg, "vocab": FAMILIES}, device="cpu")
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert max(h["val_acc"] for h in history) >= 0.9  # chance is 1/3
    assert (tmp_path / "run" / "best.ckpt").is_file()


def test_batches_are_deterministic_and_cover_the_set():
    waves = np.random.default_rng(0).standard_normal((10, 100)).astype(np.float32)
    labels = np.arange(10) % 11
    task = InstrumentTrainTask(waves, labels, waves, labels, batch_size=4, seed=1, aug=AugmentConfig(enabled=False))
    a = [b[1].argmax(1).tolist() for b in task.batches(0, 0, 1)]
    b = [b[1].argmax(1).tolist() for b in task.batches(0, 0, 1)]
    c = [b[1].argmax(1).tolist() for b in task.batches(1, 0, 1)]
    assert a == b and a != c
    assert sorted(sum(a, [])) == list(range(10)) and task.num_batches(0, 0, 1) == 3
    # two ranks: the same number of batches, disjoint halves
    r0 = sum((x[1].argmax(1).tolist() for x in task.batches(0, 0, 2)), [])
    r1 = sum((x[1].argmax(1).tolist() for x in task.batches(0, 1, 2)), [])
    assert len(r0) == len(r1) == 5 and sorted(r0 + r1) == list(range(10))
