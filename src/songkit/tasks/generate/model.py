"""SongRNN: embedding, stacked LSTM, dropout, linear head over characters."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class CharLSTMConfig:
    """Sizes of a CharLSTM (saved in its checkpoints)."""

    vocab_size: int = 100
    embed_dim: int = 64
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.2

    def check(self) -> None:
        """Raise ValueError("field: problem") for a setting no model can have."""
        for name in ("vocab_size", "embed_dim", "hidden_size", "num_layers"):
            if not 1 <= getattr(self, name) <= 100_000:
                raise ValueError(f"{name}: {getattr(self, name)} is out of range (1..100000)")
        if self.vocab_size < 4:
            raise ValueError(f"vocab_size: {self.vocab_size}, needs the 3 specials and a character")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: {self.dropout} is out of range [0, 1)")


class CharLSTM(nn.Module):
    """Character-level LSTM language model (folk-rnn / char-rnn)."""

    # bf16 autocast measured slower and worse on a CPU (docs/generate.md, "Precision")
    use_amp = False

    def __init__(self, cfg: CharLSTMConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim)
        self.lstm = nn.LSTM(cfg.embed_dim, cfg.hidden_size, cfg.num_layers, batch_first=True,
                            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden_size, cfg.vocab_size)

    def forward(self, ids: torch.Tensor, state=None):
        """ids (B, T) -> logits (B, T, V), new (h, c) each (layers, B, H)."""
        x = self.embed(ids)  # (B, T, E)
        y, state = self.lstm(x, state)  # (B, T, H)
        return self.head(self.drop(y)), state


MODELS = {"lstm": (CharLSTMConfig, CharLSTM)}
