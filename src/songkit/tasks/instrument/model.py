"""The instrument-family classifiers. Every model takes raw 16 kHz audio ``(B, N)`` and
returns logits ``(B, 11)``; the log-mel models compute their features inside ``forward``
with the shared torch front end (``songkit.core.audio.log_mel``), so features are made on
the model's device and a checkpoint needs no separate feature pipeline.

MODELS = {name: (ConfigDataclass, ModuleClass)}:
  lstm       the seed's LSTM: the first second as 100 steps of 160 samples, 3 x 128, last step
  blstm      the same, bidirectional (last step of both directions' outputs, as the seed)
  cnn1d      1D CNN over log-mel (Dieleman 2014): convolution along time, mel bins as channels
  cnn2d      2D CNN in the style of Choi et al.'s FCN-4, scaled to a 64 x 101 log-mel
  cnn2d_deep a deeper 2D CNN: 4 VGG blocks of two 3x3 convolutions, global mean + max pooling
  samplecnn  Sample-CNN (Lee et al. 2017) on the raw waveform: 3^n model, filters of 3
  linear     the baseline: logistic regression on log-mel band means and deviations
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import torch
from torch import nn

from songkit.tasks.instrument.constants import (
    CLIP_SAMPLES,
    FAMILIES,
    FMIN,
    FRAME_SAMPLES,
    HOP,
    N_FFT,
    N_MELS,
    SAMPLE_RATE,
)


# ----------------------------------------------------------------------------- the seed's RNNs
@dataclass
class LSTMConfig:
    """The seed's LSTM: INPUT_SIZE 160, HIDDEN_SIZE 128, NUM_LAYERS 3 (Adam 8e-4, batch 32)."""

    clip_samples: int = CLIP_SAMPLES  # the first second
    frame_samples: int = FRAME_SAMPLES  # 160 samples per step -> 100 steps
    hidden_size: int = 128
    num_layers: int = 3
    bidirectional: bool = False
    num_classes: int = len(FAMILIES)


class LSTMClassifier(nn.Module):
    """Raw samples framed as (B, 100, 160) -> LSTM -> Linear on the last time step."""

    use_amp = False  # bf16 LSTM steps measured no faster on a CPU (docs/instrument.md): stays fp32

    def __init__(self, cfg: LSTMConfig):
        super().__init__()
        self.cfg = cfg
        self.rnn = nn.LSTM(cfg.frame_samples, cfg.hidden_size, cfg.num_layers, batch_first=True,
                           bidirectional=cfg.bidirectional)
        self.out = nn.Linear(cfg.hidden_size * (2 if cfg.bidirectional else 1), cfg.num_classes)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        steps = self.cfg.clip_samples // self.cfg.frame_samples
        frame = self.cfg.frame_samples
        x = wave[:, : steps * frame].reshape(wave.shape[0], steps, frame)  # (B, 100, 160)
        r_out, _ = self.rnn(x)  # (B, 100, H * dirs); zero initial state, as the seed
        return self.out(r_out[:, -1, :])  # the seed's "r_out at the last time step"


@dataclass
class BLSTMConfig(LSTMConfig):
    """The seed's BLSTM: the LSTM with bidirectional=True."""

    bidirectional: bool = True


# ----------------------------------------------------------------------------- log-mel front end
@dataclass
class MelConfig:
    """Log-mel settings shared by the spectrogram models (10 ms hop: 101 frames per second)."""

    clip_samples: int = CLIP_SAMPLES
    sample_rate: int = SAMPLE_RATE
    n_fft: int = N_FFT
    hop: int = HOP
    n_mels: int = N_MELS
    fmin: float = FMIN
    frontend: str = "logmel"  # logmel | pcen (per-channel energy normalisation, Wang et al. 2017)

    def check(self) -> None:
        """Ranges a checkpoint's config must respect (ValueError "field: problem")."""
        if not 1 <= self.n_mels <= 512:
            raise ValueError(f"n_mels: {self.n_mels} outside 1..512")
        if not 0 < self.hop <= self.n_fft <= 1 << 16:
            raise ValueError(f"n_fft: {self.n_fft} with hop {self.hop} (need 0 < hop <= n_fft <= 65536)")
        if not 0 <= self.fmin < self.sample_rate / 2:
            raise ValueError(f"fmin: {self.fmin} not below Nyquist ({self.sample_rate / 2:g} Hz)")
        if not self.n_fft <= self.clip_samples <= 10 * SAMPLE_RATE:
            raise ValueError(f"clip_samples: {self.clip_samples} outside n_fft..{10 * SAMPLE_RATE}")
        if self.frontend not in ("logmel", "pcen"):
            raise ValueError(f"frontend: {self.frontend!r}, expected logmel or pcen")


