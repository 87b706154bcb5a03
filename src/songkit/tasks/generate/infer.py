"""Sampling SongRNN: loading a checkpoint, sampling tunes in one batch, a fast per-character LSTM stepper."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from songkit.core.errors import UserError
from songkit.tasks.generate.constants import BOS, EOS, SPECIALS, TASK
from songkit.tasks.generate.data import encode
from songkit.tasks.generate.evaluate import burn_in_ids
from songkit.tasks.generate.model import MODELS


def load(checkpoint: Path | str | None, device="cpu"):
    """(model, Checkpoint) of a generate checkpoint (a file or a run folder; None: the shipped default),
    validated as a whole by core's loader (config, vocabulary, weights: one error line each), in eval
    mode on ``device``."""
    from songkit.core.checkpoint import load_model

    model, ck = load_model(checkpoint, TASK, MODELS, device, check_vocab=check_vocab)
    if len(ck.vocab) != model.cfg.vocab_size:
        raise UserError(f"{ck.path}: vocab: {len(ck.vocab)} characters, config.vocab_size {model.cfg.vocab_size}")
    return model, ck


def check_vocab(vocab) -> None:
    """A character vocabulary: single characters, no repeats, the specials first."""
    if not isinstance(vocab, (list, tuple)) or not all(isinstance(c, str) and len(c) == 1 for c in vocab):
        raise ValueError("expected a list of single characters")
    if len(set(vocab)) != len(vocab) or list(vocab[: len(SPECIALS)]) != list(SPECIALS):
        raise ValueError("expected distinct characters after the specials (unknown, begin, end)")


def filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Keep the top-k and/or the smallest nucleus with mass >= top_p; logits (B, V)."""
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if 0 < top_p < 1:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = sorted_logits.softmax(-1)
        drop = probs.cumsum(-1) - probs > top_p  # keep the token that crosses top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return logits


@torch.inference_mode()
def sample_tunes(model, vocab: Sequence[str], num: int = 1, temperature: float = 1.0, max_chars: int = 2000,
                 top_k: int = 0, top_p: float = 1.0, prime: str = "", seed: int | None = None,
                 device=None, on_step=None) -> list[str]:
    """Sample ``num`` tunes as one batch; each stops at its end-of-tune character.

    ``prime`` is the start of every tune (its X: line is dropped: tunes are numbered by the caller).
    Returns the tune texts without X: lines (prime included).
    """
    if temperature <= 0:
        raise UserError(f"--temperature {temperature}: must be > 0")
    if not 0 < top_p <= 1:
        raise UserError(f"--top-p {top_p}: must be in (0, 1] (1: off)")
    device = torch.device(device or next(model.parameters()).device)
    prime = "\n".join(line for line in prime.replace("\r\n", "\n").split("\n") if not line.startswith("X:"))
    gen = torch.Generator(device=device if device.type == "cuda" else "cpu")  # sample where the logits are
    if seed is not None:
        gen.manual_seed(seed)
    index = {c: i for i, c in enumerate(vocab)}
    eos = index[EOS]
    start = torch.tensor(burn_in_ids(vocab) + [index[BOS]] + encode(prime, vocab), dtype=torch.long, device=device)
    logits, state = model(start.unsqueeze(0).expand(num, -1).contiguous(), None)  # prime all rows at once
    logits = logits[:, -1]  # (B, V)
    step = LSTMStepper(model)
    h, c = list(state[0].unbind(0)), list(state[1].unbind(0))  # per layer: (B, H)
    filtering = bool(top_k) or top_p < 1
    out = torch.empty((num, max_chars), dtype=torch.long, device=device)
    steps = max_chars
    for t in range(max_chars):
        scaled = logits.float() / temperature
        if filtering:
            scaled = filter_logits(scaled, top_k, top_p)
        probs = torch.softmax(scaled, -1)
        nxt = torch.multinomial(probs if device.type == "cuda" else probs.cpu(), 1, generator=gen).to(device)  # (B, 1)
        out[:, t] = nxt[:, 0]
        if t % 16 == 15:  # look for end-of-tune only now and then: each look is a host sync
            if on_step is not None:
                on_step(t)
            if bool((out[:, : t + 1] == eos).any(1).all()):
                steps = t + 1
                break
        logits, h, c = step(nxt[:, 0], h, c)
    out = out[:, :steps].cpu()
    is_eos = out == eos
    length = torch.where(is_eos.any(1), is_eos.int().argmax(1), torch.full((num,), steps)).tolist()
    tunes = []
    for row, n in zip(out.tolist(), length):
        # specials and C1 control characters (mis-decoded cp1252 in a few corpus titles) are not ABC
        body = "".join(c for c in (vocab[i] for i in row[:n]) if c not in SPECIALS and not "\x80" <= c <= "\x9f")
        tunes.append((prime + body).strip("\n"))
    return tunes


class LSTMStepper:
    """One character step of a CharLSTM, from its weights (inference only).

    nn.LSTM costs 0.4-1.4 ms per call at batch 1 on a CPU (the fused kernel's set-up per call);
    these few matmuls compute the same function (max difference 6e-8) in about 0.15 ms, and
    layer 0's input projection is a table lookup: embedding @ W_ih0 + biases, (V, 4H).
    """

    def __init__(self, model):
        lstm = model.lstm
        self.layers = []
        for k in range(lstm.num_layers):
            w_ih, w_hh = getattr(lstm, f"weight_ih_l{k}"), getattr(lstm, f"weight_hh_l{k}")
            bias = getattr(lstm, f"bias_ih_l{k}") + getattr(lstm, f"bias_hh_l{k}")
            self.layers.append((w_ih.t(), w_hh.t(), bias))
        self.table = F.linear(model.embed.weight, self.layers[0][0].t(), self.layers[0][2])  # (V, 4H)
        self.head_w, self.head_b = model.head.weight, model.head.bias

    def __call__(self, ids: torch.Tensor, h: list, c: list):
        """ids (B,) -> logits (B, V) and the new per-layer h, c, each (B, H)."""
        x = None
        for k, (w_ih_t, w_hh_t, bias) in enumerate(self.layers):
            gates = self.table[ids] + h[k] @ w_hh_t if k == 0 else torch.addmm(bias, x, w_ih_t) + h[k] @ w_hh_t
            i, f, g, o = gates.chunk(4, 1)  # PyTorch's gate order
            c[k] = torch.sigmoid(f) * c[k] + torch.sigmoid(i) * torch.tanh(g)
            h[k] = x = torch.sigmoid(o) * torch.tanh(c[k])
        return F.linear(x, self.head_w, self.head_b), h, c


def format_tunes(tunes: Sequence[str], first_number: int = 1) -> str:
    """One multi-tune ABC file: every tune opens with its own X: header."""
    return "".join(f"X:{first_number + i}\n{t.strip()}\n\n" for i, t in enumerate(tunes))


def generate(checkpoint: Path | str | None, *, num: int = 1, temperature: float = 1.0, max_chars: int = 2000,
             top_k: int = 0, top_p: float = 1.0, prime: str = "", seed: int = 0, device="cpu",
             on_step=None) -> str:
    """``num`` tunes sampled from a generate checkpoint, as the text of one multi-tune ABC file."""
    model, ck = load(checkpoint, device)
    tunes = sample_tunes(model, ck.vocab, num=num, temperature=temperature, max_chars=max_chars, top_k=top_k,
                         top_p=top_p, prime=prime, seed=seed, device=device, on_step=on_step)
    return format_tunes(tunes)
