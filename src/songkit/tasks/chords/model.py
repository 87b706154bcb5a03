"""Chord models: ``(B, T, 24)`` normalised bass+treble chroma -> ``(B, T, 25)`` logits.

The seed's models (its tables 2-4), adapted from 12-d to 24-d chroma input:
- ``frame``: sequence length 1 (the seed's baselines a/b): a one-step LSTM applied to every
  frame on its own, so it sees no context.
- ``blstm``: the seed's best model (f): 1-layer bidirectional LSTM, 16 hidden units,
  dropout 0.25, trained on 128-frame sequences.
- ``crnn1`` (e): conv 64x5x5, max-pool 7x7, BLSTM(64), FC 128 -> 25.
- ``crnn2`` (d): conv 64x3x3, pool 2x2, conv 128x3x3, pool 3x3, BLSTM(64), FC 128 -> 25.
  As in the seed the CNN reduces the chroma axis to 1 (here an adaptive max over what the
  pools leave of 24 bins) and the time axis by the pool factors (128 -> 17 or 20 steps);
  the seed does not say how its reduced outputs map back to frames, so we repeat each step's
  prediction over the frames it covers (nearest up-sampling).
- ``cnn_blstm`` (ours, the stronger model): a same-padded 1-D conv front end over time
  (3 conv+BN+ReLU layers, 128 channels, kernel 5: ~0.6 s of context per layer) feeding a
  2-layer BLSTM(128) and a linear layer, in the spirit of the conv-recurrent chord models
  of McFee & Bello (2017) and madmom's CNN front end; decoded with HMM smoothing (infer.py).
- ``attention`` (ours): the same kind of conv front end feeding 4 banded self-attention layers, in the
  spirit of BTC (Park et al., 2019), the transformer the issue names.

Every config inherits ``SignalConfig``: the settings that change what the model sees or how its
output is decoded (sample rate, FFT size, hop, HMM transitions) are saved in the checkpoint and
read back, so an old checkpoint never silently gets other features.
The plain LSTM models keep ``use_amp = False`` and ``cnn_blstm`` opts in: measured in docs/chords.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from songkit.tasks.chords import constants as C


@dataclass
class SignalConfig:
    """Input features and decoding: part of every chords model config."""

    sample_rate: int = C.SAMPLE_RATE
    n_fft: int = C.N_FFT
    hop_length: int = C.HOP_LENGTH
    input_dim: int = C.CHROMA_DIM
    num_classes: int = C.NUM_CLASSES
    self_prob: float = C.SELF_PROB  # HMM: chance of staying on a chord per frame (used when no transitions)
    transitions: list = field(default_factory=list)  # learned (25, 25) log transition matrix; [] = self_prob
    crf: bool = False  # a CRF layer (crf.py) trained with the network; its transitions decode (not the above)

    def check(self) -> None:
        if not 0 < self.sample_rate <= 192_000:
            raise ValueError(f"sample_rate: {self.sample_rate} is not an audio rate")
        if not 16 <= self.n_fft <= 65_536 or not 1 <= self.hop_length <= self.n_fft:
            raise ValueError(f"n_fft/hop_length: {self.n_fft}/{self.hop_length} out of range")
        if not 0.0 <= self.self_prob < 1.0:
            raise ValueError(f"self_prob: {self.self_prob} is not in [0, 1)")
        if self.transitions and (len(self.transitions) != self.num_classes
                                 or any(len(row) != self.num_classes for row in self.transitions)):
            raise ValueError(f"transitions: expected {self.num_classes} x {self.num_classes}")
        if self.input_dim != C.CHROMA_DIM or self.num_classes != C.NUM_CLASSES:
            raise ValueError(f"input_dim/num_classes: songkit's chords use {C.CHROMA_DIM} and {C.NUM_CLASSES}")


class ChordNet(nn.Module):
    """Base of the chord models: keeps the config; ``use_amp = False`` (plain LSTMs: bf16 autocast does
    not pay, measured in docs/chords.md)."""

    use_amp = False

    def __init__(self, cfg: SignalConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.crf:
            from songkit.tasks.chords.crf import TiedTransitions

            self.crf = TiedTransitions(cfg.self_prob)
        else:
            self.crf = None

    def decoding_transitions(self):
        """The ``(25, 25)`` transition scores Viterbi decodes with: the CRF's, the config's learned ones, or None
        (one ``self_prob``)."""
        if self.crf is not None:
            with torch.no_grad():
                return self.crf().double().cpu().numpy()
        return self.cfg.transitions or None


@dataclass
class FrameConfig(SignalConfig):
    hidden: int = 64


class FrameLSTM(ChordNet):
    """Sequence length 1: each frame through a one-step LSTM alone."""

    def __init__(self, cfg: FrameConfig):
        super().__init__(cfg)
        self.lstm = nn.LSTM(cfg.input_dim, cfg.hidden, batch_first=True)
        self.fc = nn.Linear(cfg.hidden, cfg.num_classes)

    def forward(self, x):  # (B, T, F)
        B, T, F = x.shape
        h, _ = self.lstm(x.reshape(B * T, 1, F))  # (B*T, 1, H): no state between frames
        return self.fc(h[:, 0]).reshape(B, T, -1)


@dataclass
class BLSTMConfig(SignalConfig):
    hidden: int = 16
    layers: int = 1
    dropout: float = 0.25


class BLSTM(ChordNet):
    """The seed's RNN-only model (table 4)."""

    def __init__(self, cfg: BLSTMConfig):
        super().__init__(cfg)
        self.drop = nn.Dropout(cfg.dropout)
        self.lstm = nn.LSTM(cfg.input_dim, cfg.hidden, num_layers=cfg.layers, batch_first=True, bidirectional=True,
                            dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.fc = nn.Linear(2 * cfg.hidden, cfg.num_classes)

    def forward(self, x):  # (B, T, F)
        h, _ = self.lstm(self.drop(x))  # (B, T, 2H)
        return self.fc(self.drop(h))


@dataclass
class CRNNConfig(SignalConfig):
    convs: list = field(default_factory=lambda: [[64, 5, 7]])  # (channels, kernel, pool) per layer
    rnn_hidden: int = 64


class CRNN(ChordNet):
    """The seed's CRNN: 2-D convs over (chroma, time), pool, BLSTM over the pooled steps."""

    def __init__(self, cfg: CRNNConfig):
        super().__init__(cfg)
        layers, c_in = [], 1
        for c_out, k, pool in cfg.convs:
            layers += [nn.Conv2d(c_in, c_out, k), nn.ReLU(), nn.MaxPool2d(pool)]
            c_in = c_out
        self.cnn = nn.Sequential(*layers)
        self.rnn = nn.LSTM(c_in, cfg.rnn_hidden, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * cfg.rnn_hidden, cfg.num_classes)

    def min_frames(self) -> int:
        t = 1
        for _, k, pool in reversed(self.cfg.convs):
            t = t * pool + k - 1
        return t

    def forward(self, x):  # (B, T, F)
        T = x.shape[1]
        need = self.min_frames()
        xt = x.transpose(1, 2)[:, None]  # (B, 1, F, T)
        if T < need:
            xt = nn.functional.pad(xt, (0, need - T))
        h = self.cnn(xt)  # (B, C, F', T')
        h = h.amax(dim=2).transpose(1, 2)  # (B, T', C): chroma axis reduced to 1
        h, _ = self.rnn(h)
        logits = self.fc(h).transpose(1, 2)  # (B, 25, T')
        return nn.functional.interpolate(logits, size=T, mode="nearest").transpose(1, 2)  # (B, T, 25)


def conv_front(cfg) -> nn.Sequential:
    """``cfg.conv_layers`` same-padded conv+BN+ReLU+dropout layers over time: (B, 24, T) -> (B, channels, T)."""
    layers, c_in = [], cfg.input_dim
    for _ in range(cfg.conv_layers):
        layers += [nn.Conv1d(c_in, cfg.channels, cfg.kernel, padding=cfg.kernel // 2), nn.BatchNorm1d(cfg.channels),
                   nn.ReLU(), nn.Dropout(cfg.dropout)]
        c_in = cfg.channels
    return nn.Sequential(*layers)


@dataclass
class CNNBLSTMConfig(SignalConfig):
    channels: int = 128
    kernel: int = 5
    conv_layers: int = 3
    rnn_hidden: int = 128
    rnn_layers: int = 2
    dropout: float = 0.3


class CNNBLSTM(ChordNet):
    """Conv front end over time + 2-layer BLSTM: the stronger model."""

    # bf16 autocast pays here on a CPU with native bf16 (AVX512-BF16: 1.66x training frames/s, the
    # same majmin; bench/bench_chords_amp.py, docs/chords.md); the plain BLSTMs stay fp32
    use_amp = True

    def __init__(self, cfg: CNNBLSTMConfig):
        super().__init__(cfg)
        self.cnn = conv_front(cfg)
        self.rnn = nn.LSTM(cfg.channels, cfg.rnn_hidden, num_layers=cfg.rnn_layers, batch_first=True,
                           bidirectional=True, dropout=cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)
        self.fc = nn.Linear(2 * cfg.rnn_hidden, cfg.num_classes)

    def forward(self, x):  # (B, T, F)
        h = self.cnn(x.transpose(1, 2)).transpose(1, 2)  # (B, T, C)
        h, _ = self.rnn(h)  # (B, T, 2H)
        return self.fc(self.drop(h))


@dataclass
class AttentionConfig(SignalConfig):
    channels: int = 128
    kernel: int = 5
    conv_layers: int = 2
    heads: int = 4
    layers: int = 4
    ff: int = 256
    radius: int = 64  # frames each frame attends to on either side (~3 s)
    dropout: float = 0.2


class Attention(ChordNet):
    """Conv front end + bidirectional self-attention over time, in the spirit of BTC (Park et al., 2019).

    Attention is banded (``radius`` frames each side): training windows are 128 frames and inference
    windows 1,024 (infer.py), so an unbanded layer would see 8x longer contexts at test time than it was
    trained on; banded, every frame sees the same span in both. The conv front end gives the local order
    (no position encoding: which of 128 frames a frame is in says nothing about its chord).
    """

    use_amp = True

    def __init__(self, cfg: AttentionConfig):
        super().__init__(cfg)
        self.cnn = conv_front(cfg)
        layer = nn.TransformerEncoderLayer(cfg.channels, cfg.heads, cfg.ff, cfg.dropout, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.channels)
        self.fc = nn.Linear(cfg.channels, cfg.num_classes)

    def forward(self, x):  # (B, T, F)
        h = self.cnn(x.transpose(1, 2)).transpose(1, 2)  # (B, T, C)
        t = torch.arange(x.shape[1], device=x.device)
        far = (t[:, None] - t[None, :]).abs() > self.cfg.radius  # (T, T): True = not attended
        h = self.encoder(h, mask=far)
        return self.fc(self.norm(h))


MODELS = {
    "frame": (FrameConfig, FrameLSTM),
    "blstm": (BLSTMConfig, BLSTM),
    "crnn1": (CRNNConfig, CRNN),
    "crnn2": (CRNNConfig, CRNN),
    "cnn_blstm": (CNNBLSTMConfig, CNNBLSTM),
    "attention": (AttentionConfig, Attention),
}
PRESETS = {  # the seed's two CRNNs share one config class
    "crnn1": {"convs": [[64, 5, 7]]},
    "crnn2": {"convs": [[64, 3, 2], [128, 3, 3]]},
}


def make_config(name: str, **overrides):
    """The config of model ``name``: its preset, then ``overrides`` (unknown models: UserError)."""
    from songkit.core.errors import UserError

    if name not in MODELS:
        raise UserError(f"--model {name}: expected one of {', '.join(MODELS)}")
    cfg_cls, _ = MODELS[name]
    return cfg_cls(**{**PRESETS.get(name, {}), **overrides})