def pcen(mel: torch.Tensor, s: float = 0.04, alpha: float = 0.98, delta: float = 2.0, r: float = 0.5,
         eps: float = 1e-6) -> torch.Tensor:
    """Per-channel energy normalisation of a mel power spectrogram ``(B, M, T)`` (librosa's defaults
    for alpha, delta, r; ``s`` for a 10 ms hop): each band divided by its own smoothed energy, so
    a sample set's level and spectral tilt matter less than how each band evolves."""
    smooth = [mel[..., 0]]
    for t in range(1, mel.shape[-1]):  # first-order IIR along time
        smooth.append((1 - s) * smooth[-1] + s * mel[..., t])
    m = torch.stack(smooth, dim=-1)  # (B, M, T)
    return (mel / (eps + m) ** alpha + delta) ** r - delta**r


class LogMel(nn.Module):
    """(B, N) audio -> (B, n_mels, T) log-mel (or PCEN), normalised per mel bin by a BatchNorm
    (as FCN-4's input BN)."""

    def __init__(self, cfg: MelConfig):
        super().__init__()
        self.cfg = cfg
        self.norm = nn.BatchNorm1d(cfg.n_mels)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        from songkit.core.audio import log_mel

        c = self.cfg
        with torch.autocast(device_type=wave.device.type, enabled=False):  # STFT in float32
            mel = log_mel(wave[:, : c.clip_samples].float(), sample_rate=c.sample_rate, n_fft=c.n_fft, hop=c.hop,
                          n_mels=c.n_mels, fmin=c.fmin, eps=1e-8)  # (B, M, T)
            if c.frontend == "pcen":
                mel = pcen(torch.exp(mel) * 2**31)  # PCEN's constants assume integer-scaled audio (librosa)
        return self.norm(mel)


@dataclass
class LinearConfig(MelConfig):
    """The baseline: logistic regression on each mel band's mean and standard deviation over time."""

    num_classes: int = len(FAMILIES)


class LogMelLinear(nn.Module):
    def __init__(self, cfg: LinearConfig):
        super().__init__()
        self.cfg = cfg
        self.mel = LogMel(cfg)
        self.out = nn.Linear(2 * cfg.n_mels, cfg.num_classes)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        mel = self.mel(wave)  # (B, M, T)
        return self.out(torch.cat([mel.mean(-1), mel.std(-1)], dim=1))  # (B, 2M) -> (B, 11)


@dataclass
class CNN1DConfig(MelConfig):
    """1D CNN: convolutions along time over all mel bins; global mean+max pooling; 2 FC layers."""

    channels: list[int] = field(default_factory=lambda: [128, 128, 128])
    kernel: int = 3
    hidden: int = 256
    dropout: float = 0.3
    num_classes: int = len(FAMILIES)


class CNN1D(nn.Module):
    def __init__(self, cfg: CNN1DConfig):
        super().__init__()
        self.cfg = cfg
        self.mel = LogMel(cfg)
        layers, c_in = [], cfg.n_mels
        for c_out in cfg.channels:
            layers += [nn.Conv1d(c_in, c_out, cfg.kernel, padding="same"), nn.BatchNorm1d(c_out), nn.ReLU(),
                       nn.MaxPool1d(2)]
            c_in = c_out
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(2 * c_in, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout),
                                  nn.Linear(cfg.hidden, cfg.num_classes))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        h = self.body(self.mel(wave))  # (B, C, T')
        return self.head(torch.cat([h.mean(-1), h.amax(-1)], dim=1))  # Dieleman's global mean + max pooling


@dataclass
class CNN2DConfig(MelConfig):
    """FCN-4 (Choi et al. 2016) scaled: 4 conv 3x3 + BN + ReLU + max-pool blocks that pool the
    64 x 101 log-mel to 1 x 1 (FCN-4: 96 x 1366 with 128/384/768/2048 channels, pools (2,4)(4,5)(3,8)(4,8))."""

    channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    pools: list[list[int]] = field(default_factory=lambda: [[2, 2], [2, 2], [4, 5], [4, 5]])  # (mel, time)
    dropout: float = 0.3
    num_classes: int = len(FAMILIES)


