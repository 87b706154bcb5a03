"""SongRNN: embedding, stacked LSTM, dropout, linear head over characters."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class CharLSTMConfig:
    vocab_size: int = 100
    embed_dim: int = 64
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.2


class CharLSTM(nn.Module):
    """Character-level LSTM language model (folk-rnn / char-rnn)."""

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


def build_model(name: str, config: dict) -> nn.Module:
    from songkit.core.errors import UserError

    if name not in MODELS:
        raise UserError(f"unknown generate model '{name}' (choose from {', '.join(MODELS)})")
    cfg_cls, cls = MODELS[name]
    return cls(cfg_cls(**config))
