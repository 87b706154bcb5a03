"""Next-token models over CP/NB token groups: the seed's linear RNN and GRU RNN.

One embedding per token family (concatenated, projected to ``d_model``), a stack of
recurrent layers with residual connections and ReLU feed-forward blocks, and one
output head per family. ``linear`` is an Elman RNN built from linear maps with ReLU
(``h_t = relu(W x_t + U h_{t-1})``); ``gru`` uses GRU cells.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class TokenRNNConfig:
    """Architecture of a token model (saved in the checkpoint; rebuild with TokenRNNConfig(**d))."""

    encoding: str = "nb"  # cp | nb
    cell: str = "gru"  # gru | linear
    vocab_sizes: list[int] = field(default_factory=lambda: _default_sizes())  # one per family
    embed_dim: int = 64  # per family, at most the family's vocabulary size
    d_model: int = 256
    num_layers: int = 2
    dropout: float = 0.1

    def check(self) -> None:
        """Raise ValueError("field: problem") for values no model can be built from."""
        if self.encoding not in ("cp", "nb"):
            raise ValueError(f"encoding: {self.encoding!r} is not cp or nb")
        if self.cell not in ("gru", "linear"):
            raise ValueError(f"cell: {self.cell!r} is not gru or linear")
        if len(self.vocab_sizes) != 9 or not all(type(n) is int and 1 <= n <= 65536 for n in self.vocab_sizes):
            raise ValueError("vocab_sizes: expected 9 sizes of 1..65536")
        for name, hi in (("embed_dim", 4096), ("d_model", 8192), ("num_layers", 32)):
            if not 1 <= getattr(self, name) <= hi:
                raise ValueError(f"{name}: {getattr(self, name)} is outside 1..{hi}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout: {self.dropout} is outside [0, 1)")


class TokenRNN(nn.Module):
    """(B, T, F) ids -> F logits tensors of shape (B, T, V_f)."""

    # bf16 autocast where the hardware has it (core.device.amp_dtype): on a CPU with AVX512-BF16 the
    # default GRU trains 1.72x faster with the same validation loss (bench_tokenize.py --sections
    # precision; docs/tokenize.md); a CPU without native bf16 stays fp32 (emulated bf16 ran 0.06x)
    use_amp = True

    def __init__(self, cfg: TokenRNNConfig):
        super().__init__()
        self.cfg = cfg
        dims = [min(cfg.embed_dim, n) for n in cfg.vocab_sizes]
        self.embeds = nn.ModuleList(nn.Embedding(n, d) for n, d in zip(cfg.vocab_sizes, dims))
        self.inp = nn.Linear(sum(dims), cfg.d_model)
        rnn = nn.GRU if cfg.cell == "gru" else nn.RNN
        kw = {} if cfg.cell == "gru" else {"nonlinearity": "relu"}
        self.norms = nn.ModuleList(nn.LayerNorm(cfg.d_model) for _ in range(cfg.num_layers))
        self.rnns = nn.ModuleList(rnn(cfg.d_model, cfg.d_model, batch_first=True, **kw) for _ in range(cfg.num_layers))
        self.ffs = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(cfg.d_model), nn.Linear(cfg.d_model, 2 * cfg.d_model), nn.ReLU(),
                          nn.Linear(2 * cfg.d_model, cfg.d_model))
            for _ in range(cfg.num_layers))
        self.drop = nn.Dropout(cfg.dropout)
        self.out_norm = nn.LayerNorm(cfg.d_model)
        self.heads = nn.ModuleList(nn.Linear(cfg.d_model, n) for n in cfg.vocab_sizes)

    def forward(self, x: torch.Tensor, state: list | None = None):
        """x (B, T, F) long -> (list of (B, T, V_f) logits, new state per layer)."""
        h = torch.cat([emb(x[..., f]) for f, emb in enumerate(self.embeds)], dim=-1)  # (B, T, sum dims)
        h = self.drop(torch.relu(self.inp(h)))  # (B, T, D)
        new_state = []
        for i in range(self.cfg.num_layers):
            y, s = self.rnns[i](self.norms[i](h), None if state is None else state[i])
            new_state.append(s)
            h = h + self.drop(y)  # residual around the recurrence
            h = h + self.drop(self.ffs[i](h))  # residual around the ReLU block
        h = self.out_norm(h)
        return [head(h) for head in self.heads], new_state


def _default_sizes() -> list[int]:
    """The family sizes of the default vocabulary (NB), so that a default config builds a real model."""
    from songkit.tasks.tokenize.constants import TokenizerConfig, Vocabulary

    return Vocabulary(TokenizerConfig()).sizes("nb")


@dataclass
class LinearRNNConfig(TokenRNNConfig):
    """TokenRNNConfig with ReLU Elman cells (``--model linear``)."""

    cell: str = "linear"


MODELS = {"gru": (TokenRNNConfig, TokenRNN), "linear": (LinearRNNConfig, TokenRNN)}


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, ignore_index: int = -100):
    """Multi-class focal loss, mean over kept items: -(1 - p_t)^gamma log p_t (Lin et al. 2017).

    The seed's snippet applies the factor to the batch-mean BCE; for softmax heads the
    field applies it to each item's cross-entropy, as here.
    """
    logp = torch.log_softmax(logits.float(), dim=-1)  # (N, V)
    keep = target != ignore_index
    t = target.clamp(min=0)
    logp_t = logp.gather(-1, t.unsqueeze(-1)).squeeze(-1)  # (N,)
    loss = -((1 - logp_t.exp()) ** gamma) * logp_t
    return (loss * keep).sum() / keep.sum().clamp(min=1)