class CNN2D(nn.Module):
    channels_last = True  # conv2d: the fast layout for bf16/fp16 kernels (core.device.place_model)

    def __init__(self, cfg: CNN2DConfig):
        super().__init__()
        self.cfg = cfg
        self.mel = LogMel(cfg)
        layers, c_in = [], 1
        for c_out, pool in zip(cfg.channels, cfg.pools):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                       nn.MaxPool2d(tuple(pool), ceil_mode=True)]
            c_in = c_out
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(c_in, cfg.num_classes))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        h = self.body(self.mel(wave)[:, None])  # (B, C, M', T'): 1 x 1 for the default 64 x 101 input
        return self.head(h.amax(dim=(2, 3)))  # global max pool for other input sizes


@dataclass
class CNN2DDeepConfig(MelConfig):
    """A deeper 2D CNN (VGG-style, as the short-chunk CNN of Won et al. 2020): blocks of two 3x3
    conv + BN + ReLU and a 2x2 max-pool, then global mean + max pooling over (mel, time), so nothing
    depends on where in the spectrogram a pattern sits."""

    channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    dropout: float = 0.3
    num_classes: int = len(FAMILIES)


class CNN2DDeep(nn.Module):
    channels_last = True

    def __init__(self, cfg: CNN2DDeepConfig):
        super().__init__()
        self.cfg = cfg
        self.mel = LogMel(cfg)
        layers, c_in = [], 1
        for c_out in cfg.channels:
            for c in (c_in, c_out):
                layers += [nn.Conv2d(c, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
            c_in = c_out
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(2 * c_in, cfg.num_classes))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        h = self.body(self.mel(wave)[:, None])  # (B, C, M / 16, T / 16)
        return self.head(torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1))  # (B, 2C) -> (B, 11)


# ----------------------------------------------------------------------------- Sample-CNN
@dataclass
class SampleCNNConfig:
    """Sample-CNN (Lee et al. 2017), 3^9 model: a strided conv of 3, then conv-3 + max-pool-3
    blocks to one frame, conv-1, dropout, FC. Input 3^9 = 19683 samples (1.23 s at 16 kHz).
    Channels scaled down from Lee et al.'s 128 ... 512 for a CPU; 8 blocks for 3^9 samples."""

    clip_samples: int = 19683
    channels: list[int] = field(default_factory=lambda: [32, 32, 48, 64, 96, 128, 128, 128, 256])
    dropout: float = 0.5
    num_classes: int = len(FAMILIES)


class SampleCNN(nn.Module):
    def __init__(self, cfg: SampleCNNConfig):
        super().__init__()
        self.cfg = cfg
        ch = cfg.channels
        layers = [nn.Conv1d(1, ch[0], 3, stride=3), nn.BatchNorm1d(ch[0]), nn.ReLU()]  # sample-level strided conv
        for c_in, c_out in itertools.pairwise(ch):
            layers += [nn.Conv1d(c_in, c_out, 3, padding=1), nn.BatchNorm1d(c_out), nn.ReLU(), nn.MaxPool1d(3)]
        layers += [nn.Conv1d(ch[-1], ch[-1], 1), nn.BatchNorm1d(ch[-1]), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(ch[-1], cfg.num_classes))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = wave[:, : self.cfg.clip_samples]
        if x.shape[1] < self.cfg.clip_samples:
            x = nn.functional.pad(x, (0, self.cfg.clip_samples - x.shape[1]))
        h = self.body(x[:, None])  # (B, C, 1) for 3^9 samples
        return self.head(h.amax(-1))


MODELS: dict[str, tuple[type, type]] = {
    "linear": (LinearConfig, LogMelLinear),
    "lstm": (LSTMConfig, LSTMClassifier),
    "blstm": (BLSTMConfig, LSTMClassifier),
    "cnn1d": (CNN1DConfig, CNN1D),
    "cnn2d": (CNN2DConfig, CNN2D),
    "cnn2d_deep": (CNN2DDeepConfig, CNN2DDeep),
    "samplecnn": (SampleCNNConfig, SampleCNN),
}


def build_model(name: str, config: dict | None = None) -> nn.Module:
    """A model by name, from a config dict (a checkpoint's) or the defaults (for tests and benchmarks;
    checkpoints load through core.checkpoint.load_model)."""
    cfg_cls, module_cls = MODELS[name]
    return module_cls(cfg_cls(**(config or {})))


def input_samples(model: nn.Module) -> int:
    """How many samples from the start of a note the model reads."""
    return int(model.cfg.clip_samples)
