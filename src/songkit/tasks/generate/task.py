"""The generate task: training on streams of characters, sampling tunes, measuring them."""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from songkit.core.checkpoint import Checkpoint, default_checkpoint, load_checkpoint
from songkit.core.errors import UserError
from songkit.tasks.generate.data import corpus_ids, encode
from songkit.tasks.generate.model import build_model
from songkit.tasks.generate.spec import BOS, BURN_IN, EOS, SPECIALS, TASK


def stream_batches(ids: torch.Tensor, n_streams: int, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut one id stream into ``n_streams`` contiguous rows (char-rnn layout).

    Returns inputs and targets, each (n_streams, n_chunks * seq_len): chunk k of every
    row continues chunk k-1 of the same row, so the LSTM state can be carried across chunks.
    """
    per_row = (len(ids) - 1) // n_streams
    n_chunks = per_row // seq_len
    if n_chunks < 1:
        raise UserError(
            f"corpus too small: {len(ids)} characters for {n_streams} streams of --seq-len {seq_len}; "
            "lower --batch-size or --seq-len"
        )
    usable = n_chunks * seq_len
    rows = torch.stack([ids[r * per_row: r * per_row + usable + 1] for r in range(n_streams)])
    return rows[:, :-1], rows[:, 1:]


class GenerateTrainTask:
    """Truncated BPTT over ``seq_len`` characters with the hidden state carried across chunks."""

    def __init__(self, train_tunes: Sequence[str], val_tunes: Sequence[str], vocab: Sequence[str],
                 batch_size: int, seq_len: int, seed: int):
        self.train_tunes, self.vocab = list(train_tunes), list(vocab)
        self.batch_size, self.seq_len, self.seed = batch_size, seq_len, seed
        self.val_ids = torch.tensor(corpus_ids(val_tunes, vocab), dtype=torch.long)
        self.n_train_chars = sum(len(t) + 2 for t in self.train_tunes)
        self.state = None

    def _epoch_stream(self, epoch: int) -> torch.Tensor:
        # a fresh tune order per epoch, a pure function of (seed, epoch): resume-safe
        g = torch.Generator().manual_seed(self.seed * 100003 + epoch)
        order = torch.randperm(len(self.train_tunes), generator=g).tolist()
        return torch.tensor(corpus_ids([self.train_tunes[i] for i in order], self.vocab), dtype=torch.long)

    def num_batches(self, epoch: int, rank: int, world: int) -> int:
        per_row = (self.n_train_chars - 1) // (self.batch_size * world)
        return per_row // self.seq_len

    def batches(self, epoch: int, rank: int, world: int):
        x, y = stream_batches(self._epoch_stream(epoch), self.batch_size * world, self.seq_len)
        x, y = x[rank::world], y[rank::world]  # this rank's streams: (B, N*L)
        for k in range(x.shape[1] // self.seq_len):
            sl = slice(k * self.seq_len, (k + 1) * self.seq_len)
            yield x[:, sl], y[:, sl]

    def on_epoch_start(self, epoch: int) -> None:
        self.state = None

    def train_step(self, model, batch, device):
        x, y = (t.to(device, non_blocking=True) for t in batch)
        logits, state = model(x, self.state)
        self.state = tuple(s.detach() for s in state)  # carry, but do not backpropagate across chunks
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
        return loss, y.numel()

    def evaluate(self, model, device) -> dict[str, float]:
        nats = stream_nats_per_char(model, self.val_ids, device, seq_len=max(self.seq_len, 256))
        return {"val_loss": nats, "val_bpc": nats / math.log(2)}


@torch.no_grad()
def stream_nats_per_char(model, ids: torch.Tensor, device, seq_len: int = 256, n_streams: int = 16) -> float:
    """Mean cross-entropy (nats per character) of ``model`` over a stream, state carried."""
    was_training = model.training
    model.eval()
    n_streams = max(1, min(n_streams, (len(ids) - 1) // (seq_len * 2) or 1))
    per_row = (len(ids) - 1) // n_streams
    total, count, state = 0.0, 0, None
    for start in range(0, per_row, seq_len):
        end = min(per_row, start + seq_len)
        x = torch.stack([ids[r * per_row + start: r * per_row + end] for r in range(n_streams)]).to(device)
        y = torch.stack([ids[r * per_row + start + 1: r * per_row + end + 1] for r in range(n_streams)]).to(device)
        logits, state = model(x, state)
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1), reduction="sum").item()
        count += y.numel()
    model.train(was_training)
    return total / max(1, count)


# ---------------------------------------------------------------- loading and sampling
def load_generator(path: str | Path | Checkpoint | None, device) -> tuple[torch.nn.Module, Checkpoint]:
    """The SongRNN model of a checkpoint (a path, an already loaded one, or the shipped default
    when None), on ``device``."""
    if isinstance(path, Checkpoint):
        ck = path
        if ck.task != TASK:
            raise UserError(f"{ck.path}: a '{ck.task}' checkpoint, but this command needs a '{TASK}' checkpoint")
    else:
        ck = load_checkpoint(path if path is not None else default_checkpoint(TASK), task=TASK)
    model = build_model(ck.model, ck.config)
    try:
        model.load_state_dict(ck.state_dict)
    except RuntimeError as e:
        raise UserError(f"{ck.path}: weights do not fit the model config ({str(e).splitlines()[0]})") from None
    return model.to(device).eval(), ck


def _filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
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
    device = device or next(model.parameters()).device
    prime = "\n".join(line for line in prime.replace("\r\n", "\n").split("\n") if not line.startswith("X:"))
    device = torch.device(device)
    gen = torch.Generator(device=device if device.type == "cuda" else "cpu")  # sample where the logits are
    if seed is not None:
        gen.manual_seed(seed)
    index = {c: i for i, c in enumerate(vocab)}
    eos = index[EOS]
    burn_in = [index[BOS]] + encode(BURN_IN, vocab) + [eos]
    start = torch.tensor(burn_in + [index[BOS]] + encode(prime, vocab), dtype=torch.long, device=device)
    logits, state = model(start.unsqueeze(0).expand(num, -1).contiguous(), None)  # prime all rows at once
    logits = logits[:, -1]  # (B, V)
    step = _LSTMStepper(model)
    h, c = list(state[0].unbind(0)), list(state[1].unbind(0))  # per layer: (B, H)
    filtering = bool(top_k) or 0 < top_p < 1
    out = torch.empty((num, max_chars), dtype=torch.long, device=device)
    steps = max_chars
    for t in range(max_chars):
        scaled = logits.float() / temperature
        if filtering:
            scaled = _filter_logits(scaled, top_k, top_p)
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


class _LSTMStepper:
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


def parses_with_notes(tune_text: str) -> bool:
    """True when music21 parses the tune into a score with at least one note."""
    import music21

    try:
        score = music21.converter.parse(f"X:1\n{tune_text.strip()}\n", format="abc")
        return len(score.flatten().notes) > 0
    except Exception:  # any parse failure counts as a failed tune
        return False


def model_summary(model) -> dict:
    return {"parameters": sum(p.numel() for p in model.parameters()), **asdict(model.cfg)}
